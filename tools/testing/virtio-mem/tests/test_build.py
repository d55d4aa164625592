# SPDX-License-Identifier: GPL-2.0
"""Build checks: the module builds warning-free with W=1 against Debian's
headers, with our own uapi header; sparse and checkpatch --strict are clean;
the host-side unit tests of the pure logic pass."""

import os
import re
import subprocess


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                    '..', '..'))
DRV = os.path.join(REPO, 'drivers', 'virtio')
UNIT = os.path.join(REPO, 'tools', 'testing', 'virtio-mem', 'unit')


def make(*args, cwd=REPO):
    p = subprocess.run(['make', *args], cwd=cwd, capture_output=True,
                       text=True)
    return p.returncode, p.stdout + p.stderr


def touch_sources():
    for name in os.listdir(DRV):
        if name.endswith('.c'):
            os.utime(os.path.join(DRV, name))


def test_w1_build_has_no_warnings():
    touch_sources()
    rc, out = make('W=1')
    assert rc == 0, out
    warnings = [ln for ln in out.splitlines()
                if re.search(r'warning:|error:', ln)]
    assert not warnings, '\n'.join(warnings)
    assert os.path.exists(os.path.join(DRV, 'virtio_mem.ko'))


def test_our_uapi_header_is_compiled_in():
    """The .cmd dependency list names the header the compiler really used."""
    cmd = open(os.path.join(DRV, '.virtio_mem_core.o.cmd')).read()
    used = {os.path.realpath(p) for p in re.findall(r'\S*/virtio_mem\.h', cmd)}
    ours = os.path.realpath(os.path.join(REPO, 'include', 'uapi', 'linux',
                                         'virtio_mem.h'))
    assert used == {ours}, used


def test_sparse_clean():
    touch_sources()
    rc, out = make('sparse')
    assert rc == 0, out


def test_checkpatch_strict_clean():
    rc, out = make('checkpatch')
    assert rc == 0, out
    bad = [ln for ln in out.splitlines()
           if re.search(r'(ERROR|WARNING|CHECK):', ln)]
    assert not bad, '\n'.join(bad)


def unit_cases():
    """Run the host-side unit tests once; yields (name, ok) per TAP line."""
    rc, out = make('-s', 'config_test', cwd=UNIT)
    assert rc == 0, out
    p = subprocess.run(['./config_test'], cwd=UNIT, capture_output=True,
                       text=True)
    return p.returncode, p.stdout


def test_host_unit_config_validation():
    rc, out = unit_cases()
    results = re.findall(r'^(ok|not ok) \d+ - (.*)$', out, re.M)
    plan = re.search(r'^1\.\.(\d+)$', out, re.M)
    assert plan and int(plan.group(1)) == len(results) and results, out
    failed = [name for status, name in results if status != 'ok']
    assert not failed and rc == 0, out
