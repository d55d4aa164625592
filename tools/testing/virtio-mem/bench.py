#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark our virtio-mem driver against Debian's own virtio_mem.ko.

Both drivers run the same scenarios on the same kernel and QEMU, interleaved
(ref, ours, ref, ours, ...), several times. The table gives the median and
range of each figure per driver and the ratio ours/ref. The raw results of
the run (with the date, CPU, QEMU, kernel and driver source they come from)
and the table are saved in bench-results/ next to this script, a plot in
--out. Unless --no-trace, one more run of each scenario per driver reads
MemTotal at every poll (which costs the guest time: its figures are not in
the table), and a picture per scenario, the host's request, QEMU's plugged
size and the guest's MemTotal growth over time, ref's panel beside ours,
goes next to the raw results (STAMP-SCENARIO.svg; grow's pictures come
from its first timed run, which reads MemTotal anyway).

Scenarios (--scenarios; 1 GiB boot memory, one 8 GiB device, online_movable
unless said otherwise):
  basic     plug 0 -> 4 GiB; unplug 4 GiB -> 0 with the guest idle; unplug
            4 GiB -> 1 GiB while 1 GiB of tmpfs data must stay in the guest
  nofit     4 GiB -> 0 while 3 GiB of tmpfs data must stay: how much gets
            unplugged, whether the guest survives, and once the data is
            deleted, how long until the device reaches 0 without host action
  inuse     plug 0 -> 4 GiB, write 512 MiB of tmpfs data (which lands in
            the device's memory), unplug 4 GiB -> 0: that data must move
            to the boot memory. Then once more in the same guest, the data
            deleted first: the boot memory the data moves into is now
            memory the host has allocated (QEMU allocates the guest's
            memory on first touch), which a VM that has run for a while
            has; the first round also measures the host's allocating
  bigblock  plug 0 -> 4 GiB and unplug 4 GiB -> 0 (idle) with 1 GiB device
            blocks, bigger than Linux's 128 MiB memory blocks
  mmom      plug 0 -> 4 GiB and unplug 4 GiB -> 0 (idle), booted with
            memory_hotplug.memmap_on_memory=1: how much memmap the driver
            placed in the added memory (64 MiB if all of it), which the
            expected MemTotal leaves out
  grow      512 MiB boot memory, one 32 GiB device (host memory backs only
            what the guest touches), all of it requested at once: how far
            the guest grows, how long it takes, and the guest afterwards
            (a command answers; OOM killer messages in its kernel log;
            MemAvailable; our driver's plug_wait and memmap_stops). The
            memmap of 32 GiB (512 MiB) does not fit into the boot memory:
            a driver has to stop in time or the guest runs out of memory.
            Run twice per driver: as booted ("grow") and with
            memory_hotplug.memmap_on_memory=1 ("grow mmom"), where that
            memmap may live on the added memory (MemTotal then leaves it
            out: 1/64 of what is added)
  grow1024  512 MiB boot memory, one 512 GiB device, booted with
            memory_hotplug.memmap_on_memory=1, all of it requested at
            once (1024x): how far and how fast it grows (GiB/s around
            32 GiB and around 400 GiB, from QMP's size over time), QEMU's
            resident memory at the top, a workload there (4 GiB of tmpfs
            data written and deleted, 128 MiB kept and checked), then
            back to 0: how long, how far, the kept data intact, the
            guest afterwards
  policy    512 MiB boot memory, one 32 GiB device, booted with
            memory_hotplug.memmap_on_memory=1, once per online policy:
            online_movable, the kernel's auto-movable
            (memory_hotplug.online_policy=auto-movable, default ratio) and
            online (kernel zones). Grow to 32 GiB (64x), note how much
            memory went to ZONE_MOVABLE, write 128 MiB of tmpfs data and
            20000 files (slab, which cannot move), then request 0: how far
            the unplug gets before the device's size stands still for
            UNPLUG_QUIET seconds, why it stopped (our unplug_wait and the
            ZONE_NORMAL memory our log names), and the guest afterwards
            (OOM kills)

Every timing ends when the guest shows the change: the device reports the
new size over QMP and the guest's MemTotal is the boot value plus that size
(for "0 reached after free": QMP size 0 and MemTotal back at boot value).
CPU is the guest's system+irq time over the step (/proc/stat), which is
where the driver's work runs; "paused" is that over 10 s of waiting in
no-fit. A guest that dies (QEMU exits, e.g. after a panic) is recorded as
such, with the panic message, and the table says so.

grow: the time is until QMP shows 32 GiB and MemTotal the boot value plus
that (or, with memmap_on_memory, minus the memmap). A growth that stops
short instead ends when neither the device's size nor MemTotal changed for
GROW_QUIET seconds (longer than the in-tree driver's retry after a failure
to add memory); the table then says where it stopped and why ("stopped at
14.5 GiB (memmap)": our driver's plug_wait), or what became of the guest:
"OOM" (OOM killer messages, the guest still answers), "guest died" (QEMU
exited, e.g. after a panic), "guest hung" (no answer), "commands fail"
(answers without output: the OOM killer took them). "growth stopped after"
is the time of the device's last size change (QMP), CPU the guest's time
until MemTotal showed its last value.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

from bench_plot import timeline_svg
from vmtest import (REPO, GiB, KiB, MiB, Guest, GuestDied, GuestError,
                    MemDevice, kernel_version, ours_ko, ref_ko)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, 'bench-results')

STEP_TIMEOUT = 300
NOFIT_SETTLE_MAX = 60     # s to wait for the no-fit unplug to stop
RESUME_CAP = 120          # s to wait for the unplug to finish once freed
GROW_SIZE = 32 * GiB      # the grow scenario's device and request
# s without growth: the driver has stopped. Longer than the in-tree
# driver's wait before it tries again after failing to add memory (50 s).
GROW_QUIET = 60.0
GROW_LIMIT = 1200         # s to follow the growth at most
GROW_CMD_TIMEOUT = 60     # s for a guest command while it grows
# The grow scenario runs twice per driver: as booted, and with the memmap
# of hotplugged memory on that memory itself ("mmom" in the table).
MMOM = 'memory_hotplug.memmap_on_memory=1'
GROW_VARIANTS = (('grow', ''), ('grow_mmom', MMOM))
MEMMAP_RATIO = 64          # bytes of memory per byte of its memmap
# The policy scenario: (phase, auto_online_blocks, extra command line).
AUTO_MOVABLE = 'memory_hotplug.online_policy=auto-movable'
POLICIES = (('pol_movable', 'online_movable', MMOM),
            ('pol_auto', 'online', f'{MMOM} {AUTO_MOVABLE}'),
            ('pol_kernel', 'online', MMOM))
POLICY_NAMES = {'pol_movable': 'online_movable', 'pol_auto': 'auto-movable',
                'pol_kernel': 'online'}
# s without a change of the device's size: the unplug has stopped. Longer
# than our driver's longest retry delay (10 s) after memory that could not
# be freed.
UNPLUG_QUIET = 30.0
UNPLUG_LIMIT = 600  # s to follow the unplug at most
STOP_RE = re.compile(r'unplug stopped at (\d+) MiB plugged .*?: ([^;\n]*)'
                     r'(?:; (\d+) MiB of it is online outside ZONE_MOVABLE)?')
OOM_RE = re.compile(r'Out of memory|Killed process|invoked oom-killer')
DRIVERS = ('ref', 'ours')
SCENARIOS = ('basic', 'inuse', 'nofit', 'bigblock', 'mmom', 'grow',
             'grow1024', 'policy')
HUGE_SIZE = 512 * GiB     # grow1024's device and request
HUGE_RATE_AT = (32, 400)  # GiB: where grow1024's rate is taken
HUGE_RATE_SPAN = 8        # GiB either side of those


def guest_cpu(g):
    """Guest system+irq+softirq time in seconds (USER_HZ = 100)."""
    f = g.check('head -n1 /proc/stat').split()
    return (int(f[3]) + int(f[6]) + int(f[7])) / 100.0


def memtotal_wants(base_kb, size, mmom):
    """The MemTotal values (kB) of a guest with size plugged: base_kb plus
    size; with mmom (booted with memmap_on_memory) also less the memmap of
    size, for a driver that places it in the added memory."""
    full_kb = base_kb + size // KiB
    return {full_kb, full_kb - size // MEMMAP_RATIO // KiB} if mmom \
        else {full_kb}


class Trace:
    """For the pictures: the guest over one run of a scenario, from the
    first request on. points are (s, QMP size in bytes, MemTotal - boot
    MemTotal in kB, or None where it was not read), requests (s, bytes).
    A traced run reads MemTotal at every poll, which costs the guest CPU
    time: it is an extra run, not one of the timed ones."""

    def __init__(self):
        self.t0 = self.base_kb = None
        self.points, self.requests = [], []

    def _now(self):
        if self.t0 is None:
            self.t0 = time.monotonic()
        return round(time.monotonic() - self.t0, 3)

    def request(self, size, base_kb):
        self.base_kb = base_kb
        self.requests.append((self._now(), size))

    def note(self, size, memtotal=None):
        """Record a QMP size (and a MemTotal) just read."""
        self.points.append((self._now(), size, None if memtotal is None
                            else memtotal - self.base_kb))

    def poll(self, g):
        """Read, record and return QMP size and MemTotal."""
        size, memtotal = g.plugged_size('vm0'), g.memtotal()
        self.note(size, memtotal)
        return size, memtotal

    def data(self):
        return {'points': self.points, 'requests': self.requests}


def wait_seen(g, size, base_kb, t0, timeout, mmom=False, trace=None):
    """Seconds from t0 until QMP reports size and MemTotal is one of
    memtotal_wants(). MemTotal is only read once QMP agrees: the polling
    itself costs guest CPU time, and should not while the driver works
    (but at every poll for a trace)."""
    want_kb = base_kb + size // KiB
    wants = memtotal_wants(base_kb, size, mmom)
    deadline = t0 + timeout
    memtotal = None
    while True:
        if trace:
            now, memtotal = trace.poll(g)
        else:
            now = g.plugged_size('vm0')
        if now == size:
            if not trace:
                memtotal = g.memtotal()
            if memtotal in wants:
                return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise GuestError(f'no QMP size {size} with MemTotal {want_kb} '
                             f'kB within {timeout}s; last: size {now}, '
                             f'MemTotal {memtotal} kB')
        time.sleep(0.02)


def resize(g, size, base_kb, timeout=STEP_TIMEOUT, mmom=False, trace=None):
    """Seconds until the guest shows size (wait_seen()), and the guest's
    CPU time meanwhile."""
    c0 = guest_cpu(g)
    t0 = time.monotonic()
    g.set_requested('vm0', size)
    if trace:
        trace.request(size, base_kb)
    took = wait_seen(g, size, base_kb, t0, timeout, mmom, trace)
    return took, guest_cpu(g) - c0


def settle(g, seen, quiet=5.0, limit=NOFIT_SETTLE_MAX, trace=None):
    """Wait until the size stops changing for quiet seconds (or limit);
    seen['size'] follows the last size read, also if the guest dies."""
    t_end = time.monotonic() + limit
    seen['size'] = g.plugged_size('vm0')
    since = time.monotonic()
    while time.monotonic() < t_end:
        time.sleep(0.5)
        size = trace.poll(g)[0] if trace else g.plugged_size('vm0')
        if size != seen['size']:
            seen['size'], since = size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return seen['size']


def fill_tmpfs(g, mib):
    # tmpfs defaults to half of the RAM at mount time: size it explicitly.
    g.check('mkdir -p /bench && mount -t tmpfs -o size=8g tmpfs /bench')
    g.check(f'dd if=/dev/zero of=/bench/fill bs=1M count={mib} 2>/dev/null',
            timeout=600)


def boot(module, name):
    return Guest(devices=[MemDevice('vm0', size='8G')], module=module,
                 online='online_movable', name=name)


def death(g, e):
    """What ended a guest: the panic message if the console has one."""
    m = re.search(r'Kernel panic - not syncing: ([^\n]*)', g.console_log())
    if m:
        return {'died': f'panic: {m.group(1).strip()}', 'panic': True}
    return {'died': str(e).splitlines()[0], 'panic': False}


def start(g, r, prefix):
    """Boot g. A guest that dies before any virtio_mem module is loaded
    (6.12 under TCG, now and then: an int3 oops while the kernel patches
    its own code) says nothing about the drivers: it is booted once more,
    and r notes it (prefix_boot_retry)."""
    try:
        g.start()
    except GuestDied as e:
        if 'vmtest: insmod /' in g.console_log():
            raise
        r[f'{prefix}_boot_retry'] = death(g, e)['died']
        g.start()


@contextlib.contextmanager
def recorded(g, r, prefix):
    """Start g for the body; a guest that dies or fails meanwhile is
    recorded in r under prefix_ instead of ending the benchmark, and it
    is stopped in any case. A boot that fails twice ends the benchmark."""
    start(g, r, prefix)
    try:
        yield
    except GuestDied as e:
        r.update({f'{prefix}_{k}': v for k, v in death(g, e).items()})
    except GuestError as e:
        r[f'{prefix}_error'] = str(e).splitlines()[0]
    finally:
        g.stop()
    r[f'{prefix}_console'] = g.console_path


def run_basic(module, rep, trace=None):
    """plug, idle unplug, unplug with a workload that fits: one boot."""
    r = {}
    g = boot(module, f'bench-{module}-{rep}')
    with recorded(g, r, 'basic'):
        r['boot_s'] = g.boot_time
        base = g.memtotal()
        r['plug_s'], r['plug_cpu_s'] = resize(g, 4 * GiB, base, trace=trace)
        r['unplug_s'], r['unplug_cpu_s'] = resize(g, 0, base, trace=trace)
        resize(g, 4 * GiB, base, trace=trace)
        fill_tmpfs(g, 1024)
        r['fits_s'], r['fits_cpu_s'] = resize(g, 1 * GiB, base, trace=trace)
        r['log_clean'] = not g.log_problems()
    return r


def run_inuse(module, rep, trace=None):
    """Unplug all 4 GiB while 512 MiB of tmpfs data sits in it: one boot."""
    r = {}
    g = boot(module, f'bench-inuse-{module}-{rep}')
    with recorded(g, r, 'inuse'):
        base = g.memtotal()
        resize(g, 4 * GiB, base, trace=trace)
        fill_tmpfs(g, 512)
        r['inuse_s'], r['inuse_cpu_s'] = resize(g, 0, base, trace=trace)
        g.check('rm /bench/fill && umount /bench')
        resize(g, 4 * GiB, base, trace=trace)
        fill_tmpfs(g, 512)
        r['inuse2_s'], r['inuse2_cpu_s'] = resize(g, 0, base, trace=trace)
        r['inuse_log_clean'] = not g.log_problems()
    return r


def run_nofit(module, rep, trace=None):
    """Unplug while 3 GiB must stay in a 1+4 GiB guest; then free it."""
    r = {'survived': False}
    seen = {}
    g = boot(module, f'bench-nofit-{module}-{rep}')
    start(g, r, 'nofit')
    try:
        base = g.memtotal()
        resize(g, 4 * GiB, base, trace=trace)
        fill_tmpfs(g, 3072)
        seen['size'] = 4 * GiB
        t0 = time.monotonic()
        g.set_requested('vm0', 0)
        if trace:
            trace.request(0, base)
        settle(g, seen, trace=trace)
        r['nofit_settle_s'] = time.monotonic() - t0
        c0 = guest_cpu(g)
        time.sleep(10)
        r['paused_cpu_s'] = guest_cpu(g) - c0
        # From the moment the workload starts to free its memory.
        t0 = time.monotonic()
        g.check('rm -f /bench/fill', timeout=60)
        r['survived'] = g.run('true', timeout=60)[0] == 0
        r['oom_kills'] = g.dmesg().count('Killed process')
        try:
            r['resume_s'] = wait_seen(g, 0, base, t0, RESUME_CAP,
                                      trace=trace)
        except GuestDied:
            raise
        except GuestError:
            r['resume_never'] = True    # alive, but not within the cap
        r['nofit_log_clean'] = not g.log_problems()
    except GuestDied as e:
        r['survived'] = False
        r.update({f'nofit_{k}': v for k, v in death(g, e).items()})
    except GuestError as e:
        r['nofit_error'] = str(e).splitlines()[0]
    finally:
        g.stop()
        if 'size' in seen:
            # Also when the guest died: what it gave back until then.
            r['nofit_unplugged_mib'] = (4 * GiB - seen['size']) // MiB
    r['nofit_console'] = g.console_path
    return r


def run_bigblock(module, rep, trace=None):
    """plug and idle unplug with 1 GiB device blocks (bigger than Linux's
    128 MiB memory blocks): one boot."""
    r = {}
    g = Guest(devices=[MemDevice('vm0', size='8G', block_size='1G')],
              module=module, online='online_movable',
              name=f'bench-bigblock-{module}-{rep}')
    with recorded(g, r, 'bigblock'):
        r['bigblock_boot_s'] = g.boot_time
        base = g.memtotal()
        r['bigblock_plug_s'], r['bigblock_plug_cpu_s'] = \
            resize(g, 4 * GiB, base, trace=trace)
        r['bigblock_unplug_s'], r['bigblock_unplug_cpu_s'] = \
            resize(g, 0, base, trace=trace)
        r['bigblock_log_clean'] = not g.log_problems()
    return r


def run_mmom(module, rep, trace=None):
    """plug and idle unplug of 4 GiB in 2 MiB blocks, booted with
    memmap_on_memory: a driver that uses it takes no memmap from the
    guest's memory (and MemTotal grows by 4 GiB less the memmap): one
    boot."""
    r = {}
    g = Guest(devices=[MemDevice('vm0', size='8G')], module=module,
              online='online_movable', cmdline=MMOM,
              name=f'bench-mmom-{module}-{rep}')
    with recorded(g, r, 'mmom'):
        r['mmom_boot_s'] = g.boot_time
        base = g.memtotal()
        r['mmom_plug_s'], r['mmom_plug_cpu_s'] = \
            resize(g, 4 * GiB, base, mmom=True, trace=trace)
        r['mmom_memmap_mib'] = (base + 4 * GiB // KiB - g.memtotal()) // KiB
        r['mmom_unplug_s'], r['mmom_unplug_cpu_s'] = \
            resize(g, 0, base, trace=trace)
        r['mmom_log_clean'] = not g.log_problems()
    return r


def gib(nbytes):
    """Bytes as GiB, rounded for the table and the raw results."""
    return round(nbytes / GiB, 3)


def gib_text(nbytes):
    return f'{nbytes / GiB:.2f}'.rstrip('0').rstrip('.')


class NoAnswer(GuestError):
    """A guest command ended without its answer (in a guest out of
    memory: the OOM killer took it, or what prints its output)."""


def ask(g, cmd, parse, timeout=GROW_CMD_TIMEOUT):
    """parse(output) of a guest command; NoAnswer if it failed or its
    output does not parse."""
    rc, out = g.run(cmd, timeout)
    try:
        if rc != 0:
            raise ValueError(f'rc={rc}')
        return parse(out)
    except (ValueError, IndexError, KeyError) as e:
        raise NoAnswer(f'guest command {cmd!r}: no answer ({e}); output '
                       f'{out[-200:]!r}') from None


def cpu_memtotal(out):
    """(guest CPU as guest_cpu(), MemTotal kB) from 'head -n1 /proc/stat;
    grep ^MemTotal: /proc/meminfo'."""
    stat, mt = out.splitlines()[-2:]
    f = stat.split()
    if f[0] != 'cpu' or not mt.startswith('MemTotal:'):
        raise ValueError('garbled')
    return (int(f[3]) + int(f[6]) + int(f[7])) / 100.0, int(mt.split()[1])


def said_alive(out):
    if out.split()[:1] != ['alive']:
        raise ValueError('not alive')


def follow_growth(g, base_kb, t0, seen, mmom, trace=None, target=GROW_SIZE):
    """Follow the growth to target (GROW_SIZE) requested at t0.

    The device's size over QMP is polled (host side: no guest CPU time);
    MemTotal only once that size stood still for a second or reached
    GROW_SIZE. Returns 'reached' as soon as QMP shows GROW_SIZE and MemTotal
    is base_kb plus that (with mmom, the memmap_on_memory variant, also:
    minus its memmap, which MemTotal leaves out then), 'stopped' once
    neither changed for GROW_QUIET seconds, 'limit' after GROW_LIMIT.

    seen follows the last values, also if the guest dies: 'size' (QMP),
    'grew_s' (seconds from t0 to its last change), 'memtotal' (kB),
    'memtotal_s' and 'cpu' (guest_cpu()) at the first read of that
    MemTotal, 'reached_s'."""
    deadline = t0 + GROW_LIMIT
    want = memtotal_wants(base_kb, target, mmom)
    size_at = mt_at = t0
    mt_read = 0.0
    while True:
        # A trace costs nothing more here: it records what is read anyway.
        size = g.plugged_size('vm0')
        if trace:
            trace.note(size)
        now = time.monotonic()
        if size != seen.get('size'):
            seen['size'], seen['grew_s'], size_at = size, now - t0, now
        # MemTotal: as fast as wait_seen() while it should be about to
        # reach the full size, else once a second, after 10 s every 5 s
        # (each read is a process in a guest that may be short of memory).
        fast = size == target and now - size_at < 10
        every = 0 if fast else 1.0 if now - size_at < 10 else 5.0
        if (size == target or now - size_at >= 1.0) and \
                now - mt_read >= every:
            cpu, mt = ask(g, 'head -n1 /proc/stat; '
                          'grep ^MemTotal: /proc/meminfo', cpu_memtotal)
            mt_read = time.monotonic()
            if trace:
                trace.note(size, mt)
            if mt != seen.get('memtotal'):
                seen.update(memtotal=mt, memtotal_s=mt_read - t0, cpu=cpu)
                mt_at = mt_read
            if size == target and mt in want:
                seen['reached_s'] = mt_read - t0
                return 'reached'
            if now - size_at >= GROW_QUIET and mt_read - mt_at >= GROW_QUIET:
                return 'stopped'
        if now > deadline:
            return 'limit'
        time.sleep(0.02 if fast else 0.25)


def grow_state(g, r, p):
    """How the guest is after the growth, in the table's words; also the
    death (panic message) or hang entries of r."""
    if r.get(f'{p}_error'):
        return 'error'
    if g.alive and (r.get(f'{p}_hung') or r.get(f'{p}_noanswer')):
        # Something failed: a guest on its way out gets the time to die.
        end = time.monotonic() + 10
        while g.alive and time.monotonic() < end:
            time.sleep(0.5)
    if g.proc is not None and g.proc.poll() is not None:
        # QEMU exited by itself (a panic with -no-reboot)
        r.update({f'{p}_{k}': v for k, v in death(
            g, GuestDied(f'QEMU exited with rc={g.proc.returncode}'))
            .items()})
        r.pop(f'{p}_hung', None)
        return 'guest died'
    if r.get(f'{p}_hung'):
        return 'guest hung'
    if r.get(f'{p}_noanswer'):
        return 'commands fail'
    return 'alive'


def run_grow(module, rep, phase, cmdline, trace=None):
    """Request all of a 32 GiB device from a 512 MiB guest; follow it until
    it stops growing, then see what state the guest is in."""
    p = phase
    r = {f'{p}_reached': False}
    seen = {}
    g = Guest(mem='512M', maxmem='40G',
              devices=[MemDevice('vm0', size='32G', reserve=False)],
              module=module, online='online_movable', cmdline=cmdline,
              name=f'bench-{phase}-{module}-{rep}')
    end = None
    base = None

    def at_end():
        if g.alive and 'size' in seen:
            # A guest that hangs still has QEMU tell the device's size.
            with contextlib.suppress(GuestError, OSError):
                seen['size'] = g.plugged_size('vm0')

    with followed(g, r, p, at_end) as fate:
        start_recorded(g, r, p)
        r[f'{p}_boot_s'] = g.boot_time
        if cmdline:
            r[f'{p}_mmom_enabled'] = ask(
                g, 'cat /sys/module/memory_hotplug/parameters/'
                'memmap_on_memory', lambda o: o.strip() == 'Y')
        base = g.memtotal()
        c0 = guest_cpu(g)
        t0 = time.monotonic()
        g.set_requested('vm0', GROW_SIZE)
        if trace:
            trace.request(GROW_SIZE, base)
        end = follow_growth(g, base, t0, seen, bool(cmdline), trace)
        r[f'{p}_reached'] = end == 'reached'
        if end == 'reached':
            r[f'{p}_s'] = seen['reached_s']
        if 'cpu' in seen:
            r[f'{p}_cpu_s'] = seen['cpu'] - c0
            r[f'{p}_memtotal_s'] = seen['memtotal_s']
        # Alive: a command answers (with its output).
        ask(g, 'echo alive', said_alive)
        r[f'{p}_memavail_gib'] = ask(
            g, 'grep ^MemAvailable: /proc/meminfo',
            lambda o: gib(int(o.split()[1]) * KiB))
        attrs = g.vmem_sysfs('vm0')
        r[f'{p}_sysfs_read'] = True
        for k in ('plug_wait', 'memmap_stops'):
            if k in attrs:
                r[f'{p}_{k}'] = attrs[k]
    state = fate['state']
    r[f'{p}_alive'] = state == 'alive'
    oom = fate['oom']
    r[f'{p}_oom'] = oom
    if 'size' in seen:
        r[f'{p}_plugged_gib'] = gib(seen['size'])
        r[f'{p}_stop_s'] = seen['grew_s']
    if 'memtotal' in seen and base is not None:
        r[f'{p}_memtotal_gib'] = gib((seen['memtotal'] - base) * KiB)
    if state == 'alive' and oom:
        state = 'OOM'
    elif oom and state != 'error':
        state += ' (OOM)'
    r[f'{p}_guest'] = state
    # How the growth ended, for the time figure it has none for.
    at = f' at {gib_text(seen["size"])} GiB' if 'size' in seen else ''
    if end == 'reached':
        pass
    elif state == 'error':
        r[f'{p}_outcome'] = 'error'
    elif state == 'alive' and end == 'stopped' and \
            seen.get('size') == GROW_SIZE:
        r[f'{p}_outcome'] = 'MemTotal stopped at +' + \
            gib_text((seen['memtotal'] - base) * KiB) + ' GiB'
    elif state == 'alive' and end == 'stopped':
        wait = r.get(f'{p}_plug_wait')
        r[f'{p}_outcome'] = f'stopped{at}' + \
            (f' ({wait})' if wait and wait != 'none' else '')
    elif state == 'alive' and end == 'limit':
        r[f'{p}_outcome'] = f'still growing{at} after {GROW_LIMIT}s'
    elif state == 'OOM':
        r[f'{p}_outcome'] = f'OOM{at}'
    else:
        r[f'{p}_outcome'] = state.replace(' (OOM)', '') + at + \
            (' (OOM)' if oom else '')
    r[f'{p}_console'] = g.console_path
    return r


def run_grow_all(module, rep, traces=None):
    """Both grow variants; with traces (a dict), each one's Trace in it."""
    r = {}
    for phase, cmdline in GROW_VARIANTS:
        trace = None if traces is None else traces.setdefault(phase, Trace())
        r.update(run_grow(module, rep, phase, cmdline, trace))
    return r


def start_recorded(g, r, p):
    """Start g; a failure to boot is recorded in r as p's error."""
    try:
        start(g, r, p)
    except GuestError as e:
        r[f'{p}_error'] = str(e).splitlines()[0]
        raise


@contextlib.contextmanager
def followed(g, r, p, at_end=None):
    """The body runs on guest g. What ends it early (a command without an
    answer, the guest's death or hang) is recorded in r under prefix p;
    then at_end() records what must be kept even then, the guest's state
    (grow_state()) goes into the yielded dict as 'state', g is stopped,
    and its OOM kills are counted ('oom': any OOM message)."""
    out = {'state': 'error'}
    try:
        yield out
    except NoAnswer as e:
        r[f'{p}_noanswer'] = str(e).splitlines()[0]
    except GuestDied:
        pass                            # grow_state() tells
    except GuestError as e:
        if f'{p}_error' not in r:
            r[f'{p}_hung'] = str(e).splitlines()[0]
    finally:
        if at_end:
            at_end()
        try:
            out['state'] = grow_state(g, r, p)
        finally:
            g.stop()
    log = g.console_log()
    out['oom'] = bool(OOM_RE.search(log))
    if f'{p}_error' not in r:
        # The console log on the host, also after a death; its loglevel
        # prints the OOM killer's messages.
        r[f'{p}_oom_kills'] = log.count('Killed process')


def rate_at(points, at_gib):
    """GiB/s of QMP's size between at_gib - HUGE_RATE_SPAN and at_gib +
    HUGE_RATE_SPAN, from a Trace's points; None if it never got there."""
    lo, hi = (at_gib - HUGE_RATE_SPAN) * GiB, (at_gib + HUGE_RATE_SPAN) * GiB
    t_lo = next((t for t, size, _ in points if size >= lo), None)
    t_hi = next((t for t, size, _ in points if size >= hi), None)
    if t_lo is None or t_hi is None:
        return None
    return round(2 * HUGE_RATE_SPAN / max(t_hi - t_lo, 0.01), 2)


def qemu_rss_gib(g):
    with open(f'/proc/{g.proc.pid}/status') as f:
        kb = next(int(ln.split()[1]) for ln in f if ln.startswith('VmRSS:'))
    return gib(kb * KiB)


def run_grow1024(module, rep, trace=None):
    """Grow a 512 MiB guest 1024x at once, load it at the top, and shrink
    it back to 0."""
    p = 'huge'
    r = {}
    seen, shrunk = {}, {}
    tr = Trace()
    g = Guest(mem='512M', maxmem=f'{HUGE_SIZE // GiB + 8}G',
              devices=[MemDevice('vm0', size=f'{HUGE_SIZE // GiB}G',
                                 reserve=False)],
              module=module, online='online_movable', cmdline=MMOM,
              name=f'bench-grow1024-{module}-{rep}')

    def at_end():
        if 'size' in shrunk:
            r[f'{p}_left_gib'] = gib(shrunk['size'])

    with followed(g, r, p, at_end) as fate:
        start_recorded(g, r, p)
        base = g.memtotal()
        t0 = time.monotonic()
        g.set_requested('vm0', HUGE_SIZE)
        tr.request(HUGE_SIZE, base)
        end = follow_growth(g, base, t0, seen, True, tr, HUGE_SIZE)
        if end == 'reached':
            r[f'{p}_s'] = seen['reached_s']
        r[f'{p}_plugged_gib'] = gib(seen['size'])
        for at in HUGE_RATE_AT:
            rate = rate_at(tr.points, at)
            if rate is not None:
                r[f'{p}_rate{at}'] = rate
        r[f'{p}_rss_gib'] = qemu_rss_gib(g)
        attrs = g.vmem_sysfs('vm0')
        r[f'{p}_sysfs_read'] = True
        if 'plug_wait' in attrs:
            r[f'{p}_plug_wait'] = attrs['plug_wait']
        # A workload at the top: 4 GiB written and deleted, 128 MiB kept.
        fill_tmpfs(g, 4096)
        g.check('dd if=/dev/urandom of=/bench/keep bs=1M count=128 '
                '2>/dev/null && md5sum /bench/keep > /bench/keep.md5 && '
                'rm /bench/fill', timeout=600)
        r[f'{p}_workload_ok'] = True
        t0 = time.monotonic()
        g.set_requested('vm0', 0)
        follow_unplug(g, t0, shrunk)
        r[f'{p}_shrink_s'] = shrunk['shrank_s']
        r[f'{p}_intact'] = g.run('md5sum -c /bench/keep.md5',
                                 timeout=300)[0] == 0
        ask(g, 'echo alive', said_alive)
        r[f'{p}_log_clean'] = not g.log_problems()
    r[f'{p}_guest'] = 'OOM' if fate['state'] == 'alive' and fate['oom'] \
        else fate['state']
    if 'size' in seen and f'{p}_s' not in r:
        r[f'{p}_outcome'] = f'stopped at {gib_text(seen["size"])} GiB'
    r[f'{p}_trace'] = tr.data()
    r[f'{p}_console'] = g.console_path
    return r


def zone_sizes(out):
    """{zone: GiB present} from the awk summary of /proc/zoneinfo."""
    sizes = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[1].isdigit():
            sizes[f[0]] = sizes.get(f[0], 0) + int(f[1]) * 4096
    if not sizes:
        raise ValueError('no zones')
    return {z: gib(n) for z, n in sizes.items()}


ZONES_CMD = ("awk '$1 == \"Node\" { z = $4 } $1 == \"present\" "
             "{ print z, $2 }' /proc/zoneinfo")


def follow_unplug(g, t0, seen):
    """Follow an unplug to 0 requested at t0 (host side, QMP only): returns
    'reached' when the device's size is 0, 'stopped' once it stood still
    for UNPLUG_QUIET seconds, 'limit' after UNPLUG_LIMIT. seen: the
    last 'size' and 'shrank_s', seconds from t0 to its last change."""
    since = time.monotonic()
    while True:
        size = g.plugged_size('vm0')
        now = time.monotonic()
        if size != seen.get('size'):
            seen['size'], seen['shrank_s'], since = size, now - t0, now
        if size == 0:
            return 'reached'
        if now - since >= UNPLUG_QUIET:
            return 'stopped'
        if now - t0 > UNPLUG_LIMIT:
            return 'limit'
        time.sleep(0.25)


def run_policy(module, rep, phase, online, cmdline):
    """Grow a 512 MiB guest 64x under one online policy, load it, and
    unplug everything: how far that gets, why it stops, the guest after."""
    p = phase
    r = {}
    grown, shrunk = {}, {}
    g = Guest(mem='512M', maxmem='40G',
              devices=[MemDevice('vm0', size='32G', reserve=False)],
              module=module, online=online, cmdline=cmdline,
              name=f'bench-{phase}-{module}-{rep}')

    def at_end():
        if 'size' in shrunk:
            # Also when the guest died: how far it got until then.
            r[f'{p}_left_gib'] = gib(shrunk['size'])
            r[f'{p}_shrink_s'] = shrunk['shrank_s']

    with followed(g, r, p, at_end) as fate:
        start_recorded(g, r, p)
        base = g.memtotal()
        t0 = time.monotonic()
        g.set_requested('vm0', GROW_SIZE)
        end = follow_growth(g, base, t0, grown, True)
        r[f'{p}_grown_gib'] = gib(grown['size'])
        if end == 'reached':
            r[f'{p}_grow_s'] = grown['reached_s']
        zones = ask(g, ZONES_CMD, zone_sizes)
        r[f'{p}_movable_gib'] = zones.get('Movable', 0.0)
        r[f'{p}_kernel_gib'] = round(sum(
            v for z, v in zones.items() if z != 'Movable'), 3)
        # Data that can move, and slab (inodes, dentries) that cannot.
        fill_tmpfs(g, 128)
        g.check('mkdir /bench/files && cd /bench/files && '
                'seq 20000 | xargs touch', timeout=300)
        t0 = time.monotonic()
        g.set_requested('vm0', 0)
        r[f'{p}_unplug_end'] = follow_unplug(g, t0, shrunk)
        ask(g, 'echo alive', said_alive)
        attrs = g.vmem_sysfs('vm0')
        r[f'{p}_sysfs_read'] = True
        if 'unplug_wait' in attrs:
            r[f'{p}_unplug_wait'] = attrs['unplug_wait']
        stops = STOP_RE.findall(g.dmesg())
        if stops:
            r[f'{p}_stop_msg_mib'] = int(stops[-1][0])
            r[f'{p}_stop_kernel_mib'] = int(stops[-1][2] or 0)
        r[f'{p}_log_clean'] = not g.log_problems()
    r[f'{p}_guest'] = 'OOM' if fate['state'] == 'alive' and fate['oom'] \
        else fate['state']
    r[f'{p}_why'] = policy_why(r, p)
    r[f'{p}_console'] = g.console_path
    return r


def policy_why(r, p):
    """How the unplug to 0 ended, in the table's words."""
    if f'{p}_left_gib' not in r:
        return 'not run'
    if r[f'{p}_left_gib'] == 0:
        return 'reached 0'
    wait = r.get(f'{p}_unplug_wait')
    why = f'stopped: {wait}' if wait else 'stopped'
    if r.get(f'{p}_stop_kernel_mib'):
        why += f', {r[f"{p}_stop_kernel_mib"]} MiB in kernel zones'
    return why


def run_policy_all(module, rep, trace=None):
    """The policy scenario: each online policy, one boot each."""
    r = {}
    for phase, online, cmdline in POLICIES:
        r.update(run_policy(module, rep, phase, online, cmdline))
    return r


RUNNERS = {'basic': run_basic, 'inuse': run_inuse, 'nofit': run_nofit,
           'bigblock': run_bigblock, 'mmom': run_mmom,
           'grow': run_grow_all, 'grow1024': run_grow1024,
           'policy': run_policy_all}


def labelled(name, phase, rows):
    """Table rows of one phase: (label, key) from (what, key suffix)."""
    return [(f'{name}: {what}', f'{phase}_{key}') for what, key in rows]


def grow_rows(phase, name):
    return labelled(name, phase, (
        ('0 -> 32 GiB (s)', 's'),
        ('growth stopped after (s)', 'stop_s'),
        ('plugged, QMP (GiB)', 'plugged_gib'),
        ('MemTotal growth (GiB)', 'memtotal_gib'),
        ('guest afterwards', 'guest'),
        ('OOM kills', 'oom_kills'),
        ('MemAvailable after (GiB)', 'memavail_gib'),
        ('plug_wait', 'plug_wait'),
        ('memmap_stops', 'memmap_stops')))


def policy_rows(phase):
    return labelled(POLICY_NAMES[phase], phase, (
        ('0 -> 32 GiB (s)', 'grow_s'),
        ('grown to, QMP (GiB)', 'grown_gib'),
        ('ZONE_MOVABLE at the top (GiB)', 'movable_gib'),
        ('other zones at the top (GiB)', 'kernel_gib'),
        ('unplug to 0: left plugged (GiB)', 'left_gib'),
        ('unplug: last change after (s)', 'shrink_s'),
        ('unplug ended', 'why'),
        ('guest afterwards', 'guest'),
        ('OOM kills', 'oom_kills')))


# (label, key, scenario, phase): phase is the part of a scenario that one
# guest runs, the prefix of its death, hang and error entries.
ROWS = [(label, key, 'basic', 'basic') for label, key in (
    ('plug 0 -> 4 GiB (s)', 'plug_s'),
    ('unplug 4 GiB -> 0, idle (s)', 'unplug_s'),
    ('unplug, workload fits (s)', 'fits_s'),
)] + [(label, key, 'inuse', 'inuse') for label, key in (
    ('in use: unplug 4 GiB -> 0, 512 MiB tmpfs (s)', 'inuse_s'),
    ('in use, again (boot memory touched) (s)', 'inuse2_s'),
)] + [(label, key, 'nofit', 'nofit') for label, key in (
    ('no-fit: unplugged (MiB)', 'nofit_unplugged_mib'),
    ('no-fit: guest survived (runs)', 'survived'),
    ('no-fit: OOM kills', 'oom_kills'),
    ('no-fit: 0 reached after free (s)', 'resume_s'),
)] + [(label, key, 'bigblock', 'bigblock') for label, key in (
    ('bigblock: plug 0 -> 4 GiB (s)', 'bigblock_plug_s'),
    ('bigblock: unplug 4 GiB -> 0, idle (s)', 'bigblock_unplug_s'),
)] + [(label, key, 'mmom', 'mmom') for label, key in (
    ('mmom: plug 0 -> 4 GiB (s)', 'mmom_plug_s'),
    ('mmom: unplug 4 GiB -> 0, idle (s)', 'mmom_unplug_s'),
    ('mmom: memmap in added memory (MiB)', 'mmom_memmap_mib'),
)] + [(label, key, 'grow', 'grow')
      for label, key in grow_rows('grow', 'grow')] \
  + [(label, key, 'grow', 'grow_mmom')
     for label, key in grow_rows('grow_mmom', 'grow mmom')
     + [('grow mmom: memmap_on_memory on (runs)', 'grow_mmom_mmom_enabled')]] \
  + [
] + [(label, key, 'grow1024', 'huge') for label, key in (
    ('grow 1024x: 0 -> 512 GiB (s)', 'huge_s'),
    ('grow 1024x: plugged, QMP (GiB)', 'huge_plugged_gib'),
    ('grow 1024x: GiB/s around 32 GiB', 'huge_rate32'),
    ('grow 1024x: GiB/s around 400 GiB', 'huge_rate400'),
    ('grow 1024x: QEMU RSS at the top (GiB)', 'huge_rss_gib'),
    ('grow 1024x: plug_wait at the top', 'huge_plug_wait'),
    ('grow 1024x: workload at the top', 'huge_workload_ok'),
    ('grow 1024x: -> 0: last change after (s)', 'huge_shrink_s'),
    ('grow 1024x: -> 0: left plugged (GiB)', 'huge_left_gib'),
    ('grow 1024x: 128 MiB kept intact', 'huge_intact'),
    ('grow 1024x: guest afterwards', 'huge_guest'),
    ('grow 1024x: OOM kills', 'huge_oom_kills'),
)] + [(label, key, 'policy', p)
       for p, _, _ in POLICIES for label, key in policy_rows(p)] + [
    ('CPU: plug 4 GiB (s)', 'plug_cpu_s', 'basic', 'basic'),
    ('CPU: unplug 4 GiB idle (s)', 'unplug_cpu_s', 'basic', 'basic'),
    ('CPU: unplug, workload fits (s)', 'fits_cpu_s', 'basic', 'basic'),
    ('CPU: in use: unplug 4 GiB (s)', 'inuse_cpu_s', 'inuse', 'inuse'),
    ('CPU: in use, again (s)', 'inuse2_cpu_s', 'inuse', 'inuse'),
    ('CPU: 10 s paused under pressure (s)', 'paused_cpu_s', 'nofit',
     'nofit'),
    ('CPU: bigblock plug 4 GiB (s)', 'bigblock_plug_cpu_s', 'bigblock',
     'bigblock'),
    ('CPU: bigblock unplug 4 GiB idle (s)', 'bigblock_unplug_cpu_s',
     'bigblock', 'bigblock'),
    ('CPU: mmom plug 4 GiB (s)', 'mmom_plug_cpu_s', 'mmom', 'mmom'),
    ('CPU: mmom unplug 4 GiB idle (s)', 'mmom_unplug_cpu_s', 'mmom', 'mmom'),
    ('CPU: grow (s)', 'grow_cpu_s', 'grow', 'grow'),
    ('CPU: grow mmom (s)', 'grow_mmom_cpu_s', 'grow', 'grow_mmom'),
]
PHASE = {key: phase for _, key, _, phase in ROWS}
GROW_PHASES = {phase for phase, _ in GROW_VARIANTS}
POLICY_PHASES = {phase for phase, _, _ in POLICIES}
# Attributes only our driver has.
SYSFS_KEYS = {f'{p}_{k}' for p in GROW_PHASES
              for k in ('plug_wait', 'memmap_stops')}
NOTES = {
    'bigblock': 'bigblock: 1 GiB guest, one 8 GiB device with 1 GiB '
                'device blocks',
    'mmom': 'mmom: 1 GiB guest, one 8 GiB device with 2 MiB device '
            f'blocks, booted with {MMOM}',
    'grow': 'grow: 512 MiB guest, one 32 GiB device, all of it requested\n'
            f'grow mmom: the same, booted with {MMOM}',
    'grow1024': 'grow 1024x: 512 MiB guest, one 512 GiB device, booted '
                f'with {MMOM}',
    'policy': 'policies: 512 MiB guest, one 32 GiB device, booted with '
              f'{MMOM}; 0 -> 32 GiB, 128 MiB tmpfs + 20000 files, -> 0',
}


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def missing_reason(r, key):
    """Why run r has no value for key, in the table's words."""
    phase = PHASE[key]
    if phase in GROW_PHASES and key == f'{phase}_s' \
            and r.get(f'{phase}_outcome'):
        return r[f'{phase}_outcome']
    if key == 'huge_s' and r.get('huge_outcome'):
        return r['huge_outcome']
    if key == 'huge_plug_wait' and r.get('huge_sysfs_read'):
        return 'n/a'
    if phase in POLICY_PHASES and key == f'{phase}_grow_s' \
            and f'{phase}_grown_gib' in r:
        return f'stopped at {gib_text(r[f"{phase}_grown_gib"] * GiB)} GiB'
    if r.get(f'{phase}_died'):
        return 'guest panicked' if r.get(f'{phase}_panic') else 'guest died'
    if r.get(f'{phase}_hung'):
        return 'guest hung'
    if key == 'resume_s' and r.get('resume_never'):
        return 'never'
    if r.get(f'{phase}_error'):
        return 'error'
    if key in SYSFS_KEYS and r.get(f'{phase}_sysfs_read'):
        return 'n/a'
    return 'not run'


def counted(counts):
    """'a' if every run says a, else '2x a, 1x b'."""
    if len(counts) == 1:
        return next(iter(counts))
    return ', '.join(f'{n}x {w}' for w, n in counts.items())


def summary(values, key):
    """(text, median or None) of key over the runs of one driver."""
    if not values:
        return '-', None
    present = [v[key] for v in values if key in v]
    if present and all(isinstance(x, bool) for x in present):
        # A yes/no per run (survived): how many of the runs said yes.
        return f'{sum(present)}/{len(present)}', None
    missing = {}
    for v in values:
        if not is_num(v.get(key)) and not isinstance(v.get(key), str):
            why = missing_reason(v, key)
            missing[why] = missing.get(why, 0) + 1
    if present and all(isinstance(x, str) for x in present):
        words = {}
        for x in present:
            words[x] = words.get(x, 0) + 1
        text = counted(words)
        for why, n in missing.items():
            text += f' +{n} {why}'
        return text, None
    nums = [v[key] for v in values if is_num(v.get(key))]
    if not nums:
        return f'({counted(missing)})', None
    med = statistics.median(nums)
    if all(isinstance(x, int) for x in nums):
        text = f'{med:g}' if min(nums) == max(nums) else \
            f'{med:g} [{min(nums)}-{max(nums)}]'
    else:
        text = f'{med:.2f} [{min(nums):.2f}-{max(nums):.2f}]'
    for why, n in missing.items():
        text += f' +{n} {why}'
    # A figure taken up to the guest's death (how much it unplugged).
    phase = PHASE[key]
    ends = [('hang' if v.get(f'{phase}_hung') else
             'panic' if v.get(f'{phase}_panic') else 'death')
            for v in values if is_num(v.get(key))
            and (v.get(f'{phase}_died') or v.get(f'{phase}_hung'))]
    if ends:
        end = ends[0] if len(set(ends)) == 1 else 'death'
        text += f' (until {end})' if len(ends) == len(nums) else \
            f' ({len(ends)}x until {end})'
    return text, med


def table(results, scenarios=SCENARIOS):
    rows = [(label, key) for label, key, scen, _ in ROWS
            if scen in scenarios]
    cells = []
    for label, key in rows:
        ref_t, ref_m = summary(results.get('ref', []), key)
        our_t, our_m = summary(results.get('ours', []), key)
        ratio = (f'{our_m / ref_m:.2f}' if is_num(ref_m) and is_num(our_m)
                 and ref_m else '-')
        cells.append((label, ref_t, our_t, ratio))
    # Wider columns only where a cell needs it (words, not figures).
    lw = max([38] + [len(c[0]) for c in cells])
    w = max([24] + [len(t) for c in cells for t in c[1:3]])
    lines = [f'{"figure":{lw}} {"in-tree (ref)":>{w}} {"ours":>{w}} '
             f'{"ours/ref":>9}']
    for label, ref_t, our_t, ratio in cells:
        lines.append(f'{label:{lw}} {ref_t:>{w}} {our_t:>{w}} {ratio:>9}')
    notes = [NOTES[s] for s in SCENARIOS if s in scenarios and s in NOTES]
    if notes:
        lines.append('')
        lines += notes
    return '\n'.join(lines)


# The time figures of the plot (not grow's: mostly words, and minutes).
PLOT = [('plug', 'plug_s', 'basic'), ('unplug idle', 'unplug_s', 'basic'),
        ('unplug fits', 'fits_s', 'basic'),
        ('unplug in use', 'inuse_s', 'inuse'),
        ('in use, again', 'inuse2_s', 'inuse'),
        ('resume no-fit', 'resume_s', 'nofit'),
        ('bigblock plug', 'bigblock_plug_s', 'bigblock'),
        ('bigblock unplug', 'bigblock_unplug_s', 'bigblock'),
        ('mmom plug', 'mmom_plug_s', 'mmom'),
        ('mmom unplug', 'mmom_unplug_s', 'mmom')]


def svg(results, path, scenarios=SCENARIOS):
    """Grouped bars of the time figures, median per driver."""
    keys = [(label, key) for label, key, scen in PLOT if scen in scenarios]
    meds = {d: [summary(results.get(d, []), k)[1] or 0 for _, k in keys]
            for d in DRIVERS}
    top = max(max(v, default=0) for v in meds.values()) or 1
    w, h, left, base = max(640, 240 + 140 * len(keys)), 320, 50, 270
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20">virtio-mem: seconds (median), '
           'in-tree vs ours (0: no value)</text>',
           f'<line x1="{left}" y1="{base}" x2="{w - 10}" y2="{base}" '
           'stroke="black"/>']
    colors = {'ref': '#999999', 'ours': '#2a6fb0'}
    for i, (label, _) in enumerate(keys):
        x0 = left + 20 + i * 140
        for j, d in enumerate(DRIVERS):
            v = meds[d][i]
            bh = 220 * v / top
            x = x0 + j * 45
            out.append(f'<rect x="{x}" y="{base - bh:.1f}" width="40" '
                       f'height="{bh:.1f}" fill="{colors[d]}"/>')
            out.append(f'<text x="{x}" y="{base - bh - 4:.1f}">{v:.1f}</text>')
        out.append(f'<text x="{x0}" y="{base + 18}">{label}</text>')
    out.append(f'<text x="{w - 150}" y="40" fill="{colors["ref"]}">'
               'in-tree (ref)</text>')
    out.append(f'<text x="{w - 150}" y="56" fill="{colors["ours"]}">ours</text>')
    out.append('</svg>')
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')


# What each picture shows (its scenario's steps).
TRACE_TITLES = {
    'basic': '0 -> 4 GiB, -> 0 idle, -> 4 GiB, 1 GiB tmpfs, -> 1 GiB',
    'inuse': '0 -> 4 GiB, 512 MiB tmpfs, -> 0, twice',
    'nofit': '0 -> 4 GiB, 3 GiB tmpfs, -> 0, tmpfs freed',
    'bigblock': '1 GiB device blocks: 0 -> 4 GiB -> 0',
    'mmom': 'memmap_on_memory: 0 -> 4 GiB -> 0',
    'grow': '512 MiB guest: 0 -> 32 GiB',
    'grow_mmom': '512 MiB guest, memmap_on_memory: 0 -> 32 GiB',
    'grow1024': '512 MiB guest, memmap_on_memory: 0 -> 512 GiB -> 0',
}


def traced_runs(args, traces):
    """One more run of each scenario per driver, reading MemTotal at every
    poll, for the pictures (grow's come from its first timed run, which
    reads MemTotal anyway). Not in the table: the reads cost guest time."""
    for scen in args.scenarios:
        if scen in ('grow', 'grow1024', 'policy'):
            continue
        for module in args.drivers:
            print(f'trace: {scen} {module}', file=sys.stderr, flush=True)
            tr = Trace()
            r = RUNNERS[scen](module, 'trace', trace=tr)
            traces.setdefault(scen, {})[module] = dict(tr.data(), result=r)


def _sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def environment(args):
    """Where the figures come from: machine, QEMU, kernel, drivers."""
    cpu = platform.processor()
    with open('/proc/cpuinfo') as f:
        m = re.search(r'^model name\s*:\s*(.*)$', f.read(), re.M)
        if m:
            cpu = m.group(1).strip()
    qemu = os.environ.get('VMTEST_QEMU', 'qemu-system-x86_64')
    qemu_version = subprocess.run([qemu, '--version'], capture_output=True,
                                  text=True).stdout.splitlines()[0]

    def git(*a):
        return subprocess.run(['git', '-C', REPO, *a], capture_output=True,
                              text=True).stdout.strip()

    kver = kernel_version()
    return {
        'date': datetime.datetime.now(datetime.timezone.utc)
        .strftime('%Y-%m-%d %H:%M UTC'),
        'cpu': cpu, 'cpus': os.cpu_count(),
        'qemu': qemu_version, 'accel': 'tcg',
        'guest_kernel': kver,
        'commit': git('rev-parse', 'HEAD'),
        'driver_sources_modified': bool(git('status', '--porcelain', '--',
                                            'drivers', 'include')),
        'ours_ko': ours_ko(),
        'ours_ko_sha256': _sha256(ours_ko()),
        'ref_ko_sha256': _sha256(ref_ko(kver)),
        'reps': args.reps, 'scenarios': args.scenarios,
        'drivers': args.drivers,
    }


def header(env):
    return (f'{env["date"]}, {env["cpu"]} ({env["cpus"]} CPUs), '
            f'{env["qemu"]} ({env["accel"].upper()}), guest kernel '
            f'{env["guest_kernel"]}, commit {env["commit"][:12]}'
            + (' with modified driver sources'
               if env['driver_sources_modified'] else '')
            + ('' if env['ours_ko'] == os.path.join(
                REPO, 'drivers', 'virtio', 'virtio_mem.ko')
               else f' (ours: {env["ours_ko"]})')
            + f'; {env["reps"]} repetitions, median [range]')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=3,
                    help='repetitions per driver (default 3)')
    ap.add_argument('--scenarios', default=','.join(SCENARIOS),
                    help='comma-separated subset of: ' + ', '.join(SCENARIOS))
    ap.add_argument('--drivers', default=','.join(DRIVERS),
                    help='comma-separated subset of: ' + ', '.join(DRIVERS))
    ap.add_argument('--out', default=os.path.join(HERE, '.build', 'bench'),
                    help='where the plot goes')
    ap.add_argument('--results', default=RESULTS_DIR,
                    help='where the raw results and the table go')
    ap.add_argument('--no-trace', action='store_true',
                    help='no extra traced run per scenario, no pictures')
    args = ap.parse_args()
    args.scenarios = [s for s in args.scenarios.split(',') if s]
    args.drivers = [d for d in args.drivers.split(',') if d]
    for what, got, known in (('scenario', args.scenarios, SCENARIOS),
                             ('driver', args.drivers, DRIVERS)):
        bad = set(got) - set(known)
        if bad or not got:
            ap.error(f'unknown or no {what}: {sorted(bad)}')
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    env = environment(args)

    results = {d: [] for d in args.drivers}
    traces = {}          # {scenario or grow phase: {driver: trace}}
    for rep in range(args.reps):
        for module in args.drivers:
            print(f'rep {rep + 1}/{args.reps}: {module}', file=sys.stderr,
                  flush=True)
            r = {}
            for scen in SCENARIOS:
                if scen not in args.scenarios:
                    continue
                print(f'  {scen}', file=sys.stderr, flush=True)
                if scen == 'grow' and rep == 0 and not args.no_trace:
                    got = {}
                    r.update(run_grow_all(module, rep, got))
                    for phase, tr in got.items():
                        traces.setdefault(phase, {})[module] = tr.data()
                else:
                    r.update(RUNNERS[scen](module, rep))
                # grow1024's picture comes from its first run.
                trace = r.pop('huge_trace', None)
                if trace and rep == 0 and not args.no_trace:
                    traces.setdefault('grow1024', {})[module] = trace
            results[module].append(r)
            print(f'  {json.dumps(r)}', file=sys.stderr, flush=True)
    if not args.no_trace:
        traced_runs(args, traces)

    text = f'{header(env)}\n\n{table(results, args.scenarios)}\n'
    # To the second: make bench runs one series after the other, and a
    # short run of each ends within the same minute. Never overwrite.
    stamp = datetime.datetime.now(datetime.timezone.utc) \
        .strftime('%Y-%m-%dT%H%M%SZ')
    raw = os.path.join(args.results, f'{stamp}.json')
    with open(raw, 'x') as f:
        json.dump({'environment': env, 'results': results,
                   'traces': traces}, f, indent=1)
        f.write('\n')
    with open(os.path.join(args.results, f'{stamp}.txt'), 'x') as f:
        f.write(text)
    pictures = []
    for name, per_driver in traces.items():
        path = os.path.join(args.results, f'{stamp}-{name}.svg')
        timeline_svg(per_driver, args.drivers,
                     f'{name}: {TRACE_TITLES.get(name, name)}; '
                     f'{env["guest_kernel"]}, commit {env["commit"][:12]}',
                     path)
        pictures.append(path)
    svg(results, os.path.join(args.out, 'bench-results.svg'),
        args.scenarios)
    print(text)
    print(f'raw results: {raw}\ntable: {raw[:-5]}.txt\n'
          f'plot: {args.out}/bench-results.svg')
    for path in pictures:
        print(f'picture: {path}')


if __name__ == '__main__':
    main()
