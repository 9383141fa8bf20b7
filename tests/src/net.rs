//! The Linux guest's network (`eth0`, a virtio-net device on QEMU's user network) in
//! tests and benchmarks: the NIC a run gets, servers the tests start on the host's
//! 127.0.0.1 (an HTTP server of deterministic pseudo-random bytes that can also push
//! them into the guest through a port forward, and the benchmark server of
//! `vcpos-mmio-bench net`), boots of the guest with the NIC on a system under test
//! ([`Sut`]), and the "network" table.
//!
//! The guest reaches the host's 127.0.0.1:PORT as [`HOST_ADDR`]:PORT (slirp); the host
//! reaches the guest's port [`GUEST_PORT`] through a forward from a host port picked
//! free at run time, so parallel runs do not collide. The system under test is a
//! parameter so that the same scripts run against the guest directly on QEMU now and
//! on vcpos once the network VCP serves its NIC.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vcpos_guest_bench::blk::fill_pattern;
use vcpos_guest_bench::net::{parse_header, Op, HEADER_LEN};
use vcpos_tool::runner::{Capture, Device, Ending, PortForward, Step};

use crate::check_clean;
use crate::disk::{run_command, Sut};
use crate::linux::{self, PROMPT, READY};

/// The host as the guest sees it on QEMU's user network (its 127.0.0.1).
pub const HOST_ADDR: &str = "10.0.2.2";
/// The address QEMU's DHCP server gives the guest.
pub const GUEST_ADDR: &str = "10.0.2.15";
/// The guest port the host's forward leads to.
pub const GUEST_PORT: u16 = 5000;
/// `/init`'s line once `eth0` has its address from DHCP (an uptime follows).
pub const NET_UP: &str = "vcpos-guest: net eth0 10.0.2.15/24 via 10.0.2.2,";
/// QEMU's message when a forward's host port is taken (the run is then retried).
const FORWARD_TAKEN: &str = "Could not set up host forwarding rule";
/// Boots tried when a picked host port turns out to be taken.
const FORWARD_TRIES: usize = 3;

/// A TCP port on 127.0.0.1 that is free now (the kernel's pick for port 0).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("cannot bind 127.0.0.1:0: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// The NIC of a run: the guest may reach the host, and with `forward` the host port
/// `forward` leads to the guest's [`GUEST_PORT`].
pub fn nic(forward: Option<u16>) -> Device {
    Device::Nic {
        mac: None,
        to_host: true,
        forwards: forward
            .map(|host| PortForward::new(host, GUEST_PORT))
            .into_iter()
            .collect(),
        bus: None,
    }
}

/// `len` bytes of the pseudo-random pattern of `seed` (the block tests' pattern,
/// `vcpos_guest_bench::blk::fill_pattern`, from offset 0; `len` a multiple of 8).
pub fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    fill_pattern(&mut v, seed, 0);
    v
}

/// SHA-256 (hex) of `data`, from the host's `sha256sum`.
pub fn sha256_hex(data: &[u8]) -> Result<String, String> {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run sha256sum: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("sha256sum has no stdin")?;
    let fed = stdin.write_all(data);
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| format!("sha256sum: {e}"))?;
    fed.map_err(|e| format!("writing to sha256sum: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text.split_whitespace().next().unwrap_or_default();
    if !out.status.success() || hash.len() != 64 {
        return Err(format!("sha256sum failed: {text}"));
    }
    Ok(hash.to_string())
}

/// A server on 127.0.0.1 running `handle` on each connection in a thread of its own,
/// until dropped. Problems a handler meets are kept for [`Server::errors`].
pub struct Server {
    port: u16,
    stop: Arc<AtomicBool>,
    errors: Arc<Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

type Handler = dyn Fn(TcpStream) -> Result<(), String> + Send + Sync;

impl Server {
    fn start(name: &'static str, handle: Arc<Handler>) -> Result<Server, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("{name}: cannot bind 127.0.0.1:0: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, e, n) = (stop.clone(), errors.clone(), connections.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                let (handle, e) = (handle.clone(), e.clone());
                n.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let r = conn.map_err(|x| x.to_string()).and_then(|c| {
                        // A stuck peer ends the handler instead of hanging it.
                        let _ = c.set_read_timeout(Some(Duration::from_secs(120)));
                        handle(c)
                    });
                    if let Err(why) = r {
                        e.lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(format!("{name}: {why}"));
                    }
                });
            }
        });
        Ok(Server {
            port,
            stop,
            errors,
            connections,
            thread: Some(thread),
        })
    }

    /// Its port on 127.0.0.1 (the guest's [`HOST_ADDR`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What went wrong in its handlers so far.
    pub fn errors(&self) -> Vec<String> {
        self.errors.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop, which then sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server that takes uploads: on each connection it reads exactly [`Sink::len`]
/// bytes, answers `sink-sha256 <hash>` with their SHA-256 and closes. The hashes of
/// the uploads it took are kept ([`Sink::hashes`]).
pub struct Sink {
    server: Server,
    hashes: Arc<Mutex<Vec<String>>>,
}

impl Sink {
    /// Starts taking uploads of `len` bytes.
    pub fn start(len: usize) -> Result<Sink, String> {
        let hashes = Arc::new(Mutex::new(Vec::new()));
        let h = hashes.clone();
        let server = Server::start(
            "sink",
            Arc::new(move |mut c: TcpStream| {
                let mut data = vec![0u8; len];
                match c.read_exact(&mut data) {
                    Ok(()) => {}
                    // A bare connect (the server's own wake-up) sends nothing.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                    Err(e) => return Err(format!("reading {len} bytes: {e}")),
                }
                let hash = sha256_hex(&data)?;
                h.lock().unwrap_or_else(|p| p.into_inner()).push(hash.clone());
                c.write_all(format!("sink-sha256 {hash}\n").as_bytes())
                    .map_err(|e| format!("answering: {e}"))
            }),
        )?;
        Ok(Sink { server, hashes })
    }

    /// The underlying server (port, errors, connections).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The SHA-256 of every whole upload so far.
    pub fn hashes(&self) -> Vec<String> {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The HTTP server of the tests: `GET /data` answers with [`HttpServer::data`];
/// `GET /push` connects to 127.0.0.1:[`HttpServer::set_push_port`] (the forward into
/// the guest), sends the data there, half-closes, waits for the other end to close,
/// and answers `pushed <bytes>`. Anything else gets 404.
pub struct HttpServer {
    server: Server,
    data: Arc<Vec<u8>>,
    push_port: Arc<AtomicU16>,
}

impl HttpServer {
    /// Starts serving `data`.
    pub fn start(data: Vec<u8>) -> Result<HttpServer, String> {
        let data = Arc::new(data);
        let push_port = Arc::new(AtomicU16::new(0));
        let (d, p) = (data.clone(), push_port.clone());
        let server = Server::start("http", Arc::new(move |c| serve_http(c, &d, p.load(Ordering::SeqCst))))?;
        Ok(HttpServer {
            server,
            data,
            push_port,
        })
    }

    /// The underlying server (port, errors, connections).
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// The bytes it serves and pushes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Where `/push` sends to (a forward's host port).
    pub fn set_push_port(&self, port: u16) {
        self.push_port.store(port, Ordering::SeqCst);
    }
}

/// One HTTP/1.0 exchange on `c`.
fn serve_http(c: TcpStream, data: &[u8], push_port: u16) -> Result<(), String> {
    let mut reader = BufReader::new(c.try_clone().map_err(|e| e.to_string())?);
    let mut request = String::new();
    reader
        .read_line(&mut request)
        .map_err(|e| format!("reading the request line: {e}"))?;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the headers: {e}"))?;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
    }
    let mut out = c;
    let path = match request.split_whitespace().collect::<Vec<_>>()[..] {
        ["GET", path, ..] => path.to_string(),
        [] => return Ok(()), // a bare connect (the server's own wake-up)
        _ => {
            let _ = out.write_all(b"HTTP/1.0 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
            return Err(format!("not a GET: {:?}", request.trim_end()));
        }
    };
    match path.as_str() {
        "/data" => {
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                data.len()
            );
            out.write_all(head.as_bytes())
                .and_then(|()| out.write_all(data))
                .map_err(|e| format!("GET /data: {e}"))
        }
        "/push" => {
            let r = push(push_port, data);
            let body = match &r {
                Ok(()) => format!("pushed {}\n", data.len()),
                Err(e) => format!("push failed: {e}\n"),
            };
            let status = if r.is_ok() { "200 OK" } else { "502 Bad Gateway" };
            let head = format!("HTTP/1.0 {status}\r\nContent-Length: {}\r\n\r\n", body.len());
            out.write_all(head.as_bytes())
                .and_then(|()| out.write_all(body.as_bytes()))
                .map_err(|e| e.to_string())?;
            r.map_err(|e| format!("GET /push: {e}"))
        }
        other => {
            let _ = out.write_all(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n");
            Err(format!("GET {other}: no such path"))
        }
    }
}

/// Sends `data` to 127.0.0.1:`port`, half-closes, and waits for the peer to close.
fn push(port: u16, data: &[u8]) -> Result<(), String> {
    if port == 0 {
        return Err("no push port set".into());
    }
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    s.write_all(data)
        .map_err(|e| format!("sending {} bytes to 127.0.0.1:{port}: {e}", data.len()))?;
    s.shutdown(Shutdown::Write).map_err(|e| e.to_string())?;
    let mut sink = Vec::new();
    s.read_to_end(&mut sink)
        .map_err(|e| format!("waiting for the guest to close: {e}"))?;
    Ok(())
}

/// Feeds `vcpos-mmio-bench net listen` in the guest: a thread that connects to
/// 127.0.0.1:[`Pusher::set_port`] (a forward to the guest's [`GUEST_PORT`]), sends the
/// bytes and reads the guest's 8-byte count, `deliveries` times. A connection made
/// while the guest does not listen yet is closed by slirp at once; the thread then
/// tries again every 100 ms until dropped.
pub struct Pusher {
    port: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Pusher {
    /// Starts pushing `bytes` (zeros) `deliveries` times.
    pub fn start(bytes: u64, deliveries: usize) -> Pusher {
        let port = Arc::new(AtomicU16::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Arc::new(AtomicUsize::new(0));
        let (p, s, d) = (port.clone(), stop.clone(), delivered.clone());
        let thread = std::thread::spawn(move || {
            let chunk = vec![0u8; 256 << 10];
            while !s.load(Ordering::SeqCst) && d.load(Ordering::SeqCst) < deliveries {
                let port = p.load(Ordering::SeqCst);
                if port != 0 && push_once(port, bytes, &chunk).is_ok() {
                    d.fetch_add(1, Ordering::SeqCst);
                } else {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
        Pusher {
            port,
            stop,
            delivered,
            thread: Some(thread),
        }
    }

    /// Where to connect (the forward's host port of the current boot).
    pub fn set_port(&self, port: u16) {
        self.port.store(port, Ordering::SeqCst);
    }

    /// Deliveries the guest has counted so far.
    pub fn delivered(&self) -> usize {
        self.delivered.load(Ordering::SeqCst)
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One delivery: connect, send `bytes`, read the guest's count, which must match.
fn push_once(port: u16, bytes: u64, chunk: &[u8]) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        s.write_all(&chunk[..n]).map_err(|e| e.to_string())?;
        left -= n as u64;
    }
    let mut count = [0u8; 8];
    s.read_exact(&mut count).map_err(|e| e.to_string())?;
    let got = u64::from_le_bytes(count);
    (got == bytes)
        .then_some(())
        .ok_or_else(|| format!("the guest counted {got} of {bytes} bytes"))
}

/// The server of `vcpos-mmio-bench net` (the protocol of `vcpos_guest_bench::net`).
pub fn bench_server() -> Result<Server, String> {
    Server::start("bench server", Arc::new(serve_bench))
}

/// One benchmark connection.
fn serve_bench(mut c: TcpStream) -> Result<(), String> {
    let mut h = [0u8; HEADER_LEN];
    match c.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()), // the wake-up
        Err(e) => return Err(format!("reading the header: {e}")),
    }
    let (op, amount) = parse_header(&h).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 256 << 10];
    match op {
        Op::Tx => {
            let mut got = 0u64;
            while got < amount {
                let want = (amount - got).min(buf.len() as u64) as usize;
                let n = c.read(&mut buf[..want]).map_err(|e| format!("tx: {e}"))?;
                if n == 0 {
                    break;
                }
                got += n as u64;
            }
            c.write_all(&got.to_le_bytes()).map_err(|e| format!("tx count: {e}"))?;
            if got != amount {
                return Err(format!("tx: the guest sent {got} of {amount} bytes"));
            }
        }
        Op::Rx => {
            let mut left = amount;
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                c.write_all(&buf[..n]).map_err(|e| format!("rx: {e}"))?;
                left -= n as u64;
            }
        }
        Op::Rr => {
            c.set_nodelay(true).map_err(|e| e.to_string())?;
            let mut b = [0u8];
            for i in 0..amount {
                c.read_exact(&mut b)
                    .map_err(|e| format!("rr: round trip {i} of {amount}: {e}"))?;
                c.write_all(&b).map_err(|e| format!("rr: {e}"))?;
            }
        }
    }
    Ok(())
}

/// Where a run's forwarded host port comes from: called before each boot (usually
/// [`free_port`]).
pub type PortSource<'a> = &'a mut dyn FnMut() -> Result<u16, String>;

/// Boots the guest on `sut` with a NIC ([`nic`]; with `forward`, the host port it gives
/// leads to [`GUEST_PORT`]) and runs `script`. `on_port` is told the host port before
/// each boot; a boot that fails because the port was taken meanwhile (QEMU exits
/// saying so) is retried with the next port `forward` gives, up to 3 boots.
pub fn run(
    sut: &Sut,
    mut forward: Option<PortSource>,
    on_port: &dyn Fn(u16),
    script: Vec<Step>,
    timeout: Duration,
) -> Result<Capture, String> {
    for _ in 0..FORWARD_TRIES {
        let port = match forward.as_mut() {
            Some(next) => Some(next()?),
            None => None,
        };
        if let Some(p) = port {
            on_port(p);
        }
        let cmd = sut.boot_command("", &[nic(port)], Vec::new())?;
        let c = run_command(cmd, script.clone(), timeout)?;
        if port.is_some() && matches!(c.ending, Ending::Exited(_)) && c.stderr.contains(FORWARD_TAKEN) {
            continue;
        }
        return Ok(c);
    }
    Err(format!(
        "QEMU could not forward a free host port in {FORWARD_TRIES} tries ({FORWARD_TAKEN})"
    ))
}

/// The guest program of the network benchmark.
pub const NET_COMMAND: &str = "vcpos-mmio-bench net";
/// MiB each throughput test moves.
pub const BENCH_MIB: u64 = 64;
/// Timed round trips of the request/response test.
pub const BENCH_ROUND_TRIPS: u64 = 1000;
/// The MTUs the throughput is measured at (the first is eth0's own).
pub const MTUS: [u32; 2] = [1500, 500];
/// What the guest prints before each MTU's tests: `net-mtu=<eth0's MTU>`.
pub const MTU_TAG: &str = "net-mtu=";

/// The throughput tests, in a boot's order: the guest sends, the guest receives (both
/// on connections the guest opens), the guest receives on a connection the host opens
/// through the port forward (`net listen`; slirp honours the guest's MSS only there).
pub const THROUGHPUT_TESTS: [&str; 3] = ["net_tx", "net_rx", vcpos_guest_bench::net::LISTEN_BENCH];

/// The console script of one benchmark boot against the bench server on `port`: per
/// MTU in [`MTUS`] the MTU set and reported (from sysfs), then [`THROUGHPUT_TESTS`]
/// (the last fed by a [`Pusher`] through the forward to [`GUEST_PORT`]); then the
/// round trips at the last MTU.
pub fn bench_script(port: u16) -> Vec<Step> {
    let mut s = vec![Step::wait_text(READY), linux::command("dmesg -n 1")];
    for mtu in MTUS {
        s.push(linux::command(&format!(
            "ip link set eth0 mtu {mtu} && echo {MTU_TAG}$(cat /sys/class/net/eth0/mtu)"
        )));
        for op in ["tx", "rx"] {
            s.push(linux::command(&format!(
                "{NET_COMMAND} {op} {HOST_ADDR} {port} {BENCH_MIB}"
            )));
        }
        s.push(linux::command(&format!(
            "{NET_COMMAND} listen {GUEST_PORT} {BENCH_MIB}"
        )));
    }
    s.push(linux::command(&format!(
        "{NET_COMMAND} rr {HOST_ADDR} {port} {BENCH_ROUND_TRIPS}"
    )));
    s.push(Step::wait_text(PROMPT));
    s
}

/// One TX or RX test's figures.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    /// One of [`THROUGHPUT_TESTS`].
    pub name: String,
    /// eth0's MTU.
    pub mtu: u32,
    /// Megabits (10^6) per second.
    pub mbit_per_s: f64,
    /// Bytes moved.
    pub bytes: u64,
    /// Frames eth0 counted in the data's direction meanwhile, if the guest could read it.
    pub frames: Option<u64>,
    /// On vcpos, the kernel's and the VMM's counters per frame ([`attach_counters`]).
    pub per_frame: Option<PerFrame>,
}

/// Events per frame of one throughput test on vcpos: the growth of the VMM's counter
/// snapshots (`linux_vmm: counters at ...`) over the test, divided by its frames.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerFrame {
    /// Context switches (every thread's).
    pub switches: f64,
    /// Kernel entries (every thread's).
    pub entries: f64,
    /// The guest's exits to the VMM.
    pub exits: f64,
    /// Bytes the VMM copied between guest RAM and vcp-net's buffers.
    pub vmm_copied: f64,
    /// Bytes every PD copied (the kernel's `bytes_copied` counters, as the PDs
    /// reported them: vcp-net's copies of received frames and checked headers).
    pub copied: f64,
    /// Microseconds the vCPU ran (the guest, its exits' kernel work included).
    pub guest_us: f64,
    /// Microseconds the VMM ran.
    pub vmm_us: f64,
    /// Microseconds every other thread ran (vcp-net and the idle monitor's turns).
    pub others_us: f64,
}

/// TCP payload bytes of a full wire frame at `mtu`: IPv4 and TCP headers with the
/// timestamp option (52 bytes) off the MTU.
pub fn mss(mtu: u32) -> u64 {
    u64::from(mtu.saturating_sub(52)).max(1)
}

/// Frames on the wire for `frames` counted by the guest carrying `bytes` of payload at
/// `mtu`: the guest counts a segmentation-offload frame once however many MTU-sized
/// segments vcp-net cuts it into, so at least the full segments the bytes need.
pub fn wire_frames(frames: u64, bytes: u64, mtu: u32) -> u64 {
    frames.max(bytes.div_ceil(mss(mtu)))
}

/// Fills in [`Throughput::per_frame`] of each test in `run` from the counter snapshots
/// in `output`: the snapshot named after the test (`net_tx`, ...) against the one just
/// before it, the n-th of each name for the test's n-th run (one per MTU), per frame on
/// the wire ([`wire_frames`]). Tests without both snapshots or without a frame count
/// stay without.
pub fn attach_counters(output: &str, run: &mut NetRun) {
    let snaps = crate::disk::parse_counters(output);
    let mut seen: Vec<(String, usize)> = Vec::new();
    for t in &mut run.throughput {
        let k = match seen.iter_mut().find(|(n, _)| *n == t.name) {
            Some((_, k)) => {
                *k += 1;
                *k
            }
            None => {
                seen.push((t.name.clone(), 0));
                0
            }
        };
        let Some(at) = snaps
            .iter()
            .enumerate()
            .filter(|(_, (tag, _))| *tag == t.name)
            .nth(k)
            .map(|(i, _)| i)
        else {
            continue;
        };
        let (Some(before), Some(frames)) = (at.checked_sub(1).map(|i| &snaps[i].1), t.frames.filter(|&f| f > 0)) else {
            continue;
        };
        let after = &snaps[at].1;
        let frames = wire_frames(frames, t.bytes, t.mtu);
        let get = |m: &[(String, u64)], k: &str| m.iter().find(|(x, _)| x == k).map_or(0, |(_, v)| *v);
        let per = |k: &str| get(after, k).saturating_sub(get(before, k)) as f64 / frames as f64;
        let threads: f64 = (0..get(after, "threads")).map(|i| per(&format!("time_run_t{i}"))).sum();
        let us = 1e6 / get(after, "freq").max(1) as f64;
        t.per_frame = Some(PerFrame {
            switches: per("switches"),
            entries: per("entries"),
            exits: per("exits"),
            vmm_copied: per("vmm_copied"),
            copied: per("copied"),
            guest_us: per("vcpu_run") * us,
            vmm_us: per("vmm_run") * us,
            others_us: (threads - per("vcpu_run") - per("vmm_run")).max(0.0) * us,
        });
    }
}

impl Throughput {
    /// Payload bytes per frame in the data's direction (the mean TCP segment, a little
    /// less for the few control frames counted with them): shows the frame size the
    /// MTU actually gave.
    pub fn bytes_per_frame(&self) -> Option<f64> {
        self.frames.filter(|&f| f > 0).map(|f| self.bytes as f64 / f as f64)
    }
}

/// One run's figures: TX and RX per MTU, and the median round trip, ns.
#[derive(Clone, Debug, PartialEq)]
pub struct NetRun {
    /// The TX and RX tests, in output order.
    pub throughput: Vec<Throughput>,
    /// The median request/response round trip, ns.
    pub rr_median_ns: u64,
}

/// The figures in one benchmark boot's `output`: every `BENCH net_tx`/`net_rx` line
/// tagged with the MTU the guest last reported (`net-mtu=`), and the `BENCH net_rr`
/// line; an error names what is missing or malformed. Lines of a guest on vcpos are
/// read without the VMM's guest line prefix.
pub fn parse_run(output: &str) -> Result<NetRun, String> {
    let mut mtu = None;
    let mut throughput = Vec::new();
    let mut rr = None;
    let unprefixed = |l: &'_ str| -> String {
        let l = l.trim();
        l.strip_prefix(vcpos_abi::console::GUEST_LINE_PREFIX)
            .unwrap_or(l)
            .trim()
            .to_string()
    };
    for line in output.lines().map(unprefixed) {
        let line = line.as_str();
        if let Some(v) = line.strip_prefix(MTU_TAG) {
            mtu = Some(v.parse::<u32>().map_err(|_| format!("'{line}': not an MTU"))?);
            continue;
        }
        let Some(i) = line.find("BENCH net_") else { continue };
        let mut words = line[i..].split_whitespace().skip(1);
        let name = words.next().unwrap_or_default();
        let field = |k: &str| {
            line[i..]
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                .ok_or_else(|| format!("no {k}= in: {line}"))
        };
        match name {
            n if THROUGHPUT_TESTS.contains(&n) => {
                let m = field("mbit_per_s")?;
                let m = m
                    .parse::<f64>()
                    .map_err(|_| format!("mbit_per_s={m} is not a number in: {line}"))?;
                let mtu = mtu.ok_or_else(|| format!("no {MTU_TAG} line before: {line}"))?;
                let b = field("bytes")?;
                let bytes = b
                    .parse::<u64>()
                    .map_err(|_| format!("bytes={b} is not a whole number in: {line}"))?;
                let frames = match field("frames") {
                    Ok(f) => Some(
                        f.parse::<u64>()
                            .map_err(|_| format!("frames={f} is not a whole number in: {line}"))?,
                    ),
                    Err(_) => None,
                };
                throughput.push(Throughput {
                    name: name.to_string(),
                    mtu,
                    mbit_per_s: m,
                    bytes,
                    frames,
                    per_frame: None,
                });
            }
            "net_rr" => {
                let v = field("median_ns")?;
                rr = Some(
                    v.parse::<u64>()
                        .map_err(|_| format!("median_ns={v} is not a whole number in: {line}"))?,
                );
            }
            _ => return Err(format!("unknown benchmark '{name}' in: {line}")),
        }
    }
    for mtu in MTUS {
        for name in THROUGHPUT_TESTS {
            if !throughput.iter().any(|t: &Throughput| t.name == name && t.mtu == mtu) {
                return Err(format!("no 'BENCH {name}' line at MTU {mtu}"));
            }
        }
    }
    let rr_median_ns = rr.ok_or("no 'BENCH net_rr' line")?;
    Ok(NetRun {
        throughput,
        rr_median_ns,
    })
}

/// The median Mb/s of test `name` at `mtu` over `runs`, if any run has it.
fn median_mbit(runs: &[NetRun], name: &str, mtu: u32) -> Option<f64> {
    let v: Vec<f64> = runs
        .iter()
        .filter_map(|r| r.throughput.iter().find(|t| t.name == name && t.mtu == mtu))
        .map(|t| t.mbit_per_s)
        .collect();
    (!v.is_empty()).then(|| median(v))
}

/// The median of `v` (the mean of the middle two for an even count); 0 if empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else {
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    }
}

/// The network table of `side` over `runs`: medians of Mb/s and of the payload bytes
/// per frame per direction and MTU, and of the round trip; then one summary line each:
/// `BENCH net_tx_mtu1500 side=<side> mbit_per_s=.. bytes_per_frame=.. runs=N`, ...,
/// `BENCH net_rr side=<side> median_ns=.. runs=N`.
pub fn net_table(side: &str, runs: &[NetRun]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:>5}  {:>10}  {:>11}  {:>14}",
        "benchmark", "MTU", "Mb/s", "bytes/frame", "round trip us"
    );
    let _ = writeln!(out, "{:-<24}  {:->5}  {:->10}  {:->11}  {:->14}", "", "", "", "", "");
    let mut lines = String::new();
    for mtu in MTUS {
        for name in THROUGHPUT_TESTS {
            let of: Vec<&Throughput> = runs
                .iter()
                .filter_map(|r| r.throughput.iter().find(|t| t.name == name && t.mtu == mtu))
                .collect();
            if of.is_empty() {
                continue;
            }
            let n = of.len();
            let m = median(of.iter().map(|t| t.mbit_per_s).collect());
            let per: Vec<f64> = of.iter().filter_map(|t| t.bytes_per_frame()).collect();
            let (per_col, per_field) = if per.is_empty() {
                ("n/a".to_string(), String::new())
            } else {
                let p = median(per);
                (format!("{p:.0}"), format!(" bytes_per_frame={p:.0}"))
            };
            let _ = writeln!(out, "{name:<24}  {mtu:>5}  {m:>10.1}  {per_col:>11}  {:>14}", "");
            let _ = writeln!(
                lines,
                "BENCH {name}_mtu{mtu} side={side} mbit_per_s={m:.1}{per_field} runs={n}"
            );
        }
    }
    if !runs.is_empty() {
        let ns = median(runs.iter().map(|r| r.rr_median_ns as f64).collect());
        let mtu = MTUS[MTUS.len() - 1];
        let _ = writeln!(
            out,
            "{:<24}  {mtu:>5}  {:>10}  {:>11}  {:>14.1}",
            "net_rr (1 byte each way)",
            "",
            "",
            ns / 1000.0
        );
        let _ = writeln!(lines, "BENCH net_rr side={side} median_ns={ns:.0} runs={}", runs.len());
    }
    out + &lines
}

/// The comparison of the vcpos side with the direct-QEMU side: per test and MTU the
/// median Mb/s of each and the ratio vcpos / direct (above 1: vcpos faster), and the
/// round trip (ratio vcpos / direct: above 1, vcpos slower); then one line each:
/// `BENCH net_tx_mtu1500 ratio_vcpos_over_direct=..`, ..., `BENCH net_rr
/// ratio_vcpos_over_direct=..`.
pub fn compare_table(direct: &[NetRun], vcpos: &[NetRun]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24}  {:>5}  {:>12}  {:>12}  {:>14}",
        "benchmark", "MTU", "direct Mb/s", "vcpos Mb/s", "vcpos/direct"
    );
    let _ = writeln!(out, "{:-<24}  {:->5}  {:->12}  {:->12}  {:->14}", "", "", "", "", "");
    let mut lines = String::new();
    for mtu in MTUS {
        for name in THROUGHPUT_TESTS {
            let (Some(d), Some(v)) = (median_mbit(direct, name, mtu), median_mbit(vcpos, name, mtu)) else {
                continue;
            };
            let ratio = if d > 0.0 { v / d } else { f64::NAN };
            let _ = writeln!(out, "{name:<24}  {mtu:>5}  {d:>12.1}  {v:>12.1}  {ratio:>14.2}");
            let _ = writeln!(lines, "BENCH {name}_mtu{mtu} ratio_vcpos_over_direct={ratio:.2}");
        }
    }
    if !direct.is_empty() && !vcpos.is_empty() {
        let d = median(direct.iter().map(|r| r.rr_median_ns as f64).collect()) / 1000.0;
        let v = median(vcpos.iter().map(|r| r.rr_median_ns as f64).collect()) / 1000.0;
        let ratio = if d > 0.0 { v / d } else { f64::NAN };
        let _ = writeln!(
            out,
            "{:<24}  {:>5}  {:>12}  {:>12}  {ratio:>14.2}",
            "net_rr round trip us",
            MTUS[MTUS.len() - 1],
            format!("{d:.1}"),
            format!("{v:.1}")
        );
        let _ = writeln!(lines, "BENCH net_rr ratio_vcpos_over_direct={ratio:.2}");
    }
    out + &lines
}

/// The RX test of the seed's table: the host opens the connection through the port
/// forward (slirp honours the guest's MSS only there, so MTU 500 means 500-byte frames).
pub const TABLE6_RX: &str = vcpos_guest_bench::net::LISTEN_BENCH;

/// The seed's Table 6 (ttcp, Mb/s: TX and RX at MTU 1500 and 500, one row per system,
/// the others with their change against the first) for direct QEMU and vcpos, medians
/// over the runs; then per wire frame on vcpos the context switches, kernel entries,
/// guest exits, bytes copied (by every PD, by the VMM), the run time of the guest, the
/// VMM and the other threads, and the [`guest_only_bound`] (medians), per test and MTU.
pub fn table6(direct: &[NetRun], vcpos: &[NetRun]) -> String {
    let mut out = String::new();
    let cols: Vec<(u32, &str)> = MTUS.iter().flat_map(|&m| [(m, "net_tx"), (m, TABLE6_RX)]).collect();
    let _ = writeln!(
        out,
        "Table 6 (the seed's ttcp table, redone): bandwidth in Mb/s; RX = the host sends through the port forward"
    );
    let _ = write!(out, "{:<12}", "");
    for mtu in MTUS {
        let _ = write!(out, "  {:<30}", format!("TCP MTU {mtu}"));
    }
    let _ = writeln!(out);
    let _ = write!(out, "{:<12}", "");
    for (_, name) in &cols {
        let _ = write!(out, "  {:<13}", if *name == "net_tx" { "TX" } else { "RX" });
    }
    let _ = writeln!(out);
    for (label, runs) in [("direct QEMU", direct), ("vcpos", vcpos)] {
        let _ = write!(out, "{label:<12}");
        for &(mtu, name) in &cols {
            let cell = match (median_mbit(runs, name, mtu), median_mbit(direct, name, mtu)) {
                (Some(v), Some(d)) if label != "direct QEMU" && d > 0.0 => {
                    format!("{v:.1} ({:+.0}%)", (v / d - 1.0) * 100.0)
                }
                (Some(v), _) => format!("{v:.1}"),
                (None, _) => "-".to_string(),
            };
            let _ = write!(out, "  {cell:<13}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "per wire frame on vcpos       {:>5}  {:>9}  {:>9}  {:>11}  {:>16}  {:>16}  {:>8}  {:>8}  {:>8}  {:>10}",
        "MTU",
        "switches",
        "entries",
        "guest exits",
        "bytes copied",
        "of them by VMM",
        "guest us",
        "VMM us",
        "other us",
        "guest-only"
    );
    for mtu in MTUS {
        for name in THROUGHPUT_TESTS {
            let per: Vec<PerFrame> = vcpos
                .iter()
                .filter_map(|r| r.throughput.iter().find(|t| t.name == name && t.mtu == mtu))
                .filter_map(|t| t.per_frame)
                .collect();
            if per.is_empty() {
                continue;
            }
            let m = |f: fn(&PerFrame) -> f64| median(per.iter().map(f).collect());
            let bound =
                guest_only_bound(direct, name, mtu, m(|p| p.guest_us)).map_or("-".to_string(), |b| format!("{b:.2}"));
            let _ = writeln!(
                out,
                "{name:<29}  {mtu:>5}  {:>9.2}  {:>9.2}  {:>11.2}  {:>16.0}  {:>16.0}  {:>8.1}  {:>8.1}  {:>8.1}  {bound:>10}",
                m(|p| p.switches),
                m(|p| p.entries),
                m(|p| p.exits),
                m(|p| p.copied),
                m(|p| p.vmm_copied),
                m(|p| p.guest_us),
                m(|p| p.vmm_us),
                m(|p| p.others_us)
            );
        }
    }
    out
}

/// The vcpos/direct ratio test `name` at `mtu` would reach if the guest had its core
/// to itself (the VMM and vcp-net elsewhere, free): direct QEMU's wall time per full
/// wire frame (its median Mb/s) over the guest's own run time per wire frame on vcpos
/// (`guest_us`). Above 1: the guest alone is not what holds vcpos back.
pub fn guest_only_bound(direct: &[NetRun], name: &str, mtu: u32, guest_us: f64) -> Option<f64> {
    let d = median_mbit(direct, name, mtu).filter(|&d| d > 0.0)?;
    (guest_us > 0.0).then(|| (mss(mtu) * 8) as f64 / d / guest_us)
}

/// Runs the network benchmark `runs` times on `sut` against a bench server on the
/// host and prints the network table; false if a run failed or nothing was measured.
pub fn bench(sut: &Sut, runs: usize, timeout: Duration, verbose: bool) -> bool {
    bench_runs(sut, runs, timeout, verbose).0
}

/// [`bench`], also returning the runs measured (for [`compare_table`]).
pub fn bench_runs(sut: &Sut, runs: usize, timeout: Duration, verbose: bool) -> (bool, Vec<NetRun>) {
    let server = match bench_server() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error: {e}");
            return (false, Vec::new());
        }
    };
    println!(
        "== network ({}): {NET_COMMAND} tx|rx {HOST_ADDR} <port> {BENCH_MIB} and listen {GUEST_PORT} {BENCH_MIB} \
         (the host sends through a port forward) at MTU {MTUS:?}, and rr {BENCH_ROUND_TRIPS} (1 byte each way, \
         TCP_NODELAY), against the host's 127.0.0.1 on QEMU's user network, {runs} runs",
        sut.name()
    );
    let mut ok = true;
    let mut all = Vec::new();
    for i in 1..=runs {
        let pusher = Pusher::start(BENCH_MIB << 20, MTUS.len());
        let mut ports = free_port;
        let script = bench_script(server.port());
        let c = match run(sut, Some(&mut ports), &|p| pusher.set_port(p), script, timeout) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("Error: network run {i}: {e}");
                ok = false;
                continue;
            }
        };
        if verbose {
            print!("{}", c.output);
        }
        let done = c.ending == Ending::ScriptDone && c.script_complete();
        match check_clean(&c.output).and_then(|()| parse_run(&c.output)) {
            Ok(mut r) if done => {
                attach_counters(&c.output, &mut r);
                let row: Vec<String> = r
                    .throughput
                    .iter()
                    .map(|t| format!("{}@{} {:.1} Mb/s", t.name, t.mtu, t.mbit_per_s))
                    .collect();
                println!(
                    "  run {i}/{runs}: {}, rr {:.1} us",
                    row.join(", "),
                    r.rr_median_ns as f64 / 1000.0
                );
                all.push(r);
            }
            Ok(_) => {
                eprintln!(
                    "Error: network run {i}: the benchmark did not finish ({})\n{}",
                    c.ending, c.output
                );
                ok = false;
            }
            Err(e) => {
                eprintln!("Error: network run {i}: {e}\n{}", c.output);
                ok = false;
            }
        }
    }
    let errors = server.errors();
    if !errors.is_empty() {
        eprintln!("Error: the bench server: {}", errors.join("; "));
        ok = false;
    }
    if all.is_empty() {
        eprintln!("Error: no network figures");
        return (false, all);
    }
    print!("{}", net_table(&sut.name().replace(' ', "_"), &all));
    (ok, all)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vcpos_guest_bench::net::header;

    const RUN: &str = "vcpos-guest# ip link set eth0 mtu 1500 && echo net-mtu=$(cat /sys/class/net/eth0/mtu)\n\
        net-mtu=1500\n\
        BENCH net_tx mbit_per_s=812.3 bytes=67108864 elapsed_ns=660934000 frames=46603\n\
        BENCH net_rx mbit_per_s=1500.0 bytes=67108864 elapsed_ns=357913941\n\
        BENCH net_rx_fwd mbit_per_s=700.0 bytes=67108864 elapsed_ns=1 frames=46000\n\
        net-mtu=500\n\
        BENCH net_tx mbit_per_s=300.5 bytes=67108864 elapsed_ns=1 frames=145889\n\
        BENCH net_rx mbit_per_s=400.0 bytes=67108864 elapsed_ns=1\n\
        BENCH net_rx_fwd mbit_per_s=200.0 bytes=67108864 elapsed_ns=1 frames=146000\n\
        BENCH net_rr median_ns=95000 median_ticks=5937 iterations=1000 min_ns=1 max_ns=2\n";

    #[test]
    fn runs_parse_with_their_mtu() {
        let r = parse_run(RUN).unwrap();
        assert_eq!(r.rr_median_ns, 95_000);
        // The same lines from a guest on vcpos (the VMM's prefix before each).
        let prefixed: String = RUN.lines().map(|l| format!("guest| {l}\n")).collect();
        assert_eq!(parse_run(&prefixed).unwrap(), r);
        let t0 = Throughput {
            name: "net_tx".into(),
            mtu: 1500,
            mbit_per_s: 812.3,
            bytes: 64 << 20,
            frames: Some(46603),
            per_frame: None,
        };
        assert_eq!(r.throughput[0], t0);
        assert_eq!(r.throughput[0].bytes_per_frame().map(f64::round), Some(1440.0));
        assert_eq!(r.throughput.len(), 6);
        assert_eq!(
            (r.throughput[4].mtu, r.throughput[4].mbit_per_s, r.throughput[4].frames),
            (500, 400.0, None)
        );
        assert_eq!(r.throughput[4].bytes_per_frame(), None);
        assert_eq!(
            (r.throughput[5].name.as_str(), r.throughput[5].mtu),
            ("net_rx_fwd", 500)
        );
        let no_fwd = RUN.replace("BENCH net_rx_fwd mbit_per_s=200.0", "xx");
        assert!(parse_run(&no_fwd)
            .unwrap_err()
            .contains("no 'BENCH net_rx_fwd' line at MTU 500"));
        assert!(parse_run(&RUN.replace("frames=46603", "frames=lots"))
            .unwrap_err()
            .contains("frames=lots"));
        let no500 = RUN.replace("net-mtu=500\n", "");
        assert!(
            parse_run(&no500).unwrap_err().contains("at MTU 500"),
            "{:?}",
            parse_run(&no500)
        );
        assert!(parse_run(&RUN.replace("BENCH net_rr", "xx"))
            .unwrap_err()
            .contains("net_rr"));
        assert!(parse_run(&RUN.replace("mbit_per_s=812.3", "mbit_per_s=x"))
            .unwrap_err()
            .contains("not a number"));
        assert!(parse_run(&RUN.replacen("net-mtu=1500\n", "", 1))
            .unwrap_err()
            .contains("no net-mtu= line"));
    }

    #[test]
    fn table_takes_medians() {
        let a = parse_run(RUN).unwrap();
        let mut b = a.clone();
        b.throughput[0].mbit_per_s = 100.0;
        b.rr_median_ns = 1000;
        let mut c = a.clone();
        c.throughput[0].mbit_per_s = 200.0;
        c.rr_median_ns = 2000;
        let t = net_table("direct_QEMU", &[a, b, c]);
        assert!(
            t.contains("BENCH net_tx_mtu1500 side=direct_QEMU mbit_per_s=200.0 bytes_per_frame=1440 runs=3\n")
                && t.contains("BENCH net_tx_mtu500 side=direct_QEMU mbit_per_s=300.5 bytes_per_frame=460 runs=3\n"),
            "{t}"
        );
        assert!(
            t.contains("BENCH net_rx_mtu500 side=direct_QEMU mbit_per_s=400.0 runs=3\n"),
            "{t}"
        );
        assert!(
            t.contains("BENCH net_rr side=direct_QEMU median_ns=2000 runs=3\n"),
            "{t}"
        );
        assert_eq!(net_table("x", &[]).lines().count(), 2);
    }

    #[test]
    fn comparison_gives_ratios_of_medians() {
        let d = parse_run(RUN).unwrap();
        let mut v1 = d.clone();
        v1.throughput[0].mbit_per_s = 406.15; // net_tx at 1500: half of 812.3
        v1.rr_median_ns = 190_000;
        let mut v2 = v1.clone();
        v2.throughput[0].mbit_per_s = 1000.0;
        let mut v3 = v1.clone();
        v3.throughput[0].mbit_per_s = 10.0;
        let t = compare_table(std::slice::from_ref(&d), &[v1, v2, v3]);
        assert!(t.contains("BENCH net_tx_mtu1500 ratio_vcpos_over_direct=0.50\n"), "{t}");
        assert!(t.contains("BENCH net_rx_mtu500 ratio_vcpos_over_direct=1.00\n"), "{t}");
        assert!(t.contains("BENCH net_rr ratio_vcpos_over_direct=2.00\n"), "{t}");
        assert!(t.contains("95.0") && t.contains("190.0"), "{t}");
        assert_eq!(t.lines().filter(|l| l.starts_with("BENCH ")).count(), 7);
        // A side without figures: only the header.
        assert_eq!(compare_table(&[d], &[]).lines().count(), 2);
    }

    #[test]
    fn counters_per_frame_pair_each_test_with_the_snapshot_before_it() {
        let snap = |tag: &str, sw: u64, ex: u64, cp: u64| {
            format!(
                "linux_vmm: counters at {tag} threads=3 switches={sw} entries={} exits={ex} vmm_copied={cp} \
                 vmm_run={} vcpu_run={} copied={} time_run_t0={cp} time_run_t1={} time_run_t2={} freq=1000000\n",
                2 * sw,
                2 * cp,
                3 * cp,
                3 * cp,
                2 * cp,
                3 * cp
            )
        };
        let mut out = String::new();
        out += &snap("net_start", 100, 10, 0);
        out += "guest| BENCH net_tx mbit_per_s=100.0 bytes=1000 elapsed_ns=1 frames=10\n";
        out += &snap("net_tx", 200, 30, 1000);
        out += "guest| BENCH net_rx mbit_per_s=100.0 bytes=1000 elapsed_ns=1 frames=20\n";
        out += &snap("net_rx", 400, 70, 3000);
        let mut r = NetRun {
            throughput: vec![
                Throughput {
                    name: "net_tx".into(),
                    mtu: 1500,
                    mbit_per_s: 100.0,
                    bytes: 1000,
                    frames: Some(10),
                    per_frame: None,
                },
                Throughput {
                    name: "net_rx".into(),
                    mtu: 1500,
                    mbit_per_s: 100.0,
                    bytes: 1000,
                    frames: Some(20),
                    per_frame: None,
                },
                // Its snapshot is missing: no figures rather than wrong ones.
                Throughput {
                    name: "net_tx".into(),
                    mtu: 500,
                    mbit_per_s: 100.0,
                    bytes: 1000,
                    frames: Some(20),
                    per_frame: None,
                },
            ],
            rr_median_ns: 1,
        };
        attach_counters(&out, &mut r);
        // Both tests grew the counters in proportion to their frames: the same per frame.
        let want = PerFrame {
            switches: 10.0,
            entries: 20.0,
            exits: 2.0,
            vmm_copied: 100.0,
            copied: 300.0,
            guest_us: 300.0,
            vmm_us: 200.0,
            others_us: 100.0,
        };
        assert_eq!(r.throughput[0].per_frame, Some(want));
        assert_eq!(r.throughput[1].per_frame, Some(want));
        assert_eq!(r.throughput[2].per_frame, None);

        // A guest that sent with segmentation offload: 10 frames of 14480 bytes each
        // are 100 wire frames of 1448 bytes.
        r.throughput[0].bytes = 144_800;
        r.throughput[0].per_frame = None;
        attach_counters(&out, &mut r);
        assert_eq!(r.throughput[0].per_frame.map(|p| p.switches), Some(1.0));
    }

    #[test]
    fn wire_frames_count_segments_of_offloaded_frames() {
        assert_eq!(mss(1500), 1448);
        assert_eq!(mss(500), 448);
        // Without offloads the guest's count stands (a little payload per frame less
        // than the MSS: control frames).
        assert_eq!(wire_frames(1000, 1000 * 1440, 1500), 1000);
        assert_eq!(wire_frames(100, 100 * 21720, 1500), 1500);
        assert_eq!(wire_frames(3, 0, 1500), 3);
    }

    #[test]
    fn table6_has_the_seeds_shape() {
        let d = parse_run(RUN).unwrap();
        let mut v = d.clone();
        v.throughput[0].mbit_per_s = 406.15; // net_tx at 1500: half of 812.3
        v.throughput[0].per_frame = Some(PerFrame {
            switches: 7.5,
            entries: 20.0,
            exits: 3.25,
            vmm_copied: 1456.0,
            copied: 1470.0,
            guest_us: 28.5,
            vmm_us: 12.25,
            others_us: 9.75,
        });
        let t = table6(std::slice::from_ref(&d), &[v]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].contains("TCP MTU 1500") && lines[1].contains("TCP MTU 500"),
            "{t}"
        );
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["TX", "RX", "TX", "RX"],
            "{t}"
        );
        assert!(lines[3].starts_with("direct QEMU") && lines[3].contains("812.3"), "{t}");
        assert!(
            lines[4].starts_with("vcpos") && lines[4].contains("406.1 (-50%)"),
            "{t}"
        );
        assert!(
            t.contains("7.50") && t.contains("3.25") && t.contains("1456") && t.contains("1470"),
            "{t}"
        );
        assert!(t.contains("28.5") && t.contains("12.2") && t.contains("9.8"), "{t}");
        // 1448 bytes at 812.3 Mb/s take 14.26 us; the guest alone needs 28.5.
        assert!(t.contains(" 0.50"), "{t}");
    }

    #[test]
    fn nic_and_script() {
        assert_eq!(nic(Some(15000)).to_string(), "nic,host,fwd=15000:5000");
        assert_eq!(nic(None).to_string(), "nic,host");
        let s = bench_script(4242);
        let typed: String = s
            .iter()
            .map(|st| String::from_utf8_lossy(&st.send).into_owned())
            .collect();
        assert!(typed.contains("ip link set eth0 mtu 500 && "), "{typed}");
        assert!(typed.contains("vcpos-mmio-bench net rx 10.0.2.2 4242 64\r"), "{typed}");
        assert_eq!(
            typed.matches("vcpos-mmio-bench net listen 5000 64\r").count(),
            2,
            "{typed}"
        );
        assert!(
            typed.contains("vcpos-mmio-bench net rr 10.0.2.2 4242 1000\r"),
            "{typed}"
        );
    }

    /// The bench server speaks the guest program's protocol: counts what it is sent,
    /// sends what is asked, echoes round trips; a bad header is an error it reports.
    #[test]
    fn bench_server_speaks_the_protocol() {
        let server = bench_server().unwrap();
        let addr = ("127.0.0.1", server.port());
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&header(Op::Tx, 100_000)).unwrap();
        c.write_all(&vec![7u8; 100_000]).unwrap();
        let mut count = [0u8; 8];
        c.read_exact(&mut count).unwrap();
        assert_eq!(u64::from_le_bytes(count), 100_000);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&header(Op::Rx, 300_001)).unwrap();
        let mut got = Vec::new();
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), 300_001);
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&header(Op::Rr, 3)).unwrap();
        for b in [1u8, 2, 3] {
            c.write_all(&[b]).unwrap();
            let mut back = [0u8];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, [b]);
        }
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"Xgarbage!").unwrap();
        let _ = c.read_to_end(&mut Vec::new());
        // Short sends are counted as such and reported.
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&header(Op::Tx, 10)).unwrap();
        c.write_all(&[1, 2, 3]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        c.read_exact(&mut count).unwrap();
        assert_eq!(u64::from_le_bytes(count), 3);
        std::thread::sleep(Duration::from_millis(200));
        let errors = server.errors();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("unknown operation byte 0x58") || errors[1].contains("0x58"),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("sent 3 of 10 bytes")), "{errors:?}");
    }

    /// The pusher retries until something listens and counts back, and stops after
    /// its deliveries.
    #[test]
    fn pusher_retries_until_a_listener_counts() {
        let pusher = Pusher::start(300_000, 2);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        // A connection the "guest" drops unread first (slirp's reset when the guest does
        // not listen yet), then two good ones.
        pusher.set_port(port);
        let (first, _) = l.accept().unwrap();
        drop(first);
        for _ in 0..2 {
            let (mut c, _) = l.accept().unwrap();
            let mut got = vec![0u8; 300_000];
            c.read_exact(&mut got).unwrap();
            c.write_all(&300_000u64.to_le_bytes()).unwrap();
        }
        for _ in 0..50 {
            if pusher.delivered() == 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(pusher.delivered(), 2);
    }

    /// The HTTP server serves the data, 404s other paths, and pushes to a port.
    #[test]
    fn http_server_serves_and_pushes() {
        let data = payload(9, 1 << 16);
        let http = HttpServer::start(data.clone()).unwrap();
        let get = |path: &str| {
            let mut c = TcpStream::connect(("127.0.0.1", http.server().port())).unwrap();
            write!(c, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            all
        };
        let r = get("/data");
        let split = r.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(r.starts_with(b"HTTP/1.0 200 OK\r\n"));
        assert_eq!(&r[split..], &data[..]);
        assert!(get("/nope").starts_with(b"HTTP/1.0 404"));
        // A push target that counts and closes.
        let sink = TcpListener::bind("127.0.0.1:0").unwrap();
        http.set_push_port(sink.local_addr().unwrap().port());
        let t = std::thread::spawn(move || {
            let (mut s, _) = sink.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            got
        });
        let r = get("/push");
        assert!(
            String::from_utf8_lossy(&r).ends_with("pushed 65536\n"),
            "{}",
            String::from_utf8_lossy(&r)
        );
        assert_eq!(t.join().unwrap(), data);
        std::thread::sleep(Duration::from_millis(100));
        let errors = http.server().errors();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("GET /nope"), "{errors:?}");
        assert_eq!(
            sha256_hex(b"").unwrap(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(payload(9, 16), payload(9, 16));
        assert_ne!(payload(9, 16), payload(10, 16));
    }
}
