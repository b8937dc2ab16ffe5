#!/usr/bin/env bash
# Builds (once) the test kernel VFIO_PCI_RS_KERNEL selects (7.2 or 7.3, see
# scripts/common.sh): linux-source-VERSION from the toolchain root, tinyconfig
# plus kernel/vfio-pci-rs.config and kernel/vfio-pci-rs-VERSION.config, LLVM=1.
# Rebuilt only when the source package version, the fragments or the recipe
# (RECIPE below) change.  Prints the tree it leaves ready for
# `make -C KDIR M=...`.

. "$(dirname "$0")/common.sh"

KDIR=$KTREE
FRAGMENTS=("$REPO/kernel/vfio-pci-rs.config" "$REPO/kernel/vfio-pci-rs-$KERNEL.config")
STAMP=$KDIR/.vfio-pci-rs-stamp
JOBS=${VFIO_PCI_RS_JOBS:-$(( $(nproc) + 1 ))}
# The recipe's version: what this script does to a tree, besides the source version and
# the fragments the stamp holds.  Bump it when an edit here changes how a tree is
# configured or built; any other edit (comments, logging, another kernel's names) leaves
# the built trees valid.
RECIPE=r1

"$REPO/scripts/toolchain.sh"

srcver=$(in_root dpkg-query -W -f='${Version}' "$KVER_PKG")
want="$srcver $(cat "${FRAGMENTS[@]}" | sha256sum | cut -c1-16) $RECIPE"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$KDIR/arch/x86/boot/bzImage" ]; then
	log "test kernel $KERNEL is up to date ($want)"
	echo "$KDIR"
	exit 0
fi

t0=$(date +%s)
if [ ! -f "$KDIR/.vfio-pci-rs-srcver" ] || [ "$(cat "$KDIR/.vfio-pci-rs-srcver")" != "$srcver" ]; then
	log "extracting $KVER_PKG $srcver into $KDIR"
	rm -rf "$KDIR" "$WORK/$KVER_PKG"
	mkdir -p "$WORK"
	in_root tar -C "$WORK" -xf "/usr/src/$KVER_PKG.tar.xz"
	mv "$WORK/$KVER_PKG" "$KDIR"
	echo "$srcver" > "$KDIR/.vfio-pci-rs-srcver"
fi

cd "$KDIR"
log "configuring: tinyconfig + $(cd "$REPO/kernel" && basename -a "${FRAGMENTS[@]}" | paste -sd+)"
in_root make -s LLVM=1 tinyconfig
in_root scripts/kconfig/merge_config.sh -m -O . .config "${FRAGMENTS[@]}" >/dev/null
in_root make -s LLVM=1 olddefconfig

missing=0
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" .config || { echo "  config option did not take: $line" >&2; missing=1; } ;;
	"# CONFIG_"*" is not set")
		opt=${line#\# }; opt=${opt%% *}
		grep -q "^$opt=" .config && { echo "  config option still set: $opt" >&2; missing=1; } ;;
	esac
done < <(cat "${FRAGMENTS[@]}")
[ "$missing" = 0 ] || die "the config fragments did not apply cleanly"

log "building bzImage and modules with LLVM=1 -j$JOBS (log: $KBUILD_LOG)"
if ! in_root make LLVM=1 -j"$JOBS" bzImage modules > "$KBUILD_LOG" 2>&1; then
	tail -n 40 "$KBUILD_LOG" >&2
	die "kernel build failed"
fi
echo "$want" > "$STAMP"
log "test kernel $KERNEL built in $(( $(date +%s) - t0 )) s ($(du -h arch/x86/boot/bzImage | cut -f1) bzImage)"
echo "$KDIR"
