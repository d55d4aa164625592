// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the virtio-mem block-state bookkeeping, of how runs of
 * blocks are split into requests, and of the retry backoff.
 */
#include <kunit/test.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/limits.h>
#include <linux/string.h>
#include <linux/virtio_mem.h>

#include "virtio_mem_blocks.h"

#define MIB(n)	((u64)(n) << 20)
#define GIB(n)	((u64)(n) << 30)

/* --- block-state bookkeeping --- */

/*
 * Four memory blocks of 48 sub-blocks: memory block boundaries (48, 96,
 * 144) do not fall on bitmap word boundaries.
 */
#define NR_MBS		4
#define SBS_PER_MB	48
#define NR_SBS		(NR_MBS * SBS_PER_MB)

static int vmem_sbm_test_init(struct kunit *test)
{
	struct vmem_sbm *sbm = kunit_kzalloc(test, sizeof(*sbm), GFP_KERNEL);

	if (!sbm)
		return -ENOMEM;
	if (vmem_sbm_init(sbm, NR_MBS, SBS_PER_MB))
		return -ENOMEM;
	test->priv = sbm;
	return 0;
}

static void vmem_sbm_test_exit(struct kunit *test)
{
	vmem_sbm_destroy(test->priv);
}

static void vmem_sbm_init_starts_unused_and_unplugged(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long mb, start, nr;

	KUNIT_EXPECT_EQ(test, sbm->nr_mbs, NR_MBS);
	KUNIT_EXPECT_EQ(test, sbm->sbs_per_mb, SBS_PER_MB);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_UNUSED], NR_MBS);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_OFFLINE], 0);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_ONLINE], 0);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_REMOVING], 0);
	for (mb = 0; mb < NR_MBS; mb++)
		KUNIT_EXPECT_EQ(test, vmem_sbm_state(sbm, mb), VMEM_MB_UNUSED);
	KUNIT_EXPECT_FALSE(test, vmem_sbm_find_run(sbm, 0, NR_SBS, true,
						   &start, &nr));
}

static void vmem_sbm_init_rejects_empty_geometry(struct kunit *test)
{
	struct vmem_sbm sbm;

	KUNIT_EXPECT_EQ(test, vmem_sbm_init(&sbm, 0, SBS_PER_MB), -EINVAL);
	KUNIT_EXPECT_NULL(test, sbm.state);
	KUNIT_EXPECT_EQ(test, vmem_sbm_init(&sbm, NR_MBS, 0), -EINVAL);
	KUNIT_EXPECT_NULL(test, sbm.plugged);
}

static void vmem_sbm_init_rejects_overflowing_geometry(struct kunit *test)
{
	struct vmem_sbm sbm;

	KUNIT_EXPECT_EQ(test, vmem_sbm_init(&sbm, ULONG_MAX / 2 + 1, 2),
			-EINVAL);
	KUNIT_EXPECT_NULL(test, sbm.state);
}

static void vmem_sbm_destroy_twice_is_harmless(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_destroy(sbm);
	KUNIT_EXPECT_EQ(test, sbm->nr_mbs, 0);
	KUNIT_EXPECT_NULL(test, sbm->state);
	KUNIT_EXPECT_NULL(test, sbm->plugged);
	/* The exit function destroys it once more. */
}

static void vmem_sbm_set_state_moves_counts(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_set_state(sbm, 1, VMEM_MB_ONLINE);
	vmem_sbm_set_state(sbm, 2, VMEM_MB_OFFLINE);
	vmem_sbm_set_state(sbm, 3, VMEM_MB_ONLINE);
	vmem_sbm_set_state(sbm, 3, VMEM_MB_REMOVING);

	KUNIT_EXPECT_EQ(test, vmem_sbm_state(sbm, 0), VMEM_MB_UNUSED);
	KUNIT_EXPECT_EQ(test, vmem_sbm_state(sbm, 1), VMEM_MB_ONLINE);
	KUNIT_EXPECT_EQ(test, vmem_sbm_state(sbm, 2), VMEM_MB_OFFLINE);
	KUNIT_EXPECT_EQ(test, vmem_sbm_state(sbm, 3), VMEM_MB_REMOVING);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_UNUSED], 1);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_OFFLINE], 1);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_ONLINE], 1);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_REMOVING], 1);
}

static void vmem_sbm_set_state_unchanged_keeps_counts(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_set_state(sbm, 0, VMEM_MB_ONLINE);
	vmem_sbm_set_state(sbm, 0, VMEM_MB_ONLINE);
	vmem_sbm_set_state(sbm, 1, VMEM_MB_UNUSED);

	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_ONLINE], 1);
	KUNIT_EXPECT_EQ(test, sbm->count[VMEM_MB_UNUSED], NR_MBS - 1);
}

static void vmem_sbm_mark_spans_memory_blocks(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_mark(sbm, 40, 20, true);

	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 0, 40, 8, true));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 1, 0, 12, true));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 0, 0, 40, false));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 1, 12, 36, false));
	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 0), 8);
	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 1), 12);
}

static void vmem_sbm_mark_unplugged_clears_only_range(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_mark(sbm, vmem_sbm_index(sbm, 1, 0), SBS_PER_MB, true);
	vmem_sbm_mark(sbm, vmem_sbm_index(sbm, 1, 2), 3, false);

	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 1, 0, 2, true));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 1, 2, 3, false));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 1, 5, SBS_PER_MB - 5, true));
	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 1), SBS_PER_MB - 3);
}

static void vmem_sbm_test_mixed_range_is_neither(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_mark(sbm, vmem_sbm_index(sbm, 2, 10), 1, true);

	KUNIT_EXPECT_FALSE(test, vmem_sbm_test(sbm, 2, 0, SBS_PER_MB, true));
	KUNIT_EXPECT_FALSE(test, vmem_sbm_test(sbm, 2, 0, SBS_PER_MB, false));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 2, 10, 1, true));
	KUNIT_EXPECT_TRUE(test, vmem_sbm_test(sbm, 2, 11, 37, false));
}

static void vmem_sbm_plugged_in_mb_counts_own_block_only(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;

	vmem_sbm_mark(sbm, vmem_sbm_index(sbm, 1, 0), SBS_PER_MB, true);
	vmem_sbm_mark(sbm, vmem_sbm_index(sbm, 2, 0), 1, true);
	vmem_sbm_mark(sbm, vmem_sbm_index(sbm, 3, SBS_PER_MB - 1), 1, true);

	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 0), 0);
	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 1), SBS_PER_MB);
	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 2), 1);
	KUNIT_EXPECT_EQ(test, vmem_sbm_plugged_in_mb(sbm, 3), 1);
}

static void vmem_sbm_find_run_returns_next_run(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long start = 0, nr = 0;

	vmem_sbm_mark(sbm, 10, 10, true);
	vmem_sbm_mark(sbm, 30, 5, true);

	KUNIT_ASSERT_TRUE(test, vmem_sbm_find_run(sbm, 0, NR_SBS, true,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 10);
	KUNIT_EXPECT_EQ(test, nr, 10);
	KUNIT_ASSERT_TRUE(test, vmem_sbm_find_run(sbm, 20, NR_SBS, true,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 30);
	KUNIT_EXPECT_EQ(test, nr, 5);
	KUNIT_ASSERT_TRUE(test, vmem_sbm_find_run(sbm, 15, NR_SBS, true,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 15);
	KUNIT_EXPECT_EQ(test, nr, 5);
}

static void vmem_sbm_find_run_finds_unplugged_runs(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long start = 0, nr = 0;

	vmem_sbm_mark(sbm, 0, 10, true);
	vmem_sbm_mark(sbm, 30, NR_SBS - 30, true);

	KUNIT_ASSERT_TRUE(test, vmem_sbm_find_run(sbm, 0, NR_SBS, false,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 10);
	KUNIT_EXPECT_EQ(test, nr, 20);
	KUNIT_EXPECT_FALSE(test, vmem_sbm_find_run(sbm, 30, NR_SBS, false,
						   &start, &nr));
}

static void vmem_sbm_find_run_stops_at_end(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long start = 0, nr = 0;

	vmem_sbm_mark(sbm, 10, 10, true);

	KUNIT_ASSERT_TRUE(test, vmem_sbm_find_run(sbm, 0, 15, true,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 10);
	KUNIT_EXPECT_EQ(test, nr, 5);
	KUNIT_EXPECT_FALSE(test, vmem_sbm_find_run(sbm, 0, 10, true,
						   &start, &nr));
}

static void vmem_sbm_find_run_clamps_end_to_region(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long start = 0, nr = 0;

	KUNIT_ASSERT_TRUE(test, vmem_sbm_find_run(sbm, NR_SBS - 2, ULONG_MAX,
						  false, &start, &nr));
	KUNIT_EXPECT_EQ(test, start, NR_SBS - 2);
	KUNIT_EXPECT_EQ(test, nr, 2);
	KUNIT_EXPECT_FALSE(test, vmem_sbm_find_run(sbm, NR_SBS, ULONG_MAX,
						   false, &start, &nr));
}

static void vmem_sbm_find_run_empty_range_finds_nothing(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long start = 0, nr = 0;

	KUNIT_EXPECT_FALSE(test, vmem_sbm_find_run(sbm, 20, 20, false,
						   &start, &nr));
	KUNIT_EXPECT_FALSE(test, vmem_sbm_find_run(sbm, 30, 20, false,
						   &start, &nr));
}

static void vmem_sbm_next_run_stays_in_memory_block(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned int start = 0, nr = 0;

	vmem_sbm_mark(sbm, 40, 20, true);

	KUNIT_ASSERT_TRUE(test, vmem_sbm_next_run(sbm, 0, 0, true,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 40);
	KUNIT_EXPECT_EQ(test, nr, 8);
	KUNIT_ASSERT_TRUE(test, vmem_sbm_next_run(sbm, 1, 0, true,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 0);
	KUNIT_EXPECT_EQ(test, nr, 12);
	KUNIT_ASSERT_TRUE(test, vmem_sbm_next_run(sbm, 1, 0, false,
						  &start, &nr));
	KUNIT_EXPECT_EQ(test, start, 12);
	KUNIT_EXPECT_EQ(test, nr, SBS_PER_MB - 12);
}

static void vmem_sbm_next_run_past_block_end_finds_nothing(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned int start = 0, nr = 0;

	KUNIT_EXPECT_FALSE(test, vmem_sbm_next_run(sbm, 0, SBS_PER_MB, false,
						   &start, &nr));
	KUNIT_EXPECT_FALSE(test, vmem_sbm_next_run(sbm, 0, 10, true,
						   &start, &nr));
}

static void vmem_plug_order_puts_unit_1_last(struct kunit *test)
{
	static const unsigned long four[] = { 0, 2, 3, 1 };
	unsigned long i, seen = 0;

	for (i = 0; i < ARRAY_SIZE(four); i++)
		KUNIT_EXPECT_EQ(test, vmem_plug_order(i, 4), four[i]);
	/* Too few units for a hole to matter: address order. */
	KUNIT_EXPECT_EQ(test, vmem_plug_order(1, 2), 1);
	KUNIT_EXPECT_EQ(test, vmem_plug_order(0, 1), 0);
	/* Every unit once. */
	for (i = 0; i < 20; i++)
		seen |= 1UL << vmem_plug_order(i, 20);
	KUNIT_EXPECT_EQ(test, seen, (1UL << 20) - 1);
}

static void vmem_sbm_next_new_leaves_block_1_for_last(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long mb = ULONG_MAX;

	/* Block 0 alone: block 1 does not follow it in plug order. */
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, NR_MBS, 10, &mb), 1);
	KUNIT_EXPECT_EQ(test, mb, 0);
	vmem_sbm_set_state(sbm, 0, VMEM_MB_ONLINE);
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, NR_MBS, 10, &mb), 2);
	KUNIT_EXPECT_EQ(test, mb, 2);
	vmem_sbm_set_state(sbm, 2, VMEM_MB_ONLINE);
	vmem_sbm_set_state(sbm, 3, VMEM_MB_OFFLINE);
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, NR_MBS, 10, &mb), 1);
	KUNIT_EXPECT_EQ(test, mb, 1);
	vmem_sbm_set_state(sbm, 1, VMEM_MB_ONLINE);
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, NR_MBS, 10, &mb), 0);
}

static void vmem_sbm_next_new_respects_limit_and_max(struct kunit *test)
{
	struct vmem_sbm *sbm = test->priv;
	unsigned long mb = ULONG_MAX;

	/* Two usable blocks: address order, one run. */
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, 2, 10, &mb), 2);
	KUNIT_EXPECT_EQ(test, mb, 0);
	vmem_sbm_set_state(sbm, 0, VMEM_MB_ONLINE);
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, NR_MBS, 1, &mb), 1);
	KUNIT_EXPECT_EQ(test, mb, 2);
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, ULONG_MAX, 10, &mb), 2);
	KUNIT_EXPECT_EQ(test, mb, 2);
	KUNIT_EXPECT_EQ(test, vmem_sbm_next_new(sbm, 0, 10, &mb), 0);
}

/* Parts cover the range in order, inner ends aligned, none too small. */
static void vmem_expect_parts(struct kunit *test, unsigned long start,
			      unsigned long nr, unsigned long align,
			      unsigned long min_part, unsigned int n,
			      const unsigned long *ends)
{
	unsigned long prev = start;
	unsigned int i;

	KUNIT_ASSERT_GE(test, n, 1U);
	KUNIT_EXPECT_EQ(test, ends[n - 1], start + nr);
	for (i = 0; i < n; i++) {
		KUNIT_EXPECT_GT(test, ends[i], prev);
		if (n > 1)
			KUNIT_EXPECT_GE(test, ends[i] - prev, min_part);
		if (i < n - 1)
			KUNIT_EXPECT_EQ(test, ends[i] % align, 0UL);
		prev = ends[i];
	}
}

static void vmem_split_take_shares_among_cpus(struct kunit *test)
{
	unsigned long ends[4];
	unsigned int n;

	/* A 128 MiB block of 4 KiB pages, 2 CPUs: two halves. */
	n = vmem_split_take(0x100000, 32768, 1024, 4096, 2, ends);
	KUNIT_EXPECT_EQ(test, n, 2U);
	KUNIT_EXPECT_EQ(test, ends[0], 0x100000UL + 16384);
	vmem_expect_parts(test, 0x100000, 32768, 1024, 4096, n, ends);
	/* Four CPUs, an unaligned start and length: four aligned parts. */
	n = vmem_split_take(0x100200, 32768 + 512, 1024, 4096, 4, ends);
	KUNIT_EXPECT_EQ(test, n, 4U);
	vmem_expect_parts(test, 0x100200, 32768 + 512, 1024, 4096, n, ends);
}

static void vmem_split_take_keeps_small_takes_whole(struct kunit *test)
{
	unsigned long ends[4] = { 0 };

	/* One CPU, or less than two parts' worth: one part. */
	KUNIT_EXPECT_EQ(test, vmem_split_take(0, 32768, 1024, 4096, 1, ends),
			1U);
	KUNIT_EXPECT_EQ(test, ends[0], 32768UL);
	KUNIT_EXPECT_EQ(test, vmem_split_take(512, 8191, 1024, 4096, 4, ends),
			1U);
	KUNIT_EXPECT_EQ(test, ends[0], 512UL + 8191);
	/* No minimum given: never split. */
	KUNIT_EXPECT_EQ(test, vmem_split_take(0, 32768, 1024, 0, 4, ends), 1U);
	/*
	 * Alignment coarser than the parts: a boundary that would leave a
	 * part short is dropped, not the range's coverage.
	 */
	vmem_expect_parts(test, 1000, 9000, 8192, 4096,
			  vmem_split_take(1000, 9000, 8192, 4096, 2, ends), ends);
}

static struct kunit_case vmem_sbm_cases[] = {
	KUNIT_CASE(vmem_sbm_init_starts_unused_and_unplugged),
	KUNIT_CASE(vmem_sbm_init_rejects_empty_geometry),
	KUNIT_CASE(vmem_sbm_init_rejects_overflowing_geometry),
	KUNIT_CASE(vmem_sbm_destroy_twice_is_harmless),
	KUNIT_CASE(vmem_sbm_set_state_moves_counts),
	KUNIT_CASE(vmem_sbm_set_state_unchanged_keeps_counts),
	KUNIT_CASE(vmem_sbm_mark_spans_memory_blocks),
	KUNIT_CASE(vmem_sbm_mark_unplugged_clears_only_range),
	KUNIT_CASE(vmem_sbm_test_mixed_range_is_neither),
	KUNIT_CASE(vmem_sbm_plugged_in_mb_counts_own_block_only),
	KUNIT_CASE(vmem_sbm_find_run_returns_next_run),
	KUNIT_CASE(vmem_sbm_find_run_finds_unplugged_runs),
	KUNIT_CASE(vmem_sbm_find_run_stops_at_end),
	KUNIT_CASE(vmem_sbm_find_run_clamps_end_to_region),
	KUNIT_CASE(vmem_sbm_find_run_empty_range_finds_nothing),
	KUNIT_CASE(vmem_sbm_next_run_stays_in_memory_block),
	KUNIT_CASE(vmem_sbm_next_run_past_block_end_finds_nothing),
	KUNIT_CASE(vmem_plug_order_puts_unit_1_last),
	KUNIT_CASE(vmem_sbm_next_new_leaves_block_1_for_last),
	KUNIT_CASE(vmem_sbm_next_new_respects_limit_and_max),
	KUNIT_CASE(vmem_split_take_shares_among_cpus),
	KUNIT_CASE(vmem_split_take_keeps_small_takes_whole),
	{}
};

static struct kunit_suite vmem_sbm_suite = {
	.name = "virtio_mem_blocks",
	.init = vmem_sbm_test_init,
	.exit = vmem_sbm_test_exit,
	.test_cases = vmem_sbm_cases,
};

/* --- splitting runs into requests --- */

#define MAX_BLOCKS	VIRTIO_MEM_REQ_MAX_BLOCKS

static void vmem_req_split_unit_of_one_block(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(MIB(2), MIB(2)),
			MAX_BLOCKS);
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(GIB(1), GIB(1)),
			MAX_BLOCKS);
}

static void vmem_req_split_rounds_down_to_whole_units(struct kunit *test)
{
	/* 4 MiB sub-blocks of 2 MiB device blocks: 65535 / 2. */
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(MIB(4), MIB(2)), 32767);
	/* 128 MiB memory blocks of 2 MiB device blocks: 65535 / 64. */
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(MIB(128), MIB(2)), 1023);
}

static void vmem_req_split_unit_at_limit_fits_once(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(MAX_BLOCKS * PAGE_SIZE,
						     PAGE_SIZE), 1);
}

static void vmem_req_split_unit_above_limit_fits_never(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req((MAX_BLOCKS + 1) *
						     PAGE_SIZE, PAGE_SIZE), 0);
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(GIB(1), PAGE_SIZE), 0);
}

static void vmem_req_split_unit_below_block_fits_never(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_max_units_per_req(MIB(1), MIB(2)), 0);
}

struct vmem_split_case {
	u64 unit_size;
	u64 block_size;
};

static const struct vmem_split_case vmem_split_cases[] = {
	{ PAGE_SIZE, PAGE_SIZE },
	{ MIB(2), PAGE_SIZE },
	{ MIB(4), MIB(2) },
	{ MIB(128), MIB(2) },
	{ MIB(128), MIB(4) },
	{ MIB(128), MIB(128) },
	{ GIB(1), MIB(2) },
	{ GIB(1), GIB(1) },
};

static void vmem_split_case_desc(const struct vmem_split_case *c, char *desc)
{
	snprintf(desc, KUNIT_PARAM_DESC_SIZE, "unit %llu KiB, block %llu KiB",
		 c->unit_size >> 10, c->block_size >> 10);
}

KUNIT_ARRAY_PARAM(vmem_split, vmem_split_cases, vmem_split_case_desc);

/* As many whole units as fit in one request, and not one more. */
static void vmem_req_split_fills_request(struct kunit *test)
{
	const struct vmem_split_case *c = test->param_value;
	u64 per_unit = div64_u64(c->unit_size, c->block_size);
	unsigned long max = vmem_max_units_per_req(c->unit_size,
						   c->block_size);

	KUNIT_ASSERT_GT(test, max, 0);
	KUNIT_EXPECT_LE(test, max * per_unit, MAX_BLOCKS);
	KUNIT_EXPECT_GT(test, (max + 1) * per_unit, MAX_BLOCKS);
}

/*
 * A long run cut into requests of at most max units, as the plug and
 * unplug paths do: every request starts on a unit boundary, carries at
 * most 65535 blocks, and together they cover the run exactly.
 */
static void vmem_req_split_covers_run_in_aligned_requests(struct kunit *test)
{
	const struct vmem_split_case *c = test->param_value;
	unsigned long max = vmem_max_units_per_req(c->unit_size,
						   c->block_size);
	u64 base = GIB(4), addr = base, total = 0;
	unsigned long nr = 3 * max + 7, done = 0, reqs = 0;

	KUNIT_ASSERT_GT(test, max, 0);
	while (done < nr) {
		unsigned long cnt = min(nr - done, max);
		u64 size = cnt * c->unit_size;

		KUNIT_EXPECT_EQ(test, addr, base + done * c->unit_size);
		KUNIT_EXPECT_EQ(test, addr & (c->unit_size - 1), 0);
		KUNIT_EXPECT_LE(test, div64_u64(size, c->block_size),
				MAX_BLOCKS);
		addr += size;
		total += size;
		done += cnt;
		reqs++;
	}
	KUNIT_EXPECT_EQ(test, total, nr * c->unit_size);
	KUNIT_EXPECT_EQ(test, reqs, 4);
}

static struct kunit_case vmem_req_split_cases[] = {
	KUNIT_CASE(vmem_req_split_unit_of_one_block),
	KUNIT_CASE(vmem_req_split_rounds_down_to_whole_units),
	KUNIT_CASE(vmem_req_split_unit_at_limit_fits_once),
	KUNIT_CASE(vmem_req_split_unit_above_limit_fits_never),
	KUNIT_CASE(vmem_req_split_unit_below_block_fits_never),
	KUNIT_CASE_PARAM(vmem_req_split_fills_request, vmem_split_gen_params),
	KUNIT_CASE_PARAM(vmem_req_split_covers_run_in_aligned_requests,
			 vmem_split_gen_params),
	{}
};

static struct kunit_suite vmem_req_split_suite = {
	.name = "virtio_mem_request_split",
	.test_cases = vmem_req_split_cases,
};

/* --- retry backoff --- */

static void vmem_backoff_starts_at_min(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(0, 100, 10000), 100);
}

static void vmem_backoff_doubles_each_retry(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(100, 100, 10000), 200);
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(1600, 100, 10000), 3200);
}

/* The schedule with the module's default bounds, then staying at max. */
static void vmem_backoff_schedule_saturates_at_max(struct kunit *test)
{
	static const unsigned int want[] = {
		100, 200, 400, 800, 1600, 3200, 6400, 10000, 10000, 10000,
	};
	unsigned int cur = 0, i;

	for (i = 0; i < ARRAY_SIZE(want); i++) {
		cur = vmem_backoff_next(cur, 100, 10000);
		KUNIT_EXPECT_EQ_MSG(test, cur, want[i], "retry %u", i + 1);
	}
}

static void vmem_backoff_caps_doubling_at_max(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(100, 100, 150), 150);
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(148, 10, 299), 296);
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(150, 10, 299), 299);
}

static void vmem_backoff_current_above_max_drops_to_max(struct kunit *test)
{
	/* The bound was lowered (module parameter) while backing off. */
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(20000, 100, 10000), 10000);
}

static void vmem_backoff_min_above_max_starts_at_max(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(0, 500, 200), 200);
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(200, 500, 200), 200);
}

static void vmem_backoff_min_equal_max_stays(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(0, 300, 300), 300);
	KUNIT_EXPECT_EQ(test, vmem_backoff_next(300, 300, 300), 300);
}

static void vmem_backoff_never_wraps_near_uint_max(struct kunit *test)
{
	static const unsigned int curs[] = {
		UINT_MAX / 2 - 1, UINT_MAX / 2, UINT_MAX / 2 + 1, UINT_MAX,
	};
	unsigned int i, next;

	for (i = 0; i < ARRAY_SIZE(curs); i++) {
		next = vmem_backoff_next(curs[i], 10, UINT_MAX);
		KUNIT_EXPECT_GE_MSG(test, next, curs[i], "from %u", curs[i]);
	}
}

/* Why unplugging stopped, as sysfs shows it, from how a step ended. */
static void vmem_unplug_wait_names_each_stop(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(0), VMEM_UNPLUG_NONE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-EINTR), VMEM_UNPLUG_NONE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-ENOBUFS),
			VMEM_UNPLUG_PRESSURE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-ENOMEM), VMEM_UNPLUG_BUSY);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-ENOSPC),
			VMEM_UNPLUG_ONLINE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-EBUSY),
			VMEM_UNPLUG_DEVICE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-ETIMEDOUT),
			VMEM_UNPLUG_DEVICE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-EIO), VMEM_UNPLUG_DEVICE);
	KUNIT_EXPECT_EQ(test, vmem_unplug_wait_for(-EAGAIN),
			VMEM_UNPLUG_DEVICE);
}

static struct kunit_case vmem_backoff_cases[] = {
	KUNIT_CASE(vmem_backoff_starts_at_min),
	KUNIT_CASE(vmem_backoff_doubles_each_retry),
	KUNIT_CASE(vmem_backoff_schedule_saturates_at_max),
	KUNIT_CASE(vmem_backoff_caps_doubling_at_max),
	KUNIT_CASE(vmem_backoff_current_above_max_drops_to_max),
	KUNIT_CASE(vmem_backoff_min_above_max_starts_at_max),
	KUNIT_CASE(vmem_backoff_min_equal_max_stays),
	KUNIT_CASE(vmem_backoff_never_wraps_near_uint_max),
	KUNIT_CASE(vmem_unplug_wait_names_each_stop),
	{}
};

static struct kunit_suite vmem_backoff_suite = {
	.name = "virtio_mem_backoff",
	.test_cases = vmem_backoff_cases,
};

/* --- taking over memory at load time --- */

struct vmem_adopt_case {
	const char *desc;
	bool present;
	bool online;
	int state;
	bool all_offline;
	enum vmem_adopt_action action;
};

#define PLUGGED		VIRTIO_MEM_STATE_PLUGGED
#define UNPLUGGED	VIRTIO_MEM_STATE_UNPLUGGED
#define MIXED		VIRTIO_MEM_STATE_MIXED

static const struct vmem_adopt_case vmem_adopt_cases[] = {
	{ "not added, plugged: unplug", false, false, PLUGGED, false,
	  VMEM_ADOPT_UNPLUG },
	{ "not added, mixed: unplug", false, false, MIXED, false,
	  VMEM_ADOPT_UNPLUG },
	{ "not added, unplugged: nothing", false, false, UNPLUGGED, false,
	  VMEM_ADOPT_NOTHING },
	{ "offline, plugged: keep", true, false, PLUGGED, false,
	  VMEM_ADOPT_KEEP },
	{ "offline, unplugged: nothing", true, false, UNPLUGGED, false,
	  VMEM_ADOPT_NOTHING },
	{ "offline, mixed: unplug", true, false, MIXED, false,
	  VMEM_ADOPT_UNPLUG },
	{ "online, plugged: keep", true, true, PLUGGED, false,
	  VMEM_ADOPT_KEEP },
	{ "online, plugged, pages PageOffline (a balloon's): keep", true, true,
	  PLUGGED, true, VMEM_ADOPT_KEEP },
	{ "online, unplugged, pages PageOffline: nothing", true, true,
	  UNPLUGGED, true, VMEM_ADOPT_NOTHING },
	{ "online, unplugged, a page in use: plug again", true, true,
	  UNPLUGGED, false, VMEM_ADOPT_PLUG },
	{ "online, mixed: plug the rest", true, true, MIXED, false,
	  VMEM_ADOPT_PLUG },
	{ "online, mixed, pages PageOffline: plug the rest", true, true,
	  MIXED, true, VMEM_ADOPT_PLUG },
};

static void vmem_adopt_case_desc(const struct vmem_adopt_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(vmem_adopt, vmem_adopt_cases, vmem_adopt_case_desc);

/*
 * Only the device says a unit is unplugged; a page in use in an online
 * block makes it kept whatever the device says.
 */
static void vmem_adopt_unplugged_only_on_the_devices_word(struct kunit *test)
{
	const struct vmem_adopt_case *c = test->param_value;

	KUNIT_EXPECT_EQ(test, vmem_adopt_decide(c->present, c->online,
						c->state, c->all_offline),
			c->action);
}

/* No page flag turns a unit the device calls plugged into an unplug. */
static void vmem_adopt_page_flags_never_unplug(struct kunit *test)
{
	int state;

	for (state = PLUGGED; state <= MIXED; state++) {
		KUNIT_EXPECT_NE(test, vmem_adopt_decide(true, true, state, true),
				VMEM_ADOPT_UNPLUG);
		KUNIT_EXPECT_NE(test, vmem_adopt_decide(true, true, state,
							false),
				VMEM_ADOPT_UNPLUG);
	}
	KUNIT_EXPECT_EQ(test, vmem_adopt_decide(true, true, PLUGGED, true),
			VMEM_ADOPT_KEEP);
}

/* STATE over a range longer than one request: split, then merged. */
static void vmem_state_merge_agrees_or_mixes(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, vmem_state_merge(PLUGGED, PLUGGED), PLUGGED);
	KUNIT_EXPECT_EQ(test, vmem_state_merge(UNPLUGGED, UNPLUGGED),
			UNPLUGGED);
	KUNIT_EXPECT_EQ(test, vmem_state_merge(PLUGGED, UNPLUGGED), MIXED);
	KUNIT_EXPECT_EQ(test, vmem_state_merge(UNPLUGGED, PLUGGED), MIXED);
	KUNIT_EXPECT_EQ(test, vmem_state_merge(MIXED, PLUGGED), MIXED);
	KUNIT_EXPECT_EQ(test, vmem_state_merge(MIXED, MIXED), MIXED);
}

static struct kunit_case vmem_adopt_test_cases[] = {
	KUNIT_CASE_PARAM(vmem_adopt_unplugged_only_on_the_devices_word,
			 vmem_adopt_gen_params),
	KUNIT_CASE(vmem_adopt_page_flags_never_unplug),
	KUNIT_CASE(vmem_state_merge_agrees_or_mixes),
	{}
};

static struct kunit_suite vmem_adopt_suite = {
	.name = "virtio_mem_adopt",
	.test_cases = vmem_adopt_test_cases,
};

kunit_test_suites(&vmem_sbm_suite, &vmem_req_split_suite,
		  &vmem_backoff_suite, &vmem_adopt_suite);
