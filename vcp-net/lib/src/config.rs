//! vcp-net's configuration: the MAC address each client is assigned. It is a short
//! text in a memory region the builder prefills from a file named in `system.xml`
//! (`prefill_path`), one line per client:
//!
//! ```text
//! # comment
//! client 0 mac=02:00:00:00:00:01
//! client 1 mac=02:00:00:00:00:02
//! ```
//!
//! `client N` is the client's index (its channel id and the `clientN_*` symbols); the
//! MAC is six hex bytes separated by `:`, unicast (bit 0 of the first byte clear), not
//! all zero, and different from every other client's. The text ends at the first NUL
//! byte (the rest of the region is zero).

use core::fmt;

/// Most clients one vcp-net serves (the PD has symbols for this many).
pub const MAX_CLIENTS: usize = 4;

/// The parsed configuration: a MAC per client index present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// MAC addresses by client index.
    pub clients: [Option<[u8; 6]>; MAX_CLIENTS],
}

/// A configuration error: the line (1-based) and what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Line number, 1-based (0: the whole text).
    pub line: usize,
    /// What is wrong.
    pub what: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vcp-net configuration line {}: {}", self.line, self.what)
    }
}

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
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let text = core::str::from_utf8(&bytes[..end]).map_err(|_| ConfigError {
            line: 0,
            what: "not UTF-8 text",
        })?;
        let mut config = Config::default();
        let mut any = false;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let err = |what| ConfigError { line, what };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            if words.next() != Some("client") {
                return Err(err("expected 'client N mac=...'"));
            }
            let index: usize = words
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or(err("missing client index"))?;
            if index >= MAX_CLIENTS {
                return Err(err("client index out of range (0..4)"));
            }
            if config.clients[index].is_some() {
                return Err(err("client index given twice"));
            }
            let mut mac = None;
            for w in words {
                match w.split_once('=') {
                    Some(("mac", v)) => {
                        let m = parse_mac(v).ok_or(err("bad mac (expected six hex bytes aa:bb:cc:dd:ee:ff)"))?;
                        if mac.replace(m).is_some() {
                            return Err(err("mac given twice"));
                        }
                    }
                    _ => return Err(err("unknown word (expected mac=)")),
                }
            }
            let mac = mac.ok_or(err("missing mac="))?;
            if mac[0] & 1 != 0 || mac == [0; 6] {
                return Err(err("mac is not a unicast address"));
            }
            if config.clients.iter().flatten().any(|&m| m == mac) {
                return Err(err("mac is another client's"));
            }
            config.clients[index] = Some(mac);
            any = true;
        }
        if !any {
            return Err(ConfigError {
                line: 0,
                what: "no clients",
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_clients() {
        let text = b"# test\nclient 0 mac=02:00:00:00:00:01\n\nclient 2 mac=0a:BB:cc:dd:ee:ff # two\n\0junk";
        let c = Config::parse(text).unwrap();
        assert_eq!(c.clients[0], Some([2, 0, 0, 0, 0, 1]));
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
        assert_eq!(bad("client 0 mtu=9000").what, "unknown word (expected mac=)");
        assert_eq!(
            bad("client 0 mac=02:00:00:00:00:01\nclient 0 mac=02:00:00:00:00:02").what,
            "client index given twice"
        );
        assert_eq!(bad("nic 0").what, "expected 'client N mac=...'");
        assert_eq!(bad("# nothing\n").what, "no clients");
        assert_eq!(Config::parse(&[0xff, 0xfe]).unwrap_err().what, "not UTF-8 text");
    }
}
