// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem in a crash kernel.
 *
 * The dump of the crashed kernel (/proc/vmcore) covers whole added memory
 * blocks, their unplugged parts included: kexec_file_load() builds the
 * dump's memory map from the resources of added memory. Reading unplugged
 * memory costs the host memory it was told it could reclaim, and is not
 * allowed at all with VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE. So in a crash
 * kernel the driver only tells /proc/vmcore which pages of its region are
 * RAM, from STATE requests, cached per device block. It plugs, unplugs and
 * adds nothing there: the crashed kernel's memory must stay as it was.
 *
 * Readers of /proc/vmcore may run concurrently: each answer is read under
 * the request lock (vmem_req_state()), and the cache is filled with
 * release-acquire ordering.
 */
#include <linux/crash_dump.h>
#include <linux/slab.h>

#include "virtio_mem_dev.h"

#ifdef CONFIG_PROC_VMCORE

/* Whether device block @block is plugged; asks the device once. */
static bool vmem_kdump_block_plugged(struct vmem *vm, unsigned long block)
{
	int state;

	if (vm->kdump_known && test_bit(block, vm->kdump_known)) {
		/* Pairs with smp_mb__before_atomic() below. */
		smp_rmb();
		return test_bit(block, vm->kdump_plugged);
	}
	state = vmem_req_state(vm, vm->cfg.addr + block * vm->cfg.block_size,
			       vm->cfg.block_size);
	/* No answer (BUSY, broken device) is not cached: ask again later. */
	if (state < 0 || !vm->kdump_known)
		return state == VIRTIO_MEM_STATE_PLUGGED;
	if (state == VIRTIO_MEM_STATE_PLUGGED)
		set_bit(block, vm->kdump_plugged);
	/* Readers that see the block known must see its plugged bit. */
	smp_mb__before_atomic();
	set_bit(block, vm->kdump_known);
	return state == VIRTIO_MEM_STATE_PLUGGED;
}

/*
 * Memory outside the region is not ours to judge. Inside it, anything but
 * a plugged device block is not RAM: on any doubt a page of zeroes in the
 * dump is better than reading unplugged memory.
 */
static bool vmem_kdump_pfn_is_ram(struct vmcore_cb *cb, unsigned long pfn)
{
	struct vmem *vm = container_of(cb, struct vmem, vmcore_cb);
	u64 addr = PFN_PHYS(pfn);
	u64 offset;

	if (addr < vm->cfg.addr || addr - vm->cfg.addr >= vm->cfg.region_size)
		return true;
	offset = addr - vm->cfg.addr;
	if (offset >= vm->cfg.usable_region_size)
		return false;
	return vmem_kdump_block_plugged(vm, div64_u64(offset,
						      vm->cfg.block_size));
}

/**
 * vmem_kdump_init() - answer /proc/vmcore for the device's region
 * @vm: the device, configuration validated, DRIVER_OK set
 *
 * Without memory for the cache it asks the device for every page instead:
 * slower, but a dump that reads unplugged memory is worse.
 *
 * Return: 0.
 */
int vmem_kdump_init(struct vmem *vm)
{
	unsigned long longs;

	vm->kdump_blocks = div64_u64(vm->cfg.usable_region_size,
				     vm->cfg.block_size);
	longs = BITS_TO_LONGS(vm->kdump_blocks);
	vm->kdump_known = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	vm->kdump_plugged = kvcalloc(longs, sizeof(long), GFP_KERNEL);
	if (!vm->kdump_known || !vm->kdump_plugged) {
		kvfree(vm->kdump_known);
		kvfree(vm->kdump_plugged);
		vm->kdump_known = NULL;
		vm->kdump_plugged = NULL;
		dev_warn(&vm->vdev->dev,
			 "crash kernel: no memory to cache block states: asking the device for every page\n");
	}
	vm->vmcore_cb.pfn_is_ram = vmem_kdump_pfn_is_ram;
	register_vmcore_cb(&vm->vmcore_cb);
	dev_info(&vm->vdev->dev,
		 "crash kernel: the dump reads only plugged memory of [0x%llx-0x%llx] (%llu MiB plugged)\n",
		 vm->cfg.addr, vm->cfg.addr + vm->cfg.region_size - 1,
		 vm->cfg.plugged_size >> 20);
	return 0;
}

/**
 * vmem_kdump_exit() - undo vmem_kdump_init()
 * @vm: the device
 */
void vmem_kdump_exit(struct vmem *vm)
{
	if (vm->vmcore_cb.pfn_is_ram) {
		unregister_vmcore_cb(&vm->vmcore_cb);
		vm->vmcore_cb.pfn_is_ram = NULL;
	}
	kvfree(vm->kdump_known);
	kvfree(vm->kdump_plugged);
	vm->kdump_known = NULL;
	vm->kdump_plugged = NULL;
}

#else /* !CONFIG_PROC_VMCORE */

/* No /proc/vmcore: nothing reads the crashed kernel's memory. */
int vmem_kdump_init(struct vmem *vm)
{
	return 0;
}

void vmem_kdump_exit(struct vmem *vm)
{
}

#endif /* CONFIG_PROC_VMCORE */
