//! Finds a VCP's virtio-mmio transport in the device page it maps, and checks that it
//! is alone there: QEMU packs virtio-mmio transports 0x200 apart, eight to a 4 KiB
//! page, and a page is the smallest thing a PD can map, so any other device in use in
//! the same page would be reachable by the VCP (and the reverse).

use core::fmt;

/// Distance between virtio-mmio transports on QEMU's `virt` machine.
pub const TRANSPORT_STRIDE: usize = 0x200;
/// Bytes in the mapped device page.
pub const PAGE_SIZE: usize = 0x1000;
/// `"virt"` little-endian, the MagicValue register.
pub const MAGIC: u32 = 0x7472_6976;
/// The DeviceID of a network device.
pub const DEVICE_ID_NET: u32 = 1;
/// The DeviceID of a block device.
pub const DEVICE_ID_BLOCK: u32 = 2;
/// Register offsets.
const MAGIC_OFFSET: usize = 0x000;
const DEVICE_ID_OFFSET: usize = 0x008;

/// Why the page is not usable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanError {
    /// No transport in the page holds a device of the wanted kind.
    NoDevice {
        /// The device id looked for.
        device_id: u32,
    },
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
            ScanError::NoDevice {
                device_id: DEVICE_ID_BLOCK,
            } => f.write_str("no virtio-blk transport in the mapped device page"),
            ScanError::NoDevice {
                device_id: DEVICE_ID_NET,
            } => f.write_str("no virtio-net transport in the mapped device page"),
            ScanError::NoDevice { device_id } => {
                write!(
                    f,
                    "no virtio transport of device id {device_id} in the mapped device page"
                )
            }
            ScanError::NotAlone { offset, device_id } => write!(
                f,
                "another virtio device (id {device_id}) shares the device page at offset {offset:#x}: \
                 refusing to drive a page other devices are in"
            ),
        }
    }
}

/// Scans the eight transports of a page, reading 32-bit registers with `read(offset)`:
/// returns the offset of the one device whose id is `device_id`, if every other
/// transport is empty (device id 0) or not a virtio transport at all.
pub fn find_alone_in_page(device_id: u32, read: impl Fn(usize) -> u32) -> Result<usize, ScanError> {
    let mut found = None;
    for offset in (0..PAGE_SIZE).step_by(TRANSPORT_STRIDE) {
        if read(offset + MAGIC_OFFSET) != MAGIC {
            continue;
        }
        match read(offset + DEVICE_ID_OFFSET) {
            0 => {}
            id if id == device_id && found.is_none() => found = Some(offset),
            id => return Err(ScanError::NotAlone { offset, device_id: id }),
        }
    }
    found.ok_or(ScanError::NoDevice { device_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A page whose eight transports all have the magic, with the given devices.
    fn page(devices: &[(usize, u32)]) -> impl Fn(usize) -> u32 + '_ {
        move |off| match off % TRANSPORT_STRIDE {
            0 => MAGIC,
            8 => devices.iter().find(|d| d.0 == off - 8).map_or(0, |d| d.1),
            _ => 0,
        }
    }

    #[test]
    fn block_device_alone() {
        let find = |d| find_alone_in_page(DEVICE_ID_BLOCK, page(d));
        assert_eq!(find(&[(0xe00, 2)]), Ok(0xe00));
        assert_eq!(find(&[]), Err(ScanError::NoDevice { device_id: 2 }));
        assert_eq!(
            find(&[(0xc00, 1), (0xe00, 2)]),
            Err(ScanError::NotAlone {
                offset: 0xc00,
                device_id: 1
            })
        );
        assert_eq!(
            find(&[(0xc00, 2), (0xe00, 2)]),
            Err(ScanError::NotAlone {
                offset: 0xe00,
                device_id: 2
            })
        );
    }

    #[test]
    fn net_device_alone() {
        let find = |d| find_alone_in_page(DEVICE_ID_NET, page(d));
        assert_eq!(find(&[(0xe00, 1)]), Ok(0xe00));
        assert_eq!(find(&[]), Err(ScanError::NoDevice { device_id: 1 }));
        assert_eq!(
            find(&[(0xe00, 2)]),
            Err(ScanError::NotAlone {
                offset: 0xe00,
                device_id: 2
            })
        );
        assert_eq!(
            find(&[(0xc00, 1), (0xe00, 1)]),
            Err(ScanError::NotAlone {
                offset: 0xe00,
                device_id: 1
            })
        );
        // Not a virtio transport at all: ignored.
        assert_eq!(
            find_alone_in_page(DEVICE_ID_NET, |off| if off == 0xe00 {
                MAGIC
            } else if off == 0xe08 {
                1
            } else {
                0
            }),
            Ok(0xe00)
        );
    }

    #[test]
    fn errors_name_the_device() {
        let none = |device_id| ScanError::NoDevice { device_id }.to_string();
        assert_eq!(none(2), "no virtio-blk transport in the mapped device page");
        assert_eq!(none(1), "no virtio-net transport in the mapped device page");
        assert_eq!(none(4), "no virtio transport of device id 4 in the mapped device page");
        assert!(ScanError::NotAlone {
            offset: 0xc00,
            device_id: 1
        }
        .to_string()
        .contains("(id 1) shares the device page at offset 0xc00"));
    }
}
