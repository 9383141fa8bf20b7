//! Running images in QEMU: the one place the QEMU command line is made.
//!
//! Two ways to run an image:
//! - interactive ([`run_command`] without `--timeout`): QEMU owns the terminal, the
//!   serial console and QEMU's monitor share stdio (`-serial mon:stdio`), Ctrl-A x quits;
//! - captured ([`run_image`], [`capture`]): the serial console goes to a pipe and is
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
//! starting [`TEST_PASS`] or [`TEST_FAIL`], [`KERNEL_ERROR`] or [`KERNEL_FAULT`]. Only the
//! start of a line counts: a guest's console line starts with [`GUEST_LINE_PREFIX`], so
//! a guest can print any text and never a marker; a carriage return or an escape
//! sequence in the middle of a line does not start one either (carriage returns are
//! removed from the transcript, and nothing else counts as a line end).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::board::{self, Board};
use crate::diag::Diagnostic;

pub use vcpos_abi::console::{GUEST_LINE_PREFIX, KERNEL_ERROR, KERNEL_FAULT, KERNEL_PREFIX, TEST_FAIL, TEST_PASS};

/// What the runner puts at the start of the rest of a line it had to cut (after
/// [`MAX_LINE`] bytes without a line end): the rest did not start a line, so it must
/// not start one in the transcript, where a marker there would be believed.
pub const CONTINUED: &str = "[vcpos: line continued] ";

/// How long a captured run keeps reading after a stop marker, so that the lines a
/// PD or the kernel prints right after it (a multi-line error report) are kept.
pub const DEFAULT_GRACE: Duration = Duration::from_millis(300);

/// How often a captured run checks whether the process has exited.
const POLL: Duration = Duration::from_millis(50);

/// How long to wait for the last output after the process group was killed.
const DRAIN: Duration = Duration::from_secs(1);

/// A longer run of output without a line end is cut into lines of this many bytes.
const MAX_LINE: usize = 64 * 1024;

/// Bytes read from a pipe at a time.
const CHUNK: usize = 8 * 1024;

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
    /// A console script step (runs with --timeout): wait until TEXT appears in the
    /// serial output, then type SEND (escapes: \r = Enter, \n, \t, \e, \\, \xHH;
    /// "=>SEND" may be left out). Steps run in the order given; the run ends after the
    /// last one and succeeds if no `TEST FAIL:`/`vcpos|ERROR:` line appeared.
    #[arg(long = "step", value_name = "TEXT=>SEND", requires = "timeout")]
    pub steps: Vec<String>,
    /// Pause this many milliseconds after each byte a step types.
    #[arg(long, value_name = "MS", requires = "timeout")]
    pub type_delay: Option<u64>,
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

/// What a console script step waits for in the serial output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This text anywhere in the output after the previous step's match, also in a
    /// line that has no line end yet (a shell prompt waits at the end of its line).
    Text(String),
    /// A whole line equal to this (spaces and tabs around either ignored, and a
    /// guest line's [`GUEST_LINE_PREFIX`]) after the previous step's match; the rest of
    /// the line that match was in counts as a line.
    Line(String),
}

/// One step of a console script: wait for [`Expect`], then type `send`.
///
/// The output is matched with carriage returns removed (as in [`Capture::output`]),
/// so an expected text never contains `\r`; in `send`, `\r` is Enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What to wait for.
    pub expect: Expect,
    /// What to write to the serial input then (may be empty: only wait).
    pub send: Vec<u8>,
}

impl Step {
    /// Waits for `text` (also in an unfinished line), then types `send`.
    pub fn after_text(text: impl Into<String>, send: impl AsRef<[u8]>) -> Step {
        Step {
            expect: Expect::Text(text.into()),
            send: send.as_ref().to_vec(),
        }
    }

    /// Waits for a line equal to `line`, then types `send`.
    pub fn after_line(line: impl Into<String>, send: impl AsRef<[u8]>) -> Step {
        Step {
            expect: Expect::Line(line.into()),
            send: send.as_ref().to_vec(),
        }
    }

    /// Only waits for `text`.
    pub fn wait_text(text: impl Into<String>) -> Step {
        Step::after_text(text, b"")
    }

    /// Only waits for a line equal to `line`.
    pub fn wait_line(line: impl Into<String>) -> Step {
        Step::after_line(line, b"")
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.expect {
            Expect::Text(t) => write!(f, "wait for {t:?}")?,
            Expect::Line(l) => write!(f, "wait for the line {l:?}")?,
        }
        if !self.send.is_empty() {
            write!(f, ", then type {:?}", String::from_utf8_lossy(&self.send))?;
        }
        Ok(())
    }
}

/// Parses a `vcpos run --step` argument, `TEXT=>SEND` or `TEXT`, with escapes in
/// both parts (`\r`, `\n`, `\t`, `\e`, `\\`, `\xHH`).
pub fn parse_step(arg: &str) -> Result<Step, String> {
    let (text, send) = arg.split_once("=>").unwrap_or((arg, ""));
    let text = unescape(text)?;
    let text = String::from_utf8(text).map_err(|_| format!("step {arg:?}: the text to wait for is not UTF-8"))?;
    if text.contains('\r') {
        return Err(format!(
            "step {arg:?}: carriage returns are removed from the output, so \\r cannot be waited for"
        ));
    }
    Ok(Step::after_text(text, unescape(send)?))
}

/// Resolves the escapes of [`parse_step`].
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'e') => out.push(0x1b),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("in {s:?}: \\x needs two hex digits"))?;
                out.push(value);
            }
            Some(other) => return Err(format!("in {s:?}: unknown escape \\{}", other as char)),
            None => return Err(format!("in {s:?}: a lone \\ at the end")),
        }
    }
    Ok(out)
}

/// Options of a captured run.
#[derive(Clone, Debug)]
pub struct CaptureOptions {
    /// The run is stopped (and the process group killed) after this long.
    pub timeout: Duration,
    /// A stdout line that matches any of these ends the run, [`Self::grace`] later.
    pub stop_on: Vec<Stop>,
    /// How long to keep reading after a stop marker (or the script's last step).
    pub grace: Duration,
    /// Copy each output line to this process's stdout as it arrives.
    pub echo: bool,
    /// Console script: the steps, in order. Empty: stdin is `/dev/null`. Otherwise
    /// stdin is a pipe the steps type into, and the run ends (after [`Self::grace`])
    /// once the last step happened.
    pub script: Vec<Step>,
    /// Pause after each byte a step types (zero: a step's bytes are written at once).
    pub type_delay: Duration,
}

impl CaptureOptions {
    /// Stop at the first pass or fail marker or kernel error, after `timeout` at the
    /// latest; no echo, no script.
    pub fn until_marker(timeout: Duration) -> CaptureOptions {
        CaptureOptions {
            timeout,
            stop_on: [TEST_PASS, TEST_FAIL, KERNEL_ERROR]
                .map(|m| Stop::LineStart(m.into()))
                .to_vec(),
            grace: DEFAULT_GRACE,
            echo: false,
            script: Vec::new(),
            type_delay: Duration::ZERO,
        }
    }

    /// Runs `script` until its last step, or a fail marker or kernel error, or
    /// `timeout`; no echo.
    pub fn scripted(timeout: Duration, script: Vec<Step>) -> CaptureOptions {
        CaptureOptions {
            stop_on: [TEST_FAIL, KERNEL_ERROR].map(|m| Stop::LineStart(m.into())).to_vec(),
            script,
            ..CaptureOptions::until_marker(timeout)
        }
    }
}

/// Why a captured run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A stop marker appeared on this line.
    Marker(String),
    /// The console script's last step happened (and no stop marker appeared).
    ScriptDone,
    /// The process exited by itself (guest power-off or reset, or a QEMU error).
    Exited(ExitStatus),
    /// The timeout ran out.
    TimedOut(Duration),
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ending::Marker(line) => write!(f, "stopped at marker line: {line}"),
            Ending::ScriptDone => write!(f, "the console script ran to its end"),
            Ending::Exited(status) => write!(f, "process exited by itself ({status})"),
            Ending::TimedOut(t) => write!(f, "timed out after {} s and was killed", t.as_secs_f64()),
        }
    }
}

/// A marker line: the start of a line is one of the console markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    /// `TEST PASS: <detail>`: the detail.
    Pass(&'a str),
    /// `TEST FAIL: <reason>`: the reason.
    Fail(&'a str),
    /// `vcpos|ERROR: ...`: the whole line.
    KernelError(&'a str),
    /// `vcpos|FAULT: ...`: the whole line.
    KernelFault(&'a str),
}

impl Marker<'_> {
    /// A failure: a fail marker or a kernel error (a fault report alone is not: a test
    /// may provoke a fault on purpose).
    pub fn is_failure(&self) -> bool {
        matches!(self, Marker::Fail(_) | Marker::KernelError(_))
    }
}

/// The marker `line` is, if it starts with one (and only then: see the module docs).
pub fn line_marker(line: &str) -> Option<Marker<'_>> {
    if let Some(rest) = line.strip_prefix(TEST_PASS) {
        Some(Marker::Pass(rest.trim()))
    } else if let Some(rest) = line.strip_prefix(TEST_FAIL) {
        Some(Marker::Fail(rest.trim()))
    } else if line.starts_with(KERNEL_ERROR) {
        Some(Marker::KernelError(line.trim_end()))
    } else if line.starts_with(KERNEL_FAULT) {
        Some(Marker::KernelFault(line.trim_end()))
    } else {
        None
    }
}

/// The markers in `output`, in order.
pub fn markers(output: &str) -> Vec<Marker<'_>> {
    output.lines().filter_map(line_marker).collect()
}

/// The lines of `output` that are kernel error lines.
pub fn kernel_errors(output: &str) -> Vec<&str> {
    markers(output)
        .into_iter()
        .filter_map(|m| match m {
            Marker::KernelError(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// The text of a console line without the VMM's [`GUEST_LINE_PREFIX`], if it has it
/// (what the guest printed), else the line as it is.
pub fn console_text(line: &str) -> &str {
    line.strip_prefix(GUEST_LINE_PREFIX).unwrap_or(line)
}

/// What ends a captured run (see [`CaptureOptions::stop_on`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A line that starts with this (a marker: [`TEST_PASS`], [`KERNEL_ERROR`], ...).
    LineStart(String),
    /// A line that contains this anywhere (a text a guest prints, e.g. its panic
    /// message: stopping early on a forged one can only fail a run, never pass it).
    Text(String),
}

impl Stop {
    /// Whether `line` (a whole line of output) matches.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Stop::LineStart(m) => line.starts_with(m.as_str()),
            Stop::Text(t) => line.contains(t.as_str()),
        }
    }
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
    /// For each console script step that happened, in order: when (from spawn).
    pub steps_done: Vec<Duration>,
    /// How many steps the script had.
    pub script_steps: usize,
}

impl Capture {
    /// The pass and fail markers in the output.
    pub fn markers(&self) -> Vec<Marker<'_>> {
        markers(&self.output)
    }

    /// A pass marker appeared, and no fail marker nor kernel error did.
    pub fn passed(&self) -> bool {
        let m = self.markers();
        m.iter().any(|m| matches!(m, Marker::Pass(_))) && !m.iter().any(Marker::is_failure)
    }

    /// Every step of the console script happened.
    pub fn script_complete(&self) -> bool {
        self.steps_done.len() == self.script_steps
    }

    /// The script ran to its end, and no fail marker nor kernel error appeared.
    pub fn script_passed(&self) -> bool {
        self.script_complete() && !self.markers().iter().any(Marker::is_failure)
    }
}

/// Which pipe a chunk came from.
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

/// Sends what is read from `r` to `tx` in chunks, as it arrives (so that a line
/// without a line end, such as a prompt, is seen at once).
fn spawn_reader<R: Read + Send + 'static>(r: Option<R>, stream: Stream, tx: mpsc::Sender<(Stream, Vec<u8>)>) {
    let Some(mut r) = r else { return };
    thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send((stream, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
}

/// Writes each byte string it is sent to `stdin` (the serial input), pausing `delay`
/// after each byte if it is not zero. Ends when the sender is dropped or the pipe
/// breaks (the process is gone).
fn spawn_typist(mut stdin: ChildStdin, delay: Duration) -> mpsc::Sender<Vec<u8>> {
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    thread::spawn(move || {
        for bytes in rx {
            let written = if delay.is_zero() {
                stdin.write_all(&bytes).and_then(|()| stdin.flush())
            } else {
                bytes.iter().try_for_each(|&b| {
                    stdin.write_all(&[b])?;
                    stdin.flush()?;
                    thread::sleep(delay);
                    Ok(())
                })
            };
            if written.is_err() {
                break;
            }
        }
    });
    tx
}

/// Cuts a byte stream into lines: at `\n` (removed), and after [`MAX_LINE`] bytes
/// without one (the rest then starts with [`CONTINUED`]); lossy UTF-8.
#[derive(Default)]
struct LineCutter {
    pending: Vec<u8>,
    /// The pending bytes continue a line that was cut.
    continued: bool,
}

impl LineCutter {
    /// Appends `bytes`; returns the lines they completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        for &b in bytes {
            if b == b'\n' {
                lines.push(self.take());
                self.continued = false;
            } else {
                self.pending.push(b);
                if self.pending.len() >= MAX_LINE {
                    lines.push(self.take());
                    self.continued = true;
                }
            }
        }
        lines
    }

    /// The unfinished last line, if any.
    fn finish(&mut self) -> Option<String> {
        (!self.pending.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let text = String::from_utf8_lossy(&self.pending);
        let line = if self.continued {
            format!("{CONTINUED}{text}")
        } else {
            text.into_owned()
        };
        self.pending.clear();
        line
    }
}

/// Where a console script is: the next step, and the output seen since the previous
/// step's match (carriage returns removed), which the next step searches.
struct ScriptState<'a> {
    steps: &'a [Step],
    next: usize,
    seen: Vec<u8>,
}

impl<'a> ScriptState<'a> {
    fn new(steps: &'a [Step]) -> ScriptState<'a> {
        ScriptState {
            steps,
            next: 0,
            seen: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.next == self.steps.len()
    }

    /// Feeds output; returns the steps it completed, in order.
    fn feed(&mut self, bytes: &[u8]) -> Vec<&'a Step> {
        self.seen.extend_from_slice(bytes);
        let mut happened = Vec::new();
        while let Some(step) = self.steps.get(self.next) {
            match find_expected(&step.expect, &self.seen) {
                Some(end) => {
                    self.seen.drain(..end);
                    happened.push(step);
                    self.next += 1;
                }
                None => {
                    let keep_from = unmatched_prefix(&step.expect, &self.seen);
                    self.seen.drain(..keep_from);
                    break;
                }
            }
        }
        happened
    }
}

/// Where the first match of `expect` in `seen` ends.
fn find_expected(expect: &Expect, seen: &[u8]) -> Option<usize> {
    match expect {
        Expect::Text(t) => {
            let t = t.as_bytes();
            if t.is_empty() {
                return Some(0);
            }
            seen.windows(t.len()).position(|w| w == t).map(|i| i + t.len())
        }
        Expect::Line(l) => {
            let want = l.as_bytes().trim_ascii();
            let mut start = 0;
            for (i, &b) in seen.iter().enumerate() {
                if b == b'\n' {
                    let line = &seen[start..i];
                    let text = line.strip_prefix(GUEST_LINE_PREFIX.as_bytes()).unwrap_or(line);
                    if text.trim_ascii() == want {
                        return Some(i + 1);
                    }
                    start = i + 1;
                }
            }
            None
        }
    }
}

/// How much of `seen` can never be part of a match of `expect` (it did not match).
fn unmatched_prefix(expect: &Expect, seen: &[u8]) -> usize {
    match expect {
        // A match could still start in the last len - 1 bytes.
        Expect::Text(t) => seen.len().saturating_sub(t.len().saturating_sub(1)),
        // Complete lines are done with; an overlong unfinished one is dropped too.
        Expect::Line(_) => {
            let unfinished = seen.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if seen.len() - unfinished > MAX_LINE {
                seen.len()
            } else {
                unfinished
            }
        }
    }
}

/// Runs `cmd`, collecting its output until a stop marker (plus grace), the end of its
/// console script (plus grace), its exit, or the timeout; then kills its whole process
/// group. stdin is `/dev/null` without a script, else the pipe the script types into.
pub fn capture(mut cmd: Command, opts: &CaptureOptions) -> std::io::Result<Capture> {
    let scripted = !opts.script.is_empty();
    let stdin = if scripted { Stdio::piped() } else { Stdio::null() };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut group = Group { child: cmd.spawn()? };
    let pid = group.child.id();
    let typist = group
        .child
        .stdin
        .take()
        .map(|stdin| spawn_typist(stdin, opts.type_delay));
    let (tx, rx) = mpsc::channel();
    spawn_reader(group.child.stdout.take(), Stream::Out, tx.clone());
    spawn_reader(group.child.stderr.take(), Stream::Err, tx);

    let deadline = start + opts.timeout;
    let mut output = String::new();
    let mut stderr = String::new();
    let mut out_lines = LineCutter::default();
    let mut err_lines = LineCutter::default();
    let mut script = ScriptState::new(&opts.script);
    let mut steps_done = Vec::new();
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
    let stop_soon = |stop_at: &mut Option<Instant>| {
        let t = Instant::now() + opts.grace;
        *stop_at = Some(stop_at.map_or(t, |s| s.min(t)));
    };
    // Runs the script on new output (nothing: steps that wait for an empty text).
    let mut advance = |bytes: &[u8], steps_done: &mut Vec<Duration>, stop_at: &mut Option<Instant>| {
        if !scripted || script.done() {
            return;
        }
        for step in script.feed(bytes) {
            steps_done.push(start.elapsed());
            if let (Some(typist), false) = (&typist, step.send.is_empty()) {
                // The typist only stops when the process is gone.
                let _ = typist.send(step.send.clone());
            }
        }
        if script.done() {
            stop_soon(stop_at);
        }
    };
    advance(b"", &mut steps_done, &mut stop_at);
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
                Ok((stream, chunk)) => {
                    let clean: Vec<u8> = chunk.into_iter().filter(|&b| b != b'\r').collect();
                    let cutter = if stream == Stream::Out {
                        &mut out_lines
                    } else {
                        &mut err_lines
                    };
                    for line in cutter.push(&clean) {
                        let line = take(stream, line, &mut output, &mut stderr);
                        if stream == Stream::Out && marker.is_none() && opts.stop_on.iter().any(|m| m.matches(&line)) {
                            marker = Some(line);
                            stop_soon(&mut stop_at);
                        }
                    }
                    if stream == Stream::Out {
                        advance(&clean, &mut steps_done, &mut stop_at);
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
            Ok((stream, chunk)) => {
                let clean: Vec<u8> = chunk.into_iter().filter(|&b| b != b'\r').collect();
                let cutter = if stream == Stream::Out {
                    &mut out_lines
                } else {
                    &mut err_lines
                };
                for line in cutter.push(&clean) {
                    take(stream, line, &mut output, &mut stderr);
                }
            }
            Err(_) => break,
        }
    }
    // Unfinished last lines (a prompt, output cut off by the kill).
    if let Some(line) = out_lines.finish() {
        take(Stream::Out, line, &mut output, &mut stderr);
    }
    if let Some(line) = err_lines.finish() {
        take(Stream::Err, line, &mut output, &mut stderr);
    }
    let ending = match (marker, exited) {
        (Some(line), _) => Ending::Marker(line),
        (None, _) if scripted && steps_done.len() == opts.script.len() => Ending::ScriptDone,
        (None, Some(status)) => Ending::Exited(status),
        (None, None) => Ending::TimedOut(opts.timeout),
    };
    Ok(Capture {
        output,
        stderr,
        ending,
        elapsed: start.elapsed(),
        pid,
        steps_done,
        script_steps: opts.script.len(),
    })
}

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
            let script = match args.steps.iter().map(|s| parse_step(s)).collect::<Result<Vec<_>, _>>() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: --step: {e}");
                    return ExitCode::from(1);
                }
            };
            let scripted = !script.is_empty();
            let mut opts = if scripted {
                CaptureOptions::scripted(Duration::from_secs(secs), script)
            } else {
                CaptureOptions::until_marker(Duration::from_secs(secs))
            };
            opts.echo = true;
            opts.type_delay = Duration::from_millis(args.type_delay.unwrap_or(0));
            match run_image(&board, &args.image, &opts) {
                Ok(c) => {
                    eprint!("{}", c.stderr);
                    eprintln!("vcpos: {} ({:.1} s)", c.ending, c.elapsed.as_secs_f64());
                    if scripted && !c.script_complete() {
                        let step = &opts.script[c.steps_done.len()];
                        eprintln!(
                            "vcpos: the console script stopped at step {}: {step}",
                            c.steps_done.len() + 1
                        );
                    }
                    let ok = if scripted { c.script_passed() } else { c.passed() };
                    if ok {
                        ExitCode::SUCCESS
                    } else if scripted {
                        eprintln!("vcpos: the script did not finish, or a failure was reported");
                        ExitCode::from(1)
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
        let Ok(dir) = std::fs::read_dir("/proc") else {
            panic!("no /proc")
        };
        dir.flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            // Fields after the parenthesised command name: state, ppid, pgrp, ...
            let Some(rest) = stat.rsplit_once(") ").map(|(_, r)| r) else {
                return false;
            };
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
        let out = "boot\nTEST PASS: hello world\nTEST FAIL: bad thing  \nvcpos|ERROR: oops\nvcpos|FAULT: PD 'x'\n";
        assert_eq!(
            markers(out),
            vec![
                Marker::Pass("hello world"),
                Marker::Fail("bad thing"),
                Marker::KernelError("vcpos|ERROR: oops"),
                Marker::KernelFault("vcpos|FAULT: PD 'x'")
            ]
        );
        assert_eq!(kernel_errors(out), vec!["vcpos|ERROR: oops"]);
        assert!(markers("TEST PASS without colon\n").is_empty());
    }

    #[test]
    fn a_marker_counts_only_at_the_start_of_a_line() {
        assert_eq!(line_marker("TEST PASS: x"), Some(Marker::Pass("x")));
        assert_eq!(line_marker("guest| TEST PASS: x"), None);
        for forged in [
            "guest| TEST PASS: x",
            "guest| TEST FAIL: x",
            "guest| vcpos|ERROR: x",
            "guest| vcpos|FAULT: PD 'a'",
            "pd: TEST PASS: x",
            " TEST PASS: x",
            "\x1b[2KTEST PASS: x",
            "\x1b[GTEST PASS: x",
            "foo\rTEST PASS: x",
        ] {
            assert_eq!(line_marker(forged), None, "{forged:?}");
            assert!(markers(&format!("{forged}\n")).is_empty(), "{forged:?}");
        }
        assert_eq!(console_text("guest| hello"), "hello");
        assert_eq!(console_text("vcpos|INFO: x"), "vcpos|INFO: x");
    }

    #[test]
    fn a_guest_line_never_passes_nor_stops_a_run() {
        // What a guest behind the VMM's prefix prints, with carriage returns and escape
        // sequences that would put the marker at the start of a terminal's line.
        let c = capture(
            sh(
                r"printf 'guest| TEST PASS: x\n'; printf 'guest| \r\033[2KTEST PASS: y\n'; \
                 printf 'guest| \rvcpos|ERROR: z\n'; printf 'x\rTEST PASS: w\n'; sleep 100",
            ),
            &CaptureOptions::until_marker(Duration::from_millis(1500)),
        )
        .unwrap();
        assert_eq!(c.ending, Ending::TimedOut(Duration::from_millis(1500)), "{c:#?}");
        assert!(c.markers().is_empty() && !c.passed(), "{c:#?}");
        assert!(c.output.contains("guest| TEST PASS: x\n"), "{c:#?}");
        let c = capture(
            sh("echo 'guest| TEST PASS: x'; echo 'TEST PASS: x'; sleep 100"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
        .unwrap();
        assert_eq!(c.ending, Ending::Marker("TEST PASS: x".into()), "{c:#?}");
        assert!(c.passed());
    }

    #[test]
    fn the_rest_of_a_cut_line_never_starts_a_marker() {
        // A guest line longer than MAX_LINE whose cut would leave a marker at the start
        // of a line.
        let pad = MAX_LINE - GUEST_LINE_PREFIX.len();
        let c = capture(
            sh(&format!(
                "printf 'guest| '; head -c {pad} /dev/zero | tr '\\0' x; echo 'TEST PASS: forged'; sleep 100"
            )),
            &CaptureOptions::until_marker(Duration::from_millis(1500)),
        )
        .unwrap();
        assert_eq!(
            c.ending,
            Ending::TimedOut(Duration::from_millis(1500)),
            "{:?}",
            c.ending
        );
        assert!(!c.passed());
        assert!(
            c.output.contains(&format!("\n{CONTINUED}TEST PASS: forged\n")),
            "{:?}",
            &c.output[c.output.len() - 80..]
        );
    }

    #[test]
    fn stops_at_marker_and_kills_the_whole_group() {
        let t0 = Instant::now();
        // `sleep` is a grandchild: only a process-group kill ends it.
        let c = capture(
            sh("echo booting; echo 'TEST PASS: fake'; echo after; sleep 100"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
        .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
        assert_eq!(c.ending, Ending::Marker("TEST PASS: fake".into()));
        assert_eq!(c.output, "booting\nTEST PASS: fake\nafter\n");
        assert!(c.passed());
        assert!(!group_alive(c.pid), "process group {} still alive", c.pid);
    }

    #[test]
    fn fail_marker_and_kernel_error_stop_the_run_and_fail_it() {
        for script in [
            "echo 'TEST FAIL: nope'; sleep 100",
            "echo 'vcpos|ERROR: boom'; sleep 100",
        ] {
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
        assert!(
            c.output.contains("vcpos|ERROR: late"),
            "grace period lost a line: {:?}",
            c.output
        );
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
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_secs(10),
            "took {took:?}"
        );
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
        let cont = CONTINUED.len();
        assert_eq!(
            lines.iter().map(|l| l.len()).take(4).collect::<Vec<_>>(),
            [65536, cont + 65536, cont + 65536, cont + 3392]
        );
        assert!(lines[1..4].iter().all(|l| l.starts_with(CONTINUED)));
        assert_eq!(lines.last(), Some(&"TEST PASS: long"));
        assert!(c.passed());
    }

    #[test]
    fn exit_is_reported_with_stderr() {
        let c = capture(
            sh("echo out; echo qemu-says >&2; exit 3"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
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
        let c = capture(
            sh("cat; echo done"),
            &CaptureOptions::until_marker(Duration::from_secs(30)),
        )
        .unwrap();
        assert_eq!(c.output, "done\n");
        assert!(matches!(c.ending, Ending::Exited(_)));
    }

    /// A fake console: a prompt without a line end, read a line, answer; twice.
    const FAKE_SHELL: &str = "echo booting; printf 'login: '; read name; echo \"hello $name\"; \
        printf '$ '; read cmd; echo \"ran $cmd\"; echo \"$cmd-out\"; printf '$ '; sleep 100";

    #[test]
    fn script_answers_prompts_and_ends_after_its_last_step() {
        let t0 = Instant::now();
        let script = vec![
            Step::after_text("login: ", "alice\n"),
            Step::wait_line("hello alice"),
            Step::after_text("$ ", "ls\n"),
            Step::wait_line("ls-out"),
            Step::wait_text("$ "),
        ];
        let c = capture(
            sh(FAKE_SHELL),
            &CaptureOptions::scripted(Duration::from_secs(30), script),
        )
        .unwrap();
        assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
        assert_eq!(c.ending, Ending::ScriptDone, "{c:#?}");
        assert!(c.script_complete() && c.script_passed(), "{c:#?}");
        assert_eq!(c.steps_done.len(), 5);
        assert!(c.steps_done.windows(2).all(|w| w[0] <= w[1]), "{:?}", c.steps_done);
        // The prompt lines have no line end; they are still kept, with what follows.
        assert_eq!(c.output, "booting\nlogin: hello alice\n$ ran ls\nls-out\n$ \n");
        assert!(!c.passed(), "no pass marker in a scripted run");
        assert!(!group_alive(c.pid), "process group {} still alive", c.pid);
    }

    #[test]
    fn script_that_never_sees_its_text_times_out_and_says_where() {
        let script = vec![Step::after_text("login: ", "bob\n"), Step::wait_line("no such line")];
        let c = capture(
            sh(FAKE_SHELL),
            &CaptureOptions::scripted(Duration::from_millis(1500), script),
        )
        .unwrap();
        assert_eq!(c.ending, Ending::TimedOut(Duration::from_millis(1500)), "{c:#?}");
        assert_eq!((c.steps_done.len(), c.script_steps), (1, 2));
        assert!(!c.script_complete() && !c.script_passed());
        assert!(c.output.contains("hello bob"), "{c:#?}");
        assert!(!group_alive(c.pid));
    }

    #[test]
    fn fail_marker_stops_a_scripted_run() {
        let script = vec![Step::after_text("$ ", "x\n"), Step::wait_line("x done")];
        let c = capture(
            sh("echo 'TEST FAIL: broken'; printf '$ '; read a; echo \"$a done\"; sleep 100"),
            &CaptureOptions::scripted(Duration::from_secs(30), script),
        )
        .unwrap();
        assert_eq!(c.ending, Ending::Marker("TEST FAIL: broken".into()), "{c:#?}");
        assert!(!c.script_passed());
        assert!(!group_alive(c.pid));
    }

    #[test]
    fn process_exiting_mid_script_is_reported() {
        // The typist's write may hit a closed pipe: no hang, no panic.
        let script = vec![
            Step::after_text("go", "a long line of input\n"),
            Step::wait_line("never"),
        ];
        let c = capture(
            sh("echo go; exit 4"),
            &CaptureOptions::scripted(Duration::from_secs(30), script),
        )
        .unwrap();
        match &c.ending {
            Ending::Exited(s) => assert_eq!(s.code(), Some(4)),
            e => panic!("unexpected ending {e:?}"),
        }
        assert_eq!(c.steps_done.len(), 1);
        assert!(c.elapsed < Duration::from_secs(10));
    }

    #[test]
    fn type_delay_paces_the_bytes() {
        let mut opts = CaptureOptions::scripted(
            Duration::from_secs(30),
            vec![Step::after_text("> ", "abcde\n"), Step::wait_line("got abcde")],
        );
        opts.type_delay = Duration::from_millis(60);
        let c = capture(sh("printf '> '; read a; echo \"got $a\"; sleep 100"), &opts).unwrap();
        assert_eq!(c.ending, Ending::ScriptDone, "{c:#?}");
        let typing = c.steps_done[1] - c.steps_done[0];
        // Six bytes, the answer comes after the fifth pause at the earliest.
        assert!(typing >= Duration::from_millis(300), "typed in {typing:?}");
    }

    #[test]
    fn without_a_script_stdin_stays_empty_and_with_one_it_is_a_pipe() {
        // `cat` ends at once on /dev/null; with a script it echoes what the script typed.
        let script = vec![Step::after_text("", "typed\n"), Step::wait_line("typed")];
        let c = capture(sh("cat"), &CaptureOptions::scripted(Duration::from_secs(30), script)).unwrap();
        assert_eq!(c.ending, Ending::ScriptDone, "{c:#?}");
        assert_eq!(c.output, "typed\n");
        assert!(!group_alive(c.pid));
    }

    /// Feeds `chunks` to a script of `steps`; returns how many steps happened after
    /// each chunk.
    fn progress(steps: &[Step], chunks: &[&str]) -> Vec<usize> {
        let mut st = ScriptState::new(steps);
        let mut done = 0;
        chunks
            .iter()
            .map(|c| {
                done += st.feed(c.as_bytes()).len();
                done
            })
            .collect()
    }

    #[test]
    fn text_is_found_across_chunks_and_in_unfinished_lines() {
        let steps = [Step::wait_text("vcpos-guest# ")];
        assert_eq!(progress(&steps, &["boot\nvcpos-gu", "est", "# "]), [0, 0, 1]);
        assert_eq!(progress(&steps, &["vcpos-guest#", "\n# "]), [0, 0]);
    }

    #[test]
    fn a_line_step_wants_the_whole_line() {
        let steps = [Step::wait_line("vcpos-42")];
        // The echoed command line contains the expression, not the value; a longer
        // line or an unfinished one is no match.
        assert_eq!(
            progress(&steps, &["# echo vcpos-$((6*7))\n", "xvcpos-42\nvcpos-42", "  \n"]),
            [0, 0, 1]
        );
        assert_eq!(progress(&[Step::wait_line("42")], &["vcpos-42\n"]), [0]);
        // A guest's line behind the VMM's prefix is the guest's text.
        assert_eq!(progress(&steps, &["guest| vcpos-42\n"]), [1]);
        assert_eq!(progress(&steps, &["guest| xvcpos-42\n", "guest|  vcpos-42 \n"]), [0, 1]);
    }

    #[test]
    fn each_step_searches_after_the_previous_match() {
        let steps = [Step::wait_text("$ "), Step::wait_text("$ "), Step::wait_line("end")];
        assert_eq!(progress(&steps, &["$ one\n", "end\n", "$ ", "end\n"]), [1, 1, 2, 3]);
        // Several steps can happen in one chunk, in order.
        assert_eq!(progress(&steps, &["$ $ x\nend\n"]), [3]);
        // The rest of the line a text matched in counts as a line.
        assert_eq!(
            progress(&[Step::wait_text("# "), Step::wait_line("end")], &["# end\n"]),
            [2]
        );
        // An empty text happens at once.
        assert_eq!(progress(&[Step::wait_text("")], &[""]), [1]);
    }

    #[test]
    fn unmatched_output_is_not_kept_for_ever() {
        let steps = [Step::wait_text("needle"), Step::wait_line("line")];
        let mut st = ScriptState::new(&steps);
        let hay = "hay ".repeat(100_000);
        assert!(st.feed(hay.as_bytes()).is_empty());
        assert!(st.seen.len() < 8, "kept {} bytes", st.seen.len());
        assert_eq!(st.feed(b"nee").len(), 0);
        assert_eq!(st.feed(b"dle").len(), 1);
        assert!(st.feed("lines\n".repeat(10_000).as_bytes()).is_empty());
        assert!(st.seen.is_empty(), "finished lines are dropped: {}", st.seen.len());
        assert!(st.feed(b"lin").is_empty());
        assert_eq!(st.seen, b"lin", "an unfinished line is kept");
        assert!(st.feed(hay.as_bytes()).is_empty());
        assert!(
            st.seen.len() <= MAX_LINE,
            "an overlong unfinished line is dropped: {}",
            st.seen.len()
        );
        assert_eq!(st.feed(b"\nline\n").len(), 1);
        assert!(st.done());
    }

    #[test]
    fn step_arguments_parse_with_escapes() {
        assert_eq!(
            parse_step(r"vcpos-guest# =>echo $((6*7))\r").unwrap(),
            Step::after_text("vcpos-guest# ", "echo $((6*7))\r")
        );
        assert_eq!(parse_step("ready").unwrap(), Step::wait_text("ready"));
        assert_eq!(
            parse_step(r"a\tb=>\x03\e[A\\\n").unwrap(),
            Step::after_text("a\tb", b"\x03\x1b[A\\\n")
        );
        assert_eq!(parse_step("a=>b=>c").unwrap(), Step::after_text("a", "b=>c"));
        for (bad, why) in [
            (r"x=>\q", "unknown escape"),
            (r"x=>\x4", "two hex digits"),
            (r"x=>\xzz", "two hex digits"),
            ("x=>\\", "lone"),
            (r"a\rb", "carriage returns"),
            (r"\xff=>x", "not UTF-8"),
        ] {
            let e = parse_step(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let s = Step::after_line("vcpos-42", "uname -m\r").to_string();
        assert_eq!(s, r#"wait for the line "vcpos-42", then type "uname -m\r""#);
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
        let err = run_image(
            &board,
            Path::new("/nonexistent/img"),
            &CaptureOptions::until_marker(Duration::from_secs(5)),
        )
        .unwrap_err();
        assert!(err.to_string().contains("not found"), "{err}");
    }
}
