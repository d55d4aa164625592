# SPDX-License-Identifier: GPL-2.0
"""The driver's ABI documents and what its source declares.

Documentation/ABI/testing/ holds one file for the per-device sysfs
attributes and one for the module parameters, in the kernel's ABI format
(Documentation/ABI/README): entries of one or more What: lines, then
Date:, KernelVersion:, Contact: and Description: (Users: optional), with
continuation lines indented. Used by test_abi.py (against the source) and
test_dkms.py (against a live guest).
"""

import os
import re

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..',
                                    '..', '..'))
DRV = os.path.join(REPO, 'drivers', 'virtio')
ABI_DIR = os.path.join(REPO, 'Documentation', 'ABI', 'testing')
ATTR_DOC = os.path.join(ABI_DIR, 'sysfs-bus-virtio-devices-virtio_mem')
PARAM_DOC = os.path.join(ABI_DIR, 'sysfs-module-virtio_mem')
# The What: of each attribute and parameter: these prefixes and a name.
ATTR_PREFIX = '/sys/bus/virtio/devices/virtio<N>/virtio_mem/'
PARAM_PREFIX = '/sys/module/virtio_mem/parameters/'

# The kernel's form, "Month YYYY": when the entry was added, from the
# project's first release on.
DATE_RE = re.compile(r'(January|February|March|April|May|June|July|August|'
                     r'September|October|November|December) (\d{4})')
FIRST_YEAR = 2026
KERNEL_VERSION = '6.1'
TAGS = ('What', 'Date', 'KernelVersion', 'Contact', 'Description', 'Users')
# After the What: lines, in this order; Users: may follow.
FIELDS = ['Date', 'KernelVersion', 'Contact', 'Description']


def parse(text):
    """(entries, problems) of an ABI file's text. An entry is a dict:
    what (list of paths), fields ({tag: value}, continuation lines joined
    with newlines), order (tags after What:, as written), line."""
    entries, problems = [], []
    cur = field = None
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            if cur is not None and field not in (None, 'What'):
                cur['fields'][field] += '\n'
            continue
        if line[0].isspace():
            if cur is None or field == 'What':
                problems.append(f'line {no}: indented text outside a field')
            else:
                cur['fields'][field] += '\n' + line.strip()
            continue
        m = re.match(r'([A-Za-z]+):(.*)$', line)
        if not m or m.group(1) not in TAGS:
            problems.append(f'line {no}: not a field of the ABI format '
                            f'({", ".join(TAGS)}): {line!r}')
            continue
        tag, value = m.group(1), m.group(2).strip()
        if tag == 'What':
            if field != 'What':
                cur = {'what': [], 'fields': {}, 'order': [], 'line': no}
                entries.append(cur)
            cur['what'].append(value)
        elif cur is None:
            problems.append(f'line {no}: {tag}: before any What:')
            continue
        elif tag in cur['fields']:
            problems.append(f'line {no}: a second {tag}: in the entry of '
                            f'line {cur["line"]}')
        else:
            cur['fields'][tag] = value
            cur['order'].append(tag)
        field = tag
    for e in entries:
        for tag in e['fields']:
            e['fields'][tag] = e['fields'][tag].strip()
    return entries, problems


def format_problems(path, prefix):
    """What is wrong with the ABI file at path: fields missing, out of
    order or empty, the wrong Date or KernelVersion, a What: outside
    prefix, a path documented twice."""
    with open(path) as f:
        entries, problems = parse(f.read())
    name = os.path.basename(path)
    problems = [f'{name}: {p}' for p in problems]
    if not entries:
        problems.append(f'{name}: no entries')
    seen = set()
    for e in entries:
        where = f'{name}:{e["line"]}'
        order = e['order']
        if order not in (FIELDS, FIELDS + ['Users']):
            problems.append(f'{where}: fields {order}, want '
                            f'{FIELDS} (then Users: if any)')
        for tag in FIELDS:
            if not e['fields'].get(tag):
                problems.append(f'{where}: empty or missing {tag}:')
        date = DATE_RE.fullmatch(e['fields'].get('Date', 'January 2026'))
        if not date or int(date.group(2)) < FIRST_YEAR:
            problems.append(f'{where}: Date: {e["fields"]["Date"]!r}, '
                            f'want "Month YYYY" from {FIRST_YEAR} on')
        if e['fields'].get('KernelVersion', KERNEL_VERSION) != KERNEL_VERSION:
            problems.append(f'{where}: KernelVersion: '
                            f'{e["fields"]["KernelVersion"]!r}, want '
                            f'{KERNEL_VERSION!r}')
        for what in e['what']:
            if not re.fullmatch(re.escape(prefix) + r'(\w+)?', what):
                problems.append(f'{where}: What: {what!r} is not '
                                f'{prefix}<name> or {prefix}')
            if what in seen:
                problems.append(f'{where}: {what} is documented twice')
            seen.add(what)
    return problems


def documented(path, prefix):
    """{name: description} of the entries below prefix (the entry of the
    directory itself, prefix alone, is left out)."""
    with open(path) as f:
        entries, _ = parse(f.read())
    docs = {}
    for e in entries:
        for what in e['what']:
            if what.startswith(prefix) and what != prefix:
                docs[what[len(prefix):]] = e['fields'].get('Description', '')
    return docs


# Only in the fault-injection build (CONFIG_VIRTIO_MEM_FAULT_INJECTION),
# whose knobs Documentation/virtio-mem.rst describes: not ABI.
DEBUG_SOURCES = ('virtio_mem_fault.c',)


def driver_sources():
    """{file name: text} of the driver's C files (not the KUnit tests, nor
    the fault-injection build's)."""
    srcs = {}
    for name in sorted(os.listdir(DRV)):
        if name.startswith('virtio_mem') and name.endswith('.c') and \
                not name.endswith(('_test.c', '.mod.c')) and \
                name not in DEBUG_SOURCES:
            with open(os.path.join(DRV, name)) as f:
                srcs[name] = f.read()
    return srcs


def _strip_comments(text):
    """The text without comments and macro definitions (whose bodies
    declare with placeholder names)."""
    text = re.sub(r'/\*.*?\*/|//[^\n]*', ' ', text, flags=re.S)
    return re.sub(r'^\s*#\s*define\b(?:[^\n]*\\\n)*[^\n]*', ' ', text,
                  flags=re.M)


def source_attributes(srcs):
    """{name: mode} of the sysfs attributes the source declares: each
    VMEM_ATTR(name, ...) (read-only) and each &dev_attr_<name>.attr in an
    attribute list. Mode is 'RO', 'RW', 'WO' or None when unknown."""
    attrs = {}
    for text in srcs.values():
        text = _strip_comments(text)
        for m in re.finditer(r'^\s*VMEM_ATTR\(\s*(\w+)\s*,', text, re.M):
            attrs[m.group(1)] = 'RO'
        for m in re.finditer(r'^\s*(?:static\s+)?DEVICE_ATTR_(RO|RW|WO)'
                             r'\(\s*(\w+)\s*\)', text, re.M):
            attrs[m.group(2)] = m.group(1)
        for m in re.finditer(r'&dev_attr_(\w+)\.attr\b', text):
            attrs.setdefault(m.group(1), None)
    return attrs


def source_parameters(srcs):
    """{name: {'mode', 'default', 'min', 'max'}} of the module parameters
    the source declares (module_param*(name, ...)); what cannot be told
    from the source is None. A bool default is given as Y or N, as sysfs
    shows it."""
    params = {}
    for text in srcs.values():
        text = _strip_comments(text)
        defaults = {m.group(2): m.group(3).strip() for m in re.finditer(
            r'^(?:static\s+)?(unsigned\s+int|unsigned|int|bool|ulong|'
            r'unsigned\s+long)\s+(\w+)\s*=\s*([^;]+);', text, re.M)}
        # Without an initializer: zero, as C has it for static storage.
        defaults.update({m.group(2): 'false' if m.group(1) == 'bool' else '0'
                         for m in re.finditer(
            r'^(?:static\s+)?(unsigned\s+int|unsigned|int|bool|ulong|'
            r'unsigned\s+long)\s+(\w+)\s*;', text, re.M)})
        ranges = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(
            r'VMEM_PARAM\(\s*(\w+)\s*,\s*(\w+)\s*,\s*(\w+)\s*\)', text)}
        for m in re.finditer(r'\bmodule_param(_named|_cb|_string|_array|'
                             r'_array_named|_unsafe)?\(([^;]*?)\)\s*;', text,
                             re.S):
            kind = m.group(1) or ''
            args = [a.strip() for a in m.group(2).split(',')]
            name, perm = args[0], args[-1]
            var = {'': name, '_named': args[1],
                   '_cb': args[2].lstrip('&').removesuffix('_param')
                   if len(args) > 2 else None}.get(kind)
            default = defaults.get(var)
            if default in ('true', 'false'):
                default = 'Y' if default == 'true' else 'N'
            lo, hi = ranges.get(var, (None, None))
            try:
                writable = int(perm, 8) & 0o222
                mode = 'RW' if writable else 'RO'
            except ValueError:
                mode = None
            params[name] = {'mode': mode, 'default': default, 'min': lo,
                            'max': hi}
    return params


def sync_problems(docs, actual, what, where):
    """Names in actual without an entry in docs, and entries in docs
    without a name in actual, as messages."""
    problems = [f'{what} {n!r} ({where}) has no entry in the ABI document'
                for n in sorted(set(actual) - set(docs))]
    problems += [f'the ABI document has an entry for {what} {n!r}, which '
                 f'{where} does not have' for n in sorted(set(docs) -
                                                          set(actual))]
    return problems


# Units by name: a *_size attribute is in bytes, *_mb in MiB, ...
UNITS = [('_size', 'bytes'), ('_mb', 'MiB'), ('_ms', 'millisecond'),
         ('_s', 'second')]


def description_problems(docs, declared):
    """Entries whose description does not say what the source does: the
    mode ((RO) or (RW) first), the unit a name's suffix implies, and a
    parameter's default and range as its declaration has them."""
    problems = []
    for name, desc in sorted(docs.items()):
        flat = ' '.join(desc.split())
        info = declared.get(name)
        if info is None:
            continue
        mode = info if isinstance(info, str) or info is None else \
            info['mode']
        if mode and not flat.startswith(f'({mode})'):
            problems.append(f'{name}: description should start with '
                            f'({mode}): {flat[:40]!r}...')
        for suffix, unit in UNITS:
            if name.endswith(suffix):
                if unit.lower() not in flat.lower():
                    problems.append(f'{name}: description does not name '
                                    f'its unit ({unit})')
                break
        if isinstance(info, dict):
            if info['default'] is not None and \
                    f'Default {info["default"]}' not in flat:
                problems.append(f'{name}: description does not say '
                                f'"Default {info["default"]}" (the source\'s '
                                'default)')
            if info['min'] is not None and \
                    f'range {info["min"]} to {info["max"]}' not in flat:
                problems.append(f'{name}: description does not say "range '
                                f'{info["min"]} to {info["max"]}" (the '
                                'source\'s bounds)')
    return problems
