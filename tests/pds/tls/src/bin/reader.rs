//! thread-ID isolation test, the reader: sets its own `TPIDR_EL0` and then, at the
//! writer's priority, keeps checking it until it has been preempted 20 times. The two PDs share the CPU
//! by budget (round robin), so the writer runs many times in between; a kernel that
//! does not keep the register per thread shows the writer's value here.
//!
//! Proves the check could fail: the writer's round counter (shared region) must have
//! advanced and the reader must have been preempted several times (gaps in the
//! counter), else the test fails instead of passing.
//!
//! System: `tests/systems/tls.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::sys::{counter, counter_frequency};
use sel4_microkit::{debug_println, protection_domain, Handler, NullHandler};
use vcpos_test_support::sysreg::{set_tpidr_el0, tpidr_el0};
use vcpos_test_support::{fail, shared_words, TestFailed, Words};

const TEST: &str = "tls";
/// The reader's own value.
const MINE: u64 = 0x1234_5678_9abc_def0;
/// Preemptions (gaps of over 200 µs in the counter while the reader spins) the reader
/// checks its register across.
const PREEMPTIONS: u64 = 20;
/// Give up (and fail) after this many seconds without enough preemptions.
const LIMIT_S: u64 = 20;

fn region() -> Words {
    shared_words!(tls_shared, size = tls_shared_size, n = 2)
}

fn check() -> Result<(), TestFailed> {
    let hz = counter_frequency();
    set_tpidr_el0(MINE);
    let writer_start = region().get(0).load(SeqCst);
    let (start, gap) = (counter(), hz / 5000);
    let (mut last, mut preemptions) = (start, 0u64);
    while preemptions < PREEMPTIONS && last - start < hz * LIMIT_S {
        let seen = tpidr_el0();
        if seen != MINE {
            return Err(fail(
                TEST,
                format_args!("TPIDR_EL0 is {seen:#x}, set to {MINE:#x} (after {preemptions} preemptions)"),
            ));
        }
        let now = counter();
        if now - last > gap {
            preemptions += 1;
        }
        last = now;
    }
    let writer_rounds = region().get(0).load(SeqCst) - writer_start;
    if writer_rounds == 0 || preemptions < PREEMPTIONS {
        return Err(fail(
            TEST,
            format_args!("the writer did not run in between ({writer_rounds} rounds, {preemptions} preemptions)"),
        ));
    }
    let writer_mismatches = region().get(1).load(SeqCst);
    if writer_mismatches != 0 {
        return Err(fail(
            TEST,
            format_args!("the writer found another value than its own in {writer_mismatches} rounds"),
        ));
    }
    debug_println!(
        "TEST PASS: {TEST} (own TPIDR_EL0 kept over {preemptions} preemptions, {writer_rounds} writer rounds)"
    );
    Ok(())
}

#[protection_domain]
fn init() -> impl Handler {
    let _ = check();
    NullHandler::new()
}
