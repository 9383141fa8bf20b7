#!/usr/bin/env bash
# Builds and boots the benchmark system(s) in QEMU and prints their BENCH figures as a
# table, then the VM benchmarks: system.xml's Linux guest booted on vcpos against the
# same Image + initrd.gz booted directly on QEMU (boot-to-shell time and the guest's
# MMIO exit round trip, medians of --runs boots each, with ratios; then one boot of
# tests/systems/linux-idle.system: the idle guest's kernel entries per second), then the block tables
# (the guest's `vcpos-mmio-bench blk run` on its virtio-blk disk, directly on QEMU and on
# vcpos through the block VCP vcp_blk, same disk file: MB/s, IOPS, latency, the ratios,
# and on vcpos the kernel's counters per request), then the network table (the guest's
# `vcpos-mmio-bench net` against a server on the host, directly on QEMU and on vcpos
# with eth0 served by the network VCP (tests/systems/linux-net.system): TX/RX Mb/s at
# MTU 1500 and 500, TCP round trip, then both sides with ratios). Not part
# of ./test.sh.
#
# Usage: ./bench.sh [--config debug|release|benchmark] [--timeout SECS] [-v] [--runs N]
#                   [--vm-only | --no-vm | --blk-only | --net-only] [--no-blk] [--no-net]
#                   [--vm-system FILE] [SYSTEM...]
#   (default system: tests/systems/bench.system; relative paths are from here)
set -euo pipefail
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
root=$(cd "$(dirname "$0")" && pwd)

"$root/tools/setup.sh"
"$root/tools/build-targets.sh"
# After the target crates: the initramfs takes the guest benchmark program
# (linux-vm/guest/bench) from their output. Without a guest image the other figures
# are still measured, and the run fails at the end.
guest_ok=1
"$root/tools/guest-image.sh" || guest_ok=0
((guest_ok)) || set -- --no-vm "$@"
# Not cd'ing to the root keeps relative SYSTEM paths meaning what the user typed.
cargo run -q --manifest-path "$root/Cargo.toml" -p vcpos-tests --bin vcpos-bench -- "$@"
if ((!guest_ok)); then
  echo "bench.sh: tools/guest-image.sh failed: no VM benchmarks" >&2
  exit 1
fi
