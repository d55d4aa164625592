#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Mutation check of the virtio-mem tests (make mutants).

Each mutant is one deliberate bug, written as exact source lines of the
driver and what replaces them. For each, in turn, a copy of
drivers/virtio and our uapi header gets the bug, the copy is built as a
module against Debian's kernel headers, and the tests that should notice
run against it (VMEM_KO), stopping at the first failure. A mutant none of
its tests fails survives; one that no longer applies (a line changed) or
does not build is an error: either fails the run. First, unless
--no-baseline, the same tests run against an unchanged copy: they must
pass there, or a "killed" mutant would prove nothing.

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


T = 'tests/'
MUTANTS = [
    Mutant('no-headroom-check',
           'unplug online memory whatever the guest has left',
           'virtio_mem_mm.c',
           '\t       si_mem_available() - (long)nr_pages >= '
           'vmem_mm_reserve_pages();\n',
           '\t       true;\n',
           [T + 'test_pressure.py::test_unplug_pauses_under_pressure']),
    Mutant('no-pageoffline',
           'leave unplugged pages of an onlined block unmarked',
           'virtio_mem_mm.c',
           '\t\t__ClearPageReserved(page);\n\t\t__SetPageOffline(page);\n',
           '\t\t__ClearPageReserved(page);\n',
           [T + 'test_admin.py::test_offline_online_by_hand']),
    Mutant('no-unplug-all',
           'keep what a previous driver left plugged',
           'virtio_mem_core.c',
           '\t\tvm->unplug_all = vm->cfg.plugged_size != 0;\n',
           '\t\tvm->unplug_all = false;\n',
           [T + 'test_restarts.py::test_leftovers_offline_limit_and_rmmod']),
    Mutant('ignore-usable-region',
           'treat the whole region as usable',
           'virtio_mem_core.c',
           '\t\t\t min(last - vm->first_mb, vm->sbm.nr_mbs) : 0;\n',
           '\t\t\t vm->sbm.nr_mbs : vm->sbm.nr_mbs;\n',
           [T + 'test_error_path.py::test_error_nack_and_add_failure',
            T + 'test_restarts.py::test_rmmod_insmod_online']),
    Mutant('no-backoff',
           'retry after BUSY or a failure at once',
           'virtio_mem_core.c',
           '\tvmem_retry_in(vm, vm->backoff_ms);\n',
           '\tvmem_retry_in(vm, 0);\n',
           [T + 'test_restarts.py::test_migration_busy',
            T + 'test_error_path.py::test_error_nack_and_add_failure']),
    Mutant('no-resync',
           'never re-synchronise after an ERROR answer',
           'virtio_mem_core.c',
           '\t\tif (vmem_resync(vm))\n'
           '\t\t\tWRITE_ONCE(vm->resync_needed, true);\n',
           '',
           [T + 'test_error_path.py::test_error_nack_and_add_failure']),
    Mutant('no-teardown',
           'rmmod leaves offline memory added and plugged',
           'virtio_mem_core.c',
           '\tvmem_mm_stop_transitions(vm);\n\n\tvm->ops->teardown(vm);\n',
           '\tvmem_mm_stop_transitions(vm);\n\n',
           [T + 'test_restarts.py::test_leftovers_offline_limit_and_rmmod']),
    Mutant('fixed-pressure-poll',
           'ignore pressure_poll_ms',
           'virtio_mem_core.c',
           '\t\tvmem_retry_in(vm, READ_ONCE(vmem_pressure_poll_ms));\n',
           '\t\tvmem_retry_in(vm, 1000);\n',
           [T + 'test_pressure.py::test_unplug_pauses_under_pressure']),
    Mutant('fixed-offline-limit',
           'ignore offline_limit_mb',
           'virtio_mem_plug.c',
           '\tu64 limit = (u64)READ_ONCE(vmem_offline_limit_mb) << 20;\n',
           '\tu64 limit = 1024ULL << 20;\n',
           [T + 'test_restarts.py::test_leftovers_offline_limit_and_rmmod']),
    Mutant('no-nack-count',
           'do not count NACK answers',
           'virtio_mem_req.c',
           '\t\tvm->stats.nacks++;\n',
           '',
           [T + 'test_error_path.py::test_error_nack_and_add_failure']),
    Mutant('no-add-failure-count',
           'do not count failed adds',
           'virtio_mem_mm.c',
           '\tvm->stats.add_failures++;\n',
           '',
           [T + 'test_error_path.py::test_error_nack_and_add_failure']),
    Mutant('unplug-without-migration',
           'unplug online sub-blocks without taking their pages first',
           'virtio_mem_sbm.c',
           '\trc = vmem_mm_take_pages(vm, sb, nr);\n',
           '\trc = 0;\n',
           [T + 'test_unplug.py::test_busy_unplug']),
    Mutant('no-big-block-floor',
           'let offline_limit_mb stop a device block larger than it',
           'virtio_mem_budget.h',
           '\tcap = max3(cap, min_mbs, 2UL);\n',
           '\tcap = max(cap, 2UL);\n',
           [T + 'test_block_sizes.py::test_block_size_plug_unplug[2G]']),
    Mutant('no-memmap-cap',
           'add memory whatever its memmap leaves the kernel',
           'virtio_mem_budget.h',
           '\tif (free <= reserve)\n\t\treturn cost ? 0 : ULONG_MAX;\n',
           '\treturn ULONG_MAX;\n',
           [T + 'test_growth.py::test_grow_64x[memmap_in_boot_memory]']),
    Mutant('no-big-block-headroom',
           'take a big block whatever the guest has left',
           'virtio_mem_bbm.c',
           '\tif (!vmem_mm_headroom_ok(vm, online * PHYS_PFN(vm->mb_size))) {\n',
           '\tif (0) {\n',
           [T + 'test_block_sizes.py::'
            'test_big_block_unplug_under_pressure[2G]']),
    Mutant('region-not-exclusive',
           'reserve the region as plain memory: /dev/mem may read it',
           'virtio_mem_core.c',
           '\tres->flags = IORESOURCE_SYSTEM_RAM | IORESOURCE_EXCLUSIVE;\n',
           '\tres->flags = IORESOURCE_MEM;\n',
           [T + 'test_driver.py::test_devmem_cannot_read_device_region']),
    Mutant('offline-needs-headroom',
           'hold offline memory back under the unplug reserve too',
           'virtio_mem_mm.c',
           '\treturn !nr_pages ||\n\t       si_mem_available()',
           '\treturn si_mem_available()',
           [T + 'test_block_sizes.py::'
            'test_offline_big_blocks_go_under_pressure']),
    Mutant('no-self-host-try',
           'count the memmap until memmap_on_memory has worked once',
           'virtio_mem_plug.c',
           '\tif (!memmap && vm->self_host',
           '\tif (0 && vm->self_host',
           [T + 'test_growth.py::test_self_hosting_needs_no_kernel_memory']),
    Mutant('unplug-memmap',
           'unplug the memmap sub-block of an added, offline block',
           'virtio_mem_sbm.c',
           '\tfirst += vmem_sbm_memmap_units(vm, mb);\n',
           '',
           [T + 'test_growth.py::test_self_hosted_blocks_offline_and_reload']),
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


def run_tests(ko, tests, log, stop_first=True):
    """pytest over tests with VMEM_KO=ko: (rc, [failed node ids])."""
    env = dict(os.environ, VMEM_KO=ko, VMEM_FI_KO=ko, VMTEST_MODULES='ours',
               VMTEST_TEST_TIMEOUT=str(TEST_TIMEOUT))
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

    if not args.no_baseline:
        tests = sorted({t for m in mutants for t in m.tests})
        t0 = time.monotonic()
        print(f'baseline: {len(tests)} tests on the unchanged driver',
              file=sys.stderr, flush=True)
        drv = copy_driver(os.path.join(WORK, 'baseline'))
        ko = build(drv, os.path.join(WORK, 'baseline.build.log'))
        log = os.path.join(WORK, 'baseline.log')
        rc, failed = run_tests(ko, tests, log, stop_first=False)
        if rc:
            print(f'baseline: the tests fail without any mutant (rc={rc}: '
                  f'{failed}), see {log}', file=sys.stderr)
            return 1
        print(f'baseline: passed ({time.monotonic() - t0:.0f}s)',
              file=sys.stderr, flush=True)

    rows = []
    for m in mutants:
        t0 = time.monotonic()
        print(f'mutant {m.name}: {m.what}', file=sys.stderr, flush=True)
        log = os.path.join(WORK, f'{m.name}.log')
        try:
            drv = copy_driver(os.path.join(WORK, m.name))
            apply(m, drv)
            ko = build(drv, os.path.join(WORK, f'{m.name}.build.log'))
            rc, failed = run_tests(ko, m.tests, log)
            if rc == 0:
                verdict = 'SURVIVED'
            elif rc == 1 and failed:
                verdict = 'killed by ' + failed[0].split('/', 1)[-1]
            else:
                verdict = f'ERROR: pytest rc={rc}, see {log}'
        except (MutantError, subprocess.TimeoutExpired) as e:
            verdict = f'ERROR: {e}'.splitlines()[0]
        secs = time.monotonic() - t0
        rows.append((m.name, verdict, secs))
        print(f'  {verdict} ({secs:.0f}s)', file=sys.stderr, flush=True)

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
