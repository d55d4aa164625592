# SPDX-License-Identifier: GPL-2.0
"""Boot tests of the guest kernel with virtio-mem and its KUnit tests built
in (make kernel): every KUnit suite and case the test files define passes
at boot, and the built-in driver plugs the boot-time request and follows
resizes like the module does. The kernel has lockdep and other debug
checks (kernel.config); what they report fails the tests.

The kernel is built (incrementally) by the builtin_kernel fixture
(conftest.py) unless VMTEST_BZIMAGE names one; make check-builtin builds
it first.
"""

import glob
import os
import re

import pytest

import kunit_tool
from steps import PLUG_SEQUENCE, resize_step
from vmtest import REPO, GiB, KiB, MiB, MemDevice, fmt_size

pytestmark = pytest.mark.builtin

DRV = os.path.join(REPO, 'drivers', 'virtio')
# requested-size of the device when the guest boots.
BOOT_REQUEST = 512 * MiB
ONLINE_CMDLINE = 'memhp_default_state=online_movable'


def boot(make_guest, kernel, requested=BOOT_REQUEST):
    """A 1 GiB guest of the built-in kernel with one 8 GiB device that
    requests `requested` at boot; memory is onlined movable by the kernel
    as the driver adds it (no module, so no /init policy)."""
    return make_guest(kernel=kernel, module=None, cmdline=ONLINE_CMDLINE,
                      devices=[MemDevice('vm0', size='8G',
                                         requested=requested)])


# -- KUnit --------------------------------------------------------------------

def defined_suites():
    """{suite name: [(case name, parameterised)]} as the KUnit test files
    define them, in order: the cases of every struct kunit_case array, and
    the suites that point at those arrays."""
    arrays, suites = {}, {}
    files = sorted(glob.glob(os.path.join(DRV, 'virtio_mem_*_test.c')))
    assert files, f'no KUnit test files in {DRV}'
    for path in files:
        with open(path) as f:
            src = f.read()
        for name, body in re.findall(
                r'struct kunit_case (\w+)\[\] = \{(.*?)\n\};', src, re.S):
            arrays[name] = [(case, bool(param)) for param, case in
                            re.findall(r'KUNIT_CASE(_PARAM)?\(\s*(\w+)',
                                       body)]
        for body in re.findall(r'struct kunit_suite \w+ = \{(.*?)\n\};', src,
                               re.S):
            name = re.search(r'\.name = "([^"]+)"', body).group(1)
            cases = re.search(r'\.test_cases = (\w+)', body).group(1)
            suites[name] = arrays[cases]
    return suites


def test_kunit_suites_pass(make_guest, builtin_kernel):
    """The kernel's kunit.py parse reads the console log: its verdict and
    report are what counts and what a failure shows; kunit_tool.problems()
    adds that every defined suite and case ran, none skipped."""
    g = boot(make_guest, builtin_kernel)
    want = defined_suites()
    json_path = re.sub(r'(\.console)?\.log$', '', g.console_path) + \
        '.kunit.json'
    result = kunit_tool.parse(g.console_log(), json_path)
    problems = kunit_tool.problems(result, want)
    if problems:
        pytest.fail(f'KUnit ({g.console_path}), as kunit.py parse reports '
                    f'it:\n{result.output}\n\n' + '\n'.join(problems),
                    pytrace=False)
    print(result.output)     # for pytest -rP or -s
    ncases = sum(len(c) for c in want.values())
    assert ncases > 0
    g.timings.append((f'KUnit: {len(want)} suites, {ncases} cases; '
                      f'kunit.py parse: {result.summary}', 0.0))
    g.assert_log_clean()


# -- the built-in driver ------------------------------------------------------

def test_boot_plug_then_resize(make_guest, builtin_kernel):
    g = boot(make_guest, builtin_kernel)
    g.wait_until(lambda: g.plugged_size('vm0'),
                 cond=lambda s: s == BOOT_REQUEST, timeout=60,
                 what=f'vm0 QMP size == {fmt_size(BOOT_REQUEST)} after boot')
    attrs = g.vmem_sysfs('vm0')
    assert attrs, 'the built-in driver has no sysfs attributes for vm0'
    assert attrs['plugged_size'] == BOOT_REQUEST, attrs
    assert attrs['requested_size'] == BOOT_REQUEST, attrs
    assert attrs['broken'] == 0, attrs

    # Boot memory is what MemTotal holds beyond the device's plugged size;
    # unplugging all of it below must give back exactly that.
    base = g.memtotal() - attrs['plugged_size'] // KiB
    blocks = g.device_blocks('vm0')
    zones = g.check('cat ' + ' '.join(
        f'/sys/devices/system/memory/memory{b}/valid_zones'
        for b in sorted(blocks))).split()
    assert set(blocks.values()) == {'online'}, blocks
    assert set(zones) == {'Movable'}, \
        f'{ONLINE_CMDLINE} should online into ZONE_MOVABLE: {zones}'

    # Sizes in whole driver units: sub-blocks here are pageblocks (4 MiB
    # without hugetlb), not device blocks. With lockdep and might_sleep()
    # checks on, this covers onlining at boot and after it, offlining, and
    # onlining a partly plugged block (4G + one unit).
    unit = attrs['unit_size']
    sizes = [0] + [-(-s // unit) * unit for s in PLUG_SEQUENCE[1:]] + \
        [1 * GiB, BOOT_REQUEST, 0]
    for size in sizes:
        resize_step(g, 'vm0', size, base)
        attrs = g.vmem_sysfs('vm0')
        assert attrs['plugged_size'] == size, attrs
    g.assert_log_clean()
