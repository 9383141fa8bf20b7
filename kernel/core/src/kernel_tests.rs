//! Host tests of the kernel's syscalls, IPC, faults and scheduling against a fake
//! machine: each test boots a small system from a real boot-information blob.

use vcpos_abi::bootinfo::{self, BootInfo, CapDesc, IrqDesc, MapDesc, PdDesc, NO_PARENT};
use vcpos_abi::cap::{slot, CapKind, BADGE_FAULT, BADGE_PPC};
use vcpos_abi::fault::{label, vm_fault};
use vcpos_abi::msg::{MsgInfo, DEBUG_AREA_OFFSET};
use vcpos_abi::syscall::{Error, Sysno};
use vcpos_abi::vspace::attr;

use crate::platform::tests::FakePlatform;
use crate::thread::ThreadState;
use crate::Kernel;

const IPC: u64 = 0x4800_0000;

fn ipc(pd: usize) -> u64 {
    IPC + pd as u64 * 0x1000
}

struct Pd {
    kind: u8,
    name: &'static str,
    prio: u8,
    budget: u64,
    period: u64,
    parent: u8,
    caps: Vec<(u16, CapKind, u32, u64)>,
}

fn pd(name: &'static str, prio: u8) -> Pd {
    Pd {
        kind: bootinfo::THREAD_PD,
        name,
        prio,
        budget: 1000,
        period: 1000,
        parent: NO_PARENT,
        caps: vec![(slot::INPUT as u16, CapKind::Input, 0, 0)],
    }
}

impl Pd {
    fn cap(mut self, slot: u64, kind: CapKind, object: u32, badge: u64) -> Pd {
        self.caps.push((slot as u16, kind, object, badge));
        self
    }
}

fn boot(pds: Vec<Pd>, irqs: &[IrqDesc]) -> (Box<Kernel>, FakePlatform) {
    let mut descs = vec![];
    let mut maps = vec![];
    let mut caps = vec![];
    for (i, p) in pds.iter().enumerate() {
        descs.push(PdDesc {
            name: PdDesc::encode_name(p.name),
            entry: 0x20_0000,
            stack_top: vcpos_abi::vspace::STACK_TOP,
            ipc_buffer_paddr: ipc(i),
            budget_us: p.budget,
            period_us: p.period,
            maps_first: maps.len() as u32,
            maps_count: 1,
            caps_first: caps.len() as u32,
            caps_count: p.caps.len() as u32,
            priority: p.prio,
            passive: 0,
            parent: p.parent,
            child_id: 3,
            cpu: 0,
            kind: p.kind,
            reserved: [0; 2],
        });
        maps.push(MapDesc {
            vaddr: if p.kind == bootinfo::THREAD_VCPU {
                0x4000_0000
            } else {
                vcpos_abi::msg::IPC_BUFFER_VADDR
            },
            paddr: ipc(i),
            size: 0x1000,
            attrs: attr::READ | attr::WRITE | attr::CACHED,
            reserved: 0,
        });
        for &(slot, kind, object, badge) in &p.caps {
            let object = if kind == CapKind::Input { i as u32 } else { object };
            caps.push(CapDesc {
                slot,
                kind: kind as u8,
                reserved: 0,
                object,
                badge,
            });
        }
    }
    let blob = bootinfo::write(0x4900_0000, 0x10_0000, &descs, &maps, &caps, irqs, &[]);
    let info = BootInfo::parse(&blob).unwrap();
    let mut plat = FakePlatform::new();
    let mut k = Box::new(Kernel::new());
    k.boot(&info, &mut plat).unwrap();
    k.schedule(plat.time);
    (k, plat)
}

/// Runs syscall `nr` as the current thread, then reschedules.
fn sys(k: &mut Kernel, plat: &mut FakePlatform, nr: u64, x0: u64, x1: u64) -> [u64; 3] {
    let me = k.current().expect("a thread is running");
    let t = k.current_tcb_mut().unwrap();
    t.ctx.x[8] = nr;
    t.ctx.x[0] = x0;
    t.ctx.x[1] = x1;
    k.handle_syscall(plat);
    k.schedule(plat.time);
    let c = k.tcb(me).ctx;
    [c.x[0], c.x[1], c.x[2]]
}

fn run_until_blocked_in_recv(k: &mut Kernel, plat: &mut FakePlatform, who: u8) {
    assert_eq!(k.current(), Some(who));
    sys(k, plat, Sysno::Recv as u64, slot::INPUT, 0);
}

#[test]
fn boots_and_runs_highest_priority_first() {
    let (k, _) = boot(vec![pd("low", 1), pd("high", 200), pd("mid", 50)], &[]);
    assert_eq!(k.current(), Some(1));
    assert_eq!(k.tcb(0).name(), "low");
    assert_eq!(k.tcb(1).ctx.pc, 0x20_0000);
    assert_eq!(k.tcb(1).ctx.sp, vcpos_abi::vspace::STACK_TOP);
}

#[test]
fn notification_wakes_receiver_with_badge() {
    // a (prio 10) may notify b (prio 5) on a's channel 2, arriving as b's channel 7.
    let a = pd("a", 10).cap(slot::BASE_NOTIFICATION + 2, CapKind::Notification, 1, 1 << 7);
    let (mut k, mut p) = boot(vec![a, pd("b", 5)], &[]);
    // a runs first; let it signal before b ever waits: the bit is kept.
    assert_eq!(
        sys(&mut k, &mut p, Sysno::Signal as u64, slot::BASE_NOTIFICATION + 2, 0)[0],
        0
    );
    run_until_blocked_in_recv(&mut k, &mut p, 0);
    assert_eq!(k.current(), Some(1));
    let r = sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(r, [0, 1 << 7, 0], "pending bit delivered at once");
    // b now blocks; nothing runs.
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), None);
    assert_eq!(k.tcb(1).state, ThreadState::BlockedRecv);
}

#[test]
fn ppc_transfers_message_registers_both_ways() {
    let client = pd("client", 10).cap(slot::BASE_ENDPOINT + 4, CapKind::Endpoint, 1, BADGE_PPC | 9);
    let (mut k, mut p) = boot(vec![client, pd("server", 20)], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 1);
    // client writes MRs and calls.
    for i in 0..3 {
        p.mem.insert(ipc(0) + 8 * i, 100 + i);
    }
    let me = k.current().unwrap();
    assert_eq!(me, 0);
    sys(
        &mut k,
        &mut p,
        Sysno::Call as u64,
        slot::BASE_ENDPOINT + 4,
        MsgInfo::new(77, 3).0,
    );
    // The server runs with the badge and message.
    assert_eq!(k.current(), Some(1));
    let s = k.tcb(1).ctx;
    assert_eq!(
        (s.x[0], s.x[1], MsgInfo(s.x[2]).label(), MsgInfo(s.x[2]).count()),
        (0, BADGE_PPC | 9, 77, 3)
    );
    assert_eq!(p.mem[&(ipc(1) + 16)], 102);
    // Server replies with 2 MRs and waits again.
    p.mem.insert(ipc(1), 555);
    p.mem.insert(ipc(1) + 8, 666);
    sys(
        &mut k,
        &mut p,
        Sysno::ReplyRecv as u64,
        slot::INPUT,
        MsgInfo::new(5, 2).0,
    );
    assert_eq!(k.current(), Some(0));
    let c = k.tcb(0).ctx;
    assert_eq!(c.x[0], 0);
    assert_eq!((MsgInfo(c.x[2]).label(), MsgInfo(c.x[2]).count()), (5, 2));
    assert_eq!((p.mem[&ipc(0)], p.mem[&(ipc(0) + 8)]), (555, 666));
    assert_eq!(k.tcb(1).state, ThreadState::BlockedRecv);
}

#[test]
fn ppc_queues_when_server_busy() {
    let c1 = pd("c1", 10).cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 2, BADGE_PPC);
    let c2 = pd("c2", 10).cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 2, BADGE_PPC | 1);
    let mut server = pd("server", 30);
    server.budget = 100;
    server.period = 10_000;
    let (mut k, mut p) = boot(vec![c1, c2, server], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 2);
    sys(
        &mut k,
        &mut p,
        Sysno::Call as u64,
        slot::BASE_ENDPOINT,
        MsgInfo::new(1, 0).0,
    );
    assert_eq!(k.current(), Some(2));
    // The server uses up its budget while serving c1: c2 runs and calls it too.
    p.time += super::kernel::us_to_ticks(100, 62_500_000);
    assert_eq!(k.schedule(p.time), Some(1));
    sys(
        &mut k,
        &mut p,
        Sysno::Call as u64,
        slot::BASE_ENDPOINT,
        MsgInfo::new(2, 0).0,
    );
    assert_eq!(k.tcb(1).state, ThreadState::BlockedSend { server: 2 });
    assert_eq!(k.current(), None);
    // Refill: the server replies to c1 and gets c2's queued call at once.
    p.time = k.next_deadline(p.time).unwrap();
    assert_eq!(k.schedule(p.time), Some(2));
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    assert_eq!(k.tcb(0).state, ThreadState::Ready);
    assert_eq!(k.current(), Some(2));
    let s = k.tcb(2).ctx;
    assert_eq!((s.x[1], MsgInfo(s.x[2]).label()), (BADGE_PPC | 1, 2));
    assert_eq!(k.tcb(1).state, ThreadState::BlockedCall { server: 2 });
}

#[test]
fn bad_capabilities_and_arguments_get_errors() {
    let a = pd("a", 10)
        .cap(slot::BASE_NOTIFICATION, CapKind::Notification, 1, 1)
        .cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 1, BADGE_PPC)
        .cap(slot::DEBUG_CONSOLE, CapKind::DebugConsole, 0, 0);
    let (mut k, mut p) = boot(vec![a, pd("b", 20)], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 1);
    let e = |x: Error| x as u64;
    assert_eq!(
        sys(&mut k, &mut p, Sysno::Signal as u64, slot::BASE_NOTIFICATION + 5, 0)[0],
        e(Error::InvalidCapability)
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::Signal as u64, 100_000, 0)[0],
        e(Error::InvalidCapability)
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::Signal as u64, u64::MAX, 0)[0],
        e(Error::InvalidCapability)
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::Call as u64, slot::BASE_NOTIFICATION, 0)[0],
        e(Error::InvalidCapability)
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::IrqAck as u64, slot::BASE_IRQ, 0)[0],
        e(Error::InvalidCapability)
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::TcbRestart as u64, slot::BASE_TCB, 0)[0],
        e(Error::InvalidCapability)
    );
    assert_eq!(sys(&mut k, &mut p, 999, slot::INPUT, 0)[0], e(Error::InvalidSyscall));
    assert_eq!(
        sys(
            &mut k,
            &mut p,
            Sysno::Call as u64,
            slot::BASE_ENDPOINT,
            MsgInfo::new(0, 100).0
        )[0],
        e(Error::InvalidArgument)
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::DebugPut as u64, slot::DEBUG_CONSOLE, 5000)[0],
        e(Error::InvalidArgument)
    );
    // Nothing else changed: b still waits, a still runs.
    assert_eq!(k.current(), Some(0));
    assert_eq!(k.tcb(1).state, ThreadState::BlockedRecv);
    // And the debug console works.
    for (i, b) in b"hi!\n".iter().enumerate() {
        let addr = ipc(0) + DEBUG_AREA_OFFSET as u64 + i as u64;
        let w = p.mem.entry(addr & !7).or_insert(0);
        *w |= (*b as u64) << ((addr & 7) * 8);
    }
    assert_eq!(
        sys(&mut k, &mut p, Sysno::DebugPut as u64, slot::DEBUG_CONSOLE, 4)[0],
        0
    );
    assert_eq!(p.console, "hi!\n");
}

#[test]
fn root_fault_is_reported_and_its_callers_fail() {
    let client = pd("client", 10).cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 1, BADGE_PPC);
    let (mut k, mut p) = boot(vec![client, pd("server", 20), pd("other", 5)], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 1);
    sys(&mut k, &mut p, Sysno::Call as u64, slot::BASE_ENDPOINT, 0);
    assert_eq!(k.current(), Some(1));
    // The server faults while serving: a write to an unmapped address.
    k.current_tcb_mut().unwrap().ctx.pc = 0x20_1234;
    k.handle_fault(&mut p, (0x24 << 26) | (1 << 6) | 0x07, 0xdead_0000);
    k.schedule(0);
    assert!(p.console.contains("vcpos|FAULT: PD 'server': data abort (write, translation fault, level 3), address 0xdead0000, pc 0x201234; PD stopped"), "{}", p.console);
    assert_eq!(k.tcb(1).state, ThreadState::Faulted);
    // The client is woken with PeerDead, and new calls fail at once.
    assert_eq!(k.current(), Some(0));
    assert_eq!(k.tcb(0).ctx.x[0], Error::PeerDead as u64);
    assert_eq!(
        sys(&mut k, &mut p, Sysno::Call as u64, slot::BASE_ENDPOINT, 0)[0],
        Error::PeerDead as u64
    );
    // The unrelated PD still runs when the client waits.
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(2));
}

#[test]
fn serror_is_charged_to_the_thread_that_ran_not_the_current_one() {
    let (mut k, mut p) = boot(vec![pd("ran", 10), pd("next", 10)], &[]);
    assert_eq!(k.current(), Some(0));
    // "ran"'s budget ends; "next" becomes current before the SError is seen.
    p.time = 100_000;
    k.schedule(p.time);
    assert_eq!(k.current(), Some(1));
    k.handle_serror(&mut p, 0, 0x2f << 26 | 0x12);
    assert!(
        p.console
            .contains("vcpos|FAULT: PD 'ran': SError (asynchronous abort, syndrome 0x12)"),
        "{}",
        p.console
    );
    assert!(!p.console.contains("'next'"), "{}", p.console);
    assert_eq!(k.tcb(0).state, ThreadState::Faulted);
    assert_eq!(k.tcb(1).state, ThreadState::Ready);
    // "ran" is off the ready queue: "next" keeps the CPU when its own budget ends.
    p.time = 200_000;
    assert_eq!(k.schedule(p.time), Some(1));
}

#[test]
fn child_fault_goes_to_parent_which_restarts_it() {
    let parent = pd("parent", 50).cap(slot::BASE_TCB + 3, CapKind::Tcb, 1, 0);
    let mut child = pd("child", 10);
    child.parent = 0;
    let (mut k, mut p) = boot(vec![parent, child], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 0);
    assert_eq!(k.current(), Some(1));
    k.current_tcb_mut().unwrap().ctx.pc = 0x20_0040;
    k.handle_fault(&mut p, (0x24 << 26) | 0x07, 0x10);
    k.schedule(0);
    assert_eq!(k.current(), Some(0));
    let c = k.tcb(0).ctx;
    assert_eq!(c.x[1], BADGE_FAULT | 3, "badge names the child id");
    assert_eq!(MsgInfo(c.x[2]).label(), label::VM_FAULT);
    assert_eq!(p.mem[&(ipc(0) + 8 * vm_fault::ADDR as u64)], 0x10);
    assert_eq!(p.mem[&(ipc(0) + 8 * vm_fault::IP as u64)], 0x20_0040);
    assert!(p.console.contains("sent to parent 'parent'"));
    // The parent restarts the child at its entry.
    assert_eq!(
        sys(&mut k, &mut p, Sysno::TcbRestart as u64, slot::BASE_TCB + 3, 0x20_0000)[0],
        0
    );
    assert_eq!(k.tcb(1).state, ThreadState::Ready);
    assert_eq!(k.tcb(1).ctx.pc, 0x20_0000);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1), "restarted child runs");
    // Stop and resume.
    k.current_tcb_mut().unwrap().ctx.pc = 0x20_0000;
}

#[test]
fn stop_and_resume_child() {
    let parent = pd("parent", 50).cap(slot::BASE_TCB, CapKind::Tcb, 1, 0);
    let mut child = pd("child", 10);
    child.parent = 0;
    let (mut k, mut p) = boot(vec![parent, child], &[]);
    assert_eq!(
        sys(&mut k, &mut p, Sysno::TcbResume as u64, slot::BASE_TCB, 0)[0],
        Error::IllegalOperation as u64
    );
    assert_eq!(sys(&mut k, &mut p, Sysno::TcbStop as u64, slot::BASE_TCB, 0)[0], 0);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), None, "stopped child does not run");
}

#[test]
fn equal_priorities_round_robin_on_budget() {
    let mut a = pd("a", 10);
    a.budget = 100;
    a.period = 100;
    let mut b = pd("b", 10);
    b.budget = 100;
    b.period = 100;
    let (mut k, mut p) = boot(vec![a, b], &[]);
    assert_eq!(k.current(), Some(0));
    let ticks = super::kernel::us_to_ticks(100, 62_500_000);
    assert_eq!(k.next_deadline(p.time), Some(p.time + ticks));
    p.time += ticks / 2;
    assert_eq!(k.schedule(p.time), Some(0), "budget left: keeps running");
    p.time += ticks;
    assert_eq!(k.schedule(p.time), Some(1), "budget used: round robin");
    p.time += ticks;
    assert_eq!(k.schedule(p.time), Some(0));
}

#[test]
fn budget_below_period_throttles_until_refill() {
    let mut a = pd("a", 10);
    a.budget = 100;
    a.period = 1000;
    let (mut k, mut p) = boot(vec![a, pd("idle-ish", 1)], &[]);
    let hz = 62_500_000;
    p.time += super::kernel::us_to_ticks(100, hz);
    assert_eq!(k.schedule(p.time), Some(1), "a throttled, lower priority runs");
    let refill = k.next_deadline(p.time).unwrap();
    assert!(refill <= p.time + super::kernel::us_to_ticks(900, hz));
    p.time = refill;
    assert_eq!(k.schedule(p.time), Some(0), "a refilled preempts");
}

#[test]
fn irq_signals_and_masks_until_ack() {
    let a = pd("drv", 10).cap(slot::BASE_IRQ + 2, CapKind::IrqHandler, 40, 0);
    let irqs = [IrqDesc {
        irq: 40,
        pd: 0,
        trigger: 0,
        reserved: 0,
        badge: 1 << 2,
    }];
    let (mut k, mut p) = boot(vec![a], &irqs);
    assert!(!p.masked.contains(&40));
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), None);
    k.handle_irq(&mut p, 40);
    assert!(p.masked.contains(&40));
    assert_eq!(k.schedule(p.time), Some(0));
    assert_eq!(k.tcb(0).ctx.x[1], 1 << 2);
    assert_eq!(sys(&mut k, &mut p, Sysno::IrqAck as u64, slot::BASE_IRQ + 2, 0)[0], 0);
    assert!(!p.masked.contains(&40));
    k.handle_irq(&mut p, 99);
    assert!(p.console.contains("IRQ 99 has no handler"));
}

fn vmm_and_vcpu() -> (Box<Kernel>, FakePlatform) {
    let vmm = pd("vmm", 100)
        .cap(slot::BASE_VM_TCB, CapKind::Vcpu, 1, 0)
        .cap(slot::BASE_VCPU, CapKind::Vcpu, 1, 0)
        .cap(slot::BASE_VCPU + 1, CapKind::Vcpu, 0, 0);
    let mut vcpu = pd("guest", 50);
    vcpu.kind = bootinfo::THREAD_VCPU;
    vcpu.parent = 0;
    vcpu.caps.clear();
    boot(vec![vmm, vcpu], &[])
}

#[test]
fn vcpu_starts_stopped_and_vmm_restarts_it() {
    use vcpos_abi::vcpu::reg;
    let (mut k, mut p) = vmm_and_vcpu();
    assert_eq!(k.tcb(1).state, ThreadState::Stopped);
    assert_eq!(k.tcb(1).kind, crate::thread::ThreadKind::Vcpu);
    // Write x0 = dtb address, then restart at the kernel entry.
    let me = k.current().unwrap();
    let t = k.current_tcb_mut().unwrap();
    t.ctx.x[8] = Sysno::VcpuWriteReg as u64;
    t.ctx.x[0] = slot::BASE_VCPU;
    t.ctx.x[1] = reg::X0;
    t.ctx.x[2] = 0x4800_0000;
    k.handle_syscall(&mut p);
    assert_eq!(k.tcb(me).ctx.x[0], 0);
    assert_eq!(k.tcb(1).ctx.x[0], 0x4800_0000);
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuReadReg as u64, slot::BASE_VCPU, reg::X0),
        [0, 0x4800_0000, 0]
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuReadReg as u64, slot::BASE_VCPU, 99)[0],
        Error::InvalidArgument as u64
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuInjectIrq as u64, slot::BASE_VCPU, 1020)[0],
        Error::InvalidArgument as u64
    );
    // A vCPU cap naming a PD is refused.
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuStop as u64, slot::BASE_VCPU + 1, 0)[0],
        Error::InvalidCapability as u64
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000)[0],
        0
    );
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_0000);
    assert_eq!(k.tcb(1).ctx.spsr, vcpos_abi::vcpu::SPSR_EL1H_MASKED);
    assert!(k.take_vcpu_reset(1));
    assert!(!k.take_vcpu_reset(1));
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1), "the guest runs once the VMM waits");
}

#[test]
fn emulated_replies_complete_loads_and_stores_in_the_kernel() {
    use vcpos_abi::fault::vm_fault_reply::EMULATED;
    let (mut k, mut p) = vmm_and_vcpu();
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1));
    let dabt = |write: bool, srt: u64| (0x24 << 26) | (1 << 25) | (1 << 24) | (srt << 16) | ((write as u64) << 6);
    // A store of x5: its value comes with the message.
    k.current_tcb_mut().unwrap().ctx.x[5] = 0xfeed_beef;
    k.handle_vcpu_exit(&mut p, dabt(true, 5), 0x50, 0x0a00_0000 >> 8, false);
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    assert_eq!(MsgInfo(k.tcb(0).ctx.x[2]).count(), vm_fault::LENGTH_VCPU);
    assert_eq!(p.mem[&(ipc(0) + 8 * vm_fault::STORE_VALUE as u64)], 0xfeed_beef);
    sys(
        &mut k,
        &mut p,
        Sysno::ReplyRecv as u64,
        slot::INPUT,
        MsgInfo::new(EMULATED, 0).0,
    );
    assert_eq!(k.current(), Some(1));
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_0004, "past the store");
    assert_eq!(k.tcb(1).ctx.x[5], 0xfeed_beef, "a store's register is left alone");
    // A load into x7: message register 0 lands there.
    k.handle_vcpu_exit(&mut p, dabt(false, 7), 0x54, 0x0a00_0000 >> 8, false);
    k.schedule(p.time);
    assert_eq!(
        p.mem[&(ipc(0) + 8 * vm_fault::STORE_VALUE as u64)],
        0,
        "no value for a load"
    );
    p.mem.insert(ipc(0), 0x1234);
    sys(
        &mut k,
        &mut p,
        Sysno::ReplyRecv as u64,
        slot::INPUT,
        MsgInfo::new(EMULATED, 1).0,
    );
    assert_eq!(k.tcb(1).ctx.x[7], 0x1234);
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_0008);
    // A load into XZR (31) writes nothing; a 16-bit instruction (IL clear) moves 2.
    let x30 = k.tcb(1).ctx.x[30];
    k.handle_vcpu_exit(&mut p, dabt(false, 31) & !(1 << 25), 0x58, 0x0a00_0000 >> 8, false);
    k.schedule(p.time);
    p.mem.insert(ipc(0), 0x9999);
    sys(
        &mut k,
        &mut p,
        Sysno::ReplyRecv as u64,
        slot::INPUT,
        MsgInfo::new(EMULATED, 1).0,
    );
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_000a);
    assert_eq!(k.tcb(1).ctx.x[30], x30);
    // A load answered without a message register gets 0, not a stale MR0.
    k.handle_vcpu_exit(&mut p, dabt(false, 7), 0x5c, 0x0a00_0000 >> 8, false);
    k.schedule(p.time);
    p.mem.insert(ipc(0), 0x7777);
    sys(
        &mut k,
        &mut p,
        Sysno::ReplyRecv as u64,
        slot::INPUT,
        MsgInfo::new(EMULATED, 0).0,
    );
    assert_eq!(k.tcb(1).ctx.x[7], 0);
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_000e);
    // Label 0 resumes at the faulting instruction, as before, registers untouched.
    k.handle_vcpu_exit(&mut p, dabt(false, 7), 0x60, 0x0a00_0000 >> 8, false);
    k.schedule(p.time);
    p.mem.insert(ipc(0), 0x5555);
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    k.schedule(p.time);
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_000e);
    assert_eq!(k.tcb(1).ctx.x[7], 0);
    // EMULATED answering an HVC (not a data abort) just resumes.
    k.handle_vcpu_exit(&mut p, 0x16 << 26, 0, 0, false);
    k.schedule(p.time);
    sys(
        &mut k,
        &mut p,
        Sysno::ReplyRecv as u64,
        slot::INPUT,
        MsgInfo::new(EMULATED, 1).0,
    );
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_000e);
}

#[test]
fn vcpu_exits_reach_the_vmm_and_wfi_parks() {
    let (mut k, mut p) = vmm_and_vcpu();
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1));
    // Stage-2 data abort at IPA 0x0a00_0050 (an emulated device).
    let esr = (0x24 << 26) | (1 << 24) | (1 << 6);
    k.handle_vcpu_exit(&mut p, esr, 0xffff_0000_1234_5050, 0x0a00_0000 >> 8, false);
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    let c = k.tcb(0).ctx;
    assert_eq!(c.x[1], BADGE_FAULT | 3);
    assert_eq!(MsgInfo(c.x[2]).label(), label::VM_FAULT);
    assert_eq!(p.mem[&(ipc(0) + 8 * vm_fault::ADDR as u64)], 0x0a00_0050);
    assert_eq!(p.mem[&(ipc(0) + 8 * vm_fault::FSR as u64)], esr);
    // The VMM advances the PC and replies: the guest resumes there.
    let t = k.current_tcb_mut().unwrap();
    t.ctx.x[8] = Sysno::VcpuWriteReg as u64;
    t.ctx.x[0] = slot::BASE_VCPU;
    t.ctx.x[1] = vcpos_abi::vcpu::reg::PC;
    t.ctx.x[2] = 0x4020_0004;
    k.handle_syscall(&mut p);
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1));
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_0004);
    // HVC goes to the VMM as a vCPU fault carrying the ESR.
    k.handle_vcpu_exit(&mut p, 0x16 << 26, 0, 0, false);
    k.schedule(p.time);
    assert_eq!(MsgInfo(k.tcb(0).ctx.x[2]).label(), label::VCPU_FAULT);
    assert_eq!(p.mem[&ipc(0)], 0x16 << 26);
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    // WFI with nothing pending parks the vCPU; an injected interrupt wakes it.
    k.handle_vcpu_exit(&mut p, (0x01 << 26) | (1 << 25), 0, 0, false);
    k.schedule(p.time);
    assert_eq!(k.tcb(1).state, ThreadState::BlockedWfi);
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_0008);
    assert_eq!(k.current(), None);
    k.inject_virq(1, 27);
    assert_eq!(k.schedule(p.time), Some(1));
    assert_eq!(k.take_virq(1), Some(27));
    assert_eq!(k.take_virq(1), None);
    // WFI with an interrupt still in a list register does not park.
    k.handle_vcpu_exit(&mut p, (0x01 << 26) | (1 << 25), 0, 0, true);
    assert_eq!(k.schedule(p.time), Some(1));
}

#[test]
fn a_reply_resumes_the_caller_ahead_of_its_peers() {
    // client and peer share priority 10; server (20) answers client's PPC. The client
    // did not give up its turn by calling, so it runs before the peer afterwards.
    let client = pd("client", 10).cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 2, BADGE_PPC);
    let (mut k, mut p) = boot(vec![client, pd("peer", 10), pd("server", 20)], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 2);
    assert_eq!(k.current(), Some(0));
    sys(&mut k, &mut p, Sysno::Call as u64, slot::BASE_ENDPOINT, 0);
    assert_eq!(k.current(), Some(2));
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    assert_eq!(
        k.current(),
        Some(0),
        "the caller resumes before its equal-priority peer"
    );
}

#[test]
fn a_trapped_16_bit_wfi_advances_the_pc_by_2() {
    let (mut k, mut p) = vmm_and_vcpu();
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    k.handle_vcpu_exit(&mut p, 0x01 << 26, 0, 0, false); // IL = 0: a T32 WFI
    assert_eq!(k.tcb(1).ctx.pc, 0x4020_0002);
}

#[test]
fn a_queued_child_fault_survives_its_parents_fault() {
    // grandparent (0) > parent (1) > child (2); the child faults while the parent runs,
    // then the parent faults too. Once resumed, the parent still gets the child's fault.
    let gp = pd("gp", 200).cap(slot::BASE_TCB + 3, CapKind::Tcb, 1, 0);
    let mut parent = pd("parent", 100);
    parent.parent = 0;
    let mut child = pd("child", 150);
    child.parent = 1;
    let (mut k, mut p) = boot(vec![gp, parent, child], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 0);
    assert_eq!(k.current(), Some(2));
    k.handle_fault(&mut p, (0x24 << 26) | 0x07, 0x10); // child faults; parent not waiting
    k.schedule(0);
    assert_eq!(k.current(), Some(1));
    k.handle_fault(&mut p, (0x24 << 26) | 0x07, 0x20); // parent faults
    k.schedule(0);
    assert_eq!(k.current(), Some(0), "grandparent gets the parent's fault");
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0); // resume the parent
    assert_eq!(k.current(), Some(1));
    let r = sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1));
    assert_eq!(r[1], BADGE_FAULT | 3, "the child's fault is still delivered");
}

mod budgets;
mod counters;
mod replies;
mod vgic;
