# SPDX-License-Identifier: GPL-2.0
"""The values in sysfs, and what module parameters changed at runtime do.

- The geometry attributes match what QEMU says of the device, and an
  idle driver's work reads idle; the request
  counters match the requests the virtio_mem_request tracepoint saw, type
  by type.
- offline_limit_mb and unplug_online changed at runtime take effect at the
  driver's next step.
- Mainline's big-block knobs work: force_bbm with bbm_block_size plugs and
  unplugs 256 MiB big blocks of 2 MiB device blocks, and bbm_safe_unplug
  is accepted.
"""

import re

from steps import check_sizes, resize_step, wait_stopped
from vmtest import GiB, MiB, MemDevice

PARAMS = '/sys/module/virtio_mem/parameters'
TRACEFS = '/sys/kernel/tracing'
REQ_RE = re.compile(r'virtio_mem_request: \S+ (\w+) addr=')


def traced_requests(g):
    """{type: count} of the requests in the trace buffer."""
    counts = {}
    for m in REQ_RE.finditer(g.check(f'cat {TRACEFS}/trace', timeout=60)):
        counts[m.group(1)] = counts.get(m.group(1), 0) + 1
    return counts


def test_sysfs_values_and_runtime_parameters(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours')
    base = g.memtotal()
    info = g.device_info('vm0')
    attrs = g.vmem_sysfs('vm0')
    assert attrs['region_start'] == info['memaddr']
    assert attrs['region_size'] == info['max-size']
    assert attrs['block_size'] == info['block-size'] == 2 * MiB
    # A sub-block: the larger of a device block and a pageblock (2 MiB).
    assert attrs['unit_size'] == 2 * MiB
    assert attrs['mode'] == 'sub-block'
    assert (attrs['requested_size'], attrs['plugged_size']) == (0, 0)
    assert (attrs['stalled'], attrs['broken']) == (0, 0)
    assert (attrs['plug_wait'], attrs['unplug_wait']) == ('none', 'none')
    assert attrs['work'] == 'idle', attrs['work']

    # offline_limit_mb at runtime: nothing onlines, adding stops at the
    # limit; raised, adding goes on at the next request.
    g.check(f'echo 256 > {PARAMS}/offline_limit_mb')
    g.check(f'echo 1 > {TRACEFS}/events/virtio_mem/virtio_mem_request/'
            'enable')
    g.set_requested('vm0', 1 * GiB)
    assert wait_stopped(g, 'vm0') == (256 * MiB, 'onlining')
    assert g.vmem_attr('vm0', 'requested_size') == 1 * GiB
    g.check(f'echo 512 > {PARAMS}/offline_limit_mb')
    g.set_requested('vm0', 1 * GiB)
    assert wait_stopped(g, 'vm0') == (512 * MiB, 'onlining')
    blocks = sorted(g.device_blocks('vm0'))
    rc, out = g.online_blocks(blocks)
    assert rc == 0, out
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == GiB,
                 timeout=60, what='the rest once onlined')
    rc, out = g.online_blocks(sorted(set(g.device_blocks('vm0')) -
                                     set(blocks)))
    assert rc == 0, out
    check_sizes(g, 'vm0', 1 * GiB, base)

    # unplug_online at runtime: off, online memory stays; on again, the
    # next request unplugs it.
    g.check(f'echo N > {PARAMS}/unplug_online')
    g.set_requested('vm0', 256 * MiB)
    assert wait_stopped(g, 'vm0') == (1 * GiB, 'online')
    g.check(f'echo Y > {PARAMS}/unplug_online')
    resize_step(g, 'vm0', 256 * MiB, base)

    # Every request the tracepoint saw is counted, type by type.
    traced = traced_requests(g)
    attrs = g.vmem_sysfs('vm0')
    counted = {t: attrs[f'requests_{t.lower()}']
               for t in ('PLUG', 'UNPLUG', 'UNPLUG_ALL', 'STATE')}
    assert counted == {t: traced.get(t, 0) for t in counted}, \
        f'sysfs counts {counted}, the tracepoint saw {traced}'
    assert counted['PLUG'] >= 1 and counted['UNPLUG'] >= 1


def test_force_bbm(make_guest):
    """force_bbm=1 bbm_block_size=256M (and bbm_safe_unplug=0, accepted):
    2 MiB device blocks handled in 256 MiB big blocks, plugged and
    unplugged whole."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable',
                   params=f'force_bbm=1,bbm_block_size={256 * MiB},'
                   'bbm_safe_unplug=0')
    attrs = g.vmem_sysfs('vm0')
    assert (attrs['mode'], attrs['unit_size'], attrs['block_size']) == \
        ('big-block', 256 * MiB, 2 * MiB), attrs
    assert g.check(f'cat {PARAMS}/force_bbm').strip() == 'Y'
    base = g.memtotal()
    resize_step(g, 'vm0', 1 * GiB, base)
    resize_step(g, 'vm0', 512 * MiB, base)
    # A request between big blocks: the driver stays on whole ones, and
    # says why it stops short.
    g.set_requested('vm0', 384 * MiB)
    assert wait_stopped(g, 'vm0') == (512 * MiB, 'unit')
    resize_step(g, 'vm0', 0, base)
