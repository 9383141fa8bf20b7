//! Helpers for the tests that boot the Linux guest VM and type at its shell: the
//! console script steps, the texts the guest's init, the VMM and the heartbeat PD
//! print, and readers for the build report (where memory is, physically) and the
//! transcript (stray-access reports, heartbeat numbers).

use std::path::Path;
use std::time::Duration;

use vcpos_tool::runner::{console_text, CaptureOptions, Step, Stop, KERNEL_ERROR, KERNEL_FAULT, TEST_FAIL};

use crate::{build_system, Transcript};

/// The guest shell's prompt (`PS1` in linux-vm/guest/init); no line end follows it.
pub const PROMPT: &str = "vcpos-guest# ";
/// The line the guest's init prints just before it starts the shell.
pub const READY: &str = "vcpos-guest: ready";
/// The VMM's line at each guest boot: `linux_vmm: boot N: ...`.
pub const BOOT: &str = "linux_vmm: boot ";
/// The VMM's report of a guest power-off.
pub const POWERED_OFF: &str = "linux_vmm: guest powered off (PSCI SYSTEM_OFF); booting the guest again";
/// The VMM's report of a guest reset (also how a guest panic with `panic=1` ends).
pub const RESET: &str = "linux_vmm: guest asked for a reset (PSCI SYSTEM_RESET); booting the guest again";
/// Linux's panic line.
pub const GUEST_PANIC: &str = "Kernel panic - not syncing";
/// The heartbeat PD's beat line: `heartbeat: N` (its start line is `heartbeat started, ...`).
pub const HEARTBEAT: &str = "heartbeat: ";

/// Default time for a test that boots the guest once: boot to the prompt takes 5-10 s
/// under QEMU TCG on an idle machine, several times that on a loaded 2-core one.
pub const LINUX_TIMEOUT: Duration = Duration::from_secs(180);

/// Pause after each typed byte: none, a command is written at once, so the tests also
/// check that the console takes fast input. (The VMM once cleared the UART's receive
/// interrupt after draining it, so a byte that arrived in between raised none and sat
/// in the UART, whose FIFO is off, blocking all later input: a command typed at once
/// lost everything after its first byte.) A run can still type like a person by
/// setting [`CaptureOptions::type_delay`].
pub const TYPE_DELAY: Duration = Duration::ZERO;

/// `per_boot` times `boots` (a test that boots the guest `boots` times), or
/// `$VCPOS_TEST_TIMEOUT` seconds if that is longer.
pub fn timeout(per_boot: Duration, boots: u32) -> Duration {
    let own = per_boot * boots;
    match std::env::var("VCPOS_TEST_TIMEOUT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        Some(s) if Duration::from_secs(s) > own => Duration::from_secs(s),
        _ => own,
    }
}

/// At the prompt, type `command` and Enter.
pub fn command(command: &str) -> Step {
    Step::after_text(PROMPT, format!("{command}\r"))
}

/// The first step of a script from power-on: the line the guest's init prints before
/// it starts the shell (the next step then waits for the prompt, e.g. [`command`]).
pub fn until_ready() -> Vec<Step> {
    vec![Step::wait_text(READY)]
}

/// Options for a run of `script`: `timeout`, typing at [`TYPE_DELAY`], stopping at a
/// kernel error or fault report or a `TEST FAIL:` line (markers, at the start of a
/// line), or a line containing any of `also_stop_on` (anywhere: guest texts).
pub fn options(timeout: Duration, script: Vec<Step>, also_stop_on: &[&str]) -> CaptureOptions {
    let mut opts = CaptureOptions::scripted(timeout, script);
    opts.stop_on = [KERNEL_ERROR, KERNEL_FAULT, TEST_FAIL]
        .iter()
        .map(|m| Stop::LineStart(m.to_string()))
        .chain(also_stop_on.iter().map(|t| Stop::Text(t.to_string())))
        .collect();
    opts.type_delay = TYPE_DELAY;
    opts
}

/// What a test that does not expect the guest to restart stops at: a guest panic or a
/// second boot.
pub const UNEXPECTED_RESTART: &[&str] = &[GUEST_PANIC, "linux_vmm: boot 2:"];

/// Builds `system` and runs `opts` (with its script) on it; panics with the reason if
/// it cannot be built or started.
pub fn run(label: &str, system: &Path, opts: &CaptureOptions) -> Transcript {
    match build_system(label, system, "debug").and_then(|b| b.boot(opts)) {
        Ok(t) => t,
        Err(e) => panic!("{label}: {e}"),
    }
}

impl Transcript {
    /// Panics with the transcript unless the console script ran to its end without a
    /// stop marker.
    pub fn assert_script_done(&self) {
        if !self.capture.script_complete() || !matches!(self.capture.ending, vcpos_tool::runner::Ending::ScriptDone) {
            self.fail("the console script did not run to its end");
        }
        if let Err(e) = crate::check_clean(self.output()) {
            self.fail(&e);
        }
    }

    /// Index of the first line equal to `line` (surrounding whitespace and a guest
    /// line's prefix ignored, see [`console_text`]).
    pub fn line_index(&self, line: &str) -> Option<usize> {
        self.output().lines().position(|l| console_text(l).trim() == line)
    }

    /// Index of the first line containing `text`.
    pub fn index_of(&self, text: &str) -> Option<usize> {
        self.output().lines().position(|l| l.contains(text))
    }
}

/// A memory range from the build report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// What the report says it is.
    pub what: String,
}

impl Range {
    /// `addr` is inside.
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
}

/// Parses `0x0040_0000`-style hex (underscores allowed).
fn hex(s: &str) -> Option<u64> {
    let digits: String = s.strip_prefix("0x")?.chars().filter(|&c| c != '_').collect();
    u64::from_str_radix(&digits, 16).ok()
}

/// Parses `0xSTART..0xEND`.
fn hex_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once("..")?;
    Some((hex(a)?, hex(b)?))
}

/// The report's physical memory map: lines `0xSTART..0xEND  0xSIZE  what` under the
/// `# Physical memory map` heading.
pub fn physical_map(report: &str) -> Vec<Range> {
    let mut in_map = false;
    let mut map = Vec::new();
    for line in report.lines() {
        if line.starts_with('#') {
            in_map = line.trim() == "# Physical memory map";
            continue;
        }
        if !in_map {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(range), Some(_size)) = (words.next(), words.next()) else {
            continue;
        };
        if let Some((start, end)) = hex_range(range) {
            map.push(Range {
                start,
                end,
                what: words.collect::<Vec<_>>().join(" "),
            });
        }
    }
    map
}

/// The physical range whose description in the report starts with `what` (e.g.
/// `memory region 'guest_kernel'`, `PD 'linux_vmm' IPC buffer`).
pub fn physical_range(report: &str, what: &str) -> Result<Range, String> {
    physical_map(report)
        .into_iter()
        .find(|r| r.what.starts_with(what))
        .ok_or_else(|| format!("the build report's physical memory map has no {what:?}"))
}

/// The guest-physical ranges a VM's stage-2 maps cover (report lines
/// `IPA 0xSTART..0xEND -> 0xPHYS ...`).
pub fn guest_physical_maps(report: &str) -> Vec<Range> {
    report
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("IPA ")?;
            let mut words = rest.split_whitespace();
            let (start, end) = hex_range(words.next()?)?;
            Some(Range {
                start,
                end,
                what: rest.to_string(),
            })
        })
        .collect()
}

/// A VMM report of a guest access outside the guest's memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StrayAccess {
    /// Line index in the output.
    pub index: usize,
    /// A write (else a read).
    pub write: bool,
    /// Bytes accessed.
    pub size: u32,
    /// The guest-physical address.
    pub address: u64,
}

/// The VMM's stray-access reports in `output`: lines
/// `linux_vmm: guest {read|write} of N bytes outside guest memory: address 0x..., pc 0x...; ignored`.
pub fn stray_accesses(output: &str) -> Vec<StrayAccess> {
    let mut found = Vec::new();
    for (index, line) in output.lines().enumerate() {
        let Some(i) = line.find("linux_vmm: guest ") else {
            continue;
        };
        let rest = &line[i + "linux_vmm: guest ".len()..];
        let Some((access, rest)) = rest.split_once(" outside guest memory: address ") else {
            continue;
        };
        let Some((kind, size)) = access.strip_suffix(" bytes").and_then(|a| a.split_once(" of ")) else {
            continue;
        };
        let write = match kind {
            "read" => false,
            "write" => true,
            _ => continue,
        };
        let addr = rest.split([',', ';', ' ']).next().and_then(hex);
        if let (Ok(size), Some(address)) = (size.parse(), addr) {
            found.push(StrayAccess {
                index,
                write,
                size,
                address,
            });
        }
    }
    found
}

/// The heartbeat numbers in `output`, with their line indices, in order. A beat may
/// come in the middle of a line the guest was writing.
pub fn heartbeats(output: &str) -> Vec<(usize, u64)> {
    let mut beats = Vec::new();
    for (index, line) in output.lines().enumerate() {
        for (i, _) in line.match_indices(HEARTBEAT) {
            let digits: String = line[i + HEARTBEAT.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            if let Ok(n) = digits.parse() {
                beats.push((index, n));
            }
        }
    }
    beats
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
# Protection domains
  stack:        0xfffffee000..0xffffffe000 (0x10000 bytes)
  guest-physical maps (stage 2):
    IPA 0x0040000000..0x0050000000 -> 0x0040400000  rwx cached  'guest_ram'

# Physical memory map
  0x0009000000..0x0009001000  0x00001000  memory region 'uart' (device memory, fixed address)
  0x00403eb000..0x00403ec000  0x00001000  PD 'linux_vmm' IPC buffer
  0x0040400000..0x0050400000  0x10000000  memory region 'guest_ram' (zeroed)
  0x0050400000..0x0053400000  0x03000000  memory region 'guest_kernel' (prefilled with 0x2146200 bytes of 'Image')

# Zeroed by the kernel at boot
  0x00402bf594..0x00402c0000  0x00000a6c
";

    #[test]
    fn report_ranges_are_read() {
        let map = physical_map(REPORT);
        assert_eq!(map.len(), 4, "{map:?}");
        let k = physical_range(REPORT, "memory region 'guest_kernel'").unwrap();
        assert_eq!((k.start, k.end), (0x5040_0000, 0x5340_0000));
        let ipc = physical_range(REPORT, "PD 'linux_vmm' IPC buffer").unwrap();
        assert_eq!(ipc.start, 0x403e_b000);
        // The zeroed ranges below are not part of the map.
        assert!(physical_range(REPORT, "0x00000a6c").is_err());
        assert!(physical_range(REPORT, "memory region 'nope'")
            .unwrap_err()
            .contains("'nope'"));
        let ipa = guest_physical_maps(REPORT);
        assert_eq!(ipa.len(), 1);
        assert_eq!((ipa[0].start, ipa[0].end), (0x4000_0000, 0x5000_0000));
        assert!(ipa[0].contains(0x4fff_ffff) && !ipa[0].contains(0x5000_0000));
    }

    #[test]
    fn stray_access_reports_are_read() {
        let out = "x\n\
            linux_vmm: guest read of 4 bytes outside guest memory: address 0x50000000, pc 0xffff800080a1b2c4; ignored\n\
            vcpos-guest# devmem 0x53c00000 32 1\n\
            linux_vmm: guest write of 8 bytes outside guest memory: address 0x53c00000, pc 0x1; ignored\n\
            linux_vmm: guest access cannot be emulated (Foo): address 0x1, pc 0x2; ignored\n";
        assert_eq!(
            stray_accesses(out),
            vec![
                StrayAccess {
                    index: 1,
                    write: false,
                    size: 4,
                    address: 0x5000_0000
                },
                StrayAccess {
                    index: 3,
                    write: true,
                    size: 8,
                    address: 0x53c0_0000
                },
            ]
        );
    }

    #[test]
    fn heartbeats_are_read_also_inside_guest_lines() {
        let out = "heartbeat started, a beat every 500 ms\nheartbeat: 1\n[ 0.1] Linux verheartbeat: 2\nsion 6\nheartbeat: x\n";
        assert_eq!(heartbeats(out), vec![(1, 1), (2, 2)]);
    }

    #[test]
    fn timeouts_scale_with_boots() {
        // Without VCPOS_TEST_TIMEOUT set above the default, per_boot * boots.
        if std::env::var_os("VCPOS_TEST_TIMEOUT").is_none() {
            assert_eq!(timeout(Duration::from_secs(100), 3), Duration::from_secs(300));
        }
    }
}
