//! [`VirtioDisk`]: the engine's [`BlockDevice`] on `virtio-drivers`' `VirtIOBlk` over
//! the virtio-mmio transport, with many transfers in flight (the non-blocking
//! `read_blocks_nb`/`complete_read_blocks` API). Data moves by DMA straight between
//! the disk and the client's data region (zero copy); request headers and status bytes
//! live in the DMA region.
#![allow(unsafe_code)]

use core::ptr::NonNull;

use sel4_microkit::SharedRegion;
use vcpos_vcp_blk::{BlockDevice, Direction, SubmitError, Transfer, MAX_CLIENTS};
use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
use virtio_drivers::transport::mmio::{MmioTransport, VirtIOHeader};
use virtio_drivers::transport::InterruptStatus;
use virtio_drivers::Error;

use crate::hal::{carve, VcpHal};

/// Request slots: the driver's virtqueue has 16 descriptors.
const SLOTS: usize = 16;
/// Without indirect descriptors a transfer takes 3 descriptors (header, data, status).
const MAX_IN_FLIGHT: usize = SLOTS / 3;

#[derive(Clone, Copy)]
struct Op {
    token: u16,
    direction: Direction,
    buf: NonNull<[u8]>,
}

/// The virtio-blk device.
pub struct VirtioDisk {
    blk: VirtIOBlk<VcpHal, MmioTransport<'static>>,
    reqs: &'static mut [BlkReq; SLOTS],
    resps: &'static mut [BlkResp; SLOTS],
    ops: [Option<Op>; SLOTS],
    data: [Option<SharedRegion>; MAX_CLIENTS],
}

/// Why the device could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// The transport refused (bad magic, version, device id).
    Transport(virtio_drivers::transport::mmio::MmioError),
    /// The driver's initialisation failed.
    Driver(Error),
    /// The DMA region is too small.
    Dma,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Transport(e) => write!(f, "virtio-mmio transport: {e}"),
            InitError::Driver(e) => write!(f, "virtio-blk driver: {e}"),
            InitError::Dma => f.write_str("DMA region too small"),
        }
    }
}

/// A `T`-array of `SLOTS` in fresh DMA memory, each set to `value()`.
fn dma_array<T>(value: impl Fn() -> T) -> Result<&'static mut [T; SLOTS], InitError> {
    let (ptr, _) = carve(core::mem::size_of::<[T; SLOTS]>()).ok_or(InitError::Dma)?;
    let array = ptr.cast::<[T; SLOTS]>();
    for i in 0..SLOTS {
        // SAFETY: carve returned page-aligned (so aligned for T) memory of at least
        // SLOTS * size_of::<T>() bytes, owned by nobody else.
        unsafe { array.cast::<T>().add(i).write(value()) };
    }
    // SAFETY: initialised above; the memory is never handed out again, so this is the
    // only reference.
    Ok(unsafe { &mut *array.as_ptr() })
}

/// The address range `offset..offset + len` of `region`, for the device (never
/// dereferenced by vcp-blk), if it lies inside the region.
fn dma_buffer(region: &SharedRegion, offset: usize, len: usize) -> Option<NonNull<[u8]>> {
    region.slice(offset, len).ok()?;
    let start = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(region.addr() + offset))?;
    Some(NonNull::slice_from_raw_parts(start, len))
}

impl VirtioDisk {
    /// Sets up the device whose virtio-mmio registers are at `header` (mapped uncached,
    /// `size` bytes), with `data` = each client's data region.
    ///
    /// # Safety
    /// `header` must be a virtio-mmio transport mapped into this PD for its life and
    /// used by nothing else.
    pub unsafe fn new(
        header: NonNull<u8>,
        size: usize,
        data: [Option<SharedRegion>; MAX_CLIENTS],
    ) -> Result<VirtioDisk, InitError> {
        // SAFETY: by the caller's contract.
        let transport =
            unsafe { MmioTransport::new(header.cast::<VirtIOHeader>(), size) }.map_err(InitError::Transport)?;
        let blk = VirtIOBlk::<VcpHal, _>::new(transport).map_err(InitError::Driver)?;
        Ok(VirtioDisk {
            blk,
            reqs: dma_array(BlkReq::default)?,
            resps: dma_array(BlkResp::default)?,
            ops: [None; SLOTS],
            data,
        })
    }

    /// Acknowledges the device's interrupt (before running the engine).
    pub fn ack_interrupt(&mut self) -> InterruptStatus {
        self.blk.ack_interrupt()
    }
}

impl BlockDevice for VirtioDisk {
    fn capacity_sectors(&self) -> u64 {
        self.blk.capacity()
    }

    fn read_only(&self) -> bool {
        self.blk.readonly()
    }

    fn max_in_flight(&self) -> usize {
        MAX_IN_FLIGHT
    }

    fn submit(&mut self, t: &Transfer) -> Result<u16, SubmitError> {
        let slot = self.ops.iter().position(Option::is_none).ok_or(SubmitError::Full)?;
        let region = self
            .data
            .get(t.client)
            .and_then(Option::as_ref)
            .ok_or(SubmitError::Failed)?;
        // Checked again here (the protocol server checked it first): never a DMA
        // address outside the client's region.
        let offset = usize::try_from(t.offset).map_err(|_| SubmitError::Failed)?;
        let buf = dma_buffer(region, offset, t.len as usize).ok_or(SubmitError::Failed)?;
        let sector = usize::try_from(t.sector).map_err(|_| SubmitError::Failed)?;
        // SAFETY: `buf` lies in the client's data region (mapped for the PD's life).
        // The slice is handed only to the driver, which takes its address and length
        // for the device (Hal::share) and never reads or writes through it; the
        // device then accesses the memory by DMA. The request header and status of
        // `slot` are not touched until `complete_*` for the same token.
        let result = unsafe {
            let data = &mut *buf.as_ptr();
            match t.direction {
                Direction::Read => self
                    .blk
                    .read_blocks_nb(sector, &mut self.reqs[slot], data, &mut self.resps[slot]),
                Direction::Write => self
                    .blk
                    .write_blocks_nb(sector, &mut self.reqs[slot], data, &mut self.resps[slot]),
            }
        };
        match result {
            Ok(token) => {
                self.ops[slot] = Some(Op {
                    token,
                    direction: t.direction,
                    buf,
                });
                Ok(token)
            }
            Err(Error::QueueFull) => Err(SubmitError::Full),
            Err(_) => Err(SubmitError::Failed),
        }
    }

    fn next_completion(&mut self) -> Option<(u16, bool)> {
        let token = self.blk.peek_used()?;
        // A token we never submitted would be a device bug; leave it (and report no
        // completion) rather than pop it with the wrong buffers.
        let slot = self.ops.iter().position(|o| o.is_some_and(|o| o.token == token))?;
        let op = self.ops[slot].take()?;
        // SAFETY: the same header, buffer and status as given to `*_blocks_nb` for this
        // token (the driver checks the token and the buffers' addresses).
        let result = unsafe {
            let data = &mut *op.buf.as_ptr();
            match op.direction {
                Direction::Read => self
                    .blk
                    .complete_read_blocks(token, &self.reqs[slot], data, &mut self.resps[slot]),
                Direction::Write => {
                    self.blk
                        .complete_write_blocks(token, &self.reqs[slot], data, &mut self.resps[slot])
                }
            }
        };
        Some((token, result.is_ok()))
    }

    fn flush(&mut self) -> bool {
        self.blk.flush().is_ok()
    }
}
