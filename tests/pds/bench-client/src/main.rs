//! bench: the lower-priority end. Measures, with the virtual counter (`CNTVCT_EL0`):
//! 1. PPC round trip: client → server → client, timed around `pp_call`;
//! 2. notify latency: from just before `notify()` to the higher-priority server's
//!    entry into `notified` (the server stores its counter reading in shared memory).
//!
//! Each runs `WARMUP` untimed iterations, then `ITERATIONS` timed ones, and prints
//! `BENCH <name> median_ns=.. median_ticks=.. iterations=.. switches_per_op=..
//! entries_per_op=..`; then `TEST PASS: bench`. The last two are the kernel's context
//! switches and kernel entries per iteration, summed over all threads, from the
//! kernel's event counters read (through the debug capability) before and after the
//! timed iterations; without that capability they are left out.
//! System: `tests/systems/bench.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::vec::Vec;
use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::sys::{counter, counter_frequency};
use sel4_microkit::{counters, debug_println, protection_domain, Channel, ChannelSet, Handler, MessageInfo};
use vcpos_test_support::{ensure, fail, median, shared_words, ticks_to_ns, TestFailed, Words};

const TEST: &str = "bench";
/// Channel to the server: this end may PPC and notify.
const SERVER: Channel = Channel::new(0);
/// Untimed iterations before measuring.
const WARMUP: usize = 100;
/// Timed iterations.
const ITERATIONS: usize = 1000;
/// Label of the benchmark PPC; the server replies with `label + 1`.
const PPC_LABEL: u64 = 7;

/// Shared region: word 0 = notifications the server has handled, word 1 = the
/// counter value the server read on entering `notified`.
fn region() -> Words {
    shared_words!(bench_shared, size = bench_shared_size, n = 2)
}

/// Most threads a system has (the kernel's limit).
const MAX_THREADS: usize = 64;

/// Kernel work so far, summed over every thread: (context switches to a thread,
/// kernel entries). `None` without the debug capability.
fn kernel_work() -> Option<(u64, u64)> {
    let mut total = None;
    for i in 0..MAX_THREADS {
        let Ok(c) = counters::thread(i) else { break };
        let (s, e) = total.unwrap_or((0, 0));
        total = Some((s + c.thread.switches_to, e + c.thread.kernel_entries));
    }
    total
}

/// `n / iterations` with two decimals.
fn per_op(n: u64, iterations: usize) -> (u64, u64) {
    let x100 = n * 100 / iterations.max(1) as u64;
    (x100 / 100, x100 % 100)
}

/// Prints one benchmark result line; `work` is [`kernel_work`] before and after the
/// timed iterations.
fn report(name: &str, samples: &mut [u64], freq: u64, work: Option<((u64, u64), (u64, u64))>) {
    let ticks = median(samples);
    let n = samples.len();
    match work {
        Some(((s0, e0), (s1, e1))) => {
            let (s, e) = (per_op(s1 - s0, n), per_op(e1 - e0, n));
            debug_println!(
                "BENCH {name} median_ns={} median_ticks={ticks} iterations={n} switches_per_op={}.{:02} entries_per_op={}.{:02}",
                ticks_to_ns(ticks, freq),
                s.0,
                s.1,
                e.0,
                e.1
            );
        }
        None => debug_println!(
            "BENCH {name} median_ns={} median_ticks={ticks} iterations={n}",
            ticks_to_ns(ticks, freq)
        ),
    }
}

/// Benchmark 1, run from `init`.
fn ppc_roundtrip(freq: u64) -> Result<(), TestFailed> {
    let mut samples = Vec::with_capacity(ITERATIONS);
    let mut before = None;
    for i in 0..WARMUP + ITERATIONS {
        if i == WARMUP {
            before = kernel_work();
        }
        let t0 = counter();
        let reply = SERVER.pp_call(MessageInfo::new(PPC_LABEL, 0));
        let t1 = counter();
        ensure!(
            TEST,
            reply.label() == PPC_LABEL + 1,
            "PPC {i}: reply label {}",
            reply.label()
        );
        if i >= WARMUP {
            samples.push(t1.wrapping_sub(t0));
        }
    }
    let work = before.zip(kernel_work());
    report("ppc_roundtrip", &mut samples, freq, work);
    Ok(())
}

/// Benchmark 2, driven by notifications: each round notifies the server and ends
/// when the server's notification back arrives.
struct NotifyLatency {
    freq: u64,
    round: usize,
    t0: u64,
    samples: Vec<u64>,
    /// [`kernel_work`] when the timed rounds began.
    before: Option<(u64, u64)>,
}

impl NotifyLatency {
    fn start_round(&mut self) {
        if self.round == WARMUP {
            self.before = kernel_work();
        }
        self.t0 = counter();
        SERVER.notify();
    }
}

impl Handler for NotifyLatency {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(SERVER),
            "notified on unexpected channels {}",
            channels.display()
        );
        let handled = region().get(0).load(SeqCst);
        ensure!(
            TEST,
            handled == self.round as u64 + 1,
            "server handled {handled} notifications, expected {}",
            self.round + 1
        );
        let t1 = region().get(1).load(SeqCst);
        if self.round >= WARMUP {
            self.samples.push(t1.wrapping_sub(self.t0));
        }
        self.round += 1;
        if self.round < WARMUP + ITERATIONS {
            self.start_round();
        } else {
            let work = self.before.zip(kernel_work());
            report("notify_latency", &mut self.samples, self.freq, work);
            debug_println!("TEST PASS: {TEST}");
        }
        Ok(())
    }
}

#[protection_domain(heap_size = 0x10000)]
fn init() -> impl Handler {
    let freq = counter_frequency();
    debug_println!("bench-client: counter at {freq} Hz, {WARMUP} warm-up + {ITERATIONS} timed iterations");
    let ok = if freq == 0 {
        let _ = fail(TEST, format_args!("CNTFRQ_EL0 reads 0"));
        false
    } else {
        ppc_roundtrip(freq).is_ok()
    };
    let mut bench = NotifyLatency {
        freq,
        round: 0,
        t0: 0,
        samples: Vec::with_capacity(ITERATIONS),
        before: None,
    };
    if ok {
        bench.start_round();
    } else {
        debug_println!("bench-client: stopping after the failure above");
    }
    bench
}
