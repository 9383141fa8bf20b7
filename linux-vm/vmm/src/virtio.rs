//! The guest's virtio devices: the device table (slot, window, interrupt, backend) the
//! device tree and exit dispatch both come from, and the kinds of backend.

use vcpos_virtio::{Console, GuestError, GuestMemory, MmioTransport};
use vcpos_vmm_devices::devices::DeviceTable;

/// The virtio-mmio slot of the console.
pub const CONSOLE_SLOT: u32 = 0;

/// A virtio device of some kind behind its MMIO transport.
pub enum Backend {
    /// The console: output to the UART, keyboard input from it.
    Console(MmioTransport<Console>),
}

impl Backend {
    /// A register read at `offset` in the device's window.
    pub fn read(&mut self, offset: u64, size: u8) -> u32 {
        match self {
            Backend::Console(t) => t.read(offset, size),
        }
    }

    /// A register write; true means "raise the device's interrupt".
    pub fn write(&mut self, offset: u64, size: u8, value: u32, mem: &mut dyn GuestMemory) -> bool {
        match self {
            Backend::Console(t) => t.write(offset, size, value, mem),
        }
    }

    /// Work that does not come from the guest; true means "raise the interrupt".
    pub fn poll(&mut self, mem: &mut dyn GuestMemory) -> bool {
        match self {
            Backend::Console(t) => t.poll(mem),
        }
    }

    /// The last guest protocol error, if any.
    pub fn take_error(&mut self) -> Option<GuestError> {
        match self {
            Backend::Console(t) => t.take_error(),
        }
    }

    /// The console transport, if this is the console.
    pub fn console(&mut self) -> Option<&mut MmioTransport<Console>> {
        match self {
            Backend::Console(t) => Some(t),
        }
    }
}

/// The VM's virtio devices.
pub fn device_table() -> DeviceTable<Backend> {
    let mut table = DeviceTable::new();
    if let Err(e) = table.add(
        "console",
        CONSOLE_SLOT,
        Backend::Console(MmioTransport::new(Console::new())),
    ) {
        panic!("device table: {e}");
    }
    table
}
