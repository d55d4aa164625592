/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem block-state bookkeeping: which sub-blocks of which Linux memory
 * blocks are plugged, and what state each memory block is in. Pure data and
 * arithmetic, no device or mm access, so KUnit can test it directly.
 */
#ifndef _VIRTIO_MEM_BLOCKS_H
#define _VIRTIO_MEM_BLOCKS_H

#include <linux/types.h>
#include <linux/virtio_mem.h>

/**
 * enum vmem_mb_state - what Linux knows of one memory block of the region
 * @VMEM_MB_UNUSED: not added to Linux; all of its sub-blocks are unplugged
 * @VMEM_MB_OFFLINE: added, offline
 * @VMEM_MB_ONLINE: added and online
 * @VMEM_MB_REMOVING: being offlined and removed by the driver
 * @VMEM_MB_ONLINING: being onlined (sysfs or the online policy)
 * @VMEM_MB_OFFLINING: being offlined (sysfs)
 * @VMEM_MB_NR_STATES: number of states
 *
 * The driver leaves the sub-blocks of a block alone while it is onlining or
 * offlining: the core reads them meanwhile.
 */
enum vmem_mb_state {
	VMEM_MB_UNUSED = 0,
	VMEM_MB_OFFLINE,
	VMEM_MB_ONLINE,
	VMEM_MB_REMOVING,
	VMEM_MB_ONLINING,
	VMEM_MB_OFFLINING,
	VMEM_MB_NR_STATES,
};

/**
 * struct vmem_sbm - sub-block bookkeeping for a device region
 * @nr_mbs: memory blocks covered (index 0 is the first in the region)
 * @sbs_per_mb: sub-blocks per memory block
 * @state: one enum vmem_mb_state per memory block
 * @plugged: one bit per sub-block, set when plugged
 * @count: memory blocks per state
 */
struct vmem_sbm {
	unsigned long nr_mbs;
	unsigned int sbs_per_mb;
	u8 *state;
	unsigned long *plugged;
	unsigned long count[VMEM_MB_NR_STATES];
};

int vmem_sbm_init(struct vmem_sbm *sbm, unsigned long nr_mbs,
		  unsigned int sbs_per_mb);
void vmem_sbm_destroy(struct vmem_sbm *sbm);

enum vmem_mb_state vmem_sbm_state(const struct vmem_sbm *sbm,
				  unsigned long mb);
void vmem_sbm_set_state(struct vmem_sbm *sbm, unsigned long mb,
			enum vmem_mb_state state);

void vmem_sbm_mark(struct vmem_sbm *sbm, unsigned long first,
		   unsigned long nr, bool plugged);
bool vmem_sbm_test(const struct vmem_sbm *sbm, unsigned long mb,
		   unsigned int sb, unsigned int nr, bool plugged);
unsigned int vmem_sbm_plugged_in_mb(const struct vmem_sbm *sbm,
				    unsigned long mb);
bool vmem_sbm_find_run(const struct vmem_sbm *sbm, unsigned long from,
		       unsigned long end, bool plugged, unsigned long *start,
		       unsigned long *nr);
bool vmem_sbm_next_run(const struct vmem_sbm *sbm, unsigned long mb,
		       unsigned int from, bool plugged, unsigned int *start,
		       unsigned int *nr);
unsigned long vmem_sbm_count_unused(const struct vmem_sbm *sbm,
				    unsigned long mb, unsigned long limit,
				    unsigned long max);
bool vmem_sbm_find_state(const struct vmem_sbm *sbm, unsigned long from,
			 unsigned long limit, enum vmem_mb_state state,
			 unsigned long *mb);

/* Index of sub-block @sb of memory block @mb, from the region start. */
static inline unsigned long vmem_sbm_index(const struct vmem_sbm *sbm,
					   unsigned long mb, unsigned int sb)
{
	return mb * sbm->sbs_per_mb + sb;
}

unsigned long vmem_max_units_per_req(u64 unit_size, u64 block_size);

/**
 * vmem_backoff_next() - next delay of a bounded exponential backoff
 * @cur_ms: current delay, 0 when no backoff is running
 * @min_ms: first delay
 * @max_ms: upper bound
 *
 * Return: @min_ms after a success (@cur_ms == 0), else twice @cur_ms,
 * never more than @max_ms.
 */
static inline unsigned int vmem_backoff_next(unsigned int cur_ms,
					     unsigned int min_ms,
					     unsigned int max_ms)
{
	if (!cur_ms)
		return min_ms < max_ms ? min_ms : max_ms;
	if (cur_ms >= max_ms / 2)
		return max_ms;
	return cur_ms * 2;
}

/**
 * vmem_adopt_keep() - whether a sub-block found at load time stays plugged
 * @present: Linux has its memory block added
 * @online: that memory block is online
 * @in_use: Linux has the sub-block's pages (only meaningful if @online)
 * @state: what the device says of the sub-block (VIRTIO_MEM_STATE_*)
 *
 * Of an online block, Linux uses exactly the pages it has, whatever the
 * device says; an offline block holds what the device has plugged in
 * whole; memory Linux does not have is unused.
 *
 * Return: true if the sub-block must be plugged and counted as such.
 */
static inline bool vmem_adopt_keep(bool present, bool online, bool in_use,
				   int state)
{
	if (!present)
		return false;
	if (online)
		return in_use;
	return state == VIRTIO_MEM_STATE_PLUGGED;
}

#endif /* _VIRTIO_MEM_BLOCKS_H */
