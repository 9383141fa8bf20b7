//! Byte layouts of the network protocol: the buffer descriptor, transmit statuses,
//! sizes, the info page and where everything sits in the control region. All integers
//! are little-endian.

use core::sync::atomic::Ordering;

use vcpos_queue::{LayoutError, OutOfBounds, RingLayout, SharedMemory};
use vcpos_vcp_common::control::InfoHeader;
use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of each buffer of the fixed-buffer helper ([`crate::client::Client::new`]):
/// the smallest power of two that holds a [`MAX_FRAME_LEN`]-byte frame. Buffer `i`
/// of such a client is at offset `i * BUF_SIZE`. The protocol itself names buffers
/// anywhere in the data region ([`BufDesc`]).
pub const BUF_SIZE: u32 = 2048;
/// Ethernet header: destination MAC, source MAC, EtherType.
pub const ETH_HEADER_LEN: u32 = 14;
/// The IP MTU the protocol carries (no VLAN tags, no jumbo frames).
pub const MTU: u32 = 1500;
/// The longest frame: header and MTU (no frame check sequence). Also the smallest
/// receive buffer a server takes.
pub const MAX_FRAME_LEN: u32 = ETH_HEADER_LEN + MTU;
/// Most buffers the fixed-buffer helper manages (1 MiB of buffers).
pub const MAX_BUFFERS: u32 = 512;
/// The default ring capacity of a vcp-net connection (all four rings): what the
/// native clients use. A connection may be configured with any power of two up to
/// [`MAX_RING_CAPACITY`]; both sides configure it, the info page confirms it.
pub const RING_CAPACITY: u32 = 64;
/// The largest ring capacity (the client half keeps a table of this many
/// descriptors per direction).
pub const MAX_RING_CAPACITY: u32 = 256;

const _: () = assert!(MAX_FRAME_LEN <= BUF_SIZE && BUF_SIZE.is_power_of_two());

/// Most descriptors (pieces) one transmitted frame may take: a frame in scatter-gather
/// pieces is a run of TX active descriptors, each but the last with [`tx_flags::MORE`]
/// (Linux's largest: header, linear part and 17 page fragments).
pub const MAX_TX_PIECES: usize = 24;
/// Bytes of the [`OffloadHeader`] that starts a frame sent with [`tx_flags::OFFLOAD`].
pub const OFFLOAD_HEADER_LEN: u32 = 12;
/// The longest frame sent with an offload (Ethernet header included, offload header
/// not): a 64 KiB TCP segmentation offload with room to spare.
pub const MAX_OFFLOAD_FRAME_LEN: u32 = 0x11000;

/// Flags of a TX active descriptor, in its `status` field.
pub mod tx_flags {
    /// The frame goes on in the next descriptor (scatter-gather).
    pub const MORE: u16 = 1 << 0;
    /// On a frame's first descriptor: the frame's first [`super::OFFLOAD_HEADER_LEN`]
    /// bytes are an [`super::OffloadHeader`] (not sent) asking for offloads the server
    /// offers ([`super::Info::offloads`]).
    pub const OFFLOAD: u16 = 1 << 1;
    /// Every flag defined.
    pub const ALL: u16 = MORE | OFFLOAD;
}

/// Offloads a server does for its clients' frames (bits of [`Info::offloads`]).
pub mod offloads {
    /// Checksum offload: [`super::OFFLOAD_F_NEEDS_CSUM`] (the server computes the
    /// checksum from `csum_start` to the frame's end and stores it at
    /// `csum_start + csum_offset`).
    pub const CSUM: u32 = 1 << 0;
    /// TCP segmentation offload for IPv4 ([`super::GSO_TCPV4`]; needs [`CSUM`]).
    pub const TSO4: u32 = 1 << 1;
}

/// [`OffloadHeader::flags`]: the client left the checksum to the server.
pub const OFFLOAD_F_NEEDS_CSUM: u8 = 1;
/// [`OffloadHeader::gso_type`]: no segmentation.
pub const GSO_NONE: u8 = 0;
/// [`OffloadHeader::gso_type`]: cut an IPv4 TCP frame into `gso_size`-byte segments.
pub const GSO_TCPV4: u8 = 1;

/// The offload header that starts a frame sent with [`tx_flags::OFFLOAD`]: the layout
/// of virtio's `virtio_net_hdr_v1` (virtio 1.2 §5.1.6), so a VMM passes its guest's
/// header through untouched. The server trusts none of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct OffloadHeader {
    /// [`OFFLOAD_F_NEEDS_CSUM`] or 0.
    pub flags: u8,
    /// [`GSO_NONE`] or [`GSO_TCPV4`].
    pub gso_type: u8,
    /// The client's idea of its headers' length (not used: the server parses them).
    pub hdr_len: U16,
    /// Payload bytes per segment ([`GSO_TCPV4`]).
    pub gso_size: U16,
    /// Where checksumming starts, from the frame's first byte.
    pub csum_start: U16,
    /// Where the checksum goes, from `csum_start`.
    pub csum_offset: U16,
    /// Not used (virtio's receive-side field).
    pub num_buffers: U16,
}

const _: () = assert!(core::mem::size_of::<OffloadHeader>() == OFFLOAD_HEADER_LEN as usize);

/// A buffer reference: `len` bytes at `offset` in the client's data region, named
/// `id` by the client. 16 bytes.
///
/// - TX active: a frame to send (`len` = frame length), or one piece of it
///   ([`tx_flags`] in `status`); TX free: the same descriptor given back with a
///   [`TxStatus`] (every piece of a frame with the frame's, in order).
/// - RX free: an empty buffer (`len` = its capacity, at least [`MAX_FRAME_LEN`]);
///   RX active: the same buffer given back with `len` = the frame's length and
///   [`RxStatus::Received`], or `len` 0 and [`RxStatus::Unused`].
///
/// The server gives back `offset` and `id` exactly as it took them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct BufDesc {
    /// Byte offset of the buffer in the client's data region (any alignment).
    pub offset: u64,
    /// Frame length (TX active, TX free, RX active) or buffer capacity (RX free).
    pub len: u32,
    /// The client's name for this buffer (echoed by the server; not interpreted).
    pub id: u16,
    /// TX active: [`tx_flags`]; TX free: a [`TxStatus`] value; RX active: an
    /// [`RxStatus`] value; zero in the RX free ring.
    pub status: u16,
}

const _: () = assert!(core::mem::size_of::<BufDesc>() == 16);

impl BufDesc {
    /// A descriptor with status 0.
    pub const fn new(offset: u64, len: u32, id: u16) -> BufDesc {
        BufDesc {
            offset,
            len,
            id,
            status: 0,
        }
    }

    /// Whether `len` bytes at `offset` lie inside a data region of `size` bytes (no
    /// overflow).
    pub const fn fits(&self, size: u64) -> bool {
        match self.offset.checked_add(self.len as u64) {
            Some(end) => end <= size,
            None => false,
        }
    }
}

/// What happened to a receive buffer (the `status` of an RX active descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum RxStatus {
    /// It holds a received frame of `len` bytes.
    Received = 0,
    /// Given back without a frame (`len` 0): the client recalled its receive buffers.
    Unused = 1,
}

impl RxStatus {
    /// The status with wire value `v`, if any.
    pub fn from_wire(v: u16) -> Option<RxStatus> {
        Some(match v {
            0 => RxStatus::Received,
            1 => RxStatus::Unused,
            _ => return None,
        })
    }
}

/// What happened to a transmitted buffer (the `status` of a TX free descriptor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum TxStatus {
    /// Sent (to the device, to local clients, or both).
    Sent = 0,
    /// Not sent: the length is below [`ETH_HEADER_LEN`] or above the maximum frame.
    BadLength = 1,
    /// Not sent: the source MAC is not the one assigned to this client.
    Spoofed = 2,
    /// Not sent: the device failed it, or there is no device to send it to.
    DeviceError = 3,
    /// Not sent: it asks for an offload the server does not offer, or its offload
    /// header or protocol headers are not ones the server can do it for.
    Unsupported = 4,
}

/// How many [`TxStatus`] values there are (for per-status counters).
pub const TX_STATUSES: usize = 5;

impl TxStatus {
    /// The status with wire value `v`, if any.
    pub fn from_wire(v: u16) -> Option<TxStatus> {
        Some(match v {
            0 => TxStatus::Sent,
            1 => TxStatus::BadLength,
            2 => TxStatus::Spoofed,
            3 => TxStatus::DeviceError,
            4 => TxStatus::Unsupported,
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
    /// The smallest receive buffer the server takes ([`super::MAX_FRAME_LEN`]).
    pub const MIN_RX_BUFFER: usize = 0x1c;
    /// Size of the client's data region as the server sees it, low 32 bits.
    pub const DATA_SIZE_LO: usize = 0x20;
    /// Capacity of each of the four rings (both sides must agree).
    pub const RING_CAPACITY: usize = 0x24;
    /// Size of the client's data region as the server sees it, high 32 bits.
    pub const DATA_SIZE_HI: usize = 0x28;
    /// The last RX recall request the server has finished (server-written, see
    /// [`super::RX_RECALL`]).
    pub const RX_RECALL_DONE: usize = 0x2c;
    /// The offloads the server does ([`super::offloads`] bits).
    pub const OFFLOADS: usize = 0x30;
}

/// The one control-region word the **client** writes (u32, in the info page's page):
/// a counter the client bumps to ask the server to give back every receive buffer
/// it holds, unused ([`RxStatus::Unused`]); the server copies it to
/// [`info_offsets::RX_RECALL_DONE`] once it has.
pub const RX_RECALL: usize = 0x800;

/// This protocol's info page header: magic `"VNET"`, version 3 (version 2 had no
/// scatter-gather or offloads, version 1 fixed 2048-byte buffers and no ids).
const HEADER: InfoHeader = InfoHeader::new(*b"VNET", 3);
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
    /// Size of the client's data region in bytes.
    pub data_size: u64,
    /// Capacity of each ring.
    pub ring_capacity: u32,
    /// The offloads the server does ([`offloads`] bits).
    pub offloads: u32,
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
            mem.store_u32(o::MIN_RX_BUFFER, MAX_FRAME_LEN, Ordering::Relaxed)?;
            mem.store_u32(o::DATA_SIZE_LO, self.data_size as u32, Ordering::Relaxed)?;
            mem.store_u32(o::DATA_SIZE_HI, (self.data_size >> 32) as u32, Ordering::Relaxed)?;
            mem.store_u32(o::RING_CAPACITY, self.ring_capacity, Ordering::Relaxed)?;
            mem.store_u32(o::OFFLOADS, self.offloads, Ordering::Relaxed)
        })
    }

    /// Reads the info page: `Ok(None)` while not ready; `Err` names the first field that
    /// is impossible for a client with rings of `ring_capacity` and `buffers` buffers in
    /// its data region.
    pub fn read(mem: &impl SharedMemory, ring_capacity: u32, data_size: u64) -> Result<Option<Info>, InfoError> {
        use info_offsets as o;
        HEADER.read(mem, |r, generation| {
            let field = |name: &'static str, value: u32| InfoError::Field {
                name,
                value: value.into(),
            };
            let mtu = r.expect("mtu", o::MTU, MTU)?;
            r.expect("min_rx_buffer", o::MIN_RX_BUFFER, MAX_FRAME_LEN)?;
            r.expect("data_size_lo", o::DATA_SIZE_LO, data_size as u32)?;
            r.expect("data_size_hi", o::DATA_SIZE_HI, (data_size >> 32) as u32)?;
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
            let offloads = r.load(o::OFFLOADS)?;
            if offloads & !(offloads::CSUM | offloads::TSO4) != 0
                || (offloads & offloads::TSO4 != 0 && offloads & offloads::CSUM == 0)
            {
                return Err(field("offloads", offloads));
            }
            Ok(Info {
                generation,
                mac,
                mtu,
                data_size,
                ring_capacity,
                offloads,
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
    /// The layout for rings of `ring_capacity` slots each (a power of two up to
    /// [`MAX_RING_CAPACITY`]): info page at 0, then TX active, TX free, RX free and RX
    /// active, each starting on a page boundary. [`Self::size`] is the one home of
    /// the control region's size (ARCHITECTURE.md's table is computed from it).
    pub const fn new(ring_capacity: u32) -> Result<ControlLayout, LayoutError> {
        if ring_capacity > MAX_RING_CAPACITY {
            return Err(LayoutError::Capacity(ring_capacity));
        }
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
        assert!(ControlLayout::new(512).is_err());
        assert_eq!(ControlLayout::new(128).unwrap().size(), 0x5000);
    }

    #[test]
    fn descriptor_bounds() {
        assert!(BufDesc::new(0, 100, 0).fits(100));
        assert!(!BufDesc::new(1, 100, 0).fits(100));
        assert!(!BufDesc::new(u64::MAX, 2, 0).fits(u64::MAX));
        assert!(BufDesc::new(u64::MAX - 2, 2, 0).fits(u64::MAX));
    }

    #[test]
    fn buffer_counts() {
        assert_eq!(buffers_in(64 * 2048), Some(64));
        assert_eq!(buffers_in(2048), None);
        assert_eq!(buffers_in(64 * 2048 + 1), None);
        assert_eq!(buffers_in(u64::from(MAX_BUFFERS + 1) * 2048), None);
    }
}
