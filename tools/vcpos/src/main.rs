//! `vcpos`: check a system description, build a bootable image, run it in QEMU.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vcpos_tool::{image, runner, sdf};

/// The vcpos system builder and runner.
#[derive(Parser)]
#[command(name = "vcpos", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Validate a system description (Microkit 2.3 SDF) without building anything.
    Check {
        /// Board whose limits apply (IRQ numbers, cores, device addresses).
        #[arg(long, default_value = "qemu_virt_aarch64")]
        board: String,
        /// Directories where files the system names (prefill files) are looked up.
        #[arg(long = "search-path", short = 's')]
        search_paths: Vec<PathBuf>,
        /// The system description.
        system: PathBuf,
    },
    /// Build a bootable image and a report from a system description.
    Build(image::BuildArgs),
    /// Boot an image in QEMU on the serial console (exit with Ctrl-A x).
    Run(runner::RunArgs),
    /// Print the QEMU command line (one word per line, the binary first) that boots an
    /// image, or a Linux kernel directly (the baseline), with the board's machine.
    QemuArgs(runner::QemuArgsArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check {
            board,
            search_paths,
            system,
        } => match sdf::load_with(&system, &search_paths).and_then(|loaded| {
            let board = vcpos_tool::board::load(&board, None).map_err(|e| vec![e])?;
            let errors = image::check_board(&loaded.system, &board);
            if errors.is_empty() {
                Ok(loaded)
            } else {
                Err(errors)
            }
        }) {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    println!("{w}");
                }
                println!(
                    "{}: OK ({} protection domains, {} memory regions, {} channels)",
                    system.display(),
                    loaded.system.pds.len(),
                    loaded.system.memory_regions.len(),
                    loaded.system.channels.len()
                );
                ExitCode::SUCCESS
            }
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                ExitCode::from(1)
            }
        },
        Command::Build(args) => match image::build_command(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(errors) => {
                for e in &errors {
                    eprintln!("{e}");
                }
                ExitCode::from(1)
            }
        },
        Command::Run(args) => runner::run_command(&args),
        Command::QemuArgs(args) => runner::qemu_args_command(&args),
    }
}
