//! Finds the virtio-blk transport in the device page vcp-blk maps, and checks that it is
//! alone there (the check itself: `vcpos_vcp_common::scan`).

pub use vcpos_vcp_common::scan::{ScanError, DEVICE_ID_BLOCK, MAGIC, PAGE_SIZE, TRANSPORT_STRIDE};

/// Scans the eight transports of a page, reading 32-bit registers with `read(offset)`:
/// returns the offset of the one block device, if every other transport is empty
/// (device id 0) or not a virtio transport at all.
pub fn find_alone_in_page(read: impl Fn(usize) -> u32) -> Result<usize, ScanError> {
    vcpos_vcp_common::scan::find_alone_in_page(DEVICE_ID_BLOCK, read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_for_a_block_device() {
        let one = |id: u32| {
            move |off: usize| match off {
                0xe00 => MAGIC,
                0xe08 => id,
                _ => 0,
            }
        };
        assert_eq!(find_alone_in_page(one(2)), Ok(0xe00));
        assert_eq!(
            find_alone_in_page(one(1)),
            Err(ScanError::NotAlone {
                offset: 0xe00,
                device_id: 1
            })
        );
        assert!(find_alone_in_page(one(0))
            .unwrap_err()
            .to_string()
            .contains("no virtio-blk transport"));
    }
}
