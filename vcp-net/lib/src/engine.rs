//! The engine: serves every client's network-protocol queues and one [`Nic`].
//!
//! - **Receive from the NIC**: a frame goes to the client whose MAC its destination
//!   names; a group frame (multicast, broadcast) to every client; anything else is
//!   dropped and counted. The frame is copied once, from the driver's receive buffer
//!   into the client's RX buffer; a client with no RX buffer loses the frame (counted),
//!   the others do not wait for it.
//! - **Transmit**: round robin, one frame per client per turn, each client holding at
//!   most its share of the NIC's transmit slots, so a flood cannot starve another
//!   client. The engine copies the 14-byte Ethernet header out of the client's buffer,
//!   checks the source MAC on that copy (another source is dropped, counted and given
//!   back as [`TxStatus::Spoofed`]) and hands the NIC the checked header plus the rest
//!   of the frame as `(client, offset, len)` in the client's data region: the payload
//!   is not copied, and what was checked is what is sent.
//! - **Local delivery**: a frame to another client's MAC never reaches the NIC (which
//!   does not hairpin); a group frame goes to the NIC and to every other client. Each
//!   receiving client's RX buffer gets the checked header from the engine's copy and
//!   the rest of the frame copied once, straight from the sender's buffer
//!   ([`DataRegion::copy_from`]).
//! - **Buffers** are any `(offset, len)` of a client's data region (the protocol's
//!   server half checks each against the region); each client's rings have the
//!   capacity its configuration gives. A client's RX recall (it takes its receive
//!   buffers back, e.g. the VMM after a guest driver reset) is served at the start of
//!   every run, before any frame is delivered.

use alloc::vec::Vec;

use vcpos_net_protocol::{
    mac_is_multicast, Server, ServerConfig, ServerError, ServerStats, TxFrame, TxStatus, ETH_HEADER_LEN, MAX_FRAME_LEN,
};
use vcpos_queue::LayoutError;

use crate::config::{Config, MAX_CLIENTS};
use crate::data::DataRegion;

pub use vcpos_net_protocol::{MAX_RING_CAPACITY, RING_CAPACITY};
/// Frames taken from the NIC per [`Engine::run`], so receive cannot starve transmit,
/// and no more than a client has receive buffers: each run notifies the clients it
/// delivered to, and a client that drains between runs then loses nothing of a burst
/// larger than its buffers (the NIC's queue holds the rest). A dropped frame costs
/// slirp's TCP about a second of recovery.
pub const RX_BUDGET: usize = 16;

const HDR: usize = ETH_HEADER_LEN as usize;

/// A frame for the NIC: the checked Ethernet `header`, then bytes
/// `offset + 14 .. offset + len` of client `client`'s data region (read by the device
/// in place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxRequest {
    /// The client whose data region holds the frame.
    pub client: usize,
    /// The Ethernet header as checked (destination, source = the client's MAC, type).
    pub header: [u8; HDR],
    /// Offset of the frame in the client's data region.
    pub offset: u64,
    /// Frame length, header included (`14..=1514`).
    pub len: u32,
}

impl TxRequest {
    /// Offset of the payload (the bytes after the header) in the client's data region.
    pub fn payload_offset(&self) -> u64 {
        self.offset + u64::from(ETH_HEADER_LEN)
    }

    /// Payload length.
    pub fn payload_len(&self) -> u32 {
        self.len - ETH_HEADER_LEN
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
    /// Frames at the NIC.
    at_nic: u32,
    /// A frame taken from the client that waits for room at the NIC (its local
    /// deliveries are done).
    stalled: Option<(TxFrame, [u8; HDR])>,
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

/// The engine over NIC `N` and client regions `M`.
pub struct Engine<M, N> {
    nic: N,
    clients: Vec<Option<ClientState<M>>>,
    /// NIC token → (client, frame).
    pending: Vec<(u16, usize, TxFrame)>,
    rr: usize,
    stats: EngineStats,
}

/// Outcome of offering a frame to the NIC.
enum Offer {
    /// Taken, or failed and given back.
    Done,
    /// No room: the frame waits.
    Full,
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
                        offloads: 0,
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
                        stalled: None,
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
            if c.live() && c.stalled.is_none() {
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
            let (_, ci, frame) = self.pending.swap_remove(p);
            let Some(c) = self.clients[ci].as_mut() else {
                self.stats.internal_errors += 1;
                continue;
            };
            c.at_nic -= 1;
            let status = if ok {
                TxStatus::Sent
            } else {
                c.counters.tx_device_errors += 1;
                TxStatus::DeviceError
            };
            if c.live() {
                c.give_tx(frame, status, &mut self.stats);
            }
        }
        progress
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

    /// Sends one frame of client `i` (its stalled one first); whether it did.
    fn transmit_one(&mut self, i: usize, share: u32) -> bool {
        let Some(c) = self.clients[i].as_mut().filter(|c| c.live()) else {
            return false;
        };
        if let Some((t, header)) = c.stalled {
            return match self.offer_nic(i, t, header) {
                Offer::Done => {
                    if let Some(c) = self.clients[i].as_mut() {
                        c.stalled = None;
                    }
                    true
                }
                Offer::Full => false,
            };
        }
        if c.at_nic >= share {
            return false;
        }
        let t = match c.server.next_tx() {
            Ok(Some(t)) => t,
            Ok(None) | Err(_) => return false,
        };
        c.counters.tx_frames += 1;
        let mut header = [0u8; HDR];
        if c.data.read_bytes(t.offset() as usize, &mut header).is_err() {
            self.stats.internal_errors += 1;
            c.give_tx(t, TxStatus::DeviceError, &mut self.stats);
            return true;
        }
        c.counters.tx_bytes_copied += HDR as u64;
        if header[6..12] != c.mac {
            c.counters.spoofed += 1;
            c.give_tx(t, TxStatus::Spoofed, &mut self.stats);
            return true;
        }
        let dst: [u8; 6] = [header[0], header[1], header[2], header[3], header[4], header[5]];
        let group = mac_is_multicast(&dst);
        let mut targets = 0u64;
        for (j, other) in self.clients.iter().enumerate() {
            if let Some(o) = other {
                if j != i && o.live() && (group || o.mac == dst) {
                    targets |= 1 << j;
                }
            }
        }
        if targets != 0 {
            self.deliver_local(i, t, &header, targets);
        }
        if group || targets == 0 {
            if let Offer::Full = self.offer_nic(i, t, header) {
                if let Some(c) = self.clients[i].as_mut() {
                    c.stalled = Some((t, header));
                }
            }
        } else if let Some(c) = self.clients[i].as_mut() {
            c.give_tx(t, TxStatus::Sent, &mut self.stats);
        }
        true
    }

    /// Copies client `i`'s frame into an RX buffer of every client in `targets`: the
    /// checked header from `header`, the rest straight from the sender's buffer.
    fn deliver_local(&mut self, i: usize, t: TxFrame, header: &[u8; HDR], targets: u64) {
        let Some(src) = self.clients[i].as_ref().map(|c| c.data.clone()) else {
            return;
        };
        let (len, rest) = (t.len() as usize, t.len() as usize - HDR);
        let mut delivered = 0;
        for (j, other) in self.clients.iter_mut().enumerate() {
            if targets & (1 << j) == 0 {
                continue;
            }
            if let Some(o) = other {
                let before = o.counters.rx_frames;
                o.deliver_with(len, &mut self.stats, |data, at| {
                    data.write_bytes(at, header)?;
                    data.copy_from(at + HDR, &src, t.offset() as usize + HDR, rest)
                });
                delivered += o.counters.rx_frames - before;
            }
        }
        if let Some(c) = self.clients[i].as_mut() {
            c.counters.tx_local += delivered;
        }
    }

    /// Offers client `i`'s frame to the NIC.
    fn offer_nic(&mut self, i: usize, t: TxFrame, header: [u8; HDR]) -> Offer {
        let req = TxRequest {
            client: i,
            header,
            offset: t.offset(),
            len: t.len(),
        };
        let result = self.nic.transmit(&req);
        let Some(c) = self.clients[i].as_mut() else {
            return Offer::Done;
        };
        match result {
            Ok(token) => {
                self.pending.push((token, i, t));
                c.at_nic += 1;
                c.counters.tx_nic += 1;
                c.counters.tx_bytes_zero_copy += u64::from(req.payload_len());
                Offer::Done
            }
            Err(NicError::Full) => Offer::Full,
            Err(NicError::Failed) => {
                c.counters.tx_device_errors += 1;
                c.give_tx(t, TxStatus::DeviceError, &mut self.stats);
                Offer::Done
            }
        }
    }
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
