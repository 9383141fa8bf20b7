//! A block backend over a memory region of the VMM: the guest's disk for systems that
//! give the VMM a `ramdisk` region (tests of the virtio block device with Linux's
//! driver). Requests are done at once by copying between the region and guest RAM
//! (region to region, no buffer) and complete on the device's next poll. The block
//! VCP's backend replaces it for real disks.

use alloc::collections::VecDeque;

use sel4_microkit::SharedRegion;
use vcpos_virtio::block::{BackendInfo, BlockBackend, BlockOp, BlockStatus, Completion, DataSegment, RequestId};
use vcpos_virtio::block::{SubmitError, ID_LEN};

/// Requests in flight at once (more than Linux keeps for one queue of this size).
const QUEUE_DEPTH: u16 = 128;
/// Most data segments per request.
const SEG_MAX: u32 = 64;
/// Largest data segment.
const SIZE_MAX: u32 = 64 * 1024;

/// A disk in a memory region.
pub struct RamDisk {
    disk: SharedRegion,
    /// Guest RAM (segment offsets are relative to its start).
    ram: SharedRegion,
    done: VecDeque<Completion>,
}

impl RamDisk {
    /// A disk of `disk`'s size, serving requests into and out of `ram`.
    pub fn new(disk: SharedRegion, ram: SharedRegion) -> RamDisk {
        RamDisk {
            disk,
            ram,
            done: VecDeque::new(),
        }
    }

    fn transfer(&self, op: BlockOp, sector: u64, segments: &[DataSegment]) -> BlockStatus {
        let Some(mut pos) = usize::try_from(sector).ok().and_then(|s| s.checked_mul(512)) else {
            return BlockStatus::IoError;
        };
        for s in segments {
            let (Ok(off), len) = (usize::try_from(s.offset), s.len as usize) else {
                return BlockStatus::IoError;
            };
            let copied = match op {
                BlockOp::Read => self.ram.copy_from(off, &self.disk, pos, len),
                BlockOp::Write { .. } => self.disk.copy_from(pos, &self.ram, off, len),
                BlockOp::Flush => Ok(()),
            };
            if copied.is_err() {
                return BlockStatus::IoError;
            }
            pos += len;
        }
        BlockStatus::Ok
    }
}

impl BlockBackend for RamDisk {
    fn info(&self) -> BackendInfo {
        let mut id = [0u8; ID_LEN];
        id[..13].copy_from_slice(b"vcpos-ramdisk");
        BackendInfo {
            capacity_sectors: self.disk.len() as u64 / 512,
            block_size: 512,
            seg_max: SEG_MAX,
            size_max: SIZE_MAX,
            queue_depth: QUEUE_DEPTH,
            read_only: false,
            flush: true,
            fua: true,
            id,
        }
    }

    fn submit(&mut self, id: RequestId, op: BlockOp, sector: u64, segments: &[DataSegment]) -> Result<(), SubmitError> {
        let status = self.transfer(op, sector, segments);
        self.done.push_back(Completion { id, status });
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }
}
