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
}
