//! Kernel event counters and the `ThreadCounters` syscall; the timer is not armed
//! for a thread alone in round robin.

use super::*;
use crate::kernel::us_to_ticks;
use vcpos_abi::counters::{Counters, GuestExit};

/// Reads the counters the last `ThreadCounters` left in `pd`'s message registers.
fn counters_of(p: &FakePlatform, pd: usize) -> Counters {
    let words: Vec<u64> = (0..Counters::WORDS)
        .map(|i| *p.mem.get(&(ipc(pd) + 8 * i as u64)).unwrap_or(&0))
        .collect();
    Counters::from_words(&words).unwrap()
}

#[test]
fn ppc_notification_switch_and_entry_counts_are_readable() {
    let client = pd("client", 10)
        .cap(slot::BASE_ENDPOINT, CapKind::Endpoint, 1, BADGE_PPC)
        .cap(slot::BASE_NOTIFICATION, CapKind::Notification, 1, 1)
        .cap(slot::BASE_TCB, CapKind::Tcb, 1, 0)
        .cap(slot::DEBUG_CONSOLE, CapKind::DebugConsole, 0, 0);
    let (mut k, mut p) = boot(vec![client, pd("server", 20)], &[]);
    run_until_blocked_in_recv(&mut k, &mut p, 1); // server: 1 entry, switched from
    for _ in 0..3 {
        sys(&mut k, &mut p, Sysno::Call as u64, slot::BASE_ENDPOINT, 0);
        sys(&mut k, &mut p, Sysno::ReplyRecv as u64, slot::INPUT, 0);
    }
    sys(&mut k, &mut p, Sysno::Signal as u64, slot::BASE_NOTIFICATION, 0);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0); // the server handles it
    assert_eq!(k.current(), Some(0));
    // Own counters through the input capability.
    let r = sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::INPUT, 0);
    assert_eq!((r[0], r[1], MsgInfo(r[2]).count()), (0, 0, Counters::WORDS));
    let own = counters_of(&p, 0).thread;
    assert_eq!(own.ppc_calls, 3);
    assert_eq!(own.notifications_sent, 1);
    assert_eq!(own.kernel_entries, 5, "3 calls, 1 signal, this syscall");
    assert_eq!(
        own.switches_from, 4,
        "to the server 3 times, and once for its notification"
    );
    // The child's through its TCB capability.
    let r = sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::BASE_TCB, 0);
    assert_eq!((r[0], r[1]), (0, 1));
    let server = counters_of(&p, 0).thread;
    assert_eq!(server.ppc_served, 3);
    assert_eq!(server.notifications_received, 1);
    assert_eq!(server.switches_to, 5, "at boot, for 3 calls and for the notification");
    assert_eq!(server.kernel_entries, 5, "1 recv, 3 reply-recvs, 1 recv");
    // Any thread by index through the debug capability; bad index or capability refused.
    assert_eq!(
        sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::DEBUG_CONSOLE, 1)[0],
        0
    );
    assert_eq!(counters_of(&p, 0).thread.ppc_served, 3);
    assert_eq!(
        sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::DEBUG_CONSOLE, 2)[0],
        Error::InvalidArgument as u64
    );
    assert_eq!(
        sys(
            &mut k,
            &mut p,
            Sysno::ThreadCounters as u64,
            slot::DEBUG_CONSOLE,
            u64::MAX
        )[0],
        Error::InvalidArgument as u64
    );
    assert_eq!(
        sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::BASE_NOTIFICATION, 0)[0],
        Error::InvalidCapability as u64
    );
}

#[test]
fn time_faults_and_budget_exhaustions_are_counted() {
    let mut a = pd("a", 10);
    a.budget = 100;
    a.period = 1000;
    let parent = pd("parent", 1).cap(slot::BASE_TCB, CapKind::Tcb, 0, 0);
    a.parent = 1;
    let (mut k, mut p) = boot(vec![a, parent], &[]);
    p.time += us_to_ticks(100, HZ);
    k.schedule(p.time); // a throttled
    p.time = k.tcb(0).refill_at.unwrap();
    k.schedule(p.time);
    p.time += 10;
    k.handle_fault(&mut p, (0x24 << 26) | 0x07, 0);
    k.schedule(p.time);
    assert_eq!(k.current(), Some(1));
    sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::BASE_TCB, 0);
    let c = counters_of(&p, 1).thread;
    assert_eq!((c.budget_exhaustions, c.faults), (1, 1));
    assert_eq!(c.time_run, us_to_ticks(100, HZ) + 10);
}

const HZ: u64 = 62_500_000;

#[test]
fn guest_exits_are_counted_by_reason() {
    let (mut k, mut p) = vmm_and_vcpu();
    sys(&mut k, &mut p, Sysno::VcpuRestart as u64, slot::BASE_VCPU, 0x4020_0000);
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0);
    assert_eq!(k.current(), Some(1));
    k.note_interrupt_entry();
    k.handle_vcpu_exit(&mut p, (0x01 << 26) | (1 << 25), 0, 0, true); // WFI, stays
    k.handle_vcpu_exit(&mut p, 0x16 << 26, 0, 0, false); // HVC: to the VMM
    k.schedule(p.time);
    assert_eq!(k.current(), Some(0));
    sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::BASE_VCPU, 0);
    let c = counters_of(&p, 0).thread;
    let exits = |g: GuestExit| c.guest_exits[g as usize];
    assert_eq!(
        (
            exits(GuestExit::Interrupt),
            exits(GuestExit::Wfx),
            exits(GuestExit::Hvc)
        ),
        (1, 1, 1)
    );
    assert_eq!(exits(GuestExit::DataAbort), 0);
    assert_eq!(c.kernel_entries, 3);
}

#[test]
fn no_timer_for_a_thread_alone_in_round_robin_and_re_arms_are_counted() {
    let mut a = pd("a", 10);
    a.budget = 100;
    a.period = 100;
    let b = pd("b", 10);
    let (mut k, mut p) = boot(vec![a, b], &[]);
    let slice = us_to_ticks(100, HZ);
    assert_eq!(
        k.arm_timer(p.time),
        Some(Some(p.time + slice)),
        "a peer waits: budget end armed"
    );
    assert_eq!(k.arm_timer(p.time), None, "unchanged: not programmed again");
    sys(&mut k, &mut p, Sysno::Recv as u64, slot::INPUT, 0); // a waits: b runs alone
    assert_eq!(k.current(), Some(1));
    assert_eq!(k.next_deadline(p.time), None, "alone in round robin: no budget end");
    assert_eq!(k.arm_timer(p.time), Some(None));
    assert_eq!(k.kernel_counters().timer_arms, 1);
    // b keeps running long past its slice without a timer; nothing is lost.
    p.time += 10 * us_to_ticks(1000, HZ);
    assert_eq!(k.schedule(p.time), Some(1));
    k.timer_fired();
    assert_eq!(k.kernel_counters().timer_interrupts, 1);
    // A throttled thread (budget < period) alone still gets its budget end.
    let mut c = pd("c", 10);
    c.budget = 100;
    c.period = 1000;
    let (mut k, p) = boot(vec![c], &[]);
    assert_eq!(k.arm_timer(p.time), Some(Some(p.time + slice)));
}

#[test]
fn count_copied_adds_to_the_callers_own_counter_only() {
    let copier = pd("copier", 10).cap(slot::DEBUG_CONSOLE, CapKind::DebugConsole, 0, 0);
    let (mut k, mut p) = boot(vec![copier], &[]);
    assert_eq!(sys(&mut k, &mut p, Sysno::CountCopied as u64, slot::INPUT, 1500)[0], 0);
    assert_eq!(sys(&mut k, &mut p, Sysno::CountCopied as u64, slot::INPUT, 14)[0], 0);
    // Only the input capability names the caller; a saturating sum.
    assert_eq!(
        sys(&mut k, &mut p, Sysno::CountCopied as u64, slot::DEBUG_CONSOLE, 99)[0],
        Error::InvalidCapability as u64
    );
    sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::INPUT, 0);
    assert_eq!(counters_of(&p, 0).thread.bytes_copied, 1514);
    sys(&mut k, &mut p, Sysno::CountCopied as u64, slot::INPUT, u64::MAX);
    sys(&mut k, &mut p, Sysno::ThreadCounters as u64, slot::INPUT, 0);
    assert_eq!(counters_of(&p, 0).thread.bytes_copied, u64::MAX);
}
