//! `vcpos-bench`: builds and boots benchmark systems, then prints their `BENCH` figures
//! as a table, and runs the VM benchmarks (the Linux guest on vcpos against the same
//! guest directly on QEMU, see `vcpos_tests::bench::vm`, and the idle guest's kernel
//! entries per second, see `vcpos_tests::bench::idle`), the block benchmark (the
//! guest's disk, see `vcpos_tests::disk`) and the network benchmark (the guest's NIC,
//! see `vcpos_tests::net`). Run by `./bench.sh` after the
//! target artifacts and the guest image are built.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vcpos_tests::bench::vm::{self, VmBenchOptions};
use vcpos_tests::disk::{self, Sut};
use vcpos_tests::{bench, boot_system, check_clean, net, scenario_system, workspace_root};

/// Boot benchmark systems in QEMU and print their figures.
#[derive(Parser)]
#[command(name = "vcpos-bench")]
struct Cli {
    /// Builder config (debug, release or benchmark).
    #[arg(long, default_value = "debug")]
    config: String,
    /// Give up on a system after this many seconds without a `TEST PASS:`/`TEST FAIL:`
    /// line, and on a VM boot after this many seconds without the benchmark's end.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print the whole serial transcripts too.
    #[arg(long, short)]
    verbose: bool,
    /// Only the VM benchmarks (no benchmark systems).
    #[arg(long, conflicts_with_all = ["no_vm", "systems"])]
    vm_only: bool,
    /// No VM benchmarks (and no block or network benchmark).
    #[arg(long)]
    no_vm: bool,
    /// No block benchmark (the guest's disk directly on QEMU and on vcpos through the
    /// block VCP).
    #[arg(long)]
    no_blk: bool,
    /// Only the block benchmark.
    #[arg(long, conflicts_with_all = ["no_vm", "no_blk", "vm_only", "systems", "net_only"])]
    blk_only: bool,
    /// No network benchmark (the guest's NIC directly on QEMU, and on vcpos through
    /// the network VCP: tests/systems/linux-net.system).
    #[arg(long)]
    no_net: bool,
    /// Only the network benchmark.
    #[arg(long, conflicts_with_all = ["no_vm", "no_net", "vm_only", "systems"])]
    net_only: bool,
    /// The system with the Linux VM for the VM benchmarks (default: the repository's
    /// system.xml).
    #[arg(long, value_name = "SYSTEM")]
    vm_system: Option<PathBuf>,
    /// Boots of the VM benchmarks on each side (vcpos, direct QEMU); medians are taken.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=100))]
    runs: u64,
    /// Benchmark systems (default: tests/systems/bench.system).
    systems: Vec<PathBuf>,
}

/// `path` as given if absolute, else from the working directory (or the workspace root
/// if there is none), as the user typed it.
fn from_cwd(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_else(|_| workspace_root()).join(path)
    }
}

/// Boots each benchmark system and prints its table; false if any failed.
fn bench_systems(cli: &Cli) -> bool {
    let systems = if cli.systems.is_empty() {
        vec![scenario_system("bench")]
    } else {
        cli.systems.clone()
    };
    let mut ok = true;
    for system in &systems {
        let system = from_cwd(system);
        let label = format!(
            "bench-{}",
            system.file_stem().map_or("system".into(), |s| s.to_string_lossy())
        );
        println!("== {} (config {})", system.display(), cli.config);
        let t = match boot_system(&label, &system, &cli.config, Duration::from_secs(cli.timeout)) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Error: {e}");
                ok = false;
                continue;
            }
        };
        if cli.verbose {
            print!("{t}");
        }
        let results = match bench::parse(t.output()) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("Error: {e}\n{t}");
                ok = false;
                continue;
            }
        };
        if results.is_empty() {
            eprintln!("Error: no 'BENCH <name> median_ns=.. median_ticks=.. iterations=..' lines\n{t}");
            ok = false;
            continue;
        }
        print!("{}", bench::table(&results));
        if let Err(e) = check_clean(t.output()) {
            eprintln!("Error: {e}\n{t}");
            ok = false;
        }
    }
    ok
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut ok = true;
    if !cli.vm_only && !cli.blk_only && !cli.net_only {
        ok &= bench_systems(&cli);
    }
    if !cli.no_vm {
        let system = cli
            .vm_system
            .as_deref()
            .map_or_else(|| workspace_root().join("system.xml"), from_cwd);
        if !cli.blk_only && !cli.net_only {
            ok &= vm::run(&VmBenchOptions {
                system: system.clone(),
                config: cli.config.clone(),
                runs: cli.runs as usize,
                timeout: Duration::from_secs(cli.timeout),
                verbose: cli.verbose,
            });
            ok &= bench::idle::run(&cli.config, Duration::from_secs(cli.timeout), cli.verbose);
        }
        let sut = Sut::Direct { system: system.clone() };
        if !cli.no_blk && !cli.net_only {
            // The same kernel, initramfs, guest tool and disk file on both sides.
            let suts = [
                Sut::Direct { system: system.clone() },
                Sut::vcpos_system(system, &cli.config),
            ];
            ok &= disk::bench(&suts, cli.runs as usize, Duration::from_secs(cli.timeout), cli.verbose);
        }
        if !cli.no_net && !cli.blk_only {
            let (runs, timeout) = (cli.runs as usize, Duration::from_secs(cli.timeout));
            let (direct_ok, direct) = net::bench_runs(&sut, runs, timeout, cli.verbose);
            // The vcpos side: the guest's eth0 served by vcp-net (linux-net.system).
            let (vcpos_ok, vcpos) = net::bench_runs(&Sut::vcpos_net(), runs, timeout, cli.verbose);
            ok &= direct_ok && vcpos_ok;
            if !direct.is_empty() && !vcpos.is_empty() {
                println!("== network: vcpos (eth0 through vcp-net, tests/systems/linux-net.system) against direct QEMU, medians");
                print!("{}", net::compare_table(&direct, &vcpos));
                print!("{}", net::table6(&direct, &vcpos));
            }
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
