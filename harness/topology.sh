# shellcheck shell=bash
# The emulated host's PCIe topologies, declared once. Each entry is
#   NAME  ROOT-PORT-DEVFN  QEMU-ARGS...
# The harness adds the QEMU arguments to every guest and writes "NAME 0000:00:DEVFN" lines to
# the guest's /etc/vfio-pci-rs/topology, from which the tests find the functions below each
# port. Root ports run at 2.5 GT/s x1: at the default 16 GT/s the kernel waits after a
# secondary bus reset for a Data Link Layer Link Active that QEMU never raises again, and
# every bus reset fails.

rp() { # rp ID DEVFN CHASSIS [extra properties]: a slow, hotplug-capable root port on pcie.0
	echo "-device pcie-root-port,id=$1,bus=pcie.0,addr=$2,chassis=$3,slot=$3,x-speed=2_5,x-width=1${4:+,$4}"
}

TOPOLOGIES=(
	# One function behind a hotplug-capable root port: pciehp owns the slot, slot reset.
	# (The QEMU ids ep_slot and ep_sriov name the functions tests/src/aer.rs injects AER
	# errors into, through QEMU's monitor.)
	"slot 02.0 $(rp rp_slot 02.0 1) -device e1000e,id=ep_slot,bus=rp_slot,addr=00.0"
	# A 2-function device behind a root port without hotplug: bus reset, shared dev_set.
	"multifunction 03.0 $(rp rp_multi 03.0 2 hotplug=off) -device e1000e,bus=rp_multi,addr=00.0,multifunction=on -device e1000e,bus=rp_multi,addr=00.1"
	# A function behind a switch downstream port.
	"switch 04.0 $(rp rp_switch 04.0 3) -device x3130-upstream,id=sw_up,bus=rp_switch -device xio3130-downstream,id=sw_down0,bus=sw_up,chassis=4,slot=4 -device e1000e,bus=sw_down0,addr=00.0"
	# igb, an SR-IOV physical function (VFs appear on its bus when enabled).
	"sriov 05.0 $(rp rp_sriov 05.0 5) -device igb,id=ep_sriov,bus=rp_sriov,addr=00.0"
	# A 2-function igb (82576) behind a root port without hotplug: the kernel's ACS quirk for
	# multi-function 82576 endpoints puts each function in its own IOMMU group, so one bus
	# reset spans two groups. (QEMU's igb advertises ARI with no next function, which hides
	# function 1: the guest boots with pci=noari.)
	"multigroup 06.0 $(rp rp_mgroup 06.0 6 hotplug=off) -device igb,bus=rp_mgroup,addr=00.0,multifunction=on -device igb,bus=rp_mgroup,addr=00.1"
	# A 4-function e1000e behind a root port without hotplug: the largest reset set (bus).
	"quad 08.0 $(rp rp_quad 08.0 8 hotplug=off) -device e1000e,bus=rp_quad,addr=00.0,multifunction=on -device e1000e,bus=rp_quad,addr=00.1 -device e1000e,bus=rp_quad,addr=00.2 -device e1000e,bus=rp_quad,addr=00.3"
	# A conventional PCI function (QEMU's OHCI) whose memory BAR0 is 256 bytes, alone in its
	# root port's window, so the BAR starts a page: the sub-page BAR mmap case.
	"subpage 09.0 $(rp rp_subpage 09.0 9) -device pci-ohci,bus=rp_subpage,addr=00.0"
	# QEMU's ivshmem-plain (conventional PCI) whose 64-bit prefetchable BAR2 is its 8 MiB memory
	# backend, naturally aligned: huge (PMD) mappings of a BAR (tests/src/huge_map.rs).
	"hugebar 0e.0 $(rp rp_huge 0e.0 14) -object memory-backend-ram,id=hugemem,size=8M -device ivshmem-plain,memdev=hugemem,bus=rp_huge,addr=00.0"
	# The same with a 1 GiB backend: PUD mappings. The backend's host memory is allocated only
	# where the guest writes (the scenarios write a few words).
	"hugebar1g 0f.0 $(rp rp_huge1g 0f.0 15) -object memory-backend-ram,id=hugemem1g,size=1G -device ivshmem-plain,memdev=hugemem1g,bus=rp_huge1g,addr=00.0"
	# QEMU's standard VGA (1234:1111, a conventional PCI VGA-class function with its 16 MiB
	# framebuffer BAR) behind a hotplug root port: the boot VGA device (the firmware routes the
	# legacy VGA ranges to it through the port's VGA Enable). Only the VGA scenarios
	# (tests/src/vga.rs) run on it. A second standard VGA behind the next port, bound to nothing
	# and not the boot VGA device (SeaBIOS picks the first), is the other VGA function whose
	# removal and return make the arbiter call the decode callbacks (vga_decode_callback).
	"vga 0b.0 $(rp rp_vga 0b.0 11) -device VGA,bus=rp_vga,addr=00.0 $(rp rp_vga2 0c.0 12) -device VGA,bus=rp_vga2,addr=00.0"
	# An integrated endpoint on the root bus: no slot or bus reset can reach it. Its "port"
	# is the function itself.
	"rootbus 07.0 -device e1000e,bus=pcie.0,addr=07.0"
)

# The benchmark's own topologies, in its guest only (TOPOLOGY_BENCH=1, set by scripts/guest.sh
# in bench mode): the tests never see them.
BENCH_TOPOLOGIES=(
	# An NVMe controller (no namespace, no guest driver): 65 MSI-X vectors, for SET_IRQS with
	# 32 of them.
	"vectors 0d.0 $(rp rp_vectors 0d.0 13) -device nvme,serial=vfio-pci-rs-bench,bus=rp_vectors,addr=00.0"
)

# topology_entries: the topologies of this guest, one entry per line.
topology_entries() {
	printf '%s\n' "${TOPOLOGIES[@]}"
	[ "${TOPOLOGY_BENCH:-0}" = 1 ] && printf '%s\n' "${BENCH_TOPOLOGIES[@]}"
	return 0
}

# topology_qemu_args: every topology's QEMU arguments, one word per line.
topology_qemu_args() {
	local entry
	while IFS= read -r entry; do
		# shellcheck disable=SC2086
		set -- $entry
		shift 2
		printf '%s\n' "$@"
	done < <(topology_entries)
}

# topology_guest_file: the guest's topology file.
topology_guest_file() {
	local entry
	while IFS= read -r entry; do
		# shellcheck disable=SC2086
		set -- $entry
		echo "$1 0000:00:$2"
	done < <(topology_entries)
}
