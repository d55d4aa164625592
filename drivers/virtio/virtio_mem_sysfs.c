// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem user interface: module parameters, with bounds that are
 * enforced with a clear message; sysfs attributes that show what each
 * device is doing (/sys/bus/virtio/devices/virtioN/virtio_mem/), and one
 * that re-arms a stalled device; and the tracepoints (virtio_mem_trace.h,
 * created here). Fault injection is in virtio_mem_fault.c.
 */
#include <linux/device.h>
#include <linux/moduleparam.h>
#include <linux/sysfs.h>

#include "virtio_mem_dev.h"

#define CREATE_TRACE_POINTS
#include "virtio_mem_trace.h"

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
		/* Writes through sysfs end in a newline: leave it out. */
		pr_err("virtio_mem: %s: '%.*s' is not a number\n", kp->name,
		       (int)strcspn(s, "\n"), s);
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

bool vmem_unplug_online = true;
module_param_named(unplug_online, vmem_unplug_online, bool, 0644);
MODULE_PARM_DESC(unplug_online,
		 "Unplug online memory by migrating its pages away; if off, only offline memory is unplugged");

unsigned int vmem_unplug_reserve_mb = 128;
VMEM_PARAM(vmem_unplug_reserve_mb, 16, 1048576);
module_param_cb(unplug_reserve_mb, &vmem_uint_param_ops,
		&vmem_unplug_reserve_mb_param, 0644);
MODULE_PARM_DESC(unplug_reserve_mb,
		 "Never unplug online memory below this much available memory, in MiB [16..1048576]");

unsigned int vmem_pressure_poll_ms = 1000;
VMEM_PARAM(vmem_pressure_poll_ms, 100, 60000);
module_param_cb(pressure_poll_ms, &vmem_uint_param_ops,
		&vmem_pressure_poll_ms_param, 0644);
MODULE_PARM_DESC(pressure_poll_ms,
		 "While unplugging or plugging waits for memory to free up, check this often, in ms [100..60000]");

unsigned int vmem_kernel_reserve_mb = 128;
VMEM_PARAM(vmem_kernel_reserve_mb, 16, 1048576);
module_param_cb(kernel_reserve_mb, &vmem_uint_param_ops,
		&vmem_kernel_reserve_mb_param, 0644);
MODULE_PARM_DESC(kernel_reserve_mb,
		 "Stop adding memory while its memmap would leave less than this much free outside ZONE_MOVABLE, in MiB [16..1048576]");

bool vmem_memmap_on_memory = true;
module_param_named(memmap_on_memory, vmem_memmap_on_memory, bool, 0444);
MODULE_PARM_DESC(memmap_on_memory,
		 "In sub-block mode, place the memmap of added memory in that memory when the kernel allows it (memory_hotplug.memmap_on_memory=1)");

/* Mainline's big-block knobs, so that existing command lines keep working. */
bool vmem_force_bbm;
module_param_named(force_bbm, vmem_force_bbm, bool, 0444);
MODULE_PARM_DESC(force_bbm,
		 "Use big-block mode even for device blocks smaller than a memory block");

unsigned long vmem_bbm_block_size;
module_param_named(bbm_block_size, vmem_bbm_block_size, ulong, 0444);
MODULE_PARM_DESC(bbm_block_size,
		 "With force_bbm, the big block size in bytes: a power of two of at least a memory block (0: a memory block, or the device block if larger)");

static bool vmem_bbm_safe_unplug = true;
module_param_named(bbm_safe_unplug, vmem_bbm_safe_unplug, bool, 0444);
MODULE_PARM_DESC(bbm_safe_unplug,
		 "Accepted for compatibility: big blocks are always unplugged safely (their pages are taken before offlining)");

/* --- sysfs --- */

static struct vmem *vmem_from_dev(struct device *dev)
{
	return dev_to_virtio(dev)->priv;
}

static const char * const vmem_plug_wait_names[] = {
	[VMEM_WAIT_NONE] = "none",
	[VMEM_WAIT_ONLINE] = "onlining",
	[VMEM_WAIT_MEMMAP] = "memmap",
	[VMEM_WAIT_UNIT] = "unit",
};

static const char * const vmem_unplug_wait_names[] = {
	[VMEM_UNPLUG_NONE] = "none",
	[VMEM_UNPLUG_PRESSURE] = "pressure",
	[VMEM_UNPLUG_BUSY] = "busy",
	[VMEM_UNPLUG_ONLINE] = "online",
	[VMEM_UNPLUG_DEVICE] = "device",
	[VMEM_UNPLUG_UNIT] = "unit",
};

#define VMEM_ATTR(name, fmt, expr)					\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	struct vmem *vm = vmem_from_dev(dev);				\
									\
	return sysfs_emit(buf, fmt "\n", expr);				\
}									\
static DEVICE_ATTR_RO(name)

VMEM_ATTR(mode, "%s", vm->ops->name);
VMEM_ATTR(node, "%d", vm->nid);
VMEM_ATTR(block_size, "%llu", vm->cfg.block_size);
VMEM_ATTR(unit_size, "%llu", vm->sb_size * vm->mbs_per_bb);
VMEM_ATTR(region_start, "0x%llx", vm->cfg.addr);
VMEM_ATTR(region_size, "%llu", vm->cfg.region_size);
VMEM_ATTR(usable_region_size, "%llu", READ_ONCE(vm->cfg.usable_region_size));
VMEM_ATTR(requested_size, "%llu", READ_ONCE(vm->cfg.requested_size));
VMEM_ATTR(plugged_size, "%llu", READ_ONCE(vm->plugged));
VMEM_ATTR(offline_size, "%llu",
	  READ_ONCE(vm->sbm.count[VMEM_MB_OFFLINE]) * vm->mb_size);
VMEM_ATTR(broken, "%d", READ_ONCE(vm->broken));
VMEM_ATTR(stalled, "%d", READ_ONCE(vm->stalled));
VMEM_ATTR(requests_plug, "%lu",
	  READ_ONCE(vm->stats.requests[VIRTIO_MEM_REQ_PLUG]));
VMEM_ATTR(requests_unplug, "%lu",
	  READ_ONCE(vm->stats.requests[VIRTIO_MEM_REQ_UNPLUG]));
VMEM_ATTR(requests_unplug_all, "%lu",
	  READ_ONCE(vm->stats.requests[VIRTIO_MEM_REQ_UNPLUG_ALL]));
VMEM_ATTR(requests_state, "%lu",
	  READ_ONCE(vm->stats.requests[VIRTIO_MEM_REQ_STATE]));
VMEM_ATTR(answers_busy, "%lu", READ_ONCE(vm->stats.busy));
VMEM_ATTR(answers_nack, "%lu", READ_ONCE(vm->stats.nacks));
VMEM_ATTR(answers_error, "%lu", READ_ONCE(vm->stats.errors));
VMEM_ATTR(add_failures, "%lu", READ_ONCE(vm->stats.add_failures));
VMEM_ATTR(isolation_failures, "%lu",
	  READ_ONCE(vm->stats.isolation_failures));
VMEM_ATTR(take_retries, "%lu", READ_ONCE(vm->stats.take_retries));
VMEM_ATTR(pressure_stops, "%lu", READ_ONCE(vm->stats.pressure_stops));
VMEM_ATTR(resyncs, "%lu", READ_ONCE(vm->stats.resyncs));
VMEM_ATTR(memmap_stops, "%lu", READ_ONCE(vm->stats.memmap_stops));
VMEM_ATTR(plug_wait, "%s", vmem_plug_wait_names[READ_ONCE(vm->plug_wait)]);
VMEM_ATTR(unplug_wait, "%s",
	  vmem_unplug_wait_names[READ_ONCE(vm->unplug_wait)]);
VMEM_ATTR(leaked_size, "%llu", READ_ONCE(vm->stats.leaked));

/*
 * Whether the driver has more to do by itself: a reason in plug_wait or
 * unplug_wait is final only while this reads "idle".
 */
static ssize_t work_show(struct device *dev, struct device_attribute *attr,
			 char *buf)
{
	unsigned int busy = work_busy(&vmem_from_dev(dev)->work.work);

	return sysfs_emit(buf, "%s\n", busy & WORK_BUSY_RUNNING ? "running" :
			  busy & WORK_BUSY_PENDING ? "queued" : "idle");
}
static DEVICE_ATTR_RO(work);

/*
 * Writing 1 gives a stalled or broken device a fresh start: its queue is
 * reset, and the work checks its state and goes on (vmem_req_rearm()).
 */
static ssize_t rearm_store(struct device *dev, struct device_attribute *attr,
			   const char *buf, size_t count)
{
	struct vmem *vm = vmem_from_dev(dev);
	bool val;
	int rc;

	rc = kstrtobool(buf, &val);
	if (rc || !val)
		return rc ?: -EINVAL;
	rc = vmem_req_rearm(vm);
	if (rc)
		return rc;
	vmem_queue_work(vm);
	return count;
}
static DEVICE_ATTR_WO(rearm);

static struct attribute *vmem_attrs[] = {
	&dev_attr_mode.attr,
	&dev_attr_node.attr,
	&dev_attr_block_size.attr,
	&dev_attr_unit_size.attr,
	&dev_attr_region_start.attr,
	&dev_attr_region_size.attr,
	&dev_attr_usable_region_size.attr,
	&dev_attr_requested_size.attr,
	&dev_attr_plugged_size.attr,
	&dev_attr_offline_size.attr,
	&dev_attr_broken.attr,
	&dev_attr_stalled.attr,
	&dev_attr_rearm.attr,
	&dev_attr_requests_plug.attr,
	&dev_attr_requests_unplug.attr,
	&dev_attr_requests_unplug_all.attr,
	&dev_attr_requests_state.attr,
	&dev_attr_answers_busy.attr,
	&dev_attr_answers_nack.attr,
	&dev_attr_answers_error.attr,
	&dev_attr_add_failures.attr,
	&dev_attr_isolation_failures.attr,
	&dev_attr_take_retries.attr,
	&dev_attr_pressure_stops.attr,
	&dev_attr_resyncs.attr,
	&dev_attr_memmap_stops.attr,
	&dev_attr_plug_wait.attr,
	&dev_attr_unplug_wait.attr,
	&dev_attr_leaked_size.attr,
	&dev_attr_work.attr,
	NULL,
};

static const struct attribute_group vmem_attr_group = {
	.name = "virtio_mem",
	.attrs = vmem_attrs,
};

/**
 * vmem_sysfs_add() - publish the device's attributes
 * @vm: the device, fully set up
 *
 * Return: 0 or a negative error.
 */
int vmem_sysfs_add(struct vmem *vm)
{
	return device_add_group(&vm->vdev->dev, &vmem_attr_group);
}

/**
 * vmem_sysfs_remove() - undo vmem_sysfs_add()
 * @vm: the device
 */
void vmem_sysfs_remove(struct vmem *vm)
{
	device_remove_group(&vm->vdev->dev, &vmem_attr_group);
}
