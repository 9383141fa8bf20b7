//! The EL2 physical timer (CNTHP), used for budgets and periods.

use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, CNTHP_CTL_EL2, CNTPCT_EL0};
use core::arch::asm;

/// Counter value now.
pub fn now() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// Counter frequency in Hz.
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Fires the timer interrupt at counter value `deadline`, or never (`None`).
pub fn set_deadline(deadline: Option<u64>) {
    match deadline {
        Some(at) => {
            // SAFETY: writing the EL2 physical timer's compare value only changes
            // when the kernel's own timer interrupt fires.
            unsafe { asm!("msr cnthp_cval_el2, {}", in(reg) at) };
            CNTHP_CTL_EL2.set(1); // enabled, not masked
        }
        None => CNTHP_CTL_EL2.set(0),
    }
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}
