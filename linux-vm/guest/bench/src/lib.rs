//! The pure parts of the guest's benchmark tool (`vcpos-mmio-bench`): statistics over
//! counter samples, the `BENCH` output lines, a fixed-size text buffer, argument
//! parsing and the CPU-bound work loop. No system calls and no assembly here, so the unit tests run on the
//! host: `cargo test -p vcpos-guest-bench --lib`.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt::{self, Write};

pub mod blk;

/// Timed iterations of each loop.
pub const ITERATIONS: usize = 1000;
/// Untimed iterations before the timed ones (caches, TLB and translated code warm).
pub const WARMUP: usize = 100;
/// The default address loaded: MagicValue of virtio-mmio slot 31, an empty slot under
/// the vcpos VMM and, without `-device virtio-*-device`, on QEMU's `virt` machine.
pub const DEFAULT_ADDRESS: u64 = 0x0a00_3e00;
/// virtio-mmio MagicValue ("virt", little-endian).
pub const VIRTIO_MAGIC: u32 = 0x7472_6976;
/// Guest-physical base of the virtio-mmio slots (QEMU `virt` layout, also the VMM's).
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
/// Size of one virtio-mmio slot.
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// Number of virtio-mmio slots.
pub const VIRTIO_MMIO_SLOTS: u64 = 32;

/// Rounds of [`cpu_work`] per timed sample of the CPU-bound benchmark (about 10 ms
/// under QEMU's TCG, so a sample spans a few guest timer ticks).
pub const CPU_ROUNDS: u64 = 1_000_000;
/// Timed samples of the CPU-bound benchmark.
pub const CPU_SAMPLES: usize = 21;
/// Seed of [`cpu_work`].
pub const CPU_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// The CPU-bound benchmark's work: `rounds` steps of an xorshift generator folded
/// into a multiply-add accumulator (integer only, no memory traffic, no system calls),
/// so the time it takes is the CPU's alone and the result proves the work was done.
pub fn cpu_work(seed: u64, rounds: u64) -> u64 {
    let (mut x, mut acc) = (seed | 1, 0u64);
    for _ in 0..rounds {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_mul(0x100_0000_01b3).wrapping_add(x);
    }
    acc
}

/// Figures of one timed loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    /// Median, counter ticks (the mean of the two middle samples for an even count,
    /// rounded down).
    pub median_ticks: u64,
    /// Median, nanoseconds (from the unrounded median).
    pub median_ns: u64,
    /// Fastest sample, ticks.
    pub min_ticks: u64,
    /// Slowest sample, ticks.
    pub max_ticks: u64,
}

/// `ticks` of a counter running at `freq_hz`, in nanoseconds (rounded down; saturates).
pub fn ticks_to_ns(ticks: u64, freq_hz: u64) -> u64 {
    if freq_hz == 0 {
        return 0;
    }
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(freq_hz)).unwrap_or(u64::MAX)
}

/// Sorts `samples` and summarises them; `None` if there are none or the counter
/// frequency is 0.
pub fn summarize(samples: &mut [u64], freq_hz: u64) -> Option<Summary> {
    if samples.is_empty() || freq_hz == 0 {
        return None;
    }
    samples.sort_unstable();
    let n = samples.len();
    let (lo, hi) = (samples[(n - 1) / 2], samples[n / 2]);
    let twice = u128::from(lo) + u128::from(hi);
    let median_ns = twice * 1_000_000_000 / (2 * u128::from(freq_hz));
    Some(Summary {
        median_ticks: u64::try_from(twice / 2).unwrap_or(u64::MAX),
        median_ns: u64::try_from(median_ns).unwrap_or(u64::MAX),
        min_ticks: samples[0],
        max_ticks: samples[n - 1],
    })
}

/// Writes `BENCH <name> median_ns=.. median_ticks=.. iterations=.. min_ns=.. max_ns=..`
/// and a line end: the benchmark line format of vcpos (extra fields after the three the
/// harness requires).
pub fn write_bench_line(out: &mut impl Write, name: &str, s: &Summary, freq_hz: u64, iterations: usize) -> fmt::Result {
    writeln!(
        out,
        "BENCH {name} median_ns={} median_ticks={} iterations={iterations} min_ns={} max_ns={}",
        s.median_ns,
        s.median_ticks,
        ticks_to_ns(s.min_ticks, freq_hz),
        ticks_to_ns(s.max_ticks, freq_hz),
    )
}

/// A number written in hex (`0x...`, `_` allowed) or decimal; `None` if malformed or
/// over 64 bits.
pub fn parse_number(text: &[u8]) -> Option<u64> {
    let (digits, radix) = match text {
        [b'0', b'x' | b'X', rest @ ..] => (rest, 16),
        _ => (text, 10),
    };
    let mut value: u64 = 0;
    let mut any = false;
    for &c in digits {
        if c == b'_' {
            continue;
        }
        let d = char::from(c).to_digit(radix)?;
        value = value.checked_mul(u64::from(radix))?.checked_add(u64::from(d))?;
        any = true;
    }
    any.then_some(value)
}

/// Whether `address` is the MagicValue register of a virtio-mmio slot (a load from it
/// must read [`VIRTIO_MAGIC`]).
pub fn is_virtio_magic_register(address: u64) -> bool {
    let end = VIRTIO_MMIO_BASE + VIRTIO_MMIO_SLOTS * VIRTIO_MMIO_STRIDE;
    (VIRTIO_MMIO_BASE..end).contains(&address) && address.is_multiple_of(VIRTIO_MMIO_STRIDE)
}

/// The start of the `page_size` page holding `address`; `None` unless `page_size` is a
/// power of two.
pub fn page_base(address: u64, page_size: u64) -> Option<u64> {
    page_size.is_power_of_two().then(|| address & !(page_size - 1))
}

/// A text buffer of `N` bytes on the stack (the program has no allocator). Writing
/// past its end fails and keeps what fitted.
pub struct TextBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> TextBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        TextBuf { buf: [0; N], len: 0 }
    }

    /// The text written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Forgets the text written so far.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

impl<const N: usize> Default for TextBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Write for TextBuf<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = N - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        if n == s.len() {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_work_is_deterministic_and_depends_on_every_round() {
        assert_eq!(cpu_work(CPU_SEED, 1000), cpu_work(CPU_SEED, 1000));
        assert_ne!(cpu_work(CPU_SEED, 1000), cpu_work(CPU_SEED, 1001));
        assert_ne!(cpu_work(CPU_SEED, 1000), cpu_work(CPU_SEED ^ 2, 1000));
        assert_eq!(cpu_work(CPU_SEED, 0), 0);
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        // 62.5 MHz (QEMU's virt counter): 16 ns a tick.
        let mut odd = [5, 1, 9, 3, 7];
        let s = summarize(&mut odd, 62_500_000).unwrap();
        assert_eq!(
            s,
            Summary {
                median_ticks: 5,
                median_ns: 80,
                min_ticks: 1,
                max_ticks: 9
            }
        );
        assert_eq!(odd, [1, 3, 5, 7, 9], "samples are sorted");
        // Middle samples 2 and 3: 2.5 ticks = 40 ns, ticks rounded down to 2.
        let mut even = [4, 3, 2, 1];
        let s = summarize(&mut even, 62_500_000).unwrap();
        assert_eq!((s.median_ticks, s.median_ns, s.min_ticks, s.max_ticks), (2, 40, 1, 4));
        assert_eq!(summarize(&mut [], 62_500_000), None);
        assert_eq!(summarize(&mut [1], 0), None);
    }

    #[test]
    fn large_values_do_not_overflow() {
        let mut big = [u64::MAX, u64::MAX];
        let s = summarize(&mut big, 1_000_000_000).unwrap();
        assert_eq!((s.median_ticks, s.median_ns), (u64::MAX, u64::MAX));
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ns(3, 24_000_000), 125);
        assert_eq!(ticks_to_ns(3, 0), 0);
    }

    #[test]
    fn bench_line_format() {
        let mut samples = [100u64, 102, 98];
        let s = summarize(&mut samples, 62_500_000).unwrap();
        let mut out = TextBuf::<128>::new();
        write_bench_line(&mut out, "mmio_exit_roundtrip", &s, 62_500_000, 3).unwrap();
        assert_eq!(
            core::str::from_utf8(out.as_bytes()).unwrap(),
            "BENCH mmio_exit_roundtrip median_ns=1600 median_ticks=100 iterations=3 min_ns=1568 max_ns=1632\n"
        );
    }

    #[test]
    fn text_buffer_keeps_what_fits() {
        let mut b = TextBuf::<4>::new();
        assert!(b.write_str("ab").is_ok());
        assert!(b.write_str("cde").is_err());
        assert_eq!(b.as_bytes(), b"abcd");
        b.clear();
        assert_eq!(b.as_bytes(), b"");
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"0x0a00_3e00"), Some(0x0a00_3e00));
        assert_eq!(parse_number(b"0XFF"), Some(255));
        assert_eq!(parse_number(b"167788032"), Some(0x0a00_3e00));
        assert_eq!(parse_number(b"0xffffffffffffffff"), Some(u64::MAX));
        for bad in [&b""[..], b"0x", b"_", b"12a", b"0xg", b"0x1_0000_0000_0000_0000", b"-1"] {
            assert_eq!(parse_number(bad), None, "{:?}", core::str::from_utf8(bad));
        }
    }

    #[test]
    fn magic_registers_and_pages() {
        assert!(is_virtio_magic_register(DEFAULT_ADDRESS));
        assert!(is_virtio_magic_register(0x0a00_0000));
        assert!(!is_virtio_magic_register(0x0a00_3e04));
        assert!(!is_virtio_magic_register(0x0a00_4000));
        assert!(!is_virtio_magic_register(0x4000_0000));
        assert_eq!(page_base(DEFAULT_ADDRESS, 4096), Some(0x0a00_3000));
        assert_eq!(page_base(DEFAULT_ADDRESS, 65536), Some(0x0a00_0000));
        assert_eq!(page_base(DEFAULT_ADDRESS, 3000), None);
        assert_eq!(page_base(DEFAULT_ADDRESS, 0), None);
    }
}
