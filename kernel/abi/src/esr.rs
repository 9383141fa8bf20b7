//! Exception syndromes (`ESR_ELx`): the exception classes and the decoding helpers
//! the kernel, its core and VMMs share, so the numbers live in one place.
//!
//! ESR layout: ISS2 in bits 55:32 (FEAT_LS64 and later), EC in 31:26, IL in 25, ISS
//! in 24:0. The class is always read through [`class`], which masks ISS2 away.

/// Bit position of the exception class.
pub const EC_SHIFT: u32 = 26;
/// The exception class is 6 bits wide.
pub const EC_MASK: u64 = 0x3f;
/// The instruction-specific syndrome (ISS), bits 24:0.
pub const ISS_MASK: u64 = 0x1ff_ffff;
/// IL: the trapped instruction is 32 bits long (else 16).
pub const IL: u64 = 1 << 25;

/// Exception classes (`ESR_ELx.EC`) the kernel and VMMs distinguish.
pub mod ec {
    /// Unknown reason (an undefined instruction lands here).
    pub const UNKNOWN: u64 = 0x00;
    /// Trapped WFI/WFE.
    pub const WFX: u64 = 0x01;
    /// FP/SIMD access trapped.
    pub const FP_ACCESS: u64 = 0x07;
    /// Illegal execution state.
    pub const ILLEGAL_STATE: u64 = 0x0e;
    /// SVC from AArch64.
    pub const SVC64: u64 = 0x15;
    /// HVC from AArch64.
    pub const HVC64: u64 = 0x16;
    /// SMC from AArch64.
    pub const SMC64: u64 = 0x17;
    /// Trapped MSR/MRS/system instruction.
    pub const SYSREG: u64 = 0x18;
    /// Instruction abort from a lower exception level.
    pub const IABT_LOWER: u64 = 0x20;
    /// PC alignment fault.
    pub const PC_ALIGN: u64 = 0x22;
    /// Data abort from a lower exception level.
    pub const DABT_LOWER: u64 = 0x24;
    /// SP alignment fault.
    pub const SP_ALIGN: u64 = 0x26;
    /// SError (asynchronous abort).
    pub const SERROR: u64 = 0x2f;
    /// BRK instruction.
    pub const BRK64: u64 = 0x3c;
}

/// The exception class of `esr` (bits 31:26 only; the bits above are ISS2).
pub const fn class(esr: u64) -> u64 {
    (esr >> EC_SHIFT) & EC_MASK
}

/// The instruction-specific syndrome of `esr`.
pub const fn iss(esr: u64) -> u64 {
    esr & ISS_MASK
}

/// Length in bytes of the trapped instruction (IL): 4 for every A64 instruction, 2
/// for a 16-bit T32 one. A handler that skips the instruction adds this to the PC.
pub const fn instruction_length(esr: u64) -> u64 {
    if esr & IL != 0 {
        4
    } else {
        2
    }
}

/// Data abort ISS: the syndrome fields below are valid.
pub const ISS_ISV: u64 = 1 << 24;
/// Data abort ISS: a store (write not read).
pub const ISS_WNR: u64 = 1 << 6;
/// Data abort ISS: the transfer register (SRT), bits 20:16.
const ISS_SRT_SHIFT: u64 = 16;
/// SRT value naming XZR/WZR.
const SRT_ZERO: u8 = 31;

/// The register transfer of a data abort with a valid syndrome (ISS.ISV): what the
/// kernel needs to finish an access a VMM emulated, and the base of a VMM's decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataTransfer {
    /// A store (ISS.WnR).
    pub write: bool,
    /// The transfer register x0..x30 (ISS.SRT); `None` for XZR.
    pub reg: Option<u8>,
}

/// The register transfer of data abort `esr`, or `None` without a valid syndrome.
pub const fn data_transfer(esr: u64) -> Option<DataTransfer> {
    if esr & ISS_ISV == 0 {
        return None;
    }
    let srt = ((esr >> ISS_SRT_SHIFT) & 0x1f) as u8;
    Some(DataTransfer {
        write: esr & ISS_WNR != 0,
        reg: if srt == SRT_ZERO { None } else { Some(srt) },
    })
}

/// A trapped `MSR`/`MRS` ([`ec::SYSREG`]) decoded from its ISS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysregAccess {
    /// The register's encoding: (Op0, Op1, CRn, CRm, Op2).
    pub encoding: (u8, u8, u8, u8, u8),
    /// The general register transferred (31 = the zero register).
    pub rt: u8,
    /// True for `MRS` (a read of the system register), false for `MSR`.
    pub read: bool,
}

impl SysregAccess {
    /// Decodes the ISS of a trapped system-register access (the caller checked the class).
    pub const fn decode(esr: u64) -> SysregAccess {
        const fn field(esr: u64, shift: u32, mask: u64) -> u8 {
            ((iss(esr) >> shift) & mask) as u8
        }
        SysregAccess {
            encoding: (
                field(esr, 20, 3),
                field(esr, 14, 7),
                field(esr, 10, 0xf),
                field(esr, 1, 0xf),
                field(esr, 17, 7),
            ),
            rt: field(esr, 5, 0x1f),
            read: iss(esr) & 1 != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_ignores_iss2_and_il() {
        // A data abort with ISS2 bits set (bits 32+) and IL.
        let esr = (0x5u64 << 32) | (ec::DABT_LOWER << EC_SHIFT) | IL | 0x47;
        assert_eq!(class(esr), ec::DABT_LOWER);
        assert_ne!(esr >> EC_SHIFT, ec::DABT_LOWER, "a shift alone would see ISS2 too");
        assert_eq!(iss(esr), 0x47);
        assert_eq!(instruction_length(esr), 4);
        assert_eq!(instruction_length(esr & !IL), 2);
    }

    #[test]
    fn sysreg_access_decodes_msr_and_mrs() {
        // `mrs x2, pmccntr_el0`: Op0 3, Op2 0, Op1 3, CRn 9, Rt 2, CRm 13, read.
        let mrs = (ec::SYSREG << EC_SHIFT) | IL | (3 << 20) | (3 << 14) | (9 << 10) | (2 << 5) | (13 << 1) | 1;
        assert_eq!(
            SysregAccess::decode(mrs),
            SysregAccess {
                encoding: (3, 3, 9, 13, 0),
                rt: 2,
                read: true
            }
        );
        // `msr pmuserenr_el0, x0`: Op0 3, Op1 3, CRn 9, CRm 14, Op2 0, write.
        let msr = (ec::SYSREG << EC_SHIFT) | IL | (3 << 20) | (3 << 14) | (9 << 10) | (14 << 1);
        assert_eq!(
            SysregAccess::decode(msr),
            SysregAccess {
                encoding: (3, 3, 9, 14, 0),
                rt: 0,
                read: false
            }
        );
        // The ISS QEMU reported for a PD's `mrs x8, pmccntr_el0` (tests/systems/pmu.system).
        let seen = SysregAccess::decode((ec::SYSREG << EC_SHIFT) | 0x30e51b);
        assert_eq!(seen.encoding, (3, 3, 9, 13, 0));
        assert!(seen.read);
    }
}
