//! Helpers shared by the test PDs, so that the PDs themselves need no `unsafe`.
//!
//! - [`shared_words!`]: a builder-patched memory region as `&'static [AtomicU64]`;
//! - [`write_to_unmapped`]: fault on purpose with a write to [`UNMAPPED_ADDR`];
//! - [`fail`] / [`ensure!`]: print `TEST FAIL: <test>: <why>` and stop;
//! - [`median`] / [`ticks_to_ns`]: benchmark statistics;
//! - [`pingpong`]: the values the ping and pong PDs exchange.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU64;

#[doc(hidden)]
pub use sel4_microkit as microkit;

/// An address no test system maps, so any access to it faults.
pub const UNMAPPED_ADDR: usize = 0xdead_0000;

/// The memory region `$symbol` (patched by `setvar_vaddr="$symbol"`) as `$n` atomic
/// words. Invoke once per symbol (it defines the symbol). The system file must map at
/// least `$n * 8` bytes read-write there.
#[macro_export]
macro_rules! shared_words {
    ($symbol:ident, n = $n:expr) => {{
        let region = $crate::microkit::memory_region_symbol!($symbol: *mut [u64], n = $n);
        // SAFETY: the symbol holds the address where the builder mapped the region
        // (non-null, checked by memory_region_symbol!); the system file maps at least
        // `$n` words there read-write for the PD's whole life.
        unsafe {
            $crate::words_from_region(region)
        }
    }};
}

/// Views a mapped region as atomic words.
///
/// # Safety
/// `region` must be page-aligned memory mapped read-write into this PD for the rest of
/// its life, and only ever accessed as atomic words (here or by other PDs).
#[allow(unsafe_code)]
pub unsafe fn words_from_region(region: NonNull<[u64]>) -> &'static [AtomicU64] {
    let len = region.len();
    // SAFETY: by the caller's contract the memory is mapped, aligned, lives for ever
    // and is accessed only atomically; AtomicU64 has the size and alignment of u64.
    unsafe { core::slice::from_raw_parts(region.cast::<AtomicU64>().as_ptr(), len) }
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

#[cfg(test)]
mod tests {
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
