//! QEMU integration tests: each boots one system from `tests/systems/` (or the root
//! `system.xml`) and checks its serial transcript. They need the target artifacts
//! (`tools/build-targets.sh`; `./test.sh` builds them first) and fail without them.

use vcpos_tests::{boot, boot_system, find_fault, pass_line, timeout, workspace_root};

/// The PD of `fault.system` that crashes on purpose.
const CRASHER: &str = "crasher";

#[test]
fn hello() {
    boot("hello").assert_pass("hello");
}

#[test]
fn pingpong() {
    boot("pingpong").assert_pass("pingpong");
}

/// A PD with no parent faults: the kernel reports it (PD, kind, address, PC) and stops
/// only that PD; another PD then proves the rest of the system still runs.
#[test]
fn fault() {
    let t = boot("fault");
    t.assert_pass("fault-isolation");
    let f = find_fault(t.output(), CRASHER).unwrap_or_else(|e| t.fail(&e));
    let pass = pass_line(t.output(), "fault-isolation").unwrap_or_else(|| t.fail("no pass line"));
    if pass <= f.index {
        t.fail("'TEST PASS: fault-isolation' came before the kernel's fault report");
    }
}

#[test]
fn child_fault() {
    boot("child_fault").assert_pass("child_fault");
}

#[test]
fn badcap() {
    boot("badcap").assert_pass("badcap");
}

/// The system `./run.sh` boots starts and reports success.
#[test]
fn root_system_boots() {
    let system = workspace_root().join("system.xml");
    match boot_system("root-system", &system, "debug", timeout()) {
        Ok(t) => t.assert_any_pass(),
        Err(e) => panic!("root system.xml: {e}"),
    }
}
