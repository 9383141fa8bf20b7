//! The device table is the one home of the virtio devices: the device tree built from
//! it lists every device with its slot window and interrupt, and guest accesses at
//! those windows are dispatched to the right device.

use ::fdt::Fdt;
use vcpos_vmm_devices::devices::{DeviceTable, Target};
use vcpos_vmm_devices::fdt::{self, FdtConfig};
use vcpos_vmm_devices::layout;

/// A stand-in backend that records the register offsets it saw.
#[derive(Debug, Default)]
struct Fake {
    kind: &'static str,
    seen: Vec<u64>,
}

fn table() -> DeviceTable<Fake> {
    let mut t = DeviceTable::new();
    t.add(
        "console",
        0,
        Fake {
            kind: "console",
            ..Fake::default()
        },
    )
    .unwrap();
    t.add(
        "blk0",
        3,
        Fake {
            kind: "block",
            ..Fake::default()
        },
    )
    .unwrap();
    t
}

#[test]
fn two_devices_appear_in_the_device_tree_with_slot_and_irq() {
    let t = table();
    let slots = t.slots();
    let blob = fdt::build(&FdtConfig {
        ram_size: 64 << 20,
        bootargs: "console=hvc0",
        initrd: None,
        virtio_slots: &slots,
        pl011: false,
    })
    .unwrap();
    let tree = Fdt::new(&blob).unwrap();
    let nodes: Vec<_> = tree
        .all_nodes()
        .filter(|n| n.name.starts_with("virtio_mmio@"))
        .collect();
    assert_eq!(nodes.len(), 2);
    for e in t.entries() {
        let node = tree
            .find_node(&format!("/virtio_mmio@{:x}", e.base))
            .unwrap_or_else(|| panic!("no node for '{}' at {:#x}", e.name, e.base));
        let reg = node.reg().unwrap().next().unwrap();
        assert_eq!(reg.starting_address as u64, e.base);
        assert_eq!(reg.size, Some(layout::VIRTIO_MMIO_STRIDE as usize));
        let irq = node.property("interrupts").unwrap().value;
        let cells: Vec<u32> = irq
            .chunks(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
            .collect();
        // <GIC_SPI spi edge>: INTID = 32 + spi is the one the VMM raises for the entry.
        assert_eq!(cells[0], 0);
        assert_eq!(32 + cells[1], e.intid, "device '{}'", e.name);
    }
}

#[test]
fn accesses_are_dispatched_to_the_right_device() {
    let mut t = table();
    let (console, blk) = (t.entries()[0].base, t.entries()[1].base);
    for (ipa, want) in [
        (blk + 0x70, "block"),
        (console + 0x50, "console"),
        (blk + 0x100, "block"),
    ] {
        match t.dispatch(ipa) {
            Some(Target::Virtio(e, off)) => {
                assert_eq!(e.backend.kind, want, "ipa {ipa:#x}");
                e.backend.seen.push(off);
            }
            other => panic!("ipa {ipa:#x} went to {other:?}"),
        }
    }
    assert_eq!(t.entries()[0].backend.seen, [0x50]);
    assert_eq!(t.entries()[1].backend.seen, [0x70, 0x100]);
    // The slot between them has no device.
    let empty = layout::virtio_mmio_base(1).unwrap();
    assert!(matches!(t.dispatch(empty), Some(Target::EmptySlot(1, 0))));
}
