# SPDX-License-Identifier: GPL-2.0
"""The harness's command channel: every command runs exactly once.

Under load, the guest's serial port drops bytes now and then (seen in
test_offline_during_adoption: the guest ran "pt.log" for "cat
/tmp/adopt.log"; and once a reply never came). Each line carries its
length; the guest refuses a line whose length does not match. A host that
hears nothing back, or hears of a damaged line, asks whether its command
ran: the guest sends the reply again, or says it did not run, and only
then does the host send it again.
"""

import socket

import pytest

from vmtest import MemDevice


class LossyLink:
    """The host's end of the command socket, losing what a test says."""

    def __init__(self, sock):
        self.sock = sock
        self.drop_reply = False     # swallow incoming bytes through a reply
        self.drop_line = None       # 'line' or 'newline' of the next send
        self._swallowed = b''

    def sendall(self, data):
        what, self.drop_line = self.drop_line, None
        if what == 'line':
            return None
        if what == 'newline':
            data = data[:-1]
        return self.sock.sendall(data)

    def recv(self, n):
        chunk = self.sock.recv(n)
        if not self.drop_reply:
            return chunk
        self._swallowed += chunk
        end = self._swallowed.find(b'@@VMTEST-END ')
        if end < 0 or b'\n' not in self._swallowed[end:]:
            return self._nothing()
        rest = self._swallowed[self._swallowed.index(b'\n', end) + 1:]
        self.drop_reply, self._swallowed = False, b''
        return rest if rest else self._nothing()

    def _nothing(self):
        raise socket.timeout()

    def __getattr__(self, name):
        return getattr(self.sock, name)


def run_once(g, tag):
    """A command whose output tells how often it ran."""
    return g.run(f'echo x >> /tmp/{tag}; grep -c x /tmp/{tag}')


def test_damaged_line_is_not_run(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='1G')], module=None)
    # As if bytes were lost: the length says more than arrived.
    g._cmd.sendall(b'60 1.damaged touch /tmp/damaged\n')
    # The guest answers "damaged" (for the line above) before it runs the
    # next command; the host asks, and does not run its command twice.
    assert run_once(g, 'damaged-then') == (0, '1\n')
    rc, out = g.run('test -e /tmp/damaged; echo $?')
    assert (rc, out) == (0, '1\n'), 'a damaged line was run'
    assert (g.resent, g.asked) == (0, 1)

    link = g._cmd = LossyLink(g._cmd)
    # The reply is lost: asked for, sent again, the command ran once.
    link.drop_reply = True
    assert run_once(g, 'lost-reply') == (0, '1\n')
    assert (g.resent, g.asked) == (0, 2)
    # The command line is lost: the guest says it did not run it.
    link.drop_line = 'line'
    assert run_once(g, 'lost-line') == (0, '1\n')
    assert (g.resent, g.asked) == (1, 3)
    # Its newline is lost: the question joins it into one damaged line.
    link.drop_line = 'newline'
    assert run_once(g, 'lost-newline') == (0, '1\n')
    assert (g.resent, g.asked) == (2, 5)
    # Late replies to the questions do not confuse the next command.
    assert g.run('echo fine') == (0, 'fine\n')
    assert run_once(g, 'lost-reply') == (0, '2\n')


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
