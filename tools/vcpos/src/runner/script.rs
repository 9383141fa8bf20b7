//! Console scripts: the steps a captured run types into the serial console, each
//! after a text (or a whole line) appeared in the output, and the state of a script
//! while output arrives.

use super::capture::MAX_LINE;
use super::marker::GUEST_LINE_PREFIX;

/// What a console script step waits for in the serial output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    /// This text anywhere in the output after the previous step's match, also in a
    /// line that has no line end yet (a shell prompt waits at the end of its line).
    Text(String),
    /// A whole line equal to this (spaces and tabs around either ignored, and a
    /// guest line's [`GUEST_LINE_PREFIX`]) after the previous step's match; the rest of
    /// the line that match was in counts as a line.
    Line(String),
}

/// One step of a console script: wait for [`Expect`], then type `send`.
///
/// The output is matched with carriage returns removed (as in [`super::Capture::output`]),
/// so an expected text never contains `\r`; in `send`, `\r` is Enter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What to wait for.
    pub expect: Expect,
    /// What to write to the serial input then (may be empty: only wait).
    pub send: Vec<u8>,
}

impl Step {
    /// Waits for `text` (also in an unfinished line), then types `send`.
    pub fn after_text(text: impl Into<String>, send: impl AsRef<[u8]>) -> Step {
        Step {
            expect: Expect::Text(text.into()),
            send: send.as_ref().to_vec(),
        }
    }

    /// Waits for a line equal to `line`, then types `send`.
    pub fn after_line(line: impl Into<String>, send: impl AsRef<[u8]>) -> Step {
        Step {
            expect: Expect::Line(line.into()),
            send: send.as_ref().to_vec(),
        }
    }

    /// Only waits for `text`.
    pub fn wait_text(text: impl Into<String>) -> Step {
        Step::after_text(text, b"")
    }

    /// Only waits for a line equal to `line`.
    pub fn wait_line(line: impl Into<String>) -> Step {
        Step::after_line(line, b"")
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.expect {
            Expect::Text(t) => write!(f, "wait for {t:?}")?,
            Expect::Line(l) => write!(f, "wait for the line {l:?}")?,
        }
        if !self.send.is_empty() {
            write!(f, ", then type {:?}", String::from_utf8_lossy(&self.send))?;
        }
        Ok(())
    }
}

/// Parses a `vcpos run --step` argument, `TEXT=>SEND` or `TEXT`, with escapes in
/// both parts (`\r`, `\n`, `\t`, `\e`, `\\`, `\xHH`).
pub fn parse_step(arg: &str) -> Result<Step, String> {
    let (text, send) = arg.split_once("=>").unwrap_or((arg, ""));
    let text = unescape(text)?;
    let text = String::from_utf8(text).map_err(|_| format!("step {arg:?}: the text to wait for is not UTF-8"))?;
    if text.contains('\r') {
        return Err(format!(
            "step {arg:?}: carriage returns are removed from the output, so \\r cannot be waited for"
        ));
    }
    Ok(Step::after_text(text, unescape(send)?))
}

/// Resolves the escapes of [`parse_step`].
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'e') => out.push(0x1b),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                let value = std::str::from_utf8(&hex)
                    .ok()
                    .filter(|h| h.len() == 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("in {s:?}: \\x needs two hex digits"))?;
                out.push(value);
            }
            Some(other) => return Err(format!("in {s:?}: unknown escape \\{}", other as char)),
            None => return Err(format!("in {s:?}: a lone \\ at the end")),
        }
    }
    Ok(out)
}

/// Where a console script is: the next step, and the output seen since the previous
/// step's match (carriage returns removed), which the next step searches.
pub(super) struct ScriptState<'a> {
    steps: &'a [Step],
    next: usize,
    seen: Vec<u8>,
}

impl<'a> ScriptState<'a> {
    pub(super) fn new(steps: &'a [Step]) -> ScriptState<'a> {
        ScriptState {
            steps,
            next: 0,
            seen: Vec::new(),
        }
    }

    pub(super) fn done(&self) -> bool {
        self.next == self.steps.len()
    }

    /// Feeds output; returns the steps it completed, in order.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Vec<&'a Step> {
        self.seen.extend_from_slice(bytes);
        let mut happened = Vec::new();
        while let Some(step) = self.steps.get(self.next) {
            match find_expected(&step.expect, &self.seen) {
                Some(end) => {
                    self.seen.drain(..end);
                    happened.push(step);
                    self.next += 1;
                }
                None => {
                    let keep_from = unmatched_prefix(&step.expect, &self.seen);
                    self.seen.drain(..keep_from);
                    break;
                }
            }
        }
        happened
    }
}

/// Where the first match of `expect` in `seen` ends.
fn find_expected(expect: &Expect, seen: &[u8]) -> Option<usize> {
    match expect {
        Expect::Text(t) => {
            let t = t.as_bytes();
            if t.is_empty() {
                return Some(0);
            }
            seen.windows(t.len()).position(|w| w == t).map(|i| i + t.len())
        }
        Expect::Line(l) => {
            let want = l.as_bytes().trim_ascii();
            let mut start = 0;
            for (i, &b) in seen.iter().enumerate() {
                if b == b'\n' {
                    let line = &seen[start..i];
                    let text = line.strip_prefix(GUEST_LINE_PREFIX.as_bytes()).unwrap_or(line);
                    if text.trim_ascii() == want {
                        return Some(i + 1);
                    }
                    start = i + 1;
                }
            }
            None
        }
    }
}

/// How much of `seen` can never be part of a match of `expect` (it did not match).
fn unmatched_prefix(expect: &Expect, seen: &[u8]) -> usize {
    match expect {
        // A match could still start in the last len - 1 bytes.
        Expect::Text(t) => seen.len().saturating_sub(t.len().saturating_sub(1)),
        // Complete lines are done with; an overlong unfinished one is dropped too.
        Expect::Line(_) => {
            let unfinished = seen.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            if seen.len() - unfinished > MAX_LINE {
                seen.len()
            } else {
                unfinished
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks` to a script of `steps`; returns how many steps happened after
    /// each chunk.
    fn progress(steps: &[Step], chunks: &[&str]) -> Vec<usize> {
        let mut st = ScriptState::new(steps);
        let mut done = 0;
        chunks
            .iter()
            .map(|c| {
                done += st.feed(c.as_bytes()).len();
                done
            })
            .collect()
    }

    #[test]
    fn text_is_found_across_chunks_and_in_unfinished_lines() {
        let steps = [Step::wait_text("vcpos-guest# ")];
        assert_eq!(progress(&steps, &["boot\nvcpos-gu", "est", "# "]), [0, 0, 1]);
        assert_eq!(progress(&steps, &["vcpos-guest#", "\n# "]), [0, 0]);
    }

    #[test]
    fn a_line_step_wants_the_whole_line() {
        let steps = [Step::wait_line("vcpos-42")];
        // The echoed command line contains the expression, not the value; a longer
        // line or an unfinished one is no match.
        assert_eq!(
            progress(&steps, &["# echo vcpos-$((6*7))\n", "xvcpos-42\nvcpos-42", "  \n"]),
            [0, 0, 1]
        );
        assert_eq!(progress(&[Step::wait_line("42")], &["vcpos-42\n"]), [0]);
        // A guest's line behind the VMM's prefix is the guest's text.
        assert_eq!(progress(&steps, &["guest| vcpos-42\n"]), [1]);
        assert_eq!(progress(&steps, &["guest| xvcpos-42\n", "guest|  vcpos-42 \n"]), [0, 1]);
    }

    #[test]
    fn each_step_searches_after_the_previous_match() {
        let steps = [Step::wait_text("$ "), Step::wait_text("$ "), Step::wait_line("end")];
        assert_eq!(progress(&steps, &["$ one\n", "end\n", "$ ", "end\n"]), [1, 1, 2, 3]);
        // Several steps can happen in one chunk, in order.
        assert_eq!(progress(&steps, &["$ $ x\nend\n"]), [3]);
        // The rest of the line a text matched in counts as a line.
        assert_eq!(
            progress(&[Step::wait_text("# "), Step::wait_line("end")], &["# end\n"]),
            [2]
        );
        // An empty text happens at once.
        assert_eq!(progress(&[Step::wait_text("")], &[""]), [1]);
    }

    #[test]
    fn unmatched_output_is_not_kept_for_ever() {
        let steps = [Step::wait_text("needle"), Step::wait_line("line")];
        let mut st = ScriptState::new(&steps);
        let hay = "hay ".repeat(100_000);
        assert!(st.feed(hay.as_bytes()).is_empty());
        assert!(st.seen.len() < 8, "kept {} bytes", st.seen.len());
        assert_eq!(st.feed(b"nee").len(), 0);
        assert_eq!(st.feed(b"dle").len(), 1);
        assert!(st.feed("lines\n".repeat(10_000).as_bytes()).is_empty());
        assert!(st.seen.is_empty(), "finished lines are dropped: {}", st.seen.len());
        assert!(st.feed(b"lin").is_empty());
        assert_eq!(st.seen, b"lin", "an unfinished line is kept");
        assert!(st.feed(hay.as_bytes()).is_empty());
        assert!(
            st.seen.len() <= MAX_LINE,
            "an overlong unfinished line is dropped: {}",
            st.seen.len()
        );
        assert_eq!(st.feed(b"\nline\n").len(), 1);
        assert!(st.done());
    }

    #[test]
    fn step_arguments_parse_with_escapes() {
        assert_eq!(
            parse_step(r"vcpos-guest# =>echo $((6*7))\r").unwrap(),
            Step::after_text("vcpos-guest# ", "echo $((6*7))\r")
        );
        assert_eq!(parse_step("ready").unwrap(), Step::wait_text("ready"));
        assert_eq!(
            parse_step(r"a\tb=>\x03\e[A\\\n").unwrap(),
            Step::after_text("a\tb", b"\x03\x1b[A\\\n")
        );
        assert_eq!(parse_step("a=>b=>c").unwrap(), Step::after_text("a", "b=>c"));
        for (bad, why) in [
            (r"x=>\q", "unknown escape"),
            (r"x=>\x4", "two hex digits"),
            (r"x=>\xzz", "two hex digits"),
            ("x=>\\", "lone"),
            (r"a\rb", "carriage returns"),
            (r"\xff=>x", "not UTF-8"),
        ] {
            let e = parse_step(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let s = Step::after_line("vcpos-42", "uname -m\r").to_string();
        assert_eq!(s, r#"wait for the line "vcpos-42", then type "uname -m\r""#);
    }
}
