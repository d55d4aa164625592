# SPDX-License-Identifier: GPL-2.0
"""The harness's build cache (vmtest.py) under several pytest workers:
a worker that prunes old builds must not delete a build another worker
is still writing."""

import os
import time

import vmtest


def test_prune_spares_builds_in_progress(tmp_path):
    """Three workers build memfill at once: the first to finish prunes to
    the two newest files, and the others' temporary outputs, older than
    its result, must survive (they rename them into place next)."""
    now = time.time()
    files = {'memfill-new': now, 'memfill-old': now - 10,
             'memfill-new.tmp101': now - 20, 'memfill-new.tmp102': now - 30}
    for name, mtime in files.items():
        path = tmp_path / name
        path.write_bytes(b'x')
        os.utime(path, (mtime, mtime))
    vmtest._prune(str(tmp_path), 'memfill-*', keep=2)
    left = sorted(os.listdir(tmp_path))
    assert 'memfill-new.tmp101' in left and 'memfill-new.tmp102' in left, \
        f'pruning deleted builds in progress: {left}'
    assert left == sorted(files), left
