#!/usr/bin/env bash
# tools/guest-image.sh: builds the vcpos Linux guest (an unmodified Debian arm64
# cloud kernel Image plus a busybox initramfs) from Debian's arm64 packages.
#
# Usage: tools/guest-image.sh [--boot-test [boot-test options]]
#
# Everything is cached outside git under .cache/guest/ (override with
# VCPOS_GUEST_CACHE; VCPOS_GUEST_KERNEL_PATTERN picks another kernel series);
# a second run downloads nothing and rewrites nothing unless Debian's current
# kernel package changed. Outputs:
#   .cache/guest/Image       uncompressed arm64 Image (from /boot/vmlinuz-*)
#   .cache/guest/initrd.gz   gzip'd cpio (newc): busybox, virtio modules, /init,
#                            /bin/vcpos-mmio-bench if built (linux-vm/guest/bench)
#   .cache/guest/manifest.txt packages, versions, sha256s, sizes
# With --boot-test, linux-vm/guest/boot-test.sh then boots them on QEMU
# (remaining arguments go to it, e.g. --runs 3 --machine virt,virtualization=on,gic-version=3).
#
# Needs root only to add the arm64 architecture to dpkg (once) and to install
# cpio if missing; without root it prints the commands and exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GUEST_SRC=$ROOT/linux-vm/guest
CACHE=${VCPOS_GUEST_CACHE:-$ROOT/.cache/guest}
# Which kernel packages qualify; the highest version among them is used. Set
# e.g. VCPOS_GUEST_KERNEL_PATTERN='^linux-image-6\.1\.0-.*-cloud-arm64-unsigned$'
# to stay on Debian 12's original 6.1 series.
KERNEL_PATTERN=${VCPOS_GUEST_KERNEL_PATTERN:-'^linux-image-.*-cloud-arm64-unsigned$'}
BUSYBOX_PKG=busybox-static

log() { echo "guest-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

boot_test=0
boot_args=()
while (($#)); do
    case "$1" in
        --boot-test) boot_test=1; shift; boot_args=("$@"); break ;;
        -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument '$1' (try --help)" ;;
    esac
done

# Runs "$@" as root, or prints the commands a root user must run and exits 1.
need_root() {
    if ((EUID != 0)); then
        log "this step needs root; run these commands as root, then run $0 again:"
        printf '    %s\n' "$@" >&2
        exit 1
    fi
    local cmd
    for cmd in "$@"; do
        log "running: $cmd"
        sh -c "$cmd" >&2
    done
}

t_start=$(now)
mkdir -p "$CACHE/debs" "$CACHE/pkgs"
exec 9>"$CACHE/.lock"
flock 9 # one build at a time per cache

# --- 1. host prerequisites -------------------------------------------------
apt_updated=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    need_root "dpkg --add-architecture arm64" "apt-get update"
    apt_updated=1
fi
# Tools and the Debian packages that provide them (gzip and dpkg-deb come with
# every Debian system; cpio and xz, for the kernel's .ko.xz modules, may not).
missing_pkgs=""
for pair in cpio:cpio xz:xz-utils gzip:gzip dpkg-deb:dpkg; do
    command -v "${pair%%:*}" >/dev/null || missing_pkgs="$missing_pkgs ${pair#*:}"
done
if [[ -n $missing_pkgs ]]; then
    need_root "apt-get install -y --no-install-recommends$missing_pkgs"
fi

# --- 2. which packages -----------------------------------------------------
# Highest-versioned cloud kernel image package known to apt (the ABI in its
# name moves with security updates, so it is never hard-coded).
find_kernel_pkg() {
    apt-cache search --names-only "$KERNEL_PATTERN" | awk '{ print $1 }' | sort -V | tail -n 1
}
# Candidate versions of arm64 packages (one apt-cache call: each takes seconds).
declare -A cand=()
load_candidates() {
    cand=()
    local pkg ver
    while read -r pkg ver; do cand[$pkg]=$ver; done < <(
        apt-cache policy "${@/%/:arm64}" 2>/dev/null | awk '
            /^[^ ]/ { p = $1; sub(/:arm64:$/, "", p) }
            $1 == "Candidate:" && $2 != "(none)" { print p, $2 }')
}
candidate() { echo "${cand[$1]:-}"; }
apt_update() {
    ((apt_updated)) && return 1
    need_root "apt-get update"
    apt_updated=1
}

kernel_pkg=$(find_kernel_pkg)
[[ -n $kernel_pkg ]] && load_candidates "$kernel_pkg" "$BUSYBOX_PKG"
if [[ -z $kernel_pkg || -z $(candidate "$kernel_pkg") || -z $(candidate "$BUSYBOX_PKG") ]]; then
    log "apt's package lists lack the arm64 packages; updating them"
    apt_update || true
    kernel_pkg=$(find_kernel_pkg)
    [[ -n $kernel_pkg ]] && load_candidates "$kernel_pkg" "$BUSYBOX_PKG"
fi
[[ -n $kernel_pkg ]] || die "no package matches $KERNEL_PATTERN (is arm64 enabled and apt updated?)"
log "kernel package: $kernel_pkg"

# Downloads (once) package $1 at its candidate version into $CACHE/debs and
# prints the file's name. apt checks it against the signed package lists.
fetch_deb() {
    local pkg=$1 ver file tmp
    ver=$(candidate "$pkg")
    [[ -n $ver ]] || { log "apt knows no candidate for $pkg:arm64"; return 1; }
    file="${pkg}_${ver//:/%3a}_arm64.deb"
    if [[ ! -s $CACHE/debs/$file ]]; then
        log "downloading $pkg:arm64=$ver"
        tmp=$(mktemp -d "$CACHE/debs/.dl.XXXXXX")
        local sandbox=()
        ((EUID == 0)) && sandbox=(-o APT::Sandbox::User=root)
        if ! (cd "$tmp" && apt-get download -q "${sandbox[@]}" "$pkg:arm64=$ver" >&2); then
            rm -rf "$tmp"
            return 1
        fi
        [[ -s $tmp/$file ]] || { rm -rf "$tmp"; log "apt-get download did not write $file"; return 1; }
        mv "$tmp/$file" "$CACHE/debs/$file"
        rm -rf "$tmp"
    fi
    echo "$file"
}
t_dl=$(now)
if ! kernel_deb=$(fetch_deb "$kernel_pkg") || ! busybox_deb=$(fetch_deb "$BUSYBOX_PKG"); then
    # Stale lists name a version the mirror no longer has: refresh once, retry.
    apt_update || die "download failed"
    kernel_pkg=$(find_kernel_pkg)
    load_candidates "$kernel_pkg" "$BUSYBOX_PKG"
    kernel_deb=$(fetch_deb "$kernel_pkg") || die "cannot download $kernel_pkg:arm64"
    busybox_deb=$(fetch_deb "$BUSYBOX_PKG") || die "cannot download $BUSYBOX_PKG:arm64"
fi
log "packages ready in $(since "$t_dl") s: $kernel_deb $busybox_deb"

# --- 3. unpack (without installing) ----------------------------------------
unpack() {
    local deb=$1 dir=$CACHE/pkgs/${1%.deb}
    if [[ ! -e $dir/.unpacked ]]; then
        rm -rf "$dir" "$dir.tmp"
        dpkg-deb -x "$CACHE/debs/$deb" "$dir.tmp"
        touch "$dir.tmp/.unpacked"
        mv "$dir.tmp" "$dir"
    fi
    echo "$dir"
}
t_unpack=$(now)
kernel_dir=$(unpack "$kernel_deb")
busybox_dir=$(unpack "$busybox_deb")
log "unpacked in $(since "$t_unpack") s"

# Old kernel ABIs / busybox versions left from earlier runs are not needed.
for f in "$CACHE"/debs/*.deb; do
    [[ -e $f ]] || continue
    b=${f##*/}
    if [[ $b != "$kernel_deb" && $b != "$busybox_deb" ]]; then
        log "removing stale $b"
        rm -rf "$f" "$CACHE/pkgs/${b%.deb}"
    fi
done

# --- 4. the kernel Image ---------------------------------------------------
t_asm=$(now)
shopt -s nullglob
vmlinuz=("$kernel_dir"/boot/vmlinuz-*)
moddirs=("$kernel_dir"/lib/modules/*)
shopt -u nullglob
((${#vmlinuz[@]} == 1)) || die "expected one boot/vmlinuz-* in $kernel_deb, found ${#vmlinuz[@]}"
((${#moddirs[@]} == 1)) || die "expected one lib/modules/* in $kernel_deb, found ${#moddirs[@]}"
kver=${moddirs[0]##*/}
moddir=${moddirs[0]}

image_tmp=$CACHE/.Image.tmp
case "$(od -An -tx1 -N2 "${vmlinuz[0]}" | tr -d ' ')" in
    1f8b) gzip -dc "${vmlinuz[0]}" >"$image_tmp" ;; # an Image.gz
    *) cp "${vmlinuz[0]}" "$image_tmp" ;;
esac
# The arm64 boot protocol's header: magic "ARM\x64" at byte 0x38.
[[ $(od -An -tx1 -j 56 -N4 "$image_tmp" | tr -d ' ') == 41524d64 ]] ||
    die "${vmlinuz[0]##*/} is not an arm64 Image (no ARM\\x64 magic at 0x38)"
# Header flags at 0x18, bits 1-2: page size (1 = 4K, 2 = 16K, 3 = 64K).
page_bits=$(( ($(od -An -tu8 -j 24 -N8 "$image_tmp") >> 1) & 3 ))
page_size=$(case $page_bits in 1) echo 4K ;; 2) echo 16K ;; 3) echo 64K ;; *) echo unspecified ;; esac)

# Replaces $2 with $1 only when the content differs (keeps mtimes stable).
install_if_changed() {
    if [[ -e $2 ]] && cmp -s "$1" "$2"; then
        rm -f "$1"
        echo unchanged
    else
        mv -f "$1" "$2"
        echo written
    fi
}
image_state=$(install_if_changed "$image_tmp" "$CACHE/Image")

# --- 5. the initramfs -------------------------------------------------------
stage=$CACHE/initrd-root
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules,dev,proc,sys,tmp,run,root}

[[ -x $busybox_dir/bin/busybox ]] || die "$busybox_deb has no bin/busybox"
cp "$busybox_dir/bin/busybox" "$stage/bin/busybox"
# /init is a busybox sh script; it runs "busybox --install -s" for the rest
# (the arm64 binary cannot be run here to list its applets).
ln -s busybox "$stage/bin/sh"
install -m 0755 "$GUEST_SRC/init" "$stage/init"
# The guest-side MMIO-exit benchmark (linux-vm/guest/bench, a static arm64 program
# built by tools/build-targets.sh), when it has been built.
target_dir=${CARGO_TARGET_DIR:-target}
[[ $target_dir == /* ]] || target_dir=$ROOT/$target_dir
bench_bin=$target_dir/aarch64-unknown-none-softfloat/release/vcpos-mmio-bench
if [[ -f $bench_bin ]]; then
    install -m 0755 "$bench_bin" "$stage/bin/vcpos-mmio-bench"
    bench_note="sha256=$(sha256sum "$bench_bin" | cut -d' ' -f1)"
else
    log "no $bench_bin yet (tools/build-targets.sh builds it): no /bin/vcpos-mmio-bench in the initramfs"
    bench_note=absent
fi

# Module name as the kernel sees it: basename without .ko[.xz|.zst|.gz], '-' -> '_'.
modnames_awk='function m(p) { sub(/.*\//, "", p); sub(/\.ko.*/, "", p); gsub(/-/, "_", p); return p }'
# The package ships no modules.dep (depmod makes it when installing), so the
# module files are found by name and their dependencies read from .modinfo.
declare -A mod_path=()
while read -r name path; do
    mod_path[$name]=$path
done < <(cd "$moddir" && find kernel -name '*.ko*' | awk "$modnames_awk"'{ print m($0), $0 }')
declare -A builtin=()
if [[ -f $moddir/modules.builtin ]]; then
    while read -r name; do builtin[$name]=1; done < <(awk "$modnames_awk"'{ print m($0) }' "$moddir/modules.builtin")
fi
# Decompresses module file $1 to stdout.
decompress_module() {
    case "$1" in
        *.ko) cat "$1" ;;
        *.ko.xz) command -v xz >/dev/null || die "xz is missing (apt-get install xz-utils)"; xz -dc "$1" ;;
        *.ko.zst) command -v zstd >/dev/null || die "zstd is missing (apt-get install zstd)"; zstd -qdc "$1" ;;
        *.ko.gz) gzip -dc "$1" ;;
        *) die "unknown module file type: $1" ;;
    esac
}
# The "depends=a,b" string modpost puts into every module's .modinfo section.
module_depends() {
    local lines
    lines=$(tr '\0' '\n' <"$1" | grep -a '^depends=' || true)
    [[ $(grep -c . <<<"$lines") -le 1 && -n $lines ]] || die "cannot read depends= from ${1##*/}"
    lines=${lines#depends=}
    echo "${lines//,/ }"
}

declare -A listed=()
order=()
compression=()
while IFS= read -r name; do
    name=${name%%#*}
    name=${name//[[:space:]]/}
    [[ -n $name ]] || continue
    if [[ -n ${builtin[$name]:-} ]]; then
        log "module $name is built into $kver; skipping"
        listed[$name]=1
        continue
    fi
    path=${mod_path[$name]:-}
    [[ -n $path ]] || die "module $name is neither a module file nor in modules.builtin of $kver"
    dst=$stage/lib/modules/$name.ko
    decompress_module "$moddir/$path" >"$dst"
    deps=$(module_depends "$dst")
    for d in $deps; do
        d=${d//-/_}
        [[ -n ${listed[$d]:-} ]] ||
            die "module $name needs $d, which is not listed before it in linux-vm/guest/modules"
    done
    ext=${path##*.ko}
    ext=${ext#.}
    compression+=("$name:${ext:-none}")
    listed[$name]=1
    order+=("$name")
done <"$GUEST_SRC/modules"
printf '%s\n' "${order[@]}" >"$stage/etc/modules"
echo "$kver" >"$stage/etc/vcpos-guest-kernel"

if ((EUID == 0)); then
    # The kernel opens /dev/console before running /init.
    mknod -m 0600 "$stage/dev/console" c 5 1
else
    log "not root: no /dev/console node in the archive (/init reopens it from devtmpfs)"
fi

# Reproducible archive: fixed mtimes and owners, sorted names, no gzip timestamp.
find "$stage" -exec touch -h -d @0 {} +
initrd_tmp=$CACHE/.initrd.gz.tmp
(cd "$stage" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
    cpio --null --create --format=newc --owner=0:0 --reproducible --quiet) |
    gzip -9 -n >"$initrd_tmp"
initrd_state=$(install_if_changed "$initrd_tmp" "$CACHE/initrd.gz")
log "assembled in $(since "$t_asm") s"

# --- 6. manifest and summary -----------------------------------------------
size() { stat -c %s "$1"; }
{
    echo "kernel_package=$kernel_pkg"
    echo "kernel_version=$(candidate "$kernel_pkg")"
    echo "kernel_deb=$kernel_deb sha256=$(sha256sum "$CACHE/debs/$kernel_deb" | cut -d' ' -f1)"
    echo "busybox_version=$(candidate "$BUSYBOX_PKG")"
    echo "busybox_deb=$busybox_deb sha256=$(sha256sum "$CACHE/debs/$busybox_deb" | cut -d' ' -f1)"
    echo "kernel_release=$kver"
    echo "image_page_size=$page_size"
    echo "modules=${order[*]}"
    echo "module_compression=${compression[*]}"
    echo "vcpos_mmio_bench=$bench_note"
    echo "image_bytes=$(size "$CACHE/Image") sha256=$(sha256sum "$CACHE/Image" | cut -d' ' -f1)"
    echo "initrd_bytes=$(size "$CACHE/initrd.gz") sha256=$(sha256sum "$CACHE/initrd.gz" | cut -d' ' -f1)"
} >"$CACHE/manifest.txt"

log "kernel $kver ($page_size pages), modules: ${order[*]}"
log "module files: ${compression[*]}"
log "done in $(since "$t_start") s"
echo "Image:  $CACHE/Image ($(size "$CACHE/Image") bytes, $image_state)"
echo "initrd: $CACHE/initrd.gz ($(size "$CACHE/initrd.gz") bytes, $initrd_state)"

if ((boot_test)); then
    exec "$GUEST_SRC/boot-test.sh" --image "$CACHE/Image" --initrd "$CACHE/initrd.gz" "${boot_args[@]}"
fi
