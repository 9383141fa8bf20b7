//! Raw vcpos syscalls: the only place the runtime enters the kernel.
//!
//! The convention is `vcpos_abi::syscall`'s: `svc #0` with `x8` = syscall number,
//! `x0` = capability slot, `x1`/`x2` = arguments; the kernel returns an error code in
//! `x0`, a badge in `x1` and a message info in `x2`, and preserves everything else.
//!
//! Every syscall is memory-safe for the calling PD: the kernel only ever writes the
//! PD's IPC buffer, which Rust code reaches exclusively through volatile accesses in
//! the runtime's `ipc` module (no references into it exist), so the wrappers here are safe
//! functions. This module is also a vcpos addition to the `sel4-microkit` API: an
//! escape hatch ([`raw_syscall`]) that tests use to present the kernel with
//! deliberately bad requests.
//!
//! On the target the syscalls are `asm!`; on any other target (host unit tests) a
//! recording fake kernel stands in (see [`fake`]).
#![allow(unsafe_code)]

use vcpos_abi::msg::MsgInfo;
pub use vcpos_abi::syscall::{Error, Sysno};

/// The three registers a syscall returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawResult {
    /// Error code (`0` = success).
    pub x0: u64,
    /// Badge (Recv/ReplyRecv) or first result.
    pub x1: u64,
    /// Message info or second result.
    pub x2: u64,
}

impl RawResult {
    /// `x0` decoded as a result.
    pub fn result(self) -> Result<(), Error> {
        vcpos_abi::syscall::result_from_x0(self.x0)
    }
}

/// Performs syscall `sysno` on capability slot `cptr` with arguments `arg1`, `arg2`,
/// exactly as given: nothing is checked on this side, so it can name numbers and
/// slots that do not exist (the kernel must refuse them).
#[inline]
pub fn raw_syscall(sysno: u64, cptr: u64, arg1: u64, arg2: u64) -> RawResult {
    arch::syscall(sysno, cptr, arg1, arg2)
}

fn syscall(sysno: Sysno, cptr: u64, arg1: u64, arg2: u64) -> Result<RawResult, Error> {
    let r = raw_syscall(sysno as u64, cptr, arg1, arg2);
    r.result().map(|()| r)
}

/// Prints the first `len` bytes of the IPC buffer's debug area.
pub fn debug_put(cptr: u64, len: usize) -> Result<(), Error> {
    syscall(Sysno::DebugPut, cptr, len as u64, 0).map(drop)
}

/// Signals the notification in `cptr`.
pub fn signal(cptr: u64) -> Result<(), Error> {
    syscall(Sysno::Signal, cptr, 0, 0).map(drop)
}

/// Calls the endpoint in `cptr` (a PPC) and returns the reply's message info.
pub fn call(cptr: u64, info: MsgInfo) -> Result<MsgInfo, Error> {
    syscall(Sysno::Call, cptr, info.0, 0).map(|r| MsgInfo(r.x2))
}

/// Waits on the input in `cptr`; returns the badge and message info.
pub fn recv(cptr: u64) -> Result<(u64, MsgInfo), Error> {
    syscall(Sysno::Recv, cptr, 0, 0).map(|r| (r.x1, MsgInfo(r.x2)))
}

/// Replies with `info` to the pending PPC or fault, then waits as [`recv`].
pub fn reply_recv(cptr: u64, info: MsgInfo) -> Result<(u64, MsgInfo), Error> {
    syscall(Sysno::ReplyRecv, cptr, info.0, 0).map(|r| (r.x1, MsgInfo(r.x2)))
}

/// Acknowledges the IRQ whose handler is in `cptr`.
pub fn irq_ack(cptr: u64) -> Result<(), Error> {
    syscall(Sysno::IrqAck, cptr, 0, 0).map(drop)
}

/// Sets the PC of the child whose TCB is in `cptr` and makes it runnable.
pub fn tcb_restart(cptr: u64, pc: u64) -> Result<(), Error> {
    syscall(Sysno::TcbRestart, cptr, pc, 0).map(drop)
}

/// Stops the child whose TCB is in `cptr`.
pub fn tcb_stop(cptr: u64) -> Result<(), Error> {
    syscall(Sysno::TcbStop, cptr, 0, 0).map(drop)
}

/// Resumes the stopped child whose TCB is in `cptr`.
pub fn tcb_resume(cptr: u64) -> Result<(), Error> {
    syscall(Sysno::TcbResume, cptr, 0, 0).map(drop)
}

/// Asks the kernel for the counter frequency (Hz) and current count.
pub fn time_now() -> Result<(u64, u64), Error> {
    syscall(Sysno::TimeNow, vcpos_abi::cap::slot::INPUT, 0, 0).map(|r| (r.x1, r.x2))
}

/// Reads the event counters of the thread `cptr` names (a child TCB or vCPU, the
/// input for this PD itself, or the debug console with the thread's index in
/// `index`) into the message registers; returns the thread's index.
pub fn thread_counters(cptr: u64, index: u64) -> Result<u64, Error> {
    syscall(Sysno::ThreadCounters, cptr, index, 0).map(|r| r.x1)
}

/// Adds `bytes` to this PD's `bytes_copied` counter (`CountCopied`).
pub fn count_copied(bytes: u64) -> Result<(), Error> {
    syscall(Sysno::CountCopied, vcpos_abi::cap::slot::INPUT, bytes, 0).map(drop)
}

/// Reads the virtual counter (`CNTVCT_EL0`) directly. The kernel must allow EL0
/// counter access; [`time_now`] works without it.
#[inline]
pub fn counter() -> u64 {
    arch::counter()
}

/// The counter frequency in Hz (`CNTFRQ_EL0`).
#[inline]
pub fn counter_frequency() -> u64 {
    arch::counter_frequency()
}

/// Stops this PD with a fault the kernel reports (an undefined instruction).
pub fn abort() -> ! {
    arch::abort()
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch {
    use super::RawResult;

    #[inline(always)]
    pub(super) fn syscall(sysno: u64, cptr: u64, arg1: u64, arg2: u64) -> RawResult {
        let (x0, x1, x2);
        // SAFETY: `svc #0` enters the vcpos kernel, which by the syscall ABI clobbers
        // only x0..x2 (declared as outputs) and preserves every other register and the
        // stack. The only memory it may write is this PD's IPC buffer, which Rust code
        // never holds references into (crate::ipc uses volatile accesses only); the
        // asm is not `nomem`, so the compiler assumes memory may change across it.
        unsafe {
            core::arch::asm!(
                "svc #0",
                in("x8") sysno,
                inlateout("x0") cptr => x0,
                inlateout("x1") arg1 => x1,
                inlateout("x2") arg2 => x2,
                options(nostack),
            );
        }
        RawResult { x0, x1, x2 }
    }

    #[inline(always)]
    pub(super) fn counter() -> u64 {
        let v: u64;
        // SAFETY: reads a system register with no side effects; `isb` orders it after
        // earlier instructions. Traps (reported by the kernel) if EL0 access is off.
        unsafe {
            core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) v, options(nomem, nostack));
        }
        v
    }

    #[inline(always)]
    pub(super) fn counter_frequency() -> u64 {
        let v: u64;
        // SAFETY: reads a read-only system register with no side effects.
        unsafe {
            core::arch::asm!("mrs {}, cntfrq_el0", out(reg) v, options(nomem, nostack));
        }
        v
    }

    pub(super) fn abort() -> ! {
        loop {
            // SAFETY: `udf` raises an undefined-instruction exception: the kernel stops
            // this PD (or tells its parent). It touches no memory; if we are ever
            // resumed we execute it again.
            unsafe {
                core::arch::asm!("udf #0", options(nomem, nostack));
            }
        }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod arch {
    use super::RawResult;

    pub(super) fn syscall(sysno: u64, cptr: u64, arg1: u64, arg2: u64) -> RawResult {
        super::fake::syscall(sysno, cptr, arg1, arg2)
    }

    pub(super) fn counter() -> u64 {
        super::fake::with(|k| {
            k.counter += 1;
            k.counter
        })
    }

    pub(super) fn counter_frequency() -> u64 {
        62_500_000
    }

    pub(super) fn abort() -> ! {
        panic!("vcpos-microkit: abort")
    }
}

/// A fake kernel for host builds: it records every syscall, returns scripted results,
/// and captures debug output. State is per thread, so tests can run in parallel.
#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
pub mod fake {
    use super::{RawResult, Sysno};
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::string::String;
    use std::vec::Vec;

    /// One recorded syscall.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Record {
        /// `x8`.
        pub sysno: u64,
        /// `x0`.
        pub cptr: u64,
        /// `x1`.
        pub arg1: u64,
        /// `x2`.
        pub arg2: u64,
    }

    /// The fake kernel's state.
    #[derive(Default)]
    pub struct Kernel {
        /// Every syscall so far (except `DebugPut`, which goes to `output`).
        pub log: Vec<Record>,
        /// Results for the next syscalls other than `Recv`/`ReplyRecv`, in order; when
        /// empty a syscall succeeds with `x1 = x2 = 0`.
        pub script: VecDeque<RawResult>,
        /// Events (badge, msginfo) the next `Recv`/`ReplyRecv` calls return; when empty
        /// they fail with `IllegalOperation`.
        pub events: VecDeque<(u64, u64)>,
        /// Text printed through `DebugPut`.
        pub output: String,
        /// Result of `DebugPut` (0 = print; else the error code, text dropped).
        pub debug_put_error: u64,
        /// Value the patched `microkit_irqs` mask has on the host.
        pub irqs: u64,
        /// Value the patched `microkit_notifications` mask has on the host.
        pub notifications: u64,
        /// Value the patched `microkit_pps` mask has on the host.
        pub pps: u64,
        /// The fake counter.
        pub counter: u64,
        /// The IPC buffer page.
        pub ipc: Vec<u8>,
    }

    std::thread_local! {
        static KERNEL: RefCell<Kernel> = RefCell::new(Kernel {
            ipc: std::vec![0; 4096],
            ..Kernel::default()
        });
    }

    /// Runs `f` on this thread's fake kernel.
    pub fn with<R>(f: impl FnOnce(&mut Kernel) -> R) -> R {
        KERNEL.with(|k| f(&mut k.borrow_mut()))
    }

    /// Resets this thread's fake kernel.
    pub fn reset() {
        with(|k| {
            *k = Kernel {
                ipc: std::vec![0; 4096],
                ..Kernel::default()
            };
        });
    }

    /// Takes the syscall log.
    pub fn take_log() -> Vec<Record> {
        with(|k| core::mem::take(&mut k.log))
    }

    /// Takes the captured debug output.
    pub fn take_output() -> String {
        with(|k| core::mem::take(&mut k.output))
    }

    /// Queues a result for a coming syscall other than `Recv`/`ReplyRecv`.
    pub fn push_result(x0: u64, x1: u64, x2: u64) {
        with(|k| k.script.push_back(RawResult { x0, x1, x2 }));
    }

    /// Queues an event for a coming `Recv`/`ReplyRecv`.
    pub fn push_event(badge: u64, msginfo: u64) {
        with(|k| k.events.push_back((badge, msginfo)));
    }

    pub(super) fn syscall(sysno: u64, cptr: u64, arg1: u64, arg2: u64) -> RawResult {
        with(|k| {
            if sysno == Sysno::DebugPut as u64 {
                if k.debug_put_error == 0 {
                    let start = vcpos_abi::msg::DEBUG_AREA_OFFSET;
                    let len = (arg1 as usize).min(vcpos_abi::msg::DEBUG_AREA_SIZE);
                    k.output.push_str(&String::from_utf8_lossy(&k.ipc[start..start + len]));
                }
                return RawResult {
                    x0: k.debug_put_error,
                    x1: 0,
                    x2: 0,
                };
            }
            k.log.push(Record {
                sysno,
                cptr,
                arg1,
                arg2,
            });
            if sysno == Sysno::Recv as u64 || sysno == Sysno::ReplyRecv as u64 {
                return match k.events.pop_front() {
                    Some((badge, info)) => RawResult {
                        x0: 0,
                        x1: badge,
                        x2: info,
                    },
                    None => RawResult {
                        x0: super::Error::IllegalOperation as u64,
                        x1: 0,
                        x2: 0,
                    },
                };
            }
            k.script.pop_front().unwrap_or(RawResult { x0: 0, x1: 0, x2: 0 })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrappers_pass_registers_and_decode_errors() {
        fake::reset();
        fake::push_result(0, 0, MsgInfo::new(7, 2).0);
        assert_eq!(call(75, MsgInfo::new(3, 1)), Ok(MsgInfo::new(7, 2)));
        fake::push_result(Error::InvalidCapability as u64, 0, 0);
        assert_eq!(signal(4096), Err(Error::InvalidCapability));
        fake::push_event(1 << 3, 0);
        assert_eq!(recv(1), Ok((1 << 3, MsgInfo(0))));
        assert_eq!(recv(1), Err(Error::IllegalOperation));
        assert_eq!(tcb_restart(202, 0x20_1000), Ok(()));
        let log = fake::take_log();
        assert_eq!(
            log[0],
            fake::Record {
                sysno: Sysno::Call as u64,
                cptr: 75,
                arg1: MsgInfo::new(3, 1).0,
                arg2: 0
            }
        );
        assert_eq!(log[1].sysno, Sysno::Signal as u64);
        assert_eq!(log[1].cptr, 4096);
        assert_eq!(log[2].sysno, Sysno::Recv as u64);
        assert_eq!(
            log[4],
            fake::Record {
                sysno: Sysno::TcbRestart as u64,
                cptr: 202,
                arg1: 0x20_1000,
                arg2: 0
            }
        );
    }

    #[test]
    fn raw_syscall_passes_anything_through() {
        fake::reset();
        fake::push_result(Error::InvalidSyscall as u64, 0, 0);
        let r = raw_syscall(99, 1, 2, 3);
        assert_eq!(r.result(), Err(Error::InvalidSyscall));
        assert_eq!(
            fake::take_log(),
            [fake::Record {
                sysno: 99,
                cptr: 1,
                arg1: 2,
                arg2: 3
            }]
        );
    }
}
