//! The [`SharedMemory`] trait: the only way the queue code touches a shared memory region.

use core::fmt;
use core::sync::atomic::Ordering;

/// An access outside a shared memory region (or a misaligned atomic access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Byte offset of the access.
    pub offset: usize,
    /// Length of the access in bytes.
    pub len: usize,
    /// Size of the region.
    pub size: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "access of {} bytes at offset {:#x} is outside the {:#x}-byte shared region or misaligned",
            self.len, self.offset, self.size
        )
    }
}

/// A memory region shared with a peer PD, addressed by byte offset.
///
/// Implementations check every access against the region (and `u32` accesses for
/// 4-byte alignment) and return [`OutOfBounds`] instead of touching anything else.
/// The peer may write the region at any time, so reads may return anything; the
/// implementation must make such races harmless (atomics or volatile accesses).
pub trait SharedMemory {
    /// Size of the region in bytes.
    fn size(&self) -> usize;

    /// Atomically loads the `u32` at `offset` (4-byte aligned) with `order`
    /// (`Relaxed`, `Acquire` or `SeqCst`).
    fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds>;

    /// Atomically stores `value` at `offset` (4-byte aligned) with `order`
    /// (`Relaxed`, `Release` or `SeqCst`).
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds>;

    /// Copies `dst.len()` bytes at `offset` into `dst` (volatile: the peer may be
    /// writing them; the bytes read are then just untrusted data).
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds>;

    /// Copies `src` to `offset` (volatile).
    fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds>;

    /// Copies `len` bytes at `src_offset` of `src` to `offset` of this region (both
    /// ranges checked first; nothing is copied if either is outside its region). The
    /// PD runtime's regions do it in one copy from mapping to mapping; this default
    /// goes through a small stack buffer (for fakes).
    fn copy_from_memory(&self, offset: usize, src: &Self, src_offset: usize, len: usize) -> Result<(), OutOfBounds>
    where
        Self: Sized,
    {
        src.check(src_offset, len)?;
        self.check(offset, len)?;
        let mut chunk = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(chunk.len());
            src.read_bytes(src_offset + done, &mut chunk[..n])?;
            self.write_bytes(offset + done, &chunk[..n])?;
            done += n;
        }
        Ok(())
    }

    /// `Ok(())` if `len` bytes at `offset` lie inside the region (helper for
    /// implementations).
    fn check(&self, offset: usize, len: usize) -> Result<(), OutOfBounds> {
        let size = self.size();
        match offset.checked_add(len) {
            Some(end) if end <= size => Ok(()),
            _ => Err(OutOfBounds { offset, len, size }),
        }
    }

    /// `Ok(())` if a `u32` at `offset` is inside the region and aligned.
    fn check_u32(&self, offset: usize) -> Result<(), OutOfBounds> {
        if !offset.is_multiple_of(4) {
            return Err(OutOfBounds {
                offset,
                len: 4,
                size: self.size(),
            });
        }
        self.check(offset, 4)
    }
}

impl<T: SharedMemory + ?Sized> SharedMemory for &T {
    fn size(&self) -> usize {
        (**self).size()
    }
    fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        (**self).load_u32(offset, order)
    }
    fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds> {
        (**self).store_u32(offset, value, order)
    }
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        (**self).read_bytes(offset, dst)
    }
    fn write_bytes(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        (**self).write_bytes(offset, src)
    }
}
