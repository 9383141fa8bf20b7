#!/usr/bin/env bash
# linux-vm/guest/boot-test.sh: boots the guest Image + initrd.gz built by
# tools/guest-image.sh directly on QEMU (no vcpos), types a command into its
# shell through the serial console and checks the answer. Prints per run the
# wall time from QEMU's start to the "vcpos-guest: ready" marker and to the
# shell prompt, the guest's own uptime at the marker, and the medians.
#
# Usage: boot-test.sh [--image F] [--initrd F] [--runs N] [--timeout S]
#                     [--mem MB] [--append ARGS]
#                     [--devices mmio|none] [--console ttyAMA0|hvc0]
#                     [--qemu-arg ARG]...
# The QEMU command line is the runner's (`vcpos qemu-args --linux ...`, the one
# home of it, shared with vcpos runs and the VM benchmark's direct baseline):
# machine, CPU and QEMU binary from kernel-config/qemu_virt_aarch64.toml
# ($QEMU overrides the binary), no default devices.
# Defaults: .cache/guest/{Image,initrd.gz}, 1 run, 60 s per run, -m 512,
#   console=ttyAMA0,
#   --devices mmio: one virtio-blk-device on a small disk image
#   whose first bytes are "vcpos-disk-ok" and one virtio-net-device (slirp,
#   restrict=on, MAC 52:54:00:00:00:2a); the shell must read both back.
#   --console hvc0 puts the console on a virtconsole (virtio-serial-device)
#   instead of the PL011, appending console=hvc0 (kernel messages before the
#   virtio_mmio module loads are then not shown).
# Exit status 0 iff every run passed; the last line is "boot-test: N passed, M failed".
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${VCPOS_GUEST_CACHE:-$ROOT/.cache/guest}
image=$CACHE/Image
initrd=$CACHE/initrd.gz
runs=1
timeout=60
mem=512
append=console=ttyAMA0
devices=mmio
console=ttyAMA0
extra=()

die() { echo "boot-test: error: $*" >&2; exit 2; }
while (($#)); do
    (($# >= 2)) || die "option $1 needs a value"
    case "$1" in
        --image) image=$2 ;;
        --initrd) initrd=$2 ;;
        --runs) runs=$2 ;;
        --timeout) timeout=$2 ;;
        --mem) mem=$2 ;;
        --append) append=$2 ;;
        --devices) devices=$2 ;;
        --console) console=$2 ;;
        --qemu-arg) extra+=("$2") ;;
        *) die "unknown option $1" ;;
    esac
    shift 2
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer (seconds)"
[[ $devices == mmio || $devices == none ]] || die "--devices must be mmio or none"
case "$console" in
    ttyAMA0) console_mode=captured ;;
    hvc0)
        console_mode=virtio
        append=${append//console=ttyAMA0/console=hvc0}
        ;;
    *) die "--console must be ttyAMA0 or hvc0" ;;
esac
[[ -f $image && -f $initrd ]] || die "missing $image or $initrd: run tools/guest-image.sh first"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

logdir=$CACHE/boot-test
mkdir -p "$logdir"
qemu_pid=""
work=$(mktemp -d)
cleanup() {
    if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT
# Writing to QEMU's input after it exited must fail, not kill this script.
trap '' PIPE

# The command typed into the guest's shell and the line it must print. The
# echoed command line itself never contains the expected text.
# shellcheck disable=SC2016 # expanded by the guest's shell, not here
command='echo vcpos-guest-$((6*7))'
expect='vcpos-guest-42'
device_args=()
if [[ $devices == mmio ]]; then
    disk=$work/disk.img
    printf 'vcpos-disk-ok' >"$disk"
    truncate -s 8M "$disk"
    device_args=(--device "disk=$disk" --device nic=52:54:00:00:00:2a)
    # shellcheck disable=SC2016
    command+=' disk=$(head -c 13 /dev/vda) net=$(cat /sys/class/net/eth0/address)'
    expect+=' disk=vcpos-disk-ok net=52:54:00:00:00:2a'
fi

# The QEMU command line, one word per line from the runner.
qemu_words=$(cd "$ROOT" && cargo run -q -p vcpos-tool --bin vcpos -- qemu-args --console "$console_mode" \
    --memory "${mem}M" --linux "$image" --initrd "$initrd" --append "$append" "${device_args[@]}") ||
    die "vcpos qemu-args failed"
mapfile -t qemu <<<"$qemu_words"
if [[ -n ${QEMU:-} ]]; then qemu[0]=$QEMU; fi
command -v "${qemu[0]}" >/dev/null || die "${qemu[0]} not found (run tools/setup.sh)"

# Waits until the log holds fixed string $1 (returns 0), QEMU exits or the
# run's deadline passes (returns 1).
wait_for() {
    while :; do
        grep -qF -- "$1" "$log" && return 0
        kill -0 "$qemu_pid" 2>/dev/null || { grep -qF -- "$1" "$log"; return; }
        [[ $(awk -v d="$deadline" -v n="$(now)" 'BEGIN { print (n > d) }') == 1 ]] && return 1
        sleep 0.02
    done
}

passed=0
failed=0
ready_t=() prompt_t=() uptime_t=()
for ((i = 1; i <= runs; i++)); do
    log=$logdir/run-$i.log
    : >"$log"
    rm -f "$work/in"
    mkfifo "$work/in"
    t0=$(now)
    deadline=$(awk -v t="$t0" -v s="$timeout" 'BEGIN { printf "%.3f", t + s }')
    "${qemu[@]}" "${extra[@]}" <"$work/in" >"$log" 2>&1 &
    qemu_pid=$!
    exec 3>"$work/in"

    verdict=FAIL
    reason=""
    if ! wait_for "vcpos-guest: ready"; then
        reason="no 'vcpos-guest: ready' marker"
    else
        t_ready=$(now)
        if ! wait_for "vcpos-guest# "; then
            reason="no shell prompt"
        else
            t_prompt=$(now)
            echo "$command" >&3 2>/dev/null || true
            if ! wait_for "$expect"; then
                reason="shell did not answer '$expect'"
            elif grep -qF "job control turned off" "$log"; then
                reason="the shell has no controlling tty (job control turned off)"
            else
                verdict=PASS
            fi
        fi
    fi
    # Leaving the shell makes /init power the VM off, which ends QEMU.
    echo exit >&3 2>/dev/null || true
    while kill -0 "$qemu_pid" 2>/dev/null && [[ $(awk -v d="$deadline" -v n="$(now)" 'BEGIN { print (n > d) }') == 0 ]]; do
        sleep 0.05
    done
    if kill -0 "$qemu_pid" 2>/dev/null; then
        kill "$qemu_pid" 2>/dev/null || true
        [[ $verdict == PASS ]] && { verdict=FAIL; reason="QEMU did not exit after the shell's exit (no power-off)"; }
    fi
    wait "$qemu_pid" 2>/dev/null || true
    qemu_pid=""
    exec 3>&-
    t_end=$(now)

    if [[ $verdict == PASS ]]; then
        up=$(sed -n 's/.*vcpos-guest: ready uptime=\([0-9.]*\)s.*/\1/p' "$log" | head -n 1)
        ready_t+=("$(elapsed "$t0" "$t_ready")")
        prompt_t+=("$(elapsed "$t0" "$t_prompt")")
        uptime_t+=("${up:-0}")
        echo "boot-test: run $i PASS: qemu start -> ready ${ready_t[-1]} s, -> prompt ${prompt_t[-1]} s," \
            "guest uptime at ready ${up:-?} s, whole run $(elapsed "$t0" "$t_end") s (log $log)"
        passed=$((passed + 1))
    else
        echo "boot-test: run $i FAIL: $reason after $(elapsed "$t0" "$t_end") s; last lines of $log:"
        tail -n 25 "$log" | sed 's/^/    | /'
        failed=$((failed + 1))
    fi
done

echo "boot-test: ${qemu[*]} ${extra[*]}"
if ((passed > 0)); then
    echo "boot-test: median of $passed: ready $(median "${ready_t[@]}") s, prompt $(median "${prompt_t[@]}") s," \
        "guest uptime at ready $(median "${uptime_t[@]}") s"
fi
echo "boot-test: $passed passed, $failed failed"
((failed == 0))
