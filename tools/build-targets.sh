#!/usr/bin/env bash
# Builds every target crate (the kernel and all PDs) for aarch64 in ONE cargo
# invocation, so that core and alloc (-Zbuild-std) are compiled once.
#
# Target crates are found in the workspace: the members that are not default members
# (the default members are the host crates) and have a binary target (the kernel, the
# PDs). Libraries such as the PD runtime are built as their dependencies.
# Output: target/aarch64-unknown-none-softfloat/release/<binary>.
#
# Usage: tools/build-targets.sh [--list | --clippy] [EXTRA-CARGO-ARGS...]
#   --list     print the target crates and exit
#   --clippy   lint them instead (same invocation, `cargo clippy ... -- -D warnings`:
#              any warning fails; ./test.sh's target lint gate)
set -euo pipefail
export PATH=/usr/bin:$PATH # Debian's toolchain before rustup's, if any
cd "$(dirname "$0")/.."    # the workspace root: .cargo/config.toml sets the linker

list=$(cargo metadata --no-deps --format-version 1 | jq -r '
  .workspace_default_members as $host
  | .packages[]
  | select(.id as $id | any($host[]; . == $id) | not)
  | select(any(.targets[]; .kind | index("bin")))
  | .name')
[[ -n $list ]] || { echo "build-targets.sh: no target crates found" >&2; exit 1; }
mapfile -t packages <<<"$list"
mode=build
case ${1:-} in
  --list)
    printf '%s\n' "${packages[@]}"
    exit 0
    ;;
  --clippy)
    mode=clippy
    shift
    ;;
esac

args=()
for p in "${packages[@]}"; do args+=(-p "$p"); done
cargo_args=(--release -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem
  --target aarch64-unknown-none-softfloat "${args[@]}" "$@")
# -Z flags on Debian's stable toolchain need RUSTC_BOOTSTRAP.
if [[ $mode == clippy ]]; then
  echo "build-targets.sh: linting ${packages[*]}"
  RUSTC_BOOTSTRAP=1 cargo clippy "${cargo_args[@]}" -- -D warnings
else
  echo "build-targets.sh: building ${packages[*]}"
  RUSTC_BOOTSTRAP=1 cargo build "${cargo_args[@]}"
fi
