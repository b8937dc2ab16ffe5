#!/bin/sh
# Run in the guest by scripts/install-test.sh (scripts/guest.sh run): the guest's
# /lib/modules/RELEASE is the tree DKMS installed into, so the module is found by name
# through the modules.dep depmod wrote there.  Checks what modinfo says of it, loads it with
# modprobe, binds the function behind the hotplug root port to it and opens that function
# both ways (the demo: cdev + iommufd, group + container, its ioctls answered), unbinds and
# unloads it with modprobe -r; then the suite's module cases (its KUnit suites and
# module_load_unload) with that same installed file.  Ends with "N passed, N failed".
pass=0
fail=0
ok() { echo "ok - $1"; pass=$((pass + 1)); }
not_ok() { echo "not ok - $1"; fail=$((fail + 1)); }
check() {
	what=$1
	shift
	if "$@"; then ok "$what"; else not_ok "$what"; fi
}

kver=$(uname -r)
dir=/lib/modules/$kver
installed=$dir/updates/dkms/vfio_pci_rs.ko
echo "# kernel $kver"

check "modules.dep lists updates/dkms/vfio_pci_rs.ko" grep -q '^updates/dkms/vfio_pci_rs.ko:' "$dir/modules.dep"
info=$(modinfo vfio_pci_rs 2>&1)
echo "$info" | sed 's/^/# modinfo: /'
field() { echo "$info" | sed -n "s/^$1: *//p" | head -n1; }
check "modinfo vfio_pci_rs finds $installed" test "$(field filename)" = "$installed"
check "modinfo: vermagic is for $kver" test "$(field vermagic | cut -d' ' -f1)" = "$kver"
check "modinfo: license GPL, its description, vfio-pci's parameters, the vfio_pci: alias" \
	sh -c 'echo "$1" | grep -q "^license: *GPL$" && echo "$1" | grep -q "^description: *VFIO PCI driver in Rust" &&
		for p in ids enable_sriov nointxmask disable_vga disable_denylist; do
			echo "$1" | grep -q "^parm: *$p:" || exit 1
		done && echo "$1" | grep -qx "alias: *vfio_pci:v\*d\*sv\*sd\*bc\*sc\*i\*"' sh "$info"

check "modinfo: depends on irqbypass (its IRQ bypass producers), which modprobe loads first" \
	sh -c 'echo "$1" | grep -Eq "^depends: *(.*,)?irqbypass(,|$)"' sh "$info"

check "modprobe vfio_pci_rs" modprobe vfio_pci_rs
check "the module and its PCI driver are registered" \
	test -d /sys/module/vfio_pci_rs -a -d /sys/bus/pci/drivers/vfio-pci-rs

port=$(awk '$1 == "slot" { print $2 }' /etc/vfio-pci-rs/topology)
bdf=$(basename "$(ls -d /sys/bus/pci/devices/$port/[0-9a-f][0-9a-f][0-9a-f][0-9a-f]:[0-9a-f][0-9a-f]:[0-9a-f][0-9a-f].[0-7] | head -n1)")
dev=/sys/bus/pci/devices/$bdf
echo "# binding $bdf ($(cat $dev/vendor):$(cat $dev/device)) to vfio-pci-rs"
echo vfio-pci-rs > "$dev/driver_override"
echo "$bdf" > /sys/bus/pci/drivers_probe
check "$bdf is bound to vfio-pci-rs" test "$(basename "$(readlink $dev/driver)")" = vfio-pci-rs
check "the demo opens $bdf through cdev + iommufd and through its group" /bin/vfio-pci-rs-tests --demo "$bdf"
echo "$bdf" > "$dev/driver/unbind"
echo > "$dev/driver_override"
# busybox's modprobe -r also removes the module's dependencies, and exits 1 when one is in use:
# irqbypass is (by vfio-pci-core and the test consumer), and stays.
check "modprobe -r vfio_pci_rs (irqbypass, in use by vfio-pci, stays)" \
	sh -c 'modprobe -r vfio_pci_rs; test ! -d /sys/module/vfio_pci_rs -a -d /sys/module/irqbypass'
check "the module is gone" test ! -d /sys/module/vfio_pci_rs

# The vfio_pci: alias in depmod's modules.alias, and what libvirt's VFIO-variant lookup asks of
# it: the function's modalias with its "pci:" prefix made "vfio_pci:", resolved by libkmod.
alias_line='alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci_rs'
check "modules.alias has '$alias_line', as vfio_pci's" \
	sh -c 'grep -qxF "$1" "$2" && grep -qxF "alias vfio_pci:v*d*sv*sd*bc*sc*i* vfio_pci" "$2"' sh "$alias_line" "$dir/modules.alias"

# driverctl (Debian's package) is a bash script that needs bash, coreutils and kmod's modprobe,
# none of which the initramfs's busybox has: it runs from the toolchain root's /usr (shared
# over 9p by scripts/guest.sh) in a chroot whose /lib/modules is this guest's tree (so its
# modprobe finds vfio_pci_rs by name, through depmod's files, as on a host) and whose /etc is
# a tmpfs (driverctl saves overrides in /etc/driverctl.d). There is no udev in the guest;
# set-override and unset-override do not need it (driverctl's udev rule only re-applies saved
# overrides when a device is added).
croot=/tmp/driverctl-root
mkdir -p $croot/usr $croot/proc $croot/sys $croot/dev $croot/etc $croot/tmp
for l in bin sbin lib lib64; do ln -sf usr/$l $croot/$l; done
mount -t 9p -o trans=virtio,version=9p2000.L,ro toolusr $croot/usr &&
	mount --bind /lib/modules $croot/usr/lib/modules && mount -t proc proc $croot/proc &&
	mount -t sysfs sysfs $croot/sys && mount --bind /dev $croot/dev && mount -t tmpfs tmpfs $croot/etc &&
	mount -t tmpfs tmpfs $croot/tmp
in_chroot() { chroot $croot /usr/bin/env -i PATH=/usr/sbin:/usr/bin "$@"; }
check "driverctl is in the shared toolchain root" test -x $croot/usr/sbin/driverctl
resolved=$(in_chroot modprobe -R "vfio_$(cat $dev/modalias)" 2>&1 | sort | paste -sd' ')
check "libkmod resolves vfio_$(cat $dev/modalias) to vfio_pci and vfio_pci_rs ($resolved)" \
	test "$resolved" = "vfio_pci vfio_pci_rs"
# The native driver, so that unset-override has a driver to give the function back to.
modprobe e1000e
settle() { i=0; while [ $i -lt 20 ] && [ "$(basename "$(readlink $dev/driver)")" != "$1" ]; do usleep 100000; i=$((i + 1)); done; }
settle e1000e
echo "# $bdf is bound to $(basename "$(readlink $dev/driver)") before driverctl"
for drv in vfio-pci vfio-pci-rs; do
	check "driverctl set-override $bdf $drv" in_chroot driverctl set-override "$bdf" "$drv"
	check "$bdf is bound to $drv, driver_override $drv" \
		test "$(basename "$(readlink $dev/driver)")" = "$drv" -a "$(cat $dev/driver_override)" = "$drv"
	check "driverctl list-overrides: '$bdf $drv'" sh -c 'chroot "$1" /usr/sbin/driverctl list-overrides | grep -qx "$2 $3"' sh $croot "$bdf" "$drv"
	check "driverctl list-persisted: '$bdf $drv'" sh -c 'chroot "$1" /usr/sbin/driverctl list-persisted | grep -qx "$2 $3"' sh $croot "$bdf" "$drv"
	check "the $drv module was found by name (driverctl modprobes $drv; /sys/module/$(echo $drv | tr - _) is there)" \
		test -d /sys/module/$(echo $drv | tr - _)
	# driverctl also writes the function's ID to vfio-pci's new_id (for kernels before
	# driver_override): take it back, or unset-override would hand the function to vfio-pci.
	[ "$drv" = vfio-pci ] && echo "$(cat $dev/vendor) $(cat $dev/device)" | sed 's/0x//g' > /sys/bus/pci/drivers/vfio-pci/remove_id
	check "driverctl unset-override $bdf (after $drv)" in_chroot driverctl unset-override "$bdf"
	settle e1000e
	check "$bdf is back with e1000e, driver_override (null), nothing persisted" \
		sh -c 'test "$(basename "$(readlink $1/driver)")" = e1000e -a "$(cat $1/driver_override)" = "(null)" -a -z "$(chroot "$2" /usr/sbin/driverctl list-persisted)"' sh $dev $croot
done
echo "$bdf" > "$dev/driver/unbind"
modprobe -r e1000e
modprobe -r vfio_pci_rs
check "vfio_pci_rs unloaded after driverctl" test ! -d /sys/module/vfio_pci_rs

# The suite's own module cases, loading the installed file: its KUnit suites (they run at
# every load until the suite has read them once) and module_load_unload.  Their summary lines are not ours.
for f in kunit/ module_load_unload; do
	out=$(VFIO_PCI_RS_KO=$installed /bin/vfio-pci-rs-tests --filter "$f" 2>&1)
	rc=$?
	echo "$out" | grep -vE '^[0-9]+ passed, [0-9]+ failed' | sed 's/^/# suite: /'
	check "the suite's $f cases pass with $installed ($(echo "$out" | tail -n1))" test "$rc" = 0
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
