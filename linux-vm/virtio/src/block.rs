//! The virtio block device (virtio 1.2 §5.2), one request queue, served by a
//! [`BlockBackend`] (in vcpos: a client of the block VCP's protocol).
//!
//! Each descriptor chain is one request (§5.2.6): a 16-byte device-readable header
//! (type, reserved, sector), data, and a one-byte device-writable status at the very
//! end. Any descriptor layout is accepted (VIRTIO_F_ANY_LAYOUT is implied by virtio
//! 1.x): the header is the first 16 readable bytes, the status the last writable byte,
//! and what lies between is data. The data is handed to the backend as guest-RAM
//! ranges ([`DataSegment`]: offset from the start of guest RAM, length), already
//! checked to be inside guest RAM by the queue, so the backend moves data straight
//! between the disk and guest RAM (zero copy). Requests stay in flight while the
//! backend works (up to its queue depth) and complete in whatever order the backend
//! finishes them ([`RequestId`]); the status byte is written and the chain returned
//! then.
//!
//! What the guest asks is checked:
//! - a chain without a full header or without a writable status byte cannot be
//!   answered: a protocol error ([`GuestError::BadBlockRequest`]; the device needs a
//!   reset, as in QEMU);
//! - data in the wrong direction (readable data for a read, writable data for a
//!   write), more segments than `seg_max`, a segment longer than `size_max`, a data
//!   length that is not a multiple of 512, or sectors past the capacity: status
//!   IOERR; a read or write without data completes at once with OK;
//! - writes to a read-only disk: IOERR; unknown request types, and FLUSH when the
//!   backend cannot flush: UNSUPP.
//!
//! Features offered (from [`BackendInfo`]): SEG_MAX, SIZE_MAX, BLK_SIZE always; RO
//! for a read-only disk; FLUSH if the backend can flush; CONFIG_WCE if it can also
//! write with FUA. Writes carry the FUA flag ([`BlockOp::Write`]) whenever the cache is
//! write-through for the driver: FLUSH not negotiated, or CONFIG_WCE negotiated and
//! `writeback` set to 0 (§5.2.5, §5.2.6.2).

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::error::GuestError;
use crate::memory::GuestMemory;
use crate::mmio::{copy_config, Device, Interrupts};
use crate::queue::{DescriptorChain, Queue, Segment};

/// Device ID of a block device (virtio 1.2 §5.2.1).
pub const BLOCK_DEVICE_ID: u32 = 2;
/// VIRTIO_BLK_F_SIZE_MAX: `size_max` is valid.
pub const VIRTIO_BLK_F_SIZE_MAX: u64 = 1 << 1;
/// VIRTIO_BLK_F_SEG_MAX: `seg_max` is valid.
pub const VIRTIO_BLK_F_SEG_MAX: u64 = 1 << 2;
/// VIRTIO_BLK_F_RO: the device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// VIRTIO_BLK_F_BLK_SIZE: `blk_size` is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// VIRTIO_BLK_F_FLUSH: the FLUSH request type is supported.
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// VIRTIO_BLK_F_CONFIG_WCE: the cache mode (`writeback`) can be read and set.
pub const VIRTIO_BLK_F_CONFIG_WCE: u64 = 1 << 11;

/// Request type: read (device to driver).
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write (driver to device).
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: flush the write cache.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;
/// Request type: the device's ID string (20 bytes).
pub const VIRTIO_BLK_T_GET_ID: u32 = 8;

/// Status byte: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status byte: the request failed.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status byte: the request is not supported.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// The only queue, requestq (no VIRTIO_BLK_F_MQ).
pub const REQUESTQ: u16 = 0;
/// QueueNumMax of the request queue.
pub const BLOCK_QUEUE_SIZE: u16 = 256;
/// virtio-blk sectors are always 512 bytes, whatever `blk_size` says (§5.2.6).
pub const SECTOR_SIZE: u64 = 512;
/// Length of the request header.
pub const HEADER_LEN: u64 = 16;
/// Length of a GET_ID answer.
pub const ID_LEN: usize = 20;

/// Configuration space (virtio 1.2 §5.2.4) up to `writeback` and its padding:
/// capacity u64 @0, size_max u32 @8, seg_max u32 @12, geometry @16, blk_size u32 @20,
/// topology @24, writeback u8 @32.
const CONFIG_LEN: usize = 36;
const WRITEBACK_OFFSET: usize = 32;

/// What the backend is and can do; the config space and feature offer come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackendInfo {
    /// Size in 512-byte sectors.
    pub capacity_sectors: u64,
    /// The disk's logical block size in bytes (a power of two, at least 512).
    pub block_size: u32,
    /// Most data segments in one request (at least 1).
    pub seg_max: u32,
    /// Largest data segment in bytes.
    pub size_max: u32,
    /// Requests the backend takes in flight at once (at least 1).
    pub queue_depth: u16,
    /// Writes are refused.
    pub read_only: bool,
    /// FLUSH is supported (the backend has a volatile write cache it can flush).
    pub flush: bool,
    /// Writes with forced unit access are supported.
    pub fua: bool,
    /// The ID string GET_ID returns (NUL-padded).
    pub id: [u8; ID_LEN],
}

/// Identifies a request at the backend: the chain's head and the device's reset
/// generation, so that a completion arriving after a reset is recognised as stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u32);

impl RequestId {
    pub(crate) fn new(generation: u16, head: u16) -> Self {
        RequestId((u32::from(generation) << 16) | u32::from(head))
    }

    pub(crate) fn generation(self) -> u16 {
        (self.0 >> 16) as u16
    }

    pub(crate) fn head(self) -> u16 {
        self.0 as u16
    }
}

/// What a request asks of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOp {
    /// Read sectors into the segments.
    Read,
    /// Write the segments to sectors; `fua`: complete only once durable.
    Write {
        /// Forced unit access.
        fua: bool,
    },
    /// Make every completed write durable (no segments).
    Flush,
}

/// A piece of a request's data in guest RAM: `len` bytes at `offset` from the start
/// of guest RAM (checked to lie inside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSegment {
    /// Offset from the start of guest RAM.
    pub offset: u64,
    /// Length in bytes (not 0).
    pub len: u32,
}

/// How a request ended at the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockStatus {
    /// Done.
    Ok,
    /// The transfer failed.
    IoError,
    /// The backend does not support the request.
    Unsupported,
}

impl BlockStatus {
    fn byte(self) -> u8 {
        match self {
            BlockStatus::Ok => VIRTIO_BLK_S_OK,
            BlockStatus::IoError => VIRTIO_BLK_S_IOERR,
            BlockStatus::Unsupported => VIRTIO_BLK_S_UNSUPP,
        }
    }
}

/// Why the backend did not take a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// No room now: the device submits it again later (after a completion).
    Busy,
    /// Refused for good: the request completes with this status.
    Refused(BlockStatus),
}

/// A completed request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The id it was submitted with.
    pub id: RequestId,
    /// Its outcome.
    pub status: BlockStatus,
}

/// The storage behind the device.
pub trait BlockBackend {
    /// The disk's properties (read when the device is made, and for every config
    /// read, so a resize shows).
    fn info(&self) -> BackendInfo;

    /// Starts a request. `sector` and the segments are checked against
    /// [`BackendInfo`] first (capacity, `seg_max`, `size_max`, read-only).
    fn submit(&mut self, id: RequestId, op: BlockOp, sector: u64, segments: &[DataSegment]) -> Result<(), SubmitError>;

    /// The next finished request, if any, in any order.
    fn poll(&mut self) -> Option<Completion>;

    /// After a batch of [`Self::submit`]s (every request the driver offered at once):
    /// the moment to tell the storage behind the backend about them, once per batch
    /// rather than once per request. Does nothing by default.
    fn kick(&mut self) {}
}

impl<T: BlockBackend + ?Sized> BlockBackend for alloc::boxed::Box<T> {
    fn info(&self) -> BackendInfo {
        (**self).info()
    }

    fn submit(&mut self, id: RequestId, op: BlockOp, sector: u64, segments: &[DataSegment]) -> Result<(), SubmitError> {
        (**self).submit(id, op, sector, segments)
    }

    fn poll(&mut self) -> Option<Completion> {
        (**self).poll()
    }

    fn kick(&mut self) {
        (**self).kick()
    }
}

/// A request the backend has (or will get, once it has room).
#[derive(Clone, Debug)]
struct Pending {
    id: RequestId,
    op: BlockOp,
    sector: u64,
    segments: Vec<DataSegment>,
}

/// Where to answer a request in flight.
#[derive(Clone, Copy, Debug)]
struct InFlight {
    status_addr: u64,
    /// Used length on completion: data bytes written (reads) + the status byte.
    used_len: u32,
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    /// Requests completed (any status).
    pub completed: u64,
    /// Requests answered IOERR or UNSUPP by the device itself (bad requests).
    pub refused: u64,
    /// Completions for unknown or stale requests (ignored).
    pub stale_completions: u64,
}

/// A virtio block device over backend `B`.
pub struct Block<B: BlockBackend> {
    backend: B,
    ram_base: u64,
    generation: u16,
    /// Indexed by chain head.
    in_flight: Vec<Option<InFlight>>,
    in_flight_count: usize,
    /// A request the backend was too busy to take (submitted first next time).
    stalled: Option<Pending>,
    negotiated: u64,
    writeback: bool,
    stats: BlockStats,
}

impl<B: BlockBackend> fmt::Debug for Block<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("info", &self.backend.info())
            .field("in_flight", &self.in_flight_count)
            .field("stats", &self.stats)
            .finish()
    }
}

/// `len` bytes of `segments` after skipping `skip` bytes from the front, as segments
/// (the data between a header and a status byte).
pub(crate) fn cut(segments: &[Segment], mut skip: u64, mut len: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    for s in segments {
        if len == 0 {
            break;
        }
        let seg_len = u64::from(s.len);
        if skip >= seg_len {
            skip -= seg_len;
            continue;
        }
        let take = (seg_len - skip).min(len);
        // Inside a checked segment: no overflow, and take <= s.len fits u32.
        out.push(Segment {
            addr: s.addr + skip,
            len: take as u32,
        });
        len -= take;
        skip = 0;
    }
    out
}

/// The guest-physical address of the last byte of `segments` (none if empty).
fn last_byte(segments: &[Segment]) -> Option<u64> {
    segments.last().map(|s| s.addr + u64::from(s.len) - 1)
}

impl<B: BlockBackend> Block<B> {
    /// A block device over `backend`, for a guest whose RAM starts at guest-physical
    /// `ram_base` (data segments are offsets from there).
    pub fn new(backend: B, ram_base: u64) -> Self {
        Block {
            backend,
            ram_base,
            generation: 0,
            in_flight: vec![None; usize::from(BLOCK_QUEUE_SIZE)],
            in_flight_count: 0,
            stalled: None,
            negotiated: 0,
            writeback: true,
            stats: BlockStats::default(),
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutable (e.g. for the VMM to hand it a notification).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Requests submitted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.in_flight_count
    }

    /// Counters.
    pub fn stats(&self) -> BlockStats {
        self.stats
    }

    /// Whether writes must be durable on completion (write-through cache).
    fn write_through(&self) -> bool {
        let flush = self.negotiated & VIRTIO_BLK_F_FLUSH != 0;
        let wce = self.negotiated & VIRTIO_BLK_F_CONFIG_WCE != 0;
        !flush || (wce && !self.writeback)
    }

    /// Writes `status` and returns the chain; true if the driver wants an interrupt.
    fn answer(
        q: &mut Queue,
        mem: &mut dyn GuestMemory,
        head: u16,
        status_addr: u64,
        status: u8,
        used_len: u32,
    ) -> Result<bool, GuestError> {
        mem.write(status_addr, &[status])?;
        q.push_used(mem, head, used_len)
    }

    /// Parses a chain into a request for the backend, or the status to answer it
    /// with at once (`Err(status)`; GET_ID is answered here, with OK). Errors are
    /// protocol violations (no header or no status byte) or guest memory errors.
    fn parse(
        &mut self,
        chain: &DescriptorChain,
        mem: &mut dyn GuestMemory,
    ) -> Result<(InFlight, Result<Pending, u8>), GuestError> {
        let bad = |reason: &'static str| GuestError::BadBlockRequest {
            queue: chain.queue(),
            head: chain.head(),
            reason,
        };
        let status_addr = last_byte(chain.writable()).ok_or(bad("no writable status byte"))?;
        if chain.readable_len() < HEADER_LEN {
            return Err(bad("header shorter than 16 bytes"));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        chain.reader().read(&*mem, &mut header)?;
        let kind = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&header[8..16]);
        let sector = u64::from_le_bytes(s);

        let data_out = cut(chain.readable(), HEADER_LEN, chain.readable_len() - HEADER_LEN);
        let data_in = cut(chain.writable(), 0, chain.writable_len() - 1);
        let in_len: u64 = data_in.iter().map(|s| u64::from(s.len)).sum();
        let out_len: u64 = data_out.iter().map(|s| u64::from(s.len)).sum();
        let mut flight = InFlight {
            status_addr,
            used_len: 1,
        };
        let id = RequestId::new(self.generation, chain.head());
        let info = self.backend.info();
        let request = |op: BlockOp, data: &[Segment]| -> Result<Pending, u8> {
            let len: u64 = data.iter().map(|s| u64::from(s.len)).sum();
            let sectors = len / SECTOR_SIZE;
            let end = sector.checked_add(sectors);
            if !len.is_multiple_of(SECTOR_SIZE)
                || data.len() > info.seg_max as usize
                || data.iter().any(|s| s.len > info.size_max)
                || end.is_none_or(|e| e > info.capacity_sectors)
            {
                return Err(VIRTIO_BLK_S_IOERR);
            }
            if data.is_empty() {
                // Nothing to transfer (zero-length descriptors are dropped): done.
                return Err(VIRTIO_BLK_S_OK);
            }
            let segments = data
                .iter()
                .map(|s| DataSegment {
                    offset: s.addr - self.ram_base,
                    len: s.len,
                })
                .collect();
            Ok(Pending {
                id,
                op,
                sector,
                segments,
            })
        };
        let outcome = match kind {
            VIRTIO_BLK_T_IN => {
                flight.used_len = u32::try_from(in_len + 1).unwrap_or(u32::MAX);
                if out_len != 0 {
                    Err(VIRTIO_BLK_S_IOERR)
                } else {
                    request(BlockOp::Read, &data_in)
                }
            }
            VIRTIO_BLK_T_OUT => {
                if in_len != 0 || info.read_only {
                    Err(VIRTIO_BLK_S_IOERR)
                } else {
                    let fua = info.fua && self.write_through();
                    request(BlockOp::Write { fua }, &data_out)
                }
            }
            VIRTIO_BLK_T_FLUSH => {
                if info.flush {
                    Ok(Pending {
                        id,
                        op: BlockOp::Flush,
                        sector: 0,
                        segments: Vec::new(),
                    })
                } else {
                    Err(VIRTIO_BLK_S_UNSUPP)
                }
            }
            VIRTIO_BLK_T_GET_ID => {
                // Up to 20 bytes into the data part (never the status byte).
                let n = usize::try_from(in_len).unwrap_or(usize::MAX).min(ID_LEN);
                let written = chain.writer().write(mem, &info.id[..n])?;
                flight.used_len = u32::try_from(written + 1).unwrap_or(u32::MAX);
                Err(VIRTIO_BLK_S_OK)
            }
            _ => Err(VIRTIO_BLK_S_UNSUPP),
        };
        Ok((flight, outcome))
    }

    /// Hands `p` to the backend. Returns the status to answer with at once if the
    /// backend refused it; keeps it as stalled if the backend is busy.
    fn submit(&mut self, p: Pending) -> Option<u8> {
        match self.backend.submit(p.id, p.op, p.sector, &p.segments) {
            Ok(()) => None,
            Err(SubmitError::Busy) => {
                self.stalled = Some(p);
                None
            }
            Err(SubmitError::Refused(status)) => Some(status.byte()),
        }
    }

    /// Completes in-flight request at `head` with `status`; true if the driver wants
    /// an interrupt.
    fn finish(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory, head: u16, status: u8) -> Result<bool, GuestError> {
        let Some(f) = self.in_flight.get_mut(usize::from(head)).and_then(Option::take) else {
            self.stats.stale_completions += 1;
            return Ok(false);
        };
        self.in_flight_count -= 1;
        self.stats.completed += 1;
        Self::answer(q, mem, head, f.status_addr, status, f.used_len)
    }

    /// Takes new chains while the backend has room, submitting each.
    fn take_requests(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        let depth = usize::from(self.backend.info().queue_depth.max(1));
        // A stalled request goes first; while it stays stalled nothing new is taken.
        if let Some(p) = self.stalled.take() {
            let head = p.id.head();
            if let Some(status) = self.submit(p) {
                if self.finish(q, mem, head, status)? {
                    irq |= Interrupts::USED_BUFFER;
                }
            }
        }
        while self.stalled.is_none() && self.in_flight_count < depth {
            let Some(chain) = q.pop(mem)? else { break };
            let head = chain.head();
            let (flight, outcome) = self.parse(&chain, mem)?;
            let Some(slot) = self.in_flight.get_mut(usize::from(head)) else {
                return Err(GuestError::UsedIndex {
                    queue: chain.queue(),
                    index: head,
                });
            };
            if slot.is_some() {
                // The driver offered a head that is still in flight (§2.7.13: it
                // must not reuse a descriptor before the device returns it).
                return Err(GuestError::BadBlockRequest {
                    queue: chain.queue(),
                    head,
                    reason: "head still in flight",
                });
            }
            *slot = Some(flight);
            self.in_flight_count += 1;
            let immediate = match outcome {
                Ok(p) => self.submit(p),
                Err(status) => {
                    if status != VIRTIO_BLK_S_OK {
                        self.stats.refused += 1;
                    }
                    Some(status)
                }
            };
            if let Some(status) = immediate {
                if self.finish(q, mem, head, status)? {
                    irq |= Interrupts::USED_BUFFER;
                }
            }
        }
        self.backend.kick();
        Ok(irq)
    }

    /// Answers every request the backend finished.
    fn complete(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        while let Some(c) = self.backend.poll() {
            if c.id.generation() != self.generation {
                self.stats.stale_completions += 1;
                continue;
            }
            if self.finish(q, mem, c.id.head(), c.status.byte())? {
                irq |= Interrupts::USED_BUFFER;
            }
        }
        Ok(irq)
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let info = self.backend.info();
        let mut c = [0u8; CONFIG_LEN];
        c[0..8].copy_from_slice(&info.capacity_sectors.to_le_bytes());
        c[8..12].copy_from_slice(&info.size_max.to_le_bytes());
        c[12..16].copy_from_slice(&info.seg_max.to_le_bytes());
        // geometry (16..20) stays 0: not offered.
        c[20..24].copy_from_slice(&info.block_size.to_le_bytes());
        // topology (24..32) stays 0: not offered.
        c[WRITEBACK_OFFSET] = u8::from(self.writeback);
        c
    }
}

impl<B: BlockBackend> Device for Block<B> {
    fn device_id(&self) -> u32 {
        BLOCK_DEVICE_ID
    }

    fn device_features(&self) -> u64 {
        let info = self.backend.info();
        let mut f = VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_BLK_SIZE;
        if info.read_only {
            f |= VIRTIO_BLK_F_RO;
        }
        if info.flush {
            f |= VIRTIO_BLK_F_FLUSH;
            if info.fua {
                f |= VIRTIO_BLK_F_CONFIG_WCE;
            }
        }
        f
    }

    fn num_queues(&self) -> usize {
        1
    }

    fn queue_max_size(&self, _index: usize) -> u16 {
        BLOCK_QUEUE_SIZE
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        copy_config(&self.config_bytes(), offset, data);
    }

    /// Only `writeback` is writable, and only with CONFIG_WCE negotiated (§5.2.4).
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        if offset == WRITEBACK_OFFSET && self.negotiated & VIRTIO_BLK_F_CONFIG_WCE != 0 {
            if let Some(&b) = data.first() {
                self.writeback = b != 0;
            }
        }
    }

    fn features_accepted(&mut self, features: u64) -> bool {
        self.negotiated = features;
        true
    }

    fn notify(
        &mut self,
        queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<Interrupts, GuestError> {
        match queues.get_mut(usize::from(queue)) {
            Some(q) if queue == REQUESTQ => self.take_requests(q, mem),
            _ => Ok(Interrupts::empty()),
        }
    }

    /// Completions from the backend, then requests that waited for room.
    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let Some(q) = queues.get_mut(usize::from(REQUESTQ)) else {
            return Ok(Interrupts::empty());
        };
        let irq = self.complete(q, mem)?;
        Ok(irq | self.take_requests(q, mem)?)
    }

    /// Forgets every request: completions still to come from the backend carry the old
    /// generation and are dropped (the driver's new rings may reuse the heads).
    fn reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.in_flight.iter_mut().for_each(|f| *f = None);
        self.in_flight_count = 0;
        self.stalled = None;
        self.negotiated = 0;
        self.writeback = true;
    }
}
