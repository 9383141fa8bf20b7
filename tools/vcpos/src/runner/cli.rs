//! `vcpos run`: the command line of the runner.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::capture::CaptureOptions;
use super::qemu::{display_command, qemu_command, Console};
use super::script::parse_step;
use super::{print_qemu_version_once, run_image, spawn_error};
use crate::board::{self, Board};

/// `vcpos run` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Board (a file in kernel-config/).
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// Run without a terminal: print the serial output, stop at the first
    /// `TEST PASS:`/`TEST FAIL:`/`vcpos|ERROR:` line or after this many seconds,
    /// and exit 0 only if a pass marker appeared and no failure did.
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Wait for GDB on localhost:1234 before starting (interactive runs only).
    #[arg(long, conflicts_with = "timeout")]
    pub gdb: bool,
    /// A console script step (runs with --timeout): wait until TEXT appears in the
    /// serial output, then type SEND (escapes: \r = Enter, \n, \t, \e, \\, \xHH;
    /// "=>SEND" may be left out). Steps run in the order given; the run ends after the
    /// last one and succeeds if no `TEST FAIL:`/`vcpos|ERROR:` line appeared.
    #[arg(long = "step", value_name = "TEXT=>SEND", requires = "timeout")]
    pub steps: Vec<String>,
    /// Pause this many milliseconds after each byte a step types.
    #[arg(long, value_name = "MS", requires = "timeout")]
    pub type_delay: Option<u64>,
    /// The image to boot.
    pub image: PathBuf,
}

/// Runs `vcpos run`.
pub fn run_command(args: &RunArgs) -> ExitCode {
    let board = match board::load(&args.board, None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if !args.image.is_file() {
        eprintln!("Error: image {} not found", args.image.display());
        return ExitCode::from(1);
    }
    match args.timeout {
        None => run_interactive(&board, &args.image, args.gdb),
        Some(secs) => {
            let script = match args.steps.iter().map(|s| parse_step(s)).collect::<Result<Vec<_>, _>>() {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("Error: --step: {e}");
                    return ExitCode::from(1);
                }
            };
            let scripted = !script.is_empty();
            let mut opts = if scripted {
                CaptureOptions::scripted(Duration::from_secs(secs), script)
            } else {
                CaptureOptions::until_marker(Duration::from_secs(secs))
            };
            opts.echo = true;
            opts.type_delay = Duration::from_millis(args.type_delay.unwrap_or(0));
            match run_image(&board, &args.image, &opts) {
                Ok(c) => {
                    eprint!("{}", c.stderr);
                    eprintln!("vcpos: {} ({:.1} s)", c.ending, c.elapsed.as_secs_f64());
                    if scripted && !c.script_complete() {
                        let step = &opts.script[c.steps_done.len()];
                        eprintln!(
                            "vcpos: the console script stopped at step {}: {step}",
                            c.steps_done.len() + 1
                        );
                    }
                    let ok = if scripted { c.script_passed() } else { c.passed() };
                    if ok {
                        ExitCode::SUCCESS
                    } else if scripted {
                        eprintln!("vcpos: the script did not finish, or a failure was reported");
                        ExitCode::from(1)
                    } else {
                        eprintln!("vcpos: no pass marker, or a failure was reported");
                        ExitCode::from(1)
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// Boots `image` with the serial console on the terminal until QEMU exits.
fn run_interactive(board: &Board, image: &Path, gdb: bool) -> ExitCode {
    print_qemu_version_once(&board.qemu.binary);
    let mut cmd = qemu_command(board, image, Console::Interactive { gdb });
    eprintln!("vcpos: {}", display_command(&cmd));
    if gdb {
        eprintln!("vcpos: waiting for GDB: gdb-multiarch -ex 'target remote :1234' <ELF>");
    }
    eprintln!("vcpos: serial console follows; quit with Ctrl-A x");
    match cmd.status() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("vcpos: QEMU ended: {status}");
            ExitCode::from(status.code().map_or(1, |c| u8::try_from(c).unwrap_or(1).max(1)))
        }
        Err(e) => {
            eprintln!("{}", spawn_error(&board.qemu.binary, &e));
            ExitCode::from(1)
        }
    }
}
