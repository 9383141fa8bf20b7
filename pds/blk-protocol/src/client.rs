//! The client's half of the block protocol: reads the info page, submits requests,
//! takes responses and checks them against what it has in flight.

use core::fmt;

use vcpos_queue::{Consumer, LayoutError, Producer, PushError, QueueError, SharedMemory};
use vcpos_vcp_common::control::{check_size, generation};

use crate::layout::{
    ControlLayout, Info, InfoError, Op, RequestDesc, ResponseDesc, Segment, Status, MAX_QUEUE_DEPTH, MAX_SEGMENTS,
};

/// A finished request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// The request's id.
    pub id: u32,
    /// How it ended.
    pub status: Status,
    /// Bytes transferred.
    pub bytes: u32,
}

/// What went wrong on the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server has not published the info page yet.
    NotReady,
    /// The info page is impossible.
    Info(InfoError),
    /// The server re-published the info page with another generation (it restarted):
    /// requests in flight are lost; make a new [`Client`].
    GenerationChanged {
        /// The generation connected to.
        was: u32,
        /// The one on the page now.
        now: u32,
    },
    /// A ring failed (the server corrupted an index).
    Queue(QueueError),
    /// No room in the request ring.
    Full,
    /// Already `queue_depth` requests in flight.
    DepthExceeded,
    /// The id is already in flight.
    DuplicateId(u32),
    /// A segment is outside this client's data region, empty or not whole blocks, or
    /// there are too many.
    BadSegment,
    /// A response for an id that is not in flight (unknown, or completed already).
    UnknownResponse(u32),
    /// A response with a status value the protocol does not define.
    BadStatus {
        /// The request's id.
        id: u32,
        /// The status value.
        status: u32,
    },
    /// A response claiming more bytes than the request had.
    BadLength {
        /// The request's id.
        id: u32,
        /// Bytes claimed.
        bytes: u32,
    },
}

impl From<QueueError> for ClientError {
    fn from(e: QueueError) -> ClientError {
        ClientError::Queue(e)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotReady => f.write_str("block server not ready"),
            ClientError::Info(e) => e.fmt(f),
            ClientError::GenerationChanged { was, now } => {
                write!(
                    f,
                    "block server restarted (generation {was} -> {now}): requests in flight lost"
                )
            }
            ClientError::Queue(e) => e.fmt(f),
            ClientError::Full => f.write_str("request ring full"),
            ClientError::DepthExceeded => f.write_str("queue depth reached"),
            ClientError::DuplicateId(id) => write!(f, "request id {id} already in flight"),
            ClientError::BadSegment => f.write_str("segment outside the data region, empty, or not whole blocks"),
            ClientError::UnknownResponse(id) => {
                write!(f, "response for id {id}, which is not in flight")
            }
            ClientError::BadStatus { id, status } => {
                write!(f, "response for id {id} has unknown status {status}")
            }
            ClientError::BadLength { id, bytes } => {
                write!(f, "response for id {id} claims {bytes} bytes, more than asked")
            }
        }
    }
}

#[derive(Clone, Copy)]
struct InFlight {
    id: u32,
    bytes: u32,
}

/// The client's half.
pub struct Client<M> {
    mem: M,
    requests: Producer<M, RequestDesc>,
    responses: Consumer<M, ResponseDesc>,
    ring_capacity: u32,
    data_size: u64,
    info: Option<Info>,
    in_flight: [Option<InFlight>; MAX_QUEUE_DEPTH as usize],
    in_flight_count: u32,
}

impl<M: SharedMemory + Clone> Client<M> {
    /// The client's half over control region `control` with rings of `ring_capacity`
    /// slots (this side's own configuration), for a data region of `data_size` bytes.
    pub fn new(control: M, ring_capacity: u32, data_size: u64) -> Result<Self, LayoutError> {
        let layout = ControlLayout::new(ring_capacity)?;
        check_size(&control, layout.size())?;
        Ok(Client {
            requests: Producer::new(control.clone(), layout.requests)?,
            responses: Consumer::new(control.clone(), layout.responses)?,
            mem: control,
            ring_capacity,
            data_size,
            info: None,
            in_flight: [None; MAX_QUEUE_DEPTH as usize],
            in_flight_count: 0,
        })
    }

    /// Reads the info page; on success the client is connected to that generation.
    pub fn connect(&mut self) -> Result<Info, ClientError> {
        match Info::read(&self.mem, self.ring_capacity).map_err(ClientError::Info)? {
            None => Err(ClientError::NotReady),
            Some(info) => {
                self.info = Some(info);
                Ok(info)
            }
        }
    }

    /// The info read by [`Self::connect`].
    pub fn info(&self) -> Option<Info> {
        self.info
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight_count
    }

    fn connected(&self) -> Result<Info, ClientError> {
        let info = self.info.ok_or(ClientError::NotReady)?;
        let now = generation(&self.mem).map_err(|e| ClientError::Queue(QueueError::OutOfBounds(e)))?;
        if now != info.generation {
            return Err(ClientError::GenerationChanged {
                was: info.generation,
                now,
            });
        }
        Ok(info)
    }

    /// Submits `req` after checking it on this side too (connected, id free, depth,
    /// segments within the data region).
    pub fn submit(&mut self, req: &RequestDesc) -> Result<(), ClientError> {
        let info = self.connected()?;
        if self.in_flight_count >= info.queue_depth {
            return Err(ClientError::DepthExceeded);
        }
        if self.in_flight.iter().flatten().any(|f| f.id == req.id) {
            return Err(ClientError::DuplicateId(req.id));
        }
        let nsegs = usize::from(req.nsegs);
        if nsegs > MAX_SEGMENTS || nsegs as u32 > info.max_segments {
            return Err(ClientError::BadSegment);
        }
        let mut bytes = 0u64;
        for s in &req.segs[..nsegs] {
            let ok = s.len != 0
                && s.len % info.block_size == 0
                && s.offset
                    .checked_add(u64::from(s.len))
                    .is_some_and(|end| end <= self.data_size);
            if !ok {
                return Err(ClientError::BadSegment);
            }
            bytes += u64::from(s.len);
        }
        match self.requests.push(req) {
            Ok(()) => {}
            Err(PushError::Full) => return Err(ClientError::Full),
            Err(PushError::Queue(e)) => return Err(e.into()),
        }
        let slot = self.in_flight.iter().position(Option::is_none).unwrap_or(0);
        self.in_flight[slot] = Some(InFlight {
            id: req.id,
            bytes: bytes.min(u64::from(u32::MAX)) as u32,
        });
        self.in_flight_count += 1;
        Ok(())
    }

    /// Submits a read of the blocks from `block` on into `segs`.
    pub fn read(&mut self, id: u32, block: u64, segs: &[Segment]) -> Result<(), ClientError> {
        let req = RequestDesc::with_segments(id, Op::Read, block, segs).ok_or(ClientError::BadSegment)?;
        self.submit(&req)
    }

    /// Submits a write of `segs` to the blocks from `block` on (`fua`: complete only
    /// once durable).
    pub fn write(&mut self, id: u32, block: u64, segs: &[Segment], fua: bool) -> Result<(), ClientError> {
        let op = if fua { Op::WriteFua } else { Op::Write };
        let req = RequestDesc::with_segments(id, op, block, segs).ok_or(ClientError::BadSegment)?;
        self.submit(&req)
    }

    /// Submits a flush.
    pub fn flush(&mut self, id: u32) -> Result<(), ClientError> {
        self.submit(&RequestDesc::new(id, Op::Flush, 0))
    }

    /// The next response, checked against what is in flight. A response that fails a
    /// check is consumed and reported as the error.
    pub fn poll(&mut self) -> Result<Option<Completion>, ClientError> {
        let Some(r) = self.responses.pop()? else {
            return Ok(None);
        };
        let Some(slot) = self.in_flight.iter().position(|f| f.is_some_and(|f| f.id == r.id)) else {
            return Err(ClientError::UnknownResponse(r.id));
        };
        let asked = self.in_flight[slot].map_or(0, |f| f.bytes);
        self.in_flight[slot] = None;
        self.in_flight_count -= 1;
        let status = Status::from_wire(r.status).ok_or(ClientError::BadStatus {
            id: r.id,
            status: r.status,
        })?;
        if r.bytes > asked {
            return Err(ClientError::BadLength {
                id: r.id,
                bytes: r.bytes,
            });
        }
        Ok(Some(Completion {
            id: r.id,
            status,
            bytes: r.bytes,
        }))
    }

    /// After a batch of submissions: whether to notify the server now.
    pub fn signal_needed(&mut self) -> Result<bool, ClientError> {
        Ok(self.requests.signal_needed()?)
    }

    /// Before waiting: asks the server for a notification on its next response;
    /// `false` if responses arrived meanwhile (take them first).
    pub fn request_signal(&mut self) -> Result<bool, ClientError> {
        Ok(self.responses.request_signal()?)
    }
}
