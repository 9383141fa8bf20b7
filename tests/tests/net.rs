//! QEMU integration tests of the Linux guest's network `eth0`: its address from DHCP at
//! boot, 64 MiB downloaded by the guest from an HTTP server on the host, and 64 MiB the
//! host sends into the guest through a port forward, each checked by SHA-256 on both
//! sides. Each test takes the system under test ([`Sut`]) as a parameter: the guest
//! booted directly on QEMU, and the guest on vcpos with eth0 served by the network VCP
//! (`tests/systems/linux-net.system`). They need the guest files (`tools/guest-image.sh`);
//! `./test.sh` makes them first, and the tests fail without them.

use std::net::TcpListener;

use vcpos_tests::disk::{assert_done, fail, Sut};
use vcpos_tests::linux::{self, until_ready, LINUX_TIMEOUT, PROMPT};
use vcpos_tests::net::{
    free_port, payload, run, sha256_hex, HttpServer, Sink, GUEST_ADDR, GUEST_PORT, HOST_ADDR, NET_UP,
};
use vcpos_tool::runner::{Capture, Step};

/// Bytes each way.
const LEN: usize = 64 << 20;

/// Bytes the guest sends in the upload tests.
const UPLOAD_LEN: usize = 32 << 20;

/// Bytes of each download in the driver reset test.
const RESET_LEN: usize = 32 << 20;

/// Keeps the guest kernel's informational messages off the console.
const QUIET: &str = "dmesg -n 1";

/// The hash in the guest's `guest-sha256 <hash>` line.
fn guest_hash(sut: &Sut, label: &str, c: &Capture, script: &[Step]) -> String {
    sut.guest_lines(&c.output)
        .filter_map(|l| l.strip_prefix("guest-sha256 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .find(|h| h.len() == 64)
        .unwrap_or_else(|| fail(label, "no 'guest-sha256 <hash>' line", c, script))
        .to_string()
}

/// Types `command`, which prints a `sha256sum` line, with `guest-sha256 ` put before
/// it, and waits for that line (`256` is computed by the guest's shell, so the echo of
/// what was typed does not hold it) and the prompt.
fn tagged(command: &str) -> [Step; 3] {
    [
        linux::command(&format!("{command} | sed \"s/^/guest-sha$((128*2)) /\"")),
        Step::wait_text("guest-sha256 "),
        Step::wait_text(PROMPT),
    ]
}

/// `/init` brought eth0 up with the address from QEMU's DHCP server; the guest
/// downloads 64 MiB of pseudo-random bytes from an HTTP server on the host's 127.0.0.1
/// (as 10.0.2.2) with busybox wget, and their SHA-256 in the guest is the host's.
fn guest_downloads_from_host(sut: &Sut, label: &str) {
    let http = HttpServer::start(payload(0x6e65_7431, LEN)).unwrap_or_else(|e| panic!("{label}: {e}"));
    let want = sha256_hex(http.data()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let port = http.server().port();
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked(
        &format!("ip -4 addr show dev eth0 | grep -q 'inet {GUEST_ADDR}/24'"),
        "addr",
    ));
    script.extend(sut.checked(
        &format!("ip route | grep -q '^default via {HOST_ADDR} dev eth0'"),
        "route",
    ));
    script.extend(tagged(&format!(
        "wget -q -O - http://{HOST_ADDR}:{port}/data | sha256sum"
    )));
    let c = run(sut, None, &|_| {}, script.clone(), linux::timeout(LINUX_TIMEOUT, 1))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    if !sut.guest_lines(&c.output).any(|l| l.starts_with(NET_UP)) {
        fail(label, &format!("/init did not say '{NET_UP}...'"), &c, &script);
    }
    let got = guest_hash(sut, label, &c, &script);
    let errors = http.server().errors();
    assert!(errors.is_empty(), "{label}: the HTTP server: {errors:?}");
    assert_eq!(got, want, "{label}: the guest received other bytes than the host sent");
}

/// The host sends 64 MiB into the guest through the forward of a free host port to
/// guest port 5000, where busybox `nc -l` pipes them to `sha256sum`; the hash matches
/// the host's. (The guest asks for the data over HTTP once it listens, so the host
/// sends only then.) The first host port the run is offered is taken, so this also
/// checks that a run whose forward cannot be set up boots again with another port.
fn host_sends_into_guest(sut: &Sut, label: &str) {
    let http = HttpServer::start(payload(0x6e65_7432, LEN)).unwrap_or_else(|e| panic!("{label}: {e}"));
    let want = sha256_hex(http.data()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let port = http.server().port();
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked(
        &format!("(nc -l -p {GUEST_PORT} </dev/null | sha256sum >/tmp/rx.sum) & \
                  n=0; until netstat -ltn | grep -q ':{GUEST_PORT} '; do n=$((n+1)); [ $n -lt 100 ] || break; sleep 0.1; done; \
                  netstat -ltn | grep -q ':{GUEST_PORT} '"),
        "listen",
    ));
    script.extend(sut.checked(
        &format!("wget -q -O - http://{HOST_ADDR}:{port}/push | grep -qx 'pushed {LEN}'"),
        "push",
    ));
    // `wait`: until the listener's pipeline has hashed everything and ended.
    script.extend(tagged("wait; cat /tmp/rx.sum"));
    // The first host port offered is taken (a listener here holds it): QEMU cannot
    // forward it, and the run must boot again with a free one.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{label}: {e}"));
    let taken_port = taken.local_addr().unwrap_or_else(|e| panic!("{label}: {e}")).port();
    let mut offered = Vec::new();
    let mut ports = || {
        let p = if offered.is_empty() { taken_port } else { free_port()? };
        offered.push(p);
        Ok(p)
    };
    let c = run(
        sut,
        Some(&mut ports),
        &|p| http.set_push_port(p),
        script.clone(),
        linux::timeout(LINUX_TIMEOUT, 1),
    )
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    drop(taken);
    assert_done(label, &c, &script);
    assert_eq!(
        offered.len(),
        2,
        "{label}: not exactly one retry after the taken port: {offered:?}"
    );
    let errors = http.server().errors();
    assert!(errors.is_empty(), "{label}: the HTTP server: {errors:?}");
    let got = guest_hash(sut, label, &c, &script);
    assert_eq!(got, want, "{label}: the guest received other bytes than the host sent");
}

/// The guest sends: it downloads [`UPLOAD_LEN`] bytes from the host's HTTP server and
/// pipes them straight into a TCP connection to the host's [`Sink`] (busybox `wget |
/// nc`: both directions at once), which hashes what arrived. On vcpos the guest sends
/// with checksum and TCP segmentation offloads, done by vcp-net: the sink's hash
/// matching the data's shows every segment vcp-net cut and checksummed arrived whole
/// and in order.
fn guest_sends_to_host(sut: &Sut, label: &str) {
    let http = HttpServer::start(payload(0x6e65_7433, UPLOAD_LEN)).unwrap_or_else(|e| panic!("{label}: {e}"));
    let want = sha256_hex(http.data()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let sink = Sink::start(UPLOAD_LEN).unwrap_or_else(|e| panic!("{label}: {e}"));
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend([
        linux::command(&format!(
            "wget -q -O - http://{HOST_ADDR}:{}/data | nc {HOST_ADDR} {} | sed \"s/^sink/up/\"",
            http.server().port(),
            sink.server().port()
        )),
        Step::wait_text("up-sha256 "),
        Step::wait_text(PROMPT),
    ]);
    let c = run(sut, None, &|_| {}, script.clone(), linux::timeout(LINUX_TIMEOUT, 1))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    let errors: Vec<String> = http
        .server()
        .errors()
        .into_iter()
        .chain(sink.server().errors())
        .collect();
    assert!(errors.is_empty(), "{label}: the host's servers: {errors:?}");
    assert_eq!(
        sink.hashes(),
        vec![want],
        "{label}: the host received other bytes than the guest sent"
    );
}

#[test]
fn direct_net_guest_sends_to_host() {
    guest_sends_to_host(&Sut::direct(), "net-upload-direct");
}

#[test]
fn vcpos_net_guest_sends_to_host() {
    guest_sends_to_host(&Sut::vcpos_net(), "net-upload-vcpos");
}

/// The guest's virtio-net driver is unbound and bound again in the middle of a
/// download (a device reset with the guest's receive buffers at vcp-net): the VMM
/// recalls them, posts the new driver's buffers only once vcp-net has given the old
/// ones back, and the guest, its address set again, downloads [`RESET_LEN`] bytes
/// whose SHA-256 matches. Without the recall the old buffers' ids stay out at vcp-net
/// and the new driver never receives a frame.
#[test]
fn vcpos_net_driver_reset_during_a_download() {
    let label = "net-reset-vcpos";
    let sut = Sut::vcpos_net();
    let http = HttpServer::start(payload(0x6e65_7434, RESET_LEN)).unwrap_or_else(|e| panic!("{label}: {e}"));
    let want = sha256_hex(http.data()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let url = format!("http://{HOST_ADDR}:{}/data", http.server().port());
    let mut script = until_ready();
    script.extend(sut.checked(QUIET, "quiet"));
    script.extend(sut.checked(
        &format!(
            "d=$(basename $(readlink /sys/class/net/eth0/device)); \
             (wget -q -O /dev/null {url}; echo \"background download ended: $?\") & \
             sleep 0.2; echo $d > /sys/bus/virtio/drivers/virtio_net/unbind && \
             echo $d > /sys/bus/virtio/drivers/virtio_net/bind && ip link set eth0 up && \
             ip addr add {GUEST_ADDR}/24 dev eth0 && ip route add default via {HOST_ADDR} dev eth0"
        ),
        "reset",
    ));
    script.extend(sut.checked("wait", "waited"));
    script.extend(tagged(&format!("wget -q -O - {url} | sha256sum")));
    let c = run(&sut, None, &|_| {}, script.clone(), linux::timeout(LINUX_TIMEOUT, 1))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    let got = guest_hash(&sut, label, &c, &script);
    assert_eq!(got, want, "{label}: the guest received other bytes than the host sent");
}

#[test]
fn direct_net_guest_downloads_from_host() {
    guest_downloads_from_host(&Sut::direct(), "net-download-direct");
}

#[test]
fn direct_net_host_sends_into_guest() {
    host_sends_into_guest(&Sut::direct(), "net-push-direct");
}

#[test]
fn vcpos_net_guest_downloads_from_host() {
    guest_downloads_from_host(&Sut::vcpos_net(), "net-download-vcpos");
}

#[test]
fn vcpos_net_host_sends_into_guest() {
    host_sends_into_guest(&Sut::vcpos_net(), "net-push-vcpos");
}

/// Bytes of each download in the hostile-client test.
const HOSTILE_LEN: usize = 16 << 20;

/// A hostile second client of vcp-net (`tests/systems/linux-net-hostile.system`:
/// `net_flooder`, at the VM's priority) floods from boot on, as fast as vcp-net gives
/// its buffers back: frames spoofing the guest's source MAC, broadcasts, frames to
/// the guest and to a MAC nobody has. Meanwhile the guest downloads 16 MiB and the
/// hash matches. Then the guest's ARP request for 10.0.2.99 stops the flood: the
/// flooder checks that every spoofed frame came back refused and every other one
/// sent; sends frames with offload headers in two pieces each (a segmented frame
/// spoofing the guest's MAC: refused; a non-IPv4 one, an undefined segmentation type,
/// a checksum field past the headers: unsupported; an honest segmented frame: sent)
/// and checks every piece's status; then writes a descriptor outside its data region
/// and corrupts its transmit index, and vcp-net cuts it off; the guest downloads again
/// and the hash matches again.
#[test]
fn vcpos_net_hostile_client_is_refused_while_the_guest_downloads() {
    let label = "net-hostile-vcpos";
    let sut = Sut::vcpos_system(vcpos_tests::scenario_system("linux-net-hostile"), "debug");
    let http = HttpServer::start(payload(0x6e65_7433, HOSTILE_LEN)).unwrap_or_else(|e| panic!("{label}: {e}"));
    let want = sha256_hex(http.data()).unwrap_or_else(|e| panic!("{label}: {e}"));
    let port = http.server().port();
    let download = format!("wget -q -O - http://{HOST_ADDR}:{port}/data | sha256sum");
    // The flooder starts with the system, before the guest is up.
    let mut script = vec![Step::wait_text("net-client: flooder connected")];
    script.extend(until_ready());
    script.extend(sut.checked(QUIET, "quiet"));
    // The command and its hash line (the next command waits for the prompt).
    script.extend(tagged(&download)[..2].iter().cloned());
    script.push(linux::command(
        "arping -c 2 -w 2 10.0.2.99 >/dev/null; echo arp-done-$((6*7))",
    ));
    script.push(Step::wait_text("net-client: flooder: stopped by the guest's ARP"));
    // Then frames with hostile offload headers, each refused as it must be.
    script.push(Step::wait_text("net-client: flooder: offload headers: "));
    script.push(Step::wait_text("vcp-net: client 1: "));
    script.push(sut.guest_line("arp-done-42"));
    script.extend(tagged(&download));
    let c = run(&sut, None, &|_| {}, script.clone(), linux::timeout(LINUX_TIMEOUT, 1))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    assert_done(label, &c, &script);
    let hashes: Vec<&str> = sut
        .guest_lines(&c.output)
        .filter_map(|l| l.strip_prefix("guest-sha256 "))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|h| h.len() == 64)
        .collect();
    assert_eq!(
        hashes,
        [want.as_str(), want.as_str()],
        "{label}: the guest received other bytes than the host sent (during the flood, after the cut-off)"
    );
    // vcp-net said so as it refused the spoofed frames.
    if !c
        .output
        .contains("vcp-net: client 1 sent with another source MAC: dropped")
    {
        fail(
            label,
            "vcp-net did not report the flooder's spoofed frames",
            &c,
            &script,
        );
    }
    // The flood was one: its count, from the flooder's summary line.
    let frames: u64 = c
        .output
        .lines()
        .find_map(|l| l.split_once("net-client: flooder: stopped by the guest's ARP for 10.0.2.99 after "))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| fail(label, "no frame count in the flooder's summary", &c, &script));
    assert!(
        frames >= 1000,
        "{label}: only {frames} flood frames: no flood to speak of"
    );
    let errors = http.server().errors();
    assert!(errors.is_empty(), "{label}: the HTTP server: {errors:?}");
}
