//! The VM's virtio-mmio device table: one home for which device sits in which slot.
//!
//! Each entry is a device of some kind with its slot, the slot's guest-physical window
//! and interrupt (both from [`crate::layout`]) and its backend `B` (in the VMM: the
//! virtio transport and device model). The guest's device tree lists exactly the
//! table's slots ([`DeviceTable::slots`] into [`crate::fdt::FdtConfig`]), and a guest
//! access is dispatched through the same table ([`DeviceTable::dispatch`]), so the two
//! cannot disagree.

use alloc::vec::Vec;
use core::fmt;

use crate::layout::{self, Device};

/// One virtio-mmio device: where it is and what serves it.
#[derive(Debug)]
pub struct VirtioEntry<B> {
    /// A short name for reports (`"console"`, `"blk0"`).
    pub name: &'static str,
    /// Its virtio-mmio slot (0..[`layout::VIRTIO_MMIO_SLOTS`]).
    pub slot: u32,
    /// Guest-physical base of its register window.
    pub base: u64,
    /// The INTID the VMM raises for it.
    pub intid: u32,
    /// The device behind the window.
    pub backend: B,
}

/// Why a device could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableError {
    /// The slot is past the last virtio-mmio slot.
    SlotOutOfRange {
        /// The device's name.
        name: &'static str,
        /// The slot asked for.
        slot: u32,
    },
    /// Another device already has the slot.
    SlotTaken {
        /// The device's name.
        name: &'static str,
        /// The slot asked for.
        slot: u32,
        /// The device that has it.
        holder: &'static str,
    },
}

impl fmt::Display for TableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            TableError::SlotOutOfRange { name, slot } => write!(
                f,
                "virtio device '{name}': slot {slot} does not exist (slots are 0..{})",
                layout::VIRTIO_MMIO_SLOTS
            ),
            TableError::SlotTaken { name, slot, holder } => {
                write!(f, "virtio device '{name}': slot {slot} is taken by '{holder}'")
            }
        }
    }
}

/// Where a guest access to an emulated device goes.
#[derive(Debug)]
pub enum Target<'a, B> {
    /// A fixed platform frame (GIC distributor/redistributor, PL011), at `offset`.
    Frame(Device, u64),
    /// A virtio device of the table, at `offset` in its window.
    Virtio(&'a mut VirtioEntry<B>, u64),
    /// A virtio-mmio slot without a device, at `offset` (reads: [`empty_slot_read`]).
    EmptySlot(u32, u64),
}

/// The virtio-mmio devices of the VM.
#[derive(Debug)]
pub struct DeviceTable<B> {
    entries: Vec<VirtioEntry<B>>,
}

impl<B> Default for DeviceTable<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B> DeviceTable<B> {
    /// An empty table.
    pub fn new() -> Self {
        DeviceTable { entries: Vec::new() }
    }

    /// Puts `backend` in `slot` under `name`; the window and interrupt come from the
    /// slot.
    pub fn add(&mut self, name: &'static str, slot: u32, backend: B) -> Result<&mut VirtioEntry<B>, TableError> {
        let (Some(base), Some(intid)) = (layout::virtio_mmio_base(slot), layout::virtio_mmio_intid(slot)) else {
            return Err(TableError::SlotOutOfRange { name, slot });
        };
        if let Some(holder) = self.entries.iter().find(|e| e.slot == slot) {
            return Err(TableError::SlotTaken {
                name,
                slot,
                holder: holder.name,
            });
        }
        self.entries.push(VirtioEntry {
            name,
            slot,
            base,
            intid,
            backend,
        });
        let last = self.entries.len() - 1;
        Ok(&mut self.entries[last])
    }

    /// The slots that have a device, in table order (for the device tree).
    pub fn slots(&self) -> Vec<u32> {
        self.entries.iter().map(|e| e.slot).collect()
    }

    /// Every device.
    pub fn entries(&self) -> &[VirtioEntry<B>] {
        &self.entries
    }

    /// Every device, mutable.
    pub fn entries_mut(&mut self) -> &mut [VirtioEntry<B>] {
        &mut self.entries
    }

    /// Which device (or platform frame, or empty slot) guest-physical `ipa` is in, and
    /// the offset there. `None` outside every device (RAM included).
    pub fn dispatch(&mut self, ipa: u64) -> Option<Target<'_, B>> {
        match layout::device_at(ipa)? {
            (Device::VirtioMmio(slot), off) => Some(match self.entries.iter_mut().find(|e| e.slot == slot) {
                Some(entry) => Target::Virtio(entry, off),
                None => Target::EmptySlot(slot, off),
            }),
            (frame, off) => Some(Target::Frame(frame, off)),
        }
    }
}

/// What a read of an empty virtio-mmio slot returns: the magic and version of a
/// non-legacy device with DeviceID 0 ("no device", virtio 1.2 §4.2.2), 0 elsewhere.
pub fn empty_slot_read(offset: u64) -> u32 {
    match offset {
        0x000 => 0x7472_6976,
        0x004 => 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_get_their_slot_window_and_interrupt() {
        let mut t = DeviceTable::new();
        let e = t.add("console", 0, 'c').unwrap();
        assert_eq!((e.base, e.intid), (0x0a00_0000, 48));
        let e = t.add("blk0", 5, 'b').unwrap();
        assert_eq!((e.base, e.intid), (0x0a00_0a00, 53));
        assert_eq!(t.slots(), [0, 5]);
    }

    #[test]
    fn bad_slots_are_refused_with_names() {
        let mut t = DeviceTable::new();
        t.add("console", 1, ()).unwrap();
        let e = t.add("blk0", 1, ()).unwrap_err();
        assert_eq!(
            e,
            TableError::SlotTaken {
                name: "blk0",
                slot: 1,
                holder: "console"
            }
        );
        assert_eq!(e.to_string(), "virtio device 'blk0': slot 1 is taken by 'console'");
        assert_eq!(
            t.add("x", 32, ()).unwrap_err(),
            TableError::SlotOutOfRange { name: "x", slot: 32 }
        );
        assert_eq!(t.entries().len(), 1);
    }

    #[test]
    fn dispatch_finds_device_empty_slot_frame_or_nothing() {
        let mut t = DeviceTable::new();
        t.add("a", 0, 1u8).unwrap();
        t.add("b", 2, 2u8).unwrap();
        match t.dispatch(0x0a00_0400 + 0x50) {
            Some(Target::Virtio(e, off)) => assert_eq!((e.name, e.backend, off), ("b", 2, 0x50)),
            other => panic!("slot 2 access went to {other:?}"),
        }
        match t.dispatch(0x0a00_0000 + 0x1ff) {
            Some(Target::Virtio(e, off)) => assert_eq!((e.name, off), ("a", 0x1ff)),
            other => panic!("slot 0 access went to {other:?}"),
        }
        assert!(matches!(t.dispatch(0x0a00_0200 + 4), Some(Target::EmptySlot(1, 4))));
        assert!(matches!(
            t.dispatch(layout::PL011_BASE + 0x18),
            Some(Target::Frame(Device::Pl011, 0x18))
        ));
        assert!(t.dispatch(layout::RAM_BASE).is_none());
        assert_eq!(empty_slot_read(0), 0x7472_6976);
        assert_eq!(empty_slot_read(4), 2);
        assert_eq!(empty_slot_read(8), 0);
    }
}
