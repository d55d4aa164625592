/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem growth budgets: how many memory blocks may be added now. Added
 * memory costs the guest memory it already has: its memmap, and nothing
 * at all in return while it stays offline. Pure arithmetic, so KUnit can
 * test it without a device.
 */
#ifndef _VIRTIO_MEM_BUDGET_H
#define _VIRTIO_MEM_BUDGET_H

#include <linux/math64.h>
#include <linux/minmax.h>
#include <linux/types.h>

/**
 * enum vmem_plug_wait - why plugging waits
 * @VMEM_WAIT_NONE: it does not
 * @VMEM_WAIT_ONLINE: memory added earlier must be onlined first
 * @VMEM_WAIT_MEMMAP: the memmap of more memory would leave the guest too
 *	little memory outside ZONE_MOVABLE
 * @VMEM_WAIT_UNIT: what is left to plug is less than the driver's unit
 */
enum vmem_plug_wait {
	VMEM_WAIT_NONE = 0,
	VMEM_WAIT_ONLINE,
	VMEM_WAIT_MEMMAP,
	VMEM_WAIT_UNIT,
};

/**
 * vmem_offline_cap() - memory blocks that may still be added and left offline
 * @limit: offline_limit_mb, in bytes
 * @offline: memory blocks added and offline now
 * @mb_size: memory block size, in bytes
 * @min_mbs: memory blocks one device block spans (1 in sub-block mode)
 *
 * The cap never drops below one device block, nor below two memory blocks
 * (one being onlined while the next is added): a device block larger than
 * offline_limit_mb would otherwise never plug.
 *
 * Return: the number of memory blocks, 0 when adding must wait.
 */
static inline unsigned long vmem_offline_cap(u64 limit, unsigned long offline,
					     u64 mb_size,
					     unsigned long min_mbs)
{
	unsigned long cap = div64_u64(limit, mb_size);

	cap = max3(cap, min_mbs, 2UL);
	return offline < cap ? cap - offline : 0;
}

/**
 * vmem_memmap_cap() - memory blocks whose memmap fits in free memory now
 * @free: free pages outside ZONE_MOVABLE, above the zones' high watermarks
 * @reserve: pages of those to leave free for the kernel
 * @cost: memmap pages one memory block needs from there; 0 when its
 *	memmap lives in the block itself (memmap_on_memory)
 *
 * The memmap of added memory comes from memory outside ZONE_MOVABLE, as
 * do page tables and kernel allocations. Using it all up kills the guest,
 * whatever amount of movable memory it has.
 *
 * Return: the number of memory blocks, ULONG_MAX when they cost nothing.
 */
static inline unsigned long vmem_memmap_cap(unsigned long free,
					    unsigned long reserve,
					    unsigned long cost)
{
	if (free <= reserve)
		return cost ? 0 : ULONG_MAX;
	return cost ? (free - reserve) / cost : ULONG_MAX;
}

#endif /* _VIRTIO_MEM_BUDGET_H */
