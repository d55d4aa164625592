# SPDX-License-Identifier: GPL-2.0
"""The workload itself, run on the host: memfill must notice every changed
byte, or the VM tests that rely on "corrupted 0 bytes" prove nothing."""

import os
import re
import select
import subprocess
import time

import vmtest


def run_memfill(tmp_path, corrupt, args=('-a', '8', '-f', '70')):
    exe = vmtest.build_guest_program('memfill')
    go = tmp_path / 'go'
    p = subprocess.Popen([exe, *args, '-d', str(tmp_path), '-s', '7',
                          '-w', str(go)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    # memfill flushes its 'filled' line once every file is written and
    # closed: the moment to corrupt them.
    deadline = time.monotonic() + 30
    head = ''
    while 'memfill: filled' not in head:
        ready, _, _ = select.select([p.stdout], [], [],
                                    max(0, deadline - time.monotonic()))
        line = p.stdout.readline() if ready else ''
        if not line:
            p.kill()
            raise AssertionError(f'memfill did not fill within 30s:\n{head}'
                                 + p.communicate()[0])
        head += line
    corrupt(tmp_path)
    go.touch()
    out, _ = p.communicate(timeout=30)
    out = head + out
    m = re.search(r'memfill: verified (\d+) MiB, corrupted (\d+) bytes', out)
    assert m, out
    return p.returncode, int(m.group(1)), int(m.group(2)), out


def test_memfill_clean(tmp_path):
    rc, mib, bad, out = run_memfill(tmp_path, lambda d: None)
    assert (rc, mib, bad) == (0, 78, 0), out
    # What it wrote, counted as written, and its pid (for RssAnon).
    assert re.search(r'^memfill: filled 78 MiB \(8 MiB anon \+ 70 MiB files '
                     r'in .*\), seed 7, pid \d+$', out, re.M), out


def test_memfill_detects_changes(tmp_path):
    def corrupt(d):
        with open(d / 'memfill.0', 'r+b') as f:
            f.seek(12345)
            b = f.read(3)
            f.seek(12345)
            f.write(bytes(x ^ 0xff for x in b))      # 3 bytes
        with open(d / 'memfill.1', 'r+b') as f:
            f.truncate(5 << 20)                        # 1 MiB lost

    rc, mib, bad, out = run_memfill(tmp_path, corrupt)
    assert rc == 1, out
    assert bad == 3 + (1 << 20), out
    # "verified" counts what it compared: not the lost MiB.
    assert mib == 77, out


def test_memfill_detects_swapped_pages(tmp_path):
    """Same data in the wrong place (a migration to the wrong page)."""
    def swap(d):
        with open(d / 'memfill.0', 'r+b') as f:
            a = f.read(4096)
            b = f.read(4096)
            f.seek(0)
            f.write(b + a)

    rc, _, bad, out = run_memfill(tmp_path, swap)
    assert rc == 1 and bad > 8000, out


def test_memfill_usage():
    exe = vmtest.build_guest_program('memfill')
    p = subprocess.run([exe], capture_output=True, text=True)
    assert p.returncode == 2 and 'usage' in p.stderr
    assert os.access(exe, os.X_OK)
