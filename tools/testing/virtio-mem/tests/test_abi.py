# SPDX-License-Identifier: GPL-2.0
"""The ABI documents in Documentation/ABI/testing/ follow the kernel's
format and document exactly the sysfs attributes and module parameters
the driver's source declares, with the source's defaults and ranges. (A
live guest's listing is checked against them in test_dkms.py.)"""

import os
import re
import subprocess

import steps

import abi


def test_abi_documents_follow_the_kernel_format():
    problems = abi.format_problems(abi.ATTR_DOC, abi.ATTR_PREFIX) + \
        abi.format_problems(abi.PARAM_DOC, abi.PARAM_PREFIX)
    assert not problems, '\n'.join(problems)


def test_every_sysfs_attribute_is_documented():
    attrs = abi.source_attributes(abi.driver_sources())
    # The parser must see the attributes at all: a handful at least.
    assert {'plugged_size', 'requested_size', 'leaked_size'} <= set(attrs), \
        f'attributes parsed from the source: {sorted(attrs)}'
    docs = abi.documented(abi.ATTR_DOC, abi.ATTR_PREFIX)
    problems = abi.sync_problems(docs, attrs, 'sysfs attribute',
                                 'the driver source') + \
        abi.description_problems(docs, attrs)
    assert not problems, '\n'.join(problems)


def test_every_module_parameter_is_documented():
    params = abi.source_parameters(abi.driver_sources())
    assert {'offline_limit_mb', 'unplug_online'} <= set(params), \
        f'parameters parsed from the source: {sorted(params)}'
    # Defaults and ranges are read from the source: they must be found,
    # or description_problems() would check nothing.
    assert params['offline_limit_mb'] == {'mode': 'RW', 'default': '1024',
                                          'min': '128', 'max': '1048576'}
    assert params['unplug_online']['default'] == 'Y'
    docs = abi.documented(abi.PARAM_DOC, abi.PARAM_PREFIX)
    problems = abi.sync_problems(docs, params, 'module parameter',
                                 'the driver source') + \
        abi.description_problems(docs, params)
    assert not problems, '\n'.join(problems)


def test_the_checks_notice_drift():
    """The checks above fail when the source and the documents part: an
    attribute or parameter added without an entry, one removed whose
    entry stays, a changed default."""
    srcs = abi.driver_sources()
    name = 'virtio_mem_sysfs.c'
    text = srcs[name]
    assert 'VMEM_ATTR(leaked_size,' in text and \
        '&dev_attr_leaked_size.attr,' in text
    text = text.replace('VMEM_ATTR(leaked_size,', 'VMEM_ATTR(lost_size,')
    text = text.replace('&dev_attr_leaked_size.attr,',
                        '&dev_attr_lost_size.attr,')
    text += '\nmodule_param_named(new_knob, vmem_new_knob, bool, 0644);\n'
    assert 'unsigned int vmem_pressure_poll_ms = 1000;' in text
    text = text.replace('unsigned int vmem_pressure_poll_ms = 1000;',
                        'unsigned int vmem_pressure_poll_ms = 500;')
    srcs = dict(srcs, **{name: text})

    docs = abi.documented(abi.ATTR_DOC, abi.ATTR_PREFIX)
    problems = abi.sync_problems(docs, abi.source_attributes(srcs),
                                 'sysfs attribute', 'the driver source')
    assert any("'lost_size'" in p and 'no entry' in p for p in problems), \
        problems
    assert any("'leaked_size'" in p and 'does not have' in p
               for p in problems), problems

    docs = abi.documented(abi.PARAM_DOC, abi.PARAM_PREFIX)
    params = abi.source_parameters(srcs)
    problems = abi.sync_problems(docs, params, 'module parameter',
                                 'the driver source')
    assert any("'new_knob'" in p for p in problems), problems
    problems = abi.description_problems(docs, params)
    assert any('pressure_poll_ms' in p and 'Default 500' in p
               for p in problems), problems


def test_the_format_check_notices_a_broken_entry(tmp_path):
    """An entry without KernelVersion:, with fields out of order or an
    unknown field is reported."""
    good = open(abi.PARAM_DOC).read()
    broken = good.replace('KernelVersion:\t6.1\n', '', 1)
    broken += ('\nWhat:\t\t/sys/module/virtio_mem/parameters/x\n'
               'Contact:\tsomeone\nDate:\t\tNovember 2026\n'
               'KernelVersion:\t6.1\nDescription:\n\t\t(RW) x.\n'
               'Since: yesterday\n')
    path = tmp_path / 'sysfs-module-virtio_mem'
    path.write_text(broken)
    problems = abi.format_problems(str(path), abi.PARAM_PREFIX)
    assert any('KernelVersion' in p for p in problems), problems
    assert any("'Contact', 'Date'" in p for p in problems), problems
    assert any('Since: yesterday' in p for p in problems), problems


def test_the_kernels_abi_tool_reads_every_entry():
    """scripts/get_abi.pl of the kernel source (unpacked by make) turns
    the documents into the ReST of the kernel's ABI book without a
    complaint, with a symbol for every What:."""
    src = os.environ.get('LINUX_SRC', os.path.join(
        abi.REPO, 'tools', 'testing', 'virtio-mem', '.build',
        'linux-source-6.1'))
    tool = os.path.join(src, 'scripts', 'get_abi.pl')
    if not os.path.exists(tool):
        steps.skip_or_fail(f'{tool} missing: make checkpatch or make kernel '
                    'unpacks the kernel source')
    p = subprocess.run(['perl', tool, '--dir', abi.ABI_DIR, 'rest'],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and not p.stderr, p.stderr
    shown = {s.replace('\\', '') for s in
             re.findall(r'^\| \*\*(.+?)\*\* +\|$', p.stdout, re.M)}
    whats = set()
    for path in (abi.ATTR_DOC, abi.PARAM_DOC):
        with open(path) as f:
            whats |= {w for e in abi.parse(f.read())[0] for w in e['what']}
    assert shown == whats, (f'only in get_abi.pl: {shown - whats}\n'
                            f'not in get_abi.pl: {whats - shown}')
