//! Network protocol tests on the host: an honest client and server (the fixed-buffer
//! helper and buffers anywhere in the data region), a hostile client (raw
//! descriptors: out of bounds, overflowing, too-small receive buffers, duplicates,
//! corrupt indices, random words) against the server's checks, and a hostile server
//! (unknown ids, wrong offsets or lengths, duplicates, malformed give-backs, random
//! words) against the client's.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use vcpos_net_protocol::layout::info_offsets;
use vcpos_net_protocol::{
    offloads, tx_flags, BufDesc, Client, ClientError, ControlLayout, InfoError, RxOutcome, RxStatus, Server,
    ServerConfig, ServerError, SmallClient, TxStatus, BUF_SIZE, MAX_FRAME_LEN, MAX_TX_PIECES, RX_RECALL,
};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{Consumer, Producer, QueueError, SharedMemory, PRODUCER_INDEX_OFFSET, SIGNAL_FLAG_OFFSET};

const RING: u32 = 16;
const BUFFERS: u32 = 16;
const DATA: u64 = BUFFERS as u64 * BUF_SIZE as u64;
const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

fn config() -> ServerConfig {
    ServerConfig {
        mac: MAC,
        ring_capacity: RING,
        offloads: offloads::CSUM | offloads::TSO4,
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
    assert_eq!(info.data_size, DATA);
    (s, client)
}

/// A client that names its own buffers.
fn region_pair() -> (Setup, Client<FakeMemory>) {
    let s = server();
    let mut client = Client::with_region(s.control.clone(), s.data.clone(), RING).unwrap();
    client.connect().unwrap();
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
    assert_eq!(tx.len(), 100);
    assert_eq!(read(&s.data, tx.offset(), tx.len()), f);
    assert_eq!(s.server.next_tx().unwrap(), None);
    assert_eq!(s.server.held(), 1);
    s.server.tx_done(tx, TxStatus::Sent).unwrap();
    assert_eq!(s.server.held(), 0);
    assert_eq!(
        client.reclaim_tx().unwrap().map(|r| (r.offset, r.len, r.status)),
        Some((tx.offset(), 100, TxStatus::Sent))
    );

    // Receive: the server fills one of the buffers the client handed over.
    let rx = s.server.take_rx_buffer().unwrap().unwrap();
    assert!(
        rx.offset() < u64::from(BUFFERS / 2) * u64::from(BUF_SIZE),
        "rx buffers are the first half"
    );
    assert_eq!(rx.capacity(), BUF_SIZE);
    let g = frame(MAC, [2, 0, 0, 0, 0, 9], 0x33, MAX_FRAME_LEN as usize);
    s.data.write_bytes(rx.offset() as usize, &g).unwrap();
    s.server.rx_deliver(rx, g.len() as u32).unwrap();
    let mut out = [0u8; 2048];
    assert_eq!(client.recv(&mut out).unwrap(), Some(g.len()));
    assert_eq!(&out[..g.len()], &g[..]);
    assert_eq!(client.recv(&mut out).unwrap(), None);
    // The buffer went back to the server: it can take all eight again.
    let mut taken = HashSet::new();
    while let Some(b) = s.server.take_rx_buffer().unwrap() {
        assert!(taken.insert(b.offset()));
    }
    assert_eq!(taken.len(), (BUFFERS / 2) as usize);
    assert_eq!(s.server.stats().refused(), 0);
}

/// The fixed-buffer helper hands a receive buffer back to the server only after the
/// caller has read the frame in it (the server, preempting the client, could fill it
/// again otherwise).
#[test]
fn a_buffer_being_read_is_not_the_servers() {
    let (mut s, mut client) = pair();
    let rx = s.server.take_rx_buffer().unwrap().unwrap();
    let at = rx.offset();
    let g = frame(MAC, [2, 0, 0, 0, 0, 9], 0x44, 200);
    s.data.write_bytes(at as usize, &g).unwrap();
    s.server.rx_deliver(rx, 200).unwrap();
    let server = &mut s.server;
    let got = client
        .recv_with(|data, offset, len| {
            assert_eq!(offset as u64, at);
            // Everything the server can take now: not the buffer being read.
            while let Some(b) = server.take_rx_buffer().unwrap() {
                assert_ne!(b.offset(), at, "handed back before it was read");
                server.rx_deliver(b, 60).unwrap();
            }
            read(data, offset as u64, len as u32)
        })
        .unwrap();
    assert_eq!(got, Some(g));
    // Afterwards it is the server's again.
    let b = s.server.take_rx_buffer().unwrap().expect("the buffer read");
    assert_eq!(b.offset(), at);
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
    for t in &frames[1..] {
        s.server.tx_done(*t, TxStatus::Sent).unwrap();
    }
    s.server.tx_done(frames[0], TxStatus::DeviceError).unwrap();
    // More give-backs than frames taken is the server's bug, caught on its side.
    assert_eq!(
        s.server.tx_done(frames[0], TxStatus::Sent),
        Err(ServerError::NotHeld(frames[0].offset()))
    );
    // `send` takes the given-back buffers itself.
    client.send(&f).unwrap();
    while client.reclaim_tx().unwrap().is_some() {}
    assert_eq!(client.stats().tx_status[TxStatus::DeviceError as usize], 1);
    assert_eq!(client.stats().tx_status[TxStatus::Sent as usize], 7);
    assert_eq!(client.send(&[0u8; 13]), Err(ClientError::BadLength(13)));
    assert_eq!(client.send(&[0u8; 1515]), Err(ClientError::BadLength(1515)));
}

/// A client waiting for its frames' statuses with buffers of its own still free asks
/// with `request_tx_signal` (`request_signal` asks only when no buffer is free, since
/// the fixed-buffer helper takes give-backs lazily): the next give-back notifies it.
#[test]
fn a_client_can_wait_for_its_frames_to_come_back() {
    let (mut s, mut client) = pair();
    let tx_free_flag = layout().tx_free.base() + SIGNAL_FLAG_OFFSET;
    let flag = |s: &Setup| s.control.load_u32(tx_free_flag, Ordering::Relaxed).unwrap();
    client.send(&frame([0xff; 6], MAC, 1, 60)).unwrap();
    assert!(client.tx_buffers_free() > 0);
    assert!(client.request_signal().unwrap());
    assert_eq!(flag(&s), 0, "a lazy client is not woken by every give-back");
    assert!(client.request_tx_signal().unwrap(), "nothing came back yet: wait");
    assert_eq!(flag(&s), 1, "the give-back will notify the waiting client");
    let t = s.server.next_tx().unwrap().unwrap();
    s.server.tx_done(t, TxStatus::Sent).unwrap();
    assert!(!client.request_tx_signal().unwrap(), "one is back: take it first");
    assert!(client.reclaim_tx().unwrap().is_some());
    // Nothing out: nothing to wait for.
    s.control.store_u32(tx_free_flag, 0, Ordering::Relaxed).unwrap();
    assert!(client.request_tx_signal().unwrap());
    assert_eq!(flag(&s), 0);
}

/// Buffers anywhere in the data region: odd offsets, the last byte, capacities above
/// a maximal frame; the server echoes offset, length and id.
#[test]
fn buffers_anywhere_in_the_region() {
    let (mut s, mut client) = region_pair();
    let f = frame([0xff; 6], MAC, 0x77, 61);
    s.data.write_bytes(3, &f).unwrap();
    let id = client.send_at(3, 61).unwrap();
    let id2 = client.send_at(DATA - 61, 61).unwrap();
    assert_ne!(id, id2);
    let t = s.server.next_tx().unwrap().unwrap();
    assert_eq!((t.offset(), t.len()), (3, 61));
    assert_eq!(read(&s.data, t.offset(), t.len()), f);
    let t2 = s.server.next_tx().unwrap().unwrap();
    assert_eq!((t2.offset(), t2.len()), (DATA - 61, 61));
    // Given back in the other order: the ids say which is which.
    s.server.tx_done(t2, TxStatus::Spoofed).unwrap();
    s.server.tx_done(t, TxStatus::Sent).unwrap();
    let r = client.reclaim_tx().unwrap().unwrap();
    assert_eq!(
        (r.id, r.offset, r.len, r.status),
        (id2, DATA - 61, 61, TxStatus::Spoofed)
    );
    let r = client.reclaim_tx().unwrap().unwrap();
    assert_eq!((r.id, r.offset, r.status), (id, 3, TxStatus::Sent));
    assert_eq!(client.tx_outstanding(), 0);

    // Receive buffers of any size from a maximal frame up, at any offset.
    let a = client.post_rx(5, 1526).unwrap();
    let b = client.post_rx(DATA - 1514, 1514).unwrap();
    assert_eq!(client.rx_outstanding(), 2);
    let ra = s.server.take_rx_buffer().unwrap().unwrap();
    let rb = s.server.take_rx_buffer().unwrap().unwrap();
    assert_eq!((ra.offset(), ra.capacity()), (5, 1526));
    assert_eq!((rb.offset(), rb.capacity()), (DATA - 1514, 1514));
    // A frame longer than a buffer cannot be delivered (the server's own check).
    assert_eq!(s.server.rx_deliver(rb, 1515), Err(ServerError::NotHeld(DATA - 1514)));
    s.server.rx_deliver(rb, 1514).unwrap();
    s.server.rx_deliver(ra, 60).unwrap();
    let r = client.take_rx().unwrap().unwrap();
    assert_eq!(
        (r.id, r.offset, r.capacity, r.outcome),
        (b, DATA - 1514, 1514, RxOutcome::Frame(1514))
    );
    let r = client.take_rx().unwrap().unwrap();
    assert_eq!((r.id, r.offset, r.outcome), (a, 5, RxOutcome::Frame(60)));
    assert_eq!(client.rx_outstanding(), 0);

    // The client checks its own descriptors.
    assert_eq!(
        client.post_rx(0, 1513),
        Err(ClientError::BadBuffer { offset: 0, len: 1513 })
    );
    assert_eq!(
        client.post_rx(DATA - 1513, 1514),
        Err(ClientError::BadBuffer {
            offset: DATA - 1513,
            len: 1514
        })
    );
    assert_eq!(
        client.post_rx(u64::MAX, 1514),
        Err(ClientError::BadBuffer {
            offset: u64::MAX,
            len: 1514
        })
    );
    assert_eq!(
        client.send_at(DATA - 59, 60),
        Err(ClientError::BadBuffer {
            offset: DATA - 59,
            len: 60
        })
    );
    assert_eq!(client.send_at(0, 13), Err(ClientError::BadLength(13)));
    // At most the ring capacity out per direction.
    for _ in 0..RING {
        client.post_rx(0, 1514).unwrap();
    }
    assert_eq!(client.post_rx(0, 1514), Err(ClientError::Full));
    assert_eq!(client.rx_room().unwrap(), 0);
    assert_eq!(s.server.stats().refused(), 0);
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
    corrupt(info_offsets::VERSION, 1, "version");
    corrupt(info_offsets::MTU, 9000, "mtu");
    corrupt(info_offsets::MIN_RX_BUFFER, 2048, "min_rx_buffer");
    corrupt(info_offsets::DATA_SIZE_LO, DATA as u32 + 1, "data_size_lo");
    corrupt(info_offsets::DATA_SIZE_HI, 1, "data_size_hi");
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
    assert!(Server::new(FakeMemory::new(0x1000), DATA, config()).is_err());
    assert!(Server::new(
        control.clone(),
        DATA,
        ServerConfig {
            mac: MAC,
            ring_capacity: 512,
            offloads: 0,
        }
    )
    .is_err());
    assert!(Client::new(control.clone(), FakeMemory::new(2048), RING).is_err());
    assert!(Client::new(control.clone(), FakeMemory::new(DATA as usize + 1), RING).is_err());
    assert!(Client::with_region(control.clone(), FakeMemory::new(100), RING).is_ok());
    // A small client's id table bounds its rings.
    let big = FakeMemory::new(ControlLayout::new(128).unwrap().size());
    assert!(SmallClient::with_region(big.clone(), FakeMemory::new(100), 128).is_err());
    assert!(Client::with_region(big, FakeMemory::new(100), 128).is_ok());
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

fn rx_active(mem: &FakeMemory) -> Consumer<FakeMemory, BufDesc> {
    Consumer::new(mem.clone(), layout().rx_active).unwrap()
}

#[test]
fn hostile_client_descriptors() {
    let mut s = server();
    let mut tx = raw_tx_active(&s.control);
    let mut back = tx_free(&s.control);
    for d in [
        BufDesc::new(DATA - 59, 60, 1),          // one byte past the region
        BufDesc::new(DATA, 60, 2),               // just past the region
        BufDesc::new(u64::MAX - 30, 60, 3),      // offset + len overflows
        BufDesc::new(1, 60, 4),                  // good (any alignment)
        BufDesc::new(1, 60, 4),                  // the same again: the client's own business
        BufDesc::new(300, 13, 6),                // too short
        BufDesc::new(400, MAX_FRAME_LEN + 1, 7), // too long
        BufDesc::new(DATA - 14, 14, 8),          // good: the region's last bytes
        BufDesc {
            status: 8,
            ..BufDesc::new(0, 60, 9)
        }, // a flag not defined
    ] {
        tx.push(&d).unwrap();
    }
    let mut frames = Vec::new();
    while let Some(t) = s.server.next_tx().unwrap() {
        frames.push((t.offset(), t.len()));
        s.server.tx_done(t, TxStatus::Sent).unwrap();
    }
    assert_eq!(frames, vec![(1, 60), (1, 60), (DATA - 14, 14)]);
    let st = s.server.stats();
    assert_eq!(
        (st.tx_accepted, st.bad_offset, st.bad_length, st.unsupported),
        (3, 3, 2, 1)
    );
    // Everything taken comes back exactly once, echoed, with its status; what named
    // bytes outside the region does not.
    let mut got = Vec::new();
    while let Some(d) = back.pop().unwrap() {
        got.push((d.id, d.offset, d.len, d.status));
    }
    let (sent, bad) = (TxStatus::Sent as u16, TxStatus::BadLength as u16);
    assert_eq!(
        got,
        vec![
            (4, 1, 60, sent),
            (4, 1, 60, sent),
            (6, 300, 13, bad),
            (7, 400, MAX_FRAME_LEN + 1, bad),
            (8, DATA - 14, 14, sent),
            (9, 0, 60, TxStatus::Unsupported as u16),
        ]
    );
    assert_eq!(s.server.held(), 0);

    // RX free: bounds, overflow and capacity checks.
    let mut rx = raw_rx_free(&s.control);
    for d in [
        BufDesc::new(DATA - 1513, 1514, 1),
        BufDesc::new(u64::MAX - 100, 1514, 2),
        BufDesc::new(0, 1513, 3),
        BufDesc::new(0, 0, 4),
        BufDesc::new(7, 1514, 5),
        BufDesc::new(7, 4000, 6),
    ] {
        rx.push(&d).unwrap();
    }
    let mut bufs = Vec::new();
    while let Some(r) = s.server.take_rx_buffer().unwrap() {
        bufs.push((r.offset(), r.capacity()));
        s.server.rx_deliver(r, 60).unwrap();
    }
    assert_eq!(bufs, vec![(7, 1514), (7, 4000)]);
    let st = s.server.stats();
    assert_eq!((st.bad_offset, st.rx_too_small, st.rx_buffers_accepted), (5, 2, 2));
    let mut back = rx_active(&s.control);
    let mut got = Vec::new();
    while let Some(d) = back.pop().unwrap() {
        got.push((d.id, d.offset, d.len, d.status));
    }
    assert_eq!(got, vec![(5, 7, 60, 0), (6, 7, 60, 0)]);
    // The spare: one buffer kept for the next frame, not two.
    rx.push(&BufDesc::new(0, 1514, 7)).unwrap();
    rx.push(&BufDesc::new(2000, 1514, 8)).unwrap();
    let a = s.server.take_rx_buffer().unwrap().unwrap();
    let b = s.server.take_rx_buffer().unwrap().unwrap();
    s.server.rx_unused(a).unwrap();
    assert_eq!(s.server.rx_unused(b), Err(ServerError::NotHeld(2000)));
    assert_eq!(s.server.take_rx_buffer().unwrap(), Some(a));
}

/// A client that never takes its give-backs: the server stops taking descriptors
/// when the give-back ring could not hold them (it never holds more than it can give
/// back), and the client is not cut off: it only stops itself.
#[test]
fn server_holds_no_more_than_it_can_give_back() {
    let mut s = server();
    let mut tx = raw_tx_active(&s.control);
    let mut taken = Vec::new();
    for round in 0..3 {
        while tx.push(&BufDesc::new(0, 60, round)).is_ok() {}
        while let Some(t) = s.server.next_tx().unwrap() {
            taken.push(t);
        }
        // Half of what is held is given back each round.
        let n = taken.len() / 2;
        for t in taken.drain(..n) {
            s.server.tx_done(t, TxStatus::Sent).unwrap();
        }
    }
    let mut back = tx_free(&s.control);
    assert_eq!(back.available().unwrap() + s.server.held(), RING);
    assert_eq!(s.server.cut_off(), None);
    // Taking the give-backs lets it continue.
    while back.pop().unwrap().is_some() {}
    assert!(s.server.next_tx().unwrap().is_some());

    // The same on receive.
    let mut rx = raw_rx_free(&s.control);
    let mut held = 0;
    for _ in 0..3 {
        while rx.push(&BufDesc::new(0, 1514, 1)).is_ok() {}
        while let Some(r) = s.server.take_rx_buffer().unwrap() {
            s.server.rx_deliver(r, 60).unwrap();
            held += 1;
        }
    }
    assert_eq!(held, RING);
    assert_eq!(s.server.cut_off(), None);
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

/// A recall: every receive buffer the server holds or has not taken yet comes back
/// unused; nothing is posted until the server confirms.
#[test]
fn recall_gives_receive_buffers_back_unused() {
    let (mut s, mut client) = region_pair();
    let mut ids = HashSet::new();
    for i in 0..5 {
        ids.insert(client.post_rx(i * 2000, 1600).unwrap());
    }
    // One taken and kept as the spare, one delivered, three still in the ring.
    let r = s.server.take_rx_buffer().unwrap().unwrap();
    s.server.rx_unused(r).unwrap();
    let d = s.server.take_rx_buffer().unwrap().unwrap();
    s.server.rx_deliver(d, 100).unwrap();
    assert!(!client.recall_pending().unwrap());
    client.recall_rx().unwrap();
    assert!(client.signal_needed().unwrap(), "a recall always notifies");
    assert!(client.recall_pending().unwrap());
    assert_eq!(client.post_rx(0, 1514), Err(ClientError::RecallPending));
    assert_eq!(client.rx_room().unwrap(), 0);
    assert!(s.server.serve_recall().unwrap());
    assert!(!s.server.serve_recall().unwrap(), "served once");
    assert!(!client.recall_pending().unwrap());
    let mut frames = 0;
    let mut unused = 0;
    while let Some(r) = client.take_rx().unwrap() {
        assert!(ids.remove(&r.id));
        match r.outcome {
            RxOutcome::Frame(100) => frames += 1,
            RxOutcome::Unused => unused += 1,
            o => panic!("{o:?}"),
        }
    }
    assert_eq!((frames, unused), (1, 4));
    assert!(ids.is_empty());
    assert_eq!(client.rx_outstanding(), 0);
    assert_eq!(s.server.held(), 0);
    assert_eq!(s.server.stats().rx_recalled, 4);
    client.post_rx(0, 1514).unwrap();
    // A restarted server confirms any earlier recall when it publishes.
    s.control.store_u32(RX_RECALL, 77, Ordering::Release).unwrap();
    s.server.publish(4).unwrap();
    assert_eq!(
        s.control
            .load_u32(info_offsets::RX_RECALL_DONE, Ordering::Acquire)
            .unwrap(),
        77
    );
}

/// A hostile server: pushes raw give-backs.
fn raw_tx_free(mem: &FakeMemory) -> Producer<FakeMemory, BufDesc> {
    Producer::new(mem.clone(), layout().tx_free).unwrap()
}

fn raw_rx_active(mem: &FakeMemory) -> Producer<FakeMemory, BufDesc> {
    Producer::new(mem.clone(), layout().rx_active).unwrap()
}

fn back(offset: u64, len: u32, id: u16, status: u16) -> BufDesc {
    BufDesc {
        offset,
        len,
        id,
        status,
    }
}

#[test]
fn hostile_server_give_backs() {
    let (s, mut client) = region_pair();
    let control = s.control.clone();
    let tx_id = client.send_at(100, 60).unwrap();
    let rx_id = client.post_rx(1000, 1600).unwrap();
    let mut txf = raw_tx_free(&control);
    let mut rxa = raw_rx_active(&control);
    let unknown = |ring, id, offset| ClientError::UnknownBuffer { ring, id, offset };

    // TX free: an id never handed over, another offset, another length, the RX
    // buffer's id and offset.
    txf.push(&back(100, 60, tx_id + 1, 0)).unwrap();
    assert_eq!(client.reclaim_tx().unwrap_err(), unknown("tx free", tx_id + 1, 100));
    txf.push(&back(101, 60, tx_id, 0)).unwrap();
    assert_eq!(client.reclaim_tx().unwrap_err(), unknown("tx free", tx_id, 101));
    txf.push(&back(100, 61, tx_id, 0)).unwrap();
    assert_eq!(client.reclaim_tx().unwrap_err(), unknown("tx free", tx_id, 100));
    txf.push(&back(1000, 1600, rx_id, 0)).unwrap();
    assert!(matches!(client.reclaim_tx(), Err(ClientError::UnknownBuffer { .. })));
    txf.push(&back(100, 60, 9999, 0)).unwrap();
    assert!(matches!(client.reclaim_tx(), Err(ClientError::UnknownBuffer { .. })));
    // An undefined status: the id is taken back (it was the client's), the error named.
    txf.push(&back(100, 60, tx_id, 77)).unwrap();
    assert_eq!(
        client.reclaim_tx(),
        Err(ClientError::BadStatus {
            id: tx_id,
            offset: 100,
            status: 77
        })
    );
    // Given back twice.
    txf.push(&back(100, 60, tx_id, 0)).unwrap();
    assert_eq!(client.reclaim_tx().unwrap_err(), unknown("tx free", tx_id, 100));
    assert_eq!(client.tx_outstanding(), 0);

    // RX active: the TX buffer, another offset, a length above the capacity or a
    // maximal frame, an undefined status.
    rxa.push(&back(100, 60, tx_id, 0)).unwrap();
    assert!(matches!(
        client.take_rx(),
        Err(ClientError::UnknownBuffer { ring: "rx active", .. })
    ));
    rxa.push(&back(1001, 60, rx_id, 0)).unwrap();
    assert_eq!(client.take_rx().unwrap_err(), unknown("rx active", rx_id, 1001));
    assert_eq!(client.rx_outstanding(), 1);
    rxa.push(&back(1000, 1515, rx_id, 0)).unwrap();
    let r = client.take_rx().unwrap().unwrap();
    assert_eq!((r.id, r.outcome), (rx_id, RxOutcome::BadLength(1515)));
    // Given back twice.
    rxa.push(&back(1000, 60, rx_id, 0)).unwrap();
    assert_eq!(client.take_rx().unwrap_err(), unknown("rx active", rx_id, 1000));
    let id = client.post_rx(1000, 1514).unwrap();
    rxa.push(&back(1000, 60, id, 5)).unwrap();
    assert_eq!(
        client.take_rx(),
        Err(ClientError::BadStatus {
            id,
            offset: 1000,
            status: 5
        })
    );
    let id = client.post_rx(1000, 1514).unwrap();
    rxa.push(&back(1000, 13, id, RxStatus::Received as u16)).unwrap();
    assert_eq!(client.take_rx().unwrap().unwrap().outcome, RxOutcome::BadLength(13));
    let id = client.post_rx(1000, 1514).unwrap();
    rxa.push(&back(1000, 1514, id, RxStatus::Received as u16)).unwrap();
    assert_eq!(client.take_rx().unwrap().unwrap().outcome, RxOutcome::Frame(1514));
    assert_eq!(client.stats().received, 1);

    // The fixed-buffer helper: a frame too long for the caller's buffer.
    let (s, mut client) = pair();
    let mut rxa = raw_rx_active(&s.control);
    rxa.push(&back(0, 100, 0, 0)).unwrap();
    let mut out = [0u8; 2048];
    assert_eq!(
        client.recv(&mut out[..50]),
        Err(ClientError::BufferTooSmall { len: 100 })
    );
    // The buffer was handed to the server again (id 0 is out once more).
    assert_eq!(client.rx_outstanding(), (BUFFERS / 2) as usize);
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
/// server never panics, never yields a frame or buffer outside the region or of an
/// impossible size, never holds more than the ring can give back, and gives back only
/// descriptors that were pushed (echoed exactly).
#[test]
fn random_hostile_client() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut s = server();
        let mut tx = raw_tx_active(&s.control);
        let mut rx = raw_rx_free(&s.control);
        let mut tx_back = tx_free(&s.control);
        let mut rx_back = rx_active(&s.control);
        let mut pushed: HashSet<(u64, u16)> = HashSet::new();
        let mut held_tx = Vec::new();
        let mut held_rx = Vec::new();
        let mut scribbled = false;
        for _ in 0..300 {
            let off = match rng.below(3) {
                0 => rng.below(DATA + 100),
                1 => rng.next(),
                _ => u64::MAX - rng.below(3000),
            };
            let id = rng.next() as u16;
            match rng.below(10) {
                0 | 1 => {
                    let len = match rng.below(2) {
                        0 => rng.below(1600) as u32,
                        _ => rng.next() as u32,
                    };
                    if tx
                        .push(&BufDesc {
                            offset: off,
                            len,
                            id,
                            status: rng.next() as u16,
                        })
                        .is_ok()
                    {
                        pushed.insert((off, id));
                    }
                }
                2 => {
                    let len = match rng.below(2) {
                        0 => 1400 + rng.below(700) as u32,
                        _ => rng.next() as u32,
                    };
                    if rx.push(&BufDesc::new(off, len, id)).is_ok() {
                        pushed.insert((off, id));
                    }
                }
                3 => {
                    // Scribble a word anywhere in the control region.
                    let at = (rng.below(layout().size() as u64) & !3) as usize;
                    s.control.store_u32(at, rng.next() as u32, Ordering::Relaxed).unwrap();
                    scribbled = true;
                }
                4 | 5 => {
                    if let Ok(Some(t)) = s.server.next_tx() {
                        assert!(t.offset() + u64::from(t.len()) <= DATA, "seed {seed}");
                        assert!((14..=MAX_FRAME_LEN).contains(&t.len()), "seed {seed}");
                        held_tx.push(t);
                    }
                }
                6 => {
                    if let Ok(Some(r)) = s.server.take_rx_buffer() {
                        assert!(r.offset() + u64::from(r.capacity()) <= DATA, "seed {seed}");
                        assert!(r.capacity() >= MAX_FRAME_LEN, "seed {seed}");
                        held_rx.push(r);
                    }
                }
                7 => {
                    let _ = s.server.serve_recall();
                }
                _ => {
                    if let Some(t) = held_tx.pop() {
                        match s.server.tx_done(t, TxStatus::Sent) {
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
            assert!(s.server.held() <= 2 * RING, "seed {seed}");
            // Until a scribble moves the indices, every give-back echoes a descriptor
            // that was pushed.
            if !scribbled {
                while let Ok(Some(d)) = tx_back.pop() {
                    assert!(pushed.contains(&(d.offset, d.id)), "seed {seed}: {d:?}");
                }
                while let Ok(Some(d)) = rx_back.pop() {
                    assert!(pushed.contains(&(d.offset, d.id)), "seed {seed}: {d:?}");
                }
            }
            let _ = s.server.signal_needed();
            let _ = s.server.request_signal();
        }
    }
}

/// Random give-backs and random words from a hostile server: the client never panics,
/// never reports a frame longer than the buffer it lent or the maximum, never more
/// descriptors out than the ring capacity, and every buffer it returns is one it
/// handed over (same id, offset, capacity).
#[test]
fn random_hostile_server() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let (s, mut client) = region_pair();
        let control = s.control.clone();
        let mut txf = raw_tx_free(&control);
        let mut rxa = raw_rx_active(&control);
        let mut posted: std::collections::HashMap<u16, (u64, u32)> = Default::default();
        for _ in 0..300 {
            let off = match rng.below(3) {
                0 => rng.below(DATA),
                1 => rng.next(),
                _ => 2000 * rng.below(4),
            };
            let id = match rng.below(2) {
                0 => rng.below(u64::from(RING) + 2) as u16,
                _ => rng.next() as u16,
            };
            match rng.below(7) {
                0 => {
                    let _ = txf.push(&back(off, rng.below(1600) as u32, id, rng.below(6) as u16));
                }
                1 => {
                    let _ = rxa.push(&back(off, rng.below(2100) as u32, id, rng.below(3) as u16));
                }
                2 => {
                    let at = (rng.below(layout().size() as u64) & !3) as usize;
                    control.store_u32(at, rng.next() as u32, Ordering::Relaxed).unwrap();
                }
                3 => {
                    let _ = client.send_at(off % DATA, 14 + rng.below(1500) as u32);
                }
                4 => {
                    let cap = 1514 + rng.below(600) as u32;
                    let o = 2000 * rng.below(4);
                    if let Ok(id) = client.post_rx(o, cap) {
                        posted.insert(id, (o, cap));
                    }
                }
                5 => match client.take_rx() {
                    Ok(Some(r)) => {
                        let (o, cap) = posted.remove(&r.id).expect("an id handed over");
                        assert_eq!((r.offset, r.capacity), (o, cap), "seed {seed}");
                        if let RxOutcome::Frame(n) = r.outcome {
                            assert!((14..=MAX_FRAME_LEN.min(cap)).contains(&n), "seed {seed}");
                        }
                    }
                    Err(ClientError::BadStatus { id, offset, .. }) => {
                        assert_eq!(posted.remove(&id).map(|p| p.0), Some(offset), "seed {seed}");
                    }
                    _ => {}
                },
                _ => {
                    let _ = client.reclaim_tx();
                }
            }
            assert!(client.tx_outstanding() <= RING as usize, "seed {seed}");
            assert!(client.rx_outstanding() <= RING as usize, "seed {seed}");
            assert_eq!(client.rx_outstanding(), posted.len(), "seed {seed}");
            let _ = client.signal_needed();
            let _ = client.request_signal();
        }
    }
}

/// A frame in pieces, with an offload header: the server takes it whole, only once
/// its last piece is published, and gives every piece back in order.
#[test]
fn a_frame_in_pieces_is_taken_whole_and_given_back_in_order() {
    let (mut s, mut client) = region_pair();
    let pieces = [(100u64, 12u32 + 20), (4000, 1000), (9000, 3000)];
    let ids = client.send_frame(&pieces, true).unwrap();
    assert_eq!(ids.as_slice().len(), 3);
    let f = s.server.next_tx().unwrap().unwrap();
    assert!(f.offload());
    assert_eq!(f.len(), 12 + 20 + 1000 + 3000);
    assert_eq!(f.frame_len(), 20 + 1000 + 3000);
    let got: Vec<(u64, u32)> = f.pieces().iter().map(|d| (d.offset, d.len)).collect();
    assert_eq!(got, pieces);
    assert_eq!(s.server.held(), 3);
    s.server.tx_done(f, TxStatus::Sent).unwrap();
    for (k, &(offset, len)) in pieces.iter().enumerate() {
        let r = client.reclaim_tx().unwrap().unwrap();
        assert_eq!(
            (r.id, r.offset, r.len, r.status),
            (ids.as_slice()[k], offset, len, TxStatus::Sent)
        );
    }
    assert!(client.reclaim_tx().unwrap().is_none());

    // Published in part: nothing yet; the rest makes the frame.
    let mut s = server();
    let mut raw = raw_tx_active(&s.control);
    let mut d = BufDesc::new(0, 14, 1);
    d.status = tx_flags::MORE;
    raw.push(&d).unwrap();
    assert!(s.server.next_tx().unwrap().is_none());
    raw.push(&BufDesc::new(2048, 100, 2)).unwrap();
    let f = s.server.next_tx().unwrap().unwrap();
    assert!(!f.offload());
    assert_eq!(f.pieces().len(), 2);
    assert_eq!(f.len(), 114);
}

/// The client's checks: piece counts, lengths, and offloads the server offers.
#[test]
fn send_frame_checks_before_handing_anything_over() {
    let (_s, mut client) = region_pair();
    let too_many = vec![(0u64, 100u32); MAX_TX_PIECES + 1];
    assert_eq!(
        client.send_frame(&too_many, false),
        Err(ClientError::BadLength(MAX_TX_PIECES + 1))
    );
    assert_eq!(client.send_frame(&[], false), Err(ClientError::BadLength(0)));
    assert!(matches!(
        client.send_frame(&[(0, 1000), (1000, 600)], false),
        Err(ClientError::BadLength(1600))
    ));
    assert!(matches!(
        client.send_frame(&[(0, 0), (10, 60)], false),
        Err(ClientError::BadBuffer { .. })
    ));
    assert!(matches!(
        client.send_frame(&[(DATA - 10, 20)], false),
        Err(ClientError::BadBuffer { .. })
    ));
    // An offloaded frame may be long; without its header it must still hold an
    // Ethernet header.
    assert!(client.send_frame(&[(0, 12 + 13)], true).is_err());
    assert!(client.send_frame(&[(0, 12 + 20000)], true).is_ok());
    // More pieces than the ring has room for: nothing is handed over.
    let many = vec![(0u64, 100u32); RING as usize];
    assert_eq!(client.send_frame(&many, true), Err(ClientError::Full));
    assert_eq!(client.tx_outstanding(), 1);

    // A server that offers no offloads.
    let control = FakeMemory::new(layout().size());
    let data = FakeMemory::new(DATA as usize);
    let cfg = ServerConfig {
        offloads: 0,
        ..config()
    };
    let mut server = Server::new(control.clone(), DATA, cfg).unwrap();
    server.publish(1).unwrap();
    let mut client = Client::with_region(control.clone(), data, RING).unwrap();
    assert_eq!(client.connect().unwrap().offloads, 0);
    assert_eq!(
        client.send_frame(&[(0, 100)], true),
        Err(ClientError::OffloadNotOffered)
    );
    // A client that asks anyway is refused by the server.
    let mut d = BufDesc::new(0, 100, 0);
    d.status = tx_flags::OFFLOAD;
    raw_tx_active(&control).push(&d).unwrap();
    assert!(server.next_tx().unwrap().is_none());
    assert_eq!(server.stats().unsupported, 1);
    let back = tx_free(&control).pop().unwrap().unwrap();
    assert_eq!(back.status, TxStatus::Unsupported as u16);
}

/// Hostile pieces: too many, undefined flags, a piece outside the region, an offload
/// flag after the first piece. Each refuses its frame, gives back every piece that
/// names the client's bytes in order, and the next frame is served.
#[test]
fn hostile_pieces_refuse_their_frame_only() {
    let s = server();
    let mut server = s.server;
    let mut raw = raw_tx_active(&s.control);
    let mut back = tx_free(&s.control);
    let piece = |offset: u64, len: u32, id: u16, status: u16| {
        let mut d = BufDesc::new(offset, len, id);
        d.status = status;
        d
    };
    let drain = |back: &mut Consumer<FakeMemory, BufDesc>| {
        let mut v = Vec::new();
        while let Some(d) = back.pop().unwrap() {
            v.push((d.id, d.status));
        }
        v
    };
    let bad = TxStatus::BadLength as u16;
    let unsupported = TxStatus::Unsupported as u16;

    // More than the ring can give back at once (RING = 16) and more than
    // MAX_TX_PIECES: published and taken in parts, given back as they come.
    let mut got = Vec::new();
    for i in 0..MAX_TX_PIECES as u16 + 2 {
        let last = i == MAX_TX_PIECES as u16 + 1;
        raw.push(&piece(
            u64::from(i) * 100,
            100,
            i,
            if last { 0 } else { tx_flags::MORE },
        ))
        .unwrap();
        if i % 4 == 3 || last {
            assert!(server.next_tx().unwrap().is_none());
            got.extend(drain(&mut back));
        }
    }
    assert!(server.next_tx().unwrap().is_none());
    got.extend(drain(&mut back));
    let want: Vec<(u16, u16)> = (0..MAX_TX_PIECES as u16 + 2).map(|i| (i, bad)).collect();
    assert_eq!(got, want);
    assert_eq!(server.held(), 0);
    assert_eq!(server.stats().bad_length, 1);

    // An undefined flag on the second piece; an offload flag on a later piece.
    raw.push(&piece(0, 60, 1, tx_flags::MORE)).unwrap();
    raw.push(&piece(100, 60, 2, tx_flags::MORE | 0x40)).unwrap();
    raw.push(&piece(200, 60, 3, 0)).unwrap();
    raw.push(&piece(0, 60, 4, tx_flags::MORE)).unwrap();
    raw.push(&piece(100, 60, 5, tx_flags::OFFLOAD)).unwrap();
    assert!(server.next_tx().unwrap().is_none());
    assert_eq!(
        drain(&mut back),
        [
            (1, unsupported),
            (2, unsupported),
            (3, unsupported),
            (4, unsupported),
            (5, unsupported)
        ]
    );

    // A piece outside the region: dropped; the others come back.
    raw.push(&piece(0, 60, 6, tx_flags::MORE)).unwrap();
    raw.push(&piece(DATA, 60, 7, tx_flags::MORE)).unwrap();
    raw.push(&piece(100, 60, 8, 0)).unwrap();
    // Then an honest frame is served.
    raw.push(&piece(300, 60, 9, 0)).unwrap();
    let f = server.next_tx().unwrap().unwrap();
    assert_eq!((f.offset(), f.len()), (300, 60));
    assert_eq!(drain(&mut back), [(6, bad), (8, bad)]);
    assert_eq!(server.stats().bad_offset, 1);
    assert_eq!(server.held(), 1);
}
