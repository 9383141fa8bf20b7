//! The board's PL011, as the VMM uses it: the guest console's output goes out on it
//! and the keyboard comes in on it (receive interrupt, SPI 1 = INTID 33).
//!
//! The kernel prints on the same UART with polled writes, so its messages and the
//! guest's interleave line by line on one serial console.

const DR: usize = 0x00;
const FR: usize = 0x18;
const IMSC: usize = 0x38;
const ICR: usize = 0x44;
const FR_RXFE: u32 = 1 << 4;
const FR_TXFF: u32 = 1 << 5;
const INT_RX: u32 = 1 << 4;
const INT_RT: u32 = 1 << 6;

/// The PL011 mapped (device memory) at `base`.
pub struct Uart {
    base: *mut u32,
}

impl Uart {
    /// The UART whose registers are mapped at `base`.
    ///
    /// # Safety
    ///
    /// `base` must map the PL011's 4 KiB register page as device memory in this PD.
    pub unsafe fn new(base: *mut u32) -> Uart {
        Uart { base }
    }

    fn read(&self, reg: usize) -> u32 {
        // SAFETY: `reg` is one of this module's register offsets inside the mapped
        // page (`new`'s contract); a volatile device read.
        unsafe { self.base.byte_add(reg).read_volatile() }
    }

    fn write(&self, reg: usize, value: u32) {
        // SAFETY: as for `read`.
        unsafe { self.base.byte_add(reg).write_volatile(value) }
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
