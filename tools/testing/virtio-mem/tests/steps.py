# SPDX-License-Identifier: GPL-2.0
"""Test steps shared by the reference-driver and our-driver tests.

Every check of the guest's view (MemTotal, memory blocks, the driver's
sysfs) polls until the value settles, within a bound: the guest follows
the host's QMP view with a lag, and a test must not race it.
"""

import os
import random
import re
import shlex
import time

import pytest

from vmtest import (VIRTIO_MEM_DRV, GiB, GuestError, KiB, MiB,
                    fmt_size)

# 0 first: checks the untouched state (and that a no-op resize is harmless).
PLUG_SEQUENCE = [0, 1 * GiB, 4 * GiB, 4 * GiB + 6 * MiB]
# Debian's driver plugs 4 GiB in well under a second under TCG here.
PLUG_TIMEOUT = 120


# How long the guest may take to show a change the host already sees (an
# onlined block in MemTotal, a counter in sysfs): seconds under TCG.
SETTLE_TIMEOUT = 60


def skip_or_fail(why):
    """Skip a test whose precondition is missing, or, under make check
    (VMTEST_STRICT=1), fail it: there a missing precondition is a broken
    build step, not a reason to prove less."""
    if os.environ.get('VMTEST_STRICT') == '1':
        pytest.fail(why, pytrace=False)
    pytest.skip(why)


def seeded_random(what='test'):
    """(random.Random, seed) for a test's random choices.

    The seed comes from VMTEST_SEED if set, else from os.urandom; it is
    printed, so that pytest shows it with a failure and the run can be
    repeated with VMTEST_SEED=<seed>.
    """
    env = os.environ.get('VMTEST_SEED')
    seed = int(env, 0) if env else int.from_bytes(os.urandom(4), 'big')
    print(f'{what}: random seed {seed} (repeat with VMTEST_SEED={seed})')
    return random.Random(seed), seed


def wait_equal(guest, fn, want, what, timeout=SETTLE_TIMEOUT, interval=0.2):
    """Poll fn() until it returns want; GuestError with the last value
    after timeout seconds. Returns the value."""
    return guest.wait_until(fn, cond=lambda v: v == want, timeout=timeout,
                            interval=interval, what=f'{what} == {want!r}')


def assert_steady(guest, fn, want, secs, what, interval=0.5):
    """Assert that fn() returns want now and keeps doing so for secs
    seconds: for things that must not happen (an unplug nobody asked
    for). Fails as soon as the value changes."""
    t_end = time.monotonic() + secs
    while True:
        value = fn()
        assert value == want, f'{what}: {value!r}, want it to stay {want!r}'
        if time.monotonic() >= t_end:
            return
        time.sleep(interval)


def plug_step(guest, dev, new_size, base_memtotal, timeout=PLUG_TIMEOUT):
    """Resize one device and check the guest followed: resize_step()
    (defined below, for both directions), under its historical name."""
    return resize_step(guest, dev, new_size, base_memtotal, timeout)


# QEMU makes the usable region this much larger than the request (x86).
USABLE_EXTENT = 256 * MiB


def usable_region(guest, dev, requested, usable):
    """The usable_region_size QEMU 7.2 gives dev after a request (it grows
    with requests, and shrinks only on reset): from the last one."""
    info = guest.device_info(dev)
    bs = info['block-size']
    new = min(info['max-size'], -(-(requested + USABLE_EXTENT) // bs) * bs)
    return max(usable, new) if requested else usable


def plug_sequence(guest, dev, sizes=PLUG_SEQUENCE):
    """plug_step() through sizes, from a device that starts unplugged. Our
    driver's usable_region_size must follow QEMU's as it grows."""
    assert guest.plugged_size(dev) == 0, f'{dev} plugged at boot'
    base = guest.memtotal()
    usable = 0
    for size in sizes:
        plug_step(guest, dev, size, base)
        usable = usable_region(guest, dev, size, usable)
        if guest.ours:
            wait_equal(guest, lambda: guest.vmem_attr(dev,
                                                      'usable_region_size'),
                       usable, f'{dev}: driver usable_region_size')


# Why our driver stopped short, and the counter each of its later looks at
# the matter moves (None: it looks again after a delay, or not at all).
STOP_COUNTERS = {'onlining': None, 'memmap': None,
                 'pressure': 'pressure_stops', 'busy': 'isolation_failures',
                 'online': None, 'device': None}
# Reasons after which nothing runs until an event (a new request, memory
# onlined or offlined): final once the driver's work reads 'idle'.
EVENT_STOPS = ('onlining', 'online', 'unit')


def driver_stop(guest, dev):
    """Where our driver of dev stands, from its own sysfs: None while it
    is still on its way, else (QMP size, why, attributes). why is 'none'
    at the request, or the driver's plug_wait or unplug_wait. It must
    have read the host's request, its plugged_size must be QMP's, and
    for a reason that waits for an event its work must be idle."""
    a = guest.vmem_sysfs(dev)
    size = guest.plugged_size(dev)
    if a['plugged_size'] != size or \
            a['requested_size'] != guest.requested_size(dev):
        return None
    why = a['plug_wait'] if a['plug_wait'] != 'none' else a['unplug_wait']
    if why == 'none':
        return (size, why, a) if size == a['requested_size'] else None
    if why in EVENT_STOPS and a.get('work') != 'idle':
        return None
    return size, why, a


def wait_stopped(guest, dev, timeout=PLUG_TIMEOUT, quiet=3.0):
    """Wait until the driver of dev has stopped short of, or reached, the
    request; returns (QMP size, why): why is our driver's plug_wait or
    unplug_wait ('none' once at the request), None for Debian's.

    Ours says why it stopped (driver_stop()): this waits for that and,
    where it looks again by itself (under pressure, memory busy), for one
    more look that changed nothing. Debian's says nothing: then dev's QMP
    size must not change for `quiet` seconds.
    """
    # Only ours has sysfs attributes (it may have been loaded by hand).
    if not guest.vmem_sysfs(dev):
        return wait_settled(guest, dev, quiet, timeout), None

    size, why, a = guest.wait_until(
        lambda: driver_stop(guest, dev), timeout=timeout, interval=0.2,
        what=f'the driver of {dev} to stop, and say why')
    counter = STOP_COUNTERS.get(why)
    if why != 'none' and counter and counter in a:
        n = a[counter]
        # The next look fails again (the counter moves) and is over (the
        # work no longer runs: a look counts its first failure and goes
        # on with other memory), or gets further (the size moves, and the
        # counter need not). vmem_sysfs() reads the files in name order,
        # the counter before the work: a work not running after the
        # counter moved means that look is over. The size, read last, is
        # not older than its end.
        def look():
            a = guest.vmem_sysfs(dev)
            return a[counter], a['work'], guest.plugged_size(dev)

        *_, now = guest.wait_until(
            look, cond=lambda v: (v[0] > n and v[1] != 'running') or
            v[2] != size, timeout=timeout, interval=0.1,
            what=f'{dev}: one more look ({counter}, work, size)')
        if now != size:
            return wait_stopped(guest, dev, timeout, quiet)
    return size, why


def wait_settled(guest, dev, quiet=5.0, timeout=PLUG_TIMEOUT):
    """Wait until dev's QMP size has not changed for `quiet` seconds;
    returns that size. For a driver that does not say why it stopped
    (Debian's): ours is waited for with wait_stopped()."""
    last = [None, time.monotonic()]

    def settled():
        size = guest.plugged_size(dev)
        now = time.monotonic()
        if size != last[0]:
            last[:] = [size, now]
        return size if now - last[1] >= quiet else None

    return guest.wait_until(settled, cond=lambda s: s is not None,
                            timeout=timeout, interval=1.0,
                            what=f'{dev} size to settle for {quiet}s')


# -- shrinking ----------------------------------------------------------------

# Unplugging migrates pages, which is slower than plugging under TCG.
RESIZE_TIMEOUT = 180


def check_sizes(guest, dev, size, base_memtotal, timeout=RESIZE_TIMEOUT):
    """Check a device that reached `size`: both QMP views, the driver's
    sysfs (our driver only) and MemTotal == base_memtotal + size (the only
    device away from its boot size). The guest's views are waited for."""
    info = guest.device_info(dev)
    assert info['size'] == size, \
        f'{dev}: query-memory-devices size {fmt_size(info["size"])}, ' \
        f'want {fmt_size(size)}'
    want_kb = size // KiB
    guest.wait_until(lambda: guest.memtotal() - base_memtotal,
                     cond=lambda d: d == want_kb, timeout=timeout,
                     what=f'MemTotal - base == {want_kb} kB '
                     f'(base {base_memtotal} kB)')
    if guest.ours:
        attrs = guest.wait_until(
            lambda: guest.vmem_sysfs(dev),
            cond=lambda a: a.get('plugged_size') == size,
            timeout=SETTLE_TIMEOUT,
            what=f'{dev}: driver plugged_size == QMP size {size}')
        assert attrs.get('broken') == 0, f'{dev}: driver marked it broken'


def plug_order(nr):
    """The order in which our driver adds a device's nr units (memory
    blocks, or big blocks): lowest address first but unit 1 last, which
    keeps a hole in the zone until the device is full (vmem_plug_order()
    in the driver). Unplugging goes the other way."""
    return list(range(nr)) if nr < 3 else [0, *range(2, nr), 1]


def unit_blocks(rng, per_unit, k):
    """The memory blocks (ids from the device's range rng) of the first k
    units our driver adds, one list per unit, in plug order."""
    order = plug_order(len(rng) // per_unit)
    return [list(rng[u * per_unit:(u + 1) * per_unit]) for u in order[:k]]


def resize_step(guest, dev, new_size, base_memtotal, timeout=RESIZE_TIMEOUT,
                exact_blocks=True):
    """Grow or shrink one device and check the guest followed.

    Like plug_step(), for both directions: QMP size reaches new_size,
    MemTotal is exactly base_memtotal + new_size, the driver agrees
    (check_sizes()), every memory block of the device that Linux still has
    is online and, with exact_blocks (an idle guest), only the blocks that
    hold plugged memory are left: the others were removed, not merely
    offlined. The kernel log must be clean. Returns the seconds it took.
    """
    old = guest.plugged_size(dev)
    t0 = time.monotonic()
    guest.set_requested(dev, new_size)
    guest.wait_until(lambda: guest.plugged_size(dev),
                     cond=lambda s: s == new_size, timeout=timeout,
                     interval=0.2,
                     what=f'{dev} QMP size == {fmt_size(new_size)}')
    elapsed = time.monotonic() - t0
    check_sizes(guest, dev, new_size, base_memtotal, timeout)
    # A block emptied by the unplug may still be on its way out (it is
    # removed after its memory left MemTotal): wait for that too.
    want = -(-new_size // guest.block_size_bytes)

    def blocks_ok(blocks):
        if any(s != 'online' for s in blocks.values()):
            return False
        return len(blocks) == want if exact_blocks else True

    blocks = guest.device_blocks(dev)
    if not blocks_ok(blocks):
        try:
            blocks = guest.wait_until(lambda: guest.device_blocks(dev),
                                      cond=blocks_ok, timeout=SETTLE_TIMEOUT,
                                      what=f'memory blocks of {dev}')
        except GuestError:
            blocks = guest.device_blocks(dev)
    not_online = {b: s for b, s in blocks.items() if s != 'online'}
    assert not not_online, f'memory blocks of {dev} not online: {not_online}'
    if exact_blocks:
        assert len(blocks) == want, \
            f'{dev} at {fmt_size(new_size)}: {len(blocks)} memory blocks ' \
            f'present, want {want}: {sorted(blocks)}'
    guest.assert_log_clean()
    guest.timings.append((f'{dev} {fmt_size(old)} -> {fmt_size(new_size)}',
                          elapsed))
    return elapsed


# -- guest health -------------------------------------------------------------

OOM_RE = re.compile(r'Out of memory|Killed process|invoked oom-killer|'
                    r'oom-kill:|page allocation failure')


def assert_no_oom(guest, since=0):
    """No OOM kill and no failed allocation in the kernel log."""
    bad = [ln for ln in guest.console_log()[since:].splitlines()
           if OOM_RE.search(ln)]
    assert not bad, 'OOM / allocation failures in the kernel log:\n' + \
        '\n'.join(bad[:20]) + f'\n(full log: {guest.console_path})'


def assert_guest_alive(guest):
    """PID 1 (our /init) still serves commands, and a new process runs."""
    rc, out = guest.run('echo alive; cat /proc/1/comm', timeout=60)
    assert rc == 0 and out.split()[:1] == ['alive'], \
        f'guest command failed rc={rc}: {out}'


def fault_knob(guest, dev, name):
    """Path of the debugfs knob name of device dev, in a guest running the
    fault-injection build of our module ('ours-fi')."""
    virtio = guest.vmem_attr(dev, 'virtio')
    return f'/sys/kernel/debug/virtio_mem/{virtio}/{name}'


def log_count(guest, pattern, since=0):
    """Number of console log lines matching the regex pattern."""
    return sum(1 for ln in guest.console_log()[since:].splitlines()
               if re.search(pattern, ln))


# -- loading and unloading the driver ----------------------------------------

def driver_commands(guest, params=''):
    """(unload, load): guest shell commands that take the virtio_mem driver
    away from its devices and bring it back. With the module the guest
    booted with, rmmod and insmod (with params); with the driver built into
    Guest(kernel=...), unbind from and bind to the devices it is bound to
    now."""
    if guest.kernel:
        devs = guest.bound_devices()
        if not devs:
            raise GuestError('the built-in virtio_mem driver is bound to no '
                             'device')
        return (' && '.join(f'echo {d} > {VIRTIO_MEM_DRV}/unbind'
                            for d in devs),
                ' && '.join(f'echo {d} > {VIRTIO_MEM_DRV}/bind'
                            for d in devs))
    if not guest.module:
        raise GuestError('the guest booted without a virtio_mem module')
    return ('rmmod virtio_mem',
            f'insmod /{guest.module}/virtio_mem.ko {params}'.strip())


def unload_driver(guest, timeout=300):
    """Unload the driver (driver_commands()); returns the command that
    loads it again."""
    unload, load = driver_commands(guest)
    rc, out = guest.run(unload, timeout)
    if rc:
        raise GuestError(f'unloading the driver ({unload}) failed rc={rc}:\n'
                         f'{out}')
    return load


def load_driver(guest, load, timeout=300):
    """Run the load command unload_driver() returned."""
    rc, out = guest.run(load, timeout)
    if rc:
        raise GuestError(f'loading the driver ({load}) failed rc={rc}:\n'
                         f'{out}')


# An unprivileged user: uid and gid 65534, no supplementary groups.
NOBODY = 'vmtest-nobody'


def run_unprivileged(guest, cmd, timeout=120):
    """Run a shell command as NOBODY: (rc, output).

    Debian's busybox setpriv cannot change ids; its su can, given a passwd
    entry (root needs no password). The guest kernel needs MULTIUSER.
    """
    guest.check(f"grep -q '^{NOBODY}:' /etc/passwd 2>/dev/null || "
                f"{{ echo '{NOBODY}:x:65534:65534::/:/bin/sh' >> /etc/passwd"
                f" && echo '{NOBODY}:x:65534:' >> /etc/group; }}")
    return guest.run(f'su -s /bin/sh -c {shlex.quote(cmd)} {NOBODY}',
                     timeout)


# -- workload -----------------------------------------------------------------

class Memfill:
    """guest/memfill.c running in the background of a guest.

    start() fills anon_mb of anonymous memory and file_mb of tmpfs files
    (/dev/shm) with a pattern and checks, apart from what memfill says,
    that the guest really holds them (file sizes, the process' RssAnon);
    finish() has it verify every byte and returns (verified MiB, corrupted
    bytes, exit code). With loop=True it keeps re-reading everything while
    it waits. seed=None takes VMTEST_SEED, or a random one. With
    pin=(start, end) it pins one of its anonymous pages with a physical
    address in [start, end) until it exits: `pinned` is that address.
    """

    DIR = '/dev/shm'

    def __init__(self, guest, anon_mb=0, file_mb=0, seed=None, loop=False,
                 tag='mf', pin=None):
        self.guest = guest
        self.anon_mb = anon_mb
        self.file_mb = file_mb
        if seed is None:
            env = os.environ.get('VMTEST_SEED')
            seed = int(env, 0) if env else int.from_bytes(os.urandom(4),
                                                          'big')
        self.seed = seed          # in the memfill log ("filled" line)
        self.loop = loop
        self.pin = pin
        self.pinned = None        # physical address of the pinned page
        self.log = f'/tmp/memfill.{tag}.log'
        self.go = f'/tmp/memfill.{tag}.go'
        self.fill_time = None
        self.passes = None        # verify passes while waiting (loop=True)
        self.pid = None
        self.held_mb = None       # what the guest was seen to hold

    def _log(self):
        _, out = self.guest.run(f'cat {self.log}')
        return out

    def _held_mb(self):
        """MiB of the workload the guest holds, as seen from outside
        memfill: its files' sizes, and its anonymous memory (RssAnon,
        which also counts its buffers: capped at anon_mb)."""
        held = 0
        if self.file_mb:
            out = self.guest.check(f'stat -c %s {self.DIR}/memfill.*')
            held += sum(int(x) for x in out.split()) // MiB
        if self.anon_mb:
            out = self.guest.check(f'grep ^RssAnon: /proc/{self.pid}/status')
            # Rounded: a task's RSS counters lag its last few faults.
            held += min((int(out.split()[1]) + 512) // 1024, self.anon_mb)
        return held

    def start(self, timeout=600):
        args = f'-a {self.anon_mb} -f {self.file_mb} -s {self.seed} ' \
               f'-w {self.go}' + (' -l' if self.loop else '')
        if self.pin:
            args += f' -p {self.pin[0]:#x}-{self.pin[1]:#x}'
        t0 = time.monotonic()
        self.guest.check(f'rm -f {self.go}; (memfill {args}; '
                         f'echo "memfill: exit $?") >{self.log} 2>&1 &')
        out = self.guest.wait_until(
            self._log, cond=lambda o: 'memfill: filled' in o
            or 'memfill: exit' in o, timeout=timeout, interval=1.0,
            what=f'memfill {args} to fill memory')
        m = re.search(r'memfill: filled (\d+) MiB .* pid (\d+)', out)
        assert m, f'memfill failed to fill:\n{out}'
        self.fill_time = time.monotonic() - t0
        want = self.anon_mb + self.file_mb
        assert int(m.group(1)) == want, \
            f'memfill wrote {m.group(1)} MiB, asked for {want}:\n{out}'
        self.pid = int(m.group(2))
        if self.pin:
            m = re.search(r'memfill: pinned page at (0x[0-9a-f]+)', out)
            assert m, f'memfill pinned no page:\n{out}'
            self.pinned = int(m.group(1), 16)
        self.held_mb = self._held_mb()
        assert self.held_mb == want, \
            f'the guest holds {self.held_mb} MiB of the workload ' \
            f'(files + RssAnon), memfill was asked for {want} MiB'
        return self.fill_time

    def finish(self, timeout=600):
        self.guest.check(f'touch {self.go}')
        out = self.guest.wait_until(
            self._log, cond=lambda o: 'memfill: exit' in o, timeout=timeout,
            interval=1.0, what='memfill to verify')
        rc = int(re.search(r'memfill: exit (\d+)', out).group(1))
        m = re.search(r'memfill: verified (\d+) MiB, corrupted (\d+) bytes '
                      r'\((\d+) passes', out)
        assert m, f'memfill did not verify (exit {rc}):\n{out}'
        self.passes = int(m.group(3))
        return int(m.group(1)), int(m.group(2)), rc

    def assert_intact(self, timeout=600):
        """finish() and assert that every byte the guest was seen to hold
        was verified and none changed."""
        verified, corrupted, rc = self.finish(timeout)
        assert corrupted == 0 and rc == 0, \
            f'memfill: {corrupted} corrupted bytes (exit {rc}):\n{self._log()}'
        assert verified == self.held_mb, \
            f'memfill verified {verified} MiB, the guest held ' \
            f'{self.held_mb} MiB of it after filling'

    def remove_files(self, background=False):
        """Delete the tmpfs files (the workload frees its memory); with
        background, return at once instead of when rm is done."""
        self.guest.check(f'rm -f {self.DIR}/memfill.*'
                         + (' &' if background else ''), timeout=120)


TRACING = '/sys/kernel/tracing'


class CallCounter:
    """Counts the guest kernel's calls of functions matching `glob` (the
    function tracer's filter syntax: 6.12 renamed some allocator entry
    points to NAME_noprof), from start() to count()."""

    def __init__(self, guest, glob):
        self.guest, self.glob = guest, glob

    def start(self):
        for cmd in (f'mount -t tracefs nodev {TRACING} 2>/dev/null; true',
                    f'echo nop > {TRACING}/current_tracer',
                    f"echo '{self.glob}' > {TRACING}/set_ftrace_filter",
                    f'echo > {TRACING}/trace',
                    f'echo 1 > {TRACING}/tracing_on',
                    f'echo function > {TRACING}/current_tracer'):
            self.guest.check(cmd)

    def count(self):
        """Calls since start(); stops tracing."""
        # Changing the tracer empties the buffer: stop it, read, then reset.
        self.guest.check(f'echo 0 > {TRACING}/tracing_on')
        # The filter must have matched a function, or no count means much.
        assert self.guest.check(f'cat {TRACING}/set_ftrace_filter').strip(), \
            f'no traceable function matches {self.glob!r}'
        name = self.glob.rstrip('*')
        out = self.guest.check(f'grep -c ": {name}" {TRACING}/trace; true')
        for cmd in (f'echo nop > {TRACING}/current_tracer',
                    f'echo > {TRACING}/set_ftrace_filter',
                    f'echo 1 > {TRACING}/tracing_on'):
            self.guest.check(cmd)
        return int(out.strip() or 0)
