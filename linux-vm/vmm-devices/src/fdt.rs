//! The guest's device tree blob (DTB, format version 17), generated from a [`FdtConfig`].
//!
//! It describes the platform of [`crate::layout`] the way QEMU's `virt` machine does
//! for GICv3, so the stock arm64 kernel finds: RAM, one `cpu@0` started by PSCI over
//! HVC, the architected timer, the GICv3 (`intc@8000000`), optionally the PL011 with
//! its 24 MHz fixed clock, and one `virtio_mmio@…` node per configured slot.
//! The blob is written with rust-vmm's `vm-fdt` (big-endian structure block, memory
//! reservation block with only its terminator, strings block, 4-byte-aligned
//! properties).

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use vm_fdt::FdtWriter;

use crate::layout;

/// Largest blob [`build`] produces (the VMM reserves this much for it).
pub const MAX_DTB_SIZE: usize = 64 << 10;
const _: () = assert!(MAX_DTB_SIZE as u64 <= crate::image::MAX_DTB_SIZE);

/// Longest command line arm64 Linux keeps whole (its COMMAND_LINE_SIZE is 2048,
/// NUL included); longer ones would be cut silently, so they are refused.
pub const MAX_BOOTARGS: usize = 2047;

/// The guest kernel's command line (`/chosen/bootargs`): the console is the virtio
/// console (`hvc0`; kernel messages from before it came up stay in the kernel log), a
/// panic reboots after 1 s, and the initramfs' `/init` runs. No `earlycon`: an early
/// console on the emulated PL011 costs a VM exit per character (boot took about twice
/// as long with it).
pub const GUEST_BOOTARGS: &str = "console=hvc0 panic=1 rdinit=/init";

/// Phandle of the GIC node (the root's `interrupt-parent`).
pub const GIC_PHANDLE: u32 = 1;
/// Phandle of the PL011's fixed clock.
pub const CLOCK_PHANDLE: u32 = 2;

/// Device-tree interrupt specifier type for SPIs / PPIs (first cell).
const GIC_SPI: u32 = 0;
const GIC_PPI: u32 = 1;
/// Trigger flags (third cell).
const IRQ_EDGE_RISING: u32 = 1;
const IRQ_LEVEL_HIGH: u32 = 4;

/// What goes into the guest's device tree.
#[derive(Clone, Copy, Debug)]
pub struct FdtConfig<'a> {
    /// Bytes of RAM at [`layout::RAM_BASE`].
    pub ram_size: u64,
    /// Kernel command line (`/chosen/bootargs`).
    pub bootargs: &'a str,
    /// Initrd start and end guest-physical addresses (end exclusive), if any.
    pub initrd: Option<(u64, u64)>,
    /// virtio-mmio slots (0..32) that have a device; each gets a node.
    pub virtio_slots: &'a [u32],
    /// Describe the PL011 (and make it `stdout-path`). `earlycon=pl011,0x9000000`
    /// works without it.
    pub pl011: bool,
}

/// Why no device tree could be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// RAM size is 0 or RAM would end past the 64-bit address space.
    BadRamSize(u64),
    /// A virtio-mmio slot number is 32 or more.
    SlotOutOfRange(u32),
    /// The same virtio-mmio slot is listed twice.
    DuplicateSlot(u32),
    /// The initrd's end is before its start, or it is not inside RAM.
    BadInitrd {
        /// Start address.
        start: u64,
        /// End address.
        end: u64,
    },
    /// The command line contains a NUL byte.
    BadBootargs,
    /// The command line is longer than arm64 Linux keeps (COMMAND_LINE_SIZE - 1).
    BootargsTooLong(usize),
    /// The blob would exceed [`MAX_DTB_SIZE`].
    TooLarge(usize),
    /// The FDT writer refused (a bug in this module if it ever happens).
    Writer(String),
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FdtError::BadRamSize(size) => write!(f, "guest RAM size {size:#x} is invalid"),
            FdtError::SlotOutOfRange(n) => write!(
                f,
                "virtio-mmio slot {n} does not exist (slots are 0..{})",
                layout::VIRTIO_MMIO_SLOTS
            ),
            FdtError::DuplicateSlot(n) => write!(f, "virtio-mmio slot {n} is listed twice"),
            FdtError::BadInitrd { start, end } => {
                write!(f, "initrd {start:#x}..{end:#x} is reversed or outside guest RAM")
            }
            FdtError::BadBootargs => write!(f, "kernel command line contains a NUL byte"),
            FdtError::BootargsTooLong(len) => write!(
                f,
                "kernel command line is {len} bytes; arm64 Linux keeps at most {}",
                MAX_BOOTARGS
            ),
            FdtError::TooLarge(size) => {
                write!(f, "device tree of {size} bytes exceeds {MAX_DTB_SIZE} bytes")
            }
            FdtError::Writer(e) => write!(f, "device tree writer: {e}"),
        }
    }
}

impl From<vm_fdt::Error> for FdtError {
    fn from(e: vm_fdt::Error) -> Self {
        FdtError::Writer(alloc::format!("{e}"))
    }
}

/// Path of the PL011 node (the `stdout-path` when it is present).
pub const PL011_PATH: &str = "/pl011@9000000";

/// `reg` value of one (address, size) pair with 2 address and 2 size cells.
fn reg2(base: u64, size: u64) -> [u64; 2] {
    [base, size]
}

/// Builds the device tree blob for `config`.
pub fn build(config: &FdtConfig<'_>) -> Result<Vec<u8>, FdtError> {
    let ram_end = layout::RAM_BASE
        .checked_add(config.ram_size)
        .filter(|_| config.ram_size != 0)
        .ok_or(FdtError::BadRamSize(config.ram_size))?;
    let mut slots = config.virtio_slots.to_vec();
    slots.sort_unstable();
    for pair in slots.windows(2) {
        if pair[0] == pair[1] {
            return Err(FdtError::DuplicateSlot(pair[0]));
        }
    }
    if let Some(&bad) = slots.iter().find(|&&n| n >= layout::VIRTIO_MMIO_SLOTS) {
        return Err(FdtError::SlotOutOfRange(bad));
    }
    if let Some((start, end)) = config.initrd {
        if end < start || start < layout::RAM_BASE || end > ram_end {
            return Err(FdtError::BadInitrd { start, end });
        }
    }
    if config.bootargs.contains('\0') {
        return Err(FdtError::BadBootargs);
    }
    if config.bootargs.len() > MAX_BOOTARGS {
        return Err(FdtError::BootargsTooLong(config.bootargs.len()));
    }

    let mut w = FdtWriter::new()?;
    let root = w.begin_node("")?;
    w.property_string("compatible", "linux,dummy-virt")?;
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_u32("interrupt-parent", GIC_PHANDLE)?;

    let chosen = w.begin_node("chosen")?;
    w.property_string("bootargs", config.bootargs)?;
    if config.pl011 {
        w.property_string("stdout-path", PL011_PATH)?;
    }
    if let Some((start, end)) = config.initrd {
        w.property_u64("linux,initrd-start", start)?;
        w.property_u64("linux,initrd-end", end)?;
    }
    w.end_node(chosen)?;

    let memory = w.begin_node(&alloc::format!("memory@{:x}", layout::RAM_BASE))?;
    w.property_string("device_type", "memory")?;
    w.property_array_u64("reg", &reg2(layout::RAM_BASE, config.ram_size))?;
    w.end_node(memory)?;

    let cpus = w.begin_node("cpus")?;
    w.property_u32("#address-cells", 1)?;
    w.property_u32("#size-cells", 0)?;
    let cpu = w.begin_node("cpu@0")?;
    w.property_string("device_type", "cpu")?;
    w.property_string("compatible", "arm,arm-v8")?;
    w.property_u32("reg", layout::VCPU0_MPIDR_AFFINITY as u32)?;
    w.property_string("enable-method", "psci")?;
    w.end_node(cpu)?;
    w.end_node(cpus)?;

    let psci = w.begin_node("psci")?;
    w.property_string_list(
        "compatible",
        ["arm,psci-1.0", "arm,psci-0.2"].map(String::from).to_vec(),
    )?;
    w.property_string("method", "hvc")?;
    w.end_node(psci)?;

    let timer = w.begin_node("timer")?;
    w.property_string("compatible", "arm,armv8-timer")?;
    let mut irqs = Vec::new();
    for ppi in [
        layout::timer::SECURE_PHYS_PPI,
        layout::timer::NONSECURE_PHYS_PPI,
        layout::timer::VIRT_PPI,
        layout::timer::HYP_PPI,
    ] {
        irqs.extend([GIC_PPI, ppi, IRQ_LEVEL_HIGH]);
    }
    w.property_array_u32("interrupts", &irqs)?;
    w.property_null("always-on")?;
    w.end_node(timer)?;

    let intc = w.begin_node(&alloc::format!("intc@{:x}", layout::GICD_BASE))?;
    w.property_string("compatible", "arm,gic-v3")?;
    w.property_u32("#interrupt-cells", 3)?;
    w.property_null("interrupt-controller")?;
    // #address-cells/#size-cells/ranges as QEMU has them (for ITS children; also
    // keeps dtc's interrupt_provider check quiet).
    w.property_u32("#address-cells", 2)?;
    w.property_u32("#size-cells", 2)?;
    w.property_null("ranges")?;
    w.property_u32("#redistributor-regions", 1)?;
    let mut gic_reg = Vec::new();
    gic_reg.extend(reg2(layout::GICD_BASE, layout::GICD_SIZE));
    gic_reg.extend(reg2(layout::GICR_BASE, layout::GICR_SIZE));
    w.property_array_u64("reg", &gic_reg)?;
    w.property_phandle(GIC_PHANDLE)?;
    w.end_node(intc)?;

    if config.pl011 {
        let clock = w.begin_node("apb-pclk")?;
        w.property_string("compatible", "fixed-clock")?;
        w.property_u32("#clock-cells", 0)?;
        w.property_u32("clock-frequency", layout::PL011_CLOCK_HZ)?;
        w.property_string("clock-output-names", "clk24mhz")?;
        w.property_phandle(CLOCK_PHANDLE)?;
        w.end_node(clock)?;

        let uart = w.begin_node(&PL011_PATH[1..])?;
        w.property_string_list("compatible", ["arm,pl011", "arm,primecell"].map(String::from).to_vec())?;
        w.property_array_u64("reg", &reg2(layout::PL011_BASE, layout::PL011_SIZE))?;
        w.property_array_u32("interrupts", &[GIC_SPI, layout::PL011_SPI, IRQ_LEVEL_HIGH])?;
        w.property_array_u32("clocks", &[CLOCK_PHANDLE, CLOCK_PHANDLE])?;
        w.property_string_list("clock-names", ["uartclk", "apb_pclk"].map(String::from).to_vec())?;
        w.end_node(uart)?;
    }

    for &n in &slots {
        // In range: checked above.
        let base = layout::virtio_mmio_base(n).unwrap_or_default();
        let node = w.begin_node(&alloc::format!("virtio_mmio@{base:x}"))?;
        w.property_string("compatible", "virtio,mmio")?;
        w.property_array_u64("reg", &reg2(base, layout::VIRTIO_MMIO_STRIDE))?;
        w.property_array_u32(
            "interrupts",
            &[GIC_SPI, layout::VIRTIO_MMIO_SPI_BASE + n, IRQ_EDGE_RISING],
        )?;
        w.property_null("dma-coherent")?;
        w.end_node(node)?;
    }

    w.end_node(root)?;
    let blob = w.finish()?;
    if blob.len() > MAX_DTB_SIZE {
        return Err(FdtError::TooLarge(blob.len()));
    }
    Ok(blob)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::fdt::node::FdtNode;
    use ::fdt::Fdt;

    const BOOTARGS: &str = "console=ttyAMA0 earlycon=pl011,0x9000000 rdinit=/init";

    fn full_config() -> FdtConfig<'static> {
        FdtConfig {
            ram_size: 256 << 20,
            bootargs: BOOTARGS,
            initrd: Some((0x4f00_0000, 0x4f10_da52)),
            virtio_slots: &[3, 0],
            pl011: true,
        }
    }

    fn minimal_config() -> FdtConfig<'static> {
        FdtConfig {
            ram_size: 64 << 20,
            bootargs: "",
            initrd: None,
            virtio_slots: &[],
            pl011: false,
        }
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u32s(node: &FdtNode<'_, '_>, name: &str) -> Vec<u32> {
        let v = node
            .property(name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.name))
            .value;
        assert_eq!(v.len() % 4, 0, "{name} is not a cell array");
        v.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }

    fn u64s(node: &FdtNode<'_, '_>, name: &str) -> Vec<u64> {
        let v = node.property(name).unwrap().value;
        assert_eq!(v.len() % 8, 0, "{name} is not a u64 array");
        v.chunks(8).map(|c| u64::from_be_bytes(c.try_into().unwrap())).collect()
    }

    fn strs<'a>(node: &FdtNode<'_, 'a>, name: &str) -> Vec<&'a str> {
        let v = node
            .property(name)
            .unwrap_or_else(|| panic!("{} has no {name}", node.name))
            .value;
        assert_eq!(v.last(), Some(&0), "{name} is not NUL-terminated");
        v[..v.len() - 1]
            .split(|&b| b == 0)
            .map(|s| core::str::from_utf8(s).unwrap())
            .collect()
    }

    fn empty(node: &FdtNode<'_, '_>, name: &str) -> bool {
        node.property(name).is_some_and(|p| p.value.is_empty())
    }

    fn prop_names<'a>(node: &FdtNode<'_, 'a>) -> Vec<&'a str> {
        let mut v: Vec<&str> = node.properties().map(|p| p.name).collect();
        v.sort_unstable();
        v
    }

    fn node<'b, 'a>(fdt: &'b Fdt<'a>, path: &str) -> FdtNode<'b, 'a> {
        fdt.find_node(path).unwrap_or_else(|| panic!("no node {path}"))
    }

    #[test]
    fn header_and_blocks_are_well_formed() {
        let blob = build(&full_config()).unwrap();
        assert_eq!(be32(&blob, 0), 0xd00d_feed, "magic");
        assert_eq!(be32(&blob, 4) as usize, blob.len(), "totalsize");
        let (off_struct, off_strings, off_rsv) = (
            be32(&blob, 8) as usize,
            be32(&blob, 12) as usize,
            be32(&blob, 16) as usize,
        );
        assert_eq!(be32(&blob, 20), 17, "version");
        assert_eq!(be32(&blob, 24), 16, "last compatible version");
        assert_eq!(be32(&blob, 28), 0, "boot_cpuid_phys");
        assert_eq!(off_rsv % 8, 0);
        assert_eq!(
            &blob[off_rsv..off_rsv + 16],
            &[0u8; 16],
            "reservation block is just its terminator"
        );
        assert_eq!(off_struct % 4, 0);
        let size_struct = be32(&blob, 36) as usize;
        assert_eq!(size_struct % 4, 0);
        assert_eq!(be32(&blob, off_struct), 1, "FDT_BEGIN_NODE first");
        assert_eq!(be32(&blob, off_struct + size_struct - 4), 9, "FDT_END last");
        assert_eq!(off_strings, off_struct + size_struct);
        assert_eq!(off_strings + be32(&blob, 32) as usize, blob.len());
        assert!(blob.len() <= MAX_DTB_SIZE);
        let fdt = Fdt::new(&blob).unwrap();
        assert_eq!(fdt.total_size(), blob.len());
        assert_eq!(fdt.memory_reservations().count(), 0);
    }

    #[test]
    fn every_node_and_property() {
        let blob = build(&full_config()).unwrap();
        let fdt = Fdt::new(&blob).unwrap();

        let mut names: Vec<&str> = fdt.root().properties().map(|p| p.name).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["#address-cells", "#size-cells", "compatible", "interrupt-parent"]
        );
        let root = node(&fdt, "/");
        assert_eq!(strs(&root, "compatible"), ["linux,dummy-virt"]);
        assert_eq!(u32s(&root, "#address-cells"), [2]);
        assert_eq!(u32s(&root, "#size-cells"), [2]);
        assert_eq!(u32s(&root, "interrupt-parent"), [GIC_PHANDLE]);
        let mut children: Vec<&str> = root.children().map(|c| c.name).collect();
        children.sort_unstable();
        assert_eq!(
            children,
            [
                "apb-pclk",
                "chosen",
                "cpus",
                "intc@8000000",
                "memory@40000000",
                "pl011@9000000",
                "psci",
                "timer",
                "virtio_mmio@a000000",
                "virtio_mmio@a000600",
            ]
        );

        let chosen = node(&fdt, "/chosen");
        assert_eq!(
            prop_names(&chosen),
            ["bootargs", "linux,initrd-end", "linux,initrd-start", "stdout-path"]
        );
        assert_eq!(fdt.chosen().bootargs(), Some(BOOTARGS));
        assert_eq!(strs(&chosen, "stdout-path"), ["/pl011@9000000"]);
        assert_eq!(fdt.chosen().stdout().map(|n| n.name), Some("pl011@9000000"));
        assert_eq!(u64s(&chosen, "linux,initrd-start"), [0x4f00_0000]);
        assert_eq!(u64s(&chosen, "linux,initrd-end"), [0x4f10_da52]);

        let mem = node(&fdt, "/memory@40000000");
        assert_eq!(prop_names(&mem), ["device_type", "reg"]);
        assert_eq!(strs(&mem, "device_type"), ["memory"]);
        assert_eq!(u64s(&mem, "reg"), [0x4000_0000, 256 << 20]);
        let region = fdt.memory().regions().next().unwrap();
        assert_eq!(
            (region.starting_address as u64, region.size),
            (0x4000_0000, Some(256 << 20))
        );

        let cpus = node(&fdt, "/cpus");
        assert_eq!(prop_names(&cpus), ["#address-cells", "#size-cells"]);
        assert_eq!(
            (u32s(&cpus, "#address-cells"), u32s(&cpus, "#size-cells")),
            (vec![1], vec![0])
        );
        assert_eq!(cpus.children().count(), 1);
        let cpu = node(&fdt, "/cpus/cpu@0");
        assert_eq!(prop_names(&cpu), ["compatible", "device_type", "enable-method", "reg"]);
        assert_eq!(strs(&cpu, "compatible"), ["arm,arm-v8"]);
        assert_eq!(strs(&cpu, "device_type"), ["cpu"]);
        assert_eq!(u32s(&cpu, "reg"), [0]);
        assert_eq!(strs(&cpu, "enable-method"), ["psci"]);
        assert_eq!(fdt.cpus().map(|c| c.ids().first()).collect::<Vec<_>>(), [0]);

        let psci = node(&fdt, "/psci");
        assert_eq!(prop_names(&psci), ["compatible", "method"]);
        assert_eq!(strs(&psci, "compatible"), ["arm,psci-1.0", "arm,psci-0.2"]);
        assert_eq!(strs(&psci, "method"), ["hvc"]);

        let timer = node(&fdt, "/timer");
        assert_eq!(prop_names(&timer), ["always-on", "compatible", "interrupts"]);
        assert_eq!(strs(&timer, "compatible"), ["arm,armv8-timer"]);
        assert_eq!(u32s(&timer, "interrupts"), [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]);
        assert!(empty(&timer, "always-on"));

        let gic = node(&fdt, "/intc@8000000");
        assert_eq!(
            prop_names(&gic),
            [
                "#address-cells",
                "#interrupt-cells",
                "#redistributor-regions",
                "#size-cells",
                "compatible",
                "interrupt-controller",
                "phandle",
                "ranges",
                "reg",
            ]
        );
        assert_eq!(strs(&gic, "compatible"), ["arm,gic-v3"]);
        assert_eq!(u32s(&gic, "#interrupt-cells"), [3]);
        assert!(empty(&gic, "interrupt-controller"));
        assert!(empty(&gic, "ranges"));
        assert_eq!(u32s(&gic, "#redistributor-regions"), [1]);
        assert_eq!(u64s(&gic, "reg"), [0x0800_0000, 0x1_0000, 0x080a_0000, 0x2_0000]);
        assert_eq!(u32s(&gic, "phandle"), [GIC_PHANDLE]);
        assert_eq!(fdt.find_phandle(GIC_PHANDLE).map(|n| n.name), Some("intc@8000000"));

        let clk = node(&fdt, "/apb-pclk");
        assert_eq!(
            prop_names(&clk),
            [
                "#clock-cells",
                "clock-frequency",
                "clock-output-names",
                "compatible",
                "phandle"
            ]
        );
        assert_eq!(strs(&clk, "compatible"), ["fixed-clock"]);
        assert_eq!(u32s(&clk, "#clock-cells"), [0]);
        assert_eq!(u32s(&clk, "clock-frequency"), [24_000_000]);
        assert_eq!(u32s(&clk, "phandle"), [CLOCK_PHANDLE]);

        let uart = node(&fdt, "/pl011@9000000");
        assert_eq!(
            prop_names(&uart),
            ["clock-names", "clocks", "compatible", "interrupts", "reg"]
        );
        assert_eq!(strs(&uart, "compatible"), ["arm,pl011", "arm,primecell"]);
        assert_eq!(u64s(&uart, "reg"), [0x0900_0000, 0x1000]);
        assert_eq!(u32s(&uart, "interrupts"), [0, 1, 4]);
        assert_eq!(u32s(&uart, "clocks"), [CLOCK_PHANDLE, CLOCK_PHANDLE]);
        assert_eq!(strs(&uart, "clock-names"), ["uartclk", "apb_pclk"]);
        // No node overrides the root's interrupt-parent (the GIC).
        assert!(fdt
            .all_nodes()
            .skip(1)
            .all(|n| n.property("interrupt-parent").is_none()));
        assert_eq!(root.interrupt_parent().map(|n| n.name), Some("intc@8000000"));

        for (n, path) in [(0u32, "/virtio_mmio@a000000"), (3, "/virtio_mmio@a000600")] {
            let v = node(&fdt, path);
            assert_eq!(prop_names(&v), ["compatible", "dma-coherent", "interrupts", "reg"]);
            assert_eq!(strs(&v, "compatible"), ["virtio,mmio"]);
            assert_eq!(u64s(&v, "reg"), [0x0a00_0000 + u64::from(n) * 0x200, 0x200]);
            assert_eq!(u32s(&v, "interrupts"), [0, 16 + n, 1]);
            assert!(empty(&v, "dma-coherent"));
        }
    }

    #[test]
    fn guest_command_line_fits_and_has_no_early_console() {
        assert!(GUEST_BOOTARGS.len() <= MAX_BOOTARGS);
        assert!(!GUEST_BOOTARGS.contains("earlycon"));
        assert!(GUEST_BOOTARGS.split(' ').any(|a| a == "console=hvc0"));
        let blob = build(&FdtConfig {
            bootargs: GUEST_BOOTARGS,
            ..full_config()
        })
        .unwrap();
        assert_eq!(Fdt::new(&blob).unwrap().chosen().bootargs(), Some(GUEST_BOOTARGS));
    }

    #[test]
    fn minimal_tree_leaves_out_optional_parts() {
        let blob = build(&minimal_config()).unwrap();
        let fdt = Fdt::new(&blob).unwrap();
        let chosen = node(&fdt, "/chosen");
        assert_eq!(prop_names(&chosen), ["bootargs"]);
        assert_eq!(fdt.chosen().bootargs(), Some(""));
        assert!(fdt.find_node("/pl011@9000000").is_none());
        assert!(fdt.find_node("/apb-pclk").is_none());
        assert_eq!(fdt.all_nodes().filter(|n| n.name.starts_with("virtio_mmio")).count(), 0);
        assert_eq!(u64s(&node(&fdt, "/memory@40000000"), "reg"), [0x4000_0000, 64 << 20]);
    }

    #[test]
    fn all_32_slots_fit() {
        let slots: Vec<u32> = (0..32).rev().collect();
        let long_args = "x".repeat(MAX_BOOTARGS);
        let config = FdtConfig {
            virtio_slots: &slots,
            bootargs: &long_args,
            ..full_config()
        };
        let blob = build(&config).unwrap();
        assert!(blob.len() <= MAX_DTB_SIZE);
        let fdt = Fdt::new(&blob).unwrap();
        for n in 0..32u32 {
            let base = layout::virtio_mmio_base(n).unwrap();
            let v = node(&fdt, &format!("/virtio_mmio@{base:x}"));
            assert_eq!(u32s(&v, "interrupts"), [0, 16 + n, 1]);
            // SPI 16 + n is INTID 48 + n, as the VMM raises it.
            assert_eq!(32 + u32s(&v, "interrupts")[1], layout::virtio_mmio_intid(n).unwrap());
        }
        // Nodes come out in slot order whatever the input order.
        let order: Vec<&str> = fdt
            .all_nodes()
            .filter(|n| n.name.starts_with("virtio"))
            .map(|n| n.name)
            .collect();
        assert_eq!(order.first(), Some(&"virtio_mmio@a000000"));
        assert_eq!(order.last(), Some(&"virtio_mmio@a003e00"));
    }

    #[test]
    fn bad_configs_get_clear_errors() {
        let base = full_config();
        let err = |c: FdtConfig<'_>| build(&c).unwrap_err();
        assert_eq!(
            err(FdtConfig {
                virtio_slots: &[32],
                ..base
            }),
            FdtError::SlotOutOfRange(32)
        );
        assert_eq!(
            err(FdtConfig {
                virtio_slots: &[1, 2, 1],
                ..base
            }),
            FdtError::DuplicateSlot(1)
        );
        assert_eq!(err(FdtConfig { ram_size: 0, ..base }), FdtError::BadRamSize(0));
        assert_eq!(
            err(FdtConfig {
                ram_size: u64::MAX,
                ..base
            }),
            FdtError::BadRamSize(u64::MAX)
        );
        assert_eq!(
            err(FdtConfig {
                initrd: Some((0x4100_0000, 0x4000_0000)),
                ..base
            }),
            FdtError::BadInitrd {
                start: 0x4100_0000,
                end: 0x4000_0000
            }
        );
        assert!(matches!(
            err(FdtConfig {
                initrd: Some((0x1000, 0x2000)),
                ..base
            }),
            FdtError::BadInitrd { .. }
        ));
        assert!(matches!(
            err(FdtConfig {
                initrd: Some((0x4000_0000, 0x5000_0001)),
                ..base
            }),
            FdtError::BadInitrd { .. }
        ));
        assert_eq!(
            err(FdtConfig {
                bootargs: "a\0b",
                ..base
            }),
            FdtError::BadBootargs
        );
        let long = "y".repeat(MAX_BOOTARGS + 1);
        assert_eq!(
            err(FdtConfig {
                bootargs: &long,
                ..base
            }),
            FdtError::BootargsTooLong(2048)
        );
        assert!(FdtError::SlotOutOfRange(40).to_string().contains("slot 40"));
        // An initrd ending exactly at the end of RAM is fine.
        assert!(build(&FdtConfig {
            initrd: Some((0x4f00_0000, 0x5000_0000)),
            ..base
        })
        .is_ok());
    }

    #[test]
    fn arbitrary_configs_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let slots: Vec<u32> = (0..(x % 40)).map(|k| ((x >> k) % 36) as u32).collect();
            let args: String = (0..(x >> 20) % 64)
                .map(|k| char::from(((x >> (k % 50)) & 0x7f) as u8))
                .collect();
            let config = FdtConfig {
                ram_size: x >> (x % 64),
                bootargs: &args,
                initrd: (x & 1 == 0).then(|| (x.rotate_left(5) >> 30, x.rotate_left(9) >> 30)),
                virtio_slots: &slots,
                pl011: x & 2 == 0,
            };
            if let Ok(blob) = build(&config) {
                assert!(Fdt::new(&blob).is_ok());
            }
        }
    }
}
