//! The network VCP's logic, host-tested: its configuration ([`config`]: a MAC address
//! per client) and the engine ([`engine`]) that serves several clients' network-protocol
//! queues from one NIC: frames from the NIC go to the client whose MAC they name
//! (group frames to every client), frames between clients are delivered locally,
//! frames to the NIC are sent from the client's buffer (zero copy of the payload), a
//! client can only send with its own MAC, and transmit is round robin. The PD
//! (`vcp-net/pd`) adds only the NIC driver, the mapped regions and the event loop;
//! [`scan`] checks the NIC is alone in the device page it maps.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod config;
pub mod data;
pub mod engine;
pub mod offload;
pub mod scan;
#[cfg(any(test, feature = "fake"))]
pub mod testing;

pub use config::{format_mac, Config, ConfigError, MAX_CLIENTS};
pub use data::DataRegion;
pub use engine::{
    ClientCounters, ClientRegions, Engine, EngineError, EngineStats, Nic, NicError, NoNic, RunResult, TxRequest,
    RING_CAPACITY, RX_BUDGET,
};
