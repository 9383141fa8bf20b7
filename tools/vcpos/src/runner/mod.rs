//! Running images in QEMU: the one place the QEMU command line is made.
//!
//! Two ways to run an image:
//! - interactive ([`run_command`] without `--timeout`): QEMU owns the terminal, the
//!   serial console and QEMU's monitor share stdio (`-serial mon:stdio`), Ctrl-A x quits;
//! - captured ([`run_image`], [`capture()`]): the serial console goes to a pipe and is
//!   collected line by line until a stop marker appears (plus a short grace period for
//!   the lines that follow it), QEMU exits, or a timeout runs out. QEMU runs in its own
//!   process group and the whole group is killed at the end, so no emulator (or
//!   anything it started) outlives the run. stdin is `/dev/null`, unless the run has a
//!   console script ([`CaptureOptions::script`]): then stdin is a pipe that feeds the
//!   serial console's input, and each [`Step`] waits for a text (or a whole line) in the
//!   output, also in a line still being written such as a shell prompt, and then types
//!   its bytes. A scripted run ends [`Ending::ScriptDone`] after its last step.
//!
//! Markers (the contract with test PDs and the kernel, [`vcpos_abi::console`]): a line
//! starting [`TEST_PASS`] or [`TEST_FAIL`], [`KERNEL_ERROR`] or [`KERNEL_FAULT`], and
//! only at the start of a line ([`marker`]).
//!
//! Submodules: [`qemu`] (the command line), [`script`] (console scripts), [`mod@capture`]
//! (captured runs: the I/O loop and the state machine deciding when a run ends),
//! [`marker`] (the marker contract), [`cli`] (`vcpos run`). Their public items are
//! re-exported here.

pub mod capture;
pub mod cli;
pub mod marker;
pub mod qemu;
pub mod script;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub use capture::{capture, Capture, CaptureOptions, Ending, CONTINUED, DEFAULT_GRACE};
pub use cli::{qemu_args_command, run_command, QemuArgsArgs, RunArgs};
pub use marker::{
    console_text, kernel_errors, line_marker, markers, Marker, Stop, GUEST_LINE_PREFIX, KERNEL_ERROR, KERNEL_FAULT,
    KERNEL_PREFIX, TEST_FAIL, TEST_PASS,
};
pub use qemu::{
    default_slot, display_command, qemu_args, qemu_command, slot_address, slot_intid, Boot, Console, Device,
    PortForward, QemuSpec,
};
pub use script::{parse_step, Expect, Step};

use crate::board::Board;
use crate::diag::Diagnostic;

/// The first line of `<binary> --version`, or `None` if it cannot be run.
pub fn qemu_version(binary: &str) -> Option<String> {
    let out = Command::new(binary)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().next().map(str::to_string)
}

/// Prints the QEMU version to stderr, once per process (straight to the stream, so
/// test harnesses that capture `eprintln!` still show it).
pub fn print_qemu_version_once(binary: &str) {
    static PRINTED: OnceLock<()> = OnceLock::new();
    PRINTED.get_or_init(|| {
        if let Some(v) = qemu_version(binary) {
            let _ = writeln!(std::io::stderr(), "vcpos: {binary}: {v}");
        }
    });
}

/// The error for a QEMU that could not be started.
fn spawn_error(binary: &str, e: &std::io::Error) -> Diagnostic {
    if e.kind() == std::io::ErrorKind::NotFound {
        Diagnostic::plain(format!("cannot run {binary}: not installed (run tools/setup.sh)"))
    } else {
        Diagnostic::plain(format!("cannot run {binary}: {e}"))
    }
}

/// Boots `image` on `board` without a terminal and captures the serial output.
pub fn run_image(board: &Board, image: &Path, opts: &CaptureOptions) -> Result<Capture, Diagnostic> {
    run_qemu(&QemuSpec::vcpos(board, image, Console::Captured), opts)
}

/// Runs QEMU as `spec` says (its console should be captured) and captures the serial
/// output; the files it boots must exist.
pub fn run_qemu(spec: &QemuSpec<'_>, opts: &CaptureOptions) -> Result<Capture, Diagnostic> {
    let files: Vec<&Path> = match &spec.boot {
        Boot::Vcpos { image } => vec![image],
        Boot::Linux { kernel, initrd, .. } => [Some(kernel), initrd.as_ref()]
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .collect(),
    };
    if let Some(missing) = files.into_iter().find(|f| !f.is_file()) {
        let what = if matches!(spec.boot, Boot::Vcpos { .. }) {
            "image"
        } else {
            "file"
        };
        return Err(Diagnostic::plain(format!("{what} {} not found", missing.display())));
    }
    let binary = &spec.board.qemu.binary;
    print_qemu_version_once(binary);
    capture(spec.command(), opts).map_err(|e| spawn_error(binary, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board;
    use std::time::Duration;

    #[test]
    fn missing_binary_is_a_clear_error() {
        let mut board = board::load("qemu_virt_aarch64", None).unwrap();
        board.qemu.binary = "/nonexistent/qemu-system-aarch64".into();
        let img = std::env::temp_dir().join(format!("vcpos-runner-test-{}.img", std::process::id()));
        std::fs::write(&img, b"x").unwrap();
        let err = run_image(&board, &img, &CaptureOptions::until_marker(Duration::from_secs(5))).unwrap_err();
        let _ = std::fs::remove_file(&img);
        assert!(err.to_string().contains("tools/setup.sh"), "{err}");
        let err = run_image(
            &board,
            Path::new("/nonexistent/img"),
            &CaptureOptions::until_marker(Duration::from_secs(5)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
