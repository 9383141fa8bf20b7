//! The virtio console device (virtio 1.2 §5.3), single port: transmitq bytes go to an
//! output buffer the VMM drains, keyboard input from the VMM goes into the driver's
//! receiveq buffers.
//!
//! Offered features: VIRTIO_CONSOLE_F_EMERG_WRITE always, VIRTIO_CONSOLE_F_SIZE if the
//! console was created with a size. VIRTIO_CONSOLE_F_MULTIPORT is never offered, so
//! there are exactly two queues: receiveq0 = 0 and transmitq0 = 1 (§5.3.2).
//!
//! Both buffers are bounded so a guest cannot make the VMM allocate without limit:
//! input keeps the oldest [`INPUT_CAPACITY`] bytes (newer ones are dropped and
//! counted); transmit chains are taken only while the output buffer has room for
//! [`TX_CHAIN_LIMIT`] more bytes, so a VMM that drains slowly applies back-pressure
//! (the chains wait in the queue until it drains and calls `poll`), and bytes of one
//! chain beyond that limit are dropped and counted.

use crate::error::GuestError;
use crate::memory::GuestMemory;
use crate::mmio::{copy_config, Device, Interrupts};
use crate::queue::Queue;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Device ID of a console (virtio 1.2 §5.3.1).
pub const CONSOLE_DEVICE_ID: u32 = 3;
/// VIRTIO_CONSOLE_F_SIZE: `cols`/`rows` in the config space are valid (§5.3.3).
pub const VIRTIO_CONSOLE_F_SIZE: u64 = 1 << 0;
/// VIRTIO_CONSOLE_F_MULTIPORT (never offered).
pub const VIRTIO_CONSOLE_F_MULTIPORT: u64 = 1 << 1;
/// VIRTIO_CONSOLE_F_EMERG_WRITE: the driver may write a character to `emerg_wr`.
pub const VIRTIO_CONSOLE_F_EMERG_WRITE: u64 = 1 << 2;
/// receiveq0 (device to driver).
pub const RECEIVEQ: u16 = 0;
/// transmitq0 (driver to device).
pub const TRANSMITQ: u16 = 1;
/// QueueNumMax of both queues.
pub const CONSOLE_QUEUE_SIZE: u16 = 256;
/// Bytes of input held until the driver posts receive buffers.
pub const INPUT_CAPACITY: usize = 4096;
/// Bytes of output held until the VMM drains them.
pub const OUTPUT_CAPACITY: usize = 128 * 1024;
/// Most bytes taken from one transmit chain.
pub const TX_CHAIN_LIMIT: usize = 64 * 1024;

/// Configuration space layout (virtio 1.2 §5.3.4): `cols` u16 at 0, `rows` u16 at 2,
/// `max_nr_ports` u32 at 4, `emerg_wr` u32 at 8.
const CONFIG_LEN: usize = 12;
const EMERG_WR_OFFSET: usize = 8;

/// A single-port virtio console.
#[derive(Debug, Clone, Default)]
pub struct Console {
    size: Option<(u16, u16)>,
    input: VecDeque<u8>,
    output: Vec<u8>,
    dropped_input: u64,
    dropped_output: u64,
}

impl Console {
    /// A console without a size (VIRTIO_CONSOLE_F_SIZE not offered).
    pub fn new() -> Self {
        Self::default()
    }

    /// A console offering VIRTIO_CONSOLE_F_SIZE with `cols` x `rows`.
    pub fn with_size(cols: u16, rows: u16) -> Self {
        Self {
            size: Some((cols, rows)),
            ..Self::default()
        }
    }

    /// Changes the size. Returns false (and does nothing) if the console has no size
    /// feature. After `true`, the VMM calls `MmioTransport::config_changed` to tell the
    /// driver (virtio 1.2 §5.3.4: a change of cols/rows is a config change).
    pub fn set_size(&mut self, cols: u16, rows: u16) -> bool {
        match &mut self.size {
            Some(size) => {
                *size = (cols, rows);
                true
            }
            None => false,
        }
    }

    /// Queues keyboard bytes for the guest; returns how many fit (the rest are
    /// dropped: the oldest input is kept). The VMM then calls `MmioTransport::poll`.
    pub fn push_input(&mut self, bytes: &[u8]) -> usize {
        let room = INPUT_CAPACITY - self.input.len();
        let n = bytes.len().min(room);
        self.input.extend(&bytes[..n]);
        self.dropped_input += (bytes.len() - n) as u64;
        n
    }

    /// Bytes of input waiting for receive buffers.
    pub fn pending_input(&self) -> usize {
        self.input.len()
    }

    /// Takes everything the guest transmitted so far. If transmission had stalled on
    /// a full buffer, the VMM calls `MmioTransport::poll` afterwards to resume it.
    pub fn take_output(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.output)
    }

    /// Bytes of output not yet taken.
    pub fn pending_output(&self) -> usize {
        self.output.len()
    }

    /// Input bytes dropped because the input buffer was full.
    pub fn dropped_input(&self) -> u64 {
        self.dropped_input
    }

    /// Output bytes dropped (transmit chains longer than [`TX_CHAIN_LIMIT`], or
    /// emergency writes while the output buffer was full).
    pub fn dropped_output(&self) -> u64 {
        self.dropped_output
    }

    /// Takes transmit chains while there is room (virtio 1.2 §5.3.6: the device
    /// reads them and returns them with used length 0).
    fn transmit(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        while self.output.len() + TX_CHAIN_LIMIT <= OUTPUT_CAPACITY {
            let Some(chain) = q.pop(mem)? else { break };
            let total = chain.readable_len();
            let n = total.min(TX_CHAIN_LIMIT as u64) as usize;
            let old = self.output.len();
            self.output.resize(old + n, 0);
            if let Err(e) = chain.reader().read(&*mem, &mut self.output[old..]) {
                self.output.truncate(old);
                return Err(e);
            }
            self.dropped_output += total - n as u64;
            if q.push_used(mem, chain.head(), 0)? {
                irq |= Interrupts::USED_BUFFER;
            }
        }
        Ok(irq)
    }

    /// Fills posted receive buffers with pending input (virtio 1.2 §5.3.6); the
    /// used length is the number of bytes written.
    fn receive(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        while !self.input.is_empty() {
            let Some(chain) = q.pop(mem)? else { break };
            let mut writer = chain.writer();
            let (front, back) = self.input.as_slices();
            if writer.write(mem, front)? == front.len() {
                writer.write(mem, back)?;
            }
            let written = writer.used_len();
            self.input.drain(..written as usize);
            if q.push_used(mem, chain.head(), written)? {
                irq |= Interrupts::USED_BUFFER;
            }
        }
        Ok(irq)
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let (cols, rows) = self.size.unwrap_or((0, 0));
        let mut c = [0u8; CONFIG_LEN];
        c[0..2].copy_from_slice(&cols.to_le_bytes());
        c[2..4].copy_from_slice(&rows.to_le_bytes());
        // max_nr_ports (4..8) stays 0: no MULTIPORT; emerg_wr (8..12) reads as 0.
        c
    }
}

impl Device for Console {
    fn device_id(&self) -> u32 {
        CONSOLE_DEVICE_ID
    }

    fn device_features(&self) -> u64 {
        let size = if self.size.is_some() { VIRTIO_CONSOLE_F_SIZE } else { 0 };
        size | VIRTIO_CONSOLE_F_EMERG_WRITE
    }

    fn num_queues(&self) -> usize {
        2
    }

    fn queue_max_size(&self, _index: usize) -> u16 {
        CONSOLE_QUEUE_SIZE
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        copy_config(&self.config_bytes(), offset, data);
    }

    /// Only `emerg_wr` is writable: a write starting at it emits its first byte
    /// (virtio 1.2 §5.3.4). Writes elsewhere are ignored.
    fn write_config(&mut self, offset: usize, data: &[u8]) {
        if offset != EMERG_WR_OFFSET {
            return;
        }
        if let Some(&c) = data.first() {
            if self.output.len() < OUTPUT_CAPACITY {
                self.output.push(c);
            } else {
                self.dropped_output += 1;
            }
        }
    }

    fn notify(
        &mut self,
        queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<Interrupts, GuestError> {
        let Some(q) = queues.get_mut(usize::from(queue)) else {
            return Ok(Interrupts::empty());
        };
        match queue {
            RECEIVEQ => self.receive(q, mem),
            TRANSMITQ => self.transmit(q, mem),
            _ => Ok(Interrupts::empty()),
        }
    }

    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<Interrupts, GuestError> {
        let mut irq = Interrupts::empty();
        if let Some(q) = queues.get_mut(usize::from(TRANSMITQ)) {
            irq |= self.transmit(q, mem)?;
        }
        if let Some(q) = queues.get_mut(usize::from(RECEIVEQ)) {
            irq |= self.receive(q, mem)?;
        }
        Ok(irq)
    }

    /// Nothing of the console's state belongs to the driver's session: pending input
    /// and undrained output survive a device reset.
    fn reset(&mut self) {}
}
