//! Small pieces of the VMM's guest-exit handling, kept here so they are host-tested:
//! the PC after an emulated instruction and the rate limit on stray-access reports.

use vcpos_abi::esr::instruction_length;

/// The guest PC after the trapped instruction at `pc` (ESR.IL gives its length). A PC
/// at the top of the address space wraps, as the CPU's would; it never panics.
pub const fn next_pc(pc: u64, esr: u64) -> u64 {
    pc.wrapping_add(instruction_length(esr))
}

/// Counts guest accesses outside its memory and says which to report: the first
/// `limit`, then nothing (a guest probing in a loop cannot flood the console). The
/// count saturates instead of overflowing.
#[derive(Clone, Copy, Debug)]
pub struct StrayCounter {
    count: u32,
    limit: u32,
}

impl StrayCounter {
    /// A counter that reports the first `limit` accesses.
    pub const fn new(limit: u32) -> Self {
        StrayCounter { count: 0, limit }
    }

    /// Counts one access; true if it is to be reported.
    pub fn record(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        self.count <= self.limit
    }

    /// Accesses counted so far (saturating at `u32::MAX`).
    pub fn count(&self) -> u32 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IL: u64 = 1 << 25;

    #[test]
    fn next_pc_adds_the_instruction_length_and_wraps() {
        assert_eq!(next_pc(0x1000, IL), 0x1004);
        assert_eq!(next_pc(0x1000, 0), 0x1002);
        assert_eq!(next_pc(u64::MAX - 1, IL), 2);
        assert_eq!(next_pc(u64::MAX, 0), 1);
    }

    #[test]
    fn stray_reports_are_limited_and_the_count_saturates() {
        let mut c = StrayCounter::new(2);
        assert!(c.record());
        assert!(c.record());
        assert!(!c.record());
        assert_eq!(c.count(), 3);
        let mut full = StrayCounter {
            count: u32::MAX - 1,
            limit: 16,
        };
        assert!(!full.record());
        assert!(!full.record());
        assert_eq!(full.count(), u32::MAX);
    }
}
