/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Kernel API differences between the series the driver is built for
 * (Debian 12's 6.1 and 6.12), keyed on what the kernel provides. Only names
 * and signatures live here; where mm behaves differently, the code says so
 * where it matters (Documentation/virtio-mem.rst, "Kernel series").
 */
#ifndef _VIRTIO_MEM_COMPAT_H
#define _VIRTIO_MEM_COMPAT_H

#include <linux/mmzone.h>

/*
 * The largest buddy order: MAX_ORDER - 1 until 6.4, MAX_PAGE_ORDER since 6.8
 * (6.4 to 6.7 get one order less than they could: still correct).
 */
#ifdef MAX_PAGE_ORDER
#define VMEM_MAX_PAGE_ORDER	MAX_PAGE_ORDER
#else
#define VMEM_MAX_PAGE_ORDER	(MAX_ORDER - 1)
#endif

/*
 * VMEM_CORE_UNCOUNTS_OFFLINE_PAGES (drivers/virtio/Makefile, from the
 * kernel's version: no header tells): until 6.11, offline_pages() took
 * every page of a block off the managed page count, PageOffline ones
 * included, so a driver counted the pages it kept offline back in before
 * offlining. Since 6.11 ("mm/memory_hotplug: skip
 * adjust_managed_page_count() for PageOffline() pages when offlining") it
 * takes off only the pages it found in the buddy: counting them in would
 * leave them in MemTotal for good.
 */

#endif /* _VIRTIO_MEM_COMPAT_H */
