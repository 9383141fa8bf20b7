//! The server's half of the network protocol: takes frames to send and empty receive
//! buffers from one client, checks each descriptor against the client's data region,
//! and gives every descriptor it took back exactly once (sent, with a status; or
//! filled with a received frame; or unused on a recall).
//!
//! The server protects itself and the other clients, not a client from itself: it
//! does not track which buffers a client handed over (a client may name the same
//! bytes twice; its own frames suffer). It counts what it holds and takes a
//! descriptor only while the ring it gives it back on has room for everything it
//! holds, so it never holds more than it can give back and a client that stops
//! taking its give-backs only stops itself.

use core::fmt;
use core::sync::atomic::Ordering;

use vcpos_queue::{Consumer, LayoutError, Producer, PushError, QueueError, SharedMemory};
use vcpos_vcp_common::control::{check_size, generation, CutOff};

use crate::layout::{
    info_offsets, offloads, tx_flags, BufDesc, ControlLayout, Info, RxStatus, TxStatus, ETH_HEADER_LEN, MAX_FRAME_LEN,
    MAX_OFFLOAD_FRAME_LEN, MAX_TX_PIECES, MTU, OFFLOAD_HEADER_LEN, RX_RECALL,
};

/// What the server offers one client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// The MAC address assigned to the client (unicast).
    pub mac: [u8; 6],
    /// Slots in each ring (a power of two up to [`crate::MAX_RING_CAPACITY`]).
    pub ring_capacity: u32,
    /// The offloads the server does for this client ([`crate::offloads`] bits; a
    /// frame asking for one is refused without them).
    pub offloads: u32,
}

/// A checked frame to send: 1..=[`MAX_TX_PIECES`] pieces of the client's data region
/// (each inside it), in order; with [`TxFrame::offload`], the first
/// [`crate::OFFLOAD_HEADER_LEN`] bytes are the client's [`crate::OffloadHeader`]. The
/// length is checked: `ETH_HEADER_LEN..=MAX_FRAME_LEN` bytes of frame, or up to
/// [`MAX_OFFLOAD_FRAME_LEN`] with an offload header. Held by the server until
/// [`Server::tx_done`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxFrame {
    pieces: [BufDesc; MAX_TX_PIECES],
    count: u8,
    offload: bool,
}

impl TxFrame {
    fn new(offload: bool) -> TxFrame {
        TxFrame {
            pieces: [BufDesc::default(); MAX_TX_PIECES],
            count: 0,
            offload,
        }
    }

    /// Offset of the frame's first piece in the client's data region.
    pub fn offset(&self) -> u64 {
        self.pieces[0].offset
    }

    /// Bytes of all pieces (the offload header included).
    pub fn len(&self) -> u32 {
        self.pieces().iter().map(|p| p.len).sum()
    }

    /// Whether the frame is empty (never: at least an Ethernet header).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces, in order: `(offset, len)` of each in the client's data region.
    pub fn pieces(&self) -> &[BufDesc] {
        &self.pieces[..usize::from(self.count)]
    }

    /// Whether the frame starts with an offload header.
    pub fn offload(&self) -> bool {
        self.offload
    }

    /// Frame bytes (the offload header not counted).
    pub fn frame_len(&self) -> u32 {
        self.len() - if self.offload { OFFLOAD_HEADER_LEN } else { 0 }
    }

    fn push(&mut self, d: BufDesc) -> bool {
        match self.pieces.get_mut(usize::from(self.count)) {
            Some(slot) => {
                *slot = BufDesc { status: 0, ..d };
                self.count += 1;
                true
            }
            None => false,
        }
    }
}

/// A frame the server is taking piece by piece (the client has published part of it).
#[derive(Clone, Copy, Debug)]
struct Assembly {
    frame: TxFrame,
    /// Refused: the pieces taken so far were given back with this status; the rest are
    /// as they come.
    refused: Option<TxStatus>,
    /// A piece outside the data region was counted for it (no other count then).
    bad_offset: bool,
}

/// A checked empty receive buffer: `capacity` bytes (at least [`MAX_FRAME_LEN`]) at
/// `offset` of the client's data region, inside it. Held by the server until
/// [`Server::rx_deliver`] (or kept by [`Server::rx_unused`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxBuffer {
    desc: BufDesc,
}

impl RxBuffer {
    /// Offset of the buffer in the client's data region.
    pub fn offset(&self) -> u64 {
        self.desc.offset
    }

    /// Bytes the buffer holds.
    pub fn capacity(&self) -> u32 {
        self.desc.len
    }
}

/// Why the server stopped serving this client, or misused its half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerError {
    /// A ring failed (the client corrupted an index): the client is cut off.
    Queue(QueueError),
    /// A give-back of a buffer the server does not hold (a bug in the server: more
    /// give-backs than it took, a frame longer than the buffer, a second spare).
    NotHeld(u64),
    /// A ring the server gives buffers back on had no room although the server took
    /// only what it had room to give back (the client moved its index): the client
    /// is cut off.
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
    /// Descriptors naming bytes outside the data region (offset + len past its end,
    /// or overflowing): dropped, nothing given back.
    pub bad_offset: u64,
    /// Receive buffers smaller than [`MAX_FRAME_LEN`]: dropped, nothing given back.
    pub rx_too_small: u64,
    /// Frames too short or too long, in too many pieces, or with a piece outside the
    /// data region: given back with [`TxStatus::BadLength`] (but for such a piece).
    pub bad_length: u64,
    /// Frames asking for an offload not offered, or with undefined flags: given back
    /// with [`TxStatus::Unsupported`].
    pub unsupported: u64,
    /// Receive buffers given back unused on a recall.
    pub rx_recalled: u64,
}

impl ServerStats {
    /// All refusals.
    pub fn refused(&self) -> u64 {
        self.bad_offset + self.rx_too_small + self.bad_length + self.unsupported
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
    data_size: u64,
    /// Transmit descriptors (pieces) taken and not given back.
    tx_held: u32,
    /// The frame being taken, while its last piece is not published yet.
    assembly: Option<Assembly>,
    /// Receive buffers taken and not given back (the spare included).
    rx_held: u32,
    /// A receive buffer kept by [`Server::rx_unused`], handed out first.
    rx_spare: Option<RxBuffer>,
    /// The last recall request served.
    recall_done: u32,
    stats: ServerStats,
    cut_off: CutOff<ServerError>,
}

impl<M: SharedMemory + Clone> Server<M> {
    /// The server's half over control region `control`, for a client whose data region
    /// is `data_size` bytes. Does not publish the info page yet ([`Self::publish`]).
    pub fn new(control: M, data_size: u64, config: ServerConfig) -> Result<Self, LayoutError> {
        let layout = ControlLayout::new(config.ring_capacity)?;
        check_size(&control, layout.size())?;
        Ok(Server {
            tx_active: Consumer::new(control.clone(), layout.tx_active)?,
            tx_free: Producer::new(control.clone(), layout.tx_free)?,
            rx_free: Consumer::new(control.clone(), layout.rx_free)?,
            rx_active: Producer::new(control.clone(), layout.rx_active)?,
            mem: control,
            config,
            data_size,
            tx_held: 0,
            assembly: None,
            rx_held: 0,
            rx_spare: None,
            recall_done: 0,
            stats: ServerStats::default(),
            cut_off: CutOff::new(),
        })
    }

    /// Publishes the info page with `generation` (ready last): the client may start.
    /// Any recall the client asked for before counts as served (the server holds
    /// nothing yet).
    pub fn publish(&mut self, generation: u32) -> Result<(), ServerError> {
        let info = Info {
            generation,
            mac: self.config.mac,
            mtu: MTU,
            data_size: self.data_size,
            ring_capacity: self.config.ring_capacity,
            offloads: self.config.offloads,
        };
        let recall = self.mem.load_u32(RX_RECALL, Ordering::Acquire).unwrap_or(0);
        self.recall_done = recall;
        let mem = &self.mem;
        let stored = mem
            .store_u32(info_offsets::RX_RECALL_DONE, recall, Ordering::Relaxed)
            .and_then(|()| info.publish(mem));
        stored.map_err(|e| self.cut_off.cut(QueueError::OutOfBounds(e).into()))
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

    /// Buffers the server holds now (frames being sent and receive buffers).
    pub fn held(&self) -> u32 {
        self.tx_held + self.rx_held
    }

    /// Why the client was cut off, if it was.
    pub fn cut_off(&self) -> Option<ServerError> {
        self.cut_off.reason()
    }

    /// Whether a give-back ring has room for everything held plus one more.
    fn room(ring: &mut Producer<M, BufDesc>, held: u32) -> Result<bool, QueueError> {
        Ok(ring.free_slots()? > held)
    }

    /// The next frame to send, if any: its pieces up to one without
    /// [`tx_flags::MORE`] (a frame published in part waits here for its rest).
    /// Descriptors naming bytes outside the data region are dropped (counted) and
    /// refuse their frame; a frame of an impossible length or in more than
    /// [`MAX_TX_PIECES`] pieces is given back at once with [`TxStatus::BadLength`], one
    /// asking for an offload not offered or with undefined flags with
    /// [`TxStatus::Unsupported`]. Takes no descriptor while the TX free ring lacks room
    /// to give back every one held plus it. The frame is held until [`Self::tx_done`].
    pub fn next_tx(&mut self) -> Result<Option<TxFrame>, ServerError> {
        self.cut_off.check()?;
        // Bounded: a client refilling the ring with refusals on another core cannot
        // keep us here.
        for _ in 0..self.config.ring_capacity {
            match Self::room(&mut self.tx_free, self.tx_held) {
                Ok(true) => {}
                Ok(false) => match self.assembly {
                    // The frame being taken fills the give-back ring by itself: it can
                    // never be whole. Its pieces go back; the rest as they come.
                    Some(a) if a.refused.is_none() && u32::from(a.frame.count) == self.tx_held => {
                        self.assembly = Some(Assembly {
                            refused: Some(TxStatus::BadLength),
                            ..a
                        });
                        self.tx_done(a.frame, TxStatus::BadLength)?;
                        continue;
                    }
                    _ => return Ok(None),
                },
                Err(e) => return Err(self.cut_off.cut(e.into())),
            }
            // A frame's rest may not be published yet: what was taken waits in
            // `assembly` for the next call.
            let Some(d) = self.tx_active.pop().map_err(|e| self.cut_off.cut(e.into()))? else {
                return Ok(None);
            };
            let first = self.assembly.is_none();
            let mut a = self.assembly.take().unwrap_or(Assembly {
                frame: TxFrame::new(d.status & tx_flags::OFFLOAD != 0),
                refused: None,
                bad_offset: false,
            });
            let more = d.status & tx_flags::MORE != 0;
            let flags_ok = d.status & !tx_flags::ALL == 0 && (first || d.status & tx_flags::OFFLOAD == 0);
            let fits = d.fits(self.data_size);
            let bad = if !fits {
                // Dropped: it names nothing of the client's to give back.
                self.stats.bad_offset += 1;
                a.bad_offset = true;
                Some(TxStatus::BadLength)
            } else if !flags_ok {
                Some(TxStatus::Unsupported)
            } else {
                None
            };
            let refused = match a.refused {
                // The frame is refused already: this piece goes straight back.
                Some(status) => Some(status),
                None => match bad.or_else(|| (!a.frame.push(d)).then_some(TxStatus::BadLength)) {
                    // Refused now: the pieces taken so far go back first, in order.
                    Some(status) => {
                        a.refused = Some(status);
                        self.tx_done(a.frame, status)?;
                        Some(status)
                    }
                    None => None,
                },
            };
            match refused {
                Some(status) if fits => self.give_back(
                    false,
                    BufDesc {
                        status: status as u16,
                        ..d
                    },
                )?,
                Some(_) => {}
                None => self.tx_held += 1,
            }
            if more {
                self.assembly = Some(a);
                continue;
            }
            if let Some(status) = a.refused {
                if !a.bad_offset {
                    self.count_refusal(status);
                }
                continue;
            }
            if let Err(status) = self.check_frame(&a.frame) {
                self.count_refusal(status);
                self.tx_done(a.frame, status)?;
                continue;
            }
            self.stats.tx_accepted += 1;
            return Ok(Some(a.frame));
        }
        Ok(None)
    }

    /// Whether a whole frame's length and offload request are ones to take.
    fn check_frame(&self, f: &TxFrame) -> Result<(), TxStatus> {
        if f.offload() {
            if self.config.offloads & offloads::CSUM == 0 {
                return Err(TxStatus::Unsupported);
            }
            let len = f.len().checked_sub(OFFLOAD_HEADER_LEN).ok_or(TxStatus::BadLength)?;
            if !(ETH_HEADER_LEN..=MAX_OFFLOAD_FRAME_LEN).contains(&len) {
                return Err(TxStatus::BadLength);
            }
        } else if !(ETH_HEADER_LEN..=MAX_FRAME_LEN).contains(&f.len()) {
            return Err(TxStatus::BadLength);
        }
        Ok(())
    }

    fn count_refusal(&mut self, status: TxStatus) {
        if status == TxStatus::Unsupported {
            self.stats.unsupported += 1;
        } else {
            self.stats.bad_length += 1;
        }
    }

    /// Gives a frame (from [`Self::next_tx`]) back with `status`: each of its pieces,
    /// in order, its descriptor as the client wrote it but for the status.
    pub fn tx_done(&mut self, frame: TxFrame, status: TxStatus) -> Result<(), ServerError> {
        let n = u32::from(frame.count);
        if self.tx_held < n {
            return Err(ServerError::NotHeld(frame.offset()));
        }
        self.cut_off.check()?;
        self.tx_held -= n;
        for d in frame.pieces() {
            self.give_back(
                false,
                BufDesc {
                    status: status as u16,
                    ..*d
                },
            )?;
        }
        Ok(())
    }

    fn give_back(&mut self, rx: bool, d: BufDesc) -> Result<(), ServerError> {
        let ring = if rx { &mut self.rx_active } else { &mut self.tx_free };
        match ring.push(&d) {
            Ok(()) => Ok(()),
            Err(PushError::Full) => Err(self.cut_off.cut(ServerError::ReturnRingFull)),
            Err(PushError::Queue(e)) => Err(self.cut_off.cut(e.into())),
        }
    }

    /// An empty receive buffer, if the client has given one: the one kept by
    /// [`Self::rx_unused`] first, else the next valid one from the RX free ring
    /// (descriptors outside the data region or smaller than a maximal frame are
    /// dropped and counted). Takes nothing while the RX active ring lacks room to give
    /// back every receive buffer held plus this one. It is held until
    /// [`Self::rx_deliver`] or [`Self::rx_unused`].
    pub fn take_rx_buffer(&mut self) -> Result<Option<RxBuffer>, ServerError> {
        self.cut_off.check()?;
        if let Some(b) = self.rx_spare.take() {
            return Ok(Some(b));
        }
        for _ in 0..self.config.ring_capacity {
            match Self::room(&mut self.rx_active, self.rx_held) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err(self.cut_off.cut(e.into())),
            }
            let Some(d) = self.rx_free.pop().map_err(|e| self.cut_off.cut(e.into()))? else {
                return Ok(None);
            };
            if !d.fits(self.data_size) {
                self.stats.bad_offset += 1;
                continue;
            }
            if d.len < MAX_FRAME_LEN {
                self.stats.rx_too_small += 1;
                continue;
            }
            self.rx_held += 1;
            self.stats.rx_buffers_accepted += 1;
            return Ok(Some(RxBuffer {
                desc: BufDesc { status: 0, ..d },
            }));
        }
        Ok(None)
    }

    /// Keeps a receive buffer from [`Self::take_rx_buffer`] for the next frame (one
    /// at most: take it again before keeping another).
    pub fn rx_unused(&mut self, buf: RxBuffer) -> Result<(), ServerError> {
        if self.rx_spare.is_some() || self.rx_held == 0 {
            return Err(ServerError::NotHeld(buf.offset()));
        }
        self.rx_spare = Some(buf);
        Ok(())
    }

    /// Gives a receive buffer (from [`Self::take_rx_buffer`]) back holding a `len`-byte
    /// frame the caller wrote into it (`len` at most its capacity).
    pub fn rx_deliver(&mut self, buf: RxBuffer, len: u32) -> Result<(), ServerError> {
        if self.rx_held == 0 || len > buf.capacity() || len > MAX_FRAME_LEN {
            return Err(ServerError::NotHeld(buf.offset()));
        }
        self.cut_off.check()?;
        self.rx_held -= 1;
        self.give_back(
            true,
            BufDesc {
                len,
                status: RxStatus::Received as u16,
                ..buf.desc
            },
        )
    }

    /// Serves a recall the client asked for ([`crate::layout::RX_RECALL`]): gives back
    /// the spare and every descriptor waiting in the RX free ring unused
    /// ([`RxStatus::Unused`], `len` 0), then confirms. Call with no receive buffer
    /// taken and not delivered (between frames). Whether anything was given back.
    pub fn serve_recall(&mut self) -> Result<bool, ServerError> {
        self.cut_off.check()?;
        let asked = self
            .mem
            .load_u32(RX_RECALL, Ordering::Acquire)
            .map_err(|e| self.cut_off.cut(QueueError::OutOfBounds(e).into()))?;
        if asked == self.recall_done {
            return Ok(false);
        }
        let mut gave = false;
        if let Some(b) = self.rx_spare.take() {
            self.rx_held -= 1;
            self.recall_one(b.desc)?;
            gave = true;
        }
        // Bounded by the ring: everything the client posted before asking.
        for _ in 0..self.config.ring_capacity {
            match Self::room(&mut self.rx_active, self.rx_held) {
                Ok(true) => {}
                // The client does not take its give-backs: finish later.
                Ok(false) => return Ok(gave),
                Err(e) => return Err(self.cut_off.cut(e.into())),
            }
            let Some(d) = self.rx_free.pop().map_err(|e| self.cut_off.cut(e.into()))? else {
                break;
            };
            self.recall_one(d)?;
            gave = true;
        }
        self.recall_done = asked;
        self.mem
            .store_u32(info_offsets::RX_RECALL_DONE, asked, Ordering::Release)
            .map_err(|e| self.cut_off.cut(QueueError::OutOfBounds(e).into()))?;
        Ok(gave)
    }

    fn recall_one(&mut self, d: BufDesc) -> Result<(), ServerError> {
        self.stats.rx_recalled += 1;
        self.give_back(
            true,
            BufDesc {
                len: 0,
                status: RxStatus::Unused as u16,
                ..d
            },
        )
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
