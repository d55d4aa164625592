/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem driver: the device structure and the interfaces between the
 * driver's parts (request path, memory-hotplug glue, sub-block mode, core).
 */
#ifndef _VIRTIO_MEM_DEV_H
#define _VIRTIO_MEM_DEV_H

#include <linux/crash_dump.h>
#include <linux/ioport.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/pfn.h>
#include <linux/notifier.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "virtio_mem_blocks.h"
#include "virtio_mem_budget.h"
#include "virtio_mem_config.h"
#include "virtio_mem_fault.h"

/**
 * struct vmem_stats - counters exposed to operators
 * @requests: requests sent, per request type
 * @busy: BUSY answers
 * @nacks: NACK answers
 * @errors: ERROR answers and malformed answers
 * @add_failures: failed attempts to add a memory block
 * @pressure_stops: unplug steps held back to keep the guest's reserve
 * @memmap_stops: times plugging paused because the memmap of more memory
 *	would leave the kernel too little memory
 * @isolation_failures: online memory that could not be freed for unplug
 * @take_retries: takes of online memory tried again because a page was not
 *	free yet
 * @resyncs: re-synchronisations with the device after ERROR answers
 * @leaked: bytes taken from Linux for an unplug whose outcome is unknown
 *	(the answer never came): kept offline for good
 */
struct vmem_stats {
	unsigned long requests[4];
	unsigned long busy;
	unsigned long nacks;
	unsigned long errors;
	unsigned long add_failures;
	unsigned long pressure_stops;
	unsigned long memmap_stops;
	unsigned long isolation_failures;
	unsigned long take_retries;
	unsigned long resyncs;
	u64 leaked;
};

struct vmem;

/*
 * Marks a struct vmem_region of this layout. The reservation of memory that
 * stays added outlives the driver instance that made it, and the next
 * instance (maybe another version of the module) finds it in the resource
 * tree: it trusts the fields after @magic only if @magic is this value.
 * Change it whenever the layout changes; @res and @magic stay first.
 */
#define VMEM_REGION_MAGIC	0x766d0002

/**
 * struct vmem_region - reservation of a device region in iomem_resource
 * @res: the reservation, "virtio_mem (virtioN)", exclusive System RAM so
 *	that /dev/mem never reaches the region
 * @magic: VMEM_REGION_MAGIC
 * @mgid: memory group of the region's memory
 * @nr_mbs: memory blocks @self_hosted covers
 * @self_hosted: memory blocks that hold their own memmap, or NULL
 * @name: storage for @res.name
 *
 * Memory of the region that stays added after the driver is gone (it was
 * online, hence in use) keeps this reservation, its memory group and what
 * the driver knew of its memmaps: the next driver instance finds it as the
 * child of its own reservation and takes it over (vmem_region_take_over()).
 */
struct vmem_region {
	struct resource res;
	u32 magic;
	int mgid;
	unsigned long nr_mbs;
	unsigned long *self_hosted;
	char name[32];
};

/**
 * struct vmem_mode_ops - how a block mode plugs and unplugs
 * @name: for messages
 * @init: set up geometry and bookkeeping (configuration validated)
 * @adopt: take over memory a previous driver instance left added
 * @plug: plug up to the given number of bytes more
 * @unplug: unplug up to the given number of bytes
 * @teardown: on removal, give back what can be given back safely
 *
 * @plug and @unplug return 0 when done, -EINTR when the configuration
 * changed meanwhile, -ENOSPC when they must wait for an event (onlining,
 * offlining, a configuration change), -ENOBUFS when unplugging more, or
 * the memmap of more memory, would leave the guest short of memory, or an
 * error to retry after a backoff.
 */
struct vmem_mode_ops {
	const char *name;
	int (*init)(struct vmem *vm);
	int (*adopt)(struct vmem *vm);
	int (*plug)(struct vmem *vm, u64 size);
	int (*unplug)(struct vmem *vm, u64 size);
	void (*teardown)(struct vmem *vm);
};

extern const struct vmem_mode_ops vmem_sbm_ops;
extern const struct vmem_mode_ops vmem_bbm_ops;

/**
 * struct vmem - one virtio-mem device
 * @vdev: the virtio device
 * @vq: the request queue
 * @req: request buffer, owned by the device while a request is in flight
 * @resp: response buffer, likewise
 * @resp_wq: woken when the device has answered
 * @req_lock: one request in flight at a time; protects @vq, @req, @resp
 *	and the @stalled_* fields
 * @broken: the device broke the contract, or its queue is gone: hands off
 * @stalled: a request went unanswered for request_timeout_s: its buffers
 *	still belong to the device, and nothing is sent until its answer comes
 *	or the administrator re-arms the device (vmem_req_rearm())
 * @stalled_type: that request's type
 * @stalled_since: when it was sent (jiffies)
 * @resync_needed: the outcome of some request is unknown: compare the
 *	driver's view with the device's (STATE) before going on
 * @in_kdump: bound in a crash kernel: read-only, see virtio_mem_kdump.c
 * @cfg: the configuration last read and accepted
 * @nid: NUMA node the memory is added to
 * @mgid: memory group id of the device's memory
 * @region: reservation of the whole device region
 * @ops: sub-block or big-block mode
 * @mb_size: Linux memory block size
 * @sb_size: sub-block size: max(device block, pageblock); in big-block
 *	mode, the memory block size (one "sub-block" per memory block)
 * @mbs_per_bb: memory blocks per big block in big-block mode, else 1
 * @bb_size: big block size: the device block, or more with force_bbm
 * @no_direct: offlining memory in use without taking its pages first
 *	(vmem_mm_remove_direct()) failed; take them first until a whole
 *	block has been unplugged that way
 * @self_host: add memory blocks with their memmap inside (sub-block mode,
 *	memmap_on_memory parameter)
 * @self_host_ok: the kernel did so at least once (seen at onlining)
 * @self_host_off: the kernel refused, or added the block the usual way: it
 *	was not booted with memory_hotplug.memmap_on_memory=1
 * @memmap_units: sub-blocks a self-hosted memmap occupies, from the first
 * @self_hosted: memory blocks that hold their own memmap (one bit each)
 * @first_mb: id of the first memory block fully inside the region
 * @usable_mbs: memory blocks fully inside the usable region
 * @sbm: sub-block bookkeeping
 * @plugged: bytes this driver has plugged
 * @hp_lock: protects memory block states and the sub-block bits of added
 *	blocks against the memory notifier, and @adopting
 * @adopting: block states are not known yet: the notifier refuses onlining
 *	and offlining until adoption has filled them in
 * @transition_wq: woken when a memory block finished onlining or offlining
 * @refs_dropped_mb: block whose unplugged pages gave up their reference
 *	for an offlining in progress, ULONG_MAX if none
 * @removing_blocks: the driver's own offline_and_remove_memory() runs:
 *	the core may online its blocks again to roll back a failure
 * @memory_nb: memory notifier
 * @pm_nb: PM notifier, refuses hibernation
 * @work: the state machine
 * @lock: protects @started and @removing against the queueing of work
 * @started: probe has finished: work may be queued
 * @removing: the device is going away: queue no more work; set under
 *	@hp_lock too, so the notifier refuses onlining and offlining
 * @config_pending: a configuration change arrived: restart the work
 * @unplug_all: memory left plugged by someone else must be unplugged first
 * @adopt: a previous driver instance left memory of the region added
 * @backoff_ms: current retry delay, 0 when not backing off
 * @plug_wait: why adding memory waits, if it does
 * @unplug_wait: why unplugging stopped short, if it did
 * @mismatch: plugged sizes (device's, driver's) that differed when last
 *	checked
 * @warned_pressure: the unplug pause for memory pressure was reported
 * @stop_logged: (requested, plugged) sizes at which the unplug that
 *	stopped short was reported, zero once it no longer stops; a stop is
 *	reported once
 * @stats: counters
 * @fault: fault injection (CONFIG_VIRTIO_MEM_FAULT_INJECTION)
 * @vmcore_cb: in a crash kernel, tells /proc/vmcore which pages are RAM
 * @kdump_known: in a crash kernel, device blocks whose state was asked for
 * @kdump_plugged: of those, the plugged ones
 * @kdump_blocks: device blocks in the usable region, in a crash kernel
 * @list: entry in the list of all devices
 */
struct vmem {
	struct virtio_device *vdev;
	struct virtqueue *vq;
	struct virtio_mem_req req;
	struct virtio_mem_resp resp;
	wait_queue_head_t resp_wq;
	struct mutex req_lock; /* one request in flight */
	bool broken;
	bool stalled;
	u16 stalled_type;
	unsigned long stalled_since;
	bool resync_needed;
	bool in_kdump;

	struct vmem_cfg cfg;
	int nid;
	int mgid;
	struct vmem_region *region;
	const struct vmem_mode_ops *ops;

	u64 mb_size;
	u64 sb_size;
	unsigned long mbs_per_bb;
	u64 bb_size;
	bool no_direct;
	bool self_host;
	bool self_host_ok;
	bool self_host_off;
	unsigned long memmap_units;
	unsigned long *self_hosted;
	unsigned long first_mb;
	unsigned long usable_mbs;
	struct vmem_sbm sbm;
	u64 plugged;

	struct mutex hp_lock; /* block states vs. memory notifier */
	bool adopting;
	wait_queue_head_t transition_wq;
	unsigned long refs_dropped_mb;
	bool removing_blocks;
	struct notifier_block memory_nb;
	struct notifier_block pm_nb;

	struct delayed_work work;
	spinlock_t lock; /* @started, @removing vs. queueing work */
	bool started;
	bool removing;
	bool config_pending;
	bool unplug_all;
	bool adopt;
	unsigned int backoff_ms;
	enum vmem_plug_wait plug_wait;
	enum vmem_unplug_wait unplug_wait;
	u64 mismatch[2];
	bool warned_pressure;
	u64 stop_logged[2];

	struct vmem_stats stats;
	struct vmem_fault fault;
#ifdef CONFIG_PROC_VMCORE
	struct vmcore_cb vmcore_cb;
#endif
	unsigned long *kdump_known;
	unsigned long *kdump_plugged;
	unsigned long kdump_blocks;
	struct list_head list;
};

/* Module parameters and sysfs (virtio_mem_sysfs.c). */
extern unsigned int vmem_offline_limit_mb;
extern unsigned int vmem_backoff_min_ms;
extern unsigned int vmem_backoff_max_ms;
extern unsigned int vmem_req_timeout_s;
extern bool vmem_unplug_online;
extern unsigned int vmem_unplug_reserve_mb;
extern unsigned int vmem_pressure_poll_ms;
extern unsigned int vmem_kernel_reserve_mb;
extern bool vmem_memmap_on_memory;
extern bool vmem_force_bbm;
extern unsigned long vmem_bbm_block_size;
int vmem_sysfs_add(struct vmem *vm);
void vmem_sysfs_remove(struct vmem *vm);

/* Request path (virtio_mem_req.c). */
int vmem_req_plug(struct vmem *vm, u64 addr, u64 size);
int vmem_req_unplug(struct vmem *vm, u64 addr, u64 size);
int vmem_req_unplug_all(struct vmem *vm);
int vmem_req_state(struct vmem *vm, u64 addr, u64 size);
void vmem_vq_done(struct virtqueue *vq);
int vmem_req_attach(struct vmem *vm);
void vmem_req_detach(struct vmem *vm);
bool vmem_req_ready(struct vmem *vm);
int vmem_req_rearm(struct vmem *vm);

/* Memory-hotplug glue (virtio_mem_mm.c). */
int vmem_mm_init(void);
void vmem_mm_exit(void);
int vmem_mm_register(struct vmem *vm);
void vmem_mm_unregister(struct vmem *vm, bool keep);
int vmem_mm_add(struct vmem *vm, unsigned long mb, unsigned long nr);
int vmem_mm_remove(struct vmem *vm, unsigned long mb, unsigned long nr);
/*
 * Pages in use a block may hold and still be offlined directly
 * (vmem_mm_remove_direct()), in both modes: one in VMEM_DIRECT_SHARE.
 * Offlining migrates them; so many move well within the offline timeout
 * even under TCG.
 */
#define VMEM_DIRECT_SHARE 8
/*
 * Free memory blocks next to each other are offlined and removed together,
 * up to this many, and unplugged in one request (sub-block mode).
 */
#define VMEM_DIRECT_BATCH 8UL
int vmem_mm_remove_direct(struct vmem *vm, unsigned long mb, unsigned long nr,
			  unsigned long max_used);
void vmem_mm_online_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr);
int vmem_mm_take_pages(struct vmem *vm, unsigned long first_sb,
		       unsigned long nr);
void vmem_mm_return_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr);
void vmem_mm_retire_pages(struct vmem *vm, unsigned long first_sb,
			  unsigned long nr);
bool vmem_mm_sb_all_offline(struct vmem *vm, unsigned long sb);
void vmem_mm_stop_transitions(struct vmem *vm);
bool vmem_mm_headroom_ok(struct vmem *vm, unsigned long nr_pages);
long vmem_mm_reserve_pages(void);
unsigned long vmem_mm_free_kernel_pages(void);
unsigned long vmem_mm_kernel_reserve_pages(void);
unsigned long vmem_mm_memmap_pages(struct vmem *vm);
unsigned long vmem_mm_memmap_cost(struct vmem *vm);
int vmem_mm_add_self_hosted(struct vmem *vm, unsigned long mb);
bool vmem_mm_mb_self_hosted(struct vmem *vm, unsigned long mb);
bool vmem_mm_mb_movable(struct vmem *vm, unsigned long mb);
bool vmem_mm_mb_idle(struct vmem *vm, unsigned long mb);
u64 vmem_mm_kernel_zone_size(struct vmem *vm);
bool vmem_mm_mb_present(struct vmem *vm, unsigned long mb, bool *online);
bool vmem_mm_any_present(struct vmem *vm);

/* Shared by both block modes (virtio_mem_plug.c). */
int vmem_geometry_init(struct vmem *vm);
int vmem_plug_run(struct vmem *vm, unsigned long first, unsigned long nr,
		  unsigned long *done);
int vmem_unplug_run(struct vmem *vm, unsigned long first, unsigned long nr,
		    unsigned long *done);
void vmem_unplug_settle(struct vmem *vm, unsigned long first, unsigned long nr,
			int rc);
int vmem_make_range(struct vmem *vm, u64 addr, u64 size, int state,
		    bool plugged);
unsigned long vmem_add_budget(struct vmem *vm, int *rc);
bool vmem_memory_added(struct vmem *vm);

/* System sleep (virtio_mem_pm.c). */
int vmem_pm_register(struct vmem *vm);
void vmem_pm_unregister(struct vmem *vm);
int vmem_freeze(struct virtio_device *vdev);
int vmem_restore(struct virtio_device *vdev);

/* Crash kernels (virtio_mem_kdump.c). */
int vmem_kdump_init(struct vmem *vm);
void vmem_kdump_exit(struct vmem *vm);

/* Core (virtio_mem_core.c). */
void vmem_read_config(struct virtio_device *vdev, struct vmem_cfg *cfg);

/**
 * vmem_queue_work() - run the state machine soon
 * @vm: the device
 *
 * For anyone who learns that the work has something to do: a
 * configuration change, a block onlined, a late answer, a sysfs knob.
 */
static inline void vmem_queue_work(struct vmem *vm)
{
	unsigned long flags;

	spin_lock_irqsave(&vm->lock, flags);
	if (vm->started && !vm->removing)
		mod_delayed_work(system_freezable_wq, &vm->work, 0);
	spin_unlock_irqrestore(&vm->lock, flags);
}

/**
 * vmem_restart_pending() - whether the work should start over
 * @vm: the device
 *
 * Long plug and unplug loops poll this between steps, so that they act on
 * the latest request instead of finishing a stale one.
 *
 * Return: true if the configuration changed or the device is going away.
 */
static inline bool vmem_restart_pending(struct vmem *vm)
{
	return READ_ONCE(vm->config_pending) || READ_ONCE(vm->removing);
}

static inline u64 vmem_mb_addr(const struct vmem *vm, unsigned long mb)
{
	return (vm->first_mb + mb) * vm->mb_size;
}

/* Address of sub-block @sb, counted from the first memory block. */
static inline u64 vmem_sb_addr(const struct vmem *vm, unsigned long sb)
{
	return vmem_mb_addr(vm, 0) + (u64)sb * vm->sb_size;
}

static inline unsigned long vmem_sb_pfn(const struct vmem *vm,
					unsigned long sb)
{
	return PHYS_PFN(vmem_sb_addr(vm, sb));
}

static inline unsigned long vmem_sb_pages(const struct vmem *vm)
{
	return PHYS_PFN(vm->sb_size);
}

/* Units (sub-blocks) one request may cover. */
static inline unsigned long vmem_units_per_req(const struct vmem *vm)
{
	return vmem_max_units_per_req(vm->sb_size, vm->cfg.block_size);
}

#endif /* _VIRTIO_MEM_DEV_H */
