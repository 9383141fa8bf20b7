//! The status server: a smoltcp interface with a static address ([`ADDRESS`]/
//! [`PREFIX_LEN`], default route via [`GATEWAY`]: QEMU's user network, where the host's
//! port forwards lead to 10.0.2.15 unless told otherwise) and [`SOCKETS`] TCP sockets
//! listening on [`PORT`]. Each connection reads one request ([`crate::http::parse`]),
//! gets one response rendered from a fresh [`Snapshot`] and is closed by the server.
//!
//! There is no timer: the PD polls when a notification arrives (a frame, or a TX
//! buffer given back). So a lost segment is retransmitted only when the next frame
//! arrives, a connection the server closed does not wait out TIME-WAIT (it is aborted
//! and the socket listens again: the peer has acknowledged everything by then), and a
//! connection older than [`CONNECTION_TIMEOUT`] is aborted at the next poll.

use core::fmt::Write;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet, SocketStorage};
use smoltcp::phy::Device;
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};

use crate::http::{self, Page, Parse, Request, Status, MAX_REQUEST};
use crate::render::{self, Cursor, Snapshot};

/// The server's IPv4 address (QEMU's user network gives 10.0.2.15 first by DHCP and
/// forwards host ports there by default; the status PD takes it statically).
pub const ADDRESS: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);
/// The network prefix length of [`ADDRESS`].
pub const PREFIX_LEN: u8 = 24;
/// The default gateway (QEMU's user network).
pub const GATEWAY: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
/// The TCP port the pages are served on.
pub const PORT: u16 = 80;
/// Connections served at the same time (each a listening socket).
pub const SOCKETS: usize = 2;
/// A connection older than this is aborted at the next poll (the next frame), so
/// peers that connect and never finish cannot hold every socket.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of a TCP socket's receive buffer.
pub const TCP_RX: usize = 2048;
/// Bytes of a TCP socket's transmit buffer.
pub const TCP_TX: usize = 8192;
/// Most bytes of one response (headers and page): the largest JSON page (64 threads,
/// every counter at 20 digits) is about 48 KiB.
pub const RESPONSE_MAX: usize = 64 * 1024;
/// Room kept for the status line and headers before the page.
const HEAD_ROOM: usize = 256;

/// The server's memory, which its sockets borrow for as long as the server lives
/// (`'static` in the PD: leaked once).
pub struct Storage<'a> {
    sockets: [SocketStorage<'a>; SOCKETS],
    tcp_rx: [[u8; TCP_RX]; SOCKETS],
    tcp_tx: [[u8; TCP_TX]; SOCKETS],
    requests: [[u8; MAX_REQUEST]; SOCKETS],
    responses: [[u8; RESPONSE_MAX]; SOCKETS],
}

impl Storage<'_> {
    /// Zeroed storage.
    pub fn new() -> Self {
        Storage {
            sockets: Default::default(),
            tcp_rx: [[0; TCP_RX]; SOCKETS],
            tcp_tx: [[0; TCP_TX]; SOCKETS],
            requests: [[0; MAX_REQUEST]; SOCKETS],
            responses: [[0; RESPONSE_MAX]; SOCKETS],
        }
    }
}

impl Default for Storage<'_> {
    fn default() -> Self {
        Storage::new()
    }
}

/// What the server needs from its PD: the counters, and where to say what it served.
pub trait Host {
    /// A snapshot of the counters, taken now.
    fn snapshot(&mut self) -> Snapshot<'_>;
    /// A request was answered with `status` (`page` if it named one).
    fn served(&mut self, status: Status, page: Option<Page>);
}

/// Requests answered, by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// 200 responses.
    pub ok: u64,
    /// Error responses (4xx, 5xx).
    pub errors: u64,
}

/// One connection's progress.
struct Conn<'a> {
    handle: SocketHandle,
    request: &'a mut [u8; MAX_REQUEST],
    request_len: usize,
    response: &'a mut [u8; RESPONSE_MAX],
    /// The part of `response` still to send (`start..end`); `None` before the request.
    pending: Option<(usize, usize)>,
    /// When the poll that first saw the connection ran.
    since: Option<Instant>,
}

/// The status server.
pub struct StatusServer<'a> {
    iface: Interface,
    sockets: SocketSet<'a>,
    conns: [Option<Conn<'a>>; SOCKETS],
    stats: ServerStats,
}

impl<'a> StatusServer<'a> {
    /// A server with Ethernet address `mac` at [`ADDRESS`] on `device`.
    pub fn new(storage: &'a mut Storage<'a>, mac: [u8; 6], device: &mut impl Device, now: Instant) -> Self {
        Self::with_address(storage, mac, IpCidr::new(ADDRESS.into(), PREFIX_LEN), device, now)
    }

    /// A server at another address (the host tests' second interface uses the same
    /// storage type); the default route stays [`GATEWAY`].
    pub fn with_address(
        storage: &'a mut Storage<'a>,
        mac: [u8; 6],
        cidr: IpCidr,
        device: &mut impl Device,
        now: Instant,
    ) -> Self {
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        // TCP initial sequence numbers: not security-relevant here.
        config.random_seed = u64::from_le_bytes([mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], 0x5a, 0xa5]);
        let mut iface = Interface::new(config, device, now);
        iface.update_ip_addrs(|a| {
            let _ = a.push(cidr);
        });
        let _ = iface.routes_mut().add_default_ipv4_route(GATEWAY);
        let Storage {
            sockets,
            tcp_rx,
            tcp_tx,
            requests,
            responses,
        } = storage;
        let mut set = SocketSet::new(&mut sockets[..]);
        let mut conns: [Option<Conn<'a>>; SOCKETS] = Default::default();
        for ((((slot, rx), tx), request), response) in conns
            .iter_mut()
            .zip(tcp_rx.iter_mut())
            .zip(tcp_tx.iter_mut())
            .zip(requests.iter_mut())
            .zip(responses.iter_mut())
        {
            let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..]));
            // Listening from the start, so the first SYN is not refused.
            let _ = socket.listen(PORT);
            let handle = set.add(socket);
            *slot = Some(Conn {
                handle,
                request,
                request_len: 0,
                response,
                pending: None,
                since: None,
            });
        }
        StatusServer {
            iface,
            sockets: set,
            conns,
            stats: ServerStats::default(),
        }
    }

    /// Requests answered so far.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// Moves frames and serves requests until nothing more happens now.
    pub fn poll(&mut self, now: Instant, device: &mut impl Device, host: &mut impl Host) {
        // Bounded: each round either moved a frame or served a step; 64 rounds is far
        // more than a notification's worth of work.
        for _ in 0..64 {
            let _ = self.iface.poll(now, device, &mut self.sockets);
            let mut progressed = false;
            for conn in self.conns.iter_mut().flatten() {
                let socket = self.sockets.get_mut::<tcp::Socket>(conn.handle);
                progressed |= service(conn, socket, now, host, &mut self.stats);
            }
            if !progressed {
                break;
            }
        }
    }
}

/// One step of a connection; `true` if it changed something smoltcp must send.
fn service(
    conn: &mut Conn<'_>,
    socket: &mut tcp::Socket<'_>,
    now: Instant,
    host: &mut impl Host,
    stats: &mut ServerStats,
) -> bool {
    match socket.state() {
        tcp::State::TimeWait => {
            socket.abort();
            return true;
        }
        tcp::State::Closed => {
            conn.request_len = 0;
            conn.pending = None;
            conn.since = None;
            return socket.listen(PORT).is_ok();
        }
        tcp::State::Listen => return false,
        _ => {}
    }
    let since = *conn.since.get_or_insert(now);
    if now - since > CONNECTION_TIMEOUT {
        socket.abort();
        return true;
    }
    if let Some((start, end)) = conn.pending {
        if start < end && socket.can_send() {
            let n = socket.send_slice(&conn.response[start..end]).unwrap_or(0);
            conn.pending = Some((start + n, end));
            if start + n == end {
                socket.close();
            }
            return n > 0;
        }
        return false;
    }
    if !socket.may_recv() {
        // The peer closed before a whole request arrived.
        if socket.is_active() && conn.request_len > 0 {
            socket.close();
            return true;
        }
        return false;
    }
    if !socket.can_recv() {
        return false;
    }
    let n = socket.recv_slice(&mut conn.request[conn.request_len..]).unwrap_or(0);
    conn.request_len += n;
    let request = match http::parse(&conn.request[..conn.request_len]) {
        Parse::Incomplete => return false,
        Parse::Done(r) => r,
    };
    let (start, end) = respond(request, conn.response, host, stats);
    conn.pending = Some((start, end));
    true
}

/// Renders the response to `request` into `out`: the page at `HEAD_ROOM..`, then the
/// headers just before it. Returns the response's range.
fn respond(
    request: Request,
    out: &mut [u8; RESPONSE_MAX],
    host: &mut impl Host,
    stats: &mut ServerStats,
) -> (usize, usize) {
    let (mut status, page, head) = match request {
        Request::Page { page, head } => (Status::Ok, Some(page), head),
        Request::Error(s) => (s, None, false),
    };
    let mut body_len = 0;
    let mut content_type = "text/plain; charset=utf-8";
    {
        let mut body = Cursor::new(&mut out[HEAD_ROOM..]);
        let rendered = match page {
            Some(p) => {
                content_type = p.content_type();
                let snap = host.snapshot();
                match p {
                    Page::Html => render::html(&mut body, &snap),
                    Page::Json => render::json(&mut body, &snap),
                }
            }
            None => writeln!(body, "{} {}", status as u16, status.reason()),
        };
        if rendered.is_ok() {
            body_len = body.len();
        }
    }
    if page.is_some() && body_len == 0 {
        status = Status::InternalError;
        content_type = "text/plain; charset=utf-8";
        let mut body = Cursor::new(&mut out[HEAD_ROOM..]);
        let _ = writeln!(body, "500 the page does not fit {RESPONSE_MAX} bytes");
        body_len = body.len();
    }
    let mut head_buf = [0u8; HEAD_ROOM];
    let mut h = Cursor::new(&mut head_buf);
    let _ = http::write_head(&mut h, status, content_type, body_len);
    let hlen = h.len();
    let start = HEAD_ROOM - hlen;
    out[start..HEAD_ROOM].copy_from_slice(h.written());
    if status == Status::Ok {
        stats.ok += 1;
    } else {
        stats.errors += 1;
    }
    host.served(status, page);
    let end = if head { HEAD_ROOM } else { HEAD_ROOM + body_len };
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::MAX_THREADS;
    use vcpos_abi::counters::{KernelCounters, ThreadCounters};

    struct Full {
        threads: [ThreadCounters; MAX_THREADS],
        served: Vec<(Status, Option<Page>)>,
    }

    impl Host for Full {
        fn snapshot(&mut self) -> Snapshot<'_> {
            Snapshot {
                threads: &self.threads,
                own: self.threads[0],
                own_index: Some(0),
                kernel: KernelCounters {
                    timer_interrupts: u64::MAX,
                    timer_arms: u64::MAX,
                },
                now_ticks: u64::MAX,
                counter_hz: 1,
            }
        }

        fn served(&mut self, status: Status, page: Option<Page>) {
            self.served.push((status, page));
        }
    }

    /// The largest pages there can be (every thread the kernel can hold, every counter
    /// at its widest) fit the response buffer.
    #[test]
    fn largest_pages_fit() {
        let max = ThreadCounters {
            kernel_entries: u64::MAX,
            switches_to: u64::MAX,
            switches_from: u64::MAX,
            notifications_sent: u64::MAX,
            notifications_received: u64::MAX,
            ppc_calls: u64::MAX,
            ppc_served: u64::MAX,
            faults: u64::MAX,
            budget_exhaustions: u64::MAX,
            time_run: u64::MAX,
            bytes_copied: u64::MAX,
            guest_exits: [u64::MAX; vcpos_abi::counters::GuestExit::COUNT],
        };
        let mut host = Full {
            threads: [max; MAX_THREADS],
            served: Vec::new(),
        };
        let mut out = Box::new([0u8; RESPONSE_MAX]);
        let mut stats = ServerStats::default();
        for page in [Page::Json, Page::Html] {
            let (start, end) = respond(Request::Page { page, head: false }, &mut out, &mut host, &mut stats);
            let text = core::str::from_utf8(&out[start..end]).unwrap();
            assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{page:?}: {}", &text[..40]);
            let body = text.split_once("\r\n\r\n").unwrap().1;
            assert!(text.contains(&format!("Content-Length: {}\r\n", body.len())));
        }
        assert_eq!(stats.ok, 2);
        // HEAD: the same headers, no body.
        let (start, end) = respond(
            Request::Page {
                page: Page::Json,
                head: true,
            },
            &mut out,
            &mut host,
            &mut stats,
        );
        assert!(core::str::from_utf8(&out[start..end])
            .unwrap()
            .ends_with("Connection: close\r\n\r\n"));
    }

    /// A page that does not fit is a 500, not a truncated page.
    #[test]
    fn too_large_is_500() {
        struct Huge(Vec<ThreadCounters>);
        impl Host for Huge {
            fn snapshot(&mut self) -> Snapshot<'_> {
                Snapshot {
                    threads: &self.0,
                    own: ThreadCounters::default(),
                    own_index: None,
                    kernel: KernelCounters::default(),
                    now_ticks: 0,
                    counter_hz: 1,
                }
            }
            fn served(&mut self, _: Status, _: Option<Page>) {}
        }
        let mut host = Huge(vec![ThreadCounters::default(); 1000]);
        let mut out = Box::new([0u8; RESPONSE_MAX]);
        let mut stats = ServerStats::default();
        let (start, end) = respond(
            Request::Page {
                page: Page::Json,
                head: false,
            },
            &mut out,
            &mut host,
            &mut stats,
        );
        let text = core::str::from_utf8(&out[start..end]).unwrap();
        assert!(text.starts_with("HTTP/1.0 500 Internal Server Error\r\n"), "{text}");
        assert_eq!(stats.errors, 1);
    }
}
