//! Device models for the VMM: vGIC, PSCI, PL011, MMIO decoding, device tree
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
