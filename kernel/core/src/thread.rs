//! Threads: one per PD, with its saved registers, state and scheduling parameters.

use crate::cspace::{CSpace, ThreadIndex};
use crate::vgic::MAX_LRS;
use vcpos_abi::counters::{GuestExit, ThreadCounters};

/// Registers saved on every kernel entry from a PD. The layout is shared with the
/// exception-entry assembly (`kernel/src/arch/vectors.rs`): do not reorder.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserContext {
    /// x0..x30.
    pub x: [u64; 31],
    /// SP_EL0.
    pub sp: u64,
    /// Return address (ELR_EL2).
    pub pc: u64,
    /// Saved program status (SPSR_EL2).
    pub spsr: u64,
    /// EL0 thread-ID register (TPIDR_EL0): each thread's own.
    pub tpidr: u64,
    /// EL0 read-only thread-ID register (TPIDRRO_EL0; only a guest's EL1 writes it).
    pub tpidrro: u64,
}

/// SPSR for a PD: EL0t (AArch64, SP_EL0), all interrupts unmasked.
pub const SPSR_EL0: u64 = 0;

/// Offsets the assembly uses; checked by a test.
pub const CONTEXT_SP_OFFSET: usize = 31 * 8;
/// Offset of `pc` in [`UserContext`].
pub const CONTEXT_PC_OFFSET: usize = 32 * 8;
/// Offset of `tpidr` (followed by `tpidrro`) in [`UserContext`].
pub const CONTEXT_TPIDR_OFFSET: usize = 34 * 8;

/// What a thread is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadState {
    /// Not part of the system (unused TCB slot).
    Inactive,
    /// Runnable (running or in a ready queue).
    Ready,
    /// Waiting on its input for a notification, PPC or child fault.
    BlockedRecv,
    /// Queued on `server`'s input to make a PPC.
    BlockedSend {
        /// The callee.
        server: ThreadIndex,
    },
    /// PPC delivered; waiting for `server` to reply.
    BlockedCall {
        /// The callee.
        server: ThreadIndex,
    },
    /// Faulted; the fault message is queued on or delivered to the parent, which
    /// may reply (resume) or restart it.
    BlockedFault,
    /// Stopped by its parent.
    Stopped,
    /// Faulted with nobody to handle it: stopped for good.
    Faulted,
    /// A vCPU that executed WFI with no virtual interrupt pending.
    BlockedWfi,
}

impl ThreadState {
    /// True if the thread can never run again without a parent's restart.
    pub fn is_dead(self) -> bool {
        matches!(
            self,
            ThreadState::Inactive | ThreadState::Stopped | ThreadState::Faulted | ThreadState::BlockedFault
        )
    }
}

/// What kind of thread a TCB runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadKind {
    /// A protection domain at EL0.
    Pd,
    /// A vCPU at EL1 behind stage-2 translation.
    Vcpu,
}

/// Virtual interrupts waiting to be put in the vGIC list registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirqSet {
    bits: [u64; 16],
}

impl VirqSet {
    /// Empty set.
    pub const fn new() -> VirqSet {
        VirqSet { bits: [0; 16] }
    }

    /// Adds `irq` (< 1024).
    pub fn insert(&mut self, irq: u32) {
        if let Some(w) = self.bits.get_mut(irq as usize / 64) {
            *w |= 1 << (irq % 64);
        }
    }

    /// Removes and returns the lowest pending interrupt.
    pub fn pop(&mut self) -> Option<u32> {
        let (i, w) = self.bits.iter_mut().enumerate().find(|(_, w)| **w != 0)?;
        let bit = w.trailing_zeros();
        *w &= !(1 << bit);
        Some(i as u32 * 64 + bit)
    }

    /// True if nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }
}

impl Default for VirqSet {
    fn default() -> Self {
        VirqSet::new()
    }
}

/// A message waiting to be delivered from a queued sender (PPC or fault).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PendingMessage {
    /// Badge the receiver sees.
    pub badge: u64,
    /// Message info (label and count).
    pub info: u64,
    /// For faults: the message registers (PPC MRs stay in the sender's IPC buffer).
    pub fault_mrs: [u64; 5],
}

/// A thread control block.
#[derive(Clone, Debug)]
pub struct Tcb {
    /// PD name (NUL padded).
    pub name: [u8; vcpos_abi::PD_NAME_LEN],
    /// Saved registers.
    pub ctx: UserContext,
    /// State.
    pub state: ThreadState,
    /// Priority 0..=254.
    pub priority: u8,
    /// Budget per period, in counter ticks.
    pub budget: u64,
    /// Period in counter ticks.
    pub period: u64,
    /// Budget left in the current period.
    pub remaining: u64,
    /// Time used beyond the budget (e.g. a long `DebugPut` or fault report, which
    /// run with interrupts masked), in counter ticks, still to be paid from the next
    /// budgets.
    pub debt: u64,
    /// When throttled: the counter value at which the budget is refilled.
    pub refill_at: Option<u64>,
    /// Passive PD (runs on its callers' time once it first waits).
    pub passive: bool,
    /// Parent PD, for children.
    pub parent: Option<ThreadIndex>,
    /// The id the parent names this child by.
    pub child_id: u8,
    /// Physical address of the IPC buffer page.
    pub ipc_buffer: u64,
    /// Physical address of the level-0 translation table.
    pub vspace_root: u64,
    /// Address-space id.
    pub asid: u16,
    /// Capability space.
    pub cspace: CSpace,
    /// Pending notification bits.
    pub notification: u64,
    /// Message this thread wants delivered (while `BlockedSend` or `BlockedFault`).
    pub pending: PendingMessage,
    /// Whether `pending` has not yet been delivered to the parent (faults).
    pub fault_undelivered: bool,
    /// The thread owed a reply by this one (PPC caller or faulted child).
    pub reply_to: Option<ThreadIndex>,
    /// Queue of threads waiting to send to this one (head).
    pub send_head: Option<ThreadIndex>,
    /// Queue link: next thread in the ready queue or in a send queue.
    pub next: Option<ThreadIndex>,
    /// PD or vCPU.
    pub kind: ThreadKind,
    /// vCPUs: virtual interrupts to inject.
    pub virqs: VirqSet,
    /// vCPUs: EL1 state must be reset before the next entry (after a restart).
    pub vcpu_reset: bool,
    /// vCPUs: the vGIC list registers while another vCPU has the CPU's.
    pub saved_lrs: [u64; MAX_LRS],
    /// Event counters (read with the `ThreadCounters` syscall).
    pub counters: ThreadCounters,
}

impl Tcb {
    /// An unused TCB.
    pub const fn new() -> Tcb {
        Tcb {
            name: [0; vcpos_abi::PD_NAME_LEN],
            ctx: UserContext {
                x: [0; 31],
                sp: 0,
                pc: 0,
                spsr: SPSR_EL0,
                tpidr: 0,
                tpidrro: 0,
            },
            state: ThreadState::Inactive,
            priority: 0,
            budget: 0,
            period: 0,
            remaining: 0,
            refill_at: None,
            debt: 0,
            passive: false,
            parent: None,
            child_id: 0,
            ipc_buffer: 0,
            vspace_root: 0,
            asid: 0,
            cspace: CSpace::new(),
            notification: 0,
            pending: PendingMessage {
                badge: 0,
                info: 0,
                fault_mrs: [0; 5],
            },
            fault_undelivered: false,
            reply_to: None,
            send_head: None,
            next: None,
            kind: ThreadKind::Pd,
            virqs: VirqSet::new(),
            vcpu_reset: false,
            saved_lrs: [0; MAX_LRS],
            counters: ThreadCounters {
                kernel_entries: 0,
                switches_to: 0,
                switches_from: 0,
                notifications_sent: 0,
                notifications_received: 0,
                ppc_calls: 0,
                ppc_served: 0,
                faults: 0,
                budget_exhaustions: 0,
                time_run: 0,
                bytes_copied: 0,
                guest_exits: [0; GuestExit::COUNT],
            },
        }
    }

    /// The name as text.
    pub fn name(&self) -> &str {
        let len = self.name.iter().position(|&b| b == 0).unwrap_or(self.name.len());
        core::str::from_utf8(&self.name[..len]).unwrap_or("?")
    }
}

impl Default for Tcb {
    fn default() -> Self {
        Tcb::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virq_set_pops_in_order() {
        let mut v = VirqSet::new();
        assert!(v.is_empty());
        v.insert(27);
        v.insert(33);
        v.insert(27);
        v.insert(5000);
        assert_eq!((v.pop(), v.pop(), v.pop()), (Some(27), Some(33), None));
    }

    #[test]
    fn context_layout_matches_assembly() {
        let c = UserContext::default();
        let base = &c as *const _ as usize;
        assert_eq!(&c.sp as *const _ as usize - base, CONTEXT_SP_OFFSET);
        assert_eq!(&c.pc as *const _ as usize - base, CONTEXT_PC_OFFSET);
        assert_eq!(&c.tpidr as *const _ as usize - base, CONTEXT_TPIDR_OFFSET);
        assert_eq!(&c.tpidrro as *const _ as usize - base, CONTEXT_TPIDR_OFFSET + 8);
        assert_eq!(core::mem::size_of::<UserContext>(), 36 * 8);
    }
}
