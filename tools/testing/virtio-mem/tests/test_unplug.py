# SPDX-License-Identifier: GPL-2.0
"""Shrinking a guest: the driver gives memory back when the host lowers
requested-size, and Linux loses exactly that memory.

Each test boots one 1 GiB guest with 8 GiB devices. The tests that need
nothing but QMP and /proc also run against Debian's driver with
VMTEST_MODULES=ref (to check the tests themselves).
"""

import re
import time

import pytest

from steps import (CallCounter, Memfill, assert_guest_alive, assert_no_oom,
                   check_sizes, driver_stop, fault_knob, log_count,
                   resize_step, seeded_random, wait_stopped)
from vmtest import GiB, MiB, MemDevice, fmt_size


def test_idle_unplug(make_guest, module):
    """Idle guest, ZONE_MOVABLE, a device with unplugged-inaccessible on
    and one with it off, one after the other: every shrink reaches the
    request exactly, including one that leaves a memory block partly
    plugged, and the memory blocks that hold nothing plugged any more are
    removed."""
    devs = {f'inacc-{v}': MemDevice(f'inacc-{v}', size='8G',
                                    unplugged_inaccessible=v)
            for v in ('on', 'off')}
    g = make_guest(devices=list(devs.values()), module=module,
                   online='online_movable')
    base = g.memtotal()
    for dev in devs:
        assert g.plugged_size(dev) == 0, f'{dev} plugged at boot'
        for size in (4 * GiB, 0, 4 * GiB, 1 * GiB + 2 * MiB, 1 * GiB, 0):
            resize_step(g, dev, size, base)


def test_free_blocks_go_together(make_guest):
    """Free memory blocks next to each other are offlined and removed in
    one call, eight (1 GiB) at a time, and unplugged in one request: 16
    idle blocks take two offline_and_remove_memory() calls, not 16. With
    files in some blocks, the others still go that way, the busy ones have
    their pages taken (by all CPUs at once) and are removed once the
    unplug is over; the files are intact and no block is left behind. A
    busy block between free ones splits them into two runs, and is not
    part of either."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    resize_step(g, 'vm0', 2 * GiB, base)
    removals = CallCounter(g, 'offline_and_remove_memory')
    calls = unplug_all_counted(g, base, removals)
    assert calls <= 3, \
        f'{calls} offline_and_remove_memory() calls to unplug 16 idle ' \
        'memory blocks: free neighbours were not removed together'

    resize_step(g, 'vm0', 2 * GiB, base)
    fill = Memfill(g, file_mb=320)
    fill.start()
    calls = unplug_all_counted(g, base,
                               CallCounter(g, 'vmem_mm_take_pages'),
                               320 * MiB, 'the files were not in the '
                               'device\'s memory')
    # Three to five busy blocks, each taken whole: a take that failed
    # would go on one sub-block (2 MiB) at a time.
    assert calls <= 8, \
        f'pages taken {calls} times for 320 MiB of files: whole-block ' \
        f'takes failed: {g.vmem_sysfs("vm0")}'

    # One busy block with free ones on both sides: the free ones still go
    # in runs around it, the busy one is left out of them.
    resize_step(g, 'vm0', 2 * GiB, base)
    blocks = sorted(g.device_blocks('vm0'))
    busy = blocks[-5]
    others = [b for b in blocks if b != busy]
    assert g.online_blocks(others, policy='offline')[0] == 0, \
        f'offlining the idle blocks around memory{busy} failed'
    g.check('dd if=/dev/zero of=/dev/shm/busy bs=1M count=64 2>/dev/null')
    assert g.online_blocks(others)[0] == 0, \
        'onlining the idle blocks again failed'
    calls = unplug_all_counted(g, base, removals, 32 * MiB,
                               f'memory{busy} held no file')
    # The 4 blocks above it, 10 below, the lowest (no neighbour: plugged
    # last), the busy one after its take: 1 + 2 + 1 + 1.
    assert calls <= 5, \
        f'{calls} offline_and_remove_memory() calls for 16 blocks, one ' \
        'of them busy: the free ones next to it went one by one'
    g.check('rm /dev/shm/busy')
    fill.assert_intact()
    g.assert_log_clean()


def test_take_that_fails_once_is_retried(make_guest):
    """A take of a busy block's pages that fails for a moment, as when
    one of its pages is not free yet when the kernel checks (seen on 6.12;
    the fault-injection build's fail_take makes the first one fail once
    its pages moved), is tried again: the block is still taken whole, not
    one sub-block (2 MiB) at a time, and sysfs counts a retry, not memory
    that could not be freed."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours-fi',
                   online='online_movable')
    base = g.memtotal()
    resize_step(g, 'vm0', 1 * GiB, base)
    fill = Memfill(g, file_mb=128)
    fill.start()
    mark = g.log_mark()
    g.check(f'echo 1 > {fault_knob(g, "vm0", "fail_take")}')
    calls = unplug_all_counted(g, base,
                               CallCounter(g, 'vmem_mm_take_pages'),
                               128 * MiB, 'the files were not in the '
                               'device\'s memory')
    assert log_count(g, 'fault injection: a take of pages fails', mark) \
        == 1, 'the armed take failure did not happen: nothing was tested'
    # One to three busy blocks, each taken whole.
    assert calls <= 4, \
        f'pages taken {calls} times for 128 MiB of files: a take that ' \
        'failed once went on one sub-block at a time'
    attrs = g.vmem_sysfs('vm0')
    # A page not free yet for real may add a retry of its own.
    assert attrs['take_retries'] >= 1 and \
        attrs['isolation_failures'] == 0, \
        'one take failed once: it should count a retry and no memory ' \
        f'that could not be freed: {attrs}'
    fill.assert_intact()
    g.assert_log_clean()


def unplug_all_counted(g, base, counter, must_move=0, why=''):
    """Unplug vm0 to 0 and return the calls counter counted meanwhile. The
    kernel must have migrated must_move bytes: else the memory was not in
    use where the test meant it to be (why), and nothing was tested."""
    moved = vmstat(g, 'pgmigrate_success')
    counter.start()
    resize_step(g, 'vm0', 0, base)
    calls = counter.count()
    moved = (vmstat(g, 'pgmigrate_success') - moved) * 4096
    assert moved >= must_move, \
        f'{moved >> 20} MiB migrated: {why}, nothing was tested'
    return calls


def vmstat(g, key):
    return int(g.check(f'grep "^{key} " /proc/vmstat').split()[1])


def device_block_zones(g, dev):
    """{block id: zone} of the online memory blocks of a device."""
    ids = [b for b, s in g.device_blocks(dev).items() if s == 'online']
    out = g.check('cd /sys/devices/system/memory && grep -H . '
                  + ' '.join(f'memory{b}/valid_zones' for b in ids))
    return {int(ln.split('/')[0][6:]): ln.split(':', 1)[1].strip()
            for ln in out.splitlines()}


# Of 2 GiB onlined to ZONE_NORMAL in an idle guest, at most this much may
# stay plugged: the few unmovable kernel allocations made there meanwhile
# pin a sub-block each.
KERNEL_ZONE_LEFT_MAX = 128 * MiB


def test_kernel_zone_unplug(make_guest):
    """Memory onlined to ZONE_NORMAL may hold unmovable pages: unplugging
    all of it may stop short of 0, but not far from it in an idle guest,
    and only where the driver met memory it could not free; what the
    driver reports, what QEMU reports and what Linux counts must agree,
    and the guest must be fine."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_kernel',
                   # Settle within the quiet period below.
                   params='backoff_max_ms=2000')
    base = g.memtotal()
    resize_step(g, 'vm0', 2 * GiB, base)
    zones = device_block_zones(g, 'vm0')
    assert zones and set(zones.values()) == {'Normal'}, \
        f'online_kernel should put the memory into ZONE_NORMAL: {zones}'
    t0 = time.monotonic()
    g.set_requested('vm0', 0)
    size, why = wait_stopped(g, 'vm0', timeout=300)
    g.timings.append((f'vm0 2G -> 0 (kernel zone): {why} at '
                      f'{fmt_size(size)}', time.monotonic() - t0))
    assert size <= KERNEL_ZONE_LEFT_MAX, \
        f'{fmt_size(size)} of 2G left plugged: the driver gave up on ' \
        'memory it could have unplugged'
    assert size % g.device_info('vm0')['block-size'] == 0
    check_sizes(g, 'vm0', size, base)
    if size:
        # Kernel allocations pin memory, or the guest is short of it.
        attrs = g.vmem_sysfs('vm0')
        assert why in ('busy', 'pressure'), \
            f'stopped at {fmt_size(size)} saying {why}: {attrs}'
        if why == 'busy':
            assert attrs['isolation_failures'] > 0, \
                f'stopped at {fmt_size(size)}, memory busy, without ' \
                f'failing to free any: {attrs}'
    assert_guest_alive(g)
    assert_no_oom(g)
    g.assert_log_clean()


def test_free_blocks_go_first(make_guest):
    """Shrinking by what the guest has free: the driver unplugs the blocks
    with nothing in use first, so hardly a page of the data in the
    device's memory has to move. The data is put into the upper half of
    the device, where the driver looks first, and the lower half is left
    free."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    resize_step(g, 'vm0', 2 * GiB, base)
    # Fill the lower half (user memory goes to ZONE_MOVABLE first) ...
    g.check('dd if=/dev/zero of=/dev/shm/ballast bs=1M count=1900 '
            '2>/dev/null', timeout=300)
    resize_step(g, 'vm0', 4 * GiB, base)
    # ... so that the data lands in the upper half; then free the lower.
    fill = Memfill(g, file_mb=512)
    fill.start()
    g.check('rm /dev/shm/ballast')
    migrated = vmstat(g, 'pgmigrate_success')
    resize_step(g, 'vm0', 2 * GiB, base)
    migrated = (vmstat(g, 'pgmigrate_success') - migrated) * 4096
    # Some data may share a block with the ballast: that may move.
    assert migrated <= 64 * MiB, \
        f'{migrated >> 20} MiB migrated to unplug 2 GiB of 4 GiB with ' \
        '512 MiB in use: the free blocks should have gone first'
    fill.assert_intact()
    g.assert_log_clean()


@pytest.mark.parametrize('block_size', ['2M', '1G'])
def test_pinned_page_unplug(make_guest, block_size):
    """A page that cannot move (memfill pins it in the device's memory):
    unplugging everything stops short by the one device block that holds
    it, the driver says 'busy' and counts the memory it failed to free,
    the memory block stays online; once the pin goes, the rest goes too.
    With 1 GiB blocks the big block that holds the pin has little in use
    and is first offlined directly, which cannot migrate the pinned page:
    that attempt is bounded (interrupted after 10 s) and the driver falls
    back to taking the pages, which fails at once."""
    g = make_guest(devices=[MemDevice('vm0', size='8G',
                                      block_size=block_size)],
                   module='ours', online='online_movable',
                   # Look again soon once the pin is gone.
                   params='backoff_max_ms=2000')
    base = g.memtotal()
    resize_step(g, 'vm0', 2 * GiB, base)
    info = g.device_info('vm0')
    bsize = info['block-size']
    # User memory goes to ZONE_MOVABLE first: into the device's memory.
    fill = Memfill(g, anon_mb=64,
                   pin=(info['memaddr'], info['memaddr'] + info['max-size']))
    fill.start()
    mark = g.log_mark()
    g.set_requested('vm0', 0)
    size, why, attrs = g.wait_until(
        lambda: driver_stop(g, 'vm0'), timeout=300, interval=0.2,
        what='the driver of vm0 to stop short of 0')
    assert why == 'busy' and size == bsize, \
        f'with one page pinned, stopped at {fmt_size(size)} saying ' \
        f'{why}, want {fmt_size(bsize)} and busy: {attrs}'
    assert attrs['isolation_failures'] > 0, \
        f'stopped busy without counting isolation_failures: {attrs}'
    if block_size == '1G':
        assert log_count(g, r'takes over \d+ s: interrupting it', mark), \
            'the direct offlining of the big block with the pin was not ' \
            'tried, or not interrupted'
    memblock = fill.pinned // g.block_size_bytes
    assert g.memory_blocks()[memblock] == 'online', \
        f'memory{memblock}, which holds the pinned page, is not online'
    check_sizes(g, 'vm0', size, base)
    fill.assert_intact()
    # The driver keeps looking (busy, backoff_max_ms); a look that began
    # while memfill still held the pin may fail once more, so this waits
    # for the state, not for the next look.
    g.wait_until(lambda: driver_stop(g, 'vm0'),
                 cond=lambda s: s and s[:2] == (0, 'none'), timeout=120,
                 interval=0.2, what='the last block to go once the pin '
                 'is gone: (QMP size, why, sysfs)')
    check_sizes(g, 'vm0', 0, base)
    assert_no_oom(g, since=mark)
    g.assert_log_clean()


def test_busy_unplug(make_guest, module):
    """Shrink under a workload that holds 1.5 GiB (anon + tmpfs) but still
    fits afterwards: its pages are migrated out of the way, the size
    reaches the request and not one byte of the workload changes."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module=module,
                   online='online_movable')
    base = g.memtotal()
    resize_step(g, 'vm0', 3 * GiB, base)
    mark = g.log_mark()
    fill = Memfill(g, anon_mb=1024, file_mb=512)
    g.timings.append(('memfill 1.5 GiB', fill.start()))
    # 1 GiB boot + 1 GiB + 64 MiB plugged: ~450 MiB left for the rest.
    target = 1 * GiB + 64 * MiB
    migrated = vmstat(g, 'pgmigrate_success')
    took = resize_step(g, 'vm0', target, base, exact_blocks=False)
    migrated = vmstat(g, 'pgmigrate_success') - migrated
    g.timings.append((f'  (migrated {migrated * 4 // 1024} MiB)', took))
    # Else the workload was not in the way and the test proves little:
    # 1.5 GiB in use, and 1 GiB + 64 MiB of the 3 stay, so at least
    # 256 MiB of it had to move.
    assert migrated * 4096 >= 256 * MiB, \
        f'{migrated * 4096 >> 20} MiB migrated to unplug'
    fill.assert_intact()
    assert_no_oom(g, since=mark)
    g.assert_log_clean()
    # With the workload gone the rest goes back too.
    fill.remove_files()
    resize_step(g, 'vm0', 0, base)


@pytest.mark.parametrize('block_size', ['256M', '1G'])
def test_big_block_unplug(make_guest, module, block_size):
    """Device blocks of one or more memory blocks (big-block mode): plug
    2G, then shrink to 1G and 0 idle; then under a workload that holds
    1.5 GiB, shrink 3G to 1G: whole big blocks are migrated out of the way
    without changing a byte.

    Ours unplugs the idle big blocks without alloc_contig_range(): taking
    free pages has the kernel zero them (init_on_alloc), gigabytes just
    before the host discards them; offlining them does not."""
    dev = MemDevice('vm0', size='8G', block_size=block_size)
    g = make_guest(devices=[dev], module=module, online='online_movable')
    if module == 'ours':
        assert g.vmem_attr('vm0', 'mode') == 'big-block'
    base = g.memtotal()
    resize_step(g, 'vm0', 2 * GiB, base)
    taken = CallCounter(g, 'alloc_contig_range*')
    taken.start()
    for size in (1 * GiB, 0):
        resize_step(g, 'vm0', size, base)
    calls = taken.count()
    if module == 'ours':
        assert calls == 0, \
            f'{calls} alloc_contig_range() calls to unplug idle big blocks: ' \
            'their free pages were taken (and zeroed) instead of offlined'

    resize_step(g, 'vm0', 3 * GiB, base)
    mark = g.log_mark()
    fill = Memfill(g, anon_mb=1024, file_mb=512)
    g.timings.append(('memfill 1.5 GiB', fill.start()))
    migrated = vmstat(g, 'pgmigrate_success')
    took = resize_step(g, 'vm0', 1 * GiB, base)
    migrated = vmstat(g, 'pgmigrate_success') - migrated
    g.timings.append((f'  (migrated {migrated * 4 // 1024} MiB)', took))
    # 1.5 GiB are in use, 1 GiB of the 3 is given back: the workload
    # cannot fit in what stays without moving at least 256 MiB of it.
    assert migrated * 4096 >= 256 * MiB, \
        f'{migrated * 4096 >> 20} MiB migrated to unplug'
    fill.assert_intact()
    assert_no_oom(g, since=mark)
    fill.remove_files()
    resize_step(g, 'vm0', 0, base)


def test_config_flapping(make_guest, module):
    """50 requests in quick succession, up and down, without waiting for
    any of them: the driver must end up exactly at the last one."""
    rnd, seed = seeded_random('config flapping')
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module=module,
                   online='online_movable')
    base = g.memtotal()
    bs = g.device_info('vm0')['block-size']
    sizes = [rnd.randrange(0, 4 * GiB // bs + 1) * bs for _ in range(50)]
    seen = set()
    t0 = time.monotonic()
    for s in sizes[:-1]:
        g.set_requested('vm0', s)
        # 0-100 ms: long enough for the driver to be caught mid-step.
        time.sleep(rnd.uniform(0, 0.1))
        seen.add(g.plugged_size('vm0'))
    g.timings.append((f'49 requests (seed {seed}), {len(seen)} sizes seen',
                      time.monotonic() - t0))
    # The last one through resize_step(): QMP, MemTotal, blocks, log.
    resize_step(g, 'vm0', sizes[-1], base, exact_blocks=False)
    # Nothing more happens once it got there.
    assert wait_stopped(g, 'vm0') == (sizes[-1],
                                      'none' if g.ours else None)
    check_sizes(g, 'vm0', sizes[-1], base)
    blocks = g.device_blocks('vm0')
    want = -(-sizes[-1] // g.block_size_bytes)
    # Sub-blocks may be spread over one more block than needed (a partial
    # block from an interrupted step), but empty blocks must be removed.
    assert want <= len(blocks) <= want + 1, \
        f'{len(blocks)} memory blocks for {fmt_size(sizes[-1])}: {blocks}'


def region_zones(g, dev):
    """{zone: online memory blocks} of the device's region, from the
    valid_zones of each online block (which names the zone it is in)."""
    info = g.device_info(dev)
    bs = g.block_size_bytes
    first = info['memaddr'] // bs
    last = (info['memaddr'] + info['max-size']) // bs - 1
    out = g.check(f'cd /sys/devices/system/memory; for i in $(seq {first} '
                  f'{last}); do [ "$(cat memory$i/state 2>/dev/null)" = '
                  f'online ] && cat memory$i/valid_zones; done; true')
    zones = {}
    for zone in out.split():
        zones[zone] = zones.get(zone, 0) + 1
    return zones


STOP_RE = re.compile(r'unplug stopped at (\d+) MiB plugged \((\d+) MiB '
                     r'requested\): pages in use could not be migrated'
                     r'(?:; (\d+) MiB of it is online outside ZONE_MOVABLE)?')


@pytest.mark.parametrize('policy', ['auto-movable', 'online'])
def test_policy_zones_unplug(make_guest, policy):
    """The kernel's online policy decides the zones: auto-movable puts a
    share of the added memory outside ZONE_MOVABLE, plain `online` all of
    it. Idle memory blocks go by offlining there too, without their pages
    taken. Kernel allocations made there after growing (20000 inodes and
    dentries) cannot move. Unplugging everything under a workload: what
    can go goes, and whatever stays is memory outside ZONE_MOVABLE, with
    the driver saying so in sysfs (busy) and in the log; the workload is
    intact and nothing is OOM-killed."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online',
                   cmdline='memory_hotplug.online_policy=auto-movable'
                   if policy == 'auto-movable' else '',
                   # Look again soon: slab may free up meanwhile.
                   params='backoff_max_ms=2000')
    base = g.memtotal()
    resize_step(g, 'vm0', 4 * GiB, base)
    zones = region_zones(g, 'vm0')
    want = {'Movable', 'Normal'} if policy == 'auto-movable' else {'Normal'}
    assert set(zones) == want, \
        f'{policy}: the device\'s blocks are in {zones}, want {want}'
    # Idle, the free blocks go by offlining, in kernel zones too: taking
    # their pages would zero them (init_on_alloc) just before the device
    # discards them. A few may hold a page by now, and get taken.
    taken = CallCounter(g, 'vmem_mm_take_pages')
    taken.start()
    resize_step(g, 'vm0', 2 * GiB, base)
    calls = taken.count()
    assert calls <= 4, \
        f'{policy}: pages taken {calls} times to unplug 16 idle memory ' \
        'blocks: their free pages were taken instead of offlined'
    resize_step(g, 'vm0', 4 * GiB, base)
    fill = Memfill(g, anon_mb=128, file_mb=128)
    fill.start()
    g.check('mkdir -p /tmp/files && cd /tmp/files && seq 20000 | '
            'xargs touch', timeout=300)
    first_mark = g.log_mark()
    # Twice: a second stop, after growing again, is said again.
    for again in (False, True):
        if again:
            resize_step(g, 'vm0', 1 * GiB, base, exact_blocks=False)
        mark = g.log_mark()
        g.set_requested('vm0', 0)
        size, why = wait_stopped(g, 'vm0', timeout=300)
        if size:
            assert why == 'busy', \
                f'{policy}: stopped at {fmt_size(size)} saying {why}, ' \
                'want busy'
            stops = STOP_RE.findall(g.console_log()[mark:])
            assert stops, f'{policy}: stopped at {fmt_size(size)} with ' \
                'nothing in the log to say why'
            left, req, kernel = (int(x or 0) for x in stops[-1])
            assert (left, req) == (size // MiB, 0), \
                f'{policy}: the log says {left} of {req} MiB, QMP {size}'
            # Only memory outside ZONE_MOVABLE may hold what cannot move.
            assert kernel == left, \
                f'{policy}: {left - kernel} MiB left in ZONE_MOVABLE'
            assert set(region_zones(g, 'vm0')) <= {'Normal'}, \
                f'{policy}: ZONE_MOVABLE blocks left online'
        check_sizes(g, 'vm0', size, base)
    fill.assert_intact()
    assert_guest_alive(g)
    assert_no_oom(g, since=first_mark)
    g.assert_log_clean()
