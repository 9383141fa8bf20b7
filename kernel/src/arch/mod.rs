//! aarch64 support for QEMU `virt`: boot, exception vectors, GICv3, generic timer,
//! PL011 UART and access to physical memory through the kernel's linear map.

pub mod boot;
pub mod gic;
pub mod kmap;
pub mod mmio;
pub mod serror;
pub mod timer;
pub mod uart;
pub mod vcpu;
pub mod vectors;

/// Board constants generated from `kernel-config/<board>.toml`.
#[allow(dead_code)]
pub mod board {
    include!(concat!(env!("OUT_DIR"), "/board.rs"));
}
