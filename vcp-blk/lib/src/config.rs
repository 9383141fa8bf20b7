//! vcp-blk's configuration: which window of the disk each client gets, read-only or
//! not, and its queue depth. It is a short text in a memory region the builder
//! prefills from a file named in `system.xml` (`prefill_path`), one line per client:
//!
//! ```text
//! # comment
//! client 0 start=0 blocks=2048 depth=8 rw
//! client 1 start=2048 blocks=2048 depth=8 ro
//! ```
//!
//! `client N` is the client's index (its channel id and the `clientN_*` symbols);
//! `start`/`blocks` are in 512-byte blocks; `depth` (1..=64, default 8) bounds its
//! requests in flight; `rw` or `ro` is required. The text ends at the first NUL byte
//! (the rest of the region is zero).

use core::fmt;

use vcpos_blk_protocol::MAX_QUEUE_DEPTH;

/// Most clients one vcp-blk serves (the PD has symbols for this many).
pub const MAX_CLIENTS: usize = 4;
/// Queue depth when a line gives none.
pub const DEFAULT_DEPTH: u32 = 8;

/// One client's window of the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First disk block (512 bytes) of the window.
    pub start: u64,
    /// Blocks in the window.
    pub blocks: u64,
    /// Writes are refused.
    pub read_only: bool,
    /// Requests in flight allowed.
    pub depth: u32,
}

impl Window {
    /// The first block after the window.
    pub fn end(&self) -> u64 {
        self.start + self.blocks
    }
}

/// The parsed configuration: a window per client index present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Windows by client index.
    pub clients: [Option<Window>; MAX_CLIENTS],
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
        write!(f, "vcp-blk configuration line {}: {}", self.line, self.what)
    }
}

fn number(s: &str) -> Option<u64> {
    let s = s.replace_underscores();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `str` without `_` (as in system files), without allocating: numbers are short.
trait NoUnderscores {
    fn replace_underscores(&self) -> Digits;
}

struct Digits {
    buf: [u8; 24],
    len: usize,
}

impl core::ops::Deref for Digits {
    type Target = str;
    fn deref(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl NoUnderscores for str {
    fn replace_underscores(&self) -> Digits {
        let mut d = Digits { buf: [0; 24], len: 0 };
        for b in self.bytes().filter(|&b| b != b'_') {
            if d.len == d.buf.len() {
                // Too long for any u64: leave it unparseable.
                return Digits {
                    buf: [b'x'; 24],
                    len: 1,
                };
            }
            d.buf[d.len] = b;
            d.len += 1;
        }
        d
    }
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
                return Err(err("expected 'client N ...'"));
            }
            let index = words.next().and_then(number).ok_or(err("missing client index"))? as usize;
            if index >= MAX_CLIENTS {
                return Err(err("client index out of range (0..4)"));
            }
            if config.clients[index].is_some() {
                return Err(err("client index given twice"));
            }
            let (mut start, mut blocks, mut depth, mut mode) = (None, None, DEFAULT_DEPTH, None);
            for w in words {
                match w.split_once('=') {
                    Some(("start", v)) => start = Some(number(v).ok_or(err("bad start"))?),
                    Some(("blocks", v)) => blocks = Some(number(v).ok_or(err("bad blocks"))?),
                    Some(("depth", v)) => depth = number(v).ok_or(err("bad depth"))? as u32,
                    None if w == "rw" || w == "ro" => {
                        if mode.replace(w == "ro").is_some() {
                            return Err(err("rw/ro given twice"));
                        }
                    }
                    _ => return Err(err("unknown word (expected start=, blocks=, depth=, rw or ro)")),
                }
            }
            let start = start.ok_or(err("missing start="))?;
            let blocks = blocks.ok_or(err("missing blocks="))?;
            let read_only = mode.ok_or(err("missing rw or ro"))?;
            if blocks == 0 || start.checked_add(blocks).is_none() {
                return Err(err("empty or overflowing window"));
            }
            if depth == 0 || depth > MAX_QUEUE_DEPTH {
                return Err(err("depth out of range (1..=64)"));
            }
            let w = Window {
                start,
                blocks,
                read_only,
                depth,
            };
            if config
                .clients
                .iter()
                .flatten()
                .any(|o| w.start < o.end() && o.start < w.end())
            {
                return Err(err("window overlaps another client's"));
            }
            config.clients[index] = Some(w);
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
        let text =
            b"# test\nclient 0 start=0 blocks=2048 rw\n\nclient 1 start=0x800 blocks=2_048 depth=4 ro # ro\n\0\0junk";
        let c = Config::parse(text).unwrap();
        assert_eq!(
            c.clients[0],
            Some(Window {
                start: 0,
                blocks: 2048,
                read_only: false,
                depth: 8
            })
        );
        assert_eq!(
            c.clients[1],
            Some(Window {
                start: 2048,
                blocks: 2048,
                read_only: true,
                depth: 4
            })
        );
        assert_eq!(c.clients[2], None);
    }

    #[test]
    fn errors_name_the_line() {
        let bad = |t: &str| Config::parse(t.as_bytes()).unwrap_err();
        assert_eq!(
            bad("client 0 start=0 blocks=1 rw\nclient 1 start=0 blocks=5 ro").line,
            2
        );
        assert_eq!(
            bad("client 0 start=0 blocks=1 rw\nclient 1 start=0 blocks=5 ro").what,
            "window overlaps another client's"
        );
        assert_eq!(
            bad("client 4 start=0 blocks=1 rw").what,
            "client index out of range (0..4)"
        );
        assert_eq!(bad("client 0 start=0 blocks=1").what, "missing rw or ro");
        assert_eq!(bad("client 0 start=0 blocks=0 rw").what, "empty or overflowing window");
        assert_eq!(
            bad("client 0 start=18446744073709551615 blocks=2 rw").what,
            "empty or overflowing window"
        );
        assert_eq!(
            bad("client 0 start=0 blocks=1 depth=65 rw").what,
            "depth out of range (1..=64)"
        );
        assert_eq!(
            bad("client 0 start=0 blocks=1 rw\nclient 0 start=5 blocks=1 rw").what,
            "client index given twice"
        );
        assert_eq!(bad("disk 0").what, "expected 'client N ...'");
        assert_eq!(
            bad("client 0 start=99999999999999999999999999 blocks=1 rw").what,
            "bad start"
        );
        assert_eq!(bad("# nothing\n").what, "no clients");
        assert_eq!(Config::parse(&[0xff, 0xfe]).unwrap_err().what, "not UTF-8 text");
    }
}
