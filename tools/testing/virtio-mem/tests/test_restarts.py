# SPDX-License-Identifier: GPL-2.0
"""The driver across restarts: a machine reset with memory plugged, module
reload with memory online, and a migration that makes the device answer
BUSY for a while."""

import time

from steps import (assert_guest_alive, check_sizes, resize_step)
from vmtest import GiB, MiB, MemDevice, fmt_size


def test_system_reset(make_guest):
    """After a reset every block is unplugged (the device's contract); the
    new boot loads the driver again and plugs the request back."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable', reboot=True)
    base = g.memtotal()
    size = 2 * GiB + 6 * MiB
    resize_step(g, 'vm0', size, base)

    t0 = time.monotonic()
    mark = g.system_reset()
    assert g.boots == 2
    assert g.bound_devices(), 'driver not bound after the reset'
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == size,
                 timeout=120, interval=0.2,
                 what=f'vm0 back at {fmt_size(size)} after the reset')
    g.timings.append(('reset, boot and plug again', time.monotonic() - t0))
    # (The firmware may reset once more by itself while it starts.)
    resets = [e['data'] for e in g.events if e['event'] == 'RESET']
    assert {'guest': False, 'reason': 'host-qmp-system-reset'} in resets, \
        f'no RESET event for our system_reset: {resets}'
    # Same boot memory as before: the same MemTotal to start from.
    check_sizes(g, 'vm0', size, base)
    g.assert_log_clean(since=mark)
    # The new boot's driver unplugs as well.
    resize_step(g, 'vm0', 1 * GiB, base)


def test_rmmod_insmod_online(make_guest):
    """rmmod with memory online leaves it plugged and in use; loading the
    driver again takes it over, and resizing works afterwards."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    size = 2 * GiB + 6 * MiB
    resize_step(g, 'vm0', size, base)
    blocks = g.device_blocks('vm0')

    rc, out = g.run('rmmod virtio_mem')
    assert rc == 0, f'rmmod failed: {out}'
    assert 'virtio_mem' not in g.check('lsmod')
    assert g.plugged_size('vm0') == size, 'memory in use got unplugged'
    assert g.memtotal() - base == size // 1024, 'MemTotal changed on rmmod'
    assert g.device_blocks('vm0') == blocks, 'memory blocks changed on rmmod'
    assert_guest_alive(g)
    # The memory is still usable without a driver.
    g.check('memfill -a 64 -w /proc/self')
    g.assert_log_clean()

    mark = g.log_mark()
    rc, out = g.run('insmod /ours/virtio_mem.ko')
    assert rc == 0, f'insmod failed: {out}'
    assert g.bound_devices(), 'driver not bound after insmod'
    took = g.wait_until(
        lambda: [ln for ln in g.console_log()[mark:].splitlines()
                 if 'took over' in ln],
        timeout=30, what='"took over" in the kernel log')
    assert f'took over {size >> 20} MiB' in took[0], took
    check_sizes(g, 'vm0', size, base)
    resize_step(g, 'vm0', 0, base)
    resize_step(g, 'vm0', 1 * GiB, base)


def migration_status(g):
    return g.qmp('query-migrate').get('status')


def busy_resize(g, base, start, target):
    """Request `target` while a slow migration runs: the device answers
    BUSY, so nothing may change; after migrate_cancel the driver gets
    there on its own."""
    busy0 = g.vmem_attr('vm0', 'answers_busy')
    g.qmp('migrate', uri='exec:cat > /dev/null')
    g.wait_until(lambda: migration_status(g), cond=lambda s: s == 'active',
                 timeout=30, interval=0.2, what='migration to start')
    g.set_requested('vm0', target)
    t_end = time.monotonic() + 5
    while time.monotonic() < t_end:
        assert g.plugged_size('vm0') == start, \
            'size changed while a migration was running'
        time.sleep(0.5)
    assert migration_status(g) == 'active', \
        'migration ended early: lower max-bandwidth'
    busy = g.vmem_attr('vm0', 'answers_busy')
    assert busy > busy0, f'answers_busy stayed at {busy0} during migration'
    assert g.vmem_attr('vm0', 'broken') == 0
    g.qmp('migrate_cancel')
    g.wait_until(lambda: migration_status(g),
                 cond=lambda s: s == 'cancelled', timeout=60,
                 what='migration to be cancelled')
    t0 = time.monotonic()
    # backoff_max_ms (10 s by default) bounds the wait for the next retry.
    g.wait_until(lambda: g.plugged_size('vm0'), cond=lambda s: s == target,
                 timeout=60, interval=0.2,
                 what=f'vm0 at {fmt_size(target)} after migrate_cancel')
    g.timings.append((f'{fmt_size(start)} -> {fmt_size(target)} after '
                      f'cancel ({busy - busy0} BUSY answers)',
                      time.monotonic() - t0))
    check_sizes(g, 'vm0', target, base)
    g.assert_log_clean()


def test_migration_busy(make_guest):
    """Plug and unplug requests during a migration get BUSY; the driver
    backs off and finishes the resize once the migration is over."""
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ours',
                   online='online_movable')
    base = g.memtotal()
    resize_step(g, 'vm0', 1 * GiB, base)
    # ~1 MiB/s: the guest's RAM takes minutes to send.
    g.qmp('migrate-set-parameters', **{'max-bandwidth': 1 << 20})
    busy_resize(g, base, 1 * GiB, 2 * GiB)
    busy_resize(g, base, 2 * GiB, 512 * MiB)
