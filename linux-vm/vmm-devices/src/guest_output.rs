//! Guest console output made unmistakable: every line the guest prints reaches the
//! serial console behind [`GUEST_LINE_PREFIX`], so a guest cannot start a line with a
//! test verdict or a kernel report (`TEST PASS:`, `vcpos|FAULT:`) that the runner or a
//! person would believe.
//!
//! [`LinePrefixer`] tracks line starts across chunks (a line may arrive in many
//! writes, e.g. a prompt and then the echo of what is typed), treats both `\n` and a
//! bare `\r` as line ends (`\r\n` is one), and breaks a line longer than
//! [`MAX_GUEST_LINE`] bytes, so a reader that cuts overlong lines cannot be made to
//! start one at a guest-chosen byte. Every guest output path (the virtio console and
//! the emulated PL011) goes through one prefixer.
//!
//! Limit: output of other PDs or the kernel that lands in the middle of an unfinished
//! guest line ends that line on the serial console, and the rest of the guest's line
//! follows without the prefix. Only the kernel's console could prevent that.

use alloc::vec::Vec;

pub use vcpos_abi::console::GUEST_LINE_PREFIX;

/// Longest guest line passed on whole; longer ones are broken (a new prefixed line
/// continues them). Far below the runner's 64 KiB line limit.
pub const MAX_GUEST_LINE: usize = 4096;

/// Puts [`GUEST_LINE_PREFIX`] before every line of a guest's output stream.
#[derive(Clone, Debug)]
pub struct LinePrefixer {
    /// The next byte starts a line.
    at_line_start: bool,
    /// The last byte was `\r` (a following `\n` belongs to the same line end).
    after_cr: bool,
    /// Bytes of the current line so far (prefix not counted).
    line_len: usize,
}

impl Default for LinePrefixer {
    fn default() -> Self {
        Self::new()
    }
}

impl LinePrefixer {
    /// A prefixer at the start of a line.
    pub fn new() -> Self {
        LinePrefixer {
            at_line_start: true,
            after_cr: false,
            line_len: 0,
        }
    }

    /// Whether the next byte starts a new line.
    pub fn at_line_start(&self) -> bool {
        self.at_line_start
    }

    /// Appends `bytes` to `out` with the prefix at every line start.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        for &b in bytes {
            let crlf = b == b'\n' && self.after_cr;
            if self.at_line_start && !crlf {
                out.extend_from_slice(GUEST_LINE_PREFIX.as_bytes());
                self.at_line_start = false;
                self.line_len = 0;
            }
            out.push(b);
            self.after_cr = b == b'\r';
            if b == b'\n' || b == b'\r' {
                self.at_line_start = true;
            } else {
                self.line_len += 1;
                if self.line_len >= MAX_GUEST_LINE {
                    out.push(b'\n');
                    self.at_line_start = true;
                }
            }
        }
    }

    /// `bytes` with the prefix at every line start, as a new buffer.
    pub fn prefixed(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len() + GUEST_LINE_PREFIX.len());
        self.push(bytes, &mut out);
        out
    }

    /// Back to a line start (a new guest boot begins on a new line: the VMM prints
    /// its boot report first).
    pub fn reset(&mut self) {
        *self = Self::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn run(chunks: &[&[u8]]) -> String {
        let mut p = LinePrefixer::new();
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        String::from_utf8(out).unwrap()
    }

    /// Every line of `text` (split the way the runner does, at `\n`, and also at
    /// `\r`) starts with the prefix.
    fn every_line_prefixed(text: &str) -> bool {
        text.split(['\n', '\r'])
            .filter(|l| !l.is_empty())
            .all(|l| l.starts_with(GUEST_LINE_PREFIX))
    }

    #[test]
    fn forged_markers_end_up_behind_the_prefix() {
        let out = run(&[
            b"TEST PASS: linux-forge\r\n",
            b"x\nTEST PASS: y\n",
            b"vcpos|FAULT: PD 'x'\n",
        ]);
        assert_eq!(
            out,
            "guest| TEST PASS: linux-forge\r\nguest| x\nguest| TEST PASS: y\nguest| vcpos|FAULT: PD 'x'\n"
        );
        assert!(every_line_prefixed(&out));
    }

    #[test]
    fn line_starts_are_tracked_across_chunks() {
        // A prompt without a line end, then the echo of a command typed at it, byte by
        // byte, then the answer.
        let out = run(&[b"vcpos-guest# ", b"e", b"cho hi\r", b"\n", b"hi\r\n", b"vcpos-guest# "]);
        assert_eq!(out, "guest| vcpos-guest# echo hi\r\nguest| hi\r\nguest| vcpos-guest# ");
        // A line end at the end of a chunk: the next chunk's first byte starts a line.
        assert_eq!(run(&[b"a\n", b"TEST PASS: z"]), "guest| a\nguest| TEST PASS: z");
        assert_eq!(run(&[b"a\r", b"\nb"]), "guest| a\r\nguest| b");
    }

    #[test]
    fn bare_carriage_returns_and_empty_lines_get_the_prefix() {
        let out = run(&[b"abc\rTEST PASS: cr\n\n"]);
        assert_eq!(out, "guest| abc\rguest| TEST PASS: cr\nguest| \n");
        assert!(every_line_prefixed(&out));
    }

    #[test]
    fn overlong_lines_are_broken_with_a_new_prefix() {
        let mut long = alloc::vec![b'x'; MAX_GUEST_LINE];
        long.extend_from_slice(b"TEST PASS: long");
        let out = run(&[&long]);
        let lines: Vec<&str> = out.split('\n').collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), GUEST_LINE_PREFIX.len() + MAX_GUEST_LINE);
        assert_eq!(lines[1], "guest| TEST PASS: long");
    }

    #[test]
    fn arbitrary_chunking_never_leaves_a_line_without_the_prefix() {
        // Deterministic pseudo-random bytes from a small alphabet heavy in line ends,
        // cut into chunks of varying size.
        let mut seed: u32 = 0x1234_5678;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for _ in 0..200 {
            let len = (next() % 300) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| b"ab\r\nT"[(next() % 5) as usize]).collect();
            let mut p = LinePrefixer::new();
            let mut out = Vec::new();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let n = ((next() % 7) as usize + 1).min(rest.len());
                p.push(&rest[..n], &mut out);
                rest = &rest[n..];
            }
            let text = String::from_utf8(out.clone()).unwrap();
            assert!(every_line_prefixed(&text), "{bytes:?} -> {text:?}");
            // Removing the prefixes gives back the guest's bytes.
            assert_eq!(text.replace(GUEST_LINE_PREFIX, "").into_bytes(), bytes);
        }
    }
}
