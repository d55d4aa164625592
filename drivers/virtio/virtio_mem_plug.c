// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem: what both block modes share. The geometry of the region in
 * memory blocks, plugging and unplugging runs of units with as few
 * requests as possible, bringing a range to one state whatever the device
 * says of it, what Linux has of the region, and the cap on memory added
 * but left offline.
 *
 * A "unit" is what the bookkeeping tracks per bit: a sub-block in
 * sub-block mode, a memory block in big-block mode.
 */
#include <linux/bitmap.h>
#include <linux/memory.h>
#include <linux/mm.h>

#include "virtio_mem_dev.h"

/*
 * Which memory blocks hold their own memmap: what a previous driver
 * instance recorded, if it left memory added in the same geometry, else
 * nothing yet.
 */
static int vmem_self_hosted_init(struct vmem *vm)
{
	struct vmem_region *region = vm->region;

	if (region && region->self_hosted &&
	    region->nr_mbs == vm->sbm.nr_mbs) {
		vm->self_hosted = region->self_hosted;
		region->self_hosted = NULL;
		return 0;
	}
	vm->self_hosted = bitmap_zalloc(vm->sbm.nr_mbs, GFP_KERNEL);
	return vm->self_hosted ? 0 : -ENOMEM;
}

/**
 * vmem_geometry_init() - find the memory blocks inside the device region
 * @vm: the device, configuration validated, @sb_size set
 *
 * Return: 0, -EINVAL if the region holds no whole memory block, -ENOMEM.
 */
int vmem_geometry_init(struct vmem *vm)
{
	u64 end = vm->cfg.addr + vm->cfg.region_size;
	unsigned long last_mb;
	int rc;

	vm->first_mb = div64_u64(vm->cfg.addr + vm->mb_size - 1, vm->mb_size);
	last_mb = div64_u64(end, vm->mb_size);
	if (last_mb <= vm->first_mb) {
		dev_err(&vm->vdev->dev,
			"device region holds no whole memory block of %llu MiB\n",
			vm->mb_size >> 20);
		return -EINVAL;
	}
	rc = vmem_sbm_init(&vm->sbm, last_mb - vm->first_mb,
			   div64_u64(vm->mb_size, vm->sb_size));
	if (rc)
		return rc;
	rc = vmem_self_hosted_init(vm);
	if (rc)
		vmem_sbm_destroy(&vm->sbm);
	return rc;
}

/**
 * vmem_memory_added() - whether Linux has memory of the device added
 * @vm: the device
 *
 * From the driver's own record: it adds and removes all of it, and the
 * memory notifier tells it of every onlining and offlining.
 *
 * Return: true if any memory block of the region is added.
 */
bool vmem_memory_added(struct vmem *vm)
{
	return READ_ONCE(vm->sbm.count[VMEM_MB_UNUSED]) != vm->sbm.nr_mbs;
}

/**
 * vmem_plug_run() - plug sub-blocks with as few requests as possible
 * @vm: the device
 * @first: first sub-block
 * @nr: number of sub-blocks, all unplugged
 * @done: set to how many got plugged and marked so
 *
 * Return: 0, or the error of the first request that failed.
 */
int vmem_plug_run(struct vmem *vm, unsigned long first, unsigned long nr,
		  unsigned long *done)
{
	unsigned long max = vmem_units_per_req(vm);
	int rc = 0;

	*done = 0;
	while (*done < nr) {
		unsigned long cnt = min(nr - *done, max);

		rc = vmem_req_plug(vm, vmem_sb_addr(vm, first + *done),
				   cnt * vm->sb_size);
		if (rc)
			break;
		vmem_sbm_mark(&vm->sbm, first + *done, cnt, true);
		vm->plugged += cnt * vm->sb_size;
		*done += cnt;
	}
	return rc;
}

/**
 * vmem_unplug_run() - unplug sub-blocks with as few requests as possible
 * @vm: the device
 * @first: first sub-block
 * @nr: number of sub-blocks, all plugged and none of them in use
 * @done: set to how many got unplugged and marked so
 *
 * On failure, the request that failed covered the next
 * min(@nr - *@done, vmem_units_per_req()) sub-blocks; the ones after
 * it were not asked for.
 *
 * Return: 0, or the error of the first request that failed.
 */
int vmem_unplug_run(struct vmem *vm, unsigned long first, unsigned long nr,
		    unsigned long *done)
{
	unsigned long max = vmem_units_per_req(vm);
	int rc = 0;

	*done = 0;
	while (*done < nr) {
		unsigned long cnt = min(nr - *done, max);

		rc = vmem_req_unplug(vm, vmem_sb_addr(vm, first + *done),
				     cnt * vm->sb_size);
		if (rc)
			break;
		vmem_sbm_mark(&vm->sbm, first + *done, cnt, false);
		vm->plugged -= cnt * vm->sb_size;
		*done += cnt;
	}
	return rc;
}

/**
 * vmem_unplug_settle() - find out what a failed UNPLUG request did
 * @vm: the device
 * @first: first unit the request covered
 * @nr: units it covered, all still marked plugged
 * @rc: its error, from vmem_unplug_run()
 *
 * BUSY, or a request that was never sent, leaves the units plugged. After
 * ERROR or a malformed answer, STATE requests tell, unit by unit. Without
 * an answer nobody can tell, and the device may discard the memory at any
 * time: such units count as unplugged and leaked, never to be used again.
 * Units that are, or may be, unplugged get their bits cleared.
 */
void vmem_unplug_settle(struct vmem *vm, unsigned long first, unsigned long nr,
			int rc)
{
	unsigned long sb, leaked = 0;
	int state;

	if (rc != -EIO && rc != -ETIMEDOUT)
		return;
	for (sb = first; sb < first + nr; sb++) {
		state = -ETIMEDOUT;
		if (rc == -EIO)
			state = vmem_req_state(vm, vmem_sb_addr(vm, sb),
					       vm->sb_size);
		if (state == VIRTIO_MEM_STATE_PLUGGED)
			continue;
		vmem_sbm_mark(&vm->sbm, sb, 1, false);
		vm->plugged -= vm->sb_size;
		if (state != VIRTIO_MEM_STATE_UNPLUGGED)
			leaked++;
	}
	if (!leaked)
		return;
	vm->stats.leaked += leaked * vm->sb_size;
	dev_err(&vm->vdev->dev,
		"the device may have unplugged %llu MiB at 0x%llx or not: kept offline for good (%llu MiB in all)\n",
		(leaked * vm->sb_size) >> 20, vmem_sb_addr(vm, first),
		vm->stats.leaked >> 20);
}

/**
 * vmem_make_range() - bring device blocks to one state
 * @vm: the device
 * @addr: start, aligned to the device block
 * @size: length, a multiple of the device block, at most
 *	VIRTIO_MEM_REQ_MAX_BLOCKS blocks
 * @state: what the device last said of the range (VIRTIO_MEM_STATE_*)
 * @plugged: the state the range must be in
 *
 * One request for the whole range, or for a MIXED one, a STATE request and
 * maybe a request per device block.
 *
 * Return: 0, or the error of the first request that failed.
 */
int vmem_make_range(struct vmem *vm, u64 addr, u64 size, int state,
		    bool plugged)
{
	int want = plugged ? VIRTIO_MEM_STATE_PLUGGED :
			     VIRTIO_MEM_STATE_UNPLUGGED;
	u64 bs = vm->cfg.block_size;
	u64 end = addr + size;
	int rc;

	if (state == want)
		return 0;
	if (state != VIRTIO_MEM_STATE_MIXED)
		return plugged ? vmem_req_plug(vm, addr, size) :
				 vmem_req_unplug(vm, addr, size);
	for (; addr < end; addr += bs) {
		state = vmem_req_state(vm, addr, bs);
		if (state < 0)
			return state;
		if (state == want)
			continue;
		rc = plugged ? vmem_req_plug(vm, addr, bs) :
			       vmem_req_unplug(vm, addr, bs);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * Record why plugging waits, for sysfs; log it once per wait, and count
 * the waits for memory.
 */
static void vmem_note_plug_wait(struct vmem *vm, enum vmem_plug_wait wait,
				unsigned long free)
{
	enum vmem_plug_wait was = vm->plug_wait;

	WRITE_ONCE(vm->plug_wait, wait);
	if (wait == was)
		return;
	if (wait == VMEM_WAIT_ONLINE)
		dev_info(&vm->vdev->dev,
			 "%llu MiB added but offline: waiting for it to be onlined (see auto_online_blocks)\n",
			 (vm->sbm.count[VMEM_MB_OFFLINE] * vm->mb_size) >> 20);
	if (wait != VMEM_WAIT_MEMMAP)
		return;
	vm->stats.memmap_stops++;
	dev_info(&vm->vdev->dev,
		 "plugging paused: the memmap of %llu MiB more would leave less than %u MiB free outside ZONE_MOVABLE (%lu MiB free); resuming once memory frees up\n",
		 (vm->mbs_per_bb * vm->mb_size) >> 20,
		 READ_ONCE(vmem_kernel_reserve_mb), free >> (20 - PAGE_SHIFT));
}

/**
 * vmem_add_budget() - how many more memory blocks may be added now
 * @vm: the device
 * @rc: set to 0, or, when not even one device block may be added, to
 *	-ENOSPC (wait for onlining) or -ENOBUFS (wait for free memory)
 *
 * Two caps: memory added but left offline is of no use (offline_limit_mb,
 * never less than one device block), and the memmap of added memory must
 * leave kernel_reserve_mb free outside ZONE_MOVABLE.
 *
 * Return: the number of memory blocks.
 */
unsigned long vmem_add_budget(struct vmem *vm, int *rc)
{
	u64 limit = (u64)READ_ONCE(vmem_offline_limit_mb) << 20;
	unsigned long free = vmem_mm_free_kernel_pages();
	unsigned long offline, memmap;
	enum vmem_plug_wait wait = VMEM_WAIT_NONE;

	offline = vmem_offline_cap(limit, vm->sbm.count[VMEM_MB_OFFLINE],
				   vm->mb_size, vm->mbs_per_bb);
	memmap = vmem_memmap_cap(free, vmem_mm_kernel_reserve_pages(),
				 vmem_mm_memmap_cost(vm));
	/*
	 * Until memmap_on_memory worked once, the memmap counts; but one
	 * block may always find out: it costs nothing if the kernel places
	 * its memmap inside. If not, that one block's memmap is the price,
	 * once: self-hosting is off from then on.
	 */
	if (!memmap && vm->self_host && !READ_ONCE(vm->self_host_ok) &&
	    !READ_ONCE(vm->self_host_off))
		memmap = 1;
	if (offline < vm->mbs_per_bb)
		wait = VMEM_WAIT_ONLINE;
	else if (memmap < vm->mbs_per_bb)
		wait = VMEM_WAIT_MEMMAP;
	vmem_note_plug_wait(vm, wait, free);
	*rc = wait == VMEM_WAIT_ONLINE ? -ENOSPC :
	      wait == VMEM_WAIT_MEMMAP ? -ENOBUFS : 0;
	return min(offline, memmap);
}
