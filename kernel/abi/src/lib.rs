//! The contract between the vcpos kernel, the PD runtime and the system builder.
//!
//! Everything that crosses a boundary lives here and nowhere else:
//! - [`syscall`]: syscall numbers, the register convention and error codes;
//! - [`cap`]: the capability slot layout of a PD (Microkit's CNode layout) and the
//!   badge bits that tell a PD what woke it;
//! - [`msg`]: message info encoding and the IPC buffer layout;
//! - [`fault`]: fault labels and message-register layouts (seL4 ARM MCS numbering);
//! - [`esr`]: exception syndromes: classes, ISS fields, decoding helpers;
//! - [`bootinfo`]: the boot-information blob the builder writes and the kernel reads;
//! - [`vspace`]: the PD virtual address-space layout and page-table accounting;
//! - [`vcpu`]: vCPU register numbers and guest-exit messages for VMMs;
//! - [`counters`]: the kernel's event counters and the layout of their reply;
//! - [`console`]: the serial-console markers and the guest line prefix.
//!
//! The crate is `no_std`, has no `unsafe`, and is tested on the host.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

#[cfg(any(test, feature = "alloc"))]
extern crate alloc;

pub mod bootinfo;
pub mod cap;
pub mod console;
pub mod counters;
pub mod esr;
pub mod fault;
pub mod msg;
pub mod syscall;
pub mod vcpu;
pub mod vspace;

/// Highest priority a PD may have; 255 is reserved for the kernel's own use.
pub const MAX_PD_PRIORITY: u8 = 254;
/// Most PDs (children included) in one system, as in Microkit.
pub const MAX_PDS: usize = 63;
/// Channel and IRQ ids per PD are `0..MAX_CHANNELS` (Microkit: 62, bits 62/63 are taken).
pub const MAX_CHANNELS: usize = 62;
/// Longest PD name kept (bytes); the builder rejects longer names.
pub const PD_NAME_LEN: usize = 64;
/// Smallest budget or period a PD may have, in microseconds (2 × the kernel's
/// worst-case execution time, as seL4 computes it for QEMU virt).
pub const MIN_BUDGET_US: u64 = 20;
/// Default budget (and period) of a PD in microseconds, as in Microkit.
pub const DEFAULT_BUDGET_US: u64 = 1000;
/// The kernel sees all physical memory at `paddr + KERNEL_VIRT_OFFSET` (its linear
/// map in the upper half); its ELF is linked there with load addresses = physical.
pub const KERNEL_VIRT_OFFSET: u64 = 0xffff_ff80_0000_0000;
