//! A [`NetBackend`] over the network protocol's client half: the guest's network
//! device served by the network VCP (`vcp-net`), **zero copy in the VMM**.
//!
//! The VMM's data region of the protocol is guest RAM itself (the system maps
//! `guest_ram` into `vcp_net` as this client's data region), and a protocol
//! descriptor names any `(offset, len)` of it, so guest buffers go to the VCP as they
//! are:
//!
//! - **Transmit**: the guest's frame goes to the VCP as it lies in guest RAM, in
//!   the pieces of its descriptor chain, adjacent pieces merged, in one
//!   `send_frame` of at most [`MAX_TX_PIECES`] protocol descriptors. Linux with the
//!   checksum and segmentation offloads the VCP offers ([`NetInfo::offloads`], from
//!   its info page) sends TCP frames of up to 64 KiB as its header (linear part) and
//!   page fragments; such an offloaded frame goes over with the guest's own 12-byte
//!   `virtio_net_hdr_v1` first (the protocol's offload header has its layout), and
//!   vcp-net cuts it into MTU-sized segments and fills the checksums, checking the
//!   header as untrusted input. A plain frame goes over from its Ethernet header. The
//!   NIC reads the frame in place (vcp-net copies only the headers it checks and
//!   builds). A frame still in more than [`MAX_TX_PIECES`] pieces after merging is
//!   refused and counted (`tx_scattered`). Each piece comes back on its own; the
//!   guest's chain completes ([`NetCompletion::Sent`]) when the frame's last piece
//!   does (pieces come back in order): until then the device reads guest RAM. Too
//!   few descriptors free for every piece (at most the ring capacity out): `Busy`,
//!   nothing handed over.
//! - **Receive**: every buffer the guest posts is handed to the VCP's RX free ring at
//!   once (its room after the 12-byte header; up to the ring capacity, 256 in the
//!   systems), so the VCP copies each frame once, from its NIC buffer straight into
//!   the guest's buffer; the device then writes the header and completes the chain.
//!   Frames never wait in the VMM; the VCP drops a frame when the guest has no buffer
//!   posted (vcp-net's `rx_dropped_no_buffer`).
//! - **Device reset** (the guest driver re-initialises, or the guest reboots): the
//!   buffers still at the VCP belong to the old driver. The backend asks the VCP to
//!   give them all back unused (the protocol's RX recall) and posts no new buffer
//!   until the VCP has confirmed ([`NetVcpBackend::rx_quiet`]); their completions
//!   carry the old reset generation and the device drops them. A frame the VCP
//!   copied before it saw the recall lands in a buffer the old driver had lent
//!   (guest memory, written only by this client's own VCP, never past that buffer).
//! - **Notifications**: [`NetVcpBackend::signal_needed`] after a batch (notify the
//!   VCP; always after a recall), [`NetVcpBackend::request_signal`] before waiting
//!   (the ring protocol's double check).
//!
//! Everything the VCP writes is checked by the client half; the first protocol error
//! (a corrupt index, a descriptor given back that was not handed over, a restarted
//! VCP) takes the link down for good and is kept for the VMM to report.

use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use vcpos_net_protocol::{offloads, Client, ClientError, RxOutcome, MAX_TX_PIECES};
use vcpos_queue::{LayoutError, SharedMemory};

use crate::block::{BlockStatus, DataSegment, RequestId, SubmitError};
use crate::net::{NetBackend, NetCompletion, NetInfo, NetOffloads, NET_QUEUE_SIZE};

/// Most guest-RAM pieces of one frame the device passes on (merged here when
/// adjacent, then at most [`MAX_TX_PIECES`]).
const TX_SEGMENTS_MAX: u16 = 64;

// The guest's virtio-net header is the protocol's offload header.
const _: () = assert!(crate::net::NET_HEADER_LEN == vcpos_net_protocol::OFFLOAD_HEADER_LEN);

/// Counters of the backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetVcpStats {
    /// Frames handed to the VCP.
    pub tx_frames: u64,
    /// Of those, frames handed over with an offload header (checksum or segmentation
    /// offload asked for by the guest).
    pub tx_offloaded: u64,
    /// Protocol descriptors (guest-RAM pieces) those frames took.
    pub tx_pieces: u64,
    /// Bytes the VMM copied to transmit (none: the VCP reads guest RAM in place).
    pub tx_bytes_copied: u64,
    /// Bytes handed to the VCP in place (zero copy).
    pub tx_bytes_zero_copy: u64,
    /// Times the device was told `Busy` (every descriptor id in use, or the ring full).
    pub tx_busy: u64,
    /// Frames refused (link down, or a guest range the protocol refuses).
    pub tx_refused: u64,
    /// Frames refused for lying in more than [`MAX_TX_PIECES`] non-adjacent guest-RAM
    /// pieces.
    pub tx_scattered: u64,
    /// Transmit descriptors (pieces) given back, by `TxStatus` value (0 sent, 1 bad
    /// length, 2 spoofed, 3 device error, 4 unsupported).
    pub tx_status: [u64; vcpos_net_protocol::TX_STATUSES],
    /// Guest buffers handed to the VCP for receiving.
    pub rx_posted: u64,
    /// Frames the VCP copied into guest buffers.
    pub rx_frames: u64,
    /// Bytes the VMM copied to receive (none: the VCP writes into guest RAM).
    pub rx_bytes_copied: u64,
    /// Bytes the VCP delivered into guest buffers (its one copy).
    pub rx_bytes: u64,
    /// Guest buffers given back unused (a recall, or a refusal here).
    pub rx_unused: u64,
    /// Guest buffers refused for lying in several non-adjacent pieces.
    pub rx_scattered: u64,
    /// Frames the VCP delivered with an impossible length (the buffer returns unused).
    pub rx_bad_frames: u64,
    /// Receive-buffer recalls after a device reset.
    pub recalls: u64,
}

/// Guest-RAM pieces with adjacent ones merged, as `(offset, len)`; a merged piece
/// stays within `max_len` bytes (a piece longer than that on its own stays as it is).
fn merged(segments: &[DataSegment], max_len: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
    let mut rest = segments.iter().peekable();
    core::iter::from_fn(move || {
        let first = rest.next()?;
        let (offset, mut len) = (first.offset, u64::from(first.len));
        while let Some(next) = rest.peek() {
            let adjacent = offset.checked_add(len) == Some(next.offset);
            match len.checked_add(u64::from(next.len)) {
                Some(l) if adjacent && l <= max_len => {
                    len = l;
                    rest.next();
                }
                _ => break,
            }
        }
        Some((offset, len))
    })
}

/// Merges adjacent guest-RAM pieces; the one piece they make, if they make one.
fn one_piece(segments: &[DataSegment]) -> Option<(u64, u64)> {
    let mut pieces = merged(segments, u64::MAX);
    let piece = pieces.next()?;
    pieces.next().is_none().then_some(piece)
}

/// A frame's pieces for the protocol: adjacent ones merged (each within `u32`), at
/// most [`MAX_TX_PIECES`]; their number, or `None` if there are more.
fn tx_pieces(segments: &[DataSegment], out: &mut [(u64, u32); MAX_TX_PIECES]) -> Option<usize> {
    let mut n = 0;
    for (offset, len) in merged(segments, u64::from(u32::MAX)) {
        // Within u32: each segment is, and merging stops there.
        *out.get_mut(n)? = (offset, len as u32);
        n += 1;
    }
    Some(n)
}

/// The device request a transmit descriptor (one piece of a frame) belongs to.
#[derive(Clone, Copy, Debug)]
struct TxPiece {
    request: RequestId,
    /// The frame's last piece: the request completes when it comes back.
    last: bool,
}

/// The network device's backend over the protocol's client half: control region and
/// guest RAM (the protocol's data region), both memory of type `M`.
pub struct NetVcpBackend<M> {
    client: Client<M>,
    mac: Option<[u8; 6]>,
    /// The transmit offloads the VCP offers (from its info page, once connected).
    offloads: NetOffloads,
    /// Device request of each transmit descriptor id out at the VCP.
    tx_ids: Vec<Option<TxPiece>>,
    /// Device request of each receive descriptor id out at the VCP.
    rx_ids: Vec<Option<RequestId>>,
    done: VecDeque<NetCompletion>,
    error: Option<ClientError>,
    error_reported: bool,
    stats: NetVcpStats,
}

impl<M: SharedMemory + Clone> NetVcpBackend<M> {
    /// A backend over control region `control` (rings of `ring_capacity` slots) and
    /// guest RAM `ram`, the protocol's data region (segment offsets are from its
    /// start).
    pub fn new(control: M, ram: M, ring_capacity: u32) -> Result<Self, LayoutError> {
        let ids = ring_capacity as usize;
        Ok(NetVcpBackend {
            client: Client::with_region(control, ram, ring_capacity)?,
            mac: None,
            offloads: NetOffloads::empty(),
            tx_ids: vec![None; ids],
            rx_ids: vec![None; ids],
            done: VecDeque::new(),
            error: None,
            error_reported: false,
            stats: NetVcpStats::default(),
        })
    }

    /// Connects if not yet connected (reads the info page: MAC, ring capacity, data
    /// region size, offloads); true once connected. A VCP that has not published yet is not an
    /// error.
    pub fn connect(&mut self) -> bool {
        if self.mac.is_some() {
            return true;
        }
        if self.error.is_some() {
            return false;
        }
        match self.client.connect() {
            Ok(info) => {
                self.mac = Some(info.mac);
                if info.offloads & offloads::CSUM != 0 {
                    self.offloads |= NetOffloads::CSUM;
                }
                if info.offloads & offloads::TSO4 != 0 {
                    self.offloads |= NetOffloads::TSO4;
                }
                true
            }
            Err(ClientError::NotReady) => false,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// The MAC from the VCP's info page, once connected.
    pub fn mac(&self) -> Option<[u8; 6]> {
        self.mac
    }

    /// Counters.
    pub fn stats(&self) -> NetVcpStats {
        self.stats
    }

    /// Guest receive buffers at the VCP now.
    pub fn rx_outstanding(&self) -> usize {
        self.rx_ids.iter().filter(|i| i.is_some()).count()
    }

    /// Whether the VCP can no longer write into guest RAM: no receive buffer of the
    /// guest's is at the VCP and no recall is under way (or the link is down for
    /// good, so nothing more is given or taken). A guest reboot waits for this.
    pub fn rx_quiet(&mut self) -> bool {
        if !self.up() {
            return true;
        }
        self.refresh();
        match self.client.recall_pending() {
            Ok(pending) => !pending && self.rx_outstanding() == 0,
            Err(e) => {
                self.fail(e);
                true
            }
        }
    }

    /// The protocol error that took the link down, once (for the VMM to report).
    pub fn take_error(&mut self) -> Option<ClientError> {
        if self.error_reported {
            return None;
        }
        self.error_reported = self.error.is_some();
        self.error
    }

    /// After a batch: whether to notify the VCP now.
    pub fn signal_needed(&mut self) -> bool {
        if !self.up() {
            return false;
        }
        match self.client.signal_needed() {
            Ok(needed) => needed,
            Err(e) => {
                self.fail(e);
                false
            }
        }
    }

    /// Before waiting: asks the VCP for a notification on its next frame (and on its
    /// next given-back transmit descriptor while frames are out); false if something
    /// arrived meanwhile (poll the device again first).
    pub fn request_signal(&mut self) -> bool {
        if !self.up() {
            return true;
        }
        match self.client.request_signal() {
            Ok(wait) => wait,
            Err(e) => {
                self.fail(e);
                true
            }
        }
    }

    fn up(&self) -> bool {
        self.mac.is_some() && self.error.is_none()
    }

    fn fail(&mut self, e: ClientError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Takes back given-back descriptors: transmitted frames complete as sent,
    /// receive buffers complete with their frame (or unused).
    fn refresh(&mut self) {
        if !self.up() {
            return;
        }
        loop {
            match self.client.reclaim_tx() {
                Ok(Some(r)) => {
                    self.stats.tx_status[r.status as usize] += 1;
                    if let Some(piece) = self.tx_ids.get_mut(usize::from(r.id)).and_then(Option::take) {
                        if piece.last {
                            self.done.push_back(NetCompletion::Sent(piece.request));
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => return self.fail(e),
            }
        }
        loop {
            match self.client.take_rx() {
                Ok(Some(r)) => {
                    let len = match r.outcome {
                        RxOutcome::Frame(len) => {
                            self.stats.rx_frames += 1;
                            self.stats.rx_bytes += u64::from(len);
                            len
                        }
                        RxOutcome::Unused => {
                            self.stats.rx_unused += 1;
                            0
                        }
                        RxOutcome::BadLength(_) => {
                            self.stats.rx_bad_frames += 1;
                            0
                        }
                    };
                    if let Some(id) = self.rx_ids.get_mut(usize::from(r.id)).and_then(Option::take) {
                        self.done.push_back(NetCompletion::Received { id, len });
                    }
                }
                Ok(None) => break,
                Err(e) => return self.fail(e),
            }
        }
    }
}

impl<M: SharedMemory + Clone> NetBackend for NetVcpBackend<M> {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac.unwrap_or_default(),
            link_up: self.up(),
            tx_depth: (self.tx_ids.len() as u16).clamp(1, NET_QUEUE_SIZE),
            tx_segments_max: TX_SEGMENTS_MAX,
            offloads: self.offloads,
        }
    }

    fn transmit(&mut self, id: RequestId, frame: &[DataSegment], offload: bool) -> Result<(), SubmitError> {
        if !self.up() || (offload && self.offloads.is_empty()) {
            self.stats.tx_refused += 1;
            return Err(SubmitError::Refused(BlockStatus::IoError));
        }
        let mut pieces = [(0u64, 0u32); MAX_TX_PIECES];
        let Some(n) = tx_pieces(frame, &mut pieces) else {
            self.stats.tx_scattered += 1;
            return Err(SubmitError::Refused(BlockStatus::IoError));
        };
        let pieces = &pieces[..n];
        match self.client.send_frame(pieces, offload) {
            Ok(ids) => {
                let ids = ids.as_slice();
                for (k, &pid) in ids.iter().enumerate() {
                    if let Some(slot) = self.tx_ids.get_mut(usize::from(pid)) {
                        *slot = Some(TxPiece {
                            request: id,
                            last: k + 1 == ids.len(),
                        });
                    }
                }
                self.stats.tx_frames += 1;
                self.stats.tx_offloaded += u64::from(offload);
                self.stats.tx_pieces += ids.len() as u64;
                self.stats.tx_bytes_zero_copy += pieces.iter().map(|&(_, len)| u64::from(len)).sum::<u64>();
                Ok(())
            }
            Err(ClientError::Full) => {
                self.stats.tx_busy += 1;
                Err(SubmitError::Busy)
            }
            Err(ClientError::BadLength(_) | ClientError::BadBuffer { .. } | ClientError::OffloadNotOffered) => {
                self.stats.tx_refused += 1;
                Err(SubmitError::Refused(BlockStatus::IoError))
            }
            Err(e) => {
                self.fail(e);
                self.stats.tx_refused += 1;
                Err(SubmitError::Refused(BlockStatus::IoError))
            }
        }
    }

    fn rx_room(&mut self) -> usize {
        if !self.up() {
            return 0;
        }
        match self.client.rx_room() {
            Ok(n) => n,
            Err(e) => {
                self.fail(e);
                0
            }
        }
    }

    fn rx_buffer(&mut self, id: RequestId, buffer: &[DataSegment]) {
        let unused = NetCompletion::Received { id, len: 0 };
        let Some((offset, len)) = one_piece(buffer) else {
            self.stats.rx_scattered += 1;
            self.stats.rx_unused += 1;
            self.done.push_back(unused);
            return;
        };
        let capacity = u32::try_from(len).unwrap_or(u32::MAX);
        match self.client.post_rx(offset, capacity) {
            Ok(pid) => {
                if let Some(slot) = self.rx_ids.get_mut(usize::from(pid)) {
                    *slot = Some(id);
                }
                self.stats.rx_posted += 1;
            }
            Err(e) => {
                if !matches!(
                    e,
                    ClientError::Full | ClientError::BadBuffer { .. } | ClientError::RecallPending
                ) {
                    self.fail(e);
                }
                self.stats.rx_unused += 1;
                self.done.push_back(unused);
            }
        }
    }

    fn poll(&mut self) -> Option<NetCompletion> {
        if self.done.is_empty() {
            self.refresh();
        }
        self.done.pop_front()
    }

    /// The old driver's receive buffers still at the VCP are recalled (given back
    /// unused; their completions carry the old generation and are dropped), and no
    /// new one is posted until the VCP confirms. Frames still being sent are read
    /// from guest RAM until the VCP gives them back (their completions are dropped
    /// likewise).
    fn reset(&mut self) {
        self.done.clear();
        if self.up() && self.rx_outstanding() > 0 {
            match self.client.recall_rx() {
                Ok(()) => self.stats.recalls += 1,
                Err(e) => self.fail(e),
            }
        }
    }
}
