//! The kernel proper: all kernel state and the syscall dispatcher.
//!
//! The aarch64 layer saves a thread's registers into its [`Tcb::ctx`], calls one of
//! the `handle_*` entry points, then asks [`Kernel::schedule`] which thread to
//! resume. Every entry point leaves the kernel consistent whatever the thread passed
//! in. The work is split by concern:
//! - [`boot`]: building every thread from the boot-information blob;
//! - [`schedule`]: ready queues, budgets, refills and the timer deadline;
//! - [`ipc`]: notifications, PPCs (call, receive, reply), device IRQs;
//! - [`control`]: child TCB control, IRQ acknowledgement, debug output, time;
//! - [`vcpu`]: vCPU control syscalls, virtual interrupts and guest exits;
//! - [`fault`]: faults, and releasing the peers of a thread that faulted or stopped.

mod boot;
mod control;
mod fault;
mod ipc;
mod schedule;
mod vcpu;

use vcpos_abi::counters::{GuestExit, KernelCounters};
use vcpos_abi::syscall::{Error, Sysno};

use crate::cspace::{Cap, ThreadIndex};
use crate::platform::Platform;
use crate::sched::ReadyQueues;
use crate::thread::Tcb;

pub use boot::BootError;
pub use schedule::us_to_ticks;

/// Most threads (PDs and vCPUs) the kernel holds.
pub const MAX_THREADS: usize = 64;
/// Most IRQs routed to PDs.
pub const MAX_IRQ_ROUTES: usize = 128;

/// An IRQ routed to a PD's notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IrqRoute {
    irq: u32,
    pd: ThreadIndex,
    badge: u64,
}

/// All kernel state.
pub struct Kernel {
    tcbs: [Tcb; MAX_THREADS],
    num_threads: usize,
    ready: ReadyQueues,
    current: Option<ThreadIndex>,
    irqs: [Option<IrqRoute>; MAX_IRQ_ROUTES],
    /// Counter value when the current thread was last charged.
    charged_at: u64,
    /// Earliest pending budget refill, if any thread is throttled.
    next_refill: Option<u64>,
    /// The timer deadline last programmed (`None`: disarmed).
    armed: Option<u64>,
    /// Kernel-wide event counters.
    counters: KernelCounters,
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel::new()
    }
}

/// The capability and arguments of one syscall, as the caller passed them.
#[derive(Clone, Copy, Debug)]
struct Args {
    /// The capability `x0` named.
    cap: Cap,
    /// `x1`.
    a1: u64,
    /// `x2`.
    a2: u64,
}

impl Kernel {
    /// Empty kernel state (all-zero, so it can live in `.bss`).
    pub const fn new() -> Kernel {
        const T: Tcb = Tcb::new();
        Kernel {
            tcbs: [T; MAX_THREADS],
            num_threads: 0,
            ready: ReadyQueues::new(),
            current: None,
            irqs: [None; MAX_IRQ_ROUTES],
            charged_at: 0,
            next_refill: None,
            armed: None,
            counters: KernelCounters {
                timer_interrupts: 0,
                timer_arms: 0,
            },
        }
    }

    /// Number of threads (PDs and vCPUs).
    pub fn num_threads(&self) -> usize {
        self.num_threads
    }

    /// TCB `i` (read-only view for the arch layer and tests).
    pub fn tcb(&self, i: ThreadIndex) -> &Tcb {
        &self.tcbs[i as usize]
    }

    /// The thread that runs when the kernel returns.
    pub fn current(&self) -> Option<ThreadIndex> {
        self.current
    }

    /// The current thread's TCB, mutable (the arch layer saves and restores its
    /// registers there).
    pub fn current_tcb_mut(&mut self) -> Option<&mut Tcb> {
        self.current.map(|c| &mut self.tcbs[c as usize])
    }

    /// Sets the syscall results `x0..x2` of thread `t`.
    fn set_ret(&mut self, t: ThreadIndex, x0: u64, x1: u64, x2: u64) {
        let ctx = &mut self.tcbs[t as usize].ctx;
        ctx.x[0] = x0;
        ctx.x[1] = x1;
        ctx.x[2] = x2;
    }

    /// Handles `svc #0` from the current thread (registers already saved): looks up
    /// the capability, runs the syscall, and on error puts the code in `x0`.
    pub fn handle_syscall(&mut self, plat: &mut impl Platform) {
        let Some(t) = self.current else { return };
        self.tcbs[t as usize].counters.kernel_entries += 1;
        let ctx = self.tcbs[t as usize].ctx;
        let result = match Sysno::from_u64(ctx.x[8]) {
            None => Err(Error::InvalidSyscall),
            Some(nr) => self.tcbs[t as usize].cspace.lookup(ctx.x[0]).and_then(|cap| {
                self.dispatch(
                    plat,
                    t,
                    nr,
                    Args {
                        cap,
                        a1: ctx.x[1],
                        a2: ctx.x[2],
                    },
                )
            }),
        };
        if let Err(e) = result {
            self.set_ret(t, e as u64, 0, 0);
        }
    }

    /// Maps a syscall number to its handler. `Ok` means the handler set its own
    /// results (or blocked the caller); each handler checks its capability's kind.
    fn dispatch(&mut self, plat: &mut impl Platform, t: ThreadIndex, nr: Sysno, args: Args) -> Result<(), Error> {
        match nr {
            Sysno::DebugPut => self.sys_debug_put(plat, t, args),
            Sysno::Signal => self.sys_signal(t, args),
            Sysno::Call => self.sys_call(plat, t, args),
            Sysno::Recv => self.sys_recv(plat, t, args),
            Sysno::ReplyRecv => self.sys_reply_recv(plat, t, args),
            Sysno::IrqAck => self.sys_irq_ack(plat, t, args),
            Sysno::TcbRestart => self.sys_tcb_restart(t, args),
            Sysno::TcbStop => self.sys_tcb_stop(t, args),
            Sysno::TcbResume => self.sys_tcb_resume(t, args),
            Sysno::TimeNow => self.sys_time_now(plat, t, args),
            Sysno::VcpuRestart => self.sys_vcpu_restart(t, args),
            Sysno::VcpuStop => self.sys_vcpu_stop(t, args),
            Sysno::VcpuReadReg => self.sys_vcpu_read_reg(t, args),
            Sysno::VcpuWriteReg => self.sys_vcpu_write_reg(t, args),
            Sysno::VcpuInjectIrq => self.sys_vcpu_inject_irq(t, args),
            Sysno::ThreadCounters => self.sys_thread_counters(plat, t, args),
            Sysno::CountCopied => self.sys_count_copied(t, args),
        }
    }

    /// The kernel was entered by an interrupt while the current thread ran (counted
    /// as its kernel entry, and for a vCPU as a guest exit).
    pub fn note_interrupt_entry(&mut self) {
        if let Some(c) = self.current {
            let t = &mut self.tcbs[c as usize];
            t.counters.kernel_entries += 1;
            if t.kind == crate::thread::ThreadKind::Vcpu {
                t.counters.guest_exits[GuestExit::Interrupt as usize] += 1;
            }
        }
    }

    /// The kernel's timer fired (and the arch layer disarmed it).
    pub fn timer_fired(&mut self) {
        self.counters.timer_interrupts += 1;
        self.armed = None;
    }

    /// Kernel-wide counters.
    pub fn kernel_counters(&self) -> KernelCounters {
        self.counters
    }
}
