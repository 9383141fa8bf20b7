//! The status PD's logic (`status/pd` is the thin PD around it): a small HTTP server on
//! smoltcp that shows the kernel's per-thread event counters as HTML (`/`) and JSON
//! (`/status.json`), reached through the network VCP as a client of the network
//! protocol.
//!
//! - [`config`]: the PD's configuration text (its static address);
//! - [`http`]: request parsing and response headers;
//! - [`render`]: a counters [`render::Snapshot`] as HTML and as JSON;
//! - [`device`]: a smoltcp [`smoltcp::phy::Device`] over the network protocol's client
//!   half ([`vcpos_net_protocol::Client`]), generic over the shared memory;
//! - [`server`]: the interface (static address, by default [`server::ADDRESS`]), the listening TCP
//!   sockets on port [`server::PORT`] and the request/response cycle.
//!
//! Nothing a network peer or the network VCP sends can make it panic: bad requests get
//! an HTTP error, bad give-backs are counted by the device.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod config;
pub mod device;
pub mod http;
pub mod render;
pub mod server;
