//! The pure parts of the idle-monitor PD, which measures how often an idle Linux guest
//! makes the kernel work: finding the vCPU among the kernel's threads, deciding that
//! the guest is idle, turning two snapshots of every thread's event counters
//! ([`vcpos_abi::counters`]) into per-second figures, and the figures' `BENCH
//! idle_guest key=value...` line, printed by the PD and parsed by `./bench.sh` and the
//! QEMU test with the same code. No system calls here, so the unit tests run on the
//! host: `cargo test -p idle-monitor --lib`.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

use vcpos_abi::counters::{Counters, GuestExit};

/// The benchmark's name in its `BENCH` line.
pub const NAME: &str = "idle_guest";
/// The line the monitor prints after its `BENCH` line (the end of its work).
pub const DONE: &str = "idle-monitor: done";
/// Most threads a system has (the kernel's limit): the monitor reads thread indices
/// below this until the kernel says there is no such thread.
pub const MAX_THREADS: usize = 64;
/// Length of the measured window, seconds.
pub const WINDOW_SECS: u64 = 5;
/// The guest counts as idle after this many one-second intervals in a row in which
/// its vCPU ran for at most [`QUIET_MAX_PERCENT`] of the time.
pub const QUIET_INTERVALS: u32 = 3;
/// See [`QUIET_INTERVALS`].
pub const QUIET_MAX_PERCENT: u64 = 5;
/// Give up waiting for the guest to idle after this many seconds.
pub const IDLE_WAIT_LIMIT_SECS: u64 = 600;

/// A guest's exits summed over all reasons.
pub fn total_exits(c: &Counters) -> u64 {
    c.thread.guest_exits.iter().sum()
}

/// Why no single vCPU was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindError {
    /// No thread has left a guest yet.
    NoVcpu,
    /// Threads `first` and `second` both have guest exits: which one to measure?
    SeveralVcpus {
        /// The lower index.
        first: usize,
        /// The next one.
        second: usize,
    },
}

impl fmt::Display for FindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FindError::NoVcpu => write!(f, "no thread has guest exits: no vCPU has run yet"),
            FindError::SeveralVcpus { first, second } => write!(
                f,
                "threads {first} and {second} both have guest exits: the monitor measures a system with one vCPU"
            ),
        }
    }
}

/// The index of the one thread whose counters show guest exits (only a vCPU has any;
/// a PD's faults are counted in `faults`).
pub fn find_vcpu(threads: &[Counters]) -> Result<usize, FindError> {
    let mut vcpus = threads
        .iter()
        .enumerate()
        .filter(|(_, c)| total_exits(c) > 0)
        .map(|(i, _)| i);
    let first = vcpus.next().ok_or(FindError::NoVcpu)?;
    match vcpus.next() {
        Some(second) => Err(FindError::SeveralVcpus { first, second }),
        None => Ok(first),
    }
}

/// Decides, one interval at a time, when the guest has gone idle: after
/// [`QUIET_INTERVALS`] intervals in a row in each of which its vCPU ran for at most
/// [`QUIET_MAX_PERCENT`] of the interval. While the guest boots its vCPU is busy most
/// of the time; at the shell prompt it runs only for its timer ticks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleDetector {
    quiet: u32,
}

impl IdleDetector {
    /// Takes one interval of `elapsed` ticks in which the vCPU ran `vcpu_ran` ticks;
    /// true once the guest counts as idle.
    pub fn interval(&mut self, vcpu_ran: u64, elapsed: u64) -> bool {
        let quiet = elapsed > 0 && u128::from(vcpu_ran) * 100 <= u128::from(elapsed) * u128::from(QUIET_MAX_PERCENT);
        self.quiet = if quiet { self.quiet + 1 } else { 0 };
        self.quiet >= QUIET_INTERVALS
    }
}

/// Index of each figure in [`IdleFigures::values`]; the names are the keys of the
/// `BENCH` line ([`KEYS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Key {
    /// Kernel entries per second, all threads (syscalls, faults, guest exits,
    /// interrupts), without the monitor's own counter reads.
    Entries = 0,
    /// Guest exits per second (the vCPU's, all reasons).
    Exits = 1,
    /// Interrupts of the kernel's own timer per second.
    TimerIrqs = 2,
    /// Times per second the kernel programmed its timer (budget ends and refills).
    TimerArms = 3,
    /// Context switches per second, all threads.
    Switches = 4,
    /// The vCPU's own kernel entries per second.
    VcpuEntries = 5,
    /// Budget exhaustions per second, all threads but the monitor (which spins
    /// through its budget: an artefact of the measurement).
    BudgetExhaustions = 6,
    /// The monitor's kernel entries per second without its own counter reads: the
    /// interrupts that arrived while nothing else was runnable (the guest idle in WFI).
    IdleIrqs = 7,
    /// Guest exits per second by reason: the first of [`GuestExit::COUNT`], in
    /// [`GuestExit`] order.
    ExitsFirstReason = 8,
    /// Share of the window the vCPU ran, percent.
    VcpuBusyPercent = 8 + GuestExit::COUNT,
    /// The window's length, seconds.
    Window = 9 + GuestExit::COUNT,
}

/// Number of figures.
pub const KEY_COUNT: usize = 10 + GuestExit::COUNT;

/// The keys of the `BENCH` line, in [`Key`] order.
pub const KEYS: [&str; KEY_COUNT] = [
    "entries_per_s",
    "exits_per_s",
    "timer_irqs_per_s",
    "timer_arms_per_s",
    "switches_per_s",
    "vcpu_entries_per_s",
    "budget_exhaustions_per_s",
    "idle_irqs_per_s",
    "exits_wfx_per_s",
    "exits_dabt_per_s",
    "exits_iabt_per_s",
    "exits_hvc_per_s",
    "exits_smc_per_s",
    "exits_sysreg_per_s",
    "exits_irq_per_s",
    "exits_other_per_s",
    "vcpu_busy_pct",
    "window_s",
];

/// Why two snapshots give no figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeasureError {
    /// The snapshots differ in length, or the vCPU or monitor index is outside them,
    /// or both are the same thread.
    Mismatch,
    /// A counter of this thread went backwards.
    Backwards(usize),
    /// The window has no ticks, or the counter frequency is 0.
    NoTime,
}

impl fmt::Display for MeasureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeasureError::Mismatch => write!(f, "the two snapshots do not cover the same threads"),
            MeasureError::Backwards(t) => write!(f, "thread {t}'s counters went backwards"),
            MeasureError::NoTime => write!(f, "the window is empty or the counter frequency is 0"),
        }
    }
}

/// The idle guest's figures, each in hundredths (`1525` is 15.25).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleFigures {
    /// Indexed by [`Key`].
    pub values: [u64; KEY_COUNT],
}

/// `delta` per `ticks` at `freq` Hz, in hundredths per second (saturating).
fn per_s_x100(delta: u64, ticks: u64, freq: u64) -> u64 {
    let v = u128::from(delta) * 100 * u128::from(freq) / u128::from(ticks);
    u64::try_from(v).unwrap_or(u64::MAX)
}

/// `after - before`, or the error naming thread `t`.
fn delta(after: u64, before: u64, t: usize) -> Result<u64, MeasureError> {
    after.checked_sub(before).ok_or(MeasureError::Backwards(t))
}

/// A window to turn into figures: every thread's counters at its start and end.
#[derive(Clone, Copy, Debug)]
pub struct Window<'a> {
    /// Counters of threads `0..n` at the start.
    pub before: &'a [Counters],
    /// The same threads' at the end.
    pub after: &'a [Counters],
    /// The vCPU's thread index.
    pub vcpu: usize,
    /// The monitor's own thread index.
    pub monitor: usize,
    /// Kernel entries the monitor itself made in the window (its counter reads),
    /// left out of the entries figures.
    pub own_syscalls: u64,
    /// The window's length in counter ticks.
    pub ticks: u64,
    /// The counter frequency, Hz.
    pub freq: u64,
}

impl IdleFigures {
    /// One figure.
    pub fn get(&self, key: Key) -> u64 {
        self.values[key as usize]
    }

    /// Guest exits per second for `reason`, in hundredths.
    pub fn exits(&self, reason: GuestExit) -> u64 {
        self.values[Key::ExitsFirstReason as usize + reason as usize]
    }

    /// The figures of `w`.
    pub fn measure(w: &Window<'_>) -> Result<IdleFigures, MeasureError> {
        let n = w.before.len();
        if w.after.len() != n || w.vcpu >= n || w.monitor >= n || w.vcpu == w.monitor {
            return Err(MeasureError::Mismatch);
        }
        if w.ticks == 0 || w.freq == 0 {
            return Err(MeasureError::NoTime);
        }
        let (mut entries, mut switches, mut budget) = (0u64, 0u64, 0u64);
        for (t, (b, a)) in w.before.iter().zip(w.after).enumerate() {
            entries = entries.saturating_add(delta(a.thread.kernel_entries, b.thread.kernel_entries, t)?);
            switches = switches.saturating_add(delta(a.thread.switches_to, b.thread.switches_to, t)?);
            let exhausted = delta(a.thread.budget_exhaustions, b.thread.budget_exhaustions, t)?;
            if t != w.monitor {
                budget = budget.saturating_add(exhausted);
            }
        }
        let entries = entries.saturating_sub(w.own_syscalls);
        let (b, a) = (&w.before[w.monitor], &w.after[w.monitor]);
        let idle_irqs =
            delta(a.thread.kernel_entries, b.thread.kernel_entries, w.monitor)?.saturating_sub(w.own_syscalls);
        let (b, a) = (&w.before[w.vcpu], &w.after[w.vcpu]);
        let v = w.vcpu;
        // The kernel-wide counters are the same in every reply: take the vCPU's.
        let timer_irqs = delta(a.kernel.timer_interrupts, b.kernel.timer_interrupts, v)?;
        let timer_arms = delta(a.kernel.timer_arms, b.kernel.timer_arms, v)?;
        let rate = |d: u64| per_s_x100(d, w.ticks, w.freq);
        let mut f = IdleFigures::default();
        f.values[Key::Entries as usize] = rate(entries);
        f.values[Key::Exits as usize] = rate(delta(total_exits(a), total_exits(b), v)?);
        f.values[Key::TimerIrqs as usize] = rate(timer_irqs);
        f.values[Key::TimerArms as usize] = rate(timer_arms);
        f.values[Key::Switches as usize] = rate(switches);
        f.values[Key::VcpuEntries as usize] = rate(delta(a.thread.kernel_entries, b.thread.kernel_entries, v)?);
        f.values[Key::BudgetExhaustions as usize] = rate(budget);
        f.values[Key::IdleIrqs as usize] = rate(idle_irqs);
        for r in GuestExit::ALL {
            let d = delta(a.thread.guest_exits[r as usize], b.thread.guest_exits[r as usize], v)?;
            f.values[Key::ExitsFirstReason as usize + r as usize] = rate(d);
        }
        let ran = delta(a.thread.time_run, b.thread.time_run, v)?;
        let busy = u128::from(ran) * 100 * 100 / u128::from(w.ticks);
        f.values[Key::VcpuBusyPercent as usize] = u64::try_from(busy).unwrap_or(u64::MAX);
        f.values[Key::Window as usize] =
            u64::try_from(u128::from(w.ticks) * 100 / u128::from(w.freq)).unwrap_or(u64::MAX);
        Ok(f)
    }

    /// Reads the figures from a line holding `BENCH idle_guest key=value...` (after any
    /// prefix). Every key of [`KEYS`] must be there; others are ignored.
    pub fn parse(line: &str) -> Result<IdleFigures, ParseError> {
        let marker = "BENCH ";
        let start = line.find(marker).ok_or(ParseError::NotIdleLine)?;
        let mut words = line[start + marker.len()..].split_whitespace();
        if words.next() != Some(NAME) {
            return Err(ParseError::NotIdleLine);
        }
        let mut seen = [false; KEY_COUNT];
        let mut f = IdleFigures::default();
        for w in words {
            let Some((key, value)) = w.split_once('=') else {
                return Err(ParseError::NotKeyValue);
            };
            let Some(i) = KEYS.iter().position(|k| *k == key) else {
                continue;
            };
            f.values[i] = hundredths(value).ok_or(ParseError::BadValue(KEYS[i]))?;
            seen[i] = true;
        }
        match seen.iter().position(|s| !s) {
            Some(i) => Err(ParseError::Missing(KEYS[i])),
            None => Ok(f),
        }
    }
}

/// Parses a decimal with at most two fraction digits into hundredths.
fn hundredths(value: &str) -> Option<u64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let (int, frac) = match value.split_once('.') {
        Some((int, frac)) if digits(frac) => (int, frac),
        Some(_) => return None,
        None => (value, ""),
    };
    if !digits(int) || frac.len() > 2 {
        return None;
    }
    let mut f = 0u64;
    for (i, b) in frac.bytes().enumerate() {
        f += u64::from(b - b'0') * if i == 0 { 10 } else { 1 };
    }
    int.parse::<u64>().ok()?.checked_mul(100)?.checked_add(f)
}

/// Why a line is not an idle-guest `BENCH` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No `BENCH idle_guest` in it.
    NotIdleLine,
    /// A word after the name is not `key=value`.
    NotKeyValue,
    /// This key's value is not a decimal with at most two places.
    BadValue(&'static str),
    /// This key is missing.
    Missing(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::NotIdleLine => write!(f, "no 'BENCH {NAME}' in the line"),
            ParseError::NotKeyValue => write!(f, "a word is not key=value"),
            ParseError::BadValue(k) => write!(f, "{k}= is not a decimal with at most two places"),
            ParseError::Missing(k) => write!(f, "no {k}="),
        }
    }
}

/// The `BENCH idle_guest key=value...` line (without a line end).
impl fmt::Display for IdleFigures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BENCH {NAME}")?;
        for (k, v) in KEYS.iter().zip(self.values) {
            write!(f, " {k}={}.{:02}", v / 100, v % 100)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::string::ToString;
    use std::vec::Vec;

    use super::*;

    fn thread(entries: u64, exits: [u64; GuestExit::COUNT]) -> Counters {
        let mut c = Counters::default();
        c.thread.kernel_entries = entries;
        c.thread.guest_exits = exits;
        c
    }

    #[test]
    fn the_vcpu_is_the_one_thread_with_guest_exits() {
        let pd = thread(50, [0; GuestExit::COUNT]);
        let mut exits = [0; GuestExit::COUNT];
        exits[GuestExit::Hvc as usize] = 1;
        let vcpu = thread(9, exits);
        assert_eq!(find_vcpu(&[pd, pd, vcpu, pd]), Ok(2));
        assert_eq!(find_vcpu(&[pd, pd]), Err(FindError::NoVcpu));
        assert_eq!(find_vcpu(&[]), Err(FindError::NoVcpu));
        let e = find_vcpu(&[vcpu, pd, vcpu]).unwrap_err();
        assert_eq!(e, FindError::SeveralVcpus { first: 0, second: 2 });
        assert!(e.to_string().contains("threads 0 and 2"));
    }

    #[test]
    fn idle_after_enough_quiet_intervals_in_a_row() {
        let mut d = IdleDetector::default();
        assert!(!d.interval(5, 100), "1st quiet interval");
        assert!(!d.interval(4, 100), "2nd");
        assert!(!d.interval(6, 100), "busy: starts again");
        assert!(!d.interval(0, 100));
        assert!(!d.interval(5, 100));
        assert!(d.interval(1, 100), "3 quiet in a row");
        assert!(
            !IdleDetector::default().interval(0, 0),
            "an empty interval is not quiet"
        );
        assert!(!IdleDetector::default().interval(u64::MAX, u64::MAX));
    }

    #[test]
    fn keys_follow_the_key_order_and_exit_names() {
        assert_eq!(KEYS[Key::Entries as usize], "entries_per_s");
        assert_eq!(KEYS[Key::VcpuBusyPercent as usize], "vcpu_busy_pct");
        assert_eq!(KEYS[Key::Window as usize], "window_s");
        assert_eq!(Key::Window as usize, KEY_COUNT - 1);
        for r in GuestExit::ALL {
            let want = std::format!("exits_{}_per_s", r.name());
            assert_eq!(KEYS[Key::ExitsFirstReason as usize + r as usize], want);
        }
    }

    /// Counters of 3 threads (monitor 0, VMM 1, vCPU 2) before and after a 5 s window
    /// at 100 Hz.
    fn snapshots() -> (Vec<Counters>, Vec<Counters>) {
        let before: Vec<Counters> = (0..3).map(|t| thread(100 * t, [0; GuestExit::COUNT])).collect();
        let mut after = before.clone();
        after[0].thread.kernel_entries += 3 + 7; // 3 counter reads, 7 interrupts
        after[1].thread.kernel_entries += 20;
        after[1].thread.switches_to += 20;
        after[2].thread.kernel_entries += 50;
        after[2].thread.switches_to += 40;
        after[2].thread.guest_exits[GuestExit::Wfx as usize] = 40;
        after[2].thread.guest_exits[GuestExit::Interrupt as usize] = 10;
        after[2].thread.time_run = 25; // of 500 ticks: 5 %
        after[2].thread.budget_exhaustions = 1;
        after[0].thread.budget_exhaustions = 30; // the monitor's: left out
        for c in &mut after {
            c.kernel.timer_interrupts = 5;
            c.kernel.timer_arms = 12;
        }
        (before, after)
    }

    #[test]
    fn figures_are_per_second_deltas() {
        let (before, after) = snapshots();
        let w = Window {
            before: &before,
            after: &after,
            vcpu: 2,
            monitor: 0,
            own_syscalls: 3,
            ticks: 500,
            freq: 100,
        };
        let f = IdleFigures::measure(&w).unwrap();
        assert_eq!(
            f.get(Key::Entries),
            (7 + 20 + 50) * 100 / 5,
            "without the monitor's 3 reads"
        );
        assert_eq!(f.get(Key::Exits), 50 * 100 / 5);
        assert_eq!(f.get(Key::VcpuEntries), 1000);
        assert_eq!(f.get(Key::Switches), 1200);
        assert_eq!(f.get(Key::TimerIrqs), 100);
        assert_eq!(f.get(Key::TimerArms), 240);
        assert_eq!(f.get(Key::BudgetExhaustions), 20);
        assert_eq!(f.get(Key::IdleIrqs), 7 * 100 / 5, "the monitor's entries but its reads");
        assert_eq!(f.exits(GuestExit::Wfx), 800);
        assert_eq!(f.exits(GuestExit::Interrupt), 200);
        assert_eq!(f.exits(GuestExit::DataAbort), 0);
        assert_eq!(f.get(Key::VcpuBusyPercent), 500);
        assert_eq!(f.get(Key::Window), 500);
        let line = f.to_string();
        assert!(
            line.starts_with(
                "BENCH idle_guest entries_per_s=15.40 exits_per_s=10.00 timer_irqs_per_s=1.00 timer_arms_per_s=2.40 "
            ),
            "{line}"
        );
        assert!(
            line.ends_with(" exits_other_per_s=0.00 vcpu_busy_pct=5.00 window_s=5.00"),
            "{line}"
        );
        assert_eq!(IdleFigures::parse(&std::format!("idle_monitor: {line}")), Ok(f));
    }

    #[test]
    fn bad_windows_are_errors() {
        let (before, after) = snapshots();
        let w = Window {
            before: &before,
            after: &after,
            vcpu: 2,
            monitor: 0,
            own_syscalls: 3,
            ticks: 500,
            freq: 100,
        };
        for (vcpu, monitor) in [(3, 0), (2, 3), (2, 2)] {
            assert_eq!(
                IdleFigures::measure(&Window { vcpu, monitor, ..w }),
                Err(MeasureError::Mismatch),
                "vCPU {vcpu}, monitor {monitor}"
            );
        }
        assert_eq!(
            IdleFigures::measure(&Window {
                after: &after[..2],
                ..w
            }),
            Err(MeasureError::Mismatch)
        );
        assert_eq!(
            IdleFigures::measure(&Window { ticks: 0, ..w }),
            Err(MeasureError::NoTime)
        );
        assert_eq!(
            IdleFigures::measure(&Window { freq: 0, ..w }),
            Err(MeasureError::NoTime)
        );
        assert_eq!(
            IdleFigures::measure(&Window {
                before: &after,
                after: &before,
                ..w
            }),
            Err(MeasureError::Backwards(0))
        );
    }

    #[test]
    fn parse_rejects_what_is_not_a_whole_idle_line() {
        let line = IdleFigures::default().to_string();
        assert_eq!(IdleFigures::parse(&line), Ok(IdleFigures::default()));
        assert_eq!(
            IdleFigures::parse("BENCH ppc_roundtrip median_ns=1"),
            Err(ParseError::NotIdleLine)
        );
        assert_eq!(IdleFigures::parse("nothing"), Err(ParseError::NotIdleLine));
        let no_window = line.replace(" window_s=0.00", "");
        assert_eq!(IdleFigures::parse(&no_window), Err(ParseError::Missing("window_s")));
        let bad = line.replace("entries_per_s=0.00", "entries_per_s=1.234");
        let e = IdleFigures::parse(&bad).unwrap_err();
        assert_eq!(e, ParseError::BadValue("entries_per_s"));
        assert!(e.to_string().contains("entries_per_s="));
        for v in ["", "x", "1.", ".5", "-1", "1.x"] {
            let bad = line.replace("exits_per_s=0.00", &std::format!("exits_per_s={v}"));
            assert_eq!(
                IdleFigures::parse(&bad),
                Err(ParseError::BadValue("exits_per_s")),
                "{v:?}"
            );
        }
        assert_eq!(
            IdleFigures::parse(&line.replace(" window_s", " junk window_s")),
            Err(ParseError::NotKeyValue)
        );
        let more = std::format!("{line} later_key=7");
        assert_eq!(IdleFigures::parse(&more), Ok(IdleFigures::default()));
        assert_eq!(hundredths("15.5"), Some(1550));
        assert_eq!(hundredths("15"), Some(1500));
        assert_eq!(hundredths("0.07"), Some(7));
    }
}
