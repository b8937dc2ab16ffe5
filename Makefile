# SPDX-License-Identifier: GPL-2.0
#
# The out-of-tree module's Makefile, used as kbuild documents for external modules
# (Documentation/kbuild/modules.rst); the build itself is described in Kbuild.
#
#   make [KDIR=...]                     build vfio_pci_rs.ko
#   make [KDIR=...] modules_install     install it and run depmod (as root)
#   make [KDIR=...] clean
#
# KDIR is the prepared build tree of the kernel to build for (7.2 or 7.3 with CONFIG_RUST);
# by default the running kernel's, /lib/modules/$(uname -r)/build.  Build with the toolchain
# that kernel was built with.  LLVM=1 is passed for a tree built with clang (read from its
# configuration); set LLVM=... to override.
#
# modules_install puts the module into $(INSTALL_MOD_PATH)/lib/modules/RELEASE/updates/
# (INSTALL_MOD_DIR, as kbuild) and runs depmod for that kernel, under INSTALL_MOD_PATH too:
# kbuild runs depmod only when the tree has a System.map, which kernel headers packages do
# not ship, so this Makefile runs it then (with /boot/System.map-RELEASE when there is one).
#
# The project's test kernel (built in the toolchain root) is built for with
# ./scripts/module.sh instead, and DKMS uses dkms.conf.

KDIR ?= /lib/modules/$(shell uname -r)/build
ifeq ($(origin LLVM),undefined)
LLVM := $(if $(shell grep -sx 'CONFIG_CC_IS_CLANG=y' $(KDIR)/include/config/auto.conf),1)
endif
DEPMOD ?= depmod

kbuild = $(MAKE) -C $(KDIR) M=$(CURDIR) $(if $(LLVM),LLVM=$(LLVM))

all modules: kdir
	$(kbuild) modules

# kbuild runs make in KDIR: a relative INSTALL_MOD_PATH is made absolute first.
modules_install: kdir
	@test -f $(CURDIR)/vfio_pci_rs.ko || { echo "vfio_pci_rs.ko is not built: run make first" >&2; exit 1; }
	$(kbuild) $(if $(INSTALL_MOD_PATH),INSTALL_MOD_PATH=$(abspath $(INSTALL_MOD_PATH))) modules_install
	@if [ ! -r $(KDIR)/System.map ]; then \
		release=$(or $(KERNELRELEASE),$$(cat $(KDIR)/include/config/kernel.release)); \
		map=$(if $(INSTALL_MOD_PATH),$(abspath $(INSTALL_MOD_PATH)))/boot/System.map-$$release; \
		set -- -a; \
		[ -r "$$map" ] && set -- "$$@" -e -F "$$map"; \
		$(if $(INSTALL_MOD_PATH),set -- "$$@" -b $(abspath $(INSTALL_MOD_PATH));) \
		echo "  DEPMOD  $(abspath $(INSTALL_MOD_PATH))/lib/modules/$$release (KDIR has no System.map)"; \
		PATH=$$PATH:/sbin:/usr/sbin $(DEPMOD) "$$@" $$release; \
	fi

# Without a kernel tree (nothing to build against), clean removes kbuild's outputs itself.
clean:
	@if [ -f $(KDIR)/Makefile ]; then \
		$(kbuild) clean; \
	else \
		rm -rf generated modules.order Module.symvers; \
		find . -path ./tests -prune -o \( -name '*.o' -o -name '*.ko' -o -name '*.mod' \
			-o -name '*.mod.c' -o -name '.*.cmd' -o -name '*.d' \) -type f -print0 | xargs -0r rm -f; \
	fi

kdir:
	@test -f $(KDIR)/Makefile || { \
		echo "KDIR=$(KDIR) is not a prepared kernel build tree: install the running kernel's" \
			"build tree (headers) or set KDIR=; for the project's test kernel, run ./scripts/module.sh" >&2; \
		exit 1; }

.PHONY: all modules modules_install clean kdir
