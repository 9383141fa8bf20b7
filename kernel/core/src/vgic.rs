//! The vGIC list registers: putting a vCPU's pending virtual interrupts into the
//! GICv3 list registers (ICH_LR<n>_EL2), freeing those the guest has finished with,
//! and saving them per vCPU. The arch layer implements [`ListRegisters`] over the
//! real registers; the host tests use a fake.

use crate::thread::VirqSet;

/// Most list registers GICv3 has (ICH_VTR_EL2.ListRegs + 1 ≤ 16).
pub const MAX_LRS: usize = 16;

/// Fields of a list register (GICv3 ICH_LR<n>_EL2).
pub mod lr {
    /// State: pending.
    pub const PENDING: u64 = 1 << 62;
    /// State: active.
    pub const ACTIVE: u64 = 1 << 63;
    /// Group 1.
    pub const GROUP1: u64 = 1 << 60;
    /// Priority field shift (bits 55:48).
    pub const PRIORITY_SHIFT: u32 = 48;
    /// Priority the kernel gives every virtual interrupt.
    pub const PRIORITY: u64 = 0xa0;
    /// With HW = 0: raise a maintenance interrupt when the guest deactivates it.
    pub const EOI: u64 = 1 << 41;
    /// The virtual INTID (bits 31:0).
    pub const VINTID_MASK: u64 = 0xffff_ffff;

    /// True if the register holds an interrupt that is pending and/or active.
    pub const fn in_use(value: u64) -> bool {
        value & (PENDING | ACTIVE) != 0
    }

    /// A pending group-1 software interrupt `vintid` with EOI maintenance, so the
    /// kernel learns when the guest is done with it.
    pub const fn pending(vintid: u32) -> u64 {
        PENDING | GROUP1 | (PRIORITY << PRIORITY_SHIFT) | EOI | vintid as u64
    }
}

/// The list registers of the CPU the kernel runs on.
pub trait ListRegisters {
    /// How many there are (at most [`MAX_LRS`]).
    fn count(&self) -> usize;
    /// Reads list register `i`.
    fn read(&self, i: usize) -> u64;
    /// Writes list register `i`.
    fn write(&mut self, i: usize, value: u64);
}

/// Frees every register the guest has finished with (state invalid but not zero:
/// the guest deactivated it and, with EOI set, the maintenance interrupt stays
/// asserted until the register is cleared), calling `done` with its interrupt. The
/// registers themselves are the only record of what they hold, so no register can
/// be left finished but forgotten.
pub fn retire(lrs: &mut impl ListRegisters, mut done: impl FnMut(u32)) {
    for i in 0..lrs.count().min(MAX_LRS) {
        let value = lrs.read(i);
        if value != 0 && !lr::in_use(value) {
            lrs.write(i, 0);
            done((value & lr::VINTID_MASK) as u32);
        }
    }
}

/// Frees finished registers ([`retire`]), then moves `pending` interrupts into the
/// registers: one already pending in a register is not listed again, one active
/// there becomes pending and active in the same register (two registers with one
/// vINTID are UNPREDICTABLE in GICv3), the others go to free registers. What does
/// not fit stays in `pending`; returns true if something does (the caller then asks
/// for underflow maintenance).
pub fn fill(lrs: &mut impl ListRegisters, pending: &mut VirqSet, done: impl FnMut(u32)) -> bool {
    retire(lrs, done);
    let n = lrs.count().min(MAX_LRS);
    let mut cur = [0u64; MAX_LRS];
    for (i, c) in cur.iter_mut().enumerate().take(n) {
        *c = lrs.read(i);
    }
    let mut left = VirqSet::new();
    while let Some(v) = pending.pop() {
        if let Some(i) = (0..n).find(|&i| lr::in_use(cur[i]) && cur[i] & lr::VINTID_MASK == v as u64) {
            if cur[i] & lr::PENDING == 0 {
                cur[i] |= lr::PENDING;
                lrs.write(i, cur[i]);
            }
        } else if let Some(i) = (0..n).find(|&i| cur[i] == 0) {
            cur[i] = lr::pending(v);
            lrs.write(i, cur[i]);
        } else {
            left.insert(v);
        }
    }
    *pending = left;
    !pending.is_empty()
}

/// True if a register holds an interrupt the guest has not finished with.
pub fn in_flight(lrs: &impl ListRegisters) -> bool {
    (0..lrs.count().min(MAX_LRS)).any(|i| lr::in_use(lrs.read(i)))
}

/// Switching vCPUs: frees finished registers, copies the rest into `saved` (the
/// outgoing vCPU's) and clears the registers.
pub fn save(lrs: &mut impl ListRegisters, saved: &mut [u64; MAX_LRS], done: impl FnMut(u32)) {
    retire(lrs, done);
    for (i, s) in saved.iter_mut().enumerate() {
        *s = if i < lrs.count() { lrs.read(i) } else { 0 };
        if *s != 0 {
            lrs.write(i, 0);
        }
    }
}

/// Switching vCPUs: loads the incoming vCPU's registers as [`save`] left them.
pub fn restore(lrs: &mut impl ListRegisters, saved: &[u64; MAX_LRS]) {
    for (i, &s) in saved.iter().enumerate().take(lrs.count()) {
        lrs.write(i, s);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Fake list registers.
    pub(crate) struct FakeLrs(pub(crate) Vec<u64>);

    impl ListRegisters for FakeLrs {
        fn count(&self) -> usize {
            self.0.len()
        }
        fn read(&self, i: usize) -> u64 {
            self.0[i]
        }
        fn write(&mut self, i: usize, value: u64) {
            self.0[i] = value;
        }
    }

    fn set(virqs: &[u32]) -> VirqSet {
        let mut s = VirqSet::new();
        virqs.iter().for_each(|&v| s.insert(v));
        s
    }

    /// The guest deactivates the interrupt in register `i`: the state bits clear,
    /// the rest (vINTID, EOI) stays, as on hardware.
    fn guest_eoi(l: &mut FakeLrs, i: usize) {
        l.0[i] &= !(lr::PENDING | lr::ACTIVE);
    }

    #[test]
    fn a_finished_register_is_freed_even_when_nothing_else_is_pending() {
        let mut l = FakeLrs(vec![0; 4]);
        let mut done = vec![];
        assert!(!fill(&mut l, &mut set(&[27]), |v| done.push(v)));
        assert_eq!(l.0[0], lr::pending(27));
        guest_eoi(&mut l, 0);
        // A refill with nothing pending must still clear the EOI register (else the
        // maintenance interrupt stays asserted), and report the interrupt done.
        fill(&mut l, &mut VirqSet::new(), |v| done.push(v));
        assert_eq!(l.0, vec![0; 4], "no register left holding a finished EOI interrupt");
        assert_eq!(done, vec![27]);
        // And maintenance finds nothing more to do.
        retire(&mut l, |v| done.push(v));
        assert_eq!(done, vec![27]);
    }

    #[test]
    fn a_stale_eoi_register_nobody_tracks_is_cleared() {
        // E.g. left over from before the bookkeeping was (re)built: state invalid, EOI set.
        let mut l = FakeLrs(vec![lr::pending(33) & !lr::PENDING, 0]);
        let mut done = vec![];
        retire(&mut l, |v| done.push(v));
        assert_eq!(l.0, vec![0, 0]);
        assert_eq!(done, vec![33]);
    }

    #[test]
    fn an_interrupt_already_in_a_register_is_not_listed_twice() {
        let mut l = FakeLrs(vec![0; 4]);
        fill(&mut l, &mut set(&[27]), |_| {});
        // 27 fires again while still pending: it stays in one register.
        fill(&mut l, &mut set(&[27, 40]), |_| {});
        let with = |l: &FakeLrs, v: u32| l.0.iter().filter(|&&x| lr::in_use(x) && x as u32 == v).count();
        assert_eq!(with(&l, 27), 1);
        assert_eq!(with(&l, 40), 1);
        // The guest has it active (acknowledged, not yet deactivated) and it fires
        // again: the same register becomes pending and active.
        let i = l.0.iter().position(|&x| x as u32 == 27).unwrap();
        l.0[i] = (l.0[i] & !lr::PENDING) | lr::ACTIVE;
        fill(&mut l, &mut set(&[27]), |_| {});
        assert_eq!(with(&l, 27), 1);
        assert_eq!(l.0[i] & (lr::PENDING | lr::ACTIVE), lr::PENDING | lr::ACTIVE);
    }

    #[test]
    fn save_and_restore_keep_an_active_interrupt_with_its_vcpu() {
        let mut l = FakeLrs(vec![0; 4]);
        fill(&mut l, &mut set(&[27, 40]), |_| {});
        l.0[0] = (l.0[0] & !lr::PENDING) | lr::ACTIVE; // guest took 27
        guest_eoi(&mut l, 1); // and finished 40
        let mut saved = [0; MAX_LRS];
        let mut done = vec![];
        save(&mut l, &mut saved, |v| done.push(v));
        assert_eq!(done, vec![40]);
        assert_eq!(l.0, vec![0; 4], "the next vCPU starts with clean registers");
        assert!(!in_flight(&l));
        restore(&mut l, &saved);
        assert!(in_flight(&l));
        assert_eq!(l.0[0] as u32, 27);
        assert_eq!(l.0[0] & lr::ACTIVE, lr::ACTIVE);
    }

    #[test]
    fn overflow_waits_and_asks_for_underflow_maintenance() {
        let mut l = FakeLrs(vec![0; 2]);
        let mut p = set(&[30, 31, 32]);
        assert!(fill(&mut l, &mut p, |_| {}), "one interrupt still waits");
        assert_eq!(p.pop(), Some(32));
        assert!(p.is_empty());
        let mut p = set(&[32]);
        guest_eoi(&mut l, 1);
        assert!(!fill(&mut l, &mut p, |_| {}));
        assert!(l.0.contains(&lr::pending(32)));
    }
}
