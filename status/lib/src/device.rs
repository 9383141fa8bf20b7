//! A smoltcp [`Device`] over the network protocol's client half: frames received are
//! copied out of the RX buffer (which goes straight back to the server), frames sent
//! are built in a local buffer and copied into a free TX buffer (two copies per frame,
//! the client half's `recv`/`send`; fine for a status page).
//!
//! Errors of the client half (a server that gives back a buffer it was not given, a
//! changed generation, a cut-off ring) never panic: the frame is dropped and the error
//! counted and kept ([`DeviceStats`]) for the PD to report.

use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use vcpos_net_protocol::{Client, ClientError, TxStatus, MAX_FRAME_LEN};
use vcpos_queue::SharedMemory;

/// What the device saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames handed to the server.
    pub tx_frames: u64,
    /// Frames the server gave back with a status other than sent.
    pub tx_failed: u64,
    /// Frames dropped because no TX buffer was free.
    pub tx_no_buffer: u64,
    /// Errors of the client half.
    pub errors: u64,
    /// Bytes copied between the protocol's buffers and the device's own (each frame
    /// once each way).
    pub bytes_copied: u64,
}

/// The network protocol's client half as a smoltcp Ethernet device.
pub struct ProtocolDevice<M> {
    client: Client<M>,
    rx: [u8; MAX_FRAME_LEN as usize],
    tx: [u8; MAX_FRAME_LEN as usize],
    stats: DeviceStats,
    last_error: Option<ClientError>,
}

impl<M: SharedMemory + Clone> ProtocolDevice<M> {
    /// A device over `client` (connected: [`Client::connect`] done).
    pub fn new(client: Client<M>) -> ProtocolDevice<M> {
        ProtocolDevice {
            client,
            rx: [0; MAX_FRAME_LEN as usize],
            tx: [0; MAX_FRAME_LEN as usize],
            stats: DeviceStats::default(),
            last_error: None,
        }
    }

    /// The client half (for signalling: `signal_needed`, `request_signal`).
    pub fn client(&mut self) -> &mut Client<M> {
        &mut self.client
    }

    /// What the device saw so far.
    pub fn stats(&self) -> DeviceStats {
        self.stats
    }

    /// The last client-half error, taken (so each is reported once).
    pub fn take_error(&mut self) -> Option<ClientError> {
        self.last_error.take()
    }

    /// Takes back given-back TX buffers until one is free; `false` if none is.
    fn tx_ready(client: &mut Client<M>, stats: &mut DeviceStats, err: &mut Option<ClientError>) -> bool {
        while client.tx_buffers_free() == 0 {
            match client.reclaim_tx() {
                Ok(Some(r)) => {
                    if r.status != TxStatus::Sent {
                        stats.tx_failed += 1;
                    }
                }
                Ok(None) => return false,
                Err(e) => {
                    stats.errors += 1;
                    *err = Some(e);
                    return false;
                }
            }
        }
        true
    }
}

/// A received frame, lent to smoltcp.
pub struct RxToken<'a> {
    frame: &'a [u8],
}

impl phy::RxToken for RxToken<'_> {
    fn consume<R, F>(self, f: F) -> R
    where
        F: FnOnce(&[u8]) -> R,
    {
        f(self.frame)
    }
}

/// Room for one frame to send.
pub struct TxToken<'a, M> {
    client: &'a mut Client<M>,
    buf: &'a mut [u8; MAX_FRAME_LEN as usize],
    stats: &'a mut DeviceStats,
    err: &'a mut Option<ClientError>,
}

impl<M: SharedMemory + Clone> phy::TxToken for TxToken<'_, M> {
    fn consume<R, F>(self, len: usize, f: F) -> R
    where
        F: FnOnce(&mut [u8]) -> R,
    {
        // smoltcp never asks for more than the MTU it was given; a longer frame is
        // built in a truncated buffer and refused by the client half.
        let n = len.min(self.buf.len());
        let r = f(&mut self.buf[..n]);
        match self.client.send(&self.buf[..n]) {
            Ok(()) => {
                self.stats.tx_frames += 1;
                self.stats.bytes_copied += n as u64;
            }
            Err(ClientError::NoTxBuffer) => self.stats.tx_no_buffer += 1,
            Err(e) => {
                self.stats.errors += 1;
                *self.err = Some(e);
            }
        }
        r
    }
}

impl<M: SharedMemory + Clone> Device for ProtocolDevice<M> {
    type RxToken<'a>
        = RxToken<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, M>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(RxToken<'_>, TxToken<'_, M>)> {
        let Self {
            client,
            rx,
            tx,
            stats,
            last_error,
        } = self;
        let n = match client.recv(rx) {
            Ok(Some(n)) => n,
            Ok(None) => return None,
            Err(e) => {
                stats.errors += 1;
                *last_error = Some(e);
                return None;
            }
        };
        stats.rx_frames += 1;
        stats.bytes_copied += n as u64;
        Some((
            RxToken { frame: &rx[..n] },
            TxToken {
                client,
                buf: tx,
                stats,
                err: last_error,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<TxToken<'_, M>> {
        let Self {
            client,
            tx,
            stats,
            last_error,
            ..
        } = self;
        if !Self::tx_ready(client, stats, last_error) {
            return None;
        }
        Some(TxToken {
            client,
            buf: tx,
            stats,
            err: last_error,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        // smoltcp's Ethernet MTU counts the 14-byte header: 1514.
        caps.max_transmission_unit = MAX_FRAME_LEN as usize;
        caps
    }
}
