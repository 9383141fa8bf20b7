//! Byte layouts of the network protocol: the buffer descriptor, transmit statuses,
//! sizes, the info page and where everything sits in the control region. All integers
//! are little-endian.

use core::sync::atomic::Ordering;

use vcpos_queue::{LayoutError, OutOfBounds, RingLayout, SharedMemory};
use vcpos_vcp_common::control::InfoHeader;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of every frame buffer in a client's data region: the smallest power of two
/// that holds a [`MAX_FRAME_LEN`]-byte frame. Buffer `i` is at offset `i * BUF_SIZE`.
pub const BUF_SIZE: u32 = 2048;
/// Ethernet header: destination MAC, source MAC, EtherType.
pub const ETH_HEADER_LEN: u32 = 14;
/// The IP MTU the protocol carries (no VLAN tags, no jumbo frames).
pub const MTU: u32 = 1500;
/// The longest frame: header and MTU (no frame check sequence).
pub const MAX_FRAME_LEN: u32 = ETH_HEADER_LEN + MTU;
/// Most buffers a client's data region may hold (1 MiB of buffers).
pub const MAX_BUFFERS: u32 = 512;
/// Ring capacity of every vcp-net connection (all four rings): a client's data region
/// holds at most this many buffers. Both sides configure it; the info page confirms it.
pub const RING_CAPACITY: u32 = 64;

const _: () = assert!(MAX_FRAME_LEN <= BUF_SIZE && BUF_SIZE.is_power_of_two());

/// A buffer reference: the buffer at `offset` in the client's data region, holding a
/// `len`-byte frame. 16 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BufDesc {
    /// Byte offset of the buffer in the client's data region (a multiple of
    /// [`BUF_SIZE`]).
    pub offset: u64,
    /// Frame length in bytes (TX active, RX active); 0 in RX free and TX free.
    pub len: u32,
    /// TX free: a [`TxStatus`] value; zero elsewhere.
    pub status: u32,
}

const _: () = assert!(core::mem::size_of::<BufDesc>() == 16);

impl BufDesc {
    /// A descriptor with status 0.
    pub const fn new(offset: u64, len: u32) -> BufDesc {
        BufDesc { offset, len, status: 0 }
    }
}

/// What happened to a transmitted buffer (the `status` of a TX free descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum TxStatus {
    /// Sent (to the device, to local clients, or both).
    Sent = 0,
    /// Not sent: the length is below [`ETH_HEADER_LEN`] or above the maximum frame.
    BadLength = 1,
    /// Not sent: the source MAC is not the one assigned to this client.
    Spoofed = 2,
    /// Not sent: the device failed it, or there is no device to send it to.
    DeviceError = 3,
}

impl TxStatus {
    /// The status with wire value `v`, if any.
    pub fn from_wire(v: u32) -> Option<TxStatus> {
        Some(match v {
            0 => TxStatus::Sent,
            1 => TxStatus::BadLength,
            2 => TxStatus::Spoofed,
            3 => TxStatus::DeviceError,
            _ => return None,
        })
    }
}

/// Whether `mac` is a group address (multicast, broadcast included): bit 0 of the
/// first byte.
pub const fn mac_is_multicast(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

/// Info page offsets (each a `u32`, written only by the server).
pub mod info_offsets {
    /// The header every VCP protocol's info page starts with: [`super::INFO_MAGIC`],
    /// [`super::PROTOCOL_VERSION`], ready, generation.
    pub use vcpos_vcp_common::control::header_offsets::{GENERATION, MAGIC, READY, VERSION};
    /// MAC address bytes 0..4 (byte 0 in the low bits).
    pub const MAC_LO: usize = 0x10;
    /// MAC address bytes 4..6 in the low 16 bits; the high 16 bits are zero.
    pub const MAC_HI: usize = 0x14;
    /// The MTU ([`super::MTU`]).
    pub const MTU: usize = 0x18;
    /// Buffer size ([`super::BUF_SIZE`]).
    pub const BUF_SIZE: usize = 0x1c;
    /// Buffers in the client's data region as the server sees it.
    pub const BUFFERS: usize = 0x20;
    /// Capacity of each of the four rings (both sides must agree).
    pub const RING_CAPACITY: usize = 0x24;
}

/// This protocol's info page header: magic `"VNET"`, version 1.
const HEADER: InfoHeader = InfoHeader::new(*b"VNET", 1);
/// `"VNET"` little-endian.
pub const INFO_MAGIC: u32 = HEADER.magic;
/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = HEADER.version;

/// What the info page tells a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Info {
    /// Generation of the server's connection state.
    pub generation: u32,
    /// The MAC address assigned to the client: the only source address it may send
    /// with, and the unicast address it receives.
    pub mac: [u8; 6],
    /// MTU ([`MTU`]).
    pub mtu: u32,
    /// Buffers in the data region.
    pub buffers: u32,
    /// Capacity of each ring.
    pub ring_capacity: u32,
}

impl Info {
    /// Writes the info page (ready cleared first, stored last with Release).
    pub fn publish(&self, mem: &impl SharedMemory) -> Result<(), OutOfBounds> {
        use info_offsets as o;
        let m = self.mac;
        HEADER.publish(mem, self.generation, |mem| {
            mem.store_u32(
                o::MAC_LO,
                u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
                Ordering::Relaxed,
            )?;
            mem.store_u32(o::MAC_HI, u32::from_le_bytes([m[4], m[5], 0, 0]), Ordering::Relaxed)?;
            mem.store_u32(o::MTU, self.mtu, Ordering::Relaxed)?;
            mem.store_u32(o::BUF_SIZE, BUF_SIZE, Ordering::Relaxed)?;
            mem.store_u32(o::BUFFERS, self.buffers, Ordering::Relaxed)?;
            mem.store_u32(o::RING_CAPACITY, self.ring_capacity, Ordering::Relaxed)
        })
    }

    /// Reads the info page: `Ok(None)` while not ready; `Err` names the first field that
    /// is impossible for a client with rings of `ring_capacity` and `buffers` buffers in
    /// its data region.
    pub fn read(mem: &impl SharedMemory, ring_capacity: u32, buffers: u32) -> Result<Option<Info>, InfoError> {
        use info_offsets as o;
        HEADER.read(mem, |r, generation| {
            let field = |name: &'static str, value: u32| InfoError::Field {
                name,
                value: value.into(),
            };
            let mtu = r.expect("mtu", o::MTU, MTU)?;
            r.expect("buf_size", o::BUF_SIZE, BUF_SIZE)?;
            r.expect("buffers", o::BUFFERS, buffers)?;
            r.expect("ring_capacity", o::RING_CAPACITY, ring_capacity)?;
            let lo = r.load(o::MAC_LO)?.to_le_bytes();
            let hi = r.load(o::MAC_HI)?;
            if hi >> 16 != 0 {
                return Err(field("mac_hi", hi));
            }
            let hi = hi.to_le_bytes();
            let mac = [lo[0], lo[1], lo[2], lo[3], hi[0], hi[1]];
            if mac_is_multicast(&mac) || mac == [0; 6] {
                return Err(field("mac_lo", u32::from_le_bytes(lo)));
            }
            Ok(Info {
                generation,
                mac,
                mtu,
                buffers,
                ring_capacity,
            })
        })
    }
}

pub use vcpos_vcp_common::control::InfoError;

/// Where the four rings sit in a client's control region (the info page is at 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlLayout {
    /// TX active: frames to send (client produces).
    pub tx_active: RingLayout,
    /// TX free: transmitted buffers given back, with a status (server produces).
    pub tx_free: RingLayout,
    /// RX free: empty buffers for received frames (client produces).
    pub rx_free: RingLayout,
    /// RX active: buffers holding received frames (server produces).
    pub rx_active: RingLayout,
}

const PAGE: usize = 0x1000;

const fn ring_at(base: usize, capacity: u32) -> Result<RingLayout, LayoutError> {
    RingLayout::for_descriptor::<BufDesc>(base, capacity)
}

impl ControlLayout {
    /// The layout for rings of `ring_capacity` slots each: info page at 0, then TX
    /// active, TX free, RX free and RX active, each starting on a page boundary.
    pub const fn new(ring_capacity: u32) -> Result<ControlLayout, LayoutError> {
        let tx_active = match ring_at(PAGE, ring_capacity) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let tx_free = match ring_at(tx_active.end().next_multiple_of(PAGE), ring_capacity) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let rx_free = match ring_at(tx_free.end().next_multiple_of(PAGE), ring_capacity) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let rx_active = match ring_at(rx_free.end().next_multiple_of(PAGE), ring_capacity) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        Ok(ControlLayout {
            tx_active,
            tx_free,
            rx_free,
            rx_active,
        })
    }

    /// Bytes the control region needs (a whole number of pages).
    pub const fn size(&self) -> usize {
        self.rx_active.end().next_multiple_of(PAGE)
    }
}

/// Buffers in a data region of `data_size` bytes, if it can be used: a non-zero
/// multiple of [`BUF_SIZE`] with 2..=[`MAX_BUFFERS`] buffers.
pub fn buffers_in(data_size: u64) -> Option<u32> {
    if !data_size.is_multiple_of(u64::from(BUF_SIZE)) {
        return None;
    }
    let n = data_size / u64::from(BUF_SIZE);
    if (2..=u64::from(MAX_BUFFERS)).contains(&n) {
        Some(n as u32)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_layout() {
        let l = ControlLayout::new(64).unwrap();
        assert_eq!(l.tx_active.base(), 0x1000);
        assert_eq!(l.tx_active.end(), 0x1000 + 0x80 + 64 * 16);
        assert_eq!(l.tx_free.base(), 0x2000);
        assert_eq!(l.rx_free.base(), 0x3000);
        assert_eq!(l.rx_active.base(), 0x4000);
        assert_eq!(l.size(), 0x5000);
        let l = ControlLayout::new(256).unwrap();
        assert_eq!(l.tx_free.base(), 0x3000);
        assert_eq!(l.size(), 0x9000);
        assert!(ControlLayout::new(48).is_err());
    }

    #[test]
    fn buffer_counts() {
        assert_eq!(buffers_in(64 * 2048), Some(64));
        assert_eq!(buffers_in(2048), None);
        assert_eq!(buffers_in(64 * 2048 + 1), None);
        assert_eq!(buffers_in(u64::from(MAX_BUFFERS + 1) * 2048), None);
    }
}
