//! The network benchmark's pure parts (`vcpos-mmio-bench net ...`): its command line,
//! the wire protocol it speaks with the host's server (the test harness, which uses
//! this module too, so the protocol has one home) and its `BENCH net_*` lines.
//!
//! The guest connects to the server and sends a 9-byte header: one operation byte and
//! a little-endian `u64`:
//! - [`Op::Tx`] (`T`, bytes): the guest sends that many bytes; the server answers,
//!   after the last, with the count it received (8 bytes, little-endian).
//! - [`Op::Rx`] (`R`, bytes): the server sends that many bytes, then closes.
//! - [`Op::Rr`] (`E`, round trips): that many times the guest sends one byte and the
//!   server sends it back; then the server closes.
//!
//! `net listen PORT MIB` turns the roles round: the guest listens, the host connects
//! (through a port forward) and sends MIB MiB without a header, and the guest answers
//! with its count of bytes received (8 bytes, little-endian); its line is
//! `BENCH net_rx_fwd ...` ([`LISTEN_BENCH`]).

use core::fmt::{self, Write};

use crate::parse_number;

/// The command line after `net`, for messages.
pub const USAGE: &str = "net tx|rx IPV4 PORT MIB | net rr IPV4 PORT COUNT | net listen PORT MIB";
/// The `BENCH` name of `net listen`: received through the host's port forward.
pub const LISTEN_BENCH: &str = "net_rx_fwd";
/// Length of the request header.
pub const HEADER_LEN: usize = 9;
/// The most MiB one `tx`/`rx` moves.
pub const MAX_MIB: u64 = 4096;
/// The most timed round trips of one `rr` (the samples live on the stack).
pub const MAX_ROUND_TRIPS: u64 = 4096;
/// Untimed round trips before the timed ones (connection and translated code warm).
pub const RR_WARMUP: u64 = 20;

/// What one connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// The guest sends (transmit, from the guest's view).
    Tx,
    /// The guest receives.
    Rx,
    /// Request/response round trips of one byte each way.
    Rr,
}

impl Op {
    /// The header's operation byte.
    pub const fn byte(self) -> u8 {
        match self {
            Op::Tx => b'T',
            Op::Rx => b'R',
            Op::Rr => b'E',
        }
    }

    /// The name of its `BENCH` line.
    pub const fn bench_name(self) -> &'static str {
        match self {
            Op::Tx => "net_tx",
            Op::Rx => "net_rx",
            Op::Rr => "net_rr",
        }
    }
}

/// The request header of `op` with `amount` (bytes, or round trips for [`Op::Rr`]).
pub fn header(op: Op, amount: u64) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[0] = op.byte();
    h[1..].copy_from_slice(&amount.to_le_bytes());
    h
}

/// Reads a request header; the error names a bad operation byte.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> Result<(Op, u64), HeaderError> {
    let op = match h[0] {
        b'T' => Op::Tx,
        b'R' => Op::Rx,
        b'E' => Op::Rr,
        other => return Err(HeaderError(other)),
    };
    let mut n = [0; 8];
    n.copy_from_slice(&h[1..]);
    Ok((op, u64::from_le_bytes(n)))
}

/// A header whose operation byte is none of [`Op`]'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderError(pub u8);

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown operation byte {:#04x} in the request header (expected T, R or E)",
            self.0
        )
    }
}

/// A parsed `net` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Command {
    /// What to measure.
    pub op: Op,
    /// The server's IPv4 address.
    pub addr: [u8; 4],
    /// Its TCP port.
    pub port: u16,
    /// MiB for `tx`/`rx`, timed round trips for `rr`.
    pub amount: u64,
}

impl Command {
    /// What the request header carries: bytes for `tx`/`rx`, round trips (warm-up
    /// included) for `rr`.
    pub fn wire_amount(&self) -> u64 {
        match self.op {
            Op::Tx | Op::Rx => self.amount << 20,
            Op::Rr => self.amount + RR_WARMUP,
        }
    }
}

/// A dotted-quad IPv4 address.
pub fn parse_ipv4(text: &[u8]) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = text.split(|&c| c == b'.');
    for o in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *o = u8::try_from(p.iter().fold(0u32, |v, &c| v * 10 + u32::from(c - b'0'))).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Parses the arguments after `net`; the error says what is wrong.
pub fn parse_command(args: &[&[u8]]) -> Result<Command, &'static str> {
    let [op, addr, port, amount] = args else {
        return Err(if args.is_empty() {
            "no net command"
        } else {
            "wrong number of arguments"
        });
    };
    let op = match *op {
        b"tx" => Op::Tx,
        b"rx" => Op::Rx,
        b"rr" => Op::Rr,
        _ => return Err("unknown net command"),
    };
    let addr = parse_ipv4(addr).ok_or("IPV4 must be a dotted-quad address")?;
    let port = parse_number(port)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0);
    let port = port.ok_or("PORT must be 1-65535")?;
    let amount = parse_number(amount)
        .filter(|&n| n != 0)
        .ok_or("the amount must be a positive number")?;
    let limit = if op == Op::Rr { MAX_ROUND_TRIPS } else { MAX_MIB };
    if amount > limit {
        return Err(if op == Op::Rr {
            "COUNT is over 4096"
        } else {
            "MIB is over 4096"
        });
    }
    Ok(Command { op, addr, port, amount })
}

/// Parses the arguments of `net listen PORT MIB` (after `net`): the port and MiB.
pub fn parse_listen(args: &[&[u8]]) -> Result<(u16, u64), &'static str> {
    let [b"listen", port, mib] = args else {
        return Err("usage: net listen PORT MIB");
    };
    let port = parse_number(port)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|&p| p != 0);
    let port = port.ok_or("PORT must be 1-65535")?;
    let mib = parse_number(mib)
        .filter(|&n| n != 0)
        .ok_or("the amount must be a positive number")?;
    if mib > MAX_MIB {
        return Err("MIB is over 4096");
    }
    Ok((port, mib))
}

/// Megabits per second (10^6 bits) times 10, of `bytes` in `ns` nanoseconds (0 if
/// `ns` is 0).
pub fn deci_mbit_per_s(bytes: u64, ns: u64) -> u64 {
    if ns == 0 {
        return 0;
    }
    // bytes * 8 / 1e6 / (ns / 1e9) * 10 = bytes * 80_000 / ns
    u64::try_from(u128::from(bytes) * 80_000 / u128::from(ns)).unwrap_or(u64::MAX)
}

/// The sysfs counter of the frames `op`'s data moves through `eth0`: sent for
/// [`Op::Tx`], received otherwise.
pub const fn frame_counter(op: Op) -> &'static core::ffi::CStr {
    match op {
        Op::Tx => c"/sys/class/net/eth0/statistics/tx_packets",
        Op::Rx | Op::Rr => c"/sys/class/net/eth0/statistics/rx_packets",
    }
}

/// Writes `BENCH <name> mbit_per_s=<x.y> bytes=.. elapsed_ns=..` (`name`: `net_tx`,
/// `net_rx` or [`LISTEN_BENCH`]) and, when
/// known, ` frames=N` (the frames `eth0` counted in the data's direction meanwhile),
/// and a line end.
pub fn write_throughput_line(
    out: &mut impl Write,
    name: &str,
    bytes: u64,
    ns: u64,
    frames: Option<u64>,
) -> fmt::Result {
    let m = deci_mbit_per_s(bytes, ns);
    write!(
        out,
        "BENCH {} mbit_per_s={}.{} bytes={bytes} elapsed_ns={ns}",
        name,
        m / 10,
        m % 10
    )?;
    if let Some(f) = frames {
        write!(out, " frames={f}")?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TextBuf;

    #[test]
    fn commands_parse() {
        let c = parse_command(&[b"tx", b"10.0.2.2", b"5001", b"64"]).unwrap();
        assert_eq!(
            c,
            Command {
                op: Op::Tx,
                addr: [10, 0, 2, 2],
                port: 5001,
                amount: 64
            }
        );
        assert_eq!(c.wire_amount(), 64 << 20);
        let r = parse_command(&[b"rr", b"127.0.0.1", b"0x10", b"100"]).unwrap();
        assert_eq!((r.op, r.port, r.wire_amount()), (Op::Rr, 16, 100 + RR_WARMUP));
        for (args, why) in [
            (&[][..], "no net command"),
            (&[&b"tx"[..], b"10.0.2.2", b"1"][..], "wrong number"),
            (&[&b"up"[..], b"10.0.2.2", b"1", b"1"][..], "unknown net command"),
            (&[&b"tx"[..], b"10.0.2", b"1", b"1"][..], "dotted-quad"),
            (&[&b"tx"[..], b"10.0.2.256", b"1", b"1"][..], "dotted-quad"),
            (&[&b"tx"[..], b"10.0.2.2.1", b"1", b"1"][..], "dotted-quad"),
            (&[&b"tx"[..], b"10..2.2", b"1", b"1"][..], "dotted-quad"),
            (&[&b"tx"[..], b"10.0.2.2", b"65536", b"1"][..], "PORT"),
            (&[&b"tx"[..], b"10.0.2.2", b"0", b"1"][..], "PORT"),
            (&[&b"rx"[..], b"10.0.2.2", b"80", b"0"][..], "positive"),
            (&[&b"rx"[..], b"10.0.2.2", b"80", b"4097"][..], "MIB is over"),
            (&[&b"rr"[..], b"10.0.2.2", b"80", b"5000"][..], "COUNT is over"),
        ] {
            let e = parse_command(args).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
    }

    #[test]
    fn listen_parses() {
        assert_eq!(parse_listen(&[b"listen", b"5000", b"64"]), Ok((5000, 64)));
        assert!(parse_listen(&[b"listen", b"0", b"64"]).unwrap_err().contains("PORT"));
        assert!(parse_listen(&[b"listen", b"5000", b"4097"])
            .unwrap_err()
            .contains("over"));
        assert!(parse_listen(&[b"listen", b"5000"]).unwrap_err().contains("usage"));
        assert!(parse_listen(&[b"rx", b"5000", b"1"]).unwrap_err().contains("usage"));
    }

    #[test]
    fn headers_round_trip() {
        for op in [Op::Tx, Op::Rx, Op::Rr] {
            assert_eq!(parse_header(&header(op, 0x0102_0304_0506)), Ok((op, 0x0102_0304_0506)));
        }
        assert_eq!(header(Op::Rx, 1), [b'R', 1, 0, 0, 0, 0, 0, 0, 0]);
        let bad = parse_header(&[b'X', 0, 0, 0, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(bad, HeaderError(b'X'));
        let mut t = TextBuf::<128>::new();
        write!(t, "{bad}").unwrap();
        assert!(core::str::from_utf8(t.as_bytes()).unwrap().contains("0x58"));
    }

    #[test]
    fn throughput_lines() {
        // 64 MiB in 1 s: 536.8 Mb/s.
        assert_eq!(deci_mbit_per_s(64 << 20, 1_000_000_000), 5368);
        assert_eq!(deci_mbit_per_s(1, 0), 0);
        let mut t = TextBuf::<128>::new();
        write_throughput_line(&mut t, Op::Rx.bench_name(), 1_000_000, 8_000_000, None).unwrap();
        assert_eq!(
            t.as_bytes(),
            b"BENCH net_rx mbit_per_s=1000.0 bytes=1000000 elapsed_ns=8000000\n"
        );
        t.clear();
        write_throughput_line(&mut t, LISTEN_BENCH, 3, 8, Some(77)).unwrap();
        assert_eq!(
            t.as_bytes(),
            b"BENCH net_rx_fwd mbit_per_s=3000.0 bytes=3 elapsed_ns=8 frames=77\n"
        );
        assert!(frame_counter(Op::Tx)
            .to_bytes()
            .ends_with(b"/eth0/statistics/tx_packets"));
        assert!(frame_counter(Op::Rx)
            .to_bytes()
            .ends_with(b"/eth0/statistics/rx_packets"));
    }
}
