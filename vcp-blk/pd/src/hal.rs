//! The `virtio-drivers` HAL of vcp-blk: DMA memory from the `dma` memory region (its
//! physical address patched by `setvar region_paddr`), and buffer addresses translated
//! through the table of regions the device may reach: the DMA region and each client's
//! data region (also with `region_paddr`). No IOMMU: the device can reach all memory,
//! so vcp-blk only ever gives it addresses inside these regions, after the block
//! protocol checked every segment. Small driver-internal buffers elsewhere (the
//! request header and status byte of the driver's blocking `flush`, on its stack) are
//! bounced through [`BOUNCE_SLOTS`] slots of a DMA page. QEMU's DMA is cache-coherent; on hardware that is
//! not, `share`/`unshare` would clean/invalidate the buffers here.
#![allow(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Regions the device may reach: 0 = DMA, 1 + i = client i's data region.
const REGIONS: usize = 1 + vcpos_vcp_blk::MAX_CLIENTS;
const PAGE: usize = 0x1000;

struct Region {
    vaddr: AtomicUsize,
    size: AtomicUsize,
    paddr: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const EMPTY: Region = Region {
    vaddr: AtomicUsize::new(0),
    size: AtomicUsize::new(0),
    paddr: AtomicUsize::new(0),
};
static TABLE: [Region; REGIONS] = [EMPTY; REGIONS];
/// Bytes of the DMA region handed out so far.
static DMA_USED: AtomicUsize = AtomicUsize::new(0);
/// Bounce slots: 64 of 64 bytes in one DMA page.
pub const BOUNCE_SLOTS: usize = 64;
const BOUNCE_SLOT: usize = 64;
static BOUNCE_VADDR: AtomicUsize = AtomicUsize::new(0);
static BOUNCE_PADDR: AtomicUsize = AtomicUsize::new(0);
/// Bit i: bounce slot i in use.
static BOUNCE_USED: AtomicU64 = AtomicU64::new(0);

/// Sets aside the bounce page (after the DMA region is registered); false if the
/// region is too small.
pub fn init_bounce() -> bool {
    match carve(PAGE) {
        Some((v, p)) => {
            BOUNCE_VADDR.store(v.as_ptr().expose_provenance(), Ordering::Relaxed);
            BOUNCE_PADDR.store(p as usize, Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Copies `len` bytes between `from` and `to` (either may be device-shared memory).
fn copy(from: *const u8, to: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: callers pass a driver buffer (valid for `len` bytes by the Hal
        // contract) and a bounce slot (inside the carved bounce page, len <= 64).
        unsafe { to.add(i).write_volatile(from.add(i).read_volatile()) };
    }
}

/// Registers region `index` (0 = DMA, 1 + i = client i's data region).
pub fn register(index: usize, vaddr: usize, size: usize, paddr: usize) {
    let r = &TABLE[index];
    r.vaddr.store(vaddr, Ordering::Relaxed);
    r.size.store(size, Ordering::Relaxed);
    r.paddr.store(paddr, Ordering::Relaxed);
}

/// The physical address of `len` bytes at virtual `vaddr`, if they lie in one region.
pub fn translate(vaddr: usize, len: usize) -> Option<PhysAddr> {
    TABLE.iter().find_map(|r| {
        let base = r.vaddr.load(Ordering::Relaxed);
        let size = r.size.load(Ordering::Relaxed);
        let off = vaddr.checked_sub(base)?;
        (base != 0 && off.checked_add(len)? <= size).then(|| (r.paddr.load(Ordering::Relaxed) + off) as PhysAddr)
    })
}

/// `bytes` of the DMA region (page-aligned, zeroed at boot, never freed): the virtual
/// address and the physical one. `None` if the region is exhausted.
pub fn carve(bytes: usize) -> Option<(NonNull<u8>, PhysAddr)> {
    let r = &TABLE[0];
    let bytes = bytes.checked_next_multiple_of(PAGE)?;
    let at = DMA_USED.load(Ordering::Relaxed);
    let end = at.checked_add(bytes)?;
    if end > r.size.load(Ordering::Relaxed) {
        return None;
    }
    DMA_USED.store(end, Ordering::Relaxed);
    let vaddr = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(
        r.vaddr.load(Ordering::Relaxed) + at,
    ))?;
    Some((vaddr, (r.paddr.load(Ordering::Relaxed) + at) as PhysAddr))
}

/// The HAL type given to `VirtIOBlk`.
pub struct VcpHal;

// SAFETY: dma_alloc returns zeroed (regions are zeroed at boot and carved once),
// page-aligned, physically contiguous memory (a region_paddr region is contiguous)
// owned by nobody else; share returns the true physical address of every buffer it is
// given (or stops the PD); nothing is ever deallocated.
unsafe impl Hal for VcpHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match carve(pages * PAGE) {
            Some((vaddr, paddr)) => (paddr, vaddr),
            None => panic!("vcp-blk: DMA region too small for {pages} more pages"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Only when the driver is dropped, which vcp-blk never does.
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        panic!("vcp-blk: mmio_phys_to_virt is only used for PCI; vcp-blk drives virtio-mmio")
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.cast::<u8>().as_ptr().expose_provenance();
        if let Some(p) = translate(vaddr, buffer.len()) {
            return p;
        }
        // Not in a region: a small buffer of the driver's own (never client data: the
        // engine only submits segments the block protocol checked against the
        // client's data region, so anything else is a bug in vcp-blk).
        let used = BOUNCE_USED.load(Ordering::Relaxed);
        let slot = (!used).trailing_zeros() as usize;
        if buffer.len() > BOUNCE_SLOT || slot >= BOUNCE_SLOTS || BOUNCE_VADDR.load(Ordering::Relaxed) == 0 {
            panic!(
                "vcp-blk: DMA buffer {vaddr:#x}+{:#x} outside every region and not bounceable",
                buffer.len()
            );
        }
        BOUNCE_USED.store(used | 1 << slot, Ordering::Relaxed);
        let bounce = BOUNCE_VADDR.load(Ordering::Relaxed) + slot * BOUNCE_SLOT;
        if direction != BufferDirection::DeviceToDriver {
            copy(
                vaddr as *const u8,
                core::ptr::with_exposed_provenance_mut(bounce),
                buffer.len(),
            );
        }
        (BOUNCE_PADDR.load(Ordering::Relaxed) + slot * BOUNCE_SLOT) as PhysAddr
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        let base = BOUNCE_PADDR.load(Ordering::Relaxed);
        let Some(off) = (paddr as usize).checked_sub(base).filter(|&o| base != 0 && o < PAGE) else {
            return; // a region buffer: nothing to do (coherent DMA)
        };
        let slot = off / BOUNCE_SLOT;
        if direction != BufferDirection::DriverToDevice {
            let bounce = BOUNCE_VADDR.load(Ordering::Relaxed) + slot * BOUNCE_SLOT;
            copy(
                core::ptr::with_exposed_provenance(bounce),
                buffer.cast::<u8>().as_ptr(),
                buffer.len().min(BOUNCE_SLOT),
            );
        }
        BOUNCE_USED.fetch_and(!(1 << slot), Ordering::Relaxed);
    }
}
