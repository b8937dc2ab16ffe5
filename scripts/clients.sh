#!/usr/bin/env bash
# Builds (once) the real VFIO clients the in-guest "clients" cases run: the kernel tree's
# VFIO selftests (tools/testing/selftests/vfio), static, with the toolchain root's gcc,
# against the test kernel's own UAPI headers. Rebuilt only when the selftests' sources,
# the kernel source version or this script change. Prints the directory that holds the
# binaries. (QEMU, the other client, is not built: the guest runs the toolchain root's
# qemu-system-x86_64 over a read-only 9p share, see scripts/guest.sh.)
#
#   scripts/clients.sh               build if needed, print the binaries' directory
#   KDIR=/path scripts/clients.sh    use this kernel tree (default: the one VFIO_PCI_RS_KERNEL
#                                    selects, see common.sh)
#
# The kernel tree is only read: the UAPI headers are sanitized into the build directory
# the way `make headers_install` does it (scripts/headers_install.sh, with unifdef built
# here), so a tree other checkouts build modules against is never written.

. "$(dirname "$0")/common.sh"

KDIR=${KDIR:-$KTREE}
CLIENTS=$CLIENTS_CACHE
SELFTESTS=tools/testing/selftests
# The selftests the suite runs (each takes the function's BDF as its last argument).
TESTS=(vfio_pci_device_test vfio_dma_mapping_test vfio_dma_mapping_mmio_test vfio_iommufd_setup_test
	vfio_pci_device_init_perf_test)
# Run too, but built from a copy (see below): it insists that the VF it creates is bound to
# "vfio-pci", and the suite runs it on vfio-pci-rs as well.
SRIOV_TEST=vfio_pci_sriov_uapi_test

[ -f "$KDIR/.vfio-pci-rs-srcver" ] || die "no kernel tree in $KDIR: run scripts/kernel.sh"

# What the build depends on: the selftests' sources (the vfio directory, the shared
# kselftest headers and lib.mk), the UAPI headers, the kernel version and this script.
fingerprint() {
	(
		cd "$KDIR"
		cat .vfio-pci-rs-srcver
		find "$SELFTESTS/vfio" include/uapi arch/x86/include/uapi arch/x86/include/generated/uapi \
			include/generated/uapi -type f -print0 | sort -z | xargs -0 sha256sum
		sha256sum "$SELFTESTS"/lib.mk "$SELFTESTS"/kselftest*.h scripts/headers_install.sh
	) | cat - "$0" | sha256sum | cut -c1-16
}
# One directory per fingerprint, filled under a temporary name and renamed when complete:
# two checkouts (perhaps with different versions of this script) building at once never
# see each other's half-built output.
want=$(fingerprint)
done_dir=$CLIENTS/$want
if [ -x "$done_dir/bin/${TESTS[0]}" ] && [ -x "$done_dir/bin/$SRIOV_TEST" ]; then
	touch "$done_dir"
	log "VFIO selftests are up to date ($done_dir/bin)"
	echo "$done_dir/bin"
	exit 0
fi

t0=$(date +%s)
mkdir -p "$CLIENTS"
# Builds of other fingerprints not used for a day go.
find "$CLIENTS" -mindepth 1 -maxdepth 1 -type d -mmin +1440 -exec rm -rf {} +
OUT=$(mktemp -d "$CLIENTS/build.XXXX")
trap 'rm -rf "$OUT"' EXIT
log "building the VFIO selftests into $done_dir"
mkdir -p "$OUT"/{uapi,obj,bin,hdrtool/scripts}

# compat.h: the 7.2 stable tree's lib/vfio_pci_device.c calls calloc_assert(), which no
# header of that tree declares (a backport gap). Force-included into every unit. (7.3's
# libvfio/assert.h defines calloc_assert as a macro, which then takes over from this one.)
cat > "$OUT/compat.h" <<'EOF'
/* Supplied by vfio-pci-rs's scripts/clients.sh for the 7.2 VFIO selftests. */
#ifndef VFIO_PCI_RS_SELFTESTS_COMPAT_H
#define VFIO_PCI_RS_SELFTESTS_COMPAT_H
#include <stdio.h>
#include <stdlib.h>
static inline void *calloc_assert(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb, size);

	if (!p) {
		fprintf(stderr, "calloc(%zu, %zu) failed\n", nmemb, size);
		abort();
	}
	return p;
}
/*
 * The driver vfio_pci_sriov_uapi_test expects its VF to be bound to: the one named by
 * VFIO_SELFTESTS_VF_DRIVER, "vfio-pci" (the test's own choice) by default.
 */
static inline const char *vfio_pci_rs_vf_driver(void)
{
	const char *driver = getenv("VFIO_SELFTESTS_VF_DRIVER");

	return driver ? driver : "vfio-pci";
}
#endif
EOF

# The copy of vfio_pci_sriov_uapi_test: its one check of the VF's driver name asks
# vfio_pci_rs_vf_driver() instead of comparing with "vfio-pci"; nothing else changes. Built
# by the rules below, which make reads after the selftests' own Makefile, with the directory
# of the original as the quote-include path (its includes are relative to it).
sed 's/strcmp(vf_driver, "vfio-pci")/strcmp(vf_driver, vfio_pci_rs_vf_driver())/' \
	"$KDIR/$SELFTESTS/vfio/$SRIOV_TEST.c" > "$OUT/$SRIOV_TEST.c"
grep -q 'strcmp(vf_driver, vfio_pci_rs_vf_driver())' "$OUT/$SRIOV_TEST.c" ||
	die "$SRIOV_TEST.c no longer checks the VF driver as expected: review the copy made here"
cat > "$OUT/sriov.mk" <<'EOF'
$(OUTPUT)/vfio_pci_rs_sriov.o: $(VFIO_PCI_RS_SRIOV_SRC)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(TARGET_ARCH) -iquote $(CURDIR) -c $< -o $@
$(OUTPUT)/vfio_pci_rs_sriov: $(OUTPUT)/vfio_pci_rs_sriov.o $(LIBVFIO_O)
	$(CC) $(CFLAGS) $(CPPFLAGS) $(LDFLAGS) $< $(LIBVFIO_O) $(LDLIBS) -o $@
EOF

# The build, inside the toolchain root: unifdef, the sanitized UAPI headers, the tests.
build() {
	set -euo pipefail
	local kdir=$1 out=$2 selftests=$3; shift 3
	gcc -O2 -o "$out/hdrtool/scripts/unifdef" "$kdir/scripts/unifdef.c"
	# headers_install.sh runs scripts/unifdef relative to its working directory.
	cd "$out/hdrtool"
	local src dst f
	for pair in "include/uapi:" "arch/x86/include/uapi:" \
		"arch/x86/include/generated/uapi:" "include/generated/uapi:"; do
		src=$kdir/${pair%:}
		while IFS= read -r -d '' f; do
			dst=$out/uapi/${f#"$src"/}
			mkdir -p "$(dirname "$dst")"
			sh "$kdir/scripts/headers_install.sh" "$f" "$dst"
		done < <(find "$src" -name '*.h' -print0)
	done
	local sriov_test=$1; shift
	local targets=("$out/obj/vfio_pci_rs_sriov")
	for t in "$@"; do targets+=("$out/obj/$t"); done
	make -C "$kdir/$selftests/vfio" -f Makefile -f "$out/sriov.mk" -j"$(( $(nproc) + 1 ))" \
		OUTPUT="$out/obj" KHDR_INCLUDES="-isystem $out/uapi" \
		EXTRA_CFLAGS="-include $out/compat.h -static" LDFLAGS="-static -s" \
		VFIO_PCI_RS_SRIOV_SRC="$out/$sriov_test.c" \
		"${targets[@]}"
	for t in "$@"; do cp "$out/obj/$t" "$out/bin/$t"; done
	cp "$out/obj/vfio_pci_rs_sriov" "$out/bin/$sriov_test"
}
if ! in_root /bin/bash -c "$(declare -f build); build \"\$@\"" build \
	"$KDIR" "$OUT" "$SELFTESTS" "$SRIOV_TEST" "${TESTS[@]}" > "$OUT/build.log" 2>&1; then
	tail -n 30 "$OUT/build.log" >&2
	cp "$OUT/build.log" "$CLIENTS/failed-build.log"
	die "the VFIO selftests did not build"
fi
# The objects hold absolute paths of the temporary directory: keep only what is used.
rm -rf "$OUT/obj" "$OUT/hdrtool" "$OUT/uapi"
if ! mv -T "$OUT" "$done_dir" 2>/dev/null; then
	[ -x "$done_dir/bin/${TESTS[0]}" ] || die "could not install the VFIO selftests in $done_dir"
fi
trap - EXIT
rm -rf "$OUT"
log "VFIO selftests built in $(( $(date +%s) - t0 )) s ($(du -sh "$done_dir/bin" | cut -f1))"
echo "$done_dir/bin"
