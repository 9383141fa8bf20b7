//! `vcpos-mmio-bench`: a static Linux arm64 program (no libc) in the guest's initramfs
//! that times the guest's MMIO exit round trip, CPU-bound work and a pipe round trip.
//!
//! It maps the page of an empty virtio-mmio slot's MagicValue register from `/dev/mem`
//! and times single 32-bit loads from it with the virtual counter. Under vcpos each load
//! is a stage-2 fault: the kernel sends a fault message to the VMM PD, which emulates
//! the read, writes the result register, advances the PC and replies. On QEMU without
//! vcpos the same load is QEMU's own MMIO emulation. As the in-guest baseline, the same
//! loop times a load from guest RAM (no exit).
//!
//! Two more figures compare the VM with the bare machine where no device is involved:
//! `cpu_loop`, a fixed integer loop ([`vcpos_guest_bench::cpu_work`], `CPU_ROUNDS`
//! rounds per sample), which costs the same in a VM unless entering and leaving it
//! (timer ticks, exits) takes time; and `pipe_roundtrip`, lmbench's `lat_pipe`: one
//! byte to a forked child and back through two pipes (system calls, context switches
//! and the TLB refills they bring, which in a VM walk two stages). Output, one line each:
//!
//! ```text
//! BENCH mmio_exit_roundtrip median_ns=.. median_ticks=.. iterations=1000 min_ns=.. max_ns=..
//! BENCH guest_ram_load median_ns=.. median_ticks=.. iterations=1000 min_ns=.. max_ns=..
//! BENCH cpu_loop median_ns=.. median_ticks=.. iterations=21 min_ns=.. max_ns=..
//! BENCH pipe_roundtrip median_ns=.. median_ticks=.. iterations=1000 min_ns=.. max_ns=..
//! ```
//!
//! Usage: `vcpos-mmio-bench [ADDRESS]` (default 0x0a003e00, virtio-mmio slot 31; a
//! slot's MagicValue must read "virt"). Exit status 0 on success, 1 with an
//! `vcpos-mmio-bench: error: ...` line otherwise.
//!
//! `vcpos-mmio-bench blk ...` is the block benchmark and pattern checker instead (see
//! `blk_run.rs`).
#![no_std]
#![no_main]

mod blk_run;
mod blk_sys;
mod linux;
mod timing;

use core::fmt::Write;

use vcpos_guest_bench::{
    cpu_work, is_virtio_magic_register, page_base, parse_number, summarize, write_bench_line, Summary, TextBuf,
    CPU_ROUNDS, CPU_SAMPLES, CPU_SEED, DEFAULT_ADDRESS, ITERATIONS, VIRTIO_MAGIC, WARMUP,
};

/// Standard output and error.
const STDOUT: u64 = 1;
const STDERR: u64 = 2;

// The ELF entry: Linux enters with SP at argc (16-byte aligned). Clear the frame
// pointer and link register so backtraces end here.
core::arch::global_asm!(
    ".pushsection .text._start, \"ax\", %progbits",
    ".globl _start",
    ".type _start, %function",
    "_start:",
    "    mov x0, sp",
    "    mov x29, xzr",
    "    mov x30, xzr",
    "    b {main}",
    ".size _start, . - _start",
    ".popsection",
    main = sym start,
);

/// Called by `_start` with the initial stack pointer.
extern "C" fn start(sp: *const u64) -> ! {
    // SAFETY: `_start` passes the stack pointer Linux entered it with and has pushed
    // nothing.
    let info = unsafe { linux::start_info(sp) };
    if info.first_arg == Some(b"blk") {
        blk_run::main(&info);
    }
    match run(&info) {
        Ok(()) => linux::exit(0),
        Err(e) => {
            let mut line = TextBuf::<256>::new();
            let _ = writeln!(line, "vcpos-mmio-bench: error: {e}");
            let _ = linux::write_all(STDERR, line.as_bytes());
            linux::exit(1)
        }
    }
}

/// Why the benchmark could not run.
enum Failure {
    /// A bad command line.
    Usage(&'static str),
    /// A system call failed.
    Sys(&'static str, linux::Errno),
    /// A load read something else than expected.
    Value { address: u64, read: u32, expected: u32 },
    /// The counter frequency register reads 0.
    NoCounter,
    /// The CPU loop computed something else than the first time.
    CpuResult { got: u64, expected: u64 },
    /// The pipe's echo child sent back something else, or ended.
    Echo { sent: u8, got: Option<u8> },
}

impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Failure::Usage(why) => write!(
                f,
                "{why} (usage: vcpos-mmio-bench [ADDRESS], default {DEFAULT_ADDRESS:#x})"
            ),
            Failure::Sys(what, e) => write!(f, "{what} failed: errno {}", e.0),
            Failure::Value {
                address,
                read,
                expected,
            } => {
                write!(f, "a load from {address:#x} read {read:#x}, expected {expected:#x}")
            }
            Failure::NoCounter => f.write_str("CNTFRQ_EL0 reads 0: no counter frequency"),
            Failure::CpuResult { got, expected } => write!(f, "the CPU loop gave {got:#x}, then {expected:#x}"),
            Failure::Echo { sent, got: Some(b) } => write!(f, "the pipe child echoed {b:#x} for {sent:#x}"),
            Failure::Echo { sent, got: None } => write!(f, "the pipe child ended instead of echoing {sent:#x}"),
        }
    }
}

/// Times `WARMUP + ITERATIONS` loads from `ptr`, keeping the last `ITERATIONS`; every
/// load must read `expected`.
///
/// # Safety
/// As [`timing::timed_load`].
unsafe fn time_loads(ptr: *const u32, address: u64, expected: u32, freq: u64) -> Result<Summary, Failure> {
    let mut samples = [0u64; ITERATIONS];
    for i in 0..WARMUP + ITERATIONS {
        // SAFETY: the caller's promise.
        let (ticks, read) = unsafe { timing::timed_load(ptr) };
        if read != expected {
            return Err(Failure::Value {
                address,
                read,
                expected,
            });
        }
        if let Some(slot) = i.checked_sub(WARMUP) {
            samples[slot] = ticks;
        }
    }
    summarize(&mut samples, freq).ok_or(Failure::NoCounter)
}

/// Times [`CPU_SAMPLES`] runs of [`cpu_work`] (after one untimed run whose result
/// every timed run must match).
fn time_cpu(freq: u64) -> Result<Summary, Failure> {
    let expected = cpu_work(core::hint::black_box(CPU_SEED), CPU_ROUNDS);
    let mut samples = [0u64; CPU_SAMPLES];
    for sample in samples.iter_mut() {
        let t0 = timing::now();
        let got = cpu_work(core::hint::black_box(CPU_SEED), core::hint::black_box(CPU_ROUNDS));
        *sample = timing::now().wrapping_sub(t0);
        if got != expected {
            return Err(Failure::CpuResult { got, expected });
        }
    }
    summarize(&mut samples, freq).ok_or(Failure::NoCounter)
}

/// Times `WARMUP + ITERATIONS` one-byte round trips through two pipes to a forked
/// child that echoes each byte (keeping the last `ITERATIONS`).
fn time_pipe(freq: u64) -> Result<Summary, Failure> {
    let (to_child_r, to_child_w) = linux::pipe().map_err(|e| Failure::Sys("pipe", e))?;
    let (to_parent_r, to_parent_w) = linux::pipe().map_err(|e| Failure::Sys("pipe", e))?;
    let child = linux::fork().map_err(|e| Failure::Sys("fork", e))?;
    if child == 0 {
        // Only the ends this child uses stay open, so it sees end of file when the
        // parent closes its write end.
        let _ = (linux::close(to_child_w), linux::close(to_parent_r));
        let mut byte = [0u8; 1];
        while linux::read(to_child_r, &mut byte) == Ok(1) {
            if linux::write_all(to_parent_w, &byte).is_err() {
                break;
            }
        }
        linux::exit(0);
    }
    let _ = (linux::close(to_child_r), linux::close(to_parent_w));
    let mut samples = [0u64; ITERATIONS];
    let mut outcome = Ok(());
    for i in 0..WARMUP + ITERATIONS {
        let sent = i as u8;
        let mut back = [0u8; 1];
        let t0 = timing::now();
        let echoed = linux::write_all(to_child_w, &[sent]).is_ok() && linux::read(to_parent_r, &mut back) == Ok(1);
        let ticks = timing::now().wrapping_sub(t0);
        if !echoed || back[0] != sent {
            outcome = Err(Failure::Echo {
                sent,
                got: echoed.then_some(back[0]),
            });
            break;
        }
        if let Some(slot) = i.checked_sub(WARMUP) {
            samples[slot] = ticks;
        }
    }
    // End of file ends the child; wait for it so it never outlives the benchmark.
    let _ = (linux::close(to_child_w), linux::close(to_parent_r), linux::wait(child));
    outcome?;
    summarize(&mut samples, freq).ok_or(Failure::NoCounter)
}

fn print_bench(name: &str, s: &Summary, freq: u64, iterations: usize) {
    let mut line = TextBuf::<256>::new();
    let _ = write_bench_line(&mut line, name, s, freq, iterations);
    let _ = linux::write_all(STDOUT, line.as_bytes());
}

fn run(info: &linux::StartInfo) -> Result<(), Failure> {
    let freq = timing::counter_frequency();
    if freq == 0 {
        return Err(Failure::NoCounter);
    }
    let address = match info.first_arg {
        None => DEFAULT_ADDRESS,
        Some(arg) => parse_number(arg).ok_or(Failure::Usage("ADDRESS is not a number"))?,
    };
    if !address.is_multiple_of(4) {
        return Err(Failure::Usage("ADDRESS must be 4-byte aligned"));
    }
    let page = page_base(address, info.page_size).ok_or(Failure::Usage("the page size is not a power of two"))?;

    // Uncached: Linux maps /dev/mem pages that are not RAM as device memory anyway.
    let fd = linux::open(c"/dev/mem", linux::O_RDWR | linux::O_SYNC | linux::O_CLOEXEC)
        .map_err(|e| Failure::Sys("open /dev/mem", e))?;
    let base = linux::mmap(
        info.page_size,
        linux::PROT_READ | linux::PROT_WRITE,
        linux::MAP_SHARED,
        fd,
        page,
    )
    .map_err(|e| Failure::Sys("mmap of /dev/mem", e))?;
    let register = (base + (address - page)) as *const u32;

    // SAFETY: `register` lies in the page just mapped (the offset is below the page
    // size) and is 4-byte aligned; reading a virtio-mmio register has no side effects.
    let first = unsafe { timing::timed_load(register) }.1;
    if is_virtio_magic_register(address) && first != VIRTIO_MAGIC {
        return Err(Failure::Value {
            address,
            read: first,
            expected: VIRTIO_MAGIC,
        });
    }
    let mut out = TextBuf::<256>::new();
    let _ = writeln!(
        out,
        "vcpos-mmio-bench: loads from {address:#x} (reads {first:#x}) and from guest RAM; counter {freq} Hz, \
         {WARMUP} warm-up + {ITERATIONS} timed each"
    );
    let _ = linux::write_all(STDOUT, out.as_bytes());

    // SAFETY: as above.
    let mmio = unsafe { time_loads(register, address, first, freq) }?;
    let word = VIRTIO_MAGIC;
    let ram_ptr: *const u32 = &word;
    // SAFETY: `ram_ptr` points at a live, aligned local.
    let ram = unsafe { time_loads(ram_ptr, ram_ptr as u64, word, freq) }?;
    print_bench("mmio_exit_roundtrip", &mmio, freq, ITERATIONS);
    print_bench("guest_ram_load", &ram, freq, ITERATIONS);
    let cpu = time_cpu(freq)?;
    print_bench("cpu_loop", &cpu, freq, CPU_SAMPLES);
    let pipe = time_pipe(freq)?;
    print_bench("pipe_roundtrip", &pipe, freq, ITERATIONS);
    Ok(())
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut line = TextBuf::<256>::new();
    let _ = writeln!(line, "vcpos-mmio-bench: panic: {}", info.message());
    let _ = linux::write_all(STDERR, line.as_bytes());
    linux::exit(101)
}
