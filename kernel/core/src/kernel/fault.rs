//! Faults: reporting, delivering fault messages to parents, and releasing every
//! thread that waits on one that faulted, stopped or restarted.

use core::fmt::Write;

use vcpos_abi::cap::BADGE_FAULT;
use vcpos_abi::console::KERNEL_FAULT;
use vcpos_abi::msg::MsgInfo;
use vcpos_abi::syscall::Error;

use super::{Kernel, MAX_THREADS};
use crate::cspace::ThreadIndex;
use crate::fault::{self, FaultInfo};
use crate::platform::Platform;
use crate::thread::{PendingMessage, ThreadState};

impl Kernel {
    /// Fails everything that waits on `t`, which faulted, stopped or is being
    /// restarted: its PPC caller and queued PPC senders get [`Error::PeerDead`].
    /// Faults of its children stay queued, and faults it received but did not
    /// answer go back on its queue: a resumed or restarted `t` gets them again with
    /// its next `Recv` (if `t` is dead for good, `stop_orphaned_children` stops
    /// those children instead).
    pub(super) fn fail_peers(&mut self, t: ThreadIndex) {
        self.release_caller(t);
        let mut kept = [0 as ThreadIndex; MAX_THREADS];
        let mut n = 0;
        while let Some(s) = self.dequeue_sender(t) {
            if matches!(self.tcbs[s as usize].state, ThreadState::BlockedSend { .. }) {
                self.set_ret(s, Error::PeerDead as u64, 0, 0);
                self.make_ready(s);
            } else {
                kept[n] = s;
                n += 1;
            }
        }
        for i in 0..self.num_threads {
            let c = &self.tcbs[i];
            if c.parent == Some(t) && c.state == ThreadState::BlockedFault && !c.fault_undelivered {
                self.tcbs[i].fault_undelivered = true;
                self.enqueue_sender(t, i as ThreadIndex);
            }
        }
        for &s in &kept[..n] {
            self.enqueue_sender(t, s);
        }
    }

    /// If `t` owes a reply to a PPC caller, fails that call with
    /// [`Error::PeerDead`] (the caller runs again at once) and forgets it. A faulted
    /// child `t` owes a reply to is left alone: `t` keeps the authority to restart it.
    pub(super) fn release_caller(&mut self, t: ThreadIndex) {
        if let Some(c) = self.tcbs[t as usize].reply_to.take() {
            if self.tcbs[c as usize].state == (ThreadState::BlockedCall { server: t }) {
                self.set_ret(c, Error::PeerDead as u64, 0, 0);
                self.make_ready(c);
            }
        }
    }

    /// The parent that handles `t`'s faults: its parent, unless that parent is dead
    /// for good ([`ThreadState::Faulted`]).
    fn fault_handler(&self, t: ThreadIndex) -> Option<ThreadIndex> {
        self.tcbs[t as usize]
            .parent
            .filter(|&p| self.tcbs[p as usize].state != ThreadState::Faulted)
    }

    /// `t` is dead for good: every descendant blocked in a fault that `t` (or a
    /// descendant stopped here) would have had to answer is stopped for good too,
    /// and reported, instead of waiting for ever.
    fn stop_orphaned_children(&mut self, plat: &mut impl Platform, t: ThreadIndex) {
        let mut work = [0 as ThreadIndex; MAX_THREADS];
        let (mut head, mut tail) = (0, 1);
        work[0] = t;
        while head < tail {
            let dead = work[head];
            head += 1;
            for i in 0..self.num_threads {
                let c = &self.tcbs[i];
                if c.parent != Some(dead) || c.state != ThreadState::BlockedFault {
                    continue;
                }
                if c.fault_undelivered {
                    self.remove_sender(dead, i as ThreadIndex);
                }
                let c = &mut self.tcbs[i];
                c.fault_undelivered = false;
                c.state = ThreadState::Faulted;
                let mut line = Line::new();
                let _ = writeln!(
                    line,
                    "{KERNEL_FAULT} PD '{}': its fault was never answered: parent '{}' is dead; PD stopped",
                    self.tcbs[i].name(),
                    self.tcbs[dead as usize].name()
                );
                plat.console_write(line.as_bytes());
                if tail < work.len() {
                    work[tail] = i as ThreadIndex;
                    tail += 1;
                }
            }
        }
    }

    /// Takes `x` out of every queue and relationship, ready for stop or restart. Its
    /// budget and refill time are kept.
    pub(super) fn detach(&mut self, x: ThreadIndex) {
        match self.tcbs[x as usize].state {
            ThreadState::Ready if Some(x) != self.current => {
                self.ready.remove(&mut self.tcbs, x);
            }
            ThreadState::BlockedSend { server } => self.remove_sender(server, x),
            ThreadState::BlockedCall { server } => {
                if self.tcbs[server as usize].reply_to == Some(x) {
                    self.tcbs[server as usize].reply_to = None;
                }
            }
            ThreadState::BlockedFault => {
                if let Some(p) = self.tcbs[x as usize].parent {
                    if self.tcbs[x as usize].fault_undelivered {
                        self.remove_sender(p, x);
                    } else if self.tcbs[p as usize].reply_to == Some(x) {
                        self.tcbs[p as usize].reply_to = None;
                    }
                }
            }
            _ => {}
        }
        self.tcbs[x as usize].fault_undelivered = false;
        self.fail_peers(x);
        // The budget is left as it is: a restart, stop or resume must not hand a
        // throttled (or partly spent) thread its budget back before its refill time,
        // or a parent could keep a high-priority child running far past
        // budget/period.
    }

    /// The current thread took a synchronous exception that is not a syscall.
    /// A child's fault goes to its parent; a root PD's fault is reported on the
    /// console and the PD is stopped. Nothing else is affected.
    pub fn handle_fault(&mut self, plat: &mut impl Platform, esr: u64, far: u64) {
        let Some(t) = self.current else { return };
        self.tcbs[t as usize].counters.kernel_entries += 1;
        self.tcbs[t as usize].counters.faults += 1;
        let ctx = self.tcbs[t as usize].ctx;
        let f = fault::decode(esr, far, ctx.pc, ctx.sp, ctx.spsr);
        self.fail_peers(t);
        self.report_fault(plat, t, &f);
        self.send_fault(plat, t, f.label, f.mrs, f.len);
    }

    /// An SError (asynchronous abort) belongs to thread `t`, the thread that ran at the
    /// last kernel exit, which need not be the current thread any more: `t` is taken
    /// off whatever it was queued on and handled like a faulting thread (reported with
    /// its name; stopped, or its parent gets the fault). A dead `t` is only reported.
    pub fn handle_serror(&mut self, plat: &mut impl Platform, t: ThreadIndex, esr: u64) {
        let ctx = self.tcbs[t as usize].ctx;
        let f = fault::decode(esr, 0, ctx.pc, ctx.sp, ctx.spsr);
        if self.tcbs[t as usize].state.is_dead() {
            self.report_fault(plat, t, &f);
            return;
        }
        self.detach(t);
        self.report_fault(plat, t, &f);
        self.send_fault(plat, t, f.label, f.mrs, f.len);
    }

    /// Queues fault message (`label`, `mrs[..len]`) from thread `t` for its parent and
    /// blocks `t` until the parent answers; a thread without a live parent is stopped
    /// for good, and so are its children blocked in faults it would have answered.
    pub(super) fn send_fault(
        &mut self,
        plat: &mut impl Platform,
        t: ThreadIndex,
        label: u64,
        mrs: [u64; 5],
        len: usize,
    ) {
        match self.fault_handler(t) {
            Some(p) => {
                let tt = &mut self.tcbs[t as usize];
                tt.pending = PendingMessage {
                    badge: BADGE_FAULT | tt.child_id as u64,
                    info: MsgInfo::new(label, len).0,
                    fault_mrs: mrs,
                };
                tt.state = ThreadState::BlockedFault;
                tt.fault_undelivered = true;
                if self.tcbs[p as usize].state == ThreadState::BlockedRecv {
                    self.deliver(plat, p, t);
                } else {
                    self.enqueue_sender(p, t);
                }
            }
            None => {
                self.tcbs[t as usize].state = ThreadState::Faulted;
                self.stop_orphaned_children(plat, t);
            }
        }
    }

    fn report_fault(&mut self, plat: &mut impl Platform, t: ThreadIndex, f: &FaultInfo) {
        let mut line = Line::new();
        let _ = write!(line, "{KERNEL_FAULT} PD '{}': ", self.tcbs[t as usize].name());
        let _ = fault::describe(f, &mut line);
        let _ = write!(line, ", address {:#x}, pc {:#x}", f.addr, f.pc);
        match (self.fault_handler(t), self.tcbs[t as usize].parent) {
            (Some(p), _) => {
                let _ = writeln!(line, "; sent to parent '{}'", self.tcbs[p as usize].name());
            }
            (None, Some(p)) => {
                let _ = writeln!(line, "; parent '{}' is dead; PD stopped", self.tcbs[p as usize].name());
            }
            (None, None) => {
                let _ = writeln!(line, "; PD stopped");
            }
        }
        plat.console_write(line.as_bytes());
    }
}

/// A fixed-size line buffer, so a fault report reaches the console in one write:
/// up to 256 bytes of text; the rest is cut.
struct Line {
    buf: [u8; 256],
    len: usize,
}

impl Line {
    /// Empty line.
    fn new() -> Line {
        Line { buf: [0; 256], len: 0 }
    }

    /// The text so far.
    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
