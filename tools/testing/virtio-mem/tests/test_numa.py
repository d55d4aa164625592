# SPDX-License-Identifier: GPL-2.0
"""Two devices on two NUMA nodes, resized at the same time and apart.

Memory a device plugs must land on the device's node and leave the other
node alone, whether node 1 has boot memory or not (a memory-less node
only gets memory through virtio-mem). The guest adds memory after the
device plugged it, so its view is waited for, not read once."""

import time

import pytest

from steps import RESIZE_TIMEOUT, SETTLE_TIMEOUT
from vmtest import GiB, GuestError, KiB, MiB, MemDevice, fmt_size

NODE_OF = {'vm0': 0, 'vm1': 1}


def resize_both(g, sizes, expect, base_total, base_nodes):
    """Set the requests of all devices in `sizes` at once, wait for all of
    them, then check that every device is at its size in `expect` (updated
    with `sizes`), per-node and total MemTotal, and the driver's view."""
    expect.update(sizes)
    t0 = time.monotonic()
    for dev, size in sizes.items():
        g.set_requested(dev, size)
    for dev, size in sizes.items():
        g.wait_until(lambda: g.plugged_size(dev), cond=lambda s: s == size,
                     timeout=RESIZE_TIMEOUT, interval=0.2,
                     what=f'{dev} QMP size == {fmt_size(size)}')
    g.timings.append((', '.join(f'{d} -> {fmt_size(s)}'
                                for d, s in sizes.items()),
                      time.monotonic() - t0))
    plugged = {d: g.plugged_size(d) for d in NODE_OF}
    assert plugged == expect, f'device sizes {plugged}, want {expect}'
    want_nodes = {n: base_nodes.get(n, 0) for n in (0, 1)}
    for dev, node in NODE_OF.items():
        want_nodes[node] += plugged[dev] // KiB

    def guest_view():
        nodes = g.node_memtotal()
        return ({n: nodes.get(n, 0) for n in (0, 1)},
                g.memtotal() - base_total,
                {d: g.vmem_sysfs(d).get('plugged_size') for d in NODE_OF})

    want = (want_nodes, sum(plugged.values()) // KiB, plugged)
    try:
        g.wait_until(guest_view, cond=lambda v: v == want,
                     timeout=SETTLE_TIMEOUT, interval=0.5,
                     what='per-node MemTotal, MemTotal and the driver')
    except GuestError:
        pass        # the assertions below say what differs
    nodes, total, driver = guest_view()
    assert nodes == want_nodes, \
        f'node MemTotal (kB) {nodes}, want {want_nodes} with {plugged}'
    assert total == want[1], f'MemTotal - base {total} kB, want {want[1]}'
    assert driver == plugged, f'driver plugged_size {driver}, QMP {plugged}'
    for dev, node in NODE_OF.items():
        attrs = g.vmem_sysfs(dev)
        assert attrs['node'] == node, \
            f'{dev}: driver uses node {attrs["node"]}'
        info = g.device_info(dev)
        assert info['node'] == node and info['size'] == plugged[dev]
    g.assert_log_clean()


@pytest.mark.parametrize('numa', [['512M', '512M'], ['1G', '0']],
                         ids=['two-nodes', 'memoryless-node1'])
def test_numa_two_devices(make_guest, numa):
    devs = [MemDevice(d, size='4G', node=n) for d, n in NODE_OF.items()]
    g = make_guest(mem='1G', numa=numa, devices=devs, module='ours',
                   online='online_movable')
    base_total = g.memtotal()
    base_nodes = g.node_memtotal()
    if numa[1] == '0':
        # A node without memory and CPUs gets its sysfs node with memory.
        assert base_nodes.get(1, 0) == 0, base_nodes
    expect = {'vm0': 0, 'vm1': 0}
    # Grow both at once, to different sizes (one ends in a partial block).
    resize_both(g, {'vm0': 2 * GiB, 'vm1': 1 * GiB + 4 * MiB}, expect,
                base_total, base_nodes)
    # Shrink each alone: the other one must not move.
    resize_both(g, {'vm0': 512 * MiB}, expect, base_total, base_nodes)
    resize_both(g, {'vm1': 256 * MiB + 2 * MiB}, expect, base_total,
                base_nodes)
    # And both at once, in opposite directions.
    resize_both(g, {'vm0': 0, 'vm1': 1 * GiB}, expect, base_total,
                base_nodes)
