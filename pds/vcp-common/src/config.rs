//! The configuration text of a VCP: a short text in a memory region the builder
//! prefills from a file named in `system.xml` (`prefill_path`), one line per client:
//!
//! ```text
//! # comment
//! client 0 key=value ... word ...
//! ```
//!
//! This module reads what every VCP's text has in common: the text ends at the first
//! NUL byte (the rest of the region is zero), `#` starts a comment, blank lines are
//! skipped, each other line is `client N` (N in `0..MAX_CLIENTS`, each at most once)
//! followed by words the VCP reads itself ([`parse_clients`]); numbers are decimal or
//! `0x` hexadecimal with optional `_` separators ([`number`]). Errors name the line.

use core::fmt;
use core::str::SplitWhitespace;

/// Most clients one VCP serves (each VCP PD has symbols for this many).
pub const MAX_CLIENTS: usize = 4;
/// The error for an index `>= MAX_CLIENTS`.
const INDEX_OUT_OF_RANGE: &str = "client index out of range (0..4)";
const _: () = assert!(MAX_CLIENTS == 4, "INDEX_OUT_OF_RANGE names the range");

/// A configuration error: the VCP, the line (1-based) and what is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The VCP whose configuration it is (`vcp-blk`), for the message.
    pub vcp: &'static str,
    /// Line number, 1-based (0: the whole text).
    pub line: usize,
    /// What is wrong.
    pub what: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} configuration line {}: {}", self.vcp, self.line, self.what)
    }
}

/// Parses the configuration region's `bytes` (up to the first NUL) of the VCP named
/// `vcp`: for each `client N ...` line, `parse_line(clients so far, rest of the
/// words)` returns client N's settings, or what is wrong with them. A first word other
/// than `client` is the error `usage` (e.g. `"expected 'client N ...'"`). At least one
/// client is required.
pub fn parse_clients<'a, T: Copy>(
    bytes: &'a [u8],
    vcp: &'static str,
    usage: &'static str,
    mut parse_line: impl FnMut(&[Option<T>; MAX_CLIENTS], SplitWhitespace<'a>) -> Result<T, &'static str>,
) -> Result<[Option<T>; MAX_CLIENTS], ConfigError> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = core::str::from_utf8(&bytes[..end]).map_err(|_| ConfigError {
        vcp,
        line: 0,
        what: "not UTF-8 text",
    })?;
    let mut clients = [None; MAX_CLIENTS];
    let mut any = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |what| ConfigError { vcp, line, what };
        let content = raw.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let mut words = content.split_whitespace();
        if words.next() != Some("client") {
            return Err(err(usage));
        }
        let index = words.next().and_then(number).ok_or(err("missing client index"))?;
        let index = usize::try_from(index)
            .ok()
            .filter(|&i| i < MAX_CLIENTS)
            .ok_or(err(INDEX_OUT_OF_RANGE))?;
        if clients[index].is_some() {
            return Err(err("client index given twice"));
        }
        clients[index] = Some(parse_line(&clients, words).map_err(err)?);
        any = true;
    }
    if !any {
        return Err(ConfigError {
            vcp,
            line: 0,
            what: "no clients",
        });
    }
    Ok(clients)
}

/// A number as system files write them: decimal or `0x` hexadecimal, `_` anywhere
/// ignored (`2_048`, `0x800`). `None` if it is not one or does not fit a `u64`.
pub fn number(s: &str) -> Option<u64> {
    let digits = without_underscores(s)?;
    let s = digits.as_str();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// `s` without `_`, without allocating: `None` if longer than any `u64` is written.
fn without_underscores(s: &str) -> Option<Digits> {
    let mut d = Digits { buf: [0; 24], len: 0 };
    for b in s.bytes().filter(|&b| b != b'_') {
        *d.buf.get_mut(d.len)? = b;
        d.len += 1;
    }
    Some(d)
}

/// Up to 24 bytes of a number's text.
struct Digits {
    buf: [u8; 24],
    len: usize,
}

impl Digits {
    fn as_str(&self) -> &str {
        // Bytes of a `str` without its ASCII `_`s are still UTF-8.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(number("2048"), Some(2048));
        assert_eq!(number("2_048"), Some(2048));
        assert_eq!(number("0x800"), Some(2048));
        assert_eq!(number("0x_8_00"), Some(2048));
        assert_eq!(number("18446744073709551615"), Some(u64::MAX));
        assert_eq!(number("18446744073709551616"), None);
        assert_eq!(number("99999999999999999999999999"), None);
        assert_eq!(number("1__________________________"), Some(1));
        assert_eq!(number("1234567890123456789012345"), None);
        assert_eq!(number(""), None);
        assert_eq!(number("0x"), None);
        assert_eq!(number("x1"), None);
        assert_eq!(number("-1"), None);
    }

    /// A VCP whose lines are `client N v=NUMBER`, values different from each other's.
    fn parse(text: &str) -> Result<[Option<u64>; MAX_CLIENTS], ConfigError> {
        parse_clients(
            text.as_bytes(),
            "vcp-test",
            "expected 'client N v=...'",
            |clients, words| {
                let mut v = None;
                for w in words {
                    match w.split_once('=') {
                        Some(("v", x)) => v = Some(number(x).ok_or("bad v")?),
                        _ => return Err("unknown word"),
                    }
                }
                let v = v.ok_or("missing v=")?;
                if clients.iter().flatten().any(|&o| o == v) {
                    return Err("v is another client's");
                }
                Ok(v)
            },
        )
    }

    #[test]
    fn parses_client_lines() {
        let c = parse("# test\n\n  client 0 v=1 # one\nclient 0x2 v=2\n\0client 3 v=junk").unwrap();
        assert_eq!(c, [Some(1), None, Some(2), None]);
        assert_eq!(parse("client 3 v=5\r\n"), Ok([None, None, None, Some(5)]));
    }

    #[test]
    fn errors_name_the_line() {
        let bad = |t: &str| parse(t).unwrap_err();
        let e = bad("client 0 v=1\nclient 1 v=1");
        assert_eq!(
            e,
            ConfigError {
                vcp: "vcp-test",
                line: 2,
                what: "v is another client's"
            }
        );
        assert_eq!(e.to_string(), "vcp-test configuration line 2: v is another client's");
        assert_eq!(bad("client 4 v=1").what, "client index out of range (0..4)");
        assert_eq!(
            bad("client 18446744073709551615 v=1").what,
            "client index out of range (0..4)"
        );
        assert_eq!(bad("client x v=1").what, "missing client index");
        assert_eq!(bad("client").what, "missing client index");
        assert_eq!(bad("client 0 v=1\n# two\nclient 0 v=2").line, 3);
        assert_eq!(bad("client 0 v=1\nclient 0 v=2").what, "client index given twice");
        assert_eq!(bad("disk 0").what, "expected 'client N v=...'");
        assert_eq!(bad("client 0 w=1").what, "unknown word");
        assert_eq!(bad("client 0").what, "missing v=");
        let none = bad("# nothing\n\n");
        assert_eq!((none.line, none.what), (0, "no clients"));
        assert_eq!(bad("\0client 0 v=1").what, "no clients");
        let utf8 = parse_clients::<u8>(&[0xff, 0xfe], "vcp-test", "", |_, _| Ok(0)).unwrap_err();
        assert_eq!((utf8.line, utf8.what), (0, "not UTF-8 text"));
    }
}
