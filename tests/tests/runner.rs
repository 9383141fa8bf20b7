//! The QEMU runner on a real emulator, with a tiny bare-metal ELF instead of a vcpos
//! image: the board's command line boots, serial output is captured, markers stop the
//! run, a silent guest is killed at the timeout, and no QEMU outlives a run.

use std::time::{Duration, Instant};

use vcpos_tests::{baremetal, board, target_dir};
use vcpos_tool::runner::{run_image, CaptureOptions, Ending};

/// Writes a bare-metal ELF printing `message` and returns its path.
fn image(name: &str, message: &str) -> std::path::PathBuf {
    let b = board().unwrap();
    let uart = u32::try_from(b.devices.uart_pl011).expect("UART below 4 GiB");
    let dir = target_dir().join("vcpos-tests/runner");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.elf"));
    std::fs::write(&path, baremetal::elf(b.memory.kernel_paddr, uart, message)).unwrap();
    path
}

/// True if process `pid` still exists (and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z')))
}

#[test]
fn boots_a_bare_metal_elf_and_stops_at_the_marker() {
    let img = image("pass", "boot ok\nTEST PASS: runner\n");
    let t0 = Instant::now();
    let c = run_image(
        &board().unwrap(),
        &img,
        &CaptureOptions::until_marker(Duration::from_secs(60)),
    )
    .unwrap();
    assert_eq!(c.ending, Ending::Marker("TEST PASS: runner".into()), "{c:#?}");
    assert!(c.output.contains("boot ok\nTEST PASS: runner\n"), "{c:#?}");
    assert!(c.passed());
    // Stopped at the marker, well before the timeout.
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
    assert!(!alive(c.pid), "QEMU {} still running", c.pid);
}

#[test]
fn silent_guest_is_killed_at_the_timeout() {
    let img = image("silent", "no marker here\n");
    let c = run_image(
        &board().unwrap(),
        &img,
        &CaptureOptions::until_marker(Duration::from_secs(3)),
    )
    .unwrap();
    assert_eq!(c.ending, Ending::TimedOut(Duration::from_secs(3)), "{c:#?}");
    assert!(c.output.contains("no marker here"), "{c:#?}");
    assert!(!c.passed());
    assert!(!alive(c.pid), "QEMU {} still running", c.pid);
}

#[test]
fn a_marker_behind_the_guest_prefix_does_not_pass() {
    let img = image("guest-pass", "guest| TEST PASS: runner\nguest| \rTEST PASS: runner\n");
    let c = run_image(
        &board().unwrap(),
        &img,
        &CaptureOptions::until_marker(Duration::from_secs(3)),
    )
    .unwrap();
    assert_eq!(c.ending, Ending::TimedOut(Duration::from_secs(3)), "{c:#?}");
    assert!(c.output.contains("guest| TEST PASS: runner\n"), "{c:#?}");
    assert!(!c.passed());
    assert!(!alive(c.pid), "QEMU {} still running", c.pid);
}
