# SPDX-License-Identifier: GPL-2.0
"""What an administrator does to the guest: offline and online memory
blocks by hand, keep online memory with unplug_online=0, and give the
module bad parameters."""

import re
import time

from steps import (check_sizes, resize_step, wait_equal,
                   wait_stopped)
from vmtest import GiB, KiB, MiB, MemDevice, fmt_size

MEMORY = '/sys/devices/system/memory'
PARAMS = '/sys/module/virtio_mem/parameters'


def set_block_state(g, block, state):
    # Seconds at most; a block that cannot go offline makes the kernel
    # retry for ever, which is a failure here, not a reason to hang.
    rc, out = g.run(f'echo {state} > {MEMORY}/memory{block}/state',
                    timeout=60)
    assert rc == 0, f'{state} memory{block} failed: {out}'


def block_zone(g, block):
    return g.check(f'cat {MEMORY}/memory{block}/valid_zones').strip()


def test_offline_online_by_hand(make_guest):
    """Offlining a partly plugged block takes only its plugged part out of
    MemTotal and leaves the device alone; onlining brings it back. Offline
    blocks are the first to go on the next shrink."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    size = 1 * GiB + 6 * MiB
    resize_step(g, 'vm0', size, base)
    blocks = sorted(g.device_blocks('vm0'))
    mbs = g.block_size_bytes
    partial = blocks[-1]

    set_block_state(g, partial, 'offline')
    assert g.device_blocks('vm0')[partial] == 'offline'
    # (Offlining removed exactly the 6 MiB plugged in the block.)
    wait_equal(g, lambda: g.memtotal() - base, (size - 6 * MiB) // KiB,
               'MemTotal - base (kB) after offlining the partial block')
    wait_equal(g, lambda: g.vmem_attr('vm0', 'offline_size'), mbs,
               'driver offline_size')
    # The request is met: offlining woke no work (the notifier queues
    # it only while the device is off its request), nothing was unplugged.
    assert g.plugged_size('vm0') == size
    assert g.vmem_attr('vm0', 'requests_unplug') == 0
    g.assert_log_clean()

    set_block_state(g, partial, 'online_movable')
    assert block_zone(g, partial) == 'Movable'
    check_sizes(g, 'vm0', size, base)
    wait_equal(g, lambda: g.vmem_attr('vm0', 'offline_size'), 0,
               'driver offline_size')
    # The partly plugged block fills up first when growing.
    resize_step(g, 'vm0', 2 * GiB, base)

    # An offline block in the middle is unplugged before the top ones.
    middle = blocks[3]
    set_block_state(g, middle, 'offline')
    wait_equal(g, lambda: g.memtotal() - base, (2 * GiB - mbs) // KiB,
               'MemTotal - base (kB) after offlining a middle block')
    resize_step(g, 'vm0', 2 * GiB - mbs, base)
    assert middle not in g.device_blocks('vm0'), \
        f'memory{middle} was offline: it should have gone first'


def test_unplug_online_off(make_guest):
    """unplug_online=0: online memory stays however low the request; memory
    the administrator offlines is unplugged without any host action."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable', params='unplug_online=0')
    assert g.check(f'cat {PARAMS}/unplug_online').strip() == 'N'
    base = g.memtotal()
    resize_step(g, 'vm0', 1 * GiB, base)
    mbs = g.block_size_bytes

    unplugs = g.vmem_attr('vm0', 'requests_unplug')
    g.set_requested('vm0', 0)
    size, why = wait_stopped(g, 'vm0')
    assert (size, why) == (1 * GiB, 'online'), \
        f'with unplug_online=0 and only online memory: {fmt_size(size)}, ' \
        f'unplug_wait {why}'
    assert g.vmem_attr('vm0', 'requests_unplug') == unplugs, \
        'an UNPLUG was sent for online memory with unplug_online=0'
    check_sizes(g, 'vm0', 1 * GiB, base)

    blocks = sorted(g.device_blocks('vm0'))
    t0 = time.monotonic()
    for b in blocks[-2:]:
        set_block_state(g, b, 'offline')
    g.wait_until(lambda: g.plugged_size('vm0'),
                 cond=lambda s: s == 1 * GiB - 2 * mbs, timeout=60,
                 interval=0.2, what='the two offlined blocks to be unplugged')
    g.timings.append(('2 offlined blocks unplugged', time.monotonic() - t0))
    check_sizes(g, 'vm0', 1 * GiB - 2 * mbs, base)
    left = g.device_blocks('vm0')
    assert sorted(left) == blocks[:-2] and \
        set(left.values()) == {'online'}, left

    for b in blocks[:-2]:
        set_block_state(g, b, 'offline')
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == 0,
                 timeout=60, interval=0.2,
                 what='all offlined blocks to be unplugged')
    check_sizes(g, 'vm0', 0, base)
    assert not g.device_blocks('vm0')
    g.assert_log_clean()


def console_since(g, mark, pattern, timeout=10):
    """Wait for a console log line matching the regex after mark."""
    return g.wait_until(
        lambda: re.search(pattern, g.console_log()[mark:]),
        timeout=timeout, interval=0.2, what=f'kernel log line /{pattern}/')


BAD_PARAMS = [
    ('unplug_reserve_mb=1',
     r'virtio_mem: unplug_reserve_mb=1 is out of range \[\d+, \d+\]'),
    ('backoff_max_ms=0',
     r'virtio_mem: backoff_max_ms=0 is out of range \[\d+, \d+\]'),
    ('offline_limit_mb=abc',
     r"virtio_mem: offline_limit_mb\b.*abc.*not a number"),
    ('kernel_reserve_mb=8',
     r'virtio_mem: kernel_reserve_mb=8 is out of range \[\d+, \d+\]'),
    # The kernel's own bool parser, and its message.
    ('memmap_on_memory=maybe',
     r"virtio_mem: `maybe' invalid for parameter `memmap_on_memory'"),
]


def test_bad_module_parameters(make_guest):
    """Bad values at insmod time and at runtime are refused with a message
    that names the parameter and the value; a refused runtime write keeps
    the old value."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module=None,
                   online='online_movable')
    for param, pattern in BAD_PARAMS:
        mark = g.log_mark()
        rc, out = g.run(f'insmod /ours/virtio_mem.ko {param}')
        assert rc != 0, f'insmod with {param} succeeded'
        assert 'virtio_mem' not in g.check('lsmod'), \
            f'module loaded with {param}'
        console_since(g, mark, pattern)

    g.check('insmod /ours/virtio_mem.ko unplug_reserve_mb=256')
    assert g.bound_devices(), 'driver not bound'
    param = f'{PARAMS}/unplug_reserve_mb'
    assert g.check(f'cat {param}').strip() == '256'

    mark = g.log_mark()
    rc, _ = g.run(f'echo 1 > {param}')
    assert rc != 0, 'writing unplug_reserve_mb=1 succeeded'
    m = console_since(g, mark, r'unplug_reserve_mb=1 is out of range '
                      r'\[(\d+), (\d+)\]')
    lo, hi = int(m.group(1)), int(m.group(2))
    assert g.check(f'cat {param}').strip() == '256', \
        'a refused write changed the value'
    for bad in (lo - 1, hi + 1, 'abc', -1):
        rc, _ = g.run(f'echo {bad} > {param}')
        assert rc != 0, f'writing unplug_reserve_mb={bad} succeeded'
        assert g.check(f'cat {param}').strip() == '256'
    # The bounds themselves are fine.
    for ok in (lo, hi, 256):
        g.check(f'echo {ok} > {param}')
        assert g.check(f'cat {param}').strip() == str(ok)

    # The driver works after all of this.
    base = g.memtotal()
    resize_step(g, 'vm0', 256 * MiB, base)
    resize_step(g, 'vm0', 0, base)
    g.assert_log_clean()

    # Last, as it is cosmetic: echo's newline is not part of the value the
    # message quotes (now the line breaks after 'abc).
    mark = g.log_mark()
    g.run(f'echo abc > {param}')
    console_since(g, mark, r'unplug_reserve_mb\b.*abc')
    assert re.search(r"unplug_reserve_mb: 'abc' is not a number",
                     g.console_log()[mark:]), \
        'the message for a bad runtime value should quote it on one line:\n' \
        + g.console_log()[mark:]
