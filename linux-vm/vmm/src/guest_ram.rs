//! The VM's RAM as the VMM sees it: its mapping of the guest RAM memory region,
//! accessed only by bounds-checked copies.

use vcpos_virtio::memory::{GuestMemory, MemoryError};

/// Guest RAM: `size` bytes of guest-physical memory from `base`, mapped into this PD
/// at `ptr` by the system description.
pub struct MappedRam {
    ptr: *mut u8,
    base: u64,
    size: u64,
}

impl MappedRam {
    /// Guest RAM at guest-physical `base`, mapped at `ptr` for `size` bytes.
    ///
    /// # Safety
    ///
    /// `ptr .. ptr + size` must be mapped readable and writable in this PD for the
    /// PD's lifetime, and no Rust reference may ever point into it (the guest changes
    /// it behind the compiler's back: all access is by copying, here).
    pub unsafe fn new(ptr: *mut u8, base: u64, size: u64) -> MappedRam {
        MappedRam { ptr, base, size }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Offset of `[addr, addr + len)` in the mapping, if wholly inside it.
    fn offset(&self, addr: u64, len: u64) -> Result<usize, MemoryError> {
        let err = MemoryError { addr, len };
        let off = addr.checked_sub(self.base).ok_or(err)?;
        let end = off.checked_add(len).ok_or(err)?;
        if end > self.size {
            return Err(err);
        }
        Ok(off as usize)
    }
}

impl GuestMemory for MappedRam {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let off = self.offset(addr, buf.len() as u64)?;
        // SAFETY: `offset` checked the range lies inside the mapping (`new`'s
        // contract); `buf` is a distinct Rust buffer, so the copy cannot overlap.
        unsafe { core::ptr::copy_nonoverlapping(self.ptr.add(off), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let off = self.offset(addr, data.len() as u64)?;
        // SAFETY: as for `read`; the mapping is writable.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.add(off), data.len()) };
        Ok(())
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.offset(addr, len).map(drop)
    }
}
