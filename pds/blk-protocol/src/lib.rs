//! The block protocol between a block VCP (`vcp-blk` now, `vcp-iscsi` later) and one
//! client, over one control memory region (info page, request ring, response ring) and
//! the client's data region (exact layout: ARCHITECTURE.md "Queue protocols").
//!
//! - [`layout`]: descriptors ([`RequestDesc`], [`ResponseDesc`], [`Segment`]), ops,
//!   statuses, the info page and the control region's layout;
//! - [`server::Server`]: the VCP's half. Every request is checked (op, segments
//!   against the client's data region and window, duplicate in-flight ids, depth)
//!   before the VCP sees it; refused requests get an error response;
//! - [`client::Client`]: the client's half. Responses are checked (unknown or already
//!   completed ids, lengths, statuses).
//!
//! Neither half panics or reads outside its regions whatever the peer writes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod layout;
pub mod server;

pub use client::{Client, ClientError, Completion};
pub use layout::{
    ControlLayout, Info, Op, RequestDesc, ResponseDesc, Segment, Status, BLOCK_SIZE, MAX_QUEUE_DEPTH,
    MAX_REQUEST_BYTES, MAX_SEGMENTS, RING_CAPACITY,
};
pub use server::{Request, Server, ServerConfig, ServerError, ServerStats};
