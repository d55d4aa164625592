# SPDX-License-Identifier: GPL-2.0
"""Answers other than ACK, and memory Linux refuses to add, do not stop the
driver, and it counts them.

- ERROR: the driver logs the request, re-synchronises its view with STATE
  requests and carries on. QEMU only answers ERROR to requests that
  contradict its state, so the fault-injection build of our module
  ('ours-fi') has a debugfs knob, inject_error, that makes it send one.
  Another one, inject_stray, plugs a device block behind the driver's
  back, so that the resync has something to repair: a whole unit, or with
  1 MiB device blocks half a unit (the device calls it MIXED).
- NACK: QEMU answers NACK to a PLUG beyond the requested size. With a device
  fully plugged, the request inject_error sends is such a PLUG.
- A memory block Linux refuses to add: the kernel command line reserves
  (memmap=) 2 MiB inside the device region, so adding the memory block
  around it fails. The driver counts it in add_failures, keeps nothing
  plugged that Linux does not have, and retries after its backoff, which
  runs with non-default backoff_min_ms/backoff_max_ms here.

All in one guest: two devices, vm0 (8G) and vm1 (256M, fully requested).
"""

import re

from steps import (assert_steady, check_sizes, fault_knob, plug_order,
                   plug_step, resize_step, wait_equal)
from vmtest import GiB, MiB, MemDevice

# q35 with 1 GiB of boot memory puts the device-memory area, and so the
# first device's region, at 4 GiB.
VM0_ADDR = 4 * GiB
# The 2 MiB reserved at boot, in the memory block at 3 GiB into vm0.
RESERVED = VM0_ADDR + 3 * GiB + 64 * MiB
PARAMS = '/sys/module/virtio_mem/parameters'
TRACEFS = '/sys/kernel/tracing'
# A retry delay long enough to watch a failure stay unretried.
LONG_BACKOFF_MS = 60000


def stat(g, dev, name):
    return g.vmem_attr(dev, name)


def test_error_nack_and_add_failure(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='8G'),
                            MemDevice('vm1', size='256M', requested='256M')],
                   module='ours-fi', online='online_movable',
                   cmdline=f'memmap=2M${RESERVED:#x}')
    assert g.device_info('vm0')['memaddr'] == VM0_ADDR, \
        'vm0 is not where the memmap= reservation expects it'
    g.wait_until(lambda: g.plugged_size('vm1'), cond=lambda s: s == 256 * MiB,
                 timeout=60, what='vm1 plugged at probe')
    # With vm1's two memory blocks online MemTotal is the base: from here
    # on only vm0 moves.
    g.wait_until(lambda: list(g.device_blocks('vm1').values()),
                 cond=lambda states: states == ['online'] * 2, timeout=60,
                 what='the memory blocks of vm1 online')
    base = g.memtotal()
    plug_step(g, 'vm0', 1 * GiB, base)
    for name in ('answers_error', 'answers_nack', 'resyncs', 'add_failures'):
        assert stat(g, 'vm0', name) == 0, f'vm0 {name} before the test'

    # ERROR, then a resync that finds nothing to repair.
    mark = g.log_mark()
    g.check(f'echo 1 > {fault_knob(g, "vm0", "inject_error")}')
    g.wait_until(lambda: g.console_log()[mark:],
                 cond=lambda log: 'resync: device state matches ours' in log,
                 timeout=30, what='the resync after the ERROR answer')
    log = g.console_log()[mark:]
    assert 'failed: device answered ERROR' in log, log
    assert stat(g, 'vm0', 'resyncs') == 1
    assert stat(g, 'vm0', 'answers_error') == 1, \
        'one ERROR injected, and the resync must not cause more'
    assert stat(g, 'vm0', 'broken') == 0
    # Carries on: the device size and MemTotal still follow requests.
    plug_step(g, 'vm0', 2 * GiB, base)
    plug_step(g, 'vm0', 0, base)

    # NACK: a PLUG beyond vm1's request. Counted, and nothing else moves.
    assert stat(g, 'vm1', 'answers_nack') == 0
    g.check(f'echo 1 > {fault_knob(g, "vm1", "inject_error")}')
    wait_equal(g, lambda: stat(g, 'vm1', 'answers_nack'), 1,
               'vm1 answers_nack')
    attrs = g.vmem_sysfs('vm1')
    assert attrs['answers_error'] == 0 and attrs['resyncs'] == 0 and \
        attrs['broken'] == 0 and attrs['plugged_size'] == 256 * MiB, attrs
    assert g.plugged_size('vm1') == 256 * MiB

    # Adding the block at 3 GiB fails: vm0 stops below it, with nothing
    # plugged that Linux has not got, and the retry waits for the backoff.
    g.check(f'echo {LONG_BACKOFF_MS} > {PARAMS}/backoff_max_ms; '
            f'echo {LONG_BACKOFF_MS} > {PARAMS}/backoff_min_ms')
    mark = g.log_mark()
    g.set_requested('vm0', 3 * GiB + 256 * MiB)
    g.wait_until(lambda: stat(g, 'vm0', 'add_failures'), timeout=120,
                 what='vm0 add_failures')
    g.wait_until(lambda: g.console_log()[mark:],
                 cond=lambda log: f'adding memory at {3 * GiB + VM0_ADDR:#x}'
                 ' failed' in log, timeout=30,
                 what='the failed add in the kernel log')
    # Backing off, with what it plugged before that block in sysfs: the
    # memory blocks before it in plug order.
    mbs = g.block_size_bytes
    before = plug_order(8 * GiB // mbs).index(3 * GiB // mbs) * mbs
    size = g.wait_until(
        lambda: (g.plugged_size('vm0'), stat(g, 'vm0', 'plugged_size')),
        cond=lambda s: s[0] == s[1] and s[0] >= before, timeout=60,
        what='vm0 stopped below the block that cannot be added')[0]
    assert before <= size < before + 256 * MiB, \
        f'vm0 at {size >> 20} MiB: it should fill everything before the ' \
        f'block that cannot be added ({before >> 20} MiB), and not that block'
    check_sizes(g, 'vm0', size, base)
    # backoff_min_ms=60000: no new attempt any time soon. (Onlining the
    # blocks added before the failure queued one more run right away,
    # so there may have been two failures already.)
    failures = stat(g, 'vm0', 'add_failures')
    assert failures <= 2, f'{failures} failed adds before the backoff'
    assert_steady(g, lambda: (stat(g, 'vm0', 'add_failures'),
                              g.plugged_size('vm0')), (failures, size), 3.0,
                  'vm0 (add_failures, QMP size) during the backoff')
    g.assert_log_clean()

    # A new request does not wait for the backoff: back to 1G at once.
    g.check(f'echo 100 > {PARAMS}/backoff_min_ms; '
            f'echo 10000 > {PARAMS}/backoff_max_ms')
    resize_step(g, 'vm0', 1 * GiB, base, timeout=30)
    assert stat(g, 'vm0', 'broken') == 0


def test_resync_repairs_what_the_device_did_alone(make_guest):
    """A device block plugged behind the driver's back, just as it grows:
    the device's plugged size no longer matches the driver's (and its own
    PLUG gets NACK: the stray block took the room), so the driver compares
    with STATE requests, unplugs the stray block again, and then growing
    gets there. vm0 has 2 MiB device blocks (a whole unit is stray); vm1
    has 1 MiB blocks, so the stray block is half of a 2 MiB unit, which
    the device calls MIXED: the resync must split it and ask again."""
    g = make_guest(devices=[MemDevice('vm0', size='4G'),
                            MemDevice('vm1', size='4G', block_size='1M')],
                   module='ours-fi', online='online_movable')
    base = g.memtotal()
    g.check(f'echo 1 > {TRACEFS}/events/virtio_mem/virtio_mem_resync/enable')
    for dev in ('vm0', 'vm1'):
        size = 256 * MiB + 6 * MiB
        plug_step(g, dev, size, base)
        state0 = stat(g, dev, 'requests_state')
        g.check(f'echo > {TRACEFS}/trace')
        mark = g.log_mark()
        # Plugged by the work as it starts on the next request.
        g.check(f'echo 1 > {fault_knob(g, dev, "inject_stray")}')
        plug_step(g, dev, size + 4 * MiB, base)
        log = g.wait_until(lambda: g.console_log()[mark:],
                           cond=lambda lg: 'resync: 1 units were plugged '
                           'without us' in lg, timeout=30,
                           what=f'{dev}: the repair in the kernel log')
        assert 'behind the driver\'s back' in log, log
        assert 'resync stopped' not in log, log
        assert re.search(r'device reports \d+ MiB plugged, driver \d+ MiB',
                         log), log
        assert stat(g, dev, 'resyncs') == 1
        assert stat(g, dev, 'requests_state') > state0, \
            f'{dev}: no STATE request in the resync'
        # The tracepoint says what the resync found, as the log does.
        virtio = stat(g, dev, 'virtio')
        events = re.findall(rf'virtio_mem_resync: {virtio} (\S+)',
                            g.check(f'cat {TRACEFS}/trace'))
        assert events == ['plugged_without_us=1'], events
        base = g.memtotal()
    g.assert_log_clean()
