# SPDX-License-Identifier: GPL-2.0
"""The KTAP parser (ktap.py) that test_builtin.py reads KUnit results with,
on logs shaped like Linux 6.1's: no VM needed."""

import ktap

# What 6.1 prints for two suites, with printk timestamps and unrelated
# kernel messages mixed in: a failing parameter, a skipped case.
LOG = '''\
[    0.100000] Run some other init
[    1.000000] KTAP version 1
[    1.000001] 1..2
[    1.000002]     KTAP version 1
[    1.000003]     # Subtest: suite_a
[    1.000004]     1..3
[    1.000005]         KTAP version 1
[    1.000006]         # Subtest: case_param
[    1.000007]         ok 1 first row
[    1.000008]     # case_param: EXPECTATION FAILED at drivers/x.c:10
[    1.000008]     Expected rc == 0, but
[    1.000009]         not ok 2 second row
[    1.000010]     # case_param: pass:1 fail:1 skip:0 total:2
[    1.000011]     not ok 1 case_param
[    1.000012] virtio_mem virtio0: some driver message
[    1.000013]     ok 2 case_plain
[    1.000014]     ok 3 case_skipped # SKIP no device here
[    1.000015]     # suite_a: pass:1 fail:1 skip:1 total:3
[    1.000016]     # Totals: pass:2 fail:1 skip:1 total:4
[    1.000017] not ok 1 suite_a
[    1.000018]     KTAP version 1
[    1.000019]     # Subtest: suite_b
[    1.000020]     1..1
[    1.000021]     ok 1 case_b
[    1.000022] ok 2 suite_b
[    2.000000] Run /init as init process
ok 3 not part of the run
'''


def test_parses_nested_suites_cases_and_parameters():
    root = ktap.parse(LOG)
    assert root.plan == 2
    assert [s.name for s in root.children] == ['suite_a', 'suite_b']
    a, b = root.children
    assert (a.ok, a.plan, b.ok, b.plan) == (False, 3, True, 1)
    assert [c.name for c in a.children] == ['case_param', 'case_plain',
                                            'case_skipped']
    param = a.children[0]
    assert [(p.name, p.ok) for p in param.children] == [
        ('first row', True), ('second row', False)]
    assert param.plan is None


def test_reads_skip_directive():
    case = ktap.parse(LOG).children[0].children[2]
    assert case.ok and case.skipped and case.reason == 'no device here'


def test_failure_names_the_case_with_its_diagnostics():
    problems = ktap.parse(LOG).problems()
    assert 'suite_a: not ok' in problems
    assert 'suite_a.case_param: not ok' in problems
    i = problems.index('suite_a.case_param.second row: not ok')
    assert 'EXPECTATION FAILED' in problems[i + 1]
    assert not any(p.startswith('suite_b') for p in problems)


def test_unfinished_run_is_a_problem():
    cut = LOG[:LOG.index('[    1.000021]')]
    root = ktap.parse(cut)
    assert len(root.children) == 1
    assert 'run: planned 2 results, got 1' in root.problems()


def test_no_run_in_log():
    root = ktap.parse('[    0.1] just a kernel\n')
    assert root.plan is None and not root.children


def test_stops_after_the_planned_results():
    root = ktap.parse(LOG)
    assert [s.number for s in root.children] == [1, 2]
