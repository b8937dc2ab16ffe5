# SPDX-License-Identifier: GPL-2.0
#
# Builds vfio_pci_rs.ko.  By default against the test kernel that
# scripts/kernel.sh builds (inside the toolchain root); with KDIR=... against
# any prepared 7.2 tree with CONFIG_RUST (run from a shell that has that
# tree's toolchain).

CACHE ?= $(or $(VFIO_PCI_RS_CACHE),/var/cache/vfio-pci-rs)
KDIR ?=

ifeq ($(KDIR),)
# Default: the test kernel, built and used inside the toolchain root.
all modules:
	./scripts/module.sh
clean:
	./scripts/module.sh clean
else
all modules:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1 modules
clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) LLVM=1 clean
endif

.PHONY: all modules clean
