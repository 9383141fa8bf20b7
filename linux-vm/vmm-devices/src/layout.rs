//! The guest platform: guest-physical addresses, sizes and interrupt numbers of the VM.
//!
//! These match QEMU's `virt` machine (GICv3, PL011, virtio-mmio slots), so a guest
//! kernel configured for `virt` finds the same devices in the same places. The VMM, its
//! system file and [`crate::fdt`] all take their numbers from here.

/// Guest RAM starts at this IPA (the VMM chooses the size).
pub const RAM_BASE: u64 = 0x4000_0000;

/// GICv3 distributor (GICD) base IPA.
pub const GICD_BASE: u64 = 0x0800_0000;
/// GICv3 distributor frame size (64 KiB).
pub const GICD_SIZE: u64 = 0x1_0000;
/// GICv3 redistributor region base IPA (one vCPU: RD_base frame then SGI_base frame).
pub const GICR_BASE: u64 = 0x080a_0000;
/// Size of one vCPU's redistributor (RD_base + SGI_base, 2 × 64 KiB).
pub const GICR_SIZE: u64 = 0x2_0000;

/// PL011 UART base IPA.
pub const PL011_BASE: u64 = 0x0900_0000;
/// PL011 UART frame size (4 KiB).
pub const PL011_SIZE: u64 = 0x1000;
/// PL011 SPI number (as in the device tree's `<0 1 4>`).
pub const PL011_SPI: u32 = 1;
/// PL011 INTID.
pub const PL011_INTID: u32 = SPI_INTID_BASE + PL011_SPI;
/// Frequency of the PL011's fixed reference clock in the device tree (Hz).
pub const PL011_CLOCK_HZ: u32 = 24_000_000;

/// virtio-mmio slot 0 base IPA; slot `n` is at `VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_STRIDE`.
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;
/// Distance between virtio-mmio slots and the size of each (512 bytes).
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
/// Number of virtio-mmio slots.
pub const VIRTIO_MMIO_SLOTS: u32 = 32;
/// SPI number of virtio-mmio slot 0; slot `n` uses SPI `VIRTIO_MMIO_SPI_BASE + n`.
pub const VIRTIO_MMIO_SPI_BASE: u32 = 16;

/// INTID of SPI 0.
pub const SPI_INTID_BASE: u32 = 32;
/// INTID of PPI 0.
pub const PPI_INTID_BASE: u32 = 16;
/// SPIs the vGIC implements: enough for the PL011 and every virtio-mmio slot
/// (SPIs 0..=47), rounded up to a multiple of 32.
pub const NUM_SPIS: u32 = 64;

/// Generic timer PPIs (PPI numbers, as the device tree's `<1 n 4>` cells).
pub mod timer {
    /// Secure EL1 physical timer PPI (INTID 29).
    pub const SECURE_PHYS_PPI: u32 = 13;
    /// Non-secure EL1 physical timer PPI (INTID 30).
    pub const NONSECURE_PHYS_PPI: u32 = 14;
    /// Virtual timer PPI (INTID 27): the one the guest uses, injected by the kernel.
    pub const VIRT_PPI: u32 = 11;
    /// EL2 (hypervisor) physical timer PPI (INTID 26).
    pub const HYP_PPI: u32 = 10;
    /// Virtual timer INTID.
    pub const VIRT_INTID: u32 = super::PPI_INTID_BASE + VIRT_PPI;
}

/// MPIDR_EL1 affinity of the single vCPU (Aff3..Aff0 all 0).
pub const VCPU0_MPIDR_AFFINITY: u64 = 0;

/// Guest-physical address of virtio-mmio slot `n`, or `None` past the last slot.
pub const fn virtio_mmio_base(n: u32) -> Option<u64> {
    if n < VIRTIO_MMIO_SLOTS {
        Some(VIRTIO_MMIO_BASE + n as u64 * VIRTIO_MMIO_STRIDE)
    } else {
        None
    }
}

/// INTID of virtio-mmio slot `n`, or `None` past the last slot.
pub const fn virtio_mmio_intid(n: u32) -> Option<u32> {
    if n < VIRTIO_MMIO_SLOTS {
        Some(SPI_INTID_BASE + VIRTIO_MMIO_SPI_BASE + n)
    } else {
        None
    }
}

/// An emulated device frame, as found by [`device_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// The GICv3 distributor ([`crate::vgic::Region::Distributor`]).
    GicDistributor,
    /// The GICv3 redistributor ([`crate::vgic::Region::Redistributor`]).
    GicRedistributor,
    /// The PL011 UART.
    Pl011,
    /// virtio-mmio slot `n`.
    VirtioMmio(u32),
}

/// Which emulated device frame holds guest-physical address `ipa`, and the offset
/// into that frame. `None` for addresses outside every device (RAM included).
pub fn device_at(ipa: u64) -> Option<(Device, u64)> {
    let within = |base: u64, size: u64| ipa.checked_sub(base).filter(|off| *off < size);
    if let Some(off) = within(GICD_BASE, GICD_SIZE) {
        return Some((Device::GicDistributor, off));
    }
    if let Some(off) = within(GICR_BASE, GICR_SIZE) {
        return Some((Device::GicRedistributor, off));
    }
    if let Some(off) = within(PL011_BASE, PL011_SIZE) {
        return Some((Device::Pl011, off));
    }
    let span = VIRTIO_MMIO_STRIDE * VIRTIO_MMIO_SLOTS as u64;
    if let Some(off) = within(VIRTIO_MMIO_BASE, span) {
        let slot = (off / VIRTIO_MMIO_STRIDE) as u32;
        return Some((Device::VirtioMmio(slot), off % VIRTIO_MMIO_STRIDE));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_lookup_finds_each_frame_and_offset() {
        assert_eq!(device_at(GICD_BASE), Some((Device::GicDistributor, 0)));
        assert_eq!(device_at(GICD_BASE + 0xffe8), Some((Device::GicDistributor, 0xffe8)));
        assert_eq!(
            device_at(GICR_BASE + 0x1_0100),
            Some((Device::GicRedistributor, 0x1_0100))
        );
        assert_eq!(device_at(PL011_BASE + 0x18), Some((Device::Pl011, 0x18)));
        assert_eq!(device_at(0x0a00_0000), Some((Device::VirtioMmio(0), 0)));
        assert_eq!(device_at(0x0a00_0270), Some((Device::VirtioMmio(1), 0x70)));
        assert_eq!(device_at(0x0a00_3e00 + 0x1ff), Some((Device::VirtioMmio(31), 0x1ff)));
    }

    #[test]
    fn device_lookup_rejects_gaps_ram_and_edges() {
        for ipa in [
            0,
            GICD_BASE - 1,
            GICD_BASE + GICD_SIZE, // gap between GICD and GICR
            GICR_BASE + GICR_SIZE,
            PL011_BASE + PL011_SIZE,
            VIRTIO_MMIO_BASE + 32 * VIRTIO_MMIO_STRIDE,
            RAM_BASE,
            u64::MAX,
        ] {
            assert_eq!(device_at(ipa), None, "ipa {ipa:#x}");
        }
    }

    #[test]
    fn slot_addresses_and_interrupts() {
        assert_eq!(virtio_mmio_base(0), Some(0x0a00_0000));
        assert_eq!(virtio_mmio_base(31), Some(0x0a00_3e00));
        assert_eq!(virtio_mmio_base(32), None);
        assert_eq!(virtio_mmio_intid(0), Some(48));
        assert_eq!(virtio_mmio_intid(31), Some(79));
        assert_eq!(virtio_mmio_intid(u32::MAX), None);
        assert_eq!(PL011_INTID, 33);
        assert_eq!(timer::VIRT_INTID, 27);
        // Every SPI the platform uses is implemented by the vGIC.
        assert!(virtio_mmio_intid(31).unwrap() < SPI_INTID_BASE + NUM_SPIS);
        assert_eq!(NUM_SPIS % 32, 0);
    }
}
