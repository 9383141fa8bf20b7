//! QEMU integration tests: each boots one system from `tests/systems/` (or the root
//! `system.xml`, the Linux VM) and checks its serial transcript. They need the target
//! artifacts (`tools/build-targets.sh`) and, for the root system, the guest files
//! (`tools/guest-image.sh`); `./test.sh` makes both first, and the tests fail without them.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vcpos_tests::status::{get, get_retrying, guest, FORWARD_TAKEN};
use vcpos_tests::{boot, build_system, disk, find_fault, linux, pass_line, root, workspace_root, Transcript};
use vcpos_tool::runner::{Ending, Step};

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

/// The system `./run.sh` boots, with its devices as `run.sh` attaches them (a blank
/// disk in slot 31, a NIC in slot 23 with a free host port forwarded to the status
/// PD's port 80): vcp_blk serves the VM and blk_client, vcp_net serves the VM's eth0
/// and the status PD; the guest comes up to its shell prompt with its disk and its
/// DHCP address (10.0.2.15, through the VMM and vcp_net), a command typed on the
/// serial console runs, and the host fetches `/status.json` through the forward while
/// it boots (the status PD at 10.0.2.16 beside the guest on the same NIC). Then the
/// guest fetches `/status.json` and `/` from 10.0.2.16 itself (vcp_net's local
/// delivery between its clients 0 and 1, see [`check_guest_pages`]). A boot whose host
/// port was taken meanwhile (QEMU says so) is retried, up to 3 boots.
#[test]
fn root_system_boots() {
    const STATUS_SERVED: &str = "status: /status.json -> 200";
    let system = workspace_root().join("system.xml");
    let status_addr = root::status_address().unwrap_or_else(|e| panic!("{e}"));
    // An address on the guest's network that nobody holds (QEMU's DHCP gave the
    // guest the first, the status PD has the next).
    let nobody = Ipv4Addr::from(u32::from(status_addr) + 1);
    let image = disk::scratch_disk("root-system");
    disk::create_disk(&image, disk::DISK_MIB, false).unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..3 {
        let mut script = linux::until_ready();
        script.extend([linux::command("echo vcpos-$((6*7))"), Step::wait_line("vcpos-42")]);
        script.extend(guest::script(status_addr, nobody));
        script.push(Step::wait_text(STATUS_SERVED));
        let timeout = linux::timeout(linux::LINUX_TIMEOUT, 1);
        let opts = linux::options(timeout, script, linux::UNEXPECTED_RESTART);
        let port = vcpos_tests::net::free_port().unwrap_or_else(|e| panic!("{e}"));
        let devices = root::devices(&image, Some(port)).unwrap_or_else(|e| panic!("{e}"));
        // The host fetches the JSON page once it is served (checked below), then
        // again and again until QEMU ends, so the script's last step (the PD's line
        // for a request after the guest's pages) does not depend on which of guest
        // and status PD came up first. (The PD's lines for these requests may land
        // in the middle of the guest's: `guest::pages` takes them out.)
        let gone = Arc::new(AtomicBool::new(false));
        let fetcher = {
            let gone = gone.clone();
            let deadline = Instant::now() + timeout;
            std::thread::spawn(move || {
                let first = get_retrying(port, "/status.json", deadline, &gone);
                while first.is_ok() && !gone.load(Ordering::Relaxed) {
                    let _ = get(port, "/status.json");
                    std::thread::sleep(Duration::from_millis(200));
                }
                first
            })
        };
        let t = build_system("root-system", &system, "debug").and_then(|b| b.boot_with_devices(&opts, &devices));
        gone.store(true, Ordering::Relaxed);
        let json = fetcher.join().expect("fetch thread");
        let t = t.unwrap_or_else(|e| panic!("root-system: {e}"));
        if matches!(t.capture.ending, Ending::Exited(_)) && t.capture.stderr.contains(FORWARD_TAKEN) {
            continue;
        }
        t.assert_script_done();
        let serving = format!("status: serving http://{status_addr}:80/");
        for line in [
            "vcp-blk: virtio-blk transport at page offset 0xe00",
            "vcp-blk: serving 2 clients",
            "linux_vmm: disk: vcp_blk window of 520192 blocks",
            "blk-client: read-write: 4 rounds",
            "vcpos-guest: disk vda 520192 sectors",
            "vcp-net: virtio-net transport at page offset 0xe00",
            "vcp-net: client 0 mac 02:00:00:00:00:0f",
            "vcp-net: client 1 mac 02:00:00:00:00:16",
            "vcp-net: serving 2 clients",
            "vcpos-guest: net eth0 02:00:00:00:00:0f",
            "vcpos-guest: net eth0 10.0.2.15/24",
            &serving,
            STATUS_SERVED,
            "status: / -> 200",
        ] {
            if !t.output().contains(line) {
                t.fail(&format!("no line containing '{line}'"));
            }
        }
        if t.output().contains("linux_vmm: network VCP:") {
            t.fail("the VMM reported a network VCP error");
        }
        let (head, body) = json.unwrap_or_else(|e| t.fail(&e));
        if !head.starts_with("HTTP/1.0 200 OK") || !head.contains("application/json") {
            t.fail(&format!("/status.json: {head}"));
        }
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| t.fail(&format!("/status.json is not JSON ({e}): {body}")));
        // Threads by the system file's PD order, then the vCPU: vcp_blk, vcp_net,
        // linux_vmm, blk_client, status, the guest's vCPU.
        let threads = v["threads"]
            .as_array()
            .unwrap_or_else(|| t.fail(&format!("no threads in {body}")));
        if threads.len() != 6 {
            t.fail(&format!(
                "expected 6 threads (5 PDs, 1 vCPU), got {}: {body}",
                threads.len()
            ));
        }
        if v["own_index"] != 4 {
            t.fail(&format!(
                "/status.json: own_index is not 4 (status): {}",
                v["own_index"]
            ));
        }
        // vcp_net took the NIC's interrupts; the status PD was notified of the
        // request's frames and ran.
        for (i, what, k) in [
            (1, "vcp_net", "notifications_received"),
            (4, "status", "notifications_received"),
            (4, "status", "switches_to"),
            (4, "status", "time_run_ticks"),
        ] {
            if threads[i][k].as_u64().unwrap_or(0) == 0 {
                t.fail(&format!("thread {i} ({what}): {k} is 0: {}", threads[i]));
            }
        }
        check_guest_pages(&t, status_addr, nobody);
        let _ = std::fs::remove_file(&image);
        return;
    }
    panic!("root-system: QEMU could not forward a free host port in 3 tries ({FORWARD_TAKEN})");
}

/// The Linux guest fetched the status PD's pages from `addr` (its `eth0`, vcp_net's
/// client 0, to the status PD, client 1, on the same NIC) and printed them
/// ([`guest::script`]): `/status.json` came with `200 OK` and a JSON type, parses, and
/// is the status PD's view of the threads (6: 5 PDs and the vCPU; the PD names itself
/// thread 4 (`own_index`) and its own counters, read after the thread list, are at
/// least as far on as thread 4's; the PD got notifications (the frames of the guest's
/// requests come with vcp_net's notifications) and ran; vcp_net got notifications; the
/// vCPU exited to the VMM); `/` is the HTML page with a row per thread.
///
/// That the frames went from client to client inside vcp_net (local delivery) and not
/// out to QEMU's NIC and back: the guest's ARP table entry for `addr`, the MAC its TCP
/// segments to the PD were sent to, is the status PD's MAC (its console line), and
/// every reply to `arping` of `addr` comes from that MAC; vcp_net hands a unicast
/// frame for another client's MAC to that client only, never to the NIC
/// (`vcp-net/lib/tests/engine.rs`: `frames_between_clients_are_delivered_locally`).
/// QEMU's user network (slirp) answers ARP only for its own addresses (10.0.2.2,
/// .3): an `arping` of `nobody`, an address in its network that no client holds,
/// gets no reply, so slirp is no second owner of `addr` either.
fn check_guest_pages(t: &Transcript, addr: Ipv4Addr, nobody: Ipv4Addr) {
    let pages = guest::pages(t.output()).unwrap_or_else(|e| t.fail(&e));
    let head = pages.head.join("\n");
    if !pages.head.iter().any(|l| l.starts_with("HTTP/1.0 200 OK"))
        || !pages.head.iter().any(|l| l.contains("application/json"))
    {
        t.fail(&format!("the guest's /status.json: not 200 OK with JSON: {head}"));
    }
    let body = &pages.json;
    let v: serde_json::Value = serde_json::from_str(body)
        .unwrap_or_else(|e| t.fail(&format!("the guest's /status.json is not JSON ({e}): {body}")));
    let threads = v["threads"]
        .as_array()
        .unwrap_or_else(|| t.fail(&format!("no threads in the guest's {body}")));
    if threads.len() != 6 {
        t.fail(&format!(
            "the guest's /status.json: {} threads, not 6: {body}",
            threads.len()
        ));
    }
    let counter = |o: &serde_json::Value, k: &str| {
        o[k].as_u64()
            .unwrap_or_else(|| t.fail(&format!("the guest's /status.json: no counter {k} in {o}")))
    };
    for (i, what, k) in [
        (1, "vcp_net", "notifications_received"),
        (4, "status", "notifications_received"),
        (4, "status", "switches_to"),
        (4, "status", "time_run_ticks"),
    ] {
        if counter(&threads[i], k) == 0 {
            t.fail(&format!(
                "the guest's /status.json: thread {i} ({what}): {k} is 0: {}",
                threads[i]
            ));
        }
    }
    if v["own_index"] != 4 {
        t.fail(&format!(
            "the guest's /status.json: own_index is not 4 (status): {body}"
        ));
    }
    if counter(&v["own"], "kernel_entries") < counter(&threads[4], "kernel_entries") {
        t.fail("the guest's /status.json: own kernel entries behind thread 4's: thread 4 is not the status PD");
    }
    let exits: u64 = threads[5]["guest_exits"]
        .as_object()
        .map_or(0, |o| o.values().filter_map(serde_json::Value::as_u64).sum());
    if exits == 0 {
        t.fail(&format!(
            "the guest's /status.json: thread 5 (the vCPU) has no guest exits: {}",
            threads[5]
        ));
    }
    let html = &pages.html;
    if !html.starts_with("<!DOCTYPE html>")
        || !html.ends_with("</html>")
        || html.matches("<tr><td>thread ").count() != 6
        || !html.contains("<tr><td>thread 5</td>")
        || !html.contains("<tr><td>status PD (own)</td>")
    {
        t.fail(&format!(
            "the guest's / is not the HTML status page with 6 threads: {html}"
        ));
    }
    let pd_mac = guest::status_pd_mac(t.output()).unwrap_or_else(|| t.fail("no 'status: serving ... (mac [..])' line"));
    let arp = guest::arp(&pages.arp, addr, nobody);
    let shown = pages.arp.join("\n");
    if arp.entry != Some(pd_mac) {
        t.fail(&format!(
            "the guest's ARP entry for {addr} is not the status PD's MAC {pd_mac:02x?}: {shown}"
        ));
    }
    if arp.replies.is_empty() || arp.replies.iter().any(|m| *m != pd_mac) {
        t.fail(&format!(
            "arping {addr}: not only replies from the status PD's MAC {pd_mac:02x?}: {shown}"
        ));
    }
    if arp.nobody_responses != Some(0) || !arp.nobody_replies.is_empty() {
        t.fail(&format!(
            "arping {nobody} (nobody's address) got a reply or no count: {shown}"
        ));
    }
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
