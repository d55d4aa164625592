# SPDX-License-Identifier: GPL-2.0
"""Read KUnit results with the kernel's own tool: `kunit.py parse`, from
tools/testing/kunit of the source the test kernel is built from (Debian's
linux-source-6.1, unpacked by make). Its report and verdict are the ones
every KUnit user reads; on top of them the harness only checks, from its
JSON, that every suite and case the test files define ran and none was
skipped.

Stdlib only; kunit.py runs as its own process, reading the log on stdin.
"""

import contextlib
import dataclasses
import json
import os
import re
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
# Unpacked by make (kernel, check-module, checkpatch), as for
# tests/test_kunitconfig.py.
LINUX_SRC = os.environ.get('LINUX_SRC', os.path.join(
    HERE, '.build', 'linux-source-6.1'))
KUNIT_PY = os.path.join(LINUX_SRC, 'tools', 'testing', 'kunit', 'kunit.py')
PYTHON = '/usr/bin/python3'
TIMEOUT = 120

# kunit.py's time stamp in front of each line it prints.
_STAMP_RE = re.compile(r'^\[\d\d:\d\d:\d\d\] ', re.M)


# A console line, less its printk time stamp; and the lines of a KTAP run:
# indented, or a KTAP/TAP header, plan, result or diagnostic.
_LINE_RE = re.compile(r'^(\[[ \d.]+\] )?(.*)$')
_KTAP_RE = re.compile(r'\s|(K?TAP version |# |ok |not ok |\d+\.\.\d+)')


def ktap_lines(log):
    """The console log with the kernel's own unindented messages dropped
    from the first KTAP line on. They are not results, and kunit.py's
    parser loses its nesting on one printed between a suite's KTAP line
    and its Subtest line (a device probing meanwhile)."""
    out, started = [], False
    for line in log.splitlines(keepends=True):
        body = _LINE_RE.match(line.rstrip('\r\n')).group(2)
        started = started or body.startswith(('KTAP version', 'TAP version'))
        if not started or not body or _KTAP_RE.match(body):
            out.append(line)
    return ''.join(out)


class KunitToolMissing(Exception):
    """The kernel source with kunit.py is not there (not unpacked)."""


@dataclasses.dataclass
class Result:
    """What `kunit.py parse` made of a log."""
    returncode: int
    output: str         # its report: a line per test, then the totals
    tree: dict = None   # its --json (KernelCI's format); None if none

    @property
    def ok(self):
        """kunit.py's verdict: exit status 0 if the run is complete and
        every test passed or was skipped."""
        return self.returncode == 0

    @property
    def summary(self):
        """kunit.py's closing 'Testing complete. Ran N tests: ...' line."""
        lines = [line for line in _STAMP_RE.sub('', self.output).splitlines()
                 if line.startswith('Testing complete.')]
        return lines[-1] if lines else ''


def parse(log, json_path, kunit_py=None):
    """Run `kunit.py parse --json=json_path` over log (a console log:
    kunit.py finds the KTAP in it, ktap_lines() drops kernel messages
    amid it); kunit.py's JSON stays in json_path."""
    kunit_py = kunit_py or KUNIT_PY
    if not os.path.isfile(kunit_py):
        raise KunitToolMissing(
            f'{kunit_py} is missing: KUnit results are read with the '
            "kernel's kunit.py, from Debian's linux-source-6.1 (deps.sh "
            f'installs it); unpack it with make {LINUX_SRC}/.unpacked '
            '(make check, check-module, check-builtin and kernel do)')
    # kunit.py changes to the kernel's top directory before it writes.
    json_path = os.path.abspath(json_path)
    with contextlib.suppress(FileNotFoundError):
        os.remove(json_path)
    p = subprocess.run(
        [PYTHON, kunit_py, 'parse', f'--json={json_path}'],
        input=ktap_lines(log),
        capture_output=True, encoding='utf-8', errors='replace',
        timeout=TIMEOUT,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE='1',
                 PYTHONIOENCODING='utf-8'))
    tree = None
    if os.path.exists(json_path):
        with open(json_path) as f:
            tree = json.load(f)
    return Result(p.returncode, (p.stdout + p.stderr).rstrip('\n'), tree)


def _children(group):
    """{name: node} of a JSON group: its sub-groups (tests with subtests)
    and test cases. The JSON keeps the two apart, so the order in which
    they ran is not known."""
    return {n['name']: n for n in group.get('sub_groups', []) +
            group.get('test_cases', [])}


def _leaves(node, path):
    """(path, status) of the test cases at and below node."""
    if 'status' in node:
        yield path, node['status']
    for name, child in _children(node).items():
        yield from _leaves(child, path + (name,))


def problems(result, want):
    """What is wrong, as readable lines: kunit.py's verdict, then, against
    want ({suite: [(case, parameterised)]} as the test files define them),
    suites or cases that did not run or are not defined, parameterised
    cases without a row, and skips (kunit.py passes them; here they mean
    a test checked nothing)."""
    out = []
    if not result.ok:
        out.append(f'kunit.py parse failed (exit status {result.returncode})'
                   f': {result.summary or "no summary"}')
    if result.tree is None:
        return out + ['kunit.py parse wrote no JSON results']
    got = _children(result.tree)
    for name in sorted(set(got) - set(want)):
        out.append(f'{name}: suite ran but is not defined in the KUnit '
                   'test files')
    for name, cases in want.items():
        suite = got.get(name)
        if suite is None:
            out.append(f'{name}: suite did not run (not built in? not '
                       'listed in drivers/virtio/Makefile?)')
            continue
        ran = _children(suite)
        if sorted(ran) != sorted(c for c, _ in cases):
            out.append(f'{name}: ran cases {sorted(ran)}, defined '
                       f'{sorted(c for c, _ in cases)}')
        for case, param in cases:
            node = ran.get(case)
            if param and node is not None and 'status' in node:
                out.append(f'{name}.{case}: no parameter ran')
        for path, status in _leaves(suite, (name,)):
            if status == 'SKIP':
                out.append(f'{".".join(path)}: skipped (see kunit.py\'s '
                           'report for why)')
    return out
