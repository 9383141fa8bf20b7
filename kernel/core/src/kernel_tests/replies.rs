//! No client blocks for ever on a dead, restarted or forgetful peer: owed PPC
//! replies and unanswered child faults are released or re-delivered.

use super::*;

const DATA_ABORT: u64 = (0x24 << 26) | 0x07;

#[test]
fn recv_while_owing_a_reply_fails_the_caller_at_once() {
    let client = pd("client", 10).cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 1, BADGE_PPC);
    let (mut k, mut p) = boot(vec![client, pd("server", 20)], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 1);
    sys(
        &mut k,
        &mut p,
        Sysno::Call as u64,
        slot::BASE_ENDPOINT,
        MsgInfo::new(1, 0).0,
    );
    assert_eq!(k.current(), Some(1), "the server has the call");
    // The server waits again without replying: the reply can never come.
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.tcb(0).state, ThreadState::Ready, "the caller is not left blocked");
    assert_eq!(k.current(), Some(0));
    assert_eq!(k.tcb(0).ctx.x[0], Error::PeerDead as u64);
    // A later fault of the server finds nothing to release and hurts nobody.
    sys(
        &mut k,
        &mut p,
        Sysno::Call as u64,
        slot::BASE_ENDPOINT,
        MsgInfo::new(2, 0).0,
    );
    k.handle_fault(&mut p, DATA_ABORT, 0);
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    assert_eq!(k.tcb(0).ctx.x[0], Error::PeerDead as u64);
}

/// A root parent (0, priority 50) and its child (1).
fn root_parent_and_child(child_prio: u8) -> (Box<Kernel>, FakePlatform) {
    let parent = pd("parent", 50).cap(slot::BASE_TCB + 3, CapKind::Tcb, 1, 0);
    let mut child = pd("child", child_prio);
    child.parent = 0;
    boot(vec![parent, child], &[])
}

#[test]
fn a_delivered_child_fault_is_stopped_and_reported_when_its_root_parent_dies() {
    let (mut k, mut p) = root_parent_and_child(10);
    run_until_blocked_in_recv(&mut k, &mut p, 0);
    k.handle_fault(&mut p, DATA_ABORT, 0x10); // child faults; delivered to the parent
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    k.handle_fault(&mut p, DATA_ABORT, 0x20); // the parent dies before answering
    k.schedule(p.time);
    assert_eq!(k.tcb(0).state, ThreadState::Faulted);
    assert_eq!(
        k.tcb(1).state,
        ThreadState::Faulted,
        "the child is stopped, not left blocked"
    );
    assert!(
        p.console
            .contains("vcpos|FAULT: PD 'child': its fault was never answered: parent 'parent' is dead; PD stopped"),
        "{}",
        p.console
    );
}

#[test]
fn a_queued_child_fault_is_stopped_when_its_root_parent_dies_and_later_faults_too() {
    let parent = pd("parent", 50);
    let mut a = pd("a", 100);
    a.parent = 0;
    let mut b = pd("b", 10);
    b.parent = 0;
    let (mut k, mut p) = boot(vec![parent, a, b], &[]);
    assert_eq!(k.current(), Some(1));
    k.handle_fault(&mut p, DATA_ABORT, 0x10); // a faults while the parent is busy: queued
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    k.handle_fault(&mut p, DATA_ABORT, 0x20); // the parent dies
    k.schedule(p.time);
    assert_eq!(k.tcb(1).state, ThreadState::Faulted, "queued fault: child stopped");
    assert_eq!(k.tcb(0).send_head, None, "nothing left queued on the dead parent");
    // b still runs (it did nothing wrong); when it faults later it is stopped too.
    assert_eq!(k.current(), Some(2));
    k.handle_fault(&mut p, DATA_ABORT, 0x30);
    k.schedule(p.time);
    assert_eq!(k.tcb(2).state, ThreadState::Faulted);
    assert!(p.console.contains("vcpos|FAULT: PD 'b': data abort"), "{}", p.console);
    assert!(
        p.console.contains("; parent 'parent' is dead; PD stopped"),
        "{}",
        p.console
    );
}

#[test]
fn a_restarted_parent_still_receives_the_fault_it_had_not_answered() {
    // grandparent (0) > parent (1) > child (2, lowest). The child's fault reaches the
    // waiting parent; the parent faults before answering; the grandparent restarts it.
    let gp = pd("gp", 200).cap(slot::BASE_TCB + 3, CapKind::Tcb, 1, 0);
    let mut parent = pd("parent", 100);
    parent.parent = 0;
    let mut child = pd("child", 50);
    child.parent = 1;
    let (mut k, mut p) = boot(vec![gp, parent, child], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 0);
    run_until_blocked_in_recv(&mut k, &mut p, 1);
    assert_eq!(k.current(), Some(2));
    k.handle_fault(&mut p, DATA_ABORT, 0x10);
    k.schedule(p.time);
    assert_eq!(k.current(), Some(1), "the parent has the child's fault");
    assert_eq!(k.tcb(1).ctx.x[1], BADGE_FAULT | 3);
    k.handle_fault(&mut p, DATA_ABORT, 0x20);
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0), "the grandparent has the parent's fault");
    sys(&mut k, &mut p, Sysno::TcbRestart as u64, slot::BASE_TCB + 3, 0x20_0000);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1), "the restarted parent runs");
    let r = sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1), "and gets the child's fault again at once");
    assert_eq!(r[1], BADGE_FAULT | 3);
    assert_eq!(p.mem[&(ipc(1) + 8 * vm_fault::ADDR as u64)], 0x10);
    // Now it answers, and the child resumes.
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(2));
}

#[test]
fn a_vcpu_exit_with_a_dead_vmm_stops_the_vcpu_and_says_so() {
    let vmm = pd("vmm", 100).cap(slot::BASE_VCPU, CapKind::Vcpu, 1, 0);
    let mut vcpu = pd("guest", 50);
    vcpu.kind = bootinfo::THREAD_VCPU;
    vcpu.parent = 0;
    vcpu.caps.clear();
    let (mut k, mut p) = boot(vec![vmm, vcpu], &[]);
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    k.handle_fault(&mut p, DATA_ABORT, 0); // the VMM dies
    k.schedule(p.time);
    assert_eq!(k.current(), Some(1), "the guest runs on");
    k.handle_vcpu_exit(&mut p, 0x16 << 26, 0, 0, false); // HVC: needs the VMM
    k.schedule(p.time);
    assert_eq!(k.tcb(1).state, ThreadState::Faulted);
    assert!(
        p.console
            .contains("vcpos|FAULT: vCPU 'guest': guest exit (esr 0x58000000"),
        "{}",
        p.console
    );
}
