#!/usr/bin/env bash
# The benchmark (not a test): boots the emulated host and measures, in one boot, the median
# latency of VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_DEVICE_PCI_HOT_RESET through
# vfio-pci-rs and through the C vfio-pci on the same functions, and the bus reset alone,
# for every reset-set size the topologies offer. Prints a Markdown table.
. "$(dirname "$0")/common.sh"
exec "$REPO/scripts/guest.sh" bench
