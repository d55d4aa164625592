# SPDX-License-Identifier: GPL-2.0
"""Build checks: the module builds warning-free with W=1 against the
headers of both of Debian's series, with our own uapi header; sparse and
checkpatch --strict (6.1's and 6.12's) are clean;
the host-side unit tests of the pure logic pass."""

import os
import re
import shutil
import subprocess

import pytest


REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                    '..', '..'))
DRV = os.path.join(REPO, 'drivers', 'virtio')
UNIT = os.path.join(REPO, 'tools', 'testing', 'virtio-mem', 'unit')
# A module build, sparse or checkpatch takes well under a minute.
MAKE_TIMEOUT = 900


def make(*args, cwd=REPO):
    try:
        p = subprocess.run(['make', *args], cwd=cwd, capture_output=True,
                           text=True, timeout=MAKE_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        return 'timeout', f'make {" ".join(args)}: no end after ' \
            f'{MAKE_TIMEOUT}s\n{e.stdout or ""}{e.stderr or ""}'
    return p.returncode, p.stdout + p.stderr


def copy_tree(dest):
    """What make needs to build the module, in dest: a build from scratch
    there leaves the repository's module, which guests of other tests may
    be loading meanwhile, alone."""
    for sub, names in (('', ['Makefile', 'dkms.conf']),
                       ('include/uapi/linux', ['virtio_mem.h']),
                       ('drivers/virtio', [n for n in os.listdir(DRV)
                                           if re.fullmatch(
                                               r'virtio_mem\w*\.[ch]|Makefile',
                                               n) and
                                           not n.endswith('.mod.c')])):
        os.makedirs(os.path.join(dest, sub), exist_ok=True)
        for name in names:
            shutil.copy(os.path.join(REPO, sub, name),
                        os.path.join(dest, sub, name))
    return dest


def series_kdir(series):
    """make arguments that build for a series: Debian's default headers
    for 6.1, linux-headers-6.12-amd64's for 6.12."""
    if series == '6.1':
        return []
    rc, out = make('-s', f'print-kver-{series}')
    kver = out.strip()
    assert rc == 0 and kver, f'no kernel headers of series {series}: {out}'
    return [f'KDIR=/usr/src/linux-headers-{kver}']


@pytest.fixture(scope='module', params=['6.1', '6.12'])
def w1_sparse_build(request, tmp_path_factory):
    """One build from scratch per kernel series, of a copy, with W=1 and
    sparse (C=2) both: (rc, output, the copy's root)."""
    top = copy_tree(str(tmp_path_factory.mktemp('build')))
    kdir = series_kdir(request.param)
    rc, out = make('sparse', 'W=1', *kdir, cwd=top)
    # Built against the series asked for, not the default headers.
    want = kdir[0].split('=', 1)[1] if kdir else \
        '/usr/src/linux-headers-6.1.'
    assert f"Entering directory '{want}" in out, out[-2000:]
    return rc, out, top


def test_w1_build_has_no_warnings(w1_sparse_build):
    rc, out, top = w1_sparse_build
    warnings = [ln for ln in out.splitlines()
                if re.search(r'warning:|error:', ln)]
    assert not warnings, '\n'.join(warnings)
    assert rc == 0, out
    assert os.path.exists(os.path.join(top, 'drivers', 'virtio',
                                       'virtio_mem.ko'))


def test_our_uapi_header_is_compiled_in(w1_sparse_build):
    """The .cmd dependency list names the header the compiler really used."""
    _, _, top = w1_sparse_build
    cmd = open(os.path.join(top, 'drivers', 'virtio',
                            '.virtio_mem_core.o.cmd')).read()
    used = {os.path.realpath(p) for p in re.findall(r'\S*/virtio_mem\.h', cmd)}
    ours = os.path.realpath(os.path.join(top, 'include', 'uapi', 'linux',
                                         'virtio_mem.h'))
    assert used == {ours}, used


def test_sparse_clean(w1_sparse_build):
    rc, out, _ = w1_sparse_build
    assert rc == 0 and 'sparse: clean' in out, out


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
                       text=True, timeout=60)
    return p.returncode, p.stdout


def test_host_unit_config_validation():
    """TAP with the plan up front, so that a run that stops early shows as
    short of it: every planned case ran, in order, and passed."""
    rc, out = unit_cases()
    lines = out.splitlines()
    plan = [i for i, ln in enumerate(lines) if re.fullmatch(r'1\.\.\d+', ln)]
    results = [(i, m) for i, ln in enumerate(lines)
               for m in [re.fullmatch(r'(ok|not ok) (\d+) - (.*)', ln)] if m]
    assert len(plan) == 1 and results, f'no single plan or no results:\n{out}'
    assert plan[0] < results[0][0], f'the plan comes after results:\n{out}'
    planned = int(lines[plan[0]].split('..')[1])
    numbers = [int(m.group(2)) for _, m in results]
    assert numbers == list(range(1, planned + 1)), \
        f'planned {planned} cases, ran {numbers}:\n{out}'
    failed = [m.group(3) for _, m in results if m.group(1) != 'ok']
    assert not failed and rc == 0, out


def test_modules_install_makes_modprobe_prefer_ours(tmp_path):
    """make modules_install puts ours where modprobe finds it before the
    distribution's module of the same name (checked in a scratch root that
    also holds Debian's modules, so the system stays untouched)."""
    kver = subprocess.run(['make', '-s', 'print-kver'], cwd=REPO,
                          capture_output=True, text=True,
                          timeout=60).stdout.strip()
    mods = tmp_path / 'lib' / 'modules' / kver
    mods.mkdir(parents=True)
    distro = os.path.join('/lib/modules', kver)
    (mods / 'kernel').symlink_to(os.path.join(distro, 'kernel'))
    for name in ('modules.order', 'modules.builtin',
                 'modules.builtin.modinfo'):
        src = os.path.join(distro, name)
        if os.path.exists(src):
            (mods / name).write_bytes(open(src, 'rb').read())
    rc, out = make('modules_install', f'INSTALL_MOD_PATH={tmp_path}')
    assert rc == 0, out
    p = subprocess.run(['modprobe', '-d', str(tmp_path), '-S', kver,
                        '--show-depends', 'virtio_mem'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    last = p.stdout.strip().splitlines()[-1]
    assert last.endswith(f'/lib/modules/{kver}/updates/virtio_mem.ko'), \
        p.stdout
