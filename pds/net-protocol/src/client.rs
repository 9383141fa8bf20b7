//! The client's half of the network protocol: reads the info page, hands buffers of
//! its data region to the server (anywhere in it, each named by an id), sends and
//! receives frames, and checks every descriptor the server gives back against what it
//! handed over (an id table per direction), so a hostile server cannot make it
//! misbehave.
//!
//! Two ways to use it: [`Client::new`] is the fixed-buffer helper for simple clients
//! (the data region is cut into [`BUF_SIZE`]-byte buffers: the first half is posted for
//! receiving at connect, the second half kept for sending; [`Client::send`],
//! [`Client::recv`]); [`Client::with_region`] leaves the buffers to the caller
//! ([`Client::post_rx`], [`Client::send_at`], [`Client::take_rx`]), e.g. the VMM,
//! whose data region is guest RAM.

use core::fmt;
use core::sync::atomic::Ordering;

use vcpos_queue::{Consumer, LayoutError, OutOfBounds, Producer, PushError, QueueError, SharedMemory};
use vcpos_vcp_common::control::{check_size, generation};

use crate::layout::{
    buffers_in, info_offsets, tx_flags, BufDesc, ControlLayout, Info, InfoError, RxStatus, TxStatus, BUF_SIZE,
    ETH_HEADER_LEN, MAX_FRAME_LEN, MAX_OFFLOAD_FRAME_LEN, MAX_RING_CAPACITY, MAX_TX_PIECES, OFFLOAD_HEADER_LEN,
    RING_CAPACITY, RX_RECALL, TX_STATUSES,
};
use crate::ownership::BufferSet;

/// A transmitted buffer given back (checked: the descriptor this client handed over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxReclaim {
    /// The id it was handed over with.
    pub id: u16,
    /// The buffer's offset.
    pub offset: u64,
    /// The frame's length.
    pub len: u32,
    /// What happened to the frame.
    pub status: TxStatus,
}

/// The ids of a frame's pieces handed over by [`ClientN::send_frame`], in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxIds {
    ids: [u16; MAX_TX_PIECES],
    len: usize,
}

impl TxIds {
    /// The ids.
    pub fn as_slice(&self) -> &[u16] {
        &self.ids[..self.len]
    }
}

/// What a receive buffer came back with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOutcome {
    /// A frame of this many bytes (`ETH_HEADER_LEN..=MAX_FRAME_LEN`, within the
    /// buffer's capacity).
    Frame(u32),
    /// No frame: given back unused (a recall).
    Unused,
    /// A frame length that is impossible for the buffer: treat the buffer as unused.
    BadLength(u32),
}

/// A receive buffer given back (checked: the descriptor this client handed over).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxReturn {
    /// The id it was handed over with.
    pub id: u16,
    /// The buffer's offset.
    pub offset: u64,
    /// Its capacity as handed over.
    pub capacity: u32,
    /// What it holds.
    pub outcome: RxOutcome,
}

/// What went wrong on the client's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// The server has not published the info page yet.
    NotReady,
    /// The info page is impossible.
    Info(InfoError),
    /// The server re-published the info page with another generation (it restarted):
    /// buffers it held are lost; make a new [`Client`].
    GenerationChanged {
        /// The generation connected to.
        was: u32,
        /// The one on the page now.
        now: u32,
    },
    /// A ring failed (the server corrupted an index).
    Queue(QueueError),
    /// A data region access failed (a bug on this side).
    Data(OutOfBounds),
    /// No room in the ring, or every id of that direction is in use (at most ring
    /// capacity descriptors are out per direction).
    Full,
    /// A buffer this client tried to hand over lies outside its data region, or a
    /// receive buffer is smaller than [`MAX_FRAME_LEN`].
    BadBuffer {
        /// Its offset.
        offset: u64,
        /// Its length or capacity.
        len: u32,
    },
    /// A receive-buffer recall is under way: no receive buffer is posted until every
    /// one has come back.
    RecallPending,
    /// Every transmit buffer is with the server.
    NoTxBuffer,
    /// A frame to send is shorter than the Ethernet header or longer than the maximum,
    /// or in no pieces or more than [`MAX_TX_PIECES`].
    BadLength(usize),
    /// A frame asks for an offload the server does not offer ([`Info::offloads`]).
    OffloadNotOffered,
    /// The caller's buffer is too small for the received frame (the frame is dropped).
    BufferTooSmall {
        /// Frame length.
        len: u32,
    },
    /// The server gave back a descriptor it was not given on that ring pair (an id
    /// not out, given back already, or with another offset or length than handed
    /// over).
    UnknownBuffer {
        /// `"tx free"` or `"rx active"`.
        ring: &'static str,
        /// The id it named.
        id: u16,
        /// The offset it named.
        offset: u64,
    },
    /// A give-back with a status the protocol does not define.
    BadStatus {
        /// The id (taken back: the buffer is the client's again).
        id: u16,
        /// The buffer.
        offset: u64,
        /// The status value.
        status: u16,
    },
    /// A received frame with an impossible length (the fixed-buffer helper hands the
    /// buffer out again).
    BadFrameLength {
        /// The buffer.
        offset: u64,
        /// The length claimed.
        len: u32,
    },
}

impl From<QueueError> for ClientError {
    fn from(e: QueueError) -> ClientError {
        ClientError::Queue(e)
    }
}

impl From<OutOfBounds> for ClientError {
    fn from(e: OutOfBounds) -> ClientError {
        ClientError::Data(e)
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::NotReady => f.write_str("network server not ready"),
            ClientError::Info(e) => e.fmt(f),
            ClientError::GenerationChanged { was, now } => {
                write!(
                    f,
                    "network server restarted (generation {was} -> {now}): buffers it held lost"
                )
            }
            ClientError::Queue(e) => e.fmt(f),
            ClientError::Data(e) => write!(f, "data region: {e}"),
            ClientError::Full => f.write_str("ring full or every id in use"),
            ClientError::BadBuffer { offset, len } => {
                write!(
                    f,
                    "buffer of {len} bytes at {offset:#x} is outside the data region or too small"
                )
            }
            ClientError::RecallPending => f.write_str("receive buffers are being recalled"),
            ClientError::NoTxBuffer => f.write_str("no transmit buffer free"),
            ClientError::BadLength(len) => write!(f, "frame of {len} bytes (or pieces) cannot be sent"),
            ClientError::OffloadNotOffered => f.write_str("frame asks for an offload the server does not offer"),
            ClientError::BufferTooSmall { len } => write!(f, "received frame of {len} bytes does not fit"),
            ClientError::UnknownBuffer { ring, id, offset } => {
                write!(
                    f,
                    "server gave back buffer {offset:#x} (id {id}) on {ring}, which it was not given"
                )
            }
            ClientError::BadStatus { id, offset, status } => {
                write!(
                    f,
                    "server gave back buffer {offset:#x} (id {id}) with unknown status {status}"
                )
            }
            ClientError::BadFrameLength { offset, len } => {
                write!(f, "server delivered buffer {offset:#x} with impossible length {len}")
            }
        }
    }
}

/// Counts of what happened to this client's frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Frames handed to the server.
    pub sent: u64,
    /// Transmit buffers given back, by [`TxStatus`] value.
    pub tx_status: [u64; TX_STATUSES],
    /// Frames received.
    pub received: u64,
    /// Receive buffers given back unused.
    pub rx_unused: u64,
}

/// One direction's descriptors out at the server, by id (no allocation): `N` ids,
/// each with the offset and length it was handed over with (length 0: free; every
/// descriptor handed over has a non-zero length).
struct IdTable<const N: usize> {
    offsets: [u64; N],
    lens: [u32; N],
    /// Ids usable (the ring capacity, at most `N`).
    ids: usize,
    /// Ids out.
    out: usize,
    /// Where the search for a free id starts.
    cursor: usize,
}

impl<const N: usize> IdTable<N> {
    fn new(ids: u32) -> Self {
        IdTable {
            offsets: [0; N],
            lens: [0; N],
            ids: (ids as usize).min(N),
            out: 0,
            cursor: 0,
        }
    }

    fn free(&self) -> usize {
        self.ids - self.out
    }

    fn alloc(&mut self, offset: u64, len: u32) -> Option<u16> {
        if self.free() == 0 || len == 0 {
            return None;
        }
        for k in 0..self.ids {
            let i = (self.cursor + k) % self.ids;
            if self.lens[i] == 0 {
                self.offsets[i] = offset;
                self.lens[i] = len;
                self.out += 1;
                self.cursor = (i + 1) % self.ids;
                return Some(i as u16);
            }
        }
        None
    }

    /// The `(offset, len)` `id` is out with, if it is.
    fn get(&self, id: u16) -> Option<(u64, u32)> {
        let i = usize::from(id);
        match self.lens.get(i) {
            Some(&len) if i < self.ids && len != 0 => Some((self.offsets[i], len)),
            _ => None,
        }
    }

    /// Frees `id` if it is out with `offset`; its `(offset, len)`.
    fn take(&mut self, id: u16, offset: u64) -> Option<(u64, u32)> {
        let (o, len) = self.get(id).filter(|&(o, _)| o == offset)?;
        self.lens[usize::from(id)] = 0;
        self.out -= 1;
        Some((o, len))
    }
}

/// The fixed-buffer helper's state.
struct Pool {
    /// Buffers in the data region.
    buffers: u32,
    /// Transmit buffers with the client, free to fill.
    tx_free: BufferSet,
}

/// The client's half with rings of up to [`MAX_RING_CAPACITY`] slots.
pub type Client<M> = ClientN<M, { MAX_RING_CAPACITY as usize }>;

/// The client's half for rings of up to [`RING_CAPACITY`] slots, with smaller id
/// tables (for PDs with small stacks).
pub type SmallClient<M> = ClientN<M, { RING_CAPACITY as usize }>;

/// The client's half, keeping up to `IDS` descriptors out per direction (its ring
/// capacity may not exceed `IDS`): use [`Client`] or [`SmallClient`].
pub struct ClientN<M, const IDS: usize> {
    control: M,
    data: M,
    tx_active: Producer<M, BufDesc>,
    tx_free: Consumer<M, BufDesc>,
    rx_free: Producer<M, BufDesc>,
    rx_active: Consumer<M, BufDesc>,
    ring_capacity: u32,
    info: Option<Info>,
    tx_ids: IdTable<IDS>,
    rx_ids: IdTable<IDS>,
    pool: Option<Pool>,
    /// The last recall asked for (0: none yet).
    recall: u32,
    /// Notify the server at the next [`Self::signal_needed`] (a recall).
    must_signal: bool,
    stats: ClientStats,
}

impl<M: SharedMemory + Clone, const IDS: usize> ClientN<M, IDS> {
    /// The fixed-buffer helper: the client's half over control region `control` with
    /// rings of `ring_capacity` slots (this side's own configuration) and data region
    /// `data` cut into [`BUF_SIZE`]-byte buffers (a multiple of it, 2..=
    /// [`crate::MAX_BUFFERS`] buffers, no more than the ring capacity).
    pub fn new(control: M, data: M, ring_capacity: u32) -> Result<Self, LayoutError> {
        let buffers = match buffers_in(data.size() as u64) {
            Some(n) if n <= ring_capacity => n,
            _ => return Err(LayoutError::Capacity(ring_capacity)),
        };
        let mut c = Self::with_region(control, data, ring_capacity)?;
        c.pool = Some(Pool {
            buffers,
            tx_free: BufferSet::new(buffers),
        });
        Ok(c)
    }

    /// The client's half over control region `control` with rings of `ring_capacity`
    /// slots (at most `IDS`) and data region `data` of any size; the caller names the
    /// buffers.
    pub fn with_region(control: M, data: M, ring_capacity: u32) -> Result<Self, LayoutError> {
        if ring_capacity as usize > IDS {
            return Err(LayoutError::Capacity(ring_capacity));
        }
        let layout = ControlLayout::new(ring_capacity)?;
        check_size(&control, layout.size())?;
        Ok(ClientN {
            tx_active: Producer::new(control.clone(), layout.tx_active)?,
            tx_free: Consumer::new(control.clone(), layout.tx_free)?,
            rx_free: Producer::new(control.clone(), layout.rx_free)?,
            rx_active: Consumer::new(control.clone(), layout.rx_active)?,
            control,
            data,
            ring_capacity,
            info: None,
            tx_ids: IdTable::new(ring_capacity),
            rx_ids: IdTable::new(ring_capacity),
            pool: None,
            recall: 0,
            must_signal: false,
            stats: ClientStats::default(),
        })
    }

    /// Reads the info page; on the first success the fixed-buffer helper hands the
    /// receive buffers (the first half of the data region) to the server.
    pub fn connect(&mut self) -> Result<Info, ClientError> {
        if let Some(info) = self.info {
            return Ok(info);
        }
        let info = Info::read(&self.control, self.ring_capacity, self.data.size() as u64)
            .map_err(ClientError::Info)?
            .ok_or(ClientError::NotReady)?;
        self.info = Some(info);
        self.recall = self.control.load_u32(RX_RECALL, Ordering::Relaxed)?;
        if let Some(buffers) = self.pool.as_ref().map(|p| p.buffers) {
            let rx = buffers / 2;
            for i in 0..rx {
                self.post_rx(BufferSet::offset(i), BUF_SIZE)?;
            }
            if let Some(p) = self.pool.as_mut() {
                for i in rx..buffers {
                    p.tx_free.insert(i);
                }
            }
        }
        Ok(info)
    }

    /// The info read by [`Self::connect`].
    pub fn info(&self) -> Option<Info> {
        self.info
    }

    /// Counters.
    pub fn stats(&self) -> ClientStats {
        self.stats
    }

    /// Transmit buffers of the fixed-buffer helper free on this side now (0 without
    /// the helper).
    pub fn tx_buffers_free(&self) -> u32 {
        self.pool.as_ref().map_or(0, |p| p.tx_free.len())
    }

    /// Transmit descriptors out at the server.
    pub fn tx_outstanding(&self) -> usize {
        self.tx_ids.out
    }

    /// Receive buffers out at the server.
    pub fn rx_outstanding(&self) -> usize {
        self.rx_ids.out
    }

    /// Receive buffers that may be posted now (ids free, no recall under way).
    pub fn rx_room(&mut self) -> Result<usize, ClientError> {
        if self.recall_pending()? {
            return Ok(0);
        }
        Ok(self.rx_ids.free())
    }

    fn connected(&self) -> Result<Info, ClientError> {
        let info = self.info.ok_or(ClientError::NotReady)?;
        let now = generation(&self.control)?;
        if now != info.generation {
            return Err(ClientError::GenerationChanged {
                was: info.generation,
                now,
            });
        }
        Ok(info)
    }

    fn fits(&self, offset: u64, len: u32) -> bool {
        BufDesc::new(offset, len, 0).fits(self.data.size() as u64)
    }

    /// Hands the server an empty receive buffer: `capacity` bytes (at least
    /// [`MAX_FRAME_LEN`]) at `offset` of the data region. Returns its id.
    pub fn post_rx(&mut self, offset: u64, capacity: u32) -> Result<u16, ClientError> {
        self.connected()?;
        if capacity < MAX_FRAME_LEN || !self.fits(offset, capacity) {
            return Err(ClientError::BadBuffer { offset, len: capacity });
        }
        if self.recall_pending()? {
            return Err(ClientError::RecallPending);
        }
        let id = self.rx_ids.alloc(offset, capacity).ok_or(ClientError::Full)?;
        match self.rx_free.push(&BufDesc::new(offset, capacity, id)) {
            Ok(()) => Ok(id),
            Err(e) => {
                self.rx_ids.take(id, offset);
                Err(match e {
                    PushError::Full => ClientError::Full,
                    PushError::Queue(e) => e.into(),
                })
            }
        }
    }

    /// Hands the server the `len`-byte frame at `offset` of the data region to send
    /// (zero copy: the server reads it in place; the bytes must not change until the
    /// descriptor comes back, [`Self::reclaim_tx`]). Returns its id.
    pub fn send_at(&mut self, offset: u64, len: u32) -> Result<u16, ClientError> {
        self.connected()?;
        if !(ETH_HEADER_LEN..=MAX_FRAME_LEN).contains(&len) {
            return Err(ClientError::BadLength(len as usize));
        }
        if !self.fits(offset, len) {
            return Err(ClientError::BadBuffer { offset, len });
        }
        let id = self.tx_ids.alloc(offset, len).ok_or(ClientError::Full)?;
        match self.tx_active.push(&BufDesc::new(offset, len, id)) {
            Ok(()) => {
                self.stats.sent += 1;
                Ok(id)
            }
            Err(e) => {
                self.tx_ids.take(id, offset);
                Err(match e {
                    PushError::Full => ClientError::Full,
                    PushError::Queue(e) => e.into(),
                })
            }
        }
    }

    /// Hands the server one frame in `pieces` (`(offset, len)` of the data region, in
    /// order, each non-empty; 1..=[`MAX_TX_PIECES`] of them) to send in place, as
    /// [`Self::send_at`] does for one piece. With `offload` (only if the server offers
    /// offloads, [`Info::offloads`]), the first [`OFFLOAD_HEADER_LEN`] bytes are an
    /// [`crate::OffloadHeader`] and the frame after it may be up to
    /// [`MAX_OFFLOAD_FRAME_LEN`] bytes; without, the pieces are a frame of
    /// `ETH_HEADER_LEN..=MAX_FRAME_LEN` bytes. Every piece comes back on its own
    /// ([`Self::reclaim_tx`]), in order, with the frame's status. Nothing is handed
    /// over on an error (`Full`: too few ring slots or ids for every piece).
    pub fn send_frame(&mut self, pieces: &[(u64, u32)], offload: bool) -> Result<TxIds, ClientError> {
        let info = self.connected()?;
        let n = pieces.len();
        if n == 0 || n > MAX_TX_PIECES {
            return Err(ClientError::BadLength(n));
        }
        let mut total = 0u64;
        for &(offset, len) in pieces {
            if len == 0 || !self.fits(offset, len) {
                return Err(ClientError::BadBuffer { offset, len });
            }
            total += u64::from(len);
        }
        let frame = if offload {
            if info.offloads == 0 {
                return Err(ClientError::OffloadNotOffered);
            }
            total.checked_sub(u64::from(OFFLOAD_HEADER_LEN))
        } else {
            Some(total)
        };
        let max = if offload { MAX_OFFLOAD_FRAME_LEN } else { MAX_FRAME_LEN };
        if !frame.is_some_and(|l| (u64::from(ETH_HEADER_LEN)..=u64::from(max)).contains(&l)) {
            return Err(ClientError::BadLength(total as usize));
        }
        if self.tx_ids.free() < n || (self.tx_active.free_slots()? as usize) < n {
            return Err(ClientError::Full);
        }
        let mut ids = TxIds {
            ids: [0; MAX_TX_PIECES],
            len: n,
        };
        for (k, &(offset, len)) in pieces.iter().enumerate() {
            let id = self.tx_ids.alloc(offset, len).ok_or(ClientError::Full)?;
            ids.ids[k] = id;
            let mut d = BufDesc::new(offset, len, id);
            if k + 1 < n {
                d.status |= tx_flags::MORE;
            }
            if k == 0 && offload {
                d.status |= tx_flags::OFFLOAD;
            }
            // Room was checked; a failure here is a corrupt index (the ring is cut off).
            self.tx_active.push(&d).map_err(|e| match e {
                PushError::Full => ClientError::Full,
                PushError::Queue(e) => e.into(),
            })?;
        }
        self.stats.sent += 1;
        Ok(ids)
    }

    /// Takes the next transmit descriptor the server gave back, if any, checked (one
    /// this client handed over, same id, offset and length, a defined status). The
    /// fixed-buffer helper keeps the buffer for the next frame.
    pub fn reclaim_tx(&mut self) -> Result<Option<TxReclaim>, ClientError> {
        let Some(d) = self.tx_free.pop()? else {
            return Ok(None);
        };
        let unknown = ClientError::UnknownBuffer {
            ring: "tx free",
            id: d.id,
            offset: d.offset,
        };
        let len = match self.tx_ids.get(d.id) {
            Some((o, len)) if o == d.offset && len == d.len => len,
            _ => return Err(unknown),
        };
        self.tx_ids.take(d.id, d.offset);
        if let Some(p) = self.pool.as_mut() {
            if let Some(i) = BufferSet::new(p.buffers).index(d.offset) {
                p.tx_free.insert(i);
            }
        }
        let status = TxStatus::from_wire(d.status).ok_or(ClientError::BadStatus {
            id: d.id,
            offset: d.offset,
            status: d.status,
        })?;
        self.stats.tx_status[status as usize] += 1;
        Ok(Some(TxReclaim {
            id: d.id,
            offset: d.offset,
            len,
            status,
        }))
    }

    /// Sends `frame` (Ethernet header included, no frame check sequence) with the
    /// fixed-buffer helper: copies it into a free transmit buffer (taking given-back
    /// ones first if none is free) and hands that to the server.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.send_with(frame.len(), |data, offset| data.write_bytes(offset, frame))
    }

    /// Sends a frame of `len` bytes that `fill` writes into this client's data region
    /// at the buffer offset it is given (`len` bytes from there are the frame; e.g. one
    /// copy from another region with [`SharedMemory::copy_from_memory`]). Takes a free
    /// transmit buffer of the fixed-buffer helper as [`Self::send`] does; a `fill`
    /// error keeps the buffer here.
    pub fn send_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&M, usize) -> Result<(), OutOfBounds>,
    ) -> Result<(), ClientError> {
        self.connected()?;
        if !(ETH_HEADER_LEN as usize..=MAX_FRAME_LEN as usize).contains(&len) {
            return Err(ClientError::BadLength(len));
        }
        while self.tx_buffers_free() == 0 {
            if self.reclaim_tx()?.is_none() {
                return Err(ClientError::NoTxBuffer);
            }
        }
        let Some(i) = self.pool.as_mut().and_then(|p| p.tx_free.pop_first()) else {
            return Err(ClientError::NoTxBuffer);
        };
        let offset = BufferSet::offset(i);
        let result = fill(&self.data, offset as usize)
            .map_err(ClientError::from)
            .and_then(|()| self.send_at(offset, len as u32));
        if result.is_err() {
            if let Some(p) = self.pool.as_mut() {
                p.tx_free.insert(i);
            }
        }
        result.map(|_| ())
    }

    /// Receives the next frame into `out` (at least [`crate::MAX_FRAME_LEN`] bytes to
    /// fit any frame), returning its length, and hands the buffer to the server again
    /// (fixed-buffer helper).
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Option<usize>, ClientError> {
        let room = out.len();
        let got = self.recv_with(|data, offset, len| {
            if len > room {
                return Err(ClientError::BufferTooSmall { len: len as u32 });
            }
            data.read_bytes(offset, &mut out[..len])?;
            Ok(len)
        })?;
        got.transpose()
    }

    /// Takes the next received frame, checked (a buffer this client handed over for
    /// receiving, a possible length), lets `take` read it (`take(data, offset, len)`:
    /// the frame is `len` bytes at `offset` of the data region, e.g. for one copy
    /// elsewhere with [`SharedMemory::copy_from_memory`]), then hands the buffer to
    /// the server again (fixed-buffer helper). `None` if no frame is waiting.
    pub fn recv_with<R>(&mut self, take: impl FnOnce(&M, usize, usize) -> R) -> Result<Option<R>, ClientError> {
        let mut take = Some(take);
        // Bounded: unused buffers are re-posted, at most the ring's worth.
        for _ in 0..=self.ring_capacity {
            let Some(r) = self.take_rx()? else {
                return Ok(None);
            };
            // The buffer goes back to the server only once `take` has read it.
            let got = match (r.outcome, take.take()) {
                (RxOutcome::Frame(len), Some(take)) => Some(Ok(take(&self.data, r.offset as usize, len as usize))),
                (RxOutcome::BadLength(len), _) => Some(Err(ClientError::BadFrameLength { offset: r.offset, len })),
                (RxOutcome::Unused, t) | (RxOutcome::Frame(_), t @ None) => {
                    take = t;
                    None
                }
            };
            if self.pool.is_some() {
                self.post_rx(r.offset, r.capacity)?;
            }
            if let Some(got) = got {
                return got.map(Some);
            }
        }
        Ok(None)
    }

    /// Takes the next receive buffer the server gave back, checked (an id this client
    /// handed over for receiving with the same offset, a defined status, a frame
    /// length within the buffer). The buffer is the caller's again (the fixed-buffer
    /// helper's [`Self::recv`] posts it again itself). `None` if none is waiting.
    pub fn take_rx(&mut self) -> Result<Option<RxReturn>, ClientError> {
        self.connected()?;
        let Some(d) = self.rx_active.pop()? else {
            return Ok(None);
        };
        let Some((offset, capacity)) = self.rx_ids.take(d.id, d.offset) else {
            return Err(ClientError::UnknownBuffer {
                ring: "rx active",
                id: d.id,
                offset: d.offset,
            });
        };
        let status = RxStatus::from_wire(d.status).ok_or(ClientError::BadStatus {
            id: d.id,
            offset: d.offset,
            status: d.status,
        })?;
        let outcome = match status {
            RxStatus::Unused => {
                self.stats.rx_unused += 1;
                RxOutcome::Unused
            }
            RxStatus::Received if (ETH_HEADER_LEN..=MAX_FRAME_LEN.min(capacity)).contains(&d.len) => {
                self.stats.received += 1;
                RxOutcome::Frame(d.len)
            }
            RxStatus::Received => RxOutcome::BadLength(d.len),
        };
        Ok(Some(RxReturn {
            id: d.id,
            offset,
            capacity,
            outcome,
        }))
    }

    /// Asks the server to give back every receive buffer it holds, unused (e.g. the
    /// memory they name is no longer this client's to lend). Until the server confirms
    /// ([`Self::recall_pending`]; by then every buffer it held is in the RX active
    /// ring, for [`Self::take_rx`]) no receive buffer is posted; the next
    /// [`Self::signal_needed`] says to notify the server.
    pub fn recall_rx(&mut self) -> Result<(), ClientError> {
        self.connected()?;
        self.recall = self.recall.wrapping_add(1);
        self.control.store_u32(RX_RECALL, self.recall, Ordering::Release)?;
        self.must_signal = true;
        Ok(())
    }

    /// Whether a recall is under way (the server has not confirmed it).
    pub fn recall_pending(&mut self) -> Result<bool, ClientError> {
        if self.info.is_none() {
            return Ok(false);
        }
        let done = self.control.load_u32(info_offsets::RX_RECALL_DONE, Ordering::Acquire)?;
        if done == self.recall {
            return Ok(false);
        }
        Ok(true)
    }

    /// Received frames waiting in the RX active ring (checked when taken).
    pub fn rx_waiting(&mut self) -> Result<u32, ClientError> {
        Ok(self.rx_active.available()?)
    }

    /// After a batch of sends or receives: whether to notify the server now.
    pub fn signal_needed(&mut self) -> Result<bool, ClientError> {
        let tx = self.tx_active.signal_needed()?;
        let rx = self.rx_free.signal_needed()?;
        let recall = core::mem::take(&mut self.must_signal);
        Ok(tx || rx || recall)
    }

    /// Before waiting: asks the server for a notification on its next received frame
    /// (and on its next given-back transmit descriptor when transmit descriptors are
    /// out); `false` if something arrived meanwhile (take it first).
    pub fn request_signal(&mut self) -> Result<bool, ClientError> {
        if !self.rx_active.request_signal()? {
            return Ok(false);
        }
        if self.pool.as_ref().is_none_or(|p| p.tx_free.is_empty()) && self.tx_ids.out > 0 {
            return Ok(self.tx_free.request_signal()?);
        }
        Ok(true)
    }

    /// Before waiting for the statuses of frames still out (with buffers of the
    /// fixed-buffer helper free, [`Self::request_signal`] does not ask for them, since
    /// that helper takes give-backs only when it runs out): asks for a notification on
    /// the next give-back; `false` if one is there already (take it first).
    pub fn request_tx_signal(&mut self) -> Result<bool, ClientError> {
        if self.tx_ids.out == 0 {
            return Ok(true);
        }
        Ok(self.tx_free.request_signal()?)
    }
}

const _: () = assert!(BUF_SIZE >= MAX_FRAME_LEN);
