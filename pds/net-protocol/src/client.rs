//! The client's half of the network protocol: reads the info page, hands the first
//! half of its buffers to the server for receiving and keeps the second half for
//! sending, sends and receives frames, and checks every buffer the server gives back.

use core::fmt;

use vcpos_queue::{Consumer, LayoutError, OutOfBounds, Producer, PushError, QueueError, SharedMemory};
use vcpos_vcp_common::control::{check_size, generation};

use crate::layout::{
    buffers_in, BufDesc, ControlLayout, Info, InfoError, TxStatus, BUF_SIZE, ETH_HEADER_LEN, MAX_FRAME_LEN,
};
use crate::ownership::BufferSet;

/// A transmitted buffer given back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxReclaim {
    /// The buffer's offset.
    pub offset: u64,
    /// What happened to the frame.
    pub status: TxStatus,
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
    /// No room in the TX active ring.
    Full,
    /// Every transmit buffer is with the server.
    NoTxBuffer,
    /// A frame to send is shorter than the Ethernet header or longer than the maximum.
    BadLength(usize),
    /// The caller's buffer is too small for the received frame (the frame is dropped).
    BufferTooSmall {
        /// Frame length.
        len: u32,
    },
    /// The server gave back a buffer it was not given on that ring pair (unknown,
    /// given back already, or given for the other direction).
    UnknownBuffer {
        /// `"tx free"` or `"rx active"`.
        ring: &'static str,
        /// The offset it named.
        offset: u64,
    },
    /// A TX give-back with a status the protocol does not define.
    BadStatus {
        /// The buffer.
        offset: u64,
        /// The status value.
        status: u32,
    },
    /// A received frame with an impossible length (the buffer is handed out again).
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
            ClientError::Full => f.write_str("TX active ring full"),
            ClientError::NoTxBuffer => f.write_str("no transmit buffer free"),
            ClientError::BadLength(len) => write!(f, "frame of {len} bytes cannot be sent"),
            ClientError::BufferTooSmall { len } => write!(f, "received frame of {len} bytes does not fit"),
            ClientError::UnknownBuffer { ring, offset } => {
                write!(
                    f,
                    "server gave back buffer {offset:#x} on {ring}, which it was not given"
                )
            }
            ClientError::BadStatus { offset, status } => {
                write!(f, "server gave back buffer {offset:#x} with unknown status {status}")
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
    pub tx_status: [u64; 4],
    /// Frames received.
    pub received: u64,
}

/// The client's half.
pub struct Client<M> {
    control: M,
    data: M,
    tx_active: Producer<M, BufDesc>,
    tx_free: Consumer<M, BufDesc>,
    rx_free: Producer<M, BufDesc>,
    rx_active: Consumer<M, BufDesc>,
    ring_capacity: u32,
    buffers: u32,
    info: Option<Info>,
    /// Transmit buffers with the client, free to fill.
    tx_pool: BufferSet,
    /// Transmit buffers with the server.
    tx_given: BufferSet,
    /// Receive buffers with the server.
    rx_given: BufferSet,
    stats: ClientStats,
}

impl<M: SharedMemory + Clone> Client<M> {
    /// The client's half over control region `control` with rings of `ring_capacity`
    /// slots (this side's own configuration) and data region `data` (a multiple of
    /// [`BUF_SIZE`], 2..=[`crate::MAX_BUFFERS`] buffers, no more than the ring capacity).
    pub fn new(control: M, data: M, ring_capacity: u32) -> Result<Self, LayoutError> {
        let layout = ControlLayout::new(ring_capacity)?;
        let buffers = match buffers_in(data.size() as u64) {
            Some(n) if n <= ring_capacity => n,
            _ => return Err(LayoutError::Capacity(ring_capacity)),
        };
        check_size(&control, layout.size())?;
        Ok(Client {
            tx_active: Producer::new(control.clone(), layout.tx_active)?,
            tx_free: Consumer::new(control.clone(), layout.tx_free)?,
            rx_free: Producer::new(control.clone(), layout.rx_free)?,
            rx_active: Consumer::new(control.clone(), layout.rx_active)?,
            control,
            data,
            ring_capacity,
            buffers,
            info: None,
            tx_pool: BufferSet::new(buffers),
            tx_given: BufferSet::new(buffers),
            rx_given: BufferSet::new(buffers),
            stats: ClientStats::default(),
        })
    }

    /// Reads the info page; on the first success hands the receive buffers (the first
    /// half of the data region) to the server.
    pub fn connect(&mut self) -> Result<Info, ClientError> {
        if let Some(info) = self.info {
            return Ok(info);
        }
        let info = Info::read(&self.control, self.ring_capacity, self.buffers)
            .map_err(ClientError::Info)?
            .ok_or(ClientError::NotReady)?;
        let rx = self.buffers / 2;
        for i in 0..rx {
            self.post_rx(i)?;
        }
        for i in rx..self.buffers {
            self.tx_pool.insert(i);
        }
        self.info = Some(info);
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

    /// Transmit buffers free on this side now.
    pub fn tx_buffers_free(&self) -> u32 {
        self.tx_pool.len()
    }

    fn post_rx(&mut self, i: u32) -> Result<(), ClientError> {
        match self.rx_free.push(&BufDesc::new(BufferSet::offset(i), 0)) {
            Ok(()) => {
                self.rx_given.insert(i);
                Ok(())
            }
            Err(PushError::Full) => Err(ClientError::Full),
            Err(PushError::Queue(e)) => Err(e.into()),
        }
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

    /// Takes the next transmit buffer the server gave back, if any, checked (a buffer
    /// this client handed over for sending, a defined status).
    pub fn reclaim_tx(&mut self) -> Result<Option<TxReclaim>, ClientError> {
        let Some(d) = self.tx_free.pop()? else {
            return Ok(None);
        };
        let unknown = ClientError::UnknownBuffer {
            ring: "tx free",
            offset: d.offset,
        };
        let i = self.tx_given.index(d.offset).ok_or(unknown)?;
        if !self.tx_given.remove(i) {
            return Err(unknown);
        }
        self.tx_pool.insert(i);
        let status = TxStatus::from_wire(d.status).ok_or(ClientError::BadStatus {
            offset: d.offset,
            status: d.status,
        })?;
        self.stats.tx_status[status as usize] += 1;
        Ok(Some(TxReclaim {
            offset: d.offset,
            status,
        }))
    }

    /// Sends `frame` (Ethernet header included, no frame check sequence): copies it into
    /// a free transmit buffer (taking back given-back ones first if none is free) and
    /// hands that to the server.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.send_with(frame.len(), |data, offset| data.write_bytes(offset, frame))
    }

    /// Sends a frame of `len` bytes that `fill` writes into this client's data region
    /// at the buffer offset it is given (`len` bytes from there are the frame; e.g. one
    /// copy from another region with [`SharedMemory::copy_from_memory`]). Takes a free
    /// transmit buffer as [`Self::send`] does; a `fill` error keeps the buffer here.
    pub fn send_with(
        &mut self,
        len: usize,
        fill: impl FnOnce(&M, usize) -> Result<(), OutOfBounds>,
    ) -> Result<(), ClientError> {
        self.connected()?;
        if !(ETH_HEADER_LEN as usize..=MAX_FRAME_LEN as usize).contains(&len) {
            return Err(ClientError::BadLength(len));
        }
        while self.tx_pool.is_empty() {
            if self.reclaim_tx()?.is_none() {
                return Err(ClientError::NoTxBuffer);
            }
        }
        let Some(i) = self.tx_pool.pop_first() else {
            return Err(ClientError::NoTxBuffer);
        };
        let offset = BufferSet::offset(i);
        if let Err(e) = fill(&self.data, offset as usize) {
            self.tx_pool.insert(i);
            return Err(e.into());
        }
        match self.tx_active.push(&BufDesc::new(offset, len as u32)) {
            Ok(()) => {
                self.tx_given.insert(i);
                self.stats.sent += 1;
                Ok(())
            }
            Err(e) => {
                self.tx_pool.insert(i);
                Err(match e {
                    PushError::Full => ClientError::Full,
                    PushError::Queue(e) => e.into(),
                })
            }
        }
    }

    /// Receives the next frame into `out` (at least [`crate::MAX_FRAME_LEN`] bytes to
    /// fit any frame), returning its length, and hands the buffer to the server again.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Option<usize>, ClientError> {
        let room = out.len();
        let got = self.take_rx(|data, offset, len| {
            if len > room {
                return Err(ClientError::BufferTooSmall { len: len as u32 });
            }
            data.read_bytes(offset, &mut out[..len])?;
            Ok(len)
        })?;
        let got = got.transpose()?;
        if got.is_some() {
            self.stats.received += 1;
        }
        Ok(got)
    }

    /// Takes the next received frame, checked (a buffer this client handed over for
    /// receiving, a possible length), lets `take` read it (`take(data, offset, len)`:
    /// the frame is `len` bytes at `offset` of the data region, e.g. for one copy
    /// elsewhere with [`SharedMemory::copy_from_memory`]), then hands the buffer to
    /// the server again. `None` if no frame is waiting.
    pub fn recv_with<R>(&mut self, take: impl FnOnce(&M, usize, usize) -> R) -> Result<Option<R>, ClientError> {
        let got = self.take_rx(take)?;
        if got.is_some() {
            self.stats.received += 1;
        }
        Ok(got)
    }

    /// [`Self::recv_with`] without counting the frame.
    fn take_rx<R>(&mut self, take: impl FnOnce(&M, usize, usize) -> R) -> Result<Option<R>, ClientError> {
        self.connected()?;
        let Some(d) = self.rx_active.pop()? else {
            return Ok(None);
        };
        let unknown = ClientError::UnknownBuffer {
            ring: "rx active",
            offset: d.offset,
        };
        let i = self.rx_given.index(d.offset).ok_or(unknown)?;
        if !self.rx_given.remove(i) {
            return Err(unknown);
        }
        let result = if !(ETH_HEADER_LEN..=MAX_FRAME_LEN).contains(&d.len) {
            Err(ClientError::BadFrameLength {
                offset: d.offset,
                len: d.len,
            })
        } else {
            Ok(Some(take(&self.data, d.offset as usize, d.len as usize)))
        };
        self.post_rx(i)?;
        result
    }

    /// Received frames waiting in the RX active ring (checked when taken).
    pub fn rx_waiting(&mut self) -> Result<u32, ClientError> {
        Ok(self.rx_active.available()?)
    }

    /// After a batch of sends or receives: whether to notify the server now.
    pub fn signal_needed(&mut self) -> Result<bool, ClientError> {
        let tx = self.tx_active.signal_needed()?;
        let rx = self.rx_free.signal_needed()?;
        Ok(tx || rx)
    }

    /// Before waiting: asks the server for a notification on its next received frame
    /// (and on its next given-back transmit buffer when none is free here); `false` if
    /// something arrived meanwhile (take it first).
    pub fn request_signal(&mut self) -> Result<bool, ClientError> {
        if !self.rx_active.request_signal()? {
            return Ok(false);
        }
        if self.tx_pool.is_empty() {
            return Ok(self.tx_free.request_signal()?);
        }
        Ok(true)
    }
}

const _: () = assert!(BUF_SIZE >= MAX_FRAME_LEN);
