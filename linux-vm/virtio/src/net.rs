//! The virtio network device (virtio 1.2 §5.1), one queue pair, served by a
//! [`NetBackend`] (in vcpos: a client of the network VCP).
//!
//! Features offered: VIRTIO_NET_F_MAC (the MAC from [`NetInfo`]) and
//! VIRTIO_NET_F_STATUS (link state from [`NetInfo`]), plus VIRTIO_F_VERSION_1 from
//! the transport; and the transmit offloads the backend does in software
//! ([`NetInfo::offloads`]): VIRTIO_NET_F_CSUM (the driver may leave a TCP/UDP
//! checksum to the device) and, with it, VIRTIO_NET_F_HOST_TSO4 (the driver may hand
//! over a TCP/IPv4 frame of up to [`MAX_OFFLOAD_FRAME_LEN`] bytes for the device to
//! cut into MTU-sized segments). No receive offloads, no mergeable receive buffers,
//! no control queue. Every frame is behind the 12-byte `virtio_net_hdr_v1`
//! ([`NetHeader`]). The configuration space is `mac` and `status` (§5.1.4).
//!
//! **Transmit** (queue 1): a chain is the header and the frame, in any descriptor
//! layout (the header may share a descriptor with the frame). A frame is *offloaded*
//! when its header asks for an offload: NEEDS_CSUM (accepted only with CSUM
//! negotiated) and/or `gso_type` TCPV4 (accepted only with HOST_TSO4 negotiated and
//! with NEEDS_CSUM, as §5.1.6.2.1 asks of drivers). Any other `gso_type` (UDP, TCPV6,
//! USO, the ECN bit) is refused. Flag bits other than NEEDS_CSUM are ignored
//! (§5.1.6.2.2). The device does not interpret `csum_start`, `gso_size` and the rest:
//! the backend checks them. A plain frame is handed to the backend as the pieces past
//! the header; an offloaded one as the whole chain, header first, for the backend to
//! read the header from guest RAM. The pieces are guest-RAM ranges ([`DataSegment`]:
//! offset from the start of guest RAM, length), checked to lie inside guest RAM by
//! the queue, so the network VCP reads the frame straight from guest RAM (zero copy).
//! Frames stay in flight up to the backend's `tx_depth` and complete in any order;
//! the chain is then returned with used length 0. Frames shorter than
//! [`MIN_FRAME_LEN`] or longer than [`MAX_FRAME_LEN`] ([`MAX_OFFLOAD_FRAME_LEN`] for a
//! segmentation offload), in more pieces than the backend's `tx_segments_max`, or with
//! a header asking for an offload not negotiated are refused: returned at once and
//! counted in [`NetStats`].
//!
//! **Receive** (queue 0): the guest posts device-writable buffers. While the backend
//! takes buffers ([`NetBackend::rx_room`]) the device lends it each posted buffer past
//! its header room ([`NetBackend::rx_buffer`]), so the backend (the network VCP) can
//! hold all of them and copy each frame straight into one; it reports the length
//! ([`NetCompletion::Received`]); the device then writes the header (`num_buffers` =
//! 1, no flags) and returns the buffer with header + frame length. Length 0 returns
//! the buffer unused (counted). Buffers with room for less than the header and a
//! maximal frame ([`MIN_RX_BUFFER`], the size virtio 1.2 §5.1.6.3.1 asks drivers for)
//! are returned unused (length 0) and counted; a length from the backend that does
//! not fit the buffer or is shorter than an Ethernet header returns the buffer unused
//! as well.
//!
//! **Protocol errors** (DEVICE_NEEDS_RESET, [`GuestError::BadNetChain`], as QEMU
//! does for a missing header): a transmit chain with fewer than 12 readable bytes or
//! with device-writable buffers, a receive chain with device-readable buffers or
//! without room for the header, a head offered again while it is still in flight.
//!
//! Completions carry a [`RequestId`] (reset generation and chain head): after a
//! device reset, completions for the old rings are dropped.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use bitflags::bitflags;
use zerocopy::little_endian::U16;
use zerocopy::IntoBytes;

use crate::block::{cut, DataSegment, RequestId, SubmitError};
use crate::error::GuestError;
use crate::memory::{GuestMemory, MemoryError};
use crate::mmio::{copy_config, Device, Interrupts};
use crate::queue::{DescriptorChain, Queue, Segment};

/// Device ID of a network device (virtio 1.2 §5.1.1).
pub const NET_DEVICE_ID: u32 = 1;
/// VIRTIO_NET_F_CSUM: the device takes frames with a partial checksum (NEEDS_CSUM).
pub const VIRTIO_NET_F_CSUM: u64 = 1;
/// VIRTIO_NET_F_HOST_TSO4: the device takes TCP/IPv4 frames to segment (needs CSUM).
pub const VIRTIO_NET_F_HOST_TSO4: u64 = 1 << 11;
/// VIRTIO_NET_F_MAC: the config space holds the device's MAC address.
pub const VIRTIO_NET_F_MAC: u64 = 1 << 5;
/// VIRTIO_NET_F_STATUS: the config space's `status` is valid.
pub const VIRTIO_NET_F_STATUS: u64 = 1 << 16;
/// `status` bit: the link is up.
pub const VIRTIO_NET_S_LINK_UP: u16 = 1;
/// Header flag: the driver left the checksum to the device (needs VIRTIO_NET_F_CSUM).
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = vcpos_net_protocol::OFFLOAD_F_NEEDS_CSUM;
/// Header `gso_type`: not a segmentation offload.
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = vcpos_net_protocol::GSO_NONE;
/// Header `gso_type`: TCP over IPv4 to segment (needs VIRTIO_NET_F_HOST_TSO4).
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = vcpos_net_protocol::GSO_TCPV4;

/// receiveq1 (device to driver).
pub const RECEIVEQ: u16 = 0;
/// transmitq1 (driver to device).
pub const TRANSMITQ: u16 = 1;
/// QueueNumMax of both queues.
pub const NET_QUEUE_SIZE: u16 = 256;
/// Length of `virtio_net_hdr_v1` (with `num_buffers`, always present in virtio 1.x).
pub const NET_HEADER_LEN: u32 = 12;
/// Shortest frame: an Ethernet header.
pub const MIN_FRAME_LEN: u32 = 14;
/// Longest frame: Ethernet header + 1500-byte MTU (no FCS; no VLAN tag on transmit).
pub const MAX_FRAME_LEN: u32 = 1514;
/// Longest frame with a segmentation offload (Ethernet header included, virtio header
/// not): an IPv4 packet of at most 65535 bytes behind an Ethernet header (and a VLAN
/// tag), with room to spare; the network protocol's limit for offloaded frames.
pub const MAX_OFFLOAD_FRAME_LEN: u32 = vcpos_net_protocol::MAX_OFFLOAD_FRAME_LEN;
/// Smallest receive buffer used: header + a maximal frame (virtio 1.2 §5.1.6.3.1:
/// without MRG_RXBUF or offloads, drivers post buffers of at least 1526 bytes).
pub const MIN_RX_BUFFER: u32 = NET_HEADER_LEN + MAX_FRAME_LEN;

/// Configuration space (virtio 1.2 §5.1.4) up to `status`: mac[6] @0, status u16 @6.
const CONFIG_LEN: usize = 8;

/// `struct virtio_net_hdr_v1` (virtio 1.2 §5.1.6), 12 bytes, little-endian: `flags`
/// (`VIRTIO_NET_HDR_F_*`), `gso_type` (`VIRTIO_NET_HDR_GSO_*`), `hdr_len`, `gso_size`,
/// `csum_start`, `csum_offset` and `num_buffers` (always 1 on receive without
/// MRG_RXBUF). Its one definition is the network protocol's offload header, which is
/// this layout so that a guest's header goes to the network VCP as it is.
pub type NetHeader = vcpos_net_protocol::OffloadHeader;

const _: () = assert!(core::mem::size_of::<NetHeader>() == NET_HEADER_LEN as usize);

bitflags! {
    /// Transmit offloads a backend does for the guest (in software, in vcpos: the
    /// network VCP).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
    pub struct NetOffloads: u8 {
        /// Fills a TCP/UDP checksum the guest left partial (NEEDS_CSUM): the device
        /// offers VIRTIO_NET_F_CSUM.
        const CSUM = 1;
        /// Cuts a TCP/IPv4 frame of up to [`MAX_OFFLOAD_FRAME_LEN`] bytes into
        /// MTU-sized segments (GSO_TCPV4): with [`NetOffloads::CSUM`], the device offers
        /// VIRTIO_NET_F_HOST_TSO4.
        const TSO4 = 2;
    }
}

/// What the network backend is; the config space and the limits come from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// The device's MAC address.
    pub mac: [u8; 6],
    /// Whether the link is up (`status`); the VMM calls `config_changed` when it
    /// changes.
    pub link_up: bool,
    /// Transmitted frames the backend takes in flight at once (at least 1).
    pub tx_depth: u16,
    /// Most guest-RAM pieces one transmitted frame may have (at least 1), the pieces
    /// of the header included for an offloaded frame.
    pub tx_segments_max: u16,
    /// Transmit offloads the backend does. The device offers them when the driver
    /// reads its features, so a backend reports them before the guest's driver
    /// starts and keeps them.
    pub offloads: NetOffloads,
}

/// A transmit or receive finished at the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetCompletion {
    /// The frame given to [`NetBackend::transmit`] with this id was sent (or dropped
    /// by the network); its guest memory is no longer read.
    Sent(RequestId),
    /// A frame of `len` bytes was copied into the buffer lent with this id.
    Received {
        /// The id the buffer was lent with.
        id: RequestId,
        /// Frame length in bytes (without the virtio header).
        len: u32,
    },
}

/// The network behind the device (the network VCP, through its client queues).
pub trait NetBackend {
    /// MAC, link state and limits (read for every config read, so changes show).
    fn info(&self) -> NetInfo;

    /// Sends the frame in `frame` (guest-RAM pieces, in order, checked to be inside
    /// guest RAM, none empty, at most `tx_segments_max` of them). Without `offload`
    /// the pieces are the frame, `MIN_FRAME_LEN..=MAX_FRAME_LEN` bytes. With
    /// `offload` (only for an offload the backend offers in [`NetInfo::offloads`] and
    /// the driver negotiated) their first [`NET_HEADER_LEN`] bytes are the guest's
    /// [`NetHeader`] asking for it (NEEDS_CSUM, and GSO_TCPV4 or GSO_NONE; the other
    /// fields unchecked) and the rest the frame, `MIN_FRAME_LEN..=MAX_FRAME_LEN` bytes
    /// for GSO_NONE, `MIN_FRAME_LEN..=MAX_OFFLOAD_FRAME_LEN` for GSO_TCPV4. The memory
    /// stays the guest's to read until [`NetCompletion::Sent`]. `Busy` makes the
    /// device offer it again later; `Refused(_)` returns it unsent (the status is not
    /// used: virtio-net has none).
    fn transmit(&mut self, id: RequestId, frame: &[DataSegment], offload: bool) -> Result<(), SubmitError>;

    /// Guest receive buffers the backend takes now. The device asks only while the
    /// driver is up (DRIVER_OK, no reset pending), in `poll` and on a receive-queue
    /// notify, and lends at most this many.
    fn rx_room(&mut self) -> usize;

    /// A guest buffer for a frame to come: `buffer` (guest-RAM pieces, checked to be
    /// inside guest RAM, at least [`MAX_FRAME_LEN`] bytes in all) is the backend's to
    /// write until it reports [`NetCompletion::Received`] with `id` (length 0: unused).
    fn rx_buffer(&mut self, id: RequestId, buffer: &[DataSegment]);

    /// The next finished transmit or receive, in any order.
    fn poll(&mut self) -> Option<NetCompletion>;

    /// The device was reset: frames and buffers lent before are the old driver's.
    /// Stop using the receive buffers if at all possible; completions that still
    /// come for them are dropped by the device.
    fn reset(&mut self);
}

impl<T: NetBackend + ?Sized> NetBackend for alloc::boxed::Box<T> {
    fn info(&self) -> NetInfo {
        (**self).info()
    }

    fn transmit(&mut self, id: RequestId, frame: &[DataSegment], offload: bool) -> Result<(), SubmitError> {
        (**self).transmit(id, frame, offload)
    }

    fn rx_room(&mut self) -> usize {
        (**self).rx_room()
    }

    fn rx_buffer(&mut self, id: RequestId, buffer: &[DataSegment]) {
        (**self).rx_buffer(id, buffer)
    }

    fn poll(&mut self) -> Option<NetCompletion> {
        (**self).poll()
    }

    fn reset(&mut self) {
        (**self).reset()
    }
}

/// Counters for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames the backend finished sending.
    pub tx_frames: u64,
    /// Frames handed to the backend with an offload (NEEDS_CSUM, GSO_TCPV4 or both).
    pub tx_offloaded: u64,
    /// Of those, frames handed over for segmentation (GSO_TCPV4).
    pub tx_tso: u64,
    /// Frames refused for their length (below [`MIN_FRAME_LEN`], above
    /// [`MAX_FRAME_LEN`], or above [`MAX_OFFLOAD_FRAME_LEN`] for GSO_TCPV4).
    pub tx_bad_length: u64,
    /// Frames refused because their header asks for an offload not negotiated or
    /// not known (a GSO type other than TCPV4, the ECN bit, TCPV4 without
    /// NEEDS_CSUM).
    pub tx_bad_header: u64,
    /// Frames refused for having more pieces than the backend takes.
    pub tx_too_many_segments: u64,
    /// Frames the backend refused.
    pub tx_backend_refused: u64,
    /// Frames delivered into guest buffers.
    pub rx_frames: u64,
    /// Guest buffers the backend returned unused (length 0).
    pub rx_unused: u64,
    /// Guest buffers returned unused for being smaller than [`MIN_RX_BUFFER`].
    pub rx_small_buffers: u64,
    /// Receive completions whose length did not fit the buffer (returned unused).
    pub rx_bad_length: u64,
    /// Completions for unknown or stale ids (ignored).
    pub stale_completions: u64,
}

/// A transmit the backend was too busy to take.
#[derive(Clone, Debug)]
struct Stalled {
    id: RequestId,
    frame: TxFrame,
}

/// A checked transmit chain, as the backend gets it.
#[derive(Clone, Debug)]
struct TxFrame {
    /// The frame's pieces (from the header on if `offload`).
    segments: Vec<DataSegment>,
    /// Whether the header asks for an offload.
    offload: bool,
    /// Whether that offload is segmentation (GSO_TCPV4).
    tso: bool,
}

/// A checked transmit chain before its pieces are made guest-RAM offsets.
struct ParsedTx {
    segments: Vec<Segment>,
    offload: bool,
    tso: bool,
}

/// A receive buffer lent to the backend.
#[derive(Clone, Debug)]
struct RxLent {
    /// Where the header goes (the first 12 writable bytes).
    header: Vec<Segment>,
    /// Room for the frame after the header.
    capacity: u64,
}

/// Writes `data` across `segments` (checked guest ranges holding at least
/// `data.len()` bytes).
fn write_segments(mem: &mut dyn GuestMemory, segments: &[Segment], data: &[u8]) -> Result<(), GuestError> {
    let mut rest = data;
    for s in segments {
        let n = rest.len().min(s.len as usize);
        let (now, later) = rest.split_at(n);
        mem.write(s.addr, now)?;
        rest = later;
    }
    Ok(())
}

/// A virtio network device over backend `B`.
pub struct Net<B: NetBackend> {
    backend: B,
    ram_base: u64,
    generation: u16,
    /// Transmit chains in flight, indexed by head.
    tx_in_flight: Vec<bool>,
    tx_count: usize,
    stalled: Option<Stalled>,
    /// Receive buffers lent to the backend, indexed by head.
    rx_lent: Vec<Option<RxLent>>,
    rx_count: usize,
    stats: NetStats,
    /// Features the driver accepted (cleared by a reset).
    negotiated: u64,
}

impl<B: NetBackend> fmt::Debug for Net<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Net")
            .field("info", &self.backend.info())
            .field("tx_in_flight", &self.tx_count)
            .field("rx_lent", &self.rx_count)
            .field("stats", &self.stats)
            .field("negotiated", &self.negotiated)
            .finish()
    }
}

impl<B: NetBackend> Net<B> {
    /// A network device over `backend`, for a guest whose RAM starts at
    /// guest-physical `ram_base` (segments are offsets from there).
    pub fn new(backend: B, ram_base: u64) -> Self {
        let n = usize::from(NET_QUEUE_SIZE);
        Net {
            backend,
            ram_base,
            generation: 0,
            tx_in_flight: vec![false; n],
            tx_count: 0,
            stalled: None,
            rx_lent: vec![None; n],
            rx_count: 0,
            stats: NetStats::default(),
            negotiated: 0,
        }
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutable.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Transmitted frames not yet completed (including one waiting for room).
    pub fn tx_in_flight(&self) -> usize {
        self.tx_count
    }

    /// Receive buffers lent to the backend and not yet returned.
    pub fn rx_lent(&self) -> usize {
        self.rx_count
    }

    /// Counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// The features the driver accepted, transport bits included (0 before
    /// FEATURES_OK and after a reset).
    pub fn negotiated_features(&self) -> u64 {
        self.negotiated
    }

    /// Guest-RAM offsets for checked guest-physical segments.
    fn data_segments(&self, segments: &[Segment]) -> Result<Vec<DataSegment>, GuestError> {
        segments
            .iter()
            .map(|s| {
                let offset = s.addr.checked_sub(self.ram_base).ok_or(MemoryError {
                    addr: s.addr,
                    len: u64::from(s.len),
                })?;
                Ok(DataSegment { offset, len: s.len })
            })
            .collect()
    }

    /// A protocol error about the chain at `head` of `queue`.
    fn bad(chain: &DescriptorChain, reason: &'static str) -> GuestError {
        GuestError::BadNetChain {
            queue: chain.queue(),
            head: chain.head(),
            reason,
        }
    }

    /// Returns a transmit chain (used length 0); true if the driver wants an interrupt.
    fn tx_done(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory, head: u16) -> Result<bool, GuestError> {
        let Some(slot) = self.tx_in_flight.get_mut(usize::from(head)).filter(|s| **s) else {
            self.stats.stale_completions += 1;
            return Ok(false);
        };
        *slot = false;
        self.tx_count -= 1;
        q.push_used(mem, head, 0)
    }

    /// Hands a frame to the backend; false if it was refused (and counted).
    fn submit(&mut self, id: RequestId, frame: TxFrame) -> bool {
        match self.backend.transmit(id, &frame.segments, frame.offload) {
            Ok(()) => {
                if frame.offload {
                    self.stats.tx_offloaded += 1;
                }
                if frame.tso {
                    self.stats.tx_tso += 1;
                }
                true
            }
            Err(SubmitError::Busy) => {
                self.stalled = Some(Stalled { id, frame });
                true
            }
            Err(SubmitError::Refused(_)) => {
                self.stats.tx_backend_refused += 1;
                false
            }
        }
    }

    /// Checks a transmit chain; the pieces to hand over, or `None` if the frame is
    /// refused (counted). Errors are protocol violations.
    fn parse_tx(&mut self, chain: &DescriptorChain, mem: &dyn GuestMemory) -> Result<Option<ParsedTx>, GuestError> {
        if !chain.writable().is_empty() {
            return Err(Self::bad(chain, "device-writable buffer in a transmit chain"));
        }
        let total = chain.readable_len();
        if total < u64::from(NET_HEADER_LEN) {
            return Err(Self::bad(chain, "header shorter than 12 bytes"));
        }
        let mut raw = [0u8; NET_HEADER_LEN as usize];
        chain.reader().read(mem, &mut raw)?;
        let header: NetHeader = zerocopy::transmute!(raw);
        let csum = header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0;
        let tso = header.gso_type == VIRTIO_NET_HDR_GSO_TCPV4;
        let header_ok = (!csum || self.negotiated & VIRTIO_NET_F_CSUM != 0)
            && match header.gso_type {
                VIRTIO_NET_HDR_GSO_NONE => true,
                VIRTIO_NET_HDR_GSO_TCPV4 => csum && self.negotiated & VIRTIO_NET_F_HOST_TSO4 != 0,
                _ => false,
            };
        if !header_ok {
            self.stats.tx_bad_header += 1;
            return Ok(None);
        }
        let frame_len = total - u64::from(NET_HEADER_LEN);
        let max = if tso { MAX_OFFLOAD_FRAME_LEN } else { MAX_FRAME_LEN };
        if !(u64::from(MIN_FRAME_LEN)..=u64::from(max)).contains(&frame_len) {
            self.stats.tx_bad_length += 1;
            return Ok(None);
        }
        let offload = csum || tso;
        // An offloaded frame goes over with its header for the backend to read.
        let segments = if offload {
            cut(chain.readable(), 0, total)
        } else {
            cut(chain.readable(), u64::from(NET_HEADER_LEN), frame_len)
        };
        if segments.len() > usize::from(self.backend.info().tx_segments_max.max(1)) {
            self.stats.tx_too_many_segments += 1;
            return Ok(None);
        }
        Ok(Some(ParsedTx { segments, offload, tso }))
    }

    /// Takes transmit chains while the backend has room.
    fn transmit(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        if let Some(s) = self.stalled.take() {
            if !self.submit(s.id, s.frame) && self.tx_done(q, mem, s.id.head())? {
                irq |= Interrupts::USED_BUFFER;
            }
        }
        let depth = usize::from(self.backend.info().tx_depth.max(1));
        while self.stalled.is_none() && self.tx_count < depth {
            let Some(chain) = q.pop(mem)? else { break };
            let head = chain.head();
            let Some(slot) = self.tx_in_flight.get_mut(usize::from(head)) else {
                return Err(GuestError::UsedIndex {
                    queue: chain.queue(),
                    index: head,
                });
            };
            if *slot {
                return Err(Self::bad(&chain, "head still in flight"));
            }
            let frame = self.parse_tx(&chain, &*mem)?;
            // In flight from here, so a refusal returns it through `tx_done`.
            self.tx_in_flight[usize::from(head)] = true;
            self.tx_count += 1;
            let sent = match frame {
                Some(parsed) => {
                    let frame = TxFrame {
                        segments: self.data_segments(&parsed.segments)?,
                        offload: parsed.offload,
                        tso: parsed.tso,
                    };
                    self.submit(RequestId::new(self.generation, head), frame)
                }
                None => false,
            };
            if !sent && self.tx_done(q, mem, head)? {
                irq |= Interrupts::USED_BUFFER;
            }
        }
        if self.tx_count > 0 {
            // Frames are out: their completion polls this queue again, so the
            // driver need not notify (exit) for the frames it adds meanwhile. The
            // pop that finds the queue empty once none are out asks again.
            q.suppress_notifications(mem)?;
        }
        Ok(irq)
    }

    /// Lends posted receive buffers to the backend while it takes them.
    fn receive(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        // Bounded: each round lends or refuses a buffer, at most a queue's worth.
        let mut rounds = usize::from(NET_QUEUE_SIZE);
        while rounds > 0 && self.backend.rx_room() > 0 {
            rounds -= 1;
            let Some(chain) = q.pop(mem)? else {
                break;
            };
            let head = chain.head();
            let Some(slot) = self.rx_lent.get(usize::from(head)) else {
                return Err(GuestError::UsedIndex {
                    queue: chain.queue(),
                    index: head,
                });
            };
            if slot.is_some() {
                return Err(Self::bad(&chain, "head still in flight"));
            }
            if !chain.readable().is_empty() {
                return Err(Self::bad(&chain, "device-readable buffer in a receive chain"));
            }
            let room = chain.writable_len();
            if room < u64::from(NET_HEADER_LEN) {
                return Err(Self::bad(&chain, "receive buffer shorter than the 12-byte header"));
            }
            if room < u64::from(MIN_RX_BUFFER) {
                self.stats.rx_small_buffers += 1;
                if q.push_used(mem, head, 0)? {
                    irq |= Interrupts::USED_BUFFER;
                }
                continue;
            }
            let capacity = room - u64::from(NET_HEADER_LEN);
            let header = cut(chain.writable(), 0, u64::from(NET_HEADER_LEN));
            let frame = self.data_segments(&cut(chain.writable(), u64::from(NET_HEADER_LEN), capacity))?;
            self.rx_lent[usize::from(head)] = Some(RxLent { header, capacity });
            self.rx_count += 1;
            self.backend.rx_buffer(RequestId::new(self.generation, head), &frame);
        }
        Ok(irq)
    }

    /// Returns a receive buffer with a frame of `len` bytes (or unused if `len` does
    /// not fit it).
    fn rx_done(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory, head: u16, len: u32) -> Result<bool, GuestError> {
        let Some(lent) = self.rx_lent.get_mut(usize::from(head)).and_then(Option::take) else {
            self.stats.stale_completions += 1;
            return Ok(false);
        };
        self.rx_count -= 1;
        if len == 0 {
            self.stats.rx_unused += 1;
            return q.push_used(mem, head, 0);
        }
        if len < MIN_FRAME_LEN || u64::from(len) > lent.capacity {
            self.stats.rx_bad_length += 1;
            return q.push_used(mem, head, 0);
        }
        let header = NetHeader {
            num_buffers: U16::new(1),
            ..NetHeader::default()
        };
        write_segments(mem, &lent.header, header.as_bytes())?;
        self.stats.rx_frames += 1;
        q.push_used(mem, head, NET_HEADER_LEN + len)
    }

    /// Answers every transmit and receive the backend finished.
    fn complete(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        while let Some(c) = self.backend.poll() {
            let (id, queue) = match c {
                NetCompletion::Sent(id) => (id, TRANSMITQ),
                NetCompletion::Received { id, .. } => (id, RECEIVEQ),
            };
            let Some(q) = queues.get_mut(usize::from(queue)) else {
                continue;
            };
            if id.generation() != self.generation {
                self.stats.stale_completions += 1;
                continue;
            }
            let raise = match c {
                NetCompletion::Sent(_) => {
                    let done = self.tx_in_flight.get(usize::from(id.head())) == Some(&true)
                        && self.stalled.as_ref().is_none_or(|s| s.id != id);
                    if done {
                        self.stats.tx_frames += 1;
                        self.tx_done(q, mem, id.head())?
                    } else {
                        self.stats.stale_completions += 1;
                        false
                    }
                }
                NetCompletion::Received { len, .. } => self.rx_done(q, mem, id.head(), len)?,
            };
            if raise {
                irq |= Interrupts::USED_BUFFER;
            }
        }
        Ok(irq)
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let info = self.backend.info();
        let mut c = [0u8; CONFIG_LEN];
        c[0..6].copy_from_slice(&info.mac);
        let status = if info.link_up { VIRTIO_NET_S_LINK_UP } else { 0 };
        c[6..8].copy_from_slice(&status.to_le_bytes());
        c
    }
}

impl<B: NetBackend> Device for Net<B> {
    fn device_id(&self) -> u32 {
        NET_DEVICE_ID
    }

    /// MAC and STATUS, and the offloads the backend does: CSUM, and HOST_TSO4 only
    /// with CSUM (virtio 1.2 §5.1.3.1).
    fn device_features(&self) -> u64 {
        let offloads = self.backend.info().offloads;
        let mut f = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS;
        if offloads.contains(NetOffloads::CSUM) {
            f |= VIRTIO_NET_F_CSUM;
            if offloads.contains(NetOffloads::TSO4) {
                f |= VIRTIO_NET_F_HOST_TSO4;
            }
        }
        f
    }

    fn num_queues(&self) -> usize {
        2
    }

    fn queue_max_size(&self, _index: usize) -> u16 {
        NET_QUEUE_SIZE
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        copy_config(&self.config_bytes(), offset, data);
    }

    /// Keeps what the driver accepted; refuses HOST_TSO4 without CSUM (a feature
    /// without the one it requires, virtio 1.2 §5.1.3.1).
    fn features_accepted(&mut self, features: u64) -> bool {
        if features & VIRTIO_NET_F_HOST_TSO4 != 0 && features & VIRTIO_NET_F_CSUM == 0 {
            return false;
        }
        self.negotiated = features;
        true
    }

    /// The configuration space is read-only (no VIRTIO_NET_F_CTRL_MAC_ADDR; a
    /// virtio 1.x driver does not write `mac`): writes are ignored.
    fn write_config(&mut self, _offset: usize, _data: &[u8]) {}

    fn notify(
        &mut self,
        queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<Interrupts, GuestError> {
        let mut irq = match (queue, queues.get_mut(usize::from(queue))) {
            (TRANSMITQ, Some(q)) => self.transmit(q, mem)?,
            (RECEIVEQ, Some(q)) => self.receive(q, mem)?,
            _ => return Ok(Interrupts::empty()),
        };
        // A backend may finish at once (a synchronous copy or send).
        irq |= self.complete(queues, mem)?;
        Ok(irq)
    }

    /// Completions from the backend, frames that waited for room, received frames,
    /// then completions again (for a backend that copies at once).
    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = self.complete(queues, mem)?;
        if let Some(q) = queues.get_mut(usize::from(TRANSMITQ)) {
            irq |= self.transmit(q, mem)?;
        }
        if let Some(q) = queues.get_mut(usize::from(RECEIVEQ)) {
            irq |= self.receive(q, mem)?;
        }
        irq |= self.complete(queues, mem)?;
        Ok(irq)
    }

    /// Forgets every frame and buffer in flight (their completions carry the old
    /// generation and are dropped) and tells the backend.
    fn reset(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.tx_in_flight.iter_mut().for_each(|f| *f = false);
        self.tx_count = 0;
        self.stalled = None;
        self.rx_lent.iter_mut().for_each(|f| *f = None);
        self.rx_count = 0;
        self.negotiated = 0;
        self.backend.reset();
    }
}
