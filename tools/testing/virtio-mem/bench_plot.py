# SPDX-License-Identifier: GPL-2.0
"""Pictures of a bench run: for one scenario, QEMU's plugged size, the
guest's MemTotal growth and the host's request over time, one panel per
driver, side by side on the same scales. Plain SVG, no plotting library.

A trace is what bench.Trace.data() returns: points (s, QMP size in bytes,
MemTotal - boot MemTotal in kB or None) and requests (s, bytes).
"""

import html
import math

GiB = 1 << 30
KiB = 1 << 10

PANEL_W, PANEL_H = 440, 240      # plot area of one panel
LEFT, TOP, GAP, BOTTOM = 56, 54, 40, 64
COLORS = {'request': '#888888', 'size': '#2a6fb0', 'memtotal': '#e07b00'}
NAMES = {'ref': "Debian's in-tree driver (ref)", 'ours': 'ours'}


def _changes(points):
    """The points where a value changes, with the one before each change
    and the last: the same lines from far fewer points."""
    keep = []
    for i, p in enumerate(points):
        if i == 0 or i == len(points) - 1 or p[1:] != points[i - 1][1:] or \
                p[1:] != points[i + 1][1:]:
            keep.append(p)
    return keep


def _nice(top):
    """A round axis maximum at or above top, and its tick step."""
    if top <= 0:
        return 1, 1
    step = 10 ** math.floor(math.log10(top))
    for m in (1, 2, 5, 10):
        if top / (m * step) <= 5:
            step *= m
            break
    return math.ceil(top / step) * step, step


def _polyline(pts, color, dash=None):
    if len(pts) < 2:
        return ''
    d = ' '.join(f'{x:.1f},{y:.1f}' for x, y in pts)
    extra = f' stroke-dasharray="{dash}"' if dash else ''
    return (f'<polyline points="{d}" fill="none" stroke="{color}" '
            f'stroke-width="1.5"{extra}/>')


def _panel(x0, trace, tmax, ymax, title):
    """SVG elements of one driver's panel at x0."""
    def sx(t):
        return x0 + PANEL_W * t / tmax

    def sy(gib):
        return TOP + PANEL_H * (1 - gib / ymax)

    out = [f'<text x="{x0}" y="{TOP - 8}" font-weight="bold">'
           f'{html.escape(title)}</text>',
           f'<rect x="{x0}" y="{TOP}" width="{PANEL_W}" height="{PANEL_H}" '
           'fill="none" stroke="#000000"/>']
    if not trace:
        out.append(f'<text x="{x0 + 20}" y="{TOP + 40}">no trace</text>')
        return out
    points = _changes(trace['points'])
    reqs = trace['requests']
    steps = []
    for i, (t, size) in enumerate(reqs):
        end = reqs[i + 1][0] if i + 1 < len(reqs) else tmax
        steps += [(sx(t), sy(size / GiB)), (sx(end), sy(size / GiB))]
    out.append(_polyline(steps, COLORS['request'], '5,4'))
    out.append(_polyline([(sx(t), sy(s / GiB)) for t, s, _ in points],
                         COLORS['size']))
    out.append(_polyline([(sx(t), sy(m * KiB / GiB))
                          for t, _, m in points if m is not None],
                         COLORS['memtotal'], '2,2'))
    return out


def _axes(x0, tmax, tstep, ymax, ystep):
    out = []
    t = 0
    while t <= tmax + 1e-9:
        x = x0 + PANEL_W * t / tmax
        out.append(f'<line x1="{x:.1f}" y1="{TOP + PANEL_H}" x2="{x:.1f}" '
                   f'y2="{TOP + PANEL_H + 4}" stroke="#000000"/>')
        out.append(f'<text x="{x:.1f}" y="{TOP + PANEL_H + 16}" '
                   f'text-anchor="middle">{t:g}</text>')
        t += tstep
    out.append(f'<text x="{x0 + PANEL_W / 2}" y="{TOP + PANEL_H + 32}" '
               'text-anchor="middle">seconds from the first request</text>')
    g = 0
    while g <= ymax + 1e-9:
        y = TOP + PANEL_H * (1 - g / ymax)
        out.append(f'<line x1="{x0 - 4}" y1="{y:.1f}" x2="{x0}" '
                   f'y2="{y:.1f}" stroke="#000000"/>')
        out.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" '
                   f'text-anchor="end">{g:g}</text>')
        g += ystep
    return out


def timeline_svg(traces, drivers, title, path):
    """Write the panels of traces ({driver: trace}) to path."""
    tmax = max([p[0] for tr in traces.values() if tr
                for p in tr['points']] + [1e-3])
    ytop = max([max(p[1], (p[2] or 0) * KiB) for tr in traces.values() if tr
                for p in tr['points']]
               + [s for tr in traces.values() if tr
                  for _, s in tr['requests']] + [1]) / GiB
    tmax, tstep = _nice(tmax)
    # Headroom: a line at the top must not hide in the frame.
    ymax, ystep = _nice(ytop * 1.1)
    width = LEFT + len(drivers) * (PANEL_W + GAP)
    height = TOP + PANEL_H + BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" '
           f'height="{height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="18">{html.escape(title)}</text>',
           f'<text x="12" y="{TOP + PANEL_H / 2}" text-anchor="middle" '
           f'transform="rotate(-90 12 {TOP + PANEL_H / 2})">GiB</text>']
    for i, d in enumerate(drivers):
        x0 = LEFT + i * (PANEL_W + GAP)
        out += _panel(x0, traces.get(d), tmax, ymax, NAMES.get(d, d))
        out += _axes(x0, tmax, tstep, ymax, ystep)
    legend = (('request', 'requested size (host)', '5,4'),
              ('size', 'plugged size (QMP)', None),
              ('memtotal', 'MemTotal growth (guest)', '2,2'))
    y = height - 12
    for i, (key, text, dash) in enumerate(legend):
        x = LEFT + i * 200
        out.append(_polyline([(x, y - 4), (x + 24, y - 4)], COLORS[key],
                             dash))
        out.append(f'<text x="{x + 30}" y="{y}">{text}</text>')
    out.append('</svg>')
    with open(path, 'w') as f:
        f.write('\n'.join(o for o in out if o) + '\n')
