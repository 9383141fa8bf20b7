//! fault-isolation test: once the crasher has announced its crash, exchanges
//! notifications with the checker for several rounds, showing that work goes on
//! after another PD faulted.
//!
//! System: `tests/systems/fault.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler};
use vcpos_test_support::{ensure, TestFailed};

const TEST: &str = "fault-isolation";
/// Channel from the crasher (it notifies just before it faults).
const CRASHER: Channel = Channel::new(0);
/// Channel to the checker.
const CHECKER: Channel = Channel::new(1);

struct Worker {
    rounds: u64,
}

impl Handler for Worker {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            !channels.contains(CRASHER) || self.rounds == 0,
            "crasher notified twice"
        );
        ensure!(
            TEST,
            channels.contains(CRASHER) || channels.contains(CHECKER),
            "worker notified on unexpected channels {}",
            channels.display()
        );
        // The crasher (higher priority) has faulted by the time we run; each checker
        // notification asks for the next round.
        self.rounds += 1;
        debug_println!("worker: round {} after the crash", self.rounds);
        CHECKER.notify();
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Worker { rounds: 0 }
}
