//! `vcpos-mmio-bench blk ...`: the block benchmark and the pattern writer/checker on a
//! block device, with direct I/O (`O_DIRECT`: no guest page cache).
//!
//! - `blk run DEVICE [MIB]` (default 64 MiB, from the device's start; it overwrites
//!   them): sequential 1 MiB writes (then one flush, timed with them), sequential
//!   1 MiB reads, random 4 KiB reads one at a time and with 32 in flight (Linux AIO).
//!   One line per test, see [`vcpos_guest_bench::blk::write_blk_line`]:
//!   `BENCH blk_seq_read_1m median_ns=.. median_ticks=.. iterations=.. mb_per_s=.. iops=.. qd=1 ...`
//!   (the median is the latency of one request, submission to completion).
//! - `blk fill DEVICE MIB SEED`: writes the pattern of SEED over the first MIB MiB and
//!   flushes; prints `vcpos-blk: fill done mib=MIB seed=SEED`.
//! - `blk verify DEVICE MIB SEED`: reads them back and compares; prints
//!   `vcpos-blk: verify ok mib=MIB seed=SEED`, or fails naming the first byte that
//!   differs.
//!
//! Exit status 0 on success, 1 with a `vcpos-mmio-bench: error: ...` line otherwise.

use core::ffi::CStr;
use core::fmt::{self, Write};

use vcpos_guest_bench::blk::{
    check_pattern, fill_pattern, parse_command, region_bytes, write_blk_line, BlkLineError, Command, Mismatch, Rng,
    Test, MAX_OPS, OFFSET_SEED, RAND_REQUEST, SEQ_REQUEST, USAGE,
};
use vcpos_guest_bench::TextBuf;

use crate::blk_sys::{self, Aio, IoEvent, AIO_MAX};
use crate::linux::{self, Errno, StartInfo};
use crate::timing;

/// Why a `blk` command failed.
pub enum BlkError {
    /// A bad command line.
    Usage(&'static str),
    /// A system call failed.
    Sys(&'static str, Errno),
    /// A request moved fewer bytes than asked.
    Short {
        what: &'static str,
        offset: u64,
        done: u64,
        asked: u64,
    },
    /// The region is larger than the device.
    TooBig { mib: u64, disk_bytes: u64 },
    /// Data read back differs from the pattern.
    Data(Mismatch),
    /// No figures (no counter frequency).
    NoFigures,
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::Usage(why) => write!(f, "{why} (usage: vcpos-mmio-bench {USAGE})"),
            BlkError::Sys(what, e) => write!(f, "{what} failed: errno {}", e.0),
            BlkError::Short {
                what,
                offset,
                done,
                asked,
            } => {
                write!(f, "{what} at byte {offset:#x} moved {done} of {asked} bytes")
            }
            BlkError::TooBig { mib, disk_bytes } => {
                write!(f, "{mib} MiB do not fit the device ({disk_bytes} bytes)")
            }
            BlkError::Data(m) => write!(f, "{m}"),
            BlkError::NoFigures => f.write_str("no figures: CNTFRQ_EL0 reads 0"),
        }
    }
}

fn print(text: &[u8]) {
    let _ = linux::write_all(1, text);
}

/// Runs `blk` with the arguments after it; exits the process.
pub fn main(info: &StartInfo) -> ! {
    let mut args: [&[u8]; linux::MAX_ARGS] = [b""; linux::MAX_ARGS];
    let n = info.arg_count.saturating_sub(2);
    for (slot, arg) in args.iter_mut().zip(&info.args[2..2 + n]) {
        *slot = arg.to_bytes();
    }
    match run(&args[..n]) {
        Ok(()) => linux::exit(0),
        Err(e) => {
            let mut line = TextBuf::<256>::new();
            let _ = writeln!(line, "vcpos-mmio-bench: error: blk: {e}");
            let _ = linux::write_all(2, line.as_bytes());
            linux::exit(1)
        }
    }
}

/// `path` with a NUL after it, in `buf`.
fn c_path<'b>(path: &[u8], buf: &'b mut [u8; 256]) -> Result<&'b CStr, BlkError> {
    if path.len() >= buf.len() {
        return Err(BlkError::Usage("DEVICE path too long"));
    }
    buf[..path.len()].copy_from_slice(path);
    buf[path.len()] = 0;
    CStr::from_bytes_with_nul(&buf[..=path.len()]).map_err(|_| BlkError::Usage("DEVICE path holds a NUL"))
}

/// The open device and the region of it used.
struct Disk {
    fd: u64,
    region: u64,
}

fn open(device: &[u8], mib: u64) -> Result<Disk, BlkError> {
    let mut buf = [0u8; 256];
    let path = c_path(device, &mut buf)?;
    let fd = blk_sys::open_direct(path).map_err(|e| BlkError::Sys("open (O_DIRECT)", e))?;
    let disk_bytes = blk_sys::device_bytes(fd).map_err(|e| BlkError::Sys("BLKGETSIZE64", e))?;
    let region = region_bytes(mib, disk_bytes).ok_or(BlkError::TooBig { mib, disk_bytes })?;
    Ok(Disk { fd, region })
}

fn write_at(fd: u64, buf: &[u8], offset: u64) -> Result<(), BlkError> {
    let done = blk_sys::pwrite(fd, buf, offset).map_err(|e| BlkError::Sys("pwrite", e))?;
    if done != buf.len() as u64 {
        return Err(BlkError::Short {
            what: "pwrite",
            offset,
            done,
            asked: buf.len() as u64,
        });
    }
    Ok(())
}

fn read_at(fd: u64, buf: &mut [u8], offset: u64) -> Result<(), BlkError> {
    let done = blk_sys::pread(fd, buf, offset).map_err(|e| BlkError::Sys("pread", e))?;
    if done != buf.len() as u64 {
        return Err(BlkError::Short {
            what: "pread",
            offset,
            done,
            asked: buf.len() as u64,
        });
    }
    Ok(())
}

fn run(args: &[&[u8]]) -> Result<(), BlkError> {
    let command = parse_command(args).map_err(BlkError::Usage)?;
    let seq = blk_sys::alloc(SEQ_REQUEST as usize).map_err(|e| BlkError::Sys("mmap", e))?;
    let mut out = TextBuf::<256>::new();
    match command {
        Command::Fill { device, mib, seed } => {
            let disk = open(device, mib)?;
            let mut offset = 0;
            while offset < disk.region {
                fill_pattern(seq, seed, offset);
                write_at(disk.fd, seq, offset)?;
                offset += SEQ_REQUEST;
            }
            blk_sys::fdatasync(disk.fd).map_err(|e| BlkError::Sys("fdatasync", e))?;
            blk_sys::close(disk.fd).map_err(|e| BlkError::Sys("close", e))?;
            let _ = writeln!(out, "vcpos-blk: fill done mib={mib} seed={seed}");
        }
        Command::Verify { device, mib, seed } => {
            let disk = open(device, mib)?;
            let mut offset = 0;
            while offset < disk.region {
                read_at(disk.fd, seq, offset)?;
                check_pattern(seq, seed, offset).map_err(BlkError::Data)?;
                offset += SEQ_REQUEST;
            }
            blk_sys::close(disk.fd).map_err(|e| BlkError::Sys("close", e))?;
            let _ = writeln!(out, "vcpos-blk: verify ok mib={mib} seed={seed}");
        }
        Command::Run { device, mib } => {
            let disk = open(device, mib)?;
            bench(&disk, device, mib, seq)?;
        }
    }
    print(out.as_bytes());
    Ok(())
}

fn bench(disk: &Disk, device: &[u8], mib: u64, seq: &mut [u8]) -> Result<(), BlkError> {
    let freq = timing::counter_frequency();
    if freq == 0 {
        return Err(BlkError::NoFigures);
    }
    let slots = blk_sys::alloc(AIO_MAX * RAND_REQUEST as usize).map_err(|e| BlkError::Sys("mmap", e))?;
    let mut aio = Aio::new(slots, RAND_REQUEST as usize).map_err(|e| BlkError::Sys("io_setup", e))?;

    let mut out = TextBuf::<256>::new();
    let _ = writeln!(
        out,
        "vcpos-blk: {} first {mib} MiB, O_DIRECT; counter {freq} Hz",
        core::str::from_utf8(device).unwrap_or("?")
    );
    print(out.as_bytes());
    // Non-zero data (some layers treat zero blocks specially).
    fill_pattern(seq, OFFSET_SEED, 0);
    // Per-request latencies (64 KiB on the 8 MiB main stack).
    let mut lat = [0u64; MAX_OPS];
    for test in Test::ALL {
        let ops = test.ops(disk.region);
        let lat = &mut lat[..ops];
        let elapsed = match test {
            Test::SeqWrite => {
                let t0 = timing::now();
                for (i, l) in lat.iter_mut().enumerate() {
                    let s = timing::now();
                    write_at(disk.fd, seq, i as u64 * SEQ_REQUEST)?;
                    *l = timing::now().wrapping_sub(s);
                }
                blk_sys::fdatasync(disk.fd).map_err(|e| BlkError::Sys("fdatasync", e))?;
                timing::now().wrapping_sub(t0)
            }
            Test::SeqRead => {
                let t0 = timing::now();
                for (i, l) in lat.iter_mut().enumerate() {
                    let s = timing::now();
                    read_at(disk.fd, seq, i as u64 * SEQ_REQUEST)?;
                    *l = timing::now().wrapping_sub(s);
                }
                timing::now().wrapping_sub(t0)
            }
            Test::RandReadQd1 => {
                let mut rng = Rng::new(OFFSET_SEED);
                let buf = &mut seq[..RAND_REQUEST as usize];
                let t0 = timing::now();
                for l in lat.iter_mut() {
                    let offset = rng.offset(disk.region, RAND_REQUEST);
                    let s = timing::now();
                    read_at(disk.fd, buf, offset)?;
                    *l = timing::now().wrapping_sub(s);
                }
                timing::now().wrapping_sub(t0)
            }
            Test::RandReadDeep => deep_reads(&mut aio, disk, lat, test.queue_depth())?,
        };
        out.clear();
        write_blk_line(&mut out, test, lat, elapsed, freq).map_err(|e| match e {
            BlkLineError::NoSamples => BlkError::NoFigures,
            BlkLineError::TooLong => BlkError::Usage("BENCH line too long"),
        })?;
        print(out.as_bytes());
    }
    blk_sys::close(disk.fd).map_err(|e| BlkError::Sys("close", e))?;
    Ok(())
}

/// Random reads with `depth` requests in flight until `lat.len()` completed; each
/// sample is one request's ticks from submission to its completion being reaped.
/// Returns the ticks of the whole run.
fn deep_reads(aio: &mut Aio, disk: &Disk, lat: &mut [u64], depth: usize) -> Result<u64, BlkError> {
    let depth = depth.min(aio.slots());
    let mut rng = Rng::new(OFFSET_SEED ^ 1);
    let mut started = [0u64; AIO_MAX];
    let mut offsets = [0u64; AIO_MAX];
    let mut events = [IoEvent::default(); AIO_MAX];
    let (mut submitted, mut done) = (0usize, 0usize);
    let t0 = timing::now();
    for slot in 0..depth.min(lat.len()) {
        offsets[slot] = rng.offset(disk.region, RAND_REQUEST);
        started[slot] = timing::now();
        aio.read(disk.fd, slot, offsets[slot])
            .map_err(|e| BlkError::Sys("io_submit", e))?;
        submitted += 1;
    }
    while done < lat.len() {
        let n = aio.wait(&mut events).map_err(|e| BlkError::Sys("io_getevents", e))?;
        if n == 0 {
            // Nothing in flight and nothing completed: no way forward (never expected).
            return Err(BlkError::Sys("io_getevents (no request in flight)", Errno(0)));
        }
        let now = timing::now();
        for e in &events[..n] {
            let slot = e.data as usize;
            if slot >= depth {
                return Err(BlkError::Sys("io_getevents (unknown request)", Errno(0)));
            }
            if e.res != RAND_REQUEST as i64 {
                return if e.res < 0 {
                    Err(BlkError::Sys("AIO read", Errno(-e.res)))
                } else {
                    Err(BlkError::Short {
                        what: "AIO read",
                        offset: offsets[slot],
                        done: e.res as u64,
                        asked: RAND_REQUEST,
                    })
                };
            }
            if let Some(l) = lat.get_mut(done) {
                *l = now.wrapping_sub(started[slot]);
            }
            done += 1;
            if submitted < lat.len() {
                offsets[slot] = rng.offset(disk.region, RAND_REQUEST);
                started[slot] = timing::now();
                aio.read(disk.fd, slot, offsets[slot])
                    .map_err(|e| BlkError::Sys("io_submit", e))?;
                submitted += 1;
            }
        }
    }
    Ok(timing::now().wrapping_sub(t0))
}
