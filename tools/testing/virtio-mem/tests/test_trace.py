# SPDX-License-Identifier: GPL-2.0
"""The driver's tracepoints (event system virtio_mem) show what it did:
every request with its size and answer, and every memory block added,
onlined and removed, matching what the host and the guest saw.
"""

import re

from steps import resize_step
from vmtest import GiB, MiB, MemDevice, fmt_size

TRACEFS = '/sys/kernel/tracing'
REQ_RE = re.compile(r'virtio_mem_request: (\S+) (\w+) addr=(0x[0-9a-f]+) '
                    r'size=(\d+) answer=(\w+) latency_us=(\d+)')
MEM_RE = re.compile(r'virtio_mem_memory_(\w+): (\S+) addr=(0x[0-9a-f]+) '
                    r'size=(\d+)')


def read_trace(g):
    """Requests [(type, addr, size, answer)] and memory events
    {what: [(addr, size)]} in the trace buffer, in order."""
    out = g.check(f'cat {TRACEFS}/trace', timeout=120)
    reqs = [(m.group(2), int(m.group(3), 16), int(m.group(4)), m.group(5))
            for m in REQ_RE.finditer(out)]
    mem = {}
    for m in MEM_RE.finditer(out):
        mem.setdefault(m.group(1), []).append((int(m.group(3), 16),
                                               int(m.group(4))))
    return reqs, mem, out


def acked(reqs, kind):
    return sum(size for t, _, size, answer in reqs
               if t == kind and answer == 'ACK')


def test_tracepoints_show_requests_and_blocks(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    events = f'{TRACEFS}/events/virtio_mem'
    g.check(f'[ -d {TRACEFS}/events ] || mount -t tracefs nodev {TRACEFS}')
    rc, out = g.run(f'ls {events}')
    assert rc == 0, f'no virtio_mem event system in tracefs: {out}'
    for name in ('virtio_mem_request', 'virtio_mem_memory_added',
                 'virtio_mem_memory_onlined', 'virtio_mem_memory_offlined',
                 'virtio_mem_memory_removed', 'virtio_mem_unplug_paused',
                 'virtio_mem_unplug_resumed', 'virtio_mem_backoff',
                 'virtio_mem_resync'):
        assert name in out.split(), f'event {name} missing: {out}'
    g.check(f'echo 8192 > {TRACEFS}/buffer_size_kb; '
            f'echo > {TRACEFS}/trace; echo 1 > {events}/enable')

    base = g.memtotal()
    mbs = g.block_size_bytes
    big, small = 1 * GiB + 6 * MiB, 512 * MiB
    resize_step(g, 'vm0', big, base)
    resize_step(g, 'vm0', small, base)
    reqs, mem, out = read_trace(g)
    g.check(f'echo 0 > {events}/enable')

    assert reqs, f'no request events:\n{out[-3000:]}'
    assert all(answer == 'ACK' for *_, answer in reqs), \
        f'answers other than ACK: {[r for r in reqs if r[3] != "ACK"]}'
    assert acked(reqs, 'PLUG') == big, \
        f'PLUG requests acked {fmt_size(acked(reqs, "PLUG"))}, ' \
        f'QMP said {fmt_size(big)}'
    assert acked(reqs, 'UNPLUG') == big - small, \
        f'UNPLUG requests acked {fmt_size(acked(reqs, "UNPLUG"))}, ' \
        f'want {fmt_size(big - small)}'
    region = g.device_info('vm0')['memaddr']
    assert all(region <= addr < region + 8 * GiB for _, addr, _, _ in reqs), \
        'request outside the device region'

    def total(what):
        return sum(size for _, size in mem.get(what, []))

    blocks_big = -(-big // mbs)
    blocks_small = -(-small // mbs)
    assert total('added') == blocks_big * mbs, mem.get('added')
    assert total('onlined') == blocks_big * mbs, mem.get('onlined')
    assert total('removed') == (blocks_big - blocks_small) * mbs, \
        mem.get('removed')
    # Offlining is part of removing online memory.
    assert total('offlined') == total('removed'), mem
    g.assert_log_clean()
