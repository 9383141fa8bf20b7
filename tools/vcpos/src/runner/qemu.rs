//! The QEMU command line: the one place it is made (for `vcpos run`, the tests and
//! the benchmarks' direct-Linux baseline).

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;

use crate::board::Board;

/// Where the serial console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The terminal: serial console and QEMU monitor multiplexed on stdio.
    Interactive {
        /// Start halted with a GDB server on localhost:1234 (`-s -S`).
        gdb: bool,
    },
    /// A pipe: serial console only on stdout, no monitor, no display.
    Captured,
}

/// The QEMU command that boots `image` on `board`.
pub fn qemu_command(board: &Board, image: &Path, console: Console) -> Command {
    let mut cmd = Command::new(&board.qemu.binary);
    cmd.args(qemu_args(board, image, console));
    cmd
}

/// The arguments of [`qemu_command`] (without the binary).
pub fn qemu_args(board: &Board, image: &Path, console: Console) -> Vec<OsString> {
    let q = &board.qemu;
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |a: &str| args.push(a.into());
    push("-machine");
    push(&q.machine);
    push("-cpu");
    push(&q.cpu);
    push("-m");
    push(&q.memory);
    push("-smp");
    push(&board.devices.cores.to_string());
    // No default devices: no NIC (whose option ROM a minimal install lacks), no
    // default serial/monitor/parallel; the console is set up explicitly below.
    push("-nodefaults");
    // A guest reset ends QEMU instead of rebooting into the same failure forever.
    push("-no-reboot");
    match console {
        Console::Interactive { gdb } => {
            push("-nographic");
            push("-serial");
            push("mon:stdio");
            if gdb {
                push("-s");
                push("-S");
            }
        }
        Console::Captured => {
            push("-display");
            push("none");
            push("-monitor");
            push("none");
            push("-serial");
            push("stdio");
        }
    }
    args.push("-kernel".into());
    args.push(image.into());
    args
}

/// A command line as a person would type it (for messages).
pub fn display_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board;

    #[test]
    fn command_line_comes_from_the_board() {
        let board = board::load("qemu_virt_aarch64", None).unwrap();
        let img = Path::new("/x/vcpos.img");
        let cmd = qemu_command(&board, img, Console::Captured);
        let line = display_command(&cmd);
        assert!(line.starts_with("qemu-system-aarch64 "), "{line}");
        for part in [
            "-machine virt,virtualization=on,gic-version=3",
            "-cpu max,pauth=off",
            "-m 2G",
            "-smp 1",
            "-serial stdio",
            "-monitor none",
            "-kernel /x/vcpos.img",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line}");
        }
        let inter = display_command(&qemu_command(&board, img, Console::Interactive { gdb: true }));
        assert!(inter.contains("-nographic -serial mon:stdio -s -S -kernel"), "{inter}");
        assert!(!inter.contains("-monitor none"), "{inter}");
    }

    #[test]
    fn display_command_quotes() {
        let mut c = Command::new("q");
        c.args(["a b", "it's", "plain"]);
        assert_eq!(display_command(&c), r"q 'a b' 'it'\''s' plain");
    }
}
