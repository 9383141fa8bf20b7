//! Integration-test harness: builds a system image from `tests/systems/<scenario>.system`
//! with the prebuilt target artifacts (kernel and PD ELFs from `tools/build-targets.sh`)
//! and the Linux guest's files (`tools/guest-image.sh`, in `.cache/guest`), boots it in
//! QEMU with a timeout through [`vcpos_tool::runner`] (optionally typing a console
//! script, see [`linux`]), and checks the serial transcript for the markers test PDs
//! and the kernel print.
//!
//! Missing artifacts or guest files are a test failure that says which script to run,
//! never a skip. The image, report and serial transcript of each scenario stay in
//! `target/vcpos-tests/<scenario>/` for inspection.
#![forbid(unsafe_code)]

pub mod baremetal;
pub mod bench;
pub mod disk;
pub mod linux;
pub mod net;
pub mod root;
pub mod status;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use vcpos_tool::board::{self, Board};
use vcpos_tool::runner::{
    self, line_marker, Capture, CaptureOptions, Console, Device, Ending, Marker, QemuSpec, Step, KERNEL_FAULT,
    TEST_PASS,
};

/// The target triple of the kernel and PDs.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";
/// The kernel's binary name in the artifact directory.
pub const KERNEL_BINARY: &str = "vcpos-kernel";
/// The board the tests run on.
pub const BOARD: &str = "qemu_virt_aarch64";
/// Default time a system may take to print its pass marker (QEMU TCG on a loaded
/// 2-core machine is slow); `VCPOS_TEST_TIMEOUT` (seconds) overrides it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The workspace root (the repository).
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the workspace root if
/// relative) or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => workspace_root().join(d),
        _ => workspace_root().join("target"),
    }
}

/// Where `tools/build-targets.sh` leaves the kernel and PD ELFs.
pub fn artifact_dir() -> PathBuf {
    target_dir().join(TARGET).join("release")
}

/// Where `tools/guest-image.sh` leaves the Linux guest's files (`Image`, `initrd.gz`):
/// `$VCPOS_GUEST_CACHE` (relative to the workspace root if relative), as in that
/// script, or `<root>/.cache/guest`.
pub fn guest_dir() -> PathBuf {
    match std::env::var_os("VCPOS_GUEST_CACHE") {
        Some(d) if !d.is_empty() => workspace_root().join(d),
        _ => workspace_root().join(".cache/guest"),
    }
}

/// The system file of a test scenario.
pub fn scenario_system(scenario: &str) -> PathBuf {
    workspace_root()
        .join("tests/systems")
        .join(format!("{scenario}.system"))
}

/// The boot timeout: `$VCPOS_TEST_TIMEOUT` seconds, or [`DEFAULT_TIMEOUT`].
pub fn timeout() -> Duration {
    parse_timeout(std::env::var("VCPOS_TEST_TIMEOUT").ok().as_deref())
}

/// A timeout in whole seconds from `text`, or [`DEFAULT_TIMEOUT`] if absent or not a
/// positive number.
pub fn parse_timeout(text: Option<&str>) -> Duration {
    text.and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs)
}

/// The board the tests run on.
pub fn board() -> Result<Board, String> {
    board::load(BOARD, None).map_err(|e| e.to_string())
}

fn render(diags: &[vcpos_tool::diag::Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// The ELF files a system needs from `dir` that are not there: the kernel and each PD's
/// program image (and symbol image). Relative names are looked up in `dir`.
pub fn missing_artifacts(system: &vcpos_tool::model::System, dir: &Path) -> Vec<PathBuf> {
    let mut needed = vec![KERNEL_BINARY.to_string()];
    for pd in &system.pds {
        needed.push(pd.program_image.path.clone());
        needed.extend(pd.program_image.path_for_symbols.clone());
    }
    let mut missing = Vec::new();
    for name in needed {
        let path = dir.join(&name);
        if !path.is_file() && !missing.contains(&path) {
            missing.push(path);
        }
    }
    missing
}

/// The prefill files of a system's memory regions (the guest kernel and initramfs of a
/// VM) that none of `dirs` holds. Absolute names are checked as they are.
pub fn missing_prefills(system: &vcpos_tool::model::System, dirs: &[PathBuf]) -> Vec<String> {
    let mut missing: Vec<String> = Vec::new();
    for name in system.memory_regions.iter().filter_map(|mr| mr.prefill_path.as_ref()) {
        let found = if Path::new(name).is_absolute() {
            Path::new(name).is_file()
        } else {
            dirs.iter().any(|d| d.join(name).is_file())
        };
        if !found && !missing.contains(name) {
            missing.push(name.clone());
        }
    }
    missing
}

/// Checks that every prefill file of `system` is in `dirs` or in `guest` (the guest
/// files' directory); if not, says to run `tools/guest-image.sh`.
pub fn check_prefills(system: &vcpos_tool::model::System, dirs: &[PathBuf], guest: &Path) -> Result<(), String> {
    let mut all = dirs.to_vec();
    all.push(guest.to_path_buf());
    let missing = missing_prefills(system, &all);
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "guest files missing from {} (memory region prefills): {}\nrun tools/guest-image.sh (or ./test.sh, which does)",
        guest.display(),
        missing.join(", ")
    ))
}

/// `vcpos build`'s arguments, parsed from a command line so the harness depends on the
/// builder's CLI (Microkit's) rather than on the fields of its argument struct.
#[derive(Parser)]
#[command(name = "vcpos-build")]
struct BuildCli {
    #[command(flatten)]
    args: vcpos_tool::image::BuildArgs,
}

/// Builds `system` (config `config`: debug, release or benchmark) into
/// `out_dir/vcpos.img` and `out_dir/report.txt` with the builder library; returns the
/// image path.
pub fn build_image(system: &Path, config: &str, out_dir: &Path) -> Result<PathBuf, String> {
    if !system.is_file() {
        return Err(format!("system file {} not found", system.display()));
    }
    let loaded = vcpos_tool::sdf::load(system).map_err(|e| {
        format!(
            "{} is not a valid system description:\n{}",
            system.display(),
            render(&e)
        )
    })?;
    let dir = artifact_dir();
    let missing = missing_artifacts(&loaded.system, &dir);
    if !missing.is_empty() {
        let list: String = missing.iter().map(|p| format!("  {}\n", p.display())).collect();
        return Err(format!(
            "target artifacts missing (kernel or PD ELFs):\n{list}build them first: tools/build-targets.sh \
             (or run ./test.sh, which does)"
        ));
    }
    let guest = guest_dir();
    // Small prefill files (such as a VCP's configuration) sit next to the system file.
    let system_dir = system.parent().unwrap_or(Path::new(".")).to_path_buf();
    check_prefills(&loaded.system, &[dir.clone(), system_dir.clone()], &guest)?;
    std::fs::create_dir_all(out_dir).map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let image = out_dir.join("vcpos.img");
    let report = out_dir.join("report.txt");
    let argv = [
        "vcpos-build".as_ref(),
        "--board".as_ref(),
        BOARD.as_ref(),
        "--config".as_ref(),
        config.as_ref(),
        "--search-path".as_ref(),
        dir.as_os_str(),
        "--search-path".as_ref(),
        guest.as_os_str(),
        "--search-path".as_ref(),
        system_dir.as_os_str(),
        "-o".as_ref(),
        image.as_os_str(),
        "-r".as_ref(),
        report.as_os_str(),
        system.as_os_str(),
    ];
    let cli: BuildCli = BuildCli::try_parse_from(argv).map_err(|e| format!("builder arguments: {e}"))?;
    vcpos_tool::image::build_command(&cli.args)
        .map_err(|e| format!("vcpos build {} failed:\n{}", system.display(), render(&e)))?;
    if !image.is_file() {
        return Err(format!("vcpos build reported success but wrote no {}", image.display()));
    }
    Ok(image)
}

/// What booting a system printed, with where it came from.
#[derive(Debug)]
pub struct Transcript {
    /// Scenario name (or a label).
    pub label: String,
    /// The image booted.
    pub image: PathBuf,
    /// The captured run.
    pub capture: Capture,
    /// The console script the run typed (empty if none).
    pub script: Vec<Step>,
}

/// A work directory under `keep_dir` no other call of this process gets:
/// `run-<pid>-<n>`. (Two tests of one process that boot the same scenario once shared
/// `run-<pid>`, and one moved the other's image away before QEMU loaded it.)
fn work_dir(keep_dir: &Path) -> PathBuf {
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    keep_dir.join(format!("run-{}-{n}", std::process::id()))
}

/// A system image built for a test, not booted yet.
#[derive(Debug)]
pub struct BuiltSystem {
    /// Scenario name (or a label).
    pub label: String,
    /// The image, in a work directory of this process.
    pub image: PathBuf,
    /// The builder's report (physical layout, maps, capabilities).
    pub report: String,
    work_dir: PathBuf,
    keep_dir: PathBuf,
}

/// Builds `system` with `config` in a directory of this call (several test runs may
/// share the target directory, and several tests of one run the label),
/// `target/vcpos-tests/<label>/run-<pid>-<n>/`.
pub fn build_system(label: &str, system: &Path, config: &str) -> Result<BuiltSystem, String> {
    let keep_dir = target_dir().join("vcpos-tests").join(label);
    let work_dir = work_dir(&keep_dir);
    let image = build_image(system, config, &work_dir).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(&work_dir);
    })?;
    let report = std::fs::read_to_string(work_dir.join("report.txt"))
        .map_err(|e| format!("cannot read the build report of {}: {e}", system.display()))?;
    Ok(BuiltSystem {
        label: label.to_string(),
        image,
        report,
        work_dir,
        keep_dir,
    })
}

impl BuiltSystem {
    /// Boots the image with `opts` (and its console script, if any). Afterwards the
    /// image, its report and the serial transcript (`serial.log`) are moved to
    /// `target/vcpos-tests/<label>/`.
    pub fn boot(self, opts: &CaptureOptions) -> Result<Transcript, String> {
        self.boot_with_devices(opts, &[])
    }

    /// [`Self::boot`] on a machine with extra virtio-mmio `devices` (in slot order, as
    /// [`runner::QemuSpec`] gives them to the direct-Linux baseline too).
    pub fn boot_with_devices(self, opts: &CaptureOptions, devices: &[Device]) -> Result<Transcript, String> {
        let board = board()?;
        let mut spec = QemuSpec::vcpos(&board, &self.image, Console::Captured);
        spec.devices = devices.to_vec();
        let capture = runner::run_qemu(&spec, opts).map_err(|e| e.to_string());
        if let Ok(c) = &capture {
            let _ = std::fs::write(self.work_dir.join("serial.log"), &c.output);
        }
        let mut kept = self.image.clone();
        for name in ["vcpos.img", "report.txt", "serial.log"] {
            // Best effort: a failed move leaves the files in the work directory.
            if std::fs::rename(self.work_dir.join(name), self.keep_dir.join(name)).is_ok() && name == "vcpos.img" {
                kept = self.keep_dir.join(name);
            }
        }
        let _ = std::fs::remove_dir(&self.work_dir);
        Ok(Transcript {
            label: self.label,
            image: kept,
            capture: capture?,
            script: opts.script.clone(),
        })
    }
}

/// Builds `system` with `config` and boots it until a pass/fail marker or kernel error
/// (plus a short grace period), or `timeout` (see [`build_system`], [`BuiltSystem::boot`]).
pub fn boot_system(label: &str, system: &Path, config: &str, timeout: Duration) -> Result<Transcript, String> {
    build_system(label, system, config)?.boot(&CaptureOptions::until_marker(timeout))
}

/// Boots scenario `tests/systems/<scenario>.system` (debug config, [`timeout`]); panics
/// with the reason if it cannot be built or started.
pub fn boot(scenario: &str) -> Transcript {
    match boot_system(scenario, &scenario_system(scenario), "debug", timeout()) {
        Ok(t) => t,
        Err(e) => panic!("scenario '{scenario}': {e}"),
    }
}

impl Transcript {
    /// The serial output.
    pub fn output(&self) -> &str {
        &self.capture.output
    }

    /// Panics with `why` and the whole transcript.
    pub fn fail(&self, why: &str) -> ! {
        panic!("scenario '{}': {why}\n{self}", self.label)
    }

    /// Asserts [`check_pass`] for `name`; panics with the transcript if it fails.
    pub fn assert_pass(&self, name: &str) {
        if let Err(e) = check_pass(self.output(), name) {
            self.fail(&e);
        }
    }

    /// Asserts that some `TEST PASS:` line appeared and [`check_clean`] holds (for
    /// systems whose pass detail is not fixed).
    pub fn assert_any_pass(&self) {
        if let Err(e) = check_clean(self.output()) {
            self.fail(&e);
        }
        if !self
            .output()
            .lines()
            .any(|l| matches!(line_marker(l), Some(Marker::Pass(_))))
        {
            self.fail(&format!("no '{TEST_PASS}' line"));
        }
    }
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.capture;
        writeln!(f, "image: {}", self.image.display())?;
        writeln!(f, "run: {} after {:.1} s", c.ending, c.elapsed.as_secs_f64())?;
        writeln!(f, "----- serial output -----")?;
        f.write_str(&c.output)?;
        writeln!(f, "----- end of serial output -----")?;
        if !c.stderr.is_empty() {
            writeln!(f, "----- QEMU stderr -----")?;
            f.write_str(&c.stderr)?;
            writeln!(f, "----- end of QEMU stderr -----")?;
        }
        if !self.script.is_empty() {
            writeln!(
                f,
                "----- console script ({} of {} steps happened) -----",
                c.steps_done.len(),
                self.script.len()
            )?;
            for (i, step) in self.script.iter().enumerate() {
                match c.steps_done.get(i) {
                    Some(t) => writeln!(f, "  {:>2}. at {:6.1} s: {step}", i + 1, t.as_secs_f64())?,
                    None => writeln!(f, "  {:>2}. never:     {step}", i + 1)?,
                }
            }
        }
        if let Ending::TimedOut(t) = c.ending {
            let what = if self.script.is_empty() {
                "no marker"
            } else {
                "the script did not finish"
            };
            writeln!(
                f,
                "({what} within {} s; VCPOS_TEST_TIMEOUT=<seconds> raises the limit)",
                t.as_secs()
            )?;
        }
        Ok(())
    }
}

/// Index of the first line that is the marker `TEST PASS: <name>` (at the start of the
/// line, see [`runner::line_marker`]) with `name` as a whole word (followed by the end
/// of the line, a space or punctuation other than `-`/`_`).
pub fn pass_line(output: &str, name: &str) -> Option<usize> {
    output.lines().position(|line| match line_marker(line) {
        Some(Marker::Pass(detail)) => detail.strip_prefix(name).is_some_and(|rest| {
            rest.chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'))
        }),
        _ => false,
    })
}

/// No `TEST FAIL:` line and no kernel error line (markers: at the start of a line).
pub fn check_clean(output: &str) -> Result<(), String> {
    let bad: Vec<&str> = output
        .lines()
        .filter(|l| line_marker(l).is_some_and(|m| m.is_failure()))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!("failure lines in the transcript:\n  {}", bad.join("\n  ")))
    }
}

/// `TEST PASS: <name>` appeared, and [`check_clean`] holds.
pub fn check_pass(output: &str, name: &str) -> Result<(), String> {
    check_clean(output)?;
    match pass_line(output, name) {
        Some(_) => Ok(()),
        None => Err(format!("no '{TEST_PASS} {name}' line")),
    }
}

/// A kernel fault report line, as the tests read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultLine {
    /// Line index in the output.
    pub index: usize,
    /// The faulting address.
    pub address: u64,
    /// The PC of the faulting instruction.
    pub pc: u64,
}

/// Words one of which names the kind of fault in a kernel fault line.
const FAULT_KINDS: &[&str] = &[
    "abort",
    "vm fault",
    "vm_fault",
    "exception",
    "translation",
    "permission",
    "alignment",
    "undefined",
    "access flag",
    "breakpoint",
    "system register",
];

/// `0x<hex>` after the word `key` in `line` (case-insensitive; `:`/`=`/spaces between).
fn hex_after(line: &str, key: &str) -> Option<u64> {
    let lower = line.to_ascii_lowercase();
    lower.match_indices(key).find_map(|(i, _)| {
        let word_start = lower[..i]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_');
        if !word_start {
            return None;
        }
        let rest = lower[i + key.len()..].trim_start_matches([' ', ':', '=']);
        let hex = rest.strip_prefix("0x")?;
        let digits: String = hex
            .chars()
            .take_while(|c| c.is_ascii_hexdigit() || *c == '_')
            .filter(|c| *c != '_')
            .collect();
        u64::from_str_radix(&digits, 16).ok()
    })
}

/// The kernel's `vcpos|FAULT:` line about PD `pd`: it must name the PD (`'pd'`), a
/// fault kind, `address 0x...` and `pc 0x...`.
pub fn find_fault(output: &str, pd: &str) -> Result<FaultLine, String> {
    let quoted = format!("'{pd}'");
    let (index, line) = output
        .lines()
        .enumerate()
        .find(|(_, l)| matches!(line_marker(l), Some(Marker::KernelFault(_))) && l.contains(&quoted))
        .ok_or_else(|| format!("no '{KERNEL_FAULT}' line naming PD {quoted}"))?;
    let after_pd = line[line.find(&quoted).unwrap_or(0)..].to_ascii_lowercase();
    if !FAULT_KINDS.iter().any(|k| after_pd.contains(k)) {
        return Err(format!(
            "fault line names no fault kind (one of {FAULT_KINDS:?}): {line}"
        ));
    }
    let address = hex_after(line, "address").ok_or_else(|| format!("fault line has no 'address 0x...': {line}"))?;
    let pc = hex_after(line, "pc").ok_or_else(|| format!("fault line has no 'pc 0x...': {line}"))?;
    Ok(FaultLine { index, address, pc })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_build_gets_its_own_work_dir() {
        let keep = Path::new("/k/linux-heartbeat");
        let (a, b) = (work_dir(keep), work_dir(keep));
        assert_ne!(a, b, "two builds of one scenario in one process share a work directory");
        assert!(a.starts_with(keep) && b.starts_with(keep));
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(&format!("run-{}-", std::process::id())), "{name}");
    }

    const FAULT_RUN: &str = "vcpos|INFO: booting\n\
        crasher: about to fault\n\
        vcpos|FAULT: PD 'crasher' data abort (translation fault, level 0) writing address 0xdead0000 pc 0x200a4c\n\
        TEST PASS: fault-isolation\n";

    #[test]
    fn pass_lines_match_whole_names() {
        let out = "x\nTEST PASS: hello-world\nTEST PASS: hello (3 messages)\n";
        assert_eq!(pass_line(out, "hello"), Some(2));
        assert_eq!(pass_line(out, "hello-world"), Some(1));
        assert_eq!(pass_line(out, "hell"), None);
        assert_eq!(pass_line("TEST PASS: hello", "hello"), Some(0));
        assert!(check_pass(out, "hello").is_ok());
        assert!(check_pass(out, "pingpong")
            .unwrap_err()
            .contains("no 'TEST PASS: pingpong' line"));
    }

    #[test]
    fn failures_and_kernel_errors_fail_a_pass() {
        let e = check_pass("TEST PASS: hello\nTEST FAIL: late\n", "hello").unwrap_err();
        assert!(e.contains("TEST FAIL: late"), "{e}");
        let e = check_pass("vcpos|ERROR: out of memory\nTEST PASS: hello\n", "hello").unwrap_err();
        assert!(e.contains("out of memory"), "{e}");
        assert!(check_clean("vcpos|INFO: ok\nvcpos|FAULT: PD 'x' ...\n").is_ok());
    }

    #[test]
    fn a_guest_line_is_never_a_marker() {
        // The VMM puts `guest| ` before every guest console line.
        assert_eq!(pass_line("guest| TEST PASS: x\n", "x"), None);
        assert_eq!(pass_line("TEST PASS: x\n", "x"), Some(0));
        assert!(check_pass("guest| TEST PASS: x\n", "x").is_err());
        assert!(check_pass("TEST PASS: x\n", "x").is_ok());
        assert!(check_pass(
            "TEST PASS: x\nguest| TEST FAIL: forged\nguest| vcpos|ERROR: forged\n",
            "x"
        )
        .is_ok());
        // Nor is text in the middle of a line (a PD's prefix, an escape sequence).
        for line in ["pd: TEST PASS: x", "\x1b[2KTEST PASS: x", "guest| \x1b[GTEST PASS: x"] {
            assert_eq!(pass_line(line, "x"), None, "{line:?}");
        }
        let forged = "guest| vcpos|FAULT: PD 'c' data abort address 0x10 pc 0x20\n";
        assert!(find_fault(forged, "c").is_err());
    }

    #[test]
    fn fault_line_is_parsed() {
        let f = find_fault(FAULT_RUN, "crasher").unwrap();
        assert_eq!(
            f,
            FaultLine {
                index: 2,
                address: 0xdead_0000,
                pc: 0x200a4c
            }
        );
        assert!(pass_line(FAULT_RUN, "fault-isolation").unwrap() > f.index);
        assert!(find_fault(FAULT_RUN, "watcher")
            .unwrap_err()
            .contains("no 'vcpos|FAULT:' line naming PD 'watcher'"));
    }

    #[test]
    fn fault_line_needs_kind_address_and_pc() {
        for (line, missing) in [
            ("vcpos|FAULT: PD 'c' something at address 0x10 pc 0x20", "fault kind"),
            ("vcpos|FAULT: PD 'c' data abort pc 0x20", "address"),
            ("vcpos|FAULT: PD 'c' data abort address 0x10 epc 0x20", "pc"),
            ("vcpos|FAULT: PD 'c' data abort address 10 pc 0x20", "address"),
        ] {
            let e = find_fault(line, "c").unwrap_err();
            assert!(e.contains(missing), "{line}: {e}");
        }
        let f = find_fault("vcpos|FAULT: PD 'c' instruction abort: address=0x0 PC: 0x20_0000", "c").unwrap();
        assert_eq!((f.address, f.pc), (0, 0x20_0000));
    }

    #[test]
    fn missing_artifacts_are_listed() {
        let sys = vcpos_tool::sdf::parse_str(
            "t.system",
            r#"<system><protection_domain name="a"><program_image path="no-such-pd-elf" /></protection_domain></system>"#,
        );
        let sys = match sys {
            Ok(l) => l.system,
            Err(e) => panic!("{}", render(&e)),
        };
        let dir = std::env::temp_dir().join(format!("vcpos-harness-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = missing_artifacts(&sys, &dir);
        assert_eq!(missing, vec![dir.join(KERNEL_BINARY), dir.join("no-such-pd-elf")]);
        std::fs::write(dir.join(KERNEL_BINARY), b"").unwrap();
        std::fs::write(dir.join("no-such-pd-elf"), b"").unwrap();
        assert!(missing_artifacts(&sys, &dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn missing_guest_files_are_listed() {
        let sys = vcpos_tool::sdf::parse_str(
            "t.system",
            r#"<system>
                <memory_region name="k" size="0x1000" prefill_path="no-such-guest-kernel" />
                <memory_region name="i" size="0x1000" prefill_path="initrd-here" />
                <memory_region name="z" size="0x1000" />
                <protection_domain name="a"><program_image path="a" />
                    <map mr="k" vaddr="0x4000000" /><map mr="i" vaddr="0x5000000" /><map mr="z" vaddr="0x6000000" />
                </protection_domain></system>"#,
        );
        let sys = match sys {
            Ok(l) => l.system,
            Err(e) => panic!("{}", render(&e)),
        };
        let dir = std::env::temp_dir().join(format!("vcpos-harness-guest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("initrd-here"), b"x").unwrap();
        let missing = missing_prefills(&sys, &[PathBuf::from("/nonexistent"), dir.clone()]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(missing, vec!["no-such-guest-kernel".to_string()]);
    }

    #[test]
    fn missing_guest_files_say_which_script_makes_them() {
        let sys = vcpos_tool::sdf::parse_str(
            "t.system",
            r#"<system><memory_region name="k" size="0x1000" prefill_path="Image" />
                <protection_domain name="a"><program_image path="a" /><map mr="k" vaddr="0x4000000" />
                </protection_domain></system>"#,
        );
        let sys = match sys {
            Ok(l) => l.system,
            Err(e) => panic!("{}", render(&e)),
        };
        let dir = std::env::temp_dir().join(format!("vcpos-harness-guestdir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = check_prefills(&sys, &[], &dir).unwrap_err();
        assert!(e.contains("Image") && e.contains("run tools/guest-image.sh"), "{e}");
        std::fs::write(dir.join("Image"), b"x").unwrap();
        let ok = check_prefills(&sys, &[], &dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn build_image_fails_clearly_without_artifacts() {
        let dir = std::env::temp_dir().join(format!("vcpos-harness-sys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let system = dir.join("t.system");
        std::fs::write(
            &system,
            r#"<system><protection_domain name="a"><program_image path="no-such-pd-elf-xyz" /></protection_domain></system>"#,
        )
        .unwrap();
        let e = build_image(&system, "debug", &dir.join("out")).unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            e.contains("no-such-pd-elf-xyz") && e.contains("tools/build-targets.sh"),
            "{e}"
        );
    }

    #[test]
    fn timeout_parsing() {
        assert_eq!(parse_timeout(None), DEFAULT_TIMEOUT);
        assert_eq!(parse_timeout(Some(" 120 ")), Duration::from_secs(120));
        assert_eq!(parse_timeout(Some("0")), DEFAULT_TIMEOUT);
        assert_eq!(parse_timeout(Some("soon")), DEFAULT_TIMEOUT);
    }
}
