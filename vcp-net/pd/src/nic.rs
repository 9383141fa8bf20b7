//! [`VirtioNic`]: the engine's [`Nic`] on a virtio-net device (virtio-mmio transport),
//! driven through `virtio-drivers`' transport and virtqueues. Each wire frame to send
//! is a descriptor chain: the virtio-net header and the engine's checked (or built)
//! header from the DMA region, then the payload's byte ranges **in place** in the
//! client's data region (zero copy). Received frames land in receive buffers of the DMA region; the engine copies
//! each once into a client's buffer and the buffer goes straight back to the device.
//! (`VirtIONetRaw` sends one contiguous buffer only, which would make the header
//! the client's bytes again or the payload a copy.)
#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use core::ptr::NonNull;

use bitflags::bitflags;
use sel4_microkit::SharedRegion;
use vcpos_vcp_net::engine::MAX_SEGMENT_PIECES;
use vcpos_vcp_net::offload::MAX_HEADER;
use vcpos_vcp_net::{Nic, NicError, TxRequest, MAX_CLIENTS};
use virtio_drivers::queue::VirtQueue;
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{InterruptStatus, Transport};
use virtio_drivers::Error;

use vcpos_vcp_hal::{carve, VcpHal};

bitflags! {
    /// The virtio-net feature bits vcp-net asks for (no offloads: frames are plain
    /// Ethernet both ways).
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Features: u64 {
        /// The device's MAC address is in its configuration space.
        const MAC = 1 << 5;
        /// Virtio 1.x (the 12-byte header); legacy devices use the 10-byte one.
        const VERSION_1 = 1 << 32;
    }
}

const QUEUE_RECEIVE: u16 = 0;
const QUEUE_TRANSMIT: u16 = 1;
/// Receive descriptors: room for a burst (QEMU's virtio-net holds frames back while
/// the receive queue is empty, and takes a notification per refill then).
const QUEUE_SIZE: usize = 128;
/// Transmit descriptors (QEMU's virtio-net takes up to 256): a segmented frame's
/// segments go out back to back.
const TX_QUEUE_SIZE: usize = 256;
/// A transmitted frame takes at least two descriptors (headers, payload).
const MAX_TX: usize = TX_QUEUE_SIZE / 2;
/// Receive buffer size: the virtio-net header and a 1514-byte frame fit.
const RX_BUF: usize = 2048;
/// Transmit header slot: the virtio-net header (10 or 12 bytes) and the engine's
/// header (up to `MAX_HEADER` bytes).
const TX_HDR: usize = 160;

const _: () = assert!(12 + MAX_HEADER <= TX_HDR);

#[derive(Clone, Copy)]
struct TxSlot {
    token: u16,
    /// Bytes of the engine's header.
    header: usize,
    /// The payload's ranges in the client's data region.
    payload: [NonNull<[u8]>; MAX_SEGMENT_PIECES],
    pieces: usize,
}

/// The virtio-net device.
pub struct VirtioNic {
    transport: MmioTransport<'static>,
    rx: VirtQueue<VcpHal, QUEUE_SIZE>,
    tx: VirtQueue<VcpHal, TX_QUEUE_SIZE>,
    /// Bytes of the virtio-net header (10 legacy, 12 version 1).
    hdr_len: usize,
    mac: [u8; 6],
    /// `QUEUE_SIZE` receive buffers of `RX_BUF` bytes in the DMA region.
    rx_bufs: NonNull<u8>,
    /// The token of each receive buffer while the device holds it.
    rx_tokens: [Option<u16>; QUEUE_SIZE],
    /// `MAX_TX` header slots of `TX_HDR` bytes in the DMA region.
    tx_hdrs: NonNull<u8>,
    /// On the heap (the slots are large; the PD's stack is not).
    tx_slots: Vec<Option<TxSlot>>,
    /// Header slots free (a stack).
    tx_free: Vec<usize>,
    /// The header slot of each token in flight (tokens are descriptor indices, below
    /// `TX_QUEUE_SIZE`).
    tx_by_token: Vec<Option<usize>>,
    data: [Option<SharedRegion>; MAX_CLIENTS],
    /// Receive buffers and frames given to the device since its last notification
    /// ([`Nic::flush`] notifies once per batch, if the device wants it).
    rx_unannounced: bool,
    tx_unannounced: bool,
}

/// Why the device could not be set up.
#[derive(Debug)]
pub enum InitError {
    /// The transport refused (bad magic, version, device id).
    Transport(MmioError),
    /// A virtqueue could not be set up.
    Queue(Error),
    /// The DMA region is too small.
    Dma,
}

impl core::fmt::Display for InitError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitError::Transport(e) => write!(f, "virtio-mmio transport: {e}"),
            InitError::Queue(e) => write!(f, "virtio-net virtqueue: {e}"),
            InitError::Dma => f.write_str("DMA region too small"),
        }
    }
}

impl VirtioNic {
    /// Sets up the virtio-net transport at `header` (its registers, `size` bytes) with
    /// `data` = each client's data region, and gives the device every receive buffer.
    ///
    /// # Safety
    /// `header` must be a virtio-mmio transport mapped into this PD for its life and
    /// used by nothing else; the HAL's region table must hold the DMA region and every
    /// region of `data`.
    pub unsafe fn new(
        header: NonNull<u8>,
        size: usize,
        data: [Option<SharedRegion>; MAX_CLIENTS],
    ) -> Result<VirtioNic, InitError> {
        // SAFETY: by the caller's contract.
        let mut transport =
            unsafe { MmioTransport::new(header.cast::<VirtIOHeader>(), size) }.map_err(InitError::Transport)?;
        let features = transport.begin_init(Features::MAC | Features::VERSION_1);
        let mut mac = [0u8; 6];
        if features.contains(Features::MAC) {
            for (i, b) in mac.iter_mut().enumerate() {
                *b = transport.read_config_space::<u8>(i).unwrap_or(0);
            }
        }
        let hdr_len = if features.contains(Features::VERSION_1) { 12 } else { 10 };
        let rx = VirtQueue::new(&mut transport, QUEUE_RECEIVE, false, false).map_err(InitError::Queue)?;
        let tx = VirtQueue::new(&mut transport, QUEUE_TRANSMIT, false, false).map_err(InitError::Queue)?;
        transport.finish_init();
        let (rx_bufs, _) = carve(QUEUE_SIZE * RX_BUF).ok_or(InitError::Dma)?;
        let (tx_hdrs, _) = carve(MAX_TX * TX_HDR).ok_or(InitError::Dma)?;
        let mut nic = VirtioNic {
            transport,
            rx,
            tx,
            hdr_len,
            mac,
            rx_bufs,
            rx_tokens: [None; QUEUE_SIZE],
            tx_hdrs,
            tx_slots: vec![None; MAX_TX],
            tx_free: (0..MAX_TX).rev().collect(),
            tx_by_token: vec![None; TX_QUEUE_SIZE],
            data,
            rx_unannounced: false,
            tx_unannounced: false,
        };
        for i in 0..QUEUE_SIZE {
            nic.post_rx(i).map_err(InitError::Queue)?;
        }
        nic.flush();
        Ok(nic)
    }

    /// The device's own MAC address (vcp-net's clients have their own; the device
    /// receives every frame, QEMU's virtio-net starting promiscuous).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Acknowledges the device's interrupt (before running the engine).
    pub fn ack_interrupt(&mut self) -> InterruptStatus {
        self.transport.ack_interrupt()
    }

    fn rx_buf(&self, i: usize) -> &'static mut [u8] {
        // SAFETY: buffer i lies inside the carved QUEUE_SIZE * RX_BUF bytes of the DMA
        // region, owned by this driver alone; callers use it only while the device
        // does not hold it (before post_rx, after pop_used), or hand it to the queue.
        unsafe { core::slice::from_raw_parts_mut(self.rx_bufs.as_ptr().add(i * RX_BUF), RX_BUF) }
    }

    /// Gives receive buffer `i` to the device.
    fn post_rx(&mut self, i: usize) -> Result<(), Error> {
        let buf = self.rx_buf(i);
        // SAFETY: the buffer is not accessed until pop_used returns its token.
        let token = unsafe { self.rx.add(&[], &mut [buf])? };
        self.rx_tokens[i] = Some(token);
        self.rx_unannounced = true;
        Ok(())
    }

    fn tx_hdr(&self, slot: usize, len: usize) -> &'static mut [u8] {
        // SAFETY: slot < MAX_TX and len <= TX_HDR: inside the carved header slots,
        // owned by this driver; a slot is written only while no frame uses it.
        unsafe { core::slice::from_raw_parts_mut(self.tx_hdrs.as_ptr().add(slot * TX_HDR), len) }
    }

    /// The slices of a frame's chain, as `add` got them.
    fn chain(&self, slot: usize, s: &TxSlot) -> ([&'static [u8]; 1 + MAX_SEGMENT_PIECES], usize) {
        let mut inputs: [&'static [u8]; 1 + MAX_SEGMENT_PIECES] = [&[]; 1 + MAX_SEGMENT_PIECES];
        inputs[0] = self.tx_hdr(slot, self.hdr_len + s.header);
        for (k, p) in s.payload[..s.pieces].iter().enumerate() {
            // SAFETY: the range lies in a client's data region (checked by
            // `SharedRegion::slice` when the frame was started); the slice is only
            // handed to the virtqueue, which gives its address to the device, and
            // never read by vcp-net (the client may be writing it).
            inputs[1 + k] = unsafe { p.as_ref() };
        }
        (inputs, 1 + s.pieces)
    }
}

impl Nic for VirtioNic {
    fn max_in_flight(&self) -> usize {
        MAX_TX
    }

    fn transmit(&mut self, req: &TxRequest) -> Result<u16, NicError> {
        let slot = *self.tx_free.last().ok_or(NicError::Full)?;
        let region = self
            .data
            .get(req.client)
            .and_then(Option::as_ref)
            .ok_or(NicError::Failed)?;
        let mut s = TxSlot {
            token: 0,
            header: req.header().len(),
            payload: [NonNull::from(&[][..]); MAX_SEGMENT_PIECES],
            pieces: 0,
        };
        for &(offset, len) in req.payload() {
            let (offset, len) = (offset as usize, len as usize);
            if len == 0 {
                continue;
            }
            region.slice(offset, len).map_err(|_| NicError::Failed)?;
            let start = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(region.addr() + offset))
                .ok_or(NicError::Failed)?;
            s.payload[s.pieces] = NonNull::slice_from_raw_parts(start, len);
            s.pieces += 1;
        }
        if s.header > MAX_HEADER {
            return Err(NicError::Failed);
        }
        let hdr = self.tx_hdr(slot, self.hdr_len + s.header);
        hdr[..self.hdr_len].fill(0);
        hdr[self.hdr_len..].copy_from_slice(req.header());
        let (inputs, n) = self.chain(slot, &s);
        // SAFETY: the header slot and the payload stay untouched by vcp-net until
        // pop_used returns this token (the engine holds the client's buffer until the
        // completion).
        let token = unsafe { self.tx.add(&inputs[..n], &mut []) }.map_err(|e| match e {
            Error::QueueFull => NicError::Full,
            _ => NicError::Failed,
        })?;
        self.tx_unannounced = true;
        s.token = token;
        self.tx_slots[slot] = Some(s);
        self.tx_free.pop();
        // A token is a descriptor index (below the queue size): always found.
        if let Some(t) = self.tx_by_token.get_mut(usize::from(token)) {
            *t = Some(slot);
        }
        Ok(token)
    }

    fn next_tx_completion(&mut self) -> Option<(u16, bool)> {
        let token = self.tx.peek_used()?;
        let slot = self.tx_by_token.get_mut(usize::from(token))?.take()?;
        let s = self.tx_slots[slot].filter(|s| s.token == token)?;
        let (inputs, n) = self.chain(slot, &s);
        // SAFETY: the same buffers `add` got for this token.
        let ok = unsafe { self.tx.pop_used(token, &inputs[..n], &mut []) }.is_ok();
        self.tx_slots[slot] = None;
        self.tx_free.push(slot);
        Some((token, ok))
    }

    fn flush(&mut self) {
        if core::mem::take(&mut self.rx_unannounced) && self.rx.should_notify() {
            self.transport.notify(QUEUE_RECEIVE);
        }
        if core::mem::take(&mut self.tx_unannounced) && self.tx.should_notify() {
            self.transport.notify(QUEUE_TRANSMIT);
        }
    }

    fn receive<R>(&mut self, deliver: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let token = self.rx.peek_used()?;
        let i = self.rx_tokens.iter().position(|&t| t == Some(token))?;
        let buf = self.rx_buf(i);
        // SAFETY: the same buffer `add` got for this token.
        let used = unsafe { self.rx.pop_used(token, &[], &mut [buf]) };
        self.rx_tokens[i] = None;
        // The length is the device's word: clamp it to the buffer.
        let r = used.ok().map(|len| {
            let end = (len as usize).min(RX_BUF);
            let start = self.hdr_len.min(end);
            deliver(&self.rx_buf(i)[start..end])
        });
        // Back to the device, unless the virtqueue refused to give it back (it may
        // still hold it): then it is lost and the others carry on.
        if r.is_some() {
            let _ = self.post_rx(i);
        }
        r
    }
}
