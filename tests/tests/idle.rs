//! QEMU test of the idle-guest measurement: boots `tests/systems/linux-idle.system`
//! (the Linux VM plus the `idle_monitor` PD below it), waits for the monitor's
//! `BENCH idle_guest ...` line and checks it came after the guest's ready line and its
//! figures are plausible for an idle guest (some kernel entries and guest exits, fewer
//! than `MAX_PLAUSIBLE_ENTRIES_PER_S` entries per second). Needs the target artifacts
//! and the guest files, like `tests/tests/linux.rs`.

use std::time::Duration;

use vcpos_tests::bench::idle::{self, check_plausible, figures, SCENARIO};
use vcpos_tests::linux::{self, LINUX_TIMEOUT};
use vcpos_tests::scenario_system;

/// Boot, the monitor's wait for an idle guest (3 s) and its 5 s window.
#[test]
fn idle_guest_kernel_entries_are_measured_and_plausible() {
    let timeout = linux::timeout(LINUX_TIMEOUT + Duration::from_secs(60), 1);
    let t = linux::run(SCENARIO, &scenario_system(SCENARIO), &idle::options(timeout));
    let f = figures(&t.capture)
        .and_then(|f| check_plausible(&f).map(|()| f))
        .unwrap_or_else(|e| t.fail(&e));
    eprintln!("{}", idle::describe(&f));
}
