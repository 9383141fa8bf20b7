//! Diagnostics: one error format for every stage of the builder.
//!
//! Rendered as `Error: <what> on element '<tag>': <file>:<line>:<col>` (Microkit's
//! form), or without the element/location parts when there is none.

use crate::model::Span;

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
        write!(f, "Error: {}", self.message)?;
        match (&self.tag, &self.span) {
            (Some(tag), Some(span)) => write!(f, " on element '{tag}': {span}"),
            (None, Some(span)) => write!(f, ": {span}"),
            (Some(tag), None) => write!(f, " on element '{tag}'"),
            (None, None) => Ok(()),
        }
    }
}
