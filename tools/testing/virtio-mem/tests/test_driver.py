# SPDX-License-Identifier: GPL-2.0
"""Behaviour tests of our virtio-mem driver (module='ours').

They fail until drivers/virtio/virtio_mem.ko is built. Set
VMTEST_MODULES=ref to run them against Debian's driver instead.
Each test boots one 1 GiB guest with 8 GiB devices.
"""

import re
import time

from steps import (PLUG_SEQUENCE, PLUG_TIMEOUT, plug_sequence, plug_step,
                   resize_step, wait_stopped)
from vmtest import GiB, MiB, MemDevice, fmt_size

DEVICE_VARIANTS = {
    'default': {},                       # 2 MiB blocks, inaccessible off
    'inaccessible': {'unplugged_inaccessible': 'on'},
    'bs4M': {'block_size': '4M'},
}


def test_plug_sequence(make_guest, module):
    """One device of each variant, in one guest: each in turn goes through
    PLUG_SEQUENCE (steps.plug_sequence()), then back to 0 so that the next
    starts from the same guest."""
    devs = [MemDevice(v, size='8G', **kw) for v, kw in DEVICE_VARIANTS.items()]
    g = make_guest(devices=devs, module=module, online='online_movable')
    base = g.memtotal()
    for dev in DEVICE_VARIANTS:
        # QEMU only takes multiples of the block size: 4G+6M becomes 4G+8M
        # with 4 MiB blocks.
        bs = g.device_info(dev)['block-size']
        plug_sequence(g, dev, [-(-s // bs) * bs for s in PLUG_SEQUENCE])
        resize_step(g, dev, 0, base)


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
    size, why = wait_stopped(g, 'vm0')
    g.timings.append((f'settled at {fmt_size(size)}', time.monotonic() - t0))
    if g.ours:
        # offline_limit_mb (1024 by default) of it, and no more.
        assert (size, why) == (1 * GiB, 'onlining'), \
            f'plugged {fmt_size(size)} with nothing onlined ({why}); ' \
            'want offline_limit_mb=1024 of it, waiting for onlining'
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
        size, why = wait_stopped(g, 'vm0')
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


def devmem_mmap(g, addr):
    """busybox devmem: mmap() of /dev/mem at addr, a 32-bit read."""
    return g.run(f'devmem {addr:#x} 32', timeout=60)


def devmem_read(g, addr):
    """read() of one page of /dev/mem at addr (a page-aligned address)."""
    return g.run(f'dd if=/dev/mem of=/dev/null bs=4096 count=1 '
                 f'skip={addr // 4096}', timeout=60)


def test_devmem_cannot_read_device_region(make_guest, module):
    """With UNPLUGGED_INACCESSIBLE accepted, nothing may read unplugged
    memory: /dev/mem must refuse every address of the device region, both
    through mmap() and read(), whether it is unplugged in an added memory
    block, unplugged in a block never added, or plugged. An address
    /dev/mem does serve (the BIOS area) shows the refusals are not just a
    /dev/mem that refuses everything."""
    dev = MemDevice('vm0', size='8G', unplugged_inaccessible='on')
    g = make_guest(devices=[dev], module=module, online='online_movable')
    base = g.memtotal()
    # 1 GiB and one sub-block: the last memory block added (the highest:
    # either driver adds lowest first, ours the second block last) holds
    # one plugged sub-block and is mostly unplugged.
    bs = g.device_info('vm0')['block-size']
    size = 1 * GiB + bs
    plug_step(g, 'vm0', size, base)
    addr = g.device_info('vm0')['memaddr']
    blocks = sorted(g.device_blocks('vm0'))
    mbs = g.block_size_bytes
    assert len(blocks) == 9, blocks
    partial = blocks[-1] * mbs
    probes = {
        'plugged, start of the region': addr,
        'plugged, in the partly plugged block': partial,
        'unplugged, in the partly plugged block': partial + 64 * MiB,
        'unplugged, block never added': addr + 4 * GiB,
        'unplugged, last page of the region': addr + 8 * GiB - 4096,
    }

    rc, out = devmem_mmap(g, 0xf0000)
    assert rc == 0 and re.fullmatch(r'\s*0x[0-9A-Fa-f]+\s*', out), \
        f'/dev/mem should serve the BIOS area (the refusals below would ' \
        f'prove nothing): rc={rc} {out}'
    for what, a in probes.items():
        rc, out = devmem_mmap(g, a)
        assert rc != 0 and 'not permitted' in out, \
            f'mmap of /dev/mem at {a:#x} ({what}): rc={rc} {out}'
        rc, out = devmem_read(g, a)
        assert rc != 0 and re.search(r'not permitted|Bad address', out), \
            f'read of /dev/mem at {a:#x} ({what}): rc={rc} {out}'
    # Nothing of it was mapped or read: the size did not move either.
    assert g.plugged_size('vm0') == size
    g.assert_log_clean()
