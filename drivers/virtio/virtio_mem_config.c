// SPDX-License-Identifier: GPL-2.0-only
/*
 * Validation of the virtio-mem device configuration.
 *
 * A device that breaks the contract must be refused with a message that
 * names the broken rule, before any of its values reach memory hotplug.
 */
#include <linux/errno.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/overflow.h>

#include "virtio_mem_config.h"

static bool vmem_unaligned(u64 val, u64 block_size)
{
	return val & (block_size - 1);
}

/**
 * vmem_cfg_check() - check a configuration against the device contract
 * @cfg: configuration read from the device
 * @why: set to a description of the first broken rule
 *
 * Return: 0 if @cfg is valid, -EINVAL otherwise.
 */
int vmem_cfg_check(const struct vmem_cfg *cfg, const char **why)
{
	u64 end;

	if (!cfg->block_size)
		*why = "block_size is zero";
	else if (!is_power_of_2(cfg->block_size))
		*why = "block_size is not a power of two";
	else if (cfg->block_size < PAGE_SIZE)
		*why = "block_size is smaller than a page";
	else if (!cfg->region_size)
		*why = "region_size is zero";
	else if (cfg->block_size > cfg->region_size)
		*why = "block_size is larger than region_size";
	else if (vmem_unaligned(cfg->addr, cfg->block_size))
		*why = "addr is not aligned to block_size";
	else if (vmem_unaligned(cfg->region_size, cfg->block_size))
		*why = "region_size is not a multiple of block_size";
	else if (check_add_overflow(cfg->addr, cfg->region_size, &end))
		*why = "region crosses the end of the address space";
	else if (vmem_unaligned(cfg->usable_region_size, cfg->block_size))
		*why = "usable_region_size is not a multiple of block_size";
	else if (vmem_unaligned(cfg->plugged_size, cfg->block_size))
		*why = "plugged_size is not a multiple of block_size";
	else if (vmem_unaligned(cfg->requested_size, cfg->block_size))
		*why = "requested_size is not a multiple of block_size";
	else if (cfg->usable_region_size > cfg->region_size)
		*why = "usable_region_size is larger than region_size";
	else if (cfg->requested_size > cfg->usable_region_size)
		*why = "requested_size is larger than usable_region_size";
	else if (cfg->plugged_size > cfg->usable_region_size)
		*why = "plugged_size is larger than usable_region_size";
	else
		return 0;
	return -EINVAL;
}

/**
 * vmem_sleep_refusal() - whether the device lets the system sleep
 * @sleep: the sleep state the system is entering
 * @plugged: memory of the device is plugged
 * @persistent: VIRTIO_MEM_F_PERSISTENT_SUSPEND was negotiated: the device
 *	keeps its state across suspend to RAM
 *
 * Suspend to idle resets nothing. On wakeup from suspend to RAM a host may
 * reset the machine, and with it unplug everything, unless the device
 * promises otherwise; with nothing plugged there is nothing to lose.
 * Hibernation restores an image whose plugged memory the device would no
 * longer have.
 *
 * Return: NULL if the system may sleep, else why not.
 */
const char *vmem_sleep_refusal(enum vmem_sleep sleep, bool plugged,
			       bool persistent)
{
	switch (sleep) {
	case VMEM_SLEEP_S2IDLE:
		return NULL;
	case VMEM_SLEEP_S3:
		if (!plugged || persistent)
			return NULL;
		return "memory is plugged and the device does not keep it across suspend";
	default:
		return "the device's memory would not be plugged when the image is restored";
	}
}

/**
 * vmem_cfg_check_update() - check a configuration change at runtime
 * @old: configuration accepted earlier
 * @cur: configuration read now
 * @why: set to a description of the first broken rule
 *
 * Besides the static rules, the device geometry must never change.
 *
 * Return: 0 if @cur is valid, -EINVAL otherwise.
 */
int vmem_cfg_check_update(const struct vmem_cfg *old,
			  const struct vmem_cfg *cur, const char **why)
{
	if (cur->block_size != old->block_size)
		*why = "block_size changed";
	else if (cur->addr != old->addr)
		*why = "addr changed";
	else if (cur->region_size != old->region_size)
		*why = "region_size changed";
	else if (cur->has_pxm && cur->node_id != old->node_id)
		*why = "node_id changed";
	else
		return vmem_cfg_check(cur, why);
	return -EINVAL;
}
