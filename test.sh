#!/usr/bin/env bash
# Passes every test: installs what is missing (tools/setup.sh), builds the kernel and
# PDs (tools/build-targets.sh), runs `cargo test` over the default members (the host
# crates' tests and the QEMU integration tests in tests/), and prints a summary.
# Exit status 0 only if every step and every test passed.
#
# Usage: ./test.sh [EXTRA-CARGO-TEST-ARGS...]   e.g. ./test.sh -p vcpos-tests
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

run_step setup tools/setup.sh
run_step "build target crates" tools/build-targets.sh
run_step "guest image (Debian arm64 kernel + busybox)" tools/guest-image.sh

log=$(mktemp)
trap 'rm -f "$log"' EXIT
trap - ERR # cargo test's failures are reported by the summary below
echo "==> cargo test"
set +e
cargo test --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
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
