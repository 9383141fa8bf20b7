#!/usr/bin/env bash
# Builds the vcpos system described by system.xml (or SYSTEM-FILE) and boots it in QEMU
# with the serial console on this terminal. Quit QEMU with Ctrl-A x.
# The image and the build report go to build/vcpos.img and build/report.txt.
# The Linux guest's disk /dev/vda is a raw image file kept across runs: .cache/disk/vda.img
# (256 MiB, created on the first run), or the file VCPOS_DISK names (created if missing,
# at least 256 MiB: system.vcp-blk.cfg's windows). It is attached as the machine's first
# virtio-blk device, which the block VCP vcp_blk drives: the guest's /dev/vda is its
# first 254 MiB, the native client PD blk_client writes and checks its last 2 MiB.
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
size=$(stat -c %s "$disk")
((size >= 256 << 20)) || { echo "run.sh: error: guest disk $disk has $size bytes; system.vcp-blk.cfg's windows need 256 MiB" >&2; exit 1; }
echo "run.sh: disk $disk ($size bytes; VCPOS_DISK=path picks another), served by vcp_blk: /dev/vda in the guest = its first 254 MiB"

tools/setup.sh
tools/build-targets.sh
tools/guest-image.sh # after the target build: the initramfs carries its guest tools
mkdir -p build
cargo run -q --bin vcpos -- build \
  --search-path target/aarch64-unknown-none-softfloat/release --search-path .cache/guest \
  --search-path "$(dirname "$system")" -o build/vcpos.img -r build/report.txt "$system"
echo "run.sh: built build/vcpos.img (report: build/report.txt)"
# The disk is the machine's first extra device: virtio-mmio slot 31, vcp_blk's page.
exec cargo run -q --bin vcpos -- run --device "disk=$disk" "$@" build/vcpos.img
