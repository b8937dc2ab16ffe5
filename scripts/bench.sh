#!/usr/bin/env bash
# The benchmark (not a test): boots the emulated host and measures, in one boot, the median
# latency of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET through
# vfio-pci-rs and through the C vfio-pci on the same functions, and the bus reset alone,
# for every reset-set size the topologies offer; then, on the e1000e of the "slot" topology,
# config and BAR reads, MSI-X delivery to an eventfd and the VFIO selftests' device-init time
# (vfio_pci_device_init_perf_test, from /opt/vfio-selftests as in the tests). Prints Markdown
# tables.
#
# The guest runs with -icount shift=0,sleep=off: its clock counts executed instructions
# (1 ns each) and skips idle time, so a latency is an instruction count, repeatable from run
# to run and blind to the host's load (real TCG timings swung by 2x between rounds).
# VFIO_PCI_RS_GUEST_ICOUNT= (empty) measures wall-clock time instead.
. "$(dirname "$0")/common.sh"
export VFIO_PCI_RS_GUEST_ICOUNT=${VFIO_PCI_RS_GUEST_ICOUNT-shift=0,sleep=off}
exec "$REPO/scripts/guest.sh" bench
