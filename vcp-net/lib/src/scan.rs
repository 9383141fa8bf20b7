//! Finds the virtio-net transport in the device page vcp-net maps, and checks that it is
//! alone there: QEMU packs virtio-mmio transports 0x200 apart, eight to a 4 KiB page,
//! and a page is the smallest thing a PD can map, so any other device in use in the
//! same page would be reachable by vcp-net (and the reverse).

use core::fmt;

/// Distance between virtio-mmio transports on QEMU's `virt` machine.
pub const TRANSPORT_STRIDE: usize = 0x200;
/// Bytes in the mapped device page.
pub const PAGE_SIZE: usize = 0x1000;
/// `"virt"` little-endian, the MagicValue register.
pub const MAGIC: u32 = 0x7472_6976;
/// The DeviceID of a network device.
pub const DEVICE_ID_NET: u32 = 1;
const MAGIC_OFFSET: usize = 0x000;
const DEVICE_ID_OFFSET: usize = 0x008;

/// Why the page is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// No transport in the page holds a network device.
    NoNetDevice,
    /// Another transport in the page has a device in use.
    NotAlone {
        /// Its offset in the page.
        offset: usize,
        /// Its device id.
        device_id: u32,
    },
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::NoNetDevice => f.write_str("no virtio-net transport in the mapped device page"),
            ScanError::NotAlone { offset, device_id } => write!(
                f,
                "another virtio device (id {device_id}) shares the device page at offset {offset:#x}: \
                 refusing to drive a page other devices are in"
            ),
        }
    }
}

/// Scans the eight transports of a page, reading 32-bit registers with `read(offset)`:
/// returns the offset of the one network device, if every other transport is empty
/// (device id 0) or not a virtio transport at all.
pub fn find_alone_in_page(read: impl Fn(usize) -> u32) -> Result<usize, ScanError> {
    let mut found = None;
    for offset in (0..PAGE_SIZE).step_by(TRANSPORT_STRIDE) {
        if read(offset + MAGIC_OFFSET) != MAGIC {
            continue;
        }
        match read(offset + DEVICE_ID_OFFSET) {
            0 => {}
            DEVICE_ID_NET if found.is_none() => found = Some(offset),
            device_id => return Err(ScanError::NotAlone { offset, device_id }),
        }
    }
    found.ok_or(ScanError::NoNetDevice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(devices: &[(usize, u32)]) -> impl Fn(usize) -> u32 + '_ {
        move |off| match off % TRANSPORT_STRIDE {
            0 => MAGIC,
            8 => devices.iter().find(|d| d.0 == off - 8).map_or(0, |d| d.1),
            _ => 0,
        }
    }

    #[test]
    fn alone() {
        assert_eq!(find_alone_in_page(page(&[(0xe00, 1)])), Ok(0xe00));
        assert_eq!(find_alone_in_page(page(&[])), Err(ScanError::NoNetDevice));
        assert_eq!(
            find_alone_in_page(page(&[(0xe00, 2)])),
            Err(ScanError::NotAlone {
                offset: 0xe00,
                device_id: 2
            })
        );
        assert_eq!(
            find_alone_in_page(page(&[(0xc00, 1), (0xe00, 1)])),
            Err(ScanError::NotAlone {
                offset: 0xe00,
                device_id: 1
            })
        );
        // Not a virtio transport at all: ignored.
        assert_eq!(
            find_alone_in_page(|off| if off == 0xe00 {
                MAGIC
            } else if off == 0xe08 {
                1
            } else {
                0
            }),
            Ok(0xe00)
        );
    }
}
