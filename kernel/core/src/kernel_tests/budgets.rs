//! Budgets: a parent's control syscalls never hand a child back budget early.

use super::*;
use crate::kernel::us_to_ticks;
use vcpos_abi::msg::DEBUG_AREA_OFFSET;

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
    assert_eq!(k.schedule(p.time), Some(0), "child throttled: the parent runs");
    let refill = k.tcb(1).refill_at.expect("child throttled");
    assert_eq!(
        sys(&mut k, &mut p, Sysno::TcbRestart as u64, slot::BASE_TCB, 0x20_0000)[0],
        0
    );
    assert_eq!(k.current(), Some(0), "a restart gives no budget back before the refill");
    assert_eq!(sys(&mut k, &mut p, Sysno::TcbStop as u64, slot::BASE_TCB, 0)[0], 0);
    assert_eq!(sys(&mut k, &mut p, Sysno::TcbResume as u64, slot::BASE_TCB, 0)[0], 0);
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
    sys(&mut k, &mut p, Sysno::TcbRestart as u64, slot::BASE_TCB, 0x20_0000);
    assert_eq!(k.current(), Some(1), "budget left: the restarted child runs");
    p.time += us_to_ticks(40, HZ);
    assert_eq!(k.schedule(p.time), Some(0), "only the 40 µs left of its budget");
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
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    assert_eq!(k.current(), Some(1));
    p.time += us_to_ticks(100, HZ);
    assert_eq!(k.schedule(p.time), Some(0), "vCPU throttled: the VMM runs");
    let refill = k.tcb(1).refill_at.expect("vCPU throttled");
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000)[0],
        0
    );
    assert_eq!(k.current(), Some(0), "a restart gives no budget back before the refill");
    assert_eq!(sys(&mut k, &mut p, Sysno::VcpuStop as u64, slot::BASE_VCPU, 0)[0], 0);
    assert_eq!(
        sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000)[0],
        0
    );
    assert_eq!(k.current(), Some(0), "nor does stop + restart");
    p.time = refill;
    assert_eq!(k.schedule(p.time), Some(1), "refilled at its period");
}

/// Puts `text` in PD `pd`'s debug area.
fn debug_text(p: &mut FakePlatform, pd: usize, text: &[u8]) {
    for (i, b) in text.iter().enumerate() {
        let addr = ipc(pd) + DEBUG_AREA_OFFSET as u64 + i as u64;
        let w = p.mem.entry(addr & !7).or_insert(0);
        *w |= (*b as u64) << ((addr & 7) * 8);
    }
}

#[test]
fn a_long_debug_put_is_charged_to_its_caller_and_the_overrun_is_paid_later() {
    // a: 100 µs every 1000 µs. It prints for 300 µs with interrupts masked: 200 µs
    // over budget, paid from its next two refills.
    let mut a = pd("a", 10).cap(slot::DEBUG_CONSOLE, CapKind::DebugConsole, 0, 0);
    a.budget = 100;
    a.period = 1000;
    let (mut k, mut p) = boot(vec![a, pd("b", 1)], &[]);
    let text = [b'x'; 150];
    debug_text(&mut p, 0, &text);
    p.console_ticks_per_byte = us_to_ticks(2, HZ);
    sys(
        &mut k,
        &mut p,
        Sysno::DebugPut as u64,
        slot::DEBUG_CONSOLE,
        text.len() as u64,
    );
    assert_eq!(p.time, us_to_ticks(300, HZ));
    assert_eq!(k.current(), Some(1), "a is throttled after the print");
    p.console_ticks_per_byte = 0;
    // First refill: the whole budget pays debt; a stays throttled.
    p.time = k.tcb(0).refill_at.unwrap();
    assert_eq!(k.schedule(p.time), Some(1), "no budget handed out while in debt");
    // Second refill, a period later: the rest of the debt.
    p.time = k.tcb(0).refill_at.unwrap();
    assert_eq!(k.schedule(p.time), Some(1));
    // Third: a full budget again.
    p.time = k.tcb(0).refill_at.unwrap();
    assert_eq!(k.schedule(p.time), Some(0));
    assert_eq!(k.tcb(0).remaining, us_to_ticks(100, HZ));
}

#[test]
fn a_round_robin_overrun_shortens_the_next_time_slice() {
    let mut a = pd("a", 10).cap(slot::DEBUG_CONSOLE, CapKind::DebugConsole, 0, 0);
    a.budget = 100;
    a.period = 100;
    let mut b = pd("b", 10);
    b.budget = 100;
    b.period = 100;
    let (mut k, mut p) = boot(vec![a, b], &[]);
    let text = [b'y'; 65];
    debug_text(&mut p, 0, &text);
    p.console_ticks_per_byte = us_to_ticks(2, HZ);
    sys(
        &mut k,
        &mut p,
        Sysno::DebugPut as u64,
        slot::DEBUG_CONSOLE,
        text.len() as u64,
    );
    p.console_ticks_per_byte = 0;
    assert_eq!(k.current(), Some(1), "a used its slice (and 30 µs more) printing");
    p.time += us_to_ticks(100, HZ);
    assert_eq!(k.schedule(p.time), Some(0));
    assert_eq!(k.tcb(0).remaining, us_to_ticks(70, HZ), "30 µs of overrun paid");
    p.time += us_to_ticks(70, HZ);
    assert_eq!(k.schedule(p.time), Some(1));
}

#[test]
fn a_long_fault_report_is_charged_to_the_thread_that_faulted() {
    // child (100 µs every 1000 µs) faults; its report takes ~ 2 µs a byte, far more
    // than its budget. Once resumed, it does not get a budget back at its next refill.
    let parent = pd("parent", 50);
    let mut child = pd("child", 100);
    child.parent = 0;
    child.budget = 100;
    child.period = 1000;
    let (mut k, mut p) = boot(vec![parent, child], &[]);
    assert_eq!(k.current(), Some(1));
    p.console_ticks_per_byte = us_to_ticks(2, HZ);
    k.handle_fault(&mut p, (0x24 << 26) | 0x07, 0x10);
    assert!(p.time > us_to_ticks(150, HZ), "the report took time: {}", p.time);
    p.console_ticks_per_byte = 0;
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    let r = sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(r[1], BADGE_FAULT | 3);
    sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0); // resume the child
    k.schedule(p.time + 1); // its empty budget ends at once: throttled
    assert_eq!(k.current(), None);
    p.time = k.tcb(1).refill_at.expect("throttled");
    assert_eq!(k.schedule(p.time), None, "the first refill pays the report's overrun");
}
