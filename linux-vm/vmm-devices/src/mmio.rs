//! Decoding a guest's stage-2 data abort (ESR_EL2, EC 0x24) into an MMIO access.
//! Exception classes and the instruction length come from [`vcpos_abi::esr`].
//!
//! The VMM gets the guest-physical address and ESR_EL2 in a VM fault message. When the
//! syndrome is valid (ISV = 1: a single load or store of a general-purpose register
//! without writeback) the ISS says everything needed to emulate it: size, direction,
//! register and extension. Without a valid syndrome we report [`MmioError::NoSyndrome`]
//! instead of decoding instructions; Linux's MMIO accessors (`readl`, `writeb`, ...)
//! always produce a valid syndrome.

use core::fmt;

use vcpos_abi::esr::{self, ec};

const ISS_SSE: u64 = 1 << 21;
const ISS_SF: u64 = 1 << 15;
const ISS_AR: u64 = 1 << 14;
const ISS_CM: u64 = 1 << 8;
const ISS_S1PTW: u64 = 1 << 7;

/// Why a data abort cannot be emulated as an MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// The ESR is not a data abort from the guest (EC carried here); an instruction
    /// abort (EC 0x20) means the guest jumped to an address with no memory.
    NotDataAbort {
        /// ESR.EC.
        ec: u64,
    },
    /// ISV = 0: the instruction (load/store pair, writeback addressing, SIMD/FP
    /// register, atomic, ...) gives no syndrome, and the VMM does not decode instructions.
    NoSyndrome,
    /// A cache maintenance instruction (`DC`/`IC` by VA) hit device space; it has no
    /// data to emulate (the VMM may skip the instruction).
    CacheMaintenance,
    /// The stage-1 translation table walk itself touched an unmapped guest-physical
    /// address: the guest's page tables point outside RAM.
    PageTableWalk,
}

impl fmt::Display for MmioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MmioError::NotDataAbort { ec } if *ec == ec::IABT_LOWER => {
                write!(
                    f,
                    "guest instruction fetch from unmapped guest-physical memory (EC {ec:#x})"
                )
            }
            MmioError::NotDataAbort { ec } => {
                write!(f, "not a guest data abort (ESR_EL2.EC {ec:#x}, expected 0x24)")
            }
            MmioError::NoSyndrome => write!(
                f,
                "MMIO access without a valid syndrome (ISV=0: load/store pair, writeback, SIMD \
                 or atomic instruction); instructions are not decoded"
            ),
            MmioError::CacheMaintenance => {
                write!(f, "cache maintenance instruction on emulated device memory")
            }
            MmioError::PageTableWalk => {
                write!(
                    f,
                    "guest stage-1 page table walk touched unmapped guest-physical memory"
                )
            }
        }
    }
}

/// One guest load or store to emulated device memory, decoded from ESR_EL2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Access size in bytes: 1, 2, 4 or 8 (ISS.SAS).
    pub size: u8,
    /// True for a store (ISS.WnR).
    pub write: bool,
    /// The transfer register x0..=x30 (= its `VcpuReadReg`/`VcpuWriteReg` number), or
    /// `None` for the zero register (SRT 31): stores write 0, loads are discarded.
    pub reg: Option<u8>,
    /// A load sign-extends the value (ISS.SSE: `LDRSB`, `LDRSH`, `LDRSW`).
    pub sign_extend: bool,
    /// The register is 64-bit `Xt` (ISS.SF); otherwise 32-bit `Wt`.
    pub sixty_four: bool,
    /// Acquire/release semantics (ISS.AR: `LDAR`, `STLR`); emulation is already ordered.
    pub acquire_release: bool,
}

impl MmioAccess {
    /// Decodes ESR_EL2 of a guest data abort.
    pub fn decode(esr: u64) -> Result<Self, MmioError> {
        let class = esr::class(esr);
        if class != ec::DABT_LOWER {
            return Err(MmioError::NotDataAbort { ec: class });
        }
        // Checked before ISV: these are not loads or stores of data at all.
        if esr & ISS_S1PTW != 0 {
            return Err(MmioError::PageTableWalk);
        }
        if esr & ISS_CM != 0 {
            return Err(MmioError::CacheMaintenance);
        }
        let Some(transfer) = esr::data_transfer(esr) else {
            return Err(MmioError::NoSyndrome);
        };
        Ok(MmioAccess {
            size: 1 << ((esr >> 22) & 3),
            write: transfer.write,
            reg: transfer.reg,
            sign_extend: esr & ISS_SSE != 0,
            sixty_four: esr & ISS_SF != 0,
            acquire_release: esr & ISS_AR != 0,
        })
    }

    /// Mask of the bytes this access transfers.
    pub const fn mask(&self) -> u64 {
        match self.size {
            8 => u64::MAX,
            s => (1u64 << (s as u32 * 8)) - 1,
        }
    }

    /// The value a store writes, given the transfer register's content (pass 0 when
    /// [`Self::reg`] is `None`): the low `size` bytes.
    pub const fn store_value(&self, reg_value: u64) -> u64 {
        reg_value & self.mask()
    }

    /// The register value a load leaves, given the device's value: truncated to the
    /// access size, then sign-extended (SSE) or zero-extended into `Xt`, or into `Wt`
    /// with the upper 32 bits cleared (as any write to a `W` register does).
    pub const fn load_result(&self, device_value: u64) -> u64 {
        let value = device_value & self.mask();
        let extended = if self.sign_extend && self.size < 8 {
            let shift = 64 - self.size as u32 * 8;
            (((value << shift) as i64) >> shift) as u64
        } else {
            value
        };
        if self.sixty_four {
            extended
        } else {
            extended & 0xffff_ffff
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vcpos_abi::esr::{ISS_ISV, ISS_WNR};

    /// Builds a data-abort ESR with IL=1 and ISV=1.
    fn esr(sas: u64, sse: bool, srt: u64, sf: bool, wnr: bool) -> u64 {
        (0x24 << 26)
            | esr::IL
            | ISS_ISV
            | (sas << 22)
            | (u64::from(sse) << 21)
            | (srt << 16)
            | (u64::from(sf) << 15)
            | (u64::from(wnr) << 6)
            | 0x07 // DFSC: translation fault, level 3
    }

    #[test]
    fn decodes_ldr_w_and_str_x() {
        // ldr w3, [x0]
        let a = MmioAccess::decode(esr(2, false, 3, false, false)).unwrap();
        assert_eq!(
            (a.size, a.write, a.reg, a.sign_extend, a.sixty_four),
            (4, false, Some(3), false, false)
        );
        // str x30, [x1]
        let a = MmioAccess::decode(esr(3, false, 30, true, true)).unwrap();
        assert_eq!((a.size, a.write, a.reg, a.sixty_four), (8, true, Some(30), true));
        // strb wzr, [x2]
        let a = MmioAccess::decode(esr(0, false, 31, false, true)).unwrap();
        assert_eq!((a.size, a.write, a.reg), (1, true, None));
        assert_eq!(a.store_value(0), 0);
        // ldrh w5
        assert_eq!(MmioAccess::decode(esr(1, false, 5, false, false)).unwrap().size, 2);
    }

    #[test]
    fn decodes_a_linux_readl_syndrome() {
        // ESR 0x93830007, what `ldr w3, [x1]` (Linux's readl) on an unmapped page
        // reports: EC 0x24, IL, ISV, SAS=2 (word), SRT=3, SF=0, WnR=0, DFSC 7.
        let a = MmioAccess::decode(0x9383_0007).unwrap();
        assert_eq!((a.size, a.write, a.reg, a.sixty_four), (4, false, Some(3), false));
        assert_eq!(esr::instruction_length(0x9383_0007), 4);
    }

    #[test]
    fn register_31_is_the_zero_register_not_sp() {
        // The vCPU register number 31 is SP_EL0; SRT 31 must never be passed on.
        assert_eq!(vcpos_abi::vcpu::reg::SP_EL0, 31);
        assert_eq!(vcpos_abi::vcpu::reg::X0, 0);
        let a = MmioAccess::decode(esr(2, false, 31, false, false)).unwrap();
        assert_eq!(a.reg, None);
    }

    #[test]
    fn rejects_what_it_cannot_emulate() {
        let no_isv = esr(2, false, 3, false, false) & !ISS_ISV;
        assert_eq!(MmioAccess::decode(no_isv), Err(MmioError::NoSyndrome));
        let ifetch = (ec::IABT_LOWER << esr::EC_SHIFT) | esr::IL | 0x07;
        assert_eq!(MmioAccess::decode(ifetch), Err(MmioError::NotDataAbort { ec: 0x20 }));
        let hvc = (ec::HVC64 << esr::EC_SHIFT) | esr::IL;
        assert_eq!(MmioAccess::decode(hvc), Err(MmioError::NotDataAbort { ec: 0x16 }));
        assert_eq!(
            MmioAccess::decode(no_isv | ISS_CM | ISS_WNR),
            Err(MmioError::CacheMaintenance)
        );
        assert_eq!(
            MmioAccess::decode(esr(3, false, 1, true, false) | ISS_S1PTW),
            Err(MmioError::PageTableWalk)
        );
        // The messages say what happened.
        assert!(MmioError::NoSyndrome.to_string().contains("ISV=0"));
        assert!(MmioError::NotDataAbort { ec: 0x20 }
            .to_string()
            .contains("instruction fetch"));
    }

    #[test]
    fn load_extension() {
        let ld = |sas, sse, sf| MmioAccess::decode(esr(sas, sse, 0, sf, false)).unwrap();
        // ldrb w0: zero-extend a byte, upper bits of the device value dropped.
        assert_eq!(ld(0, false, false).load_result(0x1234_5680), 0x80);
        // ldrsb x0: sign-extend to 64 bits.
        assert_eq!(ld(0, true, true).load_result(0x80), 0xffff_ffff_ffff_ff80);
        // ldrsb w0: sign-extend to 32 bits, upper half cleared.
        assert_eq!(ld(0, true, false).load_result(0x80), 0x0000_0000_ffff_ff80);
        // ldrsh x0 of a positive value.
        assert_eq!(ld(1, true, true).load_result(0x7fff), 0x7fff);
        // ldrsw x0.
        assert_eq!(ld(2, true, true).load_result(0x8000_0000), 0xffff_ffff_8000_0000);
        // ldr w0: upper half of the device value dropped.
        assert_eq!(ld(2, false, false).load_result(u64::MAX), 0xffff_ffff);
        // ldr x0.
        assert_eq!(ld(3, false, true).load_result(u64::MAX), u64::MAX);
        // A (malformed) SSE on a 64-bit access does not shift by 0 bits wrongly.
        assert_eq!(
            ld(3, true, true).load_result(0x8000_0000_0000_0001),
            0x8000_0000_0000_0001
        );
    }

    #[test]
    fn store_truncates() {
        let st = |sas| MmioAccess::decode(esr(sas, false, 7, sas == 3, true)).unwrap();
        assert_eq!(st(0).store_value(0xdead_beef), 0xef);
        assert_eq!(st(1).store_value(0xdead_beef), 0xbeef);
        assert_eq!(st(2).store_value(0x1_dead_beef), 0xdead_beef);
        assert_eq!(st(3).store_value(u64::MAX), u64::MAX);
    }

    #[test]
    fn any_esr_decodes_without_panicking() {
        // Walk a spread of ESR values, including every SAS/SSE/SF/SRT combination.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = if i % 2 == 0 { x } else { (0x24 << 26) | (x & 0x3ff_ffff) };
            if let Ok(a) = MmioAccess::decode(v) {
                assert!(matches!(a.size, 1 | 2 | 4 | 8));
                assert!(a.reg.is_none_or(|r| r < 31));
                let r = a.load_result(x);
                if !a.sixty_four {
                    assert_eq!(r >> 32, 0);
                }
                assert_eq!(a.store_value(x) & !a.mask(), 0);
            }
        }
    }
}
