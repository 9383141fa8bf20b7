//! Output to a UART that may be full, without waiting for it without bound.
//!
//! The VMM writes the guest's console output to the board's UART, which the kernel
//! and other PDs share. A UART whose transmit FIFO stays full (a slow line, a PD that
//! disabled it) must not hang the VMM, so [`TxQueue`] waits a bounded number of polls
//! for room for each byte and keeps the rest for later (the VMM retries on its next
//! event and asks for the UART's transmit interrupt meanwhile). What it keeps is
//! bounded too: bytes beyond [`TxQueue::capacity`] are dropped and counted, and the
//! count is reported once ([`TxQueue::take_dropped`]).

use alloc::collections::VecDeque;

/// A UART's transmit side.
pub trait TxPort {
    /// The transmit FIFO has no room.
    fn tx_full(&mut self) -> bool;
    /// Writes one byte (called only when not full).
    fn tx_put(&mut self, byte: u8);
}

/// Polls of a full FIFO per byte before [`TxQueue::drain`] gives up for now (at
/// 115200 baud a byte takes about 87 µs; this allows a few byte times).
pub const DEFAULT_POLLS_PER_BYTE: u32 = 10_000;

/// Bytes waiting for a UART, with `\n` turned into `\r\n`.
#[derive(Clone, Debug)]
pub struct TxQueue {
    pending: VecDeque<u8>,
    capacity: usize,
    dropped: u64,
}

impl TxQueue {
    /// A queue keeping at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        TxQueue {
            pending: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Most bytes kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes waiting.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Room left, in bytes (a `\n` takes two).
    pub fn room(&self) -> usize {
        self.capacity - self.pending.len()
    }

    /// Queues `bytes` (`\n` as `\r\n`); what does not fit is dropped and counted.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            let need = if b == b'\n' { 2 } else { 1 };
            if self.room() < need {
                self.dropped = self.dropped.saturating_add(1);
                continue;
            }
            if b == b'\n' {
                self.pending.push_back(b'\r');
            }
            self.pending.push_back(b);
        }
    }

    /// Writes waiting bytes to `port` while it takes them, waiting at most
    /// `polls_per_byte` polls of a full FIFO for each; returns the bytes written. What
    /// is left stays queued.
    pub fn drain(&mut self, port: &mut dyn TxPort, polls_per_byte: u32) -> usize {
        let mut written = 0;
        while let Some(&b) = self.pending.front() {
            let mut polls = 0;
            while port.tx_full() {
                polls += 1;
                if polls >= polls_per_byte {
                    return written;
                }
                core::hint::spin_loop();
            }
            port.tx_put(b);
            self.pending.pop_front();
            written += 1;
        }
        written
    }

    /// Bytes dropped since the last call (for a report), if any.
    pub fn take_dropped(&mut self) -> Option<u64> {
        let n = core::mem::take(&mut self.dropped);
        (n != 0).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// A UART whose FIFO takes `room` bytes, then stays full for `full_polls` polls.
    struct FakeUart {
        out: Vec<u8>,
        room: usize,
        polls: u64,
    }

    impl TxPort for FakeUart {
        fn tx_full(&mut self) -> bool {
            self.polls += 1;
            self.room == 0
        }
        fn tx_put(&mut self, byte: u8) {
            assert!(self.room > 0, "byte written while full");
            self.room -= 1;
            self.out.push(byte);
        }
    }

    #[test]
    fn newlines_become_crlf_and_everything_drains_to_a_free_uart() {
        let mut q = TxQueue::new(64);
        q.push(b"a\nb");
        let mut u = FakeUart {
            out: Vec::new(),
            room: usize::MAX,
            polls: 0,
        };
        assert_eq!(q.drain(&mut u, 10), 4);
        assert_eq!(u.out, b"a\r\nb");
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn a_full_uart_costs_a_bounded_wait_and_the_rest_waits_for_later() {
        let mut q = TxQueue::new(64);
        q.push(b"hello");
        let mut u = FakeUart {
            out: Vec::new(),
            room: 2,
            polls: 0,
        };
        assert_eq!(q.drain(&mut u, 100), 2);
        assert_eq!(u.out, b"he");
        // Bounded: 2 successful checks plus at most 100 polls of the full FIFO.
        assert!(u.polls <= 102, "{} polls", u.polls);
        assert_eq!(q.pending(), 3);
        // Room again: the rest goes out in order.
        u.room = 10;
        assert_eq!(q.drain(&mut u, 100), 3);
        assert_eq!(u.out, b"hello");
    }

    #[test]
    fn bytes_beyond_the_capacity_are_dropped_and_counted_once() {
        let mut q = TxQueue::new(4);
        q.push(b"abc\n");
        // "abc" fits, "\n" needs two bytes and only one is left.
        assert_eq!(q.pending(), 3);
        q.push(b"xy");
        assert_eq!(q.pending(), 4);
        assert_eq!(q.take_dropped(), Some(2));
        assert_eq!(q.take_dropped(), None);
        let mut u = FakeUart {
            out: Vec::new(),
            room: 100,
            polls: 0,
        };
        q.drain(&mut u, 1);
        assert_eq!(u.out, b"abcx");
    }
}
