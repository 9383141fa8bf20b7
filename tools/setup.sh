#!/usr/bin/env bash
# Installs what building and testing vcpos needs, from Debian 12's packages, when it is
# missing. Idempotent and fast on a ready machine: it only asks dpkg-query; apt-get
# (update + install) runs only when something is missing.
#
# Usage: tools/setup.sh [--dry-run] [--optional] [EXTRA-PACKAGE...]
#   --dry-run   say what is missing and the command that would install it; install
#               nothing (exit status 1 if something is missing, 0 if not)
#   --optional  also the optional tools: gdb-multiarch (for `vcpos run --gdb`)
set -euo pipefail
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
cd "$(dirname "$0")/.."

# Debian's Rust (rustc-web, cargo-web) with its library source for -Zbuild-std
# (rust-web-src); lld links the aarch64 ELFs; qemu-system-arm has qemu-system-aarch64;
# jq reads `cargo metadata` in tools/build-targets.sh; ca-certificates lets cargo
# download crates from crates.io; rustfmt-web (/usr/bin/rustfmt, cargo-fmt) and
# rust-web-clippy (/usr/bin/cargo-clippy, clippy-driver) are ./test.sh's lint gates
# (`cargo fmt`, `cargo clippy`, found first with PATH=/usr/bin:$PATH).
required=(rustc-web cargo-web rust-web-src lld qemu-system-arm jq ca-certificates rustfmt-web rust-web-clippy)
optional=(gdb-multiarch)
min_rustc=1.96 # the toolchain the code is written for (older rustc-web: upgrade it)

dry_run=0
wanted=("${required[@]}")
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry_run=1 ;;
    --optional) wanted+=("${optional[@]}") ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    -*) echo "setup.sh: unknown option $arg" >&2; exit 2 ;;
    *) wanted+=("$arg") ;;
  esac
done

# A package counts as present when dpkg reports it "install ok installed".
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ $status == "install ok installed" ]] || missing+=("$pkg")
done
# An installed rustc-web older than min_rustc is upgraded with the rest of the toolchain.
if [[ ! " ${missing[*]} " =~ " rustc-web " ]]; then
  have=$(rustc --version 2>/dev/null | awk '{print $2}')
  if [[ -z $have || $(printf '%s\n' "$min_rustc" "$have" | sort -V | head -n1) != "$min_rustc" ]]; then
    echo "setup.sh: rustc ${have:-(none)} is older than $min_rustc"
    missing+=(rustc-web cargo-web rust-web-src rustfmt-web rust-web-clippy)
  fi
fi

if ((${#missing[@]})); then
  if ((dry_run)); then
    echo "setup.sh: missing: ${missing[*]}"
    echo "setup.sh: would run: apt-get update && apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  if ((EUID != 0)); then
    echo "setup.sh: missing Debian packages: ${missing[*]}" >&2
    echo "setup.sh: install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
elif ((dry_run)); then
  echo "setup.sh: nothing missing"
fi
((dry_run)) && exit 0

# The toolchain must now work as the build scripts use it.
have=$(rustc --version | awk '{print $2}')
if [[ $(printf '%s\n' "$min_rustc" "$have" | sort -V | head -n1) != "$min_rustc" ]]; then
  echo "setup.sh: rustc $have is older than $min_rustc; Debian 12 ships rustc-web $min_rustc in" \
    "bookworm-security: enable that suite in the apt sources and run tools/setup.sh again" >&2
  exit 1
fi
sysroot=$(rustc --print sysroot)
[[ -d $sysroot/lib/rustlib/src/rust/library/core ]] ||
  { echo "setup.sh: no Rust library source under $sysroot (rust-web-src)" >&2; exit 1; }
for tool in cargo rustc ld.lld qemu-system-aarch64 jq; do
  command -v "$tool" >/dev/null || { echo "setup.sh: $tool not found after install" >&2; exit 1; }
done
# The lint gates: cargo runs the first cargo-fmt/cargo-clippy on PATH, which must be
# Debian's, of the same version as rustc (a rustup clippy-driver cannot read
# rustc-web's metadata).
for tool in cargo-fmt rustfmt cargo-clippy clippy-driver; do
  [[ $(command -v "$tool") == /usr/bin/$tool ]] ||
    { echo "setup.sh: $tool is $(command -v "$tool" || echo missing), not /usr/bin/$tool (rustfmt-web, rust-web-clippy)" >&2; exit 1; }
done
cargo fmt --version >/dev/null && cargo clippy --version >/dev/null ||
  { echo "setup.sh: cargo fmt / cargo clippy do not run" >&2; exit 1; }

# Guest downloads (later milestones): payloads that are not Rust crates, such as the
# Debian arm64 Linux kernel for the linux-vm PD, are fetched with `apt-get download`
# into .cache/ (gitignored, outside git) here, once, and reused while present.
