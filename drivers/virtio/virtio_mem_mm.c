// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem glue to the memory-hotplug core.
 *
 * Unplugged sub-blocks of an added memory block must never reach the page
 * allocator. The online-page callback hands only plugged sub-blocks to the
 * buddy and marks the rest PageOffline; the memory notifier lets such blocks
 * be offlined anyway (their pages are skipped), keeps the driver's view of
 * each block in step with sysfs, and refuses to online a block the driver is
 * removing.
 *
 * Lock order: mem_hotplug_lock (core) -> vm->hp_lock. The driver never calls
 * into the hotplug core with hp_lock held.
 */
#include <linux/gfp.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/page_ref.h>
#include <linux/rculist.h>

#include "virtio_mem_dev.h"

#define VMEM_RES_NAME "System RAM (virtio_mem)"

static LIST_HEAD(vmem_devices);
static DEFINE_MUTEX(vmem_devices_lock);

/* The device whose usable memory blocks contain @pfn; RCU held. */
static struct vmem *vmem_find(unsigned long pfn)
{
	u64 addr = PFN_PHYS(pfn);
	struct vmem *vm;

	list_for_each_entry_rcu(vm, &vmem_devices, list) {
		u64 start = vmem_mb_addr(vm, 0);

		if (addr >= start && addr - start < vm->sbm.nr_mbs * vm->mb_size)
			return vm;
	}
	return NULL;
}

/* Caller holds page_offline_begin(). */
static void vmem_pages_set_offline(unsigned long pfn, unsigned long nr)
{
	unsigned long i;

	for (i = 0; i < nr; i++) {
		struct page *page = pfn_to_page(pfn + i);

		/* Not reserved: offlining may skip it, see notifier. */
		__ClearPageReserved(page);
		__SetPageOffline(page);
	}
}

/* Pages of allocated sub-blocks enter or leave the PageOffline state. */
static void vmem_pages_mark_offline(unsigned long pfn, unsigned long nr,
				    bool offline)
{
	unsigned long i;

	page_offline_begin();
	for (i = 0; i < nr; i++) {
		if (offline)
			__SetPageOffline(pfn_to_page(pfn + i));
		else
			__ClearPageOffline(pfn_to_page(pfn + i));
	}
	page_offline_end();
}

/* Hand pfn-aligned, power-of-two sized chunks to the buddy. */
static void vmem_pages_to_buddy(unsigned long pfn, unsigned long nr)
{
	while (nr) {
		unsigned int order = min_t(unsigned int, MAX_ORDER - 1,
					   min(__ffs(pfn), __fls(nr)));

		generic_online_page(pfn_to_page(pfn), order);
		pfn += 1UL << order;
		nr -= 1UL << order;
	}
}

/*
 * Called by the core while onlining, between MEM_GOING_ONLINE and
 * MEM_ONLINE: the block is VMEM_MB_ONLINING, so the driver leaves its
 * bitmap alone meanwhile.
 */
static void vmem_online_page_cb(struct page *page, unsigned int order)
{
	unsigned long pfn = page_to_pfn(page);
	unsigned long end = pfn + (1UL << order);
	struct vmem *vm;

	/* It sleeps: take it before entering the RCU read side. */
	page_offline_begin();
	rcu_read_lock();
	vm = vmem_find(pfn);
	if (!vm) {
		rcu_read_unlock();
		page_offline_end();
		generic_online_page(page, order);
		return;
	}

	while (pfn < end) {
		unsigned long sb_pages = vmem_sb_pages(vm);
		unsigned long sb = (pfn - vmem_sb_pfn(vm, 0)) / sb_pages;
		unsigned long nr = min(end - pfn, sb_pages - (pfn & (sb_pages - 1)));

		if (test_bit(sb, vm->sbm.plugged))
			vmem_pages_to_buddy(pfn, nr);
		else
			vmem_pages_set_offline(pfn, nr);
		pfn += nr;
	}
	rcu_read_unlock();
	page_offline_end();
}

/**
 * vmem_mm_online_pages() - give sub-blocks of an online block to the buddy
 * @vm: the device
 * @first_sb: first sub-block, counted from the first memory block
 * @nr: number of sub-blocks
 *
 * For newly plugged sub-blocks, or ones taken back from an unplug that
 * failed. Caller holds hp_lock and has marked the sub-blocks plugged.
 */
void vmem_mm_online_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr)
{
	unsigned long pfn = vmem_sb_pfn(vm, first_sb);
	unsigned long nr_pages = nr * vmem_sb_pages(vm);

	vmem_pages_mark_offline(pfn, nr_pages, false);
	vmem_pages_to_buddy(pfn, nr_pages);
}

/**
 * vmem_mm_take_pages() - take sub-blocks of an online block from Linux
 * @vm: the device
 * @first_sb: first sub-block
 * @nr: number of sub-blocks
 *
 * Isolates the range and migrates what is in use elsewhere. Fails rather
 * than waits when some page cannot be moved. On success the caller owns
 * every page; it either unplugs them and calls vmem_mm_offline_pages(), or
 * gives them back with vmem_mm_return_pages().
 *
 * Return: 0; -ENOBUFS if taking the range would leave the guest short of
 * memory (see vmem_mm_headroom_ok()); -ENOMEM if the memory could not be
 * freed.
 */
int vmem_mm_take_pages(struct vmem *vm, unsigned long first_sb,
		       unsigned long nr)
{
	unsigned long pfn = vmem_sb_pfn(vm, first_sb);
	unsigned long nr_pages = nr * vmem_sb_pages(vm);

	if (!vmem_mm_headroom_ok(vm, nr_pages))
		return -ENOBUFS;
	if (alloc_contig_range(pfn, pfn + nr_pages, MIGRATE_MOVABLE,
			       GFP_KERNEL | __GFP_NOWARN)) {
		vm->stats.isolation_failures++;
		return -ENOMEM;
	}
	return 0;
}

/**
 * vmem_mm_headroom_ok() - whether the guest can spare @nr_pages more
 * @vm: the device
 * @nr_pages: pages about to be unplugged
 *
 * Unplugging online memory shrinks what the guest has; past a point that
 * means reclaim storms and the OOM killer. Memory available to the guest
 * (free memory above the zone watermarks, plus what reclaim can free) must
 * stay above the operator's reserve after the unplug.
 *
 * Return: true if the unplug keeps the reserve.
 */
bool vmem_mm_headroom_ok(struct vmem *vm, unsigned long nr_pages)
{
	return si_mem_available() - (long)nr_pages >= vmem_mm_reserve_pages();
}

/**
 * vmem_mm_reserve_pages() - the unplug reserve, in pages
 *
 * Return: unplug_reserve_mb in pages.
 */
long vmem_mm_reserve_pages(void)
{
	return (long)READ_ONCE(vmem_unplug_reserve_mb) << (20 - PAGE_SHIFT);
}

/**
 * vmem_mm_return_pages() - undo vmem_mm_take_pages()
 * @vm: the device
 * @first_sb: first sub-block
 * @nr: number of sub-blocks
 */
void vmem_mm_return_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr)
{
	free_contig_range(vmem_sb_pfn(vm, first_sb), nr * vmem_sb_pages(vm));
}

/**
 * vmem_mm_offline_pages() - retire taken pages of unplugged sub-blocks
 * @vm: the device
 * @first_sb: first sub-block
 * @nr: number of sub-blocks
 *
 * The pages stay allocated to us, marked PageOffline so that nobody reads
 * them (kdump, /proc/kcore) and so that offlining can skip them, and no
 * longer count as managed memory.
 */
void vmem_mm_offline_pages(struct vmem *vm, unsigned long first_sb,
			   unsigned long nr)
{
	unsigned long pfn = vmem_sb_pfn(vm, first_sb);
	unsigned long nr_pages = nr * vmem_sb_pages(vm);

	vmem_pages_mark_offline(pfn, nr_pages, true);
	adjust_managed_page_count(pfn_to_page(pfn), -nr_pages);
}

/**
 * vmem_mm_mb_movable() - whether an online memory block is in ZONE_MOVABLE
 * @vm: the device
 * @mb: memory block index, online
 *
 * Return: true if it is.
 */
bool vmem_mm_mb_movable(struct vmem *vm, unsigned long mb)
{
	struct page *page = pfn_to_online_page(PHYS_PFN(vmem_mb_addr(vm, mb)));

	return page && page_zonenum(page) == ZONE_MOVABLE;
}

/**
 * vmem_mm_mb_idle() - whether an online block is movable and all free
 * @vm: the device
 * @mb: memory block index, online
 *
 * A racy look at the buddy allocator, good enough to pick a fast path:
 * offlining re-checks everything, and in ZONE_MOVABLE anything allocated
 * meanwhile can be migrated.
 *
 * Return: true if every page is free in the buddy allocator.
 */
bool vmem_mm_mb_idle(struct vmem *vm, unsigned long mb)
{
	unsigned long pfn = PHYS_PFN(vmem_mb_addr(vm, mb));
	unsigned long end = pfn + PHYS_PFN(vm->mb_size);

	if (!vmem_mm_mb_movable(vm, mb))
		return false;
	while (pfn < end) {
		struct page *page = pfn_to_page(pfn);

		if (!PageBuddy(page))
			return false;
		/* The order of a free block; bounded against a racy read. */
		pfn += 1UL << min_t(unsigned long, page_private(page),
				    MAX_ORDER - 1);
	}
	return true;
}

/**
 * vmem_mm_mb_present() - whether Linux has memory block @mb added
 * @vm: the device
 * @mb: memory block index
 * @online: set to whether it is online
 *
 * Return: true if the block is added (its memmap exists).
 */
bool vmem_mm_mb_present(struct vmem *vm, unsigned long mb, bool *online)
{
	unsigned long pfn = PHYS_PFN(vmem_mb_addr(vm, mb));

	*online = pfn_to_online_page(pfn);
	return pfn_valid(pfn);
}

/*
 * Offlining needs every page free or skippable: drop our reference to the
 * pages of unplugged sub-blocks (refcount 0 + PageOffline = skipped), and
 * count them as managed so the core can subtract the whole block.
 */
static void vmem_unplugged_pages_adjust(struct vmem *vm, unsigned long mb,
					bool going_offline)
{
	unsigned long sb_pages = vmem_sb_pages(vm);
	unsigned long sb = vmem_sbm_index(&vm->sbm, mb, 0);
	unsigned long end = sb + vm->sbm.sbs_per_mb;
	unsigned long nr;

	while (vmem_sbm_find_run(&vm->sbm, sb, end, false, &sb, &nr)) {
		unsigned long pfn = vmem_sb_pfn(vm, sb);
		unsigned long nr_pages = nr * sb_pages;
		unsigned long i;

		if (going_offline) {
			adjust_managed_page_count(pfn_to_page(pfn), nr_pages);
			for (i = 0; i < nr_pages; i++)
				page_ref_dec(pfn_to_page(pfn + i));
		} else {
			for (i = 0; i < nr_pages; i++)
				page_ref_inc(pfn_to_page(pfn + i));
			adjust_managed_page_count(pfn_to_page(pfn), -nr_pages);
		}
		sb += nr;
	}
}

/* A block finished onlining or offlining: the work may have skipped it. */
static void vmem_transition_done(struct vmem *vm)
{
	if (READ_ONCE(vm->plugged) != READ_ONCE(vm->cfg.requested_size) ||
	    READ_ONCE(vm->waiting_online))
		vmem_queue_work(vm);
}

/*
 * hp_lock is never held across notifications: a block in transition is
 * marked VMEM_MB_ONLINING/OFFLINING instead, and the driver skips it.
 */
static int vmem_memory_cb(struct notifier_block *nb, unsigned long action,
			  void *arg)
{
	struct vmem *vm = container_of(nb, struct vmem, memory_nb);
	struct memory_notify *mhp = arg;
	u64 start = PFN_PHYS(mhp->start_pfn);
	u64 first = vmem_mb_addr(vm, 0);
	enum vmem_mb_state state;
	unsigned long mb;
	int rc = NOTIFY_OK;

	if (start < first || start - first >= vm->sbm.nr_mbs * vm->mb_size)
		return NOTIFY_OK;
	/* The core notifies one memory block at a time. */
	if (WARN_ON_ONCE(PFN_PHYS(mhp->nr_pages) != vm->mb_size))
		return NOTIFY_BAD;
	mb = div64_u64(start - first, vm->mb_size);

	mutex_lock(&vm->hp_lock);
	state = vmem_sbm_state(&vm->sbm, mb);
	switch (action) {
	case MEM_GOING_ONLINE:
		if (state == VMEM_MB_REMOVING) {
			dev_warn_ratelimited(&vm->vdev->dev,
					     "memory block %llu is being removed: refusing to online it\n",
					     div64_u64(start, vm->mb_size));
			rc = NOTIFY_BAD;
		} else if (state == VMEM_MB_OFFLINE) {
			vmem_sbm_set_state(&vm->sbm, mb, VMEM_MB_ONLINING);
		}
		break;
	case MEM_ONLINE:
	case MEM_CANCEL_ONLINE:
		if (state == VMEM_MB_ONLINING)
			vmem_sbm_set_state(&vm->sbm, mb, action == MEM_ONLINE ?
					   VMEM_MB_ONLINE : VMEM_MB_OFFLINE);
		break;
	case MEM_GOING_OFFLINE:
		if (state == VMEM_MB_ONLINE)
			vmem_sbm_set_state(&vm->sbm, mb, VMEM_MB_OFFLINING);
		vmem_unplugged_pages_adjust(vm, mb, true);
		vm->refs_dropped_mb = mb;
		break;
	case MEM_OFFLINE:
	case MEM_CANCEL_OFFLINE:
		if (vm->refs_dropped_mb == mb) {
			if (action == MEM_CANCEL_OFFLINE)
				vmem_unplugged_pages_adjust(vm, mb, false);
			vm->refs_dropped_mb = ULONG_MAX;
		}
		if (state == VMEM_MB_OFFLINING)
			vmem_sbm_set_state(&vm->sbm, mb, action == MEM_OFFLINE ?
					   VMEM_MB_OFFLINE : VMEM_MB_ONLINE);
		break;
	default:
		break;
	}
	mutex_unlock(&vm->hp_lock);

	if (action == MEM_ONLINE || action == MEM_CANCEL_ONLINE ||
	    action == MEM_OFFLINE || action == MEM_CANCEL_OFFLINE)
		vmem_transition_done(vm);
	return rc;
}

/**
 * vmem_mm_add() - add memory blocks to Linux as driver-managed RAM
 * @vm: the device
 * @mb: first memory block, all VMEM_MB_UNUSED, sub-blocks already plugged
 * @nr: number of memory blocks
 *
 * The blocks may get onlined right away by the online policy; the notifier
 * then moves them to VMEM_MB_ONLINE.
 *
 * Return: 0 or the error of add_memory_driver_managed().
 */
int vmem_mm_add(struct vmem *vm, unsigned long mb, unsigned long nr)
{
	unsigned long i;
	int rc;

	/* The notifier updates other blocks' states meanwhile: lock. */
	mutex_lock(&vm->hp_lock);
	for (i = 0; i < nr; i++)
		vmem_sbm_set_state(&vm->sbm, mb + i, VMEM_MB_OFFLINE);
	mutex_unlock(&vm->hp_lock);
	rc = add_memory_driver_managed(vm->mgid, vmem_mb_addr(vm, mb),
				       nr * vm->mb_size, VMEM_RES_NAME,
				       MHP_MERGE_RESOURCE | MHP_NID_IS_MGID);
	if (rc) {
		vm->stats.add_failures++;
		mutex_lock(&vm->hp_lock);
		for (i = 0; i < nr; i++)
			vmem_sbm_set_state(&vm->sbm, mb + i, VMEM_MB_UNUSED);
		mutex_unlock(&vm->hp_lock);
		dev_warn_ratelimited(&vm->vdev->dev,
				     "adding memory at 0x%llx failed: %d\n",
				     vmem_mb_addr(vm, mb), rc);
	}
	return rc;
}

/**
 * vmem_mm_remove() - offline and remove memory blocks from Linux
 * @vm: the device
 * @mb: first memory block
 * @nr: number of memory blocks
 *
 * The caller made sure nothing in the range is in use: every page is free
 * to offline or belongs to an unplugged sub-block. That keeps offlining
 * from ever waiting on pages it cannot migrate. The blocks are marked
 * VMEM_MB_REMOVING first so that nobody onlines them meanwhile; their
 * sub-block bits are left alone.
 *
 * Return: 0 with the blocks VMEM_MB_UNUSED; -ENOMEM if a block is being
 * onlined or offlined (try again later); or the error of
 * offline_and_remove_memory() with the blocks in their actual state.
 */
int vmem_mm_remove(struct vmem *vm, unsigned long mb, unsigned long nr)
{
	unsigned long i;
	bool online;
	int rc;

	mutex_lock(&vm->hp_lock);
	for (i = 0; i < nr; i++) {
		enum vmem_mb_state state = vmem_sbm_state(&vm->sbm, mb + i);

		if (state != VMEM_MB_ONLINE && state != VMEM_MB_OFFLINE) {
			/* Onlining or offlining right now: later. */
			mutex_unlock(&vm->hp_lock);
			return -ENOMEM;
		}
	}
	for (i = 0; i < nr; i++)
		vmem_sbm_set_state(&vm->sbm, mb + i, VMEM_MB_REMOVING);
	mutex_unlock(&vm->hp_lock);

	rc = offline_and_remove_memory(vmem_mb_addr(vm, mb), nr * vm->mb_size);

	mutex_lock(&vm->hp_lock);
	for (i = 0; i < nr; i++) {
		enum vmem_mb_state state = VMEM_MB_UNUSED;

		if (rc && vmem_mm_mb_present(vm, mb + i, &online))
			state = online ? VMEM_MB_ONLINE : VMEM_MB_OFFLINE;
		vmem_sbm_set_state(&vm->sbm, mb + i, state);
	}
	mutex_unlock(&vm->hp_lock);
	if (rc)
		dev_warn_ratelimited(&vm->vdev->dev,
				     "removing memory at 0x%llx failed: %d\n",
				     vmem_mb_addr(vm, mb), rc);
	return rc;
}

/**
 * vmem_mm_region_in_use() - whether Linux has RAM inside a range
 * @addr: start
 * @size: length
 *
 * Memory a previous instance of the driver left online is still in use:
 * it must not be unplugged behind the kernel's back.
 *
 * Return: true if any System RAM intersects the range.
 */
bool vmem_mm_region_in_use(u64 addr, u64 size)
{
	return region_intersects(addr, size, IORESOURCE_SYSTEM_RAM,
				 IORES_DESC_NONE) != REGION_DISJOINT;
}

/**
 * vmem_mm_register() - hook @vm into memory hotplug
 * @vm: the device, geometry and bookkeeping set up
 *
 * Registers the memory group, the memory notifier and, for the first
 * device, the online-page callback.
 *
 * Return: 0 or a negative error, with nothing left registered.
 */
int vmem_mm_register(struct vmem *vm)
{
	int rc;

	/* Memory comes and goes in units of a memory or a big block. */
	vm->mgid = memory_group_register_dynamic(vm->nid,
						 PHYS_PFN(vm->mb_size) *
						 vm->mbs_per_bb);
	if (vm->mgid < 0)
		return vm->mgid;

	vm->memory_nb.notifier_call = vmem_memory_cb;
	rc = register_memory_notifier(&vm->memory_nb);
	if (rc)
		goto err_group;

	mutex_lock(&vmem_devices_lock);
	if (list_empty(&vmem_devices)) {
		rc = set_online_page_callback(vmem_online_page_cb);
		if (rc) {
			mutex_unlock(&vmem_devices_lock);
			dev_err(&vm->vdev->dev,
				"the online-page callback is taken by another driver\n");
			goto err_notifier;
		}
	}
	list_add_rcu(&vm->list, &vmem_devices);
	mutex_unlock(&vmem_devices_lock);
	return 0;

err_notifier:
	unregister_memory_notifier(&vm->memory_nb);
err_group:
	memory_group_unregister(vm->mgid);
	return rc;
}

/**
 * vmem_mm_unregister() - undo vmem_mm_register()
 * @vm: the device
 *
 * If memory of the device is still added, the memory group stays
 * registered (the core refuses to drop a group in use).
 */
void vmem_mm_unregister(struct vmem *vm)
{
	mutex_lock(&vmem_devices_lock);
	list_del_rcu(&vm->list);
	if (list_empty(&vmem_devices))
		restore_online_page_callback(vmem_online_page_cb);
	mutex_unlock(&vmem_devices_lock);
	synchronize_rcu();

	unregister_memory_notifier(&vm->memory_nb);
	if (memory_group_unregister(vm->mgid))
		dev_info(&vm->vdev->dev,
			 "memory of the device stays added: memory group %d kept\n",
			 vm->mgid);
}
