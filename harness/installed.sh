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
check "modinfo: license GPL, its description, the ids and enable_sriov parameters" \
	sh -c 'echo "$1" | grep -q "^license: *GPL$" && echo "$1" | grep -q "^description: *VFIO PCI driver in Rust" &&
		echo "$1" | grep -q "^parm: *ids:" && echo "$1" | grep -q "^parm: *enable_sriov:"' sh "$info"

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
