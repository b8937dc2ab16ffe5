#!/usr/bin/env bash
# The install test: vfio_pci_rs.ko installed the two ways out-of-tree modules are, against the
# test kernel's tree (VFIO_PCI_RS_KERNEL, see scripts/common.sh), then loaded in the guest from
# where the install put it.
#
#   1. make: a clean copy of the checkout's sources is built with `make KDIR=TREE` and
#      installed with `make modules_install INSTALL_MOD_PATH=TMP` (the .ko lands in
#      TMP/lib/modules/RELEASE/updates/, depmod writes modules.dep listing it, modules.alias
#      and the rest); `make clean` then leaves the sources alone.
#   2. DKMS: Debian's dkms, in the toolchain root, adds that copy and builds and installs it
#      for the test kernel (-k RELEASE --kernelsourcedir TREE) into a module tree that holds
#      the test kernel's own modules, as its package would have installed them; dkms status,
#      the .ko in updates/dkms/, depmod's modules.dep, modinfo by name.  A kernel without
#      CONFIG_RUST is skipped (BUILD_EXCLUSIVE_CONFIG, exit status 77).
#   3. The guest boots with that module tree as its /lib/modules and the DKMS-built module
#      in place of the checkout's (scripts/guest.sh: VFIO_PCI_RS_MODROOT, VFIO_PCI_RS_MODULE)
#      and runs harness/installed.sh: modinfo, modprobe by name, a function bound to it
#      answering the demo's ioctls, modprobe -r, the suite's KUnit and module_load_unload cases.
#   4. dkms remove takes the module and its modules.dep line away again.
#
# dkms runs with its default paths, but each of them (/usr/src, /var/lib/dkms, /lib/modules,
# /boot, /tmp) is a temporary directory bound over it in a private mount namespace, so the
# shared toolchain root is left as it was (but for an empty /usr/lib/modules, the mount
# point).  Everything temporary is in WORK/install-test.* and removed at exit, failed or not.
# The last line is "N passed, N failed".
#
#   scripts/install-test.sh
. "$(dirname "$0")/common.sh"

t0=$(date +%s)
KDIR=$("$REPO/scripts/kernel.sh")
kver=$(cat "$KDIR/include/config/kernel.release")
pkg=vfio-pci-rs
version=$(sed -n 's/^PACKAGE_VERSION="\([^"]*\)"$/\1/p' "$REPO/dkms.conf")
[ -n "$version" ] || die "dkms.conf has no PACKAGE_VERSION"
log "install test: $pkg $version for the test kernel $kver ($KDIR)"

mkdir -p "$WORK"
tmp=$(mktemp -d "$WORK/install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}
# run WHAT CMD...: CMD's output goes to a log, shown when it fails.
run() {
	local what=$1
	shift
	if "$@" > "$tmp/cmd.log" 2>&1; then
		ok "$what"
	else
		not_ok "$what"
		tail -n 40 "$tmp/cmd.log" | sed 's/^/# /'
		return 1
	fi
}
finish() {
	echo "# install test took $(( $(date +%s) - t0 )) s"
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit
}

# 1. make.
src=$tmp/src
mkdir -p "$src"
if git -C "$REPO" rev-parse --git-dir > /dev/null 2>&1; then
	# The files of the work tree that git knows or would add (no build outputs).
	(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) > "$tmp/files"
	tar -C "$REPO" --null -T "$tmp/files" --ignore-failed-read -cf - 2> /dev/null | tar -C "$src" -xf -
else
	tar -C "$REPO" --exclude=.git -cf - . | tar -C "$src" -xf -
fi
(cd "$src" && find . -type f | sort) > "$tmp/sources"
log "1. make, make modules_install, make clean in $src"
cd "$src"
stage=$tmp/make
mdir=$stage/lib/modules/$kver
run "make KDIR=$KDIR" in_root make KDIR="$KDIR" || finish
run "make modules_install INSTALL_MOD_PATH=$stage" \
	in_root make KDIR="$KDIR" INSTALL_MOD_PATH="$stage" modules_install || finish
check "make modules_install: the module is lib/modules/$kver/updates/vfio_pci_rs.ko" \
	cmp -s vfio_pci_rs.ko "$mdir/updates/vfio_pci_rs.ko"
check "make modules_install: depmod's modules.dep lists updates/vfio_pci_rs.ko" \
	grep -qx 'updates/vfio_pci_rs.ko:' "$mdir/modules.dep"
check "make modules_install: depmod wrote modules.alias, modules.symbols and the .bin indexes" \
	test -f "$mdir/modules.alias" -a -f "$mdir/modules.symbols" -a -f "$mdir/modules.dep.bin" -a -f "$mdir/modules.alias.bin"
# The override-only ID table, as vfio-pci's: modpost's alias, copied by depmod.
check "make modules_install: modules.alias has vfio_pci_rs's 'vfio_pci:v*d*sv*sd*bc*sc*i*' alias" \
	grep -qxF 'alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci_rs' "$mdir/modules.alias"
run "make clean" in_root make KDIR="$KDIR" clean || finish
check "make clean leaves exactly the sources" \
	cmp -s "$tmp/sources" <(find . -type f | sort)

# 2. DKMS, in the toolchain root, with its paths on temporary directories.
log "2. dkms add, build, install for $kver"
sys=$tmp/sys
dmdir=$sys/lib/modules/$kver
mkdir -p "$tmp"/{usrsrc,dkms,boot,tmp}
# The test kernel's own modules, where its package would put them (dkms's depmod needs its
# modules.dep), and its System.map where Debian's kernel packages put it.
(cd "$KDIR" && in_root make -s LLVM=1 INSTALL_MOD_PATH="$sys" modules_install > /dev/null)
cp "$KDIR/System.map" "$tmp/boot/System.map-$kver"
[ -d "$ROOT/usr/lib/modules" ] || mkdir -p "$ROOT/usr/lib/modules"
dkms_root() {
	in_root /bin/bash -euc '
		t=$1
		shift
		mount --bind "$t/usrsrc" /usr/src
		mount --bind "$t/dkms" /var/lib/dkms
		mount --bind "$t/sys/lib/modules" /usr/lib/modules
		mount --bind "$t/boot" /boot
		mount --bind "$t/tmp" /tmp
		exec "$@"
	' dkms-root "$tmp" "$@"
}
# dkms's build log: in build/ while it builds, kept under RELEASE/ARCH/log/ after.
make_log() { find "$tmp/dkms/$pkg/$version" -name make.log 2> /dev/null | head -n1; }
run "dkms add $src (to /usr/src/$pkg-$version)" dkms_root dkms add "$src" || finish
if ! run "dkms build $pkg/$version -k $kver --kernelsourcedir $KDIR" \
	dkms_root dkms build "$pkg/$version" -k "$kver" --kernelsourcedir "$KDIR"; then
	mlog=$(make_log)
	[ -n "$mlog" ] && tail -n 40 "$mlog" | sed 's/^/# make.log: /'
	finish
fi
# What dkms's make ran (the Makefile's kbuild command line): LLVM=1, as dkms saw a clang kernel.
grep -m1 -E '^make .*-C ' "$(make_log)" 2> /dev/null | sed 's/^/# dkms built with: /' || true
run "dkms install $pkg/$version -k $kver --kernelsourcedir $KDIR" \
	dkms_root dkms install "$pkg/$version" -k "$kver" --kernelsourcedir "$KDIR" || finish
status=$(dkms_root dkms status "$pkg/$version" -k "$kver" 2>&1 || true)
echo "# dkms status: $status"
check "dkms status: $pkg/$version, $kver: installed" \
	grep -qE "^$pkg/$version, $kver, [^:]+: installed" <<< "$status"
check "dkms install: the module is lib/modules/$kver/updates/dkms/vfio_pci_rs.ko" \
	test -f "$dmdir/updates/dkms/vfio_pci_rs.ko"
check "dkms install: depmod's modules.dep lists it, depending on irqbypass.ko, next to the kernel's modules" \
	sh -c 'grep -qx "updates/dkms/vfio_pci_rs.ko: kernel/virt/lib/irqbypass.ko" "$1" && grep -q "^kernel/drivers/vfio/pci/vfio-pci.ko:" "$1"' \
	sh "$dmdir/modules.dep"
check "dkms install: modules.alias has the vfio_pci: alias of vfio_pci_rs and of vfio_pci" \
	sh -c 'grep -qxF "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci_rs" "$1" &&
		grep -qxF "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci" "$1"' sh "$dmdir/modules.alias"
found=$(dkms_root modinfo -k "$kver" -F filename vfio_pci_rs 2>&1 || true)
check "modinfo -k $kver vfio_pci_rs finds it by name ($found)" \
	test "$found" = "/lib/modules/$kver/updates/dkms/vfio_pci_rs.ko"
vermagic=$(dkms_root modinfo -k "$kver" -F vermagic vfio_pci_rs 2>&1 || true)
check "its vermagic is for $kver ($vermagic)" test "${vermagic%% *}" = "$kver"
# A kernel without Rust: only its configuration is needed to be told apart.
norust=$tmp/norust-tree
mkdir -p "$norust/include/config"
grep -v '^CONFIG_RUST=' "$KDIR/include/config/auto.conf" > "$norust/include/config/auto.conf"
cp "$KDIR/.config" "$norust/.config"
sed -i '/^CONFIG_RUST=/d' "$norust/.config"
set +e
dkms_root dkms build "$pkg/$version" -k "$kver-norust" --kernelsourcedir "$norust" > "$tmp/cmd.log" 2>&1
rc=$?
set -e
check "dkms build for a kernel without CONFIG_RUST is skipped (exit status $rc, 77 wanted)" test "$rc" = 77
[ "$rc" = 77 ] || tail -n 10 "$tmp/cmd.log" | sed 's/^/# /'

# 3. The guest, with the tree DKMS installed into.
log "3. the guest, with /lib/modules/$kver as DKMS left it"
cd "$REPO"
set +e
VFIO_PCI_RS_MODROOT=$sys VFIO_PCI_RS_MODULE=$dmdir/updates/dkms/vfio_pci_rs.ko \
	VFIO_PCI_RS_GUEST_TIMEOUT=${VFIO_PCI_RS_GUEST_TIMEOUT:-300} \
	"$REPO/scripts/guest.sh" run "$REPO/harness/installed.sh" < /dev/null | tee "$tmp/guest.log"
set -e
if summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/guest.log" | tail -n1) && [ -n "$summary" ]; then
	passed=$((passed + $(echo "$summary" | awk '{print $1}')))
	failed=$((failed + $(echo "$summary" | awk '{print $3}')))
else
	not_ok "the guest run printed no summary"
fi

# 4. dkms remove.
log "4. dkms remove"
run "dkms remove $pkg/$version --all" dkms_root dkms remove "$pkg/$version" --all || finish
check "dkms remove: the module is gone from lib/modules/$kver/updates/dkms/" \
	test ! -e "$dmdir/updates/dkms/vfio_pci_rs.ko"
check "dkms remove: depmod's modules.dep no longer lists it" \
	sh -c '! grep -q vfio_pci_rs "$1" && grep -q "^kernel/drivers/vfio/pci/vfio-pci.ko:" "$1"' sh "$dmdir/modules.dep"
finish
