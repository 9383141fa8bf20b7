//! [`BufferSet`]: a set of fixed-size buffers of a data region (the client half's
//! fixed-buffer helper keeps its free transmit buffers in one).

use crate::layout::{BUF_SIZE, MAX_BUFFERS};

const WORDS: usize = (MAX_BUFFERS as usize).div_ceil(64);

/// A set of buffer indices in `0..buffers` (a bitmap, no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferSet {
    bits: [u64; WORDS],
    buffers: u32,
    len: u32,
}

impl BufferSet {
    /// An empty set for a data region of `buffers` buffers (at most [`MAX_BUFFERS`];
    /// more are clamped).
    pub const fn new(buffers: u32) -> BufferSet {
        BufferSet {
            bits: [0; WORDS],
            buffers: if buffers > MAX_BUFFERS { MAX_BUFFERS } else { buffers },
            len: 0,
        }
    }

    /// The buffer index named by `offset`, if it is on a buffer boundary inside the
    /// region.
    pub fn index(&self, offset: u64) -> Option<u32> {
        if !offset.is_multiple_of(u64::from(BUF_SIZE)) {
            return None;
        }
        let i = offset / u64::from(BUF_SIZE);
        if i < u64::from(self.buffers) {
            Some(i as u32)
        } else {
            None
        }
    }

    /// The offset of buffer `index`.
    pub const fn offset(index: u32) -> u64 {
        index as u64 * BUF_SIZE as u64
    }

    /// Buffers in the region.
    pub fn buffers(&self) -> u32 {
        self.buffers
    }

    /// Buffers in the set.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether buffer `index` is in the set.
    pub fn contains(&self, index: u32) -> bool {
        index < self.buffers && self.bits[index as usize / 64] & (1 << (index % 64)) != 0
    }

    /// Adds buffer `index`; `false` if it is already in the set or out of range.
    pub fn insert(&mut self, index: u32) -> bool {
        if index >= self.buffers || self.contains(index) {
            return false;
        }
        self.bits[index as usize / 64] |= 1 << (index % 64);
        self.len += 1;
        true
    }

    /// Removes buffer `index`; `false` if it was not in the set.
    pub fn remove(&mut self, index: u32) -> bool {
        if !self.contains(index) {
            return false;
        }
        self.bits[index as usize / 64] &= !(1 << (index % 64));
        self.len -= 1;
        true
    }

    /// Removes and returns the lowest buffer index in the set.
    pub fn pop_first(&mut self) -> Option<u32> {
        let (w, word) = self.bits.iter().enumerate().find(|(_, &w)| w != 0)?;
        let i = w as u32 * 64 + word.trailing_zeros();
        self.remove(i);
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_rules() {
        let mut s = BufferSet::new(100);
        assert_eq!(s.index(0), Some(0));
        assert_eq!(s.index(2048 * 99), Some(99));
        assert_eq!(s.index(2048 * 100), None);
        assert_eq!(s.index(1), None);
        assert_eq!(s.index(u64::MAX), None);
        assert!(s.insert(70));
        assert!(!s.insert(70));
        assert!(!s.insert(100));
        assert!(s.insert(3));
        assert_eq!(s.len(), 2);
        assert_eq!(s.pop_first(), Some(3));
        assert!(!s.remove(3));
        assert!(s.remove(70));
        assert!(s.is_empty());
        assert_eq!(s.pop_first(), None);
    }
}
