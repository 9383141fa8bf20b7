//! The network protocol between the network VCP (`vcp-net`) and one client, sDDF
//! style: over one control memory region (info page and four rings) and the client's
//! data region, in which a descriptor names any `(offset, len)` (exact layout:
//! ARCHITECTURE.md "Queue protocols").
//!
//! - [`layout`]: the buffer descriptor ([`BufDesc`]: offset, length, the client's id),
//!   transmit and receive statuses, the info page, frame sizes and the control
//!   region's layout;
//! - [`server::Server`]: the VCP's half. Every descriptor is checked (inside the data
//!   region without overflow, frame length, receive buffer capacity); it holds no more
//!   than it can give back and gives back each descriptor it took exactly once;
//! - [`client::Client`]: the client's half. It names its buffers by id and checks
//!   every descriptor the server gives back (an id it handed over, the same offset and
//!   length, a possible frame length, a defined status); with a fixed-buffer helper
//!   for simple clients.
//!
//! Neither half panics or reads outside its regions whatever the peer writes.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod client;
pub mod layout;
pub mod ownership;
pub mod server;

pub use client::{Client, ClientError, ClientN, ClientStats, RxOutcome, RxReturn, SmallClient, TxIds, TxReclaim};
pub use layout::{
    mac_is_multicast, offloads, tx_flags, BufDesc, ControlLayout, Info, InfoError, OffloadHeader, RxStatus, TxStatus,
    BUF_SIZE, ETH_HEADER_LEN, GSO_NONE, GSO_TCPV4, MAX_BUFFERS, MAX_FRAME_LEN, MAX_OFFLOAD_FRAME_LEN,
    MAX_RING_CAPACITY, MAX_TX_PIECES, MTU, OFFLOAD_F_NEEDS_CSUM, OFFLOAD_HEADER_LEN, RING_CAPACITY, RX_RECALL,
    TX_STATUSES,
};
pub use server::{RxBuffer, Server, ServerConfig, ServerError, ServerStats, TxFrame};
