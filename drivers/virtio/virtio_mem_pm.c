// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem and system sleep.
 *
 * Hibernation, and restoring a hibernation image, are refused up front by
 * a PM notifier of the highest priority, before user space is frozen and
 * before other drivers prepare for it. Suspend to idle is always fine:
 * nothing is reset. Suspend to RAM is fine with nothing plugged, or when
 * the device keeps its state across it
 * (VIRTIO_MEM_F_PERSISTENT_SUSPEND); otherwise the host may unplug
 * everything on wakeup, under memory in use, so it is refused. Which state
 * the system enters is only known when devices are frozen: that is where
 * suspend is decided (vmem_sleep_refusal() holds the rule).
 *
 * Freezing stops the work and gives the queue back; restoring creates it
 * again, and the work re-reads the configuration and carries on towards
 * the request.
 */
#include <linux/suspend.h>
#include <linux/virtio_config.h>

#include "virtio_mem_dev.h"

static int vmem_pm_cb(struct notifier_block *nb, unsigned long action,
		      void *arg)
{
	struct vmem *vm = container_of(nb, struct vmem, pm_nb);

	if (action != PM_HIBERNATION_PREPARE && action != PM_RESTORE_PREPARE)
		return NOTIFY_DONE;
	dev_err(&vm->vdev->dev, "virtio-mem refuses %s: %s\n",
		action == PM_RESTORE_PREPARE ? "restoring a hibernation image" :
					       "hibernation",
		vmem_sleep_refusal(VMEM_SLEEP_HIBERNATE, true, true));
	return notifier_from_errno(-EBUSY);
}

/**
 * vmem_pm_register() - refuse hibernation while @vm is bound
 * @vm: the device
 *
 * Return: 0 or a negative error.
 */
int vmem_pm_register(struct vmem *vm)
{
	vm->pm_nb.notifier_call = vmem_pm_cb;
	/* First: nobody else should prepare for what is refused anyway. */
	vm->pm_nb.priority = INT_MAX;
	return register_pm_notifier(&vm->pm_nb);
}

/**
 * vmem_pm_unregister() - undo vmem_pm_register()
 * @vm: the device
 */
void vmem_pm_unregister(struct vmem *vm)
{
	unregister_pm_notifier(&vm->pm_nb);
}

#ifdef CONFIG_PM_SLEEP

static enum vmem_sleep vmem_sleep_target(void)
{
	switch (pm_suspend_target_state) {
	case PM_SUSPEND_TO_IDLE:
		return VMEM_SLEEP_S2IDLE;
	case PM_SUSPEND_ON:
		/* Not suspending: freezing for hibernation. */
		return VMEM_SLEEP_HIBERNATE;
	default:
		return VMEM_SLEEP_S3;
	}
}

static void vmem_pm_start_work(struct vmem *vm, bool start)
{
	spin_lock_irq(&vm->lock);
	vm->started = start;
	spin_unlock_irq(&vm->lock);
	if (start)
		vmem_queue_work(vm);
	else
		cancel_delayed_work_sync(&vm->work);
}

/**
 * vmem_freeze() - the system is going to sleep
 * @vdev: the device
 *
 * Return: 0, or -EBUSY to refuse (logged).
 */
int vmem_freeze(struct virtio_device *vdev)
{
	struct vmem *vm = vdev->priv;
	const char *why;

	if (vm->in_kdump) {
		dev_err(&vdev->dev, "no system sleep in a crash kernel\n");
		return -EBUSY;
	}
	/* No plugging between the decision and the sleep. */
	vmem_pm_start_work(vm, false);
	why = vmem_sleep_refusal(vmem_sleep_target(), vm->plugged != 0,
				 virtio_has_feature(vdev,
						    VIRTIO_MEM_F_PERSISTENT_SUSPEND));
	if (why) {
		dev_err(&vdev->dev, "virtio-mem refuses suspend: %s\n", why);
		vmem_pm_start_work(vm, true);
		return -EBUSY;
	}
	vmem_req_detach(vm);
	return 0;
}

/**
 * vmem_restore() - the system woke up
 * @vdev: the device, reset and with its features negotiated again
 *
 * Return: 0, or the error of creating the queue (the device is then
 * marked broken).
 */
int vmem_restore(struct virtio_device *vdev)
{
	struct vmem *vm = vdev->priv;
	int rc;

	rc = vmem_req_attach(vm);
	if (rc) {
		dev_err(&vdev->dev, "cannot create the queue on resume: %d\n",
			rc);
		WRITE_ONCE(vm->broken, true);
		return rc;
	}
	/* The work reads the configuration again: the host may have reset. */
	WRITE_ONCE(vm->config_pending, true);
	vmem_pm_start_work(vm, true);
	return 0;
}

#endif /* CONFIG_PM_SLEEP */
