#!/usr/bin/env bash
# Formatting, lints and the layer rule, as the kernel checks its own Rust; .ci/run runs it
# before the tests. Every check runs; the script fails if any of them found something.
#
#   scripts/lint.sh [CHECK...]    CHECK: fmt clippy rustdoc layer selfcheck (default: all)
#
#   fmt        rustfmt --check with the kernel tree's .rustfmt.toml on every .rs under src/
#              (what `make rustfmtcheck` does for the tree, which has no M= form), and with
#              tests/rustfmt.toml on the in-guest test program; and the kernel's vertical
#              import style on src/ (scripts/vertical-imports.py --check).
#   clippy     `make M=... CLIPPY=1` of the module: clippy-driver with the kernel's lint set
#              (the -W/-A clippy:: flags of the top-level Makefile); any warning is a finding.
#   rustdoc    rustdoc of the crate with no warnings. Kbuild has no rustdoc target for external
#              modules, so this runs rustdoc with the exact flags kbuild passed rustc for our
#              crate, read from the command line kbuild saved in src/.vfio_pci_rs_main.o.cmd
#              (the kernel's own `make rustdoc` passes rustdoc its rustc flags the same way):
#              the `rustc` or `clippy-driver` word becomes `rustdoc`, the object/dep-info
#              outputs become `--output`, and RUSTC_BOOTSTRAP=1 allows the -Z flags as the
#              kernel's Makefile does. With --document-private-items: every item of a driver
#              crate is private, so that is the documentation there is (and the one whose
#              intra-doc links must resolve); so links from the crate doc to private modules
#              are not findings (-Arustdoc::private_intra_doc_links). Output in $WORK/rustdoc-<checkout>/.
#   layer      no file outside src/kernel_ext/ contains `unsafe`, `allow(unsafe_code)` or
#              `bindings::`, except the crate root's one `#[allow(unsafe_code)]` on
#              `mod kernel_ext;`; prints the counts inside and outside the layer.
#   selfcheck  the test program's --self-check (its pure logic, KUnit log parsing included),
#              on the host, with the module file just built.
#
# VFIO_PCI_RS_LINT_WARN_ONLY="clippy rustdoc layer": checks whose findings are printed but do
# not fail the script (.ci/run sets it while the issue-9 branches are being merged).
. "$(dirname "$0")/common.sh"
cd "$REPO"

checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(fmt clippy rustdoc layer selfcheck)
warn_only=" ${VFIO_PCI_RS_LINT_WARN_ONLY:-} "
KDIR=$KTREE
[ -f "$KDIR/.vfio-pci-rs-stamp" ] || KDIR=$("$REPO/scripts/kernel.sh")
out=$(mktemp -d "${TMPDIR:-/tmp}/vfio-pci-rs-lint.XXXX")
trap 'rm -rf "$out"' EXIT

failed=()
warned=()
done_checks=()
# count_lines [-v] ERE FILE: how many lines of FILE match (-v: do not), 0 when none or no file.
count_lines() {
	local n v=
	[ "$1" != -v ] || { v=-v; shift; }
	n=$(grep -c $v -E -- "$1" "$2" 2>/dev/null) || true
	echo "${n:-0}"
}
# finding CHECK COUNT: record the result of one check.
finding() {
	done_checks+=("$1")
	if [ "$2" = 0 ]; then
		echo "# lint: $1: clean"
	elif [[ $warn_only == *" $1 "* ]]; then
		echo "# lint: $1: $2 finding(s) (not enforced: VFIO_PCI_RS_LINT_WARN_ONLY)"
		warned+=("$1")
	else
		echo "# lint: $1: $2 finding(s)"
		failed+=("$1")
	fi
}

# The module build with warnings counted; "$@" are extra make arguments.
build() {
	kbuild_ext "$REPO" "$@" modules > "$out/build.log" 2>&1 || {
		cat "$out/build.log"
		echo "# lint: the module does not build (make $*)"
		return 1
	}
	{ grep -E '^(warning|error)(\[[^]]*\])?:' "$out/build.log" || true; } | count_lines -v 'warnings? emitted$|aborting due to' /dev/stdin
}

check_fmt() {
	local n=0 f
	mapfile -t files < <(find src -type f -name '*.rs' ! -name '*generated*' | sort)
	if ! in_root rustfmt --edition 2021 --config-path "$KDIR/.rustfmt.toml" --check "${files[@]}" > "$out/fmt.txt" 2>&1; then
		cat "$out/fmt.txt"
		n=$(count_lines '^(Diff in|Error)' "$out/fmt.txt")
		[ "$n" != 0 ] || n=1
	fi
	# The kernel's import style, which rustfmt keeps but does not impose.
	if ! python3 "$REPO/scripts/vertical-imports.py" --check "${files[@]}" > "$out/imports.txt"; then
		cat "$out/imports.txt"
		n=$((n + $(count_lines . "$out/imports.txt")))
	fi
	mapfile -t files < <(find tests/src -type f -name '*.rs' | sort)
	if ! in_root rustfmt --edition 2021 --config-path "$REPO/tests/rustfmt.toml" --check "${files[@]}" > "$out/fmt-tests.txt" 2>&1; then
		cat "$out/fmt-tests.txt"
		local t
		t=$(count_lines '^(Diff in|Error)' "$out/fmt-tests.txt")
		[ "$t" != 0 ] || t=1
		n=$((n + t))
	fi
	finding fmt "$n"
}

check_clippy() {
	local n
	n=$(build CLIPPY=1) || { finding clippy 1; return; }
	[ "$n" = 0 ] || grep -vE '^  (RUSTC|CC|LD|MODPOST|BINDGEN|AR) ' "$out/build.log" | grep -v '^make'
	finding clippy "$n"
}

check_rustdoc() {
	local n cmdfile=src/.vfio_pci_rs_main.o.cmd doc="$WORK/rustdoc-$(basename "$REPO")"
	# The ordinary build (after a CLIPPY=1 one it recompiles with rustc), which also leaves
	# the .cmd file and generated/bindings_generated.rs.
	n=$(build) || { finding rustdoc 1; return; }
	[ "$n" = 0 ] || { cat "$out/build.log"; echo "# lint: the ordinary build has $n warning(s)"; }
	local cmd
	cmd=$(sed -n 's/^savedcmd_[^ ]* := //p' "$cmdfile")
	[ -n "$cmd" ] || { echo "# lint: no saved rustc command in $cmdfile"; finding rustdoc 1; return; }
	cmd=$(printf '%s\n' "$cmd" | sed -E \
		-e 's/(^| )(rustc|clippy-driver) /\1rustdoc /' \
		-e 's/ -Zbinary_dep_depinfo=y//' \
		-e 's/ --emit=[^ ]+//g' \
		-e 's/ --out-dir [^ ]+//')
	case "$cmd" in *" rustdoc "*) ;; *) echo "# lint: cannot turn into a rustdoc command: $cmd"; finding rustdoc 1; return ;; esac
	rm -rf "$doc"
	mkdir -p "$doc"
	# The saved command is a shell command line (quoted -Zcrate-attr=...), run from the
	# module's directory as kbuild runs it.
	if ! in_root /bin/bash -c "export RUSTC_BOOTSTRAP=1; $cmd --document-private-items -Arustdoc::private_intra_doc_links --output $doc" \
		> "$out/rustdoc.txt" 2>&1; then
		cat "$out/rustdoc.txt"
		echo "# lint: rustdoc failed"
		finding rustdoc 1
		return
	fi
	n=$({ grep -E '^(warning|error)(\[[^]]*\])?:' "$out/rustdoc.txt" || true; } | count_lines -v 'warnings? emitted$|aborting due to' /dev/stdin)
	[ "$n" = 0 ] || cat "$out/rustdoc.txt"
	echo "# lint: rustdoc output: $doc/vfio_pci_rs_main/index.html"
	finding rustdoc "$n"
}

check_layer() {
	local word='(^|[^a-z_])unsafe([^a-z_]|$)'
	local kinds=("unsafe@$word" "allow(unsafe_code)@allow\\(unsafe_code\\)" "bindings::@bindings::")
	local inside outside k name re hits
	: > "$out/layer.txt"
	for k in "${kinds[@]}"; do
		name=${k%%@*}
		re=${k#*@}
		inside=$(grep -rnE "$re" src/kernel_ext src/kernel_ext.rs --include='*.rs' | wc -l) || true
		hits=$(grep -rnE "$re" src --include='*.rs' | grep -v '^src/kernel_ext[/.]' || true)
		if [ "$name" = "allow(unsafe_code)" ]; then
			# The crate root's one exception: the attribute on `mod kernel_ext;`, on its line
			# or the line before it.
			hits=$(printf '%s\n' "$hits" | while IFS= read -r h; do
				[ -n "$h" ] || continue
				file=${h%%:*} rest=${h#*:} line=${rest%%:*} text=${rest#*:}
				if [ "$file" = src/vfio_pci_rs_main.rs ] && [[ $text =~ ^[[:space:]]*#\[allow\(unsafe_code\)\][[:space:]]*(pub(\(crate\))?[[:space:]]+)?mod[[:space:]]+kernel_ext\; ]]; then
					continue
				fi
				if [ "$file" = src/vfio_pci_rs_main.rs ] && [[ $text =~ ^[[:space:]]*#\[allow\(unsafe_code\)\][[:space:]]*$ ]] &&
					sed -n "$((line + 1))p" "$file" | grep -qE '^[[:space:]]*(pub(\(crate\))?[[:space:]]+)?mod[[:space:]]+kernel_ext;'; then
					continue
				fi
				printf '%s\n' "$h"
			done)
		fi
		outside=$(printf '%s\n' "$hits" | grep -c . || true)
		printf '# lint: layer: %-19s inside src/kernel_ext/: %4d   outside: %4d\n' "$name" "$inside" "$outside"
		[ -z "$hits" ] || printf '%s\n' "$hits" | sed "s/^/#   $name: /" >> "$out/layer.txt"
	done
	local n
	n=$(count_lines . "$out/layer.txt")
	if [ "$n" != 0 ]; then
		echo "# lint: layer: outside src/kernel_ext/, by file:"
		sed -E 's/^#   (unsafe|allow\(unsafe_code\)|bindings::): ([^:]+):.*/\2 \1/' "$out/layer.txt" | sort | uniq -c | sed 's/^/#   /'
		[ -z "${VFIO_PCI_RS_LINT_VERBOSE:-}" ] || cat "$out/layer.txt"
	fi
	finding layer "$n"
}

check_selfcheck() {
	local target
	if ! target=$("$REPO/scripts/tests-build.sh" "$TESTS_TARGET" -q 2> "$out/cargo.txt"); then
		cat "$out/cargo.txt"
		finding selfcheck 1
		return
	fi
	local n=0
	[ ! -s "$out/cargo.txt" ] || { cat "$out/cargo.txt"; n=$(count_lines '^(warning|error)' "$out/cargo.txt"); }
	[ -f vfio_pci_rs.ko ] || build > /dev/null || true
	if ! VFIO_PCI_RS_ENV="VFIO_PCI_RS_KO=$REPO/vfio_pci_rs.ko" in_root \
		"$target/vfio-pci-rs-tests" --self-check > "$out/selfcheck.txt" 2>&1; then
		grep -B3 '^not ok' "$out/selfcheck.txt" || cat "$out/selfcheck.txt"
	fi
	n=$((n + $(count_lines '^not ok' "$out/selfcheck.txt")))
	[ -n "$(count_lines '^[0-9]+ passed, 0 failed$' "$out/selfcheck.txt" | grep -v '^0$')" ] || n=$((n + 1))
	tail -n1 "$out/selfcheck.txt" | sed 's/^/# lint: selfcheck: /'
	finding selfcheck "$n"
}

for c in "${checks[@]}"; do
	case "$c" in
	fmt | clippy | rustdoc | layer | selfcheck) log "lint: $c"; "check_$c" ;;
	*) die "unknown check $c (fmt clippy rustdoc layer selfcheck)" ;;
	esac
done
# A check that stopped before recording its result is a failure of its own.
for c in "${checks[@]}"; do
	[[ " ${done_checks[*]} " == *" $c "* ]] || failed+=("$c (the check did not finish)")
done
if [ ${#failed[@]} -gt 0 ]; then
	echo "# lint: FAILED: ${failed[*]}${warned:+ (not enforced: ${warned[*]})}"
	exit 1
fi
echo "# lint: passed${warned:+ (findings not enforced: ${warned[*]})}"
