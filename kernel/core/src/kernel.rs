//! The kernel proper: boot from the blob, syscalls, IPC, faults, IRQs, scheduling.
//!
//! The aarch64 layer saves a PD's registers into its [`Tcb::ctx`], calls one of the
//! `handle_*` entry points, then asks [`Kernel::schedule`] which thread to resume.
//! Every entry point leaves the kernel consistent whatever the PD passed in.

use core::fmt::Write;

use vcpos_abi::bootinfo::{BootInfo, THREAD_VCPU};
use vcpos_abi::cap::BADGE_FAULT;
use vcpos_abi::console::{KERNEL_ERROR, KERNEL_FAULT};
use vcpos_abi::fault::label;
use vcpos_abi::msg::{MsgInfo, DEBUG_AREA_OFFSET, DEBUG_AREA_SIZE, MAX_MRS};
use vcpos_abi::syscall::{Error, Sysno};
use vcpos_abi::vcpu::{reg, MAX_VIRQ, SPSR_EL1H_MASKED};

use crate::cspace::{Cap, PdIndex};
use crate::fault::{self, FaultInfo};
use crate::platform::{Console, Platform};
use crate::sched::ReadyQueues;
use crate::thread::{PendingMessage, Tcb, ThreadKind, ThreadState, SPSR_EL0};
use crate::vspace::{self, Stage, TablePool};

/// Most threads (PDs) the kernel holds.
pub const MAX_THREADS: usize = 64;
/// Most IRQs routed to PDs.
pub const MAX_IRQ_ROUTES: usize = 128;

/// An IRQ routed to a PD's notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct IrqRoute {
    irq: u32,
    pd: PdIndex,
    badge: u64,
}

/// Why boot failed (the builder should have prevented all of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootError {
    /// More PDs than [`MAX_THREADS`].
    TooManyPds,
    /// More IRQs than [`MAX_IRQ_ROUTES`].
    TooManyIrqs,
    /// A capability record is malformed.
    BadCap {
        /// PD index.
        pd: usize,
    },
    /// A map could not be made.
    Map {
        /// PD index.
        pd: usize,
        /// Why.
        error: vspace::MapError,
    },
}

/// All kernel state.
pub struct Kernel {
    tcbs: [Tcb; MAX_THREADS],
    num_threads: usize,
    ready: ReadyQueues,
    current: Option<PdIndex>,
    irqs: [Option<IrqRoute>; MAX_IRQ_ROUTES],
    /// Counter value when the current thread was last charged.
    charged_at: u64,
    /// Earliest pending budget refill, if any thread is throttled.
    next_refill: Option<u64>,
}

impl Default for Kernel {
    fn default() -> Self {
        Kernel::new()
    }
}

/// Converts microseconds to counter ticks.
pub fn us_to_ticks(us: u64, hz: u64) -> u64 {
    ((us as u128 * hz as u128) / 1_000_000) as u64
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
        }
    }

    /// Sets up every PD from the boot-information blob: capability spaces, address
    /// spaces (built in the blob's page-table pool), IRQ routes, initial registers.
    /// All PDs start ready. The caller has already zeroed the blob's zero ranges.
    pub fn boot(&mut self, info: &BootInfo<'_>, plat: &mut impl Platform) -> Result<(), BootError> {
        let n = info.num_pds();
        if n > MAX_THREADS {
            return Err(BootError::TooManyPds);
        }
        let hz = plat.counter_hz();
        let mut pool = TablePool::new(info.header.pt_pool_paddr, info.header.pt_pool_size);
        for i in 0..n {
            let d = info.pd(i);
            let stage = if d.kind == THREAD_VCPU { Stage::Two } else { Stage::One };
            let root = pool.alloc(plat).map_err(|error| BootError::Map { pd: i, error })?;
            for m in info.pd_maps(&d) {
                vspace::map(stage, root, m.vaddr, m.paddr, m.size, m.attrs, &mut pool, plat)
                    .map_err(|error| BootError::Map { pd: i, error })?;
            }
            let t = &mut self.tcbs[i];
            *t = Tcb::new();
            t.name = d.name;
            t.priority = d.priority.min(vcpos_abi::MAX_PD_PRIORITY);
            t.budget = us_to_ticks(d.budget_us.max(vcpos_abi::MIN_BUDGET_US), hz);
            t.period = us_to_ticks(d.period_us.max(d.budget_us), hz).max(t.budget);
            t.remaining = t.budget;
            t.passive = d.passive != 0;
            t.parent = (d.parent != vcpos_abi::bootinfo::NO_PARENT).then_some(d.parent);
            t.child_id = d.child_id;
            t.ipc_buffer = d.ipc_buffer_paddr;
            t.vspace_root = root;
            t.asid = i as u16 + 1;
            t.ctx.pc = d.entry;
            t.ctx.sp = d.stack_top;
            t.ctx.spsr = SPSR_EL0;
            for c in info.pd_caps(&d) {
                let cap = Cap::from_desc(&c, n).ok_or(BootError::BadCap { pd: i })?;
                if !t.cspace.insert(c.slot as usize, cap) {
                    return Err(BootError::BadCap { pd: i });
                }
            }
            if d.kind == THREAD_VCPU {
                // A vCPU waits, stopped, until its VMM restarts it (Microkit semantics).
                t.kind = ThreadKind::Vcpu;
                t.ctx.spsr = SPSR_EL1H_MASKED;
                t.state = ThreadState::Stopped;
            } else {
                t.state = ThreadState::Ready;
            }
        }
        self.num_threads = n;
        let num_irqs = info.header.num_irqs as usize;
        if num_irqs > MAX_IRQ_ROUTES {
            return Err(BootError::TooManyIrqs);
        }
        for i in 0..num_irqs {
            let r = info.irq(i);
            self.irqs[i] = Some(IrqRoute {
                irq: r.irq,
                pd: r.pd,
                badge: r.badge,
            });
            plat.irq_unmask(r.irq);
        }
        for i in 0..n {
            if self.tcbs[i].state == ThreadState::Ready {
                self.ready.push_back(&mut self.tcbs, i as PdIndex);
            }
        }
        self.charged_at = plat.now();
        Ok(())
    }

    /// Number of PDs.
    pub fn num_threads(&self) -> usize {
        self.num_threads
    }

    /// TCB `i` (read-only view for the arch layer and tests).
    pub fn tcb(&self, i: PdIndex) -> &Tcb {
        &self.tcbs[i as usize]
    }

    /// The thread that runs when the kernel returns.
    pub fn current(&self) -> Option<PdIndex> {
        self.current
    }

    /// The current thread's TCB, mutable (the arch layer saves and restores its
    /// registers there).
    pub fn current_tcb_mut(&mut self) -> Option<&mut Tcb> {
        self.current.map(|c| &mut self.tcbs[c as usize])
    }

    // ---------------------------------------------------------------- scheduling

    fn make_ready(&mut self, t: PdIndex) {
        self.tcbs[t as usize].state = ThreadState::Ready;
        if Some(t) != self.current && self.tcbs[t as usize].refill_at.is_none() {
            self.ready.push_back(&mut self.tcbs, t);
        }
    }

    /// Makes `t` ready at the *front* of its priority: a thread resumed by the reply
    /// to its PPC or fault did not give up its turn by making the call, so peers of its
    /// priority must not run first (a vCPU would otherwise wait a whole time slice
    /// behind them after every exit to its VMM).
    fn resume_from_call(&mut self, t: PdIndex) {
        self.tcbs[t as usize].state = ThreadState::Ready;
        if Some(t) != self.current && self.tcbs[t as usize].refill_at.is_none() {
            self.ready.push_front(&mut self.tcbs, t);
        }
    }

    /// Charges the time since the last charge to the current thread.
    fn account(&mut self, now: u64) {
        if let Some(c) = self.current {
            let used = now.saturating_sub(self.charged_at);
            let t = &mut self.tcbs[c as usize];
            t.remaining = t.remaining.saturating_sub(used);
        }
        self.charged_at = now;
    }

    /// Refills every throttled thread whose period has come round.
    fn refill_due(&mut self, now: u64) {
        if self.next_refill.is_none_or(|at| at > now) {
            return;
        }
        self.next_refill = None;
        for i in 0..self.num_threads {
            let t = &mut self.tcbs[i];
            match t.refill_at {
                Some(at) if at <= now => {
                    t.refill_at = None;
                    t.remaining = t.budget;
                    if t.state == ThreadState::Ready && Some(i as PdIndex) != self.current {
                        self.ready.push_back(&mut self.tcbs, i as PdIndex);
                    }
                }
                Some(at) => self.next_refill = Some(self.next_refill.map_or(at, |n| n.min(at))),
                None => {}
            }
        }
    }

    /// Picks the thread to run next: the highest-priority ready thread with budget;
    /// the current one keeps the CPU against equal priorities until its budget runs
    /// out (then round robin, or throttling until its next period when
    /// `budget < period`). Returns it, or `None` to idle.
    pub fn schedule(&mut self, now: u64) -> Option<PdIndex> {
        self.account(now);
        self.refill_due(now);
        if let Some(c) = self.current {
            let ci = c as usize;
            if self.tcbs[ci].state == ThreadState::Ready && self.tcbs[ci].refill_at.is_none() {
                if self.tcbs[ci].remaining == 0 {
                    let t = &mut self.tcbs[ci];
                    if t.period <= t.budget {
                        t.remaining = t.budget;
                        self.ready.push_back(&mut self.tcbs, c);
                    } else {
                        let at = now + (t.period - t.budget);
                        t.refill_at = Some(at);
                        self.next_refill = Some(self.next_refill.map_or(at, |n| n.min(at)));
                    }
                } else if self.ready.highest().is_some_and(|p| p > self.tcbs[ci].priority) {
                    self.ready.push_front(&mut self.tcbs, c);
                } else {
                    return Some(c);
                }
            }
        }
        self.current = self.ready.pop_highest(&mut self.tcbs);
        self.current
    }

    /// When the timer must next fire: the current thread's budget end or the
    /// earliest refill.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        let budget_end = self.current.map(|c| now + self.tcbs[c as usize].remaining.max(1));
        match (budget_end, self.next_refill) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---------------------------------------------------------------- syscalls

    fn set_ret(&mut self, t: PdIndex, x0: u64, x1: u64, x2: u64) {
        let ctx = &mut self.tcbs[t as usize].ctx;
        ctx.x[0] = x0;
        ctx.x[1] = x1;
        ctx.x[2] = x2;
    }

    /// Handles `svc #0` from the current thread (registers already saved).
    pub fn handle_syscall(&mut self, plat: &mut impl Platform) {
        let Some(t) = self.current else { return };
        let ctx = self.tcbs[t as usize].ctx;
        let (cptr, a1) = (ctx.x[0], ctx.x[1]);
        let result = match Sysno::from_u64(ctx.x[8]) {
            None => Err(Error::InvalidSyscall),
            Some(nr) => self.tcbs[t as usize]
                .cspace
                .lookup(cptr)
                .and_then(|cap| self.syscall(plat, t, nr, cap, a1)),
        };
        if let Err(e) = result {
            self.set_ret(t, e as u64, 0, 0);
        }
    }

    /// Runs one syscall. `Ok` means the syscall set its own results (or blocked).
    fn syscall(&mut self, plat: &mut impl Platform, t: PdIndex, nr: Sysno, cap: Cap, a1: u64) -> Result<(), Error> {
        match (nr, cap) {
            (Sysno::DebugPut, Cap::DebugConsole) => {
                let len = usize::try_from(a1)
                    .ok()
                    .filter(|&l| l <= DEBUG_AREA_SIZE)
                    .ok_or(Error::InvalidArgument)?;
                let base = self.tcbs[t as usize].ipc_buffer + DEBUG_AREA_OFFSET as u64;
                let mut chunk = [0u8; 64];
                for start in (0..len).step_by(chunk.len()) {
                    let n = (len - start).min(chunk.len());
                    for (i, b) in chunk[..n].iter_mut().enumerate() {
                        *b = plat.read_byte(base + (start + i) as u64);
                    }
                    plat.console_write(&chunk[..n]);
                }
                self.set_ret(t, 0, 0, 0);
            }
            (Sysno::Signal, Cap::Notification { pd, badge }) => {
                self.signal(pd, badge);
                self.set_ret(t, 0, 0, 0);
            }
            (Sysno::Call, Cap::Endpoint { pd, badge }) => self.call(plat, t, pd, badge, MsgInfo(a1))?,
            (Sysno::Recv, Cap::Input) => self.recv(plat, t),
            (Sysno::ReplyRecv, Cap::Input) => {
                self.reply(plat, t, MsgInfo(a1));
                self.recv(plat, t);
            }
            (Sysno::IrqAck, Cap::IrqHandler { irq }) => {
                plat.irq_unmask(irq);
                self.set_ret(t, 0, 0, 0);
            }
            (Sysno::TcbRestart, Cap::Tcb { pd }) => {
                self.detach(pd);
                self.tcbs[pd as usize].ctx.pc = a1;
                self.make_ready(pd);
                self.set_ret(t, 0, 0, 0);
            }
            (Sysno::TcbStop, Cap::Tcb { pd }) => {
                self.detach(pd);
                self.tcbs[pd as usize].state = ThreadState::Stopped;
                self.set_ret(t, 0, 0, 0);
            }
            (Sysno::TcbResume, Cap::Tcb { pd }) => {
                if self.tcbs[pd as usize].state != ThreadState::Stopped {
                    return Err(Error::IllegalOperation);
                }
                self.make_ready(pd);
                self.set_ret(t, 0, 0, 0);
            }
            (Sysno::TimeNow, Cap::Input) => {
                let (hz, now) = (plat.counter_hz(), plat.now());
                self.set_ret(t, 0, hz, now);
            }
            (
                Sysno::VcpuRestart | Sysno::VcpuStop | Sysno::VcpuReadReg | Sysno::VcpuWriteReg | Sysno::VcpuInjectIrq,
                Cap::Vcpu { thread },
            ) => {
                if self.tcbs[thread as usize].kind != ThreadKind::Vcpu {
                    return Err(Error::InvalidCapability);
                }
                let a2 = self.tcbs[t as usize].ctx.x[2];
                let x1 = self.vcpu_control(nr, thread, a1, a2)?;
                self.set_ret(t, 0, x1, 0);
            }
            _ => return Err(Error::InvalidCapability),
        }
        Ok(())
    }

    /// The vCPU syscalls; returns the value for `x1`.
    fn vcpu_control(&mut self, nr: Sysno, v: PdIndex, a1: u64, a2: u64) -> Result<u64, Error> {
        match nr {
            Sysno::VcpuRestart => {
                self.detach(v);
                let tv = &mut self.tcbs[v as usize];
                tv.ctx.pc = a1;
                tv.ctx.spsr = SPSR_EL1H_MASKED;
                tv.virqs = Default::default();
                tv.vcpu_reset = true;
                self.make_ready(v);
            }
            Sysno::VcpuStop => {
                self.detach(v);
                self.tcbs[v as usize].state = ThreadState::Stopped;
            }
            Sysno::VcpuReadReg => {
                let ctx = &self.tcbs[v as usize].ctx;
                return Ok(match a1 {
                    0..=30 => ctx.x[a1 as usize],
                    reg::SP_EL0 => ctx.sp,
                    reg::PC => ctx.pc,
                    reg::SPSR => ctx.spsr,
                    _ => return Err(Error::InvalidArgument),
                });
            }
            Sysno::VcpuWriteReg => {
                let ctx = &mut self.tcbs[v as usize].ctx;
                match a1 {
                    0..=30 => ctx.x[a1 as usize] = a2,
                    reg::SP_EL0 => ctx.sp = a2,
                    reg::PC => ctx.pc = a2,
                    // Only EL1h/EL1t/EL0t AArch64 states with any DAIF: the guest can
                    // never be sent to EL2 or to AArch32.
                    reg::SPSR if matches!(a2 & 0x1f, 0b00101 | 0b00100 | 0b00000) => ctx.spsr = a2,
                    _ => return Err(Error::InvalidArgument),
                }
            }
            Sysno::VcpuInjectIrq => {
                if a1 >= MAX_VIRQ {
                    return Err(Error::InvalidArgument);
                }
                self.inject_virq(v, a1 as u32);
            }
            _ => return Err(Error::InvalidCapability),
        }
        Ok(0)
    }

    /// Makes virtual interrupt `irq` pending on vCPU `v` and wakes it from WFI.
    pub fn inject_virq(&mut self, v: PdIndex, irq: u32) {
        let tv = &mut self.tcbs[v as usize];
        tv.virqs.insert(irq);
        if tv.state == ThreadState::BlockedWfi {
            self.make_ready(v);
        }
    }

    /// Takes the next virtual interrupt to put in a list register of vCPU `v`.
    pub fn take_virq(&mut self, v: PdIndex) -> Option<u32> {
        self.tcbs[v as usize].virqs.pop()
    }

    /// Returns whether vCPU `v` must have its EL1 state reset before it runs (it was
    /// restarted), clearing the request.
    pub fn take_vcpu_reset(&mut self, v: PdIndex) -> bool {
        core::mem::take(&mut self.tcbs[v as usize].vcpu_reset)
    }

    /// The current vCPU left the guest with a synchronous exception. WFI with nothing
    /// pending parks it; stage-2 aborts and HVC/SMC/system-register traps go to the
    /// VMM as fault messages. `virq_in_flight` says whether a virtual interrupt is
    /// still pending in a list register.
    pub fn handle_vcpu_exit(&mut self, plat: &mut impl Platform, esr: u64, far: u64, hpfar: u64, virq_in_flight: bool) {
        let Some(t) = self.current else { return };
        let pc = self.tcbs[t as usize].ctx.pc;
        match fault::ec::class(esr) {
            fault::ec::WFX => {
                // ESR.IL: a 32-bit instruction, else a 16-bit (T32) one.
                self.tcbs[t as usize].ctx.pc = pc + if esr & (1 << 25) != 0 { 4 } else { 2 };
                let is_wfi = esr & 1 == 0;
                if is_wfi && !virq_in_flight && self.tcbs[t as usize].virqs.is_empty() {
                    self.tcbs[t as usize].state = ThreadState::BlockedWfi;
                }
            }
            class @ (fault::ec::DABT_LOWER | fault::ec::IABT_LOWER) => {
                let ipa = ((hpfar >> 4) << 12) | (far & 0xfff);
                let mrs = [pc, ipa, (class == fault::ec::IABT_LOWER) as u64, esr, 0];
                self.send_fault(plat, t, label::VM_FAULT, mrs, 4);
            }
            _ => self.send_fault(plat, t, label::VCPU_FAULT, [esr, pc, 0, 0, 0], 2),
        }
    }

    /// ORs `badge` into `r`'s notification word and wakes it if it waits.
    fn signal(&mut self, r: PdIndex, badge: u64) {
        let tr = &mut self.tcbs[r as usize];
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
        t: PdIndex,
        server: PdIndex,
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

    /// Waits on `t`'s input: pending notifications first, then queued senders.
    fn recv(&mut self, plat: &mut impl Platform, t: PdIndex) {
        self.tcbs[t as usize].reply_to = None;
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
    fn deliver(&mut self, plat: &mut impl Platform, r: PdIndex, s: PdIndex) {
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
            }
        }
        self.set_ret(r, 0, msg.badge, msg.info);
        self.tcbs[r as usize].reply_to = Some(s);
        self.make_ready(r);
    }

    /// Sends `t`'s reply (if it owes one) to the PPC caller, or resumes the faulted
    /// child it answers.
    fn reply(&mut self, plat: &mut impl Platform, t: PdIndex, info: MsgInfo) {
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
            ThreadState::BlockedFault if self.tcbs[c as usize].parent == Some(t) => self.resume_from_call(c),
            _ => {}
        }
    }

    // ---------------------------------------------------------------- send queues

    fn enqueue_sender(&mut self, server: PdIndex, s: PdIndex) {
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

    fn dequeue_sender(&mut self, server: PdIndex) -> Option<PdIndex> {
        let s = self.tcbs[server as usize].send_head?;
        self.tcbs[server as usize].send_head = self.tcbs[s as usize].next.take();
        Some(s)
    }

    fn remove_sender(&mut self, server: PdIndex, s: PdIndex) {
        let mut prev: Option<PdIndex> = None;
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

    // ---------------------------------------------------------------- faults and control

    /// Fails everything that waits on `t`: its PPC caller and queued PPC senders get
    /// [`Error::PeerDead`]; queued faulted children stay queued.
    fn fail_peers(&mut self, t: PdIndex) {
        if let Some(c) = self.tcbs[t as usize].reply_to.take() {
            if self.tcbs[c as usize].state == (ThreadState::BlockedCall { server: t }) {
                self.set_ret(c, Error::PeerDead as u64, 0, 0);
                self.make_ready(c);
            }
        }
        // PPC callers are released; faulted children's messages stay queued for
        // the parent's next Recv (after it is resumed or restarted).
        let mut kept = [0 as PdIndex; MAX_THREADS];
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
        for &s in &kept[..n] {
            self.enqueue_sender(t, s);
        }
    }

    /// Takes `x` out of every queue and relationship, ready for stop or restart.
    fn detach(&mut self, x: PdIndex) {
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
        self.tcbs[x as usize].refill_at = None;
        self.tcbs[x as usize].remaining = self.tcbs[x as usize].budget;
    }

    /// The current thread took a synchronous exception that is not a syscall.
    /// A child's fault goes to its parent; a root PD's fault is reported on the
    /// console and the PD is stopped. Nothing else is affected.
    pub fn handle_fault(&mut self, plat: &mut impl Platform, esr: u64, far: u64) {
        let Some(t) = self.current else { return };
        let ctx = self.tcbs[t as usize].ctx;
        let f = fault::decode(esr, far, ctx.pc, ctx.sp, ctx.spsr);
        self.fail_peers(t);
        let parent = self.tcbs[t as usize].parent;
        self.report_fault(plat, t, &f, parent);
        self.send_fault(plat, t, f.label, f.mrs, f.len);
    }

    /// Queues fault message (`label`, `mrs[..len]`) from thread `t` for its parent and
    /// blocks `t` until the parent answers; a thread without a parent is stopped.
    fn send_fault(&mut self, plat: &mut impl Platform, t: PdIndex, label: u64, mrs: [u64; 5], len: usize) {
        match self.tcbs[t as usize].parent {
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
            None => self.tcbs[t as usize].state = ThreadState::Faulted,
        }
    }

    fn report_fault(&mut self, plat: &mut impl Platform, t: PdIndex, f: &FaultInfo, parent: Option<PdIndex>) {
        let mut line = heapless_line::Line::new();
        let _ = write!(line, "{KERNEL_FAULT} PD '{}': ", self.tcbs[t as usize].name());
        let _ = fault::describe(f, &mut line);
        let _ = write!(line, ", address {:#x}, pc {:#x}", f.addr, f.pc);
        match parent {
            Some(p) => {
                let _ = writeln!(line, "; sent to parent '{}'", self.tcbs[p as usize].name());
            }
            None => {
                let _ = writeln!(line, "; PD stopped");
            }
        }
        plat.console_write(line.as_bytes());
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
}

/// A fixed-size line buffer, so a fault report reaches the console in one write.
mod heapless_line {
    /// Up to 256 bytes of text; the rest is cut.
    pub struct Line {
        buf: [u8; 256],
        len: usize,
    }

    impl Line {
        /// Empty line.
        pub fn new() -> Line {
            Line { buf: [0; 256], len: 0 }
        }

        /// The text so far.
        pub fn as_bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }
    }

    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let n = s.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            Ok(())
        }
    }
}
