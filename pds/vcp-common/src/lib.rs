//! What the VCPs (and their protocols) share, one home for each piece so that the block
//! and network VCPs do not each keep a copy:
//!
//! - [`scan`]: finds a VCP's virtio-mmio transport in its mapped device page and checks
//!   that no other device in use shares the page;
//! - [`config`]: the configuration text every VCP reads from its prefilled memory
//!   region (`client N key=value ...` lines, numbers, errors naming the line);
//! - [`control`]: what every VCP protocol's control region has in common: the info
//!   page header (magic, version, ready, generation) and its checks, the region size
//!   check, a server's cut-off of a client.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod scan;
