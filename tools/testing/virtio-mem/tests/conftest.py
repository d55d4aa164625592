# SPDX-License-Identifier: GPL-2.0
"""Shared fixtures for the virtio-mem VM tests.

Tests boot QEMU/TCG guests through vmtest.Guest, one at a time.
VMTEST_MODULES=ours,ref (default: ours) selects which driver(s) the
driver tests in test_driver.py run against; 'ref' is Debian's own
virtio_mem.ko, useful to check the tests themselves.
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import vmtest  # noqa: E402

DRIVER_MODULES = [m for m in os.environ.get('VMTEST_MODULES', 'ours').split(',')
                  if m]

# (test id, boot seconds, [(step, seconds)]) of every guest, for the summary.
_timings = []


def pytest_report_header(config):
    ko = vmtest.ours_ko()
    state = 'present' if os.path.exists(ko) else 'MISSING'
    return [f'vmtest: kernel {vmtest.kernel_version()}, '
            f'driver modules {DRIVER_MODULES}',
            f'vmtest: our module {ko} ({state})']


def pytest_terminal_summary(terminalreporter):
    if not _timings:
        return
    tr = terminalreporter
    tr.section('vmtest timings')
    for nodeid, boot, steps in _timings:
        boot = f'{boot:.1f}s' if boot is not None else 'n/a'
        tr.write_line(f'{nodeid}: boot {boot}')
        for what, secs in steps:
            tr.write_line(f'    {what}: {secs:.1f}s')


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


@pytest.fixture
def make_guest(request, initramfs):
    """make_guest(**Guest kwargs) boots a guest that is stopped after the
    test; its console log stays in .build/logs/<test name>.console.log."""
    guests = []

    def make(**kwargs):
        kwargs.setdefault('name', request.node.name)
        g = vmtest.Guest(**kwargs)
        guests.append(g)
        g.start()
        return g

    yield make
    for g in guests:
        g.stop()
        _timings.append((request.node.nodeid, g.boot_time, g.timings))
