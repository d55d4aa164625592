// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests against the virtio-mem devices the driver is bound to when
 * the tests run at boot: once the driver has plugged what the host
 * requested, its view of the device must match the device's.
 *
 * Read-only: the tests read the device configuration and the driver's
 * state, and change neither. Devices are found below their PCI transport
 * (virtio-mem-pci); without one bound to this driver the suite is skipped.
 * Each device is looked at with its device lock held, so that it cannot be
 * unbound (and its state freed) meanwhile; no assertion aborts a test with
 * the lock held.
 */
#include <kunit/test.h>
#include <linux/bitmap.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/jiffies.h>
#include <linux/pci.h>
#include <linux/string.h>
#include <linux/virtio_config.h>

#include "virtio_mem_dev.h"

#define VMEM_LIVE_MAX_DEVS	8
/* Plugging what QEMU requests at boot takes seconds, even under TCG. */
#define VMEM_LIVE_SETTLE_MS	60000

static struct virtio_device *vmem_live_devs[VMEM_LIVE_MAX_DEVS];
static unsigned int vmem_live_nr;

static int vmem_live_match(struct device *dev, void *data)
{
	return is_virtio_device(dev) && dev->driver &&
	       !strcmp(dev->driver->name, KBUILD_MODNAME);
}

static int vmem_live_suite_init(struct kunit_suite *suite)
{
	struct pci_dev *pdev = NULL;
	struct device *dev;

	for_each_pci_dev(pdev) {
		if (vmem_live_nr == VMEM_LIVE_MAX_DEVS) {
			pci_dev_put(pdev);
			break;
		}
		dev = device_find_child(&pdev->dev, NULL, vmem_live_match);
		if (dev)
			vmem_live_devs[vmem_live_nr++] = dev_to_virtio(dev);
	}
	return 0;
}

static void vmem_live_suite_exit(struct kunit_suite *suite)
{
	while (vmem_live_nr)
		put_device(&vmem_live_devs[--vmem_live_nr]->dev);
}

/*
 * Wait until the driver has plugged what the device asks for; device lock
 * held. Marks the test skipped if the driver waits for user space to online
 * memory instead.
 *
 * Return: true if it did.
 */
static bool vmem_live_settle(struct kunit *test, struct virtio_device *vdev)
{
	unsigned long deadline = jiffies + msecs_to_jiffies(VMEM_LIVE_SETTLE_MS);
	struct vmem *vm = vdev->priv;
	struct vmem_cfg cfg;

	for (;;) {
		vmem_read_config(vdev, &cfg);
		if (READ_ONCE(vm->plugged) == cfg.requested_size)
			return true;
		if (time_after(jiffies, deadline))
			break;
		msleep(100);
	}
	if (READ_ONCE(vm->plug_wait) == VMEM_WAIT_ONLINE)
		kunit_mark_skipped(test, "%s: waiting for memory to be onlined",
				   dev_name(&vdev->dev));
	else
		KUNIT_FAIL(test,
			   "%s: plugged %llu of %llu requested bytes after %u ms",
			   dev_name(&vdev->dev), READ_ONCE(vm->plugged),
			   cfg.requested_size, VMEM_LIVE_SETTLE_MS);
	return false;
}

/* The driver's state of @vdev, device lock taken; NULL if unbound. */
static struct vmem *vmem_live_lock(struct kunit *test,
				   struct virtio_device *vdev)
{
	device_lock(&vdev->dev);
	if (vdev->priv)
		return vdev->priv;
	device_unlock(&vdev->dev);
	KUNIT_FAIL(test, "%s: no longer bound", dev_name(&vdev->dev));
	return NULL;
}

static void vmem_live_require_devices(struct kunit *test)
{
	if (!vmem_live_nr)
		kunit_skip(test, "no virtio-mem device bound to %s",
			   KBUILD_MODNAME);
}

static void vmem_live_config_valid_and_geometry_fixed(struct kunit *test)
{
	struct vmem_cfg cfg;
	const char *why;
	unsigned int i;

	vmem_live_require_devices(test);
	for (i = 0; i < vmem_live_nr; i++) {
		struct virtio_device *vdev = vmem_live_devs[i];
		struct vmem *vm = vmem_live_lock(test, vdev);

		if (!vm)
			continue;
		why = NULL;
		vmem_read_config(vdev, &cfg);
		KUNIT_EXPECT_EQ_MSG(test, vmem_cfg_check(&cfg, &why), 0,
				    "%s: %s", dev_name(&vdev->dev), why);
		KUNIT_EXPECT_EQ(test, cfg.block_size, vm->cfg.block_size);
		KUNIT_EXPECT_EQ(test, cfg.addr, vm->cfg.addr);
		KUNIT_EXPECT_EQ(test, cfg.region_size, vm->cfg.region_size);
		KUNIT_EXPECT_FALSE(test, READ_ONCE(vm->broken));
		device_unlock(&vdev->dev);
	}
}

static void vmem_live_plugged_matches_device(struct kunit *test)
{
	struct vmem_cfg cfg;
	unsigned int i;

	vmem_live_require_devices(test);
	for (i = 0; i < vmem_live_nr; i++) {
		struct virtio_device *vdev = vmem_live_devs[i];
		struct vmem *vm = vmem_live_lock(test, vdev);

		if (!vm)
			continue;
		if (!vmem_live_settle(test, vdev)) {
			device_unlock(&vdev->dev);
			continue;
		}
		vmem_read_config(vdev, &cfg);
		KUNIT_EXPECT_EQ_MSG(test, READ_ONCE(vm->plugged),
				    cfg.plugged_size, "%s",
				    dev_name(&vdev->dev));
		KUNIT_EXPECT_EQ_MSG(test, READ_ONCE(vm->plugged),
				    cfg.requested_size, "%s",
				    dev_name(&vdev->dev));
		device_unlock(&vdev->dev);
	}
}

static void vmem_live_bookkeeping_matches_plugged(struct kunit *test)
{
	unsigned long counts[VMEM_MB_NR_STATES] = { 0 };
	unsigned int i, state;
	unsigned long mb;

	vmem_live_require_devices(test);
	for (i = 0; i < vmem_live_nr; i++) {
		struct virtio_device *vdev = vmem_live_devs[i];
		struct vmem *vm = vmem_live_lock(test, vdev);
		struct vmem_sbm *sbm;
		unsigned long bits;

		if (!vm)
			continue;
		sbm = &vm->sbm;
		bits = sbm->nr_mbs * sbm->sbs_per_mb;
		if (!vmem_live_settle(test, vdev)) {
			device_unlock(&vdev->dev);
			continue;
		}
		KUNIT_EXPECT_EQ_MSG(test, bitmap_weight(sbm->plugged, bits) *
				    vm->sb_size, READ_ONCE(vm->plugged),
				    "%s: plugged bits times the unit size",
				    dev_name(&vdev->dev));

		memset(counts, 0, sizeof(counts));
		for (mb = 0; mb < sbm->nr_mbs; mb++) {
			state = vmem_sbm_state(sbm, mb);
			KUNIT_EXPECT_LT(test, state, VMEM_MB_NR_STATES);
			if (state >= VMEM_MB_NR_STATES)
				break;
			counts[state]++;
			if (state == VMEM_MB_UNUSED)
				KUNIT_EXPECT_EQ_MSG(test,
						    vmem_sbm_plugged_in_mb(sbm, mb),
						    0, "%s: memory block %lu",
						    dev_name(&vdev->dev), mb);
		}
		for (state = 0; state < VMEM_MB_NR_STATES; state++)
			KUNIT_EXPECT_EQ_MSG(test, sbm->count[state],
					    counts[state], "%s: state %u",
					    dev_name(&vdev->dev), state);
		device_unlock(&vdev->dev);
	}
}

static struct kunit_case vmem_live_cases[] = {
	KUNIT_CASE(vmem_live_config_valid_and_geometry_fixed),
	KUNIT_CASE(vmem_live_plugged_matches_device),
	KUNIT_CASE(vmem_live_bookkeeping_matches_plugged),
	{}
};

static struct kunit_suite vmem_live_suite = {
	.name = "virtio_mem_live",
	.suite_init = vmem_live_suite_init,
	.suite_exit = vmem_live_suite_exit,
	.test_cases = vmem_live_cases,
};

kunit_test_suite(vmem_live_suite);
