# SPDX-License-Identifier: GPL-2.0
"""Unplug under memory pressure: a host that asks for more memory back than
the guest can spare must not get the guest OOM-killed or crashed. The
driver keeps a reserve (unplug_reserve_mb), pauses, says so once, and
resumes by itself when memory frees up.

1 GiB boot memory, one 8 GiB device, ZONE_MOVABLE, memfill as workload.
"""

import re
import time

from steps import (Memfill, assert_guest_alive, assert_no_oom, check_sizes,
                   log_count, resize_step, seeded_random, wait_stopped)
from vmtest import GiB, KiB, MiB, MemDevice, fmt_size

PARAMS = '/sys/module/virtio_mem/parameters'
TRACEFS = '/sys/kernel/tracing'
RESERVE_MB = 128      # the driver's default unplug_reserve_mb
BOOT_RESERVE_MB = 256  # what the pressure test loads it with
POLL_MS = 1000        # the driver's default pressure_poll_ms
SLOW_POLL_MS = 3000
PAUSED = 'unplug paused'
# From the moment the workload's memory is free until the driver unplugs
# again: one pressure_poll_ms, plus one run of the driver under TCG.
# (Another guest may share the machine's 2 cores meanwhile.)
RESUME_SLACK_S = 2.0


def set_param(g, name, value):
    g.check(f'echo {value} > {PARAMS}/{name}')
    assert g.check(f'cat {PARAMS}/{name}').strip() == str(value)


def mem_available_mb(g):
    return g.meminfo()['MemAvailable'] // 1024


def assert_paused_at(g, size, base, reserve_mb):
    """The driver stopped at `size`, keeping reserve_mb available: not
    less (the guest would run short), and not much more (it must give back
    all it can spare, going on in sub-blocks when a whole memory block
    would be too much)."""
    assert base * KiB + size > 3 * GiB, \
        f'settled at {fmt_size(size)}: the 3 GiB cannot fit in that'
    check_sizes(g, 'vm0', size, base)
    avail = mem_available_mb(g)
    assert avail >= reserve_mb * 3 // 4, \
        f'MemAvailable {avail} MiB: the reserve of {reserve_mb} MiB was ' \
        'not kept'
    assert avail <= reserve_mb + 32, \
        f'MemAvailable {avail} MiB: stopped far above the reserve of ' \
        f'{reserve_mb} MiB'


def stop_intervals(g, n):
    """Seconds between n + 1 successive pressure stops (each a look that
    found too little memory), timed as they show in sysfs."""
    times, last = [], g.vmem_attr('vm0', 'pressure_stops')
    deadline = time.monotonic() + (n + 2) * SLOW_POLL_MS / 1000 + 10
    while len(times) < n + 1:
        assert time.monotonic() < deadline, \
            f'{len(times)} pressure stops seen, want {n + 1}'
        now = g.vmem_attr('vm0', 'pressure_stops')
        if now != last:
            times.append(time.monotonic())
            last = now
        time.sleep(0.02)
    return [b - a for a, b in zip(times, times[1:])]


def test_unplug_pauses_under_pressure(make_guest):
    """3 GiB of tmpfs data on a 1G + 4G guest, host asks for everything:
    the driver gives back what it can spare above unplug_reserve_mb (256
    MiB at load, 128 set at runtime) and pauses, re-checking every
    pressure_poll_ms (default, then 3 s set at runtime); once the data is
    deleted it resumes within about a second and gives back the rest
    without any host action."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable',
                   params=f'unplug_reserve_mb={BOOT_RESERVE_MB}')
    base = g.memtotal()
    resize_step(g, 'vm0', 4 * GiB, base)
    mark = g.log_mark()
    g.check(f'for e in unplug_paused unplug_resumed; do echo 1 > '
            f'{TRACEFS}/events/virtio_mem/virtio_mem_$e/enable; done')
    fill = Memfill(g, file_mb=3 * 1024)
    g.timings.append(('memfill 3 GiB tmpfs', fill.start()))

    t0 = time.monotonic()
    g.set_requested('vm0', 0)
    size, why = wait_stopped(g, 'vm0', timeout=300)
    assert why == 'pressure', f'stopped at {fmt_size(size)}: {why}'
    g.timings.append((f'4G -> 0 under pressure: settled at {fmt_size(size)}',
                      time.monotonic() - t0))
    assert_guest_alive(g)
    assert_no_oom(g, since=mark)
    assert size < 4 * GiB, 'nothing was unplugged'
    assert_paused_at(g, size, base, BOOT_RESERVE_MB)
    stops = g.vmem_attr('vm0', 'pressure_stops')
    assert stops > 0, 'pressure_stops did not count the pause'

    # A lower reserve at runtime: it goes on within a poll, and stops at
    # the new one.
    t0 = time.monotonic()
    set_param(g, 'unplug_reserve_mb', RESERVE_MB)
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s < size,
                 timeout=POLL_MS / 1000 + RESUME_SLACK_S, interval=0.05,
                 what='unplug to go on after unplug_reserve_mb was lowered')
    size2, why = wait_stopped(g, 'vm0', timeout=120)
    assert why == 'pressure', f'stopped at {fmt_size(size2)}: {why}'
    g.timings.append((f'reserve {RESERVE_MB} MiB: settled at '
                      f'{fmt_size(size2)}', time.monotonic() - t0))
    assert_paused_at(g, size2, base, RESERVE_MB)

    # While paused the driver keeps looking, every pressure_poll_ms, also
    # when that changes at runtime, but says so once per pause, not per
    # attempt. (A little memory freed meanwhile lets it resume briefly, so
    # a pause may be reported again.)
    # Each look schedules the next with the value it reads: the gaps from
    # the first one seen after a change are at the new pace.
    for poll_ms, n in ((POLL_MS, 3), (SLOW_POLL_MS, 1)):
        set_param(g, 'pressure_poll_ms', poll_ms)
        gaps = stop_intervals(g, n)
        # Seen from the host, each stop shows up to a command's round
        # trip late (about 0.1 s, more with two guests on 2 CPUs): a gap
        # can look that much shorter than the guest's.
        assert all(poll_ms / 1000 - 0.3 <= gap <= poll_ms / 1000 + 1.0
                   for gap in gaps), \
            f'pressure stops {[round(x, 2) for x in gaps]} s apart with ' \
            f'pressure_poll_ms={poll_ms}'
    set_param(g, 'pressure_poll_ms', POLL_MS)
    stops = g.vmem_attr('vm0', 'pressure_stops')
    paused = log_count(g, PAUSED, since=mark)
    assert 1 <= paused <= 4 and paused * 3 <= stops, \
        f'"{PAUSED}" logged {paused} times for {stops} pressure stops'
    pause_lines = [ln for ln in g.console_log()[mark:].splitlines()
                   if PAUSED in ln]
    # The guest still gets a little memory for new work.
    g.check('memfill -a 32 -w /proc/self', timeout=120)

    fill.assert_intact()
    g.assert_log_clean()

    # Free the memory: the driver resumes on its own, within a poll. (rm
    # frees the first of its files at once; the driver goes on as soon as
    # a sub-block fits above the reserve, while rm still runs.)
    t0 = time.monotonic()
    fill.remove_files(background=True)
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s < size2,
                 timeout=60, interval=0.05,
                 what='vm0 to shrink after the data was deleted')
    resumed = time.monotonic() - t0
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == 0,
                 timeout=120, interval=0.1,
                 what='vm0 to reach 0 after the data was deleted')
    took = time.monotonic() - t0
    g.timings.append((f'{fmt_size(size2)} -> 0 after rm: resumed after '
                      f'{resumed:.2f}s', took))
    assert resumed <= POLL_MS / 1000 + RESUME_SLACK_S, \
        f'resumed {resumed:.2f}s after the memory started to be freed, ' \
        f'with pressure_poll_ms={POLL_MS}'
    resize_step(g, 'vm0', 0, base)
    assert_no_oom(g, since=mark)

    # The tracepoints saw each pause the log reported, and its end.
    trace = g.check(f'cat {TRACEFS}/trace', timeout=60)
    paused = re.findall(r'virtio_mem_unplug_paused: \S+ available_pages='
                        r'(\d+) reserve_pages=(\d+)', trace)
    resumed = trace.count('virtio_mem_unplug_resumed:')
    logged = log_count(g, PAUSED, since=mark)
    assert len(paused) == logged and resumed == logged, \
        f'{logged} pauses logged; the tracepoints saw {len(paused)} ' \
        f'pauses and {resumed} resumes'
    for avail, keep in paused:
        assert int(avail) <= int(keep) + 8 * MiB // 4096, (avail, keep)

    # Checked last, as the rest does not depend on it: a pause is reported
    # when the driver really stops, i.e. not even one more sub-block (2 MiB)
    # fits above the reserve, not when a whole memory block does not fit
    # and it goes on in parts.
    for ln in pause_lines:
        m = re.search(r'(\d+) MiB available, keeping (\d+) MiB', ln)
        assert m, f'unexpected pause message: {ln}'
        avail, keep = int(m.group(1)), int(m.group(2))
        assert avail <= keep + 8, \
            f'"{PAUSED}" logged with {avail - keep} MiB above the reserve, ' \
            'yet the driver went on unplugging:\n' + '\n'.join(pause_lines)


def test_resize_storm_under_load(make_guest):
    """1.5 GiB held (anon + tmpfs, re-read continuously) while the host
    sends 50 random sizes, down to 0, with short pauses: no byte changes,
    no OOM kill, and the last request is met exactly."""
    rnd, seed = seeded_random('resize storm')
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    resize_step(g, 'vm0', 3 * GiB, base)
    mark = g.log_mark()
    fill = Memfill(g, anon_mb=1024, file_mb=512, loop=True)
    g.timings.append(('memfill 1.5 GiB', fill.start()))

    bs = g.device_info('vm0')['block-size']
    sizes = [rnd.randrange(0, 4 * GiB // bs + 1) * bs for _ in range(50)]
    zeros = rnd.sample(range(50), 8)
    for i in zeros:
        sizes[i] = 0          # far below what the workload needs
    seen = set()
    t0 = time.monotonic()
    for i, s in enumerate(sizes):
        g.set_requested('vm0', s)
        if i in zeros[:2]:
            # Stay at 0 until the driver hits the reserve, so that the
            # storm also runs into paused unplugs.
            stops = g.vmem_attr('vm0', 'pressure_stops')
            g.wait_until(lambda: g.vmem_attr('vm0', 'pressure_stops'),
                         cond=lambda n: n > stops, timeout=60,
                         what='unplug to pause at the reserve')
        time.sleep(rnd.uniform(0.1, 0.6))
        seen.add(g.plugged_size('vm0'))
    g.timings.append((f'50 requests (seed {seed}), {len(seen)} sizes seen, '
                      f'{g.vmem_attr("vm0", "pressure_stops")} pressure '
                      f'stops', time.monotonic() - t0))
    assert_guest_alive(g)
    assert_no_oom(g, since=mark)

    final = 2 * GiB + 6 * MiB
    resize_step(g, 'vm0', final, base, exact_blocks=False)
    fill.assert_intact()
    # It re-read its memory while the storm moved it around.
    assert fill.passes >= 2, f'only {fill.passes} verify passes'
    g.timings.append((f'memfill: {fill.passes} passes, 0 bytes corrupted',
                      0.0))
    assert_no_oom(g, since=mark)
    assert_guest_alive(g)
    check_sizes(g, 'vm0', final, base)
    g.assert_log_clean()
