# SPDX-License-Identifier: GPL-2.0
"""make mutants stays runnable: every mutant still applies to the driver
and names tests that exist. A driver change that moves a mutated line
turns make check red here, in a second and without a VM, instead of
being found by the next (long) make mutants. The mutants themselves run
only in make mutants."""

import os
import shutil
import subprocess

import pytest

import mutants

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_mutant_applies_and_has_tests():
    p = subprocess.run(['/usr/bin/python3',
                        os.path.join(HERE, 'mutants.py'), '--check'],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f'{len(mutants.MUTANTS)} mutants apply' in p.stdout


def test_stale_mutant_is_refused(tmp_path):
    """A mutant whose lines are gone is an error, not a silent no-op."""
    m = mutants.MUTANTS[0]
    drv = tmp_path / 'drv'
    os.makedirs(drv)
    shutil.copy(os.path.join(mutants.REPO, 'drivers', 'virtio', m.file), drv)
    with open(drv / m.file) as f:
        src = f.read()
    with open(drv / m.file, 'w') as f:
        f.write(src.replace(m.old, m.old.replace('\t', '    ')))
    with pytest.raises(mutants.MutantError, match='found 0 times'):
        mutants.apply(m, str(drv))


def test_missing_test_is_refused():
    with pytest.raises(mutants.MutantError, match='cannot collect'):
        mutants.collect(['tests/test_mutants.py::no_such_test'])
