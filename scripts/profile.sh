#!/usr/bin/env bash
# The instruction profile of benchmark rows: where, function by function, the guest kernel's
# instructions of one operation go on each driver (issue 13: "where the extra instructions go,
# measured"). Runs the benchmark (scripts/guest.sh bench, -icount) with the QEMU plugin
# harness/insn-profile.c, which counts the guest kernel's executed instructions per
# translation block in windows the benchmark opens and closes around every timed batch of samples
# (tests/src/bench/profile.rs), and prints, per row, the kernel instructions a sample on each
# driver and the functions whose counts differ most (scripts/profile-report.py).
#
#   scripts/profile.sh [test|bench] ROWS    ROWS: the benchmark's row filter (VFIO_PCI_RS_BENCH_FILTER)
#
# A row's counts are the plugin's, by translation block: a block an interrupt cuts short is
# counted whole, so the totals are a little above the benchmark's instruction counts, equally
# for both drivers. The kernel functions are named from the tree's System.map, the modules'
# from the guest's /proc/kallsyms.
. "$(dirname "$0")/common.sh"
flavour=${1:-bench}
rows=${2:-}
[ -n "$rows" ] || die "usage: scripts/profile.sh [test|bench] ROWS (a benchmark row filter)"
export VFIO_PCI_RS_KERNEL_FLAVOUR=$flavour
KDIR=$("$REPO/scripts/kernel.sh")
out=$WORK/profile
mkdir -p "$out"
in_root cc -O2 -Wall -shared -fPIC -fvisibility=hidden -o "$out/insn-profile.so" "$REPO/harness/insn-profile.c"
symbol() {
	local a
	a=$(awk -v s="$1" '$3 == s { print $1 }' "$KDIR/System.map")
	[ -n "$a" ] || die "no $1 in $KDIR/System.map"
	echo "$a"
}
open_mark=$(symbol __x64_sys_getppid)
close_mark=$(symbol __x64_sys_getpid)
cat > "$out/qemu" <<WRAP
#!/bin/sh
exec qemu-system-x86_64 -plugin "$out/insn-profile.so,open=$open_mark,close=$close_mark,out=$out/blocks" "\$@"
WRAP
chmod +x "$out/qemu"
log "profiling rows '$rows' on the $flavour kernel (windows: __x64_sys_getppid at $open_mark to __x64_sys_getpid at $close_mark)"
VFIO_PCI_RS_GUEST_QEMU=$out/qemu \
	VFIO_PCI_RS_GUEST_APPEND="VFIO_PCI_RS_BENCH_PROFILE=1" \
	VFIO_PCI_RS_GUEST_ICOUNT=${VFIO_PCI_RS_GUEST_ICOUNT-shift=0,sleep=off} \
	VFIO_PCI_RS_GUEST_TIMEOUT=${VFIO_PCI_RS_GUEST_TIMEOUT:-2400} \
	"$REPO/scripts/guest.sh" bench "$rows" > "$out/bench.log" || {
	tail -20 "$out/bench.log"
	die "the benchmark failed (log: $out/bench.log)"
}
grep -v '^# \(ksym\|profile window\)' "$out/bench.log"
echo
python3 "$REPO/scripts/profile-report.py" "$KDIR/System.map" "$out/bench.log" "$out/blocks" "${VFIO_PCI_RS_PROFILE_TOP:-15}"
