//! Helpers shared by the test PDs, so that the PDs themselves need no `unsafe`.
//!
//! - [`shared_words!`]: a builder-patched memory region as atomic words ([`Words`]);
//! - [`write_to_unmapped`]: fault on purpose with a write to [`UNMAPPED_ADDR`];
//! - [`fail`] / [`ensure!`]: print `TEST FAIL: <test>: <why>` and stop;
//! - [`median`] / [`ticks_to_ns`]: benchmark statistics;
//! - [`pingpong`]: the values the ping and pong PDs exchange;
//! - [`sysreg`]: EL0 system-register accesses the isolation tests make;
//! - [`blk`]: the disk patterns of the vcp-blk tests.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use core::fmt;
use core::sync::atomic::AtomicU64;

use sel4_microkit::SharedRegion;

#[doc(hidden)]
pub use sel4_microkit as microkit;

/// An address no test system maps, so any access to it faults.
pub const UNMAPPED_ADDR: usize = 0xdead_0000;

/// The memory region `$symbol` (patched by `setvar_vaddr="$symbol"`, its size by
/// `setvar_size="$size"`) as `$n` atomic words ([`Words`]). Invoke once per symbol (it
/// defines the symbols). Panics, naming the region, if it is smaller than `$n` words.
#[macro_export]
macro_rules! shared_words {
    ($symbol:ident, size = $size:ident, n = $n:expr) => {
        $crate::Words::new($crate::microkit::shared_region!($symbol, size = $size), $n)
    };
}

/// A memory region shared with another PD, used as `u64` words accessed only
/// atomically (through the runtime's [`SharedRegion`]).
pub struct Words {
    region: SharedRegion,
}

impl Words {
    /// The first `n` words of `region`; panics (naming the region) if it is too small.
    pub fn new(region: SharedRegion, n: usize) -> Words {
        let bytes = n.saturating_mul(8);
        let name = region.name();
        let region = region
            .slice(0, bytes)
            .unwrap_or_else(|e| panic!("{name}: need {n} words: {e}"));
        Words { region }
    }

    /// Word `i`; panics (naming the region and offset) past the last word.
    pub fn get(&self, i: usize) -> &AtomicU64 {
        let off = i.saturating_mul(8);
        self.region.atomic_u64(off).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Writes to [`UNMAPPED_ADDR`], which makes the kernel stop this PD with a VM fault
/// (reported by the kernel for a root PD, delivered to the parent for a child). If
/// the PD is ever resumed at the next instruction, this returns.
#[allow(unsafe_code)]
pub fn write_to_unmapped() {
    let p = core::ptr::with_exposed_provenance_mut::<u64>(UNMAPPED_ADDR);
    // SAFETY: no test system maps UNMAPPED_ADDR (it is below every map and above every
    // program image used by tests/systems), so no memory of this PD can change: the
    // store faults in the MMU before it happens.
    unsafe { p.write_volatile(0x0bad_c0de) };
}

/// The address of this PD's `_start` (the ELF entry point), to restart a child at.
pub fn entry_point() -> usize {
    extern "C" {
        fn _start();
    }
    _start as unsafe extern "C" fn() as usize
}

/// A failed test check (the `TEST FAIL` line has been printed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestFailed;

impl fmt::Display for TestFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("test failed (see the TEST FAIL line)")
    }
}

/// Prints `TEST FAIL: <test>: <why>` and returns the error to stop the PD with.
pub fn fail(test: &str, why: fmt::Arguments<'_>) -> TestFailed {
    sel4_microkit::debug_println!("TEST FAIL: {test}: {why}");
    TestFailed
}

/// `ensure!(test, condition, "why {}", x)`: returns `Err(TestFailed)` after printing a
/// `TEST FAIL` line if `condition` is false.
#[macro_export]
macro_rules! ensure {
    ($test:expr, $cond:expr, $($why:tt)*) => {
        if !$cond {
            return Err($crate::fail($test, ::core::format_args!($($why)*)));
        }
    };
}

/// The median of `samples` (sorts them). Zero for no samples.
pub fn median(samples: &mut [u64]) -> u64 {
    if samples.is_empty() {
        return 0;
    }
    samples.sort_unstable();
    samples[samples.len() / 2]
}

/// Converts counter ticks at `freq_hz` to nanoseconds (0 if the frequency is 0).
pub fn ticks_to_ns(ticks: u64, freq_hz: u64) -> u64 {
    if freq_hz == 0 {
        return 0;
    }
    (u128::from(ticks) * 1_000_000_000 / u128::from(freq_hz)) as u64
}

/// EL0 system-register accesses for the isolation tests: the thread-ID register (which
/// must be private to each PD) and PMU registers (which must fault).
#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[allow(unsafe_code)]
pub mod sysreg {
    use core::arch::asm;

    /// Reads `TPIDR_EL0`.
    pub fn tpidr_el0() -> u64 {
        let v: u64;
        // SAFETY: reads this PD's thread-ID register; no memory is touched.
        unsafe { asm!("mrs {}, tpidr_el0", out(reg) v, options(nomem, nostack)) };
        v
    }

    /// Writes `TPIDR_EL0`.
    pub fn set_tpidr_el0(v: u64) {
        // SAFETY: the runtime does not use TPIDR_EL0 (no thread-local storage), so
        // changing it affects nothing but later reads of it.
        unsafe { asm!("msr tpidr_el0, {}", in(reg) v, options(nomem, nostack)) };
    }

    /// Reads the PMU cycle counter `PMCCNTR_EL0`: the kernel must stop the PD with a
    /// fault instead.
    pub fn pmccntr_el0() -> u64 {
        let v: u64;
        // SAFETY: a read of a counter register (or a trap the kernel turns into a fault).
        unsafe { asm!("isb", "mrs {}, pmccntr_el0", out(reg) v, options(nomem, nostack)) };
        v
    }

    /// Writes `PMUSERENR_EL0` (EL0 access enables of the PMU): undefined at EL0, so the
    /// kernel must stop the PD with a fault.
    pub fn set_pmuserenr_el0(v: u64) {
        // SAFETY: a register write that either traps (the expected outcome) or changes
        // only PMU access permissions; no memory is touched.
        unsafe { asm!("msr pmuserenr_el0, {}", "isb", in(reg) v, options(nomem, nostack)) };
    }
}

/// What the ping and pong PDs exchange (both sides compute it, so a message register
/// or shared word the kernel lost or corrupted shows up as a mismatch).
pub mod pingpong {
    /// Rounds of notify + PPC ping runs.
    pub const ROUNDS: u64 = 16;
    /// Label of ping's PPC; pong replies with `REQUEST_LABEL + 1`.
    pub const REQUEST_LABEL: u64 = 0x70;
    /// Message registers in the request.
    pub const REQUEST_MRS: usize = 4;
    /// Message registers in the reply.
    pub const REPLY_MRS: usize = 3;

    /// The value ping writes to shared word 0 in `round`.
    pub fn request_value(round: u64) -> u64 {
        0x1000 + round * 7
    }

    /// The value pong writes to shared word 1 after reading `request`.
    pub fn reply_value(request: u64) -> u64 {
        request.rotate_left(13) ^ 0x00c0_ffee
    }

    /// The PPC arguments ping sends in `round`.
    pub fn request_mrs(round: u64) -> [u64; REQUEST_MRS] {
        [round, request_value(round), !request_value(round), 0x5555_0000 + round]
    }

    /// The reply pong computes from the request's message registers.
    pub fn reply_mrs(args: &[u64; REQUEST_MRS]) -> [u64; REPLY_MRS] {
        [
            args.iter().fold(0u64, |a, &x| a.wrapping_add(x)),
            args.iter().fold(0u64, |a, &x| a ^ x),
            args[0].wrapping_mul(3),
        ]
    }
}

/// The disk contents the vcp-blk tests write and check (the QEMU test harness
/// prepares the disk image with the same functions and checks it afterwards).
pub mod blk {
    /// 32-bit words in a 512-byte block.
    pub const WORDS: usize = 128;
    /// Blocks each test client works on in its window.
    pub const TEST_BLOCKS: u64 = 128;
    /// Rounds of write + read-back of the read-write client.
    pub const ROUNDS: u32 = 4;

    /// Word `w` of block `block` (relative to its window) of the read-only client's
    /// window, as the harness writes it.
    pub fn ro_word(block: u64, w: usize) -> u32 {
        0x5a00_0000 | ((block as u32 & 0xffff) << 8) | (w as u32 & 0xff)
    }

    /// Word `w` of block `block` the read-write client writes in `round`.
    pub fn rw_word(round: u32, block: u64, w: usize) -> u32 {
        0xa500_0000 ^ (round << 20) ^ ((block as u32 & 0xfff) << 8) ^ (w as u32 & 0xff)
    }

    /// A byte of the disk outside every client's window (the harness checks these
    /// are unchanged).
    pub const FILLER: u8 = 0xee;
}

#[cfg(test)]
mod tests {
    #[test]
    fn blk_patterns_differ() {
        use super::blk;
        assert_ne!(blk::ro_word(1, 0), blk::ro_word(0, 1));
        assert_ne!(blk::rw_word(0, 1, 0), blk::rw_word(1, 1, 0));
        assert_ne!(blk::rw_word(3, 5, 7), blk::ro_word(5, 7));
    }

    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&mut [5, 1, 3]), 3);
        assert_eq!(median(&mut [4, 1, 3, 2]), 3);
        assert_eq!(median(&mut []), 0);
    }

    #[test]
    fn ticks_convert_to_ns() {
        assert_eq!(ticks_to_ns(625, 62_500_000), 10_000);
        assert_eq!(ticks_to_ns(1, 1_000_000_000), 1);
        assert_eq!(ticks_to_ns(u64::MAX, 1_000_000_000), u64::MAX);
        assert_eq!(ticks_to_ns(5, 0), 0);
    }

    #[test]
    fn pingpong_values_depend_on_every_input() {
        let a = pingpong::request_mrs(3);
        let mut b = a;
        b[2] ^= 1;
        assert_ne!(pingpong::reply_mrs(&a), pingpong::reply_mrs(&b));
        assert_ne!(pingpong::reply_value(1), pingpong::reply_value(2));
        assert_eq!(pingpong::reply_mrs(&[1, 2, 3, 4]), [10, 4, 3]);
    }

    #[test]
    fn words_are_atomic_views_bounded_by_n() {
        let region = SharedRegion::new_host("shared", 0x1000);
        let words = Words::new(region.clone(), 2);
        words.get(1).store(0x1234, core::sync::atomic::Ordering::SeqCst);
        assert_eq!(region.read_u64(8).unwrap(), 0x1234);
        assert!(std::panic::catch_unwind(|| Words::new(SharedRegion::new_host("tiny", 8), 2)).is_err());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            words.get(2);
        }));
        assert!(r.is_err(), "word 2 of 2 must be refused");
    }

    #[test]
    fn failure_is_printed() {
        sel4_microkit::sys::fake::reset();
        let e = fail("demo", format_args!("expected {} got {}", 1, 2));
        assert_eq!(e, TestFailed);
        assert_eq!(
            sel4_microkit::sys::fake::take_output(),
            "TEST FAIL: demo: expected 1 got 2\n"
        );
    }
}
