//! PMU isolation test, a child of `pmu-vmm`: when notified (after the guest tried to
//! open the PMU to EL0), reads the cycle counter `PMCCNTR_EL0`. The kernel must stop
//! it with a fault; if the read returns, it prints `TEST FAIL`.
//!
//! System: `tests/systems/pmu.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};
use vcpos_test_support::sysreg::pmccntr_el0;

struct Reader;

impl Handler for Reader {
    type Error = Infallible;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        debug_println!("pmu-reader: reading PMCCNTR_EL0");
        let v = pmccntr_el0();
        debug_println!("TEST FAIL: pmu: a PD read PMCCNTR_EL0 = {v:#x} (PMU open to EL0)");
        Ok(())
    }
}

#[protection_domain]
fn init() -> Reader {
    Reader
}
