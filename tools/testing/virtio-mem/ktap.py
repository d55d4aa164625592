# SPDX-License-Identifier: GPL-2.0
"""Parse KTAP, the test output KUnit prints to the kernel log.

Stdlib only. Reads a console log (other kernel messages and printk
timestamps may be mixed in) and returns the tree of results::

    KTAP version 1                      <- the run: plan = number of suites
    1..2
        KTAP version 1                  <- a suite, indented one level
        # Subtest: virtio_mem_config
        1..2
            KTAP version 1              <- a parameterised case: its
            # Subtest: vmem_cfg_check   <- parameters one level deeper
            ok 1 zero block size        <- (6.1 prints no plan for them)
            not ok 2 misaligned addr
        # vmem_cfg_check: pass:1 fail:1 skip:0 total:2
        not ok 1 vmem_cfg_check
        ok 2 vmem_other # SKIP no device
    not ok 1 virtio_mem_config

A test's result line comes after its subtests, one indentation level up.
Lines starting with '#' (and any other indented text) before a result line
are its diagnostics: KUnit prints failed expectations there.
"""

import dataclasses
import re

# A printk timestamp, if the kernel prints them.
_TIME_RE = re.compile(r'^\[\s*\d+\.\d+\]\s?')
_VERSION_RE = re.compile(r'^K?TAP version \d+$')
_PLAN_RE = re.compile(r'^1\.\.(\d+)$')
_SUBTEST_RE = re.compile(r'^# Subtest: (.*)$')
_RESULT_RE = re.compile(r'^(ok|not ok) (\d+)(?: -)?(?: (.*?))?'
                        r'(?:\s+# (SKIP|TODO)\b\s*(.*))?$')
INDENT = 4


@dataclasses.dataclass
class Test:
    """One test, suite or run. ok is None until its result line is seen."""
    name: str = ''
    number: int = None
    ok: bool = None
    directive: str = None       # 'SKIP' or 'TODO'
    reason: str = ''            # text after the directive
    plan: int = None            # from '1..N'; None if none was printed
    children: list = dataclasses.field(default_factory=list)
    diag: list = dataclasses.field(default_factory=list)

    @property
    def skipped(self):
        return self.directive == 'SKIP'

    def walk(self, path=()):
        """Yield (path, test) for this test's descendants, depth first."""
        for child in self.children:
            p = path + (child.name,)
            yield p, child
            yield from child.walk(p)

    def problems(self):
        """What is wrong below this test, as readable lines: failures
        (with their diagnostics), missing results, plans not met."""
        out = []
        if self.plan is not None and self.plan != len(self.children):
            out.append(f'{self.name or "run"}: planned {self.plan} '
                       f'results, got {len(self.children)}')
        for path, t in self.walk():
            name = '.'.join(path)
            if t.ok is None:
                out.append(f'{name}: no result')
            elif not t.ok:
                out.append(f'{name}: not ok')
                out.extend(f'    {d}' for d in t.diag)
            if t.plan is not None and t.plan != len(t.children):
                out.append(f'{name}: planned {t.plan} results, got '
                           f'{len(t.children)}')
        return out


def _split(line):
    """(level, text) of a log line; level None if it is not indented
    KTAP-style (a multiple of INDENT spaces)."""
    line = _TIME_RE.sub('', line.rstrip('\r\n'))
    text = line.lstrip(' ')
    spaces = len(line) - len(text)
    if spaces % INDENT:
        return None, text
    return spaces // INDENT, text.rstrip()


def parse(log):
    """Parse the first KTAP run in log; returns its root Test.

    The root's plan is None if no run was found. Parsing stops when the
    root has as many results as it planned, so later output (user space,
    other tests) is not read.
    """
    root = Test()
    stack = None          # stack[level]: the open test whose subtests
    pending = []          # are at that level; diagnostics not yet claimed

    def open_at(level):
        while len(stack) <= level:
            stack.append(Test())
        return stack[level]

    for raw in log.splitlines():
        level, text = _split(raw)
        if level is None or not text:
            continue
        if stack is None:
            # Wait for the run's header at the left margin.
            if level == 0 and _VERSION_RE.match(text):
                stack = [root]
            continue

        if _VERSION_RE.match(text):
            if level == 0:
                continue
            del stack[level:]
            open_at(level)
            continue
        m = _SUBTEST_RE.match(text)
        if m:
            if level > 0:
                open_at(level).name = m.group(1)
            continue
        m = _PLAN_RE.match(text)
        if m:
            open_at(level).plan = int(m.group(1))
            continue
        m = _RESULT_RE.match(text)
        if m:
            # The result of the test whose subtests sit one level deeper,
            # if any are open; else of a test without subtests.
            t = stack[level + 1] if len(stack) > level + 1 else Test()
            del stack[level + 1:]
            t.ok = m.group(1) == 'ok'
            t.number = int(m.group(2))
            t.name = m.group(3) or t.name
            t.directive = m.group(4)
            t.reason = m.group(5) or ''
            t.diag, pending = pending, []
            open_at(level).children.append(t)
            if root.plan is not None and len(root.children) >= root.plan:
                break
            continue
        if level > 0 or text.startswith('#'):
            pending.append(text)
    return root
