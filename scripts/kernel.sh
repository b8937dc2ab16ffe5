#!/usr/bin/env bash
# Builds (once) the test kernel VFIO_PCI_RS_KERNEL selects (7.2 or 7.3, see
# scripts/common.sh): linux-source-VERSION from the toolchain root, tinyconfig
# plus kernel/vfio-pci-rs.config and kernel/vfio-pci-rs-VERSION.config, LLVM=1.
# Each configuration gets its own tree, $WORK/linux-VERSION-ID (ID: a hash of the
# fragments and KERNEL_RECIPE, see common.sh); a new one starts as a copy of the
# newest built sibling of the same version, so a fragment change rebuilds only
# what it touches and never disturbs the tree another checkout uses.  A tree is
# rebuilt only when the source package version changes.  The three newest trees
# of a version are kept, and the newest of each flavour.  Prints the tree it leaves ready for `make -C KDIR M=...`.

. "$(dirname "$0")/common.sh"

KDIR=$KTREE
FRAGMENTS=("${KFRAGMENTS[@]}")
STAMP=$KDIR/.vfio-pci-rs-stamp
JOBS=${VFIO_PCI_RS_JOBS:-$(( $(nproc) + 1 ))}
KEEP_TREES=3

"$REPO/scripts/toolchain.sh"

srcver=$(in_root dpkg-query -W -f='${Version}' "$KVER_PKG")
want="$srcver $(cat "${FRAGMENTS[@]}" | sha256sum | cut -c1-16) $KERNEL_RECIPE"

up_to_date() { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -f "$KDIR/arch/x86/boot/bzImage" ]; }

if up_to_date; then
	log "test kernel $KERNEL is up to date ($(basename "$KDIR"): $want)"
	echo "$KDIR"
	exit 0
fi

# One build per version at a time: two runs of the same configuration wait for each other
# (the second then finds the tree built), and a tree is never copied while it is built.
mkdir -p "$WORK"
exec 9> "$WORK/.kernel-$KERNEL.lock"
flock 9
if up_to_date; then
	log "test kernel $KERNEL was built meanwhile ($(basename "$KDIR"))"
	echo "$KDIR"
	exit 0
fi

t0=$(date +%s)
# Seed a new configuration's tree from the newest built tree of the same source version
# (including the names used before trees carried their configuration's ID).
if [ ! -d "$KDIR" ]; then
	legacy=$WORK/linux-$KERNEL
	[ "$KERNEL" = 7.2 ] && legacy=$WORK/linux
	seed=$(
		for t in "$WORK/linux-$KERNEL"-* "$legacy"; do
			[ -d "$t" ] && [ -f "$t/.vfio-pci-rs-stamp" ] && [ -f "$t/arch/x86/boot/bzImage" ] || continue
			[ "$(cat "$t/.vfio-pci-rs-srcver" 2>/dev/null)" = "$srcver" ] || continue
			printf '%s %s\n' "$(stat -c %Y "$t/.vfio-pci-rs-stamp")" "$t"
		done | sort -rn | head -n1 | cut -d' ' -f2-
	)
	if [ -n "$seed" ]; then
		log "new configuration $(basename "$KDIR"): seeding it from $(basename "$seed")"
		rm -rf "$KDIR.tmp"
		cp -a --reflink=auto "$seed" "$KDIR.tmp"
		rm -f "$KDIR.tmp/.vfio-pci-rs-stamp"
		mv "$KDIR.tmp" "$KDIR"
	fi
fi
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

# Every option's last line in the fragments (a later fragment overrides an earlier one, as
# merge_config.sh does) must have taken.
missing=0
declare -A checked=()
while IFS= read -r line; do
	case "$line" in
	CONFIG_*=*) opt=${line%%=*} ;;
	"# CONFIG_"*" is not set") opt=${line#\# }; opt=${opt%% *} ;;
	*) continue ;;
	esac
	[ -z "${checked[$opt]:-}" ] || continue
	checked[$opt]=1
	case "$line" in
	CONFIG_*=*)
		grep -qxF "$line" .config || { echo "  config option did not take: $line" >&2; missing=1; } ;;
	*)
		grep -q "^$opt=" .config && { echo "  config option still set: $opt" >&2; missing=1; } ;;
	esac
done < <(cat "${FRAGMENTS[@]}" | tac)
[ "$missing" = 0 ] || die "the config fragments did not apply cleanly"

log "building bzImage and modules with LLVM=1 -j$JOBS (log: $KBUILD_LOG)"
if ! in_root make LLVM=1 -j"$JOBS" bzImage modules > "$KBUILD_LOG" 2>&1; then
	tail -n 40 "$KBUILD_LOG" >&2
	die "kernel build failed"
fi
echo "$want" > "$STAMP"

# Keep the KEEP_TREES newest configurations of this version (by their build time), and the
# newest of every flavour (test, bench, kasan) whatever its age: building the bench or the
# memory-debugging kernel must never evict the tree the test command uses. Older ones go, with
# their installed modules and logs. A tree records its flavour in .vfio-pci-rs-flavour; one
# built before that file existed counts as its own flavour, so it goes once it is old.
echo "$KERNEL_FLAVOUR" > "$KDIR/.vfio-pci-rs-flavour"
declare -A newest_of_flavour=()
rank=0
while read -r _ t; do
	rank=$((rank + 1))
	flavour=$(cat "$t/.vfio-pci-rs-flavour" 2> /dev/null || echo "unrecorded:$t")
	if [ -z "${newest_of_flavour[$flavour]:-}" ]; then
		newest_of_flavour[$flavour]=$t
		continue
	fi
	[ "$rank" -le "$KEEP_TREES" ] && continue
	log "removing an old configuration's tree: $(basename "$t")"
	rm -rf "$t" "$t.modroot" "$t.build.log"
done < <(for t in "$WORK/linux-$KERNEL"-*; do
	case "$t" in *.modroot | *.log | *.tmp) continue ;; esac
	[ -f "$t/.vfio-pci-rs-stamp" ] && printf '%s %s\n' "$(stat -c %Y "$t/.vfio-pci-rs-stamp")" "$t"
done | sort -rn)
log "test kernel $KERNEL built in $(( $(date +%s) - t0 )) s ($(du -h arch/x86/boot/bzImage | cut -f1) bzImage)"
echo "$KDIR"
