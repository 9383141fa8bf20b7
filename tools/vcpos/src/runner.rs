//! Running images in QEMU: the one place the QEMU command line is made.
//!
//! (Being written.)

use std::path::PathBuf;
use std::process::ExitCode;

/// `vcpos run` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Board (a file in kernel-config/).
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// The image to boot.
    pub image: PathBuf,
}

/// Runs `vcpos run`.
pub fn run_command(args: &RunArgs) -> ExitCode {
    let _ = args;
    ExitCode::from(1)
}
