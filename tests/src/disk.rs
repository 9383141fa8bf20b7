//! The Linux guest's disk `/dev/vda` in tests and benchmarks: scratch disk images on
//! the host, the QEMU drive that backs the guest's virtio-blk device with one, boots
//! of the guest with a disk on a system under test ([`Sut`]) running a console script,
//! the guest commands that check each step, and the block benchmark
//! (`vcpos-mmio-bench blk run`): its `BENCH blk_*` lines and the "block" table.
//!
//! The system under test is a parameter so that the same scripts run against the
//! guest booted directly on QEMU and against the guest on vcpos, whose disk the block
//! VCP (vcp_blk) serves; both get the same QEMU virtio-blk device over the same kind
//! of raw image file.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use vcpos_guest_bench::blk::Test;

use vcpos_tool::runner::{self, Capture, CaptureOptions, Console, Device, Ending, QemuSpec, Step};

use crate::bench::vm::{self, GUEST_INITRD, GUEST_KERNEL};
use crate::linux::{self, PROMPT, READY};
use crate::{artifact_dir, check_clean, guest_dir, target_dir, workspace_root};

/// Size of a scratch disk (and of `run.sh`'s default disk), MiB.
pub const DISK_MIB: u64 = 256;
/// The QEMU drive's id, also the guest's device name.
pub const DRIVE_ID: &str = "vda";
/// The host-side cache mode of the guest's disk, the same for every run that is
/// compared: QEMU's page-cache writeback. The guest's own cache is bypassed by the
/// benchmark (O_DIRECT), so it measures the guest's I/O path (virtio-blk, the VMM, the
/// block VCP) and the host's memory, not the host's storage device; it also works on
/// host file systems without O_DIRECT (tmpfs), which `cache=none` needs.
pub const DRIVE_CACHE: &str = "writeback";
/// Kernel command-line word that keeps the guest's `/init` from mounting `/dev/vda`
/// (tests that write the raw disk).
pub const NO_MOUNT: &str = "vcpos.nomount";
/// The guest program of the block benchmark and the pattern checks.
pub const BLK_COMMAND: &str = "vcpos-mmio-bench blk";
/// The `/init` line for a disk without a file system.
pub const NO_FILE_SYSTEM: &str = "vcpos-guest: disk vda: no file system";
/// The `/init` line for a disk it mounted.
pub const MOUNTED: &str = "vcpos-guest: disk vda: ext4 mounted at /mnt";

/// Creates (or truncates) `path` as a raw disk of `mib` MiB. With `allocate`, every
/// block is written (zeros), so that a benchmark's first writes do not measure the host
/// file system allocating them; without, the file is sparse.
pub fn create_disk(path: &Path, mib: u64, allocate: bool) -> Result<(), String> {
    let what = |e: std::io::Error| format!("cannot create disk image {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(what)?;
    }
    let mut f = std::fs::File::create(path).map_err(what)?;
    if allocate {
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..mib {
            f.write_all(&zeros).map_err(what)?;
        }
        f.sync_all().map_err(what)?;
    } else {
        f.set_len(mib << 20).map_err(what)?;
    }
    Ok(())
}

/// The system under test: where the guest and its disk run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sut {
    /// The guest kernel and initramfs booted directly on QEMU (no vcpos), with the
    /// RAM and vCPUs of the VM in `system` (normally `system.xml`).
    Direct {
        /// The system whose VM the direct boot mirrors.
        system: PathBuf,
    },
    /// The guest on vcpos: `system` (normally `system.xml`; `tests/systems/linux-net.system`
    /// for eth0 through the network VCP) built with builder config `config`, with
    /// `system.xml`'s devices ([`crate::root::devices`]: the disk image in slot 31,
    /// QEMU's default cache mode, writeback, as [`DRIVE_CACHE`], which the block VCP
    /// vcp_blk drives, and a NIC for vcp_net); the guest's `/dev/vda` is the VM's
    /// window of the disk (in `system.xml`: the first 254 MiB).
    Vcpos {
        /// The system file.
        system: PathBuf,
        /// The builder config (debug, release, benchmark).
        config: String,
    },
}

impl Sut {
    /// The direct boot mirroring the repository's `system.xml`.
    pub fn direct() -> Sut {
        Sut::Direct {
            system: workspace_root().join("system.xml"),
        }
    }

    /// The guest on vcpos with the repository's `system.xml` (config `debug`).
    pub fn vcpos() -> Sut {
        Sut::vcpos_system(workspace_root().join("system.xml"), "debug")
    }

    /// The guest on vcpos with `system` and builder config `config`.
    pub fn vcpos_system(system: PathBuf, config: &str) -> Sut {
        Sut::Vcpos {
            system,
            config: config.to_string(),
        }
    }

    /// The guest on vcpos with eth0 served by the network VCP
    /// (`tests/systems/linux-net.system`, config `debug`).
    pub fn vcpos_net() -> Sut {
        Sut::vcpos_system(crate::scenario_system("linux-net"), "debug")
    }

    /// Its name in messages and tables.
    pub fn name(&self) -> &'static str {
        match self {
            Sut::Direct { .. } => "direct QEMU",
            Sut::Vcpos { .. } => "vcpos",
        }
    }

    /// What the guest's console lines start with in this system's serial output
    /// (nothing directly on QEMU; on vcpos the VMM puts
    /// `vcpos_abi::console::GUEST_LINE_PREFIX` before each).
    pub fn guest_line_prefix(&self) -> &'static str {
        match self {
            Sut::Direct { .. } => "",
            Sut::Vcpos { .. } => vcpos_abi::console::GUEST_LINE_PREFIX,
        }
    }

    /// The guest's console lines in `output`, without [`Sut::guest_line_prefix`] (other
    /// lines are left out), trimmed.
    pub fn guest_lines<'o>(&self, output: &'o str) -> impl Iterator<Item = &'o str> + 'o {
        let prefix = self.guest_line_prefix();
        output
            .lines()
            .filter_map(move |l| l.strip_prefix(prefix))
            .map(str::trim)
    }

    /// A step that waits for the guest console line `text` (a whole-line match
    /// ignores the guest line prefix by itself: `runner::console_text`).
    pub fn guest_line(&self, text: &str) -> Step {
        Step::wait_line(text)
    }

    /// At the prompt, types `command` so that it prints the line `<tag>-ok-42` if it
    /// succeeds and `TEST FAIL: <tag>` (a stop marker) if not; then waits for the ok
    /// line. Neither line is in the echo of what was typed (`42` is computed by the
    /// guest's shell, and the failure text is split by quotes).
    pub fn checked(&self, command: &str, tag: &str) -> [Step; 2] {
        [
            linux::command(&format!(
                "{command} && echo {tag}-ok-$((6*7)) || echo \"TEST FAIL\"\": {tag}\""
            )),
            self.guest_line(&format!("{tag}-ok-42")),
        ]
    }

    /// The command that boots the guest with `disk` as `/dev/vda` and `append`
    /// added to the kernel command line. On vcpos the guest's command line is the
    /// VMM's (`fdt::GUEST_BOOTARGS`): `append` must be empty or [`NO_MOUNT`], which
    /// there holds only for a disk without a file system (the callers' blank disks:
    /// `/init` mounts nothing else).
    pub fn command(&self, disk: &Path, append: &str) -> Result<Command, String> {
        // Both sides get the same devices in the same slots (the direct guest drives
        // them itself).
        let devices = crate::root::devices(disk, None)?;
        self.boot_command(append, &devices, Vec::new())
    }

    /// The command that boots the guest with `append` added to the kernel command line,
    /// the extra virtio-mmio `devices` (in slot order, see [`runner::QemuSpec`]) and then
    /// the QEMU arguments `extra`.
    pub fn boot_command(&self, append: &str, devices: &[Device], extra: Vec<OsString>) -> Result<Command, String> {
        match self {
            Sut::Vcpos { system, config } => {
                if !append.is_empty() && append != NO_MOUNT {
                    return Err(format!(
                        "vcpos: the guest's kernel command line is the VMM's; cannot add '{append}'"
                    ));
                }
                let board = crate::board()?;
                let image = vcpos_image(system, config)?;
                let mut spec = QemuSpec::vcpos(&board, &image, Console::Captured);
                spec.devices = devices.to_vec();
                let mut cmd = spec.command();
                cmd.args(extra);
                Ok(cmd)
            }
            Sut::Direct { system } => {
                let board = crate::board()?;
                let guest = guest_dir();
                let (kernel, initrd) = (guest.join(GUEST_KERNEL), guest.join(GUEST_INITRD));
                if !kernel.is_file() || !initrd.is_file() {
                    return Err(format!(
                        "no {} or {}: run tools/guest-image.sh",
                        kernel.display(),
                        initrd.display()
                    ));
                }
                let sys = vcpos_tool::sdf::load_with(system, &[artifact_dir(), guest])
                    .map_err(|e| {
                        format!(
                            "{}: {}",
                            system.display(),
                            e.iter().map(|d| format!("{d} ")).collect::<String>()
                        )
                    })?
                    .system;
                let (ram, cpus) = vm::guest_machine(&sys).map_err(|e| format!("{}: {e}", system.display()))?;
                let mut args = vm::direct_args(&board, &kernel, &initrd, ram, cpus, devices);
                append_kernel_args(&mut args, append)?;
                args.extend(extra);
                let mut cmd = Command::new(&board.qemu.binary);
                cmd.args(args);
                Ok(cmd)
            }
        }
    }

    /// Boots the guest with `disk` and `append`, runs `script` on its console within
    /// `timeout`, and returns what happened (stopping early at a kernel error, a
    /// `TEST FAIL:` line, a guest panic or a second boot).
    pub fn run(&self, disk: &Path, append: &str, script: Vec<Step>, timeout: Duration) -> Result<Capture, String> {
        self.run_stopping_at(disk, append, script, timeout, linux::UNEXPECTED_RESTART)
    }

    /// [`Sut::run`], stopping at a kernel error, a `TEST FAIL:` line or a line
    /// containing any of `stop_on` (e.g. less than [`linux::UNEXPECTED_RESTART`] for a
    /// script that reboots the guest).
    pub fn run_stopping_at(
        &self,
        disk: &Path,
        append: &str,
        script: Vec<Step>,
        timeout: Duration,
        stop_on: &[&str],
    ) -> Result<Capture, String> {
        let cmd = self.command(disk, append)?;
        let shown = runner::display_command(&cmd);
        let opts: CaptureOptions = linux::options(timeout, script, stop_on);
        runner::capture(cmd, &opts).map_err(|e| format!("cannot run {shown}: {e}"))
    }
}

/// The image of vcpos `system` with builder config `config`, built once per process,
/// system and config into `target/vcpos-tests/sut-<system>-<config>/run-<pid>/vcpos.img`
/// (older runs' directories of dead processes are removed first; boots of several tests
/// share it; QEMU only reads it).
fn vcpos_image(system: &Path, config: &str) -> Result<PathBuf, String> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static BUILT: OnceLock<Mutex<HashMap<(PathBuf, String), PathBuf>>> = OnceLock::new();
    let mut built = BUILT
        .get_or_init(Default::default)
        .lock()
        .map_err(|_| "a build of a vcpos image panicked".to_string())?;
    let key = (system.to_path_buf(), config.to_string());
    if let Some(image) = built.get(&key) {
        return Ok(image.clone());
    }
    let stem = system.file_stem().unwrap_or_default().to_string_lossy();
    let parent = target_dir().join("vcpos-tests").join(format!("sut-{stem}-{config}"));
    remove_dead_runs(&parent);
    let dir = parent.join(format!("run-{}", std::process::id()));
    let image = crate::build_image(system, config, &dir)?;
    built.insert(key, image.clone());
    Ok(image)
}

/// Removes the `run-<pid>` directories under `parent` of processes that are gone (an
/// image each; best effort).
fn remove_dead_runs(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("run-")) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Runs `cmd` (a guest boot) with `script` on its console within `timeout` (see
/// [`Sut::run`]).
pub fn run_command(cmd: Command, script: Vec<Step>, timeout: Duration) -> Result<Capture, String> {
    let shown = runner::display_command(&cmd);
    let opts: CaptureOptions = linux::options(timeout, script, linux::UNEXPECTED_RESTART);
    runner::capture(cmd, &opts).map_err(|e| format!("cannot run {shown}: {e}"))
}

/// Adds `extra` to the value after `-append` in `args`.
fn append_kernel_args(args: &mut [OsString], extra: &str) -> Result<(), String> {
    if extra.is_empty() {
        return Ok(());
    }
    let i = args
        .iter()
        .position(|a| a == "-append")
        .ok_or("the QEMU command line has no -append")?;
    let value = args.get_mut(i + 1).ok_or("-append without a value")?;
    value.push(" ");
    value.push(extra);
    Ok(())
}

/// A scratch disk image path for `label` in this process's directory under
/// `target/vcpos-tests/`.
pub fn scratch_disk(label: &str) -> PathBuf {
    target_dir()
        .join("vcpos-tests")
        .join(label)
        .join(format!("vda-{}.img", std::process::id()))
}

/// Panics with `why`, the capture's ending, output and script progress.
pub fn fail(label: &str, why: &str, c: &Capture, script: &[Step]) -> ! {
    let mut s = format!(
        "{label}: {why}\nrun: {} after {:.1} s\n----- serial output -----\n",
        c.ending,
        c.elapsed.as_secs_f64()
    );
    s.push_str(&c.output);
    s.push_str("----- end of serial output -----\n");
    if !c.stderr.is_empty() {
        let _ = write!(s, "----- QEMU stderr -----\n{}", c.stderr);
    }
    let _ = writeln!(
        s,
        "----- console script ({} of {} steps happened) -----",
        c.steps_done.len(),
        script.len()
    );
    for (i, step) in script.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {:>2}. {}{step}",
            i + 1,
            if i < c.steps_done.len() { "done: " } else { "never: " }
        );
    }
    panic!("{s}")
}

/// Panics (see [`fail`]) unless the script ran to its end with a clean transcript.
pub fn assert_done(label: &str, c: &Capture, script: &[Step]) {
    if c.ending != Ending::ScriptDone || !c.script_complete() {
        fail(label, "the console script did not run to its end", c, script);
    }
    if let Err(e) = check_clean(&c.output) {
        fail(label, &e, c, script);
    }
}

/// One test's figures from the guest's `BENCH blk_*` line.
#[derive(Clone, Debug, PartialEq)]
pub struct BlkResult {
    /// The test's name (`blk_seq_read_1m`, ...).
    pub name: String,
    /// Median latency of one request, submission to completion, ns.
    pub median_ns: u64,
    /// Requests made.
    pub iterations: u64,
    /// Throughput, MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Requests per second.
    pub iops: u64,
    /// Requests in flight.
    pub qd: u64,
}

/// The `BENCH blk_*` lines in `output`, in order; a malformed one is an error naming it.
pub fn parse_blk(output: &str) -> Result<Vec<BlkResult>, String> {
    let mut results = Vec::new();
    for line in output.lines() {
        let Some(i) = line.find("BENCH blk_") else { continue };
        let mut words = line[i..].split_whitespace().skip(1);
        let name = words.next().unwrap_or_default().to_string();
        let (mut ns, mut iters, mut mb, mut iops, mut qd) = (None, None, None, None, None);
        for w in words {
            let (k, v) = w
                .split_once('=')
                .ok_or_else(|| format!("'{w}' is not key=value in: {line}"))?;
            let int = || {
                v.parse::<u64>()
                    .map_err(|_| format!("{k}={v} is not a whole number in: {line}"))
            };
            match k {
                "median_ns" => ns = Some(int()?),
                "iterations" => iters = Some(int()?),
                "iops" => iops = Some(int()?),
                "qd" => qd = Some(int()?),
                "mb_per_s" => {
                    mb = Some(
                        v.parse::<f64>()
                            .map_err(|_| format!("mb_per_s={v} is not a number in: {line}"))?,
                    )
                }
                _ => {}
            }
        }
        let need = |v: Option<u64>, k: &str| v.ok_or_else(|| format!("no {k}= in: {line}"));
        results.push(BlkResult {
            median_ns: need(ns, "median_ns")?,
            iterations: need(iters, "iterations")?,
            mb_per_s: mb.ok_or_else(|| format!("no mb_per_s= in: {line}"))?,
            iops: need(iops, "iops")?,
            qd: need(qd, "qd")?,
            name,
        });
    }
    Ok(results)
}

/// The figures of every test of the benchmark, in [`Test::ALL`]'s order; an error
/// names a missing one.
pub fn blk_figures(output: &str) -> Result<Vec<BlkResult>, String> {
    let all = parse_blk(output)?;
    Test::ALL
        .iter()
        .map(|t| {
            all.iter().find(|r| r.name == t.name()).cloned().ok_or_else(|| {
                format!(
                    "the guest printed no 'BENCH {} ...' line: is /bin/vcpos-mmio-bench (with blk) in the initramfs?",
                    t.name()
                )
            })
        })
        .collect()
}

/// The median of `v` (the mean of the middle two for an even count); 0 if empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else {
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    }
}

/// The block table of `sut` over `runs` (each a [`blk_figures`] list): per test the
/// medians of MB/s, IOPS and request latency; then one `BENCH blk` summary line per test:
/// `BENCH <name> side=<side> mb_per_s=.. iops=.. median_ns=.. runs=N`.
pub fn blk_table(side: &str, runs: &[Vec<BlkResult>]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:>3}  {:>10}  {:>8}  {:>12}",
        "benchmark", "qd", "MB/s", "IOPS", "latency us"
    );
    let _ = writeln!(out, "{:-<24}  {:->3}  {:->10}  {:->8}  {:->12}", "", "", "", "", "");
    let mut lines = String::new();
    for t in Test::ALL {
        let of: Vec<&BlkResult> = runs
            .iter()
            .filter_map(|r| r.iter().find(|x| x.name == t.name()))
            .collect();
        if of.is_empty() {
            continue;
        }
        let mb = median(of.iter().map(|r| r.mb_per_s).collect());
        let iops = median(of.iter().map(|r| r.iops as f64).collect());
        let ns = median(of.iter().map(|r| r.median_ns as f64).collect());
        let _ = writeln!(
            out,
            "{:<24}  {:>3}  {mb:>10.1}  {iops:>8.0}  {:>12.1}",
            t.name(),
            t.queue_depth(),
            ns / 1000.0
        );
        let _ = writeln!(
            lines,
            "BENCH {} side={side} mb_per_s={mb:.1} iops={iops:.0} median_ns={ns:.0} runs={}",
            t.name(),
            of.len()
        );
    }
    out + &lines
}

/// What the block benchmark measures over (MiB from the disk's start).
pub const BENCH_MIB: u64 = 64;

/// The console script of one benchmark boot: the ready line, the benchmark, the
/// prompt after it.
pub fn bench_script() -> Vec<Step> {
    vec![
        Step::wait_text(READY),
        linux::command(&format!("{BLK_COMMAND} run /dev/{DRIVE_ID} {BENCH_MIB}")),
        Step::wait_text(PROMPT),
    ]
}

/// The VMM's counter snapshots (`linux_vmm: counters at <tag> key=value ...`, printed
/// when the guest's benchmark starts and after each test), in order.
pub fn parse_counters(output: &str) -> Vec<(String, Vec<(String, u64)>)> {
    output
        .lines()
        .filter_map(|l| l.split_once("linux_vmm: counters at ").map(|(_, rest)| rest))
        .filter_map(|rest| {
            let mut words = rest.split_whitespace();
            let tag = words.next()?.to_string();
            let values = words
                .filter_map(|w| w.split_once('='))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect();
            Some((tag, values))
        })
        .collect()
}

/// Per request of each test in `figures`: the counters' growth from the snapshot before
/// the test to the one after it, divided by the test's requests; one line per test
/// (none without snapshots: direct QEMU).
pub fn counters_per_request(output: &str, figures: &[BlkResult]) -> Vec<String> {
    let snaps = parse_counters(output);
    let mut rows = Vec::new();
    for f in figures {
        let Some(at) = snaps.iter().position(|(t, _)| *t == f.name) else {
            continue;
        };
        let Some(before) = at.checked_sub(1).map(|i| &snaps[i].1) else {
            continue;
        };
        let after = &snaps[at].1;
        let get = |m: &[(String, u64)], k: &str| m.iter().find(|(x, _)| x == k).map_or(0, |(_, v)| *v);
        let per = |k: &str| (get(after, k).saturating_sub(get(before, k))) as f64 / f.iterations.max(1) as f64;
        rows.push(format!(
            "{:<24}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}  {:>9.2}",
            f.name,
            per("switches"),
            per("entries"),
            per("vmm_switches"),
            per("exits"),
            per("exits_dabt"),
            per("exits_irq"),
            per("exits_wfx")
        ));
    }
    rows
}

/// One boot of the block benchmark on `sut` with `disk`: its figures and, on vcpos,
/// the kernel's counters per request ([`counters_per_request`]), or why not.
fn bench_once(
    sut: &Sut,
    disk: &Path,
    timeout: Duration,
    verbose: bool,
) -> Result<(Vec<BlkResult>, Vec<String>), String> {
    let script = bench_script();
    let c = sut.run(disk, NO_MOUNT, script.clone(), timeout)?;
    if verbose {
        print!("{}", c.output);
    }
    let done = c.ending == Ending::ScriptDone && c.script_complete();
    match check_clean(&c.output).and_then(|()| blk_figures(&c.output)) {
        Ok(f) if done => {
            let rows = counters_per_request(&c.output, &f);
            Ok((f, rows))
        }
        Ok(_) => Err(format!("the benchmark did not finish ({})\n{}", c.ending, c.output)),
        Err(e) => Err(format!("{e}\n{}", c.output)),
    }
}

/// Runs the block benchmark `runs` times on each of `suts` (alternating, so that the
/// host's load falls on every side alike) with one preallocated scratch disk image,
/// the same file for every side, and prints each side's block table and, for two
/// sides, the second against the first (ratios); false if a run failed or a side
/// measured nothing.
pub fn bench(suts: &[Sut], runs: usize, timeout: Duration, verbose: bool) -> bool {
    let disk = target_dir().join("vcpos-tests").join("bench-blk").join("vda.img");
    let names: Vec<&str> = suts.iter().map(Sut::name).collect();
    println!(
        "== block ({}): {BLK_COMMAND} run /dev/{DRIVE_ID} {BENCH_MIB} (O_DIRECT) on a {DISK_MIB} MiB raw image \
         ({}, cache={DRIVE_CACHE}), {runs} runs each",
        names.join(" vs "),
        disk.display()
    );
    if let Err(e) = create_disk(&disk, DISK_MIB, true) {
        eprintln!("Error: {e}");
        return false;
    }
    let mut ok = true;
    let mut all: Vec<Vec<Vec<BlkResult>>> = vec![Vec::new(); suts.len()];
    for i in 1..=runs {
        for (sut, figures) in suts.iter().zip(all.iter_mut()) {
            match bench_once(sut, &disk, timeout, verbose) {
                Ok((f, counter_rows)) => {
                    let row: Vec<String> = f
                        .iter()
                        .map(|r| format!("{} {:.1} MB/s {} IOPS", r.name, r.mb_per_s, r.iops))
                        .collect();
                    println!("  {} run {i}/{runs}: {}", sut.name(), row.join(", "));
                    if !counter_rows.is_empty() {
                        println!(
                            "    per request (kernel event counters, all threads; vmm = linux_vmm; exits = the vCPU's):\n    \
                             {:<24}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
                            "benchmark", "switches", "entries", "vmm sw", "exits", "dabt", "irq", "wfx"
                        );
                        for r in counter_rows {
                            println!("    {r}");
                        }
                    }
                    figures.push(f);
                }
                Err(e) => {
                    eprintln!("Error: block run {i} on {}: {e}", sut.name());
                    ok = false;
                }
            }
        }
    }
    for (sut, figures) in suts.iter().zip(&all) {
        if figures.is_empty() {
            eprintln!("Error: no block figures for {}", sut.name());
            ok = false;
            continue;
        }
        println!("-- block ({}), medians of {} runs", sut.name(), figures.len());
        print!("{}", blk_table(&sut.name().replace(' ', "_"), figures));
    }
    if let [base, other] = &all[..] {
        if !base.is_empty() && !other.is_empty() {
            print!("{}", blk_compare(suts[0].name(), base, suts[1].name(), other));
        }
    }
    let _ = std::fs::remove_file(&disk);
    ok
}

/// Per test: the median MB/s and IOPS of `other` against `base`'s, with the ratio and
/// the target (sequential 1 MiB: at least 95 %; 4 KiB random at depth 32: at least
/// 70 %); one `BENCH <name> ratio=..` line per test after the table.
pub fn blk_compare(base_name: &str, base: &[Vec<BlkResult>], other_name: &str, other: &[Vec<BlkResult>]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "-- block: {other_name} against {base_name} (medians)");
    let _ = writeln!(
        out,
        "{:<24}  {:>3}  {:>10}  {:>10}  {:>8}  {:>8}  {:>6}  {:>7}",
        "benchmark", "qd", "base MB/s", "MB/s", "base IOPS", "IOPS", "ratio", "target"
    );
    let mut lines = String::new();
    let med = |runs: &[Vec<BlkResult>], name: &str| {
        let of: Vec<&BlkResult> = runs.iter().filter_map(|r| r.iter().find(|x| x.name == name)).collect();
        (!of.is_empty()).then(|| {
            (
                median(of.iter().map(|r| r.mb_per_s).collect()),
                median(of.iter().map(|r| r.iops as f64).collect()),
            )
        })
    };
    for t in Test::ALL {
        let (Some((bmb, biops)), Some((mb, iops))) = (med(base, t.name()), med(other, t.name())) else {
            continue;
        };
        let ratio = if bmb > 0.0 { mb / bmb } else { 0.0 };
        let target = match t.name() {
            "blk_seq_read_1m" | "blk_seq_write_1m" => Some(0.95),
            "blk_rand_read_4k_qd32" => Some(0.70),
            _ => None,
        };
        let verdict = match target {
            Some(x) if ratio >= x => format!(">={:.0}% ok", x * 100.0),
            Some(x) => format!(">={:.0}% MISSED", x * 100.0),
            None => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<24}  {:>3}  {bmb:>10.1}  {mb:>10.1}  {biops:>8.0}  {iops:>8.0}  {:>5.0}%  {verdict}",
            t.name(),
            t.queue_depth(),
            ratio * 100.0
        );
        let _ = writeln!(
            lines,
            "BENCH {} ratio={ratio:.3} side={}",
            t.name(),
            other_name.replace(' ', "_")
        );
    }
    out + &lines
}

/// SHA-256 (hex) of the first `len` bytes of `path`, from the host's `head` and
/// `sha256sum`.
pub fn host_sha256(path: &Path, len: u64) -> Result<String, String> {
    let out = Command::new("bash")
        .args(["-o", "pipefail", "-c", "head -c \"$1\" \"$2\" | sha256sum", "bash"])
        .arg(len.to_string())
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text.split_whitespace().next().unwrap_or_default();
    if !out.status.success() || hash.len() != 64 {
        return Err(format!(
            "sha256sum of {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(hash.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "vcpos-guest# vcpos-mmio-bench blk run /dev/vda 64\n\
        vcpos-blk: /dev/vda first 64 MiB, O_DIRECT; counter 62500000 Hz\n\
        BENCH blk_seq_write_1m median_ns=2121800 median_ticks=132612 iterations=64 mb_per_s=29.8 iops=28 qd=1 request_bytes=1048576 bytes=67108864 elapsed_ns=2248864944\n\
        BENCH blk_seq_read_1m median_ns=303440 median_ticks=18965 iterations=64 mb_per_s=2913.6 iops=2778 qd=1 request_bytes=1048576 bytes=67108864 elapsed_ns=23032480\n\
        BENCH blk_rand_read_4k_qd1 median_ns=73568 median_ticks=4598 iterations=2048 mb_per_s=52.9 iops=12934 qd=1 request_bytes=4096 bytes=8388608 elapsed_ns=158336464\n\
        BENCH blk_rand_read_4k_qd32 median_ns=554840 median_ticks=34677 iterations=8192 mb_per_s=117.7 iops=28751 qd=32 request_bytes=4096 bytes=33554432 elapsed_ns=284923104\n\
        vcpos-guest# ";

    #[test]
    fn blk_lines_parse() {
        let f = blk_figures(RUN).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(
            f[3],
            BlkResult {
                name: "blk_rand_read_4k_qd32".into(),
                median_ns: 554_840,
                iterations: 8192,
                mb_per_s: 117.7,
                iops: 28_751,
                qd: 32
            }
        );
        assert_eq!(f[1].name, "blk_seq_read_1m");
        let missing = RUN.replace("BENCH blk_seq_read_1m", "xx");
        assert!(blk_figures(&missing).unwrap_err().contains("no 'BENCH blk_seq_read_1m"));
        let bad = RUN.replace("mb_per_s=52.9", "mb_per_s=fast");
        assert!(parse_blk(&bad).unwrap_err().contains("mb_per_s=fast is not a number"));
        let no_iops = RUN.replace("iops=28 ", "");
        assert!(parse_blk(&no_iops).unwrap_err().contains("no iops="));
    }

    #[test]
    fn counters_per_request_are_differences_of_snapshots() {
        let out = format!(
            "linux_vmm: counters at blk_start threads=5 switches=100 entries=1000 exits=10 exits_dabt=4\n{}\n\
             linux_vmm: counters at blk_seq_write_1m threads=5 switches=740 entries=2280 exits=138 exits_dabt=132\n",
            RUN
        );
        let snaps = parse_counters(&out);
        assert_eq!(snaps.len(), 2);
        assert_eq!(snaps[1].0, "blk_seq_write_1m");
        let f = blk_figures(RUN).unwrap();
        let rows = counters_per_request(&out, &f);
        // 64 requests: (740-100)/64 = 10 switches, 20 entries, 2 exits (2 data aborts).
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(rows[0].starts_with("blk_seq_write_1m"), "{}", rows[0]);
        let cols: Vec<&str> = rows[0].split_whitespace().collect();
        assert_eq!(&cols[1..], ["10.00", "20.00", "0.00", "2.00", "2.00", "0.00", "0.00"]);
    }

    #[test]
    fn table_takes_medians() {
        let a = blk_figures(RUN).unwrap();
        let mut b = a.clone();
        b[1].mb_per_s = 1000.0;
        b[1].iops = 1000;
        let mut c = a.clone();
        c[1].mb_per_s = 2000.0;
        c[1].iops = 2000;
        let t = blk_table("direct_QEMU", &[a, b, c]);
        let row = t.lines().find(|l| l.starts_with("blk_seq_read_1m")).unwrap();
        assert!(row.contains("2000.0") && row.contains("2000"), "{t}");
        assert!(
            t.contains("BENCH blk_seq_read_1m side=direct_QEMU mb_per_s=2000.0 iops=2000 median_ns=303440 runs=3\n"),
            "{t}"
        );
        assert!(
            t.contains("BENCH blk_rand_read_4k_qd32 side=direct_QEMU mb_per_s=117.7 iops=28751"),
            "{t}"
        );
        assert_eq!(median(vec![]), 0.0);
        assert_eq!(median(vec![1.0, 4.0]), 2.5);
    }

    #[test]
    fn checked_steps_print_markers_the_echo_does_not_hold() {
        let sut = Sut::direct();
        let [typed, wait] = sut.checked("mkfs.ext4 -q /dev/vda", "mkfs");
        assert_eq!(wait, Step::wait_line("mkfs-ok-42"));
        let sent = String::from_utf8(typed.send.clone()).unwrap();
        assert!(!sent.contains("mkfs-ok-42") && !sent.contains("TEST FAIL: "), "{sent}");
        assert!(
            sent.starts_with("mkfs.ext4 -q /dev/vda && ") && sent.ends_with('\r'),
            "{sent}"
        );
        let lines: Vec<&str> = sut.guest_lines("a \r\n b\n").collect();
        assert_eq!(lines, ["a", "b"]);
    }

    #[test]
    fn drive_and_append() {
        let mut a: Vec<OsString> = vec!["-kernel".into(), "I".into(), "-append".into(), "console=ttyAMA0".into()];
        append_kernel_args(&mut a, NO_MOUNT).unwrap();
        assert_eq!(a[3], "console=ttyAMA0 vcpos.nomount");
        append_kernel_args(&mut a, "").unwrap();
        assert_eq!(a[3], "console=ttyAMA0 vcpos.nomount");
        assert!(append_kernel_args(&mut [OsString::from("-kernel")], "x").is_err());
    }

    #[test]
    fn disks_are_created_sparse_or_allocated() {
        let dir = std::env::temp_dir().join(format!("vcpos-disk-{}", std::process::id()));
        let (sparse, full) = (dir.join("s.img"), dir.join("f.img"));
        create_disk(&sparse, 3, false).unwrap();
        create_disk(&full, 2, true).unwrap();
        assert_eq!(std::fs::metadata(&sparse).unwrap().len(), 3 << 20);
        assert_eq!(std::fs::metadata(&full).unwrap().len(), 2 << 20);
        assert_eq!(
            host_sha256(&full, 1 << 20).unwrap(),
            "30e14955ebf1352266dc2ff8067e68104607e750abb9d3b36582b8af909fcb58",
            "1 MiB of zeros"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(host_sha256(&full, 1).is_err());
    }
}
