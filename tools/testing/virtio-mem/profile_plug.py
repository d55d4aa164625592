#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Where the time of a plug goes, from ftrace inside the guest.

Boots a 1 GiB guest with one 8 GiB device (our module, online_movable),
enables the virtio_mem tracepoints and the function_graph tracer on the
kernel's memory-hotplug entry points, plugs 0 -> SIZE and prints:

  wall      from the request (QMP) until MemTotal shows it
  requests  time the device took to answer PLUG requests (our tracepoint's
            latency), i.e. QEMU's work
  add       add_memory_driver_managed(): the kernel creating memmap,
            sections and memory block devices, and onlining them
  online    online_pages(), part of add: the kernel handing the pages to
            the buddy allocator (through the online callback), zones,
            watermarks
  rest      the driver's own work, the work queue, the guest's polling

The raw trace is kept next to the results (--out). Usage:
  profile_plug.py [--size 4G] [--module ours|ref] [--out DIR]
With --module ref only the kernel functions are traced (Debian's driver
has no tracepoints).
"""

import argparse
import os
import re
import sys
import time

from vmtest import Guest, MemDevice, fmt_size, parse_size

TRACING = '/sys/kernel/tracing'
FUNCS = ('add_memory_driver_managed', 'online_pages')
# A call's duration: "name();" for a call with nothing traced inside,
# "} /* name */" (funcgraph-tail) at the end of one with.
GRAPH_RE = re.compile(r'\)\s+[*#!@+$&]?\s*([\d.]+) us\s+\|\s+'
                      r'(?:(\w+)\(\);|\} /\* (\w+) \*/)')
REQ_RE = re.compile(r'virtio_mem_request: \S+ (\w+) .*answer=(\w+) '
                    r'latency_us=(\d+)')


def setup_tracing(g, module):
    cmds = [f'mount -t tracefs nodev {TRACING} 2>/dev/null; true',
            f'echo 0 > {TRACING}/tracing_on',
            f'echo > {TRACING}/trace',
            f'echo 65536 > {TRACING}/buffer_size_kb',
            f'echo "{" ".join(FUNCS)}" > {TRACING}/set_ftrace_filter',
            f'echo 1 > {TRACING}/options/funcgraph-tail',
            f'echo function_graph > {TRACING}/current_tracer']
    if module == 'ours':
        cmds.append(f'echo 1 > {TRACING}/events/virtio_mem/'
                    'virtio_mem_request/enable')
    for c in cmds:
        g.check(c)


def breakdown(trace):
    """Sums per kernel function and of PLUG request latencies (us)."""
    sums = {f: 0.0 for f in FUNCS}
    calls = {f: 0 for f in FUNCS}
    req_us, reqs = 0, 0
    for line in trace.splitlines():
        m = GRAPH_RE.search(line)
        fn = m and (m.group(2) or m.group(3))
        if fn in sums:
            sums[fn] += float(m.group(1))
            calls[fn] += 1
            continue
        m = REQ_RE.search(line)
        if m and m.group(1) == 'PLUG':
            req_us += int(m.group(3))
            reqs += 1
    return sums, calls, req_us, reqs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', default='4G')
    ap.add_argument('--module', choices=('ours', 'ref'), default='ours')
    ap.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '.build', 'profile'))
    args = ap.parse_args()
    size = parse_size(args.size)
    os.makedirs(args.out, exist_ok=True)
    with Guest(devices=[MemDevice('vm0', size='8G')], module=args.module,
               online='online_movable',
               name=f'profile-{args.module}') as g:
        base = g.memtotal()
        setup_tracing(g, args.module)
        g.check(f'echo 1 > {TRACING}/tracing_on')
        t0 = time.monotonic()
        g.set_requested('vm0', size)
        g.wait_until(lambda: g.memtotal() - base,
                     cond=lambda d: d == size // 1024, timeout=300,
                     interval=0.05, what='MemTotal to grow')
        wall = time.monotonic() - t0
        g.check(f'echo 0 > {TRACING}/tracing_on')
        trace = g.check(f'cat {TRACING}/trace', timeout=300)
    stamp = time.strftime('%Y-%m-%dT%H%M%SZ', time.gmtime())
    path = os.path.join(args.out, f'{stamp}-{args.module}-plug.trace')
    with open(path, 'w') as f:
        f.write(trace)
    sums, calls, req_us, reqs = breakdown(trace)
    # Onlining runs inside adding (the online policy onlines at once).
    kernel = sums['add_memory_driver_managed'] / 1e6
    print(f'plug 0 -> {fmt_size(size)}, {args.module}, 1 GiB guest, '
          f'QEMU TCG (raw trace: {path})')
    print(f'{"wall (QMP request to MemTotal)":38} {wall:8.3f} s')
    if args.module == 'ours':
        print(f'{"PLUG requests (" + str(reqs) + ", device time)":38} '
              f'{req_us / 1e6:8.3f} s')
    for fn in FUNCS:
        print(f'{fn + " (" + str(calls[fn]) + " calls)":38} '
              f'{sums[fn] / 1e6:8.3f} s')
    rest = wall - kernel - req_us / 1e6
    print(f'{"kernel hotplug work, all":38} {kernel:8.3f} s '
          f'({100 * kernel / wall:.0f}% of wall)')
    print(f'{"rest (driver, work queue, polling)":38} {rest:8.3f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
