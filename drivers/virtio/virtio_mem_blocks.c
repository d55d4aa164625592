// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem block-state bookkeeping.
 *
 * Memory blocks are indexed from the first memory block of the device
 * region; sub-blocks from the start of their memory block. Callers
 * serialise updates; readers that race with updates (statistics) only ever
 * see a stale count, never a torn structure.
 */
#include <linux/bitmap.h>
#include <linux/bug.h>
#include <linux/errno.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/slab.h>

#include <linux/virtio_mem.h>

#include "virtio_mem_blocks.h"

/**
 * vmem_sbm_init() - allocate bookkeeping for @nr_mbs memory blocks
 * @sbm: bookkeeping to set up
 * @nr_mbs: memory blocks in the device region
 * @sbs_per_mb: sub-blocks per memory block
 *
 * All memory blocks start unused, all sub-blocks unplugged.
 *
 * Return: 0, -EINVAL for an empty geometry, -ENOMEM.
 */
int vmem_sbm_init(struct vmem_sbm *sbm, unsigned long nr_mbs,
		  unsigned int sbs_per_mb)
{
	unsigned long bits;

	memset(sbm, 0, sizeof(*sbm));
	if (!nr_mbs || !sbs_per_mb)
		return -EINVAL;
	if (check_mul_overflow(nr_mbs, (unsigned long)sbs_per_mb, &bits))
		return -EINVAL;

	sbm->state = kvcalloc(nr_mbs, sizeof(*sbm->state), GFP_KERNEL);
	sbm->plugged = kvcalloc(BITS_TO_LONGS(bits), sizeof(unsigned long),
				GFP_KERNEL);
	if (!sbm->state || !sbm->plugged) {
		vmem_sbm_destroy(sbm);
		return -ENOMEM;
	}
	sbm->nr_mbs = nr_mbs;
	sbm->sbs_per_mb = sbs_per_mb;
	sbm->count[VMEM_MB_UNUSED] = nr_mbs;
	return 0;
}

/**
 * vmem_sbm_destroy() - free what vmem_sbm_init() allocated
 * @sbm: bookkeeping to free
 */
void vmem_sbm_destroy(struct vmem_sbm *sbm)
{
	kvfree(sbm->state);
	kvfree(sbm->plugged);
	sbm->state = NULL;
	sbm->plugged = NULL;
	sbm->nr_mbs = 0;
}

/**
 * vmem_sbm_state() - state of memory block @mb
 * @sbm: bookkeeping
 * @mb: memory block index
 *
 * Return: the state of @mb.
 */
enum vmem_mb_state vmem_sbm_state(const struct vmem_sbm *sbm,
				  unsigned long mb)
{
	return sbm->state[mb];
}

/**
 * vmem_sbm_set_state() - change the state of memory block @mb
 * @sbm: bookkeeping
 * @mb: memory block index
 * @state: new state
 */
void vmem_sbm_set_state(struct vmem_sbm *sbm, unsigned long mb,
			enum vmem_mb_state state)
{
	if (WARN_ON_ONCE(state >= VMEM_MB_NR_STATES))
		return;
	sbm->count[sbm->state[mb]]--;
	sbm->count[state]++;
	sbm->state[mb] = state;
}

/**
 * vmem_sbm_mark() - record sub-blocks as plugged or unplugged
 * @sbm: bookkeeping
 * @first: first sub-block, counted from the start of the region
 * @nr: number of sub-blocks; may span several memory blocks
 * @plugged: new state
 */
void vmem_sbm_mark(struct vmem_sbm *sbm, unsigned long first,
		   unsigned long nr, bool plugged)
{
	if (WARN_ON_ONCE(first + nr > sbm->nr_mbs * sbm->sbs_per_mb))
		return;
	if (plugged)
		bitmap_set(sbm->plugged, first, nr);
	else
		bitmap_clear(sbm->plugged, first, nr);
}

/**
 * vmem_sbm_test() - whether sub-blocks all have one state
 * @sbm: bookkeeping
 * @mb: memory block index
 * @sb: first sub-block within @mb
 * @nr: number of sub-blocks, not crossing the end of @mb
 * @plugged: state to test for
 *
 * Return: true if every sub-block in the range is in state @plugged.
 */
bool vmem_sbm_test(const struct vmem_sbm *sbm, unsigned long mb,
		   unsigned int sb, unsigned int nr, bool plugged)
{
	unsigned long bit = vmem_sbm_index(sbm, mb, sb);
	unsigned long end = bit + nr;

	if (plugged)
		return find_next_zero_bit(sbm->plugged, end, bit) >= end;
	return find_next_bit(sbm->plugged, end, bit) >= end;
}

/**
 * vmem_sbm_plugged_in_mb() - number of plugged sub-blocks in @mb
 * @sbm: bookkeeping
 * @mb: memory block index
 *
 * Return: the count.
 */
unsigned int vmem_sbm_plugged_in_mb(const struct vmem_sbm *sbm,
				    unsigned long mb)
{
	unsigned long bit = vmem_sbm_index(sbm, mb, 0);
	unsigned long end = bit + sbm->sbs_per_mb;
	unsigned int nr = 0;

	/* bitmap_weight() only counts from bit 0: walk the set bits. */
	for (bit = find_next_bit(sbm->plugged, end, bit); bit < end;
	     bit = find_next_bit(sbm->plugged, end, bit + 1))
		nr++;
	return nr;
}

/**
 * vmem_sbm_find_run() - find the next run of sub-blocks in one state
 * @sbm: bookkeeping
 * @from: first sub-block to look at, counted from the start of the region
 * @end: sub-blocks at or after @end are not looked at
 * @plugged: state to look for
 * @start: set to the first sub-block of the run
 * @nr: set to the length of the run, which ends at @end at the latest
 *
 * Return: true if a run was found.
 */
bool vmem_sbm_find_run(const struct vmem_sbm *sbm, unsigned long from,
		       unsigned long end, bool plugged, unsigned long *start,
		       unsigned long *nr)
{
	unsigned long first, last;

	end = min(end, sbm->nr_mbs * sbm->sbs_per_mb);
	if (from >= end)
		return false;
	if (plugged) {
		first = find_next_bit(sbm->plugged, end, from);
		if (first >= end)
			return false;
		last = find_next_zero_bit(sbm->plugged, end, first);
	} else {
		first = find_next_zero_bit(sbm->plugged, end, from);
		if (first >= end)
			return false;
		last = find_next_bit(sbm->plugged, end, first);
	}
	*start = first;
	*nr = last - first;
	return true;
}

/**
 * vmem_sbm_next_run() - find the next run of sub-blocks within one block
 * @sbm: bookkeeping
 * @mb: memory block index
 * @from: first sub-block within @mb to look at
 * @plugged: state to look for
 * @start: set to the first sub-block of the run, within @mb
 * @nr: set to the length of the run
 *
 * Return: true if a run was found at or after @from within @mb.
 */
bool vmem_sbm_next_run(const struct vmem_sbm *sbm, unsigned long mb,
		       unsigned int from, bool plugged, unsigned int *start,
		       unsigned int *nr)
{
	unsigned long base = vmem_sbm_index(sbm, mb, 0);
	unsigned long first, len;

	if (from >= sbm->sbs_per_mb ||
	    !vmem_sbm_find_run(sbm, base + from, base + sbm->sbs_per_mb,
			       plugged, &first, &len))
		return false;
	*start = first - base;
	*nr = len;
	return true;
}

/**
 * vmem_sbm_next_new() - the unused memory blocks to add next
 * @sbm: bookkeeping
 * @limit: memory blocks at or after @limit are not used
 * @max: most memory blocks wanted
 * @mb: set to the first of them
 *
 * The first unused memory block in plug order (vmem_plug_order()), and
 * those that follow it both in plug order and in address, so that one
 * request can plug them all.
 *
 * Return: how many, at most @max; 0 if no unused memory block is left.
 */
unsigned long vmem_sbm_next_new(const struct vmem_sbm *sbm,
				unsigned long limit, unsigned long max,
				unsigned long *mb)
{
	unsigned long i, first, nr = 0;

	limit = min(limit, sbm->nr_mbs);
	if (!sbm->count[VMEM_MB_UNUSED])
		return 0;
	for (i = 0; i < limit; i++) {
		first = vmem_plug_order(i, limit);
		if (sbm->state[first] != VMEM_MB_UNUSED)
			continue;
		while (nr < max && i + nr < limit &&
		       vmem_plug_order(i + nr, limit) == first + nr &&
		       sbm->state[first + nr] == VMEM_MB_UNUSED)
			nr++;
		*mb = first;
		return nr;
	}
	return 0;
}

/**
 * vmem_max_units_per_req() - how many units one request can cover
 * @unit_size: size of a unit (a sub-block or a memory block), in bytes
 * @block_size: device block size, in bytes; divides @unit_size
 *
 * A request carries at most VIRTIO_MEM_REQ_MAX_BLOCKS device blocks; callers
 * split longer runs at unit boundaries so each request stays aligned.
 *
 * Return: the number of whole units that fit in one request, at least 1 if
 * a single unit fits, 0 if not even one does.
 */
unsigned long vmem_max_units_per_req(u64 unit_size, u64 block_size)
{
	u64 blocks_per_unit = div64_u64(unit_size, block_size);

	if (!blocks_per_unit || blocks_per_unit > VIRTIO_MEM_REQ_MAX_BLOCKS)
		return 0;
	return div64_u64(VIRTIO_MEM_REQ_MAX_BLOCKS, blocks_per_unit);
}

/**
 * vmem_split_take() - split a take of pages into parts for several CPUs
 * @start: first pfn
 * @nr: pages
 * @align: part boundaries are multiples of it (a power of two)
 * @min_part: pages a part must have to be worth a CPU of its own
 * @max_parts: at most this many parts; @ends has room for them
 * @ends: set to the end pfn of each part, in order
 *
 * Migrating what is in use is most of taking busy pages; parts taken at
 * the same time on different CPUs migrate side by side. Boundaries on
 * @align (the largest buddy page) keep the parts from sharing a pageblock
 * or a free page, which parallel isolations must not.
 *
 * Return: the number of parts, at least 1; the last one ends at
 * @start + @nr.
 */
unsigned int vmem_split_take(unsigned long start, unsigned long nr,
			     unsigned long align, unsigned long min_part,
			     unsigned int max_parts, unsigned long *ends)
{
	unsigned long end = start + nr, prev = start, pos;
	unsigned int parts = 1, k, n = 0;

	if (min_part && max_parts > 1)
		parts = min_t(unsigned long, max_parts, nr / min_part);
	for (k = 1; k < parts; k++) {
		pos = round_down(start + nr / parts * k, align);
		if (pos <= prev || pos - prev < min_part ||
		    end - pos < min_part)
			continue;
		ends[n++] = pos;
		prev = pos;
	}
	ends[n++] = end;
	return n;
}
