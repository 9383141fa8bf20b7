//! The server's half of the network protocol: takes frames to send and empty receive
//! buffers from one client, checks each, tracks every buffer it holds, and gives
//! buffers back (sent, with a status; or filled with a received frame).

use core::fmt;

use vcpos_queue::{Consumer, LayoutError, Producer, PushError, QueueError, SharedMemory};
use vcpos_vcp_common::control::{check_size, generation, CutOff};

use crate::layout::{buffers_in, BufDesc, ControlLayout, Info, TxStatus, ETH_HEADER_LEN, MAX_FRAME_LEN, MTU};
use crate::ownership::BufferSet;

/// What the server offers one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The MAC address assigned to the client (unicast).
    pub mac: [u8; 6],
    /// Slots in each ring (a power of two, at least the client's buffer count).
    pub ring_capacity: u32,
}

/// A checked frame to send: a buffer of the client's the server now holds, with a
/// length in `ETH_HEADER_LEN..=MAX_FRAME_LEN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrame {
    /// Offset of the buffer in the client's data region.
    pub offset: u64,
    /// Frame length.
    pub len: u32,
}

/// A checked empty receive buffer the server now holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxBuffer {
    /// Offset of the buffer in the client's data region.
    pub offset: u64,
}

/// Why the server stopped serving this client, or misused its half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerError {
    /// A ring failed (the client corrupted an index): the client is cut off.
    Queue(QueueError),
    /// A give-back of a buffer the server does not hold (a bug in the server).
    NotHeld(u64),
    /// A ring the server gives buffers back on had no room although each ring holds
    /// every buffer of the region (the client handed over buffers it had not taken
    /// back): the client is cut off.
    ReturnRingFull,
}

impl From<QueueError> for ServerError {
    fn from(e: QueueError) -> ServerError {
        ServerError::Queue(e)
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServerError::Queue(e) => write!(f, "client cut off: {e}"),
            ServerError::NotHeld(o) => write!(f, "give-back of buffer {o:#x}, which the server does not hold"),
            ServerError::ReturnRingFull => f.write_str("client cut off: a give-back ring is full"),
        }
    }
}

/// Counts of what the server took and refused from this client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Frames taken to send.
    pub tx_accepted: u64,
    /// Empty receive buffers taken.
    pub rx_buffers_accepted: u64,
    /// Descriptors naming no buffer (outside the data region or not on a buffer
    /// boundary): dropped, nothing given back.
    pub bad_offset: u64,
    /// Descriptors naming a buffer the server already holds: dropped.
    pub duplicate: u64,
    /// Frames too short or too long: given back with [`TxStatus::BadLength`].
    pub bad_length: u64,
}

impl ServerStats {
    /// All refusals.
    pub fn refused(&self) -> u64 {
        self.bad_offset + self.duplicate + self.bad_length
    }
}

/// The server's half for one client.
pub struct Server<M> {
    mem: M,
    tx_active: Consumer<M, BufDesc>,
    tx_free: Producer<M, BufDesc>,
    rx_free: Consumer<M, BufDesc>,
    rx_active: Producer<M, BufDesc>,
    config: ServerConfig,
    /// Every buffer the server holds (frames being sent and receive buffers).
    held: BufferSet,
    /// Receive buffers held, kept for later by [`Server::rx_unused`] (a subset of `held`).
    rx_pool: BufferSet,
    /// Receive buffers handed to the caller and not delivered yet (a subset of `held`).
    rx_out: BufferSet,
    stats: ServerStats,
    cut_off: CutOff<ServerError>,
}

impl<M: SharedMemory + Clone> Server<M> {
    /// The server's half over control region `control`, for a client whose data region
    /// is `data_size` bytes (a multiple of [`crate::BUF_SIZE`], 2..=[`crate::MAX_BUFFERS`]
    /// buffers, no more than the ring capacity). Does not publish the info page yet
    /// ([`Self::publish`]).
    pub fn new(control: M, data_size: u64, config: ServerConfig) -> Result<Self, LayoutError> {
        let layout = ControlLayout::new(config.ring_capacity)?;
        let buffers = match buffers_in(data_size) {
            Some(n) if n <= config.ring_capacity => n,
            _ => return Err(LayoutError::Capacity(config.ring_capacity)),
        };
        check_size(&control, layout.size())?;
        Ok(Server {
            tx_active: Consumer::new(control.clone(), layout.tx_active)?,
            tx_free: Producer::new(control.clone(), layout.tx_free)?,
            rx_free: Consumer::new(control.clone(), layout.rx_free)?,
            rx_active: Producer::new(control.clone(), layout.rx_active)?,
            mem: control,
            config,
            held: BufferSet::new(buffers),
            rx_pool: BufferSet::new(buffers),
            rx_out: BufferSet::new(buffers),
            stats: ServerStats::default(),
            cut_off: CutOff::new(),
        })
    }

    /// Publishes the info page with `generation` (ready last): the client may start.
    pub fn publish(&mut self, generation: u32) -> Result<(), ServerError> {
        let info = Info {
            generation,
            mac: self.config.mac,
            mtu: MTU,
            buffers: self.held.buffers(),
            ring_capacity: self.config.ring_capacity,
        };
        info.publish(&self.mem)
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

    /// Counts of accepted and refused descriptors.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Buffers the server holds now.
    pub fn held(&self) -> u32 {
        self.held.len()
    }

    /// Why the client was cut off, if it was.
    pub fn cut_off(&self) -> Option<ServerError> {
        self.cut_off.reason()
    }

    /// Takes a buffer named by a peer's descriptor: its index if it names a buffer the
    /// server does not hold yet (which it then holds), else counts the refusal.
    fn take(&mut self, d: &BufDesc) -> Option<u32> {
        let Some(i) = self.held.index(d.offset) else {
            self.stats.bad_offset += 1;
            return None;
        };
        if !self.held.insert(i) {
            self.stats.duplicate += 1;
            return None;
        }
        Some(i)
    }

    /// The next frame to send, if any. Descriptors that name no buffer or a buffer
    /// already held are dropped; frames of an impossible length are given back at once
    /// with [`TxStatus::BadLength`]. The frame's buffer is held until
    /// [`Self::tx_done`].
    pub fn next_tx(&mut self) -> Result<Option<TxFrame>, ServerError> {
        self.cut_off.check()?;
        // Bounded: a client refilling the ring with refusals on another core cannot
        // keep us here.
        for _ in 0..self.config.ring_capacity {
            let Some(d) = self.tx_active.pop().map_err(|e| self.cut_off.cut(e.into()))? else {
                return Ok(None);
            };
            if self.take(&d).is_none() {
                continue;
            }
            if !(ETH_HEADER_LEN..=MAX_FRAME_LEN).contains(&d.len) {
                self.stats.bad_length += 1;
                self.tx_done(d.offset, TxStatus::BadLength)?;
                continue;
            }
            self.stats.tx_accepted += 1;
            return Ok(Some(TxFrame {
                offset: d.offset,
                len: d.len,
            }));
        }
        Ok(None)
    }

    /// Gives a frame's buffer (from [`Self::next_tx`]) back with `status`.
    pub fn tx_done(&mut self, offset: u64, status: TxStatus) -> Result<(), ServerError> {
        let i = self.held.index(offset).ok_or(ServerError::NotHeld(offset))?;
        if !self.held.contains(i) || self.rx_pool.contains(i) || self.rx_out.contains(i) {
            return Err(ServerError::NotHeld(offset));
        }
        self.cut_off.check()?;
        self.held.remove(i);
        self.give_back(
            false,
            BufDesc {
                offset,
                len: 0,
                status: status as u32,
            },
        )
    }

    fn give_back(&mut self, rx: bool, d: BufDesc) -> Result<(), ServerError> {
        let ring = if rx { &mut self.rx_active } else { &mut self.tx_free };
        match ring.push(&d) {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(self.cut_off.cut(ServerError::ReturnRingFull)),
            Err(PushError::Queue(e)) => Err(self.cut_off.cut(e.into())),
        }
    }

    /// An empty receive buffer, if the client has given one: one left over from
    /// [`Self::rx_unused`] first, else the next valid one from the RX free ring
    /// (descriptors naming no buffer or a buffer already held are dropped). It is held
    /// until [`Self::rx_deliver`] or [`Self::rx_unused`].
    pub fn take_rx_buffer(&mut self) -> Result<Option<RxBuffer>, ServerError> {
        self.cut_off.check()?;
        if let Some(i) = self.rx_pool.pop_first() {
            self.rx_out.insert(i);
            return Ok(Some(RxBuffer {
                offset: BufferSet::offset(i),
            }));
        }
        for _ in 0..self.config.ring_capacity {
            let Some(d) = self.rx_free.pop().map_err(|e| self.cut_off.cut(e.into()))? else {
                return Ok(None);
            };
            if let Some(i) = self.take(&d) {
                self.rx_out.insert(i);
                self.stats.rx_buffers_accepted += 1;
                return Ok(Some(RxBuffer { offset: d.offset }));
            }
        }
        Ok(None)
    }

    /// Keeps a receive buffer from [`Self::take_rx_buffer`] for a later frame.
    pub fn rx_unused(&mut self, buf: RxBuffer) -> Result<(), ServerError> {
        match self.held.index(buf.offset) {
            Some(i) if self.rx_out.remove(i) => {
                self.rx_pool.insert(i);
                Ok(())
            }
            _ => Err(ServerError::NotHeld(buf.offset)),
        }
    }

    /// Gives a receive buffer (from [`Self::take_rx_buffer`]) back holding a `len`-byte
    /// frame the caller wrote into it.
    pub fn rx_deliver(&mut self, buf: RxBuffer, len: u32) -> Result<(), ServerError> {
        let i = self.held.index(buf.offset).ok_or(ServerError::NotHeld(buf.offset))?;
        if !self.rx_out.contains(i) || len > MAX_FRAME_LEN {
            return Err(ServerError::NotHeld(buf.offset));
        }
        self.cut_off.check()?;
        self.rx_out.remove(i);
        self.held.remove(i);
        self.give_back(true, BufDesc::new(buf.offset, len))
    }

    /// After a batch of give-backs: whether to notify the client now.
    pub fn signal_needed(&mut self) -> Result<bool, ServerError> {
        self.cut_off.check()?;
        let tx = self.tx_free.signal_needed().map_err(|e| self.cut_off.cut(e.into()))?;
        let rx = self.rx_active.signal_needed().map_err(|e| self.cut_off.cut(e.into()))?;
        Ok(tx || rx)
    }

    /// Before waiting: asks the client for a notification on its next frame to send;
    /// `false` if frames arrived meanwhile (serve them first).
    pub fn request_signal(&mut self) -> Result<bool, ServerError> {
        self.cut_off.check()?;
        self.tx_active.request_signal().map_err(|e| self.cut_off.cut(e.into()))
    }
}
