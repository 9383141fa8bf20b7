//! The runner's commands: `vcpos run` (boot an image) and `vcpos qemu-args` (print the
//! QEMU command line, for shell scripts).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::capture::CaptureOptions;
use super::qemu::{display_command, Console, Device, QemuSpec};
use super::script::parse_step;
use super::{print_qemu_version_once, run_qemu, spawn_error};
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
    /// An extra virtio-mmio device, each in its own page (slots 31, 23, 15, 7):
    /// disk=FILE, disk-ro=FILE, nic or nic=MAC, a nic with options ,host (the guest
    /// reaches the host's 127.0.0.1 at 10.0.2.2), ,fwd=HOSTPORT:[GUESTADDR:]GUESTPORT
    /// and ,bus=N (its own slot).
    #[arg(long = "device", value_name = "DEVICE")]
    pub devices: Vec<Device>,
    /// The image to boot.
    pub image: PathBuf,
}

/// `vcpos qemu-args` arguments.
#[derive(clap::Args, Clone, Debug)]
pub struct QemuArgsArgs {
    /// Board (a file in kernel-config/).
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// Where the console goes: captured (serial on stdio, no monitor), interactive
    /// (serial and monitor on the terminal) or virtio (a virtio console on stdio).
    #[arg(long, default_value = "captured", value_parser = ["captured", "interactive", "virtio"])]
    pub console: String,
    /// Guest memory instead of the board's (a QEMU -m value).
    #[arg(long)]
    pub memory: Option<String>,
    /// CPUs instead of the board's cores.
    #[arg(long)]
    pub cpus: Option<u32>,
    /// An extra virtio-mmio device, each in its own page (slots 31, 23, 15, 7):
    /// disk=FILE, disk-ro=FILE, nic or nic=MAC, a nic with options ,host (the guest
    /// reaches the host's 127.0.0.1 at 10.0.2.2), ,fwd=HOSTPORT:[GUESTADDR:]GUESTPORT
    /// and ,bus=N (its own slot).
    #[arg(long = "device", value_name = "DEVICE")]
    pub devices: Vec<Device>,
    /// Boot this Linux kernel directly (no vcpos) instead of an image.
    #[arg(long, value_name = "KERNEL", conflicts_with = "image")]
    pub linux: Option<PathBuf>,
    /// The initramfs of --linux.
    #[arg(long, requires = "linux")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line of --linux.
    #[arg(long, requires = "linux", default_value = "console=ttyAMA0")]
    pub append: String,
    /// The vcpos image to boot.
    #[arg(required_unless_present = "linux")]
    pub image: Option<PathBuf>,
}

/// The command line `vcpos qemu-args` prints for `args`, one word per line (the
/// binary first), or why it cannot.
pub fn qemu_args_text(args: &QemuArgsArgs) -> Result<String, String> {
    let board = board::load(&args.board, None).map_err(|e| e.to_string())?;
    let console = match args.console.as_str() {
        "interactive" => Console::Interactive { gdb: false },
        "virtio" => Console::Virtio,
        _ => Console::Captured,
    };
    let mut spec = match (&args.linux, &args.image) {
        (Some(kernel), _) => QemuSpec::linux(&board, kernel, args.initrd.as_deref(), &args.append, console),
        (None, Some(image)) => QemuSpec::vcpos(&board, image, console),
        (None, None) => return Err("give an image or --linux KERNEL".into()),
    };
    spec.memory.clone_from(&args.memory);
    spec.cpus = args.cpus;
    spec.devices.clone_from(&args.devices);
    let cmd = spec.command();
    let mut text = String::new();
    for word in std::iter::once(cmd.get_program()).chain(cmd.get_args()) {
        let word = word.to_str().ok_or_else(|| format!("{word:?} is not UTF-8"))?;
        if word.contains('\n') {
            return Err(format!(
                "{word:?} contains a line end: it cannot be printed one word per line"
            ));
        }
        text.push_str(word);
        text.push('\n');
    }
    Ok(text)
}

/// Runs `vcpos qemu-args`: prints the QEMU command line, one word per line, the binary
/// first (for `mapfile -t cmd < <(vcpos qemu-args ...)` in a shell script).
pub fn qemu_args_command(args: &QemuArgsArgs) -> ExitCode {
    match qemu_args_text(args) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
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
        None => run_interactive(&board, &args.image, &args.devices, args.gdb),
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
            let mut spec = QemuSpec::vcpos(&board, &args.image, Console::Captured);
            spec.devices.clone_from(&args.devices);
            match run_qemu(&spec, &opts) {
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
fn run_interactive(board: &Board, image: &Path, devices: &[Device], gdb: bool) -> ExitCode {
    print_qemu_version_once(&board.qemu.binary);
    let mut spec = QemuSpec::vcpos(board, image, Console::Interactive { gdb });
    spec.devices = devices.to_vec();
    let mut cmd = spec.command();
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

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: QemuArgsArgs,
    }

    fn text(argv: &[&str]) -> Result<String, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("qemu-args").chain(argv.iter().copied())).map_err(|e| e.to_string())?;
        qemu_args_text(&cli.args)
    }

    #[test]
    fn qemu_args_prints_the_spec_one_word_per_line() {
        let board = board::load("qemu_virt_aarch64", None).unwrap();
        let out = text(&[
            "--linux",
            "/g/Image",
            "--initrd",
            "/g/initrd.gz",
            "--memory",
            "512M",
            "--device",
            "nic",
        ])
        .unwrap();
        let mut spec = QemuSpec::linux(
            &board,
            Path::new("/g/Image"),
            Some(Path::new("/g/initrd.gz")),
            "console=ttyAMA0",
            Console::Captured,
        );
        spec.memory = Some("512M".into());
        spec.devices = vec![Device::Nic {
            mac: None,
            to_host: false,
            forwards: Vec::new(),
            bus: None,
        }];
        let cmd = spec.command();
        let want: Vec<String> = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(out.lines().collect::<Vec<_>>(), want);
        let out = text(&["--console", "interactive", "/x/vcpos.img"]).unwrap();
        assert!(out.ends_with("\n-serial\nmon:stdio\n-kernel\n/x/vcpos.img\n"), "{out}");
        assert!(text(&[]).is_err(), "an image or --linux is needed");
        assert!(text(&["--linux", "k", "img"]).is_err(), "not both");
        assert!(text(&["--device", "tape", "img"]).unwrap_err().contains("tape"));
        assert!(text(&["--device", "disk=a\nb", "img"])
            .unwrap_err()
            .contains("line end"));
    }
}
