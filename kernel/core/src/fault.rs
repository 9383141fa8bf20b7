//! Decoding aarch64 exception syndromes into fault messages and console text.

use vcpos_abi::fault::{label, user_exception, vm_fault};

/// Exception classes (ESR_EL2.EC) and [`class`](vcpos_abi::esr::class): defined once in
/// [`vcpos_abi::esr`], re-exported here for the kernel core.
pub mod ec {
    pub use vcpos_abi::esr::class;
    pub use vcpos_abi::esr::ec::*;
}

/// A fault, ready to be sent to a parent or printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultInfo {
    /// [`vcpos_abi::fault::label`] value.
    pub label: u64,
    /// Message registers.
    pub mrs: [u64; 5],
    /// Number of message registers used.
    pub len: usize,
    /// Raw ESR.
    pub esr: u64,
    /// Faulting address (aborts) or 0.
    pub addr: u64,
    /// PC.
    pub pc: u64,
}

/// Builds the fault message for a synchronous exception from EL0 that is not a
/// syscall. `far` is FAR_EL2 (meaningful for aborts).
pub fn decode(esr: u64, far: u64, pc: u64, sp: u64, spsr: u64) -> FaultInfo {
    let class = ec::class(esr);
    match class {
        ec::DABT_LOWER | ec::IABT_LOWER => {
            let mut mrs = [0; 5];
            mrs[vm_fault::IP] = pc;
            mrs[vm_fault::ADDR] = far;
            mrs[vm_fault::PREFETCH_FAULT] = (class == ec::IABT_LOWER) as u64;
            mrs[vm_fault::FSR] = esr;
            FaultInfo {
                label: label::VM_FAULT,
                mrs,
                len: vm_fault::LENGTH,
                esr,
                addr: far,
                pc,
            }
        }
        _ => {
            let mut mrs = [0; 5];
            mrs[user_exception::FAULT_IP] = pc;
            mrs[user_exception::SP] = sp;
            mrs[user_exception::SPSR] = spsr;
            mrs[user_exception::NUMBER] = class;
            mrs[user_exception::CODE] = vcpos_abi::esr::iss(esr);
            FaultInfo {
                label: label::USER_EXCEPTION,
                mrs,
                len: user_exception::LENGTH,
                esr,
                addr: 0,
                pc,
            }
        }
    }
}

/// What happened, in words: e.g. "data abort (write, translation fault, level 3)".
pub fn describe(f: &FaultInfo, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
    let class = ec::class(f.esr);
    match class {
        ec::DABT_LOWER | ec::IABT_LOWER => {
            let kind = if class == ec::DABT_LOWER {
                "data abort"
            } else {
                "instruction abort"
            };
            let fsc = f.esr & 0x3f;
            let what = match fsc >> 2 {
                0b0001 => "translation fault",
                0b0010 => "access flag fault",
                0b0011 => "permission fault",
                _ if fsc == 0x21 => "alignment fault",
                _ => "other fault",
            };
            let rw = if class == ec::DABT_LOWER {
                if f.esr & (1 << 6) != 0 {
                    "write, "
                } else {
                    "read, "
                }
            } else {
                ""
            };
            write!(out, "{kind} ({rw}{what}, level {})", fsc & 3)
        }
        ec::UNKNOWN => write!(out, "undefined instruction"),
        ec::FP_ACCESS => write!(out, "FP/SIMD access (PDs are built without FP)"),
        ec::PC_ALIGN => write!(out, "PC alignment fault"),
        ec::SP_ALIGN => write!(out, "SP alignment fault"),
        ec::BRK64 => write!(out, "breakpoint (brk #{:#x})", f.esr & 0xffff),
        ec::SYSREG => write!(out, "trapped system register access"),
        ec::ILLEGAL_STATE => write!(out, "illegal execution state"),
        ec::HVC64 | ec::SMC64 => write!(out, "hypervisor/secure monitor call from a PD"),
        ec::SERROR => write!(
            out,
            "SError (asynchronous abort, syndrome {:#x})",
            vcpos_abi::esr::iss(f.esr)
        ),
        _ => write!(out, "exception class {class:#x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: &FaultInfo) -> String {
        let mut s = String::new();
        describe(f, &mut s).unwrap();
        s
    }

    #[test]
    fn data_abort_write_translation() {
        // EC=0x24, WnR=1, DFSC=0b000111 (translation fault level 3).
        let esr = (ec::DABT_LOWER << 26) | (1 << 25) | (1 << 6) | 0x07;
        let f = decode(esr, 0xdead_0000, 0x20_0123, 0, 0);
        assert_eq!(f.label, label::VM_FAULT);
        assert_eq!(f.mrs[vm_fault::ADDR], 0xdead_0000);
        assert_eq!(f.mrs[vm_fault::PREFETCH_FAULT], 0);
        assert_eq!(text(&f), "data abort (write, translation fault, level 3)");
    }

    #[test]
    fn instruction_abort_and_undefined() {
        let f = decode((0x20 << 26) | 0x0f, 0x1000, 0x1000, 0, 0);
        assert_eq!(f.mrs[vm_fault::PREFETCH_FAULT], 1);
        assert_eq!(text(&f), "instruction abort (permission fault, level 3)");
        let u = decode(1 << 25, 0, 0x20_0000, 0xff_ffff_d000, 0);
        assert_eq!(u.label, label::USER_EXCEPTION);
        assert_eq!(u.mrs[user_exception::SP], 0xff_ffff_d000);
        assert_eq!(text(&u), "undefined instruction");
    }
}
