# SPDX-License-Identifier: GPL-2.0
"""Shared fixtures for the virtio-mem VM tests.

Tests boot QEMU/TCG guests through vmtest.Guest, one at a time.
VMTEST_MODULES=ours,ref (the default) selects which driver(s) the tests
that take the `module` fixture run against; 'ref' is Debian's own
virtio_mem.ko: what it passes, it passes too, and where the README claims a
difference, a test expects it to fail (xfail, strict).

VMTEST_TEST_TIMEOUT (seconds, default 1800, 0: none) bounds each test's
run, besides the bounds of every guest command and wait: a test that hangs
anyway fails with a traceback of where it hung (one that is waiting for
another vmtest user's QEMU then gets another period). VMTEST_SEED fixes
the random choices of the tests that make some (steps.seeded_random()).
A SIGTERM (CI cancelling the job) ends pytest the way ^C does, and the
QEMUs it started with it.
"""

import faulthandler
import glob
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import steps  # noqa: E402
import vmtest  # noqa: E402

DRIVER_MODULES = [m for m in
                  os.environ.get('VMTEST_MODULES', 'ours,ref').split(',')
                  if m]

# (test id, boot seconds, [(step, seconds)]) of every guest, for the summary.
_timings = []


TEST_TIMEOUT = float(os.environ.get('VMTEST_TEST_TIMEOUT', '1800'))


class TestTimeout(Exception):
    """A test ran longer than VMTEST_TEST_TIMEOUT."""


def in_main_thread():
    """Signals reach only the main thread. A pytest-xdist worker (execnet
    1.9) now and then runs the tests in another one."""
    return threading.current_thread() is threading.main_thread()


def pytest_configure(config):
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt(f'signal {signum}')

    if in_main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)


# Tests that take longest, started first: two workers then end together.
HEAVY = ('test_pressure.py::', 'test_growth.py::test_grow_64x',
         'test_unplug.py::test_big_block_unplug', 'test_kdump.py::',
         'test_block_sizes.py::test_big_block_unplug_under_pressure',
         'test_lifecycle.py::test_offline_during_adoption',
         'test_lifecycle.py::test_reload_beside_balloon',
         'test_lifecycle.py::test_failed_takeover_refuses_to_bind')


def _read_list(path):
    """Node ids relative to tests/, one per line, # comments."""
    with open(path) as f:
        return {ln.strip() for ln in f
                if ln.strip() and not ln.startswith('#')}


def _rel(item):
    return item.nodeid.split('tests/', 1)[-1]


def _no_missing(path, wanted, found):
    """A list of tests that names one that does not exist is an error,
    not a silent skip."""
    if wanted - found:
        raise pytest.UsageError(f'{path} lists tests that do not exist: '
                                f'{sorted(wanted - found)}')


def _only(config, items):
    """VMTEST_ONLY=FILE keeps the tests FILE lists (node ids relative to
    tests/, one per line, # comments), e.g. series-6.12.tests; a listed
    test that does not exist is an error, not a silent skip."""
    path = os.environ.get('VMTEST_ONLY')
    if not path:
        return
    wanted = _read_list(path)
    keep = [i for i in items if _rel(i) in wanted]
    _no_missing(path, wanted, {_rel(i) for i in keep})
    config.hook.pytest_deselected(items=[i for i in items if i not in keep])
    items[:] = keep


# The second kernel series in the same run (make check): with
# VMTEST_612_KVER set, every test series-6.12.tests lists runs once more,
# as NAME@6.12, on that kernel with the modules VMTEST_612_KO and
# VMTEST_612_FI_KO. One session for both series keeps the workers busy to
# the end, where two runs in a row each ended on one worker.
SERIES_612_LIST = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'series-6.12.tests')
SERIES_612_SUFFIX = '@6.12'
SERIES_612_ENV = {'VMTEST_KVER': 'VMTEST_612_KVER',
                  'VMEM_KO': 'VMTEST_612_KO',
                  'VMEM_FI_KO': 'VMTEST_612_FI_KO'}


def _add_series_612(config, items):
    if 'VMTEST_612_KVER' not in os.environ:
        return
    unset = [v for v in SERIES_612_ENV.values() if not os.environ.get(v)]
    if unset:
        raise pytest.UsageError(f'VMTEST_612_KVER is set, {unset} not')
    wanted = _read_list(SERIES_612_LIST)
    found = set()
    for it in list(items):
        if _rel(it) not in wanted:
            continue
        found.add(_rel(it))
        items.append(pytest.Function.from_parent(
            it.parent, name=it.name + SERIES_612_SUFFIX,
            callspec=getattr(it, 'callspec', None), callobj=it.obj,
            fixtureinfo=it._fixtureinfo, originalname=it.originalname))
    # Only a collection of whole directories must hold them all, not one
    # of some files or node ids.
    if all(os.path.isdir(a) for a in config.args):
        _no_missing(SERIES_612_LIST, wanted, found)


@pytest.fixture(autouse=True)
def series_612_env(request, monkeypatch):
    """A NAME@6.12 test runs with VMTEST_KVER, VMEM_KO and VMEM_FI_KO of
    the 6.12 series (see _add_series_612())."""
    if request.node.name.endswith(SERIES_612_SUFFIX):
        for var, src in SERIES_612_ENV.items():
            monkeypatch.setenv(var, os.environ[src])


def pytest_collection_modifyitems(config, items):
    """The built-in tests last: make check builds their kernel while the
    others run. Before them, the heavy tests first."""
    _only(config, items)
    _add_series_612(config, items)

    def rank(item):
        builtin = item.get_closest_marker('builtin') is not None
        heavy = any(h in item.nodeid for h in HEAVY)
        return (builtin, not heavy)

    items.sort(key=rank)


def pytest_report_header(config):
    ko = vmtest.ours_ko()
    state = 'present' if os.path.exists(ko) else 'MISSING'
    seed = os.environ.get('VMTEST_SEED')
    return [f'vmtest: kernel {vmtest.kernel_version()}, '
            f'driver modules {DRIVER_MODULES}',
            f'vmtest: our module {ko} ({state})',
            f'vmtest: VMTEST_SEED={seed or "(unset: random)"}, '
            f'test timeout {TEST_TIMEOUT:.0f}s']


def _waiting_for_qemu_lock(frame):
    while frame:
        if frame.f_code.co_name == '_take_lock':
            return True
        frame = frame.f_back
    return False


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """Fail a test that runs longer than TEST_TIMEOUT (SIGALRM interrupts
    whatever it waits for). A test that is waiting for the QEMU lock of
    another vmtest user when its time is up gets a fresh period instead:
    that wait is bounded by vmtest itself."""
    if TEST_TIMEOUT <= 0:
        yield
        return
    if not in_main_thread():
        # No SIGALRM here: past the bound, the worker prints where every
        # thread is and exits, and pytest-xdist fails the test it ran.
        faulthandler.dump_traceback_later(TEST_TIMEOUT, exit=True)
        try:
            yield
        finally:
            faulthandler.cancel_dump_traceback_later()
        return

    def on_alarm(signum, frame):
        if _waiting_for_qemu_lock(frame):
            signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
            return
        raise TestTimeout(f'{item.nodeid} ran longer than {TEST_TIMEOUT:.0f}s '
                          '(VMTEST_TEST_TIMEOUT)')

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_TIMEOUT)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def pytest_terminal_summary(terminalreporter):
    if not _timings:
        return
    tr = terminalreporter
    tr.section('vmtest timings')
    for entry in _timings:
        for line in _timing_lines(*entry):
            tr.write_line(line.rstrip('\n'))


def _timing_lines(nodeid, boot, steps):
    boot = f'{boot:.1f}s' if boot is not None else 'n/a'
    yield f'{nodeid}: boot {boot}\n'
    for what, secs in steps:
        yield f'    {what}' + ('' if secs is None else f': {secs:.1f}s') + '\n'


@pytest.fixture(scope='session')
def initramfs():
    """Build the initramfs once per session (cached by content hash)."""
    return vmtest.build_initramfs()


@pytest.fixture(scope='session')
def ours_ko():
    """Path of our module; fails the tests that need it if it is missing."""
    path = vmtest.ours_ko()
    if not os.path.exists(path):
        pytest.fail(f'our module {path} does not exist: build it first '
                    '(make), or point VMEM_KO at it', pytrace=False)
    return path


@pytest.fixture(params=[pytest.param(m, marks=getattr(pytest.mark, m))
                        for m in DRIVER_MODULES])
def module(request):
    """Which driver a driver test runs: 'ours' (default) or 'ref'."""
    if request.param == 'ours':
        request.getfixturevalue('ours_ko')
    return request.param


# The test kernel with virtio-mem built in (make kernel), for the tests
# marked builtin.
KERNEL_OUT = os.environ.get('KERNEL_OUT', os.path.join(
    vmtest.REPO, 'tools', 'testing', 'virtio-mem', '.build', 'kernel-build'))


# What build-kernel.sh hashes into <build dir>/.virtio-mem-sources, as
# globs relative to the repository.
KERNEL_SOURCES = ['drivers/virtio/virtio_mem_*.[ch]',
                  'drivers/virtio/Makefile',
                  'include/uapi/linux/virtio_mem.h', 'Kconfig',
                  'tools/testing/virtio-mem/kernel.config']
SOURCES_RECORD = '.virtio-mem-sources'
# A build from scratch takes about 10 minutes on 2 cores.
MAKE_KERNEL_TIMEOUT = 3600


def kernel_sources():
    """{path relative to the repo: sha256} of what the test kernel is
    built from, as the files are now. The driver's sources are read from
    VMEM_SRC if set (as build-kernel.sh does: make mutants)."""
    files = {}
    drv_src = os.environ.get('VMEM_SRC', vmtest.REPO)
    for pattern in KERNEL_SOURCES:
        root = drv_src if pattern.startswith(('drivers/', 'include/')) \
            else vmtest.REPO
        for path in glob.glob(os.path.join(root, pattern)):
            if path.endswith('.mod.c'):
                continue
            with open(path, 'rb') as f:
                files[os.path.relpath(path, root)] = \
                    hashlib.sha256(f.read()).hexdigest()
    return files


def kernel_stale_reason(image):
    """Why the bzImage `image` may not hold the current sources, or None.

    build-kernel.sh's record in the build directory must exist (a build
    that failed or still runs removed it), be no older than the image,
    and name the current content of every source.
    """
    parts = os.path.abspath(image).split(os.sep)
    if parts[-4:] != ['arch', 'x86', 'boot', 'bzImage']:
        return 'it is not <build dir>/arch/x86/boot/bzImage'
    record = os.sep.join(parts[:-4] + [SOURCES_RECORD])
    if not os.path.exists(record):
        return (f'{record} is missing: the last build-kernel.sh run failed '
                'or is still running')
    if os.path.getmtime(image) > os.path.getmtime(record):
        return f'it is newer than {record}: built outside build-kernel.sh'
    built = {}
    with open(record) as f:
        for line in f:
            digest, _, path = line.strip().partition('  ')
            built[path] = digest
    now = kernel_sources()
    changed = sorted(p for p in set(built) | set(now)
                     if built.get(p) != now.get(p))
    if changed:
        return ('it is older than its sources: ' + ', '.join(changed)
                + ' changed since (make kernel)')
    return None


@pytest.fixture(scope='session')
def builtin_kernel():
    """Path of the bzImage: VMTEST_BZIMAGE, or `make kernel` (a quick
    no-op when nothing changed); the build log goes to vmtest.LOG_DIR.
    Fails the tests that use it if the image does not hold the current
    driver sources (kernel_stale_reason())."""
    image = os.environ.get('VMTEST_BZIMAGE')
    status = os.environ.get('VMTEST_KERNEL_STATUS')
    if status:
        # make check builds it in the background: wait for the verdict.
        t0 = time.monotonic()
        while not os.path.exists(status):
            if time.monotonic() - t0 > MAKE_KERNEL_TIMEOUT:
                pytest.fail(f'no {status} after {MAKE_KERNEL_TIMEOUT}s: '
                            'the test kernel build never ended',
                            pytrace=False)
            time.sleep(1)
        with open(status) as f:
            rc = f.read().strip()
        if rc != '0':
            log = os.path.join(os.path.dirname(status), 'kernel-check.log')
            with open(log) as f:
                tail = f.read().splitlines()[-40:]
            pytest.fail(f'make kernel-check failed (rc={rc}); log {log}:\n'
                        + '\n'.join(tail), pytrace=False)
    if image:
        if not os.path.exists(image):
            pytest.fail(f'VMTEST_BZIMAGE={image} does not exist',
                        pytrace=False)
    else:
        os.makedirs(vmtest.LOG_DIR, exist_ok=True)
        log = os.path.join(vmtest.LOG_DIR, 'make-kernel.log')
        t0 = time.monotonic()
        with open(log, 'w') as f:
            try:
                rc = subprocess.run(['make', 'kernel',
                                     f'KERNEL_OUT={KERNEL_OUT}'],
                                    cwd=vmtest.REPO, stdout=f,
                                    stderr=subprocess.STDOUT,
                                    timeout=MAKE_KERNEL_TIMEOUT).returncode
            except subprocess.TimeoutExpired:
                rc = f'timeout after {MAKE_KERNEL_TIMEOUT}s'
        if rc:
            with open(log) as f:
                tail = f.read().splitlines()[-40:]
            pytest.fail(f'make kernel failed (rc={rc}, '
                        f'{time.monotonic() - t0:.0f}s); log {log}:\n'
                        + '\n'.join(tail), pytrace=False)
        image = os.path.join(KERNEL_OUT, 'arch', 'x86', 'boot', 'bzImage')
    why = kernel_stale_reason(image)
    if why:
        pytest.fail(f'refusing to boot {image}: {why}', pytrace=False)
    return image


def log_allowance(node):
    """Regexes of kernel log lines a test provokes on purpose
    (@pytest.mark.allow_log)."""
    return [p for m in node.iter_markers('allow_log') for p in m.args]


def log_verdict(g, allow, since=0):
    """Problems in a guest's kernel log from `since` on: warnings, BUGs,
    oopses, lockdep reports, bad page states, OOM kills and failed
    allocations, but for the allowed lines. '' if none."""
    bad = [ln for ln in g.console_log()[since:].splitlines()
           if (vmtest.BAD_LOG_RE.search(ln) or steps.OOM_RE.search(ln))
           and not vmtest.BENIGN_LOG_RE.search(ln)
           and not any(re.search(p, ln) for p in allow)]
    if not bad:
        return ''
    return (f'kernel log of {g.name} has {len(bad)} problem line(s):\n'
            + '\n'.join(bad[:40]) + f'\n(full log: {g.console_path})')


@pytest.fixture
def make_guest(request, initramfs):
    """make_guest(**Guest kwargs) boots a guest that is stopped after the
    test; its console log stays in .build/logs/<test name>.console.log.
    At teardown every guest's whole kernel log must be clean (see
    log_verdict()), but for what the test's allow_log marker allows."""
    guests = []

    def make(**kwargs):
        kwargs.setdefault('name', request.node.name)
        g = vmtest.Guest(**kwargs)
        guests.append(g)
        g.start()
        return g

    yield make
    allow = log_allowance(request.node)
    problems = []
    for g in guests:
        g.stop()
        if g.boot_time is not None:
            problems.append(log_verdict(g, allow))
        _timings.append((request.node.nodeid, g.boot_time, list(g.timings)))
        # Kept beside the guest's console log: under xdist the summary
        # above is printed by nobody (each worker has its own _timings).
        with open(os.path.join(g.log_dir, f'{g.name}.timings'), 'w') as f:
            f.write(''.join(_timing_lines(*_timings[-1])))
    problems = [p for p in problems if p]
    if problems:
        pytest.fail('\n'.join(problems), pytrace=False)
