//! QEMU test of the network VCP without a NIC: `tests/systems/vcp-net.system`, two
//! client PDs exchanging frames through vcp-net's local delivery, with MAC filtering
//! and spoof refusal checked end to end.

use vcpos_tests::{boot, build_system, scenario_system, timeout};
use vcpos_tool::runner::{CaptureOptions, Device};

/// The sender's unicasts, broadcast and final frame reach the receiver in order and
/// byte for byte; the spoofed frame and the frame for an unknown MAC reach nobody;
/// vcp-net reports the spoofing and gives each frame back with the right status. A
/// hostile client's raw descriptors are refused and its corrupt index cuts it off.
#[test]
fn vcp_net_local_delivery() {
    let t = boot("vcp-net");
    t.assert_pass("vcp-net");
    let out = t.output();
    let pos = |s: &str| {
        out.find(s)
            .unwrap_or_else(|| t.fail(&format!("no line containing '{s}'")))
    };
    pos("vcp-net: client 0 mac 02:00:00:00:00:01");
    pos("vcp-net: serving 3 clients");
    pos("net-client: sender connected: mac [02, 00, 00, 00, 00, 01]");
    pos("net-client: receiver connected: mac [02, 00, 00, 00, 00, 02]");
    let spoof = pos("vcp-net: client 0 sent with another source MAC: dropped (1 so far)");
    pos("net-client: receiver: local delivery of 1000 frames of 1514 bytes in");
    let received = pos("net-client: receiver: 40 unicast frames, 1000 full-size ones, the broadcast and fin, in order");
    let sender = pos("net-client: sender: 1044 frames sent, the spoofed one refused");
    let pass = pos("TEST PASS: vcp-net");
    if !(spoof < received && received < sender && sender < pass) {
        t.fail("expected: spoof report, receiver's check, sender's check, then the pass line");
    }
    let hostile = pos("net-client: hostile: of 4 raw descriptors, the bad length and the spoofed frame came back");
    let cut = pos("vcp-net: client 2: client cut off: peer's producer index jumped");
    if !(hostile < cut && cut < pass) {
        t.fail("expected: the hostile client's refusals, its cut-off, then the pass line");
    }
    if out.matches("cut off:").count() != 1 {
        t.fail("a client other than the hostile one was cut off");
    }
}

/// With QEMU's virtio-net-device on the user network: a client's ARP request for the
/// gateway leaves through the NIC (vcp-net's virtio-net driver, payload read in place
/// from the client's buffer) and the gateway's reply comes back to that client.
#[test]
fn vcp_net_nic_arp() {
    let scenario = "vcp-net-nic";
    let built =
        build_system(scenario, &scenario_system(scenario), "debug").unwrap_or_else(|e| panic!("{scenario}: {e}"));
    let t = built
        .boot_with_devices(
            &CaptureOptions::until_marker(timeout()),
            &[Device::Nic {
                mac: None,
                to_host: false,
                forwards: Vec::new(),
                bus: None,
            }],
        )
        .unwrap_or_else(|e| panic!("{scenario}: {e}"));
    t.assert_pass("vcp-net-nic");
    for line in [
        "vcp-net: virtio-net transport at page offset 0xe00",
        "vcp-net: NIC mac 52:54:00:12:34:56",
        "vcp-net: client 0 mac 02:00:00:00:00:03",
        "net-client: prober: ARP request sent through the NIC; reply: 10.0.2.2 is at",
        "net-client: prober: 200 ARP round trips through vcp-net, virtio-net and QEMU's gateway in",
    ] {
        if !t.output().contains(line) {
            t.fail(&format!("no line containing '{line}'"));
        }
    }
}
