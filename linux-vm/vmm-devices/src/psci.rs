//! PSCI 1.1 and SMCCC 1.1 firmware calls for a VM with one vCPU (conduit: HVC).
//!
//! The guest's `hvc #0` reaches the VMM as a vCPU fault (ESR_EL2.EC 0x16) with the PC
//! already past the instruction. The VMM reads x0..x3, calls [`handle`], writes
//! [`Outcome::x0`] back to x0 (x1..x3 are left unchanged, which SMCCC 1.1 allows) and
//! then acts on [`Outcome::action`]. Function ids follow SMCCC: bit 31 set for fast
//! calls, bit 30 for the SMC64 convention; only the low 32 bits of x0 are the id.

/// PSCI function ids (SMC32 forms; `| SMC64` gives the 64-bit form where one exists).
pub mod fid {
    /// Added to an SMC32 function id to make the SMC64 one.
    pub const SMC64: u32 = 0x4000_0000;
    /// PSCI_VERSION.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND (SMC32; SMC64 0xC400_0001).
    pub const CPU_SUSPEND: u32 = 0x8400_0001;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON (SMC32; SMC64 0xC400_0003).
    pub const CPU_ON: u32 = 0x8400_0003;
    /// AFFINITY_INFO (SMC32; SMC64 0xC400_0004).
    pub const AFFINITY_INFO: u32 = 0x8400_0004;
    /// MIGRATE (SMC32; SMC64 0xC400_0005).
    pub const MIGRATE: u32 = 0x8400_0005;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// MIGRATE_INFO_UP_CPU (SMC32; SMC64 0xC400_0007).
    pub const MIGRATE_INFO_UP_CPU: u32 = 0x8400_0007;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
    /// SYSTEM_SUSPEND (SMC32; SMC64 0xC400_000E).
    pub const SYSTEM_SUSPEND: u32 = 0x8400_000e;
    /// SYSTEM_RESET2 (SMC32; SMC64 0xC400_0012).
    pub const SYSTEM_RESET2: u32 = 0x8400_0012;
    /// SMCCC_VERSION.
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// SMCCC_ARCH_FEATURES.
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    /// SMCCC_ARCH_WORKAROUND_1 (Spectre v2 firmware mitigation).
    pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
}

/// PSCI return codes (as the signed values written to x0).
pub mod ret {
    /// Success (for AFFINITY_INFO: the CPU is ON).
    pub const SUCCESS: i64 = 0;
    /// Function not implemented.
    pub const NOT_SUPPORTED: i64 = -1;
    /// Bad argument (e.g. an MPIDR no vCPU has).
    pub const INVALID_PARAMETERS: i64 = -2;
    /// Refused.
    pub const DENIED: i64 = -3;
    /// CPU_ON for a CPU that is running.
    pub const ALREADY_ON: i64 = -4;
}

/// PSCI version reported: 1.1 (major in bits 31:16, minor in 15:0).
pub const PSCI_VERSION_1_1: u32 = 0x0001_0001;
/// SMCCC version reported: 1.1.
pub const SMCCC_VERSION_1_1: u32 = 0x0001_0001;
/// MIGRATE_INFO_TYPE: no Trusted OS, so migration is not needed.
pub const MIGRATE_INFO_TYPE_NOT_NEEDED: u64 = 2;
/// AFFINITY_INFO result for an affinity instance that is running.
pub const AFFINITY_ON: i64 = 0;

/// What the VMM does after writing [`Outcome::x0`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Resume the vCPU.
    Continue,
    /// SYSTEM_OFF: stop the VM for good.
    PowerOff,
    /// SYSTEM_RESET: restart the VM (or stop it, if the VMM cannot reboot guests).
    Reset,
    /// CPU_OFF on the only vCPU: no CPU is left running, so stop the VM as for
    /// [`Action::PowerOff`] (a successful CPU_OFF never returns to the caller).
    CpuOff,
}

/// Result of one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Value for the guest's x0.
    pub x0: u64,
    /// What to do next.
    pub action: Action,
}

impl Outcome {
    fn value(v: u64) -> Self {
        Outcome {
            x0: v,
            action: Action::Continue,
        }
    }

    fn status(code: i64) -> Self {
        Outcome {
            x0: code as u64,
            action: Action::Continue,
        }
    }
}

/// MPIDR affinity fields Aff3 (39:32) and Aff2..Aff0 (23:0).
const MPIDR_AFF_MASK: u64 = 0xff_00ff_ffff;

/// Affinity fields at `level` and above (PSCI AFFINITY_INFO's lowest_affinity_level).
fn affinity_mask(level: u64) -> Option<u64> {
    match level {
        0 => Some(MPIDR_AFF_MASK),
        1 => Some(0xff_00ff_ff00),
        2 => Some(0xff_00ff_0000),
        3 => Some(0xff_0000_0000),
        _ => None,
    }
}

/// Handles one PSCI/SMCCC call from the vCPU whose MPIDR affinity is `boot_mpidr`
/// (the only vCPU), with the guest's `x0..=x3` in `x`.
///
/// CPU_ON answers ALREADY_ON for the boot vCPU's MPIDR and INVALID_PARAMETERS for any
/// other: both are what PSCI specifies for one running CPU and no others, CPU_ON stays
/// a supported (mandatory) function, and Linux turns either into a clean "failed to
/// boot CPU" error instead of assuming PSCI is broken. With one `cpu@0` in the device
/// tree Linux does not call it at all.
pub fn handle(x: [u64; 4], boot_mpidr: u64) -> Outcome {
    let id = x[0] as u32;
    let smc64 = id & fid::SMC64 != 0;
    // SMC32 calls take 32-bit arguments: the upper halves are ignored.
    let arg = |i: usize| if smc64 { x[i] } else { x[i] & 0xffff_ffff };
    let base = id & !fid::SMC64;
    match (base, smc64) {
        (fid::PSCI_VERSION, false) => Outcome::value(PSCI_VERSION_1_1.into()),
        (fid::CPU_OFF, false) => Outcome {
            x0: ret::DENIED as u64,
            action: Action::CpuOff,
        },
        (fid::CPU_ON, _) => {
            if arg(1) & MPIDR_AFF_MASK == boot_mpidr & MPIDR_AFF_MASK {
                Outcome::status(ret::ALREADY_ON)
            } else {
                Outcome::status(ret::INVALID_PARAMETERS)
            }
        }
        (fid::AFFINITY_INFO, _) => match affinity_mask(arg(2)) {
            Some(mask) if arg(1) & mask == boot_mpidr & mask => Outcome::status(AFFINITY_ON),
            _ => Outcome::status(ret::INVALID_PARAMETERS),
        },
        (fid::MIGRATE_INFO_TYPE, false) => Outcome::value(MIGRATE_INFO_TYPE_NOT_NEEDED),
        (fid::SYSTEM_OFF, false) => Outcome {
            x0: 0,
            action: Action::PowerOff,
        },
        (fid::SYSTEM_RESET, false) => Outcome {
            x0: 0,
            action: Action::Reset,
        },
        (fid::PSCI_FEATURES, false) => Outcome::status(features(x[1] as u32)),
        (fid::SMCCC_VERSION, false) => Outcome::value(SMCCC_VERSION_1_1.into()),
        _ => Outcome::status(ret::NOT_SUPPORTED),
    }
}

/// PSCI_FEATURES: 0 for each function [`handle`] implements (no feature flags),
/// NOT_SUPPORTED for everything else. SMCCC_ARCH_FEATURES answers NOT_SUPPORTED for
/// every query, so it is listed as not supported here as well.
pub fn features(function_id: u32) -> i64 {
    let smc64 = function_id & fid::SMC64 != 0;
    let supported = matches!(
        (function_id & !fid::SMC64, smc64),
        (fid::CPU_ON | fid::AFFINITY_INFO, _)
            | (
                fid::PSCI_VERSION
                    | fid::CPU_OFF
                    | fid::MIGRATE_INFO_TYPE
                    | fid::SYSTEM_OFF
                    | fid::SYSTEM_RESET
                    | fid::PSCI_FEATURES
                    | fid::SMCCC_VERSION,
                false,
            )
    );
    if supported {
        ret::SUCCESS
    } else {
        ret::NOT_SUPPORTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOT_SUPPORTED: u64 = u64::MAX; // -1 as written to x0

    fn call(x0: u64, x1: u64, x2: u64) -> Outcome {
        handle([x0, x1, x2, 0], 0)
    }

    #[test]
    fn versions() {
        assert_eq!(call(0x8400_0000, 0, 0), Outcome::value(0x1_0001));
        assert_eq!(call(0x8000_0000, 0, 0), Outcome::value(0x1_0001));
        // Only the low 32 bits of x0 are the function id.
        assert_eq!(call(0xffff_ffff_8400_0000, 0, 0).x0, 0x1_0001);
    }

    #[test]
    fn linux_probe_sequence() {
        // psci_probe: version 1.1 → psci_1_0_init.
        assert_eq!(call(0x8400_0000, 0, 0).x0 >> 16, 1);
        // psci_init_smccc: PSCI_FEATURES(SMCCC_VERSION) then SMCCC_VERSION ≥ 1.1.
        assert_eq!(call(0x8400_000a, 0x8000_0000, 0).x0, 0);
        assert!(call(0x8000_0000, 0, 0).x0 >= 0x1_0001);
        // psci_init_cpu_suspend / system_suspend / system_reset2: not offered.
        for f in [0xc400_0001, 0xc400_000e, 0xc400_0012, 0x8400_0012] {
            assert_eq!(call(0x8400_000a, f, 0).x0, NOT_SUPPORTED, "{f:#x}");
        }
        // psci_migrate_info_type: 2 = no Trusted OS.
        assert_eq!(call(0x8400_0006, 0, 0).x0, 2);
        // arm64 Spectre checks: SMCCC_ARCH_FEATURES(WORKAROUND_1) not supported.
        assert_eq!(call(0x8000_0001, 0x8000_8000, 0).x0, NOT_SUPPORTED);
        // KVM vendor hypervisor service UID and TRNG_VERSION: not supported.
        assert_eq!(call(0x8600_ff01, 0, 0).x0, NOT_SUPPORTED);
        assert_eq!(call(0x8400_0050, 0, 0).x0, NOT_SUPPORTED);
    }

    #[test]
    fn features_of_implemented_functions() {
        for f in [
            0x8400_0000u64,
            0x8400_0002,
            0x8400_0003,
            0xc400_0003,
            0x8400_0004,
            0xc400_0004,
            0x8400_0006,
            0x8400_0008,
            0x8400_0009,
            0x8400_000a,
            0x8000_0000,
        ] {
            assert_eq!(call(0x8400_000a, f, 0).x0, 0, "{f:#x}");
        }
        for f in [
            0x8000_0001u64,
            0xc400_0000,
            0xc400_0008,
            0x8400_0005,
            0x8400_0007,
            0,
            u64::MAX,
        ] {
            assert_eq!(call(0x8400_000a, f, 0).x0, NOT_SUPPORTED, "{f:#x}");
        }
    }

    #[test]
    fn power_actions() {
        assert_eq!(call(0x8400_0008, 0, 0).action, Action::PowerOff);
        assert_eq!(call(0x8400_0009, 0, 0).action, Action::Reset);
        assert_eq!(call(0x8400_0002, 0, 0).action, Action::CpuOff);
        // SMC64 forms of these do not exist.
        assert_eq!(call(0xc400_0008, 0, 0), Outcome::status(ret::NOT_SUPPORTED));
        assert_eq!(call(0xc400_0009, 0, 0).action, Action::Continue);
    }

    #[test]
    fn cpu_on_for_one_vcpu() {
        // Boot vCPU: already on (both conventions); any other MPIDR: invalid.
        assert_eq!(call(0xc400_0003, 0, 0x4008_0000).x0, ret::ALREADY_ON as u64);
        assert_eq!(call(0x8400_0003, 0, 0x4008_0000).x0, ret::ALREADY_ON as u64);
        assert_eq!(call(0xc400_0003, 1, 0x4008_0000).x0, ret::INVALID_PARAMETERS as u64);
        assert_eq!(call(0xc400_0003, 0x100, 0).x0, ret::INVALID_PARAMETERS as u64);
        // SMC32: the upper half of target_cpu is ignored; SMC64 sees Aff3.
        assert_eq!(call(0x8400_0003, 0x1_0000_0000, 0).x0, ret::ALREADY_ON as u64);
        assert_eq!(call(0xc400_0003, 0x1_0000_0000, 0).x0, ret::INVALID_PARAMETERS as u64);
        // A non-zero boot MPIDR (bit 31 RES1 and MT bit are not affinity).
        let o = handle([0xc400_0003, 0x8000_0102, 0, 0], 0x102);
        assert_eq!(o.x0, ret::ALREADY_ON as u64);
    }

    #[test]
    fn affinity_info_levels() {
        assert_eq!(call(0xc400_0004, 0, 0).x0, 0, "vCPU 0 is on");
        assert_eq!(call(0x8400_0004, 0, 0).x0, 0);
        assert_eq!(call(0xc400_0004, 1, 0).x0, ret::INVALID_PARAMETERS as u64);
        // Level 1: cluster 0 contains the running vCPU, whatever Aff0 says.
        assert_eq!(call(0xc400_0004, 5, 1).x0, 0);
        assert_eq!(call(0xc400_0004, 0x100, 1).x0, ret::INVALID_PARAMETERS as u64);
        assert_eq!(call(0xc400_0004, 0xff_ffff, 3).x0, 0);
        assert_eq!(call(0xc400_0004, 0, 4).x0, ret::INVALID_PARAMETERS as u64);
        assert_eq!(call(0xc400_0004, 0, u64::MAX).x0, ret::INVALID_PARAMETERS as u64);
    }

    #[test]
    fn unknown_calls_are_not_supported() {
        for id in [
            0x8400_0001u64,
            0xc400_0001,
            0x8400_0005,
            0x8400_000b,
            0x8400_0013,
            0x0000_0000,
            0x0100_0000,
            0xc200_0000,
            0xffff_ffff,
        ] {
            let o = call(id, 0, 0);
            assert_eq!(o, Outcome::status(ret::NOT_SUPPORTED), "{id:#x}");
        }
    }

    #[test]
    fn any_input_is_answered() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let o = handle([x, x.rotate_left(7), x.rotate_left(23), x.rotate_left(41)], x >> 11);
            // Results are either a small status/value or a sign-extended error.
            assert!(o.x0 <= 0x1_0001 || (o.x0 as i64) < 0, "{:#x}", o.x0);
        }
    }
}
