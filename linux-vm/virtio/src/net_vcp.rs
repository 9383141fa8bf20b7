//! A [`NetBackend`] over the network protocol's client half: the guest's network
//! device served by the network VCP (`vcp-net`).
//!
//! The protocol names buffers by offset in the client's data region: fixed
//! [`BUF_SIZE`]-byte buffers at buffer-aligned offsets, at most
//! [`vcpos_net_protocol::MAX_BUFFERS`] of them (and no more than a ring has slots). A
//! guest frame sits anywhere in guest RAM (Linux's socket buffers, not on a 2 KiB
//! boundary), and a guest receive buffer likewise, so guest RAM cannot be the data
//! region and the VCP cannot name guest buffers: each frame is **copied once** in
//! the VMM.
//!
//! - **Transmit**: the frame's guest-RAM pieces are copied, region to region
//!   ([`SharedMemory::copy_from_memory`], no intermediate buffer), into a free
//!   transmit buffer, which goes to the VCP; the guest's chain completes at once
//!   (its memory is no longer read). With no transmit buffer free the device is told
//!   `Busy` and offers the frame again after the VCP gives buffers back.
//! - **Receive**: a frame the VCP delivered (it copied it once from the NIC's
//!   buffer) is copied once from its receive buffer into the guest buffer the device
//!   lent, and the receive buffer goes straight back to the VCP. Frames wait in the
//!   VCP's RX active ring (bounded by the client's receive buffers; the VCP drops
//!   what does not fit) until the guest posts buffers.
//! - **Notifications**: [`NetVcpBackend::signal_needed`] after a batch (notify the
//!   VCP), [`NetVcpBackend::request_signal`] before waiting (the ring protocol's
//!   double check).
//!
//! Everything the VCP writes is checked by the client half; the first protocol error
//! (a corrupt index, a buffer given back that was not handed over, a restarted VCP)
//! takes the link down for good and is kept for the VMM to report.

use alloc::collections::VecDeque;

use vcpos_net_protocol::{Client, ClientError, BUF_SIZE};
use vcpos_queue::{LayoutError, OutOfBounds, SharedMemory};

use crate::block::{BlockStatus, DataSegment, RequestId, SubmitError};
use crate::net::{NetBackend, NetCompletion, NetInfo};

/// Frames the device keeps in flight (each completes as soon as it is copied).
const TX_DEPTH: u16 = 16;
/// Most guest-RAM pieces of one frame.
const TX_SEGMENTS_MAX: u16 = 64;

/// Counters of the backend (bytes copied are exact: each frame once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetVcpStats {
    /// Frames handed to the VCP.
    pub tx_frames: u64,
    /// Bytes copied from guest RAM into transmit buffers (each frame once).
    pub tx_bytes_copied: u64,
    /// Times the device was told `Busy` (no transmit buffer free).
    pub tx_busy: u64,
    /// Frames refused (link down, or a guest range outside guest RAM).
    pub tx_refused: u64,
    /// Transmit buffers given back, by `TxStatus` value (0 sent, 1 bad length, 2
    /// spoofed, 3 device error).
    pub tx_status: [u64; 4],
    /// Frames copied into guest buffers.
    pub rx_frames: u64,
    /// Bytes copied from receive buffers into guest RAM (each frame once).
    pub rx_bytes_copied: u64,
    /// Frames dropped because the guest had no buffer posted.
    pub rx_dropped_no_guest_buffer: u64,
    /// Frames the VCP delivered with an impossible length (dropped).
    pub rx_bad_frames: u64,
}

/// The network device's backend over the protocol's client half: control region,
/// data region and guest RAM, all memory of type `M`.
pub struct NetVcpBackend<M> {
    client: Client<M>,
    ram: M,
    mac: Option<[u8; 6]>,
    /// Frames in the RX active ring when last looked (never more than are there:
    /// only this side takes them).
    rx_ready: u32,
    done: VecDeque<NetCompletion>,
    error: Option<ClientError>,
    error_reported: bool,
    stats: NetVcpStats,
}

impl<M: SharedMemory + Clone> NetVcpBackend<M> {
    /// A backend over control region `control` (rings of `ring_capacity` slots),
    /// data region `data` and guest RAM `ram` (segment offsets are from its start).
    pub fn new(control: M, data: M, ram: M, ring_capacity: u32) -> Result<Self, LayoutError> {
        Ok(NetVcpBackend {
            client: Client::new(control, data, ring_capacity)?,
            ram,
            mac: None,
            rx_ready: 0,
            done: VecDeque::new(),
            error: None,
            error_reported: false,
            stats: NetVcpStats::default(),
        })
    }

    /// Connects if not yet connected (reads the info page: MAC, buffer count); true
    /// once connected. A VCP that has not published yet is not an error.
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
    /// next given-back transmit buffer when none is free); false if something arrived
    /// meanwhile (poll the device again first).
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
        self.rx_ready = 0;
    }

    /// Takes back given-back transmit buffers (counting their statuses) and looks
    /// how many received frames wait.
    fn refresh(&mut self) {
        if !self.up() {
            return;
        }
        loop {
            match self.client.reclaim_tx() {
                Ok(Some(r)) => self.stats.tx_status[r.status as usize] += 1,
                Ok(None) => break,
                Err(e) => return self.fail(e),
            }
        }
        match self.client.rx_waiting() {
            Ok(n) => self.rx_ready = n,
            Err(e) => self.fail(e),
        }
    }

    /// Copies the next received frame into `buffer`; its length, or 0 if there was
    /// none or it could not be delivered (the buffer then goes back unused).
    fn receive_into(&mut self, buffer: &[DataSegment]) -> u32 {
        let ram = &self.ram;
        let copied = self.client.recv_with(|data, offset, len| {
            let mut done = 0;
            for s in buffer {
                if done == len {
                    break;
                }
                let n = (len - done).min(s.len as usize);
                let at = usize::try_from(s.offset).map_err(|_| OutOfBounds {
                    offset: usize::MAX,
                    len: n,
                    size: ram.size(),
                })?;
                ram.copy_from_memory(at, data, offset + done, n)?;
                done += n;
            }
            if done < len {
                // The device lends at least a maximal frame's room; this is a bug.
                return Err(OutOfBounds {
                    offset: 0,
                    len,
                    size: done,
                });
            }
            Ok(len)
        });
        match copied {
            Ok(Some(Ok(len))) => {
                self.stats.rx_frames += 1;
                self.stats.rx_bytes_copied += len as u64;
                len as u32
            }
            Ok(Some(Err(_))) => {
                self.stats.rx_bad_frames += 1;
                0
            }
            Ok(None) => 0,
            Err(ClientError::BadFrameLength { .. }) => {
                self.stats.rx_bad_frames += 1;
                0
            }
            Err(e) => {
                self.fail(e);
                0
            }
        }
    }
}

impl<M: SharedMemory + Clone> NetBackend for NetVcpBackend<M> {
    fn info(&self) -> NetInfo {
        NetInfo {
            mac: self.mac.unwrap_or_default(),
            link_up: self.up(),
            tx_depth: TX_DEPTH,
            tx_segments_max: TX_SEGMENTS_MAX,
        }
    }

    fn transmit(&mut self, id: RequestId, frame: &[DataSegment]) -> Result<(), SubmitError> {
        if !self.up() {
            self.stats.tx_refused += 1;
            return Err(SubmitError::Refused(BlockStatus::IoError));
        }
        let len: usize = frame.iter().map(|s| s.len as usize).sum();
        let ram = &self.ram;
        let sent = self.client.send_with(len, |data, offset| {
            let mut at = offset;
            for s in frame {
                let from = usize::try_from(s.offset).map_err(|_| OutOfBounds {
                    offset: usize::MAX,
                    len: s.len as usize,
                    size: ram.size(),
                })?;
                data.copy_from_memory(at, ram, from, s.len as usize)?;
                at += s.len as usize;
            }
            Ok(())
        });
        match sent {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.tx_bytes_copied += len as u64;
                self.done.push_back(NetCompletion::Sent(id));
                Ok(())
            }
            Err(ClientError::NoTxBuffer | ClientError::Full) => {
                self.stats.tx_busy += 1;
                Err(SubmitError::Busy)
            }
            Err(ClientError::BadLength(_) | ClientError::Data(_)) => {
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

    fn rx_waiting(&self) -> usize {
        if self.up() {
            self.rx_ready as usize
        } else {
            0
        }
    }

    fn rx_buffer(&mut self, id: RequestId, buffer: &[DataSegment]) {
        let len = self.receive_into(buffer);
        self.rx_ready = self.rx_ready.saturating_sub(1);
        self.done.push_back(NetCompletion::Received { id, len });
    }

    fn rx_no_buffer(&mut self) {
        self.rx_ready = self.rx_ready.saturating_sub(1);
        match self.client.recv_with(|_, _, _| ()) {
            Ok(Some(())) => self.stats.rx_dropped_no_guest_buffer += 1,
            Ok(None) => {}
            Err(ClientError::BadFrameLength { .. }) => self.stats.rx_bad_frames += 1,
            Err(e) => self.fail(e),
        }
    }

    fn poll(&mut self) -> Option<NetCompletion> {
        if self.done.is_empty() {
            self.refresh();
        }
        self.done.pop_front()
    }

    /// Nothing of the old driver's is held: transmitted frames were copied and
    /// completed at once, received frames wait in the VCP's ring, and completions
    /// still queued carry the old generation (the device drops them).
    fn reset(&mut self) {
        self.done.clear();
    }
}

const _: () = assert!(BUF_SIZE >= crate::net::MAX_FRAME_LEN);
