//! Writes the guest device tree blob for a configuration to a file, for checking it
//! with `dtc -I dtb -O dts` or booting it with `qemu-system-aarch64 -M virt,gic-version=3
//! -dtb` (QEMU's `virt` has the same layout).
//!
//! Usage: dtb OUT [--ram-mib N] [--bootargs S] [--initrd START END] [--virtio N,N,..]
//!            [--no-pl011]
use std::process::ExitCode;

use vcpos_vmm_devices::fdt::{build, FdtConfig};

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("bad number {s:?}: {e}"))
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: dtb OUT [options]")?;
    let mut ram_mib = 256u64;
    let mut bootargs = String::from("console=ttyAMA0 earlycon=pl011,0x9000000");
    let mut initrd = None;
    let mut slots = Vec::new();
    let mut pl011 = true;
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--ram-mib" => ram_mib = parse_u64(&value()?)?,
            "--bootargs" => bootargs = value()?,
            "--initrd" => initrd = Some((parse_u64(&value()?)?, parse_u64(&value()?)?)),
            "--virtio" => {
                for n in value()?.split(',') {
                    slots.push(parse_u64(n)? as u32);
                }
            }
            "--no-pl011" => pl011 = false,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    let config = FdtConfig {
        ram_size: ram_mib << 20,
        bootargs: &bootargs,
        initrd,
        virtio_slots: &slots,
        pl011,
    };
    let blob = build(&config).map_err(|e| e.to_string())?;
    std::fs::write(&out, blob).map_err(|e| format!("{out}: {e}"))
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dtb: {e}");
            ExitCode::FAILURE
        }
    }
}
