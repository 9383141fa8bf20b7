//! Reading Microkit 2.3 system descriptions (SDF) into the checked [`System`] model.
//!
//! (Being written: see `load`.)

use std::path::Path;

use crate::diag::Diagnostic;
use crate::model::System;

/// A valid system and the warnings found on the way (e.g. unused memory regions).
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The system.
    pub system: System,
    /// Warnings, already formatted (`WARNING: ...`).
    pub warnings: Vec<String>,
}

/// Reads and checks the system description at `path`. On failure, every error found
/// in the file is returned, each with its location.
pub fn load(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![Diagnostic::plain(format!("cannot read '{}': {e}", path.display()))])?;
    parse_str(&path.display().to_string(), &text)
}

/// Parses and checks SDF `text`; `file` is the name used in locations.
pub fn parse_str(file: &str, text: &str) -> Result<Loaded, Vec<Diagnostic>> {
    let _ = (file, text);
    Err(vec![Diagnostic::plain("SDF parser not written yet")])
}
