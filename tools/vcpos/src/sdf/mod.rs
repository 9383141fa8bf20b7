//! Reading Microkit 2.3 system descriptions (SDF) into the checked [`System`] model.
//!
//! The pipeline, one module per stage:
//! 1. XML syntax (`roxmltree`, after the [`depth`] guard); a malformed file gives
//!    one error and stops.
//! 2. `parse` and `pd`: element by element into an `ast::RawSystem`,
//!    attribute syntax ([`number`]) and single-element rules, reading values
//!    through `reader`.
//! 3. `check`, `memory`, `ids`: rules across elements (names, references,
//!    page sizes, overlaps, ids, symbols, PPC priorities).
//! 4. `build`: the [`System`] model and warnings, only if there were no errors.
//!
//! Errors never stop stages 2 and 3: every error in the file is returned, each with
//! its element and `file:line:col`, sorted into document order.

mod ast;
mod attrs;
mod build;
mod check;
pub mod depth;
mod ids;
mod memory;
mod names;
pub mod number;
mod parse;
mod pd;
mod reader;

use std::path::Path;

use crate::diag::Diagnostic;
use crate::model::{Span, System};

/// A valid system and the warnings found on the way (e.g. unused memory regions).
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The system.
    pub system: System,
    /// Warnings, already formatted (`WARNING: ...`).
    pub warnings: Vec<String>,
}

/// Reads and checks the system description at `path`. On failure, every error found
/// in the file is returned, each with its location. Prefill files are looked up
/// relative to the current directory only; see [`load_with`].
pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    load_with(path, &[])
}

/// [`load`], looking up files the system names (prefill files, to size regions that
/// give no `size`) in `search_paths` first, as the builder does.
pub fn load_with(path: &Path, search_paths: &[std::path::PathBuf]) -> Result<Loaded, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic::plain(format!("cannot read '{}': {e}", path.display()))])?;
    let mut loaded = parse_str_with(&path.display().to_string(), &text, search_paths)?;
    loaded.system.path = path.to_path_buf();
    Ok(loaded)
}

/// Parses and checks SDF `text`; `file` is the name used in locations.
pub fn parse_str(file: &str, text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    parse_str_with(file, text, &[])
}

/// [`parse_str`] with search paths for the files the system names.
pub fn parse_str_with(file: &str, text: &str, search_paths: &[std::path::PathBuf]) -> Result<Loaded, Vec<Diagnostic>> {
    if let Some(offset) = depth::too_deep(text) {
        let (line, col) = position(&text[..offset]);
        return Err(vec![Diagnostic {
            message: format!(
                "could not parse '{file}': elements are nested more than {} deep",
                depth::MAX_DEPTH
            ),
            tag: None,
            span: Some(Span {
                file: file.to_string(),
                line,
                col,
            }),
        }]);
    }
    let doc = roxmltree::Document::parse(text).map_err(|e| vec![xml_error(file, text, &e)])?;
    let mut cx = reader::Cx::new(file, &doc);
    cx.search_paths = search_paths.to_vec();
    parse::stray_text(&mut cx, &doc);
    let raw = parse::system(&mut cx, &doc);
    let checked = raw.as_ref().map(|raw| check::check(&mut cx, raw));
    let mut errors = cx.diags;
    if errors.is_empty() {
        let system = raw
            .as_ref()
            .zip(checked.as_ref())
            .and_then(|(r, c)| build::system(r, c, file.into()));
        match system {
            Some(system) => {
                return Ok(Loaded {
                    warnings: build::warnings(&system),
                    system,
                })
            }
            None => errors.push(Diagnostic::plain(
                "internal error: a checked system description is incomplete",
            )),
        }
    }
    errors.sort_by_key(|d| d.span.as_ref().map(|s| (s.line, s.col)));
    Err(errors)
}

/// The error for a file that is not well-formed XML, located where the XML parser
/// stopped (the end of the file for an unexpected end).
fn xml_error(file: &str, text: &str, e: &roxmltree::Error) -> Diagnostic {
    use roxmltree::Error as E;
    let pos = e.pos();
    let (line, col) = match e {
        E::UnexpectedEndOfStream | E::UnclosedRootNode => position(text),
        _ => (pos.row, pos.col),
    };
    // roxmltree's messages embed " at row:col"; the location goes at the end instead.
    let reason = e.to_string().replace(&format!(" at {pos}"), "");
    Diagnostic {
        message: format!("could not parse '{file}': {reason}"),
        tag: None,
        span: Some(Span {
            file: file.to_string(),
            line,
            col,
        }),
    }
}

/// The 1-based line and column just after the last character of `text`.
fn position(text: &str) -> (u32, u32) {
    let line = text.matches('\n').count() + 1;
    let col = text.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(col).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_counts_lines_and_chars() {
        assert_eq!(position(""), (1, 1));
        assert_eq!(position("ab"), (1, 3));
        assert_eq!(position("ab\n"), (2, 1));
        assert_eq!(position("a\nxé"), (2, 3));
    }

    #[test]
    fn deep_nesting_is_refused_before_xml_parsing() {
        let text = format!("<system>\n{}", "<x>".repeat(100_000));
        let e = parse_str("d.system", &text).unwrap_err();
        let expected = format!(
            "Error: could not parse 'd.system': elements are nested more than 256 deep: d.system:2:{}",
            255 * 3 + 1
        );
        assert_eq!(e.iter().map(ToString::to_string).collect::<Vec<_>>(), [expected]);
    }

    #[test]
    fn xml_errors_have_one_location_at_the_end() {
        let e = parse_str("t.system", "<system>\n  <x>").unwrap_err();
        assert_eq!(e.len(), 1);
        let shown = e[0].to_string();
        assert!(shown.starts_with("Error: could not parse 't.system': "), "{shown}");
        assert!(shown.ends_with(": t.system:2:6"), "{shown}");
        assert_eq!(shown.matches(" at ").count(), 0, "{shown}");
    }

    /// The `super::<module>` paths each module of the front end uses in code (doc
    /// comments and tests left out).
    fn module_uses() -> Vec<(&'static str, Vec<String>)> {
        let sources = [
            ("ast", include_str!("ast.rs")),
            ("attrs", include_str!("attrs.rs")),
            ("build", include_str!("build.rs")),
            ("check", include_str!("check.rs")),
            ("depth", include_str!("depth.rs")),
            ("ids", include_str!("ids.rs")),
            ("memory", include_str!("memory.rs")),
            ("names", include_str!("names.rs")),
            ("number", include_str!("number.rs")),
            ("parse", include_str!("parse.rs")),
            ("pd", include_str!("pd.rs")),
            ("reader", include_str!("reader.rs")),
        ];
        let names: Vec<&str> = sources.iter().map(|(n, _)| *n).collect();
        sources
            .iter()
            .map(|(name, text)| {
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                let mut uses: Vec<String> = Vec::new();
                for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                    for (i, _) in line.match_indices("super::") {
                        let rest = &line[i + "super::".len()..];
                        let rest = rest.trim_start_matches('{');
                        for part in rest.split(',') {
                            let m: String = part
                                .trim()
                                .chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect();
                            if names.contains(&m.as_str()) && m != *name && !uses.contains(&m) {
                                uses.push(m);
                            }
                            if !part.trim_start().starts_with(|c: char| c.is_lowercase()) {
                                break;
                            }
                        }
                    }
                }
                (*name, uses)
            })
            .collect()
    }

    #[test]
    fn the_front_end_modules_have_no_import_cycle() {
        let uses = module_uses();
        let find = |m: &str| {
            uses.iter()
                .find(|(n, _)| *n == m)
                .map(|(_, u)| u.clone())
                .unwrap_or_default()
        };
        assert!(find("check").contains(&"names".to_string()), "{uses:?}");
        assert!(find("pd").contains(&"attrs".to_string()), "{uses:?}");
        // Depth-first search from every module; a module met again on the current path
        // closes a cycle.
        fn visit(m: &str, path: &mut Vec<String>, find: &dyn Fn(&str) -> Vec<String>) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut cycle = path[i..].to_vec();
                cycle.push(m.to_string());
                return Some(cycle);
            }
            path.push(m.to_string());
            for next in find(m) {
                if let Some(c) = visit(&next, path, find) {
                    return Some(c);
                }
            }
            path.pop();
            None
        }
        for (m, _) in &uses {
            if let Some(cycle) = visit(m, &mut Vec::new(), &find) {
                panic!("import cycle: {}", cycle.join(" -> "));
            }
        }
    }
}
