//! The vcpos host tools: read and check a system description, build a bootable
//! image and its report, and run images in QEMU.
//!
//! Stages, each a module with typed input and output:
//! [`sdf`] (XML → [`model::System`] or located [`diag::Diagnostic`]s) →
//! [`image`] (system + ELFs → image file + report) → [`runner`] (image → QEMU).
#![forbid(unsafe_code)]

pub mod board;
pub mod diag;
pub mod image;
pub mod model;
pub mod runner;
pub mod sdf;
