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
//! (the rest of the region is zero); the rules every VCP's configuration shares (lines,
//! comments, `client N`, numbers, errors): `vcpos_vcp_common::config`.

use vcpos_blk_protocol::MAX_QUEUE_DEPTH;
use vcpos_vcp_common::config::{number, parse_clients};
pub use vcpos_vcp_common::config::{ConfigError, MAX_CLIENTS};

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

impl Config {
    /// Parses the configuration region's bytes (up to the first NUL).
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let clients = parse_clients(
            bytes,
            "vcp-blk",
            "expected 'client N ...'",
            |clients: &[Option<Window>; MAX_CLIENTS], words| {
                let (mut start, mut blocks, mut depth, mut mode) = (None, None, DEFAULT_DEPTH, None);
                for w in words {
                    match w.split_once('=') {
                        Some(("start", v)) => start = Some(number(v).ok_or("bad start")?),
                        Some(("blocks", v)) => blocks = Some(number(v).ok_or("bad blocks")?),
                        Some(("depth", v)) => depth = number(v).ok_or("bad depth")? as u32,
                        None if w == "rw" || w == "ro" => {
                            if mode.replace(w == "ro").is_some() {
                                return Err("rw/ro given twice");
                            }
                        }
                        _ => return Err("unknown word (expected start=, blocks=, depth=, rw or ro)"),
                    }
                }
                let start = start.ok_or("missing start=")?;
                let blocks = blocks.ok_or("missing blocks=")?;
                let read_only = mode.ok_or("missing rw or ro")?;
                if blocks == 0 || start.checked_add(blocks).is_none() {
                    return Err("empty or overflowing window");
                }
                if depth == 0 || depth > MAX_QUEUE_DEPTH {
                    return Err("depth out of range (1..=64)");
                }
                let w = Window {
                    start,
                    blocks,
                    read_only,
                    depth,
                };
                if clients.iter().flatten().any(|o| w.start < o.end() && o.start < w.end()) {
                    return Err("window overlaps another client's");
                }
                Ok(w)
            },
        )?;
        Ok(Config { clients })
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
        assert_eq!(
            bad("client 0 start=0 blocks=1 rw\nclient 0 start=5 blocks=1 rw").to_string(),
            "vcp-blk configuration line 2: client index given twice"
        );
        assert_eq!(Config::parse(&[0xff, 0xfe]).unwrap_err().what, "not UTF-8 text");
    }
}
