//! Captured runs: a process's output collected line by line until a stop marker (plus a
//! short grace period for the lines that follow it), the end of its console script
//! (plus grace), its exit, or a timeout; then its whole process group is killed.
//!
//! The decisions are made by `Run`, a state machine fed with events (output
//! arrived, the pipes closed, the process exited, time passed) that does no I/O
//! itself; [`capture`] is the I/O loop around it: it spawns the process and the
//! threads that read its pipes and type the script, and kills the group at the end.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use super::marker::{self, Marker, Stop, KERNEL_ERROR, TEST_FAIL, TEST_PASS};
use super::script::{ScriptState, Step};

/// What the runner puts at the start of the rest of a line it had to cut (after
/// 64 KiB without a line end): the rest did not start a line, so it must
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
pub(super) const MAX_LINE: usize = 64 * 1024;

/// Bytes read from a pipe at a time.
const CHUNK: usize = 8 * 1024;

/// Output kept per stream; a runaway guest's further lines are dropped (but still
/// checked for stop markers).
const MAX_OUTPUT: usize = 16 * 1024 * 1024;

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
        marker::markers(&self.output)
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stream {
    /// stdout: the serial console.
    Out,
    /// stderr: QEMU's own messages.
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

/// Where a [`Run`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading; nothing has ended the run yet.
    Running,
    /// Something ended the run (a stop marker, the script's last step, the process's
    /// exit with its pipes still open): reading on until `until` for the lines that
    /// follow.
    Grace {
        /// When reading stops.
        until: Instant,
    },
    /// Done reading: the process group is killed next and the pipes drained.
    Done,
}

/// One event of a captured run, as the I/O loop of [`capture`] sees it.
#[derive(Debug)]
enum Event {
    /// Bytes from one of the pipes.
    Output(Stream, Vec<u8>),
    /// Both pipes are closed (every process holding them is gone).
    PipesClosed,
    /// The process exited.
    Exited(ExitStatus),
    /// Nothing happened for a while (time passes: deadlines are checked).
    Tick,
}

/// The decisions of a captured run: what output is kept, when a stop marker or the
/// console script ends the run, what the script types, and why the run ended. No I/O:
/// the caller feeds it [`Event`]s and does what [`Run::handle`] returns.
struct Run<'a> {
    opts: &'a CaptureOptions,
    start: Instant,
    state: State,
    output: String,
    stderr: String,
    out_lines: LineCutter,
    err_lines: LineCutter,
    script: ScriptState<'a>,
    steps_done: Vec<Duration>,
    marker: Option<String>,
    exited: Option<ExitStatus>,
    pipes_closed: bool,
}

impl<'a> Run<'a> {
    /// A run that started at `start`; returns it and what the script types at once
    /// (steps that wait for an empty text).
    fn new(opts: &'a CaptureOptions, start: Instant) -> (Run<'a>, Vec<Vec<u8>>) {
        let mut run = Run {
            opts,
            start,
            state: State::Running,
            output: String::new(),
            stderr: String::new(),
            out_lines: LineCutter::default(),
            err_lines: LineCutter::default(),
            script: ScriptState::new(&opts.script),
            steps_done: Vec::new(),
            marker: None,
            exited: None,
            pipes_closed: false,
        };
        let typed = run.advance_script(b"", start);
        (run, typed)
    }

    /// When the run stops reading at the latest: the end of the grace period or the
    /// timeout; `None` once it is done.
    fn stop_at(&self) -> Option<Instant> {
        let deadline = self.start + self.opts.timeout;
        match self.state {
            State::Running => Some(deadline),
            State::Grace { until } => Some(until.min(deadline)),
            State::Done => None,
        }
    }

    /// Takes in `event` at `now`; returns the byte strings the console script types
    /// now, in order.
    fn handle(&mut self, event: Event, now: Instant) -> Vec<Vec<u8>> {
        let event = match event {
            // Carriage returns are removed from everything read.
            Event::Output(stream, bytes) => Event::Output(stream, bytes.into_iter().filter(|&b| b != b'\r').collect()),
            other => other,
        };
        if self.state == State::Done {
            // After the kill: output still in flight is kept, nothing else counts.
            if let Event::Output(stream, bytes) = event {
                self.collect(stream, &bytes);
            }
            return Vec::new();
        }
        let mut typed = Vec::new();
        match event {
            Event::Output(stream, clean) => {
                for line in self.collect(stream, &clean) {
                    if self.marker.is_none() && self.opts.stop_on.iter().any(|m| m.matches(&line)) {
                        self.marker = Some(line);
                        self.end_soon(now);
                    }
                }
                if stream == Stream::Out {
                    typed = self.advance_script(&clean, now);
                }
            }
            Event::PipesClosed => self.pipes_closed = true,
            Event::Exited(status) => self.exited = Some(status),
            Event::Tick => {}
        }
        if self.exited.is_some() {
            if self.pipes_closed {
                self.state = State::Done;
            } else {
                // Exited, but something still holds the pipes: read what is there briefly.
                self.end_soon(now);
            }
        }
        if self.stop_at().is_some_and(|t| now >= t) {
            self.state = State::Done;
        }
        typed
    }

    /// Reading ends a grace period from `now` (or earlier, if it already ends earlier).
    fn end_soon(&mut self, now: Instant) {
        let until = now + self.opts.grace;
        self.state = match self.state {
            State::Running => State::Grace { until },
            State::Grace { until: earlier } => State::Grace {
                until: earlier.min(until),
            },
            State::Done => State::Done,
        };
    }

    /// Runs the script on new serial output; returns what its steps type.
    fn advance_script(&mut self, bytes: &[u8], now: Instant) -> Vec<Vec<u8>> {
        if self.opts.script.is_empty() || self.script.done() {
            return Vec::new();
        }
        let mut typed = Vec::new();
        for step in self.script.feed(bytes) {
            self.steps_done.push(now.saturating_duration_since(self.start));
            if !step.send.is_empty() {
                typed.push(step.send.clone());
            }
        }
        if self.script.done() {
            self.end_soon(now);
        }
        typed
    }

    /// Cuts `bytes` of `stream` into lines and keeps them; returns the stdout lines
    /// they completed.
    fn collect(&mut self, stream: Stream, bytes: &[u8]) -> Vec<String> {
        let cutter = match stream {
            Stream::Out => &mut self.out_lines,
            Stream::Err => &mut self.err_lines,
        };
        let lines = cutter.push(bytes);
        for line in &lines {
            self.keep(stream, line);
        }
        if stream == Stream::Out {
            lines
        } else {
            Vec::new()
        }
    }

    /// Appends `line` to its stream's text (up to [`MAX_OUTPUT`]) and echoes it if asked.
    fn keep(&mut self, stream: Stream, line: &str) {
        if self.opts.echo && stream == Stream::Out {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        let into = if stream == Stream::Out {
            &mut self.output
        } else {
            &mut self.stderr
        };
        if into.len() < MAX_OUTPUT {
            into.push_str(line);
            into.push('\n');
            if into.len() >= MAX_OUTPUT {
                into.push_str("[vcpos: output truncated here]\n");
            }
        }
    }

    /// The result, after the last output was handled at `now` (unfinished last lines,
    /// such as a prompt or output cut off by the kill, are kept).
    fn finish(mut self, pid: u32, now: Instant) -> Capture {
        if let Some(line) = self.out_lines.finish() {
            self.keep(Stream::Out, &line);
        }
        if let Some(line) = self.err_lines.finish() {
            self.keep(Stream::Err, &line);
        }
        let script_steps = self.opts.script.len();
        let ending = match (self.marker, self.exited) {
            (Some(line), _) => Ending::Marker(line),
            (None, _) if script_steps > 0 && self.steps_done.len() == script_steps => Ending::ScriptDone,
            (None, Some(status)) => Ending::Exited(status),
            (None, None) => Ending::TimedOut(self.opts.timeout),
        };
        Capture {
            output: self.output,
            stderr: self.stderr,
            ending,
            elapsed: now.saturating_duration_since(self.start),
            pid,
            steps_done: self.steps_done,
            script_steps,
        }
    }
}

/// Runs `cmd`, collecting its output until a stop marker (plus grace), the end of its
/// console script (plus grace), its exit, or the timeout; then kills its whole process
/// group. stdin is `/dev/null` without a script, else the pipe the script types into.
pub fn capture(mut cmd: Command, opts: &CaptureOptions) -> std::io::Result<Capture> {
    let stdin = if opts.script.is_empty() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
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
    let type_all = |typed: Vec<Vec<u8>>| {
        if let Some(typist) = &typist {
            for bytes in typed {
                // The typist only stops when the process is gone.
                let _ = typist.send(bytes);
            }
        }
    };
    let (tx, rx) = mpsc::channel();
    spawn_reader(group.child.stdout.take(), Stream::Out, tx.clone());
    spawn_reader(group.child.stderr.take(), Stream::Err, tx);

    let (mut run, typed) = Run::new(opts, start);
    type_all(typed);
    while let Some(stop_at) = run.stop_at() {
        let now = Instant::now();
        let wait = stop_at.saturating_duration_since(now).min(POLL);
        let event = if run.pipes_closed {
            thread::sleep(wait);
            Event::Tick
        } else {
            match rx.recv_timeout(wait) {
                Ok((stream, bytes)) => Event::Output(stream, bytes),
                Err(RecvTimeoutError::Timeout) => Event::Tick,
                Err(RecvTimeoutError::Disconnected) => Event::PipesClosed,
            }
        };
        let output = matches!(event, Event::Output(..));
        type_all(run.handle(event, Instant::now()));
        if !output && run.exited.is_none() {
            if let Some(status) = group.child.try_wait()? {
                type_all(run.handle(Event::Exited(status), Instant::now()));
            }
        }
    }
    group.kill();
    // The pipes close once the group is dead; keep what was still in flight.
    let drain_end = Instant::now() + DRAIN;
    while let Some(left) = drain_end.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((stream, bytes)) => {
                run.handle(Event::Output(stream, bytes), Instant::now());
            }
            Err(_) => break,
        }
    }
    Ok(run.finish(pid, Instant::now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::marker::GUEST_LINE_PREFIX;

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

    /// A run of `opts` fed `events` at the given milliseconds from its start; returns
    /// the state after each and the typed bytes.
    fn feed(opts: &CaptureOptions, events: Vec<(u64, Event)>) -> (Run<'_>, Vec<State>, Vec<Vec<u8>>) {
        let start = Instant::now();
        let (mut run, mut typed) = Run::new(opts, start);
        let mut states = Vec::new();
        for (ms, e) in events {
            typed.extend(run.handle(e, start + Duration::from_millis(ms)));
            states.push(run.state);
        }
        (run, states, typed)
    }

    fn out(text: &str) -> Event {
        Event::Output(Stream::Out, text.as_bytes().to_vec())
    }

    fn exit_status(code: i32) -> ExitStatus {
        std::os::unix::process::ExitStatusExt::from_raw(code << 8)
    }

    #[test]
    fn state_machine_marker_then_grace_then_done() {
        let opts = CaptureOptions::until_marker(Duration::from_secs(10));
        let grace = opts.grace.as_millis() as u64;
        let (run, states, _) = feed(
            &opts,
            vec![
                (5, out("boot\nTEST PA")),
                (10, out("SS: x\nafter\n")),
                (10 + grace - 1, Event::Tick),
                (10 + grace, Event::Tick),
            ],
        );
        let start = run.start;
        assert_eq!(states[0], State::Running);
        assert_eq!(
            states[1],
            State::Grace {
                until: start + Duration::from_millis(10) + opts.grace
            }
        );
        assert_eq!(states[2], states[1]);
        assert_eq!(states[3], State::Done);
        let c = run.finish(1, start + Duration::from_millis(20));
        assert_eq!(c.ending, Ending::Marker("TEST PASS: x".into()));
        assert_eq!(c.output, "boot\nTEST PASS: x\nafter\n");
    }

    #[test]
    fn state_machine_timeout_exit_and_late_output() {
        let opts = CaptureOptions::until_marker(Duration::from_millis(100));
        // The timeout ends a silent run; output after the end is kept but stops nothing.
        let (run, states, _) = feed(
            &opts,
            vec![(99, Event::Tick), (100, Event::Tick), (101, out("TEST FAIL: late\n"))],
        );
        assert_eq!(states, [State::Running, State::Done, State::Done]);
        let c = {
            let t = run.start;
            run.finish(1, t)
        };
        assert_eq!(c.ending, Ending::TimedOut(Duration::from_millis(100)));
        assert_eq!(c.output, "TEST FAIL: late\n");
        // An exit with the pipes open reads on for the grace period; with them closed,
        // the run is done at once.
        let (run, states, _) = feed(&opts, vec![(1, Event::Exited(exit_status(3))), (2, Event::PipesClosed)]);
        assert!(matches!(states[0], State::Grace { .. }), "{states:?}");
        assert_eq!(states[1], State::Done);
        assert_eq!(
            {
                let t = run.start;
                run.finish(1, t)
            }
            .ending,
            Ending::Exited(exit_status(3))
        );
    }

    #[test]
    fn state_machine_types_the_script_and_ends_after_it() {
        let script = vec![
            Step::after_text("login: ", "root\r"),
            Step::after_text("# ", "ls\r"),
            Step::wait_line("done"),
        ];
        let opts = CaptureOptions::scripted(Duration::from_secs(10), script);
        let (run, states, typed) = feed(
            &opts,
            vec![
                (1, out("login: ")),
                (2, out("# ")),
                (3, out("x\ndone\r\n")),
                (3 + 300, Event::Tick),
            ],
        );
        assert_eq!(typed, [b"root\r".to_vec(), b"ls\r".to_vec()]);
        assert_eq!(states[..2], [State::Running, State::Running]);
        assert!(matches!(states[2], State::Grace { .. }), "{states:?}");
        assert_eq!(states[3], State::Done);
        assert_eq!(
            run.steps_done,
            [
                Duration::from_millis(1),
                Duration::from_millis(2),
                Duration::from_millis(3)
            ]
        );
        let c = {
            let t = run.start;
            run.finish(1, t)
        };
        assert_eq!(c.ending, Ending::ScriptDone);
        assert_eq!(c.output, "login: # x\ndone\n");
    }

    #[test]
    fn state_machine_a_second_stop_does_not_extend_the_grace() {
        let opts = CaptureOptions::until_marker(Duration::from_secs(10));
        let (run, states, _) = feed(&opts, vec![(10, out("TEST PASS: a\n")), (200, out("TEST FAIL: b\n"))]);
        assert_eq!(states[0], states[1]);
        assert_eq!(
            {
                let t = run.start;
                run.finish(1, t)
            }
            .ending,
            Ending::Marker("TEST PASS: a".into())
        );
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
}
