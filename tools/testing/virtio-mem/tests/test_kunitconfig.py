# SPDX-License-Identifier: GPL-2.0
"""drivers/virtio/.kunitconfig, for kernel developers who run the KUnit
suites with `kunit.py run --arch=x86_64 --kunitconfig=drivers/virtio/
.kunitconfig`: every option in it is one the test kernel (kernel.config)
sets the same way, so the kernel the built-in tests build and boot proves
the set builds and runs; and kunit.py's own configuration step accepts it
in the kernel source the test kernel is built from."""

import os
import re
import subprocess

import pytest

import steps

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                    '..', '..'))
KUNITCONFIG = os.path.join(REPO, 'drivers', 'virtio', '.kunitconfig')
KERNEL_CONFIG = os.path.join(REPO, 'tools', 'testing', 'virtio-mem',
                             'kernel.config')
# Unpacked by make (checkpatch, kernel), with our driver overlaid by
# build-kernel.sh.
LINUX_SRC = os.environ.get('LINUX_SRC', os.path.join(
    REPO, 'tools', 'testing', 'virtio-mem', '.build', 'linux-source-6.1'))

OPTION_RE = re.compile(r'(CONFIG_\w+)=(.*)')
NOT_SET_RE = re.compile(r'# (CONFIG_\w+) is not set')


def options(path):
    """{CONFIG_X: value} of a config fragment; 'n' for '# ... is not set'.
    Other lines must be comments or blank."""
    opts = {}
    with open(path) as f:
        for no, line in enumerate(f, 1):
            line = line.strip()
            m = OPTION_RE.fullmatch(line) or NOT_SET_RE.fullmatch(line)
            if m:
                assert m.group(1) not in opts, \
                    f'{path}:{no}: {m.group(1)} given twice'
                opts[m.group(1)] = m.group(2) if m.re is OPTION_RE else 'n'
            else:
                assert not line or line.startswith('#'), \
                    f'{path}:{no}: not an option or a comment: {line!r}'
    return opts


def test_kunitconfig_options_are_the_test_kernels():
    kunit = options(KUNITCONFIG)
    for opt in ('CONFIG_KUNIT', 'CONFIG_VIRTIO_MEM',
                'CONFIG_VIRTIO_MEM_KUNIT_TEST'):
        assert kunit.get(opt) == 'y', f'.kunitconfig must set {opt}=y'
    kernel = options(KERNEL_CONFIG)
    differ = [f'{opt}={val} (kernel.config: '
              f'{opt + "=" + kernel[opt] if opt in kernel else "absent"})'
              for opt, val in sorted(kunit.items()) if kernel.get(opt) != val]
    assert not differ, \
        'options of drivers/virtio/.kunitconfig the test kernel does not ' \
        'set the same way:\n' + '\n'.join(differ)


def overlay_is_current():
    """Whether LINUX_SRC's drivers/virtio/Kconfig holds our Kconfig
    entries as they are now (build-kernel.sh copies them in)."""
    path = os.path.join(LINUX_SRC, 'drivers', 'virtio', 'Kconfig')
    if not os.path.exists(os.path.join(LINUX_SRC, '.unpacked')) or \
            not os.path.exists(path):
        return False
    with open(os.path.join(REPO, 'Kconfig')) as f:
        ours = f.read()
    ours = ours[ours.index('config VIRTIO_MEM\n'):]
    with open(path) as f:
        return ours in f.read()


# After make kernel, which overlays the driver into the kernel source: with
# the built-in tests (make check builds that kernel meanwhile).
@pytest.mark.builtin
def test_kunit_py_accepts_kunitconfig(tmp_path, builtin_kernel):
    """`kunit.py config --arch=x86_64` does what `kunit.py run` does before
    building: olddefconfig from the .kunitconfig, then it fails if any of
    its options did not make it into .config (a missing dependency)."""
    if not overlay_is_current():
        steps.skip_or_fail(f'{LINUX_SRC} does not hold the current driver Kconfig: '
                    'make kernel (make check does) overlays it')
    p = subprocess.run(
        ['/usr/bin/python3', 'tools/testing/kunit/kunit.py', 'config',
         '--arch=x86_64', f'--kunitconfig={KUNITCONFIG}',
         f'--build_dir={tmp_path / "build"}'],
        cwd=LINUX_SRC, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE='1'))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    config = options(tmp_path / 'build' / '.config')
    for opt, val in options(KUNITCONFIG).items():
        assert config.get(opt, 'n') == val, f'{opt}: {config.get(opt)}\n{out}'
