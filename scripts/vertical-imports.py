#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""The kernel's import style (Documentation/rust/coding-guidelines.rst, "Imports"): every brace
group of a `use` ends with a trailing empty comment after its last item, so that rustfmt lays
it out one item per line.

  scripts/vertical-imports.py FILE...           add the missing comments (then run rustfmt)
  scripts/vertical-imports.py --check FILE...   list the `use` groups without one; exit 1 if any
"""
import re
import sys
def fix_use(stmt):
    out = []
    i = 0
    stack = []
    res = list(stmt)
    # find matching braces, process from innermost by recording positions of '}'
    inserts = []
    for idx, ch in enumerate(stmt):
        if ch == '{':
            stack.append(idx)
        elif ch == '}':
            start = stack.pop()
            inner = stmt[start+1:idx]
            # strip trailing whitespace
            stripped = inner.rstrip()
            if stripped.endswith('//'):
                continue
            # position right after the last non-space char of the group
            pos = start + 1 + len(stripped)
            add = '' if stripped.endswith(',') else ','
            inserts.append((pos, add + ' //\n'))
    for pos, text in sorted(inserts, reverse=True):
        stmt = stmt[:pos] + text + stmt[pos:]
    return stmt

check = len(sys.argv) > 1 and sys.argv[1] == "--check"
paths = sys.argv[2:] if check else sys.argv[1:]
missing = 0
for p in paths:
    s = open(p).read()
    out = []
    pos = 0
    for m in re.finditer(r'(?m)^[ \t]*(pub(\([^)]*\))? )?use [^;]*;', s):
        out.append(s[pos:m.start()])
        stmt = m.group(0)
        fixed = fix_use(stmt) if '{' in stmt else stmt
        if fixed != stmt:
            missing += 1
            if check:
                line = s.count('\n', 0, m.start()) + 1
                print(f"{p}:{line}: `use` group without a trailing `//` (kernel import style)")
        out.append(fixed)
        pos = m.end()
    out.append(s[pos:])
    if not check:
        open(p, 'w').write(''.join(out))
sys.exit(1 if check and missing else 0)
