//! The engine: serves every client's network-protocol queues and one [`Nic`].
//!
//! - **Receive from the NIC**: a frame goes to the client whose MAC its destination
//!   names; a group frame (multicast, broadcast) to every client; anything else is
//!   dropped and counted. The frame is copied once, from the driver's receive buffer
//!   into the client's RX buffer; a client with no RX buffer loses the frame (counted),
//!   the others do not wait for it.
//! - **Transmit**: round robin, one wire frame per client per turn, each client
//!   holding at most its share of the NIC's transmit slots, so a flood (or one huge
//!   segmented frame) cannot starve another client. A client's frame comes in up to
//!   24 pieces of its data region. The engine copies the frame's first bytes out of
//!   the client's buffer (the 14-byte Ethernet header; with an offload header, also
//!   the IP and TCP headers), checks the source MAC on that copy (another source is
//!   dropped, counted and given back as [`TxStatus::Spoofed`]) and hands the NIC the
//!   checked header plus the rest of the frame as byte ranges of the client's data
//!   region: the payload is not copied, and what was checked is what is sent.
//! - **Offloads** ([`crate::offload`]): a frame with an offload header has its
//!   checksum filled, or is cut into MTU-sized IPv4 TCP segments (each a header the
//!   engine builds and a slice of the client's payload, read in place), since the NIC
//!   offers no offloads; the frame is given back once every segment is done.
//! - **Local delivery**: a frame to another client's MAC never reaches the NIC (which
//!   does not hairpin); a group frame goes to the NIC and to every other client. Each
//!   receiving client's RX buffer gets the checked (or built) header from the engine's
//!   copy and the rest of the wire frame copied once, straight from the sender's buffer
//!   ([`DataRegion::copy_from`]); a segmented frame arrives as its segments.
//! - **Buffers** are any `(offset, len)` of a client's data region (the protocol's
//!   server half checks each against the region); each client's rings have the
//!   capacity its configuration gives. A client's RX recall (it takes its receive
//!   buffers back, e.g. the VMM after a guest driver reset) is served at the start of
//!   every run, before any frame is delivered.

use alloc::vec::Vec;

use vcpos_net_protocol::{
    mac_is_multicast, offloads, OffloadHeader, Server, ServerConfig, ServerError, ServerStats, TxFrame, TxStatus,
    ETH_HEADER_LEN, MAX_FRAME_LEN, OFFLOAD_HEADER_LEN,
};
use vcpos_queue::LayoutError;
use zerocopy::FromBytes;

use crate::config::{Config, MAX_CLIENTS};
use crate::data::DataRegion;
use crate::offload::{Plan, Sum, MAX_HEADER};

pub use vcpos_net_protocol::{MAX_RING_CAPACITY, RING_CAPACITY};
/// Frames taken from the NIC per [`Engine::run`], so receive cannot starve transmit,
/// and no more than a client has receive buffers: each run notifies the clients it
/// delivered to, and a client that drains between runs then loses nothing of a burst
/// larger than its buffers (the NIC's queue holds the rest). A dropped frame costs
/// slirp's TCP about a second of recovery.
pub const RX_BUDGET: usize = 16;

const HDR: usize = ETH_HEADER_LEN as usize;

/// Most byte ranges of the client's data region one wire frame's payload may take (a
/// frame whose segments would need more is refused as unsupported; a Linux guest's
/// segment spans one or two of its page fragments).
pub const MAX_SEGMENT_PIECES: usize = 8;

/// A wire frame for the NIC: a header the engine checked or built (the Ethernet
/// header, or every header a segmentation or checksum offload rewrote), then the
/// payload: byte ranges of client `client`'s data region, read by the device in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// The client whose data region holds the payload.
    pub client: usize,
    header: [u8; MAX_HEADER],
    header_len: u8,
    payload: [(u64, u32); MAX_SEGMENT_PIECES],
    pieces: u8,
}

impl TxRequest {
    fn new(client: usize) -> TxRequest {
        TxRequest {
            client,
            header: [0; MAX_HEADER],
            header_len: 0,
            payload: [(0, 0); MAX_SEGMENT_PIECES],
            pieces: 0,
        }
    }

    /// The header (14..=[`MAX_HEADER`] bytes).
    pub fn header(&self) -> &[u8] {
        &self.header[..usize::from(self.header_len)]
    }

    /// The payload: `(offset, len)` ranges of the client's data region, in order.
    pub fn payload(&self) -> &[(u64, u32)] {
        &self.payload[..usize::from(self.pieces)]
    }

    /// Payload bytes.
    pub fn payload_len(&self) -> u32 {
        self.payload().iter().map(|p| p.1).sum()
    }

    /// Wire frame bytes (header and payload).
    pub fn len(&self) -> u32 {
        u32::from(self.header_len) + self.payload_len()
    }

    /// Whether the frame is empty (never: it has a header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a NIC did not take a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NicError {
    /// No room now; the frame waits for a completion.
    Full,
    /// The frame cannot be sent (given back as [`TxStatus::DeviceError`]).
    Failed,
}

/// A NIC driven asynchronously (virtio-net in the PD, a fake on the host).
pub trait Nic {
    /// Frames the device can have in flight.
    fn max_in_flight(&self) -> usize;
    /// Starts sending `req`; returns a token that names it until its completion.
    fn transmit(&mut self, req: &TxRequest) -> Result<u16, NicError>;
    /// The next finished transmission, if any: its token and whether it succeeded.
    fn next_tx_completion(&mut self) -> Option<(u16, bool)>;
    /// The next received frame, if any, lent to `deliver` (the driver recycles its
    /// buffer afterwards). The frame is untrusted bytes of any length.
    fn receive<R>(&mut self, deliver: impl FnOnce(&[u8]) -> R) -> Option<R>;
    /// After a batch of transmits and receives (the end of every [`Engine::run`]):
    /// tell the device about the frames and receive buffers given to it meanwhile, if
    /// it wants to be told (one notification per batch instead of one per buffer).
    fn flush(&mut self) {}
}

/// No device: every frame for the NIC fails (clients still reach each other).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoNic;

impl Nic for NoNic {
    fn max_in_flight(&self) -> usize {
        1
    }
    fn transmit(&mut self, _req: &TxRequest) -> Result<u16, NicError> {
        Err(NicError::Failed)
    }
    fn next_tx_completion(&mut self) -> Option<(u16, bool)> {
        None
    }
    fn receive<R>(&mut self, _deliver: impl FnOnce(&[u8]) -> R) -> Option<R> {
        None
    }
}

/// Per-client counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Frames taken from the client to send.
    pub tx_frames: u64,
    /// Of those, handed to the NIC.
    pub tx_nic: u64,
    /// Copies of its frames delivered to other clients.
    pub tx_local: u64,
    /// Frames dropped because the source MAC was not the client's.
    pub spoofed: u64,
    /// Frames refused for an offload the engine cannot do for them.
    pub unsupported: u64,
    /// Frames the NIC failed (or no NIC).
    pub tx_device_errors: u64,
    /// Bytes the engine copied out of the client's TX buffers into its own memory (the
    /// 14-byte header of each frame, to check it).
    pub tx_bytes_copied: u64,
    /// Bytes the NIC read in place from the client's TX buffers (zero copy).
    pub tx_bytes_zero_copy: u64,
    /// Frames delivered into the client's RX buffers.
    pub rx_frames: u64,
    /// Bytes copied into the client's RX buffers (each frame once).
    pub rx_bytes_copied: u64,
    /// Receive buffers given back unused on the client's recall.
    pub rx_recalled: u64,
    /// Frames for the client dropped because it had no RX buffer.
    pub rx_dropped_no_buffer: u64,
}

/// Engine-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Frames received from the NIC.
    pub nic_rx_frames: u64,
    /// Of those, addressed to no client (dropped).
    pub nic_rx_unmatched: u64,
    /// Frames from the NIC shorter than a header or longer than the maximum (dropped).
    pub nic_rx_bad_length: u64,
    /// Completions for tokens not in flight (a driver bug; ignored).
    pub unknown_completions: u64,
    /// Internal inconsistencies (a bug in the engine; the frame is dropped).
    pub internal_errors: u64,
}

/// What a run of the engine asks of the PD.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunResult {
    /// Bit `i`: notify client `i`.
    pub notify: u64,
    /// Bit `i`: client `i` was cut off during this run.
    pub cut_off: u64,
    /// Whether any frame or completion was handled.
    pub progress: bool,
    /// The receive budget ran out with frames possibly left at the NIC: run again
    /// before waiting (the NIC will not interrupt again for frames it already has).
    pub more: bool,
}

/// A client's resources as the PD found them.
pub struct ClientRegions<M> {
    /// The control region (info page and rings).
    pub control: M,
    /// The data region (the client's frame buffers).
    pub data: M,
}

/// Why the engine could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// Client `client`'s regions cannot hold the protocol layout.
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
    /// Publishing client `client`'s info page failed.
    Publish {
        /// The client.
        client: usize,
    },
}

impl core::fmt::Display for EngineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EngineError::Layout { client, error } => write!(f, "client {client}: {error}"),
            EngineError::Regions { client } => write!(
                f,
                "client {client}: configured without mapped regions, or mapped without configuration"
            ),
            EngineError::Publish { client } => write!(f, "client {client}: info page could not be written"),
        }
    }
}

struct ClientState<M> {
    server: Server<M>,
    data: M,
    mac: [u8; 6],
    counters: ClientCounters,
    /// Wire frames at the NIC.
    at_nic: u32,
    /// The frame being sent, a wire frame at a time.
    sending: Option<Sending>,
    /// Buffers given back since the last signal check.
    gave_back: bool,
    /// Cut off (reported once).
    dead: bool,
}

impl<M: DataRegion + Clone> ClientState<M> {
    fn live(&self) -> bool {
        !self.dead && self.server.cut_off().is_none()
    }

    fn give_tx(&mut self, frame: TxFrame, status: TxStatus, stats: &mut EngineStats) {
        match self.server.tx_done(frame, status) {
            Ok(()) => self.gave_back = true,
            Err(ServerError::NotHeld(_)) => stats.internal_errors += 1,
            // The client is cut off (its own doing); the buffer is lost with it.
            Err(_) => {}
        }
    }

    /// Copies `frame` into one of the client's RX buffers and gives it back.
    fn deliver(&mut self, frame: &[u8], stats: &mut EngineStats) {
        let len = frame.len();
        self.deliver_with(len, stats, |data, at| data.write_bytes(at, frame));
    }

    /// Fills one of the client's RX buffers with a `len`-byte frame by `fill(data,
    /// offset)` and gives it back.
    fn deliver_with(
        &mut self,
        len: usize,
        stats: &mut EngineStats,
        fill: impl FnOnce(&M, usize) -> Result<(), vcpos_queue::OutOfBounds>,
    ) {
        let buf = match self.server.take_rx_buffer() {
            Ok(Some(b)) => b,
            Ok(None) => {
                self.counters.rx_dropped_no_buffer += 1;
                return;
            }
            Err(_) => return,
        };
        if fill(&self.data, buf.offset() as usize).is_err() {
            stats.internal_errors += 1;
            if self.server.rx_unused(buf).is_err() {
                stats.internal_errors += 1;
            }
            return;
        }
        match self.server.rx_deliver(buf, len as u32) {
            Ok(()) => {
                self.gave_back = true;
                self.counters.rx_frames += 1;
                self.counters.rx_bytes_copied += len as u64;
            }
            Err(ServerError::NotHeld(_)) => stats.internal_errors += 1,
            Err(_) => {}
        }
    }
}

/// A frame taken from a client and being sent: its wire frames go out one per
/// round-robin turn (local deliveries, then the NIC).
struct Sending {
    /// Its entry in [`Engine::frames`].
    slot: usize,
    plan: Plan,
    /// The frame's first bytes (up to [`MAX_HEADER`]), copied and checked.
    head: [u8; MAX_HEADER],
    head_len: usize,
    /// The next wire frame.
    next: u32,
    /// Clients it is delivered to locally.
    targets: u64,
    /// Whether its wire frames go to the NIC.
    to_nic: bool,
    /// The next wire frame, built and delivered locally, waiting for room at the NIC.
    built: Option<TxRequest>,
}

/// A client's frame the engine holds until every wire frame of it is done.
struct InFlight {
    client: usize,
    frame: TxFrame,
    /// Its wire frames at the NIC.
    at_nic: u32,
    /// Still making wire frames.
    issuing: bool,
    /// What to give it back with.
    status: TxStatus,
}

/// The engine over NIC `N` and client regions `M`.
pub struct Engine<M, N> {
    nic: N,
    clients: Vec<Option<ClientState<M>>>,
    /// Frames held (`None`: a free entry).
    frames: Vec<Option<InFlight>>,
    /// NIC token → entry of [`Self::frames`].
    pending: Vec<(u16, usize)>,
    rr: usize,
    stats: EngineStats,
}

impl<M: DataRegion + Clone, N: Nic> Engine<M, N> {
    /// Sets up a server per configured client and publishes each info page with a new
    /// generation (one more than what the page held: a restarted VCP changes it).
    pub fn new(
        nic: N,
        config: &Config,
        mut regions: [Option<ClientRegions<M>>; MAX_CLIENTS],
    ) -> Result<Self, EngineError> {
        let mut clients = Vec::new();
        for (i, mac) in config.clients.iter().enumerate() {
            let state = match (mac, regions[i].take()) {
                (&None, None) => None,
                (&Some(mac), Some(r)) => {
                    let cfg = ServerConfig {
                        mac,
                        ring_capacity: config.rings[i],
                        offloads: offloads::CSUM | offloads::TSO4,
                    };
                    let mut server = Server::new(r.control, r.data.size() as u64, cfg)
                        .map_err(|error| EngineError::Layout { client: i, error })?;
                    let generation = server.published_generation().wrapping_add(1);
                    server
                        .publish(generation)
                        .map_err(|_| EngineError::Publish { client: i })?;
                    Some(ClientState {
                        server,
                        data: r.data,
                        mac,
                        counters: ClientCounters::default(),
                        at_nic: 0,
                        sending: None,
                        gave_back: false,
                        dead: false,
                    })
                }
                _ => return Err(EngineError::Regions { client: i }),
            };
            clients.push(state);
        }
        Ok(Engine {
            nic,
            clients,
            frames: Vec::new(),
            pending: Vec::new(),
            rr: 0,
            stats: EngineStats::default(),
        })
    }

    /// The NIC.
    pub fn nic(&self) -> &N {
        &self.nic
    }

    /// The NIC, mutably.
    pub fn nic_mut(&mut self) -> &mut N {
        &mut self.nic
    }

    /// Engine-wide counters.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// Client `i`'s counters, if it is configured.
    pub fn counters(&self, i: usize) -> Option<ClientCounters> {
        self.clients.get(i)?.as_ref().map(|c| c.counters)
    }

    /// Bytes the engine copied so far, for every client (checked Ethernet headers and
    /// received frames): what the PD reports to the kernel's `bytes_copied` counter.
    pub fn bytes_copied(&self) -> u64 {
        self.clients
            .iter()
            .flatten()
            .map(|c| c.counters.tx_bytes_copied + c.counters.rx_bytes_copied)
            .sum()
    }

    /// Client `i`'s protocol server's counts of accepted and refused descriptors.
    pub fn server_stats(&self, i: usize) -> Option<ServerStats> {
        self.clients.get(i)?.as_ref().map(|c| c.server.stats())
    }

    /// Why client `i` was cut off, if it was.
    pub fn cut_off(&self, i: usize) -> Option<ServerError> {
        self.clients.get(i)?.as_ref()?.server.cut_off()
    }

    /// Frames at the NIC.
    pub fn at_nic(&self) -> usize {
        self.pending.len()
    }

    /// One pass: NIC completions, up to [`RX_BUDGET`] received frames, then transmit
    /// in round robin until no client has a frame it may send. Returns whom to notify.
    pub fn run(&mut self) -> RunResult {
        let recalled = self.serve_recalls();
        let mut result = RunResult {
            progress: self.complete_tx() | recalled,
            ..RunResult::default()
        };
        let received = self.receive();
        result.progress |= received > 0;
        result.more = received == RX_BUDGET;
        result.progress |= self.transmit();
        self.nic.flush();
        for (i, slot) in self.clients.iter_mut().enumerate() {
            let Some(c) = slot else { continue };
            if c.dead {
                continue;
            }
            if c.gave_back {
                c.gave_back = false;
                if let Ok(true) = c.server.signal_needed() {
                    result.notify |= 1 << i;
                }
            }
            if c.server.cut_off().is_some() {
                c.dead = true;
                result.cut_off |= 1 << i;
            }
        }
        result
    }

    /// Before waiting for notifications: asks every live client for one on its next
    /// frame to send. `false` if a client sent meanwhile, or was cut off by what it
    /// wrote meanwhile (run again first: the run reports it).
    pub fn prepare_wait(&mut self) -> bool {
        let mut idle = true;
        for c in self.clients.iter_mut().flatten() {
            if c.live() && c.sending.is_none() {
                match c.server.request_signal() {
                    Ok(true) => {}
                    Ok(false) | Err(_) => idle = false,
                }
            }
        }
        idle
    }

    /// Serves every live client's RX recall (receive buffers given back unused);
    /// whether any was.
    fn serve_recalls(&mut self) -> bool {
        let mut any = false;
        for c in self.clients.iter_mut().flatten() {
            if !c.live() {
                continue;
            }
            let before = c.server.stats().rx_recalled;
            if let Ok(true) = c.server.serve_recall() {
                c.gave_back = true;
                any = true;
            }
            c.counters.rx_recalled += c.server.stats().rx_recalled - before;
        }
        any
    }

    fn complete_tx(&mut self) -> bool {
        let mut progress = false;
        while let Some((token, ok)) = self.nic.next_tx_completion() {
            progress = true;
            let Some(p) = self.pending.iter().position(|e| e.0 == token) else {
                self.stats.unknown_completions += 1;
                continue;
            };
            let (_, slot) = self.pending.swap_remove(p);
            let Some(f) = self.frames.get_mut(slot).and_then(Option::as_mut) else {
                self.stats.internal_errors += 1;
                continue;
            };
            f.at_nic -= 1;
            if !ok {
                f.status = TxStatus::DeviceError;
            }
            let ci = f.client;
            if let Some(c) = self.clients[ci].as_mut() {
                c.at_nic -= 1;
                if !ok {
                    c.counters.tx_device_errors += 1;
                }
            }
            self.finish_if_done(slot);
        }
        progress
    }

    /// Gives frame entry `slot` back to its client once it makes no more wire frames
    /// and none is at the NIC.
    fn finish_if_done(&mut self, slot: usize) {
        let done = self.frames[slot].as_ref().is_some_and(|f| !f.issuing && f.at_nic == 0);
        if !done {
            return;
        }
        let Some(f) = self.frames[slot].take() else { return };
        if let Some(c) = self.clients[f.client].as_mut().filter(|c| c.live()) {
            c.give_tx(f.frame, f.status, &mut self.stats);
        }
    }

    /// Takes up to [`RX_BUDGET`] frames from the NIC; returns how many.
    fn receive(&mut self) -> usize {
        let Engine {
            nic, clients, stats, ..
        } = self;
        let mut received = 0;
        while received < RX_BUDGET {
            if nic.receive(|frame| deliver_from_nic(clients, stats, frame)).is_none() {
                break;
            }
            received += 1;
        }
        received
    }

    fn transmit(&mut self) -> bool {
        let n = self.clients.len();
        let live = self.clients.iter().flatten().filter(|c| c.live()).count();
        if n == 0 || live == 0 {
            return false;
        }
        // Each client's share of the NIC's transmit slots.
        let share = (self.nic.max_in_flight() / live).max(1) as u32;
        let mut any = false;
        // Bounded: each round takes at most one frame per client.
        for _ in 0..MAX_RING_CAPACITY {
            let mut progress = false;
            for k in 0..n {
                progress |= self.transmit_one((self.rr + k) % n, share);
            }
            any |= progress;
            if !progress {
                break;
            }
        }
        self.rr = (self.rr + 1) % n;
        any
    }

    /// Sends one wire frame of client `i` (of the frame it is sending, else of the
    /// next one it has); whether it did.
    fn transmit_one(&mut self, i: usize, share: u32) -> bool {
        let Some(c) = self.clients[i].as_mut().filter(|c| c.live()) else {
            return false;
        };
        if c.sending.is_none() {
            if c.at_nic >= share {
                return false;
            }
            let t = match c.server.next_tx() {
                Ok(Some(t)) => t,
                Ok(None) | Err(_) => return false,
            };
            c.counters.tx_frames += 1;
            if !self.start_frame(i, t) {
                return true;
            }
        }
        self.send_next(i, share)
    }

    /// Checks client `i`'s frame `t` (source MAC, offload request) and makes it the
    /// one being sent; false if it was given back instead.
    fn start_frame(&mut self, i: usize, t: TxFrame) -> bool {
        let Some(c) = self.clients[i].as_mut() else {
            return false;
        };
        let skip = if t.offload() { OFFLOAD_HEADER_LEN } else { 0 };
        let frame_len = t.frame_len();
        let mut offload = [0u8; OFFLOAD_HEADER_LEN as usize];
        let mut head = [0u8; MAX_HEADER];
        // A plain frame's checked header is its Ethernet header; an offload needs the
        // IP and TCP headers too.
        let head_len = if t.offload() {
            (frame_len as usize).min(MAX_HEADER)
        } else {
            HDR
        };
        let read = gather(&c.data, &t, 0, &mut offload[..skip as usize])
            .and_then(|()| gather(&c.data, &t, u64::from(skip), &mut head[..head_len]));
        if read.is_err() {
            self.stats.internal_errors += 1;
            c.give_tx(t, TxStatus::DeviceError, &mut self.stats);
            return false;
        }
        c.counters.tx_bytes_copied += u64::from(skip) + head_len as u64;
        let request = t
            .offload()
            .then(|| OffloadHeader::read_from_bytes(&offload).unwrap_or_default());
        let plan = match Plan::new(request.as_ref(), &head[..head_len], frame_len) {
            Ok(p) => p,
            Err(_) => {
                c.counters.unsupported += 1;
                c.give_tx(t, TxStatus::Unsupported, &mut self.stats);
                return false;
            }
        };
        if head[6..12] != c.mac {
            c.counters.spoofed += 1;
            c.give_tx(t, TxStatus::Spoofed, &mut self.stats);
            return false;
        }
        let dst: [u8; 6] = [head[0], head[1], head[2], head[3], head[4], head[5]];
        let group = mac_is_multicast(&dst);
        let mut targets = 0u64;
        for (j, other) in self.clients.iter().enumerate() {
            if let Some(o) = other {
                if j != i && o.live() && (group || o.mac == dst) {
                    targets |= 1 << j;
                }
            }
        }
        let entry = InFlight {
            client: i,
            frame: t,
            at_nic: 0,
            issuing: true,
            status: TxStatus::Sent,
        };
        let slot = match self.frames.iter().position(Option::is_none) {
            Some(k) => {
                self.frames[k] = Some(entry);
                k
            }
            None => {
                self.frames.push(Some(entry));
                self.frames.len() - 1
            }
        };
        let Some(c) = self.clients[i].as_mut() else {
            return false;
        };
        c.sending = Some(Sending {
            slot,
            plan,
            head,
            head_len,
            next: 0,
            targets,
            to_nic: group || targets == 0,
            built: None,
        });
        true
    }

    /// Sends the next wire frame of client `i`'s frame being sent: delivers it to
    /// the local clients it is for, then offers it to the NIC; whether it went.
    fn send_next(&mut self, i: usize, share: u32) -> bool {
        let Some(c) = self.clients[i].as_mut() else {
            return false;
        };
        let Some(mut s) = c.sending.take() else { return false };
        let Some(frame) = self.frames[s.slot].as_ref().map(|f| f.frame) else {
            self.stats.internal_errors += 1;
            return false;
        };
        let mut status = None;
        if s.built.is_none() {
            match build(&c.data, i, &frame, &s) {
                Ok(req) => {
                    if s.targets != 0 {
                        self.deliver_local(i, &req, s.targets);
                    }
                    s.built = Some(req);
                }
                Err(e) => status = Some(e),
            }
        }
        let Some(c) = self.clients[i].as_mut() else {
            return false;
        };
        if let (Some(req), true, None) = (s.built, s.to_nic, status) {
            if c.at_nic >= share {
                c.sending = Some(s);
                return false;
            }
            match self.nic.transmit(&req) {
                Ok(token) => {
                    self.pending.push((token, s.slot));
                    if let Some(f) = self.frames[s.slot].as_mut() {
                        f.at_nic += 1;
                    }
                    c.at_nic += 1;
                    c.counters.tx_nic += 1;
                    c.counters.tx_bytes_zero_copy += u64::from(req.payload_len());
                }
                Err(NicError::Full) => {
                    c.sending = Some(s);
                    return false;
                }
                Err(NicError::Failed) => {
                    c.counters.tx_device_errors += 1;
                    status = Some(TxStatus::DeviceError);
                }
            }
        }
        s.built = None;
        s.next += 1;
        if status.is_none() && s.next < s.plan.segments() {
            c.sending = Some(s);
            return true;
        }
        if status == Some(TxStatus::Unsupported) {
            c.counters.unsupported += 1;
        }
        if let Some(f) = self.frames[s.slot].as_mut() {
            f.issuing = false;
            if let Some(st) = status {
                f.status = st;
            }
        }
        self.finish_if_done(s.slot);
        true
    }

    /// Copies wire frame `req` of client `i` into an RX buffer of every client in
    /// `targets`: its header from the engine's copy, the payload straight from the
    /// sender's buffer.
    fn deliver_local(&mut self, i: usize, req: &TxRequest, targets: u64) {
        let Some(src) = self.clients[i].as_ref().map(|c| c.data.clone()) else {
            return;
        };
        let mut delivered = 0;
        for (j, other) in self.clients.iter_mut().enumerate() {
            if targets & (1 << j) == 0 {
                continue;
            }
            if let Some(o) = other {
                let before = o.counters.rx_frames;
                o.deliver_with(req.len() as usize, &mut self.stats, |data, at| {
                    data.write_bytes(at, req.header())?;
                    let mut pos = at + req.header().len();
                    for &(offset, len) in req.payload() {
                        data.copy_from(pos, &src, offset as usize, len as usize)?;
                        pos += len as usize;
                    }
                    Ok(())
                });
                delivered += o.counters.rx_frames - before;
            }
        }
        if let Some(c) = self.clients[i].as_mut() {
            c.counters.tx_local += delivered;
        }
    }
}

/// Reads `out.len()` bytes of frame `t` from byte `at` (the offload header counted)
/// out of its pieces in `data`.
fn gather<M: DataRegion>(data: &M, t: &TxFrame, at: u64, out: &mut [u8]) -> Result<(), vcpos_queue::OutOfBounds> {
    let mut pos = 0u64;
    let mut done = 0usize;
    for p in t.pieces() {
        if done == out.len() {
            break;
        }
        let end = pos + u64::from(p.len);
        let want = at + done as u64;
        if want < end {
            let n = ((end - want) as usize).min(out.len() - done);
            data.read_bytes((p.offset + (want - pos)) as usize, &mut out[done..done + n])?;
            done += n;
        }
        pos = end;
    }
    Ok(())
}

/// The data-region ranges of bytes `start..start + len` of frame `t` (the offload
/// header counted), into `out`; how many, or `None` if they need more than `out`.
fn ranges(t: &TxFrame, start: u64, len: u64, out: &mut [(u64, u32)]) -> Option<usize> {
    let (mut pos, mut n, mut left, mut at) = (0u64, 0usize, len, start);
    for p in t.pieces() {
        if left == 0 {
            break;
        }
        let end = pos + u64::from(p.len);
        if at < end {
            let take = (end - at).min(left);
            *out.get_mut(n)? = (p.offset + (at - pos), take as u32);
            n += 1;
            left -= take;
            at += take;
        }
        pos = end;
    }
    Some(n)
}

/// Builds wire frame `s.next` of client `i`'s frame `t` being sent: payload ranges,
/// checksums, header. `Err` is the status to give the frame back with.
fn build<M: DataRegion>(data: &M, i: usize, t: &TxFrame, s: &Sending) -> Result<TxRequest, TxStatus> {
    let skip = if t.offload() { u64::from(OFFLOAD_HEADER_LEN) } else { 0 };
    let r = s.plan.payload(s.next, t.frame_len());
    let mut req = TxRequest::new(i);
    let n = ranges(t, skip + u64::from(r.start), u64::from(r.len), &mut req.payload).ok_or(TxStatus::Unsupported)?;
    req.pieces = n as u8;
    let mut sum = Sum::default();
    if s.plan.needs_sum() {
        let mut at = 0usize;
        for &(offset, len) in req.payload() {
            let piece = data
                .sum(offset as usize, len as usize)
                .map_err(|_| TxStatus::DeviceError)?;
            sum = sum.add_at(piece, at);
            at += len as usize;
        }
    }
    s.plan.finish(s.next, &s.head[..s.head_len], r, sum, &mut req.header);
    req.header_len = s.plan.header_len() as u8;
    Ok(req)
}

/// Delivers a frame from the NIC to every live client it is addressed to.
fn deliver_from_nic<M: DataRegion + Clone>(
    clients: &mut [Option<ClientState<M>>],
    stats: &mut EngineStats,
    frame: &[u8],
) {
    if !(HDR..=MAX_FRAME_LEN as usize).contains(&frame.len()) {
        stats.nic_rx_bad_length += 1;
        return;
    }
    stats.nic_rx_frames += 1;
    let dst: [u8; 6] = [frame[0], frame[1], frame[2], frame[3], frame[4], frame[5]];
    let group = mac_is_multicast(&dst);
    let mut matched = false;
    for c in clients.iter_mut().flatten() {
        if c.live() && (group || c.mac == dst) {
            matched = true;
            c.deliver(frame, stats);
        }
    }
    if !matched {
        stats.nic_rx_unmatched += 1;
    }
}
