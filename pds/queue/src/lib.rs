//! Single-producer/single-consumer rings in shared memory regions, the transport of
//! every VCP queue (layout and rules: ARCHITECTURE.md "Queue protocols").
//!
//! - [`SharedMemory`]: how a ring reaches its memory region (atomic `u32` loads and
//!   stores at an offset, volatile byte copies), implemented by the PD runtime's
//!   region accessor `SharedRegion` on the target (feature `microkit`) and by
//!   `fake::FakeMemory` on the host (feature `fake`);
//! - [`RingLayout`]: where a ring lives in a region and how big it is; the capacity is
//!   each side's private knowledge, never read from shared memory;
//! - [`Producer`] / [`Consumer`]: the two halves. Indices are free-running `u32`s,
//!   published with Release and read with Acquire, so a descriptor is complete before
//!   the peer can see it and a slot is free before it is reused, on any number of
//!   cores. Every index read from the peer is checked; the first bad one cuts the ring
//!   off for good ([`QueueError::CutOff`]) without a panic;
//! - the signalling rule: the consumer asks for a notification with
//!   [`Consumer::request_signal`], which re-checks the ring after setting the flag
//!   (the double-check that avoids a lost wake-up); the producer asks
//!   [`Producer::signal_needed`] after a batch and notifies only if it says so.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "fake")]
extern crate alloc;

#[cfg(feature = "fake")]
pub mod fake;

mod memory;
#[cfg(feature = "microkit")]
mod region;
mod ring;

pub use memory::{OutOfBounds, SharedMemory};
pub use ring::{
    Consumer, Descriptor, LayoutError, Producer, PushError, QueueError, RingLayout, CONSUMER_INDEX_OFFSET,
    PRODUCER_INDEX_OFFSET, SIGNAL_FLAG_OFFSET, SLOTS_OFFSET,
};
