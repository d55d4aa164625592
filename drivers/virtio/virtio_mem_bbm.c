// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem big-block mode: the device block spans one or more Linux memory
 * blocks, so a device block is plugged and added, or offlined, removed and
 * unplugged, as a whole. With force_bbm, smaller device blocks are handled
 * the same way in big blocks of bbm_block_size (default: a memory block).
 *
 * The bookkeeping is the sub-block one with a single sub-block per memory
 * block: a bit is set while the memory of that block is plugged and given
 * to Linux. Memory blocks of a big block share its state, except for
 * VMEM_MB_ONLINE/OFFLINE, which follow sysfs.
 *
 * A big block in ZONE_MOVABLE (or offline) with few pages in use, or
 * online elsewhere with none, is offlined and removed directly: only those
 * pages move, nothing is zeroed.
 * Any other online memory takes the safe path: every page is first
 * isolated and migrated away (failing instead of waiting when a page cannot
 * move), within a headroom checked once per big block, so offlining never
 * loops on pages in use and pressure never makes it thrash.
 */
#include <linux/memory.h>
#include <linux/mm.h>

#include "virtio_mem_dev.h"

/*
 * The big block: the device block, or with force_bbm bbm_block_size (a
 * power of two of whole memory blocks, one request long at most), else
 * the larger of a device and a memory block.
 */
static u64 vmem_bbm_size(struct vmem *vm)
{
	u64 size = max(vm->cfg.block_size, vm->mb_size);
	u64 want = READ_ONCE(vmem_bbm_block_size);

	if (!READ_ONCE(vmem_force_bbm) || !want || want == size)
		return size;
	if (!is_power_of_2(want) || want < size ||
	    div64_u64(want, vm->cfg.block_size) > VIRTIO_MEM_REQ_MAX_BLOCKS) {
		dev_warn(&vm->vdev->dev,
			 "bbm_block_size=%llu is not a power of two of at least %llu bytes that one request covers: using %llu\n",
			 want, size, size);
		return size;
	}
	return want;
}

static int vmem_bbm_init(struct vmem *vm)
{
	vm->sb_size = vm->mb_size;
	vm->bb_size = vmem_bbm_size(vm);
	vm->mbs_per_bb = div64_u64(vm->bb_size, vm->mb_size);
	return vmem_geometry_init(vm);
}

/*
 * Big block @bb starts at memory block @bb * mbs_per_bb; memory blocks are
 * aligned to the device block, so its requests are too.
 */
static unsigned long vmem_bbm_first_mb(struct vmem *vm, unsigned long bb)
{
	return bb * vm->mbs_per_bb;
}

/* Number of whole big blocks in the first @mbs memory blocks. */
static unsigned long vmem_bbm_count(struct vmem *vm, unsigned long mbs)
{
	return mbs / vm->mbs_per_bb;
}

/*
 * State of a big block: a transition of any of its memory blocks if there
 * is one, else ONLINE if any is online, else that of its first block.
 */
static enum vmem_mb_state vmem_bbm_state(struct vmem *vm, unsigned long bb)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);
	enum vmem_mb_state state, ret = vmem_sbm_state(&vm->sbm, mb);
	unsigned long i;

	for (i = 0; i < vm->mbs_per_bb; i++) {
		state = vmem_sbm_state(&vm->sbm, mb + i);
		if (state == VMEM_MB_REMOVING || state == VMEM_MB_ONLINING ||
		    state == VMEM_MB_OFFLINING)
			return state;
		if (state == VMEM_MB_ONLINE)
			ret = VMEM_MB_ONLINE;
	}
	return ret;
}

static bool vmem_bbm_plugged(struct vmem *vm, unsigned long bb)
{
	return vmem_sbm_test(&vm->sbm, vmem_bbm_first_mb(vm, bb), 0,
			     1, true) ||
	       vmem_bbm_state(vm, bb) != VMEM_MB_UNUSED;
}

/* Plug or unplug big block @bb on the device and record it. */
static int vmem_bbm_request(struct vmem *vm, unsigned long bb, bool plug)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);
	u64 addr = vmem_sb_addr(vm, mb);
	int rc;

	rc = plug ? vmem_req_plug(vm, addr, vm->bb_size) :
		    vmem_req_unplug(vm, addr, vm->bb_size);
	if (rc)
		return rc;
	vmem_sbm_mark(&vm->sbm, mb, vm->mbs_per_bb, plug);
	if (plug)
		vm->plugged += vm->bb_size;
	else
		vm->plugged -= vm->bb_size;
	return 0;
}

static int vmem_bbm_plug_bb(struct vmem *vm, unsigned long bb)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);
	int rc;

	/* Bits set on an unused block: plugged earlier, adding failed. */
	if (!vmem_sbm_test(&vm->sbm, mb, 0, 1, true)) {
		rc = vmem_bbm_request(vm, bb, true);
		if (rc)
			return rc;
	}
	rc = vmem_mm_add(vm, mb, vm->mbs_per_bb);
	if (rc)
		vmem_bbm_request(vm, bb, false);
	return rc;
}

static int vmem_bbm_plug(struct vmem *vm, u64 size)
{
	unsigned long todo = div64_u64(size, vm->bb_size);
	unsigned long nr = vmem_bbm_count(vm, vm->usable_mbs);
	unsigned long i, bb;
	int rc;

	for (i = 0; todo && i < nr; i++) {
		bb = vmem_plug_order(i, nr);
		if (vmem_bbm_state(vm, bb) != VMEM_MB_UNUSED)
			continue;
		if (vmem_restart_pending(vm))
			return -EINTR;
		vmem_add_budget(vm, &rc);
		if (rc)
			return rc;
		rc = vmem_bbm_plug_bb(vm, bb);
		if (rc)
			return rc;
		todo--;
	}
	return todo ? -ENOSPC : 0;
}

/* Give the pages of [mb, mb + nr) back to Linux; hp_lock held. */
static void vmem_bbm_untake(struct vmem *vm, unsigned long mb,
			    unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++) {
		vmem_sbm_mark(&vm->sbm, mb + i, 1, true);
		if (vmem_sbm_state(&vm->sbm, mb + i) == VMEM_MB_ONLINE)
			vmem_mm_online_pages(vm, mb + i, 1);
	}
}

/*
 * Take every page of the online memory blocks of big block @bb from Linux,
 * marking it offline. The headroom is checked once, for the whole big
 * block, before anything moves: checked per memory block, a big block
 * that does not fit would be mostly migrated, given back, and migrated
 * again at every poll. Undoes everything on failure.
 */
static int vmem_bbm_take_bb(struct vmem *vm, unsigned long bb)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);
	unsigned long i, online = 0;
	enum vmem_mb_state state;
	int rc = 0;

	mutex_lock(&vm->hp_lock);
	state = vmem_bbm_state(vm, bb);
	if (state != VMEM_MB_ONLINE && state != VMEM_MB_OFFLINE) {
		/* Onlining or offlining right now: later. */
		mutex_unlock(&vm->hp_lock);
		return -ENOMEM;
	}
	for (i = 0; i < vm->mbs_per_bb; i++)
		if (vmem_sbm_state(&vm->sbm, mb + i) == VMEM_MB_ONLINE)
			online++;
	if (!vmem_mm_headroom_ok(vm, online * PHYS_PFN(vm->mb_size))) {
		mutex_unlock(&vm->hp_lock);
		return -ENOBUFS;
	}
	for (i = 0; i < vm->mbs_per_bb; i++) {
		if (vmem_sbm_state(&vm->sbm, mb + i) == VMEM_MB_ONLINE) {
			rc = vmem_mm_take_pages(vm, mb + i, 1);
			if (rc)
				break;
			vmem_mm_retire_pages(vm, mb + i, 1);
		}
		vmem_sbm_mark(&vm->sbm, mb + i, 1, false);
	}
	if (rc)
		vmem_bbm_untake(vm, mb, i);
	mutex_unlock(&vm->hp_lock);
	return rc;
}

/*
 * A failed UNPLUG of big block @bb, which Linux does not have: after ERROR
 * or a malformed answer, STATE tells what the device did. A big block the
 * device unplugged in part is unplugged in whole (it must never be added
 * as plugged), and one nobody knows about (no answer) counts as unplugged:
 * it is not in Linux, and the resync after the late answer sets it right.
 */
static void vmem_bbm_settle(struct vmem *vm, unsigned long bb, int rc)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);
	u64 addr = vmem_sb_addr(vm, mb);
	int state = VIRTIO_MEM_STATE_MIXED;

	if (rc != -EIO && rc != -ETIMEDOUT)
		return;
	if (rc == -EIO)
		state = vmem_req_state(vm, addr, vm->bb_size);
	if (state == VIRTIO_MEM_STATE_PLUGGED)
		return;
	if (state == VIRTIO_MEM_STATE_MIXED && rc == -EIO)
		vmem_make_range(vm, addr, vm->bb_size, state, false);
	vmem_sbm_mark(&vm->sbm, mb, vm->mbs_per_bb, false);
	vm->plugged -= vm->bb_size;
}

/*
 * Fast path for a big block in ZONE_MOVABLE (or offline) with few pages in
 * use, or elsewhere with none: offline and remove it without taking its
 * pages first
 * (vmem_mm_remove_direct()). Returns -EAGAIN when the big block does not
 * qualify or offlining failed: the caller then takes its pages first.
 */
static int vmem_bbm_remove_direct(struct vmem *vm, unsigned long bb)
{
	return vmem_mm_remove_direct(vm, vmem_bbm_first_mb(vm, bb),
				     vm->mbs_per_bb,
				     PHYS_PFN(vm->bb_size) /
				     VMEM_DIRECT_SHARE) ? -EAGAIN : 0;
}

/*
 * A big block in use has every page taken before it is offlined, even
 * those that looked free: offlining memory only seen to be free waits on
 * any page pinned meanwhile, with the hotplug locks held.
 */
static int vmem_bbm_unplug_bb(struct vmem *vm, unsigned long bb)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);
	int rc;

	if (vmem_bbm_state(vm, bb) != VMEM_MB_UNUSED &&
	    vmem_bbm_remove_direct(vm, bb)) {
		rc = vmem_bbm_take_bb(vm, bb);
		if (rc)
			return rc;
		rc = vmem_mm_remove(vm, mb, vm->mbs_per_bb);
		if (rc) {
			mutex_lock(&vm->hp_lock);
			vmem_bbm_untake(vm, mb, vm->mbs_per_bb);
			mutex_unlock(&vm->hp_lock);
			return -ENOMEM;
		}
		/* Whatever was in the way of offlining, things moved on. */
		vm->no_direct = false;
	}
	/* Removed, or never added: plugged on the device all the same. */
	vmem_sbm_mark(&vm->sbm, mb, vm->mbs_per_bb, true);
	rc = vmem_bbm_request(vm, bb, false);
	/* Not in Linux any more: what the device did decides. */
	if (rc)
		vmem_bbm_settle(vm, bb, rc);
	return rc;
}

/*
 * Unplug order: not in Linux, offline, movable, the rest; each in reverse
 * plug order (vmem_plug_order()): big block 1, then highest first.
 */
static int vmem_bbm_unplug_pass(struct vmem *vm, unsigned long bb)
{
	unsigned long mb = vmem_bbm_first_mb(vm, bb);

	if (!vmem_bbm_plugged(vm, bb))
		return -1;
	switch (vmem_bbm_state(vm, bb)) {
	case VMEM_MB_UNUSED:
		return 0;
	case VMEM_MB_OFFLINE:
		return 1;
	case VMEM_MB_ONLINE:
		if (!READ_ONCE(vmem_unplug_online))
			return -1;
		return vmem_mm_mb_movable(vm, mb) ? 2 : 3;
	default:
		return -1;
	}
}

static int vmem_bbm_unplug(struct vmem *vm, u64 size)
{
	unsigned long todo = div64_u64(size, vm->bb_size);
	unsigned long i, bb, nr = vmem_bbm_count(vm, vm->sbm.nr_mbs);
	bool busy = false;
	int pass, rc;

	for (pass = 0; pass <= 3 && todo; pass++) {
		for (i = nr; todo && i-- > 0;) {
			bb = vmem_plug_order(i, nr);
			if (vmem_bbm_unplug_pass(vm, bb) != pass)
				continue;
			if (vmem_restart_pending(vm))
				return -EINTR;
			rc = vmem_bbm_unplug_bb(vm, bb);
			if (rc == -ENOMEM) {
				busy = true;
				continue;
			}
			if (rc)
				return rc;
			todo--;
		}
	}
	if (!todo)
		return 0;
	return busy ? -ENOMEM : -ENOSPC;
}

/*
 * Take over big blocks a previous driver instance left added, their
 * memory blocks' states taken from mm already. Added memory is plugged
 * whole in this mode, online or not (vmem_adopt_decide() as for online
 * memory); memory not added is unplugged. Called with hp_lock held while
 * the notifier refuses every transition. Any failure fails it all: the
 * caller then lets go as at removal.
 */
static int vmem_bbm_adopt(struct vmem *vm)
{
	unsigned long bb, mb, nr = vmem_bbm_count(vm, vm->usable_mbs);
	enum vmem_adopt_action action;
	bool present;
	int state, rc;

	for (bb = 0; bb < nr; bb++) {
		mb = vmem_bbm_first_mb(vm, bb);
		present = vmem_bbm_state(vm, bb) != VMEM_MB_UNUSED;
		state = vmem_req_state(vm, vmem_sb_addr(vm, mb), vm->bb_size);
		if (state < 0)
			return state;
		action = vmem_adopt_decide(present, present, state, false);
		if (action == VMEM_ADOPT_NOTHING)
			continue;
		rc = vmem_make_range(vm, vmem_sb_addr(vm, mb), vm->bb_size,
				     state, action != VMEM_ADOPT_UNPLUG);
		if (action == VMEM_ADOPT_UNPLUG) {
			if (rc)
				return rc;
			continue;
		}
		if (action == VMEM_ADOPT_PLUG) {
			dev_warn(&vm->vdev->dev,
				 "big block at 0x%llx is added but the device lost it: %s (%d)\n",
				 vmem_sb_addr(vm, mb),
				 rc ? "plugging it again failed" :
				      "plugged it again", rc);
			if (rc == -EAGAIN)
				rc = 0;
		}
		vm->plugged += vm->bb_size;
		vmem_sbm_mark(&vm->sbm, mb, vm->mbs_per_bb, true);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * On removal: offline big blocks are removed (even from a broken device:
 * that needs no request) and unplugged, as is plugged memory Linux does not
 * have. Online memory stays: it is in use.
 */
static void vmem_bbm_teardown(struct vmem *vm)
{
	unsigned long bb, nr = vmem_bbm_count(vm, vm->sbm.nr_mbs);

	for (bb = 0; bb < nr; bb++) {
		int pass = vmem_bbm_unplug_pass(vm, bb);

		if (pass != 0 && pass != 1)
			continue;
		if (!READ_ONCE(vm->broken))
			vmem_bbm_unplug_bb(vm, bb);
		else if (pass == 1)
			vmem_mm_remove(vm, vmem_bbm_first_mb(vm, bb),
				       vm->mbs_per_bb);
		if (vmem_bbm_state(vm, bb) == VMEM_MB_OFFLINE)
			dev_err(&vm->vdev->dev,
				"big block at 0x%llx stays added and offline: do not online it\n",
				vmem_sb_addr(vm, vmem_bbm_first_mb(vm, bb)));
	}
}

const struct vmem_mode_ops vmem_bbm_ops = {
	.name = "big-block",
	.init = vmem_bbm_init,
	.adopt = vmem_bbm_adopt,
	.plug = vmem_bbm_plug,
	.unplug = vmem_bbm_unplug,
	.teardown = vmem_bbm_teardown,
};
