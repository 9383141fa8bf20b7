//! The guest's disk served by the block VCP: the `vcpos-vmm-blk` backend over the
//! `blk_control` region (block protocol, data region = guest RAM), notifying the VCP
//! on [`DISK_CHANNEL`]. The VMM keeps a handle next to the device table's to see
//! requests in flight (a reboot waits for them: a late read must not land in the
//! next guest's RAM) and to report a broken VCP.

use alloc::rc::Rc;
use core::cell::RefCell;

use sel4_microkit::{debug_println, Channel, SharedRegion};
use vcpos_blk_protocol::{Client, RING_CAPACITY};
use vcpos_virtio::block::{BackendInfo, BlockBackend, BlockOp, Completion, DataSegment, RequestId, SubmitError};
use vcpos_vmm_blk::ProtocolDisk;

/// The channel to the block VCP (`vcp_blk`): notifications both ways.
pub const DISK_CHANNEL: Channel = Channel::new(2);

fn notify_vcp() {
    let _ = DISK_CHANNEL.try_notify();
}

type Disk = ProtocolDisk<SharedRegion, fn()>;

/// The disk, shared by the device table (as its backend) and the VMM.
#[derive(Clone)]
pub struct SharedDisk(Rc<RefCell<Disk>>);

impl SharedDisk {
    /// Connects to the VCP over `control`, for data in guest RAM (`ram_size` bytes);
    /// `None` (reported) if the VCP is not there or its info page is impossible.
    pub fn connect(control: SharedRegion, ram_size: usize) -> Option<SharedDisk> {
        let client = match Client::new(control, RING_CAPACITY, ram_size as u64) {
            Ok(c) => c,
            Err(e) => {
                debug_println!("linux_vmm: disk: control region blk_control: {e}; no disk");
                return None;
            }
        };
        match ProtocolDisk::connect(client, notify_vcp as fn()) {
            Ok(d) => {
                let i = d.protocol_info();
                debug_println!(
                    "linux_vmm: disk: vcp_blk window of {} blocks ({} MiB){}, queue depth {}",
                    i.capacity_blocks,
                    i.capacity_blocks >> 11,
                    if i.read_only { ", read-only" } else { "" },
                    i.queue_depth
                );
                Some(SharedDisk(Rc::new(RefCell::new(d))))
            }
            Err(e) => {
                debug_println!("linux_vmm: disk: cannot connect to vcp_blk: {e}; no disk");
                None
            }
        }
    }

    /// Requests the VCP has.
    pub fn in_flight(&self) -> usize {
        self.0.borrow().in_flight()
    }

    /// Reports (once) a protocol failure that killed the disk.
    pub fn report_error(&self) {
        if let Some(e) = self.0.borrow_mut().take_error() {
            debug_println!("linux_vmm: disk: vcp_blk broke the block protocol: {e}; the disk fails from now on");
        }
    }
}

impl BlockBackend for SharedDisk {
    fn info(&self) -> BackendInfo {
        self.0.borrow().info()
    }

    fn submit(&mut self, id: RequestId, op: BlockOp, sector: u64, segments: &[DataSegment]) -> Result<(), SubmitError> {
        self.0.borrow_mut().submit(id, op, sector, segments)
    }

    fn poll(&mut self) -> Option<Completion> {
        self.0.borrow_mut().poll()
    }

    fn kick(&mut self) {
        self.0.borrow_mut().kick()
    }
}
