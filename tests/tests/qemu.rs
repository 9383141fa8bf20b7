//! QEMU integration tests: each boots one system from `tests/systems/` (or the root
//! `system.xml`, the Linux VM) and checks its serial transcript. They need the target
//! artifacts (`tools/build-targets.sh`) and, for the root system, the guest files
//! (`tools/guest-image.sh`); `./test.sh` makes both first, and the tests fail without them.

use vcpos_tests::{boot, build_system, disk, find_fault, linux, pass_line, workspace_root, Transcript};
use vcpos_tool::runner::{Device, Step};

/// Asserts that the kernel's fault report about `pd` (naming the PD, the fault kind,
/// the address and the PC) comes before the `TEST PASS: <test>` line.
fn assert_fault_then_pass(t: &Transcript, pd: &str, test: &str) {
    t.assert_pass(test);
    let fault = find_fault(t.output(), pd).unwrap_or_else(|e| t.fail(&e));
    let pass = pass_line(t.output(), test).unwrap_or_else(|| t.fail("no pass line"));
    if pass <= fault.index {
        t.fail(&format!(
            "'TEST PASS: {test}' came before the kernel's fault report about '{pd}'"
        ));
    }
}

#[test]
fn hello() {
    boot("hello").assert_pass("hello");
}

/// PPC and notifications between two PDs.
#[test]
fn pingpong() {
    boot("pingpong").assert_pass("pingpong");
}

/// A root PD faults: the kernel reports it and stops only that PD; the other PDs then
/// prove the rest of the system still runs.
#[test]
fn fault() {
    assert_fault_then_pass(&boot("fault"), "crasher", "fault-isolation");
}

/// A child PD faults: the fault goes to its parent, which restarts it.
#[test]
fn child_fault() {
    assert_fault_then_pass(&boot("child-fault"), "faulty", "child-fault");
}

/// A child PD panics: the runtime prints the panic, the parent gets the fault.
#[test]
fn panic() {
    let t = boot("panic");
    t.assert_pass("panic");
    if !t
        .output()
        .lines()
        .any(|l| l.contains("panicker") && l.contains("panicked at"))
    {
        t.fail("no 'panicker: panicked at ...' line from the PD runtime");
    }
}

/// Two PDs at one priority share the CPU by budget; the thread-ID register TPIDR_EL0
/// is each PD's own (saved and restored with its registers).
#[test]
fn tls() {
    boot("tls").assert_pass("tls");
}

/// A guest's PMU accesses trap to its VMM, and PDs that touch the PMU (reading the
/// cycle counter, opening it to EL0) are stopped with a fault, whatever the guest did.
#[test]
fn pmu() {
    let t = boot("pmu");
    assert_fault_then_pass(&t, "pmu-writer", "pmu");
    assert_fault_then_pass(&t, "pmu-reader", "pmu");
}

/// Invocations of missing or wrong capabilities return errors and harm nobody.
#[test]
fn badcap() {
    boot("badcap").assert_pass("badcap");
}

/// The system `./run.sh` boots (the Linux VM, its disk served by vcp_blk, a native
/// disk client), with a blank disk as `run.sh` attaches it, comes up to the guest's
/// shell prompt with the disk, and a command typed on the serial console runs.
#[test]
fn root_system_boots() {
    let system = workspace_root().join("system.xml");
    let mut script = linux::until_ready();
    script.extend([
        linux::command("echo vcpos-$((6*7))"),
        Step::wait_line("vcpos-42"),
        Step::wait_text(linux::PROMPT),
    ]);
    let opts = linux::options(
        linux::timeout(linux::LINUX_TIMEOUT, 1),
        script,
        linux::UNEXPECTED_RESTART,
    );
    let image = disk::scratch_disk("root-system");
    disk::create_disk(&image, disk::DISK_MIB, false).unwrap_or_else(|e| panic!("{e}"));
    let devices = [Device::Disk {
        file: image.clone(),
        read_only: false,
        bus: None,
    }];
    let t = build_system("root-system", &system, "debug")
        .and_then(|b| b.boot_with_devices(&opts, &devices))
        .unwrap_or_else(|e| panic!("root-system: {e}"));
    t.assert_script_done();
    for line in [
        "vcp-blk: serving 2 clients",
        "linux_vmm: disk: vcp_blk window of 520192 blocks",
        "blk-client: read-write: 4 rounds",
        "vcpos-guest: disk vda 520192 sectors",
    ] {
        if !t.output().contains(line) {
            t.fail(&format!("no line containing '{line}'"));
        }
    }
    let _ = std::fs::remove_file(&image);
}

/// The root system's guest RAM is mapped at stage 2 with 2 MiB block descriptors, not
/// 4 KiB pages (every stage-1 access of a guest TLB refill walks stage 2, one level
/// fewer with blocks): its RAM regions have 2 MiB pages, which the builder maps as
/// `attr::LARGE` and the kernel as level-2 blocks (`kernel/core/src/vspace.rs`).
#[test]
fn root_system_guest_ram_uses_stage2_blocks() {
    let path = workspace_root().join("system.xml");
    let system = vcpos_tool::sdf::load_with(&path, &[vcpos_tests::artifact_dir(), vcpos_tests::guest_dir()])
        .unwrap_or_else(|e| panic!("{}: {e:?}", path.display()))
        .system;
    let vm = system
        .pds
        .iter()
        .find_map(|pd| pd.virtual_machine.as_ref())
        .expect("system.xml has a VM");
    let ram: Vec<_> = vm
        .maps
        .iter()
        .map(|m| &system.memory_regions[m.mr])
        .filter(|mr| mr.phys_addr.is_none())
        .collect();
    assert!(!ram.is_empty(), "the VM maps no RAM");
    for mr in ram {
        assert_eq!(
            mr.page_size,
            vcpos_abi::vspace::LARGE_PAGE_SIZE,
            "guest RAM region '{}' has small pages",
            mr.name
        );
    }
}
