//! Guest-physical memory as the device side sees it: bounds-checked byte copies.
//!
//! Every access a virtio device makes to guest RAM (rings, descriptor tables,
//! buffers) goes through [`GuestMemory`], so a single implementation decides what is
//! reachable. All addresses and lengths come from the guest and are untrusted: an
//! implementation must reject (never panic on, never wrap around) any range that is not
//! wholly inside guest RAM.
//!
//! [`GuestRam`] is the implementation over one contiguous byte buffer: a `Vec<u8>` in
//! host tests ([`VecMemory`]) or, in the VMM, the slice over the PD's mapping of the
//! VM's RAM memory region.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// A guest-physical range that is not (wholly) backed by guest RAM, or whose end
/// overflows the 64-bit address space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryError {
    /// First guest-physical address of the rejected range.
    pub addr: u64,
    /// Length of the rejected range in bytes.
    pub len: u64,
}

impl fmt::Display for MemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "guest-physical range {:#x}+{:#x} is outside guest memory",
            self.addr, self.len
        )
    }
}

/// Guest-physical memory, accessed by copying.
///
/// Implementations must check the whole range `addr .. addr + len` (with overflow
/// checks) and return [`MemoryError`] without touching memory if any part is outside.
/// Reads and writes copy, so the device never holds a reference into memory the guest
/// may change concurrently (each field is read once and then validated).
pub trait GuestMemory {
    /// Copies `buf.len()` bytes starting at guest-physical `addr` into `buf`.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    /// Copies `data` to guest-physical `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError>;

    /// Checks that `addr .. addr + len` is wholly inside guest memory.
    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError>;

    /// Reads a little-endian `u16` (virtio 1.2 §1.4: all ring fields are little-endian).
    fn read_u16(&self, addr: u64) -> Result<u16, MemoryError> {
        let mut b = [0u8; 2];
        self.read(addr, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, addr: u64) -> Result<u32, MemoryError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, addr: u64) -> Result<u64, MemoryError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Writes a little-endian `u16`.
    fn write_u16(&mut self, addr: u64, value: u16) -> Result<(), MemoryError> {
        self.write(addr, &value.to_le_bytes())
    }

    /// Writes a little-endian `u32`.
    fn write_u32(&mut self, addr: u64, value: u32) -> Result<(), MemoryError> {
        self.write(addr, &value.to_le_bytes())
    }

    /// Writes a little-endian `u64`.
    fn write_u64(&mut self, addr: u64, value: u64) -> Result<(), MemoryError> {
        self.write(addr, &value.to_le_bytes())
    }
}

/// Guest RAM as one contiguous byte buffer starting at guest-physical `base`.
///
/// `B` is `Vec<u8>` for tests ([`VecMemory`]) or `&mut [u8]` for a mapping the VMM
/// already holds.
#[derive(Debug, Clone)]
pub struct GuestRam<B> {
    base: u64,
    bytes: B,
}

/// Guest RAM owned in a `Vec`, for host tests.
pub type VecMemory = GuestRam<Vec<u8>>;

impl VecMemory {
    /// `size` zero bytes of guest RAM at guest-physical `base`.
    pub fn zeroed(base: u64, size: usize) -> Self {
        Self::new(base, vec![0u8; size])
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> GuestRam<B> {
    /// Guest RAM backed by `bytes`, whose first byte is at guest-physical `base`.
    pub fn new(base: u64, bytes: B) -> Self {
        Self { base, bytes }
    }

    /// Guest-physical address of the first byte.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.bytes.as_ref().len()
    }

    /// The whole RAM (for tests and inspection).
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The whole RAM, mutable (for tests that play the guest).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.bytes.as_mut()
    }

    /// Index range inside `bytes` for the guest range, or the error.
    fn span(&self, addr: u64, len: u64) -> Result<core::ops::Range<usize>, MemoryError> {
        let err = MemoryError { addr, len };
        let start = addr.checked_sub(self.base).ok_or(err)?;
        let end = start.checked_add(len).ok_or(err)?;
        if end > self.bytes.as_ref().len() as u64 {
            return Err(err);
        }
        // Both fit in usize because they are at most the buffer length.
        Ok(start as usize..end as usize)
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> GuestMemory for GuestRam<B> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let span = self.span(addr, buf.len() as u64)?;
        buf.copy_from_slice(&self.bytes.as_ref()[span]);
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let span = self.span(addr, data.len() as u64)?;
        self.bytes.as_mut()[span].copy_from_slice(data);
        Ok(())
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.span(addr, len).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_and_edges() {
        let mut m = VecMemory::zeroed(0x4000_0000, 0x1000);
        m.write_u32(0x4000_0ffc, 0xdead_beef).unwrap();
        assert_eq!(m.read_u32(0x4000_0ffc).unwrap(), 0xdead_beef);
        assert_eq!(m.as_bytes()[0xffc], 0xef);
        assert!(m.check_range(0x4000_0000, 0x1000).is_ok());
        assert!(m.check_range(0x4000_1000, 0).is_ok());
        assert!(m.check_range(0x4000_0000, 0x1001).is_err());
        assert!(m.read_u32(0x4000_0ffd).is_err());
        assert!(m.read_u16(0x3fff_ffff).is_err());
    }

    #[test]
    fn overflowing_ranges_are_rejected() {
        let m = VecMemory::zeroed(0x1000, 0x1000);
        assert!(m.check_range(u64::MAX, 2).is_err());
        assert!(m.check_range(0x1800, u64::MAX).is_err());
        let top = VecMemory::zeroed(u64::MAX - 0xf, 0x10);
        assert!(top.check_range(u64::MAX - 0xf, 0x10).is_ok());
        assert!(top.check_range(u64::MAX, 2).is_err());
    }

    #[test]
    fn failed_write_changes_nothing() {
        let mut m = VecMemory::zeroed(0, 8);
        assert_eq!(m.write(6, &[1, 2, 3]), Err(MemoryError { addr: 6, len: 3 }));
        assert_eq!(m.as_bytes(), &[0u8; 8]);
    }

    #[test]
    fn slice_backed() {
        let mut backing = [0u8; 16];
        let mut m = GuestRam::new(0x100, &mut backing[..]);
        m.write_u64(0x108, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(m.read_u64(0x108).unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(backing[8], 0x08);
    }
}
