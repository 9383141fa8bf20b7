//! The vcpos kernel's logic, independent of the CPU: capabilities, scheduling, IPC,
//! fault delivery and page-table construction.
//!
//! Design principles:
//! 1. **Static configuration.** Every PD, capability and mapping comes from the
//!    boot-information blob the builder wrote; nothing is created at run time.
//! 2. **Capabilities are the only authority.** Every syscall names a slot in the
//!    caller's capability space; a missing or wrong capability is an error code,
//!    never a panic.
//! 3. **No trust in PDs.** The kernel never follows a pointer a PD gives it: message
//!    registers and debug text are read from the PD's IPC buffer page, which the
//!    kernel reaches through its own physical mapping ([`Platform`]).
//! 4. **Host-testable.** Hardware effects go through the [`Platform`] trait; the
//!    aarch64 kernel (`kernel/`) implements it, the tests here fake it.
//!
//! The crate has no `unsafe`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod cspace;
pub mod fault;
pub mod kernel;
pub mod platform;
pub mod sched;
pub mod thread;
pub mod vgic;
pub mod vspace;

#[cfg(test)]
mod kernel_tests;

pub use kernel::Kernel;
pub use platform::Platform;
