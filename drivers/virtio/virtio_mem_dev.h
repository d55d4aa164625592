/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem driver: the device structure and the interfaces between the
 * driver's parts (request path, memory-hotplug glue, sub-block mode, core).
 */
#ifndef _VIRTIO_MEM_DEV_H
#define _VIRTIO_MEM_DEV_H

#include <linux/ioport.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/spinlock.h>
#include <linux/virtio.h>
#include <linux/virtio_mem.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "virtio_mem_blocks.h"
#include "virtio_mem_config.h"

/**
 * struct vmem_stats - counters exposed to operators
 * @requests: requests sent, per request type
 * @busy: BUSY answers
 * @nacks: NACK answers
 * @errors: ERROR answers and malformed answers
 * @add_failures: failed attempts to add a memory block
 */
struct vmem_stats {
	unsigned long requests[4];
	unsigned long busy;
	unsigned long nacks;
	unsigned long errors;
	unsigned long add_failures;
};

/**
 * struct vmem - one virtio-mem device
 * @vdev: the virtio device
 * @vq: the request queue
 * @req: request buffer, owned by the device while a request is in flight
 * @resp: response buffer, likewise
 * @resp_wq: woken when the device has answered
 * @req_lock: one request in flight at a time
 * @broken: the device stopped answering or broke the contract: hands off
 * @cfg: the configuration last read and accepted
 * @nid: NUMA node the memory is added to
 * @mgid: memory group id of the device's memory
 * @parent: reservation of the whole device region
 * @mb_size: Linux memory block size
 * @sb_size: sub-block size: max(device block, pageblock)
 * @first_mb: id of the first memory block fully inside the region
 * @usable_mbs: memory blocks fully inside the usable region
 * @sbm: sub-block bookkeeping
 * @plugged: bytes this driver has plugged
 * @hp_lock: serialises sub-block state changes of added memory blocks
 *	against onlining and offlining of those blocks
 * @hp_locked: @hp_lock is held across a pair of memory notifications
 * @memory_nb: memory notifier
 * @work: the state machine
 * @lock: protects @removing
 * @removing: the device is going away: queue no more work
 * @unplug_all: memory left plugged by someone else must be unplugged first
 * @backoff_ms: current retry delay, 0 when not backing off
 * @waiting_online: stopped adding memory until some gets onlined
 * @warned_offline: the offline cap message was logged for this wait
 * @warned_mismatch: plugged size mismatch was reported
 * @stats: counters
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

	struct vmem_cfg cfg;
	int nid;
	int mgid;
	struct resource *parent;

	u64 mb_size;
	u64 sb_size;
	unsigned long first_mb;
	unsigned long usable_mbs;
	struct vmem_sbm sbm;
	u64 plugged;

	struct mutex hp_lock; /* sub-block states vs. (off)lining */
	bool hp_locked;
	struct notifier_block memory_nb;

	struct delayed_work work;
	spinlock_t lock; /* @removing vs. queueing work */
	bool removing;
	bool unplug_all;
	unsigned int backoff_ms;
	bool waiting_online;
	bool warned_offline;
	bool warned_mismatch;

	struct vmem_stats stats;
	struct list_head list;
};

/* Module parameters (virtio_mem_core.c). */
extern unsigned int vmem_offline_limit_mb;
extern unsigned int vmem_backoff_min_ms;
extern unsigned int vmem_backoff_max_ms;
extern unsigned int vmem_req_timeout_s;

/* Request path (virtio_mem_req.c). */
int vmem_req_plug(struct vmem *vm, u64 addr, u64 size);
int vmem_req_unplug(struct vmem *vm, u64 addr, u64 size);
int vmem_req_unplug_all(struct vmem *vm);
void vmem_vq_done(struct virtqueue *vq);

/* Memory-hotplug glue (virtio_mem_mm.c). */
int vmem_mm_register(struct vmem *vm);
void vmem_mm_unregister(struct vmem *vm);
int vmem_mm_add(struct vmem *vm, unsigned long mb);
int vmem_mm_remove_offline(struct vmem *vm, unsigned long mb);
void vmem_mm_online_pages(struct vmem *vm, unsigned long mb, unsigned int sb,
			  unsigned int nr);
bool vmem_mm_region_in_use(u64 addr, u64 size);

/* Sub-block mode (virtio_mem_sbm.c). */
int vmem_sbm_init_dev(struct vmem *vm);
int vmem_sbm_plug(struct vmem *vm, u64 size);
void vmem_sbm_teardown(struct vmem *vm);
unsigned long vmem_sbm_offline_bytes(struct vmem *vm);

/* Core (virtio_mem_core.c). */
void vmem_queue_work(struct vmem *vm);

static inline u64 vmem_mb_addr(const struct vmem *vm, unsigned long mb)
{
	return (vm->first_mb + mb) * vm->mb_size;
}

static inline u64 vmem_sb_addr(const struct vmem *vm, unsigned long mb,
			       unsigned int sb)
{
	return vmem_mb_addr(vm, mb) + sb * vm->sb_size;
}

#endif /* _VIRTIO_MEM_DEV_H */
