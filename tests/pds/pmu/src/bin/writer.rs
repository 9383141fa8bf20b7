//! PMU isolation test, a child of `pmu-vmm`: when notified, tries to open the PMU to
//! EL0 itself by writing `PMUSERENR_EL0`. The kernel must stop it with a fault; if the
//! write returns, it prints `TEST FAIL`.
//!
//! System: `tests/systems/pmu.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, ChannelSet, Handler, Infallible};
use vcpos_test_support::sysreg::set_pmuserenr_el0;

struct Writer;

impl Handler for Writer {
    type Error = Infallible;

    fn notified(&mut self, _: ChannelSet) -> Result<(), Infallible> {
        debug_println!("pmu-writer: writing PMUSERENR_EL0");
        set_pmuserenr_el0(0xf);
        debug_println!("TEST FAIL: pmu: a PD wrote PMUSERENR_EL0");
        Ok(())
    }
}

#[protection_domain]
fn init() -> Writer {
    Writer
}
