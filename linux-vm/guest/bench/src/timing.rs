//! Timing single loads with the generic timer's virtual counter (`CNTVCT_EL0`), which
//! Linux lets user space read (its vDSO does).

use core::arch::asm;

/// The counter's frequency in Hz (`CNTFRQ_EL0`).
pub fn counter_frequency() -> u64 {
    let freq: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects and touches no memory; Linux
    // enables EL0 counter access (CNTKCTL_EL1.EL0VCTEN), otherwise it is SIGILL, not UB.
    unsafe { asm!("mrs {f}, cntfrq_el0", f = out(reg) freq, options(nomem, nostack, preserves_flags)) };
    freq
}

/// The virtual counter now, ordered after the instructions before it (`isb`).
pub fn now() -> u64 {
    let t: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effects and touches no memory (see
    // `counter_frequency` for EL0 access).
    unsafe { asm!("isb", "mrs {t}, cntvct_el0", t = out(reg) t, options(nomem, nostack, preserves_flags)) };
    t
}

/// One 32-bit load from `ptr`: the counter ticks it took and the value read.
///
/// The counter reads are ordered against the load: `isb` before the first read, and
/// `dsb ld` (the load has completed) plus `isb` before the second. A load that exits
/// to the hypervisor completes only after the VMM has emulated it and the guest resumed.
///
/// # Safety
/// `ptr` must be 4-byte aligned and mapped readable (RAM or device memory whose reads
/// have no effects the program depends on).
pub unsafe fn timed_load(ptr: *const u32) -> (u64, u32) {
    let (t0, t1): (u64, u64);
    let value: u32;
    // SAFETY: the caller vouches that `ptr` can be read with one aligned 32-bit load;
    // the other instructions are barriers and counter reads, with no memory effects.
    unsafe {
        asm!(
            "isb",
            "mrs {t0}, cntvct_el0",
            "isb",
            "ldr {v:w}, [{p}]",
            "dsb ld",
            "isb",
            "mrs {t1}, cntvct_el0",
            t0 = out(reg) t0,
            t1 = out(reg) t1,
            v = out(reg) value,
            p = in(reg) ptr,
            options(nostack, readonly, preserves_flags),
        );
    }
    (t1.wrapping_sub(t0), value)
}
