//! Building a bootable image and its report from a checked system.
//!
//! (Being written.)

use std::path::PathBuf;

use crate::diag::Diagnostic;

/// `vcpos build` arguments (Microkit's tool is the model).
#[derive(clap::Args, Clone, Debug)]
pub struct BuildArgs {
    /// Board (a file in kernel-config/).
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// debug, release or benchmark.
    #[arg(long, default_value = "debug")]
    pub config: String,
    /// Directories where program images (and the kernel) are looked up.
    #[arg(long = "search-path", short = 's')]
    pub search_paths: Vec<PathBuf>,
    /// Kernel ELF (default: `vcpos-kernel` in the search paths).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Output image.
    #[arg(long, short = 'o', default_value = "vcpos.img")]
    pub output: PathBuf,
    /// Output report.
    #[arg(long, short = 'r', default_value = "report.txt")]
    pub report: PathBuf,
    /// The system description.
    pub system: PathBuf,
}

/// Runs `vcpos build`.
pub fn build_command(args: &BuildArgs) -> Result<(), Vec<Diagnostic>> {
    let _ = args;
    Err(vec![Diagnostic::plain("image builder not written yet")])
}
