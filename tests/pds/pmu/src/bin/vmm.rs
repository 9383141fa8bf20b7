//! PMU isolation test, the VMM: runs a tiny guest that tries to open the PMU to EL0
//! (`PMUSERENR_EL0`), enable the cycle counter and read it, then calls `hvc #0`. Every
//! PMU access must reach this VMM as a trapped system register (which reads as zero,
//! as in the Linux VMM). Then the two children try the PMU from EL0 themselves:
//! `pmu-writer` writes `PMUSERENR_EL0`, `pmu-reader` reads `PMCCNTR_EL0`; both must
//! be stopped by the kernel with a fault, which arrives here. Prints
//! `TEST PASS: pmu` once all of that has happened.
//!
//! System: `tests/systems/pmu.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::{debug_println, get_mr, protection_domain, Channel, Child, Fault, Handler, MessageInfo, Vcpu};
use vcpos_abi::esr::{self, ec, SysregAccess};
use vcpos_abi::fault::label;
use vcpos_abi::vcpu::{reg, VCPU_FAULT_ESR};
use vcpos_test_support::{ensure, fail, shared_words, TestFailed, Words};

const TEST: &str = "pmu";
const VCPU: Vcpu = Vcpu::new(0);
const WRITER: Child = Child::new(1);
const READER: Child = Child::new(2);
const WRITER_CHANNEL: Channel = Channel::new(1);
const READER_CHANNEL: Channel = Channel::new(2);
/// Guest-physical address of the guest code (the VM's map of `guest_code`).
const GUEST_ENTRY: u64 = 0x4000_0000;

/// The guest, run at EL1 with the MMU off (encodings from `llvm-mc -show-encoding`).
const GUEST_CODE: [u32; 9] = [
    0xd280_01e0, // mov x0, #0xf
    0xd51b_9e00, // msr pmuserenr_el0, x0    (EL0 may use the PMU)
    0xd280_0821, // mov x1, #0x41
    0xd51b_9c01, // msr pmcr_el0, x1         (counters on)
    0xd2b0_0003, // mov x3, #0x80000000
    0xd51b_9c23, // msr pmcntenset_el0, x3   (cycle counter on)
    0xd53b_9d02, // mrs x2, pmccntr_el0
    0xd400_0002, // hvc #0
    0x1400_0000, // b .
];

/// What the guest's PMU accesses must look like when they reach the VMM, in order.
const EXPECTED_TRAPS: [SysregAccess; 4] = [
    SysregAccess {
        encoding: (3, 3, 9, 14, 0),
        rt: 0,
        read: false,
    }, // msr pmuserenr_el0, x0
    SysregAccess {
        encoding: (3, 3, 9, 12, 0),
        rt: 1,
        read: false,
    }, // msr pmcr_el0, x1
    SysregAccess {
        encoding: (3, 3, 9, 12, 1),
        rt: 3,
        read: false,
    }, // msr pmcntenset_el0, x3
    SysregAccess {
        encoding: (3, 3, 9, 13, 0),
        rt: 2,
        read: true,
    }, // mrs x2, pmccntr_el0
];

fn guest_memory() -> Words {
    shared_words!(guest_code, size = guest_code_size, n = 8)
}

struct Vmm {
    traps: [Option<SysregAccess>; 4],
    count: usize,
    guest_done: bool,
    writer_faulted: bool,
    reader_faulted: bool,
}

impl Vmm {
    fn guest_exit(&mut self) -> Result<Option<MessageInfo>, TestFailed> {
        let (esr, pc) = (get_mr(VCPU_FAULT_ESR), get_mr(1));
        match esr::class(esr) {
            ec::SYSREG => {
                let access = SysregAccess::decode(esr);
                ensure!(
                    TEST,
                    self.count < self.traps.len(),
                    "more guest PMU traps than expected: {access:?}"
                );
                self.traps[self.count] = Some(access);
                self.count += 1;
                if access.read && access.rt != 31 {
                    let _ = VCPU.write_reg(u64::from(access.rt), 0);
                }
                let _ = VCPU.write_reg(reg::PC, pc + esr::instruction_length(esr));
                Ok(Some(MessageInfo::new(0, 0)))
            }
            ec::HVC64 => {
                let _ = VCPU.stop();
                let seen = &self.traps[..self.count];
                ensure!(
                    TEST,
                    seen.iter().copied().eq(EXPECTED_TRAPS.iter().copied().map(Some)),
                    "the guest's PMU accesses reached the VMM as {seen:?}, expected {EXPECTED_TRAPS:?} \
                     (not trapped: the guest owns the PMU)"
                );
                let x2 = VCPU.read_reg(2).unwrap_or(u64::MAX);
                ensure!(
                    TEST,
                    x2 == 0,
                    "the guest read PMCCNTR_EL0 = {x2:#x}, expected the VMM's 0"
                );
                debug_println!(
                    "pmu-vmm: the guest's {} PMU accesses all trapped to the VMM",
                    self.count
                );
                self.guest_done = true;
                WRITER_CHANNEL.notify();
                READER_CHANNEL.notify();
                Ok(None)
            }
            _ => Err(fail(
                TEST,
                format_args!("unexpected guest exit: ESR {esr:#x} at pc {pc:#x}"),
            )),
        }
    }
}

impl Handler for Vmm {
    type Error = TestFailed;

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, TestFailed> {
        if child == Child::new(VCPU.index()) {
            ensure!(
                TEST,
                msg_info.label() == label::VCPU_FAULT,
                "guest exit with label {}",
                msg_info.label()
            );
            return self.guest_exit();
        }
        let fault = msg_info.fault();
        let _ = child.stop();
        ensure!(
            TEST,
            self.guest_done,
            "child {} faulted before the guest ran: {fault}",
            child.index()
        );
        let Fault::UserException { ec, .. } = fault else {
            return Err(fail(
                TEST,
                format_args!("child {}: not a user exception: {fault}", child.index()),
            ));
        };
        if child == WRITER {
            ensure!(
                TEST,
                ec == esr::ec::UNKNOWN || ec == esr::ec::SYSREG,
                "writer: exception class {ec:#x}"
            );
            self.writer_faulted = true;
        } else if child == READER {
            ensure!(
                TEST,
                ec == esr::ec::SYSREG,
                "reader: exception class {ec:#x}, expected a trapped system register"
            );
            self.reader_faulted = true;
        } else {
            return Err(fail(TEST, format_args!("fault from unknown child {}", child.index())));
        }
        debug_println!("pmu-vmm: child {} stopped by the kernel: {fault}", child.index());
        if self.writer_faulted && self.reader_faulted {
            debug_println!("TEST PASS: {TEST}");
        }
        Ok(None)
    }
}

#[protection_domain]
fn init() -> Vmm {
    let mem = guest_memory();
    for (i, pair) in GUEST_CODE.chunks(2).enumerate() {
        let hi = pair.get(1).copied().unwrap_or(0);
        mem.get(i).store(u64::from(pair[0]) | (u64::from(hi) << 32), SeqCst);
    }
    if let Err(e) = VCPU.restart(GUEST_ENTRY) {
        let _ = fail(TEST, format_args!("cannot start the vCPU: {e}"));
    }
    Vmm {
        traps: [None; 4],
        count: 0,
        guest_done: false,
        writer_faulted: false,
        reader_faulted: false,
    }
}
