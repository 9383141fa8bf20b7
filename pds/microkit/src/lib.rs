//! The vcpos PD runtime, with the API of rust-sel4's `sel4-microkit` crate.
//!
//! A PD written for `sel4-microkit` ports by changing only its dependency line:
//!
//! ```toml
//! sel4-microkit = { package = "vcpos-microkit", path = "../pds/microkit" }
//! ```
//!
//! after which `use sel4_microkit::*` and `#[protection_domain]` work unchanged.
//!
//! A PD is a `#![no_std]`, `#![no_main]` binary with one `#[protection_domain] fn
//! init() -> impl Handler`. The runtime provides the entry point (`_start`), the event
//! loop, the panic handler, the symbols the builder patches (`microkit_name`, the
//! channel masks, `var!`, `memory_region_symbol!`), debug printing, and the vcpos
//! syscalls behind [`Channel`] and [`Child`].
//!
//! Differences from `sel4-microkit` (all additions, except where noted):
//! - [`Channel::try_notify`], [`Channel::try_pp_call`], [`Channel::try_irq_ack`]: the
//!   same operations without the mask check, returning the kernel's error.
//! - [`Child::restart`], [`Child::stop`], [`Child::resume`] (libmicrokit's
//!   `microkit_pd_restart/stop/resume`); there is no `sel4` crate to call instead.
//! - [`MessageInfo::fault`] returns this crate's [`Fault`], not `sel4::Fault`.
//! - Kernel errors are [`KernelError`] (`vcpos_abi::syscall::Error`), not `sel4::Error`.
//! - [`sys`]: raw syscalls and the counter, for tests and benchmarks.
//! - [`Vcpu`]: control of a VM's vCPUs by its VMM (libmicrokit's `microkit_vcpu_*`).
//! - [`SharedRegion`] / [`shared_region!`]: bounds-checked access to a memory region
//!   (the only `unsafe` for region memory), instead of raw `memory_region_symbol!` pointers.
//! - [`counters`]: the kernel's event counters of this PD, its children and vCPUs,
//!   or (with the debug capability) any thread.
//! - The passive-PD handshake with a monitor is not needed: the kernel makes a
//!   passive PD passive itself.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(all(not(test), not(all(target_arch = "aarch64", target_os = "none"))))]
extern crate std;

mod channel;
pub mod counters;
mod defer;
mod entry;
mod event_loop;
mod handler;
mod heap;
mod ipc;
mod message;
pub mod panicking;
mod printing;
mod region;
mod symbols;
pub mod sys;
mod vcpu;

pub use channel::{Channel, ChannelSet, Child, DisplayChannelSet, IrqAckError, MAX_CHANNELS};
pub use defer::{DeferredAction, DeferredActionInterface, DeferredActionSlot};
pub use event_loop::run;
pub use handler::{Handler, Infallible, Never, NullHandler};
pub use message::{
    get_mr, set_mr, with_msg_bytes, with_msg_bytes_mut, with_msg_regs, with_msg_regs_mut, Fault, MessageInfo,
    MessageLabel, MessageRegisterValue, NUM_MESSAGE_REGISTERS,
};
pub use region::{RegionError, SharedRegion};
pub use symbols::{pd_is_passive, pd_name, pd_name_bytes};
/// An error code returned by the kernel.
pub use vcpos_abi::syscall::Error as KernelError;
/// The attribute that declares a PD's `init` function (see [`declare_protection_domain!`]).
pub use vcpos_microkit_macros::protection_domain;
pub use vcpu::Vcpu;

/// Items the macros use; not part of the API.
#[doc(hidden)]
pub mod _private {
    pub use crate::entry::Stack;
    pub use crate::event_loop::run_main;
    pub use crate::heap::StaticHeap;
    pub use crate::printing::debug_print;
    pub use crate::region::region_from_symbol;
    pub use crate::symbols::{assert_fits, region_ptr, ImmutableCell};
}
