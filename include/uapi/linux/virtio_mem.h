/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Virtio Memory Device (device ID 24): the wire contract between a
 * virtio-mem device and its driver, written from the VIRTIO specification.
 *
 * The device owns one region of guest-physical memory, starting at @addr and
 * @region_size bytes long, divided into device blocks of @block_size bytes.
 * The driver plugs and unplugs blocks through the request queue until
 * @plugged_size reaches @requested_size. Unplugged memory must not be written
 * and, with VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE, not even read.
 */
#ifndef _UAPI_LINUX_VIRTIO_MEM_H
#define _UAPI_LINUX_VIRTIO_MEM_H

#include <linux/types.h>
#include <linux/virtio_types.h>
#include <linux/virtio_ids.h>
#include <linux/virtio_config.h>

/* --- feature bits --- */

/* node_id is an ACPI proximity domain and is valid */
#define VIRTIO_MEM_F_ACPI_PXM			0
/* unplugged memory must not be read at all */
#define VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE	1
/* plugged memory survives suspend/resume */
#define VIRTIO_MEM_F_PERSISTENT_SUSPEND		2

/* --- requests (driver -> device) --- */

/* plug nb_blocks blocks starting at addr */
#define VIRTIO_MEM_REQ_PLUG			0
/* unplug nb_blocks blocks starting at addr */
#define VIRTIO_MEM_REQ_UNPLUG			1
/* unplug everything; may shrink the usable region */
#define VIRTIO_MEM_REQ_UNPLUG_ALL		2
/* query the state of nb_blocks blocks starting at addr */
#define VIRTIO_MEM_REQ_STATE			3

/* The largest nb_blocks a single request can carry (16-bit field). */
#define VIRTIO_MEM_REQ_MAX_BLOCKS		0xffffU

struct virtio_mem_req_plug {
	__virtio64 addr;
	__virtio16 nb_blocks;
	__virtio16 padding[3];
};

struct virtio_mem_req_unplug {
	__virtio64 addr;
	__virtio16 nb_blocks;
	__virtio16 padding[3];
};

struct virtio_mem_req_state {
	__virtio64 addr;
	__virtio16 nb_blocks;
	__virtio16 padding[3];
};

struct virtio_mem_req {
	__virtio16 type;
	__virtio16 padding[3];

	union {
		struct virtio_mem_req_plug plug;
		struct virtio_mem_req_unplug unplug;
		struct virtio_mem_req_state state;
	} u;
};

/* --- responses (device -> driver) --- */

/* the request was processed */
#define VIRTIO_MEM_RESP_ACK			0
/* plugging more would exceed requested_size */
#define VIRTIO_MEM_RESP_NACK			1
/* the device cannot process the request now; retry later */
#define VIRTIO_MEM_RESP_BUSY			2
/* the request was invalid (alignment, range, block states) */
#define VIRTIO_MEM_RESP_ERROR			3

/* all queried blocks are plugged */
#define VIRTIO_MEM_STATE_PLUGGED		0
/* all queried blocks are unplugged */
#define VIRTIO_MEM_STATE_UNPLUGGED		1
/* the queried blocks are partly plugged */
#define VIRTIO_MEM_STATE_MIXED			2

struct virtio_mem_resp_state {
	__virtio16 state;
};

struct virtio_mem_resp {
	__virtio16 type;
	__virtio16 padding[3];

	union {
		struct virtio_mem_resp_state state;
	} u;
};

/* --- configuration space (read-only for the driver) --- */

struct virtio_mem_config {
	/* size and alignment of a device block; a power of two */
	__le64 block_size;
	/* ACPI proximity domain, valid with VIRTIO_MEM_F_ACPI_PXM */
	__le16 node_id;
	__u8 padding[6];
	/* guest-physical start of the device region */
	__le64 addr;
	/* maximum size the device can ever provide */
	__le64 region_size;
	/* part of the region, from addr, that may be plugged now */
	__le64 usable_region_size;
	/* currently plugged memory */
	__le64 plugged_size;
	/* the host's target for plugged_size */
	__le64 requested_size;
};

#ifdef __KERNEL__
#include <linux/build_bug.h>

/* The layouts are fixed by the specification: catch accidental changes. */
static_assert(sizeof(struct virtio_mem_config) == 56);
static_assert(sizeof(struct virtio_mem_req) == 24);
static_assert(sizeof(struct virtio_mem_resp) == 10);
#endif

#endif /* _UAPI_LINUX_VIRTIO_MEM_H */
