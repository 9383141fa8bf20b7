//! PL011 UART output (polled; the console is for kernel and debug messages).

use super::{board, mmio};

const DR: u64 = 0x00;
const FR: u64 = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Writes bytes, turning `\n` into `\r\n` for terminals.
pub fn write_bytes(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            put(b'\r');
        }
        put(b);
    }
}

/// Polls of a full transmit FIFO before a character is dropped: a PD may map this
/// UART and disable it, and the kernel must not spin forever with interrupts masked.
const MAX_FULL_POLLS: u32 = 1_000_000;

fn put(b: u8) {
    let mut polls = 0;
    while mmio::read32(board::UART_PL011 + FR) & FR_TXFF != 0 {
        polls += 1;
        if polls == MAX_FULL_POLLS {
            return;
        }
    }
    mmio::write32(board::UART_PL011 + DR, b as u32);
}

/// `core::fmt::Write` over the UART (usable anywhere, even in a panic).
pub struct Uart;

impl core::fmt::Write for Uart {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_bytes(s.as_bytes());
        Ok(())
    }
}
