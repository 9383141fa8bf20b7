//! The host side of the status PD's HTTP pages: GETs through QEMU's port forward, as
//! the status and root-system tests fetch `/status.json` and `/`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// An HTTP/1.0 GET of `path` from 127.0.0.1:`port`: the status line and headers, and
/// the body.
pub fn get(port: u16, path: &str) -> Result<(String, String), String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: status\r\n\r\n").map_err(|e| format!("send: {e}"))?;
    let mut r = Vec::new();
    c.read_to_end(&mut r).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8(r).map_err(|e| format!("not UTF-8: {e}"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {text:?}"))?;
    Ok((head.to_string(), body.to_string()))
}

/// QEMU's message when a forward's host port is taken (the boot is then retried).
pub const FORWARD_TAKEN: &str = "Could not set up host forwarding rule";

/// GETs `path`, retrying (QEMU's forward accepts before the guest listens, and the PD
/// may not be up yet) until `deadline` or until QEMU is `gone`.
pub fn get_retrying(port: u16, path: &str, deadline: Instant, gone: &AtomicBool) -> Result<(String, String), String> {
    loop {
        let r = get(port, path);
        let give_up = Instant::now() > deadline || gone.load(Ordering::Relaxed);
        match r {
            Ok(r) if r.0.starts_with("HTTP/1.0 ") => return Ok(r),
            Ok(r) if give_up => return Err(format!("GET {path}: bad response {r:?}")),
            Err(e) if give_up => return Err(format!("GET {path}: {e}")),
            _ => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// The guest's side of the status pages (the root system's Linux guest fetching them
/// from the status PD over vcp-net's local delivery): the console script and the
/// reader of what it prints.
pub mod guest {
    use std::net::Ipv4Addr;

    use vcpos_tool::runner::{console_text, Step};

    use crate::linux::{self, PROMPT};

    /// Start of the guest's marker lines, each `<MARK><section>-42` (`42` computed by
    /// the guest's shell, so the echo of the typed command never holds a marker).
    pub const MARK: &str = "status-page-";
    /// The section names, in the order the guest prints them: wget's response headers
    /// for `/status.json`, its body, the body of `/`, then the ARP evidence (the
    /// guest's ARP table entry for the status PD's address, `arping` of it, `arping`
    /// of an address nobody holds), then the end.
    pub const SECTIONS: [&str; 5] = ["head", "json", "html", "arp", "end"];
    /// The line the guest prints once both pages were fetched.
    pub const FETCHED: &str = "status-page-fetched-42";
    /// The line the guest prints if a fetch failed.
    pub const FETCH_FAILED: &str = "status-page-fetch-failed-42";

    /// The marker line of `section` as the guest prints it.
    pub fn marker(section: &str) -> String {
        format!("{MARK}{section}-42")
    }

    /// The same, as typed (the shell computes the `42`).
    fn typed_marker(section: &str) -> String {
        format!("echo {MARK}{section}-$((6*7))")
    }

    /// The console steps, at the guest's prompt: fetch `http://<addr>/status.json` (with
    /// the response headers) and `http://<addr>/` into files with busybox wget, saying
    /// [`FETCHED`] or [`FETCH_FAILED`], then print the files and the ARP evidence
    /// between the [`SECTIONS`] markers, and wait for the prompt. `nobody` is an address
    /// on the guest's network that no client of vcp-net holds (its `arping` must get no
    /// reply). The steps wait for prompts only: a line of another PD may land in the
    /// middle of any guest line (see [`pages`]), and a prompt is the shortest target.
    pub fn script(addr: Ipv4Addr, nobody: Ipv4Addr) -> Vec<Step> {
        let fetch = format!(
            "wget -q -S -O /tmp/status.json http://{addr}/status.json 2>/tmp/status.head \
             && wget -q -O /tmp/status.html http://{addr}/ \
             && echo {MARK}fetched-$((6*7)) || {{ cat /tmp/status.head; echo {MARK}fetch-failed-$((6*7)); }}"
        );
        let show = [
            typed_marker("head"),
            "cat /tmp/status.head".into(),
            typed_marker("json"),
            "cat /tmp/status.json".into(),
            typed_marker("html"),
            "cat /tmp/status.html".into(),
            typed_marker("arp"),
            format!("grep '^{addr} ' /proc/net/arp"),
            format!("arping -c 2 -I eth0 {addr}"),
            format!("arping -c 1 -I eth0 {nobody}"),
            typed_marker("end"),
        ]
        .join("; ");
        // `command` waits for the prompt the previous command left.
        vec![linux::command(&fetch), linux::command(&show), Step::wait_text(PROMPT)]
    }

    /// `output` without the status PD's lines for the requests it served
    /// (`status: <page> -> <code>`, the PD's `Host::served`), wherever they are: the
    /// kernel prints a PD's line at once, also in the middle of a guest line, whose
    /// rest then follows the PD's line on a line of its own (without the guest prefix:
    /// the VMM's prefixer saw no line end). Taking the PD's line out, line end
    /// included, puts the guest's line back together.
    pub fn without_served_lines(output: &str) -> String {
        const START: &str = "status: ";
        let mut out = String::with_capacity(output.len());
        let mut rest = output;
        while let Some(i) = rest.find(START) {
            out.push_str(&rest[..i]);
            let candidate = &rest[i..];
            let line = candidate.split_once('\n').map(|(l, _)| l);
            let served = line
                .and_then(|l| l[START.len()..].rsplit_once(" -> "))
                .is_some_and(|(page, code)| {
                    !page.is_empty() && code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit())
                });
            match line {
                Some(l) if served => rest = &candidate[l.len() + 1..],
                _ => {
                    out.push_str(START);
                    rest = &candidate[START.len()..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// What the guest printed, by section.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Pages {
        /// wget's `-S` lines for `/status.json` (the status line and headers, trimmed).
        pub head: Vec<String>,
        /// The body of `/status.json`: its lines joined without separator (the VMM
        /// breaks a guest line longer than its limit; the JSON has no line end inside).
        pub json: String,
        /// The body of `/`, lines joined with `\n`.
        pub html: String,
        /// The ARP section's lines (trimmed).
        pub arp: Vec<String>,
    }

    /// Reads the sections the [`script`] made the guest print from `output` (the
    /// serial transcript), once the status PD's lines are taken out
    /// ([`without_served_lines`]): the guest's lines (others are left out) between the
    /// [`SECTIONS`] markers (the last of each), in order; an error unless the guest
    /// said [`FETCHED`] first.
    pub fn pages(output: &str) -> Result<Pages, String> {
        let prefix = vcpos_abi::console::GUEST_LINE_PREFIX;
        let output = without_served_lines(output);
        let lines: Vec<&str> = output
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(console_text)
            .collect();
        let fetched = lines.iter().position(|l| l.trim() == FETCHED);
        if fetched.is_none() {
            let failed = lines.iter().any(|l| l.trim() == FETCH_FAILED);
            return Err(format!(
                "the guest did not say '{FETCHED}'{}",
                if failed { " but that a fetch failed" } else { "" }
            ));
        }
        let mut at = Vec::new();
        for s in SECTIONS {
            let m = marker(s);
            let i = lines
                .iter()
                .rposition(|l| l.trim() == m)
                .ok_or_else(|| format!("the guest printed no line '{m}'"))?;
            if at.last().or(fetched.as_ref()).is_some_and(|&j| i <= j) {
                return Err(format!("the guest's line '{m}' is not after the previous marker"));
            }
            at.push(i);
        }
        let section = |k: usize| &lines[at[k] + 1..at[k + 1]];
        let trimmed = |k: usize| section(k).iter().map(|l| l.trim().to_string()).collect();
        Ok(Pages {
            head: trimmed(0),
            json: section(1).concat(),
            html: section(2).join("\n"),
            arp: trimmed(3),
        })
    }

    /// A MAC written as six `:`-separated hex bytes, with or without leading zeros
    /// (`/proc/net/arp` writes `02:00:..`, busybox `arping` `2:0:..`).
    pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
        let mut mac = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut mac {
            let p = parts.next()?;
            if p.is_empty() || p.len() > 2 {
                return None;
            }
            *b = u8::from_str_radix(p, 16).ok()?;
        }
        parts.next().is_none().then_some(mac)
    }

    /// The MAC the status PD says it serves with, from its console line
    /// `status: serving http://... (mac [02, 00, 00, 00, 00, 16], N buffers)` (the MAC
    /// vcp-net's info page gave it).
    pub fn status_pd_mac(output: &str) -> Option<[u8; 6]> {
        let line = output.lines().find(|l| l.starts_with("status: serving http://"))?;
        let list = line.split_once("(mac [")?.1.split_once(']')?.0;
        let mac = list.split(", ").collect::<Vec<_>>().join(":");
        parse_mac(&mac)
    }

    /// The ARP evidence of the ARP section.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct Arp {
        /// The MAC of the guest's ARP table entry for the status PD's address (the one
        /// its TCP segments to the PD were sent to), if it had one.
        pub entry: Option<[u8; 6]>,
        /// The MACs of the replies `arping` got for the status PD's address.
        pub replies: Vec<[u8; 6]>,
        /// `Received N response(s)` of the `arping` of the address nobody holds.
        pub nobody_responses: Option<u32>,
        /// The MACs of any replies for the address nobody holds.
        pub nobody_replies: Vec<[u8; 6]>,
    }

    /// Reads the ARP section: the `/proc/net/arp` line for `addr` (`IP  HW-type
    /// flags  HW-address  mask  device`), then two busybox `arping` runs, each starting
    /// with an `ARPING <ip> ...` line, with `Unicast reply from <ip> [<mac>] ...` lines
    /// and a `Received N response(s)` line.
    pub fn arp(lines: &[String], addr: Ipv4Addr, nobody: Ipv4Addr) -> Arp {
        let (addr, nobody) = (addr.to_string(), nobody.to_string());
        let mut a = Arp::default();
        let mut target: Option<bool> = None; // Some(true): the arping of `nobody`.
        for l in lines {
            let words: Vec<&str> = l.split_whitespace().collect();
            match words.as_slice() {
                [ip, _, _, mac, ..] if *ip == addr && target.is_none() => a.entry = parse_mac(mac),
                ["ARPING", ip, ..] => target = Some(*ip == nobody),
                [_, "reply", "from", _, mac, ..] => {
                    let mac = mac.strip_prefix('[').and_then(|m| m.strip_suffix(']'));
                    if let Some(mac) = mac.and_then(parse_mac) {
                        match target {
                            Some(false) => a.replies.push(mac),
                            Some(true) => a.nobody_replies.push(mac),
                            None => {}
                        }
                    }
                }
                ["Received", n, ..] if target == Some(true) => a.nobody_responses = n.parse().ok(),
                _ => {}
            }
        }
        a
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        const STATUS: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 16);
        const NOBODY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 17);

        #[test]
        fn sections_are_read_from_guest_lines_only() {
            let out = "\
guest| status-page-fetched-42
guest| vcpos-guest# echo status-page-head-$((6*7)); cat /tmp/status.head
guest| status-page-head-42
guest|   HTTP/1.0 200 OK
guest|   Content-Type: application/json
guest| status-page-json-42
guest| {\"a\":[1,status: /status.json -> 200
\"b\"],
guest| 2]}
status: a PD's line
guest| status-page-html-42
guest| <!DOCTYPE html>
guest| </html>
guest| status-page-arp-42
guest| 10.0.2.16        0x1         0x2         02:00:00:00:00:16     *        eth0
guest| ARPING 10.0.2.16 from 10.0.2.15 eth0
guest| Unicast reply from 10.0.2.16 [2:0:0:0:0:16] 0.512ms
guest| Unicast reply from 10.0.2.16 [2:0:0:0:0:16] 0.410ms
guest| Sent 2 probe(s) (1 broadcast(s))
guest| Received 2 response(s)
guest| ARPING 10.0.2.17 from 10.0.2.15 eth0
guest| Sent 1 probe(s) (1 broadcast(s))
guest| Received 0 response(s)
guest| status-page-end-42
guest| vcpos-guest# ";
            let p = pages(out).unwrap();
            assert_eq!(p.head, ["HTTP/1.0 200 OK", "Content-Type: application/json"]);
            assert_eq!(p.json, "{\"a\":[1,\"b\"],2]}");
            assert_eq!(p.html, "<!DOCTYPE html>\n</html>");
            let a = arp(&p.arp, STATUS, NOBODY);
            let mac = [2, 0, 0, 0, 0, 0x16];
            assert_eq!(a.entry, Some(mac));
            assert_eq!(a.replies, [mac, mac]);
            assert_eq!((a.nobody_responses, a.nobody_replies.len()), (Some(0), 0));
            // A reply for the address nobody should hold is counted against it.
            let mut lines = p.arp.clone();
            lines.insert(
                lines.len() - 1,
                "Unicast reply from 10.0.2.17 [52:55:a:0:2:2] 1ms".into(),
            );
            assert_eq!(
                arp(&lines, STATUS, NOBODY).nobody_replies,
                [[0x52, 0x55, 0x0a, 0, 2, 2]]
            );
        }

        #[test]
        fn the_status_pds_lines_are_taken_out_of_guest_lines() {
            let out =
                "a\nstatus: / -> 200\nguest| xystatus: (no page) -> 400\nz\nstatus: serving\nstatus: /x -> 2000\n";
            assert_eq!(
                without_served_lines(out),
                "a\nguest| xyz\nstatus: serving\nstatus: /x -> 2000\n"
            );
            // Not ended by a line end yet, or no page: kept.
            assert_eq!(without_served_lines("status: / -> 200"), "status: / -> 200");
            assert_eq!(without_served_lines("status:  -> 200\n"), "status:  -> 200\n");
        }

        #[test]
        fn missing_or_misordered_markers_are_errors() {
            assert!(pages("guest| status-page-head-42\n").unwrap_err().contains(FETCHED));
            assert!(pages("guest| status-page-fetch-failed-42\n")
                .unwrap_err()
                .contains("failed"));
            let fetched = format!("guest| {FETCHED}\n");
            let head = format!("{fetched}guest| status-page-head-42\n");
            assert!(pages(&head).unwrap_err().contains("status-page-json-42"));
            // Only the echo of the typed command: no marker.
            assert!(pages(&format!("{fetched}guest| # echo status-page-head-$((6*7))\n")).is_err());
            // Markers from another PD (no guest prefix) do not count.
            let not_guest: String = SECTIONS.iter().map(|s| format!("{}\n", marker(s))).collect();
            assert!(pages(&format!("{fetched}{not_guest}")).is_err());
            let swapped: String = ["head", "html", "json", "arp", "end"]
                .iter()
                .map(|s| format!("guest| {}\n", marker(s)))
                .collect();
            assert!(pages(&format!("{fetched}{swapped}")).unwrap_err().contains("not after"));
            // Sections printed before the fetch are not the fetched pages.
            let before: String = SECTIONS.iter().map(|s| format!("guest| {}\n", marker(s))).collect();
            assert!(pages(&format!("{before}{fetched}")).unwrap_err().contains("not after"));
        }

        #[test]
        fn macs_parse_with_and_without_leading_zeros() {
            assert_eq!(parse_mac("02:00:00:00:00:16"), Some([2, 0, 0, 0, 0, 0x16]));
            assert_eq!(parse_mac("2:0:0:0:0:16"), Some([2, 0, 0, 0, 0, 0x16]));
            for bad in [
                "2:0:0:0:0",
                "2:0:0:0:0:16:1",
                "2::0:0:0:16",
                "123:0:0:0:0:1",
                "x:0:0:0:0:1",
            ] {
                assert_eq!(parse_mac(bad), None, "{bad}");
            }
        }

        #[test]
        fn the_status_pd_mac_is_read_from_its_line() {
            let out =
                "x\nstatus: serving http://10.0.2.16:80/ and /status.json (mac [02, 00, 00, 00, 00, 16], 64 buffers)\n";
            assert_eq!(status_pd_mac(out), Some([2, 0, 0, 0, 0, 0x16]));
            assert_eq!(status_pd_mac("status: serving http://10.0.2.16:80/\n"), None);
        }

        #[test]
        fn the_script_types_no_marker() {
            for step in script(STATUS, NOBODY) {
                let typed = String::from_utf8(step.send).unwrap();
                for s in SECTIONS {
                    assert!(!typed.contains(&marker(s)), "{typed}");
                }
                assert!(!typed.contains(FETCHED) && !typed.contains(FETCH_FAILED));
            }
        }
    }
}
