//! A guard run before the XML parser: reject absurdly deep element nesting.
//!
//! `roxmltree` 0.20 parses nested elements by recursion, one call per level, so a
//! small file of a few hundred thousand `<x>` tags would overflow the stack and
//! abort the tool (roxmltree issue #154). This pre-scan counts nesting depth with a
//! simple tokenizer (comments, processing instructions, CDATA, declarations and
//! quoted attribute values are skipped) and stops at [`MAX_DEPTH`]. A valid system
//! nests at most about 66 deep (`system` > 63 PDs > `virtual_machine` > `vcpu`).

/// Deepest element nesting accepted.
pub const MAX_DEPTH: usize = 256;

/// The byte offset of the first start tag that opens level `MAX_DEPTH + 1`, if any.
pub fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while let Some(offset) = bytes[i..].iter().position(|&b| b == b'<') {
        let start = i + offset;
        let rest = &text[start..];
        i = if rest.starts_with("<!--") {
            skip_past(text, start, "-->")
        } else if rest.starts_with("<![CDATA[") {
            skip_past(text, start, "]]>")
        } else if rest.starts_with("<?") {
            skip_past(text, start, "?>")
        } else if rest.starts_with("<!") {
            skip_past(text, start, ">")
        } else if rest.starts_with("</") {
            depth = depth.saturating_sub(1);
            skip_past(text, start, ">")
        } else {
            let (end, self_closing) = start_tag_end(bytes, start);
            if !self_closing {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Some(start);
                }
            }
            end
        };
    }
    None
}

/// The offset just after the first `end` at or after `from` (the text length if
/// there is none).
fn skip_past(text: &str, from: usize, end: &str) -> usize {
    text[from..].find(end).map_or(text.len(), |p| from + p + end.len())
}

/// The offset just after the `>` ending the start tag at `start` (quotes in
/// attribute values are skipped), and whether the tag ends with `/>`.
fn start_tag_end(bytes: &[u8], start: usize) -> (usize, bool) {
    let mut quote = None;
    for (i, &b) in bytes.iter().enumerate().skip(start + 1) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => return (i + 1, bytes[i - 1] == b'/'),
            (None, _) => {}
        }
    }
    (bytes.len(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> String {
        format!(
            "<system>{}{}</system>",
            "<a x='>' y=\"/>\">".repeat(depth - 1),
            "</a>".repeat(depth - 1)
        )
    }

    #[test]
    fn counts_open_elements_only() {
        assert_eq!(too_deep(&nested(MAX_DEPTH)), None);
        let deep = nested(MAX_DEPTH + 1);
        assert_eq!(
            too_deep(&deep),
            Some("<system>".len() + (MAX_DEPTH - 1) * "<a x='>' y=\"/>\">".len())
        );
    }

    #[test]
    fn closed_and_empty_elements_do_not_add_depth() {
        let flat = "<system>".to_string() + &"<a></a><b/><c x='1' />".repeat(10_000) + "</system>";
        assert_eq!(too_deep(&flat), None);
    }

    #[test]
    fn comments_cdata_and_instructions_are_skipped() {
        let hidden = "<system><!-- <a><a><a> -->".to_string()
            + &"<![CDATA[<a>]]><?pi <a> ?>".repeat(MAX_DEPTH + 1)
            + "</system>";
        assert_eq!(too_deep(&hidden), None);
    }

    #[test]
    fn unclosed_input_is_handled() {
        assert_eq!(too_deep("<a x='"), None);
        assert_eq!(too_deep("<!--"), None);
        assert_eq!(too_deep("<"), None);
        assert!(too_deep(&"<a>".repeat(MAX_DEPTH + 1)).is_some());
    }
}
