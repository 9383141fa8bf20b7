//! panic test, the child: notifies on channel 5, which its system file does not give it.
//! Like `sel4-microkit`, the runtime panics ("notify: not valid for channel '5'"); the
//! panic handler prints `<pd name>: <panic info>` and stops the PD with an undefined
//! instruction, which the kernel delivers to the parent as a user-exception fault.
//!
//! System: `tests/systems/panic.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, Channel, Handler, NullHandler};

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("panicker: notifying channel 5, which I was not given");
    Channel::new(5).notify();
    debug_println!("TEST FAIL: panic: notify on a missing channel returned");
    NullHandler::new()
}
