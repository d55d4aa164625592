# SPDX-License-Identifier: GPL-2.0
"""Smoke test of the harness against Debian's own virtio_mem driver.

If this fails, the harness (or QEMU, or the host) is broken, not our driver.
"""

import pytest

from steps import plug_sequence
from vmtest import MemDevice


@pytest.mark.ref
def test_ref_plug_smoke(make_guest):
    g = make_guest(devices=[MemDevice('vm0', size='8G')], module='ref',
                   online='online_movable')
    plug_sequence(g, 'vm0')
