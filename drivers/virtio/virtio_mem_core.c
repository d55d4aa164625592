// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem: paravirtualized memory hot(un)plug.
 *
 * Probe and removal, module parameters, and the work item that drives the
 * device towards the host's requested size.
 */
#include <linux/crash_dump.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/numa.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#ifdef CONFIG_ACPI_NUMA
#include <acpi/acpi_numa.h>
#endif

#include "virtio_mem_dev.h"

/* --- module parameters --- */

struct vmem_uint_param {
	unsigned int *val;
	unsigned int min;
	unsigned int max;
};

static int vmem_param_set(const char *s, const struct kernel_param *kp)
{
	const struct vmem_uint_param *p = kp->arg;
	unsigned int val;

	if (kstrtouint(s, 0, &val)) {
		pr_err("virtio_mem: %s: '%s' is not a number\n", kp->name, s);
		return -EINVAL;
	}
	if (val < p->min || val > p->max) {
		pr_err("virtio_mem: %s=%u is out of range [%u, %u]\n",
		       kp->name, val, p->min, p->max);
		return -ERANGE;
	}
	WRITE_ONCE(*p->val, val);
	return 0;
}

static int vmem_param_get(char *buf, const struct kernel_param *kp)
{
	const struct vmem_uint_param *p = kp->arg;

	return sysfs_emit(buf, "%u\n", READ_ONCE(*p->val));
}

static const struct kernel_param_ops vmem_uint_param_ops = {
	.set = vmem_param_set,
	.get = vmem_param_get,
};

/* Each parameter: its value, its bounds, and the ops that enforce them. */
#define VMEM_PARAM(var, lo, hi)						\
	static struct vmem_uint_param var##_param = {			\
		.val = &(var), .min = (lo), .max = (hi),		\
	}

unsigned int vmem_offline_limit_mb = 1024;
VMEM_PARAM(vmem_offline_limit_mb, 128, 1048576);
module_param_cb(offline_limit_mb, &vmem_uint_param_ops,
		&vmem_offline_limit_mb_param, 0644);
MODULE_PARM_DESC(offline_limit_mb,
		 "Stop adding memory while this many MiB are added but offline [128..1048576]");

unsigned int vmem_backoff_min_ms = 100;
VMEM_PARAM(vmem_backoff_min_ms, 10, 60000);
module_param_cb(backoff_min_ms, &vmem_uint_param_ops,
		&vmem_backoff_min_ms_param, 0644);
MODULE_PARM_DESC(backoff_min_ms,
		 "First retry delay after a failure, in ms [10..60000]");

unsigned int vmem_backoff_max_ms = 10000;
VMEM_PARAM(vmem_backoff_max_ms, 10, 600000);
module_param_cb(backoff_max_ms, &vmem_uint_param_ops,
		&vmem_backoff_max_ms_param, 0644);
MODULE_PARM_DESC(backoff_max_ms,
		 "Longest retry delay after repeated failures, in ms [10..600000]");

unsigned int vmem_req_timeout_s = 60;
VMEM_PARAM(vmem_req_timeout_s, 1, 3600);
module_param_cb(request_timeout_s, &vmem_uint_param_ops,
		&vmem_req_timeout_s_param, 0644);
MODULE_PARM_DESC(request_timeout_s,
		 "Stop using a device that leaves a request unanswered this long, in s [1..3600]");

/* --- configuration --- */

static void vmem_read_config(struct vmem *vm, struct vmem_cfg *cfg)
{
	struct virtio_device *vdev = vm->vdev;

	memset(cfg, 0, sizeof(*cfg));
	virtio_cread_le(vdev, struct virtio_mem_config, block_size,
			&cfg->block_size);
	virtio_cread_le(vdev, struct virtio_mem_config, addr, &cfg->addr);
	virtio_cread_le(vdev, struct virtio_mem_config, region_size,
			&cfg->region_size);
	virtio_cread_le(vdev, struct virtio_mem_config, usable_region_size,
			&cfg->usable_region_size);
	virtio_cread_le(vdev, struct virtio_mem_config, plugged_size,
			&cfg->plugged_size);
	virtio_cread_le(vdev, struct virtio_mem_config, requested_size,
			&cfg->requested_size);
	cfg->has_pxm = virtio_has_feature(vdev, VIRTIO_MEM_F_ACPI_PXM);
	if (cfg->has_pxm)
		virtio_cread_le(vdev, struct virtio_mem_config, node_id,
				&cfg->node_id);
}

static void vmem_update_usable(struct vmem *vm)
{
	u64 end = vm->cfg.addr + vm->cfg.usable_region_size;
	unsigned long last = div64_u64(end, vm->mb_size);

	vm->usable_mbs = last > vm->first_mb ?
			 min(last - vm->first_mb, vm->sbm.nr_mbs) : 0;
}

/* Re-read the configuration; a device that breaks the contract is dropped. */
static int vmem_refresh_config(struct vmem *vm)
{
	struct vmem_cfg cur;
	const char *why;

	vmem_read_config(vm, &cur);
	if (vmem_cfg_check_update(&vm->cfg, &cur, &why)) {
		dev_err(&vm->vdev->dev,
			"invalid configuration update: %s; stopping\n", why);
		vm->broken = true;
		return -EINVAL;
	}
	vm->cfg = cur;
	vmem_update_usable(vm);

	if (!vm->unplug_all && cur.plugged_size != vm->plugged &&
	    !vm->warned_mismatch) {
		vm->warned_mismatch = true;
		dev_warn(&vm->vdev->dev,
			 "device reports %llu MiB plugged, driver %llu MiB\n",
			 cur.plugged_size >> 20, vm->plugged >> 20);
	}
	return 0;
}

/* --- the state machine --- */

/**
 * vmem_queue_work() - run the state machine soon
 * @vm: the device
 */
void vmem_queue_work(struct vmem *vm)
{
	unsigned long flags;

	spin_lock_irqsave(&vm->lock, flags);
	if (!vm->removing)
		mod_delayed_work(system_freezable_wq, &vm->work, 0);
	spin_unlock_irqrestore(&vm->lock, flags);
}

static void vmem_retry_later(struct vmem *vm)
{
	unsigned long flags;

	vm->backoff_ms = vmem_backoff_next(vm->backoff_ms,
					   READ_ONCE(vmem_backoff_min_ms),
					   READ_ONCE(vmem_backoff_max_ms));
	spin_lock_irqsave(&vm->lock, flags);
	if (!vm->removing)
		queue_delayed_work(system_freezable_wq, &vm->work,
				   msecs_to_jiffies(vm->backoff_ms));
	spin_unlock_irqrestore(&vm->lock, flags);
}

static int vmem_do_unplug_all(struct vmem *vm)
{
	int rc = vmem_req_unplug_all(vm);

	if (rc)
		return rc;
	vm->unplug_all = false;
	dev_info(&vm->vdev->dev, "unplugged memory left plugged from before\n");
	/* The usable region may have shrunk. */
	return vmem_refresh_config(vm);
}

static void vmem_work_fn(struct work_struct *work)
{
	struct vmem *vm = container_of(to_delayed_work(work), struct vmem,
				       work);
	int rc;

	if (vm->broken)
		return;
	rc = vmem_refresh_config(vm);
	if (!rc && vm->unplug_all)
		rc = vmem_do_unplug_all(vm);
	if (!rc) {
		if (vm->cfg.requested_size > vm->plugged)
			rc = vmem_sbm_plug(vm, vm->cfg.requested_size -
					   vm->plugged);
		else if (vm->cfg.requested_size < vm->plugged)
			dev_info_once(&vm->vdev->dev,
				      "unplugging is not supported: %llu MiB stay plugged\n",
				      vm->plugged >> 20);
	}

	switch (rc) {
	case 0:
		vm->backoff_ms = 0;
		break;
	case -ENOSPC:
		/* Onlining or a configuration change wakes us up. */
		vm->backoff_ms = 0;
		break;
	case -ETIMEDOUT:
	case -ENODEV:
	case -EINVAL:
		/* Logged where detected; the device is unusable. */
		break;
	default:
		/* BUSY, NACK, ERROR, out of memory: try again later. */
		vmem_retry_later(vm);
		break;
	}
}

static void vmem_config_changed(struct virtio_device *vdev)
{
	vmem_queue_work(vdev->priv);
}

/* --- probe and removal --- */

static int vmem_pick_node(struct vmem *vm)
{
	int nid = NUMA_NO_NODE;

#ifdef CONFIG_ACPI_NUMA
	if (vm->cfg.has_pxm) {
		nid = pxm_to_node(vm->cfg.node_id);
		if (nid == NUMA_NO_NODE)
			dev_warn(&vm->vdev->dev,
				 "unknown proximity domain %u, using the node of the address\n",
				 vm->cfg.node_id);
	}
#endif
	if (nid == NUMA_NO_NODE)
		nid = memory_add_physaddr_to_nid(vm->cfg.addr);
	return nid;
}

static int vmem_check_pluggable(struct vmem *vm)
{
	struct range pluggable = mhp_get_pluggable_range(true);
	u64 last = vm->cfg.addr + vm->cfg.region_size - 1;

	if (vm->cfg.addr < pluggable.start || last > pluggable.end) {
		dev_err(&vm->vdev->dev,
			"device region [0x%llx-0x%llx] is outside the hot-pluggable range [0x%llx-0x%llx]\n",
			vm->cfg.addr, last, pluggable.start, pluggable.end);
		return -EINVAL;
	}
	if (vm->cfg.block_size >= vm->mb_size) {
		dev_err(&vm->vdev->dev,
			"device block size %llu MiB >= memory block size %llu MiB is not supported yet\n",
			vm->cfg.block_size >> 20, vm->mb_size >> 20);
		return -EOPNOTSUPP;
	}
	return 0;
}

static int vmem_reserve_region(struct vmem *vm)
{
	const char *name = dev_name(&vm->vdev->dev);
	struct resource *res;

	res = __request_mem_region(vm->cfg.addr, vm->cfg.region_size, name, 0);
	if (!res) {
		dev_err(&vm->vdev->dev,
			"device region [0x%llx-0x%llx] is busy: memory of an earlier driver instance may still be in use\n",
			vm->cfg.addr, vm->cfg.addr + vm->cfg.region_size - 1);
		return -EBUSY;
	}
	/* Not busy: memory added later must nest inside the reservation. */
	res->flags &= ~IORESOURCE_BUSY;
	vm->parent = res;
	return 0;
}

static void vmem_release_region(struct vmem *vm)
{
	release_resource(vm->parent);
	kfree(vm->parent);
	vm->parent = NULL;
}

static int vmem_init(struct vmem *vm)
{
	struct device *dev = &vm->vdev->dev;
	const char *why;
	int rc;

	vmem_read_config(vm, &vm->cfg);
	if (vmem_cfg_check(&vm->cfg, &why)) {
		dev_err(dev, "invalid device configuration: %s\n", why);
		return -EINVAL;
	}
	vm->mb_size = memory_block_size_bytes();
	rc = vmem_check_pluggable(vm);
	if (rc)
		return rc;
	vm->nid = vmem_pick_node(vm);

	rc = vmem_reserve_region(vm);
	if (rc)
		return rc;
	if (vmem_mm_region_in_use(vm->cfg.addr, vm->cfg.region_size)) {
		dev_err(dev, "device region already holds System RAM: not touching it\n");
		rc = -EBUSY;
		goto err_region;
	}
	rc = vmem_sbm_init_dev(vm);
	if (rc)
		goto err_region;
	vmem_update_usable(vm);
	rc = vmem_mm_register(vm);
	if (rc)
		goto err_sbm;

	/* Nothing of the region is in use: leftovers can go. */
	vm->unplug_all = vm->cfg.plugged_size != 0;
	if (vm->unplug_all)
		dev_info(dev, "%llu MiB plugged from before: unplugging all\n",
			 vm->cfg.plugged_size >> 20);
	dev_info(dev,
		 "region [0x%llx-0x%llx], block %llu KiB, sub-block %llu KiB, node %d, requested %llu MiB\n",
		 vm->cfg.addr, vm->cfg.addr + vm->cfg.region_size - 1,
		 vm->cfg.block_size >> 10, vm->sb_size >> 10, vm->nid,
		 vm->cfg.requested_size >> 20);
	return 0;

err_sbm:
	vmem_sbm_destroy(&vm->sbm);
err_region:
	vmem_release_region(vm);
	return rc;
}

static int vmem_probe(struct virtio_device *vdev)
{
	struct vmem *vm;
	int rc;

	if (is_kdump_kernel()) {
		dev_warn(&vdev->dev,
			 "not binding in a kdump kernel: dumping device memory is not supported\n");
		return -EBUSY;
	}
	if (!vdev->config->get) {
		dev_err(&vdev->dev, "device has no configuration space\n");
		return -EINVAL;
	}

	vm = kzalloc(sizeof(*vm), GFP_KERNEL);
	if (!vm)
		return -ENOMEM;
	vm->vdev = vdev;
	vdev->priv = vm;
	init_waitqueue_head(&vm->resp_wq);
	mutex_init(&vm->req_lock);
	mutex_init(&vm->hp_lock);
	spin_lock_init(&vm->lock);
	INIT_DELAYED_WORK(&vm->work, vmem_work_fn);
	INIT_LIST_HEAD(&vm->list);

	vm->vq = virtio_find_single_vq(vdev, vmem_vq_done, "requests");
	if (IS_ERR(vm->vq)) {
		rc = PTR_ERR(vm->vq);
		goto err_free;
	}
	rc = vmem_init(vm);
	if (rc)
		goto err_vqs;

	virtio_device_ready(vdev);
	vmem_queue_work(vm);
	return 0;

err_vqs:
	vdev->config->del_vqs(vdev);
err_free:
	kfree(vm);
	vdev->priv = NULL;
	return rc;
}

static void vmem_remove(struct virtio_device *vdev)
{
	struct vmem *vm = vdev->priv;
	bool in_use;

	spin_lock_irq(&vm->lock);
	vm->removing = true;
	spin_unlock_irq(&vm->lock);
	cancel_delayed_work_sync(&vm->work);

	if (!vm->broken)
		vmem_sbm_teardown(vm);
	in_use = vm->sbm.count[VMEM_MB_UNUSED] != vm->sbm.nr_mbs;
	if (!in_use && vm->plugged && !vm->broken)
		vmem_req_unplug_all(vm);

	virtio_reset_device(vdev);
	vdev->config->del_vqs(vdev);
	vmem_mm_unregister(vm);

	if (in_use) {
		/* Keep the reservation: it marks the memory as ours. */
		dev_warn(&vdev->dev,
			 "%llu MiB stay plugged and online: they are in use\n",
			 vm->plugged >> 20);
	} else {
		vmem_release_region(vm);
	}
	vmem_sbm_destroy(&vm->sbm);
	kfree(vm);
}

static unsigned int vmem_features[] = {
#ifdef CONFIG_ACPI_NUMA
	VIRTIO_MEM_F_ACPI_PXM,
#endif
	VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE,
};

static const struct virtio_device_id vmem_id_table[] = {
	{ VIRTIO_ID_MEM, VIRTIO_DEV_ANY_ID },
	{ 0 },
};

static struct virtio_driver vmem_driver = {
	.feature_table = vmem_features,
	.feature_table_size = ARRAY_SIZE(vmem_features),
	.driver.name = KBUILD_MODNAME,
	.driver.owner = THIS_MODULE,
	.id_table = vmem_id_table,
	.probe = vmem_probe,
	.remove = vmem_remove,
	.config_changed = vmem_config_changed,
};

module_virtio_driver(vmem_driver);
MODULE_DEVICE_TABLE(virtio, vmem_id_table);
MODULE_DESCRIPTION("Virtio-mem driver");
MODULE_LICENSE("GPL");
