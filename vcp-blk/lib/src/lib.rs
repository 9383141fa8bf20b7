//! The block VCP's logic, host-tested: its configuration ([`config`]) and the engine
//! ([`engine`]) that serves several clients' block-protocol queues from one block
//! device, and the device-page check ([`scan`]). The PD (`vcp-blk/pd`) adds only the virtio-blk driver, the mapped regions
//! and the event loop.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod engine;
pub mod scan;

pub use config::{Config, ConfigError, Window, MAX_CLIENTS};
pub use engine::{
    BlockDevice, ClientRegions, Direction, Engine, EngineError, EngineStats, RunResult, SubmitError, Transfer,
    RING_CAPACITY,
};
