#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark our virtio-mem driver against Debian's own virtio_mem.ko.

Both drivers run the same scenarios on the same kernel and QEMU, interleaved
(ref, ours, ref, ours, ...), several times. The table gives the median and
range of each figure per driver and the ratio ours/ref; raw results go to
bench-results.json and a plot to bench-results.svg (in --out).

Scenarios (1 GiB boot memory, one 8 GiB device, online_movable):
  plug      0 -> 4 GiB, until the device reports 4 GiB and MemTotal follows
  unplug    4 GiB -> 0 with the guest idle
  fits      4 GiB -> 1 GiB while 1 GiB of tmpfs data must stay in the guest
  no-fit    4 GiB -> 0 while 3 GiB of tmpfs data must stay: how much gets
            unplugged, whether the guest survives, and once the data is
            deleted, how long until the device reaches 0 without host action
CPU is the guest's system+irq time over the step (/proc/stat), which is
where the driver's work runs; "paused" is that over 10 s of waiting in no-fit.
"""

import argparse
import json
import os
import statistics
import sys
import time

from vmtest import GiB, KiB, MiB, Guest, GuestError, MemDevice

STEP_TIMEOUT = 300
NOFIT_SETTLE_MAX = 60     # s to wait for the no-fit unplug to stop
RESUME_CAP = 120          # s to wait for the unplug to finish once freed


def guest_cpu(g):
    """Guest system+irq+softirq time in seconds (USER_HZ = 100)."""
    f = g.check('head -n1 /proc/stat').split()
    return (int(f[3]) + int(f[6]) + int(f[7])) / 100.0


def resize(g, size, timeout=STEP_TIMEOUT):
    """Seconds until the device reports size; with the guest's CPU use."""
    c0 = guest_cpu(g)
    t0 = time.monotonic()
    g.set_requested('vm0', size)
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == size,
                 timeout=timeout, interval=0.05, what=f'size {size}')
    return time.monotonic() - t0, guest_cpu(g) - c0


def settle(g, quiet=5.0, limit=NOFIT_SETTLE_MAX):
    """Wait until the size stops changing for quiet seconds (or limit)."""
    t_end = time.monotonic() + limit
    last, since = g.plugged_size('vm0'), time.monotonic()
    while time.monotonic() < t_end:
        time.sleep(0.5)
        size = g.plugged_size('vm0')
        if size != last:
            last, since = size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return last


def fill_tmpfs(g, mib):
    # tmpfs defaults to half of the RAM at mount time: size it explicitly.
    g.check('mkdir -p /bench && mount -t tmpfs -o size=8g tmpfs /bench')
    g.check(f'dd if=/dev/zero of=/bench/fill bs=1M count={mib} 2>/dev/null',
            timeout=600)


def boot(module, name):
    return Guest(devices=[MemDevice('vm0', size='8G')], module=module,
                 online='online_movable', name=name)


def run_basic(module, rep):
    """plug, idle unplug, unplug with a workload that fits: one boot."""
    r = {}
    with boot(module, f'bench-{module}-{rep}') as g:
        r['boot_s'] = g.boot_time
        r['plug_s'], r['plug_cpu_s'] = resize(g, 4 * GiB)
        r['unplug_s'], r['unplug_cpu_s'] = resize(g, 0)
        resize(g, 4 * GiB)
        fill_tmpfs(g, 1024)
        r['fits_s'], r['fits_cpu_s'] = resize(g, 1 * GiB)
        r['log_clean'] = not g.log_problems()
    return r


def run_nofit(module, rep):
    """Unplug while 3 GiB must stay in a 1+4 GiB guest; then free it."""
    r = {'survived': False}
    g = boot(module, f'bench-nofit-{module}-{rep}')
    try:
        g.start()
        resize(g, 4 * GiB)
        fill_tmpfs(g, 3072)
        t0 = time.monotonic()
        g.set_requested('vm0', 0)
        left = settle(g)
        r['nofit_unplugged_mib'] = (4 * GiB - left) // MiB
        r['nofit_settle_s'] = time.monotonic() - t0
        c0 = guest_cpu(g)
        time.sleep(10)
        r['paused_cpu_s'] = guest_cpu(g) - c0
        # From the moment the workload frees its memory.
        t0 = time.monotonic()
        g.check('rm -f /bench/fill', timeout=60)
        r['survived'] = g.run('true', timeout=60)[0] == 0
        try:
            g.wait_until(lambda: g.plugged_size('vm0'),
                         cond=lambda s: s == 0, timeout=RESUME_CAP,
                         interval=0.2, what='size 0 after freeing')
            r['resume_s'] = time.monotonic() - t0
        except GuestError:
            r['resume_s'] = None        # did not finish within the cap
        r['oom_kills'] = g.dmesg().count('Killed process')
    except GuestError as e:
        r['error'] = str(e).splitlines()[0]
    finally:
        g.stop()
    return r


ROWS = [
    ('plug 0 -> 4 GiB (s)', 'plug_s'),
    ('unplug 4 GiB -> 0, idle (s)', 'unplug_s'),
    ('unplug, workload fits (s)', 'fits_s'),
    ('no-fit: unplugged (MiB)', 'nofit_unplugged_mib'),
    ('no-fit: guest survived (runs)', 'survived'),
    ('no-fit: OOM kills', 'oom_kills'),
    ('no-fit: 0 reached after free (s)', 'resume_s'),
    ('CPU: plug 4 GiB (s)', 'plug_cpu_s'),
    ('CPU: unplug 4 GiB idle (s)', 'unplug_cpu_s'),
    ('CPU: unplug, workload fits (s)', 'fits_cpu_s'),
    ('CPU: 10 s paused under pressure (s)', 'paused_cpu_s'),
]


def summary(values, key):
    vals = [v.get(key) for v in values]
    if key == 'survived':
        return f'{sum(1 for v in vals if v)}/{len(vals)}', sum(map(bool, vals))
    nums = [v for v in vals if isinstance(v, (int, float))]
    missing = len(vals) - len(nums)
    if not nums:
        return f'n/a ({missing} without)', None
    med = statistics.median(nums)
    text = f'{med:.2f} [{min(nums):.2f}-{max(nums):.2f}]'
    if missing:
        text += f' +{missing} never'
    return text, med


def table(results):
    lines = [f'{"figure":38} {"in-tree (ref)":>24} {"ours":>24} {"ours/ref":>9}']
    for label, key in ROWS:
        ref_t, ref_m = summary(results['ref'], key)
        our_t, our_m = summary(results['ours'], key)
        ratio = (f'{our_m / ref_m:.2f}' if isinstance(ref_m, (int, float))
                 and isinstance(our_m, (int, float)) and ref_m else '-')
        lines.append(f'{label:38} {ref_t:>24} {our_t:>24} {ratio:>9}')
    return '\n'.join(lines)


def svg(results, path):
    """Grouped bars of the time figures, median per driver."""
    keys = [('plug', 'plug_s'), ('unplug idle', 'unplug_s'),
            ('unplug fits', 'fits_s'), ('resume no-fit', 'resume_s')]
    meds = {d: [summary(results[d], k)[1] or 0 for _, k in keys]
            for d in ('ref', 'ours')}
    top = max(max(v) for v in meds.values()) or 1
    w, h, left, base = 640, 320, 50, 270
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20">virtio-mem: seconds (median), '
           'in-tree vs ours</text>',
           f'<line x1="{left}" y1="{base}" x2="{w - 10}" y2="{base}" '
           'stroke="black"/>']
    colors = {'ref': '#999999', 'ours': '#2a6fb0'}
    for i, (label, _) in enumerate(keys):
        x0 = left + 20 + i * 140
        for j, d in enumerate(('ref', 'ours')):
            v = meds[d][i]
            bh = 220 * v / top
            x = x0 + j * 45
            out.append(f'<rect x="{x}" y="{base - bh:.1f}" width="40" '
                       f'height="{bh:.1f}" fill="{colors[d]}"/>')
            out.append(f'<text x="{x}" y="{base - bh - 4:.1f}">{v:.1f}</text>')
        out.append(f'<text x="{x0}" y="{base + 18}">{label}</text>')
    out.append(f'<text x="{w - 150}" y="40" fill="{colors["ref"]}">'
               'in-tree (ref)</text>')
    out.append(f'<text x="{w - 150}" y="56" fill="{colors["ours"]}">ours</text>')
    out.append('</svg>')
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--out', default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), '.build', 'bench'))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    results = {'ref': [], 'ours': []}
    for rep in range(args.reps):
        for module in ('ref', 'ours'):
            print(f'rep {rep + 1}/{args.reps}: {module}', file=sys.stderr,
                  flush=True)
            r = run_basic(module, rep)
            r.update(run_nofit(module, rep))
            results[module].append(r)
            print(f'  {json.dumps(r)}', file=sys.stderr, flush=True)

    raw = os.path.join(args.out, 'bench-results.json')
    with open(raw, 'w') as f:
        json.dump(results, f, indent=1)
    svg(results, os.path.join(args.out, 'bench-results.svg'))
    print(table(results))
    print(f'\nraw results: {raw}\nplot: {args.out}/bench-results.svg')


if __name__ == '__main__':
    main()
