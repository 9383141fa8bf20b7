#!/usr/bin/env bash
# Passes every test: installs what is missing (tools/setup.sh), checks the lint gates
# (rustfmt over the workspace; clippy with warnings as errors over the host crates and,
# for aarch64, the target crates), builds the kernel and PDs (tools/build-targets.sh),
# runs `cargo test` over the default members (the host crates' tests and the QEMU
# integration tests in tests/) and the library tests of the target crates, and prints
# a summary. Exit status 0 only if every step and every test passed.
#
# Usage: ./test.sh [EXTRA-CARGO-TEST-ARGS...]   e.g. ./test.sh -p vcpos-tests
#   (with arguments, only `cargo test ARGS` runs after the gates, not the target
#   crates' library tests)
set -Eeuo pipefail # -E: the ERR trap below also fires inside run_step
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
cd "$(dirname "$0")"

step=""
run_step() { # run_step NAME COMMAND...: a titled, timed step
  step=$1
  shift
  echo "==> $step"
  local t0=$SECONDS
  "$@"
  echo "==> $step: done in $((SECONDS - t0)) s"
}
trap 'echo "test.sh: FAILED in step: $step" >&2' ERR

# The target crates (kernel, PDs, the guest's benchmark program) that have library
# tests: not default members, with a lib target whose tests are not switched off.
# Their libraries' pure parts build and run on the host.
target_libs() {
  cargo metadata --no-deps --format-version 1 | jq -r '
    .workspace_default_members as $host
    | .packages[]
    | select(.id as $id | any($host[]; . == $id) | not)
    | select(any(.targets[]; (.kind | index("lib")) and .test))
    | .name'
}
fmt_check() {
  cargo fmt --all --check || { echo "test.sh: not rustfmt-formatted: run cargo fmt --all" >&2; return 1; }
}
host_clippy() { # every host target of the default members, and the target crates' libraries
  cargo clippy --all-targets -- -D warnings
  if ((${#lib_args[@]})); then cargo clippy --lib --tests "${lib_args[@]}" -- -D warnings; fi
}

run_step setup tools/setup.sh
mapfile -t libs < <(target_libs) # after setup: needs jq
lib_args=()
for l in "${libs[@]}"; do lib_args+=(-p "$l"); done
run_step "format (cargo fmt --all --check)" fmt_check
run_step "lint host crates (cargo clippy, -D warnings)" host_clippy
run_step "lint target crates (tools/build-targets.sh --clippy, -D warnings)" tools/build-targets.sh --clippy
run_step "build target crates" tools/build-targets.sh
run_step "guest image (Debian arm64 kernel + busybox)" tools/guest-image.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
trap - ERR # cargo test's failures are reported by the summary below
echo "==> cargo test"
set +e
cargo test --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if (($# == 0 && ${#lib_args[@]})); then
  echo "==> cargo test --lib ${lib_args[*]} (target crates' library tests, on the host)"
  cargo test --no-fail-fast --lib "${lib_args[@]}" 2>&1 | tee -a "$log"
  lib_status=${PIPESTATUS[0]}
  ((status != 0)) || status=$lib_status
fi
set -e

# Add up libtest's "test result: ... N passed; N failed; N ignored; ..." lines.
read -r passed failed ignored < <(awk '/^test result:/ {
    for (i = 2; i <= NF; i++) {
      if ($i ~ /^passed;?$/) p += $(i - 1)
      if ($i ~ /^failed;?$/) f += $(i - 1)
      if ($i ~ /^ignored;?$/) g += $(i - 1)
    } }
  END { print p + 0, f + 0, g + 0 }' "$log")

echo
echo "==================== test summary ===================="
# Failed tests, then test binaries that failed (a crash fails a binary, not a test).
grep -E '^test .* FAILED$' "$log" | sed 's/^/  /' || true
grep -E '^error: test failed, to rerun pass' "$log" | sed 's/^error: test failed, to rerun pass /  failed: cargo test /' || true
if ((status != 0 || failed != 0)); then
  ((status == 0)) || echo "cargo test exited with status $status"
  verdict="TESTS FAILED"
elif ((passed == 0)); then
  verdict="TESTS FAILED: no test ran"
else
  verdict="ALL TESTS PASSED"
fi
echo "$verdict (in $SECONDS s)"
# Last line, in the plain form CI reads: "N passed, N failed, N skipped".
echo "summary: $passed passed, $failed failed, $ignored skipped"
[[ $verdict == "ALL TESTS PASSED" ]]
