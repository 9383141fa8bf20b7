//! Reading one XML element: its location, its attributes, and error collection.
//!
//! The per-element parsers in [`super::parse`] never return early on a bad value.
//! They read attributes through an [`Elem`], which records every problem in the
//! shared [`Cx`] (as a located [`Diagnostic`]) and hands back an [`Attr`] saying
//! whether the value was absent, valid or invalid. That is how one run reports all
//! the errors of a file.

use roxmltree::{Document, Node};

use super::number::{parse_bool, parse_number};
use crate::diag::Diagnostic;
use crate::model::Span;

/// Parsing context: the file name used in locations, the document, and the errors
/// found so far.
pub struct Cx<'d, 'input> {
    file: &'d str,
    doc: &'d Document<'input>,
    /// Errors, in the order they were found (sorted into document order at the end).
    pub diags: Vec<Diagnostic>,
    /// Where files named by the system (prefill files) are looked up, before the
    /// current directory.
    pub search_paths: Vec<std::path::PathBuf>,
}

impl<'d, 'input> Cx<'d, 'input> {
    /// A context for `doc`, read from `file`.
    pub fn new(file: &'d str, doc: &'d Document<'input>) -> Self {
        Cx {
            file,
            doc,
            diags: Vec::new(),
            search_paths: Vec::new(),
        }
    }

    /// The first existing `name` in the search paths, then relative to the current
    /// directory.
    pub fn find_file(&self, name: &str) -> Option<std::path::PathBuf> {
        self.search_paths
            .iter()
            .map(|d| d.join(name))
            .chain(std::iter::once(std::path::PathBuf::from(name)))
            .find(|p| p.is_file())
    }

    /// The location of byte offset `pos` of the text.
    pub fn span_at(&self, pos: usize) -> Span {
        let p = self.doc.text_pos_at(pos);
        Span {
            file: self.file.to_string(),
            line: p.row,
            col: p.col,
        }
    }

    /// Records an error about element `tag` at `span`.
    pub fn error(&mut self, message: impl Into<String>, tag: &str, span: &Span) {
        self.diags.push(Diagnostic::at(message, tag, span));
    }

    /// Records an error whose message names the element itself (e.g. "invalid XML
    /// element 'x'"), rendered without the "on element" part, as Microkit does.
    pub fn error_untagged(&mut self, message: impl Into<String>, span: &Span) {
        self.diags.push(Diagnostic {
            message: message.into(),
            tag: None,
            span: Some(span.clone()),
        });
    }

    /// The whole input text.
    pub fn input(&self) -> &'input str {
        self.doc.input_text()
    }
}

/// The state of an attribute after reading it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attr<T> {
    /// Not given.
    Absent,
    /// Given and valid.
    Valid(T),
    /// Given but invalid; the error has been recorded.
    Invalid,
}

impl<T> Attr<T> {
    /// The value, or `default` when absent; `None` when invalid.
    pub fn or(self, default: T) -> Option<T> {
        match self {
            Attr::Absent => Some(default),
            Attr::Valid(v) => Some(v),
            Attr::Invalid => None,
        }
    }

    /// The value if valid.
    pub fn valid(self) -> Option<T> {
        match self {
            Attr::Valid(v) => Some(v),
            _ => None,
        }
    }

    /// Applies a check to a valid value; `None` from `f` turns it invalid.
    pub fn and_then<U>(self, f: impl FnOnce(T) -> Option<U>) -> Attr<U> {
        match self {
            Attr::Absent => Attr::Absent,
            Attr::Valid(v) => f(v).map_or(Attr::Invalid, Attr::Valid),
            Attr::Invalid => Attr::Invalid,
        }
    }
}

/// One XML element being read: its node, tag and location.
pub struct Elem<'a, 'input> {
    /// The XML node.
    pub node: Node<'a, 'input>,
    /// Its tag (local name).
    pub tag: &'a str,
    /// Where it starts.
    pub span: Span,
}

impl<'a, 'input> Elem<'a, 'input> {
    /// Wraps element `node`.
    pub fn new(cx: &Cx<'_, '_>, node: Node<'a, 'input>) -> Self {
        Elem {
            node,
            tag: node.tag_name().name(),
            span: cx.span_at(node.range().start),
        }
    }

    /// Records an error about this element.
    pub fn error(&self, cx: &mut Cx<'_, '_>, message: impl Into<String>) {
        cx.error(message, self.tag, &self.span);
    }

    /// Reports every attribute not in `allowed` (Microkit: "invalid attribute").
    pub fn check_attributes(&self, cx: &mut Cx<'_, '_>, allowed: &[&str]) {
        for a in self.node.attributes() {
            if !allowed.contains(&a.name()) {
                self.error(cx, format!("invalid attribute '{}'", a.name()));
            }
        }
    }

    /// Whether attribute `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.node.attribute(name).is_some()
    }

    /// An optional text attribute.
    pub fn text(&self, name: &str) -> Option<String> {
        self.node.attribute(name).map(str::to_string)
    }

    /// A required text attribute; reports it if missing.
    pub fn required_text(&self, cx: &mut Cx<'_, '_>, name: &str) -> Option<String> {
        let value = self.text(name);
        if value.is_none() {
            self.missing(cx, name);
        }
        value
    }

    /// Reports that required attribute `name` is missing.
    pub fn missing(&self, cx: &mut Cx<'_, '_>, name: &str) {
        self.error(cx, format!("Missing required attribute '{name}'"));
    }

    /// An optional number attribute (see [`parse_number`]).
    pub fn number(&self, cx: &mut Cx<'_, '_>, name: &str) -> Attr<u64> {
        let Some(text) = self.node.attribute(name) else {
            return Attr::Absent;
        };
        match parse_number(text) {
            Ok(v) => Attr::Valid(v),
            Err(e) => {
                self.error(
                    cx,
                    format!("failed to parse integer '{text}' for attribute '{name}': {e}"),
                );
                Attr::Invalid
            }
        }
    }

    /// A required number attribute; `None` if missing or invalid (both reported).
    pub fn required_number(&self, cx: &mut Cx<'_, '_>, name: &str) -> Option<u64> {
        match self.number(cx, name) {
            Attr::Absent => {
                self.missing(cx, name);
                None
            }
            other => other.valid(),
        }
    }

    /// An optional boolean attribute: exactly `true` or `false`.
    pub fn boolean(&self, cx: &mut Cx<'_, '_>, name: &str) -> Attr<bool> {
        let Some(text) = self.node.attribute(name) else {
            return Attr::Absent;
        };
        match parse_bool(text) {
            Some(v) => Attr::Valid(v),
            None => {
                self.error(
                    cx,
                    format!("invalid value '{text}' for attribute '{name}' (expected 'true' or 'false')"),
                );
                Attr::Invalid
            }
        }
    }

    /// Checks that a number fits `u32`; reports `name (value) is too large` if not.
    pub fn fit_u32(&self, cx: &mut Cx<'_, '_>, name: &str, value: u64) -> Option<u32> {
        let v = u32::try_from(value).ok();
        if v.is_none() {
            self.error(cx, format!("{name} ({value}) is too large (maximum {})", u32::MAX));
        }
        v
    }

    /// The child elements, in document order.
    pub fn children(&self) -> impl Iterator<Item = Node<'a, 'input>> {
        self.node.children().filter(Node::is_element)
    }
}
