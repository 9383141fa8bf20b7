//! What a guest driver can do wrong, as seen by the device side of virtio.
//!
//! Errors come in two kinds (see [`GuestError::is_fatal`]):
//! - **fatal**: the driver broke the virtqueue or initialisation protocol. The
//!   transport sets DEVICE_NEEDS_RESET (virtio 1.2 §2.1.2), raises a configuration
//!   change interrupt if DRIVER_OK was set, and stops processing queues until reset.
//! - **ignored**: a register access the spec forbids (wrong size, unknown queue, write
//!   to a live queue's setup registers). The access is dropped (reads return 0) and the
//!   error is kept for the VMM to log.

use crate::memory::MemoryError;
use core::fmt;

/// A protocol violation by the guest driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestError {
    /// A ring, descriptor table or buffer lies (partly) outside guest memory.
    Memory(MemoryError),
    /// A descriptor's `addr + len` overflows the 64-bit address space.
    BufferOverflow {
        /// The queue's index.
        queue: u16,
        /// The descriptor's guest-physical address.
        addr: u64,
        /// The descriptor's length in bytes.
        len: u32,
    },
    /// Queue enabled with a size that is zero, not a power of two, or above QueueNumMax
    /// (virtio 1.2 §2.7: split queue sizes are powers of two).
    QueueSize {
        /// The queue's index.
        queue: u16,
        /// The size the driver set.
        size: u32,
    },
    /// Queue enabled with a misaligned area (virtio 1.2 §2.7: descriptor table 16,
    /// driver area 2, device area 4 bytes).
    QueueAlignment {
        /// The queue's index.
        queue: u16,
    },
    /// `avail.idx` moved more than the queue size past the last entry the device used
    /// (virtio 1.2 §2.7.6).
    AvailIndexJump {
        /// The queue's index.
        queue: u16,
        /// The driver's `avail.idx`.
        avail_idx: u16,
        /// The last `avail.idx` the device took entries up to.
        last_seen: u16,
    },
    /// A descriptor index (chain head or `next`) is not below the queue size.
    DescriptorIndex {
        /// The queue's index.
        queue: u16,
        /// The out-of-range descriptor index.
        index: u16,
    },
    /// A chain has more descriptors than the queue size: a loop (virtio 1.2 §2.7.5.2).
    ChainTooLong {
        /// The queue's index.
        queue: u16,
    },
    /// VIRTQ_DESC_F_INDIRECT used although VIRTIO_F_RING_INDIRECT_DESC was not offered.
    IndirectDescriptor {
        /// The queue's index.
        queue: u16,
    },
    /// A device-readable descriptor follows a device-writable one (virtio 1.2 §2.7.4.2).
    ReadableAfterWritable {
        /// The queue's index.
        queue: u16,
    },
    /// The device completed a chain head that is out of range (a device-side bug,
    /// reported rather than panicking).
    UsedIndex {
        /// The queue's index.
        queue: u16,
        /// The out-of-range chain head.
        index: u16,
    },
    /// DRIVER_OK set without FEATURES_OK (virtio 1.2 §3.1.1).
    DriverOkWithoutFeaturesOk,
    /// Control register (below 0x100) accessed with a size other than 4 or misaligned
    /// (virtio 1.2 §4.2.2.2). Ignored.
    RegisterAccess {
        /// The register's offset in the MMIO window.
        offset: u64,
        /// The access size in bytes.
        size: u8,
        /// Whether the access was a write.
        write: bool,
    },
    /// Device configuration space accessed out of range, misaligned or with a bad size
    /// (virtio 1.2 §4.2.2.2). Ignored.
    ConfigAccess {
        /// The offset in the MMIO window.
        offset: u64,
        /// The access size in bytes.
        size: u8,
        /// Whether the access was a write.
        write: bool,
    },
    /// QueueNotify for a queue that does not exist or is not ready. Ignored.
    NotifyInvalidQueue {
        /// The queue number the driver wrote.
        queue: u32,
    },
    /// Queue setup register written while the selected queue is ready or does not
    /// exist (virtio 1.2 §4.2.3.2). Ignored.
    QueueSetupRejected {
        /// The selected queue number.
        queue: u32,
        /// The register's offset in the MMIO window.
        offset: u64,
    },
    /// DriverFeatures written after FEATURES_OK. Ignored.
    FeaturesAfterFeaturesOk,
    /// A block request that cannot be answered (virtio 1.2 §5.2.6): no full header,
    /// no writable status byte, or a head that is still in flight.
    BadBlockRequest {
        /// The queue the request came on.
        queue: u16,
        /// The head descriptor of its chain.
        head: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A network chain that breaks the virtio-net protocol (virtio 1.2 §5.1.6): a
    /// transmit chain without a full header or with device-writable buffers, a
    /// receive chain with device-readable buffers or without room for the header, or
    /// a head that is still in flight.
    BadNetChain {
        /// The queue the chain came on.
        queue: u16,
        /// The head descriptor of the chain.
        head: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
}

impl GuestError {
    /// Whether this error puts the device into DEVICE_NEEDS_RESET.
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            GuestError::RegisterAccess { .. }
                | GuestError::ConfigAccess { .. }
                | GuestError::NotifyInvalidQueue { .. }
                | GuestError::QueueSetupRejected { .. }
                | GuestError::FeaturesAfterFeaturesOk
        )
    }
}

impl From<MemoryError> for GuestError {
    fn from(e: MemoryError) -> Self {
        GuestError::Memory(e)
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GuestError::Memory(e) => write!(f, "{e}"),
            GuestError::BufferOverflow { queue, addr, len } => {
                write!(f, "queue {queue}: buffer {addr:#x}+{len:#x} overflows")
            }
            GuestError::QueueSize { queue, size } => {
                write!(f, "queue {queue}: invalid size {size}")
            }
            GuestError::QueueAlignment { queue } => {
                write!(f, "queue {queue}: misaligned ring address")
            }
            GuestError::AvailIndexJump {
                queue,
                avail_idx,
                last_seen,
            } => write!(
                f,
                "queue {queue}: avail idx {avail_idx} is more than the queue size past {last_seen}"
            ),
            GuestError::DescriptorIndex { queue, index } => {
                write!(f, "queue {queue}: descriptor index {index} out of range")
            }
            GuestError::ChainTooLong { queue } => {
                write!(f, "queue {queue}: descriptor chain longer than the queue (loop)")
            }
            GuestError::IndirectDescriptor { queue } => {
                write!(f, "queue {queue}: indirect descriptor not negotiated")
            }
            GuestError::ReadableAfterWritable { queue } => {
                write!(f, "queue {queue}: readable descriptor after a writable one")
            }
            GuestError::UsedIndex { queue, index } => {
                write!(f, "queue {queue}: used element for out-of-range head {index}")
            }
            GuestError::DriverOkWithoutFeaturesOk => {
                write!(f, "DRIVER_OK set before FEATURES_OK")
            }
            GuestError::RegisterAccess { offset, size, write } => write!(
                f,
                "{} of {size} bytes at register {offset:#x} ignored (must be 4 bytes, aligned)",
                if write { "write" } else { "read" }
            ),
            GuestError::ConfigAccess { offset, size, write } => write!(
                f,
                "{} of {size} bytes at config offset {offset:#x} ignored",
                if write { "write" } else { "read" }
            ),
            GuestError::NotifyInvalidQueue { queue } => {
                write!(f, "notify for missing or not-ready queue {queue} ignored")
            }
            GuestError::QueueSetupRejected { queue, offset } => write!(
                f,
                "queue {queue}: setup register {offset:#x} written while ready or missing; ignored"
            ),
            GuestError::FeaturesAfterFeaturesOk => {
                write!(f, "DriverFeatures written after FEATURES_OK; ignored")
            }
            GuestError::BadBlockRequest { queue, head, reason } => {
                write!(f, "queue {queue}: block request at head {head}: {reason}")
            }
            GuestError::BadNetChain { queue, head, reason } => {
                write!(f, "queue {queue}: network chain at head {head}: {reason}")
            }
        }
    }
}
