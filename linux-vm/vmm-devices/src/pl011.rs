//! A minimal emulated PL011 UART: output only, for Linux's early console and console.
//!
//! Writes to the data register produce output bytes; the flag register always says
//! "transmit FIFO empty, receive FIFO empty, not busy", so both Linux's `earlycon=pl011`
//! and the amba-pl011 driver (which then writes synchronously and never waits for a
//! transmit interrupt) send every byte at once. The control registers keep what the
//! guest writes so read-modify-write sequences behave; interrupt status reads 0 and no
//! interrupt is ever raised. There is no input. Peripheral and PrimeCell ID registers
//! hold a real PL011's values so the AMBA bus matches the driver.

/// Register offsets.
pub mod reg {
    /// Data register.
    pub const DR: u64 = 0x000;
    /// Receive status / error clear.
    pub const RSR_ECR: u64 = 0x004;
    /// Flag register.
    pub const FR: u64 = 0x018;
    /// IrDA low-power counter.
    pub const ILPR: u64 = 0x020;
    /// Integer baud rate divisor.
    pub const IBRD: u64 = 0x024;
    /// Fractional baud rate divisor.
    pub const FBRD: u64 = 0x028;
    /// Line control.
    pub const LCR_H: u64 = 0x02c;
    /// Control.
    pub const CR: u64 = 0x030;
    /// Interrupt FIFO level select.
    pub const IFLS: u64 = 0x034;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x038;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x03c;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x040;
    /// Interrupt clear.
    pub const ICR: u64 = 0x044;
    /// DMA control.
    pub const DMACR: u64 = 0x048;
    /// First of the ID registers (UARTPeriphID0).
    pub const PERIPH_ID0: u64 = 0xfe0;
}

/// FR.RXFE: receive FIFO empty.
pub const FR_RXFE: u32 = 1 << 4;
/// FR.TXFE: transmit FIFO empty.
pub const FR_TXFE: u32 = 1 << 7;

/// UARTPeriphID0..3 and UARTPCellID0..3 (0xFE0..=0xFFC): part 0x011, designer 0x41
/// (Arm), revision 1, and the PrimeCell id 0xB105F00D.
const ID_REGS: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// The UART's state (only what reads back).
#[derive(Clone, Debug, Default)]
pub struct Pl011 {
    ibrd: u16,
    fbrd: u8,
    lcr_h: u8,
    cr: u16,
    ifls: u8,
    imsc: u16,
    dmacr: u8,
}

impl Pl011 {
    /// A UART in its reset state (CR = 0x300: TX and RX enabled, UART disabled;
    /// IFLS = 0x12: half-full FIFO levels).
    pub fn new() -> Self {
        Pl011 {
            cr: 0x300,
            ifls: 0x12,
            ..Default::default()
        }
    }

    /// A guest read of `size` bytes at `offset`. Accesses of 1, 2 or 4 bytes within a
    /// register read the corresponding bytes of it; anything else reads 0.
    pub fn read(&self, offset: u64, size: u8) -> u64 {
        if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(u64::from(size)) || offset >= 0x1000 {
            return 0;
        }
        let shift = (offset % 4) * 8;
        let word = self.read_word(offset & !3);
        let mask = (1u64 << (u32::from(size) * 8)) - 1;
        (u64::from(word) >> shift) & mask
    }

    fn read_word(&self, offset: u64) -> u32 {
        match offset {
            reg::FR => FR_TXFE | FR_RXFE,
            reg::IBRD => self.ibrd.into(),
            reg::FBRD => self.fbrd.into(),
            reg::LCR_H => self.lcr_h.into(),
            reg::CR => self.cr.into(),
            reg::IFLS => self.ifls.into(),
            reg::IMSC => self.imsc.into(),
            reg::DMACR => self.dmacr.into(),
            0xfe0..=0xffc => ID_REGS[((offset - reg::PERIPH_ID0) / 4) as usize].into(),
            // DR (nothing received), RSR, ILPR, RIS, MIS and reserved offsets.
            _ => 0,
        }
    }

    /// A guest write of the low `size` bytes of `value` at `offset`. Returns the byte
    /// to print when this is a write to the data register.
    pub fn write(&mut self, offset: u64, size: u8, value: u64) -> Option<u8> {
        if !matches!(size, 1 | 2 | 4) || !offset.is_multiple_of(u64::from(size)) {
            return None;
        }
        // Writes to the upper bytes of a register (offset not word-aligned) change
        // nothing; every field the guest programs is in the low bytes.
        let v = value as u32;
        match offset {
            reg::DR => return Some(v as u8),
            reg::IBRD => self.ibrd = v as u16,
            reg::FBRD => self.fbrd = (v & 0x3f) as u8,
            reg::LCR_H => self.lcr_h = v as u8,
            reg::CR => self.cr = v as u16,
            reg::IFLS => self.ifls = (v & 0x3f) as u8,
            reg::IMSC => self.imsc = (v & 0x7ff) as u16,
            reg::DMACR => self.dmacr = (v & 0x7) as u8,
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlycon_putc_sequence() {
        // Linux's pl011 earlycon: wait while TXFF, write DR (byte or word), wait
        // while BUSY.
        let mut u = Pl011::new();
        let mut out = Vec::new();
        for &c in b"Booting Linux\n" {
            assert_eq!(u.read(reg::FR, 4) & (1 << 5), 0, "TXFF clear");
            out.extend(u.write(reg::DR, 1, u64::from(c)));
            assert_eq!(u.read(reg::FR, 4) & (1 << 3), 0, "BUSY clear");
        }
        assert_eq!(out, b"Booting Linux\n");
        // 32-bit accesses (earlycon=pl011,mmio32,...) work the same; upper bits dropped.
        assert_eq!(u.write(reg::DR, 4, 0xffff_ff41), Some(b'A'));
        assert_eq!(u.write(reg::DR, 2, 0x142), Some(b'B'));
    }

    #[test]
    fn flag_register_says_empty() {
        let u = Pl011::new();
        assert_eq!(u.read(reg::FR, 4), 0x90);
        assert_eq!(u.read(reg::FR, 2), 0x90);
        assert_eq!(u.read(reg::FR, 1), 0x90);
        assert_eq!(u.read(reg::FR + 1, 1), 0);
        assert_eq!(u.read(reg::DR, 4), 0, "no input");
    }

    #[test]
    fn amba_id_registers() {
        let u = Pl011::new();
        let id = |base: u64| (0..4).fold(0u32, |acc, i| acc | (u.read(base + i * 4, 4) as u32) << (8 * i));
        // The AMBA bus reads these words' low bytes; Linux matches 0x00041011 & 0x000fffff.
        assert_eq!(id(0xfe0) & 0x000f_ffff, 0x0004_1011);
        assert_eq!(id(0xff0), 0xb105_f00d);
    }

    #[test]
    fn control_registers_read_back() {
        let mut u = Pl011::new();
        assert_eq!(u.read(reg::CR, 2), 0x300);
        assert_eq!(u.write(reg::CR, 2, 0x301), None);
        assert_eq!(u.read(reg::CR, 4), 0x301);
        u.write(reg::IMSC, 4, 0xffff_ffff);
        assert_eq!(u.read(reg::IMSC, 4), 0x7ff);
        u.write(reg::LCR_H, 2, 0x70);
        u.write(reg::IBRD, 2, 13);
        u.write(reg::FBRD, 2, 0xff);
        assert_eq!(
            (u.read(reg::LCR_H, 4), u.read(reg::IBRD, 4), u.read(reg::FBRD, 4)),
            (0x70, 13, 0x3f)
        );
        // No interrupt is ever reported.
        assert_eq!(u.read(reg::RIS, 4), 0);
        assert_eq!(u.read(reg::MIS, 4), 0);
        // Write-only / read-only registers ignore writes.
        assert_eq!(u.write(reg::ICR, 4, 0x7ff), None);
        assert_eq!(u.write(reg::FR, 4, 0), None);
        assert_eq!(u.read(reg::FR, 4), 0x90);
    }

    #[test]
    fn bad_accesses_are_harmless() {
        let mut u = Pl011::new();
        assert_eq!(u.write(reg::DR, 8, 0x41), None, "64-bit write is not a DR write");
        assert_eq!(u.write(reg::DR + 1, 1, 0x41), None, "upper byte of DR");
        assert_eq!(u.write(reg::DR + 2, 4, 0x41), None, "misaligned");
        assert_eq!(u.read(reg::FR, 8), 0);
        assert_eq!(u.read(reg::FR + 2, 4), 0);
        let mut x: u64 = 0xdead_beef_cafe_f00d;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let off = if x & 1 == 0 { x >> 52 } else { x >> 1 };
            let size = (x >> 40) as u8 % 10;
            let v = u.read(off, size);
            if matches!(size, 1 | 2) {
                assert!(v < 1 << (size * 8));
            }
            let _ = u.write(off, size, x);
        }
        assert_eq!(u.read(reg::FR, 4), 0x90);
        assert_eq!(u.read(0xff0, 4), 0x0d);
    }
}
