# SPDX-License-Identifier: GPL-2.0
"""The harness's command channel: a virtio-serial port, which loses
nothing. Every command's reply comes back whole and in order, large
outputs included; a reply that is not the one the host waits for fails
the test that saw it; and a guest that stops answering is asked why.
"""

import re
import socket

import pytest

import vmtest
from vmtest import GuestError

# 1 MiB of distinct lines, so that a lost, doubled or reordered piece
# shows: 131072 numbers of 7 digits and a newline.
BIG_CMD = 'seq 1000000 1131071'


def big_output():
    return ''.join(f'{i}\n' for i in range(1000000, 1131072))


# What sysrq w and l print of the stuck command's tasks and the CPUs.
@pytest.mark.allow_log(r'Call Trace:')
@pytest.mark.parametrize('kernel', ['debian',
                                    pytest.param('builtin',
                                                 marks=pytest.mark.builtin)])
def test_channel_round_trips(request, make_guest, kernel):
    """Commands in a row (300 on Debian's kernel, 30 on the test kernel:
    every other test sends hundreds more), each answered with its own
    output and exit code, then 1 MiB of output back byte for byte; then a
    command that does not finish in time: the guest is asked why (blocked
    tasks and every CPU's backtrace in the console log)."""
    if kernel == 'builtin':
        g = make_guest(kernel=request.getfixturevalue('builtin_kernel'),
                       module=None)
    else:
        g = make_guest(module=None)
    for i in range(300 if kernel == 'debian' else 30):
        rc, out = g.run(f'echo {i}; exit {i % 7}')
        assert (rc, out) == (i % 7, f'{i}\n'), (i, rc, out)
    rc, out = g.run(BIG_CMD, timeout=300)
    assert rc == 0 and out == big_output(), \
        f'1 MiB of output came back as {len(out)} bytes'

    mark = g.log_mark()
    with pytest.raises(GuestError, match='timeout'):
        g.run('sleep 600', timeout=3)
    log = g.console_log()[mark:]
    assert re.search(r'sysrq: Show Blocked State', log), log[-3000:]
    assert re.search(r'sysrq: Show backtrace of all active CPUs', log), \
        log[-3000:]


class FakeGuest(vmtest.Guest):
    """A Guest whose command channel is one end of a socket pair, the test
    playing the guest at the other."""

    def __init__(self):
        super().__init__(name='fake-channel')
        self._cmd, self.peer = socket.socketpair()

    def _check_alive(self):
        pass

    def dump_stuck(self, settle=5):
        pass


# The guest sends the output, then its END line after a newline of its own.
@pytest.mark.parametrize('reply, why', [
    (b'out\n\n@@VMTEST-END 1 0 4@@\n', None),
    (b'out\n\n@@VMTEST-END 2 0 4@@\n', 'another command'),
    (b'ot\n\n@@VMTEST-END 1 0 4@@\n', 'bytes of the output lost'),
    (b'out\n\n@@VMTEST-END 1 0 3@@\n', 'a wrong length'),
], ids=['whole', 'another-command', 'output-lost', 'wrong-length'])
def test_a_damaged_reply_fails(reply, why):
    """The host takes a reply only if it answers its command and its
    output is as long as the guest says: anything else is a failure, not
    something to recover from."""
    g = FakeGuest()
    g.peer.sendall(reply)
    if why is None:
        assert g.run('echo out', timeout=5) == (0, 'out\n')
    else:
        with pytest.raises(GuestError, match='lost or damaged'):
            g.run('echo out', timeout=5)
    assert g.peer.recv(100) == b'1 echo out\n'
