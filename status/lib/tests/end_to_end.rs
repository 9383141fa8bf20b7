//! End to end on the host: the status server and an HTTP client, each a smoltcp
//! interface on a [`ProtocolDevice`] over the network protocol's client half in
//! `FakeMemory`, joined by a fake switch made of two server halves (what vcp-net's
//! local delivery does). The client GETs `/status.json`, `/` and a missing page.

use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};
use vcpos_abi::counters::{KernelCounters, ThreadCounters};
use vcpos_net_protocol::{Client, ControlLayout, Server, ServerConfig, TxStatus, BUF_SIZE};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::SharedMemory;
use vcpos_status::device::ProtocolDevice;
use vcpos_status::http::{Page, Status};
use vcpos_status::render::Snapshot;
use vcpos_status::server::{Host, StatusServer, Storage, ADDRESS, CONNECTION_TIMEOUT, GATEWAY, PORT};

const RING: u32 = 64;
const BUFFERS: usize = 16;
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x20];

/// One port of the fake switch: the server half and the client's data region.
struct Port {
    server: Server<FakeMemory>,
    data: FakeMemory,
}

fn port(mac: [u8; 6]) -> (Port, Client<FakeMemory>) {
    let control = FakeMemory::new(ControlLayout::new(RING).unwrap().size());
    let data = FakeMemory::new(BUFFERS * BUF_SIZE as usize);
    let mut server = Server::new(
        control.clone(),
        data.size() as u64,
        ServerConfig {
            mac,
            ring_capacity: RING,
            offloads: 0,
        },
    )
    .unwrap();
    server.publish(1).unwrap();
    let mut client = Client::new(control, data.clone(), RING).unwrap();
    client.connect().unwrap();
    (Port { server, data }, client)
}

/// Moves every frame sent on one port to the other (dropped if it has no RX buffer, as
/// vcp-net does); returns the frames moved.
fn switch(ports: &mut [Port; 2]) -> usize {
    let mut moved = 0;
    for from in 0..2 {
        let to = 1 - from;
        while let Some(tx) = ports[from].server.next_tx().unwrap() {
            let mut frame = vec![0u8; tx.len() as usize];
            ports[from].data.read_bytes(tx.offset() as usize, &mut frame).unwrap();
            if let Some(rx) = ports[to].server.take_rx_buffer().unwrap() {
                ports[to].data.write_bytes(rx.offset() as usize, &frame).unwrap();
                ports[to].server.rx_deliver(rx, tx.len()).unwrap();
            }
            ports[from].server.tx_done(tx, TxStatus::Sent).unwrap();
            moved += 1;
        }
    }
    moved
}

/// A fake kernel: three threads, the served requests recorded.
struct FakeKernel {
    threads: Vec<ThreadCounters>,
    served: Vec<(Status, Option<Page>)>,
    snapshots: u64,
}

impl Host for FakeKernel {
    fn snapshot(&mut self) -> Snapshot<'_> {
        self.snapshots += 1;
        // The counters move between snapshots, as the kernel's do.
        self.threads[1].kernel_entries += 100;
        Snapshot {
            threads: &self.threads,
            own: self.threads[1],
            own_index: Some(1),
            kernel: KernelCounters {
                timer_interrupts: 5,
                timer_arms: 6,
            },
            now_ticks: 1_000,
            counter_hz: 1_000_000,
        }
    }

    fn served(&mut self, status: Status, page: Option<Page>) {
        self.served.push((status, page));
    }
}

/// GETs `path` from the status server; returns the whole response.
fn get(
    path: &str,
    server: &mut StatusServer<'_>,
    kernel: &mut FakeKernel,
    ports: &mut [Port; 2],
    sdev: &mut ProtocolDevice<FakeMemory>,
    cdev: &mut ProtocolDevice<FakeMemory>,
    local_port: u16,
) -> String {
    let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(CLIENT_MAC)));
    config.random_seed = 7;
    let mut t = 0i64;
    let mut iface = Interface::new(config, cdev, Instant::from_millis(t));
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(GATEWAY), 24)).unwrap();
    });
    let mut storage = [SocketStorage::EMPTY];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let (mut rx, mut tx) = ([0u8; 4096], [0u8; 4096]);
    let socket = tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..]));
    let h = sockets.add(socket);
    sockets
        .get_mut::<tcp::Socket>(h)
        .connect(iface.context(), (IpAddress::Ipv4(ADDRESS), PORT), local_port)
        .unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nHost: status\r\n\r\n");
    let mut sent = false;
    let mut response = Vec::new();
    for _ in 0..2000 {
        t += 1;
        let now = Instant::from_millis(t);
        iface.poll(now, cdev, &mut sockets);
        let s = sockets.get_mut::<tcp::Socket>(h);
        if s.can_send() && !sent {
            assert_eq!(s.send_slice(request.as_bytes()).unwrap(), request.len());
            sent = true;
        }
        while s.can_recv() {
            let mut buf = [0u8; 1024];
            let n = s.recv_slice(&mut buf).unwrap();
            response.extend_from_slice(&buf[..n]);
        }
        if sent && !s.may_recv() && s.state() != tcp::State::SynSent {
            s.close();
            iface.poll(now, cdev, &mut sockets);
            switch(ports);
            server.poll(now, sdev, kernel);
            return String::from_utf8(response).unwrap();
        }
        iface.poll(now, cdev, &mut sockets);
        switch(ports);
        server.poll(now, sdev, kernel);
        switch(ports);
    }
    panic!(
        "GET {path}: no complete response; got {:?}",
        String::from_utf8_lossy(&response)
    );
}

#[test]
fn http_get_end_to_end() {
    let (sport, sclient) = port(SERVER_MAC);
    let (cport, cclient) = port(CLIENT_MAC);
    let mut ports = [sport, cport];
    let mut sdev = ProtocolDevice::new(sclient);
    let mut cdev = ProtocolDevice::new(cclient);
    let mut storage = Box::new(Storage::new());
    let mut server = StatusServer::new(&mut storage, SERVER_MAC, &mut sdev, Instant::from_millis(0));
    let mut kernel = FakeKernel {
        threads: vec![ThreadCounters::default(); 3],
        served: Vec::new(),
        snapshots: 0,
    };
    kernel.threads[2].ppc_calls = 42;

    let r = get(
        "/status.json",
        &mut server,
        &mut kernel,
        &mut ports,
        &mut sdev,
        &mut cdev,
        40000,
    );
    let (head, body) = r.split_once("\r\n\r\n").expect("headers end");
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert!(head.contains("Content-Type: application/json"));
    assert!(head.contains(&format!("Content-Length: {}", body.len())));
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    let threads = v["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 3);
    assert_eq!(threads[1]["kernel_entries"], 100);
    assert_eq!(threads[2]["ppc_calls"], 42);
    assert_eq!(v["own"]["kernel_entries"], 100);
    assert_eq!(v["own_index"], 1);

    // A second connection (the first socket may still be closing): a fresh snapshot.
    let r = get("/", &mut server, &mut kernel, &mut ports, &mut sdev, &mut cdev, 40001);
    assert!(r.starts_with("HTTP/1.0 200 OK\r\nContent-Type: text/html"), "{r}");
    assert!(r.contains("<tr><td>thread 1</td><td>200</td>"), "{r}");
    assert!(r.ends_with("</html>\n"));

    let r = get(
        "/missing",
        &mut server,
        &mut kernel,
        &mut ports,
        &mut sdev,
        &mut cdev,
        40002,
    );
    assert!(r.starts_with("HTTP/1.0 404 Not Found\r\n"), "{r}");

    // Many more than there are sockets, one after the other: the sockets come back.
    for i in 0..6 {
        let r = get(
            "/status.json",
            &mut server,
            &mut kernel,
            &mut ports,
            &mut sdev,
            &mut cdev,
            40010 + i,
        );
        assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "request {i}: {r}");
    }

    assert_eq!(kernel.snapshots, 8);
    assert_eq!(kernel.served.len(), 9);
    assert_eq!(kernel.served[0], (Status::Ok, Some(Page::Json)));
    assert_eq!(kernel.served[1], (Status::Ok, Some(Page::Html)));
    assert_eq!(kernel.served[2], (Status::NotFound, None));
    assert_eq!(server.stats().ok, 8);
    assert_eq!(server.stats().errors, 1);
    assert_eq!(sdev.stats().errors, 0);
    assert!(sdev.stats().rx_frames > 0 && sdev.stats().tx_frames > 0);
    // Every frame copied once each way, and frames are at least a header long.
    let s = sdev.stats();
    assert!(s.bytes_copied >= 14 * (s.rx_frames + s.tx_frames), "{s:?}");
    assert!(s.bytes_copied <= 1514 * (s.rx_frames + s.tx_frames), "{s:?}");
}

/// Raw bytes that are not HTTP get a 400 and the connection closed; no panic.
#[test]
fn garbage_request_gets_400() {
    let (sport, sclient) = port(SERVER_MAC);
    let (cport, cclient) = port(CLIENT_MAC);
    let mut ports = [sport, cport];
    let mut sdev = ProtocolDevice::new(sclient);
    let mut cdev = ProtocolDevice::new(cclient);
    let mut storage = Box::new(Storage::new());
    let mut server = StatusServer::new(&mut storage, SERVER_MAC, &mut sdev, Instant::from_millis(0));
    let mut kernel = FakeKernel {
        threads: vec![ThreadCounters::default(); 1],
        served: Vec::new(),
        snapshots: 0,
    };
    let r = get(
        "\u{1}\u{2} x",
        &mut server,
        &mut kernel,
        &mut ports,
        &mut sdev,
        &mut cdev,
        40100,
    );
    assert!(r.starts_with("HTTP/1.0 400 Bad Request\r\n"), "{r}");
    assert_eq!(kernel.snapshots, 0);
}

/// A hostile network server gives back a receive buffer the client never handed over
/// (one of its transmit buffers) and a frame of impossible length: the device drops
/// them, counts and keeps the error, and the status server polls on without a panic.
#[test]
fn hostile_give_backs_are_errors_not_panics() {
    let layout = ControlLayout::new(RING).unwrap();
    let control = FakeMemory::new(layout.size());
    let data = FakeMemory::new(BUFFERS * BUF_SIZE as usize);
    let mut half = Server::new(
        control.clone(),
        data.size() as u64,
        ServerConfig {
            mac: SERVER_MAC,
            ring_capacity: RING,
            offloads: 0,
        },
    )
    .unwrap();
    half.publish(1).unwrap();
    let mut client = Client::new(control.clone(), data, RING).unwrap();
    client.connect().unwrap();
    let mut dev = ProtocolDevice::new(client);
    let mut storage = Box::new(Storage::new());
    let mut server = StatusServer::new(&mut storage, SERVER_MAC, &mut dev, Instant::from_millis(0));
    let mut kernel = FakeKernel {
        threads: vec![ThreadCounters::default(); 1],
        served: Vec::new(),
        snapshots: 0,
    };
    // The RX active ring written raw, as a hostile vcp-net could (the honest half
    // never produces on it in this test).
    let mut raw = vcpos_queue::Producer::<_, vcpos_net_protocol::BufDesc>::new(control, layout.rx_active).unwrap();
    let tx_buffer = (BUFFERS as u64 - 1) * BUF_SIZE as u64;
    raw.push(&vcpos_net_protocol::BufDesc::new(tx_buffer, 60, 0)).unwrap();
    server.poll(Instant::from_millis(1), &mut dev, &mut kernel);
    assert_eq!(dev.stats().errors, 1);
    assert_eq!(dev.stats().rx_frames, 0);
    let e = dev.take_error().expect("the error is kept");
    assert!(e.to_string().contains("rx active"), "{e}");
    assert!(dev.take_error().is_none(), "reported once");
    raw.push(&vcpos_net_protocol::BufDesc::new(0, 5000, 0)).unwrap();
    server.poll(Instant::from_millis(2), &mut dev, &mut kernel);
    assert_eq!(dev.stats().errors, 2);
    assert_eq!(dev.stats().rx_frames, 0);
    assert!(kernel.served.is_empty());
}

/// Two peers that connect and never send a request hold both sockets: a third is
/// refused, until [`CONNECTION_TIMEOUT`] later the next frame's poll aborts them and
/// the third (retrying, as a browser or the QEMU test does) gets its page.
#[test]
fn idle_connections_time_out() {
    let (sport, sclient) = port(SERVER_MAC);
    let (cport, cclient) = port(CLIENT_MAC);
    let mut ports = [sport, cport];
    let mut sdev = ProtocolDevice::new(sclient);
    let mut cdev = ProtocolDevice::new(cclient);
    let mut storage = Box::new(Storage::new());
    let mut server = StatusServer::new(&mut storage, SERVER_MAC, &mut sdev, Instant::from_millis(0));
    let mut kernel = FakeKernel {
        threads: vec![ThreadCounters::default(); 2],
        served: Vec::new(),
        snapshots: 0,
    };
    let mut iface = Interface::new(
        Config::new(HardwareAddress::Ethernet(EthernetAddress(CLIENT_MAC))),
        &mut cdev,
        Instant::from_millis(0),
    );
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::Ipv4(GATEWAY), 24)).unwrap();
    });
    let mut bufs = [[0u8; 2048]; 6];
    let mut storage = [SocketStorage::EMPTY; 3];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut handles = Vec::new();
    for pair in bufs.chunks_mut(2) {
        let (rx, tx) = pair.split_at_mut(1);
        handles.push(sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(&mut rx[0][..]),
            tcp::SocketBuffer::new(&mut tx[0][..]),
        )));
    }
    let remote = (IpAddress::Ipv4(ADDRESS), PORT);
    let mut t = 0i64;
    let mut step = |iface: &mut Interface, sockets: &mut SocketSet<'_>, t: i64| {
        let now = Instant::from_millis(t);
        iface.poll(now, &mut cdev, sockets);
        switch(&mut ports);
        server.poll(now, &mut sdev, &mut kernel);
        switch(&mut ports);
        iface.poll(now, &mut cdev, sockets);
    };
    for (i, &h) in handles[..2].iter().enumerate() {
        sockets
            .get_mut::<tcp::Socket>(h)
            .connect(iface.context(), remote, 41000 + i as u16)
            .unwrap();
    }
    for _ in 0..20 {
        t += 1;
        step(&mut iface, &mut sockets, t);
    }
    for &h in &handles[..2] {
        assert_eq!(sockets.get::<tcp::Socket>(h).state(), tcp::State::Established);
    }
    // Both server sockets are taken: a third connection is refused.
    let third = handles[2];
    sockets
        .get_mut::<tcp::Socket>(third)
        .connect(iface.context(), remote, 41002)
        .unwrap();
    for _ in 0..20 {
        t += 1;
        step(&mut iface, &mut sockets, t);
    }
    assert_eq!(sockets.get::<tcp::Socket>(third).state(), tcp::State::Closed, "refused");

    // Past the timeout, retrying: the idle ones are aborted and the page comes.
    t += CONNECTION_TIMEOUT.total_millis() as i64 + 1000;
    let request = b"GET /status.json HTTP/1.0\r\n\r\n";
    let mut sent = false;
    let mut response = Vec::new();
    let mut local = 41003;
    for _ in 0..200 {
        t += 1;
        if sockets.get::<tcp::Socket>(third).state() == tcp::State::Closed && !sent {
            sockets
                .get_mut::<tcp::Socket>(third)
                .connect(iface.context(), remote, local)
                .unwrap();
            local += 1;
        }
        step(&mut iface, &mut sockets, t);
        let s = sockets.get_mut::<tcp::Socket>(third);
        if s.can_send() && !sent {
            s.send_slice(request).unwrap();
            sent = true;
        }
        while s.can_recv() {
            let mut b = [0u8; 1024];
            let n = s.recv_slice(&mut b).unwrap();
            response.extend_from_slice(&b[..n]);
        }
        if sent && !s.may_recv() {
            break;
        }
    }
    let r = String::from_utf8(response).unwrap();
    assert!(r.starts_with("HTTP/1.0 200 OK\r\n"), "{r:?}");
    for &h in &handles[..2] {
        assert_eq!(
            sockets.get::<tcp::Socket>(h).state(),
            tcp::State::Closed,
            "idle connection reset"
        );
    }
}
