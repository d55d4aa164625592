#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""Benchmark our virtio-mem driver against Debian's own virtio_mem.ko.

Both drivers run the same scenarios on the same kernel and QEMU, interleaved
(ref, ours, ref, ours, ...), several times. The table gives the median and
range of each figure per driver and the ratio ours/ref. The raw results of
the run (with the date, CPU, QEMU, kernel and driver source they come from)
and the table are saved in bench-results/ next to this script, a plot in
--out.

Scenarios (1 GiB boot memory, one 8 GiB device, online_movable):
  plug      0 -> 4 GiB
  unplug    4 GiB -> 0 with the guest idle
  fits      4 GiB -> 1 GiB while 1 GiB of tmpfs data must stay in the guest
  no-fit    4 GiB -> 0 while 3 GiB of tmpfs data must stay: how much gets
            unplugged, whether the guest survives, and once the data is
            deleted, how long until the device reaches 0 without host action

Every timing ends when the guest shows the change: the device reports the
new size over QMP and the guest's MemTotal is the boot value plus that size
(for "0 reached after free": QMP size 0 and MemTotal back at boot value).
CPU is the guest's system+irq time over the step (/proc/stat), which is
where the driver's work runs; "paused" is that over 10 s of waiting in
no-fit. A guest that dies (QEMU exits, e.g. after a panic) is recorded as
such, with the panic message, and the table says so.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time

from vmtest import (REPO, GiB, KiB, MiB, Guest, GuestDied, GuestError,
                    MemDevice, kernel_version, ours_ko, ref_ko)

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(HERE, 'bench-results')

STEP_TIMEOUT = 300
NOFIT_SETTLE_MAX = 60     # s to wait for the no-fit unplug to stop
RESUME_CAP = 120          # s to wait for the unplug to finish once freed
DRIVERS = ('ref', 'ours')
SCENARIOS = ('basic', 'nofit')


def guest_cpu(g):
    """Guest system+irq+softirq time in seconds (USER_HZ = 100)."""
    f = g.check('head -n1 /proc/stat').split()
    return (int(f[3]) + int(f[6]) + int(f[7])) / 100.0


def wait_seen(g, size, base_kb, t0, timeout):
    """Seconds from t0 until QMP reports size and MemTotal is base_kb plus
    size. MemTotal is only read once QMP agrees: the polling itself costs
    guest CPU time, and should not while the driver works."""
    want_kb = base_kb + size // KiB
    deadline = t0 + timeout
    memtotal = None
    while True:
        now = g.plugged_size('vm0')
        if now == size:
            memtotal = g.memtotal()
            if memtotal == want_kb:
                return time.monotonic() - t0
        if time.monotonic() > deadline:
            raise GuestError(f'no QMP size {size} with MemTotal {want_kb} '
                             f'kB within {timeout}s; last: size {now}, '
                             f'MemTotal {memtotal} kB')
        time.sleep(0.02)


def resize(g, size, base_kb, timeout=STEP_TIMEOUT):
    """Seconds until the guest shows size (wait_seen()), and the guest's
    CPU time meanwhile."""
    c0 = guest_cpu(g)
    t0 = time.monotonic()
    g.set_requested('vm0', size)
    took = wait_seen(g, size, base_kb, t0, timeout)
    return took, guest_cpu(g) - c0


def settle(g, seen, quiet=5.0, limit=NOFIT_SETTLE_MAX):
    """Wait until the size stops changing for quiet seconds (or limit);
    seen['size'] follows the last size read, also if the guest dies."""
    t_end = time.monotonic() + limit
    seen['size'] = g.plugged_size('vm0')
    since = time.monotonic()
    while time.monotonic() < t_end:
        time.sleep(0.5)
        size = g.plugged_size('vm0')
        if size != seen['size']:
            seen['size'], since = size, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return seen['size']


def fill_tmpfs(g, mib):
    # tmpfs defaults to half of the RAM at mount time: size it explicitly.
    g.check('mkdir -p /bench && mount -t tmpfs -o size=8g tmpfs /bench')
    g.check(f'dd if=/dev/zero of=/bench/fill bs=1M count={mib} 2>/dev/null',
            timeout=600)


def boot(module, name):
    return Guest(devices=[MemDevice('vm0', size='8G')], module=module,
                 online='online_movable', name=name)


def death(g, e):
    """What ended a guest: the panic message if the console has one."""
    m = re.search(r'Kernel panic - not syncing: ([^\n]*)', g.console_log())
    if m:
        return {'died': f'panic: {m.group(1).strip()}', 'panic': True}
    return {'died': str(e).splitlines()[0], 'panic': False}


def run_basic(module, rep):
    """plug, idle unplug, unplug with a workload that fits: one boot."""
    r = {}
    g = boot(module, f'bench-{module}-{rep}')
    try:
        g.start()
        r['boot_s'] = g.boot_time
        base = g.memtotal()
        r['plug_s'], r['plug_cpu_s'] = resize(g, 4 * GiB, base)
        r['unplug_s'], r['unplug_cpu_s'] = resize(g, 0, base)
        resize(g, 4 * GiB, base)
        fill_tmpfs(g, 1024)
        r['fits_s'], r['fits_cpu_s'] = resize(g, 1 * GiB, base)
        r['log_clean'] = not g.log_problems()
    except GuestDied as e:
        r.update({f'basic_{k}': v for k, v in death(g, e).items()})
    except GuestError as e:
        r['basic_error'] = str(e).splitlines()[0]
    finally:
        g.stop()
    r['basic_console'] = g.console_path
    return r


def run_nofit(module, rep):
    """Unplug while 3 GiB must stay in a 1+4 GiB guest; then free it."""
    r = {'survived': False}
    seen = {}
    g = boot(module, f'bench-nofit-{module}-{rep}')
    try:
        g.start()
        base = g.memtotal()
        resize(g, 4 * GiB, base)
        fill_tmpfs(g, 3072)
        seen['size'] = 4 * GiB
        t0 = time.monotonic()
        g.set_requested('vm0', 0)
        settle(g, seen)
        r['nofit_settle_s'] = time.monotonic() - t0
        c0 = guest_cpu(g)
        time.sleep(10)
        r['paused_cpu_s'] = guest_cpu(g) - c0
        # From the moment the workload starts to free its memory.
        t0 = time.monotonic()
        g.check('rm -f /bench/fill', timeout=60)
        r['survived'] = g.run('true', timeout=60)[0] == 0
        r['oom_kills'] = g.dmesg().count('Killed process')
        try:
            r['resume_s'] = wait_seen(g, 0, base, t0, RESUME_CAP)
        except GuestDied:
            raise
        except GuestError:
            r['resume_never'] = True    # alive, but not within the cap
        r['nofit_log_clean'] = not g.log_problems()
    except GuestDied as e:
        r['survived'] = False
        r.update({f'nofit_{k}': v for k, v in death(g, e).items()})
    except GuestError as e:
        r['nofit_error'] = str(e).splitlines()[0]
    finally:
        g.stop()
        if 'size' in seen:
            # Also when the guest died: what it gave back until then.
            r['nofit_unplugged_mib'] = (4 * GiB - seen['size']) // MiB
    r['nofit_console'] = g.console_path
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
NOFIT_KEYS = {'nofit_unplugged_mib', 'survived', 'oom_kills', 'resume_s',
              'paused_cpu_s'}


def missing_reason(r, key):
    """Why run r has no value for key, in the table's words."""
    phase = 'nofit' if key in NOFIT_KEYS else 'basic'
    if r.get(f'{phase}_died'):
        return 'guest panicked' if r.get(f'{phase}_panic') else 'guest died'
    if key == 'resume_s' and r.get('resume_never'):
        return 'never'
    if r.get(f'{phase}_error'):
        return 'error'
    return 'not run'


def summary(values, key):
    """(text, median or None) of key over the runs of one driver."""
    if not values:
        return '-', None
    if key == 'survived':
        ran = [v for v in values if key in v]
        if not ran:
            return '(not run)', None
        n = sum(1 for v in ran if v[key])
        return f'{n}/{len(ran)}', n
    nums = [v[key] for v in values
            if isinstance(v.get(key), (int, float))]
    missing = {}
    for v in values:
        if not isinstance(v.get(key), (int, float)):
            why = missing_reason(v, key)
            missing[why] = missing.get(why, 0) + 1
    if not nums:
        if len(missing) == 1:
            return f'({next(iter(missing))})', None
        return '(' + ', '.join(f'{n}x {w}' for w, n in missing.items()) \
            + ')', None
    med = statistics.median(nums)
    if all(isinstance(x, int) for x in nums):
        text = f'{med:g}' if min(nums) == max(nums) else \
            f'{med:g} [{min(nums)}-{max(nums)}]'
    else:
        text = f'{med:.2f} [{min(nums):.2f}-{max(nums):.2f}]'
    for why, n in missing.items():
        text += f' +{n} {why}'
    # A figure taken up to the guest's death (how much it unplugged).
    phase = 'nofit' if key in NOFIT_KEYS else 'basic'
    died = [v for v in values if v.get(f'{phase}_died')
            and isinstance(v.get(key), (int, float))]
    if died:
        end = 'panic' if all(v.get(f'{phase}_panic') for v in died) \
            else 'death'
        text += f' (until {end})' if len(died) == len(nums) else \
            f' ({len(died)}x until {end})'
    return text, med


def table(results):
    w = 24
    lines = [f'{"figure":38} {"in-tree (ref)":>{w}} {"ours":>{w}} '
             f'{"ours/ref":>9}']
    for label, key in ROWS:
        ref_t, ref_m = summary(results.get('ref', []), key)
        our_t, our_m = summary(results.get('ours', []), key)
        ratio = (f'{our_m / ref_m:.2f}' if key != 'survived'
                 and isinstance(ref_m, (int, float))
                 and isinstance(our_m, (int, float)) and ref_m else '-')
        lines.append(f'{label:38} {ref_t:>{w}} {our_t:>{w}} {ratio:>9}')
    return '\n'.join(lines)


def svg(results, path):
    """Grouped bars of the time figures, median per driver."""
    keys = [('plug', 'plug_s'), ('unplug idle', 'unplug_s'),
            ('unplug fits', 'fits_s'), ('resume no-fit', 'resume_s')]
    meds = {d: [summary(results.get(d, []), k)[1] or 0 for _, k in keys]
            for d in DRIVERS}
    top = max(max(v) for v in meds.values()) or 1
    w, h, left, base = 640, 320, 50, 270
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           'font-family="sans-serif" font-size="12">',
           f'<text x="{left}" y="20">virtio-mem: seconds (median), '
           'in-tree vs ours (0: no value)</text>',
           f'<line x1="{left}" y1="{base}" x2="{w - 10}" y2="{base}" '
           'stroke="black"/>']
    colors = {'ref': '#999999', 'ours': '#2a6fb0'}
    for i, (label, _) in enumerate(keys):
        x0 = left + 20 + i * 140
        for j, d in enumerate(DRIVERS):
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


def _sha256(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def environment(args):
    """Where the figures come from: machine, QEMU, kernel, drivers."""
    cpu = platform.processor()
    with open('/proc/cpuinfo') as f:
        m = re.search(r'^model name\s*:\s*(.*)$', f.read(), re.M)
        if m:
            cpu = m.group(1).strip()
    qemu = os.environ.get('VMTEST_QEMU', 'qemu-system-x86_64')
    qemu_version = subprocess.run([qemu, '--version'], capture_output=True,
                                  text=True).stdout.splitlines()[0]

    def git(*a):
        return subprocess.run(['git', '-C', REPO, *a], capture_output=True,
                              text=True).stdout.strip()

    kver = kernel_version()
    return {
        'date': datetime.datetime.now(datetime.timezone.utc)
        .strftime('%Y-%m-%d %H:%M UTC'),
        'cpu': cpu, 'cpus': os.cpu_count(),
        'qemu': qemu_version, 'accel': 'tcg',
        'guest_kernel': kver,
        'commit': git('rev-parse', 'HEAD'),
        'driver_sources_modified': bool(git('status', '--porcelain', '--',
                                            'drivers', 'include')),
        'ours_ko': ours_ko(),
        'ours_ko_sha256': _sha256(ours_ko()),
        'ref_ko_sha256': _sha256(ref_ko(kver)),
        'reps': args.reps, 'scenarios': args.scenarios,
        'drivers': args.drivers,
    }


def header(env):
    return (f'{env["date"]}, {env["cpu"]} ({env["cpus"]} CPUs), '
            f'{env["qemu"]} ({env["accel"].upper()}), guest kernel '
            f'{env["guest_kernel"]}, commit {env["commit"][:12]}'
            + (' with modified driver sources'
               if env['driver_sources_modified'] else '')
            + ('' if env['ours_ko'] == os.path.join(
                REPO, 'drivers', 'virtio', 'virtio_mem.ko')
               else f' (ours: {env["ours_ko"]})')
            + f'; {env["reps"]} repetitions, median [range]')


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--scenarios', default=','.join(SCENARIOS),
                    help='comma-separated subset of: ' + ', '.join(SCENARIOS))
    ap.add_argument('--drivers', default=','.join(DRIVERS),
                    help='comma-separated subset of: ' + ', '.join(DRIVERS))
    ap.add_argument('--out', default=os.path.join(HERE, '.build', 'bench'),
                    help='where the plot goes')
    ap.add_argument('--results', default=RESULTS_DIR,
                    help='where the raw results and the table go')
    args = ap.parse_args()
    args.scenarios = [s for s in args.scenarios.split(',') if s]
    args.drivers = [d for d in args.drivers.split(',') if d]
    for what, got, known in (('scenario', args.scenarios, SCENARIOS),
                             ('driver', args.drivers, DRIVERS)):
        bad = set(got) - set(known)
        if bad or not got:
            ap.error(f'unknown or no {what}: {sorted(bad)}')
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.results, exist_ok=True)
    env = environment(args)

    results = {d: [] for d in args.drivers}
    for rep in range(args.reps):
        for module in args.drivers:
            print(f'rep {rep + 1}/{args.reps}: {module}', file=sys.stderr,
                  flush=True)
            r = {}
            if 'basic' in args.scenarios:
                r.update(run_basic(module, rep))
            if 'nofit' in args.scenarios:
                r.update(run_nofit(module, rep))
            results[module].append(r)
            print(f'  {json.dumps(r)}', file=sys.stderr, flush=True)

    text = f'{header(env)}\n\n{table(results)}\n'
    stamp = datetime.datetime.now(datetime.timezone.utc) \
        .strftime('%Y-%m-%dT%H%MZ')
    raw = os.path.join(args.results, f'{stamp}.json')
    with open(raw, 'w') as f:
        json.dump({'environment': env, 'results': results}, f, indent=1)
        f.write('\n')
    with open(os.path.join(args.results, f'{stamp}.txt'), 'w') as f:
        f.write(text)
    svg(results, os.path.join(args.out, 'bench-results.svg'))
    print(text)
    print(f'raw results: {raw}\ntable: {raw[:-5]}.txt\n'
          f'plot: {args.out}/bench-results.svg')


if __name__ == '__main__':
    main()
