#!/usr/bin/env bash
# The README's demo command: sets up what is missing, boots the emulated host, binds a
# function to vfio-pci-rs and opens it through cdev + iommufd and through its group.
. "$(dirname "$0")/common.sh"
exec "$REPO/scripts/guest.sh" demo
