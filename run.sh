#!/usr/bin/env bash
# Builds the vcpos system described by system.xml (or SYSTEM-FILE) and boots it in QEMU
# with the serial console on this terminal. Quit QEMU with Ctrl-A x.
# The image and the build report go to build/vcpos.img and build/report.txt.
# The Linux guest's disk /dev/vda is a raw image file kept across runs: .cache/disk/vda.img
# (256 MiB, created on the first run), or the file VCPOS_DISK names (created if missing,
# at least 256 MiB: system.vcp-blk.cfg's windows). It is attached as the machine's first
# virtio-blk device, which the block VCP vcp_blk drives: the guest's /dev/vda is its
# first 254 MiB, the native client PD blk_client writes and checks its last 2 MiB.
# The second device is a NIC on QEMU's user network (virtio-mmio slot 23), which the
# network VCP vcp_net shares between the guest's eth0 (10.0.2.15 by DHCP) and the
# status PD (10.0.2.16): host port VCPOS_STATUS_PORT (default 8080) on 127.0.0.1 is
# forwarded to the status PD's port 80 (the page of the kernel's counters).
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
port=${VCPOS_STATUS_PORT:-8080}
# The status PD's address in system.xml (system.status.cfg's address=A.B.C.D/N).
status_addr=$(sed -n 's|^address=\([0-9.]*\)/.*|\1|p' system.status.cfg)
[[ -n $status_addr ]] || { echo "run.sh: error: no address=A.B.C.D/N in system.status.cfg" >&2; exit 1; }
echo "run.sh: status page: http://127.0.0.1:$port/ (JSON: /status.json) (VCPOS_STATUS_PORT=port picks another)"
# Each extra device gets its own virtio-mmio page: the disk slot 31 (vcp_blk's page),
# the NIC slot 23 (vcp_net's page; system.xml).
exec cargo run -q --bin vcpos -- run --device "disk=$disk" \
  --device "nic,fwd=$port:$status_addr:80" "$@" build/vcpos.img
