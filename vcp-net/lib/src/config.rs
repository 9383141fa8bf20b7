//! vcp-net's configuration: the MAC address each client is assigned. It is a short
//! text in a memory region the builder prefills from a file named in `system.xml`
//! (`prefill_path`), one line per client:
//!
//! ```text
//! # comment
//! client 0 mac=02:00:00:00:00:01
//! client 1 mac=02:00:00:00:00:02 ring=256
//! ```
//!
//! `client N` is the client's index (its channel id and the `clientN_*` symbols); the
//! MAC is six hex bytes separated by `:`, unicast (bit 0 of the first byte clear), not
//! all zero, and different from every other client's. `ring=` (optional) is the
//! capacity of the client's four rings, a power of two in 16..=256 (default
//! [`RING_CAPACITY`], 64); the client must configure the same (its control region
//! must hold `ControlLayout::new(ring).size()` bytes). The text ends at the first NUL
//! byte (the rest of the region is zero); the rules every VCP's configuration shares
//! (lines, comments, `client N`, numbers, errors): `vcpos_vcp_common::config`.

use core::fmt;

use vcpos_net_protocol::{MAX_RING_CAPACITY, RING_CAPACITY};
use vcpos_vcp_common::config::parse_clients;
pub use vcpos_vcp_common::config::{ConfigError, MAX_CLIENTS};

/// The parsed configuration: a MAC and a ring capacity per client index present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// MAC addresses by client index.
    pub clients: [Option<[u8; 6]>; MAX_CLIENTS],
    /// Ring capacities by client index (0 for absent clients).
    pub rings: [u32; MAX_CLIENTS],
}

/// Smallest ring capacity a configuration may give.
pub const MIN_RING_CAPACITY: u32 = 16;

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(mac)
}

/// `mac` as `aa:bb:cc:dd:ee:ff` (for log lines).
pub fn format_mac(mac: &[u8; 6]) -> impl fmt::Display + '_ {
    struct Mac<'a>(&'a [u8; 6]);
    impl fmt::Display for Mac<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let m = self.0;
            write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            )
        }
    }
    Mac(mac)
}

impl Config {
    /// Parses the configuration region's bytes (up to the first NUL).
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let parsed = parse_clients(bytes, "vcp-net", "expected 'client N mac=...'", |clients, words| {
            let mut mac = None;
            let mut ring = None;
            for w in words {
                match w.split_once('=') {
                    Some(("mac", v)) => {
                        let m = parse_mac(v).ok_or("bad mac (expected six hex bytes aa:bb:cc:dd:ee:ff)")?;
                        if mac.replace(m).is_some() {
                            return Err("mac given twice");
                        }
                    }
                    Some(("ring", v)) => {
                        let r = v
                            .parse::<u32>()
                            .ok()
                            .filter(|r| r.is_power_of_two() && (MIN_RING_CAPACITY..=MAX_RING_CAPACITY).contains(r))
                            .ok_or("bad ring (expected a power of two in 16..=256)")?;
                        if ring.replace(r).is_some() {
                            return Err("ring given twice");
                        }
                    }
                    _ => return Err("unknown word (expected mac= or ring=)"),
                }
            }
            let mac = mac.ok_or("missing mac=")?;
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return Err("mac is not a unicast address");
            }
            if clients.iter().flatten().any(|&(m, _)| m == mac) {
                return Err("mac is another client's");
            }
            Ok((mac, ring.unwrap_or(RING_CAPACITY)))
        })?;
        let mut config = Config::default();
        for (i, c) in parsed.iter().enumerate() {
            if let Some((mac, ring)) = *c {
                config.clients[i] = Some(mac);
                config.rings[i] = ring;
            }
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clients() {
        let text = b"# test\nclient 0 mac=02:00:00:00:00:01\n\nclient 2 ring=256 mac=0a:BB:cc:dd:ee:ff # two\n\0junk";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.clients[0], Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(c.rings, [RING_CAPACITY, 0, 256, 0]);
        assert_eq!(c.clients[1], None);
        assert_eq!(c.clients[2], Some([0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff]));
        assert_eq!(
            format_mac(&[0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff]).to_string(),
            "0a:bb:cc:dd:ee:ff"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let bad = |t: &str| Config::parse(t.as_bytes()).unwrap_err();
        let two = bad("client 0 mac=02:00:00:00:00:01\nclient 1 mac=02:00:00:00:00:01");
        assert_eq!((two.line, two.what), (2, "mac is another client's"));
        assert_eq!(
            bad("client 0 mac=03:00:00:00:00:01").what,
            "mac is not a unicast address"
        );
        assert_eq!(
            bad("client 0 mac=00:00:00:00:00:00").what,
            "mac is not a unicast address"
        );
        let badmac = "bad mac (expected six hex bytes aa:bb:cc:dd:ee:ff)";
        assert_eq!(bad("client 0 mac=02:00:00:00:00").what, badmac);
        assert_eq!(bad("client 0 mac=02:00:00:00:00:01:02").what, badmac);
        assert_eq!(bad("client 0 mac=02:00:00:00:00:g1").what, badmac);
        assert_eq!(bad("client 0 mac=2:00:00:00:00:01").what, badmac);
        assert_eq!(
            bad("client 4 mac=02:00:00:00:00:01").what,
            "client index out of range (0..4)"
        );
        assert_eq!(bad("client 0").what, "missing mac=");
        assert_eq!(bad("client x mac=02:00:00:00:00:01").what, "missing client index");
        assert_eq!(bad("client 0 mtu=9000").what, "unknown word (expected mac= or ring=)");
        let badring = "bad ring (expected a power of two in 16..=256)";
        for r in ["0", "8", "100", "512", "x", "-64"] {
            assert_eq!(
                bad(&format!("client 0 mac=02:00:00:00:00:01 ring={r}")).what,
                badring,
                "{r}"
            );
        }
        assert_eq!(
            bad("client 0 mac=02:00:00:00:00:01 ring=64 ring=64").what,
            "ring given twice"
        );
        assert_eq!(
            bad("client 0 mac=02:00:00:00:00:01\nclient 0 mac=02:00:00:00:00:02").what,
            "client index given twice"
        );
        assert_eq!(bad("nic 0").what, "expected 'client N mac=...'");
        assert_eq!(bad("# nothing\n").what, "no clients");
        assert_eq!(
            bad("client 0").to_string(),
            "vcp-net configuration line 1: missing mac="
        );
        assert_eq!(Config::parse(&[0xff, 0xfe]).unwrap_err().what, "not UTF-8 text");
    }
}
