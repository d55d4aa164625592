// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem fault injection (CONFIG_VIRTIO_MEM_FAULT_INJECTION).
 *
 * Per device, in /sys/kernel/debug/virtio_mem/virtioN/ (write-only):
 *
 *   inject_error   1: send one request the device must answer with ERROR
 *                  (unplug an unplugged block, or plug a plugged one)
 *   inject_stray   1: on the work's next run (the next resize), plug one
 *                  device block without recording it, as a device that
 *                  lost track would have
 *   hold_answer_s  N: hold back the answer to the next request for N
 *                  seconds (0: until the device is re-armed), as if the
 *                  device answered that late
 *   fail_offline   N: the driver's own removal gets the offlining of the
 *                  N-th memory block it offlines from now on refused, as
 *                  another memory notifier might
 *   fail_take      N: the N-th take of pages from now (one part of a
 *                  take, see vmem_take_range()) fails with -EBUSY once
 *                  its pages moved, as a page not free yet makes it
 *
 * For faults while probing, module parameters (writable at runtime):
 *
 *   inject_state_fail=N    the N-th STATE request from now fails ...
 *   inject_state_answer=K  ... with K: busy, error, short (a malformed
 *                          answer), bogus (an unknown state) or nomem (the
 *                          request cannot be queued)
 *
 * Debian's kernels do not enable the kernel's fault-injection framework
 * (CONFIG_FAULT_INJECTION), which a module built for them cannot use: hence
 * a debug option of the driver's own.
 */
#include <linux/debugfs.h>
#include <linux/jiffies.h>
#include <linux/moduleparam.h>
#include <linux/spinlock.h>
#include <linux/string.h>

#include "virtio_mem_dev.h"

static DEFINE_SPINLOCK(vmem_fault_lock);
static struct dentry *vmem_fault_root;

static unsigned int vmem_fault_state_nth;
module_param_named(inject_state_fail, vmem_fault_state_nth, uint, 0644);
MODULE_PARM_DESC(inject_state_fail,
		 "Fault injection: the N-th STATE request from now fails (0: none)");

static char vmem_fault_state_kind[8] = "error";
module_param_string(inject_state_answer, vmem_fault_state_kind,
		    sizeof(vmem_fault_state_kind), 0644);
MODULE_PARM_DESC(inject_state_answer,
		 "Fault injection: how that STATE request fails: busy, error, short, bogus or nomem");

/* Counts @nth down under the lock; true when it reaches 0 now. */
static bool vmem_fault_count(unsigned int *nth)
{
	bool fire = false;

	spin_lock(&vmem_fault_lock);
	if (*nth)
		fire = !--*nth;
	spin_unlock(&vmem_fault_lock);
	return fire;
}

/**
 * vmem_fault_answer() - an injected answer instead of the device's
 * @vm: the device
 * @type: the request about to be sent
 * @rc: set to the answer (a VIRTIO_MEM_RESP_*), or to -EIO for a malformed
 *	answer, or -ENOMEM
 * @state: set to the state of an injected ACK
 *
 * Return: true if the request must not be sent and @rc stands for its
 * answer.
 */
bool vmem_fault_answer(struct vmem *vm, u16 type, int *rc, u16 *state)
{
	const char *kind = vmem_fault_state_kind;

	if (type != VIRTIO_MEM_REQ_STATE ||
	    !vmem_fault_count(&vmem_fault_state_nth))
		return false;
	if (sysfs_streq(kind, "busy")) {
		*rc = VIRTIO_MEM_RESP_BUSY;
	} else if (sysfs_streq(kind, "short")) {
		*rc = -EIO;
	} else if (sysfs_streq(kind, "bogus")) {
		*rc = VIRTIO_MEM_RESP_ACK;
		*state = VIRTIO_MEM_STATE_MIXED + 5;
	} else if (sysfs_streq(kind, "nomem")) {
		*rc = -ENOMEM;
	} else {
		kind = "error";
		*rc = VIRTIO_MEM_RESP_ERROR;
	}
	dev_info(&vm->vdev->dev, "fault injection: STATE fails (%s)\n", kind);
	return true;
}

/**
 * vmem_fault_sent() - a request went to the device; req_lock held
 * @vm: the device
 */
void vmem_fault_sent(struct vmem *vm)
{
	if (!vm->fault.hold_next)
		return;
	vm->fault.hold_next = false;
	vm->fault.holding = true;
	vm->fault.hold_until = jiffies + vm->fault.hold_s * HZ;
	dev_info(&vm->vdev->dev,
		 "fault injection: holding back the answer for %s\n",
		 vm->fault.hold_s ? "a while" : "good");
}

/**
 * vmem_fault_holding() - whether the answer must look absent; req_lock held
 * @vm: the device
 *
 * Return: true while an injected hold lasts.
 */
bool vmem_fault_holding(struct vmem *vm)
{
	if (vm->fault.holding && vm->fault.hold_s &&
	    time_after_eq(jiffies, vm->fault.hold_until)) {
		vm->fault.holding = false;
		dev_info(&vm->vdev->dev,
			 "fault injection: the held answer arrives\n");
	}
	return vm->fault.holding;
}

/**
 * vmem_fault_release() - the queue was reset: nothing is held any more
 * @vm: the device; req_lock held
 */
void vmem_fault_release(struct vmem *vm)
{
	vm->fault.holding = false;
	vm->fault.hold_next = false;
}

/**
 * vmem_fault_refuse_offline() - whether to refuse this offlining
 * @vm: the device; called for each memory block its removal offlines
 *
 * Return: true for the fail_offline-th one.
 */
bool vmem_fault_refuse_offline(struct vmem *vm)
{
	return vmem_fault_count(&vm->fault.offline_fail);
}

/**
 * vmem_fault_fail_take() - whether this take of pages fails
 * @vm: the device; called for each part of a take that got its pages
 *
 * Return: true for the fail_take-th one: it gives them back and fails
 * with -EBUSY, as when a page is not free yet.
 */
bool vmem_fault_fail_take(struct vmem *vm)
{
	if (!vmem_fault_count(&vm->fault.take_fail))
		return false;
	dev_info(&vm->vdev->dev, "fault injection: a take of pages fails\n");
	return true;
}

/* A request the device must answer with ERROR (or NACK, fully plugged). */
static int vmem_fault_bad_request(struct vmem *vm)
{
	unsigned long nr = vm->usable_mbs * vm->sbm.sbs_per_mb;
	unsigned long sb, len;
	u64 size = vm->sb_size * vm->mbs_per_bb;

	if (!nr)
		return 0;
	dev_info(&vm->vdev->dev, "fault injection: sending a bad request\n");
	if (vmem_sbm_find_run(&vm->sbm, 0, nr, false, &sb, &len) &&
	    len >= vm->mbs_per_bb)
		return vmem_req_unplug(vm, vmem_sb_addr(vm, sb), size);
	return vmem_req_plug(vm, vmem_sb_addr(vm, 0), size);
}

/* Plug the first device block of the first unplugged unit, unrecorded. */
static int vmem_fault_plug_stray(struct vmem *vm)
{
	unsigned long nr = vm->usable_mbs * vm->sbm.sbs_per_mb;
	unsigned long sb, len;

	if (!vmem_sbm_find_run(&vm->sbm, 0, nr, false, &sb, &len))
		return 0;
	dev_info(&vm->vdev->dev,
		 "fault injection: plugging the device block at 0x%llx behind the driver's back\n",
		 vmem_sb_addr(vm, sb));
	return vmem_req_plug(vm, vmem_sb_addr(vm, sb), vm->cfg.block_size);
}

/**
 * vmem_fault_run() - carry out the faults armed for the work
 * @vm: the device; called by the work
 *
 * Return: the error of the injected request, for the work to handle.
 */
int vmem_fault_run(struct vmem *vm)
{
	int rc = 0;

	if (READ_ONCE(vm->fault.stray)) {
		WRITE_ONCE(vm->fault.stray, false);
		rc = vmem_fault_plug_stray(vm);
	}
	if (!rc && READ_ONCE(vm->fault.bad_request)) {
		WRITE_ONCE(vm->fault.bad_request, false);
		rc = vmem_fault_bad_request(vm);
	}
	return rc;
}

static int vmem_fault_error_set(void *data, u64 val)
{
	struct vmem *vm = data;

	if (val != 1)
		return -EINVAL;
	WRITE_ONCE(vm->fault.bad_request, true);
	vmem_queue_work(vm);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vmem_fault_error_fops, NULL, vmem_fault_error_set,
			 "%llu\n");

static int vmem_fault_stray_set(void *data, u64 val)
{
	struct vmem *vm = data;

	if (val != 1)
		return -EINVAL;
	/* Not now: QEMU refuses to plug beyond the request (NACK). */
	WRITE_ONCE(vm->fault.stray, true);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vmem_fault_stray_fops, NULL, vmem_fault_stray_set,
			 "%llu\n");

static int vmem_fault_hold_set(void *data, u64 val)
{
	struct vmem *vm = data;

	if (val > 3600)
		return -EINVAL;
	mutex_lock(&vm->req_lock);
	vm->fault.hold_s = val;
	vm->fault.hold_next = true;
	mutex_unlock(&vm->req_lock);
	return 0;
}
DEFINE_DEBUGFS_ATTRIBUTE(vmem_fault_hold_fops, NULL, vmem_fault_hold_set,
			 "%llu\n");

/* Arms a fault for the @val-th event from now, as vmem_fault_count() counts. */
static int vmem_fault_arm(unsigned int *nth, u64 val)
{
	if (val > UINT_MAX)
		return -EINVAL;
	spin_lock(&vmem_fault_lock);
	*nth = val;
	spin_unlock(&vmem_fault_lock);
	return 0;
}

static int vmem_fault_offline_set(void *data, u64 val)
{
	struct vmem *vm = data;

	return vmem_fault_arm(&vm->fault.offline_fail, val);
}
DEFINE_DEBUGFS_ATTRIBUTE(vmem_fault_offline_fops, NULL,
			 vmem_fault_offline_set, "%llu\n");

static int vmem_fault_take_set(void *data, u64 val)
{
	struct vmem *vm = data;

	return vmem_fault_arm(&vm->fault.take_fail, val);
}
DEFINE_DEBUGFS_ATTRIBUTE(vmem_fault_take_fops, NULL, vmem_fault_take_set,
			 "%llu\n");

/** vmem_fault_init() - create the driver's debugfs directory */
void vmem_fault_init(void)
{
	vmem_fault_root = debugfs_create_dir("virtio_mem", NULL);
}

/** vmem_fault_exit() - remove it */
void vmem_fault_exit(void)
{
	debugfs_remove_recursive(vmem_fault_root);
}

/**
 * vmem_fault_add() - create the knobs of a device
 * @vm: the device, fully set up
 */
void vmem_fault_add(struct vmem *vm)
{
	struct dentry *dir = debugfs_create_dir(dev_name(&vm->vdev->dev),
						vmem_fault_root);

	vm->fault.dir = dir;
	debugfs_create_file_unsafe("inject_error", 0200, dir, vm,
				   &vmem_fault_error_fops);
	debugfs_create_file_unsafe("inject_stray", 0200, dir, vm,
				   &vmem_fault_stray_fops);
	debugfs_create_file_unsafe("hold_answer_s", 0200, dir, vm,
				   &vmem_fault_hold_fops);
	debugfs_create_file_unsafe("fail_offline", 0200, dir, vm,
				   &vmem_fault_offline_fops);
	debugfs_create_file_unsafe("fail_take", 0200, dir, vm,
				   &vmem_fault_take_fops);
}

/**
 * vmem_fault_remove() - remove them; no knob runs once this returns
 * @vm: the device
 */
void vmem_fault_remove(struct vmem *vm)
{
	debugfs_remove_recursive(vm->fault.dir);
	vm->fault.dir = NULL;
}
