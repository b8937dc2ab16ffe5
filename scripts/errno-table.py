#!/usr/bin/env python3
"""Makes the errno table (Documentation/errno-table.rst) from a test run.

    scripts/errno-table.py RUN_LOGS_DIR_OR_TSV [KERNEL] > Documentation/errno-table.rst

The input is the errno-steps.tsv that scripts/guest.sh writes into a run's log directory
(work/runs/tests.*/logs/ in the cache): one line per compared step that answered with an
errno on either driver, "TOPOLOGY/SCENARIO<TAB>STEP<TAB>VFIO-PCI<TAB>VFIO-PCI-RS", written by
the test program as it compares the two drivers' transcripts.  A step seen on several
topologies is one row, with the topologies listed; a step whose answers differ between
topologies or drivers is shown with every answer seen.  The fuzzer's scenarios (fuzz_*) are
left out: their steps are random operations, numbered, and only counted here.
"""

import csv
import io
import os
import re
import sys


def short(outcome):
    """'error EINVAL (22)' -> 'EINVAL'; 'ok {...}' -> 'ok'; anything else as it is."""
    m = re.fullmatch(r"error (\S+)(?: \(\d+\))?", outcome)
    if m:
        return m.group(1)
    if outcome == "ok" or outcome.startswith("ok {"):
        return "ok"
    return outcome


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    src = sys.argv[1]
    kernel = sys.argv[2] if len(sys.argv) > 2 else "the default test kernel"
    if os.path.isdir(src):
        src = os.path.join(src, "errno-steps.tsv")
    rows = {}  # (scenario, step) -> {"topos": set, "answers": set of (c, rs)}
    order = []
    fuzz_steps = 0
    fuzz_differ = 0
    with open(src, encoding="utf-8", errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            case, step, c, rs = parts
            topo, _, scenario = case.partition("/")
            if scenario.startswith("fuzz_"):
                fuzz_steps += 1
                fuzz_differ += short(c) != short(rs)
                continue
            key = (scenario, step)
            if key not in rows:
                rows[key] = {"topos": set(), "answers": set()}
                order.append(key)
            rows[key]["topos"].add(topo)
            rows[key]["answers"].add((short(c), short(rs)))
    if not rows:
        sys.exit(f"{src}: no errno steps (was it a full, unfiltered run?)")

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    differ = 0
    for scenario, step in order:
        r = rows[(scenario, step)]
        answers = sorted(r["answers"])
        c_col = " / ".join(sorted({a[0] for a in answers}))
        rs_col = " / ".join(sorted({a[1] for a in answers}))
        same = all(a[0] == a[1] for a in answers)
        if not same:
            differ += 1
        w.writerow([scenario, step, c_col, rs_col if not same else "same", ", ".join(sorted(r["topos"]))])

    title = "The errno table"
    print(".. SPDX-License-Identifier: GPL-2.0")
    print()
    print("=" * len(title))
    print(title)
    print("=" * len(title))
    print()
    print(
        "Every bad input and refused operation the differential tests make, with the C\n"
        "``vfio-pci``'s answer and vfio-pci-rs's, as one unfiltered run of\n"
        f"``scripts/test.sh`` on {kernel} recorded them: each row is a step of a scenario\n"
        "that failed with an errno on at least one driver (the scenario's other steps\n"
        "check that nothing changed).  \"same\" means vfio-pci-rs gave the same answer.\n"
        "Made by ``scripts/errno-table.py`` from the run's ``errno-steps.tsv``; do not\n"
        "edit by hand.\n"
    )
    print(f"{len(order)} steps, {differ} with an answer that differs between the drivers.")
    if fuzz_steps:
        print(
            f"Not listed: the {fuzz_steps} random operations of the fuzzer's runs that failed\n"
            f"with an errno on either driver, compared in its transcripts ({fuzz_differ} with\n"
            "answers that differ).\n"
        )
    else:
        print()
    print(".. csv-table::")
    print('   :header: "Scenario", "Input (step)", "vfio-pci", "vfio-pci-rs", "Topologies"')
    print("   :widths: 20, 40, 10, 10, 20")
    print()
    for line in out.getvalue().splitlines():
        print("   " + line)


if __name__ == "__main__":
    main()
