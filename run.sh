#!/usr/bin/env bash
# Builds the vcpos system described by system.xml (or SYSTEM-FILE) and boots it in QEMU
# with the serial console on this terminal. Quit QEMU with Ctrl-A x.
# The image and the build report go to build/vcpos.img and build/report.txt.
# The Linux guest's disk /dev/vda is a raw image file kept across runs: .cache/disk/vda.img
# (256 MiB, created on the first run), or the file VCPOS_DISK names (created if missing).
#
# Usage: ./run.sh [SYSTEM-FILE [VCPOS-RUN-OPTIONS...]]   e.g. ./run.sh system.xml --gdb
set -euo pipefail
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
system=$(realpath "${1:-$(dirname "$0")/system.xml}") # resolved before the cd below
shift $(($# > 0 ? 1 : 0))
# The guest's disk, resolved before the cd below like SYSTEM-FILE.
disk=$(realpath -m "${VCPOS_DISK:-$(dirname "$0")/.cache/disk/vda.img}")
cd "$(dirname "$0")"

if [[ ! -e $disk ]]; then
  mkdir -p "$(dirname "$disk")"
  truncate -s 256M "$disk" # sparse: blocks take host space once the guest writes them
  echo "run.sh: created the guest's disk $disk (256 MiB raw, blank; in the guest: mkfs.ext4 /dev/vda)"
fi
[[ -f $disk && -r $disk && -w $disk ]] || { echo "run.sh: error: guest disk $disk is not a readable, writable file" >&2; exit 1; }
echo "run.sh: guest disk /dev/vda: $disk ($(stat -c %s "$disk") bytes; VCPOS_DISK=path picks another)"
# For the runner's device list (the QEMU drive behind the block VCP).
export VCPOS_DISK=$disk

tools/setup.sh
tools/build-targets.sh
tools/guest-image.sh # after the target build: the initramfs carries its guest tools
mkdir -p build
cargo run -q --bin vcpos -- build \
  --search-path target/aarch64-unknown-none-softfloat/release --search-path .cache/guest \
  -o build/vcpos.img -r build/report.txt "$system"
echo "run.sh: built build/vcpos.img (report: build/report.txt)"
exec cargo run -q --bin vcpos -- run "$@" build/vcpos.img
