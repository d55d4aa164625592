// SPDX-License-Identifier: GPL-2.0-only
/*
 * virtio-mem request path: one request in flight, a bounded wait for the
 * answer, and the mapping of device answers to error codes:
 *
 *   ACK   -> 0
 *   NACK  -> -EAGAIN   (the request shrank: re-read the configuration)
 *   BUSY  -> -EBUSY    (retry later)
 *   ERROR -> -EIO      (logged; the caller re-synchronises)
 *   no answer in time -> -ETIMEDOUT
 *
 * An answer that does not come within request_timeout_s leaves the outcome
 * of its request unknown: callers then assume the worst for memory (see
 * vmem_unplug_settle()). Its buffers still belong to the device, so the
 * driver stalls: it sends nothing and every request fails with -ETIMEDOUT
 * at once, until the answer arrives after all (the work then re-checks
 * the device's state) or the administrator re-arms the device, which
 * resets its queue. A slow host is not a dead one.
 *
 * The STATE answer is copied out while req_lock is held: another request
 * (a second /proc/vmcore reader) reuses the buffer as soon as it is
 * dropped.
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
	/* An answer nobody waits for any more: the work takes it. */
	if (READ_ONCE(vm->stalled))
		vmem_queue_work(vm);
}

/* req_lock held. Whether the device answered: it gave the buffers back. */
static bool vmem_resp_ready(struct vmem *vm, unsigned int *len)
{
	if (vmem_fault_holding(vm))
		return false;
	return virtqueue_get_buf(vm->vq, len);
}

/* Bytes of a valid answer: STATE answers carry the state. */
static unsigned int vmem_resp_len(u16 type)
{
	if (type == VIRTIO_MEM_REQ_STATE)
		return offsetofend(struct virtio_mem_resp, u.state.state);
	return offsetofend(struct virtio_mem_resp, type);
}

/*
 * req_lock held. Whether the answer to a request that timed out came
 * since: then the device is usable again, and what it did with that
 * request, and any after it the driver gave up on, must be checked.
 */
static bool vmem_collect_late(struct vmem *vm)
{
	unsigned int len;

	if (!vm->stalled)
		return true;
	if (!vm->vq || !vmem_resp_ready(vm, &len))
		return false;
	WRITE_ONCE(vm->stalled, false);
	WRITE_ONCE(vm->resync_needed, true);
	dev_info(&vm->vdev->dev,
		 "the device answered %s after %u s: resuming\n",
		 vmem_req_names[vm->stalled_type],
		 jiffies_to_msecs(jiffies - vm->stalled_since) / 1000);
	return true;
}

/*
 * Send one request and wait for its answer; returns the response type,
 * and for STATE the state in *@state, read before anyone else can reuse
 * the buffer.
 */
static int vmem_send(struct vmem *vm, u16 type, u64 addr, u64 nb_blocks,
		     u16 *state)
{
	struct virtio_device *vdev = vm->vdev;
	struct scatterlist sg_req, sg_resp, *sgs[2];
	unsigned int len = 0;
	ktime_t t0 = 0;
	long left;
	int rc;

	if (nb_blocks > VIRTIO_MEM_REQ_MAX_BLOCKS) {
		dev_err_ratelimited(&vdev->dev,
				    "%s (addr 0x%llx) of %llu blocks: a request holds at most %u\n",
				    vmem_req_names[type], addr, nb_blocks,
				    VIRTIO_MEM_REQ_MAX_BLOCKS);
		return -EINVAL;
	}

	mutex_lock(&vm->req_lock);
	if (vm->broken || !vm->vq) {
		rc = -ENODEV;
		goto out;
	}
	if (!vmem_collect_late(vm)) {
		rc = -ETIMEDOUT;
		goto out;
	}
	if (vmem_fault_answer(vm, type, &rc, state)) {
		if (rc == -EIO) {
			vm->stats.errors++;
			dev_err(&vdev->dev, "%s: malformed answer\n",
				vmem_req_names[type]);
		}
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
	vmem_fault_sent(vm);

	left = wait_event_timeout(vm->resp_wq, vmem_resp_ready(vm, &len),
				  READ_ONCE(vmem_req_timeout_s) * HZ);
	if (!left) {
		/* The buffers stay with the device: wait for them. */
		WRITE_ONCE(vm->stalled, true);
		vm->stalled_type = type;
		vm->stalled_since = jiffies - READ_ONCE(vmem_req_timeout_s) * HZ;
		dev_err(&vdev->dev,
			"no answer to %s (addr 0x%llx, %llu blocks) within %u s: sending nothing until it comes, or until the device is re-armed\n",
			vmem_req_names[type], addr, nb_blocks,
			READ_ONCE(vmem_req_timeout_s));
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
	if (state)
		*state = virtio16_to_cpu(vdev, vm->resp.u.state.state);
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
	int resp = vmem_send(vm, type, addr, nb_blocks, NULL);

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
	int resp = vmem_send(vm, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0, NULL);

	return vmem_resp_to_errno(vm, resp, VIRTIO_MEM_REQ_UNPLUG_ALL, 0, 0);
}

/* STATE of at most VIRTIO_MEM_REQ_MAX_BLOCKS blocks. */
static int vmem_req_state_one(struct vmem *vm, u64 addr, u64 nb_blocks)
{
	u16 state = 0;
	int resp = vmem_send(vm, VIRTIO_MEM_REQ_STATE, addr, nb_blocks, &state);
	int rc = vmem_resp_to_errno(vm, resp, VIRTIO_MEM_REQ_STATE, addr,
				    nb_blocks);

	if (rc)
		return rc;
	if (state > VIRTIO_MEM_STATE_MIXED) {
		vm->stats.errors++;
		dev_err_ratelimited(&vm->vdev->dev,
				    "STATE (addr 0x%llx): unknown state %u\n",
				    addr, state);
		return -EIO;
	}
	return state;
}

/**
 * vmem_req_state() - ask the device whether a range is plugged
 * @vm: the device
 * @addr: start, aligned to the device block size
 * @size: length, a multiple of the device block size; a range of more
 *	than VIRTIO_MEM_REQ_MAX_BLOCKS blocks is asked for in parts
 *
 * Return: VIRTIO_MEM_STATE_PLUGGED, _UNPLUGGED or _MIXED, or -EBUSY, -EIO,
 * -ETIMEDOUT, -ENODEV, -ENOMEM.
 */
int vmem_req_state(struct vmem *vm, u64 addr, u64 size)
{
	u64 bs = vm->cfg.block_size;
	u64 left = div64_u64(size, bs);
	int state = -EINVAL;

	while (left) {
		u64 nb = min_t(u64, left, VIRTIO_MEM_REQ_MAX_BLOCKS);
		int st = vmem_req_state_one(vm, addr, nb);

		if (st < 0)
			return st;
		state = state < 0 ? st : vmem_state_merge(state, st);
		if (state == VIRTIO_MEM_STATE_MIXED)
			break;
		addr += nb * bs;
		left -= nb;
	}
	return state;
}

/**
 * vmem_req_attach() - create the request queue and let the device run
 * @vm: the device, its features negotiated
 *
 * Return: 0 or the error of creating the queue.
 */
int vmem_req_attach(struct vmem *vm)
{
	struct virtqueue *vq;

	vq = virtio_find_single_vq(vm->vdev, vmem_vq_done, "requests");
	if (IS_ERR(vq))
		return PTR_ERR(vq);
	mutex_lock(&vm->req_lock);
	vm->vq = vq;
	mutex_unlock(&vm->req_lock);
	virtio_device_ready(vm->vdev);
	return 0;
}

/**
 * vmem_req_detach() - reset the device and delete its queue
 * @vm: the device
 *
 * The reset gives back any buffers the device still holds: an answer held
 * back is lost, so what it would have told must be checked again.
 */
void vmem_req_detach(struct vmem *vm)
{
	struct virtio_device *vdev = vm->vdev;

	mutex_lock(&vm->req_lock);
	virtio_reset_device(vdev);
	if (vm->vq)
		vdev->config->del_vqs(vdev);
	vm->vq = NULL;
	if (vm->stalled) {
		WRITE_ONCE(vm->stalled, false);
		WRITE_ONCE(vm->resync_needed, true);
	}
	vmem_fault_release(vm);
	mutex_unlock(&vm->req_lock);
}

/**
 * vmem_req_ready() - whether requests can be sent
 * @vm: the device
 *
 * Collects an answer that came late, if there is one.
 *
 * Return: false while a request is unanswered, or the device is broken.
 */
bool vmem_req_ready(struct vmem *vm)
{
	bool ready;

	mutex_lock(&vm->req_lock);
	ready = !vm->broken && vm->vq && vmem_collect_late(vm);
	mutex_unlock(&vm->req_lock);
	return ready;
}

/* Acknowledge the device and agree on features again, after a reset. */
static int vmem_req_renegotiate(struct virtio_device *vdev)
{
	int rc;

	virtio_add_status(vdev, VIRTIO_CONFIG_S_ACKNOWLEDGE);
	virtio_add_status(vdev, VIRTIO_CONFIG_S_DRIVER);
	rc = vdev->config->finalize_features(vdev);
	if (rc)
		return rc;
	if (!virtio_has_feature(vdev, VIRTIO_F_VERSION_1))
		return 0;
	virtio_add_status(vdev, VIRTIO_CONFIG_S_FEATURES_OK);
	if (!(vdev->config->get_status(vdev) & VIRTIO_CONFIG_S_FEATURES_OK))
		return -ENODEV;
	return 0;
}

/**
 * vmem_req_rearm() - give a stalled or broken device a fresh start
 * @vm: the device
 *
 * Resets the device, which gives back the buffers of an unanswered request
 * (QEMU keeps what is plugged across a device reset), and creates its
 * queue again. The work then checks the device's state and goes on.
 *
 * Return: 0, or the error of setting the device up again (it stays
 * broken).
 */
int vmem_req_rearm(struct vmem *vm)
{
	int rc;

	vmem_req_detach(vm);
	rc = vmem_req_renegotiate(vm->vdev);
	if (!rc)
		rc = vmem_req_attach(vm);
	mutex_lock(&vm->req_lock);
	WRITE_ONCE(vm->broken, rc != 0);
	WRITE_ONCE(vm->resync_needed, true);
	mutex_unlock(&vm->req_lock);
	if (rc)
		dev_err(&vm->vdev->dev, "re-arming the device failed: %d\n",
			rc);
	else
		dev_info(&vm->vdev->dev, "device re-armed\n");
	return rc;
}
