#!/usr/bin/env bash
# The benchmark (not a test): boots the emulated host and measures, in one boot per kernel,
# vfio-pci-rs against the C vfio-pci on the same functions, the drivers alternating: the
# latency of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET and of the bare
# slot or bus reset for every reset-set size the topologies offer, then a row for every
# device ioctl and file operation the driver implements (tests/src/bench.rs and
# tests/src/bench/). Prints Markdown tables.
#
#   scripts/bench.sh               on both kernels: the debug test kernel, then the
#                                  production-config bench kernel (built here, once)
#   scripts/bench.sh test|bench    on one of them
#
# VFIO_PCI_RS_BENCH_FILTER=A,B measures only the per-operation rows whose names contain A or B
# (and the reset-set table if one of them is in "reset set"), for a quick look at a few rows.
#
# The bench kernel is the test kernel's configuration with kernel/vfio-pci-rs-bench.config
# merged last (VFIO_PCI_RS_KERNEL_FLAVOUR=bench, scripts/common.sh): no lockdep, KASAN,
# kmemleak, debug objects or fault injection, -O2, jump labels, the function tracer. It is
# cached like the test kernel, in a tree of its own, and only this command builds it.
#
# The guest runs with -icount shift=0,sleep=off: its clock counts executed instructions
# (1 ns each) and skips idle time, so a latency is an instruction count, repeatable from run
# to run and blind to the host's load (real TCG timings swung by 2x between rounds).
# VFIO_PCI_RS_GUEST_ICOUNT= (empty) measures wall-clock time instead.
. "$(dirname "$0")/common.sh"
export VFIO_PCI_RS_GUEST_ICOUNT=${VFIO_PCI_RS_GUEST_ICOUNT-shift=0,sleep=off}
# A bench guest runs longer than a test guest: many rounds of resets and opens.
export VFIO_PCI_RS_GUEST_TIMEOUT=${VFIO_PCI_RS_GUEST_TIMEOUT:-2400}

if [ $# -gt 0 ]; then flavours=("$@"); else flavours=(test bench); fi
status=0
for flavour in "${flavours[@]}"; do
	case "$flavour" in
	test) what="the debug test kernel (lockdep, the sleep-in-atomic check; -Os)" ;;
	bench) what="the production-config bench kernel (kernel/vfio-pci-rs-bench.config: no debugging, -O2)" ;;
	*) die "unknown kernel '$flavour': test or bench" ;;
	esac
	echo "## Benchmark on $what"
	echo
	VFIO_PCI_RS_KERNEL_FLAVOUR=$flavour "$REPO/scripts/guest.sh" bench "${VFIO_PCI_RS_BENCH_FILTER:-}" || status=1
	echo
done
exit "$status"
