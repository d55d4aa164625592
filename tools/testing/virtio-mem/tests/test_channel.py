# SPDX-License-Identifier: GPL-2.0
"""The harness's command channel: a line that arrives damaged is not run.

Under load, the guest's serial port drops bytes of the host's command
lines now and then (seen in test_offline_during_adoption: the guest ran
"pt.log" for "cat /tmp/adopt.log"). Each line carries its length; the
guest refuses a line whose length does not match, and the host sends it
again.
"""

import pytest

from vmtest import MemDevice


def test_damaged_line_is_not_run(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='1G')], module=None)
    # As if bytes were lost: the length says more than arrived.
    g._cmd.sendall(b'60 1.damaged touch /tmp/damaged\n')
    # The guest answers "damaged" (for the line above) before running
    # this command; the host takes that for its own line and sends it
    # again, which is harmless here.
    rc, out = g.run('test -e /tmp/damaged; echo $?')
    assert (rc, out) == (0, '1\n'), 'a damaged line was run'
    assert g.resent == 1
    rc, out = g.run('echo fine')
    assert (rc, out) == (0, 'fine\n')
    assert g.resent == 1


@pytest.mark.parametrize('kernel', ['debian', 'builtin'])
def test_stuck_guest_says_why(request, make_guest, kernel):
    """A guest that stops answering is asked why before the harness gives
    up (Guest.dump_stuck(): sysrq w and l typed on its keyboard). The
    built-in test kernel once failed that way with no word in its log:
    it had no sysrq. Both kernels must now print blocked tasks and every
    CPU's backtrace."""
    kw = {}
    if kernel == 'builtin':
        kw['kernel'] = request.getfixturevalue('builtin_kernel')
    g = make_guest(module=None, **kw)
    mark = g.log_mark()
    g.dump_stuck(settle=0)
    for what in ('Show Blocked State', 'Show backtrace of all active CPUs'):
        g.wait_until(lambda: g.console_log()[mark:], timeout=30,
                     cond=lambda log, w=what: w in log,
                     what=f'sysrq: "{what}" in the console log')
