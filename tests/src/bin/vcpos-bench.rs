//! `vcpos-bench`: builds and boots a benchmark system, then prints its `BENCH` figures
//! as a table (run by `./bench.sh` after the target artifacts are built).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use vcpos_tests::{bench, boot_system, check_clean, scenario_system, workspace_root};

/// Boot a benchmark system in QEMU and print its figures.
#[derive(Parser)]
#[command(name = "vcpos-bench")]
struct Cli {
    /// Builder config (debug, release or benchmark).
    #[arg(long, default_value = "debug")]
    config: String,
    /// Give up after this many seconds without a `TEST PASS:`/`TEST FAIL:` line.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Print the whole serial transcript too.
    #[arg(long, short)]
    verbose: bool,
    /// Benchmark systems (default: tests/systems/bench.system).
    systems: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let systems = if cli.systems.is_empty() { vec![scenario_system("bench")] } else { cli.systems.clone() };
    let mut ok = true;
    for system in &systems {
        let system = if system.is_absolute() { system.clone() } else { std::env::current_dir().unwrap_or_else(|_| workspace_root()).join(system) };
        let label = format!("bench-{}", system.file_stem().map_or("system".into(), |s| s.to_string_lossy()));
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
    if ok { ExitCode::SUCCESS } else { ExitCode::from(1) }
}
