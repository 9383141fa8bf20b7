#!/usr/bin/env bash
# Builds the vcpos system described by system.xml (or SYSTEM-FILE) and boots it in QEMU
# with the serial console on this terminal. Quit QEMU with Ctrl-A x.
# The image and the build report go to build/vcpos.img and build/report.txt.
#
# Usage: ./run.sh [SYSTEM-FILE [VCPOS-RUN-OPTIONS...]]   e.g. ./run.sh system.xml --gdb
set -euo pipefail
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
system=$(realpath "${1:-$(dirname "$0")/system.xml}") # resolved before the cd below
shift $(($# > 0 ? 1 : 0))
cd "$(dirname "$0")"

tools/setup.sh
tools/build-targets.sh
tools/guest-image.sh # after the target build: the initramfs carries its guest tools
mkdir -p build
cargo run -q --bin vcpos -- build \
  --search-path target/aarch64-unknown-none-softfloat/release --search-path .cache/guest \
  -o build/vcpos.img -r build/report.txt "$system"
echo "run.sh: built build/vcpos.img (report: build/report.txt)"
exec cargo run -q --bin vcpos -- run "$@" build/vcpos.img
