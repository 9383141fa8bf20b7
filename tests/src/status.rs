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
