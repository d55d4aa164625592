# SPDX-License-Identifier: GPL-2.0
"""Test steps shared by the reference-driver and our-driver tests."""

import time

from vmtest import GiB, KiB, MiB, fmt_size

# 0 first: checks the untouched state (and that a no-op resize is harmless).
PLUG_SEQUENCE = [0, 1 * GiB, 4 * GiB, 4 * GiB + 6 * MiB]
# Debian's driver plugs 4 GiB in well under a second under TCG here.
PLUG_TIMEOUT = 120


def plug_step(guest, dev, new_size, base_memtotal, timeout=PLUG_TIMEOUT):
    """Resize one device and check the guest followed.

    Assumes dev is the only device whose plugged size differs from boot
    (when base_memtotal was read) and that hot-added memory is onlined
    automatically. Checks: QMP size reaches new_size, MemTotal is exactly
    base_memtotal + new_size, every memory block of the device is online,
    and the kernel log is clean. Returns the seconds it took.
    """
    t0 = time.monotonic()
    guest.set_requested(dev, new_size)
    guest.wait_until(lambda: guest.plugged_size(dev),
                     cond=lambda s: s == new_size, timeout=timeout,
                     interval=0.2,
                     what=f'{dev} QMP size == {fmt_size(new_size)}')
    elapsed = time.monotonic() - t0
    want_kb = new_size // KiB
    guest.wait_until(lambda: guest.memtotal() - base_memtotal,
                     cond=lambda d: d == want_kb, timeout=timeout,
                     what=f'MemTotal growth == {want_kb} kB '
                     f'(base {base_memtotal} kB)')
    not_online = {b: s for b, s in guest.device_blocks(dev).items()
                  if s != 'online'}
    assert not not_online, f'memory blocks of {dev} not online: {not_online}'
    guest.assert_log_clean()
    guest.timings.append((f'{dev} -> {fmt_size(new_size)}', elapsed))
    return elapsed


def plug_sequence(guest, dev, sizes=PLUG_SEQUENCE):
    """plug_step() through sizes, from a device that starts unplugged."""
    assert guest.plugged_size(dev) == 0, f'{dev} plugged at boot'
    base = guest.memtotal()
    for size in sizes:
        plug_step(guest, dev, size, base)


def wait_settled(guest, dev, quiet=5.0, timeout=PLUG_TIMEOUT):
    """Wait until dev's QMP size has not changed for `quiet` seconds;
    returns that size."""
    last = [None, time.monotonic()]

    def settled():
        size = guest.plugged_size(dev)
        now = time.monotonic()
        if size != last[0]:
            last[:] = [size, now]
        return size if now - last[1] >= quiet else None

    return guest.wait_until(settled, cond=lambda s: s is not None,
                            timeout=timeout, interval=1.0,
                            what=f'{dev} size to settle for {quiet}s')
