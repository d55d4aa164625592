# SPDX-License-Identifier: GPL-2.0
"""Test steps shared by the reference-driver and our-driver tests."""

import re
import time

from vmtest import GiB, KiB, MiB, fmt_size

# 0 first: checks the untouched state (and that a no-op resize is harmless).
PLUG_SEQUENCE = [0, 1 * GiB, 4 * GiB, 4 * GiB + 6 * MiB]
# Debian's driver plugs 4 GiB in well under a second under TCG here.
PLUG_TIMEOUT = 120


def plug_step(guest, dev, new_size, base_memtotal, timeout=PLUG_TIMEOUT):
    """Resize one device and check the guest followed: resize_step()
    (defined below, for both directions), under its historical name."""
    return resize_step(guest, dev, new_size, base_memtotal, timeout)


def plug_sequence(guest, dev, sizes=PLUG_SEQUENCE):
    """plug_step() through sizes, from a device that starts unplugged."""
    assert guest.plugged_size(dev) == 0, f'{dev} plugged at boot'
    base = guest.memtotal()
    for size in sizes:
        plug_step(guest, dev, size, base)


def wait_settled(guest, dev, quiet=5.0, timeout=PLUG_TIMEOUT):
    """Wait until dev's QMP size has not changed for `quiet` seconds;
    returns that size."""
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
    device away from its boot size)."""
    info = guest.device_info(dev)
    assert info['size'] == size, \
        f'{dev}: query-memory-devices size {fmt_size(info["size"])}, ' \
        f'want {fmt_size(size)}'
    want_kb = size // KiB
    guest.wait_until(lambda: guest.memtotal() - base_memtotal,
                     cond=lambda d: d == want_kb, timeout=timeout,
                     what=f'MemTotal - base == {want_kb} kB '
                     f'(base {base_memtotal} kB)')
    if guest.module == 'ours':
        attrs = guest.vmem_sysfs(dev)
        assert attrs.get('plugged_size') == size, \
            f'{dev}: driver plugged_size {attrs.get("plugged_size")}, ' \
            f'QMP size {size}'
        assert attrs.get('broken') == 0, f'{dev}: driver marked it broken'


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
    blocks = guest.device_blocks(dev)
    not_online = {b: s for b, s in blocks.items() if s != 'online'}
    assert not not_online, f'memory blocks of {dev} not online: {not_online}'
    if exact_blocks:
        mbs = guest.block_size_bytes
        want = -(-new_size // mbs)
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


def log_count(guest, pattern, since=0):
    """Number of console log lines matching the regex pattern."""
    return sum(1 for ln in guest.console_log()[since:].splitlines()
               if re.search(pattern, ln))


# -- workload -----------------------------------------------------------------

class Memfill:
    """guest/memfill.c running in the background of a guest.

    start() fills anon_mb of anonymous memory and file_mb of tmpfs files
    (/dev/shm) with a pattern; finish() has it verify every byte and
    returns (verified MiB, corrupted bytes, exit code). With loop=True it
    keeps re-reading everything while it waits.
    """

    def __init__(self, guest, anon_mb=0, file_mb=0, seed=None, loop=False,
                 tag='mf'):
        self.guest = guest
        self.anon_mb = anon_mb
        self.file_mb = file_mb
        self.seed = seed if seed is not None else int(time.time())
        self.loop = loop
        self.log = f'/tmp/memfill.{tag}.log'
        self.go = f'/tmp/memfill.{tag}.go'
        self.fill_time = None
        self.passes = None        # verify passes while waiting (loop=True)

    def _log(self):
        _, out = self.guest.run(f'cat {self.log}')
        return out

    def start(self, timeout=600):
        args = f'-a {self.anon_mb} -f {self.file_mb} -s {self.seed} ' \
               f'-w {self.go}' + (' -l' if self.loop else '')
        t0 = time.monotonic()
        self.guest.check(f'rm -f {self.go}; (memfill {args}; '
                         f'echo "memfill: exit $?") >{self.log} 2>&1 &')
        out = self.guest.wait_until(
            self._log, cond=lambda o: 'memfill: filled' in o
            or 'memfill: exit' in o, timeout=timeout, interval=1.0,
            what=f'memfill {args} to fill memory')
        assert 'memfill: filled' in out, f'memfill failed to fill:\n{out}'
        self.fill_time = time.monotonic() - t0
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
        """finish() and assert every byte was verified and none changed."""
        verified, corrupted, rc = self.finish(timeout)
        assert corrupted == 0 and rc == 0, \
            f'memfill: {corrupted} corrupted bytes (exit {rc}):\n{self._log()}'
        assert verified == self.anon_mb + self.file_mb, \
            f'memfill verified {verified} MiB, filled ' \
            f'{self.anon_mb + self.file_mb} MiB'
