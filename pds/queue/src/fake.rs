//! [`FakeMemory`]: a heap-backed [`SharedMemory`] for host tests; clones share the
//! same bytes, so two threads (or a test playing a hostile peer) can use one region.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::memory::{OutOfBounds, SharedMemory};

/// A shared region of `size` bytes (a multiple of 4) backed by atomic words.
#[derive(Clone, Debug)]
pub struct FakeMemory {
    words: Arc<[AtomicU32]>,
}

impl FakeMemory {
    /// A zeroed region of `size` bytes, rounded up to a multiple of 4.
    pub fn new(size: usize) -> FakeMemory {
        let words: Vec<AtomicU32> = (0..size.div_ceil(4)).map(|_| AtomicU32::new(0)).collect();
        FakeMemory { words: words.into() }
    }

    fn byte(&self, offset: usize) -> u8 {
        (self.words[offset / 4].load(Ordering::Relaxed) >> ((offset % 4) * 8)) as u8
    }

    fn set_byte(&self, offset: usize, value: u8) {
        let shift = (offset % 4) * 8;
        let _ = self.words[offset / 4].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
            Some((w & !(0xff << shift)) | (u32::from(value) << shift))
        });
    }
}

impl SharedMemory for FakeMemory {
    fn size(&self) -> usize {
        self.words.len() * 4
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        self.check_u32(offset)?;
        Ok(self.words[offset / 4].load(order))
    }

    fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds> {
        self.check_u32(offset)?;
        self.words[offset / 4].store(value, order);
        Ok(())
    }

    fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len())?;
        if offset.is_multiple_of(4) && dst.len().is_multiple_of(4) {
            for (i, chunk) in dst.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&self.words[offset / 4 + i].load(Ordering::Relaxed).to_le_bytes());
            }
        } else {
            for (i, b) in dst.iter_mut().enumerate() {
                *b = self.byte(offset + i);
            }
        }
        Ok(())
    }

    fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len())?;
        if offset.is_multiple_of(4) && src.len().is_multiple_of(4) {
            for (i, chunk) in src.chunks_exact(4).enumerate() {
                let w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                self.words[offset / 4 + i].store(w, Ordering::Relaxed);
            }
        } else {
            for (i, &b) in src.iter().enumerate() {
                self.set_byte(offset + i, b);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_bytes() {
        let m = FakeMemory::new(16);
        assert!(m.load_u32(16, Ordering::Relaxed).is_err());
        assert!(m.load_u32(2, Ordering::Relaxed).is_err());
        assert!(m.write_bytes(15, &[1, 2]).is_err());
        assert!(m.write_bytes(usize::MAX, &[1]).is_err());
        m.write_bytes(1, &[0xaa, 0xbb, 0xcc, 0xdd, 0xee]).unwrap();
        let mut out = [0u8; 8];
        m.read_bytes(0, &mut out).unwrap();
        assert_eq!(out, [0, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0, 0]);
        assert_eq!(m.load_u32(4, Ordering::Relaxed).unwrap(), 0xeedd);
    }

    #[test]
    fn copy_between_memories() {
        let (a, b) = (FakeMemory::new(1000), FakeMemory::new(600));
        let bytes: Vec<u8> = (0..700u32).map(|i| (i * 7) as u8).collect();
        a.write_bytes(100, &bytes).unwrap();
        // Longer than the default's stack buffer, at odd offsets.
        b.copy_from_memory(3, &a, 101, 597).unwrap();
        let mut out = [0u8; 597];
        b.read_bytes(3, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[1..598]);
        // Either range outside its region: an error, nothing copied.
        b.write_bytes(0, &[0; 600]).unwrap();
        assert!(b.copy_from_memory(0, &a, 900, 101).is_err());
        assert!(b.copy_from_memory(500, &a, 0, 101).is_err());
        assert!(b.copy_from_memory(0, &a, usize::MAX, 2).is_err());
        let mut all = [1u8; 600];
        b.read_bytes(0, &mut all).unwrap();
        assert!(all.iter().all(|&x| x == 0));
    }
}
