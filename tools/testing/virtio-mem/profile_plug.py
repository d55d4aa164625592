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
  profile_plug.py [--size 4G] [--module ours|ref] [--out DIR] [--functions]
                  [--unplug-inuse MiB [--populate]]
With --module ref only the kernel functions are traced (Debian's driver
has no tracepoints).

With --functions, function_graph instead times every function of the
virtio_mem module (either driver: both modules have that name) and the
kernel's hotplug entry points, children and sleep included: where the
driver's own time ("rest" above) goes. It prints the functions by total
time (a function nested in itself counts twice).
--unplug-inuse MiB (with --functions) profiles the other way: after the
plug it writes that much tmpfs data (which lands in the plugged memory)
and times the unplug back to 0, with the kernel's migration and isolation
entry points (UNPLUG_FUNCS) traced too.
Without --functions, --unplug-inuse prints a timeline instead, from
tracepoints only (cheap: the timing stays close to an untraced run): the
pages migrated per 0.1 s (migrate:mm_migrate_pages) and, for ours, each
memory removal and UNPLUG request. --populate first has the guest write
and delete a file as large as its free boot memory, so that the host has
populated the memory migration copies into (QEMU's RAM is allocated on
first touch): the difference to a run without is the host's share.
"""

import argparse
import os
import re
import sys
import time

from vmtest import Guest, MemDevice, fmt_size, parse_size

TRACING = '/sys/kernel/tracing'
FUNCS = ('add_memory_driver_managed', 'online_pages')
UNPLUG_FUNCS = ('alloc_contig_range', 'migrate_pages', 'offline_pages',
                'offline_and_remove_memory', 'remove_memory',
                'lru_add_drain_all', 'drain_all_pages', 'start_isolate_page_range',
                'undo_isolate_page_range', 'test_pages_isolated')
# A call's duration: "name();" for a call with nothing traced inside,
# "} /* name */" (funcgraph-tail) at the end of one with.
# Module functions carry their module: "name [virtio_mem]();".
GRAPH_RE = re.compile(r'\)\s+[*#!@+$&]?\s*([\d.]+) us\s+\|\s+'
                      r'(?:(\w+)(?: \[\w+\])?\(\);|'
                      r'\} /\* (\w+)(?: \[\w+\])? \*/)')
EVENT_RE = re.compile(r'\s(\d+\.\d+): (\w+): (.*)$')
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


def setup_profiler(g, funcs):
    """function_graph on every function of the virtio_mem module and on
    funcs: each call's duration, children and sleep included."""
    for c in (f'mount -t tracefs nodev {TRACING} 2>/dev/null; true',
              f'echo 0 > {TRACING}/tracing_on',
              f'echo > {TRACING}/trace',
              f'echo 65536 > {TRACING}/buffer_size_kb',
              f'echo ":mod:virtio_mem" > {TRACING}/set_ftrace_filter',
              # Names a kernel does not have (renamed, inlined) are skipped.
              *[f'echo {f} >> {TRACING}/set_ftrace_filter 2>/dev/null; true'
                for f in funcs],
              f'echo 1 > {TRACING}/options/funcgraph-tail',
              f'echo function_graph > {TRACING}/current_tracer'):
        g.check(c)


def profile_totals(trace):
    """{function: [calls, us]} of a function_graph trace."""
    totals = {}
    for m in GRAPH_RE.finditer(trace):
        t = totals.setdefault(m.group(2) or m.group(3), [0, 0.0])
        t[0] += 1
        t[1] += float(m.group(1))
    return totals


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


def setup_timeline(g, module):
    """Tracepoints only: migration batches and, for ours, the driver's."""
    cmds = [f'mount -t tracefs nodev {TRACING} 2>/dev/null; true',
            f'echo 0 > {TRACING}/tracing_on',
            f'echo > {TRACING}/trace',
            f'echo 16384 > {TRACING}/buffer_size_kb',
            f'echo 1 > {TRACING}/events/migrate/mm_migrate_pages/enable']
    if module == 'ours':
        cmds.append(f'echo 1 > {TRACING}/events/virtio_mem/enable')
    for c in cmds:
        g.check(c)


def print_timeline(args, size, wall, text, stamp, populated):
    """Pages migrated per 0.1 s from the marker written just before the
    request, and the driver's removals and requests."""
    path = os.path.join(args.out, f'{stamp}-{args.module}-timeline.trace')
    with open(path, 'w') as f:
        f.write(text)
    t0, bins, events, total = None, {}, [], 0
    for line in text.splitlines():
        m = EVENT_RE.search(line)
        if not m:
            continue
        t, name, rest = float(m.group(1)), m.group(2), m.group(3)
        if name == 'tracing_mark_write':
            t0 = t
        elif t0 is None:
            continue
        elif name == 'mm_migrate_pages':
            n = int(re.search(r'nr_succeeded=(\d+)', rest).group(1))
            k = int((t - t0) * 10)
            bins[k] = bins.get(k, 0) + n
            total += n
        elif name in ('virtio_mem_memory_removed', 'virtio_mem_request'):
            events.append((t - t0, name[11:], rest.split(' ', 1)[1]))
    print(f'unplug {fmt_size(size)} -> 0 with {args.unplug_inuse} MiB '
          f'tmpfs, {args.module}, 1 GiB guest, QEMU TCG, boot memory '
          f'{"populated" if populated else "as booted"} (raw: {path})')
    print(f'{"wall (QMP request to MemTotal)":38} {wall:8.3f} s')
    print(f'{"pages migrated":38} {total:8d}')
    print('pages migrated per 0.1 s, from the request:')
    for k in range(min(bins, default=0), max(bins, default=-1) + 1):
        print(f'  {k / 10:4.1f} s {bins.get(k, 0):7d}')
    for t, name, what in events:
        print(f'  {t:6.3f} s {name:15} {what}')
    return 0


def populate(g):
    """Have the host populate the guest's free memory: write a tmpfs file
    as large as MemAvailable less 64 MiB, then delete it."""
    avail = int(g.check("awk '/^MemAvailable:/ {print $2}' "
                        '/proc/meminfo')) // 1024 - 64
    g.check(f'mkdir -p /populate && mount -t tmpfs -o size={avail}m tmpfs '
            f'/populate && dd if=/dev/zero of=/populate/f bs=1M '
            f'count={avail} 2>/dev/null; rm -f /populate/f; '
            'umount /populate', timeout=600)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--size', default='4G')
    ap.add_argument('--module', choices=('ours', 'ref'), default='ours')
    ap.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '.build', 'profile'))
    ap.add_argument('--functions', action='store_true',
                    help="time the module's functions (function_graph)")
    ap.add_argument('--unplug-inuse', type=int, metavar='MiB',
                    help='profile the unplug to 0 with MiB of tmpfs data '
                    'in the plugged memory')
    ap.add_argument('--populate', action='store_true',
                    help='with --unplug-inuse: have the host populate the '
                    "guest's free boot memory first")
    args = ap.parse_args()
    if args.populate and args.unplug_inuse is None:
        ap.error('--populate needs --unplug-inuse')
    size = parse_size(args.size)
    os.makedirs(args.out, exist_ok=True)
    with Guest(devices=[MemDevice('vm0', size='8G')], module=args.module,
               online='online_movable',
               name=f'profile-{args.module}') as g:
        if args.populate:
            populate(g)
        base = g.memtotal()
        want, target = size // 1024, size
        if args.unplug_inuse is not None:
            g.set_requested('vm0', size)
            g.wait_until(lambda: g.memtotal() - base,
                         cond=lambda d: d == size // 1024, timeout=300,
                         what='MemTotal to grow')
            g.check('mkdir -p /p && mount -t tmpfs -o size=8g tmpfs /p && '
                    f'dd if=/dev/zero of=/p/f bs=1M '
                    f'count={args.unplug_inuse} 2>/dev/null', timeout=600)
            want, target = 0, 0
        timeline = args.unplug_inuse is not None and not args.functions
        if args.functions:
            setup_profiler(g, FUNCS if target else FUNCS + UNPLUG_FUNCS)
        elif timeline:
            setup_timeline(g, args.module)
        else:
            setup_tracing(g, args.module)
        g.check(f'echo 1 > {TRACING}/tracing_on')
        if timeline:
            g.check(f'echo request > {TRACING}/trace_marker')
        t0 = time.monotonic()
        g.set_requested('vm0', target)
        if timeline:
            # The host's view first: polling the guest costs it time.
            g.wait_until(lambda: g.plugged_size('vm0'),
                         cond=lambda s: s == target, timeout=300,
                         interval=0.02, what='the plugged size to follow')
        g.wait_until(lambda: g.memtotal() - base,
                     cond=lambda d: d == want, timeout=300,
                     interval=0.05, what='MemTotal to follow')
        wall = time.monotonic() - t0
        g.check(f'echo 0 > {TRACING}/tracing_on')
        trace = g.check(f'cat {TRACING}/trace', timeout=300)
    stamp = time.strftime('%Y-%m-%dT%H%M%SZ', time.gmtime())
    if args.functions:
        return print_profile(args, size, wall, trace, stamp)
    if timeline:
        return print_timeline(args, size, wall, trace, stamp, args.populate)
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


def print_profile(args, size, wall, text, stamp):
    path = os.path.join(args.out, f'{stamp}-{args.module}-functions.trace')
    with open(path, 'w') as f:
        f.write(text)
    what = f'plug 0 -> {fmt_size(size)}' if args.unplug_inuse is None else \
        f'unplug {fmt_size(size)} -> 0 with {args.unplug_inuse} MiB tmpfs'
    print(f'{what}, {args.module}, 1 GiB guest, QEMU TCG, function_graph '
          f'(raw: {path})')
    print(f'{"wall (QMP request to MemTotal)":44} {wall:8.3f} s')
    totals = profile_totals(text)
    for fn, (hits, us) in sorted(totals.items(), key=lambda kv: -kv[1][1]):
        print(f'{fn:38} {hits:5} {us / 1e6:8.3f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
