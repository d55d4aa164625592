# SPDX-License-Identifier: GPL-2.0
"""Growing a small guest far (issue 10): 512 MiB of boot memory, one
32 GiB device, asked for all of it (64x).

Every 128 MiB added needs 2 MiB of memmap (4 KiB pages, 64-byte struct
page). Without memmap_on_memory it comes from the guest's boot memory,
outside ZONE_MOVABLE, where the kernel also allocates everything else:
32 GiB would need 512 MiB of it, more than the guest has. The driver must
stop before that, say so, and keep the guest healthy. With the kernel's
memory_hotplug.memmap_on_memory=1, each memory block holds its own
memmap, and the guest grows to 32 GiB.
"""

import re

import pytest

from steps import (OOM_RE, Memfill, assert_no_oom, load_driver, resize_step,
                   unit_blocks, unload_driver, wait_equal, wait_stopped)
from vmtest import GiB, KiB, MiB, MemDevice, fmt_size

DEVICE = 32 * GiB
BLOCK = 128 * MiB
MEMMAP_PER_BLOCK = 2 * MiB
# What the workload writes once grown: more than the boot memory, so that
# the added memory is used.
WORKLOAD_MB = 2048
SELF_HOSTED = 'added memory holds its own memmap'
PAUSED_RE = r'plugging paused: the memmap of \d+ MiB more would leave'


def boot(make_guest, memmap_on_memory):
    cmdline = 'memory_hotplug.memmap_on_memory=1' if memmap_on_memory \
        else ''
    g = make_guest(mem='512M', maxmem='40G', cmdline=cmdline,
                   devices=[MemDevice('vm0', size=DEVICE, reserve=False)],
                   online='online_movable')
    return g, g.memtotal()


def assert_healthy(g, since):
    """init answers, a user-space workload larger than the boot memory
    fits and reads back intact, nothing was OOM-killed."""
    g.check('echo alive')
    w = Memfill(g, file_mb=WORKLOAD_MB, tag="grow")
    w.start()
    w.assert_intact()
    w.remove_files()
    assert_no_oom(g, since)


def shrink_to_zero(g, base):
    """Back to 0: QMP size 0, MemTotal at its boot value, no memory block
    of the device left."""
    g.set_requested('vm0', 0)
    wait_equal(g, lambda: g.plugged_size('vm0'), 0, 'vm0 QMP size',
               timeout=600)
    wait_equal(g, g.memtotal, base, 'MemTotal back at boot', timeout=120)
    wait_equal(g, lambda: g.device_blocks('vm0'), {}, 'vm0 memory blocks')
    g.assert_log_clean()


@pytest.mark.parametrize('memmap_on_memory', [True, False],
                         ids=['memmap_on_memory', 'memmap_in_boot_memory'])
def test_grow_64x(make_guest, ours_ko, memmap_on_memory):
    g, base = boot(make_guest, memmap_on_memory)
    since = g.log_mark()
    g.set_requested('vm0', DEVICE)
    if memmap_on_memory:
        wait_equal(g, lambda: g.plugged_size('vm0'), DEVICE, 'vm0 QMP size',
                   timeout=600)
        # Each memory block's first 2 MiB hold its memmap, not in MemTotal.
        blocks = DEVICE // BLOCK
        want = (DEVICE - blocks * MEMMAP_PER_BLOCK) // KiB
        wait_equal(g, lambda: g.memtotal() - base, want,
                   'MemTotal growth (plugged minus the memmaps)')
        assert SELF_HOSTED in g.console_log()[since:]
        assert g.vmem_attr('vm0', 'plug_wait') == 'none'
        assert g.vmem_attr('vm0', 'memmap_stops') == 0
    else:
        size, why = wait_stopped(g, 'vm0', timeout=600)
        assert why == 'memmap', f'stopped at {fmt_size(size)}: {why}'
        log = g.console_log()[since:]
        assert size < DEVICE, \
            f'plugged all {fmt_size(DEVICE)}: the memmap came from nowhere?'
        assert size >= 4 * GiB, \
            f'stopped at {fmt_size(size)}: far too early for 512 MiB'
        assert re.search(PAUSED_RE, log), \
            f'no "plugging paused" line after {fmt_size(size)}'
        assert g.vmem_attr('vm0', 'plug_wait') == 'memmap'
        assert g.vmem_attr('vm0', 'memmap_stops') >= 1
        wait_equal(g, lambda: g.memtotal() - base, size // KiB,
                   'MemTotal growth == plugged size')
        assert not OOM_RE.search(log)
        g.timings.append((f'stopped at {fmt_size(size)}', 0.0))
    assert_healthy(g, since)
    shrink_to_zero(g, base)


def test_self_hosting_needs_no_kernel_memory(make_guest, ours_ko):
    """A block that holds its own memmap costs the kernel nothing, so a
    guest with no memory to spare outside ZONE_MOVABLE (kernel_reserve_mb
    at its maximum, far above what it has) still grows with
    memmap_on_memory: the driver tries one block, the kernel places its
    memmap inside, and the rest follow. A driver that counts the memmap
    until self-hosting has worked once never tries, and waits forever
    (plug_wait memmap)."""
    size = 1 * GiB
    g = make_guest(mem='512M', maxmem='8G',
                   cmdline='memory_hotplug.memmap_on_memory=1',
                   devices=[MemDevice('vm0', size='2G', reserve=False)],
                   online='online_movable',
                   params='kernel_reserve_mb=1048576')
    base = g.memtotal()
    since = g.log_mark()
    g.set_requested('vm0', size)
    wait_equal(g, lambda: g.plugged_size('vm0'), size, 'vm0 QMP size',
               timeout=120)
    want = (size - size // BLOCK * MEMMAP_PER_BLOCK) // KiB
    wait_equal(g, lambda: g.memtotal() - base, want,
               'MemTotal growth (plugged minus the memmaps)')
    log = g.console_log()[since:]
    assert SELF_HOSTED in log
    assert not re.search(PAUSED_RE, log), 'plugging paused on the memmap'
    assert g.vmem_attr('vm0', 'plug_wait') == 'none'
    assert g.vmem_attr('vm0', 'memmap_stops') == 0
    shrink_to_zero(g, base)


def test_self_hosted_blocks_offline_and_reload(make_guest, ours_ko):
    """The first sub-block of a self-hosted memory block holds its memmap
    and stays plugged while the block is added. A block offlined by hand
    then unplugged by a smaller request is removed whole: its other
    sub-blocks, then (removed) its memmap; none of it stays added. A driver
    that unplugged the memmap with the rest would leave the block added,
    offline, with nothing plugged behind its struct pages. After rmmod
    and insmod the new instance recognises the self-hosted blocks it
    adopts and shrinks them to 0."""
    g, base = boot(make_guest, True)
    nr = 4
    g.set_requested('vm0', nr * BLOCK)
    wait_equal(g, lambda: g.plugged_size('vm0'), nr * BLOCK, 'vm0 QMP size',
               timeout=120)
    added = [u[0] for u in unit_blocks(g.device_block_range('vm0'), 1, nr)]
    want = {b: 'online' for b in added}
    wait_equal(g, lambda: g.device_blocks('vm0'), want, 'vm0 memory blocks')

    top = max(added)
    rc, out = g.online_blocks([top], policy='offline')
    assert rc == 0, f'offlining memory block {top} failed: {out}'
    g.set_requested('vm0', (nr - 1) * BLOCK)
    wait_equal(g, lambda: g.plugged_size('vm0'), (nr - 1) * BLOCK,
               'vm0 QMP size', timeout=120)
    del want[top]
    wait_equal(g, lambda: g.device_blocks('vm0'), want,
               'vm0 memory blocks: the offline one removed')
    wait_equal(g, lambda: g.memtotal() - base,
               (nr - 1) * (BLOCK - MEMMAP_PER_BLOCK) // KiB,
               'MemTotal growth (plugged minus the memmaps)')
    g.assert_log_clean()

    load_driver(g, unload_driver(g))
    assert g.device_blocks('vm0') == want, 'memory blocks changed on reload'
    shrink_to_zero(g, base)


def test_second_block_added_last(make_guest):
    """The device's second memory block is added last and unplugged first:
    while it is missing, the zone has a hole there, and the walk the
    kernel makes over the zone at every onlining and offlining (to its
    first hole) stops there instead of covering all the memory added so
    far, which made growth by hundreds of GiB slow down as it went. Seen
    in which of the device's memory blocks exist as it grows and
    shrinks."""
    g = make_guest(devices=[MemDevice('vm0', size='1G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    bs = g.block_size_bytes
    rng = g.device_block_range('vm0')
    n = len(rng)

    def present():
        return sorted(b - rng[0] for b in g.device_blocks('vm0'))

    for size, want in ((3 * bs, [0, 2, 3]), (n * bs, list(range(n))),
                       ((n - 1) * bs, [0] + list(range(2, n))),
                       (1 * bs, [0])):
        resize_step(g, 'vm0', size, base)
        assert present() == want, \
            f'at {fmt_size(size)}: memory blocks {present()} of the ' \
            f'device, want {want}'
    g.assert_log_clean()
