// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem: paravirtualized memory hot(un)plug.
 *
 * Probe and removal, and the work item that drives the device towards the
 * host's requested size.
 */
#include <linux/bitmap.h>
#include <linux/crash_dump.h>
#include <linux/memory.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/numa.h>
#include <linux/slab.h>
#include <linux/virtio_config.h>

#ifdef CONFIG_ACPI_NUMA
#include <acpi/acpi_numa.h>
#endif

#include "virtio_mem_dev.h"
#include "virtio_mem_trace.h"

/* --- configuration --- */

/* Transports without a generation counter never tear a read. */
static u32 vmem_config_generation(struct virtio_device *vdev)
{
	return vdev->config->generation ? vdev->config->generation(vdev) : 0;
}

static void vmem_read_fields(struct virtio_device *vdev, struct vmem_cfg *cfg)
{
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

/**
 * vmem_read_config() - read the device configuration
 * @vdev: the device
 * @cfg: filled with the configuration, CPU-endian
 *
 * All fields come from one configuration generation: a resize between two
 * reads must not pair a new requested_size with an old usable_region_size.
 */
void vmem_read_config(struct virtio_device *vdev, struct vmem_cfg *cfg)
{
	u32 gen;

	do {
		gen = vmem_config_generation(vdev);
		vmem_read_fields(vdev, cfg);
	} while (gen != vmem_config_generation(vdev));
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

	vmem_read_config(vm->vdev, &cur);
	if (vmem_cfg_check_update(&vm->cfg, &cur, &why)) {
		dev_err(&vm->vdev->dev,
			"invalid configuration update: %s; stopping\n", why);
		vm->broken = true;
		return -EINVAL;
	}
	/* Only UNPLUG_ALL and a reset may shrink it: say so, cope. */
	if (cur.usable_region_size < vm->cfg.usable_region_size)
		dev_warn_ratelimited(&vm->vdev->dev,
				     "usable region shrank from %llu to %llu MiB\n",
				     vm->cfg.usable_region_size >> 20,
				     cur.usable_region_size >> 20);
	vm->cfg = cur;
	vmem_update_usable(vm);

	/*
	 * The device says otherwise than the driver's bits: it plugged or
	 * unplugged behind the driver's back. Compare block by block, once
	 * per difference (a device may misreport its size, too).
	 */
	if (!vm->unplug_all && cur.plugged_size != vm->plugged &&
	    (cur.plugged_size != vm->mismatch[0] ||
	     vm->plugged != vm->mismatch[1])) {
		vm->mismatch[0] = cur.plugged_size;
		vm->mismatch[1] = vm->plugged;
		dev_warn(&vm->vdev->dev,
			 "device reports %llu MiB plugged, driver %llu MiB: checking\n",
			 cur.plugged_size >> 20, vm->plugged >> 20);
		WRITE_ONCE(vm->resync_needed, true);
	}
	return 0;
}

/* --- the state machine --- */

static void vmem_retry_in(struct vmem *vm, unsigned int ms)
{
	unsigned long flags;

	spin_lock_irqsave(&vm->lock, flags);
	if (vm->started && !vm->removing)
		queue_delayed_work(system_freezable_wq, &vm->work,
				   msecs_to_jiffies(ms));
	spin_unlock_irqrestore(&vm->lock, flags);
}

static void vmem_retry_later(struct vmem *vm, int error)
{
	vm->backoff_ms = vmem_backoff_next(vm->backoff_ms,
					   READ_ONCE(vmem_backoff_min_ms),
					   READ_ONCE(vmem_backoff_max_ms));
	trace_virtio_mem_backoff(dev_name(&vm->vdev->dev), error,
				 vm->backoff_ms);
	vmem_retry_in(vm, vm->backoff_ms);
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

/* Which of @nr bits from @first are set: none, all, or some. */
static int vmem_bits_state(struct vmem *vm, unsigned long first,
			   unsigned long nr)
{
	if (vmem_sbm_test(&vm->sbm, 0, first, nr, true))
		return VIRTIO_MEM_STATE_PLUGGED;
	if (vmem_sbm_test(&vm->sbm, 0, first, nr, false))
		return VIRTIO_MEM_STATE_UNPLUGGED;
	return VIRTIO_MEM_STATE_MIXED;
}

/*
 * Compare the driver's view with the device's, one memory block (or big
 * block) at a time, and repair what differs: units plugged behind the
 * driver's back are unused and get unplugged; units it uses that the
 * device lost get plugged again. A unit of several device blocks that the
 * device calls MIXED is set right block by block. Done after an ERROR
 * answer, and after an answer that came too late (its outcome was not
 * known meanwhile).
 */
static int vmem_resync(struct vmem *vm)
{
	unsigned long unit = vm->mbs_per_bb;
	unsigned long group = max_t(unsigned long, vm->sbm.sbs_per_mb, unit);
	unsigned long total = vm->usable_mbs * vm->sbm.sbs_per_mb;
	unsigned long g, sb, extra = 0, lost = 0;
	int state, st, rc = 0;
	bool plugged;

	vm->stats.resyncs++;
	for (g = 0; !rc && g + group <= total; g += group) {
		state = vmem_req_state(vm, vmem_sb_addr(vm, g),
				       group * vm->sb_size);
		if (state < 0) {
			rc = state;
			break;
		}
		if (state != VIRTIO_MEM_STATE_MIXED &&
		    state == vmem_bits_state(vm, g, group))
			continue;
		for (sb = g; !rc && sb < g + group; sb += unit) {
			st = group == unit ? state :
			     vmem_req_state(vm, vmem_sb_addr(vm, sb),
					    unit * vm->sb_size);
			if (st < 0) {
				rc = st;
				break;
			}
			plugged = test_bit(sb, vm->sbm.plugged);
			if (st == (plugged ? VIRTIO_MEM_STATE_PLUGGED :
					     VIRTIO_MEM_STATE_UNPLUGGED))
				continue;
			if (plugged)
				lost++;
			else
				extra++;
			rc = vmem_make_range(vm, vmem_sb_addr(vm, sb),
					     unit * vm->sb_size, st, plugged);
		}
	}
	trace_virtio_mem_resync(dev_name(&vm->vdev->dev), extra, lost);
	if (rc)
		dev_warn(&vm->vdev->dev, "resync stopped: %d; trying again later\n",
			 rc);
	else if (extra || lost)
		dev_warn(&vm->vdev->dev,
			 "resync: %lu units were plugged without us (unplugged them), %lu in use were unplugged (plugged them again)\n",
			 extra, lost);
	else
		dev_info(&vm->vdev->dev, "resync: device state matches ours\n");
	return rc;
}

/*
 * A request's outcome went unknown (no answer in time), or the device's
 * plugged size differs from the driver's: find out what the device did.
 * Units whose unplug went unanswered were kept away from Linux meanwhile
 * (leaked); now their state is known and matches the driver's, like any
 * unplugged unit's.
 */
static int vmem_resync_pending(struct vmem *vm)
{
	int rc = vmem_resync(vm);

	if (rc)
		return rc;
	WRITE_ONCE(vm->resync_needed, false);
	if (vm->stats.leaked) {
		dev_info(&vm->vdev->dev,
			 "%llu MiB whose unplug went unanswered are accounted for\n",
			 vm->stats.leaked >> 20);
		WRITE_ONCE(vm->stats.leaked, 0);
	}
	return 0;
}

/* Unplug paused for memory pressure: count it, say so once per pause. */
static void vmem_note_pressure(struct vmem *vm)
{
	vm->stats.pressure_stops++;
	if (vm->warned_pressure)
		return;
	vm->warned_pressure = true;
	trace_virtio_mem_unplug_paused(dev_name(&vm->vdev->dev),
				       si_mem_available(),
				       vmem_mm_reserve_pages());
	dev_info(&vm->vdev->dev,
		 "unplug paused: %ld MiB available, keeping %ld MiB; resuming once memory frees up\n",
		 si_mem_available() >> (20 - PAGE_SHIFT),
		 vmem_mm_reserve_pages() >> (20 - PAGE_SHIFT));
}

/*
 * Unplug stopped short of the request with nothing left to try now: pages
 * that cannot be migrated (-ENOMEM; retried with backoff), or only online
 * memory left while unplug_online is off (-ENOSPC). Say why, once per
 * stop: sysfs has the reason too (unplug_wait).
 */
static void vmem_note_unplug_stop(struct vmem *vm, int rc)
{
	u64 req = vm->cfg.requested_size, kernel;

	/* Else memory in transition: the notifier queues the work. */
	if (rc == -ENOSPC && READ_ONCE(vmem_unplug_online))
		return;
	if (vm->stop_logged[0] == req && vm->stop_logged[1] == vm->plugged)
		return;
	vm->stop_logged[0] = req;
	vm->stop_logged[1] = vm->plugged;
	if (rc == -ENOSPC) {
		dev_info(&vm->vdev->dev,
			 "unplug stopped at %llu MiB plugged (%llu MiB requested): only online memory is left and unplug_online is off\n",
			 vm->plugged >> 20, req >> 20);
		return;
	}
	kernel = vmem_mm_kernel_zone_size(vm);
	if (kernel)
		dev_info(&vm->vdev->dev,
			 "unplug stopped at %llu MiB plugged (%llu MiB requested): pages in use could not be migrated; %llu MiB of it is online outside ZONE_MOVABLE, where kernel allocations cannot move; retrying\n",
			 vm->plugged >> 20, req >> 20, kernel >> 20);
	else
		dev_info(&vm->vdev->dev,
			 "unplug stopped at %llu MiB plugged (%llu MiB requested): pages in use could not be migrated (pinned); retrying\n",
			 vm->plugged >> 20, req >> 20);
}

static void vmem_work_fn(struct work_struct *work)
{
	struct vmem *vm = container_of(to_delayed_work(work), struct vmem,
				       work);
	bool unplugging = false;
	u64 requested;
	int rc;

	if (READ_ONCE(vm->broken))
		return;
	/* Waiting for an answer that is late: look again after a while. */
	if (!vmem_req_ready(vm)) {
		vmem_retry_later(vm, -ETIMEDOUT);
		return;
	}
	WRITE_ONCE(vm->config_pending, false);
	rc = vmem_refresh_config(vm);
	if (!rc && READ_ONCE(vm->resync_needed))
		rc = vmem_resync_pending(vm);
	if (!rc && vm->unplug_all)
		rc = vmem_do_unplug_all(vm);
	if (!rc)
		rc = vmem_fault_run(vm);
	if (!rc) {
		requested = vm->cfg.requested_size;
		unplugging = requested < vm->plugged;
		if (requested > vm->plugged)
			rc = vm->ops->plug(vm, requested - vm->plugged);
		else if (unplugging)
			rc = vm->ops->unplug(vm, vm->plugged - requested);
		if (requested <= vm->plugged)
			WRITE_ONCE(vm->plug_wait, VMEM_WAIT_NONE);
		/* Done as far as whole units go: say why it stops short. */
		else if (!rc)
			WRITE_ONCE(vm->plug_wait, VMEM_WAIT_UNIT);
	}
	WRITE_ONCE(vm->unplug_wait, !unplugging ? VMEM_UNPLUG_NONE :
			       rc ? vmem_unplug_wait_for(rc) :
			       requested < vm->plugged ? VMEM_UNPLUG_UNIT :
			       VMEM_UNPLUG_NONE);
	if (unplugging && (rc == -ENOMEM || rc == -ENOSPC))
		vmem_note_unplug_stop(vm, rc);
	else if (!unplugging || !rc)
		/* The stop is over: the next one is news again. */
		memset(vm->stop_logged, 0, sizeof(vm->stop_logged));

	if ((rc != -ENOBUFS || !unplugging) && vm->warned_pressure) {
		vm->warned_pressure = false;
		trace_virtio_mem_unplug_resumed(dev_name(&vm->vdev->dev));
	}
	switch (rc) {
	case 0:
	case -ENOSPC:
		/* Done, or waiting for onlining, offlining or a new request. */
		vm->backoff_ms = 0;
		break;
	case -EINTR:
		/* A new request arrived: act on it right away. */
		vmem_queue_work(vm);
		break;
	case -ENOBUFS:
		/*
		 * The guest cannot spare more now (unplug), or the memmap of
		 * more memory would not fit (plug; logged there). Nothing
		 * notifies us when memory frees up, so look again soon: a
		 * cheap check.
		 */
		if (unplugging)
			vmem_note_pressure(vm);
		vm->backoff_ms = 0;
		vmem_retry_in(vm, READ_ONCE(vmem_pressure_poll_ms));
		break;
	case -ENODEV:
	case -EINVAL:
		/* Logged where detected; the device is unusable. */
		break;
	case -EIO:
		/* ERROR: our view of the device may be off. */
		if (vmem_resync(vm))
			WRITE_ONCE(vm->resync_needed, true);
		vmem_retry_later(vm, rc);
		break;
	default:
		/* BUSY, NACK, no answer yet, memory busy, out of memory. */
		vmem_retry_later(vm, rc);
		break;
	}
}

static void vmem_config_changed(struct virtio_device *vdev)
{
	struct vmem *vm = vdev->priv;

	/* A crash kernel leaves the device as the crashed kernel had it. */
	if (vm->in_kdump)
		return;

	WRITE_ONCE(vm->config_pending, true);
	/* A new request deserves a prompt answer, not the backoff delay. */
	vm->backoff_ms = 0;
	vmem_queue_work(vm);
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
	return 0;
}

/*
 * A reservation a previous driver instance left behind (memory of the
 * region stayed added) is now the child of ours, with the same range and
 * name: take over its memory group and what it knew of memmaps, and drop
 * it. One of another layout (another version of the module) is not ours
 * to read or free: refuse.
 */
static int vmem_region_take_over(struct vmem *vm)
{
	struct resource *child = vm->region->res.child;
	struct vmem_region *old;

	if (!child || child->start != vm->region->res.start ||
	    child->end != vm->region->res.end ||
	    !child->name || strcmp(child->name, vm->region->name))
		return 0;
	old = container_of(child, struct vmem_region, res);
	if (old->magic != VMEM_REGION_MAGIC) {
		dev_err(&vm->vdev->dev,
			"memory of the region stays added by an incompatible version of this driver: load that version again, or reboot\n");
		return -EBUSY;
	}
	vm->mgid = old->mgid;
	vm->region->self_hosted = old->self_hosted;
	vm->region->nr_mbs = old->nr_mbs;
	/* Its children, the added memory, move up to our reservation. */
	remove_resource(&old->res);
	kfree(old);
	dev_info(&vm->vdev->dev,
		 "reusing the region reservation and memory group %d of a previous driver instance\n",
		 vm->mgid);
	return 0;
}

/*
 * Memory of the region that stays added keeps the reservation (and its
 * memory group, and the record of which blocks hold their memmap):
 * /dev/mem must never reach the region's unplugged memory, and the next
 * driver instance takes them over.
 */
static void vmem_release_region(struct vmem *vm, bool keep)
{
	struct vmem_region *region = vm->region;

	bitmap_free(region->self_hosted);
	region->self_hosted = NULL;
	if (keep) {
		region->mgid = vm->mgid;
		region->nr_mbs = vm->sbm.nr_mbs;
		region->self_hosted = vm->self_hosted;
		vm->self_hosted = NULL;
		dev_info(&vm->vdev->dev,
			 "memory stays added: keeping the region reserved\n");
	} else {
		remove_resource(&region->res);
		kfree(region);
	}
	bitmap_free(vm->self_hosted);
	vm->self_hosted = NULL;
	vm->region = NULL;
}

/*
 * Reserve the device region. Inserted rather than requested: memory that a
 * previous driver instance left added becomes a child of the reservation
 * again, and memory added later nests inside it (the reservation is not
 * marked busy).
 */
static int vmem_reserve_region(struct vmem *vm)
{
	struct vmem_region *region;
	struct resource *res;
	int rc;

	region = kzalloc(sizeof(*region), GFP_KERNEL);
	if (!region)
		return -ENOMEM;
	snprintf(region->name, sizeof(region->name), "virtio_mem (%s)",
		 dev_name(&vm->vdev->dev));
	region->magic = VMEM_REGION_MAGIC;
	region->mgid = -1;
	res = &region->res;
	res->name = region->name;
	res->start = vm->cfg.addr;
	res->end = vm->cfg.addr + vm->cfg.region_size - 1;
	/* System RAM + exclusive: /dev/mem must not reach unplugged memory. */
	res->flags = IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE;
	rc = insert_resource(&iomem_resource, res);
	if (rc) {
		dev_err(&vm->vdev->dev,
			"device region [0x%llx-0x%llx] overlaps another resource\n",
			res->start, res->end);
		kfree(region);
		return rc;
	}
	vm->region = region;
	rc = vmem_region_take_over(vm);
	if (rc) {
		remove_resource(&region->res);
		kfree(region);
		vm->region = NULL;
	}
	return rc;
}

/* From mm, with no onlining or offlining in the region under way. */
static void vmem_snapshot_blocks(struct vmem *vm)
{
	unsigned long mb;
	bool online;

	for (mb = 0; mb < vm->sbm.nr_mbs; mb++)
		if (vmem_mm_mb_present(vm, mb, &online))
			vmem_sbm_set_state(&vm->sbm, mb, online ?
					   VMEM_MB_ONLINE : VMEM_MB_OFFLINE);
}

/*
 * Memory of the region that Linux has (from a previous driver instance) is
 * in use and must be taken over; otherwise anything plugged is a leftover
 * that UNPLUG_ALL may discard. Until this is done, the notifier refuses
 * every onlining and offlining in the region: block states are not known
 * yet. If taking over fails, the driver lets go as at removal (offline
 * memory is removed, online memory stays as it is) with @adopting still
 * set, and refuses to bind.
 */
static int vmem_adopt_or_clean(struct vmem *vm)
{
	struct device *dev = &vm->vdev->dev;
	int rc = 0;

	mutex_lock(&vm->hp_lock);
	if (!vm->adopt) {
		vm->unplug_all = vm->cfg.plugged_size != 0;
		if (vm->unplug_all)
			dev_info(dev, "%llu MiB plugged from before: unplugging all\n",
				 vm->cfg.plugged_size >> 20);
	} else {
		dev_info(dev, "taking over memory left added by a previous driver instance\n");
		vmem_snapshot_blocks(vm);
		rc = vm->ops->adopt(vm);
	}
	if (!rc)
		vm->adopting = false;
	mutex_unlock(&vm->hp_lock);

	if (!rc) {
		if (vm->adopt)
			dev_info(dev, "took over %llu MiB plugged by a previous driver instance\n",
				 vm->plugged >> 20);
		return 0;
	}
	dev_err(dev,
		"cannot take over memory left added (%d): offline memory is removed, online memory stays as it is; load the driver again to retry\n",
		rc);
	vm->ops->teardown(vm);
	return rc;
}

static int vmem_init(struct vmem *vm)
{
	struct device *dev = &vm->vdev->dev;
	const char *why;
	int rc;

	vmem_read_config(vm->vdev, &vm->cfg);
	if (vmem_cfg_check(&vm->cfg, &why)) {
		dev_err(dev, "invalid device configuration: %s\n", why);
		return -EINVAL;
	}
	if (vm->in_kdump)
		return 0;
	vm->mb_size = memory_block_size_bytes();
	rc = vmem_check_pluggable(vm);
	if (rc)
		return rc;
	vm->nid = vmem_pick_node(vm);

	rc = vmem_reserve_region(vm);
	if (rc)
		return rc;
	vm->ops = vm->cfg.block_size < vm->mb_size &&
		  !READ_ONCE(vmem_force_bbm) ? &vmem_sbm_ops : &vmem_bbm_ops;
	rc = vm->ops->init(vm);
	if (rc)
		goto err_region;
	vm->adopt = vmem_mm_any_present(vm);
	vmem_update_usable(vm);
	dev_info(dev,
		 "region [0x%llx-0x%llx], block %llu KiB, %s mode (unit %llu KiB), node %d, requested %llu MiB\n",
		 vm->cfg.addr, vm->cfg.addr + vm->cfg.region_size - 1,
		 vm->cfg.block_size >> 10, vm->ops->name,
		 (vm->sb_size * vm->mbs_per_bb) >> 10, vm->nid,
		 vm->cfg.requested_size >> 20);
	return 0;

err_region:
	/* Memory a previous instance left added keeps the reservation. */
	vmem_release_region(vm, vm->mgid >= 0);
	return rc;
}

static void vmem_deinit(struct vmem *vm, bool keep)
{
	vmem_release_region(vm, keep);
	vmem_sbm_destroy(&vm->sbm);
}

/* In a crash kernel: only tell /proc/vmcore what is RAM. */
static int vmem_probe_kdump(struct vmem *vm)
{
	int rc;

	rc = vmem_init(vm);
	if (rc)
		return rc;
	rc = vmem_req_attach(vm);
	if (rc)
		return rc;
	rc = vmem_kdump_init(vm);
	if (rc)
		vmem_req_detach(vm);
	return rc;
}

static int vmem_probe(struct virtio_device *vdev)
{
	struct vmem *vm;
	bool keep;
	int rc;

	if (!vdev->config->get) {
		dev_err(&vdev->dev, "device has no configuration space\n");
		return -EINVAL;
	}

	vm = kzalloc(sizeof(*vm), GFP_KERNEL);
	if (!vm)
		return -ENOMEM;
	vm->vdev = vdev;
	vdev->priv = vm;
	vm->in_kdump = is_kdump_kernel();
	init_waitqueue_head(&vm->resp_wq);
	mutex_init(&vm->req_lock);
	mutex_init(&vm->hp_lock);
	vm->adopting = true;
	init_waitqueue_head(&vm->transition_wq);
	vm->refs_dropped_mb = ULONG_MAX;
	vm->mgid = -1;
	spin_lock_init(&vm->lock);
	INIT_DELAYED_WORK(&vm->work, vmem_work_fn);
	INIT_LIST_HEAD(&vm->list);

	if (vm->in_kdump) {
		rc = vmem_probe_kdump(vm);
		if (rc)
			goto err_free;
		return 0;
	}
	rc = vmem_init(vm);
	if (rc)
		goto err_free;
	rc = vmem_mm_register(vm);
	if (rc)
		goto err_init;

	/* Requests need DRIVER_OK: adopting asks the device for states. */
	rc = vmem_req_attach(vm);
	if (rc)
		goto err_mm;
	rc = vmem_adopt_or_clean(vm);
	if (rc)
		goto err_ready;
	rc = vmem_pm_register(vm);
	if (rc)
		goto err_ready;
	rc = vmem_sysfs_add(vm);
	if (rc)
		goto err_pm;
	vmem_fault_add(vm);
	/* Notifications may have asked for work meanwhile: not before now. */
	spin_lock_irq(&vm->lock);
	vm->started = true;
	spin_unlock_irq(&vm->lock);
	vmem_queue_work(vm);
	return 0;

err_pm:
	vmem_pm_unregister(vm);
err_ready:
	vmem_req_detach(vm);
err_mm:
	/*
	 * Offline memory is gone (adoption lets go of it), so onlining
	 * nothing can hand unplugged memory to the page allocator once the
	 * notifier is gone.
	 */
	keep = vmem_memory_added(vm);
	vmem_mm_unregister(vm, keep);
	vmem_deinit(vm, keep);
	goto err_free;
err_init:
	vmem_deinit(vm, vmem_mm_any_present(vm));
err_free:
	vdev->priv = NULL;
	kfree(vm);
	return rc;
}

static void vmem_remove_kdump(struct vmem *vm)
{
	vmem_kdump_exit(vm);
	vmem_req_detach(vm);
	kfree(vm);
}

/*
 * Removal: no more work, no more onlining or offlining in the region
 * (vmem_mm_stop_transitions()); then offline memory is removed and what
 * Linux does not have is unplugged. Online memory stays added and plugged:
 * it holds data. It keeps the region reserved and is taken over by the
 * next driver instance.
 */
static void vmem_remove(struct virtio_device *vdev)
{
	struct vmem *vm = vdev->priv;
	bool keep;

	if (vm->in_kdump) {
		vmem_remove_kdump(vm);
		vdev->priv = NULL;
		return;
	}
	vmem_fault_remove(vm);
	vmem_sysfs_remove(vm);
	vmem_pm_unregister(vm);
	spin_lock_irq(&vm->lock);
	vm->removing = true;
	spin_unlock_irq(&vm->lock);
	cancel_delayed_work_sync(&vm->work);
	vmem_mm_stop_transitions(vm);

	vm->ops->teardown(vm);
	keep = vmem_memory_added(vm);
	if (!keep && vm->plugged && !READ_ONCE(vm->broken))
		vmem_req_unplug_all(vm);

	vmem_req_detach(vm);
	vmem_mm_unregister(vm, keep);
	if (keep)
		dev_info(&vdev->dev,
			 "%llu MiB stay plugged and online: they are in use\n",
			 vm->plugged >> 20);
	vmem_deinit(vm, keep);
	vdev->priv = NULL;
	kfree(vm);
}

static unsigned int vmem_features[] = {
#ifdef CONFIG_ACPI_NUMA
	VIRTIO_MEM_F_ACPI_PXM,
#endif
	VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE,
	VIRTIO_MEM_F_PERSISTENT_SUSPEND,
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
#ifdef CONFIG_PM_SLEEP
	.freeze = vmem_freeze,
	.restore = vmem_restore,
#endif
};

static int __init vmem_module_init(void)
{
	int rc;

	rc = vmem_mm_init();
	if (rc)
		return rc;
	vmem_fault_init();
	rc = register_virtio_driver(&vmem_driver);
	if (rc) {
		vmem_fault_exit();
		vmem_mm_exit();
	}
	return rc;
}
module_init(vmem_module_init);

static void __exit vmem_module_exit(void)
{
	unregister_virtio_driver(&vmem_driver);
	vmem_fault_exit();
	vmem_mm_exit();
}
module_exit(vmem_module_exit);

MODULE_DEVICE_TABLE(virtio, vmem_id_table);
MODULE_DESCRIPTION("Virtio-mem driver");
MODULE_LICENSE("GPL");
MODULE_VERSION("1.0");
