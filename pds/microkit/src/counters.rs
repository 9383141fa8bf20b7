//! The kernel's event counters (vcpos addition): kernel entries, context switches,
//! notifications, PPCs, faults, budget exhaustions, time run and guest exits of a
//! thread, plus the kernel-wide timer counts. The layout is
//! `vcpos_abi::counters::Counters`.
//!
//! ```
//! # fn main() -> Result<(), vcpos_microkit::KernelError> {
//! use vcpos_microkit::counters;
//! let before = counters::own()?;
//! // ... the work to measure ...
//! let switches = counters::own()?.thread.switches_from - before.thread.switches_from;
//! # assert_eq!(switches, 0);
//! # Ok(())
//! # }
//! ```

use vcpos_abi::cap::slot;
use vcpos_abi::syscall::Error;

pub use vcpos_abi::counters::{Counters, GuestExit, KernelCounters, ThreadCounters};

use crate::{message, sys, Child, Vcpu};

fn read(cptr: u64, index: u64) -> Result<Counters, Error> {
    sys::thread_counters(cptr, index)?;
    let words: [u64; Counters::WORDS] = core::array::from_fn(message::get_mr);
    Counters::from_words(&words).ok_or(Error::InvalidArgument)
}

/// This PD's own counters (through its input capability).
pub fn own() -> Result<Counters, Error> {
    read(slot::INPUT, 0)
}

/// Adds `bytes` to this PD's `bytes_copied` counter: I/O data it copied itself, which
/// the kernel cannot see (report once per batch: it is a syscall).
pub fn count_copied(bytes: u64) -> Result<(), Error> {
    if bytes == 0 {
        return Ok(());
    }
    sys::count_copied(bytes)
}

/// A child PD's counters (through its TCB capability).
pub fn child(child: Child) -> Result<Counters, Error> {
    read(child.tcb(), 0)
}

/// A vCPU's counters (through its vCPU capability; this PD is its VMM).
pub fn vcpu(vcpu: Vcpu) -> Result<Counters, Error> {
    read(vcpu.cap(), 0)
}

/// Any thread's counters by its index in the kernel (the order of the builder's
/// report), through the debug capability, which only Microkit's `debug` and
/// `benchmark` configurations grant.
pub fn thread(index: usize) -> Result<Counters, Error> {
    read(slot::DEBUG_CONSOLE, index as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake;
    use vcpos_abi::syscall::Sysno;

    /// Makes the fake kernel's next syscall succeed with `c` in the message registers.
    fn script(c: &Counters, thread: u64) {
        for (i, w) in c.to_words().iter().enumerate() {
            crate::message::set_mr(i, *w);
        }
        fake::push_result(0, thread, vcpos_abi::msg::MsgInfo::new(0, Counters::WORDS).0);
    }

    #[test]
    fn each_reader_names_its_capability_and_decodes_the_reply() {
        fake::reset();
        let mut c = Counters::default();
        c.thread.ppc_calls = 41;
        c.thread.guest_exits[GuestExit::DataAbort as usize] = 5;
        c.kernel.timer_arms = 3;
        script(&c, 0);
        assert_eq!(own(), Ok(c));
        script(&c, 2);
        assert_eq!(child(Child::new(2)).unwrap().thread.ppc_calls, 41);
        script(&c, 3);
        assert_eq!(
            vcpu(Vcpu::new(0)).unwrap().thread.guest_exits[GuestExit::DataAbort as usize],
            5
        );
        script(&c, 7);
        assert_eq!(thread(7).unwrap().kernel.timer_arms, 3);
        fake::push_result(Error::InvalidCapability as u64, 0, 0);
        assert_eq!(thread(9), Err(Error::InvalidCapability));
        let log = fake::take_log();
        let calls: std::vec::Vec<_> = log.iter().map(|r| (r.sysno, r.cptr, r.arg1)).collect();
        let n = Sysno::ThreadCounters as u64;
        assert_eq!(
            calls,
            [
                (n, slot::INPUT, 0),
                (n, slot::BASE_TCB + 2, 0),
                (n, slot::BASE_VCPU, 0),
                (n, slot::DEBUG_CONSOLE, 7),
                (n, slot::DEBUG_CONSOLE, 9)
            ]
        );
    }
}
