//! QEMU tests of the block VCP: `tests/systems/vcp-blk.system` (a read-write and a
//! read-only client) and `vcp-blk-hostile.system` (plus a hostile client), each booted
//! with a fresh raw disk image as QEMU's `virtio-blk-device` (the first such device:
//! virtio-mmio slot 31, `0x0a00_3e00`, INTID 79). The harness writes known patterns
//! into the image first and checks afterwards that the read-write client's data is in
//! its window and nothing else on the disk changed.

use std::path::{Path, PathBuf};

use vcpos_blk_protocol::RING_CAPACITY;
use vcpos_test_support::blk::{self, ROUNDS, TEST_BLOCKS, WORDS};
use vcpos_tests::{build_system, scenario_system, target_dir, timeout, Transcript};
use vcpos_tool::runner::{CaptureOptions, Device};

/// The disk: 4 MiB of 512-byte blocks.
const DISK_BLOCKS: u64 = 8192;
/// Windows, as in `tests/systems/vcp-blk*.cfg`.
const WRITER_START: u64 = 2048;
const READER_START: u64 = 3072;
const HOSTILE: std::ops::Range<u64> = 4096..5120;

fn word_at(disk: &[u8], block: u64, w: usize) -> u32 {
    let at = block as usize * 512 + w * 4;
    u32::from_le_bytes(disk[at..at + 4].try_into().unwrap())
}

/// A disk of FILLER bytes with the read-only client's pattern in its window.
fn make_disk(path: &Path) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the disk's directory");
    }
    let mut disk = vec![blk::FILLER; (DISK_BLOCKS * 512) as usize];
    for b in 0..TEST_BLOCKS {
        for w in 0..WORDS {
            let at = ((READER_START + b) as usize) * 512 + w * 4;
            disk[at..at + 4].copy_from_slice(&blk::ro_word(b, w).to_le_bytes());
        }
    }
    std::fs::write(path, disk).expect("write the disk image");
}

/// After the run: the writer's last round in its window, the reader's pattern intact,
/// every other block (but the hostile client's window) untouched.
fn check_disk(path: &Path) -> Result<(), String> {
    let disk = std::fs::read(path).map_err(|e| e.to_string())?;
    for block in 0..DISK_BLOCKS {
        for w in 0..WORDS {
            let got = word_at(&disk, block, w);
            let want = if (WRITER_START..WRITER_START + TEST_BLOCKS).contains(&block) {
                blk::rw_word(ROUNDS - 1, block - WRITER_START, w)
            } else if (READER_START..READER_START + TEST_BLOCKS).contains(&block) {
                blk::ro_word(block - READER_START, w)
            } else if HOSTILE.contains(&block) {
                continue;
            } else {
                u32::from_le_bytes([blk::FILLER; 4])
            };
            if got != want {
                return Err(format!(
                    "disk block {block} word {w}: {got:#010x}, expected {want:#010x}"
                ));
            }
        }
    }
    Ok(())
}

/// Builds `scenario`, boots it with a fresh disk as the first virtio-blk device, and
/// checks the pass marker and the disk.
fn run(scenario: &str) -> Transcript {
    let built =
        build_system(scenario, &scenario_system(scenario), "debug").unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let disk: PathBuf = target_dir().join("vcpos-tests").join(scenario).join("disk.img");
    make_disk(&disk);
    let devices = [Device::Disk {
        file: disk.clone(),
        read_only: false,
        bus: None,
    }];
    let t = built
        .boot_with_devices(&CaptureOptions::until_marker(timeout()), &devices)
        .unwrap_or_else(|e| panic!("{scenario}: {e}"));
    t.assert_pass("vcp-blk");
    for line in [
        "vcp-blk: virtio-blk transport at page offset 0xe00",
        "vcp-blk: serving",
        "blk-client: read-write: 4 rounds",
        "blk-client: read-only: own window read, write refused",
        "blk-client: read-only: window unchanged",
    ] {
        if !t.output().contains(line) {
            t.fail(&format!("no line containing '{line}'"));
        }
    }
    if let Err(e) = check_disk(&disk) {
        t.fail(&format!("disk image {} after the run: {e}", disk.display()));
    }
    t
}

/// Two clients in their windows: data written, flushed and read back; the read-only
/// client's writes refused and its window untouched; the disk image checked.
#[test]
fn vcp_blk_two_clients() {
    run("vcp-blk");
}

/// A hostile client's bad requests each get their error, its flood completes, its
/// corrupt ring index gets it cut off, and the honest clients' I/O goes on.
#[test]
fn vcp_blk_hostile_client() {
    let t = run("vcp-blk-hostile");
    let out = t.output();
    let pos = |s: &str| {
        out.find(s)
            .unwrap_or_else(|| t.fail(&format!("no line containing '{s}'")))
    };
    let refused = pos("blk-hostile: duplicate id (");
    let flood = pos(&format!("blk-hostile: flood of {RING_CAPACITY} reads completed"));
    let cut = pos("vcp-blk: client 2 cut off: peer's producer index jumped");
    let pass = pos("TEST PASS: vcp-blk");
    if !(refused < flood && flood < cut && cut < pass) {
        t.fail("expected: refusals, flood, cut-off, then the reader's final pass");
    }
}

/// A second virtio device in vcp-blk's device page (the second disk names slot 30,
/// the same 4 KiB page as the first's slot 31): vcp-blk refuses to start instead of
/// driving a page another device is in.
#[test]
fn vcp_blk_refuses_a_shared_device_page() {
    let scenario = "vcp-blk";
    let built = build_system("vcp-blk-shared-page", &scenario_system(scenario), "debug")
        .unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let dir = target_dir().join("vcpos-tests").join("vcp-blk-shared-page");
    let (a, b) = (dir.join("disk-a.img"), dir.join("disk-b.img"));
    make_disk(&a);
    make_disk(&b);
    let devices = [
        Device::Disk {
            file: a,
            read_only: false,
            bus: None,
        },
        Device::Disk {
            file: b,
            read_only: false,
            bus: Some(30),
        },
    ];
    let t = built
        .boot_with_devices(&CaptureOptions::until_marker(timeout()), &devices)
        .unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let refused = "vcp-blk: ERROR: cannot start: another virtio device (id 2) shares the device page";
    if !t.output().contains(refused) {
        t.fail(&format!("no line containing '{refused}'"));
    }
    if t.output().contains("TEST PASS") || t.output().contains("vcp-blk: serving") {
        t.fail("vcp-blk served a device whose page holds another device");
    }
}
