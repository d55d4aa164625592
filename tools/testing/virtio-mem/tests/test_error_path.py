# SPDX-License-Identifier: GPL-2.0
"""A device answering ERROR does not stop the driver: it logs the request,
re-synchronises its view with STATE requests and carries on.

QEMU only answers ERROR to requests that contradict its state, so the
driver's debugfs knob inject_error makes it send one such request.
"""

from steps import plug_step
from vmtest import GiB, MemDevice

SYSFS = '/sys/bus/virtio/devices/virtio0/virtio_mem'
KNOB = '/sys/kernel/debug/virtio_mem/virtio0/inject_error'


def stat(g, name):
    return int(g.check(f'cat {SYSFS}/{name}').strip())


def test_error_answer_then_resync(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    plug_step(g, 'vm0', 1 * GiB, base)
    assert stat(g, 'answers_error') == 0 and stat(g, 'resyncs') == 0

    g.check('mount -t debugfs none /sys/kernel/debug 2>/dev/null; '
            f'echo 1 > {KNOB}')
    g.wait_until(lambda: stat(g, 'resyncs'), cond=lambda n: n == 1,
                 timeout=60, what='a resync after the ERROR answer')
    assert stat(g, 'answers_error') == 1
    log = g.dmesg()
    assert 'failed: device answered ERROR' in log, log[-2000:]
    assert 'resync: device state matches ours' in log, log[-2000:]
    assert stat(g, 'broken') == 0

    # Carries on: the device size and MemTotal still follow requests.
    plug_step(g, 'vm0', 2 * GiB, base)
    plug_step(g, 'vm0', 0, base)
    assert stat(g, 'plugged_size') == 0
