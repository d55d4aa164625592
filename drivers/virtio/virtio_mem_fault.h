/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem fault injection, for testing the error paths that QEMU cannot
 * be made to take: a request the device must answer with ERROR, an answer
 * held back past request_timeout_s, a STATE request that fails, memory the
 * device plugs behind the driver's back, an offlining the kernel refuses
 * half-way through a removal, and a take of pages that fails for a moment.
 *
 * Built only with CONFIG_VIRTIO_MEM_FAULT_INJECTION (a debug option); without
 * it every hook below is an empty inline and production builds carry none of
 * it. The knobs are in debugfs, virtio_mem/virtioN/, and for faults during
 * probe in module parameters: see virtio_mem_fault.c.
 */
#ifndef _VIRTIO_MEM_FAULT_H
#define _VIRTIO_MEM_FAULT_H

#include <linux/types.h>

struct vmem;
struct dentry;

#if IS_ENABLED(CONFIG_VIRTIO_MEM_FAULT_INJECTION)

/**
 * struct vmem_fault - faults armed for one device
 * @dir: its debugfs directory
 * @bad_request: send one request the device must answer with ERROR
 * @stray: plug one device block without recording it
 * @hold_next: hold back the answer to the next request
 * @hold_s: for that long, in seconds; 0: until the device is re-armed
 * @holding: an answer is being held back
 * @hold_until: until then (jiffies), if @hold_s
 * @offline_fail: refuse the offlining of the @offline_fail-th memory block
 *	the driver's own removal offlines from now on; 0: none
 * @take_fail: fail the @take_fail-th take of pages from now on; 0: none
 */
struct vmem_fault {
	struct dentry *dir;
	bool bad_request;
	bool stray;
	bool hold_next;
	unsigned int hold_s;
	bool holding;
	unsigned long hold_until;
	unsigned int offline_fail;
	unsigned int take_fail;
};

void vmem_fault_init(void);
void vmem_fault_exit(void);
void vmem_fault_add(struct vmem *vm);
void vmem_fault_remove(struct vmem *vm);
int vmem_fault_run(struct vmem *vm);
bool vmem_fault_answer(struct vmem *vm, u16 type, int *rc, u16 *state);
void vmem_fault_sent(struct vmem *vm);
bool vmem_fault_holding(struct vmem *vm);
void vmem_fault_release(struct vmem *vm);
bool vmem_fault_refuse_offline(struct vmem *vm);
bool vmem_fault_fail_take(struct vmem *vm);

#else

struct vmem_fault {
};

static inline void vmem_fault_init(void)
{
}

static inline void vmem_fault_exit(void)
{
}

static inline void vmem_fault_add(struct vmem *vm)
{
}

static inline void vmem_fault_remove(struct vmem *vm)
{
}

static inline int vmem_fault_run(struct vmem *vm)
{
	return 0;
}

static inline bool vmem_fault_answer(struct vmem *vm, u16 type, int *rc,
				     u16 *state)
{
	return false;
}

static inline void vmem_fault_sent(struct vmem *vm)
{
}

static inline bool vmem_fault_holding(struct vmem *vm)
{
	return false;
}

static inline void vmem_fault_release(struct vmem *vm)
{
}

static inline bool vmem_fault_refuse_offline(struct vmem *vm)
{
	return false;
}

static inline bool vmem_fault_fail_take(struct vmem *vm)
{
	return false;
}

#endif /* CONFIG_VIRTIO_MEM_FAULT_INJECTION */

#endif /* _VIRTIO_MEM_FAULT_H */
