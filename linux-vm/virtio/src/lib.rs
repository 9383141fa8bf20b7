//! virtio-mmio transport, split virtqueues and devices for the VMM
//!
//! The device side of virtio 1.2 (OASIS) over MMIO, non-legacy only (§4.2,
//! `Version` = 2), as a pure library: the VMM decodes a guest's access to a device's
//! MMIO window into (offset, size, value) and calls [`MmioTransport::read`] or
//! [`MmioTransport::write`]; the transport implements the registers and hands queue
//! work to a [`Device`] model. All guest memory access goes through [`GuestMemory`]
//! with bounds checks, and everything the guest controls is validated: a misbehaving
//! driver puts the device into DEVICE_NEEDS_RESET, it never panics the VMM.
//!
//! # How the VMM uses it
//!
//! ```
//! use vcpos_virtio::{Console, MmioTransport, VecMemory};
//!
//! // Guest RAM as the VMM sees it (in the VMM: a `GuestRam` over its mapping).
//! let mut ram = VecMemory::zeroed(0x4000_0000, 0x10_0000);
//! // One transport per device; its window is 0x200 bytes at a base the device tree
//! // names, with one SPI.
//! let mut console = MmioTransport::new(Console::with_size(80, 25));
//!
//! // A guest data abort in the window: pass the offset from the window base.
//! assert_eq!(console.read(0x000, 4), 0x7472_6976); // MagicValue
//! let inject = console.write(0x070, 4, 1, &mut ram); // Status = ACKNOWLEDGE
//! assert!(!inject);
//!
//! // Keyboard input: queue it, then let the device deliver it.
//! console.device_mut().push_input(b"root\n");
//! if console.poll(&mut ram) { /* inject the console's SPI */ }
//!
//! // Guest output (after QueueNotify on transmitq0): drain it, then poll again in
//! // case transmission waited for room.
//! let bytes = console.device_mut().take_output();
//! assert!(bytes.is_empty());
//! if console.poll(&mut ram) { /* inject */ }
//!
//! // A guest protocol error puts the device into DEVICE_NEEDS_RESET; log it.
//! if let Some(e) = console.take_error() { let _ = e; }
//! ```
//!
//! Interrupts: every `write`/`poll`/`config_changed` returning `true` set a bit in
//! InterruptStatus; the VMM injects the SPI then (edge semantics, as Linux's
//! virtio-mmio device-tree binding uses). A VMM modelling a level line asserts it
//! while [`MmioTransport::interrupt_status`] is non-empty and re-evaluates after
//! every `write` (InterruptACK lowers it).
//!
//! Modules:
//! - [`memory`]: guest-physical memory access,
//! - [`queue`]: split virtqueues (§2.7),
//! - [`mmio`]: the MMIO transport and the [`Device`] trait (§4.2),
//! - [`console`]: the console device (§5.3),
//! - [`block`]: the block device (§5.2) over a [`BlockBackend`],
//! - [`net`]: the network device (§5.1) over a [`NetBackend`],
//! - [`net_vcp`]: a [`NetBackend`] over the network protocol's client half (the
//!   network VCP),
//! - [`error`]: guest protocol violations.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod console;
pub mod error;
pub mod memory;
pub mod mmio;
pub mod net;
pub mod net_vcp;
pub mod queue;

pub use block::{
    BackendInfo, Block, BlockBackend, BlockOp, BlockStatus, Completion, DataSegment, RequestId, SubmitError,
};
pub use console::Console;
pub use error::GuestError;
pub use memory::{GuestMemory, GuestRam, MemoryError, VecMemory};
pub use mmio::{Device, DeviceStatus, Interrupts, MmioTransport};
pub use net::{Net, NetBackend, NetCompletion, NetInfo, NetOffloads, NetStats};
pub use net_vcp::{NetVcpBackend, NetVcpStats};
pub use queue::{DescriptorChain, Queue, Reader, Segment, Writer};
