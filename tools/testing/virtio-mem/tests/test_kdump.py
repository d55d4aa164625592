# SPDX-License-Identifier: GPL-2.0
"""Crash dumps must not read unplugged device memory.

Loaded with kexec_file_load (kexec -s, as under Secure Boot), the crash
kernel's dump memory map is built from the System RAM resources at load
time, and those cover whole memory blocks: with 130 MiB plugged, two
128 MiB blocks, 126 MiB of the second one unplugged. The virtio-mem driver
in the crash kernel has to tell /proc/vmcore which pages are plugged (a
vmcore pfn_is_ram callback); without it the dump reads unplugged memory,
which the host then has to back (or may refuse to).

The device's backend is a shared file on host tmpfs: every page the guest
reads gets allocated in it, so its allocated size on the host shows what
the dump read.
"""

import re
import time

import pytest

from steps import resize_step
from vmtest import MiB, MemDevice, fmt_size

PLUGGED = 130 * MiB
# What the host may hold besides the plugged memory, and what of the plugged
# memory the dump may leave unread, before the test calls it a failure.
MARGIN = 4 * MiB
# The deliberate crash: panic() and the stack it dumps.
SYSRQ_PANIC = (r'Kernel panic - not syncing: sysrq triggered crash',
               r'Call Trace:')


def driver_lines(g, since):
    """Kernel log lines that name virtio_mem, from the mark `since` on."""
    return [ln for ln in g.console_log()[since:].splitlines()
            if 'virtio_mem' in ln]


def read_vmcore(g, readers):
    """Read all of /proc/vmcore with `readers` dd processes at once; fails
    unless each read it whole. Returns the seconds it took."""
    vmcore = int(g.check('stat -c %s /proc/vmcore'))
    t0 = time.monotonic()
    out = g.check(' '.join(f'(dd if=/proc/vmcore of=/dev/null bs=1M '
                           f'2>&1 | sed "s/^/{i}: /") &'
                           for i in range(readers)) + ' wait',
                  timeout=1200)
    elapsed = time.monotonic() - t0
    # busybox dd counts records only: whole MiB read, then a partial one.
    done = re.findall(r'(\d+)\+(\d+) records out', out)
    want = (str(vmcore // MiB), str(int(vmcore % MiB > 0)))
    assert done == [want] * readers, \
        f'{readers} reads of /proc/vmcore ({vmcore} bytes), not all ' \
        f'whole:\n{out}'
    return elapsed


@pytest.mark.allow_log(*SYSRQ_PANIC)
def test_kdump_reads_only_plugged(make_guest, module):
    """Plug 130 MiB, crash into a kexec_file_load crash kernel with two
    CPUs, load the driver there and read all of /proc/vmcore, first with one
    reader, then with four at once (a parallel copy, makedumpfile
    --num-threads): after each pass the host must not have to back any of
    the 126 MiB unplugged part of the second memory block, and the plugged
    memory must be in the dump. /proc/vmcore caches nothing: the second
    pass asks the driver about every page again, from four tasks."""
    dev = MemDevice('vm0', size='1G', backend='file')
    g = make_guest(devices=[dev], module=module, online='online_movable',
                   cmdline='crashkernel=256M', kdump=True)
    base = g.memtotal()
    resize_step(g, 'vm0', PLUGGED, base)
    assert len(g.device_blocks('vm0')) * g.block_size_bytes > PLUGGED + \
        MARGIN, 'no unplugged memory inside the added memory blocks'

    t0 = time.monotonic()
    g.load_crash_kernel(cpus=2)
    g.timings.append(('load the crash kernel (kexec -s -p)',
                      time.monotonic() - t0))
    g.assert_log_clean()
    before = dev.host_allocated()
    assert before <= PLUGGED + MARGIN, \
        f'host backs {fmt_size(before)} of vm0 before the crash, with ' \
        f'{fmt_size(PLUGGED)} plugged: the first kernel read unplugged memory'

    pre = g.log_mark()
    t0 = time.monotonic()
    mark = g.crash()
    g.timings.append((f'sysrq-c until the crash kernel answers (host '
                      f'backed {fmt_size(before)} of vm0 before)',
                      time.monotonic() - t0))
    rc, _ = g.run('test -e /proc/vmcore')
    assert rc == 0, 'no /proc/vmcore after the crash: not a crash kernel'
    assert not g.bound_devices(), 'a driver bound before the test loaded one'

    rc, out = g.run(f'insmod /{module}/virtio_mem.ko')
    assert rc == 0, f'insmod /{module}/virtio_mem.ko failed rc={rc}: {out}'
    # The virtio bus probes the device within insmod.
    bound = g.bound_devices()

    for readers in (1, 4):
        elapsed = read_vmcore(g, readers)
        after = dev.host_allocated()
        g.timings.append((f'read /proc/vmcore x{readers} (host then backs '
                          f'{fmt_size(after)} of vm0)', elapsed))
        state = f'host backs {fmt_size(after)} of vm0 after reading ' \
            f'/proc/vmcore with {readers} reader(s) ({fmt_size(before)} ' \
            f'before the crash), with {fmt_size(PLUGGED)} plugged; the ' \
            f'{module} driver in the crash kernel is bound to: ' \
            f'{bound or "nothing"}; its log:\n' + \
            '\n'.join(driver_lines(g, mark))
        assert after <= PLUGGED + MARGIN, \
            f'the dump read {fmt_size(after - PLUGGED)} of unplugged ' \
            f'memory: {state}'
        assert after >= PLUGGED - MARGIN, \
            f'the dump did not read the plugged memory: {state}'
        assert bound, f'the {module} driver did not bind: {state}'

    # Read-only: a new request reaches the driver (its configuration
    # interrupt is counted) and changes nothing on the device.
    def config_irqs():
        out = g.check('cat /proc/interrupts')
        # MSI-X has a vector of its own; INTx is shared with the queue.
        line = [ln for ln in out.splitlines()
                if ln.split()[-1:] in ([f'{bound[0]}-config'], [bound[0]])]
        assert line, f'no configuration interrupt of {bound[0]}:\n{out}'
        return sum(int(x) for x in line[0].split()[1:] if x.isdigit())

    irqs = config_irqs()
    g.set_requested('vm0', 0)
    g.wait_until(config_irqs, cond=lambda n: n > irqs, timeout=30,
                 what='the configuration change to reach the crash kernel')
    assert g.plugged_size('vm0') == PLUGGED, \
        f'the crash kernel changed what is plugged: {state}'
    g.assert_log_clean(since=mark)
    # Before the crash kernel: only the panic we asked for.
    g.assert_log_clean(since=pre, ignore=SYSRQ_PANIC)
