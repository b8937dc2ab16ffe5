#!/usr/bin/env bash
# Boots the emulated host (QEMU q35, TCG, intel-iommu with interrupt remapping, the PCIe
# topologies of harness/topology.sh) with a fresh initramfs holding the test kernel's modules,
# vfio_pci_rs.ko, the test-only modules of tests/modules, the test binary and harness/init, and
# runs one mode in it:
#
#   scripts/guest.sh tests [FILTER]   run the in-guest test suite (KTAP), optionally filtered
#   scripts/guest.sh demo             bind a function and open it both ways
#   scripts/guest.sh bench            the benchmark: vfio-pci-rs against vfio-pci, same boot
#   scripts/guest.sh run SCRIPT       run a shell script of yours in the guest (debugging)
#   scripts/guest.sh shell            interactive busybox shell (needs a terminal)
#
# The test kernel is the one VFIO_PCI_RS_KERNEL selects (7.2 or 7.3, see scripts/common.sh).
#
# The guest's output (ttyS1) is printed; the kernel console (ttyS0) is kept in the log
# directory and scanned: any WARN, BUG, Oops, lockdep report, sleep-in-atomic, RCU stall or
# hung task fails the run, as does a guest that does not finish within
# VFIO_PCI_RS_GUEST_TIMEOUT seconds (default 900; 10800 on the kasan kernel, whose cases get
# VFIO_PCI_RS_CASE_TIMEOUT seconds each, default 1200, where the test program allows 120).
#
# The toolchain root's /usr is shared read-only over 9p (mount tag "toolusr": QEMU, its
# libraries and firmware), so the clients cases can run QEMU itself in the guest against a
# passed-through function; /opt/vfio-selftests holds the kernel tree's VFIO selftests
# (scripts/clients.sh).
#
# An unfiltered `tests` run boots VFIO_PCI_RS_GUEST_SHARDS guests at once (default two per core,
# at most four, on a machine with 2 or more cores), each running a share of the scenarios; their
# counts are summed into the one closing line.
#
# The noiommu guest boots without intel-iommu (no `-device intel-iommu`, no `intel_iommu=on`)
# and with VFIO's `vfio.enable_unsafe_noiommu_mode=1`; it runs only the noiommu cases
# (tests/src/noiommu.rs), which the other guests never run. An unfiltered `tests` run boots
# one more guest for them; a filter containing "noiommu" boots only that one, and
# VFIO_PCI_RS_GUEST_NOIOMMU=1 boots it in the other modes (run, shell, demo).
#
# VFIO_PCI_RS_GUEST_APPEND="ARGS" adds ARGS to every guest's kernel command line (debugging;
# for example vga=0x314 in the run mode).
#
# VFIO_PCI_RS_MODULE=FILE puts that vfio_pci_rs.ko into the guest instead of building the
# checkout's, and VFIO_PCI_RS_MODROOT=DIR gives the guest DIR/lib/modules/RELEASE (an installed
# module tree: the kernel's modules plus vfio_pci_rs.ko where an install put it, and depmod's
# files) instead of the test kernel's own modules: scripts/install-test.sh boots the guest with
# the module DKMS installed.
#
# VFIO_PCI_RS_GUEST_ICOUNT=shift=0,sleep=off makes guest time count instructions (for
# repeatable benchmarks).
#
# Two vCPUs (VFIO_PCI_RS_GUEST_SMP to change it; the benchmark's guest keeps one, so its
# instruction counts stay comparable), run by one TCG thread in turn (`-accel tcg,thread=single`;
# VFIO_PCI_RS_GUEST_ACCEL to change it). With one host thread per vCPU (multi-threaded TCG, QEMU's
# default) the guest froze in secondary bus resets: the reproducer (repeated reset_subordinate of
# the 2-function e1000e's root port, no driver bound) stopped CPU 0's timer interrupts within
# 150-200 resets, RCU then reporting "timer wakeup didn't happen" with CPU 0 idle; the same
# number of plain sleeps did not. Single-threaded TCG still runs both vCPUs' code, interleaved by
# the emulator (a lock holder can lose its CPU to the other vCPU mid-critical-section, which one
# vCPU never shows), and did not freeze in 50 back-to-back runs of the reproducer
# (Documentation/testing.rst, "Two vCPUs"). VFIO_PCI_RS_GUEST_CPU sets -cpu, VFIO_PCI_RS_GUEST_QEMU
# the QEMU binary (both for such experiments).

. "$(dirname "$0")/common.sh"
. "$REPO/harness/topology.sh"

mode=${1:-tests}
filter=${2:-}
# The benchmark's guest also has the bench-only topologies (harness/topology.sh).
[ "$mode" = bench ] && TOPOLOGY_BENCH=1
# The memory-debugging kernel (KASAN, kmemleak) runs the same guests 5 to 10 times as slowly
# (session 12, eight guests on two cores: slot/irq_msi_cycles 8.4 s on the test kernel, 83 s
# there), so its guests get 3 hours and each case 20 minutes instead of the test program's 120 s.
#
# Its guests' CPU has no 5-level paging (LA57). With it, a KASAN kernel reports a false
# "wild-memory-access in do_raw_spin_lock" in about one boot in five: identify_cpu() clears the
# boot CPU's capability words before it reads CPUID again, with interrupts on and before the
# alternatives are patched, so an interrupt in between sees pgtable_l5_enabled() false,
# KASAN_SHADOW_START moves to the 4-level layout's and the 5-level direct-map address of the
# IRQ descriptor's lock falls below it (reported upstream in June 2026, "kasan: Fix
# false-positive wild-memory-access on x86 under 5-level paging"; still so in 7.3). Measured in
# session 14 (Documentation/testing.rst, "The early-boot KASAN report").
default_timeout=900
case_timeout=
default_cpu=max
if [ "$KERNEL_FLAVOUR" = kasan ]; then
	default_timeout=10800
	case_timeout=1200
	default_cpu=max,-la57
fi
timeout_s=${VFIO_PCI_RS_GUEST_TIMEOUT:-$default_timeout}
case_timeout=${VFIO_PCI_RS_CASE_TIMEOUT:-$case_timeout}
default_smp=2
[ "$mode" = bench ] && default_smp=1
smp=${VFIO_PCI_RS_GUEST_SMP:-$default_smp}

KDIR=$("$REPO/scripts/kernel.sh")
kver=$(cat "$KDIR/include/config/kernel.release")

# Kernel modules, installed once per kernel build (unless VFIO_PCI_RS_MODROOT gives a tree).
modroot=${VFIO_PCI_RS_MODROOT:-$MODROOT}
if [ -n "${VFIO_PCI_RS_MODROOT:-}" ]; then
	[ -d "$modroot/lib/modules/$kver" ] || die "VFIO_PCI_RS_MODROOT=$modroot has no lib/modules/$kver"
elif [ ! -f "$modroot/.stamp" ] || [ "$(cat "$modroot/.stamp")" != "$(cat "$KDIR/.vfio-pci-rs-stamp")" ]; then
	log "installing the test kernel's modules"
	rm -rf "$modroot"
	(cd "$KDIR" && in_root make -s LLVM=1 INSTALL_MOD_PATH="$modroot" modules_install >/dev/null)
	cp "$KDIR/.vfio-pci-rs-stamp" "$modroot/.stamp"
fi

module=${VFIO_PCI_RS_MODULE:-}
if [ -n "$module" ]; then
	[ -f "$module" ] || die "VFIO_PCI_RS_MODULE=$module does not exist"
	log "vfio_pci_rs.ko: $module"
else
	log "building vfio_pci_rs.ko"
	(cd "$REPO" && kbuild_ext "$REPO" -s modules) >&2
	module=$REPO/vfio_pci_rs.ko
fi

# The test-only kernel modules (tests/modules), into the guest's /lib/modules/tests/.
log "building the test modules"
(cd "$REPO/tests/modules" && kbuild_ext "$REPO/tests/modules" -s modules) >&2

log "building the in-guest test binaries"
# One target directory per checkout (VFIO_PCI_RS_TESTS_TARGET), so that two checkouts
# building at once never swap binaries; by default one per kernel (common.sh). The crates
# are fetched once into the cache, the build is offline (scripts/tests-build.sh).
tests_target=$TESTS_TARGET
tests_out=$tests_target/x86_64-unknown-linux-gnu/release # what tests-build.sh prints
if ! "$REPO/scripts/tests-build.sh" "$tests_target" -q > /dev/null; then
	[ "$mode" = run ] || die "the test binary does not build"
	rm -f "$tests_out/vfio-pci-rs-tests" "$tests_out/vfio-ioctls-client"
fi
tests_bin=$tests_out/vfio-pci-rs-tests

# The real clients: the kernel tree's VFIO selftests (static binaries, into the initramfs).
# A failed build does not stop the run: the clients cases then report the binaries missing.
clients_bin=
if ! clients_bin=$(KDIR=$KDIR "$REPO/scripts/clients.sh"); then
	log "the VFIO selftests did not build; the clients cases will fail"
	clients_bin=
fi

# The initramfs.
# One directory per run, so concurrent runs (two checkouts) never share one; runs older than
# a day go (never one that may still be running).
mkdir -p "$WORK/runs"
run=$(mktemp -d "$WORK/runs/$mode.$(date +%Y%m%d-%H%M%S).XXXX")
find "$WORK/runs" -mindepth 1 -maxdepth 1 -type d -mmin +1440 -exec rm -rf {} +
mkdir -p "$run/initramfs"/{bin,etc/vfio-pci-rs,lib/modules} "$run/logs"
ir=$run/initramfs
cp "$ROOT/usr/bin/busybox" "$ir/bin/busybox"
ln -s busybox "$ir/bin/sh"
cp "$REPO/harness/init" "$ir/init"
cp "$REPO/harness/demo.sh" "$ir/bin/demo.sh"
cp -a "$modroot/lib/modules/$kver" "$ir/lib/modules/"
cp "$module" "$ir/lib/modules/vfio_pci_rs.ko"
mkdir -p "$ir/lib/modules/tests"
cp "$REPO"/tests/modules/*.ko "$ir/lib/modules/tests/"
[ -f "$tests_bin" ] && cp "$tests_bin" "$ir/bin/vfio-pci-rs-tests"
# The vfio-ioctls client, next to the test program that runs it (tests/src/vmm_client.rs).
[ -f "$tests_out/vfio-ioctls-client" ] && cp "$tests_out/vfio-ioctls-client" "$ir/bin/vfio-ioctls-client"
if [ -n "$clients_bin" ]; then
	mkdir -p "$ir/opt/vfio-selftests"
	cp "$clients_bin"/* "$ir/opt/vfio-selftests/"
fi
if [ "$mode" = run ]; then
	cp "$filter" "$ir/bin/run.sh"
	filter=
fi
topology_guest_file > "$ir/etc/vfio-pci-rs/topology"
(cd "$ir" && find . | in_root cpio -o -H newc --quiet) > "$run/initramfs.cpio"

mapfile -t topo_args < <(topology_qemu_args)
# no_timer_check: the boot-time test that the IO-APIC timer ticks is timing-dependent and
# panics a TCG guest whose host is loaded ("timer doesn't work through Interrupt-remapped
# IO-APIC", seen once at load average 7); virtual machines' kernels skip it for that reason.
append="console=ttyS0 panic=-1 no_timer_check pci=noari ignore_loglevel harness=$mode"
[ -n "$filter" ] && append+=" harness.filter=$filter"
[ -n "$case_timeout" ] && append+=" harness.case_timeout=$case_timeout"
[ -n "${VFIO_PCI_RS_GUEST_APPEND:-}" ] && append+=" $VFIO_PCI_RS_GUEST_APPEND"

# The suite runs in SHARDS guests at once, each with the same topology and an interleaved
# share of the scenarios (the test binary's --shard K/N): two per host core, at most four.
# TCG runs a one-vCPU guest on one thread, and a guest spends much of its time asleep in
# resets: on the 2-core machine the guests ran 299 s with two, 248 s with four (1.5 cores busy).
# A filtered run, or a machine with one core, uses one guest.
shards=${VFIO_PCI_RS_GUEST_SHARDS:-}
if [ -z "$shards" ]; then
	shards=1
	cores=$(nproc)
	[ "$mode" = tests ] && [ -z "$filter" ] && [ "$cores" -ge 2 ] && shards=$((2 * cores > 4 ? 4 : 2 * cores))
fi
[ "$mode" = tests ] || shards=1
case "$shards" in '' | *[!0-9]* | 0) die "VFIO_PCI_RS_GUEST_SHARDS=$shards: need a number >= 1" ;; esac

# The framebuffer guests alone: a filtered run whose filter names their case ("framebuffer").
# Two boots, one per driver (tests/src/framebuffer.rs: the removal of the boot framebuffer
# happens once per boot), in the BIOS's 640x480 16-colour mode (vga=0x112: the boot setup code
# sets BIOS mode 0x12), the only kind of mode vga16fb takes; the harness compares their
# transcripts below.
only_framebuffer=0
[ "$mode" = tests ] && [[ "$filter" == *framebuffer* ]] && only_framebuffer=1

# The noiommu guest alone: a filtered run whose filter names it, or VFIO_PCI_RS_GUEST_NOIOMMU=1.
only_noiommu=${VFIO_PCI_RS_GUEST_NOIOMMU:-0}
[ "$mode" = tests ] && [[ "$filter" == *noiommu* ]] && only_noiommu=1
# The AER guest alone: a filtered run whose filter names its cases ("aer_"). Its cases run in
# a boot of their own (tests/src/main.rs, `--aer`, says why).
only_aer=0
[ "$mode" = tests ] && [[ "$filter" == *aer_* ]] && only_aer=1

# boot_once DIR APPEND [noiommu]: one guest, its console in DIR/console.log, its output (ttyS1)
# in DIR/output.log (or the terminal in shell mode), QEMU's exit status in DIR/qemu_rc; with
# "noiommu", the noiommu guest.
# Its third serial port (ttyS2) is the guest's request channel to QEMU's monitor: the relay
# scripts/monitor-relay.py joins the two sockets (DIR/req.sock, DIR/qmp.sock), so a test can
# have QEMU inject an AER error (tests/src/aer.rs); its log is DIR/relay.log. Every guest has
# its own sockets, so sharded guests never share them.
# A frozen guest: with two vCPUs under TCG, a guest whose timer interrupts stopped (the
# freeze Documentation/testing.rst, "Two vCPUs", describes; seen again in session 13, a kasan
# shard silent at boot for 20 minutes, just before "clocksource: Switched to clocksource
# tsc-early", both vCPUs still spinning). In the tests and demo modes with more than one vCPU,
# init logs a heartbeat every $heartbeat_s seconds from a timer sleep (harness.heartbeat), and a
# watch on the host counts a guest frozen when its console stays silent for
# VFIO_PCI_RS_GUEST_SILENCE seconds (default 600; 0: no watch). It is killed, its logs moved
# to DIR/frozen-attempt (DIR/frozen there says after which console line), and booted once more;
# the summary reports it, and a second freeze fails the run.
heartbeat_s=30
silence_s=${VFIO_PCI_RS_GUEST_SILENCE:-600}
case "$silence_s" in '' | *[!0-9]*) die "VFIO_PCI_RS_GUEST_SILENCE=$silence_s: need a number of seconds" ;; esac
watch=0
if [ "$silence_s" -gt 0 ] && [ "$smp" -gt 1 ] && { [ "$mode" = tests ] || [ "$mode" = demo ]; }; then
	watch=1
	append+=" harness.heartbeat=$heartbeat_s"
fi

# watch_silence DIR: kills the guest of DIR (its QEMU, found by its monitor socket's path) once
# its console has not grown for $silence_s seconds, writing why to DIR/frozen.
watch_silence() {
	local dir=$1 size last=-1 quiet=0 step=15
	while sleep "$step"; do
		size=$(stat -c %s "$dir/console.log" 2> /dev/null || echo 0)
		if [ "$size" != "$last" ]; then
			last=$size quiet=0
			continue
		fi
		quiet=$((quiet + step))
		if [ "$quiet" -ge "$silence_s" ]; then
			echo "console silent for $quiet s after: $(tail -n1 "$dir/console.log" 2> /dev/null | tr -d '\r')" > "$dir/frozen"
			pkill -TERM -f "unix:$dir/qmp.sock," || true
			return
		fi
	done
}

# boot_guest DIR APPEND [noiommu]: boot_once, and once more if the watch found it frozen.
boot_guest() {
	local dir=$1
	boot_once "$@"
	if [ -f "$dir/frozen" ]; then
		rm -rf "$dir/frozen-attempt"
		mkdir -p "$dir/frozen-attempt"
		for f in console.log output.log relay.log qemu_rc frozen; do
			if [ -e "$dir/$f" ]; then mv "$dir/$f" "$dir/frozen-attempt/"; fi
		done
		log "guest ${dir##*/} froze ($(cat "$dir/frozen-attempt/frozen")): booting it again, once"
		boot_once "$@"
	fi
}

boot_once() {
	local dir=$1 extra=$2 serial_out="file:$1/output.log" rc relay qemu watcher
	local iommu=(-device intel-iommu,intremap=on,caching-mode=on)
	extra=" intel_iommu=on$extra"
	if [ "${3:-}" = noiommu ]; then
		iommu=()
		extra=" vfio.enable_unsafe_noiommu_mode=1 harness.noiommu=1${2}"
	fi
	mkdir -p "$dir"
	rm -f "$dir/qemu_rc"
	[ "$mode" = shell ] && serial_out=stdio
	in_root python3 "$REPO/scripts/monitor-relay.py" "$dir/req.sock" "$dir/qmp.sock" "$dir/qemu_rc" \
		2> "$dir/relay.log" &
	relay=$!
	set +e
	in_root timeout --kill-after=10 "$timeout_s" "${VFIO_PCI_RS_GUEST_QEMU:-qemu-system-x86_64}" \
		-M q35,kernel-irqchip=split -accel "${VFIO_PCI_RS_GUEST_ACCEL:-tcg,thread=single}" -cpu "${VFIO_PCI_RS_GUEST_CPU:-$default_cpu}" -smp "$smp" -m 1G \
		${VFIO_PCI_RS_GUEST_ICOUNT:+-icount "$VFIO_PCI_RS_GUEST_ICOUNT"} \
		-nodefaults -display none -no-reboot -monitor none \
		-qmp "unix:$dir/qmp.sock,server=on,wait=off" \
		-chardev "socket,id=requests,path=$dir/req.sock,server=on,wait=off" \
		-serial "file:$dir/console.log" -serial "$serial_out" -serial chardev:requests \
		-global ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off \
		"${iommu[@]}" \
		"${topo_args[@]}" \
		-fsdev local,id=toolusr,path=/usr,security_model=none,readonly=on \
		-device virtio-9p-pci,fsdev=toolusr,mount_tag=toolusr,bus=pcie.0,addr=0a.0 \
		-kernel "$KDIR/arch/x86/boot/bzImage" -initrd "$run/initramfs.cpio" \
		-append "$append$extra" < /dev/null &
	qemu=$!
	watcher=
	if [ "$watch" = 1 ]; then
		watch_silence "$dir" &
		watcher=$!
	fi
	wait "$qemu"
	rc=$?
	if [ -n "$watcher" ]; then
		kill "$watcher" 2> /dev/null
		wait "$watcher" 2> /dev/null
	fi
	echo "$rc" > "$dir/qemu_rc"
	# The relay ends when QEMU closes its sockets, or sees qemu_rc if it never reached them.
	wait "$relay"
	set -e
}

log "booting $shards guest(s) ($mode, $smp vCPU(s), timeout ${timeout_s}s, logs in $run/logs)"
t0=$(date +%s)
guest_dirs=()
if [ $((only_noiommu + only_aer + only_framebuffer)) -gt 1 ]; then
	die "a filter names more than one of the noiommu, AER and framebuffer cases: run them one at a time"
elif [ "$only_framebuffer" = 1 ]; then
	guest_dirs=("$run/logs/framebuffer-vfio-pci" "$run/logs/framebuffer-vfio-pci-rs")
	boot_guest "$run/logs/framebuffer-vfio-pci" " harness.framebuffer=vfio-pci vga=0x112" &
	pid=$!
	boot_guest "$run/logs/framebuffer-vfio-pci-rs" " harness.framebuffer=vfio-pci-rs vga=0x112"
	wait "$pid" || true
elif [ "$only_noiommu" = 1 ]; then
	guest_dirs=("$run/logs")
	boot_guest "$run/logs" "" noiommu
elif [ "$only_aer" = 1 ]; then
	guest_dirs=("$run/logs")
	boot_guest "$run/logs" " harness.aer=1"
elif [ "$shards" = 1 ] && { [ "$mode" != tests ] || [ -n "$filter" ]; }; then
	guest_dirs=("$run/logs")
	boot_guest "$run/logs" ""
else
	pids=()
	for ((k = 0; k < shards; k++)); do
		guest_dirs+=("$run/logs/shard$k")
		boot_guest "$run/logs/shard$k" " harness.shard=$k/$shards" &
		pids+=($!)
	done
	# The unfiltered suite's noiommu cases: one more, short guest.
	guest_dirs+=("$run/logs/noiommu")
	boot_guest "$run/logs/noiommu" "" noiommu &
	pids+=($!)
	# And the AER cases: one more guest, of the normal kind.
	guest_dirs+=("$run/logs/aer")
	boot_guest "$run/logs/aer" " harness.aer=1" &
	pids+=($!)
	# And the framebuffer cases: two short guests, one per driver.
	for d in vfio-pci vfio-pci-rs; do
		guest_dirs+=("$run/logs/framebuffer-$d")
		boot_guest "$run/logs/framebuffer-$d" " harness.framebuffer=$d vga=0x112" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p" || true; done
fi
log "guest(s) ran $(( $(date +%s) - t0 )) s (qemu exit $(cat "${guest_dirs[@]/%//qemu_rc}" | paste -sd' '))"

[ "$mode" = shell ] && exit 0
summary_re='^[0-9]+ passed, [0-9]+ failed'
splats='WARNING:|BUG:|Oops|general protection fault|Kernel panic|KASAN|UBSAN|DEBUG_LOCKS_WARN_ON|sleeping function called from invalid context|detected stall|blocked for more than|soft lockup|hard LOCKUP|INFO: trying to register non-static key|refcount_t: |list_(add|del) corruption|lockdep is turned off|circular locking|possible recursive locking|inconsistent lock state'

# Each guest's output, its problems (exit, time, dmesg) and its counts; the closing line sums
# the guests' counts plus one line for the harness's own check of all of them.
passed=0 failed=0
problems=()
for dir in "${guest_dirs[@]}"; do
	name=
	[ ${#guest_dirs[@]} = 1 ] || name="${dir##*/} of ${#guest_dirs[@]} guests: "
	[ ${#guest_dirs[@]} = 1 ] || echo "# ---- ${dir##*/} (of ${#guest_dirs[@]} guests): $dir"
	output=$dir/output.log
	# The serial line ends lines with CR LF.
	[ -f "$output" ] && sed -i 's/\r$//' "$output"
	touch "$output"
	grep -av '^HARNESS: ' "$output" | grep -avE "$summary_re" || true

	if [ -f "$dir/frozen" ]; then
		problems+=("${name}the guest froze twice: $(cat "$dir/frozen")")
	elif [ -d "$dir/frozen-attempt" ]; then
		echo "# harness: ${dir##*/} froze once ($(cat "$dir/frozen-attempt/frozen")) and was booted again; first attempt's logs: $dir/frozen-attempt"
	fi
	qemu_rc=$(cat "$dir/qemu_rc")
	if [ "$qemu_rc" = 124 ] || [ "$qemu_rc" = 137 ]; then
		problems+=("${name}the guest did not finish within ${timeout_s}s")
	fi
	exit_line=$(grep -a '^HARNESS: exit ' "$output" | tail -n1 || true)
	if [ -z "$exit_line" ]; then
		problems+=("${name}the guest never reported an exit status (crash or hang)")
		tail -n 40 "$dir/console.log" | sed 's/^/# console: /'
	fi
	guest_rc=${exit_line#HARNESS: exit }

	# Kernel splats anywhere in the console log fail the run.
	grep -aEn "$splats" "$dir/console.log" > "$dir/splats.txt" || true
	# But for one, in the framebuffer guests only: vga16fb's removal calls iounmap() on an address
	# it never ioremapped (its screen_base is VGA_MAP_MEM), and iounmap() warns once, whichever
	# driver removes the framebuffer (the kernel's own comment in arch/x86/mm/ioremap.c names
	# vga16fb). Exactly that WARNING line, when its call trace runs through vga16fb_destroy
	# within the next 30 lines, is set aside and reported; anything else still fails.
	if [[ "$dir" == */framebuffer-* ]] && [ -s "$dir/splats.txt" ]; then
		known=$(awk '/WARNING: arch\/x86\/mm\/ioremap\.c:[0-9]+ at iounmap/ { w = NR }
			w && NR <= w + 30 && /vga16fb_destroy/ { print w; w = 0 }' "$dir/console.log" | paste -sd" ")
		if [ -n "$known" ]; then
			echo "# harness: ${dir##*/}: the known upstream WARN of vga16fb's removal (iounmap of VGA_MAP_MEM) at console line $known, set aside"
			awk -F: -v known=" $known " 'index(known, " " $1 " ") == 0' "$dir/splats.txt" > "$dir/splats.tmp"
			mv "$dir/splats.tmp" "$dir/splats.txt"
		fi
	fi
	if [ -s "$dir/splats.txt" ]; then
		problems+=("${name}kernel splat in the guest's console log ($dir/console.log)")
		head -n 20 "$dir/splats.txt" | sed 's/^/# splat: /'
	fi

	p=0 f=0
	if summary=$(grep -aE "$summary_re" "$output" | tail -n1) && [ -n "$summary" ]; then
		p=$(echo "$summary" | awk '{print $1}')
		f=$(echo "$summary" | awk '{print $3}')
	elif [ "$mode" = tests ]; then
		problems+=("${name}the test binary printed no summary")
	fi
	# kmemleak (the memory-debugging kernel): the guest's scan after the tests must have run
	# and reported nothing.
	if [ "$KERNEL_FLAVOUR" = kasan ] && [ "$mode" = tests ]; then
		if ! grep -aq '^HARNESS: kmemleak scanned' "$output"; then
			problems+=("${name}no kmemleak scan after the tests")
		else
			# One leak is the kernel's, under both drivers: dma_buf_phys_vec_to_sgt()
			# (drivers/dma-buf/dma-buf-mapping.c, 7.2 and 7.3) sets the table's orig_nents to
			# 0, so dma_buf_free_sgt()'s sg_free_table() frees none of the scatterlist it
			# allocated: every map of a dma-buf of a PCI BAR leaks it. An unreferenced object
			# allocated by sg_alloc_table() from dma_buf_phys_vec_to_sgt() is set aside and
			# counted; any other one fails the run.
			awk '/^HARNESS: kmemleak unreferenced object/ { n++ } n { block[n] = block[n] $0 "\n" }
				END { for (i = 1; i <= n; i++) {
					known = block[i] ~ /sg_alloc_table/ && block[i] ~ /dma_buf_phys_vec_to_sgt/
					printf "%s", block[i] > (known ? "/dev/fd/3" : "/dev/fd/4") } }' \
				< <(grep -a '^HARNESS: kmemleak ' "$output" | grep -av '^HARNESS: kmemleak scanned') \
				3> "$dir/kmemleak-known.txt" 4> "$dir/kmemleak.txt"
			known=$(grep -ac 'unreferenced object' "$dir/kmemleak-known.txt" || true)
			leaks=$(grep -ac 'unreferenced object' "$dir/kmemleak.txt" || true)
			if [ "$known" -gt 0 ]; then
				echo "# harness: ${dir##*/}: $known kmemleak report(s) of the kernel's dma-buf scatterlist leak (dma_buf_phys_vec_to_sgt), set aside: $dir/kmemleak-known.txt"
			fi
			if [ "$leaks" -gt 0 ]; then
				problems+=("${name}kmemleak: $leaks unreferenced object(s)")
				head -n 40 "$dir/kmemleak.txt" | sed 's/^HARNESS: /# /'
			fi
		fi
	fi
	# A failing guest command that reported no failure of its own is one.
	if [ -n "$exit_line" ] && [ "$guest_rc" != 0 ] && [ "$f" = 0 ]; then
		problems+=("${name}the guest command exited with status $guest_rc")
	fi
	passed=$((passed + p)) failed=$((failed + f))
done

# Where the time went: every case's milliseconds (the test binary's "HARNESS: time" lines),
# slowest first, and each guest's sum.
if [ "$mode" = tests ]; then
	for dir in "${guest_dirs[@]}"; do
		grep -a '^HARNESS: time ' "$dir/output.log" | cut -d' ' -f3- |
			sed "s|^|${dir##*/} |" || true
	done | sort -k2,2nr > "$run/logs/case-times.txt"
	awk '{ t[$1] += $2 } END { for (g in t) printf "# guest %s: %d s of cases\n", g, t[g] / 1000 }' \
		"$run/logs/case-times.txt" | sort
	# Every compared step that answered with an errno on either driver (the test binary's
	# "HARNESS: errno" lines): scripts/errno-table.py makes Documentation/errno-table.rst of it.
	for dir in "${guest_dirs[@]}"; do
		grep -a '^HARNESS: errno ' "$dir/output.log" | cut -d' ' -f3- || true
	done > "$run/logs/errno-steps.tsv"
fi

# The framebuffer guests' transcripts (their "HARNESS: framebuffer" lines) must match: one
# check, counted with the guests' own.
fb_c=$run/logs/framebuffer-vfio-pci fb_rs=$run/logs/framebuffer-vfio-pci-rs
if [ -d "$fb_c" ] && [ -d "$fb_rs" ]; then
	name="vga/vga_boot_framebuffer: vfio-pci-rs transcript (its boot) matches vfio-pci (its boot)"
	grep -a '^HARNESS: framebuffer ' "$fb_c/output.log" | cut -d' ' -f3- > "$fb_c/transcript.txt" || true
	grep -a '^HARNESS: framebuffer ' "$fb_rs/output.log" | cut -d' ' -f3- > "$fb_rs/transcript.txt" || true
	if [ -s "$fb_c/transcript.txt" ] && cmp -s "$fb_c/transcript.txt" "$fb_rs/transcript.txt"; then
		echo "# harness: ok - $name"
		passed=$((passed + 1))
	else
		echo "# harness: not ok - $name"
		diff "$fb_c/transcript.txt" "$fb_rs/transcript.txt" | head -n 40 | sed 's/^/# /' || true
		failed=$((failed + 1))
	fi
fi

fail=0
if [ ${#problems[@]} -eq 0 ]; then
	echo "# harness: guest(s) finished, dmesg clean (no WARN, BUG, Oops, lockdep, sleep-in-atomic, RCU stall, hung task)"
	passed=$((passed + 1))
else
	for p in "${problems[@]}"; do echo "# harness: $p"; done
	failed=$((failed + 1))
	fail=1
fi
[ "$failed" = 0 ] || fail=1
if [ -n "${VFIO_PCI_RS_T0:-}" ]; then
	echo "# total time $(( $(date +%s) - VFIO_PCI_RS_T0 )) s (${VFIO_PCI_RS_CACHE_STATE:-} cache, ${#guest_dirs[@]} guest(s))"
fi
echo "$passed passed, $failed failed"
exit "$fail"
