# shellcheck shell=bash
# Shared settings for the vfio-pci-rs scripts: where the cache lives, which
# toolchain root and kernel tree to use (VFIO_PCI_RS_KERNEL=7.2|7.3), and a
# helper that runs a command inside the toolchain root.  Sourced, never
# executed.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VFIO_PCI_RS_CACHE:-/var/cache/vfio-pci-rs}
ROOT=$CACHE/trixie-root
WORK=$CACHE/work

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The test kernel: VFIO_PCI_RS_KERNEL picks the Debian source package and everything built
# from it.  KERNELS are the ones supported (the toolchain root holds all their sources); the
# newest is the default.
KERNELS=(7.2 7.3)
KERNEL=${VFIO_PCI_RS_KERNEL:-7.3}
case " ${KERNELS[*]} " in
*" $KERNEL "*) ;;
*) die "VFIO_PCI_RS_KERNEL=$KERNEL: supported kernels are ${KERNELS[*]}" ;;
esac
KVER_PKG=linux-source-$KERNEL                  # the source package (trixie-backports)
# The config fragments (tinyconfig + these, scripts/kernel.sh) and the build recipe's version:
# bump KERNEL_RECIPE when an edit to kernel.sh changes how a tree is configured or built.
KFRAGMENTS=("$REPO/kernel/vfio-pci-rs.config" "$REPO/kernel/vfio-pci-rs-$KERNEL.config")
# The flavour: "test" (the default: the kernel every test runs on); "bench", the
# production-config kernel only scripts/bench.sh builds: kernel/vfio-pci-rs-bench.config
# merged last (its lines win); or "kasan", the memory-debugging kernel (KASAN, kmemleak, debug
# objects: kernel/vfio-pci-rs-kasan.config) the suite runs on by hand. Each in a tree of its
# own (the tree's name hashes the fragments).
KERNEL_FLAVOUR=${VFIO_PCI_RS_KERNEL_FLAVOUR:-test}
case "$KERNEL_FLAVOUR" in
test) ;;
bench) KFRAGMENTS+=("$REPO/kernel/vfio-pci-rs-bench.config") ;;
kasan) KFRAGMENTS+=("$REPO/kernel/vfio-pci-rs-kasan.config") ;;
*) die "VFIO_PCI_RS_KERNEL_FLAVOUR=$KERNEL_FLAVOUR: the flavours are test, bench and kasan" ;;
esac
KERNEL_RECIPE=r1
# A built tree is named by its version and a hash of what configures it, so checkouts with
# different fragments (branches, older commits, CI) each find their own tree and never
# reconfigure one another's.  kernel.sh seeds a new tree from a sibling to build incrementally.
KCONFIG_ID=$({ cat "${KFRAGMENTS[@]}"; echo "$KERNEL_RECIPE"; } | sha256sum | cut -c1-12)
KTREE=$WORK/linux-$KERNEL-$KCONFIG_ID          # the built tree (scripts/kernel.sh)
KBUILD_LOG=$KTREE.build.log                    # its build log
MODROOT=$KTREE.modroot                         # its modules, installed (scripts/guest.sh)
CLIENTS_CACHE=$WORK/clients-$KERNEL            # the VFIO selftests from its source (scripts/clients.sh)
TESTS_TARGET=${VFIO_PCI_RS_TESTS_TARGET:-$WORK/tests-target-$KERNEL} # cargo's target dir for tests/

# The Debian mirror: taken from the host's own apt configuration unless
# VFIO_PCI_RS_MIRROR says otherwise.
debian_mirror() {
	if [ -n "${VFIO_PCI_RS_MIRROR:-}" ]; then
		echo "$VFIO_PCI_RS_MIRROR"
		return
	fi
	local m
	m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
		/etc/apt/sources.list.d/*.list 2>/dev/null |
		grep -oE '(https?://[^ ]+/debian)/?( |$)' | head -n1 | tr -d ' ')
	[ -n "$m" ] || die "no Debian mirror found in /etc/apt; set VFIO_PCI_RS_MIRROR"
	echo "${m%/}"
}

# in_root CMD...: run CMD inside the toolchain root with /proc, /sys, /dev,
# the cache's work area and the checkout mounted at the same paths as
# outside, in the caller's working directory.  Runs in a private mount
# namespace, so every mount vanishes with the command, even when it fails.
in_root() {
	[ -x "$ROOT/bin/sh" ] || die "toolchain root $ROOT is missing: run scripts/toolchain.sh"
	mkdir -p "$WORK"
	unshare -m --propagation private -- /bin/bash -euc '
		root=$1 work=$2 repo=$3 cwd=$4; shift 4
		mount -t proc proc "$root/proc"
		mount --rbind /sys "$root/sys"
		mount --rbind /dev "$root/dev"
		mkdir -p "$root$work" "$root$repo"
		mount --bind "$work" "$root$work"
		mount --bind "$repo" "$root$repo"
		exec chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb \
			PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
			${VFIO_PCI_RS_ENV:-} \
			/bin/bash -c "cd \"\$0\" 2>/dev/null || cd /; exec \"\$@\"" "$cwd" "$@"
	' in-root "$ROOT" "$WORK" "$REPO" "$PWD" "$@"
}

# kbuild_ext DIR ARGS...: make -C "$KDIR" M=DIR LLVM=1 ARGS (an external module's build), after a
# `make clean` of DIR when DIR was last built against another kernel tree. Kbuild records every
# prerequisite of an object with its absolute path (rustc's and clang's dependency lists), and
# make's pattern rules match those paths: building against tree B with objects of tree A in DIR
# regenerated A's rust/kernel/generated_arch_static_branch_asm.rs with B's configuration (seen:
# the test kernel, which has no JUMP_LABEL, broke the bench kernel's tree).
kbuild_ext() {
	local dir=$1 stamp=$1/.vfio-pci-rs-kdir
	shift
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$KDIR" ]; then
		in_root make -s -C "$KDIR" M="$dir" LLVM=1 clean > /dev/null 2>&1 || true
	fi
	echo "$KDIR" > "$stamp"
	in_root make -C "$KDIR" M="$dir" LLVM=1 "$@"
}
