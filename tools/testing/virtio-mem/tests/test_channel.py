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

import re
import socket

import pytest

from vmtest import MemDevice


class LossyLink:
    """The host's end of the command socket, losing what a test says:
    mangle(reply) is applied to the next reply that comes back whole
    (through its END line), drop_line to the next line sent."""

    def __init__(self, sock):
        self.sock = sock
        self.mangle = None
        self.drop_line = None       # 'line' or 'newline'
        self._held = b''

    def sendall(self, data):
        what, self.drop_line = self.drop_line, None
        if what == 'line':
            return None
        if what == 'newline':
            data = data[:-1]
        return self.sock.sendall(data)

    def recv(self, n):
        chunk = self.sock.recv(n)
        if not self.mangle:
            return chunk
        self._held += chunk
        end = self._held.find(b'@@VMTEST-END ')
        if end < 0 or b'\n' not in self._held[end:]:
            raise socket.timeout()
        cut = self._held.index(b'\n', end) + 1
        reply, rest = self._held[:cut], self._held[cut:]
        mangle, self.mangle, self._held = self.mangle, None, b''
        data = mangle(reply) + rest
        if not data:
            raise socket.timeout()
        return data

    def __getattr__(self, name):
        return getattr(self.sock, name)


def lose(what):
    """A mangle for LossyLink: lose the last byte of the first what."""
    return lambda reply: reply.replace(what, what[:-1], 1)


def run_once(g, tag, rc=0):
    """A command whose output tells how often it ran."""
    return g.run(f'echo {tag} >> /tmp/{tag}; grep -c {tag} /tmp/{tag}; '
                 f'exit {rc}')


def test_lost_bytes_do_not_run_twice(make_guest):
    """Each way the line can lose bytes, once: the command runs once, its
    output is right, and later commands are not confused."""
    g = make_guest(devices=[MemDevice('vm0', size='1G')], module=None)
    # As if bytes were lost: the length says more than arrived. The guest
    # answers "damaged" before it runs the next command; the host asks.
    g._cmd.sendall(b'60 1.damaged touch /tmp/damaged\n')
    assert run_once(g, 'after-damaged') == (0, '1\n')
    assert g.run('test -e /tmp/damaged; echo $?') == (0, '1\n'), \
        'a damaged line was run'
    assert g.asked >= 1

    link = g._cmd = LossyLink(g._cmd)
    # (what is lost, rc of the command, how)
    cases = [
        ('reply', 0, lambda reply: b''),
        ('marker', 0, lose(b'@@VMTEST-END')),
        ('rc', 0, lambda reply: re.sub(rb'(END \S+ )\d+', rb'\1', reply)),
        ('rc-digit', 17, lambda reply: re.sub(rb'(END \S+ )1', rb'\1',
                                             reply)),
        ('space', 0, lambda reply: re.sub(rb'(END \S+) ', rb'\1', reply)),
        ('output', 0, lambda reply: re.sub(rb'(OUT [^@]*@@\n).', rb'\1',
                                           reply)),
        ('start', 0, lose(b'@@VMTEST-OUT')),
    ]
    for tag, rc, mangle in cases:
        asked = g.asked
        link.mangle = mangle
        assert run_once(g, f'lost-{tag}', rc) == (rc, '1\n'), tag
        assert link.mangle is None, f'{tag}: the reply was not mangled'
        assert g.asked > asked, f'{tag}: the host did not ask'
    for tag in ('line', 'newline'):
        resent = g.resent
        link.drop_line = tag
        assert run_once(g, f'lost-{tag}') == (0, '1\n'), tag
        assert g.resent > resent, f'lost {tag}: not sent again'
    # A long command: the host asks meanwhile, and the guest answers each
    # question after the command. Those late replies are not the next
    # command's.
    asked = g.asked
    assert g.run('sleep 12; echo slept') == (0, 'slept\n')
    assert g.asked > asked
    assert g.run('echo fine') == (0, 'fine\n')
    # Nothing ran twice, not even later.
    tags = [f'lost-{t}' for t, _, _ in cases] + ['lost-line', 'lost-newline']
    counts = g.check('cd /tmp; grep -c lost- ' + ' '.join(tags))
    assert counts.split() == [f'{t}:1' for t in tags], counts


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
