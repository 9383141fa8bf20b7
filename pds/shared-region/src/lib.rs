//! [`MappedRegion`]: a memory region mapped into this PD (address and size patched by
//! the builder) as a [`vcpos_queue::SharedMemory`], with every access bounds-checked.
//!
//! A stopgap with the only `unsafe` of the queue stack, until the PD runtime's own
//! shared-region accessor lands; then this crate implements the trait for that.
#![no_std]
#![warn(missing_docs)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, Ordering};

use vcpos_queue::{OutOfBounds, SharedMemory};

/// A memory region mapped read-write into this PD for the PD's whole life.
#[derive(Clone, Copy, Debug)]
pub struct MappedRegion {
    base: NonNull<u8>,
    size: usize,
}

impl MappedRegion {
    /// The region of `size` bytes at `base`.
    ///
    /// # Safety
    /// `base..base + size` must be mapped read-write into this PD for the rest of its
    /// life, `base` 4-byte aligned, and the memory only ever accessed through
    /// atomics and volatile accesses (here, by peers, or by devices), never through
    /// Rust references.
    pub const unsafe fn new(base: NonNull<u8>, size: usize) -> MappedRegion {
        MappedRegion { base, size }
    }

    /// The address of byte `offset`, if `len` bytes from there are inside the region
    /// (for handing buffers to a device).
    pub fn range(&self, offset: usize, len: usize) -> Option<NonNull<[u8]>> {
        self.check(offset, len).ok()?;
        // SAFETY: offset + len <= size, so the pointer stays inside the mapped region.
        let start = unsafe { self.base.add(offset) };
        Some(NonNull::slice_from_raw_parts(start, len))
    }

    /// The base address.
    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    fn word(&self, offset: usize) -> Result<&AtomicU32, OutOfBounds> {
        self.check_u32(offset)?;
        // SAFETY: checked in bounds and 4-aligned (base is 4-aligned); the memory is
        // mapped for the PD's life and only accessed atomically or volatilely (the
        // contract of `new`), so an `&AtomicU32` to it is sound.
        Ok(unsafe { AtomicU32::from_ptr(self.base.add(offset).cast::<u32>().as_ptr()) })
    }
}

// SAFETY: a MappedRegion is an address range; all accesses through it are atomic or
// volatile, so sharing it between threads (there is one per PD) cannot race.
unsafe impl Send for MappedRegion {}
// SAFETY: as for Send.
unsafe impl Sync for MappedRegion {}

impl SharedMemory for MappedRegion {
    fn size(&self) -> usize {
        self.size
    }

    fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        Ok(self.word(offset)?.load(order))
    }

    fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds> {
        self.word(offset)?.store(value, order);
        Ok(())
    }

    fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len())?;
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: offset + i < offset + len <= size: inside the mapped region;
            // volatile because a peer may write it concurrently.
            *b = unsafe { self.base.add(offset + i).read_volatile() };
        }
        Ok(())
    }

    fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len())?;
        for (i, &b) in src.iter().enumerate() {
            // SAFETY: inside the mapped region as above; volatile as above.
            unsafe { self.base.add(offset + i).write_volatile(b) };
        }
        Ok(())
    }
}
