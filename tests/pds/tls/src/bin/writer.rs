//! thread-ID isolation test, the writer: sets `TPIDR_EL0` to a new value in an endless
//! loop and counts its rounds in the shared region (word 0), so the reader can tell
//! that the writer ran in between, and the rounds in which it found another value
//! than its own (word 1), which the reader reports. It never waits: the kernel takes the CPU from it when its
//! budget is used.
//!
//! System: `tests/systems/tls.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::{debug_println, protection_domain, NullHandler};
use vcpos_test_support::sysreg::{set_tpidr_el0, tpidr_el0};
use vcpos_test_support::{shared_words, Words};

/// The writer's values: this prefix and the round number.
const WRITER_TAG: u64 = 0x5757_0000_0000_0000;

fn region() -> Words {
    shared_words!(tls_shared, size = tls_shared_size, n = 2)
}

#[protection_domain]
fn init() -> NullHandler {
    write_forever()
}

fn write_forever() -> ! {
    debug_println!("tls-writer: writing TPIDR_EL0 in a loop");
    let mut round = 0u64;
    loop {
        round += 1;
        set_tpidr_el0(WRITER_TAG | round);
        region().get(0).store(round, SeqCst);
        if tpidr_el0() != WRITER_TAG | round {
            region().get(1).fetch_add(1, SeqCst);
        }
    }
}
