#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Show our virtio-mem driver at work: boot, grow one device, then shrink it.

usage: demo.py [--ref]   (--ref: Debian's driver instead of ours)
"""

import argparse
import time

from vmtest import GiB, KiB, MiB, Guest, MemDevice, fmt_size

# Grow (the last step ends in a partly plugged memory block), then shrink.
STEPS = [1 * GiB, 4 * GiB, 4 * GiB + 6 * MiB, 1 * GiB, 0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--ref', action='store_true',
                    help="use Debian's virtio_mem.ko instead of ours")
    args = ap.parse_args()
    module = 'ref' if args.ref else 'ours'

    print(f'booting a 1G guest with an 8G virtio-mem device ({module} driver)')
    with Guest(devices=[MemDevice('vm0', size='8G')], module=module,
               online='online_movable', name=f'demo-{module}') as g:
        print(f'booted in {g.boot_time:.1f}s, MemTotal {g.memtotal()} kB')
        base = g.memtotal()
        for size in STEPS:
            before = g.plugged_size('vm0')
            t0 = time.monotonic()
            g.set_requested('vm0', size)
            g.wait_until(lambda: g.plugged_size('vm0'),
                         cond=lambda s: s == size, timeout=300, interval=0.1,
                         what=f'device size {fmt_size(size)}')
            took = time.monotonic() - t0
            # Onlining may trail the device's view by a moment.
            total = g.wait_until(g.memtotal,
                                 cond=lambda m: m - base == size // KiB,
                                 timeout=60, what='MemTotal to catch up')
            verb = 'grow' if size > before else 'shrink'
            print(f'{verb:>6} {fmt_size(before):>6} -> {fmt_size(size):>6}: '
                  f'device size {fmt_size(g.plugged_size("vm0")):>6}, '
                  f'MemTotal {total} kB (+{(total - base) // 1024} MiB), '
                  f'took {took:.1f}s')
        problems = g.log_problems()
        print('kernel log clean' if not problems else
              'kernel log problems:\n' + '\n'.join(problems))
        print(f'console log: {g.console_path}')


if __name__ == '__main__':
    main()
