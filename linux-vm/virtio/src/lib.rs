//! virtio-mmio transport, split virtqueues and devices for the VMM
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
