//! child-fault test, the parent: receives its child's VM fault through `fault()`,
//! checks the decoded fault, restarts the child at its entry point once, and reports
//! success when the restarted child notifies.
//!
//! System: `tests/systems/child-fault.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::{debug_println, protection_domain, Channel, ChannelSet, Child, Fault, Handler, MessageInfo};
use vcpos_abi::esr;
use vcpos_test_support::{ensure, fail, shared_words, TestFailed, Words, UNMAPPED_ADDR};

const TEST: &str = "child-fault";
/// The child, by its `id` in the system file.
const CHILD: Child = Child::new(3);
/// Channel to the child.
const CHILD_CHANNEL: Channel = Channel::new(1);
/// seL4/vcpos label of a VM fault.
const VM_FAULT_LABEL: u64 = 6;
/// ESR ISS bit 6 (WnR): the access was a write.
const ISS_WNR: u64 = 1 << 6;

/// The shared region: word 0 = the child's entry point, word 1 = its runs so far.
fn region() -> Words {
    shared_words!(child_info, size = child_info_size, n = 2)
}

struct Restarter {
    restarts: u64,
}

impl Handler for Restarter {
    type Error = TestFailed;

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, TestFailed> {
        ensure!(
            TEST,
            child == CHILD,
            "fault from child {}, expected {}",
            child.index(),
            CHILD.index()
        );
        if self.restarts > 0 {
            // A second fault: the restart did not take. Stop the child for good.
            let _ = child.stop();
            return Err(fail(
                TEST,
                format_args!("child faulted again after a restart: {}", msg_info.fault()),
            ));
        }
        ensure!(
            TEST,
            msg_info.label() == VM_FAULT_LABEL,
            "fault label {}, expected {VM_FAULT_LABEL}",
            msg_info.label()
        );
        let fault = msg_info.fault();
        debug_println!("restarter: child {} faulted: {fault}", child.index());
        let Fault::VmFault {
            ip,
            addr,
            prefetch,
            fsr,
        } = fault
        else {
            return Err(fail(TEST, format_args!("not decoded as a VM fault: {fault}")));
        };
        ensure!(
            TEST,
            addr == UNMAPPED_ADDR as u64,
            "fault address {addr:#x}, expected {UNMAPPED_ADDR:#x}"
        );
        ensure!(TEST, !prefetch, "reported as an instruction fetch");
        ensure!(TEST, ip >= 0x20_0000, "implausible fault pc {ip:#x}");
        ensure!(
            TEST,
            esr::class(fsr) == esr::ec::DABT_LOWER,
            "fsr {fsr:#x} is not a lower-EL data abort"
        );
        ensure!(TEST, fsr & ISS_WNR != 0, "fsr {fsr:#x} does not say write");
        let runs = region().get(1).load(SeqCst);
        ensure!(TEST, runs == 1, "child reports {runs} runs before its first fault");
        let entry = region().get(0).load(SeqCst) as usize;
        ensure!(TEST, entry != 0, "child did not record its entry point");
        if let Err(e) = child.restart(entry) {
            return Err(fail(TEST, format_args!("restart at {entry:#x} failed: {e}")));
        }
        self.restarts += 1;
        debug_println!("restarter: restarted child {} at {entry:#x}", child.index());
        // Restarted explicitly: do not reply to the fault.
        Ok(None)
    }

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(CHILD_CHANNEL),
            "notified on unexpected channels {}",
            channels.display()
        );
        ensure!(
            TEST,
            self.restarts == 1,
            "child notified after {} restarts",
            self.restarts
        );
        let runs = region().get(1).load(SeqCst);
        ensure!(TEST, runs == 2, "child reports {runs} runs, expected 2");
        debug_println!("TEST PASS: {TEST}");
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Restarter { restarts: 0 }
}
