#!/usr/bin/env bash
# Builds (once) the test kernel: linux-source-7.2 from the toolchain root,
# tinyconfig plus kernel/vfio-pci-rs.config, LLVM=1.  Rebuilt only when the
# source package version, the fragment or this script changes.  Prints the
# tree it leaves ready for `make -C KDIR M=...`.

. "$(dirname "$0")/common.sh"

KDIR=$WORK/linux
FRAGMENT=$REPO/kernel/vfio-pci-rs.config
STAMP=$KDIR/.vfio-pci-rs-stamp
JOBS=${VFIO_PCI_RS_JOBS:-$(( $(nproc) + 1 ))}

"$REPO/scripts/toolchain.sh"

srcver=$(in_root dpkg-query -W -f='${Version}' "$KVER_PKG")
want="$srcver $(cat "$FRAGMENT" "$0" | sha256sum | cut -c1-16)"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$KDIR/arch/x86/boot/bzImage" ]; then
	log "test kernel is up to date ($want)"
	echo "$KDIR"
	exit 0
fi

t0=$(date +%s)
if [ ! -f "$KDIR/.vfio-pci-rs-srcver" ] || [ "$(cat "$KDIR/.vfio-pci-rs-srcver")" != "$srcver" ]; then
	log "extracting $KVER_PKG $srcver into $KDIR"
	rm -rf "$KDIR" "$WORK/linux-source-7.2"
	mkdir -p "$WORK"
	in_root tar -C "$WORK" -xf /usr/src/linux-source-7.2.tar.xz
	mv "$WORK/linux-source-7.2" "$KDIR"
	echo "$srcver" > "$KDIR/.vfio-pci-rs-srcver"
fi

cd "$KDIR"
log "configuring: tinyconfig + $(basename "$FRAGMENT")"
in_root make -s LLVM=1 tinyconfig
in_root scripts/kconfig/merge_config.sh -m -O . .config "$FRAGMENT" >/dev/null
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
done < "$FRAGMENT"
[ "$missing" = 0 ] || die "the config fragment did not apply cleanly"

log "building bzImage and modules with LLVM=1 -j$JOBS (log: $WORK/kernel-build.log)"
if ! in_root make LLVM=1 -j"$JOBS" bzImage modules > "$WORK/kernel-build.log" 2>&1; then
	tail -n 40 "$WORK/kernel-build.log" >&2
	die "kernel build failed"
fi
echo "$want" > "$STAMP"
log "test kernel built in $(( $(date +%s) - t0 )) s ($(du -h arch/x86/boot/bzImage | cut -f1) bzImage)"
echo "$KDIR"
