// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem glue to the memory-hotplug core.
 *
 * Unplugged sub-blocks of an added memory block must never reach the page
 * allocator. The online-page callback hands only plugged sub-blocks to the
 * buddy and marks the rest PageOffline; the memory notifier lets such blocks
 * be offlined anyway (their pages are skipped), keeps the driver's view of
 * each block in step with sysfs, and refuses onlining and offlining while the
 * driver cannot follow: a block it is removing, any block while it takes
 * over memory at load or lets go of it at removal, and onlining once the
 * device is broken (what it holds is no longer known).
 *
 * Pages of a sub-block being unplugged are marked PageOffline before the
 * device is asked, so /proc/kcore and kdump skip them from then on; if the
 * device does not unplug them, they are unmarked and given back.
 *
 * Lock order: device_hotplug_lock -> mem_hotplug_lock (core) -> vm->hp_lock.
 * The driver never calls into the hotplug core with hp_lock held.
 */
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/gfp.h>
#include <linux/kthread.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/page_ref.h>
#include <linux/rculist.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/workqueue.h>

#include "virtio_mem_compat.h"
#include "virtio_mem_dev.h"
#include "virtio_mem_trace.h"

#define VMEM_RES_NAME "System RAM (virtio_mem)"

/*
 * Offlining retries for as long as a page cannot be migrated, and nothing
 * interrupts a kernel thread: a page pinned for long would hang the driver
 * and every memory hotplug user. Bound it.
 */
#define VMEM_OFFLINE_TIMEOUT_S 10

#define VMEM_NO_SELF_HOST_MSG \
	"the kernel does not place memmaps in added memory (boot with memory_hotplug.memmap_on_memory=1 for that): they come from boot memory\n"

/*
 * A busy take is split into at most this many parts, twice as many as
 * CPUs, each of at least 16 MiB: smaller ones are not worth the hand-over.
 */
#define VMEM_TAKE_MAX_PARTS		4
#define VMEM_TAKE_MIN_PART_PAGES	(SZ_16M >> PAGE_SHIFT)

/*
 * alloc_contig_range() fails with -EBUSY when a page is not free when it
 * checks: one that cannot move, or, now and then on 6.12, one whose
 * migration went well but whose last reference goes a moment later. By
 * then the rest of the range has moved, so trying again soon is cheap; a
 * page pinned for long fails every try. Only in ZONE_MOVABLE: elsewhere
 * the page is most often an unmovable allocation, which no retry frees,
 * and a look over blocks full of them would sleep for each.
 */
#define VMEM_TAKE_TRIES		3
#define VMEM_TAKE_RETRY_MS	20

static LIST_HEAD(vmem_devices);
static DEFINE_MUTEX(vmem_devices_lock);

/*
 * Resources of added memory point at their name: it must outlive the
 * module if memory stays added when it is unloaded.
 */
static const char *vmem_ram_name;
static bool vmem_ram_name_kept;

/**
 * vmem_mm_init() - module-wide setup of the memory-hotplug glue
 *
 * Return: 0 or -ENOMEM.
 */
int vmem_mm_init(void)
{
	vmem_ram_name = kstrdup(VMEM_RES_NAME, GFP_KERNEL);
	return vmem_ram_name ? 0 : -ENOMEM;
}

/** vmem_mm_exit() - undo vmem_mm_init(), unless memory stays added */
void vmem_mm_exit(void)
{
	if (!vmem_ram_name_kept)
		kfree(vmem_ram_name);
}

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
		unsigned int order = min_t(unsigned int, VMEM_MAX_PAGE_ORDER,
					   min(__ffs(pfn), __fls(nr)));

		generic_online_page(pfn_to_page(pfn), order);
		pfn += 1UL << order;
		nr -= 1UL << order;
	}
}

/*
 * Called by the core while onlining, between MEM_GOING_ONLINE and
 * MEM_ONLINE: the block is VMEM_MB_ONLINING (or VMEM_MB_REMOVING, when the
 * core rolls back a failed removal of the driver's), so the driver leaves
 * its bitmap alone meanwhile, and removal waits for it to finish: @vm
 * stays valid after the RCU read side.
 */
static void vmem_online_page_cb(struct page *page, unsigned int order)
{
	unsigned long pfn = page_to_pfn(page);
	unsigned long end = pfn + (1UL << order);
	struct vmem *vm;

	rcu_read_lock();
	vm = vmem_find(pfn);
	rcu_read_unlock();
	if (!vm) {
		generic_online_page(page, order);
		return;
	}

	/* Only for this device's memory: /proc/kcore readers wait on it. */
	page_offline_begin();
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

/* Whether @pfn is online, in ZONE_MOVABLE (as all its memory block is). */
static bool vmem_pfn_movable(unsigned long pfn)
{
	struct page *page = pfn_to_online_page(pfn);

	return page && page_zonenum(page) == ZONE_MOVABLE;
}

/* One part of a take, run by an unbound worker. */
struct vmem_take_part {
	struct work_struct work;
	struct vmem *vm;
	unsigned long start;
	unsigned long end;
	int rc;
	bool queued;
};

/* Isolate [start, end), migrate what is in use, and own every page. */
static int vmem_take_pfns(struct vmem *vm, unsigned long start,
			  unsigned long end)
{
	int rc = alloc_contig_range(start, end, MIGRATE_MOVABLE,
				    GFP_KERNEL | __GFP_NOWARN);

	if (!rc && vmem_fault_fail_take(vm)) {
		free_contig_range(start, end - start);
		rc = -EBUSY;
	}
	return rc;
}

static void vmem_take_part_fn(struct work_struct *work)
{
	struct vmem_take_part *part = container_of(work, struct vmem_take_part,
						   work);

	part->rc = vmem_take_pfns(part->vm, part->start, part->end);
}

/*
 * Take the parts that have no pages yet (rc set) at the same time: each in
 * an unbound worker, this thread asleep meanwhile, so that the scheduler
 * spreads them over idle CPUs, this one included. A lone part runs here.
 */
static void vmem_take_parts(struct vmem_take_part *parts, unsigned int n)
{
	unsigned int i, left = 0;

	for (i = 0; i < n; i++)
		left += parts[i].rc != 0;
	for (i = 0; i < n; i++) {
		parts[i].queued = parts[i].rc && left > 1;
		if (parts[i].queued) {
			INIT_WORK_ONSTACK(&parts[i].work, vmem_take_part_fn);
			queue_work(system_unbound_wq, &parts[i].work);
		} else if (parts[i].rc) {
			parts[i].rc = vmem_take_pfns(parts[i].vm, parts[i].start,
						     parts[i].end);
		}
	}
	for (i = 0; i < n; i++) {
		if (parts[i].queued) {
			flush_work(&parts[i].work);
			destroy_work_on_stack(&parts[i].work);
		}
	}
}

/*
 * alloc_contig_range() of [pfn, pfn + nr) in parts (vmem_split_take()) that
 * the online CPUs take at the same time: migration, most of the time a
 * busy block takes, goes that much faster. Twice as many parts as CPUs
 * let the scheduler even out a CPU the host slows down. A part of
 * ZONE_MOVABLE that fails with -EBUSY is tried again (VMEM_TAKE_TRIES).
 * All or nothing: if a part still fails, the others go back.
 */
static int vmem_take_range(struct vmem *vm, unsigned long pfn,
			   unsigned long nr)
{
	struct vmem_take_part parts[VMEM_TAKE_MAX_PARTS];
	unsigned long ends[VMEM_TAKE_MAX_PARTS];
	unsigned int i, n, tries = 0, cpus = num_online_cpus();
	unsigned int max_tries = vmem_pfn_movable(pfn) ? VMEM_TAKE_TRIES : 1;
	int rc;

	n = vmem_split_take(pfn, nr, MAX_ORDER_NR_PAGES,
			    VMEM_TAKE_MIN_PART_PAGES, cpus > 1 ?
			    min_t(unsigned int, 2 * cpus, VMEM_TAKE_MAX_PARTS) :
			    1, ends);
	for (i = 0; i < n; i++) {
		parts[i].vm = vm;
		parts[i].start = i ? ends[i - 1] : pfn;
		parts[i].end = ends[i];
		parts[i].rc = -EBUSY;	/* no pages yet */
	}
	for (;;) {
		vmem_take_parts(parts, n);
		/* Another error than -EBUSY wins: trying again will not help. */
		rc = 0;
		for (i = 0; i < n; i++)
			if (parts[i].rc && (!rc || rc == -EBUSY))
				rc = parts[i].rc;
		if (rc != -EBUSY || ++tries == max_tries)
			break;
		vm->stats.take_retries++;
		msleep(VMEM_TAKE_RETRY_MS);
	}
	if (rc) {
		for (i = 0; i < n; i++)
			if (!parts[i].rc)
				free_contig_range(parts[i].start,
						  parts[i].end - parts[i].start);
	}
	return rc;
}

/**
 * vmem_mm_take_pages() - take sub-blocks of an online block from Linux
 * @vm: the device
 * @first_sb: first sub-block
 * @nr: number of sub-blocks
 *
 * Isolates the range and migrates what is in use elsewhere. In ZONE_MOVABLE
 * tries again a few times when some page was not free yet, then fails
 * rather than waits. On success the caller owns every page, already marked
 * PageOffline so that nobody reads it once the device discards it. It
 * then either unplugs them and calls vmem_mm_retire_pages(), or gives them
 * back with vmem_mm_return_pages().
 *
 * The caller checked the headroom (vmem_mm_headroom_ok()) first, once for
 * all it is about to take.
 *
 * Return: 0, or -ENOMEM if the memory could not be freed.
 */
int vmem_mm_take_pages(struct vmem *vm, unsigned long first_sb,
		       unsigned long nr)
{
	unsigned long pfn = vmem_sb_pfn(vm, first_sb);
	unsigned long nr_pages = nr * vmem_sb_pages(vm);

	if (vmem_take_range(vm, pfn, nr_pages)) {
		vm->stats.isolation_failures++;
		return -ENOMEM;
	}
	vmem_pages_mark_offline(pfn, nr_pages, true);
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
 * Return: true if the unplug keeps the reserve, or takes nothing from the
 * guest (@nr_pages 0: offline memory), however short it is.
 */
bool vmem_mm_headroom_ok(struct vmem *vm, unsigned long nr_pages)
{
	return !nr_pages ||
	       si_mem_available() - (long)nr_pages >= vmem_mm_reserve_pages();
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
 * vmem_mm_free_kernel_pages() - free memory the kernel can allocate from
 *
 * Memory outside ZONE_MOVABLE: the memmap of added memory, page tables and
 * kernel allocations come from there. Pages below a zone's high watermark
 * do not count: the kernel keeps those for itself.
 *
 * Return: free pages of all zones but ZONE_MOVABLE, above their watermark.
 */
unsigned long vmem_mm_free_kernel_pages(void)
{
	unsigned long sum = 0, free, low;
	struct zone *zone;
	int nid, z;

	for_each_online_node(nid) {
		for (z = 0; z < MAX_NR_ZONES; z++) {
			zone = &NODE_DATA(nid)->node_zones[z];
			if (z == ZONE_MOVABLE || !populated_zone(zone))
				continue;
			free = zone_page_state(zone, NR_FREE_PAGES);
			low = high_wmark_pages(zone);
			if (free > low)
				sum += free - low;
		}
	}
	return sum;
}

/**
 * vmem_mm_kernel_reserve_pages() - free kernel memory adding must leave
 *
 * Return: kernel_reserve_mb in pages.
 */
unsigned long vmem_mm_kernel_reserve_pages(void)
{
	return (unsigned long)READ_ONCE(vmem_kernel_reserve_mb) <<
	       (20 - PAGE_SHIFT);
}

/**
 * vmem_mm_memmap_pages() - size of the memmap of one memory block
 * @vm: the device
 *
 * Return: pages its struct pages take.
 */
unsigned long vmem_mm_memmap_pages(struct vmem *vm)
{
	return DIV_ROUND_UP(PHYS_PFN(vm->mb_size) * sizeof(struct page),
			    PAGE_SIZE);
}

/**
 * vmem_mm_memmap_cost() - memmap adding one memory block takes from Linux
 * @vm: the device
 *
 * Return: pages of memory the guest already has; none once blocks are
 * known to hold their own memmap (vmem_mm_add_self_hosted()).
 */
unsigned long vmem_mm_memmap_cost(struct vmem *vm)
{
	if (vm->self_host && READ_ONCE(vm->self_host_ok) &&
	    !READ_ONCE(vm->self_host_off))
		return 0;
	return vmem_mm_memmap_pages(vm);
}

/**
 * vmem_mm_return_pages() - undo vmem_mm_take_pages()
 * @vm: the device
 * @first_sb: first sub-block
 * @nr: number of sub-blocks
 *
 * Only for sub-blocks the device is known to still have plugged.
 */
void vmem_mm_return_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr)
{
	unsigned long pfn = vmem_sb_pfn(vm, first_sb);
	unsigned long nr_pages = nr * vmem_sb_pages(vm);

	vmem_pages_mark_offline(pfn, nr_pages, false);
	free_contig_range(pfn, nr_pages);
}

/**
 * vmem_mm_retire_pages() - taken pages leave Linux for good
 * @vm: the device
 * @first_sb: first sub-block
 * @nr: number of sub-blocks
 *
 * For taken sub-blocks that were unplugged, or whose fate is unknown. The
 * pages stay allocated to us and PageOffline, so that offlining can skip
 * them (see the notifier), and no longer count as managed memory.
 */
void vmem_mm_retire_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr)
{
	adjust_managed_page_count(pfn_to_page(vmem_sb_pfn(vm, first_sb)),
				  -(long)(nr * vmem_sb_pages(vm)));
}

/**
 * vmem_mm_sb_all_offline() - whether every page of a sub-block is offline
 * @vm: the device
 * @sb: sub-block of an online memory block
 *
 * PageOffline is no evidence that a sub-block is unplugged: a balloon marks
 * its pages so too. But a page without it in an online block is Linux's:
 * a sub-block with one is in use. hp_lock held.
 *
 * Return: true if every page is PageOffline.
 */
bool vmem_mm_sb_all_offline(struct vmem *vm, unsigned long sb)
{
	unsigned long pfn = vmem_sb_pfn(vm, sb);
	unsigned long i;

	for (i = 0; i < vmem_sb_pages(vm); i++)
		if (!PageOffline(pfn_to_page(pfn + i)))
			return false;
	return true;
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
	return vmem_pfn_movable(PHYS_PFN(vmem_mb_addr(vm, mb)));
}

/**
 * vmem_mm_kernel_zone_size() - plugged memory online outside ZONE_MOVABLE
 * @vm: the device
 *
 * There the kernel's own allocations (slab, page tables) may sit, which
 * cannot be migrated: the memory the online policy (kernel zones, or
 * auto-movable's share of them) may keep from being unplugged.
 *
 * Return: bytes.
 */
u64 vmem_mm_kernel_zone_size(struct vmem *vm)
{
	unsigned long mb;
	u64 size = 0;

	mutex_lock(&vm->hp_lock);
	for (mb = 0; mb < vm->sbm.nr_mbs; mb++)
		if (vmem_sbm_state(&vm->sbm, mb) == VMEM_MB_ONLINE &&
		    !vmem_mm_mb_movable(vm, mb))
			size += (u64)vmem_sbm_plugged_in_mb(&vm->sbm, mb) *
				vm->sb_size;
	mutex_unlock(&vm->hp_lock);
	return size;
}

/**
 * vmem_mm_mb_in_use() - pages in use in an online memory block
 * @vm: the device
 * @mb: memory block index, online
 * @max: stop counting past this many
 *
 * A racy look at the buddy allocator, good enough to pick a fast path:
 * offlining re-checks everything: in ZONE_MOVABLE anything allocated
 * meanwhile can be migrated, elsewhere isolation refuses a block that got
 * a page that cannot move. Free pages are those in the buddy or on a
 * per-CPU list; a block's own memmap goes with it and does not count.
 *
 * Return: pages in use, at most @max + 1.
 */
static unsigned long vmem_mm_mb_in_use(struct vmem *vm, unsigned long mb,
				       unsigned long max)
{
	unsigned long pfn = PHYS_PFN(vmem_mb_addr(vm, mb));
	unsigned long end = pfn + PHYS_PFN(vm->mb_size);
	unsigned long used = 0;

	if (vmem_mm_mb_self_hosted(vm, mb))
		pfn += vmem_mm_memmap_pages(vm);
	while (pfn < end && used <= max) {
		struct page *page = pfn_to_page(pfn);

		if (PageBuddy(page)) {
			/* The order of a free block; bounded: a racy read. */
			pfn += 1UL << min_t(unsigned long, page_private(page),
					    VMEM_MAX_PAGE_ORDER);
			continue;
		}
		/*
		 * Free pages on a per-CPU list are not PageBuddy (6.12 keeps
		 * pageblock-sized ones there too) and hold no reference; a
		 * page in use holds one (tail pages count with their head).
		 */
		if (page_ref_count(page) || PageTail(page))
			used++;
		pfn++;
	}
	return used;
}

/**
 * vmem_mm_mb_idle() - whether an online memory block looks free
 * @vm: the device
 * @mb: memory block index, online
 *
 * The racy look of vmem_mm_mb_in_use(), for choosing blocks to offline
 * together; vmem_mm_remove_direct() looks again.
 *
 * Return: true if nothing in it seems in use.
 */
bool vmem_mm_mb_idle(struct vmem *vm, unsigned long mb)
{
	return !vmem_mm_mb_in_use(vm, mb, 0);
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

/**
 * vmem_mm_any_present() - whether Linux has memory of the region added
 * @vm: the device, geometry set up
 *
 * Asks mm, not the resource tree: memory a previous driver instance left
 * added is in use, and must not be unplugged behind the kernel's back.
 *
 * Return: true if any memory block of the region is added.
 */
bool vmem_mm_any_present(struct vmem *vm)
{
	unsigned long mb;
	bool online;

	for (mb = 0; mb < vm->sbm.nr_mbs; mb++)
		if (vmem_mm_mb_present(vm, mb, &online))
			return true;
	return false;
}

/*
 * Offlining needs every page free or skippable: drop our reference to the
 * pages of unplugged sub-blocks (refcount 0 + PageOffline = skipped), and,
 * where the core subtracts the whole block from the managed pages, count
 * them as managed first.
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
			if (VMEM_CORE_UNCOUNTS_OFFLINE_PAGES)
				adjust_managed_page_count(pfn_to_page(pfn),
							  nr_pages);
			for (i = 0; i < nr_pages; i++)
				page_ref_dec(pfn_to_page(pfn + i));
		} else {
			for (i = 0; i < nr_pages; i++)
				page_ref_inc(pfn_to_page(pfn + i));
			if (VMEM_CORE_UNCOUNTS_OFFLINE_PAGES)
				adjust_managed_page_count(pfn_to_page(pfn),
							  -nr_pages);
		}
		sb += nr;
	}
}

/* A block finished onlining or offlining: the work may have skipped it. */
static void vmem_transition_done(struct vmem *vm)
{
	wake_up(&vm->transition_wq);
	if (READ_ONCE(vm->plugged) != READ_ONCE(vm->cfg.requested_size) ||
	    READ_ONCE(vm->plug_wait) == VMEM_WAIT_ONLINE)
		vmem_queue_work(vm);
}

/*
 * Why onlining or offlining memory block @mb must not start now, or NULL.
 * The driver's own removal (VMEM_MB_REMOVING) may always offline, and the
 * core may online such a block again to roll back a removal that failed
 * half-way. hp_lock held.
 */
static const char *vmem_refuse_reason(struct vmem *vm, unsigned long mb,
				      bool online)
{
	enum vmem_mb_state state = vmem_sbm_state(&vm->sbm, mb);

	if (state == VMEM_MB_REMOVING) {
		if (online && !vm->removing_blocks)
			return "it is being removed";
		if (!online && vmem_fault_refuse_offline(vm))
			return "fault injection";
		return NULL;
	}
	if (vm->adopting)
		return "the driver is still taking over memory";
	if (READ_ONCE(vm->removing))
		return "the driver is letting go of the device";
	if (online && READ_ONCE(vm->broken))
		return "the device is broken";
	return NULL;
}

/*
 * Called by the memory notifier, hp_lock held, as a block of ours goes
 * on- or offline: mm says where its pages start, after its own memmap or
 * not (@hosted). A block we asked to hold its memmap that does not is the
 * kernel's silent refusal (6.12): self-hosting is off from then on.
 */
static void vmem_mm_self_host_seen(struct vmem *vm, unsigned long mb,
				   bool hosted)
{
	if (hosted && !vm->self_host_ok) {
		WRITE_ONCE(vm->self_host_ok, true);
		dev_info(&vm->vdev->dev,
			 "memmap_on_memory: added memory holds its own memmap\n");
	} else if (!hosted && test_bit(mb, vm->self_hosted) &&
		   !vm->self_host_ok && !vm->self_host_off) {
		WRITE_ONCE(vm->self_host_off, true);
		dev_info(&vm->vdev->dev, VMEM_NO_SELF_HOST_MSG);
	}
	__assign_bit(mb, vm->self_hosted, hosted);
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
	const char *why = NULL;
	unsigned long mb;
	int rc = NOTIFY_OK;

	if (start < first || start - first >= vm->sbm.nr_mbs * vm->mb_size)
		return NOTIFY_OK;
	/*
	 * The core notifies one memory block at a time; of a block that
	 * holds its memmap, the part after the memmap.
	 */
	mb = div64_u64(start - first, vm->mb_size);
	if (WARN_ON_ONCE(start + PFN_PHYS(mhp->nr_pages) !=
			 vmem_mb_addr(vm, mb + 1)))
		return NOTIFY_BAD;

	mutex_lock(&vm->hp_lock);
	state = vmem_sbm_state(&vm->sbm, mb);
	/* mm says where the block's pages start: after its own memmap? */
	if (action == MEM_GOING_ONLINE || action == MEM_GOING_OFFLINE)
		vmem_mm_self_host_seen(vm, mb, start != vmem_mb_addr(vm, mb));
	switch (action) {
	case MEM_GOING_ONLINE:
		why = vmem_refuse_reason(vm, mb, true);
		if (why)
			rc = notifier_from_errno(-EBUSY);
		else if (state == VMEM_MB_OFFLINE)
			vmem_sbm_set_state(&vm->sbm, mb, VMEM_MB_ONLINING);
		break;
	case MEM_ONLINE:
	case MEM_CANCEL_ONLINE:
		if (state == VMEM_MB_ONLINING)
			vmem_sbm_set_state(&vm->sbm, mb, action == MEM_ONLINE ?
					   VMEM_MB_ONLINE : VMEM_MB_OFFLINE);
		break;
	case MEM_GOING_OFFLINE:
		why = vmem_refuse_reason(vm, mb, false);
		if (why) {
			rc = notifier_from_errno(-EBUSY);
			break;
		}
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

	/* The pages the core on- or offlined: without a memmap inside. */
	if (action == MEM_ONLINE)
		trace_virtio_mem_memory_onlined(dev_name(&vm->vdev->dev), start,
						PFN_PHYS(mhp->nr_pages));
	else if (action == MEM_OFFLINE)
		trace_virtio_mem_memory_offlined(dev_name(&vm->vdev->dev),
						 start, PFN_PHYS(mhp->nr_pages));
	if (why)
		dev_warn_ratelimited(&vm->vdev->dev,
				     "memory block %llu: %s refused: %s\n",
				     div64_u64(start, vm->mb_size),
				     action == MEM_GOING_ONLINE ? "onlining" :
								  "offlining",
				     why);
	if (action == MEM_ONLINE || action == MEM_CANCEL_ONLINE ||
	    action == MEM_OFFLINE || action == MEM_CANCEL_OFFLINE)
		vmem_transition_done(vm);
	return rc;
}

/**
 * vmem_mm_stop_transitions() - let no memory block of @vm change state
 * @vm: the device, @removing set
 *
 * From now on the notifier refuses onlining and offlining (but the
 * driver's own removal); this waits for those that started before.
 */
void vmem_mm_stop_transitions(struct vmem *vm)
{
	/* A notifier that saw !removing has marked its block by now. */
	mutex_lock(&vm->hp_lock);
	mutex_unlock(&vm->hp_lock);
	wait_event(vm->transition_wq,
		   !READ_ONCE(vm->sbm.count[VMEM_MB_ONLINING]) &&
		   !READ_ONCE(vm->sbm.count[VMEM_MB_OFFLINING]));
}

static int vmem_mm_add_flags(struct vmem *vm, unsigned long mb,
			     unsigned long nr, mhp_t flags)
{
	unsigned long i;
	int rc;

	/* The notifier updates other blocks' states meanwhile: lock. */
	mutex_lock(&vm->hp_lock);
	for (i = 0; i < nr; i++)
		vmem_sbm_set_state(&vm->sbm, mb + i, VMEM_MB_OFFLINE);
	mutex_unlock(&vm->hp_lock);
	rc = add_memory_driver_managed(vm->mgid, vmem_mb_addr(vm, mb),
				       nr * vm->mb_size, vmem_ram_name,
				       MHP_MERGE_RESOURCE | MHP_NID_IS_MGID |
				       flags);
	if (rc) {
		mutex_lock(&vm->hp_lock);
		for (i = 0; i < nr; i++)
			vmem_sbm_set_state(&vm->sbm, mb + i, VMEM_MB_UNUSED);
		mutex_unlock(&vm->hp_lock);
	} else {
		trace_virtio_mem_memory_added(dev_name(&vm->vdev->dev),
					      vmem_mb_addr(vm, mb),
					      nr * vm->mb_size);
	}
	return rc;
}

static void vmem_mm_add_failed(struct vmem *vm, unsigned long mb, int rc)
{
	vm->stats.add_failures++;
	dev_warn_ratelimited(&vm->vdev->dev,
			     "adding memory at 0x%llx failed: %d\n",
			     vmem_mb_addr(vm, mb), rc);
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
	int rc = vmem_mm_add_flags(vm, mb, nr, 0);

	if (rc)
		vmem_mm_add_failed(vm, mb, rc);
	return rc;
}

/**
 * vmem_mm_add_self_hosted() - add one memory block that holds its memmap
 * @vm: the device
 * @mb: the memory block, VMEM_MB_UNUSED, its first vm->memmap_units
 *	sub-blocks (at least) plugged
 *
 * With memmap_on_memory, the struct pages of the block live in its first
 * pages instead of in memory the guest already has. The kernel offers it
 * only when booted with memory_hotplug.memmap_on_memory=1. Otherwise 6.1
 * refuses the request (-EINVAL), while newer kernels (6.12) add the block
 * the usual way without a word. Only onlining tells which it did (the memory
 * notifier, vmem_mm_self_host_seen()): until then the block counts as
 * asked for, and its memmap as paid for from boot memory.
 *
 * Return: 0; -EOPNOTSUPP when the kernel does not offer it (add the block
 * with vmem_mm_add() instead); or the error of add_memory_driver_managed().
 */
int vmem_mm_add_self_hosted(struct vmem *vm, unsigned long mb)
{
	int rc;

	if (READ_ONCE(vm->self_host_off))
		return -EOPNOTSUPP;
	/* Before adding: the online policy may online it right away. */
	mutex_lock(&vm->hp_lock);
	set_bit(mb, vm->self_hosted);
	mutex_unlock(&vm->hp_lock);
	rc = vmem_mm_add_flags(vm, mb, 1, MHP_MEMMAP_ON_MEMORY);
	if (!rc)
		return 0;
	mutex_lock(&vm->hp_lock);
	clear_bit(mb, vm->self_hosted);
	mutex_unlock(&vm->hp_lock);
	if (rc == -EINVAL && !vm->self_host_ok) {
		WRITE_ONCE(vm->self_host_off, true);
		dev_info(&vm->vdev->dev, VMEM_NO_SELF_HOST_MSG);
		return -EOPNOTSUPP;
	}
	vmem_mm_add_failed(vm, mb, rc);
	return rc;
}

/**
 * vmem_mm_mb_self_hosted() - whether an added memory block holds its memmap
 * @vm: the device
 * @mb: memory block, added (not VMEM_MB_UNUSED nor VMEM_MB_REMOVING)
 *
 * The driver's own record: set when it asked for it as it added the
 * block, kept across a reload with the region's reservation, and
 * corrected by what the memory notifier says whenever the block goes on-
 * or offline (mm may have added it the usual way: see
 * vmem_mm_add_self_hosted()). Its memmap
 * sub-blocks must stay plugged until the block is removed.
 *
 * Return: true if the memmap of @mb lies inside @mb.
 */
bool vmem_mm_mb_self_hosted(struct vmem *vm, unsigned long mb)
{
	return test_bit(mb, vm->self_hosted);
}

struct vmem_offline_call {
	u64 start;
	u64 size;
	int rc;
	struct completion started;
	struct completion done;
};

static int vmem_offline_thread(void *data)
{
	struct vmem_offline_call *call = data;

	/* Offlining gives up on a pending signal: the timeout sends one. */
	allow_signal(SIGKILL);
	complete(&call->started);
	call->rc = offline_and_remove_memory(call->start, call->size);
	/* No module text runs after this: the module may go right away. */
	kthread_complete_and_exit(&call->done, 0);
}

/*
 * offline_and_remove_memory() in a kernel thread of its own, interrupted
 * if it takes longer than VMEM_OFFLINE_TIMEOUT_S: then -EINTR, with the
 * memory left as it was. In 6.1 offlining retries for as long as a page
 * cannot be migrated and only a signal stops it; mainline 6.5 bounds it
 * inside mm instead (see Documentation). The clock starts once the thread
 * accepts the signal, so the signal is never lost.
 */
static int vmem_offline_and_remove(struct vmem *vm, u64 start, u64 size)
{
	struct vmem_offline_call call = { .start = start, .size = size };
	struct task_struct *task;

	init_completion(&call.started);
	init_completion(&call.done);
	task = kthread_create(vmem_offline_thread, &call, "virtio_mem_offline");
	if (IS_ERR(task))
		return PTR_ERR(task);
	get_task_struct(task);
	wake_up_process(task);
	wait_for_completion(&call.started);
	if (!wait_for_completion_timeout(&call.done,
					 VMEM_OFFLINE_TIMEOUT_S * HZ)) {
		dev_warn_ratelimited(&vm->vdev->dev,
				     "offlining memory at 0x%llx takes over %d s: interrupting it\n",
				     start, VMEM_OFFLINE_TIMEOUT_S);
		send_sig(SIGKILL, task, 1);
		wait_for_completion(&call.done);
	}
	put_task_struct(task);
	return call.rc;
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
 * sub-block bits are left alone. Offlining that does not finish within
 * VMEM_OFFLINE_TIMEOUT_S (a page pinned meanwhile) is interrupted.
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
	vm->removing_blocks = true;
	mutex_unlock(&vm->hp_lock);

	rc = vmem_offline_and_remove(vm, vmem_mb_addr(vm, mb), nr * vm->mb_size);

	mutex_lock(&vm->hp_lock);
	vm->removing_blocks = false;
	for (i = 0; i < nr; i++) {
		enum vmem_mb_state state = VMEM_MB_UNUSED;

		/* On failure the core onlined again what it had offlined. */
		if (rc && vmem_mm_mb_present(vm, mb + i, &online))
			state = online ? VMEM_MB_ONLINE : VMEM_MB_OFFLINE;
		vmem_sbm_set_state(&vm->sbm, mb + i, state);
		if (state == VMEM_MB_UNUSED)
			clear_bit(mb + i, vm->self_hosted);
	}
	mutex_unlock(&vm->hp_lock);
	if (rc)
		dev_warn_ratelimited(&vm->vdev->dev,
				     "removing memory at 0x%llx failed: %d\n",
				     vmem_mb_addr(vm, mb), rc);
	else
		trace_virtio_mem_memory_removed(dev_name(&vm->vdev->dev),
						vmem_mb_addr(vm, mb),
						nr * vm->mb_size);
	return rc;
}

/**
 * vmem_mm_remove_direct() - offline and remove memory blocks as they are
 * @vm: the device
 * @mb: first memory block
 * @nr: number of memory blocks
 * @max_used: pages in use the online ones may hold, all together
 *
 * The fast way to unplug memory Linux hardly uses: offlining migrates the
 * few pages in use, while taking the pages first (vmem_mm_take_pages())
 * would have the kernel zero every free one (init_on_alloc) just before
 * the device discards it. Each block must be offline, online in
 * ZONE_MOVABLE, or online elsewhere with nothing in use, and the guest
 * must be able to spare the online ones.
 * Offlining re-checks every page and is bounded (vmem_mm_remove()). A page
 * that cannot move keeps it busy until then: after one such failure, only
 * blocks with nothing in use (@max_used 0) qualify until the caller has
 * unplugged a whole block by taking its pages, and clears @vm->no_direct.
 *
 * Return: 0 with the blocks removed; -ENOTEMPTY if they do not qualify;
 * else the error of vmem_mm_remove().
 */
int vmem_mm_remove_direct(struct vmem *vm, unsigned long mb, unsigned long nr,
			  unsigned long max_used)
{
	unsigned long i, n, used = 0, online = 0;
	bool ok = !max_used || !vm->no_direct;
	int rc;

	mutex_lock(&vm->hp_lock);
	for (i = 0; ok && i < nr; i++) {
		switch (vmem_sbm_state(&vm->sbm, mb + i)) {
		case VMEM_MB_OFFLINE:
			break;
		case VMEM_MB_ONLINE:
			/*
			 * Outside ZONE_MOVABLE a page in use may be one that
			 * cannot move: only a free block qualifies there.
			 */
			n = vmem_mm_mb_in_use(vm, mb + i, max_used - used);
			ok = n <= max_used - used &&
			     (!n || vmem_mm_mb_movable(vm, mb + i));
			used += ok ? n : 0;
			online++;
			break;
		default:
			ok = false;
			break;
		}
	}
	ok = ok && vmem_mm_headroom_ok(vm, online * PHYS_PFN(vm->mb_size));
	mutex_unlock(&vm->hp_lock);
	if (!ok)
		return -ENOTEMPTY;
	rc = vmem_mm_remove(vm, mb, nr);
	if (rc && max_used)
		vm->no_direct = true;
	return rc;
}

/**
 * vmem_mm_register() - hook @vm into memory hotplug
 * @vm: the device, geometry and bookkeeping set up, @adopting set
 *
 * Registers the memory group (unless one was taken over with the region),
 * the memory notifier and, for the first device, the online-page callback.
 * From here on the notifier sees every onlining and offlining that starts
 * in the region; when this returns, those that had started before are
 * over, so what mm says of the region's blocks is what they are.
 *
 * Return: 0 or a negative error, with nothing left registered but a memory
 * group that was taken over.
 */
int vmem_mm_register(struct vmem *vm)
{
	bool own_group = vm->mgid < 0;
	int rc;

	/* Memory comes and goes in units of a memory or a big block. */
	if (own_group) {
		rc = memory_group_register_dynamic(vm->nid,
						   PHYS_PFN(vm->mb_size) *
						   vm->mbs_per_bb);
		if (rc < 0)
			return rc;
		vm->mgid = rc;
	}

	vm->memory_nb.notifier_call = vmem_memory_cb;
	rc = register_memory_notifier(&vm->memory_nb);
	if (rc)
		goto err_group;

	/*
	 * set_online_page_callback() holds the hotplug lock, which every
	 * onlining and offlining holds from start to end: it returns only
	 * once those that the notifier did not see start are over. With our
	 * callback in place already it changes nothing (-EINVAL); it is
	 * called for that wait.
	 */
	mutex_lock(&vmem_devices_lock);
	rc = set_online_page_callback(vmem_online_page_cb);
	if (list_empty(&vmem_devices) && rc) {
		mutex_unlock(&vmem_devices_lock);
		dev_err(&vm->vdev->dev,
			"the online-page callback is taken by another driver\n");
		goto err_notifier;
	}
	list_add_rcu(&vm->list, &vmem_devices);
	mutex_unlock(&vmem_devices_lock);
	return 0;

err_notifier:
	unregister_memory_notifier(&vm->memory_nb);
err_group:
	if (own_group) {
		memory_group_unregister(vm->mgid);
		vm->mgid = -1;
	}
	return rc;
}

/**
 * vmem_mm_unregister() - undo vmem_mm_register()
 * @vm: the device
 * @keep: memory of the device stays added: keep its memory group and the
 *	resource name its memory points at
 */
void vmem_mm_unregister(struct vmem *vm, bool keep)
{
	mutex_lock(&vmem_devices_lock);
	list_del_rcu(&vm->list);
	if (list_empty(&vmem_devices))
		restore_online_page_callback(vmem_online_page_cb);
	if (keep)
		vmem_ram_name_kept = true;
	mutex_unlock(&vmem_devices_lock);
	synchronize_rcu();

	unregister_memory_notifier(&vm->memory_nb);
	if (!keep) {
		memory_group_unregister(vm->mgid);
		vm->mgid = -1;
	}
}
