# SPDX-License-Identifier: GPL-2.0
"""Every device block size works (issue 10): from sub-blocks of a Linux
memory block (4 MiB) to big blocks of many memory blocks (2 GiB = 16
memory blocks of 128 MiB), plugging and unplugging reach the request
exactly; the offline cap never keeps a big block from being added; and
a big block that does not fit under memory pressure is left alone, not
half-migrated and given back at every poll.

Each test boots one 1 GiB guest with 8 GiB devices, our driver only: the
sysfs checks and the module parameters are ours.
"""

import re
import time

import pytest

from steps import (EVENT_STOPS, RESIZE_TIMEOUT, SETTLE_TIMEOUT, Memfill,
                   assert_guest_alive, assert_no_oom, check_sizes,
                   driver_stop, resize_step, unit_blocks, unload_driver,
                   wait_stopped)
from vmtest import (GiB, GuestDied, GuestError, MiB, MemDevice, fmt_size,
                    parse_size)

PARAMS = '/sys/module/virtio_mem/parameters'
WAIT_ONLINE = 'waiting for it to be onlined'

def driver_view(g, dev):
    """What the driver says about dev, for failure messages: its sysfs
    counters, the states of the device's memory blocks, and its last log
    lines."""
    attrs = g.vmem_sysfs(dev)
    keep = ('mode', 'block_size', 'requested_size', 'plugged_size',
            'offline_size', 'plug_wait', 'unplug_wait', 'work',
            'add_failures', 'memmap_stops', 'pressure_stops',
            'isolation_failures', 'broken')
    view = {k: attrs[k] for k in keep if k in attrs}
    states = {}
    for s in g.device_blocks(dev).values():
        states[s] = states.get(s, 0) + 1
    log = [ln for ln in g.console_log().splitlines() if 'virtio_mem' in ln]
    return f'driver: {view}\nmemory blocks of {dev}: {states}\n' \
        'last driver log lines:\n' + '\n'.join(log[-6:])


def wait_size(g, dev, want, timeout=RESIZE_TIMEOUT):
    """Wait until dev's QMP size is `want`, after a request; fail as soon
    as the driver says it stopped short of it (driver_stop(): a reason
    that waits for an event, its work idle), with the driver's view.
    However long a block takes to offline on a loaded host, a driver at
    work is never taken for a stopped one. Returns the seconds it took."""
    t0 = time.monotonic()

    def poll():
        size = g.plugged_size(dev)
        if size == want:
            return size, None
        stop = driver_stop(g, dev)
        if not stop:
            return size, None
        # driver_stop() read the QMP size again: it may have arrived.
        size, why, _ = stop
        return size, why in EVENT_STOPS and why

    try:
        size, why = g.wait_until(poll, cond=lambda v: v[0] == want or v[1],
                                 timeout=timeout, interval=0.2,
                                 what=f'{dev} QMP size == {fmt_size(want)}')
    except GuestDied:
        raise
    except GuestError as e:
        # Alive, but not there: say where it is.
        raise AssertionError(
            f'{dev} at {fmt_size(g.plugged_size(dev))}, not '
            f'{fmt_size(want)}, after {timeout}s\n{driver_view(g, dev)}') \
            from e
    assert size == want, \
        f'{dev} stopped at {fmt_size(size)} of the {fmt_size(want)} ' \
        f'requested ({why})\n{driver_view(g, dev)}'
    return time.monotonic() - t0


def resize(g, dev, size, base):
    """Request size, fail fast if the driver stops short (wait_size()),
    then check everything resize_step() checks: QMP size, MemTotal, the
    driver's plugged_size, exactly the memory blocks needed, all online,
    a clean log."""
    old = g.plugged_size(dev)
    g.set_requested(dev, size)
    took = wait_size(g, dev, size)
    resize_step(g, dev, size, base)
    # resize_step() saw a device already resized: record the real time.
    g.timings[-1] = (f'{dev} {fmt_size(old)} -> {fmt_size(size)}', took)


BLOCK_SIZES = ['4M', '128M', '256M', '1G', '2G']


def test_block_size_plug_unplug(make_guest):
    """One device of each block size, in one guest: plug 4 GiB (at least
    two device blocks of every size here) into each in turn and unplug it
    all again, in an idle guest with ZONE_MOVABLE: QMP size, MemTotal and
    the driver's plugged_size follow exactly, only the memory blocks that
    hold plugged memory exist, and the log stays clean. With 4 MiB blocks
    also 4G+8M, which leaves a memory block partly plugged. The driver
    picks sub-block mode below the Linux memory block size, big-block mode
    from it on.

    2 GiB blocks span 16 memory blocks, more than offline_limit_mb (1024
    MiB by default) allows to be offline: a driver that applies the cap
    to a device block it adds (and onlines at once) never plugs any."""
    devs = {f'bs{b}': MemDevice(f'bs{b}', size='8G', block_size=b)
            for b in BLOCK_SIZES}
    # Each region is aligned to its block size: room for 5 x 8 GiB + gaps.
    g = make_guest(devices=list(devs.values()), maxmem='64G', module='ours',
                   online='online_movable')
    base = g.memtotal()
    for dev, block_size in zip(devs, BLOCK_SIZES):
        bs = parse_size(block_size)
        assert g.device_info(dev)['block-size'] == bs, \
            f'QEMU ignored block-size of {dev}'
        attrs = g.vmem_sysfs(dev)
        mode = 'sub-block' if bs < g.block_size_bytes else 'big-block'
        assert (attrs['block_size'], attrs['mode']) == (bs, mode), \
            f'{dev}: block_size {attrs["block_size"]}, mode ' \
            f'{attrs["mode"]}; want {bs}, {mode}'
        sizes = [4 * GiB, 0]
        if bs == 4 * MiB:
            sizes = [4 * GiB + 8 * MiB, 4 * GiB, 0]
        for size in sizes:
            resize(g, dev, size, base)


@pytest.mark.parametrize('block_size', ['1G', '2G'])
def test_big_block_offline_cap(make_guest, block_size):
    """Without auto-onlining, added memory stays offline and the driver
    stops adding at offline_limit_mb (1024 MiB by default): but never
    before one device block, else a device block bigger than the cap is
    never added. Asked for two blocks, the driver adds exactly the first
    (its memory blocks appear, offline, QMP size == one block, MemTotal
    unchanged), says it waits for onlining (log; plug_wait in sysfs) and
    stays there; once they are onlined it adds the second. 1 GiB blocks
    (exactly the cap) are the control for 2 GiB ones (twice the cap)."""
    bs = parse_size(block_size)
    target = 2 * bs
    g = make_guest(devices=[MemDevice('vm0', size='8G', block_size=bs)],
                   module='ours')
    base = g.memtotal()
    units = unit_blocks(g.device_block_range('vm0'),
                        bs // g.block_size_bytes, 2)

    g.set_requested('vm0', target)
    took = wait_size(g, 'vm0', bs)
    g.wait_until(g.console_log, cond=lambda log: WAIT_ONLINE in log,
                 timeout=SETTLE_TIMEOUT,
                 what=f'the driver to log "{WAIT_ONLINE}"')
    g.timings.append((f'0 -> {fmt_size(bs)} (first block, offline)', took))
    # It stopped there: adding more would go past the cap.
    assert wait_stopped(g, 'vm0') == (bs, 'onlining')
    # The QMP size moves when the device acks the plug, before the driver
    # adds the memory: wait for the memory blocks.
    first = {b: 'offline' for b in units[0]}
    blocks = g.wait_until(lambda: g.device_blocks('vm0'),
                          cond=lambda b: b == first, timeout=SETTLE_TIMEOUT,
                          what=f'memory blocks {units[0][0]}..'
                          f'{units[0][-1]} (the first device block) '
                          'and no other, offline')
    assert g.memtotal() == base, 'offline memory counted in MemTotal'
    attrs = g.vmem_sysfs('vm0')
    assert (attrs['plugged_size'], attrs['offline_size']) == (bs, bs), \
        f'driver: plugged_size {attrs["plugged_size"]}, offline_size ' \
        f'{attrs["offline_size"]}; want {bs} both'
    assert attrs['plug_wait'] == 'onlining', attrs['plug_wait']

    # Onlined, it no longer counts against the cap: the next block comes.
    rc, out = g.online_blocks(list(blocks))
    assert rc == 0, f'onlining {sorted(blocks)} failed: {out}'
    took = wait_size(g, 'vm0', target)
    g.timings.append((f'{fmt_size(bs)} -> {fmt_size(target)} after '
                      'onlining', took))
    second = {b: 'online' for b in first}
    second.update({b: 'offline' for b in units[1]})
    g.wait_until(lambda: g.device_blocks('vm0'), cond=lambda b: b == second,
                 timeout=SETTLE_TIMEOUT,
                 what='the first device block online, the second added '
                 'and offline')
    offline = units[1]
    rc, out = g.online_blocks(offline)
    assert rc == 0, f'onlining {offline} failed: {out}'
    resize_step(g, 'vm0', target, base)
    g.timings.pop()     # it timed nothing: the size was there already
    assert g.vmem_attr('vm0', 'plug_wait') == 'none'
    resize(g, 'vm0', 0, base)


# -- unplugging a big block under memory pressure -----------------------------

# Two device blocks plugged, of 1 GiB (8 memory blocks) or 2 GiB (16).
# The workload is one device block plus 512 MiB: more than the lower
# device block, so part of it lies in the top one, which the driver tries
# first (checked below).
PRESSURE_BLOCK_SIZES = ['1G', '2G']
FILL_EXTRA_MB = 512
# Polled faster than the default 1000 ms: more polls in less time.
POLL_MS = 250
# The observation window: this many pressure stops (polls that found too
# little memory) after the request.
POLLS = 20


def vmstat(g, key):
    return int(g.check(f'grep "^{key} " /proc/vmstat').split()[1])


def movable_used(g):
    """Bytes in use in ZONE_MOVABLE (managed - free), from /proc/zoneinfo."""
    out = g.check('cat /proc/zoneinfo')
    m = re.search(r'zone\s+Movable\n\s+pages free\s+(\d+)'
                  r'(?:.*\n)*?\s+managed\s+(\d+)', out)
    assert m, 'no ZONE_MOVABLE in /proc/zoneinfo'
    return (int(m.group(2)) - int(m.group(1))) * 4096


@pytest.mark.parametrize('block_size', PRESSURE_BLOCK_SIZES)
def test_big_block_unplug_under_pressure(make_guest, block_size):
    """A big block that does not fit under the reserve is left alone.

    1 GiB (2 GiB) blocks, 2 (4) GiB plugged into ZONE_MOVABLE, 1.5 (2.5)
    GiB of workload (anon + tmpfs, half each). unplug_reserve_mb is then put half a device block
    below MemAvailable, and the host asks for everything: unplugging any
    block would leave the guest half a block short of the reserve, so the
    driver must pause, poll, and unplug nothing. It must also not thrash:
    checking the headroom per 128 MiB memory block while taking a 1 GiB
    block, a driver takes (migrating what is in the way) the first 4
    memory blocks, fails on the 5th and gives all 4 back, at every poll
    (with 2 GiB blocks: 8, failing on the 9th).

    Over the first POLLS pressure stops after the request:
    - fewer than one memory block's worth of pages is migrated
      (pgmigrate_success). A driver that checks the whole block's
      headroom before it moves anything migrates nothing; the idle guest
      migrates nothing by itself (kcompactd, measured: 0 pages over 20 s).
      Taking memory blocks one by one migrates whole memory blocks' worth
      of workload (measured: 512 MiB at the first poll; later polls find
      them free, as nothing moves back in). One device block's worth as
      the bound would let that pass: a per-memory-block driver fails
      before the last memory block of a device block, so it can never
      migrate a whole device block in one poll.
    - MemAvailable, sampled throughout, never drops half a memory block
      below where it stood: taking even one memory block (and giving it
      back) drops it by a whole one. This catches the take-and-give-back
      of the later polls, which migrate nothing; a sample can miss it
      (never the other way round).
    Then: the size did not move, no OOM, the guest is alive, the workload
    intact; and once the workload is gone the driver unplugs everything on
    its own.
    """
    bs = parse_size(block_size)
    plug = 2 * bs
    fill_mb = bs // MiB + FILL_EXTRA_MB
    g = make_guest(devices=[MemDevice('vm0', size='8G', block_size=bs)],
                   module='ours', online='online_movable',
                   params=f'pressure_poll_ms={POLL_MS}')
    base = g.memtotal()
    resize(g, 'vm0', plug, base)
    mark = g.log_mark()
    fill = Memfill(g, anon_mb=fill_mb // 2, file_mb=fill_mb - fill_mb // 2)
    took = fill.start()
    # Test premise: the workload reaches into the top device block, so that
    # taking it piecemeal means migrating. ZONE_MOVABLE is the device's
    # memory, user memory goes there first; what is used of it beyond one
    # device block must be in the other one.
    used = movable_used(g)
    g.timings.append((f'memfill {fill_mb} MiB '
                      f'({fmt_size(used)} used in ZONE_MOVABLE)', took))
    mbs = g.block_size_bytes
    assert used >= bs + mbs, \
        f'premise: only {fmt_size(used)} used in ZONE_MOVABLE; want the ' \
        f'workload to fill more than one {fmt_size(bs)} block'

    avail_mb = g.meminfo()['MemAvailable'] // 1024
    reserve_mb = avail_mb - bs // MiB // 2
    assert reserve_mb >= 128, \
        f'MemAvailable {avail_mb} MiB after the fill: too little to ' \
        'place the reserve half a block below it'
    default_mb = g.check(f'cat {PARAMS}/unplug_reserve_mb').strip()
    g.check(f'echo {reserve_mb} > {PARAMS}/unplug_reserve_mb')

    attrs = g.vmem_sysfs('vm0')
    stops_path = f'/sys/bus/virtio/devices/{attrs["virtio"]}/virtio_mem/' \
        'pressure_stops'
    stops0 = attrs['pressure_stops']
    migrated0 = vmstat(g, 'pgmigrate_success')
    low = [avail_mb]

    def sample():
        out = g.check(f'grep ^MemAvailable: /proc/meminfo; cat {stops_path}')
        avail, stops = out.split()[1], out.split()[-1]
        low[0] = min(low[0], int(avail) // 1024)
        return int(stops)

    t0 = time.monotonic()
    g.set_requested('vm0', 0)
    g.wait_until(sample, cond=lambda n: n >= stops0 + POLLS,
                 timeout=POLLS * POLL_MS / 1000 + 120, interval=0.05,
                 what=f'{POLLS} pressure stops after the request')
    window = time.monotonic() - t0
    migrated = (vmstat(g, 'pgmigrate_success') - migrated0) * 4096
    g.timings.append((f'{POLLS} pressure polls: migrated '
                      f'{migrated // MiB} MiB, MemAvailable low '
                      f'{low[0]} MiB (from {avail_mb}, reserve '
                      f'{reserve_mb})', window))

    problems = []
    if migrated >= mbs:
        problems.append(
            f'{migrated // MiB} MiB migrated over {POLLS} pressure polls '
            f'({window:.0f}s) for a {fmt_size(bs)} block that '
            f'cannot be unplugged (MemAvailable {avail_mb} MiB, reserve '
            f'{reserve_mb} MiB): want < {mbs // MiB} MiB, nothing need '
            'move')
    if low[0] < avail_mb - mbs // MiB // 2:
        problems.append(
            f'MemAvailable dropped to {low[0]} MiB from {avail_mb} MiB '
            f'while the driver polled: it takes memory it then gives back')
    assert not problems, '\n'.join(problems) + '\n' + driver_view(g, 'vm0')
    # Nothing was unplugged: every block would have breached the reserve.
    check_sizes(g, 'vm0', plug, base)
    assert_guest_alive(g)
    assert_no_oom(g, since=mark)
    fill.assert_intact()
    g.assert_log_clean()

    # Pressure gone: the request still stands, the driver goes on alone,
    # with the top block at least. The last block may still be more than
    # the raised reserve allows; with the reserve back at its default, it
    # goes too.
    fill.remove_files()
    g.wait_until(lambda: g.plugged_size('vm0'),
                 cond=lambda size: size <= plug - bs, timeout=RESIZE_TIMEOUT,
                 interval=0.2,
                 what='the top block to go once the workload is gone')
    g.check(f'echo {default_mb} > {PARAMS}/unplug_reserve_mb')
    took = wait_size(g, 'vm0', 0)
    resize_step(g, 'vm0', 0, base)
    g.timings[-1] = ('vm0 -> 0 once the workload is gone and the reserve '
                     f'back at {default_mb} MiB', took)
    assert_no_oom(g, since=mark)


def test_offline_big_blocks_go_under_pressure(make_guest):
    """Unplugging offline memory costs the guest nothing, so the unplug
    reserve does not hold it back: with unplug_reserve_mb far above
    MemAvailable (every online block is then out of reach), a big block
    offlined by hand is unplugged when the host asks for less, and the
    other, offlined too, is removed and unplugged by rmmod. A driver that
    checks the reserve for a big block whatever it holds stops at both
    (pressure_stops grows, the QMP size stays)."""
    bs = 1 * GiB
    g = make_guest(devices=[MemDevice('vm0', size='8G', block_size=bs)],
                   module='ours', online='online_movable')
    base = g.memtotal()
    resize(g, 'vm0', 2 * bs, base)
    low, top = unit_blocks(g.device_block_range('vm0'),
                           bs // g.block_size_bytes, 2)
    g.check(f'echo 1048576 > {PARAMS}/unplug_reserve_mb')

    rc, out = g.online_blocks(top, policy='offline')
    assert rc == 0, f'offlining {top} failed: {out}'
    g.set_requested('vm0', bs)
    took = wait_size(g, 'vm0', bs)
    g.timings.append(('2G -> 1G, the top block offline, reserve 1 TiB',
                      took))
    # The offline block went, the online one stays.
    g.wait_until(lambda: g.device_blocks('vm0'),
                 cond=lambda b: b == {m: 'online' for m in low},
                 timeout=SETTLE_TIMEOUT,
                 what='only the lower device block left, online')
    check_sizes(g, 'vm0', bs, base)

    rc, out = g.online_blocks(low, policy='offline')
    assert rc == 0, f'offlining {low} failed: {out}'
    unload_driver(g)
    assert g.plugged_size('vm0') == 0, \
        f'after rmmod {fmt_size(g.plugged_size("vm0"))} plugged, want ' \
        'the offline block unplugged'
    assert g.device_blocks('vm0') == {}, \
        f'memory blocks left after rmmod: {g.device_blocks("vm0")}'
    g.assert_log_clean()
