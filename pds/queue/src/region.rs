//! [`SharedMemory`] for the PD runtime's `SharedRegion`: queues in PDs use the
//! runtime's bounds-checked accessor, so this crate needs no `unsafe`.

use core::sync::atomic::Ordering;

use vcpos_microkit::{RegionError, SharedRegion};

use crate::memory::{OutOfBounds, SharedMemory};

fn out_of_bounds(e: RegionError, size: usize) -> OutOfBounds {
    match e {
        RegionError::OutOfBounds { offset, len, size, .. } => OutOfBounds { offset, len, size },
        RegionError::Misaligned { offset, align, .. } => OutOfBounds {
            offset,
            len: align,
            size,
        },
    }
}

impl SharedMemory for SharedRegion {
    fn size(&self) -> usize {
        self.len()
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        let size = self.len();
        Ok(self.atomic_u32(offset).map_err(|e| out_of_bounds(e, size))?.load(order))
    }

    fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds> {
        let size = self.len();
        self.atomic_u32(offset)
            .map_err(|e| out_of_bounds(e, size))?
            .store(value, order);
        Ok(())
    }

    fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        let size = self.len();
        SharedRegion::read_bytes(self, offset, dst).map_err(|e| out_of_bounds(e, size))
    }

    fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        let size = self.len();
        SharedRegion::write_bytes(self, offset, src).map_err(|e| out_of_bounds(e, size))
    }

    /// One copy from mapping to mapping (`SharedRegion::copy_from`), no buffer.
    fn copy_from_memory(&self, offset: usize, src: &Self, src_offset: usize, len: usize) -> Result<(), OutOfBounds> {
        let size = self.len();
        SharedRegion::copy_from(self, offset, src, src_offset, len).map_err(|e| out_of_bounds(e, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Consumer, Producer, RingLayout};

    #[test]
    fn rings_over_a_shared_region() {
        let r = SharedRegion::new_host("ring", 0x1000);
        let layout = RingLayout::new(0, 8, 8).unwrap();
        let mut p = Producer::<_, u64>::new(r.clone(), layout).unwrap();
        let mut c = Consumer::<_, u64>::new(r.clone(), layout).unwrap();
        p.push(&0x1122_3344_5566_7788).unwrap();
        assert_eq!(c.pop().unwrap(), Some(0x1122_3344_5566_7788));
        assert!(r.load_u32(0x1000, Ordering::Relaxed).is_err());
        assert!(r.load_u32(2, Ordering::Relaxed).is_err());
    }

    #[test]
    fn copy_between_shared_regions() {
        let (a, b) = (SharedRegion::new_host("a", 0x1000), SharedRegion::new_host("b", 0x800));
        let bytes: Vec<u8> = (0..1500u32).map(|i| (i * 13) as u8).collect();
        SharedMemory::write_bytes(&a, 5, &bytes).unwrap();
        b.copy_from_memory(7, &a, 5, 1500).unwrap();
        let mut out = [0u8; 1500];
        SharedMemory::read_bytes(&b, 7, &mut out).unwrap();
        assert_eq!(&out[..], &bytes[..]);
        let e = b.copy_from_memory(0x700, &a, 0, 0x200).unwrap_err();
        assert_eq!((e.offset, e.len, e.size), (0x700, 0x200, 0x800));
    }
}
