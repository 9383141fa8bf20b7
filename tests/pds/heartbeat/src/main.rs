//! Linux VM tests, the bystander: prints `heartbeat: N` (N = 1, 2, 3, ...) every half
//! second of counter time, busy-waiting on the counter, for ever. A test reads the
//! numbers to see that this PD kept running while the guest booted, powered off,
//! crashed and booted again next to it.
//!
//! It also keeps its latest number in its own memory region `heartbeat_state` (word 0,
//! as `STATE_PATTERN ^ N`) and checks before each beat that the word still holds what
//! it wrote last, so a write to that memory by anyone else (the guest is told to try)
//! ends the heartbeat with `TEST FAIL: heartbeat: ...`.
//!
//! Systems: `tests/systems/linux-heartbeat.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use sel4_microkit::sys::{counter, counter_frequency};
use sel4_microkit::{debug_println, protection_domain, NullHandler};
use vcpos_test_support::{fail, shared_words};

const TEST: &str = "heartbeat";
/// Beats per second.
const BEATS_PER_SECOND: u64 = 2;
/// Mixed into the stored number so that the word is never 0 (what a blocked read of
/// it returns) and is unlikely to be hit by accident.
const STATE_PATTERN: u64 = 0x4845_4152_5442_0000;

#[protection_domain]
fn init() -> NullHandler {
    let words = shared_words!(heartbeat_state, size = heartbeat_state_size, n = 1);
    let state = words.get(0);
    let freq = counter_frequency();
    if freq == 0 {
        fail(TEST, format_args!("the counter frequency reads as 0"));
        return NullHandler::new();
    }
    let period = freq / BEATS_PER_SECOND;
    // Not "heartbeat: ...": that prefix is only for the numbered beats.
    debug_println!("heartbeat started, a beat every {} ms", 1000 / BEATS_PER_SECOND);
    state.store(STATE_PATTERN, Ordering::Relaxed);
    let mut next = counter() + period;
    let mut n: u64 = 0;
    loop {
        while counter() < next {
            core::hint::spin_loop();
        }
        let seen = state.load(Ordering::Relaxed);
        if seen != STATE_PATTERN ^ n {
            fail(
                TEST,
                format_args!(
                    "my memory region changed behind my back: word 0 is {seen:#x}, I wrote {:#x}",
                    STATE_PATTERN ^ n
                ),
            );
            return NullHandler::new();
        }
        n += 1;
        state.store(STATE_PATTERN ^ n, Ordering::Relaxed);
        debug_println!("heartbeat: {n}");
        // After a long time without the CPU, resume the rhythm from now instead of
        // printing the missed beats in a burst.
        let now = counter();
        next = if next + period > now {
            next + period
        } else {
            now + period
        };
    }
}
