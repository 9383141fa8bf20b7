//! The idle-guest benchmark of `vcpos-bench`: boots `tests/systems/linux-idle.system`
//! (the Linux VM plus the `idle_monitor` PD below the VM's priority), waits for the
//! guest's ready line and the monitor's `BENCH idle_guest ...` line (kernel entries,
//! guest exits by reason, timer interrupts and re-arms per second of an idle guest,
//! from the kernel's event counters over a 5 s window), and prints the figures. The
//! QEMU test `tests/tests/idle.rs` runs the same boot and checks the figures are
//! plausible ([`check_plausible`]).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use vcpos_abi::counters::GuestExit;
use vcpos_idle_monitor::{IdleFigures, Key, DONE, KEYS, NAME};
use vcpos_tool::runner::{Capture, CaptureOptions, Ending, Step};

use crate::linux::{self, READY};
use crate::{build_system, check_clean, scenario_system};

/// The scenario (`tests/systems/<SCENARIO>.system`).
pub const SCENARIO: &str = "linux-idle";
/// Most kernel entries per second an idle guest may make for the figure to count as
/// plausible (a manual measurement saw about 15; a busy-looping guest makes many
/// thousands).
pub const MAX_PLAUSIBLE_ENTRIES_PER_S: u64 = 2000;

/// The console script: the guest's ready line, then the monitor's end line (it prints
/// its figures only once the guest has been idle a while).
pub fn script() -> Vec<Step> {
    vec![Step::wait_text(READY), Step::wait_text(DONE)]
}

/// The capture options of one boot: [`script`], stopping early at a kernel error or
/// fault report, a failure marker, a guest panic or a second guest boot.
pub fn options(timeout: Duration) -> CaptureOptions {
    linux::options(timeout, script(), linux::UNEXPECTED_RESTART)
}

/// The monitor's figures from a boot that ran [`script`]: its `BENCH idle_guest` line,
/// which must come after the guest's ready line (measured at the shell prompt, not
/// during boot). An error says what went wrong.
pub fn figures(c: &Capture) -> Result<IdleFigures, String> {
    if c.ending != Ending::ScriptDone || !c.script_complete() {
        let step = script()
            .get(c.steps_done.len())
            .map_or_else(String::new, |s| format!(" (waiting to {s})"));
        return Err(format!(
            "the boot did not finish the idle measurement: {}{step}",
            c.ending
        ));
    }
    check_clean(&c.output)?;
    let marker = format!("BENCH {NAME} ");
    let lines: Vec<&str> = c.output.lines().collect();
    let ready = lines.iter().position(|l| l.contains(READY)).ok_or("no ready line")?;
    let at = lines
        .iter()
        .position(|l| l.contains(&marker))
        .ok_or_else(|| format!("the monitor printed no '{marker}...' line"))?;
    if at < ready {
        return Err(format!(
            "the monitor measured before the guest was ready (line {at} before line {ready})"
        ));
    }
    IdleFigures::parse(lines[at]).map_err(|e| format!("bad idle line ({e}): {}", lines[at]))
}

/// How much longer than asked the measured window may be on a loaded host.
const MAX_WINDOW_STRETCH: u64 = 6;

/// Whether the figures are plausible for an idle guest measured over a window of
/// [`vcpos_idle_monitor::WINDOW_SECS`]: some kernel entries and guest exits, and fewer
/// entries than [`MAX_PLAUSIBLE_ENTRIES_PER_S`] per second.
pub fn check_plausible(f: &IdleFigures) -> Result<(), String> {
    let entries = f.get(Key::Entries);
    let window = f.get(Key::Window);
    // The monitor measures at least its window; on a loaded host (QEMU's counter
    // follows host time) it may end late, and the figures are per second of the
    // window it really measured, so only a window that is short or absurdly long fails.
    let want = vcpos_idle_monitor::WINDOW_SECS * 100;
    if !(want..want * MAX_WINDOW_STRETCH).contains(&window) {
        return Err(format!(
            "the window was {} s, not {} s (up to {}x on a loaded host)",
            show(window),
            show(want),
            MAX_WINDOW_STRETCH
        ));
    }
    if entries == 0 {
        return Err("no kernel entries at all in the window: are the counters counting?".into());
    }
    if f.get(Key::Exits) == 0 {
        return Err("the guest did not exit once in the window: is the vCPU running?".into());
    }
    if entries >= MAX_PLAUSIBLE_ENTRIES_PER_S * 100 {
        return Err(format!(
            "{} kernel entries per second is not an idle guest (bound {MAX_PLAUSIBLE_ENTRIES_PER_S})",
            show(entries)
        ));
    }
    Ok(())
}

/// Hundredths as a decimal.
fn show(v: u64) -> String {
    format!("{}.{:02}", v / 100, v % 100)
}

/// The figures as a two-column table (figure, value), then their `BENCH` line.
pub fn summary(f: &IdleFigures) -> String {
    let mut out = String::new();
    let w = KEYS.iter().map(|k| k.len()).max().unwrap_or(0);
    let _ = writeln!(out, "{:<w$}  {:>10}", "idle guest (vcpos)", "value");
    let _ = writeln!(out, "{}  {}", "-".repeat(w), "-".repeat(10));
    for (k, v) in KEYS.iter().zip(f.values) {
        let _ = writeln!(out, "{k:<w$}  {:>10}", show(v));
    }
    let _ = writeln!(out, "{f}");
    out
}

/// One-line description: entries, exits (the main reasons) and timer figures.
pub fn describe(f: &IdleFigures) -> String {
    format!(
        "  idle guest: {} kernel entries/s ({} of them interrupts while idle), {} guest exits/s (wfx {}, irq {}, dabt \
         {}), {} timer irqs/s, {} timer arms/s",
        show(f.get(Key::Entries)),
        show(f.get(Key::IdleIrqs)),
        show(f.get(Key::Exits)),
        show(f.exits(GuestExit::Wfx)),
        show(f.exits(GuestExit::Interrupt)),
        show(f.exits(GuestExit::DataAbort)),
        show(f.get(Key::TimerIrqs)),
        show(f.get(Key::TimerArms)),
    )
}

/// Boots [`SCENARIO`] once in `config` and prints the figures; false (with the error and
/// transcript) if the boot failed or gave no plausible figures.
pub fn run(config: &str, timeout: Duration, verbose: bool) -> bool {
    let system = scenario_system(SCENARIO);
    println!("== VM idle: {} (config {config})", rel(&system));
    let t = match build_system("bench-idle", &system, config).and_then(|b| b.boot(&options(timeout))) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("Error: {e}");
            return false;
        }
    };
    if verbose {
        print!("{t}");
    }
    match figures(&t.capture).and_then(|f| check_plausible(&f).map(|()| f)) {
        Ok(f) => {
            println!("{}", describe(&f));
            print!("{}", summary(&f));
            true
        }
        Err(e) => {
            eprintln!("Error: idle guest: {e}\n{t}");
            false
        }
    }
}

/// `path` from the workspace root, if it is under it.
fn rel(path: &Path) -> String {
    path.strip_prefix(crate::workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(entries: &str, exits: &str) -> String {
        let mut f = IdleFigures::default();
        f.values[Key::Window as usize] = 500;
        let s = f.to_string();
        s.replace("entries_per_s=0.00", &format!("entries_per_s={entries}"))
            .replacen(" exits_per_s=0.00", &format!(" exits_per_s={exits}"), 1)
    }

    fn capture(output: &str, ending: Ending, steps: usize) -> Capture {
        Capture {
            output: output.into(),
            stderr: String::new(),
            ending,
            elapsed: Duration::from_secs(20),
            pid: 1,
            steps_done: [7_000, 19_000]
                .iter()
                .take(steps)
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            script_steps: script().len(),
        }
    }

    #[test]
    fn the_idle_line_after_the_ready_line_gives_the_figures() {
        let ok = format!(
            "vcpos-guest: ready uptime=3.4s\nvcpos-guest# idle-monitor: vCPU is thread 2\n{}\n{DONE}\n",
            line("15.20", "9.80")
        );
        let f = figures(&capture(&ok, Ending::ScriptDone, 2)).unwrap();
        assert_eq!((f.get(Key::Entries), f.get(Key::Exits)), (1520, 980));
        assert_eq!(check_plausible(&f), Ok(()));
        let s = summary(&f);
        assert!(s.contains("\nentries_per_s") && s.contains("15.20\n"), "{s}");
        let d = describe(&f);
        assert!(
            d.contains("15.20 kernel entries/s (0.00 of them interrupts while idle), 9.80 guest exits/s"),
            "{d}"
        );

        let early = format!("{}\nvcpos-guest: ready\n{DONE}\n", line("15", "9"));
        let e = figures(&capture(&early, Ending::ScriptDone, 2)).unwrap_err();
        assert!(e.contains("before the guest was ready"), "{e}");
        let none = format!("vcpos-guest: ready\n{DONE}\n");
        assert!(figures(&capture(&none, Ending::ScriptDone, 2))
            .unwrap_err()
            .contains("no 'BENCH idle_guest"));
        let e = figures(&capture(
            "vcpos-guest: ready\n",
            Ending::TimedOut(Duration::from_secs(9)),
            1,
        ))
        .unwrap_err();
        assert!(e.contains("idle-monitor: done"), "{e}");
        let failed = format!("{ok}TEST FAIL: idle-monitor: no vCPU\n");
        assert!(figures(&capture(&failed, Ending::ScriptDone, 2))
            .unwrap_err()
            .contains("TEST FAIL: idle-monitor"));
    }

    #[test]
    fn implausible_figures_are_errors() {
        let f = |entries: &str, exits: &str| IdleFigures::parse(&line(entries, exits)).unwrap();
        assert!(check_plausible(&f("0.00", "1"))
            .unwrap_err()
            .contains("no kernel entries"));
        assert!(check_plausible(&f("5", "0")).unwrap_err().contains("did not exit"));
        assert!(check_plausible(&f("2000", "5"))
            .unwrap_err()
            .contains("not an idle guest"));
        assert_eq!(check_plausible(&f("1999.99", "5")), Ok(()));
        let mut short = f("15", "9");
        short.values[Key::Window as usize] = 250;
        assert!(check_plausible(&short).unwrap_err().contains("2.50 s, not 5.00 s"));
        let mut late = f("15", "9");
        late.values[Key::Window as usize] = 649;
        assert_eq!(check_plausible(&late), Ok(()), "a loaded host ends the window late");
        late.values[Key::Window as usize] = 3000;
        assert!(check_plausible(&late).unwrap_err().contains("30.00 s, not 5.00 s"));
    }
}
