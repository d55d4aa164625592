// SPDX-License-Identifier: GPL-2.0-only
/*
 * KUnit tests of the virtio-mem configuration validation: configurations a
 * device may offer are accepted, each broken rule of the device contract is
 * refused and named, and the geometry may not change at runtime.
 */
#include <kunit/test.h>
#include <linux/errno.h>
#include <linux/mm.h>
#include <linux/string.h>

#include "virtio_mem_config.h"

#define MIB(n)	((u64)(n) << 20)
#define GIB(n)	((u64)(n) << 30)

/* A configuration in table form: block, addr, region, usable, plugged, req. */
#define CFG(bs, start, region, usable, plugged, req) {			\
	.block_size = (bs), .addr = (start), .region_size = (region),	\
	.usable_region_size = (usable), .plugged_size = (plugged),	\
	.requested_size = (req) }

/* What QEMU offers for -device virtio-mem-pci,size=8G,requested-size=1G. */
#define QEMU_CFG CFG(MIB(2), GIB(4), GIB(8), GIB(1) + MIB(256), 0, GIB(1))

struct vmem_cfg_case {
	const char *desc;
	struct vmem_cfg cfg;
	const char *why;	/* part of the reason given; NULL: valid */
};

static void vmem_cfg_case_desc(const struct vmem_cfg_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

static const struct vmem_cfg_case vmem_cfg_valid[] = {
	{ "qemu default", QEMU_CFG },
	{ "nothing usable yet", CFG(MIB(2), GIB(4), GIB(8), 0, 0, 0) },
	{ "everything plugged",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(8), GIB(8), GIB(8)) },
	{ "plugged above requested (shrinking)",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(2), GIB(2), GIB(1)) },
	{ "page-sized blocks",
	  CFG(PAGE_SIZE, GIB(4), GIB(8), GIB(1), 0, GIB(1)) },
	{ "1 GiB blocks", CFG(GIB(1), GIB(4), GIB(8), GIB(2), 0, GIB(1)) },
	{ "one block is the whole region",
	  CFG(GIB(8), GIB(8), GIB(8), GIB(8), 0, 0) },
	{ "region ending one region below 2^64",
	  CFG(MIB(2), 0 - GIB(16), GIB(8), GIB(1), 0, GIB(1)) },
};

static const struct vmem_cfg_case vmem_cfg_malformed[] = {
	{ "zero block size",
	  CFG(0, GIB(4), GIB(8), GIB(1), 0, GIB(1)), "block_size is zero" },
	{ "block size not a power of two",
	  CFG(MIB(3), GIB(3), GIB(3), GIB(3), 0, 0), "not a power of two" },
	{ "block size below a page",
	  CFG(PAGE_SIZE / 2, GIB(4), GIB(8), GIB(1), 0, GIB(1)),
	  "smaller than a page" },
	{ "zero region size",
	  CFG(MIB(2), GIB(4), 0, 0, 0, 0), "region_size is zero" },
	{ "block size larger than region",
	  CFG(GIB(16), GIB(16), GIB(8), 0, 0, 0), "larger than region_size" },
	{ "addr not block aligned",
	  CFG(MIB(2), GIB(4) + MIB(1), GIB(8), GIB(1), 0, GIB(1)),
	  "addr is not aligned" },
	{ "region size not a block multiple",
	  CFG(MIB(2), GIB(4), GIB(8) + MIB(1), GIB(1), 0, GIB(1)),
	  "region_size is not a multiple" },
	{ "usable size not a block multiple",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1) + MIB(1), 0, GIB(1)),
	  "usable_region_size is not a multiple" },
	{ "plugged size not a block multiple",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1), MIB(1), GIB(1)),
	  "plugged_size is not a multiple" },
	{ "requested size not a block multiple",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1), 0, MIB(1)),
	  "requested_size is not a multiple" },
	{ "usable larger than region",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(9), 0, GIB(1)),
	  "usable_region_size is larger than region_size" },
	{ "requested larger than usable",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1), 0, GIB(2)),
	  "requested_size is larger than usable_region_size" },
	{ "plugged larger than usable",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1), GIB(2), GIB(1)),
	  "plugged_size is larger than usable_region_size" },
	{ "region crossing 2^64",
	  CFG(MIB(2), 0 - GIB(4), GIB(8), GIB(1), 0, GIB(1)),
	  "crosses the end of the address space" },
};

KUNIT_ARRAY_PARAM(vmem_cfg_valid, vmem_cfg_valid, vmem_cfg_case_desc);
KUNIT_ARRAY_PARAM(vmem_cfg_malformed, vmem_cfg_malformed,
		  vmem_cfg_case_desc);

static void vmem_cfg_check_accepts_valid(struct kunit *test)
{
	const struct vmem_cfg_case *c = test->param_value;
	const char *why = NULL;

	KUNIT_EXPECT_EQ_MSG(test, vmem_cfg_check(&c->cfg, &why), 0,
			    "refused: %s", why);
}

static void vmem_cfg_check_rejects_malformed(struct kunit *test)
{
	const struct vmem_cfg_case *c = test->param_value;
	const char *why = NULL;

	KUNIT_EXPECT_EQ(test, vmem_cfg_check(&c->cfg, &why), -EINVAL);
	KUNIT_ASSERT_NOT_NULL(test, why);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(why, c->why),
				  "reason '%s', want '%s'", why, c->why);
}

/* A configuration read at runtime, after old_cfg was accepted. */
struct vmem_cfg_update_case {
	const char *desc;
	struct vmem_cfg cur;
	const char *why;	/* NULL: valid */
};

static void vmem_cfg_update_desc(const struct vmem_cfg_update_case *c,
				 char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

static const struct vmem_cfg old_cfg = QEMU_CFG;

static const struct vmem_cfg_update_case vmem_cfg_resizes[] = {
	{ "unchanged", QEMU_CFG },
	{ "requested and usable grow",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(4) + MIB(256), 0, GIB(4)) },
	{ "plugged follows requested",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1) + MIB(256), GIB(1), GIB(1)) },
	{ "usable shrinks after unplug all",
	  CFG(MIB(2), GIB(4), GIB(8), MIB(256), 0, 0) },
};

static const struct vmem_cfg_update_case vmem_cfg_bad_updates[] = {
	{ "block size changed",
	  CFG(MIB(4), GIB(4), GIB(8), GIB(1) + MIB(256), 0, GIB(1)),
	  "block_size changed" },
	{ "addr changed",
	  CFG(MIB(2), GIB(6), GIB(8), GIB(1) + MIB(256), 0, GIB(1)),
	  "addr changed" },
	{ "region size changed",
	  CFG(MIB(2), GIB(4), GIB(16), GIB(1) + MIB(256), 0, GIB(1)),
	  "region_size changed" },
	{ "requested larger than usable",
	  CFG(MIB(2), GIB(4), GIB(8), GIB(1), 0, GIB(2)),
	  "requested_size is larger than usable_region_size" },
};

KUNIT_ARRAY_PARAM(vmem_cfg_resizes, vmem_cfg_resizes, vmem_cfg_update_desc);
KUNIT_ARRAY_PARAM(vmem_cfg_bad_updates, vmem_cfg_bad_updates,
		  vmem_cfg_update_desc);

static void vmem_cfg_update_accepts_resize(struct kunit *test)
{
	const struct vmem_cfg_update_case *c = test->param_value;
	const char *why = NULL;
	int rc = vmem_cfg_check_update(&old_cfg, &c->cur, &why);

	KUNIT_EXPECT_EQ_MSG(test, rc, 0, "refused: %s", why);
}

static void vmem_cfg_update_rejects_bad_change(struct kunit *test)
{
	const struct vmem_cfg_update_case *c = test->param_value;
	const char *why = NULL;
	int rc = vmem_cfg_check_update(&old_cfg, &c->cur, &why);

	KUNIT_EXPECT_EQ(test, rc, -EINVAL);
	KUNIT_ASSERT_NOT_NULL(test, why);
	KUNIT_EXPECT_NOT_NULL_MSG(test, strstr(why, c->why),
				  "reason '%s', want '%s'", why, c->why);
}

static void vmem_cfg_update_rejects_node_id_change(struct kunit *test)
{
	struct vmem_cfg old = QEMU_CFG, cur = QEMU_CFG;
	const char *why = NULL;

	old.has_pxm = true;
	cur.has_pxm = true;
	old.node_id = 1;
	cur.node_id = 2;
	KUNIT_EXPECT_EQ(test, vmem_cfg_check_update(&old, &cur, &why), -EINVAL);
	KUNIT_ASSERT_NOT_NULL(test, why);
	KUNIT_EXPECT_STREQ(test, why, "node_id changed");
}

static void vmem_cfg_update_ignores_node_id_without_pxm(struct kunit *test)
{
	struct vmem_cfg old = QEMU_CFG, cur = QEMU_CFG;
	const char *why = NULL;

	old.node_id = 1;
	cur.node_id = 2;
	KUNIT_EXPECT_EQ_MSG(test, vmem_cfg_check_update(&old, &cur, &why), 0,
			    "refused: %s", why);
}

static struct kunit_case vmem_config_cases[] = {
	KUNIT_CASE_PARAM(vmem_cfg_check_accepts_valid,
			 vmem_cfg_valid_gen_params),
	KUNIT_CASE_PARAM(vmem_cfg_check_rejects_malformed,
			 vmem_cfg_malformed_gen_params),
	KUNIT_CASE_PARAM(vmem_cfg_update_accepts_resize,
			 vmem_cfg_resizes_gen_params),
	KUNIT_CASE_PARAM(vmem_cfg_update_rejects_bad_change,
			 vmem_cfg_bad_updates_gen_params),
	KUNIT_CASE(vmem_cfg_update_rejects_node_id_change),
	KUNIT_CASE(vmem_cfg_update_ignores_node_id_without_pxm),
	{}
};

static struct kunit_suite vmem_config_suite = {
	.name = "virtio_mem_config",
	.test_cases = vmem_config_cases,
};

/* --- system sleep --- */

struct vmem_sleep_case {
	const char *desc;
	enum vmem_sleep sleep;
	bool plugged;
	bool persistent;
	bool allowed;
};

static const struct vmem_sleep_case vmem_sleep_cases[] = {
	{ "s2idle, nothing plugged", VMEM_SLEEP_S2IDLE, false, false, true },
	{ "s2idle, plugged", VMEM_SLEEP_S2IDLE, true, false, true },
	{ "S3, nothing plugged", VMEM_SLEEP_S3, false, false, true },
	{ "S3, plugged", VMEM_SLEEP_S3, true, false, false },
	{ "S3, plugged, persistent", VMEM_SLEEP_S3, true, true, true },
	{ "S3, nothing plugged, persistent", VMEM_SLEEP_S3, false, true, true },
	{ "hibernation, nothing plugged", VMEM_SLEEP_HIBERNATE, false, false,
	  false },
	{ "hibernation, plugged, persistent", VMEM_SLEEP_HIBERNATE, true, true,
	  false },
};

static void vmem_sleep_case_desc(const struct vmem_sleep_case *c, char *desc)
{
	strscpy(desc, c->desc, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(vmem_sleep, vmem_sleep_cases, vmem_sleep_case_desc);

static void vmem_sleep_decision(struct kunit *test)
{
	const struct vmem_sleep_case *c = test->param_value;
	const char *why = vmem_sleep_refusal(c->sleep, c->plugged,
					     c->persistent);

	if (c->allowed)
		KUNIT_EXPECT_NULL_MSG(test, why, "refused: %s", why);
	else
		KUNIT_EXPECT_NOT_NULL(test, why);
}

static struct kunit_case vmem_sleep_test_cases[] = {
	KUNIT_CASE_PARAM(vmem_sleep_decision, vmem_sleep_gen_params),
	{}
};

static struct kunit_suite vmem_sleep_suite = {
	.name = "virtio_mem_sleep",
	.test_cases = vmem_sleep_test_cases,
};

kunit_test_suites(&vmem_config_suite, &vmem_sleep_suite);
