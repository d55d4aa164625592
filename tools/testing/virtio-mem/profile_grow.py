#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Where growing by one more GiB goes, at given sizes, from ftrace.

Boots a 512 MiB guest (our module, online_movable,
memory_hotplug.memmap_on_memory=1) with one device of --device GiB, grows
it to each of SIZES in turn and, at each, times one more GiB: from the
request until MemTotal shows it, and, with the function_graph tracer on
the kernel's memory-hotplug functions below (those the kernel lets trace),
the time spent in each, summed over that GiB. What grows with the size
shows as the functions whose time grows. Usage:
  profile_grow.py [--device 512] [--out FILE] 32,400
"""

import argparse
import re
import sys
import time

from vmtest import GiB, Guest, MemDevice

TRACING = '/sys/kernel/tracing'
FUNCS = ('add_memory_driver_managed', 'online_pages', 'move_pfn_range_to_zone',
         'set_zone_contiguous', 'online_pages_range', 'init_per_zone_wmark_min',
         '__add_pages', 'arch_add_memory', 'create_memory_block_devices',
         'undo_isolate_page_range', 'register_memory_resource',
         'mhp_init_memmap_on_memory', 'adjust_present_page_count')
# A call's duration: "name();" without traced children, "} /* name */"
# (funcgraph-tail) at the end of one with.
GRAPH_RE = re.compile(r'\)\s+[*#!@+$&]?\s*([\d.]+) us\s+\|\s+'
                      r'(?:(\w+)\(\);|\} /\* (\w+) \*/)')
MEMMAP_KB = 16 * 1024      # memmap of 1 GiB, in the added memory


def wait_size(g, size, limit=1800):
    t0 = time.monotonic()
    while g.plugged_size('vm0') != size:
        if time.monotonic() - t0 > limit:
            raise SystemExit(f'stuck at {g.plugged_size("vm0") / GiB} GiB')
        time.sleep(0.25)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('sizes', help='comma-separated GiB, ascending')
    ap.add_argument('--device', type=int, default=512, help='GiB')
    ap.add_argument('--out', help='also write the report here')
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(',')]
    g = Guest(mem='512M', maxmem=f'{args.device + 8}G',
              devices=[MemDevice('vm0', size=f'{args.device}G',
                                 reserve=False)],
              module='ours', online='online_movable',
              cmdline='memory_hotplug.memmap_on_memory=1',
              name='profile-grow')
    lines = []

    def say(text):
        print(text, flush=True)
        lines.append(text)

    with g:
        for cmd in [f'mount -t tracefs nodev {TRACING} 2>/dev/null; true',
                    f'echo 20000 > {TRACING}/buffer_size_kb',
                    f'echo 1 > {TRACING}/options/funcgraph-tail'] + \
                [f'echo {f} >> {TRACING}/set_ftrace_filter 2>/dev/null; '
                 'true' for f in FUNCS]:
            g.check(cmd)
        traced = g.check(f'cat {TRACING}/set_ftrace_filter').split()
        say(f'guest {g.check("uname -r").strip()}, device {args.device} '
            f'GiB; traced: {" ".join(sorted(traced))}')
        prev = 0
        for size in sizes:
            g.set_requested('vm0', size * GiB)
            took = wait_size(g, size * GiB)
            say(f'grow {prev} -> {size} GiB: {took:.1f} s (QMP)')
            g.check(f'echo > {TRACING}/trace; '
                    f'echo function_graph > {TRACING}/current_tracer')
            mt0 = g.memtotal()
            t0 = time.monotonic()
            g.set_requested('vm0', (size + 1) * GiB)
            wait_size(g, (size + 1) * GiB)
            # Adding and onlining follow the device's answer.
            while g.memtotal() - mt0 < 1024 * 1024 - MEMMAP_KB:
                time.sleep(0.05)
            took = time.monotonic() - t0
            g.check(f'echo 0 > {TRACING}/tracing_on')
            trace = g.check(f'cat {TRACING}/trace', timeout=300)
            g.check(f'echo nop > {TRACING}/current_tracer; '
                    f'echo 1 > {TRACING}/tracing_on')
            total = {}
            for m in GRAPH_RE.finditer(trace):
                name = m.group(2) or m.group(3)
                total[name] = total.get(name, 0.0) + float(m.group(1))
            say(f'at {size} GiB: one more GiB took {took:.2f} s (request to '
                'MemTotal, traced); time in (ms, summed over the calls):')
            for name, us in sorted(total.items(), key=lambda x: -x[1]):
                say(f'  {us / 1000:9.1f}  {name}')
            prev = size + 1
    if args.out:
        with open(args.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')


if __name__ == '__main__':
    sys.exit(main())
