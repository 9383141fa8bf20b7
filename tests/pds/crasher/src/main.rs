//! fault-isolation test: a root PD that tells the worker it is about to crash, then
//! writes to an unmapped address. The kernel reports the fault (PD, fault, address,
//! PC) and never runs this PD again; the other PDs must not notice.
//!
//! System: `tests/systems/fault.system` (this PD has the highest priority, so it
//! crashes before the worker runs).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, Channel, Handler, NullHandler};
use vcpos_test_support::{write_to_unmapped, UNMAPPED_ADDR};

/// Channel to the worker, which starts its work when notified.
const WORKER: Channel = Channel::new(0);

#[protection_domain]
fn init() -> impl Handler {
    WORKER.notify();
    debug_println!("crasher: writing to unmapped address {UNMAPPED_ADDR:#x}");
    write_to_unmapped();
    // Only reached if the kernel resumed us after the fault.
    debug_println!("TEST FAIL: fault-isolation: crasher survived a write to {UNMAPPED_ADDR:#x}");
    NullHandler::new()
}
