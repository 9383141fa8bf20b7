//! The status PD's configuration text (its optional prefilled `config` region): the
//! interface's static address, so the PD can share a network with others (in
//! `system.xml` the Linux guest takes 10.0.2.15 by DHCP and the PD 10.0.2.16).
//!
//! Lines of text; `#` starts a comment; blank lines and trailing NUL bytes (a region
//! larger than its text) are ignored. The one setting is `address=A.B.C.D/N` (N 1-32).
//! Without a config region, or without `address=`, the PD takes
//! [`crate::server::ADDRESS`]/[`crate::server::PREFIX_LEN`].

use core::fmt;

use smoltcp::wire::{IpCidr, Ipv4Address};

use crate::server::{ADDRESS, PREFIX_LEN};

/// The status PD's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The interface's address.
    pub address: Ipv4Address,
    /// Its network prefix length.
    pub prefix_len: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            address: ADDRESS,
            prefix_len: PREFIX_LEN,
        }
    }
}

impl Config {
    /// The address with its prefix.
    pub fn cidr(&self) -> IpCidr {
        IpCidr::new(self.address.into(), self.prefix_len)
    }

    /// Parses the configuration text `text` (see the module docs).
    pub fn parse(text: &[u8]) -> Result<Config, ConfigError> {
        let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let text = core::str::from_utf8(&text[..end]).map_err(|_| ConfigError {
            line: 0,
            what: "not UTF-8",
        })?;
        let mut config = Config::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            let err = |what| ConfigError { line: n + 1, what };
            let value = line
                .strip_prefix("address=")
                .ok_or(err("expected 'address=A.B.C.D/N'"))?;
            let (addr, len) = value
                .split_once('/')
                .ok_or(err("address needs a prefix length (A.B.C.D/N)"))?;
            config.address = addr.parse().map_err(|_| err("not an IPv4 address"))?;
            config.prefix_len = len
                .parse()
                .ok()
                .filter(|l| (1..=32).contains(l))
                .ok_or(err("prefix length not 1-32"))?;
        }
        Ok(config)
    }
}

/// A configuration line the PD cannot take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The line (from 1; 0: the whole text).
    pub line: usize,
    /// What is wrong.
    pub what: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config line {}: {}", self.line, self.what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_and_default() {
        assert_eq!(Config::parse(b"").unwrap(), Config::default());
        assert_eq!(Config::default().address, Ipv4Address::new(10, 0, 2, 15));
        let c = Config::parse(b"# system.xml\naddress=10.0.2.16/24 # beside Linux\n\0\0\0").unwrap();
        assert_eq!(c.address, Ipv4Address::new(10, 0, 2, 16));
        assert_eq!(c.prefix_len, 24);
        assert_eq!(c.cidr().to_string(), "10.0.2.16/24");
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, line, what) in [
            (&b"mac=1"[..], 1, "expected"),
            (b"\naddress=10.0.2.16", 2, "prefix length (A.B"),
            (b"address=10.0.2/24", 1, "not an IPv4"),
            (b"address=10.0.2.16/33", 1, "1-32"),
            (b"address=10.0.2.16/0", 1, "1-32"),
            (b"\xff", 0, "UTF-8"),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{e}");
            assert!(e.what.contains(what), "{e}");
        }
    }
}
