/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * virtio-mem tracepoints: requests and their answers, memory blocks coming
 * and going, and why the driver waits. Event system "virtio_mem".
 */
#undef TRACE_SYSTEM
#define TRACE_SYSTEM virtio_mem

#if !defined(_VIRTIO_MEM_TRACE_H) || defined(TRACE_HEADER_MULTI_READ)
#define _VIRTIO_MEM_TRACE_H

#include <linux/string.h>
#include <linux/tracepoint.h>

/*
 * Room for a virtio device name ("virtio12"): a fixed array, not __string(),
 * whose __assign_str() lost its second argument in 6.10.
 */
#define VMEM_TRACE_DEV_LEN 32

/* Each request and the device's answer; TIMEOUT, MALFORMED: none came. */
TRACE_EVENT(virtio_mem_request,
	    TP_PROTO(const char *dev, u16 type, u64 addr, u64 size,
		     int answer, u64 latency_ns),
	    TP_ARGS(dev, type, addr, size, answer, latency_ns),
	    TP_STRUCT__entry(__array(char, dev, VMEM_TRACE_DEV_LEN)
			     __field(u16, type)
			     __field(u64, addr)
			     __field(u64, size)
			     __field(int, answer)
			     __field(u64, latency_ns)),
	    TP_fast_assign(strscpy(__entry->dev, dev, VMEM_TRACE_DEV_LEN);
			   __entry->type = type;
			   __entry->addr = addr;
			   __entry->size = size;
			   __entry->answer = answer;
			   __entry->latency_ns = latency_ns;),
	    TP_printk("%s %s addr=0x%llx size=%llu answer=%s latency_us=%llu",
		      __entry->dev,
		      __print_symbolic(__entry->type, { 0, "PLUG" },
				       { 1, "UNPLUG" }, { 2, "UNPLUG_ALL" },
				       { 3, "STATE" }),
		      __entry->addr, __entry->size,
		      __print_symbolic(__entry->answer, { 0, "ACK" },
				       { 1, "NACK" }, { 2, "BUSY" },
				       { 3, "ERROR" }, { -110, "TIMEOUT" },
				       { -5, "MALFORMED" }),
		      __entry->latency_ns / 1000)
);

/* Memory of the device added to, onlined, offlined or removed from Linux. */
DECLARE_EVENT_CLASS(virtio_mem_memory,
		    TP_PROTO(const char *dev, u64 addr, u64 size),
		    TP_ARGS(dev, addr, size),
		    TP_STRUCT__entry(__array(char, dev, VMEM_TRACE_DEV_LEN)
				     __field(u64, addr)
				     __field(u64, size)),
		    TP_fast_assign(strscpy(__entry->dev, dev, VMEM_TRACE_DEV_LEN);
				   __entry->addr = addr;
				   __entry->size = size;),
		    TP_printk("%s addr=0x%llx size=%llu", __entry->dev,
			      __entry->addr, __entry->size)
);

DEFINE_EVENT(virtio_mem_memory, virtio_mem_memory_added,
	     TP_PROTO(const char *dev, u64 addr, u64 size),
	     TP_ARGS(dev, addr, size));
DEFINE_EVENT(virtio_mem_memory, virtio_mem_memory_onlined,
	     TP_PROTO(const char *dev, u64 addr, u64 size),
	     TP_ARGS(dev, addr, size));
DEFINE_EVENT(virtio_mem_memory, virtio_mem_memory_offlined,
	     TP_PROTO(const char *dev, u64 addr, u64 size),
	     TP_ARGS(dev, addr, size));
DEFINE_EVENT(virtio_mem_memory, virtio_mem_memory_removed,
	     TP_PROTO(const char *dev, u64 addr, u64 size),
	     TP_ARGS(dev, addr, size));

/* Unplugging stopped to keep the guest's reserve of available memory. */
TRACE_EVENT(virtio_mem_unplug_paused,
	    TP_PROTO(const char *dev, long available_pages,
		     long reserve_pages),
	    TP_ARGS(dev, available_pages, reserve_pages),
	    TP_STRUCT__entry(__array(char, dev, VMEM_TRACE_DEV_LEN)
			     __field(long, available_pages)
			     __field(long, reserve_pages)),
	    TP_fast_assign(strscpy(__entry->dev, dev, VMEM_TRACE_DEV_LEN);
			   __entry->available_pages = available_pages;
			   __entry->reserve_pages = reserve_pages;),
	    TP_printk("%s available_pages=%ld reserve_pages=%ld",
		      __entry->dev, __entry->available_pages,
		      __entry->reserve_pages)
);

TRACE_EVENT(virtio_mem_unplug_resumed,
	    TP_PROTO(const char *dev),
	    TP_ARGS(dev),
	    TP_STRUCT__entry(__array(char, dev, VMEM_TRACE_DEV_LEN)),
	    TP_fast_assign(strscpy(__entry->dev, dev, VMEM_TRACE_DEV_LEN);),
	    TP_printk("%s", __entry->dev)
);

/* A retry after a failure (BUSY, NACK, memory busy), @delay_ms from now. */
TRACE_EVENT(virtio_mem_backoff,
	    TP_PROTO(const char *dev, int error, unsigned int delay_ms),
	    TP_ARGS(dev, error, delay_ms),
	    TP_STRUCT__entry(__array(char, dev, VMEM_TRACE_DEV_LEN)
			     __field(int, error)
			     __field(unsigned int, delay_ms)),
	    TP_fast_assign(strscpy(__entry->dev, dev, VMEM_TRACE_DEV_LEN);
			   __entry->error = error;
			   __entry->delay_ms = delay_ms;),
	    TP_printk("%s error=%d delay_ms=%u", __entry->dev,
		      __entry->error, __entry->delay_ms)
);

/* After ERROR: what the comparison with the device's view repaired. */
TRACE_EVENT(virtio_mem_resync,
	    TP_PROTO(const char *dev, unsigned long extra, unsigned long lost),
	    TP_ARGS(dev, extra, lost),
	    TP_STRUCT__entry(__array(char, dev, VMEM_TRACE_DEV_LEN)
			     __field(unsigned long, extra)
			     __field(unsigned long, lost)),
	    TP_fast_assign(strscpy(__entry->dev, dev, VMEM_TRACE_DEV_LEN);
			   __entry->extra = extra;
			   __entry->lost = lost;),
	    TP_printk("%s plugged_without_us=%lu lost_in_use=%lu",
		      __entry->dev, __entry->extra, __entry->lost)
);

#endif /* _VIRTIO_MEM_TRACE_H */

/* This part must be outside the include guard. */
#undef TRACE_INCLUDE_PATH
#define TRACE_INCLUDE_PATH .
#undef TRACE_INCLUDE_FILE
#define TRACE_INCLUDE_FILE virtio_mem_trace
#include <trace/define_trace.h>
