// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem request path: one request in flight, a bounded wait for the
 * answer, and the mapping of device answers to error codes:
 *
 *   ACK   -> 0
 *   NACK  -> -EAGAIN   (the request shrank: re-read the configuration)
 *   BUSY  -> -EBUSY    (retry later)
 *   ERROR -> -EIO      (logged; the caller re-synchronises)
 *   no answer in time -> -ETIMEDOUT, and the device is marked broken
 *
 * An answer that never comes leaves the outcome of its request unknown:
 * callers must then assume the worst for memory (see vmem_unplug_settle()).
 * The debugfs knob inject_timeout makes the driver drop the answer to its
 * next request, which QEMU cannot be made to withhold.
 */
#include <linux/jiffies.h>
#include <linux/stddef.h>
#include <linux/scatterlist.h>
#include <linux/virtio_config.h>

#include "virtio_mem_dev.h"
#include "virtio_mem_trace.h"

static const char *const vmem_req_names[] = {
	[VIRTIO_MEM_REQ_PLUG] = "PLUG",
	[VIRTIO_MEM_REQ_UNPLUG] = "UNPLUG",
	[VIRTIO_MEM_REQ_UNPLUG_ALL] = "UNPLUG_ALL",
	[VIRTIO_MEM_REQ_STATE] = "STATE",
};

/**
 * vmem_vq_done() - virtqueue callback: the device answered
 * @vq: the request queue
 */
void vmem_vq_done(struct virtqueue *vq)
{
	struct vmem *vm = vq->vdev->priv;

	wake_up(&vm->resp_wq);
}

static bool vmem_resp_ready(struct vmem *vm, unsigned int *len)
{
	return virtqueue_get_buf(vm->vq, len);
}

/* Bytes of a valid answer: STATE answers carry the state. */
static unsigned int vmem_resp_len(u16 type)
{
	if (type == VIRTIO_MEM_REQ_STATE)
		return offsetofend(struct virtio_mem_resp, u.state.state);
	return offsetofend(struct virtio_mem_resp, type);
}

/* Send one request and wait for its answer; returns the response type. */
static int vmem_send(struct vmem *vm, u16 type, u64 addr, u64 nb_blocks)
{
	struct virtio_device *vdev = vm->vdev;
	struct scatterlist sg_req, sg_resp, *sgs[2];
	unsigned int len = 0;
	bool dropped;
	ktime_t t0 = 0;
	long left;
	int rc;

	if (WARN_ON_ONCE(nb_blocks > VIRTIO_MEM_REQ_MAX_BLOCKS))
		return -EINVAL;

	mutex_lock(&vm->req_lock);
	if (vm->broken) {
		rc = -ENODEV;
		goto out;
	}

	memset(&vm->req, 0, sizeof(vm->req));
	memset(&vm->resp, 0, sizeof(vm->resp));
	vm->req.type = cpu_to_virtio16(vdev, type);
	/* plug, unplug and state share one layout */
	vm->req.u.plug.addr = cpu_to_virtio64(vdev, addr);
	vm->req.u.plug.nb_blocks = cpu_to_virtio16(vdev, nb_blocks);

	sg_init_one(&sg_req, &vm->req, sizeof(vm->req));
	sg_init_one(&sg_resp, &vm->resp, sizeof(vm->resp));
	sgs[0] = &sg_req;
	sgs[1] = &sg_resp;

	rc = virtqueue_add_sgs(vm->vq, sgs, 1, 1, vm, GFP_KERNEL);
	if (rc)
		goto out;
	t0 = ktime_get();
	virtqueue_kick(vm->vq);
	vm->stats.requests[type]++;

	left = wait_event_timeout(vm->resp_wq, vmem_resp_ready(vm, &len),
				  READ_ONCE(vmem_req_timeout_s) * HZ);
	dropped = left && READ_ONCE(vm->inject_timeout);
	if (!left || dropped) {
		/* The buffers stay with the device until it is reset. */
		WRITE_ONCE(vm->inject_timeout, false);
		WRITE_ONCE(vm->broken, true);
		dev_err(&vdev->dev,
			"no answer to %s (addr 0x%llx, %llu blocks) within %u s%s: stopping\n",
			vmem_req_names[type], addr, nb_blocks,
			READ_ONCE(vmem_req_timeout_s),
			dropped ? " (injected: answer dropped)" : "");
		rc = -ETIMEDOUT;
		goto out;
	}
	if (len < vmem_resp_len(type)) {
		vm->stats.errors++;
		dev_err(&vdev->dev, "%s: short response (%u bytes)\n",
			vmem_req_names[type], len);
		rc = -EIO;
		goto out;
	}
	rc = virtio16_to_cpu(vdev, vm->resp.type);
out:
	/* Sent requests only: t0 is set once the device has it. */
	if (t0)
		trace_virtio_mem_request(dev_name(&vdev->dev), type, addr,
					 nb_blocks * vm->cfg.block_size, rc,
					 ktime_to_ns(ktime_sub(ktime_get(),
							       t0)));
	mutex_unlock(&vm->req_lock);
	return rc;
}

static int vmem_resp_to_errno(struct vmem *vm, int resp, u16 type, u64 addr,
			      u64 nb_blocks)
{
	switch (resp) {
	case VIRTIO_MEM_RESP_ACK:
		return 0;
	case VIRTIO_MEM_RESP_NACK:
		vm->stats.nacks++;
		if (type == VIRTIO_MEM_REQ_PLUG)
			return -EAGAIN;
		break;
	case VIRTIO_MEM_RESP_BUSY:
		vm->stats.busy++;
		return -EBUSY;
	case VIRTIO_MEM_RESP_ERROR:
		vm->stats.errors++;
		dev_err_ratelimited(&vm->vdev->dev,
				    "%s (addr 0x%llx, %llu blocks) failed: device answered ERROR\n",
				    vmem_req_names[type], addr, nb_blocks);
		return -EIO;
	default:
		if (resp < 0)
			return resp;
		break;
	}
	vm->stats.errors++;
	dev_err_ratelimited(&vm->vdev->dev,
			    "%s (addr 0x%llx, %llu blocks): unexpected answer %d\n",
			    vmem_req_names[type], addr, nb_blocks, resp);
	return -EIO;
}

static int vmem_req_range(struct vmem *vm, u16 type, u64 addr, u64 size)
{
	u64 nb_blocks = div64_u64(size, vm->cfg.block_size);
	int resp = vmem_send(vm, type, addr, nb_blocks);

	return vmem_resp_to_errno(vm, resp, type, addr, nb_blocks);
}

/**
 * vmem_req_plug() - ask the device to plug a range
 * @vm: the device
 * @addr: start, aligned to the device block size
 * @size: length, a multiple of the device block size, at most
 *	VIRTIO_MEM_REQ_MAX_BLOCKS blocks
 *
 * Return: 0, -EAGAIN (NACK), -EBUSY, -EIO, -ETIMEDOUT, -ENODEV.
 */
int vmem_req_plug(struct vmem *vm, u64 addr, u64 size)
{
	return vmem_req_range(vm, VIRTIO_MEM_REQ_PLUG, addr, size);
}

/**
 * vmem_req_unplug() - ask the device to unplug a range
 * @vm: the device
 * @addr: start, aligned to the device block size
 * @size: length, as for vmem_req_plug()
 *
 * Return: 0, -EBUSY, -EIO, -ETIMEDOUT, -ENODEV.
 */
int vmem_req_unplug(struct vmem *vm, u64 addr, u64 size)
{
	return vmem_req_range(vm, VIRTIO_MEM_REQ_UNPLUG, addr, size);
}

/**
 * vmem_req_unplug_all() - ask the device to unplug everything
 * @vm: the device
 *
 * Return: 0, -EBUSY, -EIO, -ETIMEDOUT, -ENODEV.
 */
int vmem_req_unplug_all(struct vmem *vm)
{
	int resp = vmem_send(vm, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0);

	return vmem_resp_to_errno(vm, resp, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0);
}

/**
 * vmem_req_state() - ask the device whether a range is plugged
 * @vm: the device
 * @addr: start, aligned to the device block size
 * @size: length, as for vmem_req_plug()
 *
 * Return: VIRTIO_MEM_STATE_PLUGGED, _UNPLUGGED or _MIXED, or -EBUSY, -EIO,
 * -ETIMEDOUT, -ENODEV.
 */
int vmem_req_state(struct vmem *vm, u64 addr, u64 size)
{
	u64 nb_blocks = div64_u64(size, vm->cfg.block_size);
	int resp = vmem_send(vm, VIRTIO_MEM_REQ_STATE, addr, nb_blocks);
	int rc = vmem_resp_to_errno(vm, resp, VIRTIO_MEM_REQ_STATE, addr,
				    nb_blocks);
	int state;

	if (rc)
		return rc;
	state = virtio16_to_cpu(vm->vdev, vm->resp.u.state.state);
	if (state > VIRTIO_MEM_STATE_MIXED) {
		vm->stats.errors++;
		dev_err_ratelimited(&vm->vdev->dev,
				    "STATE (addr 0x%llx): unknown state %d\n",
				    addr, state);
		return -EIO;
	}
	return state;
}
