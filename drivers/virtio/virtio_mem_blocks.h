/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem block-state bookkeeping: which sub-blocks of which Linux memory
 * blocks are plugged, and what state each memory block is in. Pure data and
 * arithmetic, no device or mm access, so KUnit can test it directly.
 */
#ifndef _VIRTIO_MEM_BLOCKS_H
#define _VIRTIO_MEM_BLOCKS_H

#include <linux/errno.h>
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

/* Index of sub-block @sb of memory block @mb, from the region start. */
static inline unsigned long vmem_sbm_index(const struct vmem_sbm *sbm,
					   unsigned long mb, unsigned int sb)
{
	return mb * sbm->sbs_per_mb + sb;
}

unsigned long vmem_max_units_per_req(u64 unit_size, u64 block_size);

/**
 * vmem_plug_order() - the unit to add @i-th, of @nr
 * @i: position in plug order, below @nr
 * @nr: units (memory blocks, or big blocks) of the region
 *
 * Lowest address first, but unit 1 last; unplugging goes the other way,
 * unit 1 first. While unit 1 is missing, the kernel's zone contiguity
 * check, which walks the zone up to its first hole at every onlining and
 * offlining (set_zone_contiguous()), stops there: without a hole that
 * walk grows with the memory added, and growing by hundreds of GiB costs
 * time that grows with the square of the size.
 *
 * Return: the unit's index.
 */
static inline unsigned long vmem_plug_order(unsigned long i, unsigned long nr)
{
	if (nr < 3 || i < 1)
		return i;
	return i == nr - 1 ? 1 : i + 1;
}

unsigned long vmem_sbm_next_new(const struct vmem_sbm *sbm,
				unsigned long limit, unsigned long max,
				unsigned long *mb);

unsigned int vmem_split_take(unsigned long start, unsigned long nr,
			     unsigned long align, unsigned long min_part,
			     unsigned int max_parts, unsigned long *ends);

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
 * enum vmem_adopt_action - what taking over memory does with one unit
 * @VMEM_ADOPT_NOTHING: unplugged, and Linux does not use it
 * @VMEM_ADOPT_KEEP: plugged, and Linux has it: count it as plugged
 * @VMEM_ADOPT_PLUG: Linux uses it but the device lost it, in whole or in
 *	part: plug what is missing, and count it as plugged whatever the
 *	device answers
 * @VMEM_ADOPT_UNPLUG: plugged in whole or in part, and nobody uses it:
 *	unplug what is plugged
 */
enum vmem_adopt_action {
	VMEM_ADOPT_NOTHING,
	VMEM_ADOPT_KEEP,
	VMEM_ADOPT_PLUG,
	VMEM_ADOPT_UNPLUG,
};

/**
 * vmem_adopt_decide() - what to do with a unit found at load time
 * @present: Linux has its memory block added
 * @online: that memory block is online
 * @state: what the device says of the unit (VIRTIO_MEM_STATE_*)
 * @all_offline: every page of the unit is PageOffline (only asked for an
 *	online unit the device calls unplugged)
 *
 * The device alone says what is unplugged: a page flag is no evidence of
 * that, since other drivers (a balloon) mark their pages PageOffline too.
 * A page flag can only make the driver keep memory: a page that is not
 * PageOffline in an online block is Linux's, so a unit holding one is in
 * use, whatever the device says. Memory of an offline block, or not added,
 * is nobody's.
 *
 * Return: the action.
 */
static inline enum vmem_adopt_action vmem_adopt_decide(bool present,
						       bool online, int state,
						       bool all_offline)
{
	if (!present || !online) {
		if (state == VIRTIO_MEM_STATE_UNPLUGGED)
			return VMEM_ADOPT_NOTHING;
		if (present && state == VIRTIO_MEM_STATE_PLUGGED)
			return VMEM_ADOPT_KEEP;
		return VMEM_ADOPT_UNPLUG;
	}
	if (state == VIRTIO_MEM_STATE_PLUGGED)
		return VMEM_ADOPT_KEEP;
	if (state == VIRTIO_MEM_STATE_UNPLUGGED && all_offline)
		return VMEM_ADOPT_NOTHING;
	return VMEM_ADOPT_PLUG;
}

/**
 * enum vmem_unplug_wait - why unplugging stopped short of the request
 * @VMEM_UNPLUG_NONE: it did not, or the driver is not unplugging
 * @VMEM_UNPLUG_PRESSURE: the guest cannot spare more (unplug_reserve_mb);
 *	looked at again every pressure_poll_ms
 * @VMEM_UNPLUG_BUSY: memory in use could not be freed now; tried again
 *	after a backoff
 * @VMEM_UNPLUG_ONLINE: only online memory is left, and unplug_online is off
 * @VMEM_UNPLUG_DEVICE: the device refused or failed a request, or has not
 *	answered; tried again after a backoff
 * @VMEM_UNPLUG_UNIT: what is left to unplug is less than the driver's
 *	unit (a sub-block, or a big block)
 */
enum vmem_unplug_wait {
	VMEM_UNPLUG_NONE = 0,
	VMEM_UNPLUG_PRESSURE,
	VMEM_UNPLUG_BUSY,
	VMEM_UNPLUG_ONLINE,
	VMEM_UNPLUG_DEVICE,
	VMEM_UNPLUG_UNIT,
};

/**
 * vmem_unplug_wait_for() - why unplugging stopped, from how it ended
 * @rc: what the block mode's unplug step returned
 *
 * Return: the reason; VMEM_UNPLUG_NONE when it is done or starts over.
 */
static inline enum vmem_unplug_wait vmem_unplug_wait_for(int rc)
{
	switch (rc) {
	case 0:
	case -EINTR:
		return VMEM_UNPLUG_NONE;
	case -ENOBUFS:
		return VMEM_UNPLUG_PRESSURE;
	case -ENOMEM:
		return VMEM_UNPLUG_BUSY;
	case -ENOSPC:
		return VMEM_UNPLUG_ONLINE;
	default:
		return VMEM_UNPLUG_DEVICE;
	}
}

/**
 * vmem_state_merge() - the state of a range from the states of two parts
 * @a: state of the first part (VIRTIO_MEM_STATE_*)
 * @b: state of the second part
 *
 * For STATE requests split at VIRTIO_MEM_REQ_MAX_BLOCKS.
 *
 * Return: @a if both agree, else VIRTIO_MEM_STATE_MIXED.
 */
static inline int vmem_state_merge(int a, int b)
{
	return a == b ? a : VIRTIO_MEM_STATE_MIXED;
}

#endif /* _VIRTIO_MEM_BLOCKS_H */
