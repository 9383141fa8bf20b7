//! Network protocol tests on the host: an honest client and server, a hostile client
//! (raw descriptors, duplicates, corrupt indices, random words) against the server's
//! checks, and a hostile server (unknown, duplicate and malformed give-backs, random
//! words) against the client's.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use vcpos_net_protocol::layout::info_offsets;
use vcpos_net_protocol::{
    BufDesc, Client, ClientError, ControlLayout, InfoError, RxBuffer, Server, ServerConfig, ServerError, TxFrame,
    TxStatus, BUF_SIZE, MAX_FRAME_LEN,
};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{Consumer, Producer, QueueError, SharedMemory, PRODUCER_INDEX_OFFSET};

const RING: u32 = 16;
const BUFFERS: u32 = 16;
const DATA: u64 = BUFFERS as u64 * BUF_SIZE as u64;
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn config() -> ServerConfig {
    ServerConfig {
        mac: MAC,
        ring_capacity: RING,
    }
}

fn layout() -> ControlLayout {
    ControlLayout::new(RING).unwrap()
}

struct Setup {
    control: FakeMemory,
    data: FakeMemory,
    server: Server<FakeMemory>,
}

fn server() -> Setup {
    let control = FakeMemory::new(layout().size());
    let data = FakeMemory::new(DATA as usize);
    let mut server = Server::new(control.clone(), DATA, config()).unwrap();
    server.publish(3).unwrap();
    Setup { control, data, server }
}

fn pair() -> (Setup, Client<FakeMemory>) {
    let s = server();
    let mut client = Client::new(s.control.clone(), s.data.clone(), RING).unwrap();
    let info = client.connect().unwrap();
    assert_eq!(info.mac, MAC);
    assert_eq!(info.generation, 3);
    assert_eq!(info.buffers, BUFFERS);
    (s, client)
}

fn frame(dst: [u8; 6], src: [u8; 6], fill: u8, len: usize) -> Vec<u8> {
    let mut f = vec![fill; len];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

fn read(mem: &FakeMemory, offset: u64, len: u32) -> Vec<u8> {
    let mut v = vec![0; len as usize];
    mem.read_bytes(offset as usize, &mut v).unwrap();
    v
}

#[test]
fn frames_both_ways() {
    let (mut s, mut client) = pair();
    let f = frame([0xff; 6], MAC, 0x5a, 100);
    client.send(&f).unwrap();
    assert!(client.signal_needed().is_ok());
    let tx = s.server.next_tx().unwrap().unwrap();
    assert_eq!(tx.len, 100);
    assert_eq!(read(&s.data, tx.offset, tx.len), f);
    assert_eq!(s.server.next_tx().unwrap(), None);
    assert_eq!(s.server.held(), 1);
    s.server.tx_done(tx.offset, TxStatus::Sent).unwrap();
    assert_eq!(s.server.held(), 0);
    assert_eq!(
        client.reclaim_tx().unwrap().map(|r| (r.offset, r.status)),
        Some((tx.offset, TxStatus::Sent))
    );

    // Receive: the server fills one of the buffers the client handed over.
    let rx = s.server.take_rx_buffer().unwrap().unwrap();
    assert!(
        rx.offset < u64::from(BUFFERS / 2) * u64::from(BUF_SIZE),
        "rx buffers are the first half"
    );
    let g = frame(MAC, [2, 0, 0, 0, 0, 9], 0x33, MAX_FRAME_LEN as usize);
    s.data.write_bytes(rx.offset as usize, &g).unwrap();
    s.server.rx_deliver(rx, g.len() as u32).unwrap();
    let mut out = [0u8; 2048];
    assert_eq!(client.recv(&mut out).unwrap(), Some(g.len()));
    assert_eq!(&out[..g.len()], &g[..]);
    assert_eq!(client.recv(&mut out).unwrap(), None);
    // The buffer went back to the server: it can take all eight again.
    let mut taken = HashSet::new();
    while let Some(b) = s.server.take_rx_buffer().unwrap() {
        assert!(taken.insert(b.offset));
    }
    assert_eq!(taken.len(), (BUFFERS / 2) as usize);
    assert_eq!(s.server.stats().refused(), 0);
}

#[test]
fn transmit_buffers_run_out_and_come_back() {
    let (mut s, mut client) = pair();
    let f = frame([0xff; 6], MAC, 1, 60);
    for _ in 0..BUFFERS / 2 {
        client.send(&f).unwrap();
    }
    assert_eq!(client.send(&f), Err(ClientError::NoTxBuffer));
    let mut frames = Vec::new();
    while let Some(t) = s.server.next_tx().unwrap() {
        frames.push(t);
    }
    assert_eq!(frames.len(), (BUFFERS / 2) as usize);
    s.server.tx_done(frames[0].offset, TxStatus::DeviceError).unwrap();
    // `send` takes the given-back buffer itself.
    client.send(&f).unwrap();
    assert_eq!(client.stats().tx_status[TxStatus::DeviceError as usize], 1);
    // A second give-back of the same buffer is the server's bug, caught on its side.
    assert_eq!(
        s.server.tx_done(frames[0].offset, TxStatus::Sent),
        Err(ServerError::NotHeld(frames[0].offset))
    );
    assert_eq!(client.send(&[0u8; 13]), Err(ClientError::BadLength(13)));
    assert_eq!(client.send(&[0u8; 1515]), Err(ClientError::BadLength(1515)));
}

#[test]
fn info_page_checks() {
    let control = FakeMemory::new(layout().size());
    let data = FakeMemory::new(DATA as usize);
    let mut server = Server::new(control.clone(), DATA, config()).unwrap();
    let mut client = Client::new(control.clone(), data.clone(), RING).unwrap();
    assert_eq!(client.connect(), Err(ClientError::NotReady));
    assert_eq!(client.send(&[0; 60]), Err(ClientError::NotReady));
    server.publish(1).unwrap();

    let corrupt = |off: usize, v: u32, name: &'static str| {
        let old = control.load_u32(off, Ordering::Relaxed).unwrap();
        control.store_u32(off, v, Ordering::Relaxed).unwrap();
        let mut c = Client::new(control.clone(), data.clone(), RING).unwrap();
        assert_eq!(
            c.connect(),
            Err(ClientError::Info(InfoError::Field { name, value: v.into() }))
        );
        control.store_u32(off, old, Ordering::Relaxed).unwrap();
    };
    corrupt(info_offsets::MAGIC, 0x1234, "magic");
    corrupt(info_offsets::VERSION, 9, "version");
    corrupt(info_offsets::MTU, 9000, "mtu");
    corrupt(info_offsets::BUF_SIZE, 4096, "buf_size");
    corrupt(info_offsets::BUFFERS, BUFFERS + 1, "buffers");
    corrupt(info_offsets::RING_CAPACITY, RING * 2, "ring_capacity");
    corrupt(info_offsets::MAC_HI, 0x1_0000, "mac_hi");
    // A multicast MAC cannot be a client's.
    corrupt(info_offsets::MAC_LO, 0x0000_0001, "mac_lo");

    client.connect().unwrap();
    // The server restarts: the client notices.
    server.publish(2).unwrap();
    assert_eq!(
        client.send(&[0; 60]),
        Err(ClientError::GenerationChanged { was: 1, now: 2 })
    );
    // Layout mismatches are refused at construction.
    assert!(Server::new(control.clone(), DATA + 1, config()).is_err());
    assert!(Server::new(control.clone(), u64::from(RING + 1) * u64::from(BUF_SIZE), config()).is_err());
    assert!(Server::new(FakeMemory::new(0x1000), DATA, config()).is_err());
    assert!(Client::new(control.clone(), FakeMemory::new(2048), RING).is_err());
}

/// A hostile client: pushes raw descriptors, bypassing every client-side check.
fn raw_tx_active(mem: &FakeMemory) -> Producer<FakeMemory, BufDesc> {
    Producer::new(mem.clone(), layout().tx_active).unwrap()
}

fn raw_rx_free(mem: &FakeMemory) -> Producer<FakeMemory, BufDesc> {
    Producer::new(mem.clone(), layout().rx_free).unwrap()
}

fn tx_free(mem: &FakeMemory) -> Consumer<FakeMemory, BufDesc> {
    Consumer::new(mem.clone(), layout().tx_free).unwrap()
}

#[test]
fn hostile_client_descriptors() {
    let mut s = server();
    let mut tx = raw_tx_active(&s.control);
    let mut back = tx_free(&s.control);
    let b = u64::from(BUF_SIZE);
    for d in [
        BufDesc::new(1, 60),                    // not on a buffer boundary
        BufDesc::new(DATA, 60),                 // just past the region
        BufDesc::new(u64::MAX - 2047, 60),      // far outside, near overflow
        BufDesc::new(2 * b, 60),                // good
        BufDesc::new(2 * b, 60),                // duplicate of a held buffer
        BufDesc::new(3 * b, 13),                // too short
        BufDesc::new(4 * b, MAX_FRAME_LEN + 1), // too long
        BufDesc::new(5 * b, u32::MAX),          // too long
    ] {
        tx.push(&d).unwrap();
    }
    assert_eq!(s.server.next_tx().unwrap(), Some(TxFrame { offset: 2 * b, len: 60 }));
    assert_eq!(s.server.next_tx().unwrap(), None);
    let st = s.server.stats();
    assert_eq!(
        (st.tx_accepted, st.bad_offset, st.duplicate, st.bad_length),
        (1, 3, 1, 3)
    );
    // Bad lengths come back at once with their status; nothing else does.
    let mut got = Vec::new();
    while let Some(d) = back.pop().unwrap() {
        got.push((d.offset, d.status));
    }
    let bad = TxStatus::BadLength as u32;
    assert_eq!(got, vec![(3 * b, bad), (4 * b, bad), (5 * b, bad)]);
    assert_eq!(s.server.held(), 1);

    // RX free: the same checks; a buffer held for sending cannot be given for receiving.
    let mut rx = raw_rx_free(&s.control);
    for off in [2 * b, 7, DATA, 6 * b, 6 * b, 7 * b] {
        rx.push(&BufDesc::new(off, 0)).unwrap();
    }
    let mut bufs = Vec::new();
    while let Some(r) = s.server.take_rx_buffer().unwrap() {
        bufs.push(r.offset);
    }
    assert_eq!(bufs, vec![6 * b, 7 * b]);
    let st = s.server.stats();
    assert_eq!((st.bad_offset, st.duplicate, st.rx_buffers_accepted), (5, 3, 2));
    // Unused buffers are kept for the next frame; a TX buffer cannot be delivered as RX.
    s.server.rx_unused(RxBuffer { offset: 7 * b }).unwrap();
    assert_eq!(s.server.take_rx_buffer().unwrap(), Some(RxBuffer { offset: 7 * b }));
    assert_eq!(
        s.server.rx_deliver(RxBuffer { offset: 2 * b }, 60),
        Err(ServerError::NotHeld(2 * b))
    );
    assert_eq!(
        s.server.rx_unused(RxBuffer { offset: 2 * b }),
        Err(ServerError::NotHeld(2 * b))
    );
    // And an RX buffer is not a TX buffer.
    assert_eq!(
        s.server.tx_done(7 * b, TxStatus::Sent),
        Err(ServerError::NotHeld(7 * b))
    );
    s.server.rx_deliver(RxBuffer { offset: 7 * b }, 60).unwrap();
    assert_eq!(
        s.server.rx_deliver(RxBuffer { offset: 7 * b }, 60),
        Err(ServerError::NotHeld(7 * b))
    );
}

#[test]
fn tx_buffer_is_not_an_rx_buffer() {
    let mut s = server();
    let b = u64::from(BUF_SIZE);
    raw_tx_active(&s.control).push(&BufDesc::new(b, 60)).unwrap();
    let t = s.server.next_tx().unwrap().unwrap();
    // A held TX buffer is not in the RX pool: delivering into it is refused, and so is
    // delivering an impossible length into a real RX buffer.
    raw_rx_free(&s.control).push(&BufDesc::new(0, 0)).unwrap();
    let r = s.server.take_rx_buffer().unwrap().unwrap();
    assert_eq!(
        s.server.rx_unused(RxBuffer { offset: 5 * b }),
        Err(ServerError::NotHeld(5 * b))
    );
    assert_eq!(s.server.rx_deliver(r, MAX_FRAME_LEN + 1), Err(ServerError::NotHeld(0)));
    s.server.rx_deliver(r, 60).unwrap();
    s.server.tx_done(t.offset, TxStatus::Sent).unwrap();
    assert_eq!(s.server.held(), 0);
}

#[test]
fn client_that_never_takes_buffers_back_cuts_itself_off() {
    let mut s = server();
    let mut tx = raw_tx_active(&s.control);
    // Sends buffer 0 over and over without taking it back from TX free: each send is a
    // new hand-over (the server gave it back), so TX free fills with the same buffer.
    let mut sent = 0;
    let err = loop {
        match tx.push(&BufDesc::new(0, 60)) {
            Ok(()) => {}
            Err(e) => panic!("raw push failed: {e}"),
        }
        match s.server.next_tx() {
            Ok(Some(t)) => match s.server.tx_done(t.offset, TxStatus::Sent) {
                Ok(()) => sent += 1,
                Err(e) => break e,
            },
            Ok(None) => panic!("frame not taken"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, ServerError::ReturnRingFull);
    assert_eq!(sent, RING);
    assert_eq!(s.server.cut_off(), Some(ServerError::ReturnRingFull));
    assert_eq!(s.server.next_tx(), Err(ServerError::ReturnRingFull));
}

#[test]
fn corrupt_index_cuts_client_off() {
    let mut s = server();
    s.control
        .store_u32(
            layout().tx_active.base() + PRODUCER_INDEX_OFFSET,
            RING + 5,
            Ordering::Release,
        )
        .unwrap();
    let e = s.server.next_tx().unwrap_err();
    assert!(
        matches!(e, ServerError::Queue(QueueError::IndexJump { which: "producer", .. })),
        "{e:?}"
    );
    assert_eq!(s.server.take_rx_buffer(), Err(e));
    assert_eq!(s.server.signal_needed(), Err(e));
}

/// A hostile server: pushes raw give-backs.
fn raw_tx_free(mem: &FakeMemory) -> Producer<FakeMemory, BufDesc> {
    Producer::new(mem.clone(), layout().tx_free).unwrap()
}

fn raw_rx_active(mem: &FakeMemory) -> Producer<FakeMemory, BufDesc> {
    Producer::new(mem.clone(), layout().rx_active).unwrap()
}

#[test]
fn hostile_server_give_backs() {
    let control = FakeMemory::new(layout().size());
    let data = FakeMemory::new(DATA as usize);
    let mut server = Server::new(control.clone(), DATA, config()).unwrap();
    server.publish(1).unwrap();
    let mut client = Client::new(control.clone(), data.clone(), RING).unwrap();
    client.connect().unwrap();
    let b = u64::from(BUF_SIZE);
    client.send(&frame([0xff; 6], MAC, 0, 60)).unwrap();
    // The client's first TX buffer is buffer BUFFERS/2.
    let t = u64::from(BUFFERS / 2) * b;
    let mut txf = raw_tx_free(&control);
    let mut rxa = raw_rx_active(&control);

    txf.push(&BufDesc {
        offset: 0,
        len: 0,
        status: 0,
    })
    .unwrap(); // an RX buffer
    assert_eq!(
        client.reclaim_tx(),
        Err(ClientError::UnknownBuffer {
            ring: "tx free",
            offset: 0
        })
    );
    txf.push(&BufDesc {
        offset: t + 1,
        len: 0,
        status: 0,
    })
    .unwrap();
    assert!(matches!(client.reclaim_tx(), Err(ClientError::UnknownBuffer { .. })));
    txf.push(&BufDesc {
        offset: t,
        len: 0,
        status: 77,
    })
    .unwrap();
    assert_eq!(
        client.reclaim_tx(),
        Err(ClientError::BadStatus { offset: t, status: 77 })
    );
    txf.push(&BufDesc {
        offset: t,
        len: 0,
        status: 0,
    })
    .unwrap(); // given back twice
    assert!(matches!(client.reclaim_tx(), Err(ClientError::UnknownBuffer { .. })));

    let mut out = [0u8; 2048];
    rxa.push(&BufDesc::new(t, 60)).unwrap(); // a TX buffer
    assert!(matches!(
        client.recv(&mut out),
        Err(ClientError::UnknownBuffer { ring: "rx active", .. })
    ));
    rxa.push(&BufDesc::new(DATA, 60)).unwrap();
    assert!(matches!(client.recv(&mut out), Err(ClientError::UnknownBuffer { .. })));
    rxa.push(&BufDesc::new(b, 4000)).unwrap();
    assert_eq!(
        client.recv(&mut out),
        Err(ClientError::BadFrameLength { offset: b, len: 4000 })
    );
    rxa.push(&BufDesc::new(2 * b, 100)).unwrap();
    assert_eq!(
        client.recv(&mut out[..50]),
        Err(ClientError::BufferTooSmall { len: 100 })
    );
    // Those two buffers were handed to the server again and can be delivered.
    rxa.push(&BufDesc::new(b, 60)).unwrap();
    assert_eq!(client.recv(&mut out), Ok(Some(60)));
    assert_eq!(client.stats().received, 1);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random descriptors and random words over every ring from a hostile client: the
/// server never panics, never yields a frame outside the region or of a bad length,
/// never holds a buffer twice, and never gives back a buffer it does not hold.
#[test]
fn random_hostile_client() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut s = server();
        let mut tx = raw_tx_active(&s.control);
        let mut rx = raw_rx_free(&s.control);
        let mut held_tx: Vec<u64> = Vec::new();
        let mut held_rx: Vec<RxBuffer> = Vec::new();
        for _ in 0..300 {
            match rng.below(8) {
                0 | 1 => {
                    let off = match rng.below(3) {
                        0 => rng.below(BUFFERS as u64 + 2) * u64::from(BUF_SIZE),
                        1 => rng.next(),
                        _ => rng.below(DATA + 100),
                    };
                    let len = match rng.below(2) {
                        0 => rng.below(1600) as u32,
                        _ => rng.next() as u32,
                    };
                    let _ = tx.push(&BufDesc {
                        offset: off,
                        len,
                        status: rng.next() as u32,
                    });
                }
                2 => {
                    let off = rng.below(BUFFERS as u64 + 2) * u64::from(BUF_SIZE);
                    let _ = rx.push(&BufDesc::new(off, rng.next() as u32));
                }
                3 => {
                    // Scribble a word anywhere in the control region.
                    let at = (rng.below(layout().size() as u64) & !3) as usize;
                    s.control.store_u32(at, rng.next() as u32, Ordering::Relaxed).unwrap();
                }
                4 | 5 => {
                    if let Ok(Some(t)) = s.server.next_tx() {
                        assert_eq!(t.offset % u64::from(BUF_SIZE), 0, "seed {seed}");
                        assert!(t.offset < DATA, "seed {seed}");
                        assert!((14..=MAX_FRAME_LEN).contains(&t.len), "seed {seed}");
                        assert!(!held_tx.contains(&t.offset), "seed {seed}: held twice");
                        assert!(!held_rx.iter().any(|r| r.offset == t.offset), "seed {seed}: held twice");
                        held_tx.push(t.offset);
                    }
                }
                6 => {
                    if let Ok(Some(r)) = s.server.take_rx_buffer() {
                        assert!(r.offset < DATA && r.offset % u64::from(BUF_SIZE) == 0, "seed {seed}");
                        assert!(!held_tx.contains(&r.offset), "seed {seed}: held twice");
                        assert!(!held_rx.contains(&r), "seed {seed}: held twice");
                        held_rx.push(r);
                    }
                }
                _ => {
                    if let Some(off) = held_tx.pop() {
                        match s.server.tx_done(off, TxStatus::Sent) {
                            Ok(()) | Err(ServerError::Queue(_)) | Err(ServerError::ReturnRingFull) => {}
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                    if let Some(r) = held_rx.pop() {
                        match s.server.rx_deliver(r, 60) {
                            Ok(()) | Err(ServerError::Queue(_)) | Err(ServerError::ReturnRingFull) => {}
                            Err(e) => panic!("seed {seed}: {e}"),
                        }
                    }
                }
            }
            assert!(s.server.held() <= BUFFERS, "seed {seed}");
            let _ = s.server.signal_needed();
            let _ = s.server.request_signal();
        }
    }
}

/// Random give-backs and random words from a hostile server: the client never panics,
/// never hands out a frame longer than the maximum, and its buffer bookkeeping stays
/// within the region.
#[test]
fn random_hostile_server() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let control = FakeMemory::new(layout().size());
        let data = FakeMemory::new(DATA as usize);
        let mut server = Server::new(control.clone(), DATA, config()).unwrap();
        server.publish(1).unwrap();
        let mut client = Client::new(control.clone(), data.clone(), RING).unwrap();
        client.connect().unwrap();
        let mut txf = raw_tx_free(&control);
        let mut rxa = raw_rx_active(&control);
        let mut out = [0u8; 2048];
        for _ in 0..300 {
            let off = match rng.below(2) {
                0 => rng.below(BUFFERS as u64 + 2) * u64::from(BUF_SIZE),
                _ => rng.next(),
            };
            match rng.below(6) {
                0 => {
                    let _ = txf.push(&BufDesc {
                        offset: off,
                        len: rng.next() as u32,
                        status: rng.below(6) as u32,
                    });
                }
                1 => {
                    let _ = rxa.push(&BufDesc::new(off, rng.below(2100) as u32));
                }
                2 => {
                    let at = (rng.below(layout().size() as u64) & !3) as usize;
                    control.store_u32(at, rng.next() as u32, Ordering::Relaxed).unwrap();
                }
                3 => {
                    let _ = client.send(&frame([0xff; 6], MAC, 7, 14 + rng.below(1500) as usize));
                }
                4 => {
                    if let Ok(Some(n)) = client.recv(&mut out) {
                        assert!((14..=MAX_FRAME_LEN as usize).contains(&n), "seed {seed}");
                    }
                }
                _ => {
                    let _ = client.reclaim_tx();
                }
            }
            assert!(client.tx_buffers_free() <= BUFFERS / 2, "seed {seed}");
            let _ = client.signal_needed();
            let _ = client.request_signal();
        }
    }
}
