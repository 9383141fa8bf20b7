//! Kernel event counters: what the `ThreadCounters` syscall returns, and the layout
//! of its message registers.
//!
//! Counters are plain 64-bit event counts the kernel bumps as things happen (kept
//! in each thread's TCB, plus two kernel-wide ones). The reply's message registers
//! are the words of [`Counters`] in field order ([`Counters::WORDS`] of them),
//! written by the kernel with [`Counters::to_words`] and read by the runtime with
//! [`Counters::from_words`].

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Why a vCPU left the guest (index into [`ThreadCounters::guest_exits`]).
#[repr(usize)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestExit {
    /// Trapped WFI or WFE.
    Wfx = 0,
    /// Stage-2 data abort (an emulated device, or a fault).
    DataAbort = 1,
    /// Stage-2 instruction abort.
    InstructionAbort = 2,
    /// HVC (PSCI and other hypervisor calls).
    Hvc = 3,
    /// SMC.
    Smc = 4,
    /// A trapped system-register access.
    SysReg = 5,
    /// A physical interrupt arrived while the guest ran.
    Interrupt = 6,
    /// Any other exception class.
    Other = 7,
}

impl GuestExit {
    /// Number of exit reasons.
    pub const COUNT: usize = 8;
    /// All reasons, in index order.
    pub const ALL: [GuestExit; GuestExit::COUNT] = [
        GuestExit::Wfx,
        GuestExit::DataAbort,
        GuestExit::InstructionAbort,
        GuestExit::Hvc,
        GuestExit::Smc,
        GuestExit::SysReg,
        GuestExit::Interrupt,
        GuestExit::Other,
    ];

    /// Short name, for tables.
    pub const fn name(self) -> &'static str {
        match self {
            GuestExit::Wfx => "wfx",
            GuestExit::DataAbort => "dabt",
            GuestExit::InstructionAbort => "iabt",
            GuestExit::Hvc => "hvc",
            GuestExit::Smc => "smc",
            GuestExit::SysReg => "sysreg",
            GuestExit::Interrupt => "irq",
            GuestExit::Other => "other",
        }
    }
}

/// One thread's counters (kept in its TCB).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct ThreadCounters {
    /// Times the kernel was entered from this thread (syscalls, faults, guest exits,
    /// interrupts that arrived while it ran).
    pub kernel_entries: u64,
    /// Times the kernel switched the CPU to this thread from another one (or idle).
    pub switches_to: u64,
    /// Times the kernel switched the CPU from this thread to another one (or idle).
    pub switches_from: u64,
    /// `Signal`s this thread made.
    pub notifications_sent: u64,
    /// Notifications signalled to this thread (by PDs or IRQs).
    pub notifications_received: u64,
    /// PPCs this thread made (`Call`).
    pub ppc_calls: u64,
    /// PPCs delivered to this thread to serve.
    pub ppc_served: u64,
    /// Faults this thread took (PDs; a vCPU's exits are in `guest_exits`).
    pub faults: u64,
    /// Times this thread used up its budget.
    pub budget_exhaustions: u64,
    /// Time this thread ran, kernel work it caused included, in counter ticks.
    pub time_run: u64,
    /// Bytes of I/O data this thread copied, as it reported them (`CountCopied`).
    pub bytes_copied: u64,
    /// vCPUs: guest exits, indexed by [`GuestExit`].
    pub guest_exits: [u64; GuestExit::COUNT],
}

/// Kernel-wide counters.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct KernelCounters {
    /// Interrupts of the kernel's own timer (budget ends and refills).
    pub timer_interrupts: u64,
    /// Times the kernel programmed a new timer deadline.
    pub timer_arms: u64,
}

/// The reply of `ThreadCounters`: one thread's counters and the kernel-wide ones.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Counters {
    /// The thread's.
    pub thread: ThreadCounters,
    /// The kernel's.
    pub kernel: KernelCounters,
}

impl Counters {
    /// Message registers the reply takes.
    pub const WORDS: usize = core::mem::size_of::<Counters>() / 8;

    /// The message registers, in order.
    pub fn to_words(&self) -> [u64; Counters::WORDS] {
        let mut words = [0u64; Counters::WORDS];
        for (w, chunk) in words.iter_mut().zip(self.as_bytes().chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *w = u64::from_le_bytes(b);
        }
        words
    }

    /// Decodes message registers; `None` if there are fewer than [`Counters::WORDS`].
    pub fn from_words(words: &[u64]) -> Option<Counters> {
        let mut c = Counters::default();
        let bytes = c.as_mut_bytes();
        if words.len() < Counters::WORDS {
            return None;
        }
        for (chunk, w) in bytes.chunks_exact_mut(8).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        Some(c)
    }
}

// The reply fits in the message registers.
const _: () = assert!(Counters::WORDS <= crate::msg::MAX_MRS);
const _: () = assert!(core::mem::size_of::<Counters>().is_multiple_of(8));

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_in_field_order() {
        let mut c = Counters::default();
        c.thread.kernel_entries = 1;
        c.thread.time_run = 10;
        c.thread.bytes_copied = 1514;
        c.thread.guest_exits[GuestExit::Hvc as usize] = 7;
        c.kernel.timer_arms = 99;
        let w = c.to_words();
        assert_eq!(Counters::WORDS, 21);
        assert_eq!(
            (w[0], w[9], w[10], w[11 + GuestExit::Hvc as usize], w[20]),
            (1, 10, 1514, 7, 99)
        );
        assert_eq!(Counters::from_words(&w), Some(c));
        assert_eq!(Counters::from_words(&w[..5]), None);
        assert_eq!(
            GuestExit::ALL.iter().map(|&g| g as usize).collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
    }
}
