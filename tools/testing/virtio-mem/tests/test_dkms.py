# SPDX-License-Identifier: GPL-2.0
"""Installing with DKMS, as the README says: `dkms add`, `build` and
`install` from a checkout, and from the tarball `make dist` makes; then
one guest boots on the module dkms installed, plugs memory, and shows
exactly the sysfs attributes and parameters the ABI documents name.

dkms runs in scratch trees under a temporary directory (--dkmstree,
--sourcetree, --installtree, TMPDIR, its signing key), with --no-depmod
(its depmod would run on the host's /lib/modules): /var/lib/dkms,
/usr/src and /lib/modules stay untouched. The install tree holds copies of
Debian's virtio modules, so that dkms's version check and modprobe's
choice are the ones a Debian guest gets.
"""

import dataclasses
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tarfile

import pytest

import abi
import vmtest
from steps import plug_step
from vmtest import GiB, MemDevice

REPO = abi.REPO
DKMS_CONF = os.path.join(REPO, 'dkms.conf')
CORE = os.path.join(REPO, 'drivers', 'virtio', 'virtio_mem_core.c')
PACKAGE = 'virtio-mem'
# A dkms build is a module build: well under a minute here.
DKMS_TIMEOUT = 900


def dkms_conf(name):
    with open(DKMS_CONF) as f:
        m = re.search(rf'^{name}="([^"]*)"$', f.read(), re.M)
    assert m, f'no {name}="..." line in {DKMS_CONF}'
    return m.group(1)


VERSION = dkms_conf('PACKAGE_VERSION')
ARCH = platform.machine()


def kver():
    """The kernel the module is built for: Debian's (make print-kver)."""
    return subprocess.run(['make', '-s', 'print-kver'], cwd=REPO,
                          capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def kver_612():
    """The 6.12 kernel the tests build for (make print-kver-6.12)."""
    return subprocess.run(['make', '-s', 'print-kver-6.12'], cwd=REPO,
                          capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


def modinfo(path, field, *args):
    """modinfo -F field of a module file (or name, with args); the
    values of a field given several times, joined by newlines."""
    return subprocess.run(['modinfo', *args, '-F', field, path],
                          capture_output=True, text=True, check=True,
                          timeout=60).stdout.strip()


@dataclasses.dataclass
class Trees:
    """Scratch trees for dkms and the root its install tree is part of."""
    top: str
    kver: str

    def __post_init__(self):
        self.dkms_tree = os.path.join(self.top, 'var', 'lib', 'dkms')
        self.source_tree = os.path.join(self.top, 'usr', 'src')
        self.root = os.path.join(self.top, 'root')
        self.install_tree = os.path.join(self.root, 'lib', 'modules')
        self.tmp = os.path.join(self.top, 'tmp')
        for d in (self.dkms_tree, self.source_tree, self.tmp):
            os.makedirs(d, exist_ok=True)
        # Debian's virtio modules, as a Debian guest has them in kernel/.
        mods = os.path.join(self.install_tree, self.kver)
        distro = os.path.join('/lib/modules', self.kver)
        shutil.copytree(os.path.join(distro, 'kernel', 'drivers', 'virtio'),
                        os.path.join(mods, 'kernel', 'drivers', 'virtio'))
        for name in ('modules.order', 'modules.builtin',
                     'modules.builtin.modinfo'):
            if os.path.exists(os.path.join(distro, name)):
                shutil.copy(os.path.join(distro, name), mods)

    def dkms(self, *args):
        """Run dkms on the scratch trees; returns its output, fails the
        test (with the build log if there is one) if it fails."""
        cmd = ['dkms', *args, '--dkmstree', self.dkms_tree,
               '--sourcetree', self.source_tree,
               '--installtree', self.install_tree]
        env = dict(os.environ, TMPDIR=self.tmp,
                   mok_signing_key=os.path.join(self.top, 'mok.key'),
                   mok_certificate=os.path.join(self.top, 'mok.pub'))
        p = subprocess.run(cmd, capture_output=True, text=True, env=env,
                           timeout=DKMS_TIMEOUT)
        out = p.stdout + p.stderr
        if p.returncode:
            log = os.path.join(self.dkms_tree, PACKAGE, VERSION, 'build',
                               'make.log')
            if os.path.exists(log):
                with open(log) as f:
                    out += f'\n--- {log} (end) ---\n' + \
                        '\n'.join(f.read().splitlines()[-40:])
            pytest.fail(f'{" ".join(cmd)}: rc={p.returncode}\n{out}',
                        pytrace=False)
        return out

    def built_ko(self):
        """The module dkms built: compressed like the kernel's own (6.12:
        .ko.xz)."""
        ko = os.path.join(self.dkms_tree, PACKAGE, VERSION, self.kver,
                          ARCH, 'module', 'virtio_mem.ko')
        return ko + '.xz' if os.path.exists(ko + '.xz') else ko

    def status(self):
        return self.dkms('status', f'{PACKAGE}/{VERSION}')


def check_built_module(ko, k):
    """The module dkms built is ours, for Debian's kernel."""
    assert os.path.exists(ko), f'dkms left no module at {ko}'
    assert modinfo(ko, 'name') == 'virtio_mem'
    assert modinfo(ko, 'version') == VERSION
    assert modinfo(ko, 'vermagic').split()[0] == k
    # Our parameters, which Debian's module does not have.
    params = set(modinfo(ko, 'parm').split('\n'))
    ours = set(abi.source_parameters(abi.driver_sources()))
    assert {p.split(':')[0] for p in params} == ours, params
    ref = modinfo(vmtest.ref_ko(k), 'parm')
    assert 'offline_limit_mb' not in ref, \
        f"Debian's module has our parameters?\n{ref}"


def test_dkms_version_is_the_modules():
    """dkms.conf's version is the one the module reports: dkms leaves
    the kernel's own virtio_mem.ko (which has no version) in place when
    ours has none either."""
    with open(CORE) as f:
        m = re.findall(r'^MODULE_VERSION\("([^"]*)"\);', f.read(), re.M)
    assert m == [VERSION], \
        f'MODULE_VERSION in {CORE}: {m}; dkms.conf: {VERSION}'
    assert dkms_conf('PACKAGE_NAME') == PACKAGE


def checkout_files():
    """The files of a fresh checkout of this working tree (tracked and
    new ones, nothing ignored), relative to the repository."""
    p = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others',
                        '--exclude-standard'], cwd=REPO, capture_output=True,
                       check=True, timeout=60)
    return [f for f in p.stdout.decode().split('\0')
            if f and os.path.isfile(os.path.join(REPO, f))]


@pytest.mark.parametrize('series', ['6.1', '6.12'])
def test_dkms_add_build_from_checkout(tmp_path, series):
    """The README's steps from a checkout: dkms add . (a copy of this
    working tree without what git ignores: the tests' multi-GiB build
    directory stays out), dkms build, for a kernel of either series."""
    k = kver() if series == '6.1' else kver_612()
    trees = Trees(str(tmp_path), k)
    checkout = tmp_path / 'checkout'
    for f in checkout_files():
        os.makedirs(checkout / os.path.dirname(f), exist_ok=True)
        shutil.copy2(os.path.join(REPO, f), checkout / f)
    trees.dkms('add', str(checkout))
    src = os.path.join(trees.source_tree, f'{PACKAGE}-{VERSION}')
    assert os.path.exists(os.path.join(src, 'dkms.conf'))
    trees.dkms('build', f'{PACKAGE}/{VERSION}', '-k', k)
    check_built_module(trees.built_ko(), k)
    assert re.search(rf'^{PACKAGE}/{VERSION}, {re.escape(k)}, {ARCH}: built$',
                     trees.status(), re.M), trees.status()


@dataclasses.dataclass
class DistInstall:
    trees: Trees
    kver: str
    tarball: str
    members: list
    installed: str      # where dkms install put the module
    install_out: str


def host_state(k):
    """What a dkms run outside the scratch trees would change."""
    state = {}
    for path in ('/var/lib/dkms', '/usr/src', f'/lib/modules/{k}',
                 f'/lib/modules/{k}/updates'):
        if os.path.isdir(path):
            state[path] = (sorted(os.listdir(path)),
                           os.stat(path).st_mtime_ns)
    dep = f'/lib/modules/{k}/modules.dep'
    if os.path.exists(dep):
        state[dep] = os.stat(dep).st_mtime_ns
    return state


@pytest.fixture(scope='module')
def dist_install(tmp_path_factory):
    """make dist, unpack the tarball into the source tree as the README
    says (tar -C /usr/src), then a lone `dkms install` (adding and building
    first), and depmod on the scratch root."""
    k = kver()
    top = tmp_path_factory.mktemp('dkms-dist')
    before = host_state(k)
    trees = Trees(str(top), k)
    distdir = top / 'dist'
    p = subprocess.run(['make', 'dist', f'DISTDIR={distdir}'], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    tarball = distdir / f'{PACKAGE}-{VERSION}.tar.gz'
    assert os.listdir(distdir) == [tarball.name]
    with tarfile.open(tarball) as tar:
        members = tar.getnames()
        tar.extractall(trees.source_tree)
    out = trees.dkms('install', f'{PACKAGE}/{VERSION}', '-k', k,
                     '--no-depmod')
    p = subprocess.run(['depmod', '-b', trees.root, k], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    installed = modinfo('virtio_mem', 'filename', '-b', trees.root, '-k', k)
    assert host_state(k) == before, \
        'dkms changed /var/lib/dkms, /usr/src or /lib/modules on the host'
    return DistInstall(trees, k, str(tarball), members, installed, out)


def test_dist_tarball_holds_the_driver_sources(dist_install):
    top = f'{PACKAGE}-{VERSION}'
    members = dist_install.members
    outside = [m for m in members if m != top and
               not m.startswith(top + '/')]
    assert not outside, f'members outside {top}/: {outside}'
    files = {m[len(top) + 1:] for m in members if m.startswith(top + '/')}
    want = {'dkms.conf', 'Makefile', 'Kconfig', 'README.md',
            'include/uapi/linux/virtio_mem.h', 'drivers/virtio/Makefile',
            'drivers/virtio/.kunitconfig',
            os.path.relpath(abi.ATTR_DOC, REPO),
            os.path.relpath(abi.PARAM_DOC, REPO)}
    want |= {f'drivers/virtio/{n}' for n in os.listdir(abi.DRV)
             if re.fullmatch(r'virtio_mem\w*\.[ch]', n) and
             not n.endswith('.mod.c')}
    assert not want - files, f'missing from the tarball: {want - files}'
    built = [f for f in files if re.search(
        r'\.(o|ko|mod|mod\.c|cmd|order|symvers)$', f) or '/.build' in f]
    assert not built, f'build products in the tarball: {built}'


def test_dkms_install_from_dist_tarball(dist_install):
    """After dkms install, modprobe picks ours over Debian's module, which
    the same install tree holds in kernel/."""
    d = dist_install
    updates = os.path.join(d.trees.install_tree, d.kver, 'updates') + '/'
    assert d.installed.startswith(updates) and \
        d.installed.endswith('/virtio_mem.ko'), \
        f'modinfo -n virtio_mem: {d.installed}, want it below {updates}\n' \
        f'{d.install_out}'
    assert 'will not replace' not in d.install_out, d.install_out
    check_built_module(d.installed, d.kver)
    p = subprocess.run(['modprobe', '-d', d.trees.root, '-S', d.kver,
                        '--show-depends', 'virtio_mem'],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == f'insmod {d.installed}', \
        p.stdout
    assert re.search(rf'^{PACKAGE}/{VERSION}, {re.escape(d.kver)}, {ARCH}: '
                     r'installed', d.trees.status(), re.M), d.trees.status()


def test_dkms_module_in_guest(dist_install, make_guest, monkeypatch):
    """One guest on the module dkms installed: it is that module, it plugs
    1 GiB (QMP size and MemTotal follow), and its sysfs shows exactly the
    attributes and parameters of the ABI documents, the parameters at the
    source's defaults."""
    ko = dist_install.installed
    monkeypatch.setenv('VMEM_KO', ko)
    g = make_guest(devices=[MemDevice('vm0', size='4G')], module='ours',
                   online='online_movable')
    # /init insmodded /ours/virtio_mem.ko: the file dkms installed (dkms
    # strips and signs it: not the bytes of a plain make).
    with open(ko, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert g.check('sha256sum /ours/virtio_mem.ko').split()[0] == digest
    assert g.check('cat /sys/module/virtio_mem/version').strip() == VERSION
    assert g.check('cat /sys/module/virtio_mem/srcversion').strip() == \
        modinfo(ko, 'srcversion')
    plug_step(g, 'vm0', 1 * GiB, g.memtotal())

    virtio = g.vmem_sysfs('vm0').get('virtio')
    assert virtio, 'no virtio_mem/ attributes for vm0'
    attrs = g.check(f'ls /sys/bus/virtio/devices/{virtio}/virtio_mem/').split()
    docs = abi.documented(abi.ATTR_DOC, abi.ATTR_PREFIX)
    problems = abi.sync_problems(docs, attrs, 'sysfs attribute',
                                 'the guest')
    params = g.check('ls /sys/module/virtio_mem/parameters/').split()
    docs = abi.documented(abi.PARAM_DOC, abi.PARAM_PREFIX)
    problems += abi.sync_problems(docs, params, 'module parameter',
                                  'the guest')
    assert not problems, '\n'.join(problems)
    values = dict(line.split(':', 1) for line in g.check(
        'grep -H . /sys/module/virtio_mem/parameters/*').splitlines())
    declared = abi.source_parameters(abi.driver_sources())
    for name, info in declared.items():
        got = values[f'/sys/module/virtio_mem/parameters/{name}']
        assert got == info['default'], f'{name}: {got}, source default ' \
            f'{info["default"]}'
    g.assert_log_clean()


def test_dkms_builds_only_for_tested_series():
    """dkms builds only for the kernel series the suite tests (Debian
    12's 6.1 and 6.12): another kernel installed beside them must not get
    a build that fails, or worse, builds and misbehaves."""
    rx = re.compile(dkms_conf('BUILD_EXCLUSIVE_KERNEL'))
    for ok in ('6.1.0-57-amd64', '6.1.0-25-cloud-amd64', kver(),
               '6.12.117+deb12-amd64', '6.12.118+deb12-cloud-amd64',
               '6.12.48+deb13-amd64', kver_612()):
        assert rx.search(ok), f'dkms would not build for {ok}'
    for no in ('6.10.0-1-amd64', '6.2.0-1-amd64', '6.11.5-amd64',
               '6.19.1', '7.1.0-1-amd64', '5.10.0-30-amd64', '16.1.0',
               '6.120.1'):
        assert not rx.search(no), f'dkms would build for untested {no}'
