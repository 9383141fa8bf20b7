//! The marker contract with the kernel and test PDs ([`vcpos_abi::console`]): which
//! console lines are markers, and what ends a captured run.
//!
//! Only the start of a line counts: a guest's console line starts with
//! [`GUEST_LINE_PREFIX`] (the VMM puts it there), so a guest can print any text and never
//! a marker; a carriage return or an escape sequence in the middle of a line does not
//! start one either (carriage returns are removed from the transcript, and nothing else
//! counts as a line end).

pub use vcpos_abi::console::{GUEST_LINE_PREFIX, KERNEL_ERROR, KERNEL_FAULT, KERNEL_PREFIX, TEST_FAIL, TEST_PASS};

/// A marker line: the start of a line is one of the console markers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker<'a> {
    /// `TEST PASS: <detail>`: the detail.
    Pass(&'a str),
    /// `TEST FAIL: <reason>`: the reason.
    Fail(&'a str),
    /// `vcpos|ERROR: ...`: the whole line.
    KernelError(&'a str),
    /// `vcpos|FAULT: ...`: the whole line.
    KernelFault(&'a str),
}

impl Marker<'_> {
    /// A failure: a fail marker or a kernel error (a fault report alone is not: a test
    /// may provoke a fault on purpose).
    pub fn is_failure(&self) -> bool {
        matches!(self, Marker::Fail(_) | Marker::KernelError(_))
    }
}

/// The marker `line` is, if it starts with one (and only then: see the module docs).
pub fn line_marker(line: &str) -> Option<Marker<'_>> {
    if let Some(rest) = line.strip_prefix(TEST_PASS) {
        Some(Marker::Pass(rest.trim()))
    } else if let Some(rest) = line.strip_prefix(TEST_FAIL) {
        Some(Marker::Fail(rest.trim()))
    } else if line.starts_with(KERNEL_ERROR) {
        Some(Marker::KernelError(line.trim_end()))
    } else if line.starts_with(KERNEL_FAULT) {
        Some(Marker::KernelFault(line.trim_end()))
    } else {
        None
    }
}

/// The markers in `output`, in order.
pub fn markers(output: &str) -> Vec<Marker<'_>> {
    output.lines().filter_map(line_marker).collect()
}

/// The lines of `output` that are kernel error lines.
pub fn kernel_errors(output: &str) -> Vec<&str> {
    markers(output)
        .into_iter()
        .filter_map(|m| match m {
            Marker::KernelError(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// The text of a console line without the VMM's [`GUEST_LINE_PREFIX`], if it has it
/// (what the guest printed), else the line as it is.
pub fn console_text(line: &str) -> &str {
    line.strip_prefix(GUEST_LINE_PREFIX).unwrap_or(line)
}

/// What ends a captured run (see [`super::CaptureOptions::stop_on`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// A line that starts with this (a marker: [`TEST_PASS`], [`KERNEL_ERROR`], ...).
    LineStart(String),
    /// A line that contains this anywhere (a text a guest prints, e.g. its panic
    /// message: stopping early on a forged one can only fail a run, never pass it).
    Text(String),
}

impl Stop {
    /// Whether `line` (a whole line of output) matches.
    pub fn matches(&self, line: &str) -> bool {
        match self {
            Stop::LineStart(m) => line.starts_with(m.as_str()),
            Stop::Text(t) => line.contains(t.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_in_order() {
        let out = "boot\nTEST PASS: hello world\nTEST FAIL: bad thing  \nvcpos|ERROR: oops\nvcpos|FAULT: PD 'x'\n";
        assert_eq!(
            markers(out),
            vec![
                Marker::Pass("hello world"),
                Marker::Fail("bad thing"),
                Marker::KernelError("vcpos|ERROR: oops"),
                Marker::KernelFault("vcpos|FAULT: PD 'x'")
            ]
        );
        assert_eq!(kernel_errors(out), vec!["vcpos|ERROR: oops"]);
        assert!(markers("TEST PASS without colon\n").is_empty());
    }

    #[test]
    fn a_marker_counts_only_at_the_start_of_a_line() {
        assert_eq!(line_marker("TEST PASS: x"), Some(Marker::Pass("x")));
        assert_eq!(line_marker("guest| TEST PASS: x"), None);
        for forged in [
            "guest| TEST PASS: x",
            "guest| TEST FAIL: x",
            "guest| vcpos|ERROR: x",
            "guest| vcpos|FAULT: PD 'a'",
            "pd: TEST PASS: x",
            " TEST PASS: x",
            "\x1b[2KTEST PASS: x",
            "\x1b[GTEST PASS: x",
            "foo\rTEST PASS: x",
        ] {
            assert_eq!(line_marker(forged), None, "{forged:?}");
            assert!(markers(&format!("{forged}\n")).is_empty(), "{forged:?}");
        }
        assert_eq!(console_text("guest| hello"), "hello");
        assert_eq!(console_text("vcpos|INFO: x"), "vcpos|INFO: x");
    }
}
