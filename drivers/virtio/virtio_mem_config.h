/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem configuration snapshot and its validation: pure logic, no
 * device access, so that it can be unit-tested without a device.
 */
#ifndef _VIRTIO_MEM_CONFIG_H
#define _VIRTIO_MEM_CONFIG_H

#include <linux/types.h>

/**
 * struct vmem_cfg - CPU-endian copy of the device configuration
 * @block_size: device block size in bytes
 * @addr: guest-physical start of the device region
 * @region_size: size of the device region
 * @usable_region_size: usable part of the region, from @addr
 * @plugged_size: bytes plugged according to the device
 * @requested_size: bytes the host wants plugged
 * @node_id: ACPI proximity domain (only meaningful with @has_pxm)
 * @has_pxm: VIRTIO_MEM_F_ACPI_PXM was negotiated
 */
struct vmem_cfg {
	u64 block_size;
	u64 addr;
	u64 region_size;
	u64 usable_region_size;
	u64 plugged_size;
	u64 requested_size;
	u16 node_id;
	bool has_pxm;
};

/**
 * enum vmem_sleep - system sleep states, as far as the device cares
 * @VMEM_SLEEP_S2IDLE: suspend to idle: the machine keeps running
 * @VMEM_SLEEP_S3: suspend to RAM: the host may reset the machine on wakeup
 * @VMEM_SLEEP_HIBERNATE: the guest's memory goes to an image and back
 */
enum vmem_sleep {
	VMEM_SLEEP_S2IDLE,
	VMEM_SLEEP_S3,
	VMEM_SLEEP_HIBERNATE,
};

int vmem_cfg_check(const struct vmem_cfg *cfg, const char **why);
const char *vmem_sleep_refusal(enum vmem_sleep sleep, bool plugged,
			       bool persistent);
int vmem_cfg_check_update(const struct vmem_cfg *old,
			  const struct vmem_cfg *cur, const char **why);

#endif /* _VIRTIO_MEM_CONFIG_H */
