//! fault-isolation test: counts the worker's rounds (each a notification it answers)
//! and reports success after the last one.
//!
//! System: `tests/systems/fault.system`. The test harness also checks that the
//! kernel's fault report for the crasher appears before this PD's verdict.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler};
use vcpos_test_support::{ensure, TestFailed};

const TEST: &str = "fault-isolation";
/// Channel to the worker.
const WORKER: Channel = Channel::new(0);
/// Rounds of work to see after the crash.
const ROUNDS: u64 = 5;

struct Checker {
    seen: u64,
}

impl Handler for Checker {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(WORKER),
            "checker notified on unexpected channels {}",
            channels.display()
        );
        self.seen += 1;
        if self.seen == ROUNDS {
            debug_println!("checker: {ROUNDS} rounds of work completed while the crasher is dead");
            debug_println!("TEST PASS: {TEST}");
        } else if self.seen < ROUNDS {
            WORKER.notify();
        }
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Checker { seen: 0 }
}
