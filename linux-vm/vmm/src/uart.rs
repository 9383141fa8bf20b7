//! The board's PL011, as the VMM uses it: the guest console's output goes out on it
//! and the keyboard comes in on it (receive interrupt, SPI 1 = INTID 33).
//!
//! The kernel prints on the same UART with polled writes, so its messages and the
//! guest's interleave line by line on one serial console. Output waits a bounded time
//! for a full transmit FIFO ([`TxQueue`]); the rest stays queued, and the transmit
//! interrupt (same IRQ) tells the VMM when to go on.

use sel4_microkit::SharedRegion;
use vcpos_vmm_devices::tx_queue::{TxPort, TxQueue, DEFAULT_POLLS_PER_BYTE};

const DR: usize = 0x00;
const FR: usize = 0x18;
const IMSC: usize = 0x38;
const MIS: usize = 0x40;
const ICR: usize = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;

/// Guest output bytes kept while the UART is full (beyond: dropped and reported).
pub const TX_QUEUE_CAPACITY: usize = 64 * 1024;

/// The PL011's registers.
struct Regs(SharedRegion);

impl Regs {
    fn read(&self, reg: usize) -> u32 {
        // Every offset here is an aligned register inside the page; a region too
        // small for the registers reads as 0 (no byte, TX FIFO not full).
        self.0.read_u32(reg).unwrap_or(0)
    }

    fn write(&self, reg: usize, value: u32) {
        let _ = self.0.write_u32(reg, value);
    }
}

impl TxPort for Regs {
    fn tx_full(&mut self) -> bool {
        self.read(FR) & FR_TXFF != 0
    }

    fn tx_put(&mut self, byte: u8) {
        self.write(DR, u32::from(byte));
    }
}

/// The PL011 whose register page is mapped (device memory) as a memory region, with
/// the output waiting for it.
pub struct Uart {
    regs: Regs,
    tx: TxQueue,
}

impl Uart {
    /// The UART whose 4 KiB register page is `regs`.
    pub fn new(regs: SharedRegion) -> Uart {
        Uart {
            regs: Regs(regs),
            tx: TxQueue::new(TX_QUEUE_CAPACITY),
        }
    }

    /// Turns on the receive (and receive-timeout) interrupt.
    pub fn enable_rx_interrupt(&self) {
        self.regs.write(ICR, INT_RX | INT_RT);
        self.regs.write(IMSC, self.regs.read(IMSC) | INT_RX | INT_RT);
    }

    /// Queues bytes (`\n` becomes `\r\n`) and writes what the UART takes now.
    pub fn write_bytes(&mut self, bytes: &[u8]) {
        self.tx.push(bytes);
        self.flush();
    }

    /// Writes queued output, waiting a bounded time on a full FIFO; asks for the
    /// transmit interrupt while output is left.
    pub fn flush(&mut self) {
        if self.tx.pending() != 0 {
            self.tx.drain(&mut self.regs, DEFAULT_POLLS_PER_BYTE);
        }
        let imsc = self.regs.read(IMSC);
        let want = if self.tx.pending() != 0 {
            imsc | INT_TX
        } else {
            imsc & !INT_TX
        };
        if want != imsc {
            self.regs.write(IMSC, want);
        }
    }

    /// Bytes of output the queue can still take.
    pub fn room(&self) -> usize {
        self.tx.room()
    }

    /// Whether the queue is empty.
    pub fn idle(&self) -> bool {
        self.tx.pending() == 0
    }

    /// Output bytes dropped (queue full) since the last call, if any.
    pub fn take_dropped(&mut self) -> Option<u64> {
        self.tx.take_dropped()
    }

    /// Handles a transmit interrupt, if one is pending: clears it and writes on.
    pub fn transmit_interrupt(&mut self) {
        if self.regs.read(MIS) & INT_TX != 0 {
            self.regs.write(ICR, INT_TX);
            self.flush();
        }
    }

    /// The next received byte, if any.
    pub fn read_byte(&self) -> Option<u8> {
        (self.regs.read(FR) & FR_RXFE == 0).then(|| self.regs.read(DR) as u8)
    }

    /// Clears the receive interrupts (before draining the FIFO, so nothing that
    /// arrives during the drain is missed).
    pub fn clear_rx_interrupt(&self) {
        self.regs.write(ICR, INT_RX | INT_RT);
    }
}
