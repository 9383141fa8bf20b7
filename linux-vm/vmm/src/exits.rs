//! Guest exits: what the VMM does with each fault message the kernel sends about the
//! vCPU — emulated device accesses, PSCI calls, trapped system registers.

use alloc::format;

use sel4_microkit::{debug_println, get_mr, set_mr, MessageInfo};
use vcpos_abi::esr::{self, ec, SysregAccess};
use vcpos_abi::fault::{label, vm_fault, vm_fault_reply};
use vcpos_abi::vcpu::{reg as vcpu_reg, VCPU_FAULT_ESR};
use vcpos_virtio::mmio::reg;
use vcpos_vmm_devices::devices::{empty_slot_read, Target};
use vcpos_vmm_devices::exit;
use vcpos_vmm_devices::layout::{self, Device};
use vcpos_vmm_devices::mmio::MmioAccess;
use vcpos_vmm_devices::psci::{self, Action};
use vcpos_vmm_devices::vgic::Region;

use crate::{Vmm, VCPU};

/// Guest boots allowed within [`QUICK_REBOOT_WINDOW_S`] before the VM is stopped.
const MAX_QUICK_REBOOTS: u32 = 5;
/// The window for [`MAX_QUICK_REBOOTS`], in seconds.
const QUICK_REBOOT_WINDOW_S: u64 = 30;

/// Stray accesses reported before the VMM goes quiet about them.
pub const MAX_STRAY_REPORTS: u32 = 16;

/// Encoding (Op0, Op1, CRn, CRm, Op2) of ICC_SGI1R_EL1.
const ICC_SGI1R_EL1: (u8, u8, u8, u8, u8) = (3, 0, 12, 11, 5);

impl Vmm {
    /// Handles one guest exit: the reply that resumes the vCPU, or `None` to leave it
    /// stopped.
    pub fn handle_exit(&mut self, msg: MessageInfo) -> Option<MessageInfo> {
        let reply = match msg.label() {
            label::VM_FAULT => {
                let (pc, addr) = (get_mr(vm_fault::IP), get_mr(vm_fault::ADDR));
                let (prefetch, esr) = (get_mr(vm_fault::PREFETCH_FAULT) != 0, get_mr(vm_fault::FSR));
                if prefetch {
                    self.reboot(&format!("guest executed outside its RAM at {addr:#x} (pc {pc:#x})"));
                    None
                } else {
                    Some(self.mmio_exit(pc, addr, esr))
                }
            }
            label::VCPU_FAULT => self
                .vcpu_exit(get_mr(VCPU_FAULT_ESR), get_mr(1))
                .then(|| MessageInfo::new(0, 0)),
            other => {
                self.reboot(&format!("unexpected exit, label {other}"));
                None
            }
        };
        self.deliver_irqs();
        reply
    }

    /// Reports why and boots the guest again, unless it keeps failing: more than
    /// [`MAX_QUICK_REBOOTS`] boots within [`QUICK_REBOOT_WINDOW_S`] seconds stop the VM
    /// (a crash loop would otherwise eat the CPU). False: the vCPU was not resumed.
    fn reboot(&mut self, why: &str) -> bool {
        let now = sel4_microkit::sys::counter();
        let window = QUICK_REBOOT_WINDOW_S * sel4_microkit::sys::counter_frequency();
        if now.saturating_sub(self.window_start) > window {
            self.window_start = now;
            self.boots_in_window = 0;
        }
        self.boots_in_window += 1;
        if self.boots_in_window > MAX_QUICK_REBOOTS {
            debug_println!(
                "linux_vmm: {why}; {} boots within {QUICK_REBOOT_WINDOW_S} s, VM stopped",
                self.boots_in_window
            );
            let _ = VCPU.stop();
            return false;
        }
        let in_flight = self.disk.as_ref().map_or(0, |d| d.in_flight());
        // The old guest's receive buffers at vcp-net are recalled.
        self.reset_net();
        if in_flight != 0 || !self.net_quiet() {
            // A read or received frame still in flight would land in the next guest's
            // RAM: the vCPU stays stopped until the disk has nothing out and vcp-net
            // has given every receive buffer back (`finish_pending_reboot`).
            debug_println!(
                "linux_vmm: {why}; booting the guest again once {in_flight} disk requests finish and vcp-net gives back the guest's receive buffers"
            );
            self.reboot_pending = true;
            return false;
        }
        debug_println!("linux_vmm: {why}; booting the guest again");
        self.boot_again();
        false
    }

    fn boot_again(&mut self) {
        if let Err(e) = self.boot_guest() {
            debug_println!("linux_vmm: cannot boot the guest: {e}; VM stopped");
            let _ = VCPU.stop();
        }
    }

    /// Boots the guest if a reboot waited for the disk and the disk is idle now.
    pub fn finish_pending_reboot(&mut self) {
        if self.reboot_pending && self.disk.as_ref().is_none_or(|d| d.in_flight() == 0) && self.net_quiet() {
            self.reboot_pending = false;
            self.boot_again();
        }
    }

    fn advance_pc(&self, pc: u64, esr: u64) {
        let _ = VCPU.write_reg(vcpu_reg::PC, exit::next_pc(pc, esr));
    }

    /// A load or store to guest-physical `ipa` that no RAM backs: emulate the device
    /// there, or report the stray access (loads read 0, stores are dropped). The reply
    /// has the kernel finish the access ([`vm_fault_reply::EMULATED`]: the PC moves
    /// on, a load's value in message register 0 goes to its register); a store's
    /// value came with the fault message. No register syscalls.
    fn mmio_exit(&mut self, pc: u64, ipa: u64, esr: u64) -> MessageInfo {
        let access = match MmioAccess::decode(esr) {
            Ok(a) => a,
            Err(e) => {
                // No valid syndrome: the kernel moves the PC on and writes nothing.
                self.report_stray(pc, ipa, &format!("access cannot be emulated ({e:?})"));
                return MessageInfo::new(vm_fault_reply::EMULATED, 0);
            }
        };
        let stored = match access.reg {
            Some(_) if access.write => access.store_value(get_mr(vm_fault::STORE_VALUE)),
            _ => 0,
        };
        let size = access.size;
        let loaded = match self.virtio.dispatch(ipa) {
            Some(Target::Frame(Device::GicDistributor, off)) => {
                self.gic(Region::Distributor, off, size, access.write, stored)
            }
            Some(Target::Frame(Device::GicRedistributor, off)) => {
                self.gic(Region::Redistributor, off, size, access.write, stored)
            }
            Some(Target::Frame(Device::Pl011, off)) => {
                if access.write {
                    if let Some(b) = self.pl011.write(off, size, stored) {
                        self.uart.write_bytes(&self.guest_lines.prefixed(&[b]));
                    }
                    0
                } else {
                    self.pl011.read(off, size)
                }
            }
            Some(Target::Virtio(entry, off)) => {
                if access.write {
                    let t = sel4_microkit::sys::counter();
                    let mut raise = entry.backend.write(off, size, stored as u32, &mut self.ram);
                    let u = sel4_microkit::sys::counter();
                    // An interrupt acknowledgement (one per guest interrupt, the most
                    // frequent write after notifications) changes nothing a poll or
                    // the console would act on: it returns at once.
                    if off != reg::INTERRUPT_ACK {
                        // Requests the backend finished at once complete now.
                        raise |= entry.backend.poll(&mut self.ram);
                    }
                    if off == reg::QUEUE_NOTIFY {
                        self.profile.notifies += 1;
                        self.profile.notify_ticks += u.wrapping_sub(t);
                        self.profile.notify_poll_ticks += sel4_microkit::sys::counter().wrapping_sub(u);
                    }
                    if raise {
                        self.vgic.raise(entry.intid);
                    }
                    if let Some(e) = entry.backend.take_error() {
                        debug_println!("linux_vmm: virtio {}: guest error: {e}", entry.name);
                    }
                    if off != reg::INTERRUPT_ACK {
                        self.flush_console();
                    }
                    0
                } else {
                    u64::from(entry.backend.read(off, size))
                }
            }
            // Empty virtio slots read as "no device" (DeviceID 0) with the right magic.
            Some(Target::EmptySlot(_, off)) => u64::from(empty_slot_read(off)),
            // VirtioMmio frames always come back as Virtio or EmptySlot.
            Some(Target::Frame(Device::VirtioMmio(_), _)) | None => {
                let kind = if access.write { "write" } else { "read" };
                self.report_stray(pc, ipa, &format!("{kind} of {size} bytes outside guest memory"));
                0
            }
        };
        if !access.write && access.reg.is_some() {
            set_mr(0, access.load_result(loaded));
            return MessageInfo::new(vm_fault_reply::EMULATED, 1);
        }
        MessageInfo::new(vm_fault_reply::EMULATED, 0)
    }

    fn gic(&mut self, region: Region, off: u64, size: u8, write: bool, value: u64) -> u64 {
        if write {
            self.vgic.write(region, off, size, value);
            0
        } else {
            self.vgic.read(region, off, size)
        }
    }

    fn report_stray(&mut self, pc: u64, ipa: u64, what: &str) {
        if self.stray_accesses.record() {
            debug_println!("linux_vmm: guest {what}: address {ipa:#x}, pc {pc:#x}; ignored");
        }
    }

    /// HVC, SMC or a trapped system-register access.
    fn vcpu_exit(&mut self, esr: u64, pc: u64) -> bool {
        match esr::class(esr) {
            ec::HVC64 => self.psci(),
            ec::SMC64 => {
                // A trapped SMC's PC points at the instruction itself.
                self.advance_pc(pc, esr);
                self.psci()
            }
            ec::SYSREG => {
                self.system_register(SysregAccess::decode(esr));
                self.advance_pc(pc, esr);
                true
            }
            other => self.reboot(&format!("guest exit with exception class {other:#x} at pc {pc:#x}")),
        }
    }

    fn psci(&mut self) -> bool {
        let mut x = [0u64; 4];
        for (i, v) in x.iter_mut().enumerate() {
            *v = VCPU.read_reg(vcpu_reg::X0 + i as u64).unwrap_or(0);
        }
        let outcome = psci::handle(x, layout::VCPU0_MPIDR_AFFINITY);
        let _ = VCPU.write_reg(vcpu_reg::X0, outcome.x0);
        match outcome.action {
            Action::Continue => true,
            Action::PowerOff | Action::CpuOff => self.reboot("guest powered off (PSCI SYSTEM_OFF)"),
            Action::Reset => self.reboot("guest asked for a reset (PSCI SYSTEM_RESET)"),
        }
    }

    /// Trapped system registers: a self-IPI through ICC_SGI1R_EL1 is injected; every
    /// other register reads as zero and ignores writes.
    fn system_register(&mut self, access: SysregAccess) {
        let rt = u64::from(access.rt);
        if access.read {
            if rt != 31 {
                let _ = VCPU.write_reg(rt, 0);
            }
            return;
        }
        if access.encoding == ICC_SGI1R_EL1 {
            let value = if rt == 31 { 0 } else { VCPU.read_reg(rt).unwrap_or(0) };
            let intid = ((value >> 24) & 0xf) as u32;
            let to_all_others = value & (1 << 40) != 0;
            let aff_above_0 = value & 0x00ff_00ff_00ff_0000;
            let targets_self = !to_all_others && aff_above_0 == 0 && value & 1 != 0;
            if targets_self {
                let _ = VCPU.inject_irq(intid);
            }
        }
    }
}
