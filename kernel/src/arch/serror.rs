//! SErrors (asynchronous aborts) are charged to the thread that caused them.
//!
//! An SError raised by a thread's access may become pending only after the thread
//! entered the kernel for another reason (a syscall, an interrupt). The kernel runs
//! with SErrors masked, so without a check it would be taken right after the next
//! `eret`, in whichever thread runs next. So every entry from a lower EL first asks
//! [`take_pending`]: a pending SError is taken on the spot (unmasked for two
//! instructions; the vector `.Lkernel_serror` in [`super::vectors`] records its
//! syndrome and returns) and charged to the thread that ran at the last kernel exit.

use core::arch::asm;

use aarch64_cpu::asm::barrier::{isb, SY};
use aarch64_cpu::registers::{ReadWriteable, DAIF};
use core::ptr::{addr_of, addr_of_mut};

/// Syndrome of the SError taken by [`take_pending`], with bit 63 set; written by the
/// vector `.Lkernel_serror`.
#[no_mangle]
static mut VCPOS_TAKEN_SERROR: u64 = 0;

const TAKEN: u64 = 1 << 63;
/// ISR_EL1.A: a physical SError is pending (read at EL2).
const ISR_A: u64 = 1 << 8;

/// Takes a pending SError, if any, and returns its ESR.
pub fn take_pending() -> Option<u64> {
    let isr: u64;
    // SAFETY: reading the interrupt status register has no side effects.
    unsafe { asm!("mrs {}, isr_el1", out(reg) isr, options(nomem, nostack)) };
    if isr & ISR_A == 0 {
        return None;
    }
    // SAFETY: the kernel is single-threaded with interrupts masked; the only other
    // access to the word is the SError vector, which runs while SErrors are unmasked
    // below and returns with them masked again (it touches no other state but
    // ELR/SPSR/ESR_EL2, which the entry code saved or the caller read).
    unsafe { addr_of_mut!(VCPOS_TAKEN_SERROR).write_volatile(0) };
    DAIF.modify(DAIF::A::Unmasked);
    isb(SY);
    DAIF.modify(DAIF::A::Masked);
    isb(SY);
    // SAFETY: as above; the vector has finished.
    let v = unsafe { addr_of!(VCPOS_TAKEN_SERROR).read_volatile() };
    (v & TAKEN != 0).then_some(v & !TAKEN)
}
