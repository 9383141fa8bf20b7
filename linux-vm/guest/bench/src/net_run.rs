//! `vcpos-mmio-bench net ...`: the network benchmark, a TCP client of the host's
//! server (the protocol and line formats are in [`vcpos_guest_bench::net`]).
//!
//! - `net tx IPV4 PORT MIB`: sends MIB MiB; timed from the first byte sent to the
//!   server's count of bytes received (which must match). Prints
//!   `BENCH net_tx mbit_per_s=.. bytes=.. elapsed_ns=.. frames=..` (frames: how many
//!   `eth0` sent meanwhile, from sysfs, left out if unreadable).
//! - `net rx IPV4 PORT MIB`: receives MIB MiB; timed from the request to the last
//!   byte. Prints `BENCH net_rx ...` (frames: how many `eth0` received).
//! - `net rr IPV4 PORT COUNT`: COUNT one-byte request/response round trips (after
//!   [`RR_WARMUP`] untimed ones), `TCP_NODELAY`. Prints
//!   `BENCH net_rr median_ns=.. median_ticks=.. iterations=COUNT min_ns=.. max_ns=..`.
//!
//! - `net listen PORT MIB`: listens on PORT, accepts one connection (the host's,
//!   through a port forward), receives MIB MiB timed from the accept to the last byte,
//!   answers with the count received; prints `BENCH net_rx_fwd ...` (frames: how many
//!   `eth0` received).
//!
//! Exit status 0 on success, 1 with a `vcpos-mmio-bench: error: net: ...` line
//! otherwise.

use core::fmt::{self, Write};

use vcpos_guest_bench::net::{
    frame_counter, header, parse_command, parse_listen, write_throughput_line, Command, Op, LISTEN_BENCH,
    MAX_ROUND_TRIPS, RR_WARMUP, USAGE,
};
use vcpos_guest_bench::{parse_number, summarize, ticks_to_ns, write_bench_line, TextBuf};

use crate::blk_sys::{alloc, close};
use crate::linux::{self, Errno, StartInfo};
use crate::net_sys;
use crate::timing;

/// Bytes per write and read of `tx`/`rx`.
const CHUNK: usize = 64 << 10;

/// Why a `net` command failed.
enum NetError {
    /// A bad command line.
    Usage(&'static str),
    /// A system call failed.
    Sys(&'static str, Errno),
    /// The stream ended early.
    Closed {
        what: &'static str,
        done: u64,
        expected: u64,
    },
    /// The server counted other bytes than were sent, or echoed another byte.
    Mismatch {
        what: &'static str,
        got: u64,
        expected: u64,
    },
    /// No figures (no counter frequency).
    NoFigures,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Usage(why) => write!(f, "{why} (usage: vcpos-mmio-bench {USAGE})"),
            NetError::Sys(what, e) => write!(f, "{what} failed: errno {}", e.0),
            NetError::Closed { what, done, expected } => {
                write!(
                    f,
                    "the server closed the connection during {what} after {done} of {expected} bytes"
                )
            }
            NetError::Mismatch { what, got, expected } => write!(f, "{what}: got {got}, expected {expected}"),
            NetError::NoFigures => f.write_str("no figures: CNTFRQ_EL0 reads 0"),
        }
    }
}

/// Runs `net` with the arguments after it; exits the process.
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
            let _ = writeln!(line, "vcpos-mmio-bench: error: net: {e}");
            let _ = linux::write_all(2, line.as_bytes());
            linux::exit(1)
        }
    }
}

/// `eth0`'s frame counter in `op`'s data direction ([`frame_counter`]), if readable.
fn frames(op: Op) -> Option<u64> {
    let fd = linux::open(frame_counter(op), linux::O_CLOEXEC).ok()?;
    let mut text = [0u8; 32];
    let n = net_sys::read(fd, &mut text);
    let _ = close(fd);
    let n = n.ok()? as usize;
    parse_number(text[..n].trim_ascii())
}

/// Reads exactly `buf.len()` bytes.
fn read_exact(fd: u64, buf: &mut [u8], what: &'static str) -> Result<(), NetError> {
    let mut done = 0;
    while done < buf.len() {
        let n = net_sys::read(fd, &mut buf[done..]).map_err(|e| NetError::Sys("read", e))? as usize;
        if n == 0 {
            return Err(NetError::Closed {
                what,
                done: done as u64,
                expected: buf.len() as u64,
            });
        }
        done += n;
    }
    Ok(())
}

fn run(args: &[&[u8]]) -> Result<(), NetError> {
    let freq = timing::counter_frequency();
    if freq == 0 {
        return Err(NetError::NoFigures);
    }
    if args.first() == Some(&&b"listen"[..]) {
        let (port, mib) = parse_listen(args).map_err(NetError::Usage)?;
        return listen(port, mib, freq);
    }
    let cmd = parse_command(args).map_err(NetError::Usage)?;
    let fd = net_sys::tcp_connect(cmd.addr, cmd.port).map_err(|e| NetError::Sys("connect", e))?;
    let mut out = TextBuf::<256>::new();
    match cmd.op {
        Op::Tx | Op::Rx => {
            let buf = alloc(CHUNK).map_err(|e| NetError::Sys("mmap", e))?;
            let before = frames(cmd.op);
            let ticks = if cmd.op == Op::Tx {
                send(fd, &cmd, buf)?
            } else {
                receive(fd, &cmd, buf)?
            };
            let moved = frames(cmd.op)
                .zip(before)
                .map(|(after, before)| after.wrapping_sub(before));
            write_throughput_line(
                &mut out,
                cmd.op.bench_name(),
                cmd.wire_amount(),
                ticks_to_ns(ticks, freq),
                moved,
            )
            .map_err(|_| NetError::NoFigures)?;
        }
        Op::Rr => {
            let mut samples = [0u64; MAX_ROUND_TRIPS as usize];
            let samples = &mut samples[..cmd.amount as usize];
            round_trips(fd, &cmd, samples)?;
            let s = summarize(samples, freq).ok_or(NetError::NoFigures)?;
            write_bench_line(&mut out, Op::Rr.bench_name(), &s, freq, samples.len())
                .map_err(|_| NetError::NoFigures)?;
        }
    }
    let _ = close(fd);
    let _ = linux::write_all(1, out.as_bytes());
    Ok(())
}

/// `listen`: one connection accepted on `port`, `mib` MiB received from it and counted
/// back; prints the line.
fn listen(port: u16, mib: u64, freq: u64) -> Result<(), NetError> {
    let lfd = net_sys::tcp_listen(port).map_err(|e| NetError::Sys("listen", e))?;
    let fd = net_sys::accept(lfd).map_err(|e| NetError::Sys("accept", e))?;
    let _ = close(lfd);
    let buf = alloc(CHUNK).map_err(|e| NetError::Sys("mmap", e))?;
    let total = mib << 20;
    let before = frames(Op::Rx);
    let t0 = timing::now();
    let mut done = 0;
    while done < total {
        let want = (total - done).min(buf.len() as u64) as usize;
        let n = net_sys::read(fd, &mut buf[..want]).map_err(|e| NetError::Sys("read", e))?;
        if n == 0 {
            return Err(NetError::Closed {
                what: "listen",
                done,
                expected: total,
            });
        }
        done += n;
    }
    let ticks = timing::now().wrapping_sub(t0);
    let moved = frames(Op::Rx)
        .zip(before)
        .map(|(after, before)| after.wrapping_sub(before));
    linux::write_all(fd, &done.to_le_bytes()).map_err(|e| NetError::Sys("write", e))?;
    let _ = net_sys::shutdown_write(fd);
    let _ = close(fd);
    let mut out = TextBuf::<256>::new();
    write_throughput_line(&mut out, LISTEN_BENCH, total, ticks_to_ns(ticks, freq), moved)
        .map_err(|_| NetError::NoFigures)?;
    let _ = linux::write_all(1, out.as_bytes());
    Ok(())
}

/// `tx`: the header, the bytes, then the server's count; returns the ticks taken.
fn send(fd: u64, cmd: &Command, buf: &mut [u8]) -> Result<u64, NetError> {
    let total = cmd.wire_amount();
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    let t0 = timing::now();
    linux::write_all(fd, &header(Op::Tx, total)).map_err(|e| NetError::Sys("write", e))?;
    let mut left = total;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        linux::write_all(fd, &buf[..n]).map_err(|e| NetError::Sys("write", e))?;
        left -= n as u64;
    }
    let mut count = [0u8; 8];
    read_exact(fd, &mut count, "the count of bytes received")?;
    let ticks = timing::now().wrapping_sub(t0);
    let got = u64::from_le_bytes(count);
    if got != total {
        return Err(NetError::Mismatch {
            what: "the server's count of bytes received",
            got,
            expected: total,
        });
    }
    let _ = net_sys::shutdown_write(fd);
    Ok(ticks)
}

/// `rx`: the header, then every byte; returns the ticks taken.
fn receive(fd: u64, cmd: &Command, buf: &mut [u8]) -> Result<u64, NetError> {
    let total = cmd.wire_amount();
    let t0 = timing::now();
    linux::write_all(fd, &header(Op::Rx, total)).map_err(|e| NetError::Sys("write", e))?;
    let mut done = 0;
    while done < total {
        let n = net_sys::read(fd, buf).map_err(|e| NetError::Sys("read", e))?;
        if n == 0 {
            return Err(NetError::Closed {
                what: "rx",
                done,
                expected: total,
            });
        }
        done += n;
    }
    let ticks = timing::now().wrapping_sub(t0);
    if done != total {
        return Err(NetError::Mismatch {
            what: "bytes received",
            got: done,
            expected: total,
        });
    }
    Ok(ticks)
}

/// `rr`: warm-up and timed round trips of one byte; the ticks of each timed one go to
/// `samples`.
fn round_trips(fd: u64, cmd: &Command, samples: &mut [u64]) -> Result<(), NetError> {
    net_sys::set_nodelay(fd).map_err(|e| NetError::Sys("setsockopt TCP_NODELAY", e))?;
    linux::write_all(fd, &header(Op::Rr, cmd.wire_amount())).map_err(|e| NetError::Sys("write", e))?;
    for i in 0..cmd.wire_amount() {
        let byte = [i as u8];
        let mut back = [0u8];
        let t0 = timing::now();
        linux::write_all(fd, &byte).map_err(|e| NetError::Sys("write", e))?;
        read_exact(fd, &mut back, "a round trip")?;
        let ticks = timing::now().wrapping_sub(t0);
        if back != byte {
            return Err(NetError::Mismatch {
                what: "echoed byte",
                got: back[0].into(),
                expected: byte[0].into(),
            });
        }
        if let Some(slot) = i.checked_sub(RR_WARMUP) {
            samples[slot as usize] = ticks;
        }
    }
    Ok(())
}
