//! Booting the guest: kernel `Image`, initramfs and a generated device tree into guest
//! RAM, then vCPU 0 started at the kernel with x0 = the device tree (Linux's arm64
//! boot protocol: EL1, MMU off, interrupts masked).

use alloc::format;

use sel4_microkit::debug_println;
use vcpos_abi::vcpu::reg;
use vcpos_virtio::GuestMemory;
use vcpos_vmm_devices::fdt::{self, FdtConfig};
use vcpos_vmm_devices::image::{boot_layout, ImageHeader, HEADER_SIZE};
use vcpos_vmm_devices::layout;
use vcpos_vmm_devices::vgic::Vgic;

use crate::{Vmm, VmmError, VCPU};

/// virtio-mmio `Status` register offset.
const STATUS_REGISTER: u64 = 0x070;

impl Vmm {
    /// (Re)boots the guest from the pristine kernel and initramfs, with fresh device
    /// models. Console input typed meanwhile is kept.
    pub fn boot_guest(&mut self) -> Result<(), VmmError> {
        let err = |what: &str, e: &dyn core::fmt::Display| VmmError(format!("{what}: {e}"));
        let mut head = [0u8; HEADER_SIZE];
        let head_len = HEADER_SIZE.min(self.kernel.len());
        self.kernel
            .read_bytes(0, &mut head[..head_len])
            .map_err(|e| err("reading the kernel Image", &e))?;
        let header =
            ImageHeader::parse_head(&head[..head_len], self.kernel.len()).map_err(|e| err("bad kernel Image", &e))?;
        let places = boot_layout(
            &header,
            layout::RAM_BASE,
            self.ram.size(),
            Some(self.initrd.len() as u64),
        )
        .map_err(|e| err("guest RAM too small", &e))?;
        let dtb = fdt::build(&FdtConfig {
            ram_size: self.ram.size(),
            bootargs: fdt::GUEST_BOOTARGS,
            initrd: places.initrd,
            virtio_slots: &self.virtio.slots(),
            pl011: false,
        })
        .map_err(|e| err("device tree", &e))?;
        self.ram
            .load(places.kernel, &self.kernel, self.kernel.len())
            .map_err(|e| err("loading the kernel", &e))?;
        if let Some((start, _)) = places.initrd {
            self.ram
                .load(start, &self.initrd, self.initrd.len())
                .map_err(|e| err("loading the initramfs", &e))?;
        }
        self.ram
            .write(places.dtb, &dtb)
            .map_err(|e| err("loading the device tree", &e))?;

        self.vgic = Vgic::new(layout::NUM_SPIS, layout::VCPU0_MPIDR_AFFINITY).map_err(|e| err("vGIC", &e))?;
        // A device reset of every virtio device, as a driver's Status = 0 write does:
        // the old guest's queues are forgotten; typed-ahead input survives (virtio 1.2
        // §4.2.2.1).
        for e in self.virtio.entries_mut() {
            let _ = e.backend.write(STATUS_REGISTER, 4, 0, &mut self.ram);
        }

        // The boot report starts on a line of its own; the new guest's output starts
        // a new prefixed line.
        if !self.guest_lines.at_line_start() {
            self.uart.write_bytes(b"\n");
        }
        self.guest_lines.reset();

        let kerr = |e: sel4_microkit::KernelError| err("vCPU", &e);
        VCPU.write_reg(reg::X0, places.dtb).map_err(kerr)?;
        for r in 1..=3 {
            VCPU.write_reg(reg::X0 + r, 0).map_err(kerr)?;
        }
        VCPU.restart(places.kernel).map_err(kerr)?;
        self.boots += 1;
        debug_println!(
            "linux_vmm: boot {}: kernel {} KiB at {:#x}, initramfs {} KiB at {:#x}, device tree at {:#x}, {} MiB RAM",
            self.boots,
            self.kernel.len() / 1024,
            places.kernel,
            self.initrd.len() / 1024,
            places.initrd.map_or(0, |i| i.0),
            places.dtb,
            self.ram.size() >> 20
        );
        Ok(())
    }

    /// Before a reboot: resets the network device, so the old guest's receive buffers
    /// at vcp-net are recalled (see `vcpos_virtio::net_vcp`).
    pub fn reset_net(&mut self) {
        for e in self.virtio.entries_mut() {
            if e.backend.net().is_some() {
                let _ = e.backend.write(STATUS_REGISTER, 4, 0, &mut self.ram);
            }
        }
    }

    /// Whether vcp-net can no longer write into guest RAM (no receive buffer of the
    /// guest's is at vcp-net, no recall under way): a reboot waits for it.
    pub fn net_quiet(&mut self) -> bool {
        let mut quiet = true;
        for e in self.virtio.entries_mut() {
            if let Some(net) = e.backend.net() {
                quiet &= net.device_mut().backend_mut().rx_quiet();
            }
        }
        quiet
    }
}
