// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem sub-block mode: the device block is smaller than a Linux memory
 * block, so memory blocks get plugged a sub-block at a time.
 *
 * A sub-block is max(device block, pageblock): the page allocator cannot
 * isolate less than a pageblock. The bitmap mirrors the device: a bit is set
 * exactly when the device acknowledged plugging that sub-block.
 */
#include <linux/memory.h>
#include <linux/mm.h>
#include <linux/mmzone.h>

#include "virtio_mem_dev.h"

/**
 * vmem_sbm_init_dev() - set up sub-block geometry and bookkeeping
 * @vm: the device, configuration validated
 *
 * Return: 0, -EINVAL if the region holds no whole memory block, -ENOMEM.
 */
int vmem_sbm_init_dev(struct vmem *vm)
{
	u64 end = vm->cfg.addr + vm->cfg.region_size;
	unsigned long last_mb;

	vm->sb_size = max_t(u64, vm->cfg.block_size,
			    PFN_PHYS(pageblock_nr_pages));
	vm->first_mb = div64_u64(vm->cfg.addr + vm->mb_size - 1, vm->mb_size);
	last_mb = div64_u64(end, vm->mb_size);
	if (last_mb <= vm->first_mb) {
		dev_err(&vm->vdev->dev,
			"device region holds no whole memory block of %llu MiB\n",
			vm->mb_size >> 20);
		return -EINVAL;
	}
	return vmem_sbm_init(&vm->sbm, last_mb - vm->first_mb,
			     div64_u64(vm->mb_size, vm->sb_size));
}

static u64 vmem_sbm_addr(const struct vmem *vm, unsigned long sb)
{
	return vmem_mb_addr(vm, 0) + (u64)sb * vm->sb_size;
}

/*
 * Plug sub-blocks [first, first + nr) with as few requests as possible and
 * record what the device acknowledged. Returns how many got plugged in
 * @done; stops at the first failure.
 */
static int vmem_sbm_plug_run(struct vmem *vm, unsigned long first,
			     unsigned long nr, unsigned long *done)
{
	unsigned long max = vmem_max_units_per_req(vm->sb_size,
						   vm->cfg.block_size);
	int rc = 0;

	*done = 0;
	while (*done < nr) {
		unsigned long cnt = min(nr - *done, max);

		rc = vmem_req_plug(vm, vmem_sbm_addr(vm, first + *done),
				   cnt * vm->sb_size);
		if (rc)
			break;
		vmem_sbm_mark(&vm->sbm, first + *done, cnt, true);
		vm->plugged += cnt * vm->sb_size;
		*done += cnt;
	}
	return rc;
}

/* Same for unplugging; used to undo plugs whose memory cannot be added. */
static int vmem_sbm_unplug_run(struct vmem *vm, unsigned long first,
			       unsigned long nr)
{
	unsigned long max = vmem_max_units_per_req(vm->sb_size,
						   vm->cfg.block_size);
	unsigned long done = 0;
	int rc = 0;

	while (done < nr) {
		unsigned long cnt = min(nr - done, max);

		rc = vmem_req_unplug(vm, vmem_sbm_addr(vm, first + done),
				     cnt * vm->sb_size);
		if (rc)
			break;
		vmem_sbm_mark(&vm->sbm, first + done, cnt, false);
		vm->plugged -= cnt * vm->sb_size;
		done += cnt;
	}
	return rc;
}

/* Unplug every plugged sub-block of memory block @mb. */
static int vmem_sbm_unplug_mb(struct vmem *vm, unsigned long mb)
{
	unsigned long first = vmem_sbm_index(&vm->sbm, mb, 0);
	unsigned long end = first + vm->sbm.sbs_per_mb;
	unsigned long start, nr;
	int rc;

	while (vmem_sbm_find_run(&vm->sbm, first, end, true, &start, &nr)) {
		rc = vmem_sbm_unplug_run(vm, start, nr);
		if (rc)
			return rc;
		first = start + nr;
	}
	return 0;
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
		rc = vmem_sbm_plug_run(vm, start, nr, &done);
		/* Onlining core code skipped them: do its job now. */
		if (done && state == VMEM_MB_ONLINE)
			vmem_mm_online_pages(vm, mb, start - first, done);
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

/**
 * vmem_sbm_offline_bytes() - size of memory blocks added but not online
 * @vm: the device
 *
 * Return: the size in bytes.
 */
unsigned long vmem_sbm_offline_bytes(struct vmem *vm)
{
	return vm->sbm.count[VMEM_MB_OFFLINE] * vm->mb_size;
}

/*
 * How many more memory blocks may be added while nobody onlines them: each
 * costs memory for its memmap, and offline memory is of no use to anyone.
 */
static unsigned long vmem_sbm_offline_budget(struct vmem *vm)
{
	u64 limit = (u64)vmem_offline_limit_mb << 20;
	u64 offline = vmem_sbm_offline_bytes(vm);

	if (offline >= limit)
		return 0;
	return div64_u64(limit - offline, vm->mb_size);
}

/* Add the memory blocks of [mb, mb + nr) that have plugged sub-blocks. */
static int vmem_sbm_add_mbs(struct vmem *vm, unsigned long mb,
			    unsigned long nr)
{
	int rc = 0;

	for (; nr; mb++, nr--) {
		if (!vmem_sbm_plugged_in_mb(&vm->sbm, mb))
			continue;
		rc = vmem_mm_add(vm, mb);
		if (rc)
			break;
	}
	/* Give back what could not be added; keep the bits if that fails. */
	for (; nr; mb++, nr--)
		vmem_sbm_unplug_mb(vm, mb);
	return rc;
}

/* Plug into memory blocks not yet added, then add them. */
static int vmem_sbm_plug_new(struct vmem *vm, unsigned long *todo)
{
	unsigned long spm = vm->sbm.sbs_per_mb;
	unsigned long mb, nr_mbs, budget, first, end, start, nr, done;
	int rc, rc_add;

	while (*todo) {
		budget = vmem_sbm_offline_budget(vm);
		if (!budget) {
			WRITE_ONCE(vm->waiting_online, true);
			if (!vm->warned_offline)
				dev_info(&vm->vdev->dev,
					 "%lu MiB added but offline: waiting for it to be onlined (see auto_online_blocks)\n",
					 vmem_sbm_offline_bytes(vm) >> 20);
			vm->warned_offline = true;
			return -ENOSPC;
		}
		WRITE_ONCE(vm->waiting_online, false);
		vm->warned_offline = false;

		if (!vmem_sbm_find_state(&vm->sbm, 0, vm->usable_mbs,
					 VMEM_MB_UNUSED, &mb))
			return -ENOSPC;
		nr_mbs = vmem_sbm_count_unused(&vm->sbm, mb, vm->usable_mbs,
					       min(budget,
						   DIV_ROUND_UP(*todo, spm)));

		/* Mostly one run; bits left by a failed undo split it. */
		first = vmem_sbm_index(&vm->sbm, mb, 0);
		end = first + nr_mbs * spm;
		rc = 0;
		while (*todo && !rc &&
		       vmem_sbm_find_run(&vm->sbm, first, end, false, &start,
					 &nr)) {
			rc = vmem_sbm_plug_run(vm, start, min(nr, *todo), &done);
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
 * ones), then plugs and adds new memory blocks, lowest address first.
 *
 * Return: 0 when done; -ENOSPC when no more memory can be added now (offline
 * cap, no usable memory block left); else the request or add error.
 */
int vmem_sbm_plug(struct vmem *vm, u64 size)
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

/**
 * vmem_sbm_teardown() - give back what can be given back safely on removal
 * @vm: the device, its work stopped
 *
 * Offline memory blocks are removed and their sub-blocks unplugged. Online
 * memory stays: it is in use, and unplugging it would lose data.
 */
void vmem_sbm_teardown(struct vmem *vm)
{
	unsigned long mb;

	for (mb = 0; mb < vm->sbm.nr_mbs; mb++) {
		if (vmem_sbm_state(&vm->sbm, mb) != VMEM_MB_OFFLINE)
			continue;
		if (!vmem_mm_remove_offline(vm, mb))
			vmem_sbm_unplug_mb(vm, mb);
	}
}
