//! The `virtio-drivers` HAL of every VCP PD (vcp-blk, vcp-net): DMA memory (virtqueues,
//! request headers, status bytes, a NIC's receive buffers) from the PD's `dma` memory
//! region (its physical address patched by `setvar region_paddr`), and buffer addresses
//! translated through the table of regions the device may reach: the DMA region and
//! each client's data region (also with `region_paddr`). No IOMMU: the device can reach
//! all memory, so a VCP only ever gives it addresses inside these regions, after its
//! protocol checked every buffer; there are no bounce buffers. QEMU's DMA is
//! cache-coherent; on hardware that is not, `share`/`unshare` would clean/invalidate the
//! buffers here. A PD has one device, so the table is one static per PD.
#![no_std]
#![allow(unsafe_code)]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// Regions the device may reach: 0 = DMA, 1 + i = client i's data region.
const REGIONS: usize = 1 + vcpos_vcp_common::config::MAX_CLIENTS;
/// The page size DMA memory is carved in.
pub const PAGE: usize = 0x1000;

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

/// The HAL type a VCP gives its transport and virtqueues.
pub struct VcpHal;

// SAFETY: dma_alloc returns zeroed (regions are zeroed at boot and carved once),
// page-aligned, physically contiguous memory (a region_paddr region is contiguous)
// owned by nobody else; share returns the true physical address of every buffer it is
// given (or stops the PD); nothing is ever deallocated.
unsafe impl Hal for VcpHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        match carve(pages * PAGE) {
            Some((vaddr, paddr)) => (paddr, vaddr),
            None => panic!("DMA region too small for {pages} more pages"),
        }
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Only when a virtqueue is dropped, which a VCP never does.
        0
    }

    unsafe fn mmio_phys_to_virt(_paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        panic!("mmio_phys_to_virt is only used for PCI; the VCPs drive virtio-mmio")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        let vaddr = buffer.cast::<u8>().as_ptr().expose_provenance();
        match translate(vaddr, buffer.len()) {
            Some(p) => p,
            // A VCP hands the device only its DMA memory and client buffers its
            // protocol checked: anything else is a bug in the VCP.
            None => panic!("DMA buffer {vaddr:#x}+{:#x} outside every region", buffer.len()),
        }
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {
        // Coherent DMA, no bounce buffers: nothing to do.
    }
}

/// A VCP's virtio-mmio device page (`setvar_vaddr` of its uncached device map): the
/// one place a VCP reads device registers before its driver takes over.
#[derive(Clone, Copy)]
pub struct DevicePage(NonNull<u8>);

impl DevicePage {
    /// The device page mapped at `vaddr`, or `None` if the system maps none (0).
    ///
    /// # Safety
    /// A non-zero `vaddr` must be a 4 KiB page of virtio-mmio transports mapped (uncached)
    /// for the PD's whole life.
    pub unsafe fn new(vaddr: usize) -> Option<DevicePage> {
        NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(vaddr)).map(DevicePage)
    }

    /// The 32-bit register at `offset`; panics (naming the offset) outside the page or
    /// unaligned: the callers pass transport offsets and register numbers.
    pub fn read_u32(&self, offset: usize) -> u32 {
        assert!(
            offset.is_multiple_of(4) && offset + 4 <= PAGE,
            "device register offset {offset:#x} outside the page or unaligned"
        );
        // SAFETY: inside the mapped page (checked above), 4-aligned; `new`'s contract
        // says the page is device memory mapped for the PD's life, where a volatile
        // load is how a register is read.
        unsafe { self.0.add(offset).cast::<u32>().read_volatile() }
    }

    /// The registers of the transport at `offset` (a multiple of the 0x200 stride), for
    /// the driver; panics outside the page.
    pub fn transport(&self, offset: usize) -> NonNull<u8> {
        assert!(offset < PAGE, "transport offset {offset:#x} outside the device page");
        // SAFETY: offset < PAGE keeps the pointer inside the mapped page.
        unsafe { self.0.add(offset) }
    }
}
