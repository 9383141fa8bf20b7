//! Fault labels and the message registers a fault message carries.
//!
//! A child PD's fault reaches its parent as a message on the parent's input with
//! badge [`crate::cap::BADGE_FAULT`]` | child id`; the label is one of these (seL4's
//! ARM MCS numbering, so Microkit fault handlers decode it unchanged).

/// Fault labels.
pub mod label {
    /// Null fault (unused).
    pub const NULL: u64 = 0;
    /// Capability fault (unused by vcpos: bad caps return an error instead).
    pub const CAP: u64 = 1;
    /// Unknown syscall (unused by vcpos: returns an error instead).
    pub const UNKNOWN_SYSCALL: u64 = 2;
    /// A synchronous exception that is not a memory fault (undefined instruction,
    /// alignment, breakpoint, FP access, ...).
    pub const USER_EXCEPTION: u64 = 3;
    /// Budget exhaustion with a timeout handler (reserved).
    pub const TIMEOUT: u64 = 5;
    /// Data or instruction abort.
    pub const VM_FAULT: u64 = 6;
    /// vGIC maintenance (VMs; reserved).
    pub const VGIC_MAINTENANCE: u64 = 7;
    /// vCPU fault (VMs; reserved).
    pub const VCPU_FAULT: u64 = 8;
    /// Virtual PPI event (VMs; reserved).
    pub const VPPI_EVENT: u64 = 9;
}

/// Message registers of a [`label::VM_FAULT`] message.
pub mod vm_fault {
    /// PC of the faulting instruction.
    pub const IP: usize = 0;
    /// Faulting address.
    pub const ADDR: usize = 1;
    /// 1 for an instruction fetch, 0 for a data access.
    pub const PREFETCH_FAULT: usize = 2;
    /// Fault status (the ESR value).
    pub const FSR: usize = 3;
    /// Number of message registers.
    pub const LENGTH: usize = 4;
    /// vcpos extension, vCPU data aborts only: for a store with a valid syndrome
    /// (ESR.ISV), the value of the source register (0 for XZR), so the VMM needs no
    /// `VcpuReadReg`; else 0. Such messages have [`LENGTH_VCPU`] registers.
    pub const STORE_VALUE: usize = 4;
    /// Number of message registers of a vCPU's data abort.
    pub const LENGTH_VCPU: usize = 5;
}

/// Labels of a VMM's reply to a vCPU's [`label::VM_FAULT`] (a vcpos extension; label
/// 0 resumes the vCPU as it is, as on seL4).
pub mod vm_fault_reply {
    /// The VMM emulated the data access: the kernel moves the vCPU's PC past the
    /// faulting instruction (by ESR.IL) and, for a load with a valid syndrome
    /// (ESR.ISV) into a register other than XZR, writes message register 0 (the
    /// value as the register must hold it: extended by the VMM; 0 if the reply has
    /// no message register) into that register.
    /// Saves the VMM two `VcpuWriteReg` calls per emulated access. For any other
    /// fault it resumes like label 0.
    pub const EMULATED: u64 = 1;
}

/// Message registers of a [`label::USER_EXCEPTION`] message.
pub mod user_exception {
    /// PC of the faulting instruction.
    pub const FAULT_IP: usize = 0;
    /// Stack pointer.
    pub const SP: usize = 1;
    /// Saved program status.
    pub const SPSR: usize = 2;
    /// Exception class (ESR.EC).
    pub const NUMBER: usize = 3;
    /// Syndrome (ESR.ISS).
    pub const CODE: usize = 4;
    /// Number of message registers.
    pub const LENGTH: usize = 5;
}

/// Human name of a fault label, for reports.
pub const fn label_name(label: u64) -> &'static str {
    match label {
        label::NULL => "null fault",
        label::CAP => "capability fault",
        label::UNKNOWN_SYSCALL => "unknown syscall",
        label::USER_EXCEPTION => "user exception",
        label::TIMEOUT => "timeout",
        label::VM_FAULT => "VM fault",
        label::VGIC_MAINTENANCE => "vGIC maintenance",
        label::VCPU_FAULT => "vCPU fault",
        label::VPPI_EVENT => "VPPI event",
        _ => "unknown fault",
    }
}
