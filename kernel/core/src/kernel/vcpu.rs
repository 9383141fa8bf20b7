//! vCPUs: the VMM's control syscalls, virtual interrupts and guest exits.

use core::fmt::Write;

use vcpos_abi::console::KERNEL_FAULT;
use vcpos_abi::counters::GuestExit;
use vcpos_abi::esr;
use vcpos_abi::fault::{label, vm_fault};
use vcpos_abi::syscall::Error;
use vcpos_abi::vcpu::{reg, MAX_VIRQ, SPSR_EL1H_MASKED};

use super::{Args, Kernel};
use crate::cspace::{Cap, ThreadIndex};
use crate::fault;
use crate::platform::{Console, Platform};
use crate::thread::{ThreadKind, ThreadState};
use crate::vgic::{self, ListRegisters, MAX_LRS};

impl Kernel {
    /// The vCPU thread a capability names, if it is a vCPU capability to a vCPU.
    fn vcpu_of(&self, cap: Cap) -> Result<ThreadIndex, Error> {
        match cap {
            Cap::Vcpu { thread } if self.tcbs[thread as usize].kind == ThreadKind::Vcpu => Ok(thread),
            _ => Err(Error::InvalidCapability),
        }
    }

    /// `VcpuRestart`: start the vCPU at `a1` in EL1 with interrupts masked and its EL1
    /// state reset.
    pub(super) fn sys_vcpu_restart(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let v = self.vcpu_of(args.cap)?;
        self.detach(v);
        let tv = &mut self.tcbs[v as usize];
        tv.ctx.pc = args.a1;
        tv.ctx.spsr = SPSR_EL1H_MASKED;
        tv.virqs = Default::default();
        tv.saved_lrs = [0; MAX_LRS];
        tv.vcpu_reset = true;
        self.make_ready(v);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `VcpuStop`: stop the vCPU.
    pub(super) fn sys_vcpu_stop(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let v = self.vcpu_of(args.cap)?;
        self.detach(v);
        self.tcbs[v as usize].state = ThreadState::Stopped;
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `VcpuReadReg`: register `a1` into `x1`.
    pub(super) fn sys_vcpu_read_reg(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let v = self.vcpu_of(args.cap)?;
        let ctx = &self.tcbs[v as usize].ctx;
        let value = match args.a1 {
            0..=30 => ctx.x[args.a1 as usize],
            reg::SP_EL0 => ctx.sp,
            reg::PC => ctx.pc,
            reg::SPSR => ctx.spsr,
            _ => return Err(Error::InvalidArgument),
        };
        self.set_ret(t, 0, value, 0);
        Ok(())
    }

    /// `VcpuWriteReg`: register `a1` = `a2`.
    pub(super) fn sys_vcpu_write_reg(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let v = self.vcpu_of(args.cap)?;
        let (r, value) = (args.a1, args.a2);
        let ctx = &mut self.tcbs[v as usize].ctx;
        match r {
            0..=30 => ctx.x[r as usize] = value,
            reg::SP_EL0 => ctx.sp = value,
            reg::PC => ctx.pc = value,
            // Only EL1h/EL1t/EL0t AArch64 states with any DAIF: the guest can never be
            // sent to EL2 or to AArch32.
            reg::SPSR if matches!(value & 0x1f, 0b00101 | 0b00100 | 0b00000) => ctx.spsr = value,
            _ => return Err(Error::InvalidArgument),
        }
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// `VcpuInjectIrq`: make virtual interrupt `a1` pending.
    pub(super) fn sys_vcpu_inject_irq(&mut self, t: ThreadIndex, args: Args) -> Result<(), Error> {
        let v = self.vcpu_of(args.cap)?;
        if args.a1 >= MAX_VIRQ {
            return Err(Error::InvalidArgument);
        }
        self.inject_virq(v, args.a1 as u32);
        self.set_ret(t, 0, 0, 0);
        Ok(())
    }

    /// Makes virtual interrupt `irq` pending on vCPU `v` and wakes it from WFI.
    pub fn inject_virq(&mut self, v: ThreadIndex, irq: u32) {
        let tv = &mut self.tcbs[v as usize];
        tv.virqs.insert(irq);
        if tv.state == ThreadState::BlockedWfi {
            self.make_ready(v);
        }
    }

    /// Takes the next virtual interrupt to put in a list register of vCPU `v`.
    pub fn take_virq(&mut self, v: ThreadIndex) -> Option<u32> {
        self.tcbs[v as usize].virqs.pop()
    }

    /// vGIC: frees the list registers vCPU `v` (loaded) has finished with and puts
    /// its pending virtual interrupts in them ([`vgic::fill`]); `done` gets each
    /// finished interrupt. Returns true if some still wait for a free register.
    pub fn vgic_fill(&mut self, v: ThreadIndex, lrs: &mut impl ListRegisters, done: impl FnMut(u32)) -> bool {
        vgic::fill(lrs, &mut self.tcbs[v as usize].virqs, done)
    }

    /// vGIC: vCPU `v` gives up the CPU: its list registers are saved with it
    /// ([`vgic::save`]) and cleared.
    pub fn vgic_save(&mut self, v: ThreadIndex, lrs: &mut impl ListRegisters, done: impl FnMut(u32)) {
        vgic::save(lrs, &mut self.tcbs[v as usize].saved_lrs, done);
    }

    /// vGIC: vCPU `v` gets the CPU: its saved list registers are loaded (all clear
    /// after a restart).
    pub fn vgic_restore(&self, v: ThreadIndex, lrs: &mut impl ListRegisters) {
        vgic::restore(lrs, &self.tcbs[v as usize].saved_lrs);
    }

    /// Returns whether vCPU `v` must have its EL1 state reset before it runs (it was
    /// restarted), clearing the request.
    pub fn take_vcpu_reset(&mut self, v: ThreadIndex) -> bool {
        core::mem::take(&mut self.tcbs[v as usize].vcpu_reset)
    }

    /// The current vCPU left the guest with a synchronous exception. WFI with nothing
    /// pending parks it; stage-2 aborts and HVC/SMC/system-register traps go to the
    /// VMM as fault messages. `virq_in_flight` says whether a virtual interrupt is
    /// still pending in a list register.
    pub fn handle_vcpu_exit(&mut self, plat: &mut impl Platform, esr: u64, far: u64, hpfar: u64, virq_in_flight: bool) {
        let Some(t) = self.current else { return };
        let pc = self.tcbs[t as usize].ctx.pc;
        let reason = match fault::ec::class(esr) {
            fault::ec::WFX => GuestExit::Wfx,
            fault::ec::DABT_LOWER => GuestExit::DataAbort,
            fault::ec::IABT_LOWER => GuestExit::InstructionAbort,
            fault::ec::HVC64 => GuestExit::Hvc,
            fault::ec::SMC64 => GuestExit::Smc,
            fault::ec::SYSREG => GuestExit::SysReg,
            _ => GuestExit::Other,
        };
        let counters = &mut self.tcbs[t as usize].counters;
        counters.kernel_entries += 1;
        counters.guest_exits[reason as usize] += 1;
        match fault::ec::class(esr) {
            fault::ec::WFX => {
                // ESR.IL: a 32-bit instruction, else a 16-bit (T32) one.
                self.tcbs[t as usize].ctx.pc = pc + esr::instruction_length(esr);
                let is_wfi = esr & 1 == 0;
                if is_wfi && !virq_in_flight && self.tcbs[t as usize].virqs.is_empty() {
                    self.tcbs[t as usize].state = ThreadState::BlockedWfi;
                }
            }
            class @ (fault::ec::DABT_LOWER | fault::ec::IABT_LOWER) => {
                let ipa = ((hpfar >> 4) << 12) | (far & 0xfff);
                let store = match esr::data_transfer(esr) {
                    Some(d) if class == fault::ec::DABT_LOWER && d.write => {
                        d.reg.map_or(0, |r| self.tcbs[t as usize].ctx.x[usize::from(r)])
                    }
                    _ => 0,
                };
                let mrs = [pc, ipa, (class == fault::ec::IABT_LOWER) as u64, esr, store];
                self.send_fault(plat, t, label::VM_FAULT, mrs, vm_fault::LENGTH_VCPU);
            }
            _ => self.send_fault(plat, t, label::VCPU_FAULT, [esr, pc, 0, 0, 0], 2),
        }
        if self.tcbs[t as usize].state == ThreadState::Faulted {
            let _ = writeln!(
                Console(plat),
                "{KERNEL_FAULT} vCPU '{}': guest exit (esr {esr:#x}, pc {pc:#x}) with no live VMM to handle it; vCPU stopped",
                self.tcbs[t as usize].name()
            );
        }
    }
}
