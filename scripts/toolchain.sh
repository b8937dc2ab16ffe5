#!/usr/bin/env bash
# Creates (once) the Debian trixie toolchain root the whole project builds
# and runs in: rustc 1.85 + rust-src, bindgen 0.71, clang/lld/llvm 19, the
# kernel build dependencies, QEMU, busybox-static and the sources of every
# supported test kernel (linux-source-7.2, linux-source-7.3) from
# trixie-backports.  Idempotent: a root whose stamp matches, or one made by
# this recipe that has every package of the lists, is reused; an existing root
# that lacks some (made from an older list: dkms came later) gets just those
# installed, and nothing is ever removed from it.
#
#   scripts/toolchain.sh            create or check the root, print versions
#   VFIO_PCI_RS_CACHE=/path ...     put the cache somewhere else
#   VFIO_PCI_RS_MIRROR=URL ...      use another Debian mirror

. "$(dirname "$0")/common.sh"

PACKAGES=(
	rustc rust-src cargo rustfmt rust-clippy bindgen libclang-dev clang lld llvm
	gcc libc6-dev make flex bison bc libelf-dev libssl-dev cpio kmod
	python3 rsync xz-utils busybox-static qemu-system-x86 uuid-dev
	dkms driverctl
)
# Every supported kernel's source (KERNELS in common.sh), so that VFIO_PCI_RS_KERNEL can
# switch without touching the root.
BACKPORTS_PACKAGES=("${KERNELS[@]/#/linux-source-}")
STAMP=$ROOT/.vfio-pci-rs-stamp
# The recipe's version (debootstrap, sources.list): bump it when that part changes.
RECIPE=v1
want_stamp="$RECIPE ${PACKAGES[*]} ${BACKPORTS_PACKAGES[*]}"

print_versions() {
	in_root /bin/bash -c "
		rustc --version; cargo --version; bindgen --version
		clang --version | head -n1; ld.lld --version
		qemu-system-x86_64 --version | head -n1
		dpkg-query -W -f='\${Package} \${Version}\n' ${BACKPORTS_PACKAGES[*]}
	" | sed 's/^/  /' >&2
}

# A root made by this recipe that already has every package of the lists is ready, whatever
# list its stamp names (packages added to it by hand, `apt-get install` in the root, count).
# Its stamp stays as it is: checkouts of the older list, sharing the root, still find theirs.
has_all_packages() {
	[ -f "$STAMP" ] && [ "$(cut -d' ' -f1 "$STAMP")" = "$RECIPE" ] || return 1
	local installed
	installed=$(in_root dpkg-query -W -f='${db:Status-Abbrev}\n' \
		"${PACKAGES[@]}" "${BACKPORTS_PACKAGES[@]}" 2>/dev/null | grep -c '^ii ') || return 1
	[ "$installed" = $(( ${#PACKAGES[@]} + ${#BACKPORTS_PACKAGES[@]} )) ]
}

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mounts need it)"

if { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_stamp" ]; } || has_all_packages; then
	log "toolchain root $ROOT is ready:"
	print_versions
	exit 0
fi

command -v unshare >/dev/null || die "unshare (util-linux) is required"
# debootstrap is needed only for a root that is not there yet.
debootstrapped() { [ -x "$ROOT/usr/bin/apt-get" ] && [ -f "$ROOT/.debootstrap-done" ]; }
if ! debootstrapped && ! command -v debootstrap >/dev/null; then
	if command -v apt-get >/dev/null; then
		log "installing debootstrap on the host"
		apt-get update -qq >/dev/null || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null ||
			die "debootstrap is missing and could not be installed"
	else
		die "debootstrap is required (not found, and no apt-get to install it)"
	fi
fi

MIRROR=$(debian_mirror)
command -v wget >/dev/null || command -v curl >/dev/null ||
	die "need wget or curl to reach the Debian mirror"
probe_url="$MIRROR/dists/trixie/Release"
if command -v wget >/dev/null; then
	wget -q --spider --timeout=20 "$probe_url" || die "cannot reach the Debian mirror ($probe_url)"
else
	curl -fsI --max-time 20 "$probe_url" >/dev/null || die "cannot reach the Debian mirror ($probe_url)"
fi

t0=$(date +%s)
mkdir -p "$CACHE"
if ! debootstrapped; then
	log "debootstrap trixie into $ROOT"
	rm -rf "$ROOT"
	debootstrap --variant=minbase --include=ca-certificates trixie "$ROOT" "$MIRROR" \
		> "$CACHE/debootstrap.log" 2>&1 || { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap failed"; }
	touch "$ROOT/.debootstrap-done"
fi

cat > "$ROOT/etc/apt/sources.list" <<SOURCES
deb $MIRROR trixie main
deb $MIRROR trixie-backports main
SOURCES
cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

if [ -f "$STAMP" ]; then
	# An existing root: name what it lacks (apt-get installs only that).
	missing=$(in_root dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' \
		"${PACKAGES[@]}" "${BACKPORTS_PACKAGES[@]}" 2>&1 | awk '$1 != "ii" { print $NF }' | paste -sd' ') || true
	log "installing the packages the root lacks: ${missing:-?}"
else
	log "installing packages into the root"
fi
VFIO_PCI_RS_ENV="DEBIAN_FRONTEND=noninteractive" in_root /bin/bash -ec "
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends ${PACKAGES[*]} >/dev/null
	apt-get install -y -qq --no-install-recommends -t trixie-backports ${BACKPORTS_PACKAGES[*]} >/dev/null
	apt-get clean
" || die "package installation in the root failed"

echo "$want_stamp" > "$STAMP"
log "toolchain root ready in $(( $(date +%s) - t0 )) s:"
print_versions
