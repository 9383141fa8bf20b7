//! The engine: serves every client's block-protocol queues from one [`BlockDevice`],
//! one request per client per turn (round robin), each client bounded by its queue
//! depth, so one client's flood cannot starve another.
//!
//! A client request becomes **one** device transfer carrying all its segments
//! (scatter-gather, sectors from the client's window start + block), split only where
//! the device's limits ([`BlockDevice::max_segments`], [`BlockDevice::max_segment_len`])
//! demand it. Transfers submitted in one run are announced to the device once
//! ([`BlockDevice::notify`]). A flush, and the flush that ends a write-with-FUA, waits
//! until the device has nothing in flight and then runs alone.

use alloc::vec::Vec;

use vcpos_blk_protocol::{Op, Request, Segment, Server, ServerConfig, ServerError, Status, BLOCK_SIZE, MAX_SEGMENTS};
use vcpos_queue::{LayoutError, SharedMemory};

use crate::config::{Config, Window, MAX_CLIENTS};

pub use vcpos_blk_protocol::RING_CAPACITY;

/// Direction of a device transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Disk to the client's data region.
    Read,
    /// The client's data region to disk.
    Write,
}

/// One device transfer: consecutive disk sectors from `sector` on, scattered over
/// segments of a client's data region (one virtio-blk request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// Direction.
    pub direction: Direction,
    /// First disk sector (512 bytes).
    pub sector: u64,
    /// The client whose data region holds the buffers.
    pub client: usize,
    nsegs: usize,
    /// Unused entries stay zero (so `==` compares the used ones).
    segs: [Segment; MAX_SEGMENTS],
}

impl Transfer {
    /// A transfer of `segments` (each a byte offset in the client's data region, checked
    /// by the protocol server, and a non-zero multiple of 512 bytes), in disk order;
    /// `None` if there are none or more than [`MAX_SEGMENTS`].
    pub fn new(direction: Direction, sector: u64, client: usize, segments: &[Segment]) -> Option<Transfer> {
        if segments.is_empty() || segments.len() > MAX_SEGMENTS {
            return None;
        }
        let mut segs = [Segment::default(); MAX_SEGMENTS];
        segs[..segments.len()].copy_from_slice(segments);
        Some(Transfer {
            direction,
            sector,
            client,
            nsegs: segments.len(),
            segs,
        })
    }

    /// The segments, in disk order (1..=[`MAX_SEGMENTS`]).
    pub fn segments(&self) -> &[Segment] {
        &self.segs[..self.nsegs]
    }

    /// Total bytes.
    pub fn len(&self) -> u64 {
        self.segments().iter().map(|s| u64::from(s.len)).sum()
    }

    /// Never true (a transfer has at least one non-empty segment); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sectors covered.
    pub fn sectors(&self) -> u64 {
        self.len() / u64::from(BLOCK_SIZE)
    }
}

/// Why a device did not take a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// No room now; try again after a completion.
    Full,
    /// The transfer cannot be done (the request fails with an I/O error).
    Failed,
}

/// A block device driven asynchronously (virtio-blk in the PD, a fake on the host).
pub trait BlockDevice {
    /// Size in 512-byte sectors.
    fn capacity_sectors(&self) -> u64;
    /// Whether the device refuses writes.
    fn read_only(&self) -> bool;
    /// Transfers the device can have in flight.
    fn max_in_flight(&self) -> usize;
    /// Most segments one transfer may carry (the device's `seg_max`); the engine
    /// splits larger requests (and never passes more than [`MAX_SEGMENTS`]).
    fn max_segments(&self) -> usize;
    /// Most bytes one segment may hold (the device's `size_max`); the engine cuts
    /// longer segments at multiples of 512 bytes.
    fn max_segment_len(&self) -> u32;
    /// Queues `t` (the device may not see it before [`BlockDevice::notify`]); returns
    /// a token that names it until its completion.
    fn submit(&mut self, t: &Transfer) -> Result<u16, SubmitError>;
    /// Tells the device about every transfer queued since the last call (one
    /// notification per batch).
    fn notify(&mut self);
    /// The next finished transfer, if any: its token and whether it succeeded.
    fn next_completion(&mut self) -> Option<(u16, bool)>;
    /// Makes completed writes durable, synchronously; called only with nothing in
    /// flight. Returns success.
    fn flush(&mut self) -> bool;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Segments being transferred.
    Transfer,
    /// Waiting for the device to drain, then a flush.
    Flush,
}

struct Active {
    key: u32,
    client: usize,
    req: Request,
    phase: Phase,
    /// Segments handed to the device whole so far.
    next_seg: usize,
    /// Bytes of segment `next_seg` handed to the device so far (it was cut at the
    /// device's segment limit).
    seg_done: u32,
    /// Sector of the next transfer.
    sector: u64,
    /// Device transfers in flight.
    outstanding: u32,
    failed: bool,
}

struct ClientState<M> {
    server: Server<M>,
    window: Window,
    /// Responses sent since the last signal check.
    responded: bool,
    /// Cut off (reported once).
    dead: bool,
}

/// What a run of the engine asks of the PD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Bit `i`: notify client `i`.
    pub notify: u64,
    /// Bit `i`: client `i` was cut off during this run.
    pub cut_off: u64,
}

/// Counters for tests and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Device transfers started.
    pub transfers: u64,
    /// Device notifications (one per batch of transfers).
    pub notifies: u64,
    /// Device flushes.
    pub flushes: u64,
    /// Client requests completed.
    pub completed: u64,
    /// Most device transfers in flight at once.
    pub peak_in_flight: usize,
}

/// The engine over device `D` and client control regions `M`.
pub struct Engine<M, D> {
    device: D,
    clients: Vec<Option<ClientState<M>>>,
    active: Vec<Active>,
    /// Device token → active key.
    tokens: Vec<(u16, u32)>,
    next_key: u32,
    rr: usize,
    /// Transfers queued since the device was last notified.
    unnotified: bool,
    stats: EngineStats,
}

/// A client's resources as the PD found them.
pub struct ClientRegions<M> {
    /// The control region (info page and rings).
    pub control: M,
    /// Size of the client's data region in bytes.
    pub data_size: u64,
}

/// Why the engine could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// Client `client`'s window ends past the disk.
    WindowPastDisk {
        /// The client.
        client: usize,
    },
    /// Client `client`'s control region cannot hold the protocol layout.
    Layout {
        /// The client.
        client: usize,
        /// Why.
        error: LayoutError,
    },
    /// Client `client` is configured but has no regions (or the reverse).
    Regions {
        /// The client.
        client: usize,
    },
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EngineError::WindowPastDisk { client } => {
                write!(f, "client {client}: window ends past the disk")
            }
            EngineError::Layout { client, error } => write!(f, "client {client}: {error}"),
            EngineError::Regions { client } => {
                write!(
                    f,
                    "client {client}: configured without mapped regions, or mapped without configuration"
                )
            }
        }
    }
}

impl<M: SharedMemory + Clone, D: BlockDevice> Engine<M, D> {
    /// Sets up a server per configured client and publishes each info page with a new
    /// generation (one more than what the page held: a restarted VCP changes it).
    pub fn new(
        device: D,
        config: &Config,
        mut regions: [Option<ClientRegions<M>>; MAX_CLIENTS],
    ) -> Result<Self, EngineError> {
        let mut clients = Vec::new();
        for (i, window) in config.clients.iter().enumerate() {
            let state = match (window, regions[i].take()) {
                (None, None) => None,
                (Some(w), Some(r)) => {
                    if w.end() > device.capacity_sectors() {
                        return Err(EngineError::WindowPastDisk { client: i });
                    }
                    let cfg = ServerConfig {
                        capacity_blocks: w.blocks,
                        read_only: w.read_only || device.read_only(),
                        queue_depth: w.depth,
                        ring_capacity: RING_CAPACITY,
                    };
                    let mut server = Server::new(r.control, r.data_size, cfg)
                        .map_err(|error| EngineError::Layout { client: i, error })?;
                    let generation = server.published_generation().wrapping_add(1);
                    server
                        .publish(generation)
                        .map_err(|_| EngineError::Regions { client: i })?;
                    Some(ClientState {
                        server,
                        window: *w,
                        responded: false,
                        dead: false,
                    })
                }
                _ => return Err(EngineError::Regions { client: i }),
            };
            clients.push(state);
        }
        Ok(Engine {
            device,
            clients,
            active: Vec::new(),
            tokens: Vec::new(),
            next_key: 0,
            rr: 0,
            unnotified: false,
            stats: EngineStats::default(),
        })
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, mutably (e.g. to acknowledge its interrupt).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// Counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Client `i`'s server half (for its statistics).
    pub fn server(&self, i: usize) -> Option<&Server<M>> {
        self.clients.get(i)?.as_ref().map(|c| &c.server)
    }

    fn in_flight(&self) -> usize {
        self.tokens.len()
    }

    fn flush_pending(&self) -> bool {
        self.active.iter().any(|a| a.phase == Phase::Flush)
    }

    /// Does everything that can be done now: completions, flushes, new requests (round
    /// robin), responses; then asks idle clients for a notification on their next
    /// request. Call it at start, on every client notification and on every device
    /// interrupt.
    pub fn run(&mut self) -> RunResult {
        let mut result = RunResult::default();
        loop {
            let mut progress = self.complete_transfers(&mut result);
            progress |= self.run_flush(&mut result);
            progress |= self.continue_active(&mut result);
            progress |= self.take_requests(&mut result);
            if progress {
                continue;
            }
            if self.arm_signals(&mut result) {
                break;
            }
        }
        // One notification for everything queued in this run.
        if self.unnotified {
            self.unnotified = false;
            self.device.notify();
            self.stats.notifies += 1;
        }
        for (i, slot) in self.clients.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            if c.responded && !c.dead {
                c.responded = false;
                match c.server.signal_needed() {
                    Ok(true) => result.notify |= 1 << i,
                    Ok(false) => {}
                    Err(_) => {
                        c.dead = true;
                        result.cut_off |= 1 << i;
                    }
                }
            }
        }
        result
    }

    fn kill(&mut self, client: usize, result: &mut RunResult) {
        if let Some(Some(c)) = self.clients.get_mut(client) {
            if !c.dead {
                c.dead = true;
                result.cut_off |= 1 << client;
            }
        }
    }

    fn respond(&mut self, idx: usize, status: Status, result: &mut RunResult) {
        let a = self.active.swap_remove(idx);
        self.stats.completed += 1;
        let bytes = if status == Status::Ok { a.req.bytes as u32 } else { 0 };
        let Some(Some(c)) = self.clients.get_mut(a.client) else {
            return;
        };
        if c.dead {
            return;
        }
        match c.server.complete(a.req.id, status, bytes) {
            Ok(()) => c.responded = true,
            Err(ServerError::NotInFlight(_)) => {}
            Err(_) => self.kill(a.client, result),
        }
    }

    fn complete_transfers(&mut self, result: &mut RunResult) -> bool {
        let mut progress = false;
        while let Some((token, ok)) = self.device.next_completion() {
            progress = true;
            let Some(t) = self.tokens.iter().position(|&(tok, _)| tok == token) else {
                continue;
            };
            let (_, key) = self.tokens.swap_remove(t);
            let Some(idx) = self.active.iter().position(|a| a.key == key) else {
                continue;
            };
            let a = &mut self.active[idx];
            a.outstanding -= 1;
            a.failed |= !ok;
            if a.failed {
                a.next_seg = a.req.segments().len();
            }
            if a.outstanding == 0 && a.next_seg == a.req.segments().len() {
                self.finish_transfer(idx, result);
            }
        }
        progress
    }

    /// All segments of active request `idx` are done.
    fn finish_transfer(&mut self, idx: usize, result: &mut RunResult) {
        let a = &mut self.active[idx];
        if a.failed {
            self.respond(idx, Status::IoError, result);
        } else if a.req.op == Op::WriteFua {
            a.phase = Phase::Flush;
        } else {
            self.respond(idx, Status::Ok, result);
        }
    }

    fn run_flush(&mut self, result: &mut RunResult) -> bool {
        if !self.flush_pending() || self.in_flight() != 0 {
            return false;
        }
        // Nothing in flight: every write completed before the flush is on the device.
        // (Requests with segments still to submit wait until after the flush; they
        // were not complete when the flush came, so it need not cover them.)
        let ok = self.device.flush();
        self.stats.flushes += 1;
        let status = if ok { Status::Ok } else { Status::IoError };
        while let Some(idx) = self.active.iter().position(|a| a.phase == Phase::Flush) {
            self.respond(idx, status, result);
        }
        true
    }

    fn device_has_room(&self) -> bool {
        self.in_flight() < self.device.max_in_flight()
    }

    /// The next transfer of active request `idx` within the device's limits, and the
    /// request's cursor after it.
    fn next_transfer(&self, idx: usize) -> Option<(Transfer, usize, u32)> {
        let a = &self.active[idx];
        let max_segs = self.device.max_segments().clamp(1, MAX_SEGMENTS);
        let block = BLOCK_SIZE;
        let max_len = (self.device.max_segment_len() / block * block).max(block);
        let (mut next_seg, mut seg_done) = (a.next_seg, a.seg_done);
        let mut segs = [Segment::default(); MAX_SEGMENTS];
        let mut n = 0;
        while n < max_segs {
            let Some(seg) = a.req.segments().get(next_seg) else {
                break;
            };
            let left = seg.len - seg_done;
            let take = left.min(max_len);
            segs[n] = Segment::new(seg.offset + u64::from(seg_done), take);
            n += 1;
            if take == left {
                next_seg += 1;
                seg_done = 0;
            } else {
                seg_done += take;
            }
        }
        let direction = if a.req.op.writes() {
            Direction::Write
        } else {
            Direction::Read
        };
        let t = Transfer::new(direction, a.sector, a.client, &segs[..n])?;
        Some((t, next_seg, seg_done))
    }

    /// Hands more of active request `idx` to the device (one transfer, or more if the
    /// device's limits split it); true if any.
    fn submit_segments(&mut self, idx: usize, result: &mut RunResult) -> bool {
        let mut progress = false;
        while self.device_has_room() {
            let Some((t, next_seg, seg_done)) = self.next_transfer(idx) else {
                break;
            };
            match self.device.submit(&t) {
                Ok(token) => {
                    self.stats.transfers += 1;
                    self.unnotified = true;
                    let a = &mut self.active[idx];
                    self.tokens.push((token, a.key));
                    a.outstanding += 1;
                    a.next_seg = next_seg;
                    a.seg_done = seg_done;
                    a.sector += t.sectors();
                    self.stats.peak_in_flight = self.stats.peak_in_flight.max(self.tokens.len());
                    progress = true;
                }
                Err(SubmitError::Full) => break,
                Err(SubmitError::Failed) => {
                    let a = &mut self.active[idx];
                    a.failed = true;
                    a.next_seg = a.req.segments().len();
                    if a.outstanding == 0 {
                        self.finish_transfer(idx, result);
                    }
                    return true;
                }
            }
        }
        progress
    }

    /// Continues requests whose segments did not all fit on the device.
    fn continue_active(&mut self, result: &mut RunResult) -> bool {
        if self.flush_pending() {
            return false;
        }
        let mut progress = false;
        let mut i = 0;
        while i < self.active.len() && self.device_has_room() {
            let a = &self.active[i];
            if a.phase == Phase::Transfer && a.next_seg < a.req.segments().len() {
                let before = self.active.len();
                progress |= self.submit_segments(i, result);
                if self.active.len() < before {
                    continue; // `i` now names another request
                }
            }
            i += 1;
        }
        progress
    }

    /// Takes one request from each client in turn while the device has room.
    fn take_requests(&mut self, result: &mut RunResult) -> bool {
        let mut progress = false;
        let n = self.clients.len();
        let mut idle_turns = 0;
        while idle_turns < n && !self.flush_pending() && self.device_has_room() {
            let i = self.rr;
            self.rr = (self.rr + 1) % n;
            let Some(c) = self.clients[i].as_mut().filter(|c| !c.dead) else {
                idle_turns += 1;
                continue;
            };
            let refused_before = c.server.stats().refused();
            let req = c.server.next_request();
            // Refused requests got error responses.
            c.responded |= c.server.stats().refused() != refused_before;
            let req = match req {
                Ok(Some(r)) => r,
                Ok(None) => {
                    idle_turns += 1;
                    continue;
                }
                Err(_) => {
                    self.kill(i, result);
                    idle_turns += 1;
                    continue;
                }
            };
            idle_turns = 0;
            progress = true;
            let sector = c.window.start + req.block;
            let key = self.next_key;
            self.next_key = self.next_key.wrapping_add(1);
            let phase = if req.op == Op::Flush {
                Phase::Flush
            } else {
                Phase::Transfer
            };
            self.active.push(Active {
                key,
                client: i,
                req,
                phase,
                next_seg: 0,
                seg_done: 0,
                sector,
                outstanding: 0,
                failed: false,
            });
            if phase == Phase::Transfer {
                let idx = self.active.len() - 1;
                self.submit_segments(idx, result);
            }
        }
        progress
    }

    /// Asks each client that could be served for a notification on its next request.
    /// Returns false if a request arrived meanwhile (run again).
    fn arm_signals(&mut self, result: &mut RunResult) -> bool {
        if self.flush_pending() || !self.device_has_room() {
            // A device interrupt will run the engine again.
            return true;
        }
        let mut settled = true;
        for i in 0..self.clients.len() {
            let Some(c) = self.clients[i].as_mut().filter(|c| !c.dead) else {
                continue;
            };
            match c.server.can_accept() {
                Ok(false) => continue, // a completion will run the engine again
                Ok(true) => {}
                Err(_) => {
                    self.kill(i, result);
                    continue;
                }
            }
            match c.server.request_signal() {
                Ok(true) => {}
                Ok(false) => settled = false,
                Err(_) => self.kill(i, result),
            }
        }
        settled
    }
}
