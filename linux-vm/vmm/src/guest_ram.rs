//! The VM's RAM as the VMM sees it: its mapping of the guest RAM memory region, a
//! [`SharedRegion`], accessed only by the runtime's bounds-checked copies.

use sel4_microkit::{RegionError, SharedRegion};
use vcpos_virtio::memory::{GuestMemory, MemoryError};

/// Guest RAM: the memory region mapped into both the VM (at guest-physical `base`) and
/// this PD.
pub struct MappedRam {
    region: SharedRegion,
    base: u64,
}

impl MappedRam {
    /// Guest RAM at guest-physical `base`, backed by `region`.
    pub fn new(region: SharedRegion, base: u64) -> MappedRam {
        MappedRam { region, base }
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.region.len() as u64
    }

    /// Copies `len` bytes of `src` (from its start) to guest-physical `addr`.
    pub fn load(&self, addr: u64, src: &SharedRegion, len: usize) -> Result<(), MemoryError> {
        let off = self.offset(addr, len as u64)?;
        self.region
            .copy_from(off, src, 0, len)
            .map_err(|e| region_error(addr, e))
    }

    /// Offset of `[addr, addr + len)` in the region, if wholly inside it.
    fn offset(&self, addr: u64, len: u64) -> Result<usize, MemoryError> {
        let err = MemoryError { addr, len };
        let off = addr.checked_sub(self.base).ok_or(err)?;
        let end = off.checked_add(len).ok_or(err)?;
        if end > self.size() {
            return Err(err);
        }
        usize::try_from(off).map_err(|_| err)
    }
}

/// A region error (which `offset` already rules out) as a guest memory error at `addr`.
fn region_error(addr: u64, e: RegionError) -> MemoryError {
    let len = match e {
        RegionError::OutOfBounds { len, .. } => len as u64,
        RegionError::Misaligned { .. } => 0,
    };
    MemoryError { addr, len }
}

impl GuestMemory for MappedRam {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        let off = self.offset(addr, buf.len() as u64)?;
        self.region.read_bytes(off, buf).map_err(|e| region_error(addr, e))
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        let off = self.offset(addr, data.len() as u64)?;
        self.region.write_bytes(off, data).map_err(|e| region_error(addr, e))
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.offset(addr, len).map(drop)
    }
}
