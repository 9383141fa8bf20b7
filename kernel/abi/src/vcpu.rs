//! vCPU register numbers and the guest-exit messages a VMM receives.
//!
//! A VM's vCPUs are children of its VMM PD: a guest exit the kernel does not handle
//! itself reaches the VMM's input as a fault message with badge
//! [`crate::cap::BADGE_FAULT`]` | vcpu id`:
//!
//! - label [`crate::fault::label::VM_FAULT`]: a stage-2 abort (the guest touched
//!   guest-physical memory no map covers, e.g. an emulated device). MRs as in
//!   [`crate::fault::vm_fault`], with `ADDR` = the guest-physical address and `FSR`
//!   = ESR_EL2, whose ISS says access size, register and direction when ISV is set.
//! - label [`crate::fault::label::VCPU_FAULT`]: HVC, SMC or a trapped system register
//!   access; MR [`VCPU_FAULT_ESR`] = ESR_EL2. For HVC the PC already points past the
//!   instruction; for SMC and system registers it points at it.
//!
//! The VMM emulates, updates registers with `VcpuWriteReg` (including advancing the
//! PC when it has to), and replies to resume the vCPU. WFI, the virtual timer and
//! the vGIC list registers are handled by the kernel.

/// MR of a VCPU_FAULT message holding ESR_EL2.
pub const VCPU_FAULT_ESR: usize = 0;

/// Register numbers for `VcpuReadReg` / `VcpuWriteReg`.
pub mod reg {
    /// x0..=x30 are 0..=30.
    pub const X0: u64 = 0;
    /// SP_EL0.
    pub const SP_EL0: u64 = 31;
    /// PC (ELR_EL2 when the guest is not running).
    pub const PC: u64 = 32;
    /// PSTATE (SPSR_EL2 when the guest is not running).
    pub const SPSR: u64 = 33;
    /// One past the last register number.
    pub const COUNT: u64 = 34;
}

/// PSTATE a vCPU starts with: EL1h, D/A/I/F masked.
pub const SPSR_EL1H_MASKED: u64 = 0x3c5;

/// Virtual interrupt ids are below this (GICv3 INTIDs 1020..1023 are special).
pub const MAX_VIRQ: u64 = 1020;
