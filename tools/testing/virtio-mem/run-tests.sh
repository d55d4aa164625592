#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Run the virtio-mem VM tests from the repo root. Build the module first
# (make); extra arguments go to pytest, e.g. -k plug_sequence, -m ref.
# VMTEST_MODULES=ref runs the driver tests against Debian's virtio_mem.ko.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
"$here/deps.sh"
cd "$here/../../.."
# Three guests at a time (three pytest workers): a TCG guest spends part
# of its time waiting for the host, and with two the 2 cores were often
# idle. VMTEST_QEMUS=1 runs one test at a time.
export VMTEST_QEMUS=${VMTEST_QEMUS:-3}
# One host thread per guest (its vCPUs take turns): multi-threaded TCG
# emulates cross-CPU code patching and timer wake-ups imperfectly, and a
# guest kernel now and then died at boot of an int3 in patched code or
# slept through its timer; two guests on two cores also run a fifth
# faster so. VMTEST_ACCEL=tcg gives every vCPU its own thread again.
export VMTEST_ACCEL=${VMTEST_ACCEL:-tcg,thread=single}
workers=()
if [ "$VMTEST_QEMUS" -gt 1 ]; then
	workers=(-n "$VMTEST_QEMUS" --dist load)
fi
exec /usr/bin/python3 -m pytest -v --durations=0 "${workers[@]}" \
	tools/testing/virtio-mem/tests "$@"
