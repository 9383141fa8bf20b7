//! Running images in QEMU: the one place the QEMU command line is made.
//!
//! Two ways to run an image:
//! - interactive ([`run_command`] without `--timeout`): QEMU owns the terminal, the
//!   serial console and QEMU's monitor share stdio (`-serial mon:stdio`), Ctrl-A x quits;
//! - captured ([`run_image`], [`capture`]): stdin is `/dev/null`, the serial console
//!   goes to a pipe and is collected line by line until a stop marker appears (plus a
//!   short grace period for the lines that follow it), QEMU exits, or a timeout runs
//!   out. QEMU runs in its own process group and the whole group is killed at the end,
//!   so no emulator (or anything it started) outlives the run.
//!
//! Markers (the contract with test PDs and the kernel): a line containing
//! [`PASS_MARKER`] or [`FAIL_MARKER`], and kernel lines starting [`KERNEL_ERROR`] or
//! [`KERNEL_FAULT`].

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::board::{self, Board};
use crate::diag::Diagnostic;

/// A test PD prints a line containing this, then what passed.
pub const PASS_MARKER: &str = "TEST PASS: ";
/// A test PD prints a line containing this, then why it failed.
pub const FAIL_MARKER: &str = "TEST FAIL: ";
/// The kernel's error lines start with this.
pub const KERNEL_ERROR: &str = "vcpos|ERROR:";
/// The kernel's fault report lines start with this.
pub const KERNEL_FAULT: &str = "vcpos|FAULT:";

/// How long a captured run keeps reading after a stop marker, so that the lines a
/// PD or the kernel prints right after it (a multi-line error report) are kept.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(300);

/// How often a captured run checks whether the process has exited.
const POLL: Duration = Duration::from_millis(50);

/// How long to wait for the last output after the process group was killed.
const DRAIN: Duration = Duration::from_secs(1);

/// A longer run of output without a line end is cut into lines of this many bytes.
const MAX_LINE: u64 = 64 * 1024;

/// Output kept per stream; a runaway guest's further lines are dropped (but still
/// checked for stop markers).
const MAX_OUTPUT: usize = 16 * 1024 * 1024;

/// `vcpos run` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Board (a file in kernel-config/).
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// Run without a terminal: print the serial output, stop at the first
    /// `TEST PASS:`/`TEST FAIL:`/`vcpos|ERROR:` line or after this many seconds,
    /// and exit 0 only if a pass marker appeared and no failure did.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Wait for GDB on localhost:1234 before starting (interactive runs only).
    #[arg(long, conflicts_with = "timeout")]
    pub gdb: bool,
    /// The image to boot.
    pub image: PathBuf,
}

/// Where the serial console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The terminal: serial console and QEMU monitor multiplexed on stdio.
    Interactive {
        /// Start halted with a GDB server on localhost:1234 (`-s -S`).
        gdb: bool,
    },
    /// A pipe: serial console only on stdout, no monitor, no display.
    Captured,
}

/// The QEMU command that boots `image` on `board`.
pub fn qemu_command(board: &Board, image: &Path, console: Console) -> Command {
    let mut cmd = Command::new(&board.qemu.binary);
    cmd.args(qemu_args(board, image, console));
    cmd
}

/// The arguments of [`qemu_command`] (without the binary).
pub fn qemu_args(board: &Board, image: &Path, console: Console) -> Vec<OsString> {
    let q = &board.qemu;
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    push("-machine");
    push(&q.machine);
    push("-cpu");
    push(&q.cpu);
    push("-m");
    push(&q.memory);
    push("-smp");
    push(&board.devices.cores.to_string());
    // No default devices: no NIC (whose option ROM a minimal install lacks), no
    // default serial/monitor/parallel; the console is set up explicitly below.
    push("-nodefaults");
    // A guest reset ends QEMU instead of rebooting into the same failure forever.
    push("-no-reboot");
    match console {
        Console::Interactive { gdb } => {
            push("-nographic");
            push("-serial");
            push("mon:stdio");
            if gdb {
                push("-s");
                push("-S");
            }
        }
        Console::Captured => {
            push("-display");
            push("none");
            push("-monitor");
            push("none");
            push("-serial");
            push("stdio");
        }
    }
    args.push("-kernel".into());
    args.push(image.into());
    args
}

/// A command line as a person would type it (for messages).
pub fn display_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

/// Options of a captured run.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    /// The run is stopped (and the process group killed) after this long.
    pub timeout: Duration,
    /// A stdout line containing any of these ends the run, [`Self::grace`] later.
    pub stop_on: Vec<String>,
    /// How long to keep reading after a stop marker.
    pub grace: Duration,
    /// Copy each output line to this process's stdout as it arrives.
    pub echo: bool,
}

impl CaptureOptions {
    /// Stop at the first pass or fail marker or kernel error, after `timeout` at the
    /// latest; no echo.
    pub fn until_marker(timeout: Duration) -> CaptureOptions {
        CaptureOptions {
            timeout,
            stop_on: vec![PASS_MARKER.into(), FAIL_MARKER.into(), KERNEL_ERROR.into()],
            grace: DEFAULT_GRACE,
            echo: false,
        }
    }
}

/// Why a captured run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A stop marker appeared on this line.
    Marker(String),
    /// The process exited by itself (guest power-off or reset, or a QEMU error).
    Exited(ExitStatus),
    /// The timeout ran out.
    TimedOut(Duration),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Marker(line) => write!(f, "stopped at marker line: {line}"),
            Ending::Exited(status) => write!(f, "process exited by itself ({status})"),
            Ending::TimedOut(t) => write!(f, "timed out after {} s and was killed", t.as_secs_f64()),
        }
    }
}

/// A marker found in output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    /// `TEST PASS: <detail>`: the detail.
    Pass(&'a str),
    /// `TEST FAIL: <reason>`: the reason.
    Fail(&'a str),
}

/// The pass and fail markers in `output`, in order.
pub fn markers(output: &str) -> Vec<Marker<'_>> {
    let mut found = Vec::new();
    for line in output.lines() {
        if let Some(i) = line.find(PASS_MARKER) {
            found.push(Marker::Pass(line[i + PASS_MARKER.len()..].trim_end()));
        }
        if let Some(i) = line.find(FAIL_MARKER) {
            found.push(Marker::Fail(line[i + FAIL_MARKER.len()..].trim_end()));
        }
    }
    found
}

/// The lines of `output` that are kernel error lines.
pub fn kernel_errors(output: &str) -> Vec<&str> {
    output.lines().filter(|l| l.contains(KERNEL_ERROR)).collect()
}

/// What a captured run produced.
#[derive(Clone, Debug)]
pub struct Capture {
    /// Everything the process wrote to stdout (the serial console), one `\n` per
    /// line, carriage returns removed.
    pub output: String,
    /// Everything it wrote to stderr (QEMU's own messages).
    pub stderr: String,
    /// Why the run ended.
    pub ending: Ending,
    /// Wall time from spawn to the end.
    pub elapsed: Duration,
    /// Process id (and process group id) the run had; the group is gone on return.
    pub pid: u32,
}

impl Capture {
    /// The pass and fail markers in the output.
    pub fn markers(&self) -> Vec<Marker<'_>> {
        markers(&self.output)
    }

    /// A pass marker appeared, and no fail marker nor kernel error did.
    pub fn passed(&self) -> bool {
        let m = self.markers();
        m.iter().any(|m| matches!(m, Marker::Pass(_)))
            && !m.iter().any(|m| matches!(m, Marker::Fail(_)))
            && kernel_errors(&self.output).is_empty()
    }
}

/// Which pipe a line came from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// Kills the child's process group when dropped (also on panic), then reaps it.
struct Group {
    child: Child,
}

impl Group {
    fn kill(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        // The group may be gone already (ESRCH): nothing to do then.
        let _ = killpg(pid, Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends each line read from `r` to `tx` (lossy UTF-8, line end and `\r` removed).
fn spawn_reader<R: Read + Send + 'static>(r: Option<R>, stream: Stream, tx: mpsc::Sender<(Stream, String)>) {
    let Some(r) = r else { return };
    thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match (&mut r).take(MAX_LINE).read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let line: String =
                        String::from_utf8_lossy(&buf).chars().filter(|&c| c != '\r' && c != '\n').collect();
                    if tx.send((stream, line)).is_err() {
                        break;
                    }
                }
            }
        }
    });
}

/// Runs `cmd` with stdin from `/dev/null`, collecting its output until a stop marker
/// (plus grace), its exit, or the timeout; then kills its whole process group.
pub fn capture(mut cmd: Command, opts: &CaptureOptions) -> std::io::Result<Capture> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
    let start = Instant::now();
    let mut group = Group { child: cmd.spawn()? };
    let pid = group.child.id();
    let (tx, rx) = mpsc::channel();
    spawn_reader(group.child.stdout.take(), Stream::Out, tx.clone());
    spawn_reader(group.child.stderr.take(), Stream::Err, tx);

    let deadline = start + opts.timeout;
    let mut output = String::new();
    let mut stderr = String::new();
    let mut marker: Option<String> = None;
    let mut stop_at: Option<Instant> = None;
    let mut exited: Option<ExitStatus> = None;
    let mut pipes_closed = false;
    let take = |stream: Stream, line: String, output: &mut String, stderr: &mut String| {
        if opts.echo && stream == Stream::Out {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        let into = if stream == Stream::Out { output } else { stderr };
        if into.len() < MAX_OUTPUT {
            into.push_str(&line);
            into.push('\n');
            if into.len() >= MAX_OUTPUT {
                into.push_str("[vcpos: output truncated here]\n");
            }
        }
        line
    };
    loop {
        let now = Instant::now();
        let end = stop_at.map_or(deadline, |t| t.min(deadline));
        if now >= end {
            break;
        }
        let wait = (end - now).min(POLL);
        if pipes_closed {
            thread::sleep(wait);
        } else {
            match rx.recv_timeout(wait) {
                Ok((stream, line)) => {
                    let line = take(stream, line, &mut output, &mut stderr);
                    if stream == Stream::Out
                        && marker.is_none()
                        && opts.stop_on.iter().any(|m| line.contains(m.as_str()))
                    {
                        marker = Some(line);
                        stop_at = Some(Instant::now() + opts.grace);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => pipes_closed = true,
            }
        }
        if exited.is_none() {
            exited = group.child.try_wait()?;
        }
        if exited.is_some() {
            if pipes_closed {
                break;
            }
            // Exited, but something still holds the pipes: read what is there briefly.
            stop_at.get_or_insert_with(|| Instant::now() + opts.grace);
        }
    }
    group.kill();
    // The pipes close once the group is dead; keep what was still in flight.
    let drain_end = Instant::now() + DRAIN;
    while let Some(left) = drain_end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((stream, line)) => {
                take(stream, line, &mut output, &mut stderr);
            }
            Err(_) => break,
        }
    }
    let ending = match (marker, exited) {
        (Some(line), _) => Ending::Marker(line),
        (None, Some(status)) => Ending::Exited(status),
        (None, None) => Ending::TimedOut(opts.timeout),
    };
    Ok(Capture { output, stderr, ending, elapsed: start.elapsed(), pid })
}

/// The first line of `<binary> --version`, or `None` if it cannot be run.
pub fn qemu_version(binary: &str) -> Option<String> {
    let out = Command::new(binary).arg("--version").stdin(Stdio::null()).output().ok()?;
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
    if !image.is_file() {
        return Err(Diagnostic::plain(format!("image {} not found", image.display())));
    }
    print_qemu_version_once(&board.qemu.binary);
    capture(qemu_command(board, image, Console::Captured), opts).map_err(|e| spawn_error(&board.qemu.binary, &e))
}

/// Runs `vcpos run`.
pub fn run_command(args: &RunArgs) -> ExitCode {
    let board = match board::load(&args.board, None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if !args.image.is_file() {
        eprintln!("Error: image {} not found", args.image.display());
        return ExitCode::from(1);
    }
    match args.timeout {
        None => run_interactive(&board, &args.image, args.gdb),
        Some(secs) => {
            let mut opts = CaptureOptions::until_marker(Duration::from_secs(secs));
            opts.echo = true;
            match run_image(&board, &args.image, &opts) {
                Ok(c) => {
                    eprint!("{}", c.stderr);
                    eprintln!("vcpos: {} ({:.1} s)", c.ending, c.elapsed.as_secs_f64());
                    if c.passed() {
                        ExitCode::SUCCESS
                    } else {
                        eprintln!("vcpos: no pass marker, or a failure was reported");
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Boots `image` with the serial console on the terminal until QEMU exits.
fn run_interactive(board: &Board, image: &Path, gdb: bool) -> ExitCode {
    print_qemu_version_once(&board.qemu.binary);
    let mut cmd = qemu_command(board, image, Console::Interactive { gdb });
    eprintln!("vcpos: {}", display_command(&cmd));
    if gdb {
        eprintln!("vcpos: waiting for GDB: gdb-multiarch -ex 'target remote :1234' <ELF>");
    }
    eprintln!("vcpos: serial console follows; quit with Ctrl-A x");
    match cmd.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("vcpos: QEMU ended: {status}");
            ExitCode::from(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1).max(1)))
        }
        Err(e) => {
            eprintln!("{}", spawn_error(&board.qemu.binary, &e));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("sh");
        c.args(["-c", script]);
        c
    }

    /// True if a live (not zombie) process of group `pgid` exists, per /proc (a killed
    /// orphan stays a zombie until its new parent reaps it, so `kill(-pgid, 0)` is not
    /// the test).
    fn group_alive_now(pgid: u32) -> bool {
        let Ok(dir) = std::fs::read_dir("/proc") else { panic!("no /proc") };
        dir.flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
            // Fields after the parenthesised command name: state, ppid, pgrp, ...
            let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else { return false };
            let f: Vec<&str> = rest.split_whitespace().collect();
            f.len() > 2 && f[2] == pgid.to_string() && f[0] != "Z"
        })
    }

    /// True if group `pgid` still has a live process 5 s from now. (SIGKILL is
    /// delivered asynchronously: a grandchild may take a moment to die on a busy
    /// machine; the direct child is reaped before `capture` returns.)
    fn group_alive(pgid: u32) -> bool {
        let t0 = Instant::now();
        while group_alive_now(pgid) {
            if t0.elapsed() > Duration::from_secs(5) {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    #[test]
    fn group_check_sees_a_live_group() {
        let mut child = sh("sleep 100").process_group(0).spawn().unwrap();
        assert!(group_alive_now(child.id()));
        let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        assert!(!group_alive(child.id()));
    }

    #[test]
    fn command_line_comes_from_the_board() {
        let board = board::load("qemu_virt_aarch64", None).unwrap();
        let img = Path::new("/x/vcpos.img");
        let cmd = qemu_command(&board, img, Console::Captured);
        let line = display_command(&cmd);
        assert!(line.starts_with("qemu-system-aarch64 "), "{line}");
        for part in [
            "-machine virt,virtualization=on,gic-version=3",
            "-cpu max,pauth=off",
            "-m 2G",
            "-smp 1",
            "-serial stdio",
            "-monitor none",
            "-kernel /x/vcpos.img",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line}");
        }
        let inter = display_command(&qemu_command(&board, img, Console::Interactive { gdb: true }));
        assert!(inter.contains("-nographic -serial mon:stdio -s -S -kernel"), "{inter}");
        assert!(!inter.contains("-monitor none"), "{inter}");
    }

    #[test]
    fn display_command_quotes() {
        let mut c = Command::new("q");
        c.args(["a b", "it's", "plain"]);
        assert_eq!(display_command(&c), r"q 'a b' 'it'\''s' plain");
    }

    #[test]
    fn markers_are_found_in_order() {
        let out = "boot\nhello: TEST PASS: hello world\nx TEST FAIL: bad thing  \nvcpos|ERROR: oops\n";
        assert_eq!(markers(out), vec![Marker::Pass("hello world"), Marker::Fail("bad thing")]);
        assert_eq!(kernel_errors(out), vec!["vcpos|ERROR: oops"]);
        assert!(markers("TEST PASS without colon\n").is_empty());
    }

    #[test]
    fn stops_at_marker_and_kills_the_whole_group() {
        let t0 = Instant::now();
        // `sleep` is a grandchild: only a process-group kill ends it.
        let c = capture(
            sh("echo booting; echo 'pd: TEST PASS: fake'; echo after; sleep 100"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
        .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
        assert_eq!(c.ending, Ending::Marker("pd: TEST PASS: fake".into()));
        assert_eq!(c.output, "booting\npd: TEST PASS: fake\nafter\n");
        assert!(c.passed());
        assert!(!group_alive(c.pid), "process group {} still alive", c.pid);
    }

    #[test]
    fn fail_marker_and_kernel_error_stop_the_run_and_fail_it() {
        for script in ["echo 'TEST FAIL: nope'; sleep 100", "echo 'vcpos|ERROR: boom'; sleep 100"] {
            let c = capture(sh(script), &CaptureOptions::until_marker(Duration::from_secs(30))).unwrap();
            assert!(matches!(c.ending, Ending::Marker(_)), "{script}: {:?}", c.ending);
            assert!(!c.passed(), "{script}");
            assert!(!group_alive(c.pid));
        }
        let c = capture(
            sh("echo 'TEST PASS: a'; echo 'vcpos|ERROR: late'; sleep 100"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
        .unwrap();
        assert!(c.output.contains("vcpos|ERROR: late"), "grace period lost a line: {:?}", c.output);
        assert!(!c.passed());
    }

    #[test]
    fn timeout_kills_a_silent_process() {
        let t0 = Instant::now();
        let c = capture(
            sh("echo started; printf 'partial'; sleep 100"),
            &CaptureOptions::until_marker(Duration::from_millis(700)),
        )
        .unwrap();
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(700) && took < Duration::from_secs(10), "took {took:?}");
        assert_eq!(c.ending, Ending::TimedOut(Duration::from_millis(700)));
        // The unterminated last line is kept.
        assert_eq!(c.output, "started\npartial\n");
        assert!(!c.passed());
        assert!(!group_alive(c.pid));
    }

    #[test]
    fn endless_line_is_cut() {
        let c = capture(
            sh("head -c 200000 /dev/zero | tr '\\0' x; echo; echo 'TEST PASS: long'; sleep 100"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
        .unwrap();
        let lines: Vec<&str> = c.output.lines().collect();
        assert_eq!(lines.iter().map(|l| l.len()).take(4).collect::<Vec<_>>(), [65536, 65536, 65536, 3392]);
        assert_eq!(lines.last(), Some(&"TEST PASS: long"));
        assert!(c.passed());
    }

    #[test]
    fn exit_is_reported_with_stderr() {
        let c = capture(sh("echo out; echo qemu-says >&2; exit 3"), &CaptureOptions::until_marker(Duration::from_secs(30)))
            .unwrap();
        match &c.ending {
            Ending::Exited(s) => assert_eq!(s.code(), Some(3)),
            e => panic!("unexpected ending {e:?}"),
        }
        assert_eq!(c.output, "out\n");
        assert_eq!(c.stderr, "qemu-says\n");
        assert!(c.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn stdin_is_empty() {
        // `cat` ends at once when stdin is /dev/null; it would hang on a terminal.
        let c = capture(sh("cat; echo done"), &CaptureOptions::until_marker(Duration::from_secs(30))).unwrap();
        assert_eq!(c.output, "done\n");
        assert!(matches!(c.ending, Ending::Exited(_)));
    }

    #[test]
    fn missing_binary_is_a_clear_error() {
        let mut board = board::load("qemu_virt_aarch64", None).unwrap();
        board.qemu.binary = "/nonexistent/qemu-system-aarch64".into();
        let img = std::env::temp_dir().join(format!("vcpos-runner-test-{}.img", std::process::id()));
        std::fs::write(&img, b"x").unwrap();
        let err = run_image(&board, &img, &CaptureOptions::until_marker(Duration::from_secs(5))).unwrap_err();
        let _ = std::fs::remove_file(&img);
        assert!(err.to_string().contains("tools/setup.sh"), "{err}");
        let err = run_image(&board, Path::new("/nonexistent/img"), &CaptureOptions::until_marker(Duration::from_secs(5)))
            .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
