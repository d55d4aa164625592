// SPDX-License-Identifier: GPL-2.0
/*
 * Host-side unit test of virtio-mem configuration validation. Prints TAP,
 * the plan first; exits non-zero if any case fails.
 */
#include <stdio.h>
#include <string.h>

#include <linux/errno.h>

#include "virtio_mem_config.h"

#define KiB (1ULL << 10)
#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

/* What QEMU offers for -device virtio-mem-pci,size=8G,requested-size=1G. */
static const struct vmem_cfg good = {
	.block_size = 2 * MiB,
	.addr = 4 * GiB,
	.region_size = 8 * GiB,
	.usable_region_size = 1 * GiB + 256 * MiB,
	.plugged_size = 0,
	.requested_size = 1 * GiB,
};

struct config_case {
	const char *name;
	struct vmem_cfg cfg;
	const char *why;	/* NULL: must be accepted */
};

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define WITH(field, val) ({ struct vmem_cfg c = good; c.field = (val); c; })

static int failures, count;

static void check(const char *name, int rc, const char *why,
		  const char *want)
{
	int ok = want ? rc == -EINVAL && why && strstr(why, want)
		      : rc == 0;

	count++;
	if (!ok)
		failures++;
	printf("%sok %d - %s", ok ? "" : "not ", count, name);
	if (!ok)
		printf(" (rc %d, why '%s', wanted '%s')", rc,
		       rc ? why : "", want ? want : "accepted");
	printf("\n");
}

/* Run the cases, or (run == 0) only count them; returns the count. */
static size_t static_cases(int run)
{
	const struct config_case cases[] = {
		{ "qemu default accepted", good, NULL },
		{ "everything plugged accepted",
		  ({ struct vmem_cfg c = good;
		     c.usable_region_size = c.region_size;
		     c.requested_size = c.plugged_size = c.region_size; c; }),
		  NULL },
		{ "4 KiB blocks accepted", WITH(block_size, 4 * KiB), NULL },
		{ "1 GiB blocks accepted",
		  ({ struct vmem_cfg c = good; c.block_size = 1 * GiB;
		     c.usable_region_size = 2 * GiB; c; }), NULL },
		{ "region ending just below 2^64 accepted",
		  ({ struct vmem_cfg c = good;
		     c.addr = 0ULL - 2 * c.region_size; c; }), NULL },
		{ "zero block size", WITH(block_size, 0), "block_size is zero" },
		{ "block size not a power of two", WITH(block_size, 3 * MiB),
		  "not a power of two" },
		{ "block size below a page", WITH(block_size, 2 * KiB),
		  "smaller than a page" },
		{ "zero region", WITH(region_size, 0), "region_size is zero" },
		{ "block larger than region",
		  ({ struct vmem_cfg c = good; c.block_size = 16 * GiB;
		     c.addr = 16 * GiB; c.usable_region_size = 0;
		     c.requested_size = 0; c; }),
		  "larger than region_size" },
		{ "misaligned addr", WITH(addr, 4 * GiB + 1 * MiB),
		  "addr is not aligned" },
		{ "misaligned region size", WITH(region_size, 8 * GiB + MiB),
		  "region_size is not a multiple" },
		{ "misaligned usable size",
		  WITH(usable_region_size, 1 * GiB + 1 * MiB),
		  "usable_region_size is not a multiple" },
		{ "misaligned plugged size", WITH(plugged_size, 3 * MiB),
		  "plugged_size is not a multiple" },
		{ "misaligned requested size", WITH(requested_size, 5 * MiB),
		  "requested_size is not a multiple" },
		{ "usable larger than region",
		  WITH(usable_region_size, 10 * GiB),
		  "usable_region_size is larger than region_size" },
		{ "requested larger than usable",
		  WITH(requested_size, 2 * GiB),
		  "requested_size is larger than usable_region_size" },
		{ "plugged larger than usable", WITH(plugged_size, 2 * GiB),
		  "plugged_size is larger than usable_region_size" },
		{ "region crossing 2^64", WITH(addr, 0ULL - 4 * GiB),
		  "end of the address space" },
		{ "region ending exactly at 2^64", WITH(addr, 0ULL - 8 * GiB),
		  "end of the address space" },
	};
	const char *why;
	size_t i;

	for (i = 0; run && i < ARRAY_SIZE(cases); i++) {
		int rc;

		why = NULL;
		rc = vmem_cfg_check(&cases[i].cfg, &why);
		check(cases[i].name, rc, why, cases[i].why);
	}
	return ARRAY_SIZE(cases);
}

static size_t update_cases(int run)
{
	const struct config_case cases[] = {
		{ "update: request grows", WITH(requested_size, 1 * GiB + 256 * MiB),
		  NULL },
		{ "update: usable grows",
		  ({ struct vmem_cfg c = good;
		     c.usable_region_size = 4 * GiB;
		     c.requested_size = 3 * GiB; c; }), NULL },
		{ "update: block size changed", WITH(block_size, 4 * MiB),
		  "block_size changed" },
		{ "update: addr changed", WITH(addr, 8 * GiB), "addr changed" },
		{ "update: region size changed", WITH(region_size, 4 * GiB),
		  "region_size changed" },
		{ "update: node changed",
		  ({ struct vmem_cfg c = good; c.has_pxm = true;
		     c.node_id = 1; c; }), "node_id changed" },
		{ "update: invalid request",
		  WITH(requested_size, 6 * GiB),
		  "requested_size is larger than usable_region_size" },
	};
	struct vmem_cfg old = good;
	const char *why;
	size_t i;

	old.has_pxm = true;
	for (i = 0; run && i < ARRAY_SIZE(cases); i++) {
		struct vmem_cfg cur = cases[i].cfg;
		int rc;

		cur.has_pxm = true;
		why = NULL;
		rc = vmem_cfg_check_update(&old, &cur, &why);
		check(cases[i].name, rc, why, cases[i].why);
	}
	return ARRAY_SIZE(cases);
}

int main(void)
{
	size_t plan = static_cases(0) + update_cases(0);

	printf("TAP version 13\n");
	printf("1..%zu\n", plan);
	static_cases(1);
	update_cases(1);
	printf("# %d passed, %d failed\n", count - failures, failures);
	return failures || (size_t)count != plan ? 1 : 0;
}
