#!/usr/bin/env bash
# The README's test command: sets up what is missing (toolchain root, test kernel), builds the
# module and the tests, boots the emulated host and runs the suite there against vfio-pci-rs
# and the C vfio-pci. Prints the total time; the last line is "N passed, N failed".
#   scripts/test.sh [FILTER]
#   VFIO_PCI_RS_KERNEL=7.3 scripts/test.sh [FILTER]   against the other test kernel (common.sh)
. "$(dirname "$0")/common.sh"
export VFIO_PCI_RS_T0=$(date +%s)
export VFIO_PCI_RS_CACHE_STATE=warm
[ -f "$KTREE/.vfio-pci-rs-stamp" ] || VFIO_PCI_RS_CACHE_STATE=cold
exec "$REPO/scripts/guest.sh" tests "${1:-}"
