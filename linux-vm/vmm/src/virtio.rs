//! The guest's virtio devices: the device table (slot, window, interrupt, backend) the
//! device tree and exit dispatch both come from, and the kinds of backend.

use alloc::boxed::Box;

use sel4_microkit::SharedRegion;
use vcpos_virtio::{Block, BlockBackend, Console, GuestError, GuestMemory, MmioTransport, Net, NetVcpBackend};
use vcpos_vmm_devices::devices::DeviceTable;
use vcpos_vmm_devices::layout;

use crate::disk::SharedDisk;
use crate::ramdisk::RamDisk;

/// The virtio-mmio slot of the console.
pub const CONSOLE_SLOT: u32 = 0;
/// The virtio-mmio slot of the first disk.
pub const BLOCK_SLOT: u32 = 1;
/// The virtio-mmio slot of the network device (served by the network VCP).
pub const NET_SLOT: u32 = 2;

/// A network device whose backend is a client of the network VCP.
pub type NetDevice = MmioTransport<Net<NetVcpBackend<SharedRegion>>>;

/// The network VCP's client control region of this VMM (its data region is guest
/// RAM) and the rings' capacity.
pub struct NetRegions {
    /// The control region (info page and rings).
    pub control: SharedRegion,
}

/// Ring capacity of the VMM's connection to vcp-net: the guest posts 256 receive
/// buffers (its queue size) and all of them go to vcp-net. The system's control
/// region holds `vcpos_net_protocol::ControlLayout::new(256).size()` = 0x9000 bytes,
/// and vcp-net's configuration gives client 0 `ring=256`.
pub const NET_RING_CAPACITY: u32 = 256;

/// A block device over any backend.
pub type BlockDevice = MmioTransport<Block<Box<dyn BlockBackend>>>;

/// A virtio device of some kind behind its MMIO transport.
pub enum Backend {
    /// The console: output to the UART, keyboard input from it.
    Console(MmioTransport<Console>),
    /// A disk.
    Block(BlockDevice),
    /// The network device (`eth0`), a client of the network VCP (boxed: its client
    /// half is much larger than the other devices).
    Net(Box<NetDevice>),
}

impl Backend {
    /// A register read at `offset` in the device's window.
    pub fn read(&mut self, offset: u64, size: u8) -> u32 {
        match self {
            Backend::Console(t) => t.read(offset, size),
            Backend::Block(t) => t.read(offset, size),
            Backend::Net(t) => t.read(offset, size),
        }
    }

    /// A register write; true means "raise the device's interrupt".
    pub fn write(&mut self, offset: u64, size: u8, value: u32, mem: &mut dyn GuestMemory) -> bool {
        match self {
            Backend::Console(t) => t.write(offset, size, value, mem),
            Backend::Block(t) => t.write(offset, size, value, mem),
            Backend::Net(t) => t.write(offset, size, value, mem),
        }
    }

    /// Work that does not come from the guest; true means "raise the interrupt".
    pub fn poll(&mut self, mem: &mut dyn GuestMemory) -> bool {
        match self {
            Backend::Console(t) => t.poll(mem),
            Backend::Block(t) => t.poll(mem),
            Backend::Net(t) => t.poll(mem),
        }
    }

    /// The last guest protocol error, if any.
    pub fn take_error(&mut self) -> Option<GuestError> {
        match self {
            Backend::Console(t) => t.take_error(),
            Backend::Block(t) => t.take_error(),
            Backend::Net(t) => t.take_error(),
        }
    }

    /// The console transport, if this is the console.
    pub fn console(&mut self) -> Option<&mut MmioTransport<Console>> {
        match self {
            Backend::Console(t) => Some(t),
            Backend::Block(_) | Backend::Net(_) => None,
        }
    }

    /// The network transport, if this is the network device.
    pub fn net(&mut self) -> Option<&mut NetDevice> {
        match self {
            Backend::Net(t) => Some(t),
            Backend::Console(_) | Backend::Block(_) => None,
        }
    }
}

/// The VM's virtio devices: the console; a disk: served by the block VCP (`disk`) if
/// the system connects the VMM to one, else over `ramdisk` if the system gives the VMM
/// one; and a network device if the system makes the VMM a client of the network VCP.
pub fn device_table(
    ram: &SharedRegion,
    ramdisk: Option<SharedRegion>,
    disk: Option<SharedDisk>,
    net: Option<NetRegions>,
) -> DeviceTable<Backend> {
    let mut table = DeviceTable::new();
    let console = Backend::Console(MmioTransport::new(Console::new()));
    if let Err(e) = table.add("console", CONSOLE_SLOT, console) {
        panic!("device table: {e}");
    }
    if let Some(disk) = disk {
        let backend: Box<dyn BlockBackend> = Box::new(disk);
        let block = Backend::Block(MmioTransport::new(Block::new(backend, layout::RAM_BASE)));
        if let Err(e) = table.add("vcp_blk disk", BLOCK_SLOT, block) {
            panic!("device table: {e}");
        }
    } else if let Some(disk) = ramdisk {
        let backend: Box<dyn BlockBackend> = Box::new(RamDisk::new(disk, ram.clone()));
        let block = Backend::Block(MmioTransport::new(Block::new(backend, layout::RAM_BASE)));
        if let Err(e) = table.add("ramdisk", BLOCK_SLOT, block) {
            panic!("device table: {e}");
        }
    }
    if let Some(net) = net {
        let backend = NetVcpBackend::new(net.control, ram.clone(), NET_RING_CAPACITY)
            .unwrap_or_else(|e| panic!("network VCP client regions: {e}"));
        let device = Backend::Net(Box::new(MmioTransport::new(Net::new(backend, layout::RAM_BASE))));
        if let Err(e) = table.add("net", NET_SLOT, device) {
            panic!("device table: {e}");
        }
    }
    table
}
