//! QEMU integration tests of the Linux guest's disk `/dev/vda`: a file system made,
//! written, checked and found again on the next boot, and a data pattern written and
//! read back past the guest's page cache. Each test takes the system under test
//! ([`Sut`]) as a parameter: today the guest booted directly on QEMU; the same tests
//! run on vcpos once the block VCP serves the guest's disk. They need the guest files
//! (`tools/guest-image.sh`, with `/bin/vcpos-mmio-bench` from `tools/build-targets.sh`);
//! `./test.sh` makes both first, and the tests fail without them.

use std::path::Path;

use vcpos_guest_bench::blk::check_pattern;
use vcpos_tests::disk::{
    assert_done, create_disk, fail, host_sha256, scratch_disk, Sut, BLK_COMMAND, DISK_MIB, MOUNTED, NO_FILE_SYSTEM,
    NO_MOUNT,
};
use vcpos_tests::linux::{self, command, until_ready, LINUX_TIMEOUT, PROMPT};
use vcpos_tool::runner::Step;

/// Byte offset of the ext2/3/4 superblock's magic (0xef53, little-endian) in the disk.
const EXT_MAGIC_OFFSET: u64 = 1024 + 0x38;

/// Keeps the guest kernel's informational messages (ext4's mount lines, ...) off the
/// console, so that none lands inside a line a step waits for; panics still show.
const QUIET: &str = "dmesg -n 1";

/// Reads `len` bytes at `offset` of the host file `path`.
fn read_host(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.seek(SeekFrom::Start(offset)).unwrap();
    let mut buf = vec![0; len];
    f.read_exact(&mut buf).unwrap();
    buf
}

/// A fresh sparse disk: mkfs.ext4 on it, mount, write files (their checksum kept on the
/// disk too), unmount, `e2fsck -f` finds it clean, mount again and the files read back
/// right. The image file on the host then holds an ext4 superblock. A second boot with
/// the same disk: `/init` mounts it at /mnt by itself and the files are still right.
fn ext4_round_trip(sut: &Sut, label: &str) {
    let disk = scratch_disk(label);
    create_disk(&disk, DISK_MIB, false).unwrap_or_else(|e| panic!("{e}"));
    let timeout = linux::timeout(LINUX_TIMEOUT, 1);
    let same = "[ \"$(cat /mnt/f1 /mnt/f2 /mnt/f3 | md5sum)\" = \"$(cat /mnt/sum)\" ]";
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked("mkfs.ext4 -F -q /dev/vda", "mkfs"));
    script.extend(sut.checked("mount -t ext4 /dev/vda /mnt", "mount"));
    script.extend(sut.checked(
        "for i in 1 2 3; do dd if=/dev/urandom of=/mnt/f$i bs=64k count=$((i*5)) 2>/dev/null || break; done \
         && cat /mnt/f1 /mnt/f2 /mnt/f3 | md5sum >/mnt/sum && sync",
        "write",
    ));
    script.extend(sut.checked("umount /mnt", "umount"));
    script.extend(sut.checked("e2fsck -f -n /dev/vda", "fsck"));
    script.extend(sut.checked(
        &format!("mount -t ext4 /dev/vda /mnt && {same} && umount /mnt"),
        "reread",
    ));
    script.push(Step::wait_text(PROMPT));
    let c = sut
        .run(&disk, "", script.clone(), timeout)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    if !c.output.contains(NO_FILE_SYSTEM) {
        fail(
            label,
            "/init did not report the blank disk as having no file system",
            &c,
            &script,
        );
    }
    if !sut
        .guest_lines(&c.output)
        .any(|l| l.starts_with("/dev/vda: ") && l.contains(" files ("))
    {
        fail(label, "e2fsck printed no summary of /dev/vda", &c, &script);
    }
    assert_eq!(
        read_host(&disk, EXT_MAGIC_OFFSET, 2),
        [0x53, 0xef],
        "the host image holds no ext4 superblock"
    );

    // Second boot: /init mounts the file system; the files are as written.
    let mut again = until_ready();
    again.extend(sut.checked(QUIET, "quiet"));
    again.extend(sut.checked(
        &format!("grep -q '^/dev/vda /mnt ext4 ' /proc/mounts && {same}"),
        "persist",
    ));
    again.extend(sut.checked("umount /mnt && e2fsck -f -n /dev/vda", "fsck2"));
    let c = sut
        .run(&disk, "", again.clone(), timeout)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &again);
    if !c.output.contains(MOUNTED) {
        fail(label, &format!("/init did not say '{MOUNTED}'"), &c, &again);
    }
    let _ = std::fs::remove_file(&disk);
}

/// MiB the pattern test writes.
const PATTERN_MIB: u64 = 32;
/// Its seed.
const SEED: u64 = 0x5eed_0042;

/// The raw disk (not mounted): the guest writes a pattern with direct I/O, drops its
/// page cache, and reads it back both with direct I/O (`blk verify`) and through the
/// page cache (`dd | sha256sum`); checking with another seed must fail (the checker can
/// fail). On the host, the image file holds exactly that pattern, and its SHA-256
/// equals the one the guest read.
fn pattern_survives_cache_drop(sut: &Sut, label: &str) {
    let disk = scratch_disk(label);
    create_disk(&disk, DISK_MIB, false).unwrap_or_else(|e| panic!("{e}"));
    let dev = "/dev/vda";
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked(&format!("{BLK_COMMAND} fill {dev} {PATTERN_MIB} {SEED}"), "fill"));
    script.extend(sut.checked("sync && echo 3 > /proc/sys/vm/drop_caches", "drop"));
    script.extend(sut.checked(&format!("{BLK_COMMAND} verify {dev} {PATTERN_MIB} {SEED}"), "verify"));
    script.extend([
        command(&format!("{BLK_COMMAND} verify {dev} {PATTERN_MIB} {}", SEED + 1)),
        Step::wait_text("vcpos-mmio-bench: error: blk: data differs at byte 0x0: expected"),
    ]);
    script.extend(sut.checked("echo 3 > /proc/sys/vm/drop_caches", "drop2"));
    script.extend([
        command(&format!(
            "dd if={dev} bs=1M count={PATTERN_MIB} 2>/dev/null | sha256sum | sed \"s/^/guest-sha$((128*2)) /\""
        )),
        Step::wait_text("guest-sha256 "),
        Step::wait_text(PROMPT),
    ]);
    let c = sut
        .run(&disk, NO_MOUNT, script.clone(), timeout())
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    if !c
        .output
        .contains(&format!("vcpos-blk: verify ok mib={PATTERN_MIB} seed={SEED}"))
    {
        fail(label, "no 'vcpos-blk: verify ok' line", &c, &script);
    }
    let guest_hash = sut
        .guest_lines(&c.output)
        .filter_map(|l| l.strip_prefix("guest-sha256 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .find(|h| h.len() == 64)
        .unwrap_or_else(|| fail(label, "no 'guest-sha256 <hash>' line", &c, &script))
        .to_string();
    let host_hash = host_sha256(&disk, PATTERN_MIB << 20).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        guest_hash, host_hash,
        "the guest read other data than the host image holds"
    );
    let data = read_host(&disk, 0, (PATTERN_MIB << 20) as usize);
    if let Err(m) = check_pattern(&data, SEED, 0) {
        panic!("{label}: the host image does not hold the pattern: {m}");
    }
    // Beyond the pattern the disk is untouched.
    assert!(
        read_host(&disk, PATTERN_MIB << 20, 4096).iter().all(|&b| b == 0),
        "bytes past the pattern changed"
    );
    let _ = std::fs::remove_file(&disk);
}

fn timeout() -> std::time::Duration {
    linux::timeout(LINUX_TIMEOUT, 1)
}

#[test]
fn direct_disk_ext4_round_trip() {
    ext4_round_trip(&Sut::direct(), "disk-ext4-direct");
}

#[test]
fn direct_disk_pattern_survives_cache_drop() {
    pattern_survives_cache_drop(&Sut::direct(), "disk-pattern-direct");
}
