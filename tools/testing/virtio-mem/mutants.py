#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Mutation check of the virtio-mem tests (make mutants).

Each mutant is one deliberate bug, written as exact source lines of the
driver and what replaces them. For each, in turn, a copy of
drivers/virtio and our uapi header gets the bug and is built: as a module
against Debian's kernel headers (with fault injection, so that the tests
that load 'ours-fi' run it too), and the tests that should notice run
against it (VMEM_KO, VMEM_FI_KO), stopping at the first failure; or, for
a bug in the pure logic, into the test kernel (build-kernel.sh with
VMEM_SRC), whose KUnit suites then run at boot. A mutant counts as killed
only when a test fails with the message its entry expects, or, failing
otherwise, fails again when run once more: a harness timeout or a
one-off failure proves nothing. A mutant none of its tests fails
survives; one that no longer applies (a line changed) or does not build
is an error: either fails the run. First, unless --no-baseline, the same
tests run against an unchanged copy: they must pass there, or a "killed"
mutant would prove nothing.

Prints a table of mutant -> the test that failed, and keeps it, with the
date and commit, in mutants-results/ next to this script (the README
quotes it from there); logs and the copies are in .build/mutants/.

usage: mutants.py [--only NAME,...] [--list] [--check] [--no-baseline]
                  [--rev REV]

--rev takes the driver from a git revision instead of the working tree.
--check only applies every mutant to a copy and has pytest collect its
tests, without building or booting anything: make check runs it
(test_mutants.py), so a driver change that leaves a mutant stale is red
there, not first noticed by make mutants.
"""

import argparse
import dataclasses
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
WORK = os.path.join(HERE, '.build', 'mutants')
RESULTS_DIR = os.path.join(HERE, 'mutants-results')
# Bounds a test that a mutant makes hang (conftest.py).
TEST_TIMEOUT = 900


@dataclasses.dataclass
class Mutant:
    name: str
    what: str
    file: str                  # under drivers/virtio/
    old: str                   # exact lines, found exactly once
    new: str
    tests: list                # pytest node ids under tests/
    expect: str                # regex the failure message must match
    kind: str = 'module'       # 'module', or 'kunit': built into the kernel


T = 'tests/'
MUTANTS = [
    Mutant('no-headroom-check',
           'unplug online memory whatever the guest has left',
           'virtio_mem_mm.c',
           '\t       si_mem_available() - (long)nr_pages >= '
           'vmem_mm_reserve_pages();\n',
           '\t       true;\n',
           [T + 'test_pressure.py::test_unplug_pauses_under_pressure'],
           '(OOM|MemAvailable|reserve)'),
    Mutant('no-pageoffline',
           'leave unplugged pages of an onlined block unmarked',
           'virtio_mem_mm.c',
           '\t\t__ClearPageReserved(page);\n\t\t__SetPageOffline(page);\n',
           '\t\t__ClearPageReserved(page);\n',
           [T + 'test_admin.py::test_offline_online_by_hand'],
           '(Bad page|BUG|PageOffline|problem line)'),
    Mutant('no-unplug-all',
           'keep what a previous driver left plugged',
           'virtio_mem_core.c',
           '\t\tvm->unplug_all = vm->cfg.plugged_size != 0;\n',
           '\t\tvm->unplug_all = false;\n',
           [T + 'test_restarts.py::test_leftovers_offline_limit_and_rmmod'],
           '(leftover|unplug)'),
    Mutant('ignore-usable-region',
           'treat the whole region as usable',
           'virtio_mem_core.c',
           '\t\t\t min(last - vm->first_mb, vm->sbm.nr_mbs) : 0;\n',
           '\t\t\t vm->sbm.nr_mbs : vm->sbm.nr_mbs;\n',
           [T + 'test_error_path.py::test_error_nack_and_add_failure',
            T + 'test_restarts.py::test_rmmod_insmod_online'],
           '(ERROR|error|usable|vm0)'),
    Mutant('no-backoff',
           'retry after BUSY or a failure at once',
           'virtio_mem_core.c',
           '\tvmem_retry_in(vm, vm->backoff_ms);\n',
           '\tvmem_retry_in(vm, 0);\n',
           [T + 'test_restarts.py::test_migration_busy',
            T + 'test_error_path.py::test_error_nack_and_add_failure'],
           '(retry delays|BUSY|backoff)'),
    Mutant('fixed-backoff',
           'retry after BUSY or a failure every second, not exponentially',
           'virtio_mem_core.c',
           '\tvm->backoff_ms = vmem_backoff_next(vm->backoff_ms,\n'
           '\t\t\t\t\t   READ_ONCE(vmem_backoff_min_ms),\n'
           '\t\t\t\t\t   READ_ONCE(vmem_backoff_max_ms));\n',
           '\tvm->backoff_ms = 1000;\n',
           [T + 'test_restarts.py::test_migration_busy'],
           'retry delays after BUSY'),
    Mutant('no-request-trace',
           'send requests without their tracepoint',
           'virtio_mem_req.c',
           '\tif (t0)\n'
           '\t\ttrace_virtio_mem_request(dev_name(&vdev->dev), type, addr,\n'
           '\t\t\t\t\t nb_blocks * vm->cfg.block_size, rc,\n'
           '\t\t\t\t\t ktime_to_ns(ktime_sub(ktime_get(),\n'
           '\t\t\t\t\t\t\t       t0)));\n',
           '',
           [T + 'test_trace.py::test_tracepoints_show_requests_and_blocks'],
           'no request events'),
    Mutant('no-resync',
           'never re-synchronise after an ERROR answer',
           'virtio_mem_core.c',
           '\t\tif (vmem_resync(vm))\n'
           '\t\t\tWRITE_ONCE(vm->resync_needed, true);\n',
           '',
           [T + 'test_error_path.py::test_error_nack_and_add_failure'],
           '(resync)'),
    Mutant('no-teardown',
           'rmmod leaves offline memory added and plugged',
           'virtio_mem_core.c',
           '\tvmem_mm_stop_transitions(vm);\n\n\tvm->ops->teardown(vm);\n',
           '\tvmem_mm_stop_transitions(vm);\n\n',
           [T + 'test_restarts.py::test_leftovers_offline_limit_and_rmmod'],
           '(offline|after rmmod|stay)'),
    Mutant('fixed-pressure-poll',
           'ignore pressure_poll_ms',
           'virtio_mem_core.c',
           '\t\tvmem_retry_in(vm, READ_ONCE(vmem_pressure_poll_ms));\n',
           '\t\tvmem_retry_in(vm, 1000);\n',
           [T + 'test_pressure.py::test_unplug_pauses_under_pressure'],
           '(pressure stops .* apart)'),
    Mutant('fixed-offline-limit',
           'ignore offline_limit_mb',
           'virtio_mem_plug.c',
           '\tu64 limit = (u64)READ_ONCE(vmem_offline_limit_mb) << 20;\n',
           '\tu64 limit = 1024ULL << 20;\n',
           [T + 'test_restarts.py::test_leftovers_offline_limit_and_rmmod'],
           '(offline_limit_mb=256|256M|onlining)'),
    Mutant('no-nack-count',
           'do not count NACK answers',
           'virtio_mem_req.c',
           '\t\tvm->stats.nacks++;\n',
           '',
           [T + 'test_error_path.py::test_error_nack_and_add_failure'],
           '(answers_nack)'),
    Mutant('no-add-failure-count',
           'do not count failed adds',
           'virtio_mem_mm.c',
           '\tvm->stats.add_failures++;\n',
           '',
           [T + 'test_error_path.py::test_error_nack_and_add_failure'],
           '(add_failures)'),
    Mutant('unplug-without-migration',
           'unplug online sub-blocks without taking their pages first',
           'virtio_mem_sbm.c',
           '\trc = vmem_mm_take_pages(vm, sb, nr);\n',
           '\trc = 0;\n',
           [T + 'test_unplug.py::test_busy_unplug'],
           '(corrupted|memfill|problem line|Bad page)'),
    Mutant('no-big-block-floor',
           'let offline_limit_mb stop a device block larger than it',
           'virtio_mem_budget.h',
           '\tcap = max3(cap, min_mbs, 2UL);\n',
           '\tcap = max(cap, 2UL);\n',
           [T + 'test_block_sizes.py::test_block_size_plug_unplug'],
           '(waiting|onlining|QMP size|timeout)'),
    Mutant('no-memmap-cap',
           'add memory whatever its memmap leaves the kernel',
           'virtio_mem_budget.h',
           '\tif (free <= reserve)\n\t\treturn cost ? 0 : ULONG_MAX;\n',
           '\treturn ULONG_MAX;\n',
           [T + 'test_growth.py::test_grow_64x[memmap_in_boot_memory]'],
           '(OOM|plugged all|memmap|problem line|GuestDied|died)'),
    Mutant('no-big-block-headroom',
           'take a big block whatever the guest has left',
           'virtio_mem_bbm.c',
           '\tif (!vmem_mm_headroom_ok(vm, online * PHYS_PFN(vm->mb_size))) {\n',
           '\tif (0) {\n',
           [T + 'test_block_sizes.py::'
            'test_big_block_unplug_under_pressure[2G]'],
           '(OOM|MemAvailable|reserve|pressure)'),
    Mutant('region-not-exclusive',
           'reserve the region as plain memory: /dev/mem may read it',
           'virtio_mem_core.c',
           '\tres->flags = IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE;\n',
           '\tres->flags = IORESOURCE_MEM;\n',
           [T + 'test_driver.py::test_devmem_cannot_read_device_region'],
           '(/dev/mem|devmem|refused)'),
    Mutant('offline-needs-headroom',
           'hold offline memory back under the unplug reserve too',
           'virtio_mem_mm.c',
           '\treturn !nr_pages ||\n\t       si_mem_available()',
           '\treturn si_mem_available()',
           [T + 'test_block_sizes.py::'
            'test_offline_big_blocks_go_under_pressure'],
           r"'unplug_wait': 'pressure'"),
    Mutant('no-self-host-try',
           'count the memmap until memmap_on_memory has worked once',
           'virtio_mem_plug.c',
           '\tif (!memmap && vm->self_host',
           '\tif (0 && vm->self_host',
           [T + 'test_growth.py::test_self_hosting_needs_no_kernel_memory'],
           '(memmap|self|kernel memory)'),
    Mutant('unplug-memmap',
           'unplug the memmap sub-block of an added, offline block',
           'virtio_mem_sbm.c',
           '\tfirst += vmem_sbm_memmap_units(vm, mb);\n',
           '',
           [T + 'test_growth.py::test_self_hosted_blocks_offline_and_reload'],
           '(memmap|problem line|BUG|Bad page|died)'),
    Mutant('no-stall',
           'a request unanswered in time is not waited for',
           'virtio_mem_req.c',
           '\t\tWRITE_ONCE(vm->stalled, true);\n',
           '',
           [T + 'test_lifecycle.py::test_late_answer_is_not_a_dead_device'
            '[ours]'],
           r'stalled == 1|stalled after'),
    Mutant('no-leaked-count',
           'do not count pages kept away after a lost answer',
           'virtio_mem_plug.c',
           '\tvm->stats.leaked += leaked * vm->sb_size;\n',
           '',
           [T + 'test_lifecycle.py::test_lost_unplug_answer_keeps_pages_away'
            '[ours]'],
           r'leaked_size'),
    Mutant('lost-answer-gives-back',
           'give pages back after an unplug whose answer never came',
           'virtio_mem_plug.c',
           '\t\tstate = -ETIMEDOUT;\n',
           '\t\tstate = VIRTIO_MEM_STATE_PLUGGED;\n',
           [T + 'test_lifecycle.py::test_lost_unplug_answer_keeps_pages_away'
            '[ours]'],
           r'MemTotal - base|leaked_size'),
    Mutant('kdump-all-plugged',
           'the crash kernel takes every device block for plugged',
           'virtio_mem_kdump.c',
           '\tif (state == VIRTIO_MEM_STATE_PLUGGED)\n'
           '\t\tset_bit(block, vm->kdump_plugged);\n',
           '\tset_bit(block, vm->kdump_plugged);\n',
           [T + 'test_kdump.py::test_kdump_reads_only_plugged[ours]'],
           r'of unplugged memory'),
    Mutant('s3-with-memory',
           'allow suspend to RAM with memory plugged',
           'virtio_mem_config.c',
           '\t\tif (!plugged || persistent)\n',
           '\t\tif (1)\n',
           [T + 'test_sleep.py::test_sleep_states'],
           r'S3 with memory plugged was not refused'),
    Mutant('adopt-ignores-errors',
           'take memory over even when a STATE request fails',
           'virtio_mem_sbm.c',
           '\t\trc = vmem_sbm_adopt_mb(vm, mb);\n\t\tif (rc)\n'
           '\t\t\treturn rc;\n',
           '\t\trc = vmem_sbm_adopt_mb(vm, mb);\n',
           [T + 'test_lifecycle.py::test_failed_takeover_refuses_to_bind'
            '[ours]'],
           r'no refusal in the log'),
    Mutant('param-no-bounds',
           'accept module parameter values out of range',
           'virtio_mem_sysfs.c',
           '\tif (val < p->min || val > p->max) {\n',
           '\tif (0) {\n',
           [T + 'test_admin.py::test_bad_module_parameters'],
           r'succeeded'),
    Mutant('ignore-unplug-online',
           'unplug online memory with unplug_online off',
           'virtio_mem_sbm.c',
           '\t\tif (!READ_ONCE(vmem_unplug_online))\n\t\t\treturn -1;\n'
           '\t\tif (plugged < vm->sbm.sbs_per_mb)\n',
           '\t\tif (plugged < vm->sbm.sbs_per_mb)\n',
           [T + 'test_admin.py::test_unplug_online_off'],
           r'with unplug_online=0'),
    Mutant('no-isolation-count',
           'stop busy without counting the memory it failed to free',
           'virtio_mem_mm.c',
           '\t\tvm->stats.isolation_failures++;\n',
           '',
           [T + 'test_unplug.py::test_pinned_page_unplug[2M]'],
           r'without counting isolation_failures'),
    Mutant('no-stop-log',
           'stop short of the request without saying why in the log',
           'virtio_mem_core.c',
           '\t\tvmem_note_unplug_stop(vm, rc);\n',
           '\t\t;\n',
           [T + 'test_unplug.py::test_policy_zones_unplug[online]'],
           r'nothing in the log to say why'),
    Mutant('stop-log-wrong-zone',
           'count ZONE_MOVABLE memory as kernel-zone memory in the stop log',
           'virtio_mem_mm.c',
           '\t\t    !vmem_mm_mb_movable(vm, mb))\n',
           '\t\t    vmem_mm_mb_movable(vm, mb))\n',
           [T + 'test_unplug.py::test_policy_zones_unplug[online]'],
           r'MiB left in ZONE_MOVABLE'),
    Mutant('address-order-plug',
           'add memory blocks in address order, leaving the zone no hole',
           'virtio_mem_blocks.h',
           '\treturn i == nr - 1 ? 1 : i + 1;\n',
           '\treturn i;\n',
           [T + 'test_growth.py::test_second_block_added_last'],
           r'memory blocks \[0, 1, 2\] of the device'),
    Mutant('take-no-undo',
           'keep the parts of a take that succeeded when another failed',
           'virtio_mem_mm.c',
           '\t\t\t\tfree_contig_range(parts[i].start,\n'
           '\t\t\t\t\t\t  parts[i].end - parts[i].start);\n',
           '\t\t\t\t;\n',
           [T + 'test_unplug.py::test_pinned_page_unplug[2M]'],
           r'with one page pinned, stopped at 66M'),
    Mutant('emptied-blocks-stay',
           'never remove the blocks a take emptied',
           'virtio_mem_sbm.c',
           '\t\tif (vmem_sbm_emptied(vm, mb) && !vmem_mm_remove(vm, mb, 1))\n',
           '\t\tif (0 && !vmem_mm_remove(vm, mb, 1))\n',
           [T + 'test_unplug.py::test_free_blocks_go_together'],
           r'memory blocks present, want 0'),
    Mutant('free-blocks-one-by-one',
           'offline and remove free neighbours one at a time',
           'virtio_mem_sbm.c',
           '\t\tif (n > 1)\n',
           '\t\tif (n > 99)\n',
           [T + 'test_unplug.py::test_free_blocks_go_together'],
           r'free neighbours were not removed together'),
    Mutant('busy-block-in-free-runs',
           'let a busy block into a run of free neighbours',
           'virtio_mem_sbm.c',
           '\t       vmem_sbm_unplug_pass(vm, mb - n) == pass &&\n'
           '\t       vmem_mm_mb_idle(vm, mb - n))\n',
           '\t       vmem_sbm_unplug_pass(vm, mb - n) == pass)\n',
           [T + 'test_unplug.py::test_free_blocks_go_together'],
           r'the free ones next to it went one by one'),
    Mutant('take-not-retried',
           'give up on a take of pages at its first -EBUSY',
           'virtio_mem_mm.c',
           '\t\tif (rc != -EBUSY || ++tries == max_tries)\n',
           '\t\tif (rc != -EBUSY || ++tries)\n',
           [T + 'test_unplug.py::test_take_that_fails_once_is_retried'],
           r'a take that failed once went on one sub-block at a time'),
    Mutant('busy-blocks-first',
           'unplug fully plugged blocks highest first, in use or not',
           'virtio_mem_sbm.c',
           '\t\t\t\tround < rounds, todo, busy);\n',
           '\t\t\t\tfalse, todo, busy);\n',
           [T + 'test_unplug.py::test_free_blocks_go_first'],
           r'free blocks should have gone first'),
    Mutant('early-onlining-stop',
           'stop adding, waiting for onlining, at half of offline_limit_mb',
           'virtio_mem_sysfs.c',
           'unsigned int vmem_offline_limit_mb = 1024;\n',
           'unsigned int vmem_offline_limit_mb = 512;\n',
           [T + 'test_driver.py::test_no_online_policy[ours]'],
           r'want offline_limit_mb=1024'),
    Mutant('kunit-adopt-trusts-page-flags',
           'take a unit whose pages are all PageOffline for unplugged',
           'virtio_mem_blocks.h',
           '\tif (state == VIRTIO_MEM_STATE_PLUGGED)\n'
           '\t\treturn VMEM_ADOPT_KEEP;\n'
           '\tif (state == VIRTIO_MEM_STATE_UNPLUGGED && all_offline)\n',
           '\tif (all_offline)\n\t\treturn VMEM_ADOPT_UNPLUG;\n'
           '\tif (state == VIRTIO_MEM_STATE_PLUGGED)\n'
           '\t\treturn VMEM_ADOPT_KEEP;\n'
           '\tif (state == VIRTIO_MEM_STATE_UNPLUGGED && all_offline)\n',
           [T + 'test_builtin.py::test_kunit_suites_pass'],
           r'vmem_adopt_page_flags_never_unplug', kind='kunit'),
    Mutant('kunit-backoff-uncapped',
           'let the backoff grow past backoff_max_ms',
           'virtio_mem_blocks.h',
           '\tif (cur_ms >= max_ms / 2)\n\t\treturn max_ms;\n',
           '',
           [T + 'test_builtin.py::test_kunit_suites_pass'],
           r'vmem_backoff_', kind='kunit'),
    Mutant('kunit-misaligned-addr',
           'accept a region address not aligned to the block size',
           'virtio_mem_config.c',
           '\telse if (vmem_unaligned(cfg->addr, cfg->block_size))\n'
           '\t\t*why = "addr is not aligned to block_size";\n',
           '',
           [T + 'test_builtin.py::test_kunit_suites_pass'],
           r'addr|align', kind='kunit'),
    Mutant('kunit-state-merge',
           'a STATE split in two keeps the first part\'s state',
           'virtio_mem_blocks.h',
           '\treturn a == b ? a : VIRTIO_MEM_STATE_MIXED;\n',
           '\treturn a;\n',
           [T + 'test_builtin.py::test_kunit_suites_pass'],
           r'vmem_state_merge', kind='kunit'),
    Mutant('kunit-memmap-cap',
           'no memmap cap in the pure budget (KUnit)',
           'virtio_mem_budget.h',
           '\tif (free <= reserve)\n\t\treturn cost ? 0 : ULONG_MAX;\n',
           '\treturn ULONG_MAX;\n',
           [T + 'test_builtin.py::test_kunit_suites_pass'],
           r'memmap', kind='kunit'),
]


class MutantError(Exception):
    pass


def kdir():
    kver = subprocess.run(['make', '-s', 'print-kver'], cwd=REPO,
                          capture_output=True, text=True,
                          timeout=60).stdout.strip()
    path = f'/usr/src/linux-headers-{kver}'
    if not kver or not os.path.isdir(path):
        raise MutantError(f'no kernel headers for {kver!r}: run deps.sh')
    return path


# The tree the driver is copied from: the repository, or a git revision
# extracted into WORK/source (--rev).
SOURCE = REPO


def extract_rev(rev):
    """drivers/virtio and include/uapi of git revision rev, in WORK/source."""
    global SOURCE
    dest = os.path.join(WORK, 'source')
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    archive = subprocess.run(['git', '-C', REPO, 'archive', rev,
                              'drivers/virtio', 'include/uapi'],
                             capture_output=True, timeout=120)
    if archive.returncode:
        raise MutantError(f'git archive {rev}: '
                          f'{archive.stderr.decode().strip()}')
    subprocess.run(['tar', '-x', '-C', dest], input=archive.stdout,
                   check=True, timeout=120)
    SOURCE = dest


def snapshot():
    """The working tree's driver as it is now, in WORK/source: edits of it
    made while the run goes on do not reach later mutants. (The tests run
    from the working tree.)"""
    global SOURCE
    dest = os.path.join(WORK, 'source')
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(os.path.join(REPO, 'drivers', 'virtio'),
                    os.path.join(dest, 'drivers', 'virtio'))
    os.makedirs(os.path.join(dest, 'include', 'uapi', 'linux'))
    shutil.copy(os.path.join(REPO, 'include', 'uapi', 'linux',
                             'virtio_mem.h'),
                os.path.join(dest, 'include', 'uapi', 'linux'))
    SOURCE = dest


def copy_driver(dest):
    """drivers/virtio and include/uapi/linux/virtio_mem.h under dest, as
    the driver's Makefile expects them (the header at ../../include)."""
    shutil.rmtree(dest, ignore_errors=True)
    drv = os.path.join(dest, 'drivers', 'virtio')
    os.makedirs(drv)
    src = os.path.join(SOURCE, 'drivers', 'virtio')
    for name in os.listdir(src):
        if re.fullmatch(r'virtio_mem\w*\.[ch]|Makefile', name) and \
                not name.endswith('.mod.c'):
            shutil.copy(os.path.join(src, name), drv)
    uapi = os.path.join(dest, 'include', 'uapi', 'linux')
    os.makedirs(uapi)
    shutil.copy(os.path.join(SOURCE, 'include', 'uapi', 'linux',
                             'virtio_mem.h'), uapi)
    return drv


def apply(m, drv):
    path = os.path.join(drv, m.file)
    if not os.path.exists(path):
        raise MutantError(f'{m.name}: {m.file} does not exist any more')
    with open(path) as f:
        src = f.read()
    n = src.count(m.old)
    if n != 1:
        raise MutantError(f'{m.name}: the lines to mutate are found {n} '
                          f'times in {m.file} (want once): update the '
                          f'mutant\n--- lines ---\n{m.old}')
    with open(path, 'w') as f:
        f.write(src.replace(m.old, m.new))


def build(drv, log):
    with open(log, 'w') as f:
        # With fault injection: the tests that need it load it as
        # 'ours-fi', the others as 'ours'.
        p = subprocess.run(['make', '-C', kdir(), f'M={drv}',
                            'CONFIG_VIRTIO_MEM=m',
                            'CONFIG_VIRTIO_MEM_FAULT_INJECTION=y', 'modules'],
                           stdout=f, stderr=subprocess.STDOUT, timeout=900)
    ko = os.path.join(drv, 'virtio_mem.ko')
    if p.returncode or not os.path.exists(ko):
        raise MutantError(f'build failed (rc={p.returncode}), see {log}')
    return ko


KERNEL_OUT = os.path.join(HERE, '.build', 'kernel-build')
BZIMAGE = os.path.join(KERNEL_OUT, 'arch', 'x86', 'boot', 'bzImage')


def build_kernel(root, log):
    """The test kernel with the driver from root (a copy, maybe with a
    bug) built in, in the usual object tree: a relink. Its path."""
    env = dict(os.environ, VMEM_SRC=root)
    with open(log, 'w') as f:
        p = subprocess.run(['make', '-C', REPO, 'kernel'], env=env,
                           stdout=f, stderr=subprocess.STDOUT, timeout=3600)
    if p.returncode:
        raise MutantError(f'kernel build failed (rc={p.returncode}), see '
                          f'{log}')
    return BZIMAGE


def collect(tests):
    """Fails unless pytest finds every node id in tests."""
    # The ids name the [ours] variants, whatever the caller's selection.
    env = dict(os.environ, VMTEST_MODULES='ours')
    p = subprocess.run(['/usr/bin/python3', '-m', 'pytest', '-q',
                        '--collect-only', '-p', 'no:cacheprovider']
                       + sorted(set(tests)), cwd=HERE, env=env,
                       capture_output=True, text=True, timeout=300)
    if p.returncode:
        raise MutantError('pytest cannot collect the tests of the mutants '
                          f'(rc={p.returncode}):\n{p.stdout}{p.stderr}')


def run_tests(ko, tests, log, stop_first=True, kernel_src=None):
    """pytest over tests with VMEM_KO=ko, or with the test kernel built
    from kernel_src: (rc, [failed node ids])."""
    env = dict(os.environ, VMEM_KO=ko, VMEM_FI_KO=ko, VMTEST_MODULES='ours',
               VMTEST_TEST_TIMEOUT=str(TEST_TIMEOUT))
    if kernel_src:
        env.update(VMEM_SRC=kernel_src, VMTEST_BZIMAGE=BZIMAGE)
    cmd = ['/usr/bin/python3', '-m', 'pytest', '-v', '-rf', '-p',
           'no:cacheprovider'] + (['-x'] if stop_first else []) + tests
    with open(log, 'w') as f:
        p = subprocess.run(cmd, cwd=HERE, env=env, stdout=f,
                           stderr=subprocess.STDOUT)
    with open(log) as f:
        out = f.read()
    failed = re.findall(r'^(?:FAILED|ERROR) (\S+)', out, re.M)
    return p.returncode, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--only', default='',
                    help='comma-separated mutant names (default: all)')
    ap.add_argument('--list', action='store_true', help='list the mutants')
    ap.add_argument('--check', action='store_true',
                    help='only check that every mutant applies and that '
                    'its tests exist')
    ap.add_argument('--no-baseline', action='store_true',
                    help='skip the run of the tests on the unchanged driver')
    ap.add_argument('--rev', help='take the driver from this git revision '
                    '(default: the working tree)')
    args = ap.parse_args()

    if args.list:
        for m in MUTANTS:
            print(f'{m.name:26} {m.what}\n{"":26} tests: '
                  + ', '.join(t.split('/', 1)[1] for t in m.tests))
        return 0
    names = [n for n in args.only.split(',') if n]
    unknown = set(names) - {m.name for m in MUTANTS}
    if unknown:
        ap.error(f'unknown mutants: {sorted(unknown)}')
    mutants = [m for m in MUTANTS if not names or m.name in names]
    if args.check:
        return check(args, mutants)
    os.makedirs(WORK, exist_ok=True)
    started = datetime.datetime.now(datetime.timezone.utc)
    head = describe(started, args)
    if args.rev:
        extract_rev(args.rev)
    else:
        snapshot()

    # Every mutant applies to the current sources: checked before anything
    # long runs.
    for m in mutants:
        apply(m, copy_driver(os.path.join(WORK, m.name)))

    def build_for(m_kind, drv, name):
        """(ko, kernel_src) to run a mutant's tests with."""
        if m_kind == 'kunit':
            root = os.path.dirname(os.path.dirname(drv))
            build_kernel(root, os.path.join(WORK, f'{name}.kernel.log'))
            return '', root
        return build(drv, os.path.join(WORK, f'{name}.build.log')), None

    if not args.no_baseline:
        t0 = time.monotonic()
        for kind in sorted({m.kind for m in mutants}):
            tests = sorted({t for m in mutants if m.kind == kind
                            for t in m.tests})
            print(f'baseline ({kind}): {len(tests)} tests on the unchanged '
                  'driver', file=sys.stderr, flush=True)
            drv = copy_driver(os.path.join(WORK, f'baseline-{kind}'))
            ko, ksrc = build_for(kind, drv, f'baseline-{kind}')
            log = os.path.join(WORK, f'baseline-{kind}.log')
            rc, failed = run_tests(ko, tests, log, stop_first=False,
                                   kernel_src=ksrc)
            if rc:
                print(f'baseline: the tests fail without any mutant (rc={rc}'
                      f': {failed}), see {log}', file=sys.stderr)
                return 1
        print(f'baseline: passed ({time.monotonic() - t0:.0f}s)',
              file=sys.stderr, flush=True)

    rows = []
    try:
        for m in mutants:
            t0 = time.monotonic()
            print(f'mutant {m.name}: {m.what}', file=sys.stderr, flush=True)
            verdict = judge(m, build_for)
            secs = time.monotonic() - t0
            rows.append((m.name, verdict, secs))
            print(f'  {verdict} ({secs:.0f}s)', file=sys.stderr, flush=True)
    finally:
        if any(m.kind == 'kunit' for m in mutants):
            # Back to the driver of the working tree: a relink.
            subprocess.run(['make', '-C', REPO, 'kernel'],
                           stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT, timeout=3600)

    bad = [r for r in rows if not r[1].startswith('killed')]
    table = [f'{"mutant":26} {"result":70} time']
    table += [f'{name:26} {verdict:70} {secs:4.0f}s'
              for name, verdict, secs in rows]
    table.append(f'\n{len(rows) - len(bad)}/{len(rows)} mutants killed'
                 + (f'; not killed: {", ".join(r[0] for r in bad)}'
                    if bad else ''))
    print('\n'.join(table))
    record(started, head, table)
    return 1 if bad else 0


def judge(m, build_for):
    """The verdict on mutant m: killed by the assertion its entry expects,
    or by failing twice; else survived, flaky or an error."""
    log = os.path.join(WORK, f'{m.name}.log')
    try:
        drv = copy_driver(os.path.join(WORK, m.name))
        apply(m, drv)
        ko, ksrc = build_for(m.kind, drv, m.name)
        rc, failed = run_tests(ko, m.tests, log, kernel_src=ksrc)
        if rc == 0:
            return 'SURVIVED'
        if rc != 1 or not failed:
            return f'ERROR: pytest rc={rc}, see {log}'
        test = failed[0].split('/', 1)[-1]
        with open(log) as f:
            if re.search(m.expect, f.read()):
                return f'killed by {test}'
        again = log.replace('.log', '.again.log')
        rc2, failed2 = run_tests(ko, [failed[0]], again, kernel_src=ksrc)
        if rc2 == 1 and failed2:
            return f'killed by {test} (failed twice)'
        return f'FLAKY: {test} failed once, then passed; see {log}'
    except (MutantError, subprocess.TimeoutExpired) as e:
        return f'ERROR: {e}'.splitlines()[0]


def check(args, mutants):
    """--check: apply every mutant in a scratch directory (a make mutants
    running meanwhile keeps its copies) and collect its tests."""
    global WORK
    WORK = tempfile.mkdtemp(prefix='virtio-mem-mutants-')
    try:
        if args.rev:
            extract_rev(args.rev)
        for m in mutants:
            apply(m, copy_driver(os.path.join(WORK, m.name)))
        collect([t for m in mutants for t in m.tests])
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    print(f'{len(mutants)} mutants apply; their tests exist')
    return 0


def describe(started, args):
    """What this run is of: date, commit, whether the sources differ from
    it, which mutants."""
    def git(*a):
        return subprocess.run(['git', '-C', REPO, *a], capture_output=True,
                              text=True).stdout.strip()

    rev = git('rev-parse', '--verify', (args.rev or 'HEAD') + '^{commit}')
    if not rev:
        raise MutantError(f'no such git revision: {args.rev}')
    # The tests always come from the working tree, the driver unless --rev;
    # kept tables are not sources.
    paths = ['tools/testing'] + ([] if args.rev else ['drivers', 'include'])
    dirty = git('status', '--porcelain', '--', *paths,
                ':(exclude)tools/testing/virtio-mem/mutants-results')
    return (f'make mutants, {started:%Y-%m-%d %H:%M} UTC, commit {rev[:12]}'
            + (' with modified sources' if dirty else '')
            + (f', only {args.only}' if args.only else '')
            + (', no baseline' if args.no_baseline else ''))


def record(started, head, table):
    """Keeps the table, with what it was run on, in RESULTS_DIR."""
    os.makedirs(RESULTS_DIR, exist_ok=True)
    path = os.path.join(RESULTS_DIR, f'{started:%Y-%m-%dT%H%MZ}.txt')
    with open(path, 'w') as f:
        f.write(head + '\n\n' + '\n'.join(table) + '\n')
    print(f'kept in {os.path.relpath(path, REPO)}', file=sys.stderr)


if __name__ == '__main__':
    try:
        sys.exit(main())
    except MutantError as e:
        print(f'mutants.py: {e}', file=sys.stderr)
        sys.exit(1)
