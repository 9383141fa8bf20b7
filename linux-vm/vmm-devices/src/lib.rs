//! Device models for the VMM: vGIC, PSCI, PL011, MMIO decoding, device tree.
//!
//! A pure library (no syscalls, no `unsafe`), tested on the host. The VMM PD feeds it
//! what the kernel reports about its guest and applies what it returns:
//! - [`layout`]: the guest platform's addresses and interrupt numbers;
//! - [`devices`]: the virtio device table (slot, window, interrupt, backend), the one
//!   source of the device tree's virtio nodes and of exit dispatch;
//! - [`mmio`]: a stage-2 data abort's ESR_EL2 decoded into an access;
//! - [`exit`]: the guest PC after an exit, the stray-access report limit;
//! - [`tx_queue`]: output to a UART that may be full, with a bounded wait;
//! - [`vgic`]: the GICv3 distributor and redistributor;
//! - [`psci`]: PSCI 1.1 and SMCCC calls made with HVC;
//! - [`pl011`]: a write-only PL011 UART for the early console;
//! - [`fdt`]: the guest's device tree blob;
//! - [`guest_output`]: the prefix before every guest console line;
//! - [`image`]: the arm64 Linux `Image` header and where to load it.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod devices;
pub mod exit;
pub mod fdt;
pub mod guest_output;
pub mod image;
pub mod layout;
pub mod mmio;
pub mod pl011;
pub mod psci;
pub mod tx_queue;
pub mod vgic;
