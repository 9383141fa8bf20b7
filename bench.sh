#!/usr/bin/env bash
# Builds and boots the benchmark system(s) in QEMU and prints their BENCH figures as a
# table. Not part of ./test.sh.
#
# Usage: ./bench.sh [--config debug|release|benchmark] [--timeout SECS] [-v] [SYSTEM...]
#   (default system: tests/systems/bench.system; relative paths are from here)
set -euo pipefail
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
root=$(cd "$(dirname "$0")" && pwd)

"$root/tools/setup.sh"
"$root/tools/build-targets.sh"
# Not cd'ing to the root keeps relative SYSTEM paths meaning what the user typed.
exec cargo run -q --manifest-path "$root/Cargo.toml" -p vcpos-tests --bin vcpos-bench -- "$@"
