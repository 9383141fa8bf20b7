//! idle-monitor: measures how often an idle Linux guest makes the kernel work. It runs
//! at a priority below the VM's, so it only gets the CPU while the guest waits (WFI)
//! and the VMM has nothing to do, and there it spins on the virtual counter (no
//! syscalls), so that every interrupt that arrives while the guest is idle enters the
//! kernel from this PD and is counted (with nothing runnable the kernel would take it
//! in its idle loop, where no thread's counters see it).
//!
//! It reads every thread's event counters through the debug capability (the
//! `debug`/`benchmark` configs), takes the one thread with guest exits as the vCPU,
//! waits until the guest is idle (its vCPU ran at most 5 % of each of 3 seconds in a
//! row: at the shell prompt, after boot), then reads all counters at the start and end
//! of a 5 s window and prints `BENCH idle_guest entries_per_s=.. exits_per_s=..
//! timer_irqs_per_s=.. ...` (see `vcpos_idle_monitor`) and `idle-monitor: done`, or a
//! `TEST FAIL:` line.
//! System: `tests/systems/linux-idle.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::sys::{counter, counter_frequency};
use sel4_microkit::{counters, debug_println, protection_domain, Handler, NullHandler};
use vcpos_idle_monitor::{
    find_vcpu, IdleDetector, IdleFigures, Window, DONE, IDLE_WAIT_LIMIT_SECS, MAX_THREADS, QUIET_INTERVALS,
    QUIET_MAX_PERCENT, WINDOW_SECS,
};
use vcpos_test_support::{fail, TestFailed};

use counters::Counters;

const TEST: &str = "idle-monitor";

/// Every thread's counters: threads `0..n`, `n` being the first index the kernel
/// refuses (after the first snapshot, exactly `n` reads are made, one syscall each).
struct Snapshot {
    threads: [Counters; MAX_THREADS],
    n: usize,
}

impl Snapshot {
    /// Reads threads from index 0 until the kernel has no such thread.
    fn all() -> Result<Snapshot, TestFailed> {
        let mut s = Snapshot {
            threads: [Counters::default(); MAX_THREADS],
            n: 0,
        };
        while s.n < MAX_THREADS {
            match counters::thread(s.n) {
                Ok(c) => s.threads[s.n] = c,
                Err(_) if s.n > 0 => break,
                Err(e) => {
                    return Err(fail(
                        TEST,
                        format_args!("cannot read thread 0's counters ({e:?}): no debug capability (config?)"),
                    ))
                }
            }
            s.n += 1;
        }
        Ok(s)
    }

    /// Reads the first `n` threads again (`n` syscalls).
    fn again(n: usize) -> Result<Snapshot, TestFailed> {
        let mut s = Snapshot {
            threads: [Counters::default(); MAX_THREADS],
            n,
        };
        for (i, c) in s.threads[..n].iter_mut().enumerate() {
            *c = counters::thread(i)
                .map_err(|e| fail(TEST, format_args!("cannot read thread {i}'s counters: {e:?}")))?;
        }
        Ok(s)
    }

    fn threads(&self) -> &[Counters] {
        &self.threads[..self.n]
    }
}

/// Spins on the virtual counter until `ticks` have passed since `from`.
fn spin_until(from: u64, ticks: u64) -> u64 {
    loop {
        let now = counter();
        if now.wrapping_sub(from) >= ticks {
            return now;
        }
        core::hint::spin_loop();
    }
}

fn measure() -> Result<(), TestFailed> {
    let freq = counter_frequency();
    if freq == 0 {
        return Err(fail(TEST, format_args!("CNTFRQ_EL0 reads 0")));
    }
    debug_println!(
        "{TEST}: waiting for the guest to idle (vCPU busy at most {QUIET_MAX_PERCENT}% of {QUIET_INTERVALS} s in a row), then measuring {WINDOW_SECS} s"
    );
    let t_start = counter();
    let mut last = Snapshot::all()?;
    let mut t = t_start;
    let mut idle = IdleDetector::default();
    let vcpu = loop {
        t = spin_until(t, freq);
        let now = Snapshot::all()?;
        if now.n != last.n {
            return Err(fail(
                TEST,
                format_args!("the number of threads changed from {} to {}", last.n, now.n),
            ));
        }
        if let Ok(v) = find_vcpu(now.threads()) {
            let ran = now.threads[v]
                .thread
                .time_run
                .saturating_sub(last.threads[v].thread.time_run);
            if idle.interval(ran, freq) {
                break v;
            }
        }
        if t.wrapping_sub(t_start) / freq > IDLE_WAIT_LIMIT_SECS {
            return Err(match find_vcpu(now.threads()) {
                Ok(v) => fail(
                    TEST,
                    format_args!("the guest (vCPU thread {v}) was not idle within {IDLE_WAIT_LIMIT_SECS} s"),
                ),
                Err(e) => fail(TEST, format_args!("{e}")),
            });
        }
        last = now;
    };
    debug_println!(
        "{TEST}: vCPU is thread {vcpu} of {}; guest idle after {} s; measuring {WINDOW_SECS} s",
        last.n,
        t.wrapping_sub(t_start) / freq
    );
    let n = last.n;
    // The counters syscall through the input capability answers with the caller's
    // own thread index.
    let monitor = sel4_microkit::sys::thread_counters(vcpos_abi::cap::slot::INPUT, 0)
        .map_err(|e| fail(TEST, format_args!("cannot read its own counters: {e:?}")))?;
    let monitor = usize::try_from(monitor).unwrap_or(usize::MAX);
    let t0 = counter();
    let before = Snapshot::again(n)?;
    let t1 = spin_until(t0, WINDOW_SECS * freq);
    let after = Snapshot::again(n)?;
    let figures = IdleFigures::measure(&Window {
        before: before.threads(),
        after: after.threads(),
        vcpu,
        monitor,
        own_syscalls: n as u64,
        ticks: t1.wrapping_sub(t0),
        freq,
    })
    .map_err(|e| fail(TEST, format_args!("{e}")))?;
    debug_println!("{figures}");
    for (i, (b, a)) in before.threads().iter().zip(after.threads()).enumerate() {
        let d = |f: fn(&Counters) -> u64| f(a).wrapping_sub(f(b));
        debug_println!(
            "{TEST}: thread {i}: +{} entries, +{} switches to, +{} budget exhaustions, +{} ticks run in the window",
            d(|c| c.thread.kernel_entries),
            d(|c| c.thread.switches_to),
            d(|c| c.thread.budget_exhaustions),
            d(|c| c.thread.time_run),
        );
    }
    debug_println!("{DONE}");
    Ok(())
}

#[protection_domain]
fn init() -> impl Handler {
    let _ = measure();
    NullHandler::new()
}
