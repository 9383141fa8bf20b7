//! panic test, the parent: its child panics; the fault that arrives must be a user
//! exception (the runtime's deliberate undefined instruction, ESR class 0) at a PC in
//! the child's program image. The parent then stops the child and reports.
//!
//! System: `tests/systems/panic.system`. The harness also checks for the child's panic
//! message, `panicker: panicked at ...: notify: not valid for channel '5'`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, Child, Fault, Handler, MessageInfo};
use vcpos_test_support::{ensure, fail, TestFailed};

const TEST: &str = "panic";
/// The child, by its `id` in the system file.
const CHILD: Child = Child::new(0);
/// seL4/vcpos label of a user exception.
const USER_EXCEPTION_LABEL: u64 = 3;
/// ESR exception class of an undefined instruction ("unknown reason").
const EC_UNKNOWN: u64 = 0;

struct Watcher;

impl Handler for Watcher {
    type Error = TestFailed;

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, TestFailed> {
        ensure!(TEST, child == CHILD, "fault from child {}", child.index());
        let fault = msg_info.fault();
        debug_println!("watcher: child {} faulted: {fault}", child.index());
        ensure!(
            TEST,
            msg_info.label() == USER_EXCEPTION_LABEL,
            "label {}, expected {USER_EXCEPTION_LABEL}",
            msg_info.label()
        );
        let Fault::UserException { ip, ec, .. } = fault else {
            return Err(fail(TEST, format_args!("not decoded as a user exception: {fault}")));
        };
        ensure!(
            TEST,
            ec == EC_UNKNOWN,
            "exception class {ec:#x}, expected {EC_UNKNOWN:#x} (undefined instruction)"
        );
        ensure!(TEST, ip >= 0x20_0000, "implausible fault pc {ip:#x}");
        if let Err(e) = child.stop() {
            return Err(fail(TEST, format_args!("stopping the child failed: {e}")));
        }
        debug_println!("TEST PASS: {TEST}");
        Ok(None)
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Watcher
}
