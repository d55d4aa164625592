# SPDX-License-Identifier: GPL-2.0
"""KUnit results as test_builtin.py reads them: the kernel's `kunit.py
parse` (kunit_tool.py runs it from the unpacked linux-source-6.1) over
canned logs shaped like Linux 6.1's, passing and failing. No VM needed;
a failing KUnit case must fail test_kunit_suites_pass."""

import re

import pytest

import kunit_tool
import test_builtin

# What 6.1 prints for two suites, with printk timestamps and unrelated
# kernel messages mixed in: a parameterised case, a plain one, and whatever
# user space prints after the run.
PASS_LOG = '''\
[    0.100000] Run some other init
[    1.000000] KTAP version 1
[    1.000001] 1..2
[    1.000002]     KTAP version 1
[    1.000003]     # Subtest: suite_a
[    1.000004]     1..2
[    1.000005]         KTAP version 1
[    1.000006]         # Subtest: case_param
[    1.000007]         ok 1 first row
[    1.000008]         ok 2 second row
[    1.000009]     # case_param: pass:2 fail:0 skip:0 total:2
[    1.000010]     ok 1 case_param
[    1.000011] virtio_mem virtio0: some driver message
[    1.000012]     ok 2 case_plain
[    1.000013] # suite_a: pass:2 fail:0 skip:0 total:2
[    1.000014] ok 1 suite_a
[    1.000015]     KTAP version 1
[    1.000016]     # Subtest: suite_b
[    1.000017]     1..1
[    1.000018]     ok 1 case_b
[    1.000019] ok 2 suite_b
[    2.000000] Run /init as init process
ok 3 not part of the run
'''
# suite_a and suite_b as the test files would define them.
WANT = {'suite_a': [('case_param', True), ('case_plain', False)],
        'suite_b': [('case_b', False)]}

# The same run with the second parameter row failing an expectation.
FAIL_LOG = PASS_LOG.replace('''\
[    1.000008]         ok 2 second row
[    1.000009]     # case_param: pass:2 fail:0 skip:0 total:2
[    1.000010]     ok 1 case_param
''', '''\
[    1.000008]     # case_param: EXPECTATION FAILED at drivers/x.c:10
[    1.000008]     Expected rc == 0, but
[    1.000008]         rc == -22 (0xffffffffffffffea)
[    1.000008]         not ok 2 second row
[    1.000009]     # case_param: pass:1 fail:1 skip:0 total:2
[    1.000010]     not ok 1 case_param
''').replace('[    1.000014] ok 1 suite_a', '[    1.000014] not ok 1 suite_a')


def parse(tmp_path, log):
    return kunit_tool.parse(log, tmp_path / 'kunit.json')


def test_passing_run(tmp_path):
    result = parse(tmp_path, PASS_LOG)
    assert result.ok, result.output
    assert result.summary == 'Testing complete. Ran 4 tests: passed: 4'
    assert kunit_tool.problems(result, WANT) == []
    assert [g['name'] for g in result.tree['sub_groups']] == \
        ['suite_a', 'suite_b']


def test_kernel_message_inside_a_suite_header(tmp_path):
    """A kernel message printed between a suite's KTAP line and its
    Subtest line (a keyboard probing meanwhile, as seen in a make check
    run) is not part of the results: the run still passes."""
    log = PASS_LOG.replace(
        '[    1.000002]     KTAP version 1\n',
        '[    1.000002]     KTAP version 1\n'
        '[    1.000002] input: AT Translated Set 2 keyboard as '
        '/devices/platform/i8042/serio0/input/input1\n', 1)
    assert 'input: AT' in log
    for text in (log, re.sub(r'^\[[ \d.]+\] ', '', log, flags=re.M)):
        result = kunit_tool.parse(text, tmp_path / 'kunit.json')
        assert result.ok, result.output
        assert kunit_tool.problems(result, WANT) == []


def test_failing_case_fails_with_kunit_py_report(tmp_path):
    assert FAIL_LOG != PASS_LOG
    result = parse(tmp_path, FAIL_LOG)
    assert not result.ok
    assert result.summary == \
        'Testing complete. Ran 4 tests: passed: 3, failed: 1'
    # kunit.py's report names the failed row, with the expectation.
    assert '[FAILED] second row' in result.output
    assert 'EXPECTATION FAILED at drivers/x.c:10' in result.output
    assert kunit_tool.problems(result, WANT) == [
        'kunit.py parse failed (exit status 1): Testing complete. '
        'Ran 4 tests: passed: 3, failed: 1']


def test_unfinished_run_fails(tmp_path):
    result = parse(tmp_path, PASS_LOG[:PASS_LOG.index('[    1.000018]')])
    assert not result.ok
    assert 'crashed: 1' in result.summary, result.output


def test_no_ktap_fails(tmp_path):
    result = parse(tmp_path, '[    0.1] just a kernel\n')
    assert not result.ok
    assert 'could not find any KTAP output' in result.output
    assert 'suite_a: suite did not run (not built in? not listed in ' \
        'drivers/virtio/Makefile?)' in kunit_tool.problems(result, WANT)


def test_skip_and_missing_or_unknown_tests_are_problems(tmp_path):
    """kunit.py passes a skipped case; a suite or case the test files
    define must run, and nothing else."""
    log = PASS_LOG.replace('ok 2 case_plain', 'ok 2 case_plain # SKIP no '
                           'device').replace('suite_b', 'suite_c')
    result = parse(tmp_path, log)
    assert result.ok, result.output
    want = dict(WANT, suite_a=WANT['suite_a'] + [('case_more', False)])
    assert kunit_tool.problems(result, want) == [
        'suite_c: suite ran but is not defined in the KUnit test files',
        "suite_a: ran cases ['case_param', 'case_plain'], defined "
        "['case_more', 'case_param', 'case_plain']",
        "suite_a.case_plain: skipped (see kunit.py's report for why)",
        'suite_b: suite did not run (not built in? not listed in '
        'drivers/virtio/Makefile?)']


def test_parameterised_case_without_rows(tmp_path):
    """case_b printed no rows: the test files say it has parameters."""
    result = parse(tmp_path, PASS_LOG)
    want = dict(WANT, suite_b=[('case_b', True)])
    assert kunit_tool.problems(result, want) == [
        'suite_b.case_b: no parameter ran']


def test_missing_kunit_py_is_a_clear_error(tmp_path):
    with pytest.raises(kunit_tool.KunitToolMissing,
                       match='nowhere/kunit.py is missing: .*linux-source'):
        kunit_tool.parse(PASS_LOG, tmp_path / 'kunit.json',
                         kunit_py=str(tmp_path / 'nowhere' / 'kunit.py'))


# -- test_builtin.test_kunit_suites_pass, on a canned console log ------------

def ktap_for(suites, failing=None):
    """The KTAP 6.1 prints for suites ({suite: [(case, parameterised)]}),
    one row per parameterised case; the case named `failing` fails."""
    lines = ['KTAP version 1', f'1..{len(suites)}']
    for i, (suite, cases) in enumerate(suites.items(), 1):
        lines += ['    KTAP version 1', f'    # Subtest: {suite}',
                  f'    1..{len(cases)}']
        for j, (case, param) in enumerate(cases, 1):
            ok = 'not ok' if case == failing else 'ok'
            if param:
                lines += ['        KTAP version 1',
                          f'        # Subtest: {case}', f'        {ok} 1 row']
            lines.append(f'    {ok} {j} {case}')
        ok = 'not ok' if failing in (c for c, _ in cases) else 'ok'
        lines.append(f'{ok} {i} {suite}')
    return '\n'.join(['Booting the kernel'] + lines +
                     ['Run /init as init process']) + '\n'


class CannedGuest:
    """What test_kunit_suites_pass uses of a booted guest."""

    def __init__(self, tmp_path, log):
        self.console_path = str(tmp_path / 'canned.console.log')
        with open(self.console_path, 'w') as f:
            f.write(log)
        self.timings = []

    def console_log(self):
        with open(self.console_path) as f:
            return f.read()

    def assert_log_clean(self):
        pass


def run_kunit_test(tmp_path, log):
    g = CannedGuest(tmp_path, log)
    test_builtin.test_kunit_suites_pass(lambda **kwargs: g, 'bzImage')
    return g


def test_builtin_kunit_test_passes_on_passing_run(tmp_path):
    g = run_kunit_test(tmp_path, ktap_for(test_builtin.defined_suites()))
    (what, _), = g.timings
    assert 'kunit.py parse: Testing complete. Ran ' in what
    assert (tmp_path / 'canned.kunit.json').exists()


def test_builtin_kunit_test_fails_on_failing_case(tmp_path):
    suites = test_builtin.defined_suites()
    case = next(iter(suites.values()))[0][0]
    with pytest.raises(pytest.fail.Exception) as e:
        run_kunit_test(tmp_path, ktap_for(suites, failing=case))
    msg = str(e.value)
    assert 'as kunit.py parse reports it:' in msg
    assert f'[FAILED] {case}' in msg
    assert 'kunit.py parse failed (exit status 1)' in msg
