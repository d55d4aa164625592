# SPDX-License-Identifier: GPL-2.0
"""Behaviour tests of our virtio-mem driver (module='ours').

They fail until drivers/virtio/virtio_mem.ko is built. Set
VMTEST_MODULES=ref to run them against Debian's driver instead.
Each test boots one 1 GiB guest with one 8 GiB device.
"""

import time

import pytest

from steps import (PLUG_SEQUENCE, PLUG_TIMEOUT, plug_sequence, plug_step,
                   wait_settled)
from vmtest import GiB, MemDevice, fmt_size

DEVICE_VARIANTS = {
    'default': {},                       # 2 MiB blocks, inaccessible off
    'inaccessible': {'unplugged_inaccessible': 'on'},
    'bs4M': {'block_size': '4M'},
}


@pytest.mark.parametrize('variant', DEVICE_VARIANTS)
def test_plug_sequence(make_guest, module, variant):
    dev = MemDevice('vm0', size='8G', **DEVICE_VARIANTS[variant])
    g = make_guest(devices=[dev], module=module, online='online_movable')
    # QEMU only takes multiples of the block size: 4G+6M becomes 4G+8M
    # with 4 MiB blocks.
    bs = g.device_info('vm0')['block-size']
    plug_sequence(g, 'vm0', [-(-s // bs) * bs for s in PLUG_SEQUENCE])


def test_no_online_policy(make_guest, module):
    """Without auto-onlining, plugging stops short while added memory sits
    offline, and resumes as user space onlines it."""
    target = 4 * GiB
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module=module)
    base = g.memtotal()
    g.set_requested('vm0', target)

    t0 = time.monotonic()
    g.wait_until(lambda: g.plugged_size('vm0'), timeout=PLUG_TIMEOUT,
                 what='plugging to start')
    size = wait_settled(g, 'vm0')
    g.timings.append((f'settled at {fmt_size(size)}', time.monotonic() - t0))
    assert 0 < size < target, \
        f'plugged {fmt_size(size)} with nothing onlined; want 0 < size < 4G'
    blocks = g.device_blocks('vm0')
    assert blocks and set(blocks.values()) == {'offline'}, \
        f'device blocks should all be offline: {blocks}'
    assert g.memtotal() == base, 'offline memory must not count in MemTotal'

    def offline_blocks():
        return [b for b, s in g.device_blocks('vm0').items()
                if s == 'offline']

    for _ in range(20):
        if size == target:
            break
        offline = offline_blocks()
        assert offline, f'stalled at {fmt_size(size)} with nothing offline'
        rc, out = g.online_blocks(offline)
        assert rc == 0, f'onlining blocks {offline} failed: {out}'
        prev = size
        g.wait_until(lambda: g.plugged_size('vm0'),
                     cond=lambda s: s > prev, timeout=PLUG_TIMEOUT,
                     what=f'plugging to resume past {fmt_size(prev)}')
        size = wait_settled(g, 'vm0')
        g.timings.append((f'onlined {len(offline)} blocks, settled at '
                          f'{fmt_size(size)}', time.monotonic() - t0))
    assert size == target, f'stuck at {fmt_size(size)} after 20 rounds'

    # Online the rest: then all of it must show up in MemTotal.
    offline = offline_blocks()
    rc, out = g.online_blocks(offline)
    assert rc == 0, f'onlining blocks {offline} failed: {out}'
    plug_step(g, 'vm0', target, base)


def test_insmod_rmmod_cycles(make_guest, module):
    """Load and unload the driver with nothing plugged, three times."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module=None)
    ko = f'/{module}/virtio_mem.ko'
    for i in range(3):
        rc, out = g.run(f'insmod {ko}')
        assert rc == 0, f'cycle {i}: insmod failed: {out}'
        assert g.bound_devices(), f'cycle {i}: driver bound to no device'
        rc, out = g.run('rmmod virtio_mem && lsmod')
        assert rc == 0, f'cycle {i}: rmmod failed: {out}'
        assert 'virtio_mem' not in out, f'cycle {i}: still loaded: {out}'
        g.assert_log_clean()
    assert g.plugged_size('vm0') == 0


def test_devmem_cannot_read_device_region(make_guest):
    """With UNPLUGGED_INACCESSIBLE accepted, nothing may read unplugged
    memory: the region is exclusive System RAM, so /dev/mem refuses it."""
    dev = MemDevice('vm0', size='8G', unplugged_inaccessible='on')
    g = make_guest(devices=[dev], module='ours', online='online_movable')
    addr = g.device_info('vm0')['memaddr']
    g.set_requested('vm0', 1 * GiB)
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == GiB)
    # 2 GiB in: not plugged. busybox devmem mmaps /dev/mem.
    rc, out = g.run(f'devmem {addr + 2 * GiB:#x} 32')
    assert rc != 0 and 'not permitted' in out, out
    g.assert_log_clean()
