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
exec /usr/bin/python3 -m pytest -v tools/testing/virtio-mem/tests "$@"
