//! The network device's VCP backend against the network protocol's server half (the
//! VCP's side) on fake memory, guest RAM being the protocol's data region: transmit
//! zero copy (the VCP reads the frame at its guest-RAM offset, no byte copied by the
//! VMM, the chain completes only when the VCP gives the frame's last piece back),
//! frames in pieces and with offload headers going as one frame, too many pieces
//! refused, descriptor ids running out; receive buffers posted to
//! the VCP at once and filled by its one copy; a device reset recalling them;
//! a malicious guest and a hostile server taking nothing down but the link.

use std::collections::HashSet;

mod common;
use common::Rng;

use vcpos_net_protocol::{
    offloads, tx_flags, BufDesc, ControlLayout, RxBuffer, Server, ServerConfig, TxFrame, TxStatus, GSO_TCPV4,
    MAX_TX_PIECES, OFFLOAD_F_NEEDS_CSUM,
};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{Consumer, Producer, SharedMemory};
use vcpos_virtio::block::{DataSegment, RequestId, SubmitError};
use vcpos_virtio::net::{NetBackend, NetCompletion, NetOffloads, NET_HEADER_LEN};
use vcpos_virtio::net_vcp::NetVcpBackend;

const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const RING: u32 = 32;
const RAM: usize = 0x10000;

struct Rig {
    server: Server<FakeMemory>,
    backend: NetVcpBackend<FakeMemory>,
    control: FakeMemory,
    ram: FakeMemory,
}

fn rig(publish: bool) -> Rig {
    rig_with(publish, 0)
}

/// A rig whose VCP offers `offloads` (protocol bits).
fn rig_with(publish: bool, offloads: u32) -> Rig {
    let control = FakeMemory::new(ControlLayout::new(RING).unwrap().size());
    let ram = FakeMemory::new(RAM);
    let mut server = Server::new(
        control.clone(),
        RAM as u64,
        ServerConfig {
            mac: MAC,
            ring_capacity: RING,
            offloads,
        },
    )
    .unwrap();
    if publish {
        server.publish(7).unwrap();
    }
    let backend = NetVcpBackend::new(control.clone(), ram.clone(), RING).unwrap();
    Rig {
        server,
        backend,
        control,
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

fn read(mem: &FakeMemory, offset: u64, len: u32) -> Vec<u8> {
    let mut v = vec![0; len as usize];
    mem.read_bytes(offset as usize, &mut v).unwrap();
    v
}

/// What the VCP does with a received frame: one copy into the buffer.
fn deliver(r: &mut Rig, buf: RxBuffer, f: &[u8]) {
    r.ram.write_bytes(buf.offset() as usize, f).unwrap();
    r.server.rx_deliver(buf, f.len() as u32).unwrap();
}

#[test]
fn connects_and_reports_the_mac() {
    let mut r = rig(false);
    assert!(!r.backend.connect(), "not ready yet");
    assert!(!r.backend.info().link_up);
    assert_eq!(r.backend.info().mac, [0; 6]);
    assert_eq!(r.backend.rx_room(), 0, "no buffer taken while the link is down");
    // A frame while the link is down is refused, not queued.
    let seg = scatter(&r.ram, &frame(60, 1), &[(0, 60)]);
    assert!(matches!(
        r.backend.transmit(rid(0, 0), &seg, false),
        Err(SubmitError::Refused(_))
    ));
    r.server.publish(3).unwrap();
    assert!(r.backend.connect());
    let info = r.backend.info();
    assert_eq!(info.mac, MAC);
    assert!(info.link_up);
    assert_eq!(info.tx_depth, RING as u16);
    assert_eq!(r.backend.mac(), Some(MAC));
    assert!(r.backend.take_error().is_none());
}

#[test]
fn transmit_is_zero_copy_and_completes_when_the_vcp_gives_the_frame_back() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    // The VCP waits for frames, asking to be notified.
    assert!(r.server.request_signal().unwrap());
    let f = frame(1514, 9);
    // One piece at an odd guest-RAM offset (a linearized socket buffer).
    let seg = scatter(&r.ram, &f, &[(0x1003, 1514)]);
    let id = rid(1, 5);
    r.backend.transmit(id, &seg, false).unwrap();
    assert!(r.backend.signal_needed(), "the server asked for a notification");
    // Not complete: the VCP still reads guest RAM.
    assert_eq!(r.backend.poll(), None);
    let tx = r.server.next_tx().unwrap().expect("a frame for the VCP");
    assert_eq!((tx.offset(), tx.len()), (0x1003, 1514), "the guest's own bytes");
    assert_eq!(read(&r.ram, tx.offset(), tx.len()), f);
    assert_eq!(r.backend.poll(), None);
    r.server.tx_done(tx, TxStatus::Sent).unwrap();
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(id)));
    let s = r.backend.stats();
    assert_eq!((s.tx_frames, s.tx_bytes_copied, s.tx_bytes_zero_copy), (1, 0, 1514));
    assert_eq!(s.tx_status, [1, 0, 0, 0, 0]);

    // Adjacent pieces (the frame split over descriptors that follow each other) are
    // one piece.
    let g = frame(600, 3);
    let seg = scatter(&r.ram, &g, &[(0x4000, 100), (0x4064, 500)]);
    r.backend.transmit(rid(1, 6), &seg, false).unwrap();
    let merged = r.server.next_tx().unwrap().unwrap();
    assert_eq!((merged.offset(), merged.len()), (0x4000, 600));
    assert_eq!(merged.pieces().len(), 1);
    assert_eq!(read(&r.ram, 0x4000, 600), g);
    // Non-adjacent pieces go as one frame of several descriptors, never copied.
    let seg = scatter(&r.ram, &g, &[(0x5000, 100), (0x6000, 500)]);
    r.backend.transmit(rid(1, 7), &seg, false).unwrap();
    let two = r.server.next_tx().unwrap().unwrap();
    assert!(!two.offload());
    let pieces: Vec<(u64, u32)> = two.pieces().iter().map(|d| (d.offset, d.len)).collect();
    assert_eq!(pieces, vec![(0x5000, 100), (0x6000, 500)]);
    r.server.tx_done(merged, TxStatus::Sent).unwrap();
    r.server.tx_done(two, TxStatus::Sent).unwrap();
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(1, 6))));
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(1, 7))));
    // More non-adjacent pieces than a frame may take: refused and counted.
    let many: Vec<DataSegment> = (0..MAX_TX_PIECES as u64 + 1)
        .map(|k| DataSegment {
            offset: 0x8000 + 0x100 * k,
            len: 60,
        })
        .collect();
    assert!(matches!(
        r.backend.transmit(rid(1, 8), &many, false),
        Err(SubmitError::Refused(_))
    ));
    assert_eq!(r.backend.stats().tx_scattered, 1);
    assert!(r.server.next_tx().unwrap().is_none());
    // As many as it may take (adjacent ones merged first) go.
    let mut fits = many.clone();
    fits[1].offset = 0x8000 + 60;
    r.backend.transmit(rid(1, 9), &fits, false).unwrap();
    let tx = r.server.next_tx().unwrap().unwrap();
    assert_eq!(tx.pieces().len(), MAX_TX_PIECES);
    assert_eq!(tx.pieces()[0].len, 120);
    let s = r.backend.stats();
    assert_eq!(
        (s.tx_frames, s.tx_pieces, s.tx_offloaded),
        (4, 4 + MAX_TX_PIECES as u64, 0)
    );
    assert_eq!(s.tx_bytes_copied, 0);
    assert!(r.backend.info().link_up, "a refusal is not a reason to give up");
}

#[test]
fn offloads_are_reported_once_connected() {
    let mut r = rig_with(false, offloads::CSUM | offloads::TSO4);
    assert_eq!(r.backend.info().offloads, NetOffloads::empty(), "not connected yet");
    r.server.publish(1).unwrap();
    assert!(r.backend.connect());
    assert_eq!(r.backend.info().offloads, NetOffloads::CSUM | NetOffloads::TSO4);
    let mut r = rig_with(true, offloads::CSUM);
    assert!(r.backend.connect());
    assert_eq!(r.backend.info().offloads, NetOffloads::CSUM);
    // A VCP offering none: an offloaded frame is refused here, nothing handed over.
    let mut r = rig(true);
    assert!(r.backend.connect());
    assert_eq!(r.backend.info().offloads, NetOffloads::empty());
    let seg = scatter(&r.ram, &frame(72, 1), &[(0x100, 72)]);
    assert!(matches!(
        r.backend.transmit(rid(0, 1), &seg, true),
        Err(SubmitError::Refused(_))
    ));
    assert_eq!(r.backend.stats().tx_refused, 1);
    assert!(r.server.next_tx().unwrap().is_none());
}

/// A TSO frame as Linux hands it over: the 12-byte header, then the frame in pieces.
fn tso_frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; NET_HEADER_LEN as usize];
    f[0] = OFFLOAD_F_NEEDS_CSUM;
    f[1] = GSO_TCPV4;
    f[4..6].copy_from_slice(&1448u16.to_le_bytes());
    let mut body = frame(len, 4);
    body[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x20]);
    f.extend_from_slice(&body);
    f
}

#[test]
fn an_offloaded_frame_in_pieces_goes_as_one_frame_and_completes_after_its_last_piece() {
    let mut r = rig_with(true, offloads::CSUM | offloads::TSO4);
    assert!(r.backend.connect());
    // Header in its own descriptor, linear part, then fragments (two adjacent).
    let f = tso_frame(20_000);
    let layout = [
        (0x0100, 12),
        (0x1000, 66),
        (0x2000, 6000),
        (0x2000 + 6000, 4000),
        (0x5000, 9934),
    ];
    let seg = scatter(&r.ram, &f, &layout);
    let id = rid(2, 40);
    r.backend.transmit(id, &seg, true).unwrap();
    // The VCP's view: one offloaded frame of four descriptors (adjacent ones merged),
    // the guest's own bytes, header first.
    let mut active =
        Consumer::<_, BufDesc>::new(r.control.clone(), ControlLayout::new(RING).unwrap().tx_active).unwrap();
    let mut descs = Vec::new();
    while let Some(d) = active.pop().unwrap() {
        descs.push(d);
    }
    let pieces: Vec<(u64, u32)> = descs.iter().map(|d| (d.offset, d.len)).collect();
    assert_eq!(
        pieces,
        vec![(0x100, 12), (0x1000, 66), (0x2000, 10_000), (0x5000, 9934)]
    );
    let flags: Vec<u16> = descs.iter().map(|d| d.status).collect();
    assert_eq!(
        flags,
        vec![tx_flags::MORE | tx_flags::OFFLOAD, tx_flags::MORE, tx_flags::MORE, 0]
    );
    let bytes: Vec<u8> = pieces.iter().flat_map(|&(o, l)| read(&r.ram, o, l)).collect();
    assert_eq!(bytes, f);
    // The pieces come back one by one: the request completes once, after the last.
    let mut free = Producer::<_, BufDesc>::new(r.control.clone(), ControlLayout::new(RING).unwrap().tx_free).unwrap();
    for d in &descs[..3] {
        free.push(&BufDesc {
            status: TxStatus::Sent as u16,
            ..*d
        })
        .unwrap();
        assert_eq!(r.backend.poll(), None, "not before its last piece");
    }
    free.push(&BufDesc {
        status: TxStatus::Sent as u16,
        ..descs[3]
    })
    .unwrap();
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(id)));
    assert_eq!(r.backend.poll(), None, "once");
    let s = r.backend.stats();
    assert_eq!((s.tx_frames, s.tx_offloaded, s.tx_pieces), (1, 1, 4));
    assert_eq!((s.tx_bytes_copied, s.tx_bytes_zero_copy), (0, f.len() as u64));
    assert_eq!(s.tx_status, [4, 0, 0, 0, 0]);
    assert!(r.backend.take_error().is_none());
}

#[test]
fn a_frame_the_vcp_refuses_completes_once_with_every_piece_counted() {
    // Through the protocol's server half: an offload the VCP does not take (TSO with
    // checksum offload only) comes back Unsupported, piece by piece; a plain frame in
    // pieces is sent.
    let mut r = rig_with(true, offloads::CSUM);
    assert!(r.backend.connect());
    let f = tso_frame(3000);
    let seg = scatter(&r.ram, &f, &[(0x100, 12), (0x1000, 1000), (0x3000, 2000)]);
    r.backend.transmit(rid(0, 1), &seg, true).unwrap();
    let g = frame(1000, 5);
    let seg = scatter(&r.ram, &g, &[(0x6000, 14), (0x7000, 986)]);
    r.backend.transmit(rid(0, 2), &seg, false).unwrap();
    let tso = r.server.next_tx().unwrap().unwrap();
    assert!(tso.offload());
    assert_eq!(tso.pieces().len(), 3);
    r.server.tx_done(tso, TxStatus::Unsupported).unwrap();
    let plain = r.server.next_tx().unwrap().unwrap();
    assert_eq!((plain.pieces().len(), plain.len()), (2, 1000));
    r.server.tx_done(plain, TxStatus::Sent).unwrap();
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(0, 1))));
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(0, 2))));
    assert_eq!(r.backend.poll(), None);
    assert_eq!(r.backend.stats().tx_status, [2, 0, 0, 0, 3]);
}

#[test]
fn too_few_descriptors_for_every_piece_is_busy_with_nothing_handed_over() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let one = scatter(&r.ram, &frame(100, 2), &[(0x100, 100)]);
    for head in 0..RING as u16 - 2 {
        r.backend.transmit(rid(0, head), &one, false).unwrap();
    }
    // Two descriptors left; a frame in three pieces does not fit.
    let g = frame(300, 3);
    let three = scatter(&r.ram, &g, &[(0x1000, 100), (0x2000, 100), (0x3000, 100)]);
    assert_eq!(r.backend.transmit(rid(0, 50), &three, false), Err(SubmitError::Busy));
    assert_eq!(r.backend.stats().tx_busy, 1);
    let mut frames = Vec::new();
    while let Some(t) = r.server.next_tx().unwrap() {
        frames.push(t);
    }
    assert_eq!(frames.len(), RING as usize - 2, "nothing of the busy frame handed over");
    // One frame back: room for all three pieces.
    r.server.tx_done(frames.remove(0), TxStatus::Sent).unwrap();
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(0, 0))));
    r.backend.transmit(rid(0, 50), &three, false).unwrap();
    let t = r.server.next_tx().unwrap().unwrap();
    assert_eq!((t.pieces().len(), t.len()), (3, 300));
    r.server.tx_done(t, TxStatus::Sent).unwrap();
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(0, 50))));
    assert_eq!(r.backend.stats().tx_frames, u64::from(RING) - 1);
}

#[test]
fn transmit_descriptors_run_out_and_come_back() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let seg = scatter(&r.ram, &frame(100, 2), &[(0x100, 100)]);
    for head in 0..RING as u16 {
        r.backend.transmit(rid(0, head), &seg, false).unwrap();
    }
    assert_eq!(r.backend.transmit(rid(0, 99), &seg, false), Err(SubmitError::Busy));
    assert_eq!(r.backend.stats().tx_busy, 1);
    // Waiting for a give-back: the backend asks for a notification on TX free.
    assert_eq!(r.backend.poll(), None);
    assert!(r.backend.request_signal());
    let mut frames: Vec<TxFrame> = Vec::new();
    while let Some(t) = r.server.next_tx().unwrap() {
        frames.push(t);
    }
    assert_eq!(frames.len(), RING as usize);
    // Given back out of order: each completes its own request.
    r.server.tx_done(frames[3], TxStatus::DeviceError).unwrap();
    r.server.tx_done(frames[0], TxStatus::Sent).unwrap();
    assert!(r.server.signal_needed().unwrap(), "the client asked to be notified");
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(0, 3))));
    assert_eq!(r.backend.poll(), Some(NetCompletion::Sent(rid(0, 0))));
    r.backend.transmit(rid(0, 99), &seg, false).unwrap();
    assert_eq!(r.backend.stats().tx_status, [1, 0, 0, 1, 0]);
    assert_eq!(r.backend.stats().tx_frames, u64::from(RING) + 1);
}

#[test]
fn receive_buffers_go_to_the_vcp_at_once_and_get_one_copy() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    assert_eq!(r.backend.rx_room(), RING as usize);
    // Guest buffers past their 12-byte header room, at odd offsets.
    let bufs: Vec<(RequestId, u64)> = (0..3u16)
        .map(|i| (rid(2, i), 0x2000 * (u64::from(i) + 1) + 12))
        .collect();
    for &(id, offset) in &bufs {
        r.backend.rx_buffer(id, &[DataSegment { offset, len: 1514 }]);
    }
    assert_eq!(r.backend.rx_room(), RING as usize - 3);
    assert_eq!(r.backend.rx_outstanding(), 3);
    // The VCP holds them all before any frame arrives.
    let held: Vec<RxBuffer> = (0..3).map(|_| r.server.take_rx_buffer().unwrap().unwrap()).collect();
    for (b, &(_, offset)) in held.iter().zip(&bufs) {
        assert_eq!((b.offset(), b.capacity()), (offset, 1514));
    }
    assert!(r.server.take_rx_buffer().unwrap().is_none());
    let frames: Vec<Vec<u8>> = [60usize, 1514, 342]
        .iter()
        .enumerate()
        .map(|(i, &n)| frame(n, i as u8))
        .collect();
    // Frames fill them in another order: the completions say which is which.
    let order = [2usize, 0, 1];
    for &k in &order {
        deliver(&mut r, held[k], &frames[k]);
    }
    for &k in &order {
        assert_eq!(
            r.backend.poll(),
            Some(NetCompletion::Received {
                id: bufs[k].0,
                len: frames[k].len() as u32
            })
        );
        assert_eq!(read(&r.ram, bufs[k].1, frames[k].len() as u32), frames[k]);
    }
    let s = r.backend.stats();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    assert_eq!((s.rx_frames, s.rx_bytes, s.rx_bytes_copied), (3, bytes, 0));
    assert_eq!(r.backend.rx_outstanding(), 0);
    assert_eq!(r.backend.rx_room(), RING as usize);
}

#[test]
fn unusable_receive_buffers_return_unused() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    // Two non-adjacent pieces: not one buffer.
    let id = rid(0, 1);
    r.backend.rx_buffer(
        id,
        &[
            DataSegment { offset: 0, len: 1000 },
            DataSegment {
                offset: 0x2000,
                len: 600,
            },
        ],
    );
    assert_eq!(r.backend.poll(), Some(NetCompletion::Received { id, len: 0 }));
    assert_eq!(r.backend.stats().rx_scattered, 1);
    // Adjacent pieces are one buffer.
    r.backend.rx_buffer(
        rid(0, 2),
        &[
            DataSegment { offset: 0, len: 1000 },
            DataSegment { offset: 1000, len: 600 },
        ],
    );
    let b = r.server.take_rx_buffer().unwrap().unwrap();
    assert_eq!((b.offset(), b.capacity()), (0, 1600));
    // An impossible length from the VCP (raw, past its own check) returns the buffer
    // unused without taking the link down.
    let layout = ControlLayout::new(RING).unwrap();
    let mut rxa = Producer::<_, BufDesc>::new(r.control.clone(), layout.rx_active).unwrap();
    rxa.push(&BufDesc::new(0, 1601, 0)).unwrap();
    assert_eq!(
        r.backend.poll(),
        Some(NetCompletion::Received { id: rid(0, 2), len: 0 })
    );
    assert_eq!(r.backend.stats().rx_bad_frames, 1);
    assert!(r.backend.info().link_up);
}

#[test]
fn a_device_reset_recalls_the_receive_buffers() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    for i in 0..4u16 {
        r.backend.rx_buffer(
            rid(0, i),
            &[DataSegment {
                offset: u64::from(i) * 0x1000,
                len: 1526,
            }],
        );
    }
    // The VCP has taken one; a frame lands in another before the reset.
    let a = r.server.take_rx_buffer().unwrap().unwrap();
    r.server.rx_unused(a).unwrap();
    let b = r.server.take_rx_buffer().unwrap().unwrap();
    assert!(!r.backend.rx_quiet());
    r.backend.reset();
    assert_eq!(r.backend.stats().recalls, 1);
    assert!(r.backend.signal_needed(), "the VCP is told at once");
    assert_eq!(r.backend.rx_room(), 0, "nothing posted until the VCP confirms");
    assert!(!r.backend.rx_quiet());
    // The VCP finishes the frame it had started, then serves the recall.
    deliver(&mut r, b, &frame(60, 0));
    assert!(r.server.serve_recall().unwrap());
    assert_eq!(r.server.held(), 0);
    // Every buffer comes back (completions of the old generation: the device drops
    // them); none is written after the recall.
    let mut back = HashSet::new();
    while let Some(c) = r.backend.poll() {
        match c {
            NetCompletion::Received { id, len } => {
                assert!(back.insert(id));
                assert!(len == 0 || len == 60, "{c:?}");
            }
            c => panic!("{c:?}"),
        }
    }
    assert_eq!(back.len(), 4);
    assert!(r.backend.rx_quiet());
    assert_eq!(r.backend.rx_room(), RING as usize);
    assert_eq!(r.backend.stats().rx_unused, 3);
    // A reset with nothing at the VCP needs no recall.
    r.backend.reset();
    assert_eq!(r.backend.stats().recalls, 1);
}

#[test]
fn a_hostile_server_takes_the_link_down_without_a_panic() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    // A TX free give-back of a descriptor never handed over.
    let layout = ControlLayout::new(RING).unwrap();
    let mut txf = Producer::<_, BufDesc>::new(r.control.clone(), layout.tx_free).unwrap();
    txf.push(&BufDesc::new(0, 60, 0)).unwrap();
    assert_eq!(r.backend.poll(), None);
    assert!(!r.backend.info().link_up);
    let e = r.backend.take_error().expect("the error is kept for the VMM");
    assert!(e.to_string().contains("tx free"), "{e}");
    assert!(r.backend.take_error().is_none(), "reported once");
    let seg = scatter(&r.ram, &frame(60, 1), &[(0, 60)]);
    assert!(matches!(
        r.backend.transmit(rid(0, 0), &seg, false),
        Err(SubmitError::Refused(_))
    ));
    assert_eq!(r.backend.rx_room(), 0);
    assert!(r.backend.rx_quiet(), "nothing more is given or taken");
}

#[test]
fn a_corrupt_index_takes_the_link_down() {
    let mut r = rig(true);
    assert!(r.backend.connect());
    let layout = ControlLayout::new(RING).unwrap();
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
    assert!(r.backend.transmit(rid(0, 0), &seg, false).is_err());
    assert!(!r.backend.info().link_up);
    assert!(r.backend.take_error().unwrap().to_string().contains("restarted"));
}

/// A random guest (frames and buffers anywhere, in random pieces, outside guest RAM,
/// offloaded or not, resets) against an honest VCP: every request completes at most once, the VMM
/// copies nothing, every frame the VCP reads is the guest's bytes at the guest's
/// offset, and every frame delivered lands exactly in the buffer it completes.
#[test]
fn random_guest_against_an_honest_vcp() {
    let (mut sent, mut received) = (0u64, 0u64);
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let mut r = rig_with(true, offloads::CSUM | offloads::TSO4);
        assert!(r.backend.connect());
        let mut generation = 0u16;
        let mut next_head = 0u16;
        let mut tx_out: HashSet<RequestId> = HashSet::new();
        let mut rx_out: std::collections::HashMap<RequestId, (u64, u64)> = Default::default();
        let mut vcp_tx: Vec<TxFrame> = Vec::new();
        let mut vcp_rx: Vec<RxBuffer> = Vec::new();
        let mut written: std::collections::HashMap<u64, Vec<u8>> = Default::default();
        for _ in 0..200 {
            let offset = match rng.below(4) {
                0 => rng.next(),
                _ => rng.below(RAM as u64),
            };
            let len = [10u32, 14, 60, 600, 1514, 1526, 3000][rng.below(7) as usize];
            next_head = next_head.wrapping_add(1);
            let id = rid(generation, next_head);
            match rng.below(9) {
                0 | 1 => {
                    let pieces = if rng.below(3) == 0 {
                        vec![
                            DataSegment { offset, len: len / 2 },
                            DataSegment {
                                offset: offset.wrapping_add(u64::from(len / 2) + rng.below(2) * 7),
                                len: len - len / 2,
                            },
                        ]
                    } else {
                        vec![DataSegment { offset, len }]
                    };
                    // Now and then with an offload header (of whatever bytes are there:
                    // the VCP checks it).
                    if r.backend.transmit(id, &pieces, rng.below(4) == 0).is_ok() {
                        tx_out.insert(id);
                    }
                }
                2 | 3 => {
                    // Receive buffers the guest lends do not overlap: one per 4 KiB
                    // slot of the upper half, or now and then outside guest RAM.
                    let used: HashSet<u64> = rx_out.values().map(|&(o, _)| o / 0x1000).collect();
                    let slot = (8..16).find(|k| !used.contains(k));
                    let at = match slot {
                        _ if rng.below(8) == 0 => rng.next() | (1 << 40),
                        Some(k) => k * 0x1000 + rng.below(16),
                        None => continue,
                    };
                    if r.backend.rx_room() > 0 {
                        r.backend.rx_buffer(id, &[DataSegment { offset: at, len }]);
                        rx_out.insert(id, (at, u64::from(len)));
                    }
                }
                4 => {
                    while let Some(t) = r.server.next_tx().unwrap() {
                        for p in t.pieces() {
                            assert!(p.offset + u64::from(p.len) <= RAM as u64, "seed {seed}");
                        }
                        vcp_tx.push(t);
                    }
                    while let Some(b) = r.server.take_rx_buffer().unwrap() {
                        assert!(b.offset() + u64::from(b.capacity()) <= RAM as u64, "seed {seed}");
                        vcp_rx.push(b);
                    }
                }
                5 => {
                    if let Some(t) = vcp_tx.pop() {
                        r.server.tx_done(t, TxStatus::Sent).unwrap();
                    }
                    if !vcp_rx.is_empty() {
                        let b = vcp_rx.remove(rng.below(vcp_rx.len() as u64) as usize);
                        let f = frame(14 + rng.below(1501) as usize, rng.next() as u8);
                        written.insert(b.offset(), f.clone());
                        deliver(&mut r, b, &f);
                    }
                }
                6 => {
                    let _ = r.server.serve_recall();
                }
                7 => {
                    // A device reset: a new generation.
                    r.backend.reset();
                    generation += 1;
                }
                _ => {
                    while let Some(c) = r.backend.poll() {
                        match c {
                            NetCompletion::Sent(id) => {
                                assert!(tx_out.remove(&id), "seed {seed}: {id:?} completed twice or never sent");
                                sent += 1;
                            }
                            NetCompletion::Received { id, len } => {
                                let (offset, cap) = rx_out
                                    .remove(&id)
                                    .unwrap_or_else(|| panic!("seed {seed}: {id:?} not lent"));
                                if len > 0 {
                                    assert!(u64::from(len) <= cap, "seed {seed}");
                                    let f = &written[&offset];
                                    assert_eq!(read(&r.ram, offset, len), *f, "seed {seed}");
                                    received += 1;
                                }
                            }
                        }
                    }
                }
            }
            let s = r.backend.stats();
            assert_eq!(
                s.tx_bytes_copied + s.rx_bytes_copied,
                0,
                "seed {seed}: the VMM copies nothing"
            );
            assert!(r.backend.take_error().is_none(), "seed {seed}: an honest VCP");
            let _ = r.backend.signal_needed();
            let _ = r.backend.request_signal();
        }
    }
    assert!(sent > 500 && received > 300, "{sent} sent, {received} received");
}

/// The whole transmit path: a guest's TSO chain as Linux builds it (header alone,
/// linear part, 17 page fragments) through the virtio-net device and this backend
/// to the protocol's server half, guest RAM being the data region.
#[test]
fn a_guest_tso_chain_reaches_the_vcp_as_one_offloaded_frame() {
    use common::{Buf, TestDriver, RAM_BASE, RAM_SIZE};
    use vcpos_virtio::net::{Net, TRANSMITQ, VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_MAC};

    const RING: u32 = 256;
    let control = FakeMemory::new(ControlLayout::new(RING).unwrap().size());
    let ram = FakeMemory::new(RAM_SIZE);
    let config = ServerConfig {
        mac: MAC,
        ring_capacity: RING,
        offloads: offloads::CSUM | offloads::TSO4,
    };
    let mut server = Server::new(control.clone(), RAM_SIZE as u64, config).unwrap();
    server.publish(1).unwrap();
    let mut backend = NetVcpBackend::new(control, ram.clone(), RING).unwrap();
    assert!(backend.connect());
    let mut d = TestDriver::new(Net::new(backend, RAM_BASE));
    let offered = d.device_features();
    assert_eq!(
        offered & (VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4),
        VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4,
        "the VCP's offloads offered to the guest"
    );
    d.init(VIRTIO_NET_F_MAC | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4, 2, 256);

    // An IPv4 packet of 65535 bytes behind its Ethernet header.
    let f = tso_frame(14 + 65535);
    let (h, body) = f.split_at(NET_HEADER_LEN as usize);
    let mut bufs = vec![Buf::Out(h), Buf::Out(&body[..66])];
    let frag = (body.len() - 66) / 17;
    let mut at = 66;
    for k in 0..17 {
        let end = if k == 16 { body.len() } else { at + frag };
        bufs.push(Buf::Out(&body[at..end]));
        at = end;
    }
    let (head, addrs) = d.post(TRANSMITQ as usize, &bufs);
    d.notify(u32::from(TRANSMITQ));
    // Guest RAM is the VCP's data region: what the guest wrote is what it reads.
    ram.write_bytes(0, &d.bytes(RAM_BASE, RAM_SIZE)).unwrap();
    let tx = server.next_tx().unwrap().expect("one frame at the VCP");
    assert!(tx.offload());
    assert_eq!(tx.pieces()[0].offset, addrs[0] - RAM_BASE, "the guest's header first");
    assert_eq!(tx.frame_len() as usize, body.len());
    // Up to 19 descriptors (fewer where the test's buffers happen to be adjacent).
    let pieces = tx_pieces_of(&addrs, &bufs);
    assert!(pieces <= 19);
    assert_eq!(tx.pieces().len() as u64, pieces);
    let bytes: Vec<u8> = tx.pieces().iter().flat_map(|p| read(&ram, p.offset, p.len)).collect();
    assert_eq!(bytes, f);
    assert!(server.next_tx().unwrap().is_none());
    // The chain completes when the VCP gives the frame back, not before.
    d.poll();
    assert!(d.used(TRANSMITQ as usize).is_empty());
    server.tx_done(tx, TxStatus::Sent).unwrap();
    d.poll();
    assert_eq!(d.used(TRANSMITQ as usize), vec![(u32::from(head), 0)]);
    let s = d.t.device().stats();
    assert_eq!((s.tx_frames, s.tx_offloaded, s.tx_tso), (1, 1, 1));
    let b = d.t.device().backend().stats();
    assert_eq!((b.tx_frames, b.tx_offloaded, b.tx_bytes_copied), (1, 1, 0));
    assert_eq!(b.tx_pieces, pieces);
}

/// Descriptors a chain of `bufs` at `addrs` takes once adjacent buffers are merged.
fn tx_pieces_of(addrs: &[u64], bufs: &[common::Buf<'_>]) -> u64 {
    let lens: Vec<u64> = bufs
        .iter()
        .map(|b| match b {
            common::Buf::Out(d) => d.len() as u64,
            common::Buf::In(l) => u64::from(*l),
        })
        .collect();
    1 + addrs.windows(2).zip(&lens).filter(|(w, &l)| w[0] + l != w[1]).count() as u64
}
