//! GICv3: distributor, the boot core's redistributor and the system-register CPU
//! interface. Device IRQs are SPIs routed to core 0; the kernel masks an SPI when it
//! fires and unmasks it when the PD acknowledges it.

use core::arch::asm;

use aarch64_cpu::asm::barrier::{isb, SY};
use aarch64_cpu::registers::{ReadWriteable, ICC_SRE_EL2};

use super::{board, mmio};

const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IGROUPR: u64 = 0x0080;
const GICD_ISENABLER: u64 = 0x0100;
const GICD_ICENABLER: u64 = 0x0180;
const GICD_ICPENDR: u64 = 0x0280;
const GICD_IPRIORITYR: u64 = 0x0400;
const GICD_ICFGR: u64 = 0x0c00;
const GICD_IROUTER: u64 = 0x6000;
const CTLR_RWP: u32 = 1 << 31;
/// Security disabled (QEMU virt without EL3): ARE is bit 4, group 1 enable bit 1.
const CTLR_ARE: u32 = 1 << 4;
const CTLR_ENABLE_G1: u32 = 1 << 1;

const GICR_WAKER: u64 = 0x0014;
const SGI_BASE: u64 = 0x1_0000;
const DEFAULT_PRIORITY: u8 = 0xa0;

/// First interrupt id that is not spurious.
pub const SPURIOUS: u32 = 1020;

fn wait_rwp() {
    while mmio::read32(board::GICD + GICD_CTLR) & CTLR_RWP != 0 {}
}

/// Brings up the distributor, core 0's redistributor and CPU interface; every SPI
/// starts disabled, in group 1, routed to core 0; the kernel timer PPI is enabled.
pub fn init() {
    let d = board::GICD;
    mmio::write32(d + GICD_CTLR, 0);
    wait_rwp();
    let lines = (((mmio::read32(d + GICD_TYPER) & 0x1f) + 1) * 32).min(board::MAX_IRQ as u32 + 1);
    for n in (32..lines).step_by(32) {
        let off = (n / 32 * 4) as u64;
        mmio::write32(d + GICD_IGROUPR + off, !0);
        mmio::write32(d + GICD_ICENABLER + off, !0);
        mmio::write32(d + GICD_ICPENDR + off, !0);
    }
    for n in 32..lines {
        set_priority(d + GICD_IPRIORITYR, n);
        mmio::write64(d + GICD_IROUTER + 8 * n as u64, 0);
    }
    mmio::write32(d + GICD_CTLR, CTLR_ARE | CTLR_ENABLE_G1);
    wait_rwp();

    let r = board::GICR;
    let waker = mmio::read32(r + GICR_WAKER) & !(1 << 1);
    mmio::write32(r + GICR_WAKER, waker);
    while mmio::read32(r + GICR_WAKER) & (1 << 2) != 0 {}
    mmio::write32(r + SGI_BASE + GICD_IGROUPR, !0);
    mmio::write32(r + SGI_BASE + GICD_ICENABLER, !0);
    for n in 0..32 {
        set_priority(r + SGI_BASE + GICD_IPRIORITYR, n);
    }
    mmio::write32(r + SGI_BASE + GICD_ISENABLER, 1 << board::TIMER_IRQ);

    // System-register interface on, and lower ELs may use it too; EOImode 0 (EOIR
    // drops the priority and deactivates).
    ICC_SRE_EL2.modify(ICC_SRE_EL2::SRE::SET + ICC_SRE_EL2::ENABLE::SET);
    isb(SY);
    // SAFETY: GIC CPU-interface registers aarch64-cpu does not name (or, ICC_CTLR_EL1,
    // offers only for reading): opening the priority mask, no binary-point grouping,
    // EOImode 0 and enabling group 1 only affect interrupt delivery, which the kernel
    // then handles.
    unsafe {
        asm!(
            "mov {t}, #0xff",
            "msr icc_pmr_el1, {t}",
            "msr icc_bpr1_el1, xzr",
            "msr icc_ctlr_el1, xzr",
            "mov {t}, #1",
            "msr icc_igrpen1_el1, {t}",
            "isb",
            t = out(reg) _,
        );
    }
}

fn set_priority(base: u64, n: u32) {
    let reg = base + (n / 4 * 4) as u64;
    let shift = (n % 4) * 8;
    let v = (mmio::read32(reg) & !(0xff << shift)) | ((DEFAULT_PRIORITY as u32) << shift);
    mmio::write32(reg, v);
}

/// Enables PPI `ppi` (0..32) on the boot core's redistributor.
pub fn enable_ppi(ppi: u32) {
    if ppi < 32 {
        mmio::write32(board::GICR + SGI_BASE + GICD_ISENABLER, 1 << ppi);
    }
}

/// Disables PPI `ppi` on the boot core's redistributor.
pub fn disable_ppi(ppi: u32) {
    if ppi < 32 {
        mmio::write32(board::GICR + SGI_BASE + GICD_ICENABLER, 1 << ppi);
    }
}

/// Configures SPI `irq` as level or edge triggered.
pub fn set_trigger(irq: u32, edge: bool) {
    if irq < 32 || irq as u64 > board::MAX_IRQ {
        return;
    }
    let reg = board::GICD + GICD_ICFGR + (irq / 16 * 4) as u64;
    let shift = (irq % 16) * 2 + 1;
    let v = (mmio::read32(reg) & !(1 << shift)) | ((edge as u32) << shift);
    mmio::write32(reg, v);
}

/// Enables SPI `irq` (PPIs/SGIs are the kernel's and are ignored).
pub fn unmask(irq: u32) {
    if (32..=board::MAX_IRQ as u32).contains(&irq) {
        mmio::write32(board::GICD + GICD_ISENABLER + (irq / 32 * 4) as u64, 1 << (irq % 32));
    }
}

/// Disables SPI `irq`.
pub fn mask(irq: u32) {
    if (32..=board::MAX_IRQ as u32).contains(&irq) {
        mmio::write32(board::GICD + GICD_ICENABLER + (irq / 32 * 4) as u64, 1 << (irq % 32));
    }
}

/// Acknowledges the highest-priority pending interrupt; [`SPURIOUS`] or above if none.
pub fn acknowledge() -> u32 {
    let intid: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges one interrupt; the caller ends it
    // with `end_of_interrupt`.
    unsafe { asm!("mrs {}, icc_iar1_el1", out(reg) intid) };
    intid as u32
}

/// Ends interrupt `intid` (priority drop and deactivation).
pub fn end_of_interrupt(intid: u32) {
    // SAFETY: writing ICC_EOIR1_EL1 with an id returned by `acknowledge`.
    unsafe { asm!("msr icc_eoir1_el1, {}", "isb", in(reg) intid as u64) };
}
