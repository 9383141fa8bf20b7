//! Diagnostics: one error format for every stage of the builder.
//!
//! Rendered as `Error: <what> on element '<tag>': <file>:<line>:<col>` (Microkit's
//! form), or without the element/location parts when there is none. One diagnostic is
//! one line: control characters in it (a newline or an escape sequence quoted from a
//! malformed input) are shown escaped, as `\n`, `\u{1b}`.

use std::borrow::Cow;

use crate::model::Span;

/// `text` with every control character escaped as in Rust source (`\n`, `\t`,
/// `\u{1b}`), so that quoted input can neither split a message's line nor drive the
/// terminal.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// One error found in a system description or while building it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong.
    pub message: String,
    /// The element it is about, if any.
    pub tag: Option<String>,
    /// Where, if known.
    pub span: Option<Span>,
}

impl Diagnostic {
    /// An error about element `tag` at `span`.
    pub fn at(message: impl Into<String>, tag: &str, span: &Span) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            tag: Some(tag.to_string()),
            span: Some(span.clone()),
        }
    }

    /// An error with no location (e.g. a missing file).
    pub fn plain(message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            tag: None,
            span: None,
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Error: {}", escape_controls(&self.message))?;
        let tag = self.tag.as_deref().map(escape_controls);
        let span = self.span.as_ref().map(|s| s.to_string());
        let span = span.as_deref().map(escape_controls);
        match (tag, span) {
            (Some(tag), Some(span)) => write!(f, " on element '{tag}': {span}"),
            (None, Some(span)) => write!(f, ": {span}"),
            (Some(tag), None) => write!(f, " on element '{tag}'"),
            (None, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_is_one_line_whatever_it_quotes() {
        let span = Span {
            file: "a\nb.system".into(),
            line: 3,
            col: 4,
        };
        let d = Diagnostic::at("invalid name 'x\ny\u{1b}[2J\tz\u{7f}'", "map", &span);
        assert_eq!(
            d.to_string(),
            r"Error: invalid name 'x\ny\u{1b}[2J\tz\u{7f}' on element 'map': a\nb.system:3:4"
        );
        assert_eq!(Diagnostic::plain("plain é 'ok'").to_string(), "Error: plain é 'ok'");
        assert!(matches!(escape_controls("no controls"), Cow::Borrowed(_)));
    }
}
