//! The board's PL011, as the VMM uses it: the guest console's output goes out on it
//! and the keyboard comes in on it (receive interrupt, SPI 1 = INTID 33).
//!
//! The kernel prints on the same UART with polled writes, so its messages and the
//! guest's interleave line by line on one serial console.

use sel4_microkit::SharedRegion;

const DR: usize = 0x00;
const FR: usize = 0x18;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;

/// The PL011 whose register page is mapped (device memory) as a memory region.
pub struct Uart {
    regs: SharedRegion,
}

impl Uart {
    /// The UART whose 4 KiB register page is `regs`.
    pub fn new(regs: SharedRegion) -> Uart {
        Uart { regs }
    }

    fn read(&self, reg: usize) -> u32 {
        // Every offset here is an aligned register inside the page; a region too
        // small for the registers reads as 0 (no byte, TX FIFO not full).
        self.regs.read_u32(reg).unwrap_or(0)
    }

    fn write(&self, reg: usize, value: u32) {
        let _ = self.regs.write_u32(reg, value);
    }

    /// Turns on the receive (and receive-timeout) interrupt.
    pub fn enable_rx_interrupt(&self) {
        self.write(ICR, INT_RX | INT_RT);
        self.write(IMSC, self.read(IMSC) | INT_RX | INT_RT);
    }

    /// Writes bytes, waiting while the transmit FIFO is full; `\n` becomes `\r\n`.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            if b == b'\n' {
                self.put(b'\r');
            }
            self.put(b);
        }
    }

    fn put(&self, b: u8) {
        while self.read(FR) & FR_TXFF != 0 {}
        self.write(DR, b as u32);
    }

    /// The next received byte, if any.
    pub fn read_byte(&self) -> Option<u8> {
        (self.read(FR) & FR_RXFE == 0).then(|| self.read(DR) as u8)
    }

    /// Clears the receive interrupts (before draining the FIFO, so nothing that
    /// arrives during the drain is missed).
    pub fn clear_rx_interrupt(&self) {
        self.write(ICR, INT_RX | INT_RT);
    }
}
