// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem sub-block mode: the device block is smaller than a Linux memory
 * block, so memory blocks get plugged and unplugged a sub-block at a time.
 *
 * A sub-block is max(device block, pageblock): the page allocator cannot
 * isolate less than a pageblock. The bitmap mirrors the device: a bit is set
 * exactly when the device acknowledged plugging that sub-block.
 *
 * Unplug order: offline memory first (nobody uses it), then online memory,
 * partially plugged blocks before full ones, ZONE_MOVABLE before other
 * zones, highest addresses first (but the region's second memory block
 * before all: vmem_plug_order()). Memory in use is never unplugged: online
 * sub-blocks are freed by isolating and migrating their pages first.
 */
#include <linux/memory.h>
#include <linux/mm.h>
#include <linux/mmzone.h>

#include "virtio_mem_dev.h"

static int vmem_sbm_init_dev(struct vmem *vm)
{
	vm->sb_size = max_t(u64, vm->cfg.block_size,
			    PFN_PHYS(pageblock_nr_pages));
	vm->mbs_per_bb = 1;
	vm->bb_size = vm->sb_size;
	vm->self_host = READ_ONCE(vmem_memmap_on_memory);
	vm->memmap_units = DIV_ROUND_UP(vmem_mm_memmap_pages(vm),
					vmem_sb_pages(vm));
	return vmem_geometry_init(vm);
}

/*
 * Sub-blocks at the start of memory block @mb that hold its memmap (it was
 * added with memmap_on_memory): they stay plugged until it is removed.
 */
static unsigned long vmem_sbm_memmap_units(struct vmem *vm, unsigned long mb)
{
	enum vmem_mb_state state = vmem_sbm_state(&vm->sbm, mb);

	if (state == VMEM_MB_UNUSED || state == VMEM_MB_REMOVING)
		return 0;
	return vmem_mm_mb_self_hosted(vm, mb) ? vm->memmap_units : 0;
}

/*
 * Unplug up to *todo plugged sub-blocks of a memory block that Linux does
 * not use (offline, or not added), highest first, never its memmap.
 */
static int vmem_sbm_unplug_unused_mb(struct vmem *vm, unsigned long mb,
				     unsigned long *todo)
{
	unsigned long first = vmem_sbm_index(&vm->sbm, mb, 0);
	unsigned long sb = first + vm->sbm.sbs_per_mb;
	unsigned long start, nr, done;
	int rc = 0;

	first += vmem_sbm_memmap_units(vm, mb);
	while (*todo && sb > first) {
		/* Find the last plugged run below sb. */
		if (!vmem_sbm_find_run(&vm->sbm, first, sb, true, &start, &nr))
			break;
		while (vmem_sbm_find_run(&vm->sbm, start + nr, sb, true,
					 &start, &nr))
			;
		if (nr > *todo) {
			start += nr - *todo;
			nr = *todo;
		}
		rc = vmem_unplug_run(vm, start, nr, &done);
		*todo -= done;
		if (rc) {
			vmem_unplug_settle(vm, start + done,
					   min(nr - done, vmem_units_per_req(vm)),
					   rc);
			break;
		}
		sb = start;
	}
	return rc;
}

/*
 * Give the pages of sub-blocks [sb, sb + nr) of an online block back.
 * Pages go back to Linux only where the device still has them plugged.
 */
static int vmem_sbm_unplug_online_run(struct vmem *vm, unsigned long sb,
				      unsigned long nr, unsigned long *done)
{
	unsigned long i;
	int rc;

	*done = 0;
	if (!vmem_mm_headroom_ok(vm, nr * vmem_sb_pages(vm)))
		return -ENOBUFS;
	rc = vmem_mm_take_pages(vm, sb, nr);
	if (rc)
		return rc;
	rc = vmem_unplug_run(vm, sb, nr, done);
	if (*done)
		vmem_mm_retire_pages(vm, sb, *done);
	if (!rc)
		return 0;

	vmem_unplug_settle(vm, sb + *done,
			   min(nr - *done, vmem_units_per_req(vm)), rc);
	for (i = sb + *done; i < sb + nr; i++) {
		if (test_bit(i, vm->sbm.plugged))
			vmem_mm_return_pages(vm, i, 1);
		else
			vmem_mm_retire_pages(vm, i, 1);
	}
	return rc;
}

/*
 * Unplug up to *todo sub-blocks of online memory block @mb, never its
 * memmap. Sub-blocks whose memory cannot be freed are skipped; returns
 * -ENOMEM if any was.
 */
static int vmem_sbm_unplug_online_mb(struct vmem *vm, unsigned long mb,
				     unsigned long *todo)
{
	unsigned long memmap = vmem_sbm_memmap_units(vm, mb);
	unsigned long nr = vm->sbm.sbs_per_mb - memmap;
	unsigned long first = vmem_sbm_index(&vm->sbm, mb, memmap);
	unsigned long sb, done;
	bool skipped = false;
	int rc;

	/* A whole block in one go is the fast path when it is idle. */
	if (*todo >= nr &&
	    vmem_sbm_plugged_in_mb(&vm->sbm, mb) == vm->sbm.sbs_per_mb) {
		rc = vmem_sbm_unplug_online_run(vm, first, nr, &done);
		*todo -= done;
		if (!rc) {
			/* Whatever was in the way of offlining moved on. */
			vm->no_direct = false;
			return 0;
		}
		/* Busy or short of memory as a whole: maybe in parts. */
		if (rc != -ENOMEM && rc != -ENOBUFS)
			return rc;
	}

	for (sb = first + nr; *todo && sb-- > first;) {
		if (!test_bit(sb, vm->sbm.plugged))
			continue;
		if (vmem_restart_pending(vm))
			return -EINTR;
		rc = vmem_sbm_unplug_online_run(vm, sb, 1, &done);
		if (rc == -ENOMEM) {
			skipped = true;
			continue;
		}
		if (rc)
			return rc;
		(*todo)--;
	}
	return skipped ? -ENOMEM : 0;
}

/*
 * Remove memory block @mb once nothing of it is plugged but its memmap,
 * then unplug that, if *todo asks for that much.
 */
static int vmem_sbm_remove_if_empty(struct vmem *vm, unsigned long mb,
				    unsigned long *todo)
{
	unsigned long memmap = vmem_sbm_memmap_units(vm, mb);
	int rc;

	if (vmem_sbm_plugged_in_mb(&vm->sbm, mb) > memmap || *todo < memmap)
		return 0;
	rc = vmem_mm_remove(vm, mb, 1);
	if (rc || !memmap)
		return rc;
	return vmem_sbm_unplug_unused_mb(vm, mb, todo);
}

/* An online block with nothing plugged, not even a memmap of its own. */
static bool vmem_sbm_emptied(struct vmem *vm, unsigned long mb)
{
	return vmem_sbm_state(&vm->sbm, mb) == VMEM_MB_ONLINE &&
	       !vmem_sbm_plugged_in_mb(&vm->sbm, mb) &&
	       !vmem_sbm_memmap_units(vm, mb);
}

/*
 * Remove the online blocks that taking their pages emptied, once the
 * unplug is over: the device has its memory back sooner, and the guest's
 * MemTotal dropped when the pages were taken. A block that cannot go now
 * (being onlined, a notifier refusing) stays added, empty, for the next
 * unplug to remove or the next plug to fill; the failure is logged.
 *
 * Return: how many were removed (their memmaps went back to the guest).
 */
static unsigned long vmem_sbm_remove_emptied(struct vmem *vm)
{
	unsigned long mb, removed = 0;

	for (mb = 0; mb < vm->sbm.nr_mbs; mb++)
		if (vmem_sbm_emptied(vm, mb) && !vmem_mm_remove(vm, mb, 1))
			removed++;
	return removed;
}

/*
 * Which unplug pass a memory block belongs to, lower first; -1: none.
 * Pass 0: not used by Linux (offline, or plugged but not added).
 * Pass 1..3: online; partially plugged, then movable, then the rest.
 */
static int vmem_sbm_unplug_pass(struct vmem *vm, unsigned long mb)
{
	unsigned int plugged = vmem_sbm_plugged_in_mb(&vm->sbm, mb);

	if (!plugged)
		return -1;
	switch (vmem_sbm_state(&vm->sbm, mb)) {
	case VMEM_MB_UNUSED:
	case VMEM_MB_OFFLINE:
		return 0;
	case VMEM_MB_ONLINE:
		if (!READ_ONCE(vmem_unplug_online))
			return -1;
		if (plugged < vm->sbm.sbs_per_mb)
			return 1;
		return vmem_mm_mb_movable(vm, mb) ? 2 : 3;
	default:
		return -1;
	}
}

/*
 * Fast path for online, fully plugged blocks [mb, mb + nr) with at most
 * @max_used pages in use: offline and remove them, then unplug them.
 * Offlining ZONE_MOVABLE memory migrates what is in use and, unlike
 * taking the pages, does not zero the free ones (the kernel zeroes on
 * allocation), which saves touching memory about to be discarded.
 * Returns -EAGAIN when the blocks do not qualify or offlining failed.
 */
static int vmem_sbm_unplug_direct(struct vmem *vm, unsigned long mb,
				  unsigned long nr, unsigned long *todo,
				  unsigned long max_used)
{
	unsigned long spm = vm->sbm.sbs_per_mb;
	unsigned long i, first, done;
	int rc;

	if (*todo < nr * spm)
		return -EAGAIN;
	for (i = mb; i < mb + nr; i++)
		if (vmem_sbm_state(&vm->sbm, i) != VMEM_MB_ONLINE ||
		    vmem_sbm_plugged_in_mb(&vm->sbm, i) != spm)
			return -EAGAIN;
	if (vmem_mm_remove_direct(vm, mb, nr, max_used))
		return -EAGAIN;
	/* Removed but still plugged if this fails: pass 0 retries it. */
	first = vmem_sbm_index(&vm->sbm, mb, 0);
	rc = vmem_unplug_run(vm, first, nr * spm, &done);
	*todo -= done;
	if (rc)
		vmem_unplug_settle(vm, first + done,
				   min(nr * spm - done, vmem_units_per_req(vm)),
				   rc);
	return rc;
}

/*
 * Unplug what the block holds; with @direct_only, only by the fast path
 * (-EAGAIN if it does not qualify).
 */
static int vmem_sbm_unplug_mb(struct vmem *vm, unsigned long mb,
			      unsigned long *todo, unsigned long max_used,
			      bool direct_only)
{
	int rc;

	rc = vmem_sbm_unplug_direct(vm, mb, 1, todo, max_used);
	if (rc != -EAGAIN || direct_only)
		return rc;

	mutex_lock(&vm->hp_lock);
	switch (vmem_sbm_state(&vm->sbm, mb)) {
	case VMEM_MB_UNUSED:
	case VMEM_MB_OFFLINE:
		rc = vmem_sbm_unplug_unused_mb(vm, mb, todo);
		break;
	case VMEM_MB_ONLINE:
		rc = vmem_sbm_unplug_online_mb(vm, mb, todo);
		break;
	default:
		rc = 0;
		break;
	}
	mutex_unlock(&vm->hp_lock);

	/* An emptied online block goes later: vmem_sbm_remove_emptied(). */
	if (vmem_sbm_state(&vm->sbm, mb) != VMEM_MB_UNUSED &&
	    !vmem_sbm_emptied(vm, mb)) {
		int rc_rm = vmem_sbm_remove_if_empty(vm, mb, todo);

		if (!rc)
			rc = rc_rm;
	}
	return rc;
}

/*
 * Pass 2 (fully plugged ZONE_MOVABLE blocks) goes in rounds, emptiest
 * first: blocks with nothing in use, then with at most one
 * VMEM_DIRECT_SHARE in use, are offlined directly (offlining migrates what
 * is in use); a last round takes the pages of the others. Where free
 * blocks suffice, nothing moves.
 */
static const unsigned int vmem_sbm_direct_shares[] = { 0, 1 };

/*
 * How many free blocks of @pass end at position @i of the plug order and
 * are next to each other in both plug order and address, at most @max:
 * they go in one offline and one request. A busy block ends the run, so
 * that the blocks above it are not tried one by one.
 */
static unsigned long vmem_sbm_pass_run(struct vmem *vm, int pass,
				       unsigned long i, unsigned long max)
{
	unsigned long n = 1, nr = vm->sbm.nr_mbs;
	unsigned long mb = vmem_plug_order(i, nr);

	if (!vmem_mm_mb_idle(vm, mb))
		return 1;
	while (n < max && n <= i && vmem_plug_order(i - n, nr) == mb - n &&
	       vmem_sbm_unplug_pass(vm, mb - n) == pass &&
	       vmem_mm_mb_idle(vm, mb - n))
		n++;
	return n;
}

/* One round over the blocks of @pass, in reverse plug order. */
static int vmem_sbm_unplug_round(struct vmem *vm, int pass,
				 unsigned long max_used, bool direct_only,
				 unsigned long *todo, bool *busy)
{
	unsigned long i, mb, n, nr = vm->sbm.nr_mbs;
	int rc;

	for (i = nr; *todo && i-- > 0;) {
		mb = vmem_plug_order(i, nr);
		if (vmem_sbm_unplug_pass(vm, mb) != pass)
			continue;
		if (vmem_restart_pending(vm))
			return -EINTR;
		/*
		 * Free neighbours go in one offline and one request; if one
		 * of them is not free after all, one by one.
		 */
		rc = -EAGAIN;
		n = 1;
		if (direct_only && !max_used)
			n = vmem_sbm_pass_run(vm, pass, i,
					      min(VMEM_DIRECT_BATCH,
						  *todo / vm->sbm.sbs_per_mb));
		if (n > 1)
			rc = vmem_sbm_unplug_direct(vm, mb + 1 - n, n, todo, 0);
		if (!rc) {
			i -= n - 1;
			continue;
		}
		if (rc == -EAGAIN)
			rc = vmem_sbm_unplug_mb(vm, mb, todo, max_used,
						direct_only);
		if (rc == -ENOMEM)
			*busy = true;
		else if (rc && !(rc == -EAGAIN && direct_only))
			return rc;
	}
	return 0;
}

/* Every pass, and every round of pass 2, once; stops at an error. */
static int vmem_sbm_unplug_passes(struct vmem *vm, unsigned long *todo,
				  bool *busy)
{
	unsigned long mb_pages = PHYS_PFN(vm->mb_size);
	unsigned int round, rounds;
	int pass, rc = 0;

	for (pass = 0; pass <= 3 && *todo && !rc; pass++) {
		rounds = pass == 2 ? ARRAY_SIZE(vmem_sbm_direct_shares) : 0;
		for (round = 0; round <= rounds && *todo && !rc; round++)
			rc = vmem_sbm_unplug_round(vm, pass, round == rounds ? 0 :
				mb_pages / VMEM_DIRECT_SHARE *
				vmem_sbm_direct_shares[round],
				round < rounds, todo, busy);
	}
	return rc;
}

/**
 * vmem_sbm_unplug() - unplug up to @size bytes
 * @vm: the device
 * @size: bytes to unplug; rounded down to whole sub-blocks
 *
 * Return: 0 when done; -ENOSPC when only online memory is left and
 * unplug_online is off; -ENOBUFS when the guest cannot spare more; -ENOMEM
 * when some memory could not be freed now; -EINTR on a configuration
 * change; else a request error.
 */
static int vmem_sbm_unplug(struct vmem *vm, u64 size)
{
	unsigned long todo = div64_u64(size, vm->sb_size);
	bool busy = false;
	int rc;

	do {
		rc = vmem_sbm_unplug_passes(vm, &todo, &busy);
		/* Short of headroom: the emptied blocks' memmaps may give it. */
	} while (vmem_sbm_remove_emptied(vm) && rc == -ENOBUFS && todo);
	if (rc)
		return rc;
	if (!todo)
		return 0;
	if (busy)
		return -ENOMEM;
	return -ENOSPC;
}

/* Plug unplugged sub-blocks of an added memory block. */
static int vmem_sbm_fill_mb(struct vmem *vm, unsigned long mb,
			    unsigned long *todo)
{
	unsigned long first = vmem_sbm_index(&vm->sbm, mb, 0);
	unsigned long end = first + vm->sbm.sbs_per_mb;
	unsigned long start, nr, done;
	enum vmem_mb_state state;
	int rc = 0;

	mutex_lock(&vm->hp_lock);
	state = vmem_sbm_state(&vm->sbm, mb);
	while (*todo && (state == VMEM_MB_ONLINE || state == VMEM_MB_OFFLINE) &&
	       vmem_sbm_find_run(&vm->sbm, first, end, false, &start, &nr)) {
		nr = min(nr, *todo);
		rc = vmem_plug_run(vm, start, nr, &done);
		/* Onlining skipped them: hand them to the buddy now. */
		if (done && state == VMEM_MB_ONLINE)
			vmem_mm_online_pages(vm, start, done);
		*todo -= done;
		if (rc)
			break;
		first = start + nr;
	}
	mutex_unlock(&vm->hp_lock);
	return rc;
}

/* Fill partially plugged memory blocks in @state, lowest first. */
static int vmem_sbm_fill(struct vmem *vm, enum vmem_mb_state state,
			 unsigned long *todo)
{
	unsigned long mb;
	int rc;

	for (mb = 0; *todo && mb < vm->usable_mbs; mb++) {
		if (vmem_sbm_state(&vm->sbm, mb) != state ||
		    vmem_sbm_plugged_in_mb(&vm->sbm, mb) == vm->sbm.sbs_per_mb)
			continue;
		rc = vmem_sbm_fill_mb(vm, mb, todo);
		if (rc)
			return rc;
	}
	return 0;
}

/* Add the memory blocks of [mb, mb + nr) that have plugged sub-blocks. */
static int vmem_sbm_add_mbs(struct vmem *vm, unsigned long mb,
			    unsigned long nr)
{
	unsigned long todo = ULONG_MAX;
	int rc = 0;

	for (; nr; mb++, nr--) {
		if (!vmem_sbm_plugged_in_mb(&vm->sbm, mb))
			continue;
		rc = -EOPNOTSUPP;
		if (vm->self_host &&
		    vmem_sbm_test(&vm->sbm, mb, 0, vm->memmap_units, true))
			rc = vmem_mm_add_self_hosted(vm, mb);
		if (rc == -EOPNOTSUPP)
			rc = vmem_mm_add(vm, mb, 1);
		if (rc)
			break;
	}
	/* Give back what could not be added; keep the bits if that fails. */
	for (; nr; mb++, nr--)
		vmem_sbm_unplug_unused_mb(vm, mb, &todo);
	return rc;
}

/* Plug into memory blocks not yet added, then add them. */
static int vmem_sbm_plug_new(struct vmem *vm, unsigned long *todo)
{
	unsigned long spm = vm->sbm.sbs_per_mb;
	unsigned long mb, nr_mbs, budget, first, end, start, nr, done;
	int rc, rc_add;

	while (*todo) {
		budget = vmem_add_budget(vm, &rc);
		if (rc)
			return rc;
		if (vmem_restart_pending(vm))
			return -EINTR;
		nr_mbs = vmem_sbm_next_new(&vm->sbm, vm->usable_mbs,
					   min(budget, DIV_ROUND_UP(*todo, spm)),
					   &mb);
		if (!nr_mbs)
			return -ENOSPC;

		/* Mostly one run; bits left by a failed undo split it. */
		first = vmem_sbm_index(&vm->sbm, mb, 0);
		end = first + nr_mbs * spm;
		rc = 0;
		while (*todo && !rc &&
		       vmem_sbm_find_run(&vm->sbm, first, end, false, &start,
					 &nr)) {
			rc = vmem_plug_run(vm, start, min(nr, *todo), &done);
			*todo -= done;
			first = start + done;
		}
		rc_add = vmem_sbm_add_mbs(vm, mb, nr_mbs);
		if (rc)
			return rc;
		if (rc_add)
			return rc_add;
	}
	return 0;
}

/**
 * vmem_sbm_plug() - plug up to @size more bytes
 * @vm: the device
 * @size: bytes to plug; rounded down to whole sub-blocks
 *
 * Fills partially plugged memory blocks first (online ones, then offline
 * ones), then plugs and adds new memory blocks, lowest address first but
 * the second memory block last (vmem_plug_order()).
 *
 * Return: 0 when done; -ENOSPC when no more memory can be added now (offline
 * cap, no usable memory block left); -ENOBUFS when the memmap of more would
 * not fit; -EINTR on a configuration change; else the request or add error.
 */
static int vmem_sbm_plug(struct vmem *vm, u64 size)
{
	unsigned long todo = div64_u64(size, vm->sb_size);
	int rc;

	rc = vmem_sbm_fill(vm, VMEM_MB_ONLINE, &todo);
	if (!rc)
		rc = vmem_sbm_fill(vm, VMEM_MB_OFFLINE, &todo);
	if (!rc)
		rc = vmem_sbm_plug_new(vm, &todo);
	return rc;
}

/*
 * Carry out what taking over decided for sub-block @sb, of which the
 * device said @state. Memory in use stays plugged and counted, even when
 * the device will not plug it again (NACK): it holds data.
 */
static int vmem_sbm_adopt_sb(struct vmem *vm, unsigned long sb, int state,
			     enum vmem_adopt_action action)
{
	u64 addr = vmem_sb_addr(vm, sb);
	int rc = 0;

	switch (action) {
	case VMEM_ADOPT_NOTHING:
		return 0;
	case VMEM_ADOPT_UNPLUG:
		return vmem_make_range(vm, addr, vm->sb_size, state, false);
	case VMEM_ADOPT_PLUG:
		rc = vmem_make_range(vm, addr, vm->sb_size, state, true);
		dev_warn(&vm->vdev->dev,
			 "sub-block at 0x%llx is in use but the device lost it: %s (%d)\n",
			 addr, rc ? "plugging it again failed" : "plugged it again",
			 rc);
		if (rc == -EAGAIN)
			rc = 0;
		break;
	case VMEM_ADOPT_KEEP:
		break;
	}
	vmem_sbm_mark(&vm->sbm, sb, 1, true);
	vm->plugged += vm->sb_size;
	return rc;
}

/*
 * Take over memory block @mb, whose state mm gave: ask the device which of
 * its sub-blocks are plugged (vmem_adopt_decide() says what follows).
 */
static int vmem_sbm_adopt_mb(struct vmem *vm, unsigned long mb)
{
	enum vmem_mb_state mb_state = vmem_sbm_state(&vm->sbm, mb);
	bool present = mb_state != VMEM_MB_UNUSED;
	bool online = mb_state == VMEM_MB_ONLINE;
	unsigned long first = vmem_sbm_index(&vm->sbm, mb, 0);
	unsigned long sb;
	int state, st, rc;

	state = vmem_req_state(vm, vmem_sb_addr(vm, first), vm->mb_size);
	if (state < 0 || (state == VIRTIO_MEM_STATE_UNPLUGGED && !present))
		return state < 0 ? state : 0;
	for (sb = first; sb < first + vm->sbm.sbs_per_mb; sb++) {
		st = state;
		if (st == VIRTIO_MEM_STATE_MIXED) {
			st = vmem_req_state(vm, vmem_sb_addr(vm, sb),
					    vm->sb_size);
			if (st < 0)
				return st;
		}
		rc = vmem_sbm_adopt_sb(vm, sb, st,
				       vmem_adopt_decide(present, online, st,
							 online &&
							 st == VIRTIO_MEM_STATE_UNPLUGGED &&
							 vmem_mm_sb_all_offline(vm, sb)));
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * Take over memory blocks a previous driver instance left added, their
 * states taken from mm already. Called with hp_lock held while the
 * notifier refuses every transition. Any failure fails it all: the caller
 * then lets go as at removal.
 */
static int vmem_sbm_adopt(struct vmem *vm)
{
	unsigned long mb;
	int rc;

	/* Nothing beyond the usable region can be plugged. */
	for (mb = 0; mb < vm->usable_mbs; mb++) {
		rc = vmem_sbm_adopt_mb(vm, mb);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * On removal: offline memory blocks are removed, even from a broken device
 * (that needs no request): once the driver is gone, onlining them would
 * hand unplugged sub-blocks to the page allocator. Plugged memory Linux
 * does not have is unplugged. Online memory stays: it is in use.
 */
static void vmem_sbm_teardown(struct vmem *vm)
{
	unsigned long todo = ULONG_MAX;
	unsigned long mb;

	for (mb = 0; mb < vm->sbm.nr_mbs; mb++) {
		if (vmem_sbm_state(&vm->sbm, mb) == VMEM_MB_OFFLINE &&
		    vmem_mm_remove(vm, mb, 1)) {
			dev_err(&vm->vdev->dev,
				"memory block at 0x%llx stays added and offline: do not online it\n",
				vmem_mb_addr(vm, mb));
			continue;
		}
		if (vmem_sbm_state(&vm->sbm, mb) == VMEM_MB_UNUSED &&
		    !READ_ONCE(vm->broken))
			vmem_sbm_unplug_unused_mb(vm, mb, &todo);
	}
}

const struct vmem_mode_ops vmem_sbm_ops = {
	.name = "sub-block",
	.init = vmem_sbm_init_dev,
	.adopt = vmem_sbm_adopt,
	.plug = vmem_sbm_plug,
	.unplug = vmem_sbm_unplug,
	.teardown = vmem_sbm_teardown,
};
