//! Byte layouts of the block protocol: descriptors, ops, statuses, the info page and
//! where everything sits in the control region. All integers are little-endian.

use core::sync::atomic::Ordering;

use vcpos_queue::{LayoutError, OutOfBounds, RingLayout, SharedMemory};
use vcpos_vcp_common::control::InfoHeader;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// The block size of the protocol: lengths and block numbers are in 512-byte units.
pub const BLOCK_SIZE: u32 = 512;
/// Segments a request can carry inline.
pub const MAX_SEGMENTS: usize = 15;
/// The largest queue depth (requests in flight per client) either half supports.
pub const MAX_QUEUE_DEPTH: u32 = 64;
/// Slots in each ring of a block connection (both sides are built with it; neither
/// reads it from shared memory, the info page only repeats it as a check).
pub const RING_CAPACITY: u32 = 64;
/// The largest request, in bytes (sum of its segments).
pub const MAX_REQUEST_BYTES: u64 = 4 << 20;

/// One piece of a request's data: `len` bytes at `offset` in the client's data region.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Segment {
    /// Byte offset in the client's data region.
    pub offset: u64,
    /// Length in bytes, a non-zero multiple of [`BLOCK_SIZE`].
    pub len: u32,
    /// Zero.
    pub reserved: u32,
}

/// A request (client → server), 256 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct RequestDesc {
    /// The client's id for the request, unique among its requests in flight.
    pub id: u32,
    /// An [`Op`] value.
    pub op: u16,
    /// Segments used (1..=[`MAX_SEGMENTS`] for reads and writes, 0 for a flush).
    pub nsegs: u16,
    /// First block, relative to the client's window of the disk.
    pub block: u64,
    /// The data, in order: consecutive blocks from `block` on.
    pub segs: [Segment; MAX_SEGMENTS],
}

/// A response (server → client), 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct ResponseDesc {
    /// The request's id.
    pub id: u32,
    /// A [`Status`] value.
    pub status: u32,
    /// Bytes transferred.
    pub bytes: u32,
    /// Zero.
    pub reserved: u32,
}

const _: () = assert!(core::mem::size_of::<Segment>() == 16);
const _: () = assert!(core::mem::size_of::<RequestDesc>() == 256);
const _: () = assert!(core::mem::size_of::<ResponseDesc>() == 16);

impl RequestDesc {
    /// A request with no segments.
    pub const fn new(id: u32, op: Op, block: u64) -> RequestDesc {
        RequestDesc {
            id,
            op: op as u16,
            nsegs: 0,
            block,
            segs: [Segment {
                offset: 0,
                len: 0,
                reserved: 0,
            }; MAX_SEGMENTS],
        }
    }

    /// A request carrying `segs` (at most [`MAX_SEGMENTS`]; `None` if more).
    pub fn with_segments(id: u32, op: Op, block: u64, segs: &[Segment]) -> Option<RequestDesc> {
        if segs.len() > MAX_SEGMENTS {
            return None;
        }
        let mut d = RequestDesc::new(id, op, block);
        d.segs[..segs.len()].copy_from_slice(segs);
        d.nsegs = segs.len() as u16;
        Some(d)
    }
}

impl Segment {
    /// `len` bytes at `offset`.
    pub const fn new(offset: u64, len: u32) -> Segment {
        Segment {
            offset,
            len,
            reserved: 0,
        }
    }
}

/// Operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum Op {
    /// Read blocks into the segments.
    Read = 0,
    /// Write the segments to blocks.
    Write = 1,
    /// Make every completed write durable (no segments).
    Flush = 2,
    /// Write, and complete only once the data is durable (forced unit access).
    WriteFua = 3,
}

impl Op {
    /// The op with wire value `v`, if any.
    pub fn from_wire(v: u16) -> Option<Op> {
        match v {
            0 => Some(Op::Read),
            1 => Some(Op::Write),
            2 => Some(Op::Flush),
            3 => Some(Op::WriteFua),
            _ => None,
        }
    }

    /// Whether the op writes the disk.
    pub fn writes(self) -> bool {
        matches!(self, Op::Write | Op::WriteFua)
    }
}

/// Response statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// The device failed the transfer.
    IoError = 1,
    /// Unknown op.
    Unsupported = 2,
    /// A segment is empty, not a multiple of the block size, or outside the client's
    /// data region.
    BadSegment = 3,
    /// Blocks outside the client's window of the disk.
    OutOfRange = 4,
    /// A write to a read-only window.
    ReadOnly = 5,
    /// The id is already in flight.
    DuplicateId = 6,
    /// Malformed: wrong segment count or too large.
    BadRequest = 7,
}

impl Status {
    /// The status with wire value `v`, if any.
    pub fn from_wire(v: u32) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::IoError,
            2 => Status::Unsupported,
            3 => Status::BadSegment,
            4 => Status::OutOfRange,
            5 => Status::ReadOnly,
            6 => Status::DuplicateId,
            7 => Status::BadRequest,
            _ => return None,
        })
    }
}

/// Info page offsets (each a `u32`, written only by the server).
pub mod info_offsets {
    /// The header every VCP protocol's info page starts with: [`super::INFO_MAGIC`],
    /// [`super::PROTOCOL_VERSION`], ready, generation.
    pub use vcpos_vcp_common::control::header_offsets::{GENERATION, MAGIC, READY, VERSION};
    /// Block size in bytes.
    pub const BLOCK_SIZE: usize = 0x10;
    /// Bit 0: read-only.
    pub const FLAGS: usize = 0x14;
    /// Capacity in blocks, low 32 bits.
    pub const CAPACITY_LO: usize = 0x18;
    /// Capacity in blocks, high 32 bits.
    pub const CAPACITY_HI: usize = 0x1c;
    /// Requests the server accepts in flight from this client.
    pub const QUEUE_DEPTH: usize = 0x20;
    /// Segments per request the server accepts.
    pub const MAX_SEGMENTS: usize = 0x24;
    /// Ring capacity the server was configured with (both sides must agree).
    pub const RING_CAPACITY: usize = 0x28;
}

/// This protocol's info page header: magic `"VBLK"`, version 1.
const HEADER: InfoHeader = InfoHeader::new(*b"VBLK", 1);
/// `"VBLK"` little-endian.
pub const INFO_MAGIC: u32 = HEADER.magic;
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = HEADER.version;

/// What the info page says about the disk (as the client sees its window).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Generation of the server's connection state.
    pub generation: u32,
    /// Block size in bytes ([`BLOCK_SIZE`]).
    pub block_size: u32,
    /// Writes are refused.
    pub read_only: bool,
    /// Size of the client's window in blocks.
    pub capacity_blocks: u64,
    /// Requests in flight the server accepts.
    pub queue_depth: u32,
    /// Segments per request.
    pub max_segments: u32,
}

impl Info {
    /// Writes the info page (ready last, with Release).
    pub fn publish(&self, mem: &impl SharedMemory, ring_capacity: u32) -> Result<(), OutOfBounds> {
        use info_offsets as o;
        HEADER.publish(mem, self.generation, |mem| {
            mem.store_u32(o::BLOCK_SIZE, self.block_size, Ordering::Relaxed)?;
            mem.store_u32(o::FLAGS, u32::from(self.read_only), Ordering::Relaxed)?;
            mem.store_u32(o::CAPACITY_LO, self.capacity_blocks as u32, Ordering::Relaxed)?;
            mem.store_u32(o::CAPACITY_HI, (self.capacity_blocks >> 32) as u32, Ordering::Relaxed)?;
            mem.store_u32(o::QUEUE_DEPTH, self.queue_depth, Ordering::Relaxed)?;
            mem.store_u32(o::MAX_SEGMENTS, self.max_segments, Ordering::Relaxed)?;
            mem.store_u32(o::RING_CAPACITY, ring_capacity, Ordering::Relaxed)
        })
    }

    /// Reads the info page: `Ok(None)` while not ready; `Err` names the first field
    /// that is impossible for a client with ring capacity `ring_capacity`.
    pub fn read(mem: &impl SharedMemory, ring_capacity: u32) -> Result<Option<Info>, InfoError> {
        use info_offsets as o;
        HEADER.read(mem, |r, generation| {
            let field = |name: &'static str, value: u32| InfoError::Field {
                name,
                value: value.into(),
            };
            let block_size = r.expect("block_size", o::BLOCK_SIZE, BLOCK_SIZE)?;
            let queue_depth = r.load(o::QUEUE_DEPTH)?;
            if queue_depth == 0 || queue_depth > ring_capacity || queue_depth > MAX_QUEUE_DEPTH {
                return Err(field("queue_depth", queue_depth));
            }
            let max_segments = r.load(o::MAX_SEGMENTS)?;
            if max_segments == 0 || max_segments as usize > MAX_SEGMENTS {
                return Err(field("max_segments", max_segments));
            }
            r.expect("ring_capacity", o::RING_CAPACITY, ring_capacity)?;
            Ok(Info {
                generation,
                block_size,
                read_only: r.load(o::FLAGS)? & 1 != 0,
                capacity_blocks: u64::from(r.load(o::CAPACITY_LO)?) | (u64::from(r.load(o::CAPACITY_HI)?) << 32),
                queue_depth,
                max_segments,
            })
        })
    }
}

pub use vcpos_vcp_common::control::InfoError;

/// Where the info page and the two rings sit in a client's control region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlLayout {
    /// The request ring (client produces).
    pub requests: RingLayout,
    /// The response ring (server produces).
    pub responses: RingLayout,
}

const PAGE: usize = 0x1000;

impl ControlLayout {
    /// The layout for rings of `ring_capacity` slots each: info page at 0, request ring
    /// at 0x1000, response ring at the next page boundary after it.
    pub const fn new(ring_capacity: u32) -> Result<ControlLayout, LayoutError> {
        let requests = match RingLayout::for_descriptor::<RequestDesc>(PAGE, ring_capacity) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let responses_at = requests.end().next_multiple_of(PAGE);
        let responses = match RingLayout::for_descriptor::<ResponseDesc>(responses_at, ring_capacity) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        Ok(ControlLayout { requests, responses })
    }

    /// Bytes the control region needs (a whole number of pages).
    pub const fn size(&self) -> usize {
        self.responses.end().next_multiple_of(PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_layout() {
        let l = ControlLayout::new(32).unwrap();
        assert_eq!(l.requests.base(), 0x1000);
        assert_eq!(l.requests.end(), 0x1000 + 0x80 + 32 * 256);
        assert_eq!(l.responses.base(), 0x4000);
        assert_eq!(l.size(), 0x5000);
        assert!(ControlLayout::new(24).is_err());
        // The capacity every connection uses: 64 requests in flight.
        let l = ControlLayout::new(RING_CAPACITY).unwrap();
        assert_eq!(l.responses.base(), 0x6000);
        assert_eq!(l.size(), 0x7000);
    }
}
