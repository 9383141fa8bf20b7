//! vCPUs of a VM whose VMM this PD is (vcpos addition; libmicrokit's
//! `microkit_vcpu_*` functions, which rust-sel4's crate does not offer).
//!
//! A vCPU's guest exits arrive at the VMM's [`crate::Handler::fault`] like a child's
//! faults, with the vCPU id as the [`crate::Child`] index; see `vcpos_abi::vcpu`.

use vcpos_abi::cap::slot;
use vcpos_abi::syscall::{Error, Sysno};

use crate::sys;

/// A vCPU, named by its `<vcpu id="...">` in the system description.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vcpu {
    index: usize,
}

impl Vcpu {
    /// The vCPU with id `index`.
    pub const fn new(index: usize) -> Self {
        Vcpu { index }
    }

    /// The vCPU id.
    pub const fn index(&self) -> usize {
        self.index
    }

    pub(crate) fn cap(&self) -> u64 {
        slot::BASE_VCPU + self.index as u64
    }

    fn call(&self, nr: Sysno, a1: u64, a2: u64) -> Result<u64, Error> {
        let r = sys::raw_syscall(nr as u64, self.cap(), a1, a2);
        r.result().map(|()| r.x1)
    }

    /// Starts (or restarts) the vCPU at `entry_pc` in EL1 with interrupts masked and
    /// fresh EL1 state (MMU off); general registers keep what `write_reg` set.
    pub fn restart(&self, entry_pc: u64) -> Result<(), Error> {
        self.call(Sysno::VcpuRestart, entry_pc, 0).map(drop)
    }

    /// Stops the vCPU.
    pub fn stop(&self) -> Result<(), Error> {
        self.call(Sysno::VcpuStop, 0, 0).map(drop)
    }

    /// Reads register `reg` (`vcpos_abi::vcpu::reg`: x0..x30, SP_EL0, PC, SPSR).
    pub fn read_reg(&self, reg: u64) -> Result<u64, Error> {
        self.call(Sysno::VcpuReadReg, reg, 0)
    }

    /// Writes register `reg`.
    pub fn write_reg(&self, reg: u64, value: u64) -> Result<(), Error> {
        self.call(Sysno::VcpuWriteReg, reg, value).map(drop)
    }

    /// Makes virtual interrupt `irq` (GIC INTID) pending on the vCPU.
    pub fn inject_irq(&self, irq: u32) -> Result<(), Error> {
        self.call(Sysno::VcpuInjectIrq, irq as u64, 0).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake;

    #[test]
    fn vcpu_calls_name_the_vcpu_slot_and_return_results() {
        fake::reset();
        let v = Vcpu::new(2);
        fake::push_result(0, 0x1234, 0);
        assert_eq!(v.read_reg(vcpos_abi::vcpu::reg::PC), Ok(0x1234));
        v.write_reg(0, 0x4800_0000).unwrap();
        v.restart(0x4020_0000).unwrap();
        fake::push_result(Error::InvalidArgument as u64, 0, 0);
        assert_eq!(v.inject_irq(5000), Err(Error::InvalidArgument));
        let log = fake::take_log();
        let calls: Vec<_> = log.iter().map(|r| (r.sysno, r.cptr, r.arg1, r.arg2)).collect();
        let cap = slot::BASE_VCPU + 2;
        assert_eq!(
            calls,
            vec![
                (Sysno::VcpuReadReg as u64, cap, vcpos_abi::vcpu::reg::PC, 0),
                (Sysno::VcpuWriteReg as u64, cap, 0, 0x4800_0000),
                (Sysno::VcpuRestart as u64, cap, 0x4020_0000, 0),
                (Sysno::VcpuInjectIrq as u64, cap, 5000, 0),
            ]
        );
    }
}
