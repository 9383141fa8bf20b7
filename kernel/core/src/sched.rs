//! Ready queues: one FIFO per priority and a bitmap to find the highest quickly.
//!
//! Threads are linked through [`Tcb::next`]; a thread is in at most one queue (a
//! ready queue or a PD's send queue) at a time.

use crate::cspace::ThreadIndex;
use crate::thread::Tcb;

/// Number of priorities (0..=255; PDs use 0..=254).
const PRIORITIES: usize = 256;

/// Per-priority FIFO ready queues.
#[derive(Clone, Debug)]
pub struct ReadyQueues {
    head: [Option<ThreadIndex>; PRIORITIES],
    tail: [Option<ThreadIndex>; PRIORITIES],
    bitmap: [u64; PRIORITIES / 64],
}

impl Default for ReadyQueues {
    fn default() -> Self {
        ReadyQueues::new()
    }
}

impl ReadyQueues {
    /// Empty queues.
    pub const fn new() -> ReadyQueues {
        ReadyQueues {
            head: [None; PRIORITIES],
            tail: [None; PRIORITIES],
            bitmap: [0; PRIORITIES / 64],
        }
    }

    /// Appends `t` to the queue of its priority.
    pub fn push_back(&mut self, tcbs: &mut [Tcb], t: ThreadIndex) {
        let p = tcbs[t as usize].priority as usize;
        tcbs[t as usize].next = None;
        match self.tail[p] {
            Some(last) => tcbs[last as usize].next = Some(t),
            None => self.head[p] = Some(t),
        }
        self.tail[p] = Some(t);
        self.bitmap[p / 64] |= 1 << (p % 64);
    }

    /// Puts `t` at the front of the queue of its priority (a preempted thread
    /// resumes before its peers).
    pub fn push_front(&mut self, tcbs: &mut [Tcb], t: ThreadIndex) {
        let p = tcbs[t as usize].priority as usize;
        tcbs[t as usize].next = self.head[p];
        if self.head[p].is_none() {
            self.tail[p] = Some(t);
        }
        self.head[p] = Some(t);
        self.bitmap[p / 64] |= 1 << (p % 64);
    }

    /// True if no thread is queued at priority `p`.
    pub fn is_empty_at(&self, p: u8) -> bool {
        self.bitmap[p as usize / 64] & (1 << (p % 64)) == 0
    }

    /// The highest priority with a ready thread.
    pub fn highest(&self) -> Option<u8> {
        (0..self.bitmap.len()).rev().find_map(|w| {
            let bits = self.bitmap[w];
            (bits != 0).then(|| (w * 64 + 63 - bits.leading_zeros() as usize) as u8)
        })
    }

    /// Removes and returns the first thread of the highest non-empty priority.
    pub fn pop_highest(&mut self, tcbs: &mut [Tcb]) -> Option<ThreadIndex> {
        let p = self.highest()? as usize;
        let t = self.head[p]?;
        self.head[p] = tcbs[t as usize].next.take();
        if self.head[p].is_none() {
            self.tail[p] = None;
            self.bitmap[p / 64] &= !(1 << (p % 64));
        }
        Some(t)
    }

    /// Removes `t` if it is queued; returns whether it was.
    pub fn remove(&mut self, tcbs: &mut [Tcb], t: ThreadIndex) -> bool {
        let p = tcbs[t as usize].priority as usize;
        let mut prev: Option<ThreadIndex> = None;
        let mut cur = self.head[p];
        while let Some(c) = cur {
            if c == t {
                let next = tcbs[c as usize].next.take();
                match prev {
                    Some(pr) => tcbs[pr as usize].next = next,
                    None => self.head[p] = next,
                }
                if self.tail[p] == Some(t) {
                    self.tail[p] = prev;
                }
                if self.head[p].is_none() {
                    self.bitmap[p / 64] &= !(1 << (p % 64));
                }
                return true;
            }
            prev = cur;
            cur = tcbs[c as usize].next;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcbs(prios: &[u8]) -> Vec<Tcb> {
        prios
            .iter()
            .map(|&p| {
                let mut t = Tcb::new();
                t.priority = p;
                t
            })
            .collect()
    }

    #[test]
    fn highest_priority_first_fifo_within() {
        let mut t = tcbs(&[10, 200, 10, 254, 0]);
        let mut q = ReadyQueues::new();
        for i in 0..5 {
            q.push_back(&mut t, i);
        }
        let order: Vec<_> = core::iter::from_fn(|| q.pop_highest(&mut t)).collect();
        assert_eq!(order, vec![3, 1, 0, 2, 4]);
        assert_eq!(q.highest(), None);
    }

    #[test]
    fn round_robin_and_front_insertion() {
        let mut t = tcbs(&[5, 5, 5]);
        let mut q = ReadyQueues::new();
        q.push_back(&mut t, 0);
        q.push_back(&mut t, 1);
        q.push_front(&mut t, 2);
        assert_eq!(q.pop_highest(&mut t), Some(2));
        let a = q.pop_highest(&mut t).unwrap();
        q.push_back(&mut t, a); // time slice over: to the back
        assert_eq!(q.pop_highest(&mut t), Some(1));
        assert_eq!(q.pop_highest(&mut t), Some(0));
    }

    #[test]
    fn remove_from_middle_and_tail() {
        let mut t = tcbs(&[7, 7, 7, 7]);
        let mut q = ReadyQueues::new();
        for i in 0..4 {
            q.push_back(&mut t, i);
        }
        assert!(q.remove(&mut t, 1));
        assert!(q.remove(&mut t, 3));
        assert!(!q.remove(&mut t, 3));
        q.push_back(&mut t, 3);
        let order: Vec<_> = core::iter::from_fn(|| q.pop_highest(&mut t)).collect();
        assert_eq!(order, vec![0, 2, 3]);
    }
}
