//! Syscall numbers, register convention and error codes.
//!
//! A PD enters the kernel with `svc #0`:
//!
//! | register | in                                   | out                         |
//! |----------|--------------------------------------|-----------------------------|
//! | `x8`     | [`Sysno`]                            | preserved                   |
//! | `x0`     | capability pointer (slot) named      | [`Error`] code, 0 = success |
//! | `x1`     | first argument (usually a msginfo)   | badge (Recv/ReplyRecv)      |
//! | `x2`     | second argument                      | msginfo (Call/Recv/…)       |
//!
//! All other registers are preserved. Message registers are not passed in CPU
//! registers: they live in the caller's IPC buffer (see [`crate::msg`]), a page the
//! kernel owns and reads through its own mapping, so the kernel never dereferences a
//! pointer a PD gave it.

/// Syscall numbers (`x8`). Every syscall names a capability in `x0`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sysno {
    /// Write `x1` bytes from the IPC buffer's debug area to the console.
    /// Cap: the debug console ([`crate::cap::slot::DEBUG_CONSOLE`]).
    DebugPut = 0,
    /// Signal a notification. Cap: an outgoing notification (slot 10+ch).
    Signal = 1,
    /// Protected procedure call: send `x1` = msginfo (MRs in the IPC buffer) and block
    /// until the callee replies. Out: `x2` = reply msginfo. Cap: endpoint (slot 74+ch).
    Call = 2,
    /// Wait for the next event on the PD's input (notification bits, a PPC or a child
    /// fault). Out: `x1` = badge, `x2` = msginfo. Cap: input ([`crate::cap::slot::INPUT`]).
    /// A PPC caller still owed a reply from the previous event gets
    /// [`Error::PeerDead`] at once; an unanswered child fault stays with the child
    /// (the parent may still restart or stop it).
    Recv = 3,
    /// Reply to the pending PPC or fault with `x1` = msginfo, then wait as [`Sysno::Recv`].
    ReplyRecv = 4,
    /// Acknowledge (unmask) an IRQ. Cap: IRQ handler (slot 138+id).
    IrqAck = 5,
    /// Set a child PD's PC to `x1` and make it runnable (Microkit `pd_restart`: only
    /// the PC is written). Cap: child TCB (slot 202+id).
    TcbRestart = 6,
    /// Stop a child PD. Cap: child TCB.
    TcbStop = 7,
    /// Resume a stopped child PD. Cap: child TCB.
    TcbResume = 8,
    /// Read the counter frequency and current count (x1 = Hz, x2 = count). Cap: input.
    /// Lets PDs that lack EL0 counter access time things; also a cheap null syscall.
    TimeNow = 9,
    /// Set a vCPU's PC to `x1`, put it at EL1 with interrupts masked, and make it
    /// runnable (Microkit `vcpu_restart`). Cap: vCPU (slot 266+id or 330+id).
    VcpuRestart = 10,
    /// Stop a vCPU. Cap: vCPU.
    VcpuStop = 11,
    /// Read vCPU register `x1` ([`crate::vcpu::reg`]) into `x1`. Cap: vCPU.
    VcpuReadReg = 12,
    /// Write `x2` to vCPU register `x1`. Cap: vCPU.
    VcpuWriteReg = 13,
    /// Make virtual interrupt `x1` (an INTID below 1020) pending on the vCPU and
    /// wake it if it waits for interrupts. Cap: vCPU.
    VcpuInjectIrq = 14,
    /// Read a thread's event counters: `x2` = msginfo with
    /// [`crate::counters::Counters::WORDS`] message registers holding a
    /// [`crate::counters::Counters`], `x1` = the thread's index. Cap: a child TCB or
    /// vCPU (that thread), the input (the caller itself), or the debug console (any
    /// thread: index in `x1`; present in Microkit's `debug`/`benchmark` configs).
    ThreadCounters = 15,
    /// Add `x1` to the caller's `bytes_copied` counter: the bytes of I/O data it
    /// copied itself (between memory regions, or into and out of them), which the
    /// kernel cannot see. Reported by the PD, kept where every counter is read (so the
    /// status page and the benchmarks show each PD's copies). Cap: input.
    CountCopied = 16,
}

impl Sysno {
    /// Decodes `x8`; unknown numbers get [`Error::InvalidSyscall`].
    pub const fn from_u64(n: u64) -> Option<Sysno> {
        Some(match n {
            0 => Sysno::DebugPut,
            1 => Sysno::Signal,
            2 => Sysno::Call,
            3 => Sysno::Recv,
            4 => Sysno::ReplyRecv,
            5 => Sysno::IrqAck,
            6 => Sysno::TcbRestart,
            7 => Sysno::TcbStop,
            8 => Sysno::TcbResume,
            9 => Sysno::TimeNow,
            10 => Sysno::VcpuRestart,
            11 => Sysno::VcpuStop,
            12 => Sysno::VcpuReadReg,
            13 => Sysno::VcpuWriteReg,
            14 => Sysno::VcpuInjectIrq,
            15 => Sysno::ThreadCounters,
            16 => Sysno::CountCopied,
            _ => return None,
        })
    }
}

/// Error codes returned in `x0`. `0` is success.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// `x8` is not a syscall number.
    InvalidSyscall = 1,
    /// The slot named in `x0` is out of range, empty, or holds a capability of the
    /// wrong kind for this syscall.
    InvalidCapability = 2,
    /// An argument is out of range (e.g. a message longer than 64 words).
    InvalidArgument = 3,
    /// The operation is not possible in the target's current state.
    IllegalOperation = 4,
    /// The PD on the other end of a PPC has faulted or was stopped or restarted, or
    /// it waited for its next event without replying; the call did not complete.
    PeerDead = 5,
}

impl Error {
    /// Decodes a non-zero `x0`.
    pub const fn from_u64(n: u64) -> Option<Error> {
        Some(match n {
            1 => Error::InvalidSyscall,
            2 => Error::InvalidCapability,
            3 => Error::InvalidArgument,
            4 => Error::IllegalOperation,
            5 => Error::PeerDead,
            _ => return None,
        })
    }

    /// Short human name, for messages.
    pub const fn name(self) -> &'static str {
        match self {
            Error::InvalidSyscall => "invalid syscall",
            Error::InvalidCapability => "invalid capability",
            Error::InvalidArgument => "invalid argument",
            Error::IllegalOperation => "illegal operation",
            Error::PeerDead => "peer dead",
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Result of decoding `x0` after a syscall.
pub fn result_from_x0(x0: u64) -> Result<(), Error> {
    match x0 {
        0 => Ok(()),
        n => Err(Error::from_u64(n).unwrap_or(Error::InvalidArgument)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysno_round_trips() {
        for n in 0..=16 {
            assert_eq!(Sysno::from_u64(n).map(|s| s as u64), Some(n));
        }
        assert_eq!(Sysno::from_u64(17), None);
        assert_eq!(Sysno::from_u64(u64::MAX), None);
    }

    #[test]
    fn errors_round_trip() {
        for n in 1..=5 {
            assert_eq!(Error::from_u64(n).map(|e| e as u64), Some(n));
        }
        assert_eq!(result_from_x0(0), Ok(()));
        assert_eq!(result_from_x0(2), Err(Error::InvalidCapability));
    }
}
