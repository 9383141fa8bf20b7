//! Budgets: a parent's control syscalls never hand a child back budget early.

use super::*;
use crate::kernel::us_to_ticks;

const HZ: u64 = 62_500_000;

/// A parent (0, priority 50) with a TCB capability to a higher-priority child (1,
/// priority 100, 100 µs every 10 ms). The child runs first.
fn parent_and_throttled_child() -> (Box<Kernel>, FakePlatform) {
    let parent = pd("parent", 50).cap(slot::BASE_TCB, CapKind::Tcb, 1, 0);
    let mut child = pd("child", 100);
    child.parent = 0;
    child.budget = 100;
    child.period = 10_000;
    let (k, p) = boot(vec![parent, child], &[]);
    assert_eq!(k.current(), Some(1));
    (k, p)
}

#[test]
fn tcb_restart_stop_resume_keep_a_throttled_child_throttled() {
    let (mut k, mut p) = parent_and_throttled_child();
    p.time += us_to_ticks(100, HZ);
    assert_eq!(
        k.schedule(p.time),
        Some(0),
        "child throttled: the parent runs"
    );
    let refill = k.tcb(1).refill_at.expect("child throttled");
    assert_eq!(
        sys(
            &mut k,
            &mut p,
            Sysno::TcbRestart as u64,
            slot::BASE_TCB,
            0x20_0000
        )[0],
        0
    );
    assert_eq!(
        k.current(),
        Some(0),
        "a restart gives no budget back before the refill"
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::TcbStop as u64, slot::BASE_TCB, 0)[0],
        0
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::TcbResume as u64, slot::BASE_TCB, 0)[0],
        0
    );
    assert_eq!(k.current(), Some(0), "nor does stop + resume");
    assert_eq!(k.tcb(1).refill_at, Some(refill));
    p.time = refill;
    assert_eq!(k.schedule(p.time), Some(1), "refilled at its period");
}

#[test]
fn tcb_restart_keeps_a_partly_used_budget() {
    let (mut k, mut p) = parent_and_throttled_child();
    p.time += us_to_ticks(60, HZ);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0); // child waits after 60 µs
    assert_eq!(k.current(), Some(0));
    sys(
        &mut k,
        &mut p,
        Sysno::TcbRestart as u64,
        slot::BASE_TCB,
        0x20_0000,
    );
    assert_eq!(
        k.current(),
        Some(1),
        "budget left: the restarted child runs"
    );
    p.time += us_to_ticks(40, HZ);
    assert_eq!(
        k.schedule(p.time),
        Some(0),
        "only the 40 µs left of its budget"
    );
}

/// A VMM (0, priority 50) and its vCPU (1, priority 100, 100 µs every 10 ms).
fn vmm_and_throttled_vcpu() -> (Box<Kernel>, FakePlatform) {
    let vmm = pd("vmm", 50).cap(slot::BASE_VCPU, CapKind::Vcpu, 1, 0);
    let mut vcpu = pd("guest", 100);
    vcpu.kind = bootinfo::THREAD_VCPU;
    vcpu.parent = 0;
    vcpu.budget = 100;
    vcpu.period = 10_000;
    vcpu.caps.clear();
    boot(vec![vmm, vcpu], &[])
}

#[test]
fn vcpu_restart_and_stop_keep_a_throttled_vcpu_throttled() {
    let (mut k, mut p) = vmm_and_throttled_vcpu();
    assert_eq!(k.current(), Some(0));
    sys(
        &mut k,
        &mut p,
        Sysno::VcpuRestart as u64,
        slot::BASE_VCPU,
        0x4020_0000,
    );
    assert_eq!(k.current(), Some(1));
    p.time += us_to_ticks(100, HZ);
    assert_eq!(k.schedule(p.time), Some(0), "vCPU throttled: the VMM runs");
    let refill = k.tcb(1).refill_at.expect("vCPU throttled");
    assert_eq!(
        sys(
            &mut k,
            &mut p,
            Sysno::VcpuRestart as u64,
            slot::BASE_VCPU,
            0x4020_0000
        )[0],
        0
    );
    assert_eq!(
        k.current(),
        Some(0),
        "a restart gives no budget back before the refill"
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuStop as u64, slot::BASE_VCPU, 0)[0],
        0
    );
    assert_eq!(
        sys(
            &mut k,
            &mut p,
            Sysno::VcpuRestart as u64,
            slot::BASE_VCPU,
            0x4020_0000
        )[0],
        0
    );
    assert_eq!(k.current(), Some(0), "nor does stop + restart");
    p.time = refill;
    assert_eq!(k.schedule(p.time), Some(1), "refilled at its period");
}
