//! The VMM's disk backend over the block protocol: a [`BlockBackend`] for the guest's
//! virtio-blk device that is a `vcpos-blk-protocol` client of a block VCP (`vcp_blk`).
//!
//! The VMM's data region for the block protocol **is guest RAM**: a virtio request's
//! data segments (offsets from the start of guest RAM, checked by the virtio device)
//! become the block request's segments unchanged, so the VCP's device moves the data
//! straight between the disk and guest RAM; no PD copies block data.
//!
//! - ids: the virtio device's [`RequestId`] (reset generation and chain head) is the
//!   protocol id, unique among requests in flight;
//! - ops: read, write, write with FUA (the virtio device asks for it when the guest's
//!   cache is write-through) and flush pass through as such;
//! - the disk's capacity, read-only flag and segment limit come from the VCP's info
//!   page; the queue depth is the page's (up to 64 in flight);
//! - notifications: [`BlockBackend::kick`] (once per batch of submissions) notifies the
//!   VCP when the request ring asks for it; before the VMM waits, [`BlockBackend::poll`]
//!   asks the VCP to notify on its next response, so the VMM's `notified` for the VCP's
//!   channel polls the device again;
//! - the VCP is not trusted: a response that breaks the protocol (an id not in flight,
//!   an undefined status, too many bytes), a corrupt ring index or a changed generation
//!   (the VCP restarted) fails every request in flight with an I/O error, refuses new
//!   ones, and is kept for the VMM to report ([`ProtocolDisk::take_error`]); a request
//!   that completes "ok" with fewer bytes than asked is an I/O error too.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use vcpos_blk_protocol::{Client, ClientError, Info, Op, RequestDesc, Segment, Status, BLOCK_SIZE, MAX_SEGMENTS};
use vcpos_queue::SharedMemory;
use vcpos_virtio::block::{
    BackendInfo, BlockBackend, BlockOp, BlockStatus, Completion, DataSegment, RequestId, SubmitError, ID_LEN,
};

/// The ID string the guest reads with GET_ID (`/sys/block/vda/serial`).
pub const DISK_ID: &[u8] = b"vcpos-vcp-blk";

/// Largest data segment offered to the guest (`size_max`): with at most
/// [`MAX_SEGMENTS`] segments a request stays within the protocol's 4 MiB.
pub const SIZE_MAX: u32 = 256 * 1024;

const _: () = assert!(SIZE_MAX as u64 * MAX_SEGMENTS as u64 <= vcpos_blk_protocol::MAX_REQUEST_BYTES);

/// A request the VCP has.
#[derive(Clone, Copy, Debug)]
struct Outstanding {
    id: RequestId,
    bytes: u32,
}

/// The guest's disk as a client of a block VCP, over control region `M`; `N` notifies
/// the VCP (in the VMM: its channel's `notify`).
pub struct ProtocolDisk<M, N> {
    client: Client<M>,
    protocol: Info,
    info: BackendInfo,
    notify: N,
    outstanding: Vec<Outstanding>,
    /// Completions made here (failures after a broken VCP), handed out first.
    done: VecDeque<Completion>,
    /// The first protocol failure (the disk is dead from then on).
    failed: Option<ClientError>,
    /// Not yet taken by [`Self::take_error`].
    unreported: bool,
    notifications: u64,
}

impl<M: SharedMemory + Clone, N: FnMut()> ProtocolDisk<M, N> {
    /// Connects `client` (its data region must be guest RAM) to the VCP: reads the info
    /// page. Fails if the VCP has not published it yet or it is impossible.
    pub fn connect(mut client: Client<M>, notify: N) -> Result<Self, ClientError> {
        let protocol = client.connect()?;
        let mut id = [0u8; ID_LEN];
        id[..DISK_ID.len()].copy_from_slice(DISK_ID);
        let info = BackendInfo {
            // Protocol blocks are 512 bytes, the same as virtio sectors.
            capacity_sectors: protocol.capacity_blocks,
            block_size: BLOCK_SIZE,
            seg_max: protocol.max_segments.min(MAX_SEGMENTS as u32),
            size_max: SIZE_MAX,
            queue_depth: protocol.queue_depth.min(u32::from(u16::MAX)) as u16,
            read_only: protocol.read_only,
            flush: true,
            fua: true,
            id,
        };
        Ok(ProtocolDisk {
            client,
            protocol,
            info,
            notify,
            outstanding: Vec::with_capacity(protocol.queue_depth as usize),
            done: VecDeque::new(),
            failed: None,
            unreported: false,
            notifications: 0,
        })
    }

    /// The info page read at connection.
    pub fn protocol_info(&self) -> Info {
        self.protocol
    }

    /// Requests at the VCP.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// Notifications sent to the VCP so far.
    pub fn notifications(&self) -> u64 {
        self.notifications
    }

    /// The protocol failure that killed the disk, once (for the VMM to report).
    pub fn take_error(&mut self) -> Option<ClientError> {
        if self.unreported {
            self.unreported = false;
            self.failed
        } else {
            None
        }
    }

    /// Whether a protocol failure killed the disk.
    pub fn failed(&self) -> Option<ClientError> {
        self.failed
    }

    /// The VCP broke the protocol: every request it has fails, and new ones are refused.
    fn fail(&mut self, e: ClientError) {
        if self.failed.is_none() {
            self.failed = Some(e);
            self.unreported = true;
        }
        for o in self.outstanding.drain(..) {
            self.done.push_back(Completion {
                id: o.id,
                status: BlockStatus::IoError,
            });
        }
    }

    fn finish(&mut self, c: vcpos_blk_protocol::Completion) -> Option<Completion> {
        let pos = self.outstanding.iter().position(|o| o.id.0 == c.id)?;
        let o = self.outstanding.swap_remove(pos);
        let status = match c.status {
            Status::Ok if c.bytes == o.bytes => BlockStatus::Ok,
            Status::Unsupported => BlockStatus::Unsupported,
            _ => BlockStatus::IoError,
        };
        Some(Completion { id: o.id, status })
    }
}

impl<M: SharedMemory + Clone, N: FnMut()> BlockBackend for ProtocolDisk<M, N> {
    fn info(&self) -> BackendInfo {
        self.info
    }

    fn submit(&mut self, id: RequestId, op: BlockOp, sector: u64, segments: &[DataSegment]) -> Result<(), SubmitError> {
        if self.failed.is_some() {
            return Err(SubmitError::Refused(BlockStatus::IoError));
        }
        let op = match op {
            BlockOp::Read => Op::Read,
            BlockOp::Write { fua: false } => Op::Write,
            BlockOp::Write { fua: true } => Op::WriteFua,
            BlockOp::Flush => Op::Flush,
        };
        if segments.len() > MAX_SEGMENTS {
            return Err(SubmitError::Refused(BlockStatus::IoError));
        }
        let mut segs = [Segment::default(); MAX_SEGMENTS];
        let mut bytes = 0u32;
        for (d, s) in segs.iter_mut().zip(segments) {
            // The protocol moves whole blocks per segment; Linux's block layer keeps
            // segments block-aligned, anything else is refused rather than copied.
            if s.len == 0 || s.len % BLOCK_SIZE != 0 {
                return Err(SubmitError::Refused(BlockStatus::IoError));
            }
            *d = Segment::new(s.offset, s.len);
            bytes = bytes.saturating_add(s.len);
        }
        let block = if op == Op::Flush { 0 } else { sector };
        let desc = RequestDesc::with_segments(id.0, op, block, &segs[..segments.len()])
            .ok_or(SubmitError::Refused(BlockStatus::IoError))?;
        match self.client.submit(&desc) {
            Ok(()) => {
                self.outstanding.push(Outstanding { id, bytes });
                Ok(())
            }
            Err(ClientError::Full | ClientError::DepthExceeded) => Err(SubmitError::Busy),
            // Checked by the virtio device already; refused rather than trusted.
            Err(ClientError::BadSegment | ClientError::DuplicateId(_)) => {
                Err(SubmitError::Refused(BlockStatus::IoError))
            }
            Err(e) => {
                self.fail(e);
                Err(SubmitError::Refused(BlockStatus::IoError))
            }
        }
    }

    fn poll(&mut self) -> Option<Completion> {
        if let Some(c) = self.done.pop_front() {
            return Some(c);
        }
        if self.failed.is_some() {
            return None;
        }
        loop {
            match self.client.poll() {
                Ok(Some(c)) => match self.finish(c) {
                    Some(done) => return Some(done),
                    // The client checked the id is in flight; ours agree.
                    None => continue,
                },
                Ok(None) => {}
                Err(e) => {
                    self.fail(e);
                    return self.done.pop_front();
                }
            }
            if self.outstanding.is_empty() {
                return None;
            }
            // Nothing now but requests out: ask for a notification on the next
            // response; if one arrived meanwhile, take it.
            match self.client.request_signal() {
                Ok(true) => return None,
                Ok(false) => continue,
                Err(e) => {
                    self.fail(e);
                    return self.done.pop_front();
                }
            }
        }
    }

    fn kick(&mut self) {
        if self.failed.is_some() {
            return;
        }
        match self.client.signal_needed() {
            Ok(true) => {
                self.notifications += 1;
                (self.notify)();
            }
            Ok(false) => {}
            Err(e) => self.fail(e),
        }
    }
}
