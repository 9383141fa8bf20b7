//! child-fault test, the child: on its first run it records its entry point in the
//! shared region and writes to an unmapped address; the parent restarts it at that
//! entry point, and on its second run it notifies the parent.
//!
//! Restarting sets only the PC, so memory keeps its values: the run counter below (in
//! `.bss`) tells the runs apart. `stack_size` gives an in-ELF stack that `_start`
//! resets on every run.
//!
//! System: `tests/systems/child-fault.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::{AtomicU64, Ordering::SeqCst};

use sel4_microkit::{debug_println, protection_domain, Channel, Handler, NullHandler};
use vcpos_test_support::{entry_point, shared_words, write_to_unmapped, Words, UNMAPPED_ADDR};

/// Channel to the parent.
const PARENT: Channel = Channel::new(0);

/// Runs so far; survives the restart because memory is not reset.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The shared region: word 0 = this PD's entry point, word 1 = runs so far.
fn region() -> Words {
    shared_words!(child_info, size = child_info_size, n = 2)
}

#[protection_domain(stack_size = 0x4000)]
fn init() -> impl Handler {
    let run = RUNS.fetch_add(1, SeqCst) + 1;
    region().get(0).store(entry_point() as u64, SeqCst);
    region().get(1).store(run, SeqCst);
    if run == 1 {
        debug_println!("faulty: run 1, writing to unmapped address {UNMAPPED_ADDR:#x}");
        write_to_unmapped();
        debug_println!("TEST FAIL: child-fault: child survived a write to {UNMAPPED_ADDR:#x}");
    } else {
        debug_println!("faulty: run {run}, restarted by the parent");
        PARENT.notify();
    }
    NullHandler::new()
}
