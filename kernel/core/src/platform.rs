//! What the kernel logic needs from the machine.

/// Hardware services the kernel logic uses. The aarch64 kernel implements this over
/// its linear map of physical memory, the GIC, the generic timer and the UART.
pub trait Platform {
    /// Writes bytes to the console.
    fn console_write(&mut self, bytes: &[u8]);
    /// Reads the 64-bit word at physical address `paddr` (8-byte aligned, inside a
    /// frame the kernel owns, e.g. an IPC buffer).
    fn read_word(&self, paddr: u64) -> u64;
    /// Writes the 64-bit word at physical address `paddr`.
    fn write_word(&mut self, paddr: u64, value: u64);
    /// Reads one byte at physical address `paddr`.
    fn read_byte(&self, paddr: u64) -> u8;
    /// Current counter value in ticks.
    fn now(&self) -> u64;
    /// Counter frequency in Hz.
    fn counter_hz(&self) -> u64;
    /// Stops IRQ `irq` from being delivered (until [`Platform::irq_unmask`]).
    fn irq_mask(&mut self, irq: u32);
    /// Lets IRQ `irq` be delivered again.
    fn irq_unmask(&mut self, irq: u32);
}

/// `core::fmt::Write` adapter over [`Platform::console_write`].
pub struct Console<'a, P: Platform>(pub &'a mut P);

impl<P: Platform> core::fmt::Write for Console<'_, P> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.console_write(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! A fake machine for host tests: sparse memory, a console buffer, a clock.
    use std::collections::{BTreeSet, HashMap};

    /// Fake [`super::Platform`].
    #[derive(Default)]
    pub struct FakePlatform {
        /// Memory words by physical address.
        pub mem: HashMap<u64, u64>,
        /// Everything written to the console.
        pub console: String,
        /// Counter value.
        pub time: u64,
        /// Masked IRQs.
        pub masked: BTreeSet<u32>,
        /// Counter ticks each console byte takes (the clock advances while the
        /// kernel prints).
        pub console_ticks_per_byte: u64,
    }

    impl FakePlatform {
        /// A new fake machine.
        pub fn new() -> FakePlatform {
            FakePlatform::default()
        }
    }

    impl super::Platform for FakePlatform {
        fn console_write(&mut self, bytes: &[u8]) {
            self.console.push_str(&String::from_utf8_lossy(bytes));
            self.time += bytes.len() as u64 * self.console_ticks_per_byte;
        }
        fn read_word(&self, paddr: u64) -> u64 {
            assert_eq!(paddr % 8, 0);
            *self.mem.get(&paddr).unwrap_or(&0)
        }
        fn write_word(&mut self, paddr: u64, value: u64) {
            assert_eq!(paddr % 8, 0);
            self.mem.insert(paddr, value);
        }
        fn read_byte(&self, paddr: u64) -> u8 {
            (self.read_word(paddr & !7) >> ((paddr & 7) * 8)) as u8
        }
        fn now(&self) -> u64 {
            self.time
        }
        fn counter_hz(&self) -> u64 {
            62_500_000
        }
        fn irq_mask(&mut self, irq: u32) {
            self.masked.insert(irq);
        }
        fn irq_unmask(&mut self, irq: u32) {
            self.masked.remove(&irq);
        }
    }
}
