// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the virtio-mem growth budgets: the cap on memory added but
 * left offline, and on memory whose memmap the guest can afford.
 */
#include <kunit/test.h>
#include <linux/kernel.h>
#include <linux/limits.h>

#include "virtio_mem_budget.h"

#define MIB(n)	((u64)(n) << 20)
#define GIB(n)	((u64)(n) << 30)

/* --- memory added but left offline --- */

static void vmem_offline_cap_counts_memory_blocks(struct kunit *test)
{
	/* 1 GiB of 128 MiB blocks, 3 of them offline already. */
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(GIB(1), 3, MIB(128), 1), 5UL);
}

static void vmem_offline_cap_reached_waits(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(GIB(1), 8, MIB(128), 1), 0UL);
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(GIB(1), 9, MIB(128), 1), 0UL);
}

/*
 * The bug the cap had: a 2 GiB device block spans 16 memory blocks, more
 * than the default 1 GiB cap, so it never plugged.
 */
static void vmem_offline_cap_allows_one_big_block(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(GIB(1), 0, MIB(128), 16), 16UL);
	/* With one big block offline, the next waits for onlining. */
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(GIB(1), 16, MIB(128), 16), 0UL);
}

/* Every device block size up to a 1 TiB region: one block always fits. */
static void vmem_offline_cap_never_below_one_device_block(struct kunit *test)
{
	u64 block;

	for (block = MIB(128); block <= GIB(1024); block <<= 1) {
		unsigned long mbs = block / MIB(128);

		KUNIT_EXPECT_GE_MSG(test,
				    vmem_offline_cap(MIB(128), 0, MIB(128), mbs),
				    mbs, "block %llu MiB", block >> 20);
	}
}

static void vmem_offline_cap_never_below_two_memory_blocks(struct kunit *test)
{
	/* The smallest limit, and memory blocks larger than it. */
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(MIB(128), 0, MIB(128), 1), 2UL);
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(MIB(128), 1, GIB(2), 1), 1UL);
	KUNIT_EXPECT_EQ(test, vmem_offline_cap(MIB(128), 2, GIB(2), 1), 0UL);
}

static struct kunit_case vmem_offline_cap_cases[] = {
	KUNIT_CASE(vmem_offline_cap_counts_memory_blocks),
	KUNIT_CASE(vmem_offline_cap_reached_waits),
	KUNIT_CASE(vmem_offline_cap_allows_one_big_block),
	KUNIT_CASE(vmem_offline_cap_never_below_one_device_block),
	KUNIT_CASE(vmem_offline_cap_never_below_two_memory_blocks),
	{}
};

static struct kunit_suite vmem_offline_cap_suite = {
	.name = "virtio_mem_offline_cap",
	.test_cases = vmem_offline_cap_cases,
};

/* --- memmap of added memory --- */

/* 4 KiB pages: 128 MiB of memory costs 2 MiB (512 pages) of memmap. */
#define MEMMAP_128M	512UL
#define PAGES(mib)	((unsigned long)(mib) << 8)

static void vmem_memmap_cap_counts_what_fits(struct kunit *test)
{
	/* 400 MiB free, 128 MiB kept: 272 MiB of memmap, 136 blocks. */
	KUNIT_EXPECT_EQ(test, vmem_memmap_cap(PAGES(400), PAGES(128),
					      MEMMAP_128M), 136UL);
}

static void vmem_memmap_cap_keeps_the_reserve(struct kunit *test)
{
	/* One block would dip into the reserve by a page: none fits. */
	KUNIT_EXPECT_EQ(test, vmem_memmap_cap(PAGES(130) - 1, PAGES(128),
					      MEMMAP_128M), 0UL);
	KUNIT_EXPECT_EQ(test, vmem_memmap_cap(PAGES(130), PAGES(128),
					      MEMMAP_128M), 1UL);
}

static void vmem_memmap_cap_below_reserve_is_zero(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_memmap_cap(PAGES(100), PAGES(128),
					      MEMMAP_128M), 0UL);
	KUNIT_EXPECT_EQ(test, vmem_memmap_cap(0, PAGES(128), MEMMAP_128M),
			0UL);
}

static void vmem_memmap_cap_free_when_memmap_on_memory(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_memmap_cap(0, PAGES(128), 0), ULONG_MAX);
}

/*
 * The guest of issue 10: 512 MiB, about 400 MiB of it free, asked for
 * 32 GiB (256 memory blocks, 512 MiB of memmap). The cap stops it first.
 */
static void vmem_memmap_cap_stops_small_guest_growth(struct kunit *test)
{
	unsigned long cap = vmem_memmap_cap(PAGES(400), PAGES(128),
					    MEMMAP_128M);

	KUNIT_EXPECT_LT(test, cap, 256UL);
	KUNIT_EXPECT_LE(test, cap * MEMMAP_128M, PAGES(400 - 128));
}

static struct kunit_case vmem_memmap_cap_cases[] = {
	KUNIT_CASE(vmem_memmap_cap_counts_what_fits),
	KUNIT_CASE(vmem_memmap_cap_keeps_the_reserve),
	KUNIT_CASE(vmem_memmap_cap_below_reserve_is_zero),
	KUNIT_CASE(vmem_memmap_cap_free_when_memmap_on_memory),
	KUNIT_CASE(vmem_memmap_cap_stops_small_guest_growth),
	{}
};

static struct kunit_suite vmem_memmap_cap_suite = {
	.name = "virtio_mem_memmap_cap",
	.test_cases = vmem_memmap_cap_cases,
};

kunit_test_suites(&vmem_offline_cap_suite, &vmem_memmap_cap_suite);
