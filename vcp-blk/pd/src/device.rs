//! [`VirtioDisk`]: the engine's [`BlockDevice`] on a virtio-blk device (virtio-mmio
//! transport), driven through `virtio-drivers`' transport and a [`QUEUE_SIZE`]-descriptor
//! virtqueue (as vcp-net drives its NIC). Each transfer is **one** virtio-blk request:
//! a descriptor chain of the request header, every data segment **in place** in the
//! client's data region (zero copy, scatter-gather) and the status byte; up to
//! [`SLOTS`] requests are in flight, completing in any order (by token). Submissions
//! only fill the ring; [`BlockDevice::notify`] rings the doorbell once per batch.
//! Headers and status bytes live in the DMA region. (`VirtIOBlk` has a fixed
//! 16-descriptor queue and one data buffer per request.)
#![allow(unsafe_code)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr::NonNull;

use bitflags::bitflags;
use sel4_microkit::SharedRegion;
use vcpos_blk_protocol::MAX_SEGMENTS;
use vcpos_vcp_blk::{BlockDevice, Direction, SubmitError, Transfer, MAX_CLIENTS};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{InterruptStatus, Transport};
use virtio_drivers::Error;

use vcpos_vcp_hal::{carve, VcpHal};

bitflags! {
    /// The virtio-blk feature bits vcp-blk asks for (virtio 1.2, 5.2.3).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        /// `size_max` (the largest segment) is in the configuration space.
        const SIZE_MAX = 1 << 1;
        /// `seg_max` (the most data segments per request) is in the configuration space.
        const SEG_MAX = 1 << 2;
        /// The device is read-only.
        const RO = 1 << 5;
        /// The device has a write cache and takes FLUSH requests.
        const FLUSH = 1 << 9;
        /// Virtio 1.x.
        const VERSION_1 = 1 << 32;
    }
}

/// The virtqueue.
const QUEUE: u16 = 0;
/// Descriptors in the virtqueue (QEMU's virtio-blk offers 256).
pub const QUEUE_SIZE: usize = 256;
/// Requests in flight at most (header/status slots). A request takes 2 + segments
/// descriptors, so 4 KiB requests (3) all fit; 15-segment ones (17) are limited to
/// `QUEUE_SIZE / 17` by the queue, which then reports itself full.
pub const SLOTS: usize = 64;
/// Bytes per slot in the DMA region: the 16-byte header, then the status byte.
const SLOT_BYTES: usize = 32;
const HEADER: usize = 16;
/// virtio-blk request types.
const T_IN: u32 = 0;
const T_OUT: u32 = 1;
const T_FLUSH: u32 = 4;
/// The status byte's "OK"; vcp-blk presets it to something else.
const S_OK: u8 = 0;
const S_UNSET: u8 = 0xff;
/// Configuration space offsets (virtio 1.2, 5.2.4).
const CFG_CAPACITY: usize = 0;
const CFG_SIZE_MAX: usize = 8;
const CFG_SEG_MAX: usize = 12;

/// The virtio-blk device.
pub struct VirtioDisk {
    transport: MmioTransport<'static>,
    queue: Box<VirtQueue<VcpHal, QUEUE_SIZE>>,
    capacity: u64,
    features: Features,
    max_segments: usize,
    max_segment_len: u32,
    /// `SLOTS + 1` slots of `SLOT_BYTES` in the DMA region (the last for the flush).
    slots: NonNull<u8>,
    /// The request in each slot while the device holds it, with its token.
    ops: Vec<Option<(u16, Transfer)>>,
    data: [Option<SharedRegion>; MAX_CLIENTS],
}

/// Why the device could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// The transport refused (bad magic, version, device id).
    Transport(MmioError),
    /// The configuration space could not be read.
    Config(Error),
    /// The virtqueue could not be set up (e.g. the device offers fewer than
    /// [`QUEUE_SIZE`] descriptors).
    Queue(Error),
    /// The DMA region is too small.
    Dma,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Transport(e) => write!(f, "virtio-mmio transport: {e}"),
            InitError::Config(e) => write!(f, "virtio-blk configuration space: {e}"),
            InitError::Queue(e) => write!(f, "virtio-blk virtqueue of {QUEUE_SIZE} descriptors: {e}"),
            InitError::Dma => f.write_str("DMA region too small"),
        }
    }
}

/// The address range `offset..offset + len` of `region`, for the device (never
/// dereferenced by vcp-blk), if it lies inside the region.
fn dma_buffer(region: &SharedRegion, offset: u64, len: u32) -> Option<NonNull<[u8]>> {
    let offset = usize::try_from(offset).ok()?;
    let len = len as usize;
    region.slice(offset, len).ok()?;
    let start = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(region.addr() + offset))?;
    Some(NonNull::slice_from_raw_parts(start, len))
}

/// A transfer's descriptor chain: the device-readable and device-writable buffers.
struct Chain<'a> {
    inputs: [&'a [u8]; MAX_SEGMENTS + 1],
    n_in: usize,
    outputs: [&'a mut [u8]; MAX_SEGMENTS + 1],
    n_out: usize,
}

impl VirtioDisk {
    /// Sets up the device whose virtio-mmio registers are at `header` (mapped uncached,
    /// `size` bytes), with `data` = each client's data region.
    ///
    /// # Safety
    /// `header` must be a virtio-mmio transport mapped into this PD for its life and
    /// used by nothing else; the HAL's region table must hold the DMA region and every
    /// region of `data`.
    pub unsafe fn new(
        header: NonNull<u8>,
        size: usize,
        data: [Option<SharedRegion>; MAX_CLIENTS],
    ) -> Result<VirtioDisk, InitError> {
        // SAFETY: by the caller's contract.
        let mut transport =
            unsafe { MmioTransport::new(header.cast::<VirtIOHeader>(), size) }.map_err(InitError::Transport)?;
        let features = transport
            .begin_init(Features::SIZE_MAX | Features::SEG_MAX | Features::RO | Features::FLUSH | Features::VERSION_1);
        let capacity = transport
            .read_consistent(|| {
                let low = transport.read_config_space::<u32>(CFG_CAPACITY)?;
                let high = transport.read_config_space::<u32>(CFG_CAPACITY + 4)?;
                Ok(u64::from(low) | u64::from(high) << 32)
            })
            .map_err(InitError::Config)?;
        // The device's limits; without the feature, none beyond the queue's.
        let seg_max = if features.contains(Features::SEG_MAX) {
            transport
                .read_config_space::<u32>(CFG_SEG_MAX)
                .map_err(InitError::Config)? as usize
        } else {
            MAX_SEGMENTS
        };
        let max_segments = seg_max.clamp(1, MAX_SEGMENTS.min(QUEUE_SIZE - 2));
        let max_segment_len = if features.contains(Features::SIZE_MAX) {
            transport
                .read_config_space::<u32>(CFG_SIZE_MAX)
                .map_err(InitError::Config)?
        } else {
            u32::MAX
        };
        let queue = Box::new(VirtQueue::new(&mut transport, QUEUE, false, false).map_err(InitError::Queue)?);
        transport.finish_init();
        let (slots, _) = carve((SLOTS + 1) * SLOT_BYTES).ok_or(InitError::Dma)?;
        Ok(VirtioDisk {
            transport,
            queue,
            capacity,
            features,
            max_segments,
            max_segment_len,
            slots,
            ops: (0..SLOTS).map(|_| None).collect(),
            data,
        })
    }

    /// Acknowledges the device's interrupt (before running the engine).
    pub fn ack_interrupt(&mut self) -> InterruptStatus {
        self.transport.ack_interrupt()
    }

    /// The device's `seg_max` and `size_max` as the engine sees them.
    pub fn limits(&self) -> (usize, u32) {
        (self.max_segments, self.max_segment_len)
    }

    /// Slot `slot`'s header and status byte.
    fn slot(&self, slot: usize) -> (&'static mut [u8], &'static mut [u8]) {
        debug_assert!(slot <= SLOTS);
        // SAFETY: slot <= SLOTS: inside the carved (SLOTS + 1) * SLOT_BYTES bytes of the
        // DMA region, owned by this driver; a slot's bytes are written only while the
        // device does not hold them (before `add`, after `pop_used`), and the two
        // slices do not overlap.
        unsafe {
            let base = self.slots.as_ptr().add(slot * SLOT_BYTES);
            (
                core::slice::from_raw_parts_mut(base, HEADER),
                core::slice::from_raw_parts_mut(base.add(HEADER), 1),
            )
        }
    }

    /// The descriptor chain of `t` in `slot`: header, data segments, status. `None`
    /// if a segment is not inside the client's data region.
    fn chain<'a>(&self, slot: usize, t: &Transfer) -> Option<Chain<'a>> {
        let region = self.data.get(t.client)?.as_ref()?;
        let (header, status) = self.slot(slot);
        let mut c = Chain {
            inputs: [&[]; MAX_SEGMENTS + 1],
            n_in: 1,
            outputs: Default::default(),
            n_out: 0,
        };
        c.inputs[0] = header;
        for seg in t.segments() {
            // Checked again here (the protocol server checked it first): never a DMA
            // address outside the client's region.
            let buf = dma_buffer(region, seg.offset, seg.len)?;
            // SAFETY: `buf` lies in the client's data region (mapped for the PD's
            // life). The slice is handed only to the virtqueue, which takes its
            // address and length for the device (Hal::share) and never reads or
            // writes through it; the device accesses the memory by DMA.
            let data = unsafe { &mut *buf.as_ptr() };
            match t.direction {
                Direction::Write => {
                    c.inputs[c.n_in] = data;
                    c.n_in += 1;
                }
                Direction::Read => {
                    c.outputs[c.n_out] = data;
                    c.n_out += 1;
                }
            }
        }
        c.outputs[c.n_out] = status;
        c.n_out += 1;
        Some(c)
    }

    /// Slot `slot`'s status byte as the device left it.
    fn status(&self, slot: usize) -> u8 {
        let (_, status) = self.slot(slot);
        // SAFETY: a byte of the DMA slot; volatile because the device wrote it by DMA.
        unsafe { status.as_ptr().read_volatile() }
    }

    /// Writes the request header of `slot` and presets its status.
    fn prepare(&self, slot: usize, kind: u32, sector: u64) {
        let (header, status) = self.slot(slot);
        header[..4].copy_from_slice(&kind.to_le_bytes());
        header[4..8].fill(0);
        header[8..].copy_from_slice(&sector.to_le_bytes());
        status[0] = S_UNSET;
    }

    fn notify_device(&mut self) {
        if self.queue.should_notify() {
            self.transport.notify(QUEUE);
        }
    }
}

impl BlockDevice for VirtioDisk {
    fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    fn read_only(&self) -> bool {
        self.features.contains(Features::RO)
    }

    fn max_in_flight(&self) -> usize {
        SLOTS
    }

    fn max_segments(&self) -> usize {
        self.max_segments
    }

    fn max_segment_len(&self) -> u32 {
        self.max_segment_len
    }

    fn submit(&mut self, t: &Transfer) -> Result<u16, SubmitError> {
        // The engine keeps to the device's limits; refuse anything beyond them.
        if t.segments().len() > self.max_segments || t.segments().iter().any(|s| s.len > self.max_segment_len) {
            return Err(SubmitError::Failed);
        }
        if self.queue.available_desc() < t.segments().len() + 2 {
            return Err(SubmitError::Full);
        }
        let slot = self.ops.iter().position(Option::is_none).ok_or(SubmitError::Full)?;
        let kind = match t.direction {
            Direction::Read => T_IN,
            Direction::Write => T_OUT,
        };
        let mut c = self.chain(slot, t).ok_or(SubmitError::Failed)?;
        self.prepare(slot, kind, t.sector);
        // SAFETY: the header, status and data buffers stay untouched by vcp-blk until
        // pop_used returns this token (the engine holds the client's request until
        // the completion).
        let token = unsafe { self.queue.add(&c.inputs[..c.n_in], &mut c.outputs[..c.n_out]) }.map_err(|e| match e {
            Error::QueueFull => SubmitError::Full,
            _ => SubmitError::Failed,
        })?;
        self.ops[slot] = Some((token, *t));
        Ok(token)
    }

    fn notify(&mut self) {
        self.notify_device();
    }

    fn next_completion(&mut self) -> Option<(u16, bool)> {
        let token = self.queue.peek_used()?;
        // A token we never submitted would be a device bug; leave it (and report no
        // completion) rather than pop it with the wrong buffers.
        let slot = self.ops.iter().position(|o| o.is_some_and(|(tok, _)| tok == token))?;
        let (_, t) = self.ops[slot]?;
        let mut c = self.chain(slot, &t)?;
        // SAFETY: the same buffers `add` got for this token.
        let popped = unsafe {
            self.queue
                .pop_used(token, &c.inputs[..c.n_in], &mut c.outputs[..c.n_out])
        };
        self.ops[slot] = None;
        let ok = popped.is_ok() && self.status(slot) == S_OK;
        Some((token, ok))
    }

    fn flush(&mut self) -> bool {
        if !self.features.contains(Features::FLUSH) {
            return true; // no write cache: writes are durable when complete
        }
        // Called only with nothing in flight, so the flush is the next used entry.
        self.prepare(SLOTS, T_FLUSH, 0);
        let (header, status) = self.slot(SLOTS);
        let inputs: [&[u8]; 1] = [header];
        let mut outputs: [&mut [u8]; 1] = [status];
        // SAFETY: the flush slot is untouched until pop_used returns its token, below.
        let Ok(token) = (unsafe { self.queue.add(&inputs, &mut outputs) }) else {
            return false;
        };
        self.notify_device();
        while !self.queue.can_pop() {
            core::hint::spin_loop();
        }
        // SAFETY: the same buffers `add` got for this token.
        let popped = unsafe { self.queue.pop_used(token, &inputs, &mut outputs) };
        popped.is_ok() && self.status(SLOTS) == S_OK
    }
}
