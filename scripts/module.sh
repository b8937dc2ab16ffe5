#!/usr/bin/env bash
# Builds vfio_pci_rs.ko against the test kernel, inside the toolchain root.
#   scripts/module.sh [clean]
. "$(dirname "$0")/common.sh"
KDIR=$("$REPO/scripts/kernel.sh")
target=${1:-modules}
cd "$REPO"
kbuild_ext "$REPO" "$target"
