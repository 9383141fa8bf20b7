//! The server's half of the block protocol: takes requests from one client, checks
//! each completely, tracks what is in flight, sends responses.

use core::fmt;

use vcpos_queue::{Consumer, LayoutError, Producer, PushError, QueueError, SharedMemory};
use vcpos_vcp_common::control::{check_size, generation, CutOff};

use crate::layout::{
    ControlLayout, Info, Op, RequestDesc, ResponseDesc, Segment, Status, BLOCK_SIZE, MAX_QUEUE_DEPTH,
    MAX_REQUEST_BYTES, MAX_SEGMENTS,
};

/// What the server offers one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Size of the client's window of the disk, in blocks.
    pub capacity_blocks: u64,
    /// Writes are refused.
    pub read_only: bool,
    /// Requests accepted in flight (1..=min(ring capacity, [`MAX_QUEUE_DEPTH`])).
    pub queue_depth: u32,
    /// Slots in each ring (a power of two).
    pub ring_capacity: u32,
}

/// A checked request: every segment lies in the client's data region and the blocks
/// lie in its window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    /// The client's id.
    pub id: u32,
    /// The operation.
    pub op: Op,
    /// First block in the client's window.
    pub block: u64,
    /// Total bytes (sum of the segments).
    pub bytes: u64,
    nsegs: usize,
    segs: [Segment; MAX_SEGMENTS],
}

impl Request {
    /// The segments, in disk order.
    pub fn segments(&self) -> &[Segment] {
        &self.segs[..self.nsegs]
    }

    /// Blocks the request covers.
    pub fn blocks(&self) -> u64 {
        self.bytes / u64::from(BLOCK_SIZE)
    }
}

/// Why the server stopped serving this client, or misused its half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerError {
    /// A ring failed (the client corrupted an index): the client is cut off.
    Queue(QueueError),
    /// [`Server::complete`] for an id that is not in flight (a bug in the server).
    NotInFlight(u32),
    /// The response ring had no room although the server keeps room for every request
    /// in flight (the client corrupted the ring): the client is cut off.
    ResponseRingFull,
}

impl From<QueueError> for ServerError {
    fn from(e: QueueError) -> ServerError {
        ServerError::Queue(e)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Queue(e) => e.fmt(f),
            ServerError::NotInFlight(id) => {
                write!(f, "completion for request {id}, which is not in flight")
            }
            ServerError::ResponseRingFull => f.write_str("response ring full though room was kept: ring corrupted"),
        }
    }
}

/// Counts of what the server refused from this client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Requests accepted.
    pub accepted: u64,
    /// Requests refused, by reason.
    pub unsupported: u64,
    /// Bad segments (outside the data region, empty, unaligned length).
    pub bad_segment: u64,
    /// Blocks outside the window.
    pub out_of_range: u64,
    /// Writes to a read-only window.
    pub read_only: u64,
    /// Ids already in flight.
    pub duplicate_id: u64,
    /// Malformed requests.
    pub bad_request: u64,
}

impl ServerStats {
    /// All refusals.
    pub fn refused(&self) -> u64 {
        self.unsupported + self.bad_segment + self.out_of_range + self.read_only + self.duplicate_id + self.bad_request
    }

    fn count(&mut self, s: Status) {
        match s {
            Status::Unsupported => self.unsupported += 1,
            Status::BadSegment => self.bad_segment += 1,
            Status::OutOfRange => self.out_of_range += 1,
            Status::ReadOnly => self.read_only += 1,
            Status::DuplicateId => self.duplicate_id += 1,
            Status::BadRequest => self.bad_request += 1,
            Status::Ok | Status::IoError => {}
        }
    }
}

/// The server's half for one client.
pub struct Server<M> {
    mem: M,
    requests: Consumer<M, RequestDesc>,
    responses: Producer<M, ResponseDesc>,
    config: ServerConfig,
    data_size: u64,
    in_flight: [Option<u32>; MAX_QUEUE_DEPTH as usize],
    in_flight_count: u32,
    stats: ServerStats,
    cut_off: CutOff<ServerError>,
}

impl<M: SharedMemory + Clone> Server<M> {
    /// The server's half over control region `control`, for a client whose data region
    /// is `data_size` bytes. Does not publish the info page yet ([`Self::publish`]).
    pub fn new(control: M, data_size: u64, config: ServerConfig) -> Result<Self, LayoutError> {
        if config.queue_depth == 0 || config.queue_depth > config.ring_capacity || config.queue_depth > MAX_QUEUE_DEPTH
        {
            return Err(LayoutError::Capacity(config.queue_depth));
        }
        let layout = ControlLayout::new(config.ring_capacity)?;
        check_size(&control, layout.size())?;
        Ok(Server {
            requests: Consumer::new(control.clone(), layout.requests)?,
            responses: Producer::new(control.clone(), layout.responses)?,
            mem: control,
            config,
            data_size,
            in_flight: [None; MAX_QUEUE_DEPTH as usize],
            in_flight_count: 0,
            stats: ServerStats::default(),
            cut_off: CutOff::new(),
        })
    }

    /// Publishes the info page with `generation` (ready last): the client may start.
    pub fn publish(&mut self, generation: u32) -> Result<(), ServerError> {
        let info = Info {
            generation,
            block_size: BLOCK_SIZE,
            read_only: self.config.read_only,
            capacity_blocks: self.config.capacity_blocks,
            queue_depth: self.config.queue_depth,
            max_segments: MAX_SEGMENTS as u32,
        };
        info.publish(&self.mem, self.config.ring_capacity)
            .map_err(|e| self.cut_off.cut(QueueError::OutOfBounds(e).into()))
    }

    /// The generation on the info page now (to publish the next one after a restart).
    pub fn published_generation(&self) -> u32 {
        generation(&self.mem).unwrap_or(0)
    }

    /// The configuration.
    pub fn config(&self) -> ServerConfig {
        self.config
    }

    /// Refusal counts.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight_count
    }

    /// Why the client was cut off, if it was.
    pub fn cut_off(&self) -> Option<ServerError> {
        self.cut_off.reason()
    }

    /// Whether another request could be taken now (depth and response room), without
    /// reading the request ring.
    pub fn can_accept(&mut self) -> Result<bool, ServerError> {
        self.cut_off.check()?;
        if self.in_flight_count >= self.config.queue_depth {
            return Ok(false);
        }
        let room = self.responses.free_slots().map_err(|e| self.cut_off.cut(e.into()))?;
        // Room for a response to every request in flight plus this one.
        Ok(room > self.in_flight_count)
    }

    /// The next acceptable request, if any. Requests that fail a check get an error
    /// response here and are skipped. Returns `Ok(None)` when the ring is empty or the
    /// client has `queue_depth` requests in flight (the rest wait in the ring).
    pub fn next_request(&mut self) -> Result<Option<Request>, ServerError> {
        // Bounded: a client producing refusals as fast as we read them (on another
        // core) cannot keep us here; the rest wait for the next call.
        for _ in 0..self.config.ring_capacity {
            if !self.can_accept()? {
                return Ok(None);
            }
            let Some(desc) = self.requests.pop().map_err(|e| self.cut_off.cut(e.into()))? else {
                return Ok(None);
            };
            match self.check(&desc) {
                Ok(req) => {
                    let slot = self.in_flight.iter().position(Option::is_none).unwrap_or(0);
                    self.in_flight[slot] = Some(req.id);
                    self.in_flight_count += 1;
                    self.stats.accepted += 1;
                    return Ok(Some(req));
                }
                Err(status) => {
                    self.stats.count(status);
                    self.respond(desc.id, status, 0)?;
                }
            }
        }
        Ok(None)
    }

    fn check(&self, d: &RequestDesc) -> Result<Request, Status> {
        if self.in_flight.contains(&Some(d.id)) {
            return Err(Status::DuplicateId);
        }
        let op = Op::from_wire(d.op).ok_or(Status::Unsupported)?;
        let nsegs = usize::from(d.nsegs);
        let mut req = Request {
            id: d.id,
            op,
            block: d.block,
            bytes: 0,
            nsegs,
            segs: d.segs,
        };
        if op == Op::Flush {
            if nsegs != 0 {
                return Err(Status::BadRequest);
            }
            req.block = 0;
            return Ok(req);
        }
        if nsegs == 0 || nsegs > MAX_SEGMENTS {
            return Err(Status::BadRequest);
        }
        let mut bytes = 0u64;
        for s in &d.segs[..nsegs] {
            let len = u64::from(s.len);
            if len == 0 || len % u64::from(BLOCK_SIZE) != 0 {
                return Err(Status::BadSegment);
            }
            match s.offset.checked_add(len) {
                Some(end) if end <= self.data_size => {}
                _ => return Err(Status::BadSegment),
            }
            bytes += len;
        }
        if bytes > MAX_REQUEST_BYTES {
            return Err(Status::BadRequest);
        }
        let blocks = bytes / u64::from(BLOCK_SIZE);
        match d.block.checked_add(blocks) {
            Some(end) if end <= self.config.capacity_blocks => {}
            _ => return Err(Status::OutOfRange),
        }
        if op.writes() && self.config.read_only {
            return Err(Status::ReadOnly);
        }
        req.bytes = bytes;
        Ok(req)
    }

    fn respond(&mut self, id: u32, status: Status, bytes: u32) -> Result<(), ServerError> {
        let r = ResponseDesc {
            id,
            status: status as u32,
            bytes,
            reserved: 0,
        };
        match self.responses.push(&r) {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(self.cut_off.cut(ServerError::ResponseRingFull)),
            Err(PushError::Queue(e)) => Err(self.cut_off.cut(e.into())),
        }
    }

    /// Completes request `id` (which [`Self::next_request`] returned) with `status`
    /// and `bytes` transferred.
    pub fn complete(&mut self, id: u32, status: Status, bytes: u32) -> Result<(), ServerError> {
        let Some(slot) = self.in_flight.iter().position(|&s| s == Some(id)) else {
            return Err(ServerError::NotInFlight(id));
        };
        self.in_flight[slot] = None;
        self.in_flight_count -= 1;
        self.cut_off.check()?;
        self.respond(id, status, bytes)
    }

    /// After a batch of responses: whether to notify the client now.
    pub fn signal_needed(&mut self) -> Result<bool, ServerError> {
        self.cut_off.check()?;
        self.responses.signal_needed().map_err(|e| self.cut_off.cut(e.into()))
    }

    /// Before waiting: asks the client for a notification on its next request; `false`
    /// if requests arrived meanwhile (serve them first).
    pub fn request_signal(&mut self) -> Result<bool, ServerError> {
        self.cut_off.check()?;
        self.requests.request_signal().map_err(|e| self.cut_off.cut(e.into()))
    }
}
