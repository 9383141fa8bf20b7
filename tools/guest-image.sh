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
#   .cache/guest/initrd.gz   gzip'd cpio (newc): busybox, modules (virtio, ext4),
#                            e2fsprogs' mke2fs/e2fsck/tune2fs/dumpe2fs with their
#                            shared libraries, /init, udhcpc's default script
#                            (DHCP for eth0), /bin/vcpos-mmio-bench if built
#                            (linux-vm/guest/bench)
#   .cache/guest/manifest.txt packages, versions, sha256s, sizes
# With --boot-test, linux-vm/guest/boot-test.sh then boots them on QEMU
# (remaining arguments go to it, e.g. --runs 3 --machine virt,virtualization=on,gic-version=3).
#
# Needs root only to add the arm64 architecture to dpkg (once) and to install
# cpio, xz-utils or binutils (readelf) if missing; without root it prints the
# commands and exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GUEST_SRC=$ROOT/linux-vm/guest
CACHE=${VCPOS_GUEST_CACHE:-$ROOT/.cache/guest}
# Which kernel packages qualify; the highest version among them is used. Set
# e.g. VCPOS_GUEST_KERNEL_PATTERN='^linux-image-6\.1\.0-.*-cloud-arm64-unsigned$'
# to stay on Debian 12's original 6.1 series.
KERNEL_PATTERN=${VCPOS_GUEST_KERNEL_PATTERN:-'^linux-image-.*-cloud-arm64-unsigned$'}
BUSYBOX_PKG=busybox-static
# e2fsprogs for the guest's disk (/dev/vda): these programs from its package go to
# /sbin, with the shared libraries they need (their ELF NEEDED closure) taken from
# the library packages below and the dynamic loader at the path their PT_INTERP names.
E2FS_PKG=e2fsprogs
E2FS_PROGRAMS=(mke2fs e2fsck tune2fs dumpe2fs)
# Names busybox would otherwise answer with its own, smaller applets.
E2FS_LINKS=(mkfs.ext4:mke2fs mkfs.ext2:mke2fs fsck.ext4:e2fsck e2label:tune2fs)
# Where the closure's libraries come from (libe2p is in libext2fs2); a library
# none of them holds stops the build with its name.
LIB_PKGS=(libext2fs2 libcom-err2 libblkid1 libuuid1 libc6)

log() { echo "guest-image: $*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

boot_test=0
boot_args=()
while (($#)); do
    case "$1" in
        --boot-test) boot_test=1; shift; boot_args=("$@"); break ;;
        -h|--help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
for pair in cpio:cpio xz:xz-utils gzip:gzip dpkg-deb:dpkg readelf:binutils; do
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
# Every package but the kernel's (whose name moves), in download order.
user_pkgs=("$BUSYBOX_PKG" "$E2FS_PKG" "${LIB_PKGS[@]}")
all_candidates() {
    local p
    [[ -n $kernel_pkg && -n $(candidate "$kernel_pkg") ]] || return 1
    for p in "${user_pkgs[@]}"; do [[ -n $(candidate "$p") ]] || return 1; done
}
[[ -n $kernel_pkg ]] && load_candidates "$kernel_pkg" "${user_pkgs[@]}"
if ! all_candidates; then
    log "apt's package lists lack the arm64 packages; updating them"
    apt_update || true
    kernel_pkg=$(find_kernel_pkg)
    [[ -n $kernel_pkg ]] && load_candidates "$kernel_pkg" "${user_pkgs[@]}"
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
declare -A deb=() # package -> .deb file name in $CACHE/debs
fetch_all() {
    local p
    for p in "$kernel_pkg" "${user_pkgs[@]}"; do
        deb[$p]=$(fetch_deb "$p") || return 1
    done
}
if ! fetch_all; then
    # Stale lists name a version the mirror no longer has: refresh once, retry.
    apt_update || die "download failed"
    kernel_pkg=$(find_kernel_pkg)
    load_candidates "$kernel_pkg" "${user_pkgs[@]}"
    fetch_all || die "cannot download the arm64 packages: $kernel_pkg ${user_pkgs[*]}"
fi
kernel_deb=${deb[$kernel_pkg]}
busybox_deb=${deb[$BUSYBOX_PKG]}
log "packages ready in $(since "$t_dl") s: ${deb[*]}"

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
declare -A pkg_dir=() # package -> its unpacked tree
for p in "$kernel_pkg" "${user_pkgs[@]}"; do
    pkg_dir[$p]=$(unpack "${deb[$p]}")
done
kernel_dir=${pkg_dir[$kernel_pkg]}
busybox_dir=${pkg_dir[$BUSYBOX_PKG]}
log "unpacked in $(since "$t_unpack") s"

# Old kernel ABIs / package versions left from earlier runs are not needed.
declare -A current=()
for p in "${!deb[@]}"; do current[${deb[$p]}]=1; done
for f in "$CACHE"/debs/*.deb; do
    [[ -e $f ]] || continue
    b=${f##*/}
    if [[ -z ${current[$b]:-} ]]; then
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
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,etc,lib/modules,dev,proc,sys,tmp,run,root,mnt}

[[ -x $busybox_dir/bin/busybox ]] || die "$busybox_deb has no bin/busybox"
cp "$busybox_dir/bin/busybox" "$stage/bin/busybox"
# /init is a busybox sh script; it runs "busybox --install -s" for the rest
# (the arm64 binary cannot be run here to list its applets).
ln -s busybox "$stage/bin/sh"
install -m 0755 "$GUEST_SRC/init" "$stage/init"
# What busybox udhcpc runs with a lease (sets eth0's address, route, resolv.conf).
install -D -m 0755 "$GUEST_SRC/udhcpc.script" "$stage/etc/udhcpc/default.script"
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

# e2fsprogs' programs and the closure of the shared libraries they need. The
# libraries go to /lib/aarch64-linux-gnu (a directory Debian's arm64 loader
# searches without /etc/ld.so.cache), the loader to the program's PT_INTERP path.
e2fs_dir=${pkg_dir[$E2FS_PKG]}
lib_dirs=()
for p in "${LIB_PKGS[@]}"; do
    for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
        [[ -d ${pkg_dir[$p]}/$d ]] && lib_dirs+=("${pkg_dir[$p]}/$d")
    done
done
# The NEEDED sonames of ELF file $1, one a line.
elf_needed() {
    readelf -d "$1" | sed -n 's/.*(NEEDED).*Shared library: \[\(.*\)\]$/\1/p'
}
# The PT_INTERP path of ELF file $1 (empty for a static program or a library).
elf_interp() {
    readelf -l "$1" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]$/\1/p'
}
# Checks that $1 is an AArch64 ELF file.
elf_is_arm64() {
    readelf -h "$1" 2>/dev/null | grep -q 'Machine:[[:space:]]*AArch64'
}
interp=""
declare -A lib_done=()
lib_queue=()
for prog in "${E2FS_PROGRAMS[@]}"; do
    src=$e2fs_dir/sbin/$prog
    [[ -f $src ]] || die "${deb[$E2FS_PKG]} has no sbin/$prog"
    elf_is_arm64 "$src" || die "sbin/$prog of ${deb[$E2FS_PKG]} is not an AArch64 ELF file"
    install -m 0755 "$src" "$stage/sbin/$prog"
    i=$(elf_interp "$src")
    [[ -n $i ]] || die "sbin/$prog of ${deb[$E2FS_PKG]} names no program interpreter"
    [[ -z $interp || $i == "$interp" ]] || die "e2fsprogs programs name two interpreters: $interp and $i"
    interp=$i
    mapfile -t -O "${#lib_queue[@]}" lib_queue < <(elf_needed "$src")
done
for pair in "${E2FS_LINKS[@]}"; do
    ln -s "${pair#*:}" "$stage/sbin/${pair%%:*}"
done
# mke2fs reads its defaults from /etc/mke2fs.conf (built-in ones otherwise);
# e2fsck asks /etc/mtab whether the file system is mounted.
[[ -f $e2fs_dir/etc/mke2fs.conf ]] && install -m 0644 "$e2fs_dir/etc/mke2fs.conf" "$stage/etc/mke2fs.conf"
ln -s /proc/mounts "$stage/etc/mtab"
# The loader: found like a library, installed at the interpreter path.
find_lib() {
    local d
    for d in "${lib_dirs[@]}"; do
        [[ -e $d/$1 ]] && { readlink -f "$d/$1"; return 0; }
    done
    return 1
}
src=$(find_lib "${interp##*/}") || die "no package of LIB_PKGS (${LIB_PKGS[*]}) holds the loader ${interp##*/}"
mkdir -p "$stage${interp%/*}"
install -m 0755 "$src" "$stage$interp"
lib_done[${interp##*/}]=1
mkdir -p "$stage/lib/aarch64-linux-gnu"
libs=()
while ((${#lib_queue[@]})); do
    soname=${lib_queue[0]}
    lib_queue=("${lib_queue[@]:1}")
    [[ -z ${lib_done[$soname]:-} ]] || continue
    lib_done[$soname]=1
    src=$(find_lib "$soname") ||
        die "no package of LIB_PKGS (${LIB_PKGS[*]}) holds $soname, needed by e2fsprogs: add its package"
    elf_is_arm64 "$src" || die "$soname ($src) is not an AArch64 ELF file"
    install -m 0755 "$src" "$stage/lib/aarch64-linux-gnu/$soname"
    libs+=("$soname")
    mapfile -t -O "${#lib_queue[@]}" lib_queue < <(elf_needed "$src")
done
closure_bytes=$(du -cb "$stage/sbin" "$stage/lib/aarch64-linux-gnu" "$stage$interp" | tail -n 1 | cut -f1)
log "e2fsprogs: ${E2FS_PROGRAMS[*]}, loader $interp, libraries ${libs[*]} ($closure_bytes bytes uncompressed)"

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
    echo "e2fsprogs_version=$(candidate "$E2FS_PKG") programs=${E2FS_PROGRAMS[*]}"
    echo "e2fsprogs_interp=$interp libraries=${libs[*]} closure_bytes=$closure_bytes"
    for p in "$E2FS_PKG" "${LIB_PKGS[@]}"; do
        echo "deb=${deb[$p]} sha256=$(sha256sum "$CACHE/debs/${deb[$p]}" | cut -d' ' -f1)"
    done
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
