//! The network device's VCP backend against the network protocol's server half (the
//! VCP's side) on fake memory: frames in guest-RAM pieces reach a transmit buffer
//! whole (one copy, bytes counted), transmit buffers running out and coming back,
//! received frames copied once into lent guest buffers and their buffers handed
//! back, frames dropped without a guest buffer, notifications, a VCP not yet ready,
//! and a hostile server taking the link down without a panic.

use vcpos_net_protocol::{BufDesc, ControlLayout, Server, ServerConfig, TxStatus, BUF_SIZE, RING_CAPACITY};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{Producer, SharedMemory};
use vcpos_virtio::block::{DataSegment, RequestId, SubmitError};
use vcpos_virtio::net::{NetBackend, NetCompletion};
use vcpos_virtio::net_vcp::NetVcpBackend;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const BUFFERS: usize = 64;
const RAM: usize = 0x10000;

struct Rig {
    server: Server<FakeMemory>,
    backend: NetVcpBackend<FakeMemory>,
    control: FakeMemory,
    data: FakeMemory,
    ram: FakeMemory,
}

fn rig(publish: bool) -> Rig {
    let control = FakeMemory::new(0x5000);
    let data = FakeMemory::new(BUFFERS * BUF_SIZE as usize);
    let ram = FakeMemory::new(RAM);
    let mut server = Server::new(
        control.clone(),
        data.size() as u64,
        ServerConfig {
            mac: MAC,
            ring_capacity: RING_CAPACITY,
        },
    )
    .unwrap();
    if publish {
        server.publish(7).unwrap();
    }
    let backend = NetVcpBackend::new(control.clone(), data.clone(), ram.clone(), RING_CAPACITY).unwrap();
    Rig {
        server,
        backend,
        control,
        data,
        ram,
    }
}

/// A request id (`RequestId` is reset generation << 16 | chain head).
fn rid(generation: u16, head: u16) -> RequestId {
    RequestId((u32::from(generation) << 16) | u32::from(head))
}

fn frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    f[6..12].copy_from_slice(&MAC);
    f
}

/// Writes `bytes` into guest RAM as pieces at the given offsets (lengths `cuts`).
fn scatter(ram: &FakeMemory, bytes: &[u8], pieces: &[(u64, u32)]) -> Vec<DataSegment> {
    let mut at = 0;
    pieces
        .iter()
        .map(|&(offset, len)| {
            ram.write_bytes(offset as usize, &bytes[at..at + len as usize]).unwrap();
            at += len as usize;
            DataSegment { offset, len }
        })
        .collect()
}

fn gather(ram: &FakeMemory, pieces: &[DataSegment], len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for s in pieces {
        let n = (len - out.len()).min(s.len as usize);
        let mut b = vec![0u8; n];
        ram.read_bytes(s.offset as usize, &mut b).unwrap();
        out.extend(b);
    }
    out
}

#[test]
fn connects_and_reports_the_mac() {
    let mut r = rig(false);
    assert!(!r.backend.connect(), "not ready yet");
    assert!(!r.backend.info().link_up);
    assert_eq!(r.backend.info().mac, [0; 6]);
    // A frame while the link is down is refused, not queued.
    let seg = scatter(&r.ram, &frame(60, 1), &[(0, 60)]);
    assert!(matches!(
        r.backend.transmit(rid(0, 0), &seg),
        Err(SubmitError::Refused(_))
    ));
    r.server.publish(3).unwrap();
    assert!(r.backend.connect());
    let info = r.backend.info();
    assert_eq!(info.mac, MAC);
    assert!(info.link_up);
    assert_eq!(r.backend.mac(), Some(MAC));
    assert!(r.backend.take_error().is_none());
}

#[test]
fn transmit_copies_the_pieces_once_into_one_buffer() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    // The VCP waits for frames, asking to be notified.
    assert!(r.server.request_signal().unwrap());
    let f = frame(1514, 9);
    // Three pieces at odd guest-RAM offsets, as a socket buffer may be.
    let seg = scatter(&r.ram, &f, &[(0x1003, 14), (0x5555, 1000), (0x9001, 500)]);
    let id = rid(1, 5);
    r.backend.transmit(id, &seg).unwrap();
    // Copied: the chain completes at once.
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(id)));
    assert!(r.backend.signal_needed(), "the server asked for a notification");
    let tx = r.server.next_tx().unwrap().expect("a frame for the VCP");
    assert_eq!(tx.len, 1514);
    assert_eq!(tx.offset % u64::from(BUF_SIZE), 0);
    let mut got = vec![0u8; 1514];
    r.data.read_bytes(tx.offset as usize, &mut got).unwrap();
    assert_eq!(got, f);
    // The guest rewriting its memory afterwards changes nothing sent.
    r.ram.write_bytes(0x5555, &[0xee; 1000]).unwrap();
    r.data.read_bytes(tx.offset as usize, &mut got).unwrap();
    assert_eq!(got, f);
    let s = r.backend.stats();
    assert_eq!((s.tx_frames, s.tx_bytes_copied), (1, 1514));
    // The give-back is counted by status.
    r.server.tx_done(tx.offset, TxStatus::Sent).unwrap();
    assert_eq!(r.backend.poll(), None);
    assert_eq!(r.backend.stats().tx_status, [1, 0, 0, 0]);
}

#[test]
fn transmit_buffers_run_out_and_come_back() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let seg = scatter(&r.ram, &frame(100, 2), &[(0x100, 100)]);
    let tx_buffers = BUFFERS / 2;
    for head in 0..tx_buffers {
        r.backend.transmit(rid(0, head as u16), &seg).unwrap();
    }
    assert_eq!(r.backend.transmit(rid(0, 99), &seg), Err(SubmitError::Busy));
    assert_eq!(r.backend.stats().tx_busy, 1);
    // Waiting for a give-back: the backend asks for a notification on TX free.
    while r.backend.poll().is_some() {}
    assert!(r.backend.request_signal());
    let first = r.server.next_tx().unwrap().unwrap();
    r.server.tx_done(first.offset, TxStatus::DeviceError).unwrap();
    assert!(r.server.signal_needed().unwrap(), "the client asked to be notified");
    assert_eq!(r.backend.poll(), None);
    r.backend.transmit(rid(0, 99), &seg).unwrap();
    assert_eq!(r.backend.stats().tx_status, [0, 0, 0, 1]);
    assert_eq!(r.backend.stats().tx_frames as usize, tx_buffers + 1);
}

#[test]
fn receive_copies_once_into_the_lent_buffer() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let frames: Vec<Vec<u8>> = [60usize, 1514, 342]
        .iter()
        .enumerate()
        .map(|(i, &n)| frame(n, i as u8))
        .collect();
    for f in &frames {
        let buf = r
            .server
            .take_rx_buffer()
            .unwrap()
            .expect("the client posted receive buffers");
        r.data.write_bytes(buf.offset as usize, f).unwrap();
        r.server.rx_deliver(buf, f.len() as u32).unwrap();
    }
    assert_eq!(r.backend.rx_waiting(), 0, "not looked yet");
    assert_eq!(r.backend.poll(), None);
    assert_eq!(r.backend.rx_waiting(), 3);
    let mut copied = 0;
    for (i, f) in frames.iter().enumerate() {
        // A guest buffer in two pieces (the device lends at least 1514 bytes).
        let base = 0x2000 * (i as u64 + 1);
        let buffer = [
            DataSegment {
                offset: base + 1,
                len: 700,
            },
            DataSegment {
                offset: base + 0x1001,
                len: 814,
            },
        ];
        let id = rid(2, i as u16);
        r.backend.rx_buffer(id, &buffer);
        assert_eq!(
            r.backend.poll(),
            Some(NetCompletion::Received {
                id,
                len: f.len() as u32
            })
        );
        assert_eq!(&gather(&r.ram, &buffer, f.len()), f);
        copied += f.len() as u64;
    }
    let s = r.backend.stats();
    assert_eq!((s.rx_frames, s.rx_bytes_copied), (3, copied));
    assert_eq!(r.backend.rx_waiting(), 0);
    // Every receive buffer is back with the server (the three used ones re-posted).
    let mut n = 0;
    while r.server.take_rx_buffer().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, BUFFERS / 2);
}

#[test]
fn frames_without_a_guest_buffer_are_dropped_and_their_buffers_returned() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let posted = BUFFERS / 2;
    for i in 0..posted {
        let buf = r.server.take_rx_buffer().unwrap().unwrap();
        r.data.write_bytes(buf.offset as usize, &frame(64, i as u8)).unwrap();
        r.server.rx_deliver(buf, 64).unwrap();
    }
    // The client's buffers are all full: the VCP has none left.
    assert!(r.server.take_rx_buffer().unwrap().is_none());
    assert_eq!(r.backend.poll(), None);
    assert_eq!(r.backend.rx_waiting(), posted);
    for _ in 0..posted {
        r.backend.rx_no_buffer();
    }
    assert_eq!(r.backend.rx_waiting(), 0);
    assert_eq!(r.backend.stats().rx_dropped_no_guest_buffer, posted as u64);
    assert!(r.server.take_rx_buffer().unwrap().is_some(), "buffers handed back");
}

#[test]
fn a_bad_frame_length_returns_the_guest_buffer_unused() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    // Raw RX active descriptor with an impossible length for the first RX buffer.
    let layout = ControlLayout::new(RING_CAPACITY).unwrap();
    let mut rxa = Producer::<_, BufDesc>::new(r.control.clone(), layout.rx_active).unwrap();
    rxa.push(&BufDesc::new(0, 4000)).unwrap();
    assert_eq!(r.backend.poll(), None);
    assert_eq!(r.backend.rx_waiting(), 1);
    let id = rid(0, 1);
    r.backend.rx_buffer(id, &[DataSegment { offset: 0, len: 1514 }]);
    assert_eq!(r.backend.poll(), Some(NetCompletion::Received { id, len: 0 }));
    assert_eq!(r.backend.stats().rx_bad_frames, 1);
    assert!(r.backend.info().link_up, "not a reason to give up");
}

#[test]
fn a_hostile_server_takes_the_link_down_without_a_panic() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    // A TX free give-back of a buffer never handed over.
    let layout = ControlLayout::new(RING_CAPACITY).unwrap();
    let mut txf = Producer::<_, BufDesc>::new(r.control.clone(), layout.tx_free).unwrap();
    txf.push(&BufDesc::new(0, 0)).unwrap();
    assert_eq!(r.backend.poll(), None);
    assert!(!r.backend.info().link_up);
    let e = r.backend.take_error().expect("the error is kept for the VMM");
    assert!(e.to_string().contains("tx free"), "{e}");
    assert!(r.backend.take_error().is_none(), "reported once");
    let seg = scatter(&r.ram, &frame(60, 1), &[(0, 60)]);
    assert!(matches!(
        r.backend.transmit(rid(0, 0), &seg),
        Err(SubmitError::Refused(_))
    ));
    assert_eq!(r.backend.rx_waiting(), 0);
}

#[test]
fn a_corrupt_index_takes_the_link_down() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let layout = ControlLayout::new(RING_CAPACITY).unwrap();
    // The RX active producer index jumps far ahead.
    r.control
        .store_u32(layout.rx_active.base(), 10_000, std::sync::atomic::Ordering::Release)
        .unwrap();
    assert_eq!(r.backend.poll(), None);
    assert!(!r.backend.info().link_up);
    assert!(r.backend.take_error().is_some());
    // A restart of the VCP (new generation) is also an error, on a fresh backend.
    let mut r = rig(true);
    assert!(r.backend.connect());
    r.server.publish(8).unwrap();
    let seg = scatter(&r.ram, &frame(60, 1), &[(0, 60)]);
    assert!(r.backend.transmit(rid(0, 0), &seg).is_err());
    assert!(!r.backend.info().link_up);
    assert!(r.backend.take_error().unwrap().to_string().contains("restarted"));
}
