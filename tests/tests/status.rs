//! QEMU test of the status PD (`status/pd`): `tests/systems/status.system`, vcp-net
//! driving QEMU's NIC on the user network with a host port forwarded to the status
//! PD's port 80. The host fetches `/status.json` and `/` over TCP and checks them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use vcpos_tests::status::{get, get_retrying, FORWARD_TAKEN};
use vcpos_tests::{build_system, check_clean, scenario_system, timeout, Transcript};
use vcpos_tool::runner::{CaptureOptions, Device, Ending, PortForward, Stop};

/// The PD's line once it answered the HTML page (the test's last request).
const HTML_SERVED: &str = "status: / -> 200";

/// Timed GETs of `/status.json` once the PD answers (printed; `--nocapture` shows it).
const TIMED_REQUESTS: usize = 20;

/// Times [`TIMED_REQUESTS`] GETs of `/status.json` (connect to the end of the response)
/// and prints the median and the slowest: a figure of QEMU's user network, vcp-net and
/// smoltcp together under TCG on a shared host (relative only). Failures are only
/// counted: the checked requests are the others.
fn time_requests(port: u16) {
    let mut ms = Vec::new();
    let mut failed = 0;
    for _ in 0..TIMED_REQUESTS {
        let t0 = Instant::now();
        match get(port, "/status.json") {
            Ok((head, _)) if head.starts_with("HTTP/1.0 200 OK") => ms.push(t0.elapsed().as_secs_f64() * 1000.0),
            _ => failed += 1,
        }
    }
    ms.sort_by(f64::total_cmp);
    if let (Some(median), Some(max)) = (ms.get(ms.len() / 2), ms.last()) {
        println!(
            "status: GET /status.json from the host: median {median:.1} ms, slowest {max:.1} ms over {} requests \
             ({failed} failed)",
            ms.len()
        );
    }
}

/// The responses to `/status.json` and then `/` (the latter only if the former came).
type Fetched = (
    Result<(String, String), String>,
    Option<Result<(String, String), String>>,
);

/// Boots the status system with a NIC whose free host port leads to the PD's port 80
/// while a thread fetches the pages; a boot whose port was taken meanwhile (QEMU exits
/// saying so) is retried with another, up to 3 boots.
fn boot_and_fetch() -> (Transcript, Fetched) {
    let scenario = "status";
    for _ in 0..3 {
        let built =
            build_system(scenario, &scenario_system(scenario), "debug").unwrap_or_else(|e| panic!("{scenario}: {e}"));
        let port = vcpos_tests::net::free_port().unwrap_or_else(|e| panic!("{e}"));
        let mut opts = CaptureOptions::until_marker(timeout());
        opts.stop_on.push(Stop::Text(HTML_SERVED.into()));
        let devices = [Device::Nic {
            mac: None,
            to_host: false,
            forwards: vec![PortForward::new(port, 80)],
            bus: None,
        }];
        let gone = Arc::new(AtomicBool::new(false));
        let fetcher = {
            let gone = gone.clone();
            let deadline = Instant::now() + timeout();
            std::thread::spawn(move || {
                let json = get_retrying(port, "/status.json", deadline, &gone);
                if json.is_ok() {
                    time_requests(port);
                }
                let html = json.as_ref().ok().map(|_| get_retrying(port, "/", deadline, &gone));
                (json, html)
            })
        };
        let t = built.boot_with_devices(&opts, &devices);
        gone.store(true, Ordering::Relaxed);
        let fetched = fetcher.join().expect("fetch thread");
        let t = t.unwrap_or_else(|e| panic!("{scenario}: {e}"));
        if matches!(t.capture.ending, Ending::Exited(_)) && t.capture.stderr.contains(FORWARD_TAKEN) {
            continue;
        }
        return (t, fetched);
    }
    panic!("{scenario}: QEMU could not forward a free host port in 3 tries ({FORWARD_TAKEN})");
}

/// The status PD serves the kernel's counters: `/status.json` parses, lists both
/// threads (vcp_net is thread 0, status thread 1: the system file's order; the PD
/// names itself thread 1, `own_index`) and the
/// status PD's own counters are non-zero (it ran, entered the kernel, was switched to
/// and got notifications for the frames); `/` is an HTML page with a row per thread.
#[test]
fn status_pd_serves_counters() {
    let (t, (json, html)) = boot_and_fetch();
    if let Err(e) = check_clean(t.output()) {
        t.fail(&e);
    }
    let (head, body) = json.unwrap_or_else(|e| t.fail(&e));
    if !head.starts_with("HTTP/1.0 200 OK") || !head.contains("application/json") {
        t.fail(&format!("/status.json: {head}"));
    }
    let v: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| t.fail(&format!("/status.json is not JSON ({e}): {body}")));
    let threads = v["threads"]
        .as_array()
        .unwrap_or_else(|| t.fail(&format!("no threads in {body}")));
    if threads.len() != 2 {
        t.fail(&format!(
            "expected 2 threads (vcp_net, status), got {}: {body}",
            threads.len()
        ));
    }
    let counter = |o: &serde_json::Value, k: &str| {
        o[k].as_u64()
            .unwrap_or_else(|| t.fail(&format!("no counter {k} in {o}")))
    };
    for (what, c) in [("thread 1 (status)", &threads[1]), ("own", &v["own"])] {
        for k in [
            "kernel_entries",
            "switches_to",
            "notifications_received",
            "time_run_ticks",
        ] {
            if counter(c, k) == 0 {
                t.fail(&format!("{what}: {k} is 0: {c}"));
            }
        }
    }
    // vcp_net took the NIC's interrupts (notifications) and ran.
    for k in ["kernel_entries", "notifications_received", "time_run_ticks"] {
        if counter(&threads[0], k) == 0 {
            t.fail(&format!("thread 0 (vcp_net): {k} is 0: {}", threads[0]));
        }
    }
    if v["own_index"] != 1 {
        t.fail(&format!("own_index is not 1 (the status PD): {body}"));
    }
    // Own counters are read after the thread list: at least as far on.
    if counter(&v["own"], "kernel_entries") < counter(&threads[1], "kernel_entries") {
        t.fail("own kernel entries behind thread 1's: thread 1 is not the status PD");
    }
    let (head, body) = html.expect("HTML fetched after JSON").unwrap_or_else(|e| t.fail(&e));
    if !head.starts_with("HTTP/1.0 200 OK") || !head.contains("text/html") {
        t.fail(&format!("/: {head}"));
    }
    if !body.starts_with("<!DOCTYPE html>") || !body.contains("<tr><td>thread 1</td>") || !body.ends_with("</html>\n") {
        t.fail(&format!("/ is not the HTML status page: {body}"));
    }
    for line in [
        "status: serving http://10.0.2.15:80/",
        "status: /status.json -> 200",
        HTML_SERVED,
    ] {
        if !t.output().contains(line) {
            t.fail(&format!("no line containing '{line}'"));
        }
    }
}
