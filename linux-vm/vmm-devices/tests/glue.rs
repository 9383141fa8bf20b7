//! The VMM's use of the device models end to end: boot layout and device tree from a
//! kernel header, then guest MMIO faults and HVCs dispatched the way the VMM PD does.

use vcpos_abi::esr::instruction_length;
use vcpos_vmm_devices::fdt::{self, FdtConfig};
use vcpos_vmm_devices::image::{boot_layout, ImageHeader};
use vcpos_vmm_devices::layout::{self, Device};
use vcpos_vmm_devices::mmio::{MmioAccess, MmioError};
use vcpos_vmm_devices::pl011::Pl011;
use vcpos_vmm_devices::psci::{self, Action};
use vcpos_vmm_devices::vgic::{PendingIrq, Region, Vgic};

/// A stand-in for the VMM: guest registers, the device models, console output and
/// interrupts handed to the kernel.
struct Vmm {
    regs: [u64; 33], // x0..x30, SP (unused), PC
    vgic: Vgic,
    uart: Pl011,
    console: Vec<u8>,
    injected: Vec<PendingIrq>,
}

const PC: usize = 32;

impl Vmm {
    fn new() -> Self {
        Vmm {
            regs: [0; 33],
            vgic: Vgic::new(layout::NUM_SPIS, layout::VCPU0_MPIDR_AFFINITY).unwrap(),
            uart: Pl011::new(),
            console: Vec::new(),
            injected: Vec::new(),
        }
    }

    /// What the VMM does with a VM fault message (IP, ADDR, FSR).
    fn vm_fault(&mut self, ipa: u64, esr: u64) -> Result<(), MmioError> {
        let access = MmioAccess::decode(esr)?;
        let Some((device, offset)) = layout::device_at(ipa) else {
            panic!("guest touched {ipa:#x}: no device there (VMM stops the VM)");
        };
        if access.write {
            let value = access.store_value(access.reg.map_or(0, |r| self.regs[r as usize]));
            match device {
                Device::GicDistributor => self.vgic.write(Region::Distributor, offset, access.size, value),
                Device::GicRedistributor => self.vgic.write(Region::Redistributor, offset, access.size, value),
                Device::Pl011 => self.console.extend(self.uart.write(offset, access.size, value)),
                Device::VirtioMmio(_) => {}
            }
            while let Some(irq) = self.vgic.take_pending() {
                self.injected.push(irq);
            }
        } else {
            let value = match device {
                Device::GicDistributor => self.vgic.read(Region::Distributor, offset, access.size),
                Device::GicRedistributor => self.vgic.read(Region::Redistributor, offset, access.size),
                Device::Pl011 => self.uart.read(offset, access.size),
                Device::VirtioMmio(_) => 0,
            };
            if let Some(r) = access.reg {
                self.regs[r as usize] = access.load_result(value);
            }
        }
        self.regs[PC] += instruction_length(esr);
        Ok(())
    }

    /// What the VMM does with an HVC (PC already advanced by the kernel).
    fn hvc(&mut self) -> Action {
        let x = [self.regs[0], self.regs[1], self.regs[2], self.regs[3]];
        let out = psci::handle(x, layout::VCPU0_MPIDR_AFFINITY);
        self.regs[0] = out.x0;
        out.action
    }
}

/// Data-abort ESR: EC 0x24, IL, ISV, SAS, SSE, SRT, SF, WnR.
fn esr(size: u8, sign: bool, reg: u64, sf: bool, write: bool) -> u64 {
    let sas = u64::from(size.trailing_zeros());
    (0x24 << 26)
        | (1 << 25)
        | (1 << 24)
        | (sas << 22)
        | (u64::from(sign) << 21)
        | (reg << 16)
        | (u64::from(sf) << 15)
        | (u64::from(write) << 6)
        | 0x07
}

#[test]
fn boot_layout_feeds_the_device_tree() {
    let mut image = vec![0u8; 0x10_0000];
    image[16..24].copy_from_slice(&0x20_0000u64.to_le_bytes()); // image_size 2 MiB
    image[24..32].copy_from_slice(&0xau64.to_le_bytes());
    image[0x38..0x3c].copy_from_slice(b"ARM\x64");
    let header = ImageHeader::parse(&image).unwrap();
    let ram = 128 << 20;
    let boot = boot_layout(&header, layout::RAM_BASE, ram, Some(5000)).unwrap();
    let dtb = fdt::build(&FdtConfig {
        ram_size: ram,
        bootargs: "console=ttyAMA0",
        initrd: boot.initrd,
        virtio_slots: &[0],
        pl011: true,
    })
    .unwrap();
    assert_eq!(boot.kernel, layout::RAM_BASE);
    assert!(boot.dtb + dtb.len() as u64 <= layout::RAM_BASE + ram);
    assert_eq!(boot.dtb % (2 << 20), 0);
    let parsed = ::fdt::Fdt::new(&dtb).unwrap();
    let chosen = parsed.find_node("/chosen").unwrap();
    let start = chosen.property("linux,initrd-start").unwrap().value;
    assert_eq!(start, boot.initrd.unwrap().0.to_be_bytes());
}

#[test]
fn guest_mmio_and_hvc_through_the_models() {
    let mut vmm = Vmm::new();
    let gicd = layout::GICD_BASE;
    let gicr = layout::GICR_BASE;

    // ldr w1, [GICD_PIDR2]
    vmm.vm_fault(gicd + 0xffe8, esr(4, false, 1, false, false)).unwrap();
    assert_eq!(vmm.regs[1], 0x3b);
    assert_eq!(vmm.regs[PC], 4);
    // ldr x2, [GICR_TYPER]
    vmm.vm_fault(gicr + 8, esr(8, false, 2, true, false)).unwrap();
    assert_eq!(vmm.regs[2] & (1 << 4), 1 << 4);
    // Wake the redistributor: str wzr, [GICR_WAKER]; then ldr w3.
    vmm.vm_fault(gicr + 0x14, esr(4, false, 31, false, true)).unwrap();
    vmm.vm_fault(gicr + 0x14, esr(4, false, 3, false, false)).unwrap();
    assert_eq!(vmm.regs[3], 0);
    // Enable group 1, make SPI 48 (virtio slot 0) group 1 and enable it.
    vmm.regs[4] = 0x13;
    vmm.vm_fault(gicd, esr(4, false, 4, false, true)).unwrap();
    vmm.regs[5] = 1 << 16;
    vmm.vm_fault(gicd + 0x84, esr(4, false, 5, false, true)).unwrap();
    vmm.vm_fault(gicd + 0x104, esr(4, false, 5, false, true)).unwrap();
    assert!(vmm.vgic.spi_enabled(layout::virtio_mmio_intid(0).unwrap()));
    // The device raises it; the VMM hands it to the kernel.
    assert!(vmm.vgic.raise(48));
    assert_eq!(vmm.vgic.take_pending().map(|p| p.intid), Some(48));
    // Guest pends SPI 48 itself (irq_retrigger): delivered after the write.
    vmm.vm_fault(gicd + 0x204, esr(4, false, 5, false, true)).unwrap();
    assert_eq!(vmm.injected.last().map(|p| p.intid), Some(48));

    // Early console: strb w6, [UARTDR]; ldrh w7, [UARTFR]; ldrsb x8 of the FR byte.
    for &c in b"hi\n" {
        vmm.regs[6] = 0xffff_ff00 | u64::from(c);
        vmm.vm_fault(layout::PL011_BASE, esr(1, false, 6, false, true)).unwrap();
    }
    assert_eq!(vmm.console, b"hi\n");
    vmm.vm_fault(layout::PL011_BASE + 0x18, esr(2, false, 7, false, false))
        .unwrap();
    assert_eq!(vmm.regs[7], 0x90);
    vmm.vm_fault(layout::PL011_BASE + 0x18, esr(1, true, 8, true, false))
        .unwrap();
    assert_eq!(vmm.regs[8], 0xffff_ffff_ffff_ff90, "LDRSB sign-extends 0x90");

    // A load/store pair has no syndrome: a clear error, PC untouched.
    let pc = vmm.regs[PC];
    let no_isv = esr(4, false, 1, false, false) & !(1 << 24);
    assert_eq!(vmm.vm_fault(gicd, no_isv), Err(MmioError::NoSyndrome));
    assert_eq!(vmm.regs[PC], pc);

    // PSCI over HVC.
    vmm.regs[0] = 0x8400_0000;
    assert_eq!(vmm.hvc(), Action::Continue);
    assert_eq!(vmm.regs[0], 0x1_0001);
    vmm.regs[0] = 0x8400_0008;
    assert_eq!(vmm.hvc(), Action::PowerOff);
}
