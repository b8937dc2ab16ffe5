#!/usr/bin/env bash
# Builds the in-guest test program (tests/: vfio-pci-rs-tests and vfio-ioctls-client) in the
# toolchain root, offline, and prints the directory that holds the two binaries.
#
#   scripts/tests-build.sh TARGET_DIR [CARGO_ARGS...]
#
# The crates tests/Cargo.lock names (vfio-ioctls, vfio-bindings, libc, ...) are fetched once
# per lockfile into the cache's cargo home ($WORK/cargo-home, outside the checkout), by the
# root's cargo (`cargo fetch --locked`, only what x86_64 Linux needs); the build itself is
# always `--offline` against that cargo home, so a warm build needs no network and a fresh
# machine needs crates.io once. When the host trusts a CA bundle of its own (a proxy's), the
# fetch uses it: the root's ca-certificates do not know such a CA.
. "$(dirname "$0")/common.sh"

target_dir=${1:?usage: tests-build.sh TARGET_DIR [CARGO_ARGS...]}
shift
triple=x86_64-unknown-linux-gnu # tests/.cargo/config.toml's build.target
cargo_home=$WORK/cargo-home
lock=$REPO/tests/Cargo.lock
stamp=$cargo_home/fetched/$(sha256sum "$lock" | cut -c1-16)

if [ ! -f "$stamp" ]; then
	log "fetching the test program's crates into $cargo_home"
	t0=$(date +%s)
	mkdir -p "$cargo_home/fetched"
	ca=
	for f in "${CARGO_HTTP_CAINFO:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
		if [ -n "$f" ] && [ -f "$f" ]; then
			cp "$f" "$cargo_home/host-ca.crt"
			ca="CARGO_HTTP_CAINFO=$cargo_home/host-ca.crt"
			break
		fi
	done
	VFIO_PCI_RS_ENV="CARGO_HOME=$cargo_home $ca" in_root cargo fetch -q --locked --target "$triple" \
		--manifest-path "$REPO/tests/Cargo.toml" >&2 || die "cargo fetch failed (crates.io reachable?)"
	touch "$stamp"
	log "crates fetched in $(( $(date +%s) - t0 )) s"
fi

# From inside tests/, so cargo reads tests/.cargo/config.toml (target, static linking).
(cd "$REPO/tests" && VFIO_PCI_RS_ENV="CARGO_HOME=$cargo_home" in_root cargo build --release --offline --locked \
	--manifest-path "$REPO/tests/Cargo.toml" --target-dir "$target_dir" "$@") >&2
echo "$target_dir/$triple/release"
