#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Boot Debian's kernel in QEMU (TCG) with virtio-mem devices and drive it.

Stdlib only. The guest runs a busybox initramfs whose /init serves a command
channel on a virtio-serial port (vmtest.cmd): a transport with flow control
both ways, so nothing is lost, and anything unexpected on it fails the test
that saw it. The first serial port (ttyS0) is the kernel console and goes to
a log file on the host; the second (ttyS1) is only there to wake a guest
from suspend to idle (Guest.wake()). QEMU itself is steered through QMP on a
unix socket.

Typical use::

    from vmtest import Guest, MemDevice, GiB
    with Guest(devices=[MemDevice('vm0', size='8G')], module='ours',
               online='online_movable') as g:
        g.set_requested('vm0', 1 * GiB)
        g.wait_until(lambda: g.plugged_size('vm0'),
                     cond=lambda s: s == GiB, what='vm0 plugged 1 GiB')
        print(g.memtotal())

Guest kernel command line knobs understood by /init (set by Guest):
  vmtest.online=POLICY   written to /sys/devices/system/memory/auto_online_blocks
                         before any virtio-mem module is loaded
  vmtest.load=ours|ref   insmod /ours/virtio_mem.ko or /ref/virtio_mem.ko
  vmtest.params=a=1,b=2  module parameters; commas become spaces, so values
                         cannot contain commas or spaces

Environment:
  VMTEST_KVER   kernel version to boot (default: linux-image-amd64's dependency)
  VMEM_KO       our module (default <repo>/drivers/virtio/virtio_mem.ko)
  VMTEST_QEMU   QEMU binary (default qemu-system-x86_64)
  VMTEST_ACCEL  QEMU -accel value (default tcg; run-tests.sh sets
                tcg,thread=single)
"""

import atexit
import contextlib
import ctypes
import dataclasses
import fcntl
import glob
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import weakref

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '..', '..', '..'))
BUILD_DIR = os.path.join(HERE, '.build')
LOG_DIR = os.path.join(BUILD_DIR, 'logs')

# Transport modules needed before any virtio device shows up, and the
# command channel's (virtio-serial); the load order is derived from
# `modinfo -F depends` at build time.
TRANSPORT_MODULES = ['virtio_pci', 'virtio_console']
# Modules a test may load by hand (insmod /extra/NAME.ko), with what they
# need beyond the transport: a balloon beside virtio-mem, as libvirt adds.
EXTRA_MODULES = ['virtio_balloon']

READY = '@@VMTEST-READY'
# What the guest's command loop says after a command's output (see serve()
# in the init script): its sequence number, exit code and output length.
END_RE = re.compile(rb'\n@@VMTEST-END (\S+) (-?\d+) (\d+)@@\n')
# The virtio-serial port of the command channel.
CMD_PORT = 'vmtest.cmd'

# Kernel log patterns that mean something went wrong in the guest.
BAD_LOG_PATTERNS = [
    'WARNING:', 'BUG:', 'Oops', 'Call Trace', 'general protection',
    'possible circular locking', 'INFO: task', 'lockdep',
    '[Kk]ernel panic', 'UBSAN:', 'KASAN:', 'Unable to handle',
]
BAD_LOG_RE = re.compile('|'.join(BAD_LOG_PATTERNS))
# Lines that match a bad pattern but are not a problem: the boot banner of
# a lockdep kernel (make kernel), the kernel command line echoed at boot.
BENIGN_LOG_RE = re.compile(r'RCU lockdep checking is enabled|'
                           r'^(Kernel )?[Cc]ommand line: ')
PANIC_RE = re.compile(rb'[Kk]ernel panic')

VIRTIO_MEM_DRV = '/sys/bus/virtio/drivers/virtio_mem'

# How many vmtest QEMUs may run at once on this machine (VMTEST_QEMUS,
# default 1; make check runs two: on 2 cores much of a TCG guest's time is
# waiting). Each takes a slot lock. Waiting is bounded
# (VMTEST_LOCK_TIMEOUT seconds): a stuck holder fails the waiting test
# with its name instead of hanging it.
LOCK_FILE = '/tmp/vmtest-qemu.lock'
QEMU_SLOTS = max(1, int(os.environ.get('VMTEST_QEMUS', '1')))
LOCK_TIMEOUT = float(os.environ.get('VMTEST_LOCK_TIMEOUT', '3600'))

# Host tmpfs for MemDevice(backend='file').
SHM_DIR = '/dev/shm'

# kexec-tools, put into the initramfs with its libraries for crash kernels.
KEXEC = '/usr/sbin/kexec'
# Usual crash kernel options (besides the console and the vmtest knobs).
KDUMP_CMDLINE = 'irqpoll reset_devices'


# Boot work a test guest has no use for, about a second of each ~4 s boot
# under TCG: the crypto self-tests (cryptomgr's, and kdf108's, which runs
# its own), kprobe events' tracefs setup, IPv6. Names a kernel lacks (the
# test kernel has none of these) are ignored.
FAST_BOOT = ('cryptomgr.notests ipv6.disable=1 '
             'initcall_blacklist=crypto_kdf108_init,init_kprobe_trace')


class GuestError(Exception):
    """Something went wrong with the guest; the message carries context."""


class GuestDied(GuestError):
    """QEMU exited (guest panic with -no-reboot, or a crash)."""


class QMPError(GuestError):
    """QMP returned an error object."""


def parse_size(s):
    """'1G', '512M', '4096', 4096 -> bytes (binary units)."""
    if s is None:
        return None
    if isinstance(s, int):
        return s
    m = re.fullmatch(r'\s*(\d+)\s*([KMGT]?)i?B?\s*', str(s), re.I)
    if not m:
        raise ValueError(f'bad size {s!r}')
    shift = {'': 0, 'K': 10, 'M': 20, 'G': 30, 'T': 40}[m.group(2).upper()]
    return int(m.group(1)) << shift


def fmt_size(n):
    """Bytes -> short human form, exact when possible ('4G+6M' style)."""
    if n is None:
        return 'None'
    parts = []
    for unit, shift in (('G', 30), ('M', 20), ('K', 10)):
        if n >= (1 << shift):
            parts.append(f'{n >> shift}{unit}')
            n &= (1 << shift) - 1
    if n or not parts:
        parts.append(f'{n}')
    return '+'.join(parts)


def kernel_version():
    """Version of Debian's kernel (not the host's running one)."""
    kver = os.environ.get('VMTEST_KVER')
    if kver is not None:
        if not re.fullmatch(r'\d\S*', kver):
            # Set but empty: a caller that read it before it was known.
            raise GuestError(f'VMTEST_KVER={kver!r} is not a kernel version')
        return kver
    try:
        dep = subprocess.run(
            ['dpkg-query', '-W', '-f=${Depends}', 'linux-image-amd64'],
            check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise GuestError('cannot find the Debian kernel: is linux-image-amd64 '
                         'installed? (run deps.sh or set VMTEST_KVER)') from e
    m = re.search(r'linux-image-(\d\S*?)(?:\s|,|$)', dep)
    if not m:
        raise GuestError(f'cannot parse linux-image-amd64 Depends: {dep!r}')
    return m.group(1)


def ours_ko():
    return os.environ.get('VMEM_KO',
                          os.path.join(REPO, 'drivers/virtio/virtio_mem.ko'))


def ours_fi_ko():
    """Our module built with fault injection (make module-fi): the one
    tests load as 'ours-fi' to reach error paths QEMU cannot."""
    return os.environ.get('VMEM_FI_KO', os.path.join(
        BUILD_DIR, 'fault-injection', 'drivers', 'virtio', 'virtio_mem.ko'))


def ref_ko(kver=None):
    """Debian's virtio_mem module for kver: .ko on 6.1, .ko.xz on 6.12."""
    kver = kver or kernel_version()
    base = f'/lib/modules/{kver}/kernel/drivers/virtio/virtio_mem.ko'
    return base + '.xz' if os.path.exists(base + '.xz') else base


# ---------------------------------------------------------------------------
# initramfs

INIT_SCRIPT = r'''#!/bin/sh
# vmtest /init: generated by tools/testing/virtio-mem/vmtest.py
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
# For workloads (memfill). Sized for memory plugged later, not for the
# boot memory that tmpfs' default (half of RAM at mount time) would use.
mkdir -p /dev/shm
mount -t tmpfs -o size=64g tmpfs /dev/shm
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null

for m in @TRANSPORT@; do
	insmod /modules/$m.ko || echo "vmtest: insmod $m failed"
done

arg() {
	# Value of vmtest.$1= on the kernel command line (empty if absent).
	for a in $(cat /proc/cmdline); do
		case "$a" in "vmtest.$1="*) echo "${a#*=}"; return;; esac
	done
}

online=$(arg online)
if [ -n "$online" ]; then
	echo "$online" > /sys/devices/system/memory/auto_online_blocks ||
		echo "vmtest: cannot set auto_online_blocks=$online"
fi

load_rc=-
load=$(arg load)
if [ -n "$load" ]; then
	params=$(arg params | tr ',' ' ')
	echo "vmtest: insmod /$load/virtio_mem.ko $params"
	insmod /$load/virtio_mem.ko $params
	load_rc=$?
	echo "vmtest: insmod rc=$load_rc"
fi

# Command channel: a virtio-serial port, one command per line as "<seq>
# <shell command>". The reply is the command's output, then "@@VMTEST-END
# <seq> <rc> <output length>@@" on a line of its own (the newline before it
# is always added, so the host gets the output back byte for byte).
# Commands do not inherit the channel.
cmd_port() {
	for p in /sys/class/virtio-ports/*; do
		if [ "$(cat $p/name 2>/dev/null)" = @CMD_PORT@ ]; then
			echo /dev/${p##*/}
			return
		fi
	done
}

serve() {
	port=$(cmd_port)
	[ -c "$port" ] || return
	exec 3<>$port
	echo "@@VMTEST-READY load_rc=$load_rc@@" >&3
	while IFS= read -r line <&3; do
		seq=${line%% *}
		sh -c "${line#* }" </dev/null >/tmp/.vmtest-out 2>&1 3>&-
		rc=$?
		len=$(wc -c </tmp/.vmtest-out)
		{ cat /tmp/.vmtest-out
		  printf '\n@@VMTEST-END %s %d %d@@\n' "$seq" "$rc" "$len"; } >&3
	done
}

# ttyS1 only wakes the guest from s2idle (input there is a wakeup event
# once enabled): it needs a reader for its interrupt to be on.
(while :; do cat /dev/ttyS1 >/dev/null 2>&1; sleep 1; done) &

# PID 1 must never exit (that would panic the kernel).
while true; do
	serve
	sleep 1
done
'''


class _Cpio:
    """Minimal writer for the 'newc' cpio format the kernel unpacks."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.ino = 1
        self.names = set()

    def _entry(self, name, mode, data=b''):
        if name in self.names:
            return
        self.names.add(name)
        nameb = name.encode() + b'\0'
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                  len(nameb), 0]
        self.ino += 1
        hdr = b'070701' + b''.join(b'%08X' % f for f in fields)
        self.buf.write(hdr + nameb)
        self.buf.write(b'\0' * (-(len(hdr) + len(nameb)) % 4))
        self.buf.write(data)
        self.buf.write(b'\0' * (-len(data) % 4))

    def dir(self, name):
        parts = [p for p in name.split('/') if p]
        for i in range(1, len(parts) + 1):
            self._entry('/'.join(parts[:i]), 0o040755)

    def file(self, name, data, mode=0o644):
        self.dir(os.path.dirname(name))
        self._entry(name, 0o100000 | mode, data)

    def symlink(self, name, target):
        self.dir(os.path.dirname(name))
        self._entry(name, 0o120777, target.encode())

    def finish(self):
        self._entry('TRAILER!!!', 0)
        return self.buf.getvalue()


def pvh_vmlinux(image, build_dir=BUILD_DIR):
    """The vmlinux a compressed kernel image (bzImage) holds, unpacked on
    the host once (cached by the image's hash); its path.

    QEMU boots such an ELF kernel through its PVH entry point
    (CONFIG_PVH, which Debian's kernels have), the same kernel code
    without the real-mode setup and the decompressor: under TCG the
    decompressor alone takes about 3 of a Debian guest's 7 s of boot.
    """
    with open(image, 'rb') as f:
        data = f.read()
    digest = hashlib.sha256(data).hexdigest()[:16]
    out = os.path.join(build_dir, f'vmlinux-{digest}')
    if os.path.exists(out):
        return out
    # The boot protocol's header says where the compressed payload is:
    # after the setup sectors, at payload_offset, payload_length long.
    setup_sects = data[0x1f1] or 4
    off, length = struct.unpack_from('<II', data, 0x248)
    payload = data[(setup_sects + 1) * 512 + off:][:length]
    if payload.startswith(b'\xfd7zXZ\x00'):       # Debian's 6.1
        vmlinux = lzma.LZMADecompressor().decompress(payload)
    elif payload.startswith(b'\x28\xb5\x2f\xfd'):  # Debian's 6.12
        # Followed by the 4-byte uncompressed size the decompressor reads.
        p = subprocess.run(['zstd', '-dc'], input=payload[:-4],
                           capture_output=True)
        if p.returncode:
            raise GuestError(f'{image}: zstd -d failed (deps.sh installs '
                             f'zstd): {p.stderr.decode(errors="replace")}')
        vmlinux = p.stdout
    else:
        raise GuestError(f'{image}: no xz or zstd-compressed kernel in it')
    if not vmlinux.startswith(b'\x7fELF'):
        raise GuestError(f'{image}: what it holds is not an ELF vmlinux')
    os.makedirs(build_dir, exist_ok=True)
    tmp = out + f'.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        f.write(vmlinux)
    os.replace(tmp, out)
    _prune(build_dir, 'vmlinux-*', keep=2)
    return out


def _modinfo(kver, field, name):
    return subprocess.run(['modinfo', '-k', kver, '-F', field, name],
                          check=True, capture_output=True, text=True
                          ).stdout.strip()


def transport_modules(kver, names=None):
    """[(name, path)] of the virtio transport modules (or of `names`) and
    what they depend on, in load order."""
    order = []

    def visit(name):
        if name in (n for n, _ in order):
            return
        deps = _modinfo(kver, 'depends', name)
        for d in filter(None, deps.split(',')):
            visit(d)
        path = subprocess.run(['modinfo', '-k', kver, '-n', name],
                              check=True, capture_output=True, text=True
                              ).stdout.strip()
        # 6.12 builds virtio_pci and virtio_console in.
        if path != '(builtin)':
            order.append((name, path))

    for m in TRANSPORT_MODULES if names is None else names:
        visit(m)
    return order


def _read_ko(path):
    # busybox insmod cannot decompress; Debian 12 ships plain .ko anyway.
    if path.endswith('.xz'):
        with lzma.open(path) as f:
            return f.read()
    if not path.endswith('.ko'):
        raise GuestError(f'unsupported module format: {path}')
    with open(path, 'rb') as f:
        return f.read()


GUEST_SRC = os.path.join(HERE, 'guest')
# Guest programs: C sources in guest/, built static on the host.
GUEST_PROGRAMS = ['memfill']


def build_guest_program(name, build_dir=BUILD_DIR):
    """Compile guest/<name>.c statically; cached by a hash of the source."""
    src = os.path.join(GUEST_SRC, f'{name}.c')
    with open(src, 'rb') as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    out = os.path.join(build_dir, f'{name}-{digest}')
    if os.path.exists(out):
        return out
    os.makedirs(build_dir, exist_ok=True)
    tmp = out + f'.tmp{os.getpid()}'
    p = subprocess.run(['gcc', '-static', '-O2', '-Wall', '-o', tmp, src],
                       capture_output=True, text=True)
    if p.returncode:
        raise GuestError(f'building {src} failed (gcc -static needs '
                         f'libc6-dev):\n{p.stdout}{p.stderr}')
    os.replace(tmp, out)
    _prune(build_dir, f'{name}-*', keep=2)
    return out


def build_initramfs(kver=None, ko=None, build_dir=BUILD_DIR, modules=True,
                    crash_kernel=None, crash=False):
    """Build (or reuse) the initramfs; returns its path.

    Cached by a hash of everything that goes into it, so a rebuilt
    virtio_mem.ko gives a new image and an unchanged one costs a few reads.
    modules=False leaves out every module (for a kernel with virtio and
    virtio_mem built in): busybox and the guest programs only.
    crash_kernel (a kernel image) adds what loading a crash kernel takes:
    the image as /boot/vmlinuz, a crash initramfs (crash=True) as
    /boot/crash-initrd.gz, and kexec with its libraries.
    crash=True builds that crash initramfs: the same /init and modules, no
    guest programs, to keep it small in the crash kernel's reserved memory.
    """
    busybox = '/bin/busybox'
    mods = []
    files = {'bin/busybox': (open(busybox, 'rb').read(), 0o755)}
    if modules:
        kver = kver or kernel_version()
        ko = ko or ours_ko()
        mods = transport_modules(kver)
        for name, path in mods:
            files[f'modules/{name}.ko'] = (_read_ko(path), 0o644)
        files['ref/virtio_mem.ko'] = (_read_ko(ref_ko(kver)), 0o644)
        loaded = {n for n, _ in mods}
        for name, path in transport_modules(kver, EXTRA_MODULES):
            if name not in loaded:
                files[f'extra/{name}.ko'] = (_read_ko(path), 0o644)
        if os.path.exists(ko):
            files['ours/virtio_mem.ko'] = (_read_ko(ko), 0o644)
        if os.path.exists(ours_fi_ko()):
            files['ours-fi/virtio_mem.ko'] = (_read_ko(ours_fi_ko()), 0o644)
    for prog in [] if crash else GUEST_PROGRAMS:
        with open(build_guest_program(prog, build_dir), 'rb') as f:
            files[f'bin/{prog}'] = (f.read(), 0o755)
    if crash_kernel:
        initrd = build_initramfs(kver, ko, build_dir, modules, crash=True)
        for name, path in (('boot/vmlinuz', crash_kernel),
                           ('boot/crash-initrd.gz', initrd)):
            with open(path, 'rb') as f:
                files[name] = (f.read(), 0o644)
        files.update(_kexec_files())
    init = INIT_SCRIPT.replace('@TRANSPORT@', ' '.join(n for n, _ in mods))
    init = init.replace('@CMD_PORT@', CMD_PORT)
    files['init'] = (init.encode(), 0o755)

    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b'\0' + hashlib.sha256(
            files[name][0]).digest())
    # Kinds apart, so that big kdump images do not push the plain ones out.
    kind = 'kdump-initramfs' if crash_kernel else \
        'crash-initramfs' if crash else 'initramfs'
    out = os.path.join(build_dir, f'{kind}-{h.hexdigest()[:16]}.cpio.gz')
    if os.path.exists(out):
        # Newest again: _prune() by another vmtest user (other modules,
        # other images) must not delete the image about to boot.
        with contextlib.suppress(FileNotFoundError):
            os.utime(out)
            return out

    applets = subprocess.run([busybox, '--list-full'], check=True,
                             capture_output=True, text=True).stdout.split()
    cpio = _Cpio()
    for d in ('dev', 'proc', 'sys', 'tmp', 'bin', 'sbin', 'usr/bin',
              'usr/sbin', 'etc'):
        cpio.dir(d)
    for name, (data, mode) in sorted(files.items()):
        cpio.file(name, data, mode)
    for a in applets:
        if a != 'bin/busybox':
            cpio.symlink(a, '/bin/busybox')
    os.makedirs(build_dir, exist_ok=True)
    tmp = out + f'.tmp{os.getpid()}'
    with open(tmp, 'wb') as f:
        # mtime=0: identical input gives an identical image.
        f.write(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    os.replace(tmp, out)
    _prune(build_dir, f'{kind}-*.cpio.gz',
           keep=4 if kind == 'initramfs' else 2)
    return out


def _kexec_files():
    """kexec and the shared libraries ldd lists for it, as initramfs files
    {name: (data, mode)} at their host paths."""
    if not os.path.exists(KEXEC):
        raise GuestError(f'{KEXEC} missing: install kexec-tools (deps.sh)')
    out = subprocess.run(['ldd', KEXEC], check=True, capture_output=True,
                         text=True).stdout
    files = {}
    # "libc.so.6 => /lib/.../libc.so.6 (0x...)", "/lib64/ld-linux... (0x...)"
    for path in [KEXEC] + re.findall(r'(/\S+) \(0x', out):
        with open(path, 'rb') as f:     # follows symlinks: a plain copy
            files[path.lstrip('/')] = (f.read(), 0o755)
    return files


def _prune(build_dir, pattern, keep):
    """Delete all but the `keep` newest files matching pattern.

    QEMU reads the initrd at startup, so deleting one in use is harmless.
    Temporary files (NAME.tmpPID) are another worker's build in progress:
    they are left alone.
    """
    files = sorted((f for f in glob.glob(os.path.join(build_dir, pattern))
                    if not re.search(r'\.tmp\d+$', f)),
                   key=os.path.getmtime, reverse=True)
    for f in files[keep:]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(f)


# ---------------------------------------------------------------------------
# the guest

@dataclasses.dataclass
class MemDevice:
    """One virtio-mem-pci device and its memory backend."""
    id: str = 'vm0'
    size: object = '8G'            # backend size = device region size
    requested: object = 0          # initial requested-size
    block_size: object = None      # None: QEMU default (2 MiB on x86-64)
    node: int = None
    unplugged_inaccessible: str = None   # 'on', 'off' or None (QEMU default)
    backend: str = 'ram'           # memory-backend-<backend> ('file': below)
    # Backend 'file': the backing file on host tmpfs (SHM_DIR), shared with
    # the guest; created when QEMU starts, removed when it stops.
    # host_allocated() says how much of it the host backs.
    host_file: str = None
    # False: no swap space reserved for the backend (reserve=off), so that
    # a device larger than the host's memory can start; only what the
    # guest touches is backed.
    reserve: bool = True

    def qemu_args(self):
        mem = f'mem-{self.id}'
        dev = [f'virtio-mem-pci,id={self.id},memdev={mem}',
               f'requested-size={parse_size(self.requested)}']
        if self.block_size is not None:
            dev.append(f'block-size={parse_size(self.block_size)}')
        if self.node is not None:
            dev.append(f'node={self.node}')
        if self.unplugged_inaccessible is not None:
            dev.append(f'unplugged-inaccessible={self.unplugged_inaccessible}')
        obj = f'memory-backend-{self.backend},id={mem},' \
              f'size={parse_size(self.size)}'
        if self.backend == 'file':
            if self.host_file is None:
                fd, self.host_file = tempfile.mkstemp(
                    prefix=f'vmtest-{self.id}-', suffix='.mem', dir=SHM_DIR)
                os.close(fd)
            # Shared: a guest read of a page never written allocates it in
            # the file, where a private mapping would map the zero page.
            obj += f',mem-path={self.host_file},share=on'
        if not self.reserve:
            obj += ',reserve=off'
        return ['-object', obj, '-device', ','.join(dev)]

    def host_allocated(self):
        """Bytes of host memory the 'file' backend holds: every page the
        guest read or wrote and that was not discarded (unplugged) since."""
        return os.stat(self.host_file).st_blocks * 512

    def remove_host_file(self):
        if self.host_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.host_file)
            self.host_file = None


# Guests whose QEMU may still run: stopped at exit (pytest ending on ^C or
# SIGTERM, an uncaught exception), besides PR_SET_PDEATHSIG below.
_running = weakref.WeakSet()
_PR_SET_PDEATHSIG = 1


@atexit.register
def _stop_running_guests():
    for g in list(_running):
        with contextlib.suppress(Exception):
            g.stop()


def _die_with_parent(prctl, parent):
    """preexec_fn of QEMU: the kernel kills it (SIGKILL) when the thread
    that started it exits, however this process dies."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:      # died before prctl()
        os._exit(1)


class Guest:
    """A QEMU/TCG guest running Debian's kernel and our initramfs.

    mem, maxmem   boot memory and the top of the device-memory area
    slots         DIMM slots (None: not given; virtio-mem needs none)
    devices       MemDevice objects or dicts of MemDevice fields
    numa          boot memory per NUMA node, e.g. ['512M', '512M'] (must
                  add up to mem; 0 makes a memory-less node); all CPUs
                  go to node 0
    smp, cmdline  vCPUs, extra kernel command line
    module        'ours', 'ours-fi' (ours with fault injection), 'ref' or
                  None: virtio_mem.ko insmodded by /init
    params        its parameters, 'a=1,b=2' or a dict
    online        auto_online_blocks policy set before the module loads,
                  e.g. 'online_movable'; None: offline on Debian's kernels
                  (6.12's default is to online), the default of a built-in
                  kernel
    name          base name of the logs in log_dir
    check_load    make start() fail if the boot-time insmod failed
    reboot        let the guest reboot (system_reset()) instead of making
                  QEMU exit on a reset; a kernel panic (panic=-1 reboots)
                  is then caught in the console log
    kernel        boot this bzImage (virtio and virtio_mem built in, see
                  make kernel) instead of Debian's kernel; the initramfs
                  then holds no modules, and module must be None
    pvh           boot Debian's kernel through its PVH entry point (the
                  default: 3 s faster under TCG), else as a bzImage; a
                  guest woken from S3 needs the latter: the firmware's
                  resume path does not return to a PVH-booted kernel
    qemu_args     more QEMU arguments, e.g. ['-device',
                  'virtio-balloon-pci,id=balloon0'] (load its driver with
                  insmod /extra/virtio_balloon.ko)
    kdump         put a crash kernel (the booted one) into the initramfs,
                  for load_crash_kernel() and crash(); boot with
                  cmdline='crashkernel=256M' to reserve memory for it
    """

    def __init__(self, mem='1G', maxmem='32G', slots=None, devices=(),
                 numa=None, smp=2, cmdline='', module='ours', params='',
                 online=None, name='guest', log_dir=LOG_DIR,
                 boot_timeout=300, check_load=True, kver=None,
                 reboot=False, kernel=None, kdump=False, qemu_args=(),
                 pvh=True):
        if kernel and module:
            raise ValueError('a built-in kernel takes no module')
        self.kernel = kernel
        self.kver = None if kernel else (kver or kernel_version())
        self.devices = [d if isinstance(d, MemDevice) else MemDevice(**d)
                        for d in devices]
        self.numa = [parse_size(n) for n in numa] if numa else None
        self.mem = parse_size(mem)
        if self.numa and sum(self.numa) != self.mem:
            raise ValueError(f'numa node sizes {numa} do not add up to {mem}')
        self.maxmem = parse_size(maxmem)
        self.slots = slots
        self.smp = smp
        self.cmdline = cmdline
        self.module = module
        self.params = params
        self.online = online
        self.name = re.sub(r'[^\w.-]+', '_', name)[:120]
        self.log_dir = log_dir
        self.boot_timeout = boot_timeout
        self.check_load = check_load
        self.reboot = reboot
        self.kdump = kdump
        self.qemu_args = list(qemu_args)
        self.pvh = pvh

        self.proc = None
        self.boot_time = None
        self.boots = 0            # completed boots, reboots included
        self.load_rc = None
        self._panic_scan = 0      # console log offset scanned for panics
        self.events = []          # async QMP events, in arrival order
        self.timings = []         # (what, seconds): free for tests to fill
        self._tmp = None
        self._locks = []
        self._cmd = None
        self._wake = None
        self._cmd_buf = b''
        self._qmp = None
        self._qmp_buf = b''
        self._seq = 0
        self._block_size = None
        os.makedirs(self.log_dir, exist_ok=True)
        self.console_path = os.path.join(self.log_dir, f'{self.name}.console.log')
        self.qemu_log_path = os.path.join(self.log_dir, f'{self.name}.qemu.log')

    # -- lifecycle ----------------------------------------------------------

    def online_policy(self):
        """What /init writes to auto_online_blocks: `online`, else, on
        Debian's kernels, offline: 6.1's default, while 6.12 is built to
        online added memory (MHP_DEFAULT_ONLINE_TYPE_ONLINE_AUTO). A
        built-in kernel keeps its own default (memhp_default_state=)."""
        if self.online or self.kernel:
            return self.online
        return 'offline'

    def kernel_cmdline(self):
        # sysrq from the harness (dump_stuck()) whatever kernel.sysrq says.
        args = ['console=ttyS0', 'panic=-1', 'sysrq_always_enabled',
                FAST_BOOT]
        online = self.online_policy()
        if online:
            args.append(f'vmtest.online={online}')
        if self.module:
            args.append(f'vmtest.load={self.module}')
            if self.params:
                p = self.params
                if isinstance(p, dict):
                    p = ','.join(f'{k}={v}' for k, v in p.items())
                if ' ' in p:
                    raise ValueError('module params: separate with commas')
                args.append(f'vmtest.params={p}')
        if self.cmdline:
            args.append(self.cmdline)
        return ' '.join(args)

    def _kernel_image(self):
        return self.kernel or f'/boot/vmlinuz-{self.kver}'

    def _boot_image(self):
        """What QEMU boots: the kernel image, or for Debian's kernel the
        vmlinux inside it, through its PVH entry point (pvh_vmlinux())."""
        if self.kernel or not self.pvh:
            return self._kernel_image()
        return pvh_vmlinux(self._kernel_image())

    def qemu_cmd(self, initramfs):
        qemu = os.environ.get('VMTEST_QEMU', 'qemu-system-x86_64')
        accel = os.environ.get('VMTEST_ACCEL', 'tcg')
        cmd = [qemu, '-machine', 'q35', '-accel', accel, '-smp', str(self.smp),
               # -m reads plain numbers as MiB: give explicit units.
               '-m', f'{self.mem // KiB}K,maxmem={self.maxmem // KiB}K'
               + (f',slots={self.slots}' if self.slots else ''),
               '-nodefaults', '-no-user-config', '-display', 'none',
               '-kernel', self._boot_image(),
               '-initrd', initramfs,
               '-append', self.kernel_cmdline(),
               '-serial', f'file:{self.console_path}',
               '-chardev', f'socket,id=wake,path={self._tmp}/wake.sock,'
               'server=on,wait=off',
               '-serial', 'chardev:wake',
               '-device', 'virtio-serial-pci,id=vser0',
               '-chardev', f'socket,id=cmd,path={self._tmp}/cmd.sock,'
               'server=on,wait=off',
               '-device', f'virtserialport,bus=vser0.0,chardev=cmd,'
               f'name={CMD_PORT}',
               '-qmp', f'unix:{self._tmp}/qmp.sock,server=on,wait=off']
        if not self.reboot:
            # A guest reset (panic=-1 after a panic) makes QEMU exit.
            cmd.append('-no-reboot')
        if self.numa:
            for i, size in enumerate(self.numa):
                node = f'node,nodeid={i}'
                if size:     # size 0: a memory-less node (virtio-mem only)
                    cmd += ['-object',
                            f'memory-backend-ram,id=node{i},size={size}']
                    node += f',memdev=node{i}'
                if i == 0:
                    # All CPUs on node 0; QEMU warns otherwise.
                    node += f',cpus=0-{self.smp - 1}'
                cmd += ['-numa', node]
        for d in self.devices:
            cmd += d.qemu_args()
        return cmd + self.qemu_args

    def _take_lock(self):
        """A slot among QEMU_SLOTS. Not 'w' opens: that would wipe a
        holder's name."""
        deadline = time.monotonic() + LOCK_TIMEOUT
        waiting = False
        while True:
            for i in range(QEMU_SLOTS):
                path = LOCK_FILE if i == 0 else f'{LOCK_FILE}.{i}'
                f = open(path, 'a+')
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.seek(0)
                    holder = f.read().strip() or 'unknown'
                    f.close()
                    continue
                f.truncate(0)
                f.write(f'{os.getpid()} {self.name}\n')
                f.flush()
                self._locks = [f]
                return
            if time.monotonic() > deadline:
                raise GuestError(f'no free vmtest QEMU slot after '
                                 f'{LOCK_TIMEOUT:.0f}s (VMTEST_LOCK_TIMEOUT);'
                                 f' one is held by pid/guest {holder}')
            if not waiting:
                print(f'vmtest: {self.name}: waiting for another vmtest '
                      f'QEMU to finish (pid/guest {holder})...',
                      file=sys.stderr)
                waiting = True
            time.sleep(0.2)

    def start(self):
        """Boot and wait until the command channel answers."""
        initramfs = build_initramfs(
            self.kver, modules=not self.kernel,
            crash_kernel=self._kernel_image() if self.kdump else None)
        if self.module == 'ours' and not os.path.exists(ours_ko()):
            raise GuestError(f'our module {ours_ko()} does not exist: '
                             'build it first (make)')
        if self.module == 'ours-fi' and not os.path.exists(ours_fi_ko()):
            raise GuestError(f'our module with fault injection '
                             f'{ours_fi_ko()} does not exist: build it '
                             'first (make module-fi)')
        self._take_lock()
        # Unix socket paths are limited to 108 bytes: keep them in /tmp.
        self._tmp = tempfile.mkdtemp(prefix='vmtest-')
        for p in (self.console_path, self.qemu_log_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(p)
        try:
            with open(self.qemu_log_path, 'w') as qlog:
                self.cmd = self.qemu_cmd(initramfs)
                qlog.write(' '.join(self.cmd) + '\n')
                qlog.flush()
                t0 = time.monotonic()
                prctl = ctypes.CDLL(None, use_errno=True).prctl
                parent = os.getpid()
                self.proc = subprocess.Popen(
                    self.cmd, stdin=subprocess.DEVNULL, stdout=qlog,
                    stderr=qlog,
                    preexec_fn=lambda: _die_with_parent(prctl, parent))
                _running.add(self)
            self._cmd = self._connect('cmd.sock')
            self._wake = self._connect('wake.sock')
            self._qmp = self._connect('qmp.sock')
            self._qmp_handshake()
            self._wait_ready(t0, 'boot')
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, t0, what):
        line = self._read_until(
            lambda b: b.find(READY.encode()), self.boot_timeout, what)
        self.boot_time = time.monotonic() - t0
        self.boots += 1
        m = re.search(r'load_rc=(\S+)@@', line)
        rc = m.group(1) if m else '-'
        self.load_rc = None if rc == '-' else int(rc)
        if self.check_load and self.module:
            self._check_bound()

    def system_reset(self):
        """Reset the machine over QMP and wait for the guest to boot again.

        Needs reboot=True. Returns the console log position where the new
        boot starts (for assert_log_clean(since=...)).
        """
        if not self.reboot:
            raise GuestError('system_reset() needs Guest(reboot=True): '
                             'QEMU runs with -no-reboot')
        mark = self.log_mark()
        # Whatever the old boot still sends precedes the new READY line.
        self._cmd_buf = b''
        t0 = time.monotonic()
        self.qmp('system_reset')
        self._wait_ready(t0, 'the guest to boot again after system_reset')
        return mark

    def load_crash_kernel(self, cmdline='', cpus=1):
        """Load the crash kernel of a Guest(kdump=True) with kexec -s -p.

        kexec_file_load builds the dump's memory map now, from the memory
        Linux has at this moment: load it after plugging. The crash
        kernel's command line has the console, KDUMP_CMDLINE, nr_cpus=cpus
        (usually 1), vmtest.online and `cmdline`, but no vmtest.load: its
        /init loads no virtio_mem module. Returns that command line.
        """
        if not self.kdump:
            raise GuestError('load_crash_kernel() needs Guest(kdump=True)')
        if not int(self.check('cat /sys/kernel/kexec_crash_size')):
            raise GuestError('no memory reserved for a crash kernel: boot '
                             "with cmdline='crashkernel=256M'")
        args = ['console=ttyS0', 'panic=-1', KDUMP_CMDLINE, FAST_BOOT,
                f'nr_cpus={cpus}']
        online = self.online_policy()
        if online:
            args.append(f'vmtest.online={online}')
        if cmdline:
            args.append(cmdline)
        append = ' '.join(args)
        if "'" in append:
            raise ValueError('crash kernel command line: no quotes')
        self.check('kexec -s -p /boot/vmlinuz --initrd=/boot/crash-initrd.gz '
                   f"--append='{append}'")
        if self.check('cat /sys/kernel/kexec_crash_loaded').strip() != '1':
            raise GuestError('kexec -p succeeded but no crash kernel is '
                             'loaded')
        return append

    def crash(self, timeout=600):
        """Crash the guest kernel (sysrq c) and wait until the crash
        kernel's /init answers on the command channel.

        Needs load_crash_kernel() first: the panic then boots the crash
        kernel instead of ending QEMU (about a minute under TCG). The panic
        is expected here, so it is no failure; it precedes the returned
        console log position, where the crash kernel's boot starts (for
        assert_log_clean(since=...)).
        """
        if self.reboot:
            raise GuestError('crash() needs Guest(reboot=False): with '
                             'reboot=True a panic is a failure')
        if self.check('cat /sys/kernel/kexec_crash_loaded').strip() != '1':
            raise GuestError('no crash kernel loaded: load_crash_kernel()')
        mark = self.log_mark()
        # Whatever the old kernel still sends precedes the new READY line.
        self._cmd_buf = b''
        self._seq += 1
        # Sent without waiting for a reply: the kernel panics meanwhile.
        self._send_line(f'{self._seq}.crash echo c > /proc/sysrq-trigger')
        line = self._read_until(lambda b: b.find(READY.encode()), timeout,
                                'the crash kernel to boot after sysrq-c')
        self.boots += 1
        m = re.search(r'load_rc=(\S+)@@', line)
        self.load_rc = None if not m or m.group(1) == '-' \
            else int(m.group(1))
        log = self.console_log()
        start = log.find('Linux version', mark)
        if start < 0:
            raise GuestError('the crash kernel answers, but its boot is not '
                             f'in the console log\n{self._tail()}')
        return log.rfind('\n', 0, start) + 1

    def _check_bound(self):
        # Fail fast (instead of in some later wait_until) when the module
        # did not load or did not bind to every virtio-mem device.
        if self.load_rc:
            raise GuestError(f'insmod of the {self.module} module failed at '
                             f'boot (rc={self.load_rc})\n{self._tail()}')
        want = len(self.devices)
        self.wait_until(self.bound_devices, cond=lambda b: len(b) >= want,
                        timeout=10, what=f'the {self.module} driver to bind '
                        f'to {want} device(s); bound')

    def bound_devices(self):
        """Names (virtioN) of the devices bound to a virtio_mem driver."""
        _, out = self.run(f'ls {VIRTIO_MEM_DRV} 2>/dev/null')
        return [w for w in out.split() if re.fullmatch(r'virtio\d+', w)]

    def _connect(self, sock_name, timeout=30):
        path = os.path.join(self._tmp, sock_name)
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                return s
            except (FileNotFoundError, ConnectionRefusedError):
                s.close()
                if time.monotonic() > deadline:
                    raise GuestError(f'QEMU did not create {path}')
                time.sleep(0.05)

    def stop(self):
        """Quit QEMU (kill it if needed) and clean up. Idempotent."""
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.qmp('quit')
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for s in (self._cmd, self._wake, self._qmp):
            if s:
                s.close()
        self._cmd = self._wake = self._qmp = None
        for d in self.devices:
            d.remove_host_file()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        for f in self._locks:
            f.close()               # releases the flock
        self._locks = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def _tail(self, n=40):
        lines = self.console_log().splitlines()[-n:]
        return (f'--- console log tail ({self.console_path}) ---\n'
                + '\n'.join(lines))

    def _check_panic(self):
        # With reboot allowed a panic reboots the guest instead of ending
        # QEMU: look for it in the console log (read incrementally).
        try:
            with open(self.console_path, 'rb') as f:
                f.seek(max(0, self._panic_scan - 64))
                data = f.read()
        except FileNotFoundError:
            return
        start = max(0, self._panic_scan - 64)
        self._panic_scan = start + len(data)
        if PANIC_RE.search(data):
            raise GuestDied(f'guest KERNEL PANIC (it reboots: panic=-1)\n'
                            f'{self._tail()}')

    def _check_alive(self):
        if self.proc is None:
            raise GuestError('guest not started')
        if self.reboot:
            self._check_panic()
        rc = self.proc.poll()
        if rc is not None:
            with open(self.qemu_log_path, errors='replace') as f:
                qlog = f.read()[-2000:]
            panic = re.search(r'[Kk]ernel panic', self.console_log())
            raise GuestDied(
                f'QEMU exited with rc={rc}'
                + (' after a guest KERNEL PANIC' if panic else '')
                + f'\n--- QEMU output ---\n{qlog}\n{self._tail()}')

    def dump_stuck(self, settle=5):
        """Make a guest that stopped answering say why: blocked tasks and
        what every CPU runs (sysrq w and l, typed on its keyboard, which
        needs no user space), into the console log."""
        with contextlib.suppress(QMPError, OSError, GuestError):
            for key in 'wl':
                self.qmp('human-monitor-command',
                         **{'command-line': f'sendkey alt-sysrq-{key}'})
            time.sleep(settle)

    # -- command channel ----------------------------------------------------

    def _read_until(self, find, timeout, what, quiet=False, raw=False):
        """Read the command socket until find(buf) >= 0; consume through the
        end of that line and return the consumed text (bytes if raw). After
        timeout seconds: None if quiet, else GuestError."""
        deadline = time.monotonic() + timeout
        while True:
            pos = find(self._cmd_buf)
            if pos >= 0:
                end = self._cmd_buf.find(b'\n', pos + 1)
                if end >= 0:
                    data = self._cmd_buf[:end + 1]
                    self._cmd_buf = self._cmd_buf[end + 1:]
                    return data if raw else data.decode(errors='replace')
            left = deadline - time.monotonic()
            if left <= 0:
                self._check_alive()
                if quiet:
                    return None
                self.dump_stuck()
                raise GuestError(f'timeout ({timeout}s) waiting for {what}\n'
                                 f'{self._tail(80)}')
            self._cmd.settimeout(min(left, 1.0))
            try:
                chunk = self._cmd.recv(65536)
            except socket.timeout:
                self._check_alive()
                continue
            if not chunk:
                time.sleep(0.2)   # let QEMU finish exiting
                self._check_alive()
                raise GuestDied(f'command channel closed\n{self._tail()}')
            self._cmd_buf += chunk

    def run(self, cmd, timeout=120):
        """Run a shell command in the guest: (rc, output).

        One command per call; it may not contain newlines (use ';').
        stdout and stderr are merged. The channel loses nothing: a reply
        that is not the one to this command, or whose output is not as long
        as the guest says, is a GuestError.
        """
        if '\n' in cmd:
            raise ValueError('guest commands must be one line')
        self._check_alive()
        self._seq += 1
        seq = str(self._seq)
        self._send_line(f'{seq} {cmd}')

        def end(b):
            m = END_RE.search(b)
            return m.start() if m else -1

        data = self._read_until(end, timeout, f'guest command {cmd!r}',
                                raw=True)
        m = END_RE.search(data)
        out = data[:m.start()]
        if m.group(1).decode() != seq or int(m.group(3)) != len(out):
            raise GuestError(
                f'command channel: reply {m.group(0)!r} with {len(out)} '
                f'bytes of output to command {seq} ({cmd!r}): a reply '
                f'was lost or damaged\n{out[-2000:]!r}')
        return int(m.group(2)), out.decode(errors='replace')

    def _send_line(self, line):
        """Send one line of the command channel."""
        self._cmd.sendall(line.encode() + b'\n')

    def wake(self):
        """Input on the guest's second serial port: a wakeup event for a
        guest in suspend to idle whose ttyS1 may wake it."""
        self._wake.sendall(b'\n')

    def check(self, cmd, timeout=120):
        """run() that raises GuestError unless the command exits 0."""
        rc, out = self.run(cmd, timeout)
        if rc != 0:
            raise GuestError(f'guest command {cmd!r} failed rc={rc}:\n{out}')
        return out

    # -- QMP ----------------------------------------------------------------
    # Our own few lines, not QEMU's qemu.qmp: Debian 12 does not package it
    # (PyPI only), and the tests install from Debian's archive alone.

    def _qmp_recv(self, timeout=60):
        deadline = time.monotonic() + timeout
        while b'\n' not in self._qmp_buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError('QMP timeout')
            self._qmp.settimeout(min(left, 1.0))
            try:
                chunk = self._qmp.recv(65536)
            except socket.timeout:
                self._check_alive()
                continue
            if not chunk:
                time.sleep(0.2)
                self._check_alive()
                raise GuestDied('QMP connection closed')
            self._qmp_buf += chunk
        line, self._qmp_buf = self._qmp_buf.split(b'\n', 1)
        return json.loads(line)

    def _qmp_handshake(self):
        greeting = self._qmp_recv()
        if 'QMP' not in greeting:
            raise GuestError(f'unexpected QMP greeting {greeting}')
        self.qmp('qmp_capabilities')

    def qmp(self, execute, **arguments):
        """Run a QMP command and return its 'return' value.

        Async events that arrive meanwhile are appended to self.events.
        """
        msg = {'execute': execute}
        if arguments:
            msg['arguments'] = arguments
        self._qmp.sendall(json.dumps(msg).encode() + b'\n')
        while True:
            r = self._qmp_recv()
            if 'event' in r:
                self.events.append(r)
            elif 'error' in r:
                raise QMPError(f'{execute} {arguments}: {r["error"]}')
            elif 'return' in r:
                return r['return']

    def set_requested(self, dev_id, nbytes):
        self.qmp('qom-set', path=f'/machine/peripheral/{dev_id}',
                 property='requested-size', value=parse_size(nbytes))

    def requested_size(self, dev_id):
        return self.qmp('qom-get', path=f'/machine/peripheral/{dev_id}',
                        property='requested-size')

    def plugged_size(self, dev_id):
        return self.qmp('qom-get', path=f'/machine/peripheral/{dev_id}',
                        property='size')

    def memory_devices(self):
        """query-memory-devices: list of {'type': ..., 'data': {...}}."""
        return self.qmp('query-memory-devices')

    def device_info(self, dev_id):
        """query-memory-devices data of one device (memaddr, size, ...)."""
        for d in self.memory_devices():
            if d['data'].get('id') == dev_id:
                return d['data']
        raise GuestError(f'no memory device {dev_id}')

    # -- guest memory state -------------------------------------------------

    def meminfo(self):
        """/proc/meminfo as {field: kB} (HugePages_* counts as is)."""
        out = self.check('cat /proc/meminfo')
        info = {}
        for line in out.splitlines():
            k, _, v = line.partition(':')
            if v.split():
                info[k.strip()] = int(v.split()[0])
        return info

    def memtotal(self):
        """MemTotal in kB."""
        out = self.check('grep ^MemTotal: /proc/meminfo')
        return int(out.split()[1])

    @property
    def block_size_bytes(self):
        """Linux memory block size (cached: it never changes)."""
        if self._block_size is None:
            out = self.check(
                'cat /sys/devices/system/memory/block_size_bytes')
            self._block_size = int(out.strip(), 16)
        return self._block_size

    def memory_blocks(self):
        """{block_id: state} of all memory blocks, in one guest command.

        A block the driver removes between the shell's glob and grep's
        read is gone, not an error: grep -s leaves it out, and only the
        boot block's absence (nothing read at all) fails."""
        _, out = self.run(
            'grep -Hs . /sys/devices/system/memory/memory*/state')
        if '/memory0/state:' not in out:
            raise GuestError(f'no memory block states read:\n{out}')
        blocks = {}
        for line in out.splitlines():
            m = re.search(r'/memory(\d+)/state:(\S+)', line)
            if m:
                blocks[int(m.group(1))] = m.group(2)
        return blocks

    def device_block_range(self, dev_id):
        """range() of the Linux memory block ids a device's region spans."""
        info = self.device_info(dev_id)
        bs = self.block_size_bytes
        first = info['memaddr'] // bs
        return range(first, first + info['max-size'] // bs)

    def device_blocks(self, dev_id):
        """{block_id: state} of the memory blocks inside a device's region."""
        rng = self.device_block_range(dev_id)
        return {b: s for b, s in self.memory_blocks().items() if b in rng}

    def online_blocks(self, block_ids, policy='online_movable'):
        """Online the given memory blocks in one guest command; returns rc
        and output (a block that fails to online makes rc nonzero)."""
        if not block_ids:
            return 0, ''
        paths = ' '.join(f'/sys/devices/system/memory/memory{b}/state'
                         for b in sorted(block_ids))
        return self.run(f'rc=0; for f in {paths}; do '
                        f'echo {policy} > $f || rc=1; done; exit $rc')

    def node_memtotal(self):
        """{node id: MemTotal in kB} from /sys/devices/system/node."""
        out = self.check('grep -H MemTotal: '
                         '/sys/devices/system/node/node*/meminfo')
        nodes = {}
        for line in out.splitlines():
            m = re.search(r'/node(\d+)/meminfo:.*MemTotal:\s+(\d+)', line)
            if m:
                nodes[int(m.group(1))] = int(m.group(2))
        return nodes

    # -- our driver's sysfs -------------------------------------------------

    @property
    def ours(self):
        """Whether our driver runs: our module (with fault injection or
        not), or our test kernel with it built in."""
        return self.module in ('ours', 'ours-fi') or bool(self.kernel)

    def vmem_sysfs(self, dev_id):
        """All attributes in virtioN/virtio_mem/ of the device with QEMU id
        dev_id (matched by region start), as {name: value}; numbers are
        ints. Only our driver has them; {} if the device has none."""
        addr = self.device_info(dev_id)['memaddr']
        _, out = self.run('grep -H . /sys/bus/virtio/devices/virtio*/'
                          'virtio_mem/* 2>/dev/null')
        devs = {}
        for line in out.splitlines():
            m = re.match(r'/sys/bus/virtio/devices/(virtio\d+)/virtio_mem/'
                         r'(\w+):(.*)$', line)
            if not m:
                continue
            val = m.group(3).strip()
            with contextlib.suppress(ValueError):
                val = int(val, 0)
            devs.setdefault(m.group(1), {})[m.group(2)] = val
        for name, attrs in devs.items():
            if attrs.get('region_start') == addr:
                return dict(attrs, virtio=name)
        return {}

    def vmem_attr(self, dev_id, name):
        """One attribute of vmem_sysfs(); GuestError if it is missing."""
        attrs = self.vmem_sysfs(dev_id)
        if name not in attrs:
            raise GuestError(f'{dev_id}: no virtio_mem/{name} in sysfs '
                             f'(attributes: {sorted(attrs)})')
        return attrs[name]

    # -- logs ---------------------------------------------------------------

    def dmesg(self):
        return self.check('dmesg')

    def console_log(self):
        """The kernel console (ttyS0) as written so far."""
        try:
            with open(self.console_path, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def log_mark(self):
        """Position in the console log, for assert_log_clean(since=...)."""
        return len(self.console_log())

    def log_problems(self, since=0, ignore=()):
        """Console log lines that look like kernel warnings or crashes."""
        bad = []
        for line in self.console_log()[since:].splitlines():
            if BAD_LOG_RE.search(line) and not BENIGN_LOG_RE.search(line) \
                    and not any(re.search(i, line) for i in ignore):
                bad.append(line)
        return bad

    def assert_log_clean(self, since=0, ignore=()):
        """Raise AssertionError listing warning/oops lines in the kernel log.

        Reads the console log on the host (console loglevel 7 prints all
        of these), so it also works after the guest died.
        """
        bad = self.log_problems(since, ignore)
        if bad:
            raise AssertionError(
                f'kernel log of {self.name} has {len(bad)} problem line(s):\n'
                + '\n'.join(bad[:50]) + f'\n(full log: {self.console_path})')

    # -- waiting ------------------------------------------------------------

    def wait_until(self, fn, cond=None, timeout=120, interval=0.5, what=None):
        """Poll fn() until cond(value) (or, without cond, value) is true.

        Returns the value; raises GuestError with the last value seen.
        """
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        while True:
            value = fn()
            if (cond(value) if cond else value):
                return value
            if time.monotonic() > deadline:
                self._check_alive()
                raise GuestError(
                    f'timeout after {time.monotonic() - t0:.1f}s waiting for '
                    f'{what or getattr(fn, "__name__", "condition")}; '
                    f'last value: {value!r}\n{self._tail(20)}')
            time.sleep(interval)


def _main():
    """Boot a guest with one 8G device and type guest commands at it."""
    import argparse
    ap = argparse.ArgumentParser(description=_main.__doc__)
    ap.add_argument('--module', choices=('ours', 'ref', 'none'),
                    default='none', help='virtio_mem.ko to load at boot')
    ap.add_argument('--online', default='online_movable',
                    help='auto_online_blocks policy ("" for none)')
    args = ap.parse_args()
    module = None if args.module == 'none' else args.module
    with Guest(devices=[MemDevice()], module=module,
               online=args.online or None, name='interactive') as g:
        print(f'booted in {g.boot_time:.1f}s; console: {g.console_path}')
        print('one guest command per line; QMP: ":qmp CMD {json args}"; '
              '^D quits')
        for line in sys.stdin:
            line = line.strip()
            try:
                if line.startswith(':qmp '):
                    _, ex, *rest = line.split(' ', 2)
                    print(g.qmp(ex, **(json.loads(rest[0]) if rest else {})))
                elif line:
                    rc, out = g.run(line)
                    print(out, end='' if out.endswith('\n') else '\n')
                    print(f'[rc={rc}]')
            except QMPError as e:
                print(e)


if __name__ == '__main__':
    _main()
