#!/usr/bin/env python3
"""The instruction profile's report (scripts/profile.sh): per benchmark row, the guest kernel's
instructions per sample on each driver, split by the function they were executed in, and the
functions whose counts differ most between the drivers.

profile-report.py SYSTEM_MAP BENCH_LOG PLUGIN_OUT [TOP]

BENCH_LOG holds the benchmark's console output with its "# profile window" and "# ksym" lines;
PLUGIN_OUT the plugin's sections (harness/insn-profile.c), one per window.
"""
import bisect
import collections
import sys


def symbols(system_map, log_lines):
    """Sorted (address, name) of the kernel's text symbols and the modules' (from the log)."""
    syms = []
    with open(system_map) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] in "tTwW":
                syms.append((int(parts[0], 16), parts[2]))
    for line in log_lines:
        if line.startswith("# ksym "):
            parts = line[len("# ksym "):].split()
            if len(parts) >= 4 and parts[1] in "tTwW":
                syms.append((int(parts[0], 16), parts[2] + " " + parts[3]))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def windows(log_lines):
    """The announced windows, in order: (driver, samples, row)."""
    out = []
    for line in log_lines:
        if line.startswith("# profile window "):
            _, drv, samples, row = line[len("# profile window "):].split("\t", 3)
            out.append((drv, int(samples), row.strip()))
    return out


def sections(path):
    """Each section's blocks: list of (address, instructions x executions)."""
    secs = []
    with open(path) as f:
        for line in f:
            if line.startswith("section "):
                secs.append([])
            elif secs:
                a, n, e = line.split()
                secs[-1].append((int(a, 16), int(n) * int(e)))
    return secs


def main():
    system_map, log, plugin_out = sys.argv[1:4]
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    with open(log, errors="replace") as f:
        lines = [l.rstrip("\n") for l in f]
    addrs, names = symbols(system_map, lines)
    wins = windows(lines)
    secs = sections(plugin_out)

    def name_of(a):
        i = bisect.bisect_right(addrs, a) - 1
        return names[i] if i >= 0 else hex(a)

    # (row, driver) -> [samples, Counter(function -> instructions)]
    per = collections.OrderedDict()
    if len(secs) != len(wins):
        sys.exit(f"profile-report: {len(wins)} windows announced, {len(secs)} sections written: "
                 "something else executed the marks")
    for k, (drv, samples, row) in enumerate(wins):
        s = k
        if s >= len(secs):
            print(f"# window {k + 1} ({row}, {drv}) has no section: the plugin's output ends", file=sys.stderr)
            break
        entry = per.setdefault((row, drv), [0, collections.Counter()])
        entry[0] += samples
        for a, insns in secs[s]:
            entry[1][name_of(a)] += insns
    drivers = []
    for (_, drv) in per:
        if drv not in drivers:
            drivers.append(drv)
    rows = []
    for (row, _) in per:
        if row not in rows:
            rows.append(row)
    for row in rows:
        have = [d for d in drivers if (row, d) in per]
        if len(have) != 2:
            continue
        c, r = have
        (nc, fc), (nr, fr) = per[(row, c)], per[(row, r)]
        tc, tr = sum(fc.values()) / nc, sum(fr.values()) / nr
        print(f"## {row}: {c} {tc:.0f}, {r} {tr:.0f} kernel instructions a sample ({r}/{c} {tr / tc:.3f})")
        print()
        print(f"| function | {c} | {r} | difference |")
        print("|---|---|---|---|")
        funcs = set(fc) | set(fr)
        diffs = sorted(funcs, key=lambda f: -abs(fr[f] / nr - fc[f] / nc))
        for f in diffs[:top]:
            a, b = fc[f] / nc, fr[f] / nr
            if abs(b - a) < 0.5:
                break
            print(f"| `{f}` | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
        print()


main()
