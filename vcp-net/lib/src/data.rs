//! [`DataRegion`]: a client's data region as the engine needs it: a [`SharedMemory`]
//! that can also copy bytes straight from another client's data region, so a frame
//! between two clients is copied once, from the sender's buffer into the receiver's.

use vcpos_queue::{OutOfBounds, SharedMemory};

use crate::offload::Sum;

/// A data region frames are copied between.
pub trait DataRegion: SharedMemory {
    /// Copies `len` bytes at `src_offset` of `src` to `offset` of this region, in one
    /// copy (no intermediate buffer).
    fn copy_from(&self, offset: usize, src: &Self, src_offset: usize, len: usize) -> Result<(), OutOfBounds>;

    /// The ones'-complement sum of `len` bytes at `offset` (for checksum offloads),
    /// read a stack buffer at a time (the bytes stay where they are).
    fn sum(&self, offset: usize, len: usize) -> Result<Sum, OutOfBounds> {
        self.check(offset, len)?;
        let mut buf = [0u8; 512];
        let mut acc = Sum::default();
        let mut done = 0;
        while done < len {
            let n = (len - done).min(buf.len());
            self.read_bytes(offset + done, &mut buf[..n])?;
            // Every chunk but the last is of even length: the words stay aligned.
            acc = acc.add_at(Sum::of(&buf[..n]), 0);
            done += n;
        }
        Ok(acc)
    }
}

/// The heap-backed fake of host tests: a model, copying through a buffer.
#[cfg(feature = "fake")]
impl DataRegion for vcpos_queue::fake::FakeMemory {
    fn copy_from(&self, offset: usize, src: &Self, src_offset: usize, len: usize) -> Result<(), OutOfBounds> {
        src.check(src_offset, len)?;
        self.check(offset, len)?;
        let mut bytes = alloc::vec![0u8; len];
        src.read_bytes(src_offset, &mut bytes)?;
        self.write_bytes(offset, &bytes)
    }
}

/// The PD runtime's mapped regions: `SharedRegion::copy_from`, one `memmove` from one
/// mapping to the other.
#[cfg(feature = "microkit")]
impl DataRegion for vcpos_microkit::SharedRegion {
    fn copy_from(&self, offset: usize, src: &Self, src_offset: usize, len: usize) -> Result<(), OutOfBounds> {
        vcpos_microkit::SharedRegion::copy_from(self, offset, src, src_offset, len).map_err(|_| OutOfBounds {
            offset,
            len,
            size: self.len(),
        })
    }
}

#[cfg(all(test, feature = "microkit"))]
mod tests {
    use super::*;
    use vcpos_microkit::SharedRegion;

    #[test]
    fn shared_region_copies_between_regions() {
        let a = SharedRegion::new_host("a", 8192);
        let b = SharedRegion::new_host("b", 4096);
        a.write_bytes(5000, &[1, 2, 3, 4, 5]).unwrap();
        DataRegion::copy_from(&b, 10, &a, 5001, 3).unwrap();
        let mut out = [0u8; 5];
        b.read_bytes(9, &mut out).unwrap();
        assert_eq!(out, [0, 2, 3, 4, 0]);
        assert!(DataRegion::copy_from(&b, 4095, &a, 0, 2).is_err());
        assert!(DataRegion::copy_from(&b, 0, &a, 8191, 2).is_err());
        assert!(DataRegion::copy_from(&b, 0, &a, usize::MAX, 2).is_err());
    }
}
