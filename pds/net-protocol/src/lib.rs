//! The network protocol between the network VCP (`vcp-net`) and one client, sDDF
//! style: over one control memory region (info page and four rings) and the client's
//! data region of fixed-size frame buffers (exact layout: ARCHITECTURE.md "Queue
//! protocols").
//!
//! - [`layout`]: the buffer descriptor ([`BufDesc`]), transmit statuses, the info page,
//!   frame and buffer sizes and the control region's layout;
//! - [`server::Server`]: the VCP's half. Every buffer the client hands over is checked
//!   (inside the data region, on a buffer boundary, not already held by the server,
//!   frame length) and tracked until it is given back;
//! - [`client::Client`]: the client's half. It manages its buffers (half for receive,
//!   half for transmit) and checks every buffer the server gives back (one it handed
//!   over, a possible length, a defined status).
//!
//! Neither half panics or reads outside its regions whatever the peer writes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod layout;
pub mod ownership;
pub mod server;

pub use client::{Client, ClientError, ClientStats, TxReclaim};
pub use layout::{
    mac_is_multicast, BufDesc, ControlLayout, Info, InfoError, TxStatus, BUF_SIZE, ETH_HEADER_LEN, MAX_BUFFERS,
    MAX_FRAME_LEN, MTU, RING_CAPACITY,
};
pub use server::{RxBuffer, Server, ServerConfig, ServerError, ServerStats, TxFrame};
