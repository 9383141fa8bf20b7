//! Scheduling and budgets: making threads ready, charging time, throttling and
//! refilling, choosing the next thread and the timer deadline.

use super::Kernel;
use crate::cspace::ThreadIndex;
use crate::thread::ThreadState;

/// Converts microseconds to counter ticks.
pub fn us_to_ticks(us: u64, hz: u64) -> u64 {
    ((us as u128 * hz as u128) / 1_000_000) as u64
}

impl Kernel {
    /// Makes `t` ready at the back of its priority (unless it is throttled: then it
    /// is queued when its budget is refilled).
    pub(super) fn make_ready(&mut self, t: ThreadIndex) {
        self.tcbs[t as usize].state = ThreadState::Ready;
        if Some(t) != self.current && self.tcbs[t as usize].refill_at.is_none() {
            self.ready.push_back(&mut self.tcbs, t);
        }
    }

    /// Makes `t` ready at the *front* of its priority: a thread resumed by the reply
    /// to its PPC or fault did not give up its turn by making the call, so peers of its
    /// priority must not run first (a vCPU would otherwise wait a whole time slice
    /// behind them after every exit to its VMM).
    pub(super) fn resume_from_call(&mut self, t: ThreadIndex) {
        self.tcbs[t as usize].state = ThreadState::Ready;
        if Some(t) != self.current && self.tcbs[t as usize].refill_at.is_none() {
            self.ready.push_front(&mut self.tcbs, t);
        }
    }

    /// Charges the time since the last charge to the current thread: everything
    /// since the kernel last returned to it, the kernel work it caused included
    /// (its syscalls, such as a `DebugPut`, and the report of its fault run with
    /// interrupts masked, measured by the counter at the next [`Kernel::schedule`]).
    /// Time beyond its remaining budget becomes [`Tcb::debt`](crate::thread::Tcb).
    fn account(&mut self, now: u64) {
        if let Some(c) = self.current {
            let used = now.saturating_sub(self.charged_at);
            let t = &mut self.tcbs[c as usize];
            t.counters.time_run += used;
            t.debt = t.debt.saturating_add(used.saturating_sub(t.remaining));
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
                Some(at) if at <= now && t.debt >= t.budget => {
                    // This period's budget pays (part of) the debt: stay throttled.
                    t.debt -= t.budget;
                    let next = at + t.period;
                    t.refill_at = Some(next);
                    self.next_refill = Some(self.next_refill.map_or(next, |n| n.min(next)));
                }
                Some(at) if at <= now => {
                    t.refill_at = None;
                    t.remaining = t.budget - core::mem::take(&mut t.debt);
                    if t.state == ThreadState::Ready && Some(i as ThreadIndex) != self.current {
                        self.ready.push_back(&mut self.tcbs, i as ThreadIndex);
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
    pub fn schedule(&mut self, now: u64) -> Option<ThreadIndex> {
        self.account(now);
        self.refill_due(now);
        if let Some(c) = self.current {
            let ci = c as usize;
            if self.tcbs[ci].state == ThreadState::Ready && self.tcbs[ci].refill_at.is_none() {
                if self.tcbs[ci].remaining == 0 {
                    let t = &mut self.tcbs[ci];
                    t.counters.budget_exhaustions += 1;
                    if t.period <= t.budget {
                        // Round robin: an overrun shortens the next time slice.
                        t.remaining = t.budget - core::mem::take(&mut t.debt).checked_rem(t.budget).unwrap_or(0);
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
        let next = self.ready.pop_highest(&mut self.tcbs);
        if next != self.current {
            if let Some(prev) = self.current {
                self.tcbs[prev as usize].counters.switches_from += 1;
            }
            if let Some(n) = next {
                self.tcbs[n as usize].counters.switches_to += 1;
            }
        }
        self.current = next;
        self.current
    }

    /// When the timer must next fire: the current thread's budget end or the
    /// earliest refill.
    pub fn next_deadline(&self, now: u64) -> Option<u64> {
        let budget_end = self
            .current
            .filter(|&c| !self.alone_in_round_robin(c))
            .map(|c| now + self.tcbs[c as usize].remaining.max(1));
        match (budget_end, self.next_refill) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// True if `c` is in round robin (`budget == period`) with nobody ready at its
    /// priority: its budget end would rotate it with itself, so no timer is needed
    /// for it. (Anything that makes a peer ready enters the kernel, which then arms
    /// the timer; time used meanwhile is charged as usual, and the overrun of the
    /// slice carries over as in any round robin.)
    fn alone_in_round_robin(&self, c: ThreadIndex) -> bool {
        let t = &self.tcbs[c as usize];
        t.period <= t.budget && self.ready.is_empty_at(t.priority)
    }

    /// The timer deadline to program after scheduling at `now`, if it differs from
    /// the one programmed last ([`Kernel::next_deadline`]); counts the re-arms.
    /// `Some(None)` means disarm.
    pub fn arm_timer(&mut self, now: u64) -> Option<Option<u64>> {
        let deadline = self.next_deadline(now);
        if deadline == self.armed {
            return None;
        }
        self.armed = deadline;
        if deadline.is_some() {
            self.counters.timer_arms += 1;
        }
        Some(deadline)
    }
}
