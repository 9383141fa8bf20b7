//! Example PD: prints a greeting with its own name and reports success.
//!
//! System: `tests/systems/hello.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, pd_name, protection_domain, Handler, NullHandler};

#[protection_domain]
fn init() -> impl Handler {
    let name = pd_name().unwrap_or("?");
    debug_println!("hello, world from {name}");
    debug_println!("TEST PASS: hello");
    NullHandler::new()
}
