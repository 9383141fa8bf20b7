//! QEMU integration tests of the Linux guest's disk `/dev/vda`: a file system made,
//! written, checked and found again on the next boot, and a data pattern written and
//! read back past the guest's page cache. Each test takes the system under test
//! ([`Sut`]) as a parameter: the guest booted directly on QEMU, and the guest on vcpos,
//! whose disk the block VCP vcp_blk serves (`system.xml`); there also across a guest
//! reboot and a whole-system reboot, with the native client PD's window beside the
//! guest's (isolation), and with a hostile client PD. They need the guest files
//! (`tools/guest-image.sh`, with `/bin/vcpos-mmio-bench` from `tools/build-targets.sh`);
//! `./test.sh` makes both first, and the tests fail without them.

use std::path::Path;

use vcpos_guest_bench::blk::check_pattern;
use vcpos_test_support::blk::{rw_word, ROUNDS, TEST_BLOCKS, WORDS};
use vcpos_tests::disk::{
    assert_done, create_disk, fail, host_sha256, scratch_disk, Sut, BLK_COMMAND, DISK_MIB, MOUNTED, NO_FILE_SYSTEM,
    NO_MOUNT,
};
use vcpos_tests::linux::{self, command, until_ready, GUEST_PANIC, LINUX_TIMEOUT, PROMPT, RESET};
use vcpos_tests::scenario_system;
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

#[test]
fn vcpos_disk_ext4_round_trip() {
    ext4_round_trip(&Sut::vcpos(), "disk-ext4-vcpos");
}

/// The VM's window of the disk in `system.xml` (`system.vcp-blk.cfg`, client 0), in
/// 512-byte blocks from the disk's start: the guest's whole `/dev/vda`.
const VM_BLOCKS: u64 = 520_192;
/// The native client PD's window (client 1): right after the VM's.
const PD_START: u64 = VM_BLOCKS;
/// The MiB of the guest's window the isolation check writes: its last.
const TAIL_MIB: u64 = VM_BLOCKS / 2048 - 1;

/// The hash a `guest-<tag>-42 <sha256>` line carries.
fn guest_hash(sut: &Sut, c: &vcpos_tool::runner::Capture, tag: &str) -> Option<String> {
    let prefix = format!("guest-{tag}-42 ");
    sut.guest_lines(&c.output)
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .filter_map(|rest| rest.split_whitespace().next())
        .find(|h| h.len() == 64)
        .map(str::to_string)
}

/// Steps printing `guest-<tag>-42 <sha256 of the MiB at mib>`, read with direct I/O
/// (the 42 is computed by the guest's shell: the typed command's echo does not match).
fn hash_steps(tag: &str, mib: u64) -> [Step; 2] {
    [
        command(&format!(
            "dd if=/dev/vda bs=1M skip={mib} count=1 iflag=direct 2>/dev/null | sha256sum | sed \"s/^/guest-{tag}-$((6*7)) /\""
        )),
        Step::wait_text(format!("guest-{tag}-42 ")),
    ]
}

/// SHA-256 of the MiB at `mib` of the host image.
fn host_hash(path: &Path, mib: u64) -> String {
    use std::io::Write as _;
    let data = read_host(path, mib << 20, 1 << 20);
    let dir = std::env::temp_dir().join(format!("vcpos-hash-{}-{mib}", std::process::id()));
    std::fs::File::create(&dir)
        .and_then(|mut f| f.write_all(&data))
        .unwrap();
    let h = host_sha256(&dir, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
    let _ = std::fs::remove_file(&dir);
    h
}

/// The native client PD's window in the host image: blk_client's last round of
/// patterns in its first blocks, nothing else written.
fn check_pd_window(disk: &Path) -> Result<(), String> {
    let data = read_host(disk, PD_START * 512, 4096 * 512);
    for b in 0..4096u64 {
        for w in 0..WORDS {
            let at = b as usize * 512 + w * 4;
            let got = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
            let want = if b < TEST_BLOCKS { rw_word(ROUNDS - 1, b, w) } else { 0 };
            if got != want {
                return Err(format!(
                    "disk block {} (block {b} of blk_client's window) word {w}: {got:#010x}, expected {want:#010x}",
                    PD_START + b
                ));
            }
        }
    }
    Ok(())
}

/// On vcpos, through vcp_blk (`system.xml`): the guest's disk is its window (its size,
/// no write past it); the guest writes a pseudo-random pattern with direct I/O and its
/// window's last MiB, drops its caches, verifies; reboots (`reboot -f`: the VMM boots
/// it again) and verifies again; then the whole system boots again and the guest
/// verifies once more. The host image holds the guest's pattern and last MiB in the
/// guest's window and blk_client's pattern (written at every boot) in the PD's window
/// right after it, nothing else.
#[test]
fn vcpos_disk_pattern_survives_reboots_beside_a_native_client() {
    let sut = Sut::vcpos();
    let label = "disk-pattern-vcpos";
    let disk = scratch_disk(label);
    create_disk(&disk, DISK_MIB, false).unwrap_or_else(|e| panic!("{e}"));
    let dev = "/dev/vda";
    let fill = format!("{BLK_COMMAND} fill {dev} {PATTERN_MIB} {SEED}");
    let verify = format!("{BLK_COMMAND} verify {dev} {PATTERN_MIB} {SEED}");
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked(&format!("[ \"$(cat /sys/block/vda/size)\" = {VM_BLOCKS} ]"), "capacity"));
    script.extend(sut.checked(
        &format!("! dd if=/dev/zero of={dev} bs=512 seek={VM_BLOCKS} count=1 oflag=direct 2>/dev/null"),
        "past-end",
    ));
    script.extend(sut.checked(&fill, "fill"));
    script.extend(sut.checked(
        &format!("dd if=/dev/urandom of={dev} bs=1M seek={TAIL_MIB} count=1 oflag=direct 2>/dev/null"),
        "tail",
    ));
    script.extend(sut.checked("sync && echo 3 > /proc/sys/vm/drop_caches", "drop"));
    script.extend(sut.checked(&verify, "verify"));
    script.extend(hash_steps("tail", TAIL_MIB));
    script.extend([
        command("sync; reboot -f"),
        Step::wait_text(RESET),
        Step::wait_text("linux_vmm: boot 2:"),
    ]);
    script.extend(until_ready());
    script.extend(sut.checked(QUIET, "quiet2"));
    script.extend(sut.checked(&verify, "verify2"));
    script.extend(hash_steps("tail2", TAIL_MIB));
    script.push(Step::wait_text(PROMPT));
    let c = sut
        .run_stopping_at(
            &disk,
            NO_MOUNT,
            script.clone(),
            linux::timeout(LINUX_TIMEOUT, 2),
            &[GUEST_PANIC, "linux_vmm: boot 3:"],
        )
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    for line in [
        "vcp-blk: serving 2 clients",
        "linux_vmm: disk: vcp_blk window of 520192 blocks",
        "blk-client: read-write: 4 rounds",
    ] {
        if !c.output.contains(line) {
            fail(label, &format!("no line containing '{line}'"), &c, &script);
        }
    }
    let tail = guest_hash(&sut, &c, "tail").unwrap_or_else(|| fail(label, "no guest-tail hash", &c, &script));
    if guest_hash(&sut, &c, "tail2").as_ref() != Some(&tail) {
        fail(
            label,
            "the guest's last MiB read back differently after the reboot",
            &c,
            &script,
        );
    }

    // The whole system again: the guest finds its data.
    let mut again = until_ready();
    again.extend(sut.checked(QUIET, "quiet"));
    again.extend(sut.checked(&verify, "verify3"));
    again.extend(hash_steps("tail3", TAIL_MIB));
    again.push(Step::wait_text(PROMPT));
    let c2 = sut
        .run(&disk, NO_MOUNT, again.clone(), timeout())
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c2, &again);
    if guest_hash(&sut, &c2, "tail3").as_ref() != Some(&tail) {
        fail(
            label,
            "the guest's last MiB read back differently after the system reboot",
            &c2,
            &again,
        );
    }

    // The host image: each side's data in its own window.
    let data = read_host(&disk, 0, (PATTERN_MIB << 20) as usize);
    if let Err(m) = check_pattern(&data, SEED, 0) {
        panic!("{label}: the host image does not hold the guest's pattern: {m}");
    }
    assert!(
        read_host(&disk, PATTERN_MIB << 20, 1 << 20).iter().all(|&b| b == 0),
        "bytes past the guest's pattern changed"
    );
    assert_eq!(
        host_hash(&disk, TAIL_MIB),
        tail,
        "the host image's last MiB of the guest's window differs from what the guest read"
    );
    if let Err(e) = check_pd_window(&disk) {
        panic!("{label}: {e}");
    }
    let _ = std::fs::remove_file(&disk);
}

/// On vcpos with a hostile client PD beside the guest (`linux-vcp-blk-hostile.system`):
/// its bad requests are refused one by one, its flood completes and its corrupt ring
/// index gets it cut off; the guest's disk works on and holds the guest's data (in the
/// guest, after a cache drop, and in the host image).
#[test]
fn vcpos_disk_hostile_client_is_refused_and_the_guest_goes_on() {
    let sut = Sut::vcpos_system(scenario_system("linux-vcp-blk-hostile"), "debug");
    let label = "disk-hostile-vcpos";
    let disk = scratch_disk(label);
    create_disk(&disk, DISK_MIB, false).unwrap_or_else(|e| panic!("{e}"));
    let mib = 8;
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked(&format!("{BLK_COMMAND} fill /dev/vda {mib} {SEED}"), "fill"));
    script.extend(sut.checked("sync && echo 3 > /proc/sys/vm/drop_caches", "drop"));
    script.extend(sut.checked(&format!("{BLK_COMMAND} verify /dev/vda {mib} {SEED}"), "verify"));
    script.push(Step::wait_text(PROMPT));
    let c = sut
        .run(&disk, NO_MOUNT, script.clone(), timeout())
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    let pos = |s: &str| {
        c.output
            .find(s)
            .unwrap_or_else(|| fail(label, &format!("no line containing '{s}'"), &c, &script))
    };
    let refused = pos("blk-hostile: duplicate id (");
    let flood = pos(&format!(
        "blk-hostile: flood of {} reads completed",
        vcpos_blk_protocol::RING_CAPACITY
    ));
    let cut = pos("vcp-blk: client 1 cut off: peer's producer index jumped");
    let verified = pos(&format!("vcpos-blk: verify ok mib={mib} seed={SEED}"));
    if !(refused < flood && flood < cut && cut < verified) {
        fail(
            label,
            "expected: refusals, flood, cut-off, then the guest's verified data",
            &c,
            &script,
        );
    }
    let data = read_host(&disk, 0, (mib << 20) as usize);
    if let Err(m) = check_pattern(&data, SEED, 0) {
        panic!("{label}: the host image does not hold the guest's pattern: {m}");
    }
    let _ = std::fs::remove_file(&disk);
}
