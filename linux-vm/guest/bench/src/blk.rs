//! The pure parts of the block benchmark (`vcpos-mmio-bench blk ...`): its command
//! line, the test plan (request sizes, queue depths, operation counts), the random
//! offsets, the data pattern written and checked, and the `BENCH` lines with MB/s and
//! IOPS. The system calls are in the binary (`blk_run.rs`, `blk_sys.rs`); this part
//! runs its unit tests on the host.

use core::fmt::{self, Write};

use crate::{parse_number, summarize, ticks_to_ns};

/// Bytes of one sequential request.
pub const SEQ_REQUEST: u64 = 1 << 20;
/// Bytes of one random request.
pub const RAND_REQUEST: u64 = 4096;
/// Queue depth of the deep random-read run.
pub const DEEP_QUEUE: usize = 32;
/// Random reads at queue depth 1.
pub const RAND_OPS_QD1: usize = 2048;
/// Random reads at [`DEEP_QUEUE`].
pub const RAND_OPS_DEEP: usize = 8192;
/// MiB of the disk the benchmark covers when not told (from its start).
pub const DEFAULT_MIB: u64 = 64;
/// The most samples any run keeps (the largest operation count).
pub const MAX_OPS: usize = RAND_OPS_DEEP;
/// Seed of the random offsets (fixed, so every run reads the same blocks).
pub const OFFSET_SEED: u64 = 0x7663_706f_735f_626c; // "vcpos_bl"

/// What `blk` was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// Benchmark `device` over its first `mib` MiB (destroys their contents).
    Run {
        /// The block device, e.g. `/dev/vda`.
        device: &'a [u8],
        /// MiB covered.
        mib: u64,
    },
    /// Write the pattern of `seed` over the first `mib` MiB of `device`.
    Fill {
        /// The block device.
        device: &'a [u8],
        /// MiB written.
        mib: u64,
        /// Pattern seed.
        seed: u64,
    },
    /// Read the first `mib` MiB of `device` and compare with the pattern of `seed`.
    Verify {
        /// The block device.
        device: &'a [u8],
        /// MiB read.
        mib: u64,
        /// Pattern seed.
        seed: u64,
    },
}

/// The usage text of `blk`.
pub const USAGE: &str = "blk run DEVICE [MIB] | blk fill DEVICE MIB SEED | blk verify DEVICE MIB SEED";

/// A MiB count: a positive number below 2^32.
fn parse_mib(text: &[u8]) -> Result<u64, &'static str> {
    match parse_number(text) {
        Some(m) if m > 0 && m < (1 << 32) => Ok(m),
        _ => Err("MIB must be a positive number of MiB below 2^32"),
    }
}

/// Parses the arguments after `blk`; the error says what is wrong.
pub fn parse_command<'a>(args: &[&'a [u8]]) -> Result<Command<'a>, &'static str> {
    match args {
        [b"run", device] => Ok(Command::Run {
            device,
            mib: DEFAULT_MIB,
        }),
        [b"run", device, mib] => Ok(Command::Run {
            device,
            mib: parse_mib(mib)?,
        }),
        [b"fill" | b"verify", device, mib, seed] => {
            let mib = parse_mib(mib)?;
            let seed = parse_number(seed).ok_or("SEED must be a number")?;
            Ok(if args[0] == b"fill" {
                Command::Fill { device, mib, seed }
            } else {
                Command::Verify { device, mib, seed }
            })
        }
        [b"run" | b"fill" | b"verify", ..] => Err("wrong number of arguments"),
        [] => Err("no blk command"),
        _ => Err("unknown blk command"),
    }
}

/// Bytes of `mib` MiB, if they fit in a disk of `disk_bytes`.
pub fn region_bytes(mib: u64, disk_bytes: u64) -> Option<u64> {
    let bytes = mib.checked_mul(1 << 20)?;
    (bytes <= disk_bytes).then_some(bytes)
}

/// A 64-bit mixing function (SplitMix64's finaliser): distinct inputs give
/// well-spread, distinct outputs.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A SplitMix64 generator (the random offsets).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }

    /// A random multiple of `request` such that `[offset, offset + request)` lies in
    /// `[0, region)`; 0 if the region holds less than one request.
    pub fn offset(&mut self, region: u64, request: u64) -> u64 {
        let slots = region.checked_div(request).unwrap_or(0);
        if slots == 0 {
            return 0;
        }
        // Multiply-shift: uniform enough for offsets, without a division per call.
        let slot = ((u128::from(self.next_u64()) * u128::from(slots)) >> 64) as u64;
        slot * request
    }
}

/// The pattern's 8-byte word at byte `offset` of the disk (a multiple of 8) for `seed`.
pub fn pattern_word(seed: u64, offset: u64) -> u64 {
    mix(seed ^ mix(offset))
}

/// Fills `buf` with the pattern of `seed` as it lies at disk byte `offset` (both
/// `offset` and `buf.len()` multiples of 8; a shorter tail is left alone).
pub fn fill_pattern(buf: &mut [u8], seed: u64, offset: u64) {
    for (i, word) in buf.chunks_exact_mut(8).enumerate() {
        word.copy_from_slice(&pattern_word(seed, offset + 8 * i as u64).to_le_bytes());
    }
}

/// The first difference between data read and the pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    /// Disk byte offset of the 8-byte word that differs.
    pub offset: u64,
    /// The pattern's word.
    pub expected: u64,
    /// The word read.
    pub found: u64,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "data differs at byte {:#x}: expected {:#018x}, read {:#018x}",
            self.offset, self.expected, self.found
        )
    }
}

/// Checks that `buf`, read from disk byte `offset`, holds the pattern of `seed`.
pub fn check_pattern(buf: &[u8], seed: u64, offset: u64) -> Result<(), Mismatch> {
    for (i, word) in buf.chunks_exact(8).enumerate() {
        let at = offset + 8 * i as u64;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        let found = u64::from_le_bytes(bytes);
        let expected = pattern_word(seed, at);
        if found != expected {
            return Err(Mismatch {
                offset: at,
                expected,
                found,
            });
        }
    }
    Ok(())
}

/// One timed run of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Test {
    /// Sequential 1 MiB writes over the region, then one flush (timed with them).
    SeqWrite,
    /// Sequential 1 MiB reads over the region.
    SeqRead,
    /// Random 4 KiB reads, one at a time.
    RandReadQd1,
    /// Random 4 KiB reads, [`DEEP_QUEUE`] outstanding.
    RandReadDeep,
}

impl Test {
    /// Every test, in the order they run (the reads read what the writes wrote).
    pub const ALL: [Test; 4] = [Test::SeqWrite, Test::SeqRead, Test::RandReadQd1, Test::RandReadDeep];

    /// Its name in the `BENCH` line.
    pub fn name(self) -> &'static str {
        match self {
            Test::SeqWrite => "blk_seq_write_1m",
            Test::SeqRead => "blk_seq_read_1m",
            Test::RandReadQd1 => "blk_rand_read_4k_qd1",
            Test::RandReadDeep => "blk_rand_read_4k_qd32",
        }
    }

    /// Bytes of each request.
    pub fn request(self) -> u64 {
        match self {
            Test::SeqWrite | Test::SeqRead => SEQ_REQUEST,
            Test::RandReadQd1 | Test::RandReadDeep => RAND_REQUEST,
        }
    }

    /// Requests outstanding at once.
    pub fn queue_depth(self) -> usize {
        match self {
            Test::RandReadDeep => DEEP_QUEUE,
            _ => 1,
        }
    }

    /// Requests made over a region of `region` bytes (sequential ones cover it once).
    pub fn ops(self, region: u64) -> usize {
        match self {
            Test::SeqWrite | Test::SeqRead => usize::try_from(region / SEQ_REQUEST).unwrap_or(usize::MAX).min(MAX_OPS),
            Test::RandReadQd1 => RAND_OPS_QD1,
            Test::RandReadDeep => RAND_OPS_DEEP,
        }
    }

    /// Whether it writes.
    pub fn writes(self) -> bool {
        self == Test::SeqWrite
    }
}

/// `bytes` moved in `ns` nanoseconds, in MB/s (10^6 bytes) times 10, rounded down.
pub fn deci_mb_per_s(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    // bytes / 1e6 / (ns / 1e9) * 10 = bytes * 10_000 / ns
    u64::try_from(u128::from(bytes) * 10_000 / u128::from(ns)).unwrap_or(u64::MAX)
}

/// `ops` operations in `ns` nanoseconds, per second, rounded down.
pub fn iops(ops: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    u64::try_from(u128::from(ops) * 1_000_000_000 / u128::from(ns)).unwrap_or(u64::MAX)
}

/// Writes the line of one finished test and a line end:
/// `BENCH <name> median_ns=.. median_ticks=.. iterations=<ops> mb_per_s=<x.y> iops=..
/// qd=.. request_bytes=.. bytes=.. elapsed_ns=..`. `latencies` are the ticks of each
/// request from submission to completion (sorted here), `elapsed_ticks` the whole
/// test's; an error if there are no samples or the counter frequency is 0.
pub fn write_blk_line(
    out: &mut impl Write,
    test: Test,
    latencies: &mut [u64],
    elapsed_ticks: u64,
    freq_hz: u64,
) -> Result<(), BlkLineError> {
    let s = summarize(latencies, freq_hz).ok_or(BlkLineError::NoSamples)?;
    let ops = latencies.len() as u64;
    let bytes = ops * test.request();
    let ns = ticks_to_ns(elapsed_ticks, freq_hz);
    let mb = deci_mb_per_s(bytes, ns);
    writeln!(
        out,
        "BENCH {} median_ns={} median_ticks={} iterations={ops} mb_per_s={}.{} iops={} qd={} request_bytes={} \
         bytes={bytes} elapsed_ns={ns}",
        test.name(),
        s.median_ns,
        s.median_ticks,
        mb / 10,
        mb % 10,
        iops(ops, ns),
        test.queue_depth(),
        test.request(),
    )
    .map_err(|_| BlkLineError::TooLong)
}

/// Why no line could be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkLineError {
    /// No latency samples, or the counter frequency is 0.
    NoSamples,
    /// The output buffer was too small.
    TooLong,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TextBuf;

    #[test]
    fn commands_parse() {
        assert_eq!(
            parse_command(&[b"run", b"/dev/vda"]),
            Ok(Command::Run {
                device: b"/dev/vda",
                mib: DEFAULT_MIB
            })
        );
        assert_eq!(
            parse_command(&[b"run", b"/dev/vda", b"16"]),
            Ok(Command::Run {
                device: b"/dev/vda",
                mib: 16
            })
        );
        assert_eq!(
            parse_command(&[b"fill", b"/dev/vdb", b"8", b"0x2a"]),
            Ok(Command::Fill {
                device: b"/dev/vdb",
                mib: 8,
                seed: 42
            })
        );
        assert_eq!(
            parse_command(&[b"verify", b"/dev/vdb", b"8", b"42"]),
            Ok(Command::Verify {
                device: b"/dev/vdb",
                mib: 8,
                seed: 42
            })
        );
        for (args, why) in [
            (&[][..], "no blk command"),
            (&[&b"bench"[..], b"/dev/vda"][..], "unknown blk command"),
            (&[&b"run"[..]][..], "wrong number of arguments"),
            (&[&b"fill"[..], b"/dev/vda", b"8"][..], "wrong number of arguments"),
            (&[&b"run"[..], b"/dev/vda", b"0"][..], "MIB must be"),
            (&[&b"run"[..], b"/dev/vda", b"4294967296"][..], "MIB must be"),
            (&[&b"verify"[..], b"/dev/vda", b"8", b"x"][..], "SEED must be a number"),
        ] {
            let e = parse_command(args).unwrap_err();
            assert!(e.contains(why), "{args:?}: {e}");
        }
    }

    #[test]
    fn regions_fit_the_disk() {
        assert_eq!(region_bytes(64, 256 << 20), Some(64 << 20));
        assert_eq!(region_bytes(256, 256 << 20), Some(256 << 20));
        assert_eq!(region_bytes(257, 256 << 20), None);
        assert_eq!(region_bytes(u64::MAX, u64::MAX), None, "overflow is no fit");
    }

    #[test]
    fn random_offsets_are_aligned_inside_and_spread() {
        let mut rng = Rng::new(OFFSET_SEED);
        let region = 64 << 20;
        let mut seen_low = false;
        let mut seen_high = false;
        let mut first = [0u64; 16];
        for i in 0..10_000 {
            let o = rng.offset(region, RAND_REQUEST);
            assert_eq!(o % RAND_REQUEST, 0);
            assert!(o + RAND_REQUEST <= region, "{o:#x}");
            seen_low |= o < region / 4;
            seen_high |= o >= region / 4 * 3;
            if i < first.len() {
                first[i] = o;
            }
        }
        assert!(seen_low && seen_high, "offsets cover the region");
        // The same seed gives the same offsets; not all the same.
        let mut again = Rng::new(OFFSET_SEED);
        assert!(first.iter().all(|&o| o == again.offset(region, RAND_REQUEST)));
        assert!(first.iter().any(|&o| o != first[0]));
        assert_eq!(rng.offset(RAND_REQUEST - 1, RAND_REQUEST), 0, "no room for one request");
        assert_eq!(rng.offset(RAND_REQUEST, 0), 0);
        assert_eq!(rng.offset(RAND_REQUEST, RAND_REQUEST), 0, "one slot");
    }

    #[test]
    fn pattern_round_trip_and_mismatch() {
        let mut buf = [0u8; 4096];
        fill_pattern(&mut buf, 42, 1 << 20);
        assert!(buf.iter().any(|&b| b != 0));
        assert_eq!(check_pattern(&buf, 42, 1 << 20), Ok(()));
        // A block written for another place or seed does not pass.
        assert!(check_pattern(&buf, 42, (1 << 20) + 4096).is_err());
        assert!(check_pattern(&buf, 43, 1 << 20).is_err());
        // A single flipped bit is found, at its word.
        buf[1001] ^= 0x10;
        let m = check_pattern(&buf, 42, 1 << 20).unwrap_err();
        assert_eq!(m.offset, (1 << 20) + 1000);
        assert_eq!(m.expected ^ m.found, 0x10 << 8);
        let mut text = TextBuf::<128>::new();
        write!(text, "{m}").unwrap();
        assert!(core::str::from_utf8(text.as_bytes())
            .unwrap()
            .starts_with("data differs at byte 0x1003e8"));
        // Split fills agree with one fill.
        let mut whole = [0u8; 64];
        let mut halves = [0u8; 64];
        fill_pattern(&mut whole, 7, 512);
        fill_pattern(&mut halves[..32], 7, 512);
        fill_pattern(&mut halves[32..], 7, 544);
        assert_eq!(whole, halves);
    }

    #[test]
    fn plan() {
        let region = 64 << 20;
        assert_eq!(Test::SeqWrite.ops(region), 64);
        assert_eq!(Test::SeqRead.ops(region), 64);
        assert_eq!(Test::RandReadQd1.ops(region), RAND_OPS_QD1);
        assert_eq!(Test::RandReadDeep.queue_depth(), 32);
        assert_eq!(Test::SeqRead.ops(1 << 40), MAX_OPS, "never more samples than kept");
        assert!(Test::ALL.iter().all(|t| t.ops(region) <= MAX_OPS));
        assert!(Test::SeqWrite.writes() && !Test::SeqRead.writes());
        assert_eq!(Test::ALL[0], Test::SeqWrite, "the reads read what was written");
    }

    #[test]
    fn rates() {
        assert_eq!(deci_mb_per_s(64 << 20, 1_000_000_000), 671); // 67.1 MB/s
        assert_eq!(deci_mb_per_s(1, 0), 0);
        assert_eq!(iops(2048, 500_000_000), 4096);
        assert_eq!(iops(1, 0), 0);
        assert_eq!(deci_mb_per_s(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn bench_line() {
        // 62.5 MHz counter: 16 ns a tick. 4 requests of 1 MiB in 62_500_000 ticks = 1 s.
        let mut lat = [6250u64, 6250, 12_500, 3125];
        let mut out = TextBuf::<256>::new();
        write_blk_line(&mut out, Test::SeqRead, &mut lat, 62_500_000, 62_500_000).unwrap();
        assert_eq!(
            core::str::from_utf8(out.as_bytes()).unwrap(),
            "BENCH blk_seq_read_1m median_ns=100000 median_ticks=6250 iterations=4 mb_per_s=4.1 iops=4 qd=1 \
             request_bytes=1048576 bytes=4194304 elapsed_ns=1000000000\n"
        );
        assert_eq!(
            write_blk_line(&mut out, Test::SeqRead, &mut [], 1, 1),
            Err(BlkLineError::NoSamples)
        );
        assert_eq!(
            write_blk_line(&mut TextBuf::<8>::new(), Test::SeqRead, &mut [1], 1, 1),
            Err(BlkLineError::TooLong)
        );
    }
}
