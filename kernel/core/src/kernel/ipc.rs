//! IPC: notifications (Signal, device IRQs) and PPCs (Call, Recv, ReplyRecv), with
//! the send queues of blocked callers and faulted children.

use core::fmt::Write;

use vcpos_abi::console::KERNEL_ERROR;
use vcpos_abi::esr::{self, DataTransfer};
use vcpos_abi::fault::{label, vm_fault, vm_fault_reply};
use vcpos_abi::msg::{MsgInfo, MAX_MRS};
use vcpos_abi::syscall::Error;

use super::{Args, Kernel};
use crate::cspace::{Cap, ThreadIndex};
use crate::platform::{Console, Platform};
use crate::thread::{PendingMessage, ThreadKind, ThreadState};

impl Kernel {
    /// `Signal`: OR the capability's badge into the receiver's notification word.
    pub(super) fn sys_signal(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Notification { pd, badge } = args.cap else {
            return Err(Error::InvalidCapability);
        };
        self.tcbs[t as usize].counters.notifications_sent += 1;
        self.signal(pd, badge);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `Call`: a PPC through an endpoint capability.
    pub(super) fn sys_call(&mut self, plat: &mut impl Platform, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Endpoint { pd, badge } = args.cap else {
            return Err(Error::InvalidCapability);
        };
        self.call(plat, t, pd, badge, MsgInfo(args.a1))
    }

    /// `Recv`: wait on the caller's input.
    pub(super) fn sys_recv(&mut self, plat: &mut impl Platform, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Input = args.cap else {
            return Err(Error::InvalidCapability);
        };
        self.recv(plat, t);
        Ok(())
    }

    /// `ReplyRecv`: reply to the caller owed one, then wait on the input.
    pub(super) fn sys_reply_recv(&mut self, plat: &mut impl Platform, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let Cap::Input = args.cap else {
            return Err(Error::InvalidCapability);
        };
        self.reply(plat, t, MsgInfo(args.a1));
        self.recv(plat, t);
        Ok(())
    }

    /// ORs `badge` into `r`'s notification word and wakes it if it waits.
    pub(super) fn signal(&mut self, r: ThreadIndex, badge: u64) {
        let tr = &mut self.tcbs[r as usize];
        tr.counters.notifications_received += 1;
        tr.notification |= badge;
        if tr.state == ThreadState::BlockedRecv {
            let bits = core::mem::take(&mut tr.notification);
            self.set_ret(r, 0, bits, 0);
            self.make_ready(r);
        }
    }

    fn call(
        &mut self,
        plat: &mut impl Platform,
        t: ThreadIndex,
        server: ThreadIndex,
        badge: u64,
        info: MsgInfo,
    ) -> Result<(), Error> {
        if info.count() > MAX_MRS {
            return Err(Error::InvalidArgument);
        }
        if server == t {
            return Err(Error::IllegalOperation);
        }
        if self.tcbs[server as usize].state.is_dead() {
            return Err(Error::PeerDead);
        }
        let tt = &mut self.tcbs[t as usize];
        tt.counters.ppc_calls += 1;
        tt.pending = PendingMessage {
            badge,
            info: info.0,
            fault_mrs: [0; 5],
        };
        tt.state = ThreadState::BlockedSend { server };
        if self.tcbs[server as usize].state == ThreadState::BlockedRecv {
            self.deliver(plat, server, t);
        } else {
            self.enqueue_sender(server, t);
        }
        Ok(())
    }

    /// Waits on `t`'s input: pending notifications first, then queued senders. A PPC
    /// caller still owed a reply gets [`Error::PeerDead`] at once (the call did not
    /// complete) rather than waiting for a reply that can no longer come.
    fn recv(&mut self, plat: &mut impl Platform, t: ThreadIndex) {
        self.release_caller(t);
        let bits = core::mem::take(&mut self.tcbs[t as usize].notification);
        if bits != 0 {
            self.set_ret(t, 0, bits, 0);
            self.tcbs[t as usize].state = ThreadState::Ready;
        } else if let Some(s) = self.dequeue_sender(t) {
            self.deliver(plat, t, s);
        } else {
            self.tcbs[t as usize].state = ThreadState::BlockedRecv;
        }
    }

    /// Delivers sender `s`'s pending message (PPC or fault) to receiver `r`.
    pub(super) fn deliver(&mut self, plat: &mut impl Platform, r: ThreadIndex, s: ThreadIndex) {
        let msg = self.tcbs[s as usize].pending;
        let (from, to) = (self.tcbs[s as usize].ipc_buffer, self.tcbs[r as usize].ipc_buffer);
        match self.tcbs[s as usize].state {
            ThreadState::BlockedFault => {
                for (i, w) in msg.fault_mrs.iter().enumerate() {
                    plat.write_word(to + 8 * i as u64, *w);
                }
                self.tcbs[s as usize].fault_undelivered = false;
            }
            _ => {
                for i in 0..MsgInfo(msg.info).count().min(MAX_MRS) as u64 {
                    let w = plat.read_word(from + 8 * i);
                    plat.write_word(to + 8 * i, w);
                }
                self.tcbs[s as usize].state = ThreadState::BlockedCall { server: r };
                self.tcbs[r as usize].counters.ppc_served += 1;
            }
        }
        self.set_ret(r, 0, msg.badge, msg.info);
        self.tcbs[r as usize].reply_to = Some(s);
        self.make_ready(r);
    }

    /// Sends `t`'s reply (if it owes one) to the PPC caller, or resumes the faulted
    /// child it answers.
    fn reply(&mut self, plat: &mut impl Platform, t: ThreadIndex, info: MsgInfo) {
        let Some(c) = self.tcbs[t as usize].reply_to.take() else {
            return;
        };
        match self.tcbs[c as usize].state {
            ThreadState::BlockedCall { server } if server == t => {
                let count = info.count().min(MAX_MRS);
                let (from, to) = (self.tcbs[t as usize].ipc_buffer, self.tcbs[c as usize].ipc_buffer);
                for i in 0..count as u64 {
                    let w = plat.read_word(from + 8 * i);
                    plat.write_word(to + 8 * i, w);
                }
                self.set_ret(c, 0, 0, MsgInfo::new(info.label(), count).0);
                self.resume_from_call(c);
            }
            ThreadState::BlockedFault if self.tcbs[c as usize].parent == Some(t) => {
                if info.label() == vm_fault_reply::EMULATED {
                    self.complete_emulated_access(plat, t, c, info);
                }
                self.resume_from_call(c)
            }
            _ => {}
        }
    }

    /// A VMM `t` replied [`vm_fault_reply::EMULATED`] to vCPU `c`'s fault: if that was
    /// a data abort (the message still pending on `c`), `c`'s PC becomes the address
    /// after the faulting instruction, and a load's transfer register gets message
    /// register 0 (0 if the reply carries no message register).
    fn complete_emulated_access(&mut self, plat: &mut impl Platform, t: ThreadIndex, c: ThreadIndex, info: MsgInfo) {
        let msg = self.tcbs[c as usize].pending;
        let esr = msg.fault_mrs[vm_fault::FSR];
        if self.tcbs[c as usize].kind != ThreadKind::Vcpu
            || MsgInfo(msg.info).label() != label::VM_FAULT
            || msg.fault_mrs[vm_fault::PREFETCH_FAULT] != 0
        {
            return;
        }
        if let Some(DataTransfer {
            write: false,
            reg: Some(r),
        }) = esr::data_transfer(esr)
        {
            let value = if info.count() > 0 {
                plat.read_word(self.tcbs[t as usize].ipc_buffer)
            } else {
                0
            };
            self.tcbs[c as usize].ctx.x[usize::from(r)] = value;
        }
        self.tcbs[c as usize].ctx.pc = msg.fault_mrs[vm_fault::IP].wrapping_add(esr::instruction_length(esr));
    }

    /// A device IRQ fired: mask it until the PD acknowledges and signal the PD.
    pub fn handle_irq(&mut self, plat: &mut impl Platform, irq: u32) {
        plat.irq_mask(irq);
        match self.irqs.iter().flatten().find(|r| r.irq == irq).copied() {
            Some(r) => self.signal(r.pd, r.badge),
            None => {
                let _ = writeln!(Console(plat), "{KERNEL_ERROR} IRQ {irq} has no handler; masked");
            }
        }
    }

    // ---------------------------------------------------------------- send queues

    /// Appends `s` to `server`'s queue of waiting senders.
    pub(super) fn enqueue_sender(&mut self, server: ThreadIndex, s: ThreadIndex) {
        self.tcbs[s as usize].next = None;
        match self.tcbs[server as usize].send_head {
            None => self.tcbs[server as usize].send_head = Some(s),
            Some(mut last) => {
                while let Some(n) = self.tcbs[last as usize].next {
                    last = n;
                }
                self.tcbs[last as usize].next = Some(s);
            }
        }
    }

    /// Takes the first waiting sender off `server`'s queue.
    pub(super) fn dequeue_sender(&mut self, server: ThreadIndex) -> Option<ThreadIndex> {
        let s = self.tcbs[server as usize].send_head?;
        self.tcbs[server as usize].send_head = self.tcbs[s as usize].next.take();
        Some(s)
    }

    /// Takes `s` off `server`'s queue, wherever it is.
    pub(super) fn remove_sender(&mut self, server: ThreadIndex, s: ThreadIndex) {
        let mut prev: Option<ThreadIndex> = None;
        let mut cur = self.tcbs[server as usize].send_head;
        while let Some(c) = cur {
            let next = self.tcbs[c as usize].next;
            if c == s {
                match prev {
                    Some(p) => self.tcbs[p as usize].next = next,
                    None => self.tcbs[server as usize].send_head = next,
                }
                self.tcbs[c as usize].next = None;
                return;
            }
            prev = cur;
            cur = next;
        }
    }
}
