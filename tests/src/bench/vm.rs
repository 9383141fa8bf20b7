//! The VM benchmarks of `vcpos-bench`: the Linux guest of `system.xml` booted on vcpos
//! against the same kernel `Image` and initramfs booted directly on the same QEMU.
//!
//! Every boot runs one console script: wait for the guest's `vcpos-guest: ready` line,
//! type `vcpos-mmio-bench` at the shell (linux-vm/guest/bench, in the initramfs) and
//! wait for the next prompt. Each boot yields
//! - the time from QEMU's start (power-on) to the ready line: boot to shell;
//! - the guest's `BENCH mmio_exit_roundtrip` figures: a 32-bit load from an empty
//!   virtio-mmio slot, which on vcpos exits through the kernel to the VMM PD and back,
//!   and directly on QEMU is QEMU's own device emulation;
//! - the guest's `BENCH guest_ram_load` figures: the same timed load from guest RAM (no
//!   exit), the cost of the measurement itself;
//! - the guest's `BENCH cpu_loop` figures: a fixed integer loop, which should cost the
//!   same in the VM (the target is within 1.05x of direct);
//! - the guest's `BENCH pipe_roundtrip` figures: lmbench's 1-byte pipe round trip
//!   between two guest processes (system calls, context switches, TLB refills).
//!
//! Runs alternate, vcpos then direct, so that changing load on the machine falls on both
//! alike. The summary takes medians over the runs and prints them as
//! `BENCH vm_boot_to_shell median_ms=.. direct_median_ms=.. ratio=..` and
//! `BENCH mmio_exit_roundtrip median_ns=.. median_ticks=.. iterations=.. direct_median_ns=.. ...`,
//! then `BENCH cpu_loop ...` and `BENCH pipe_roundtrip ...` with `direct_median_ns` and `ratio`.
//! These are figures, never pass/fail thresholds: QEMU's TCG timing on a shared machine
//! says little about hardware.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vcpos_tool::board::Board;
use vcpos_tool::model::System;
use vcpos_tool::runner::{self, Capture, CaptureOptions, Console, Device, Ending, QemuSpec, Step};

use super::{parse, table, BenchResult};
use crate::linux::{self, PROMPT, READY};
use crate::{artifact_dir, build_system, check_clean, guest_dir, target_dir};

/// The guest program that measures the MMIO exit (`/bin/vcpos-mmio-bench`).
pub const MMIO_BENCH_COMMAND: &str = "vcpos-mmio-bench";
/// Its benchmark names.
pub const MMIO_BENCH: &str = "mmio_exit_roundtrip";
/// The in-guest baseline: the same timed load from guest RAM.
pub const RAM_BENCH: &str = "guest_ram_load";
/// CPU-bound work in the guest (no exits of its own).
pub const CPU_BENCH: &str = "cpu_loop";
/// 1-byte pipe round trip between two guest processes.
pub const PIPE_BENCH: &str = "pipe_roundtrip";
/// The guest kernel and initramfs `tools/guest-image.sh` makes (the names `system.xml`'s
/// prefilled memory regions use).
pub const GUEST_KERNEL: &str = "Image";
/// See [`GUEST_KERNEL`].
pub const GUEST_INITRD: &str = "initrd.gz";
/// Kernel command line of the direct boot: the console on QEMU's PL011.
pub const DIRECT_APPEND: &str = "console=ttyAMA0";

/// What to run.
#[derive(Clone, Debug)]
pub struct VmBenchOptions {
    /// The system with the Linux VM (normally `system.xml`).
    pub system: PathBuf,
    /// Builder config.
    pub config: String,
    /// Boots on each side.
    pub runs: usize,
    /// Time limit of one boot and benchmark.
    pub timeout: Duration,
    /// Print whole transcripts.
    pub verbose: bool,
}

/// Where the guest ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// In the VM of the vcpos system.
    Vcpos,
    /// Directly on QEMU (no vcpos).
    Direct,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Vcpos => "vcpos",
            Side::Direct => "direct",
        }
    }
}

/// One boot's figures.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunFigures {
    /// From QEMU's start to the guest's ready line.
    pub ready: Duration,
    /// The guest's MMIO exit figures.
    pub mmio: BenchResult,
    /// The guest's RAM-load baseline.
    pub ram: BenchResult,
    /// The guest's CPU-bound loop.
    pub cpu: BenchResult,
    /// The guest's pipe round trip.
    pub pipe: BenchResult,
}

/// The console script of one boot: the ready line, then the benchmark at the prompt,
/// then the next prompt (the benchmark has ended, whatever it printed).
pub fn script() -> Vec<Step> {
    vec![
        Step::wait_text(READY),
        linux::command(MMIO_BENCH_COMMAND),
        Step::wait_text(PROMPT),
    ]
}

/// The capture options of one boot: [`script`], typed like a person (see
/// [`linux::TYPE_DELAY`]), stopping early at a kernel error or fault report, a failure
/// marker, a guest panic or a second guest boot.
pub fn options(timeout: Duration) -> CaptureOptions {
    linux::options(timeout, script(), linux::UNEXPECTED_RESTART)
}

/// The figures of a boot that ran [`script`]; an error says what went wrong.
pub fn run_figures(c: &Capture) -> Result<RunFigures, String> {
    if c.ending != Ending::ScriptDone || !c.script_complete() {
        let step = script()
            .get(c.steps_done.len())
            .map_or_else(String::new, |s| format!(" (waiting to {s})"));
        return Err(format!("the boot did not finish the benchmark: {}{step}", c.ending));
    }
    check_clean(&c.output)?;
    let ready = c.steps_done[0];
    let results = parse(&c.output)?;
    let find = |name: &str| {
        results.iter().find(|r| r.name == name).cloned().ok_or_else(|| {
            format!(
                "the guest printed no 'BENCH {name} ...' line: is /bin/{MMIO_BENCH_COMMAND} in the initramfs? \
                 (tools/build-targets.sh builds it, then tools/guest-image.sh puts it in)"
            )
        })
    };
    Ok(RunFigures {
        ready,
        mmio: find(MMIO_BENCH)?,
        ram: find(RAM_BENCH)?,
        cpu: find(CPU_BENCH)?,
        pipe: find(PIPE_BENCH)?,
    })
}

/// Bytes of guest RAM and vCPUs of the system's one virtual machine (its mapped memory
/// regions), so that the direct boot gets the same.
pub fn guest_machine(system: &System) -> Result<(u64, usize), String> {
    let mut vms = system.pds.iter().filter_map(|pd| pd.virtual_machine.as_ref());
    let vm = vms.next().ok_or("the system has no virtual machine")?;
    if vms.next().is_some() {
        return Err("the system has more than one virtual machine".into());
    }
    let mut ram = 0u64;
    for map in &vm.maps {
        let mr = system
            .memory_regions
            .get(map.mr)
            .ok_or("a VM map names no memory region")?;
        ram = ram.checked_add(mr.size).ok_or("the VM's memory does not fit 64 bits")?;
    }
    Ok((ram, vm.vcpus.len()))
}

/// QEMU's arguments for booting `kernel` + `initrd` directly: the board's machine and
/// CPU, `ram` bytes (rounded up to MiB) and `cpus` CPUs, the console on stdio, no
/// default devices (as the vcpos runs) but the extra virtio-mmio `devices`.
pub fn direct_args(
    board: &Board,
    kernel: &Path,
    initrd: &Path,
    ram: u64,
    cpus: usize,
    devices: &[Device],
) -> Vec<OsString> {
    let mut spec = QemuSpec::linux(board, kernel, Some(initrd), DIRECT_APPEND, Console::Captured);
    spec.devices = devices.to_vec();
    spec.memory = Some(format!("{}M", ram.div_ceil(1 << 20).max(1)));
    spec.cpus = Some(u32::try_from(cpus.max(1)).unwrap_or(u32::MAX));
    spec.args()
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median_duration(values: &[Duration]) -> Option<Duration> {
    let mut v = values.to_vec();
    v.sort();
    let n = v.len();
    (n > 0).then(|| (v[(n - 1) / 2] + v[n / 2]) / 2)
}

/// The result with the median `median_ns` (the lower middle one for an even count), so
/// that its ns and ticks belong together.
pub fn median_result(results: &[BenchResult]) -> Option<BenchResult> {
    let mut v = results.to_vec();
    v.sort_by_key(|r| r.median_ns);
    v.get(v.len().checked_sub(1)? / 2).cloned()
}

/// `a / b` with two decimals, or `n/a` if `b` is zero.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "n/a".into()
    }
}

/// The summary: a table of the median guest figures on each side, and the two `BENCH`
/// lines comparing vcpos with the direct boot. Empty if either side has no run.
pub fn summary(vcpos: &[RunFigures], direct: &[RunFigures]) -> String {
    let med =
        |runs: &[RunFigures], f: fn(&RunFigures) -> BenchResult| median_result(&runs.iter().map(f).collect::<Vec<_>>());
    let ready = |runs: &[RunFigures]| median_duration(&runs.iter().map(|r| r.ready).collect::<Vec<_>>());
    let (Some(v_ready), Some(d_ready), Some(v_mmio), Some(d_mmio), Some(v_ram), Some(d_ram)) = (
        ready(vcpos),
        ready(direct),
        med(vcpos, |r| r.mmio.clone()),
        med(direct, |r| r.mmio.clone()),
        med(vcpos, |r| r.ram.clone()),
        med(direct, |r| r.ram.clone()),
    ) else {
        return String::new();
    };
    let label = |r: &BenchResult, side: Side| BenchResult {
        name: format!("{} ({})", r.name, side.name()),
        ..r.clone()
    };
    let (Some(v_cpu), Some(d_cpu), Some(v_pipe), Some(d_pipe)) = (
        med(vcpos, |r| r.cpu.clone()),
        med(direct, |r| r.cpu.clone()),
        med(vcpos, |r| r.pipe.clone()),
        med(direct, |r| r.pipe.clone()),
    ) else {
        return String::new();
    };
    let mut out = table(&[
        label(&v_mmio, Side::Vcpos),
        label(&v_ram, Side::Vcpos),
        label(&v_cpu, Side::Vcpos),
        label(&v_pipe, Side::Vcpos),
        label(&d_mmio, Side::Direct),
        label(&d_ram, Side::Direct),
        label(&d_cpu, Side::Direct),
        label(&d_pipe, Side::Direct),
    ]);
    out.push_str(&format!(
        "BENCH vm_boot_to_shell median_ms={} direct_median_ms={} ratio={} runs={}/{}\n",
        v_ready.as_millis(),
        d_ready.as_millis(),
        ratio(v_ready.as_secs_f64(), d_ready.as_secs_f64()),
        vcpos.len(),
        direct.len(),
    ));
    out.push_str(&format!(
        "BENCH {MMIO_BENCH} median_ns={} median_ticks={} iterations={} direct_median_ns={} ratio={} \
         guest_ram_load_ns={} direct_guest_ram_load_ns={}\n",
        v_mmio.median_ns,
        v_mmio.median_ticks,
        v_mmio.iterations,
        d_mmio.median_ns,
        ratio(v_mmio.median_ns as f64, d_mmio.median_ns as f64),
        v_ram.median_ns,
        d_ram.median_ns,
    ));
    for (v, d) in [(&v_cpu, &d_cpu), (&v_pipe, &d_pipe)] {
        out.push_str(&format!(
            "BENCH {} median_ns={} median_ticks={} iterations={} direct_median_ns={} ratio={}\n",
            v.name,
            v.median_ns,
            v.median_ticks,
            v.iterations,
            d.median_ns,
            ratio(v.median_ns as f64, d.median_ns as f64),
        ));
    }
    out
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {l}\n"))
        .collect()
}

/// A blank scratch disk for the vcpos side (`system.xml`'s block VCP needs one).
fn bench_disk(label: &str) -> Result<std::path::PathBuf, String> {
    let disk = crate::disk::scratch_disk(label);
    crate::disk::create_disk(&disk, crate::disk::DISK_MIB, false)?;
    Ok(disk)
}

/// One boot on vcpos: builds the system and runs the script, with `system.xml`'s
/// devices as `run.sh` attaches them (a blank disk for vcp_blk, a NIC for vcp_net).
fn run_vcpos(opts: &VmBenchOptions) -> Result<(RunFigures, String), String> {
    let built = build_system("bench-vm", &opts.system, &opts.config)?;
    let disk = bench_disk("bench-vm-vcpos")?;
    let devices = crate::root::devices(&disk, None)?;
    let t = built.boot_with_devices(&options(opts.timeout), &devices);
    let _ = std::fs::remove_file(&disk);
    let t = t?;
    match run_figures(&t.capture) {
        Ok(f) => Ok((f, if opts.verbose { t.to_string() } else { String::new() })),
        Err(e) => Err(format!("{e}\n{t}")),
    }
}

/// One boot directly on QEMU; the serial output is kept in `log`.
fn run_direct(
    board: &Board,
    args: &[OsString],
    opts: &VmBenchOptions,
    log: &Path,
) -> Result<(RunFigures, String), String> {
    let mut cmd = Command::new(&board.qemu.binary);
    cmd.args(args);
    let shown = runner::display_command(&cmd);
    let c = runner::capture(cmd, &options(opts.timeout)).map_err(|e| format!("cannot run {shown}: {e}"))?;
    let _ = std::fs::write(log, &c.output);
    let text = format!(
        "command: {shown}\nrun: {} after {:.1} s (serial output in {})\n",
        c.ending,
        c.elapsed.as_secs_f64(),
        log.display()
    );
    match run_figures(&c) {
        Ok(f) => Ok((
            f,
            if opts.verbose {
                format!("{text}{}", c.output)
            } else {
                String::new()
            },
        )),
        Err(e) => Err(format!(
            "{e}\n{text}last lines:\n{}{}",
            tail(&c.output, 40),
            tail(&c.stderr, 10)
        )),
    }
}

fn describe(side: Side, i: usize, runs: usize, f: &RunFigures) -> String {
    format!(
        "  {:<6} run {i}/{runs}: ready after {:.2} s; {MMIO_BENCH} {} ns, {RAM_BENCH} {} ns, {CPU_BENCH} {} ns, \
         {PIPE_BENCH} {} ns",
        side.name(),
        f.ready.as_secs_f64(),
        f.mmio.median_ns,
        f.ram.median_ns,
        f.cpu.median_ns,
        f.pipe.median_ns
    )
}

/// Runs the VM benchmarks and prints their progress and summary; false if any boot
/// failed (its error and transcript are printed) or nothing could be measured.
pub fn run(opts: &VmBenchOptions) -> bool {
    let board = match crate::board() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("Error: {e}");
            return false;
        }
    };
    let guest = guest_dir();
    let (kernel, initrd) = (guest.join(GUEST_KERNEL), guest.join(GUEST_INITRD));
    if !kernel.is_file() || !initrd.is_file() {
        eprintln!(
            "Error: no {} or {}: run tools/guest-image.sh",
            kernel.display(),
            initrd.display()
        );
        return false;
    }
    let system = match vcpos_tool::sdf::load_with(&opts.system, &[artifact_dir(), guest.clone()]) {
        Ok(l) => l.system,
        Err(e) => {
            let why: String = e.iter().map(|d| format!("  {d}\n")).collect();
            eprintln!(
                "Error: {} is not a valid system description:\n{why}",
                opts.system.display()
            );
            return false;
        }
    };
    let (ram, cpus) = match guest_machine(&system) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("Error: {}: {e}", opts.system.display());
            return false;
        }
    };
    // No devices here: the guest's MMIO benchmark maps the empty virtio-mmio slot 31
    // QEMU's disk would take (on vcpos the VM's slots are the VMM's, the disk and NIC
    // are the VCPs').
    let args = direct_args(&board, &kernel, &initrd, ram, cpus, &[]);
    let log_dir = target_dir().join("vcpos-tests").join("bench-vm-direct");
    let _ = std::fs::create_dir_all(&log_dir);
    println!(
        "== VM: {} on vcpos vs {} + {} directly on QEMU ({} MiB, {cpus} CPU, append '{DIRECT_APPEND}'), {} runs each",
        opts.system.display(),
        kernel.display(),
        initrd.display(),
        ram >> 20,
        opts.runs
    );
    let mut ok = true;
    let (mut vcpos, mut direct) = (Vec::new(), Vec::new());
    for i in 1..=opts.runs {
        let log = log_dir.join(format!("serial-{i}.log"));
        for side in [Side::Vcpos, Side::Direct] {
            let outcome = match side {
                Side::Vcpos => run_vcpos(opts),
                Side::Direct => run_direct(&board, &args, opts, &log),
            };
            match outcome {
                Ok((f, transcript)) => {
                    print!("{transcript}");
                    println!("{}", describe(side, i, opts.runs, &f));
                    match side {
                        Side::Vcpos => vcpos.push(f),
                        Side::Direct => direct.push(f),
                    }
                }
                Err(e) => {
                    eprintln!("Error: {} run {i}: {e}", side.name());
                    ok = false;
                }
            }
        }
    }
    let s = summary(&vcpos, &direct);
    if s.is_empty() {
        eprintln!("Error: no VM figures: every boot failed on one side or the other");
        return false;
    }
    print!("{s}");
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(name: &str, ns: u64, ticks: u64) -> BenchResult {
        BenchResult {
            name: name.into(),
            median_ns: ns,
            median_ticks: ticks,
            iterations: 1000,
            per_op: None,
        }
    }

    fn figures(ready_ms: u64, mmio_ns: u64, ram_ns: u64) -> RunFigures {
        RunFigures {
            ready: Duration::from_millis(ready_ms),
            mmio: result(MMIO_BENCH, mmio_ns, mmio_ns / 16),
            ram: result(RAM_BENCH, ram_ns, ram_ns / 16),
            cpu: result(CPU_BENCH, 10_000_000 + ram_ns, 625_000),
            pipe: result(PIPE_BENCH, 40 * mmio_ns, mmio_ns),
        }
    }

    const GUEST_OUTPUT: &str = "[    0.000000] Booting Linux\nvcpos-guest: ready uptime=3.4s\n\
        vcpos-guest# vcpos-mmio-bench\n\
        vcpos-mmio-bench: loads from 0xa003e00 (reads 0x74726976) and from guest RAM\n\
        BENCH mmio_exit_roundtrip median_ns=53584 median_ticks=3349 iterations=1000 min_ns=29424 max_ns=554640\n\
        BENCH guest_ram_load median_ns=48 median_ticks=3 iterations=1000 min_ns=48 max_ns=64\n\
        BENCH cpu_loop median_ns=9800000 median_ticks=612500 iterations=21 min_ns=9700000 max_ns=12000000\n\
        BENCH pipe_roundtrip median_ns=41000 median_ticks=2562 iterations=1000 min_ns=30000 max_ns=900000\n\
        vcpos-guest# \n";

    fn capture(output: &str, ending: Ending, steps: usize) -> Capture {
        Capture {
            output: output.into(),
            stderr: String::new(),
            ending,
            elapsed: Duration::from_secs(9),
            pid: 1,
            steps_done: [7_250, 7_900, 9_000]
                .iter()
                .take(steps)
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            script_steps: script().len(),
        }
    }

    #[test]
    fn a_finished_run_gives_its_figures() {
        let f = run_figures(&capture(GUEST_OUTPUT, Ending::ScriptDone, 3)).unwrap();
        assert_eq!(
            f.ready,
            Duration::from_millis(7_250),
            "the ready time is the first step's"
        );
        assert_eq!(f.mmio, result(MMIO_BENCH, 53_584, 3_349));
        assert_eq!(f.ram, result(RAM_BENCH, 48, 3));
        assert_eq!(
            f.cpu,
            BenchResult {
                iterations: 21,
                ..result(CPU_BENCH, 9_800_000, 612_500)
            }
        );
        assert_eq!(f.pipe, result(PIPE_BENCH, 41_000, 2_562));
        let no_pipe = GUEST_OUTPUT.replace("BENCH pipe_roundtrip", "pipe failed");
        let e = run_figures(&capture(&no_pipe, Ending::ScriptDone, 3)).unwrap_err();
        assert!(e.contains("no 'BENCH pipe_roundtrip"), "{e}");
    }

    #[test]
    fn unfinished_or_failed_runs_are_errors() {
        let e = run_figures(&capture(GUEST_OUTPUT, Ending::TimedOut(Duration::from_secs(300)), 1)).unwrap_err();
        assert!(e.contains("timed out") && e.contains("vcpos-mmio-bench"), "{e}");
        let no_bench =
            "vcpos-guest: ready\nvcpos-guest# vcpos-mmio-bench\nsh: vcpos-mmio-bench: not found\nvcpos-guest# ";
        let e = run_figures(&capture(no_bench, Ending::ScriptDone, 3)).unwrap_err();
        assert!(
            e.contains("no 'BENCH mmio_exit_roundtrip") && e.contains("tools/guest-image.sh"),
            "{e}"
        );
        let e = run_figures(&capture(
            &format!("{GUEST_OUTPUT}vcpos|ERROR: oops\n"),
            Ending::ScriptDone,
            3,
        ))
        .unwrap_err();
        assert!(e.contains("vcpos|ERROR: oops"), "{e}");
        let bad = GUEST_OUTPUT.replace("median_ticks=3 ", "median_ticks=x ");
        assert!(run_figures(&capture(&bad, Ending::ScriptDone, 3))
            .unwrap_err()
            .contains("not a whole number"));
    }

    #[test]
    fn script_types_the_benchmark_after_the_ready_line() {
        let s = script();
        assert_eq!(s[0], Step::wait_text(READY));
        assert_eq!(s[1], Step::after_text(PROMPT, "vcpos-mmio-bench\r"));
        assert_eq!(s[2], Step::wait_text(PROMPT));
        assert!(options(Duration::from_secs(5))
            .stop_on
            .iter()
            .any(|m| m.matches(vcpos_tool::runner::KERNEL_ERROR)));
    }

    #[test]
    fn medians() {
        let ms = |v: &[u64]| v.iter().map(|&m| Duration::from_millis(m)).collect::<Vec<_>>();
        assert_eq!(median_duration(&ms(&[9, 1, 5])), Some(Duration::from_millis(5)));
        assert_eq!(median_duration(&ms(&[4, 1, 2, 3])), Some(Duration::from_micros(2_500)));
        assert_eq!(median_duration(&[]), None);
        let r = [
            result("m", 300, 3),
            result("m", 100, 1),
            result("m", 200, 2),
            result("m", 400, 4),
        ];
        assert_eq!(
            median_result(&r),
            Some(result("m", 200, 2)),
            "lower middle, ticks with their ns"
        );
        assert_eq!(median_result(&r[..3]), Some(result("m", 200, 2)));
        assert_eq!(median_result(&[]), None);
    }

    #[test]
    fn summary_compares_vcpos_with_the_direct_boot() {
        let vcpos = [
            figures(7_000, 50_000, 48),
            figures(8_000, 60_000, 48),
            figures(7_500, 55_000, 64),
        ];
        let direct = [
            figures(3_000, 176, 64),
            figures(2_500, 160, 64),
            figures(3_100, 192, 48),
        ];
        let s = summary(&vcpos, &direct);
        let lines: Vec<&str> = s.lines().collect();
        assert!(
            lines[2].starts_with("mmio_exit_roundtrip (vcpos)") && lines[2].contains("55000"),
            "{s}"
        );
        assert!(
            lines[4].starts_with("cpu_loop (vcpos)") && lines[4].contains("10000048"),
            "{s}"
        );
        assert!(
            lines[6].starts_with("mmio_exit_roundtrip (direct)") && lines[6].contains("176"),
            "{s}"
        );
        assert!(
            s.contains("BENCH vm_boot_to_shell median_ms=7500 direct_median_ms=3000 ratio=2.50 runs=3/3\n"),
            "{s}"
        );
        assert!(
            s.contains(
                "BENCH mmio_exit_roundtrip median_ns=55000 median_ticks=3437 iterations=1000 direct_median_ns=176 \
                 ratio=312.50 guest_ram_load_ns=48 direct_guest_ram_load_ns=64\n"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "BENCH cpu_loop median_ns=10000048 median_ticks=625000 iterations=1000 direct_median_ns=10000064 \
                        ratio=1.00\n"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "BENCH pipe_roundtrip median_ns=2200000 median_ticks=55000 iterations=1000 \
                        direct_median_ns=7040 ratio=312.50\n"
            ),
            "{s}"
        );
        assert_eq!(summary(&vcpos, &[]), "");
        assert_eq!(ratio(1.0, 0.0), "n/a");
    }

    #[test]
    fn direct_boot_mirrors_the_vm() {
        let sys = vcpos_tool::sdf::parse_str(
            "t.system",
            r#"<system>
                <memory_region name="ram" size="0x1000_0000" page_size="0x20_0000" />
                <memory_region name="more" size="0x10_0000" />
                <memory_region name="other" size="0x1000" />
                <protection_domain name="vmm"><program_image path="vmm" />
                    <map mr="other" vaddr="0x4000_0000" />
                    <virtual_machine name="linux">
                        <vcpu id="0" />
                        <map mr="ram" vaddr="0x4000_0000" perms="rwx" />
                        <map mr="more" vaddr="0x6000_0000" perms="rw" />
                    </virtual_machine>
                </protection_domain></system>"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
        .system;
        assert_eq!(guest_machine(&sys), Ok((0x1010_0000, 1)));
        let board = crate::board().unwrap();
        let args = direct_args(
            &board,
            Path::new("/g/Image"),
            Path::new("/g/initrd.gz"),
            0x1010_0000,
            1,
            &[],
        );
        let line = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let (machine, cpu) = (&board.qemu.machine, &board.qemu.cpu);
        assert_eq!(
            line,
            format!(
                "-machine {machine} -cpu {cpu} -m 257M -smp 1 -nodefaults -no-reboot -display none -monitor none \
                 -serial stdio -kernel /g/Image -initrd /g/initrd.gz -append console=ttyAMA0"
            )
        );
        let no_vm = vcpos_tool::sdf::parse_str(
            "n.system",
            r#"<system><protection_domain name="a"><program_image path="a" /></protection_domain></system>"#,
        )
        .unwrap_or_else(|e| panic!("{e:?}"))
        .system;
        assert!(guest_machine(&no_vm).unwrap_err().contains("no virtual machine"));
    }
}
