//! The virtio network device against a fake backend that plays the network VCP:
//! it records the guest-RAM pieces of transmitted frames, completes them when the
//! test says, and copies received frames into the buffers it was lent. Transmit,
//! receive, config space, and a misbehaving driver (broken chains, wrong directions,
//! short headers, reused heads, random rings). The device must never panic and never
//! hand the backend a range outside guest RAM.

mod common;

use std::collections::VecDeque;

use common::{Buf, Rng, TestDriver, NEEDS_RESET, RAM_BASE, RAM_SIZE};
use vcpos_virtio::block::{BlockStatus, DataSegment, RequestId, SubmitError};
use vcpos_virtio::mmio::{features, reg};
use vcpos_virtio::net::*;
use vcpos_virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use vcpos_virtio::{GuestError, GuestMemory};

const RX: usize = RECEIVEQ as usize;
const TX: usize = TRANSMITQ as usize;
const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

/// The network VCP as the device sees it.
struct FakeNet {
    info: NetInfo,
    /// Frames taken for sending and not yet completed.
    sending: VecDeque<(RequestId, Vec<DataSegment>)>,
    /// Every frame ever taken for sending.
    tx_log: Vec<Vec<DataSegment>>,
    /// Whether each of them was offloaded (pieces from the header on).
    tx_offload_log: Vec<bool>,
    /// Frames from the network waiting for a guest buffer.
    incoming: VecDeque<Vec<u8>>,
    /// Buffers lent, waiting for a frame.
    lent: VecDeque<(RequestId, Vec<DataSegment>)>,
    /// Most buffers the backend holds at once.
    room: usize,
    /// Every buffer ever lent.
    rx_log: Vec<Vec<DataSegment>>,
    done: VecDeque<NetCompletion>,
    busy: bool,
    refuse: bool,
    resets: u32,
    /// Completions for what was in flight at a reset, which a real backend may still
    /// deliver late.
    orphans: Vec<NetCompletion>,
}

impl FakeNet {
    fn new() -> Self {
        FakeNet {
            info: NetInfo {
                mac: MAC,
                link_up: true,
                tx_depth: 64,
                tx_segments_max: 4,
                offloads: NetOffloads::empty(),
            },
            sending: VecDeque::new(),
            tx_log: Vec::new(),
            tx_offload_log: Vec::new(),
            incoming: VecDeque::new(),
            lent: VecDeque::new(),
            room: 256,
            rx_log: Vec::new(),
            done: VecDeque::new(),
            busy: false,
            refuse: false,
            resets: 0,
            orphans: Vec::new(),
        }
    }
}

/// The device's promises about segments: inside guest RAM, none empty.
fn check_segments(segments: &[DataSegment]) -> u64 {
    for s in segments {
        assert!(s.len > 0, "empty segment passed on");
        assert!(
            s.offset + u64::from(s.len) <= RAM_SIZE as u64,
            "segment outside guest RAM: {s:?}"
        );
    }
    segments.iter().map(|s| u64::from(s.len)).sum()
}

impl NetBackend for FakeNet {
    fn info(&self) -> NetInfo {
        self.info
    }

    fn transmit(&mut self, id: RequestId, frame: &[DataSegment], offload: bool) -> Result<(), SubmitError> {
        if self.busy {
            return Err(SubmitError::Busy);
        }
        let len = check_segments(frame);
        if offload {
            assert!(
                !self.info.offloads.is_empty(),
                "offloaded frame without offloads offered"
            );
            let frame_len = len - u64::from(NET_HEADER_LEN);
            assert!(
                (u64::from(MIN_FRAME_LEN)..=u64::from(MAX_OFFLOAD_FRAME_LEN)).contains(&frame_len),
                "offloaded frame of {frame_len} bytes passed on"
            );
        } else {
            assert!(
                (u64::from(MIN_FRAME_LEN)..=u64::from(MAX_FRAME_LEN)).contains(&len),
                "frame of {len} bytes passed on"
            );
        }
        assert!(frame.len() <= usize::from(self.info.tx_segments_max), "too many pieces");
        assert!(
            self.sending.len() < usize::from(self.info.tx_depth),
            "more than tx_depth"
        );
        if self.refuse {
            return Err(SubmitError::Refused(BlockStatus::IoError));
        }
        self.tx_log.push(frame.to_vec());
        self.tx_offload_log.push(offload);
        self.sending.push_back((id, frame.to_vec()));
        Ok(())
    }

    fn rx_room(&mut self) -> usize {
        self.room.saturating_sub(self.lent.len())
    }

    fn rx_buffer(&mut self, id: RequestId, buffer: &[DataSegment]) {
        let room = check_segments(buffer);
        assert!(room >= u64::from(MAX_FRAME_LEN), "buffer of {room} bytes lent");
        assert!(self.lent.len() < self.room, "more buffers lent than the backend takes");
        self.rx_log.push(buffer.to_vec());
        self.lent.push_back((id, buffer.to_vec()));
    }

    fn poll(&mut self) -> Option<NetCompletion> {
        self.done.pop_front()
    }

    fn reset(&mut self) {
        self.resets += 1;
        let sent = self.sending.drain(..).map(|(id, _)| NetCompletion::Sent(id));
        self.orphans.extend(sent);
        let received = self
            .lent
            .drain(..)
            .map(|(id, _)| NetCompletion::Received { id, len: 60 });
        self.orphans.extend(received);
    }
}

type Driver = TestDriver<Net<FakeNet>>;

fn driver_with(fake: FakeNet) -> Driver {
    let mut d = TestDriver::new(Net::new(fake, RAM_BASE));
    d.init(VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS, 2, 128);
    d
}

fn driver() -> Driver {
    driver_with(FakeNet::new())
}

fn net(d: &mut Driver) -> &mut FakeNet {
    d.t.device_mut().backend_mut()
}

fn header(flags: u8, gso_type: u8) -> Vec<u8> {
    let mut h = vec![0u8; NET_HEADER_LEN as usize];
    h[0] = flags;
    h[1] = gso_type;
    h
}

/// An Ethernet frame of `len` bytes with a recognisable pattern.
fn frame(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The bytes of a frame given to the backend, read from guest RAM through its
/// segments (as the NIC's DMA would).
fn gather(d: &Driver, segments: &[DataSegment]) -> Vec<u8> {
    let mut out = Vec::new();
    for s in segments {
        out.extend(d.bytes(RAM_BASE + s.offset, s.len as usize));
    }
    out
}

/// Completes every frame being sent, in order, then polls.
fn send_all(d: &mut Driver) {
    while let Some((id, _)) = net(d).sending.pop_front() {
        net(d).done.push_back(NetCompletion::Sent(id));
    }
    d.poll();
}

/// Copies each waiting frame into the next lent buffer (the VCP's one copy), queues
/// the completions, then polls.
fn copy_all(d: &mut Driver) {
    d.poll();
    while !net(d).incoming.is_empty() && !net(d).lent.is_empty() {
        let data = net(d).incoming.pop_front().unwrap();
        let (id, segments) = net(d).lent.pop_front().unwrap();
        let mut rest = &data[..];
        for s in &segments {
            let n = rest.len().min(s.len as usize);
            d.mem.inner.write(RAM_BASE + s.offset, &rest[..n]).unwrap();
            rest = &rest[n..];
        }
        assert!(rest.is_empty(), "frame larger than the buffer");
        let len = data.len() as u32;
        net(d).done.push_back(NetCompletion::Received { id, len });
    }
    d.poll();
}

/// Posts a frame to transmit with the header in its own descriptor and the frame in
/// pieces of `pieces` bytes; returns the head and the buffer addresses.
fn post_tx(d: &mut Driver, data: &[u8], pieces: &[usize]) -> (u16, Vec<u64>) {
    let h = header(0, 0);
    let mut bufs = vec![Buf::Out(&h)];
    let mut at = 0;
    for &p in pieces {
        bufs.push(Buf::Out(&data[at..at + p]));
        at += p;
    }
    assert_eq!(at, data.len());
    d.post(TX, &bufs)
}

#[test]
fn config_space_and_features() {
    let mut d = TestDriver::new(Net::new(FakeNet::new(), RAM_BASE));
    assert_eq!(d.rd(reg::DEVICE_ID), NET_DEVICE_ID);
    assert_eq!(
        d.device_features(),
        VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | features::VERSION_1 | features::RING_EVENT_IDX,
        "no offloads, no mergeable buffers, no control queue"
    );
    // Linux reads the MAC a byte at a time and the status as a u16.
    let mac: Vec<u8> = (0..6).map(|i| d.t.read(reg::CONFIG + i, 1) as u8).collect();
    assert_eq!(mac, MAC);
    assert_eq!(d.t.read(reg::CONFIG + 6, 2), u32::from(VIRTIO_NET_S_LINK_UP));
    assert_eq!(d.t.read(reg::CONFIG + 4, 4), 0x0001_5634, "mac[4..6] and status");
    // Nothing past `status`; writes change nothing.
    assert_eq!(d.t.read(reg::CONFIG + 8, 2), 0);
    assert!(matches!(d.t.take_error(), Some(GuestError::ConfigAccess { .. })));
    assert!(!d.t.write(reg::CONFIG, 4, 0xffff_ffff, &mut d.mem));
    assert_eq!(d.t.read(reg::CONFIG, 1), u32::from(MAC[0]));
    // Link state comes from the backend.
    net(&mut d).info.link_up = false;
    assert_eq!(d.t.read(reg::CONFIG + 6, 2), 0);
    // Queues: receiveq1 and transmitq1, nothing else.
    d.wr(reg::QUEUE_SEL, 1);
    assert_eq!(d.rd(reg::QUEUE_NUM_MAX), u32::from(NET_QUEUE_SIZE));
    d.wr(reg::QUEUE_SEL, 2);
    assert_eq!(d.rd(reg::QUEUE_NUM_MAX), 0);
    // A driver taking only VERSION_1 (no MAC) is fine too.
    let mut d = TestDriver::new(Net::new(FakeNet::new(), RAM_BASE));
    d.init(0, 2, 16);
}

#[test]
fn transmit_across_three_descriptors_is_zero_copy() {
    let mut d = driver();
    let data = frame(98, 1);
    let (head, a) = post_tx(&mut d, &data, &[20, 78]);
    assert!(!d.notify(1), "nothing completes before the backend does");
    assert_eq!(d.used(TX), vec![]);
    let (_, segments) = net(&mut d).sending[0].clone();
    // The frame's own guest buffers, past the header: nothing was copied.
    assert_eq!(
        segments,
        vec![
            DataSegment {
                offset: a[1] - RAM_BASE,
                len: 20
            },
            DataSegment {
                offset: a[2] - RAM_BASE,
                len: 78
            },
        ]
    );
    assert_eq!(gather(&d, &segments), data);
    assert_eq!(d.t.device().tx_in_flight(), 1);
    send_all(&mut d);
    assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    assert_eq!(d.t.device().tx_in_flight(), 0);
    assert_eq!(d.t.device().stats().tx_frames, 1);
    assert!(d.irqs >= 1);
}

#[test]
fn header_may_share_a_descriptor_with_the_frame() {
    let mut d = driver();
    let data = frame(60, 7);
    // Linux pushes the header into the frame's headroom: one descriptor for both,
    // here followed by a second piece.
    let mut first = header(0, 0);
    first.extend_from_slice(&data[..40]);
    let (_, a) = d.post(TX, &[Buf::Out(&first), Buf::Out(&data[40..])]);
    d.notify(1);
    let (_, segments) = net(&mut d).sending[0].clone();
    assert_eq!(
        segments,
        vec![
            DataSegment {
                offset: a[0] + 12 - RAM_BASE,
                len: 40
            },
            DataSegment {
                offset: a[1] - RAM_BASE,
                len: 20
            },
        ]
    );
    assert_eq!(gather(&d, &segments), data);
    // The header split over two descriptors works as well.
    let h = header(0, 0);
    let (_, a) = d.post(TX, &[Buf::Out(&h[..5]), Buf::Out(&h[5..]), Buf::Out(&data)]);
    d.notify(1);
    let (_, segments) = net(&mut d).sending[1].clone();
    assert_eq!(
        segments,
        vec![DataSegment {
            offset: a[2] - RAM_BASE,
            len: 60
        }]
    );
}

#[test]
fn transmits_complete_out_of_order() {
    let mut d = driver();
    let mut heads = Vec::new();
    for i in 0..5u8 {
        let data = frame(64 + usize::from(i), i);
        heads.push(post_tx(&mut d, &data, &[data.len()]).0);
    }
    d.notify(1);
    assert_eq!(net(&mut d).sending.len(), 5);
    // Complete 3, 0, 4, 1, 2.
    let ids: Vec<RequestId> = net(&mut d).sending.iter().map(|s| s.0).collect();
    for k in [3usize, 0, 4, 1, 2] {
        net(&mut d).done.push_back(NetCompletion::Sent(ids[k]));
    }
    net(&mut d).sending.clear();
    d.poll();
    let used: Vec<u32> = d.used(TX).iter().map(|u| u.0).collect();
    let want: Vec<u32> = [3usize, 0, 4, 1, 2].iter().map(|&k| u32::from(heads[k])).collect();
    assert_eq!(used, want);
    assert_eq!(d.t.device().stats().tx_frames, 5);
    // A second completion for the same id is stale, not a second used element.
    net(&mut d).done.push_back(NetCompletion::Sent(ids[0]));
    d.poll();
    assert!(d.used(TX).is_empty());
    assert_eq!(d.t.device().stats().stale_completions, 1);
}

#[test]
fn frame_length_limits() {
    let mut d = driver();
    for (len, ok) in [
        (13usize, false),
        (14, true),
        (1514, true),
        (1515, false),
        (0, false),
        (9000, false),
    ] {
        let before = net(&mut d).tx_log.len();
        let data = frame(len, 3);
        let pieces: Vec<usize> = if len == 0 { vec![] } else { vec![len] };
        let (head, _) = post_tx(&mut d, &data, &pieces);
        d.notify(1);
        assert_eq!(net(&mut d).tx_log.len(), before + usize::from(ok), "frame of {len}");
        if !ok {
            assert_eq!(
                d.used(TX),
                vec![(u32::from(head), 0)],
                "refused frame {len} returned at once"
            );
        }
    }
    assert_eq!(d.t.device().stats().tx_bad_length, 4);
    assert_eq!(d.status() & NEEDS_RESET, 0, "a bad frame is not a protocol error");
    send_all(&mut d);
    assert_eq!(d.used(TX).len(), 2);
}

#[test]
fn offload_headers_are_refused() {
    let mut d = driver();
    let data = frame(100, 9);
    for (flags, gso) in [(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0u8), (0, 1), (0, 0x80)] {
        let h = header(flags, gso);
        let (head, _) = d.post(TX, &[Buf::Out(&h), Buf::Out(&data)]);
        d.notify(1);
        assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    }
    assert!(net(&mut d).tx_log.is_empty());
    assert_eq!(d.t.device().stats().tx_bad_header, 3);
    // Flags the device does not know (DATA_VALID) are ignored (virtio 1.2 §5.1.6.2.2).
    let h = header(2, 0);
    d.post(TX, &[Buf::Out(&h), Buf::Out(&data)]);
    d.notify(1);
    assert_eq!(net(&mut d).tx_log.len(), 1);
}

/// A fake offering `offloads`, with room for a Linux TSO frame's pieces.
fn offloading(offloads: NetOffloads) -> FakeNet {
    let mut fake = FakeNet::new();
    fake.info.offloads = offloads;
    fake.info.tx_segments_max = 24;
    fake
}

/// A driver that negotiated `extra` (besides MAC and STATUS) with a fake offering
/// both offloads.
fn offload_driver(extra: u64) -> Driver {
    let mut d = TestDriver::new(Net::new(offloading(NetOffloads::all()), RAM_BASE));
    d.init(VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | extra, 2, 128);
    d
}

/// Posts `header` + `data` (header in its own descriptor, the frame in pieces of
/// `pieces` bytes) and notifies; whether the backend took it, and the head.
fn send_with(d: &mut Driver, h: &[u8], data: &[u8], pieces: &[usize]) -> (bool, u16) {
    let before = net(d).tx_log.len();
    let mut bufs = vec![Buf::Out(h)];
    let mut at = 0;
    for &p in pieces {
        bufs.push(Buf::Out(&data[at..at + p]));
        at += p;
    }
    assert_eq!(at, data.len());
    let (head, _) = d.post(TX, &bufs);
    d.notify(1);
    (net(d).tx_log.len() > before, head)
}

/// A TSO header as Linux writes it for a TCP/IPv4 frame (headers of 66 bytes).
fn tso_header() -> Vec<u8> {
    let mut h = header(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4);
    h[2..4].copy_from_slice(&66u16.to_le_bytes()); // hdr_len
    h[4..6].copy_from_slice(&1448u16.to_le_bytes()); // gso_size
    h[6..8].copy_from_slice(&34u16.to_le_bytes()); // csum_start
    h[8..10].copy_from_slice(&16u16.to_le_bytes()); // csum_offset
    h
}

#[test]
fn offloads_are_offered_only_when_the_backend_does_them() {
    let base = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | features::VERSION_1 | features::RING_EVENT_IDX;
    for (offloads, want) in [
        (NetOffloads::empty(), 0),
        (NetOffloads::CSUM, VIRTIO_NET_F_CSUM),
        // TSO without checksum offload cannot be offered (HOST_TSO4 requires CSUM).
        (NetOffloads::TSO4, 0),
        (NetOffloads::all(), VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4),
    ] {
        let mut d = TestDriver::new(Net::new(offloading(offloads), RAM_BASE));
        assert_eq!(d.device_features(), base | want, "{offloads:?}");
        // A driver cannot take an offload not offered.
        let extra = VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4;
        assert_eq!(d.negotiate(features::VERSION_1 | extra), want == extra, "{offloads:?}");
    }
    // HOST_TSO4 without the CSUM it requires is refused even when both are offered.
    let mut d = TestDriver::new(Net::new(offloading(NetOffloads::all()), RAM_BASE));
    assert!(!d.negotiate(features::VERSION_1 | VIRTIO_NET_F_HOST_TSO4));
    assert_eq!(d.t.device().negotiated_features(), 0);
    assert!(d.negotiate(features::VERSION_1 | VIRTIO_NET_F_CSUM));
    assert_eq!(
        d.t.device().negotiated_features(),
        features::VERSION_1 | VIRTIO_NET_F_CSUM
    );
    // A reset forgets what was negotiated.
    d.wr(reg::STATUS, 0);
    assert_eq!(d.t.device().negotiated_features(), 0);
}

#[test]
fn offload_headers_need_their_feature_negotiated() {
    let data = frame(100, 9);
    let csum = header(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_NONE);
    let tso = tso_header();
    // Offered but not negotiated: both refused, returned at once, counted.
    let mut d = offload_driver(0);
    for h in [&csum, &tso] {
        let (taken, head) = send_with(&mut d, h, &data, &[100]);
        assert!(!taken);
        assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    }
    assert_eq!(d.t.device().stats().tx_bad_header, 2);
    // CSUM negotiated: NEEDS_CSUM goes to the backend header first; TSO does not.
    let mut d = offload_driver(VIRTIO_NET_F_CSUM);
    let (taken, _) = send_with(&mut d, &csum, &data, &[40, 60]);
    assert!(taken);
    assert_eq!(net(&mut d).tx_offload_log, vec![true]);
    let segments = net(&mut d).tx_log[0].clone();
    assert_eq!(segments.len(), 3, "header, then the two pieces");
    assert_eq!(gather(&d, &segments), [csum.clone(), data.clone()].concat());
    assert!(!send_with(&mut d, &tso, &data, &[100]).0);
    assert_eq!(d.t.device().stats().tx_bad_header, 1);
    // A plain frame still goes as the frame alone.
    assert!(send_with(&mut d, &header(0, 0), &data, &[100]).0);
    assert_eq!(net(&mut d).tx_offload_log, vec![true, false]);
    let plain = net(&mut d).tx_log[1].clone();
    assert_eq!(gather(&d, &plain), data);
    // Without GSO the frame keeps the MTU limit, offload or not.
    assert!(!send_with(&mut d, &csum, &frame(1515, 1), &[1515]).0);
    assert_eq!(d.t.device().stats().tx_bad_length, 1);
    send_all(&mut d);
    let s = d.t.device().stats();
    assert_eq!((s.tx_frames, s.tx_offloaded, s.tx_tso), (2, 1, 0));
    // Both negotiated: TCPV4 with NEEDS_CSUM goes.
    let mut d = offload_driver(VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4);
    assert!(send_with(&mut d, &tso, &data, &[100]).0);
    assert!(send_with(&mut d, &csum, &data, &[100]).0);
    // TCPV4 without NEEDS_CSUM (virtio 1.2 §5.1.6.2.1), and GSO types not offered:
    // UDP (3), TCPV6 (4), UDP_L4 (5), the ECN bit (0x80), with and without TCPV4.
    let mut no_csum = tso.clone();
    no_csum[0] = 0;
    let mut refused = vec![no_csum];
    for gso in [3u8, 4, 5, 0x80, 0x81, 0xff] {
        refused.push(header(VIRTIO_NET_HDR_F_NEEDS_CSUM, gso));
    }
    for h in &refused {
        let (taken, head) = send_with(&mut d, h, &data, &[100]);
        assert!(!taken, "header {h:?}");
        assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    }
    assert_eq!(d.t.device().stats().tx_bad_header, refused.len() as u64);
    assert_eq!(d.status() & NEEDS_RESET, 0, "a refused header is not a protocol error");
    send_all(&mut d);
    let s = d.t.device().stats();
    assert_eq!((s.tx_frames, s.tx_offloaded, s.tx_tso), (2, 2, 1));
}

#[test]
fn a_64k_tso_frame_in_19_descriptors_reaches_the_backend_header_first() {
    let mut d = offload_driver(VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4);
    // As Linux builds it: the header alone, the linear part (Ethernet, IP and TCP
    // headers), then 17 page fragments; an IPv4 packet of 65535 bytes.
    let len = 14 + 65535;
    let data = frame(len, 5);
    let mut pieces = vec![66];
    let frag = (len - 66) / 17;
    pieces.extend(std::iter::repeat_n(frag, 16));
    pieces.push(len - 66 - 16 * frag);
    let h = tso_header();
    let (taken, head) = send_with(&mut d, &h, &data, &pieces);
    assert!(taken);
    assert_eq!(net(&mut d).tx_offload_log, vec![true]);
    let segments = net(&mut d).tx_log[0].clone();
    assert_eq!(segments.len(), 19);
    assert_eq!(segments[0].len, NET_HEADER_LEN, "the header first");
    assert_eq!(check_segments(&segments), u64::from(NET_HEADER_LEN) + len as u64);
    assert_eq!(gather(&d, &segments), [h.clone(), data].concat());
    assert!(d.used(TX).is_empty(), "in flight until the backend is done");
    send_all(&mut d);
    assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    let s = d.t.device().stats();
    assert_eq!((s.tx_frames, s.tx_offloaded, s.tx_tso), (1, 1, 1));
    // The longest offloaded frame goes; one byte more does not, nor a plain frame
    // of the same size.
    let max = MAX_OFFLOAD_FRAME_LEN as usize;
    assert!(send_with(&mut d, &h, &frame(max, 1), &[max / 2, max - max / 2]).0);
    assert!(!send_with(&mut d, &h, &frame(max + 1, 1), &[max / 2, max + 1 - max / 2]).0);
    assert!(!send_with(&mut d, &header(0, 0), &frame(max, 1), &[max / 2, max - max / 2]).0);
    assert_eq!(d.t.device().stats().tx_bad_length, 2);
    // The header's descriptor counts as a piece: 1 + 23 is the backend's 24, 1 + 24
    // is one too many (refused, counted).
    assert!(send_with(&mut d, &h, &frame(8 * 23, 2), &[8; 23]).0);
    assert!(!send_with(&mut d, &h, &frame(8 * 24, 2), &[8; 24]).0);
    assert_eq!(d.t.device().stats().tx_too_many_segments, 1);
}

#[test]
fn hostile_offload_chains_do_not_break_the_device() {
    let mut d = offload_driver(VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4);
    let h = tso_header();
    let data = frame(3000, 4);
    // The header split over descriptors (5 + 7 bytes), sharing its last one with the
    // frame: read across them, handed over from its first byte.
    let mut tail = h[5..].to_vec();
    tail.extend_from_slice(&data[..1000]);
    let (_, a) = d.post(TX, &[Buf::Out(&h[..5]), Buf::Out(&tail), Buf::Out(&data[1000..])]);
    d.notify(1);
    assert_eq!(net(&mut d).tx_offload_log, vec![true]);
    let segments = net(&mut d).tx_log[0].clone();
    assert_eq!(segments[0].offset, a[0] - RAM_BASE);
    assert_eq!(gather(&d, &segments), [h.clone(), data.clone()].concat());
    // Lengths that add up past any limit (descriptors of up to 4 GiB - 1 at the top
    // of the address space, and overflowing the guest's RAM): refused or a protocol
    // error, never a panic, never a range outside guest RAM to the backend.
    let hdr = d.alloc(12);
    d.mem.inner.write(hdr, &h).unwrap();
    for (addr, len) in [
        (RAM_BASE, u32::MAX),
        (u64::MAX - 100, 4096),
        (RAM_BASE + RAM_SIZE as u64 - 10, 4096),
        // Two 32 KiB pieces after the header: a 65536-byte frame the device takes
        // (the backend checks what is in it).
        (d.alloc(0x8000), 0x8000),
    ] {
        let first = d.queues[TX].next_desc;
        d.write_desc(TX, first, hdr, 12, VIRTQ_DESC_F_NEXT, (first + 1) % 128);
        d.write_desc(TX, (first + 1) % 128, addr, len, VIRTQ_DESC_F_NEXT, (first + 2) % 128);
        d.write_desc(TX, (first + 2) % 128, addr, len, 0, 0);
        d.queues[TX].next_desc = (first + 3) % 128;
        d.make_available(TX, first);
        d.notify(1);
        if d.status() & NEEDS_RESET != 0 {
            assert!(d.t.take_error().expect("error recorded").is_fatal());
            d.init(VIRTIO_NET_F_MAC | VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4, 2, 128);
        }
    }
    assert_eq!(net(&mut d).tx_log.len(), 2, "only the well-formed frames went");
    assert_eq!(d.t.device().stats().tx_bad_length, 0);
}

#[test]
fn too_many_segments_are_refused() {
    let mut d = driver();
    let data = frame(100, 2);
    let (head, _) = post_tx(&mut d, &data, &[20, 20, 20, 20, 20]);
    d.notify(1);
    assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    assert_eq!(d.t.device().stats().tx_too_many_segments, 1);
    assert!(net(&mut d).tx_log.is_empty());
    // tx_segments_max (4) pieces are fine; zero-length descriptors do not count.
    let h = header(0, 0);
    d.post(
        TX,
        &[
            Buf::Out(&h),
            Buf::Out(&data[..25]),
            Buf::Out(&[]),
            Buf::Out(&data[25..50]),
            Buf::Out(&data[50..75]),
            Buf::Out(&data[75..]),
        ],
    );
    d.notify(1);
    assert_eq!(net(&mut d).tx_log.len(), 1);
    assert_eq!(net(&mut d).tx_log[0].len(), 4);
    let segments = net(&mut d).tx_log[0].clone();
    assert_eq!(gather(&d, &segments), data);
}

#[test]
fn transmit_depth_busy_and_refusal() {
    let mut fake = FakeNet::new();
    fake.info.tx_depth = 2;
    let mut d = driver_with(fake);
    for i in 0..4 {
        post_tx(&mut d, &frame(60, i), &[60]);
    }
    d.notify(1);
    assert_eq!(net(&mut d).sending.len(), 2, "no more than the backend's depth");
    send_all(&mut d);
    assert_eq!(net(&mut d).tx_log.len(), 4, "completions make room");
    // A busy backend holds the queue; the frame goes out once it has room.
    net(&mut d).busy = true;
    send_all(&mut d);
    post_tx(&mut d, &frame(60, 9), &[60]);
    d.notify(1);
    assert_eq!(d.t.device().tx_in_flight(), 1, "stalled frame held");
    assert_eq!(net(&mut d).tx_log.len(), 4);
    net(&mut d).busy = false;
    d.poll();
    assert_eq!(net(&mut d).tx_log.len(), 5);
    send_all(&mut d);
    assert_eq!(d.used(TX).len(), 5);
    // A refusing backend (e.g. link down): the frame is returned and counted.
    net(&mut d).refuse = true;
    let (head, _) = post_tx(&mut d, &frame(60, 1), &[60]);
    d.notify(1);
    assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    assert_eq!(d.t.device().stats().tx_backend_refused, 1);
    assert_eq!(d.t.device().tx_in_flight(), 0);
}

/// The header the device writes into a receive buffer.
fn rx_header() -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[10] = 1; // num_buffers = 1
    h
}

#[test]
fn receive_fills_a_posted_buffer() {
    let mut d = driver();
    let (head, a) = d.post(RX, &[Buf::In(MIN_RX_BUFFER + 4)]);
    d.notify(0);
    // Lent at once, before any frame: the backend holds it for the next one.
    assert_eq!(net(&mut d).lent.len(), 1);
    let data = frame(342, 5);
    net(&mut d).incoming.push_back(data.clone());
    d.poll();
    // The backend got the buffer past the header room.
    assert_eq!(
        net(&mut d).rx_log,
        vec![vec![DataSegment {
            offset: a[0] + 12 - RAM_BASE,
            len: MIN_RX_BUFFER + 4 - 12
        }]]
    );
    assert_eq!(d.t.device().rx_lent(), 1);
    assert!(d.used(RX).is_empty(), "returned only once the frame is in");
    copy_all(&mut d);
    assert_eq!(d.used(RX), vec![(u32::from(head), 12 + 342)]);
    assert_eq!(d.bytes(a[0], 12), rx_header());
    assert_eq!(d.bytes(a[0] + 12, 342), data);
    assert_eq!(d.t.device().stats().rx_frames, 1);
    assert_eq!(d.t.device().rx_lent(), 0);
}

#[test]
fn receive_into_a_buffer_split_over_descriptors() {
    let mut d = driver();
    // Header split 5 + 7, then the frame area in two pieces.
    let (head, a) = d.post(RX, &[Buf::In(5), Buf::In(7), Buf::In(1000), Buf::In(600)]);
    let data = frame(1514, 8);
    net(&mut d).incoming.push_back(data.clone());
    d.notify(0);
    assert_eq!(
        net(&mut d).rx_log[0],
        vec![
            DataSegment {
                offset: a[2] - RAM_BASE,
                len: 1000
            },
            DataSegment {
                offset: a[3] - RAM_BASE,
                len: 600
            },
        ]
    );
    copy_all(&mut d);
    assert_eq!(d.used(RX), vec![(u32::from(head), 12 + 1514)]);
    let mut hdr = d.bytes(a[0], 5);
    hdr.extend(d.bytes(a[1], 7));
    assert_eq!(hdr, rx_header());
    let mut got = d.bytes(a[2], 1000);
    got.extend(d.bytes(a[3], 514));
    assert_eq!(got, data);
}

#[test]
fn receive_lends_only_while_the_backend_takes_buffers() {
    let mut d = driver();
    net(&mut d).room = 2;
    let heads: Vec<(u16, Vec<u64>)> = (0..3).map(|_| d.post(RX, &[Buf::In(2048)])).collect();
    d.notify(0);
    assert_eq!(d.t.device().rx_lent(), 2, "the third waits in the queue");
    // A frame fills the first; its buffer returns and the third is lent.
    net(&mut d).incoming.push_back(frame(70, 1));
    copy_all(&mut d);
    assert_eq!(d.used(RX), vec![(u32::from(heads[0].0), 82)]);
    assert_eq!(d.bytes(heads[0].1[0] + 12, 70), frame(70, 1));
    d.poll();
    assert_eq!(d.t.device().rx_lent(), 2);
    assert_eq!(net(&mut d).rx_log.len(), 3);
    // Length 0 returns a buffer unused (a backend giving buffers back).
    let (id, _) = net(&mut d).lent.pop_front().unwrap();
    net(&mut d).done.push_back(NetCompletion::Received { id, len: 0 });
    d.poll();
    assert_eq!(d.used(RX), vec![(u32::from(heads[1].0), 0)]);
    assert_eq!(d.t.device().stats().rx_unused, 1);
    assert_eq!(d.status() & NEEDS_RESET, 0);
}

#[test]
fn small_receive_buffers_are_returned_unused() {
    let mut d = driver();
    let (small, _) = d.post(RX, &[Buf::In(MIN_RX_BUFFER - 1)]);
    let (good, a) = d.post(RX, &[Buf::In(MIN_RX_BUFFER)]);
    net(&mut d).incoming.push_back(frame(100, 4));
    d.poll();
    copy_all(&mut d);
    assert_eq!(d.used(RX), vec![(u32::from(small), 0), (u32::from(good), 112)]);
    assert_eq!(d.bytes(a[0] + 12, 100), frame(100, 4));
    assert_eq!(d.t.device().stats().rx_small_buffers, 1);
    assert_eq!(d.status() & NEEDS_RESET, 0);
}

#[test]
fn receive_lengths_that_do_not_fit_return_the_buffer_unused() {
    let mut d = driver();
    for len in [MIN_RX_BUFFER - 12 + 1, 13, 0, u32::MAX] {
        let (head, a) = d.post(RX, &[Buf::In(MIN_RX_BUFFER)]);
        d.mem.inner.write(a[0], &[0xee; 12]).unwrap();
        net(&mut d).incoming.push_back(frame(60, 0));
        d.poll();
        let (id, _) = net(&mut d).lent.pop_front().unwrap();
        net(&mut d).done.push_back(NetCompletion::Received { id, len });
        d.poll();
        assert_eq!(d.used(RX), vec![(u32::from(head), 0)], "length {len}");
        assert_eq!(d.bytes(a[0], 12), vec![0xee; 12], "no header written");
    }
    // Length 0 is "unused", the others impossible.
    assert_eq!(d.t.device().stats().rx_bad_length, 3);
    assert_eq!(d.t.device().stats().rx_unused, 1);
    assert_eq!(d.t.device().stats().rx_frames, 0);
}

#[test]
fn completions_after_a_reset_are_dropped() {
    let mut d = driver();
    post_tx(&mut d, &frame(60, 0), &[60]);
    d.notify(1);
    let (rx_head, a) = d.post(RX, &[Buf::In(2048)]);
    d.mem.inner.write(a[0], &[0x77; 12]).unwrap();
    net(&mut d).incoming.push_back(frame(60, 1));
    d.poll();
    assert_eq!((d.t.device().tx_in_flight(), d.t.device().rx_lent()), (1, 1));
    // The driver resets and sets up again (new rings, the same heads).
    let resets = net(&mut d).resets;
    d.init(VIRTIO_NET_F_MAC, 2, 128);
    assert_eq!(net(&mut d).resets, resets + 1, "the backend is told");
    assert_eq!((d.t.device().tx_in_flight(), d.t.device().rx_lent()), (0, 0));
    let writes = d.mem.writes;
    // The backend completes both late.
    let orphans = std::mem::take(&mut net(&mut d).orphans);
    assert_eq!(orphans.len(), 2);
    net(&mut d).done.extend(orphans);
    d.poll();
    assert_eq!(d.mem.writes, writes, "nothing written for the old rings");
    assert!(d.used(TX).is_empty() && d.used(RX).is_empty());
    assert_eq!(d.bytes(a[0], 12), vec![0x77; 12]);
    assert_eq!(d.t.device().stats().stale_completions, 2);
    // The same heads work on the new rings.
    let (head, _) = d.post(RX, &[Buf::In(2048)]);
    assert_eq!(head, rx_head);
    net(&mut d).incoming.push_back(frame(60, 2));
    d.poll();
    copy_all(&mut d);
    assert_eq!(d.used(RX), vec![(u32::from(head), 72)]);
}

// ---- a misbehaving driver ----

/// Checks the device needs a reset because of `expect`, the backend saw nothing from
/// the broken chain, and a reset brings the device back.
fn expect_needs_reset(d: &mut Driver, expect: impl Fn(&GuestError) -> bool) {
    assert_eq!(d.rd(reg::INTERRUPT_STATUS) & 2, 2, "config change raised");
    let err = d.fatal_error();
    assert!(expect(&err), "unexpected error {err:?}");
    assert!(err.is_fatal());
    assert!(net(d).tx_log.is_empty(), "the backend got a frame from a broken chain");
    assert!(net(d).rx_log.is_empty(), "the backend got a buffer from a broken chain");
    // While it needs a reset, the device ignores the queues.
    let writes = d.mem.writes;
    post_tx(d, &frame(60, 0), &[60]);
    d.notify(1);
    assert_eq!(d.mem.writes, writes);
    assert!(net(d).tx_log.is_empty());
    // A reset brings it back.
    d.init(VIRTIO_NET_F_MAC, 2, 128);
    net(d).incoming.clear();
    let data = frame(60, 3);
    post_tx(d, &data, &[60]);
    d.notify(1);
    let segments = net(d).tx_log[0].clone();
    assert_eq!(gather(d, &segments), data);
}

fn bad_chain(reason: &'static str) -> impl Fn(&GuestError) -> bool {
    move |e| matches!(e, GuestError::BadNetChain { reason: r, .. } if r.contains(reason))
}

#[test]
fn transmit_header_too_short() {
    let mut d = driver();
    d.post(TX, &[Buf::Out(&[0u8; 11])]);
    assert!(d.notify(1));
    expect_needs_reset(&mut d, bad_chain("header"));
}

#[test]
fn zero_length_descriptors_only() {
    let mut d = driver();
    d.post(TX, &[Buf::Out(&[]), Buf::Out(&[])]);
    assert!(d.notify(1));
    expect_needs_reset(&mut d, bad_chain("header"));

    let mut d = driver();
    d.post(RX, &[Buf::In(0)]);
    net(&mut d).incoming.push_back(frame(60, 0));
    assert!(d.poll());
    expect_needs_reset(&mut d, bad_chain("header"));
}

#[test]
fn writable_buffer_in_a_transmit_chain() {
    let mut d = driver();
    let h = header(0, 0);
    d.post(TX, &[Buf::Out(&h), Buf::Out(&frame(60, 0)), Buf::In(64)]);
    assert!(d.notify(1));
    expect_needs_reset(&mut d, bad_chain("device-writable"));
}

#[test]
fn readable_buffer_in_a_receive_chain() {
    let mut d = driver();
    d.post(RX, &[Buf::Out(&[0u8; 12]), Buf::In(2048)]);
    net(&mut d).incoming.push_back(frame(60, 0));
    assert!(d.poll());
    expect_needs_reset(&mut d, bad_chain("device-readable"));
}

#[test]
fn receive_buffer_shorter_than_the_header() {
    let mut d = driver();
    d.post(RX, &[Buf::In(4), Buf::In(7)]);
    net(&mut d).incoming.push_back(frame(60, 0));
    assert!(d.poll());
    expect_needs_reset(&mut d, bad_chain("header"));
}

#[test]
fn descriptor_loop() {
    let mut d = driver();
    let buf = d.alloc(64);
    d.write_desc(TX, 0, buf, 64, VIRTQ_DESC_F_NEXT, 1);
    d.write_desc(TX, 1, buf, 64, VIRTQ_DESC_F_NEXT, 2);
    d.write_desc(TX, 2, buf, 64, VIRTQ_DESC_F_NEXT, 0);
    d.make_available(TX, 0);
    assert!(d.notify(1));
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::ChainTooLong { queue: 1 }));
}

#[test]
fn buffers_outside_guest_ram() {
    for (q, addr) in [
        (TX, RAM_BASE - 0x1000),
        (TX, RAM_BASE + RAM_SIZE as u64 - 30),
        (TX, u64::MAX - 8),
        (RX, 0),
        (RX, RAM_BASE + RAM_SIZE as u64 - 100),
    ] {
        let mut d = driver();
        let flags = if q == RX { VIRTQ_DESC_F_WRITE } else { 0 };
        if q == TX {
            let h = d.alloc(12);
            d.write_desc(TX, 0, h, 12, VIRTQ_DESC_F_NEXT, 1);
            d.write_desc(TX, 1, addr, 60, flags, 0);
        } else {
            d.write_desc(RX, 0, addr, 2048, flags, 0);
            net(&mut d).incoming.push_back(frame(60, 0));
        }
        d.make_available(q, 0);
        let irq = if q == TX { d.notify(1) } else { d.notify(0) };
        assert!(irq, "queue {q} addr {addr:#x}");
        expect_needs_reset(&mut d, |e| {
            matches!(e, GuestError::Memory(_) | GuestError::BufferOverflow { .. })
        });
    }
}

#[test]
fn avail_index_jump() {
    let mut d = driver();
    let avail = d.queues[TX].avail;
    d.mem.inner.write_u16(avail + 2, 129).unwrap();
    assert!(d.notify(1));
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::AvailIndexJump { .. }));
}

#[test]
fn transmit_head_reused_while_in_flight() {
    let mut d = driver();
    let (head, _) = post_tx(&mut d, &frame(60, 0), &[60]);
    d.notify(1);
    d.make_available(TX, head);
    assert!(d.notify(1));
    assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    assert!(bad_chain("in flight")(&d.t.take_error().unwrap()));
    assert_eq!(net(&mut d).tx_log.len(), 1, "the reused head was not sent twice");
}

#[test]
fn receive_head_reused_while_lent() {
    let mut d = driver();
    let (head, _) = d.post(RX, &[Buf::In(2048)]);
    net(&mut d).incoming.push_back(frame(60, 0));
    d.poll();
    d.make_available(RX, head);
    net(&mut d).incoming.push_back(frame(60, 1));
    assert!(d.poll());
    assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    assert!(bad_chain("in flight")(&d.t.take_error().unwrap()));
    assert_eq!(net(&mut d).rx_log.len(), 1, "the reused head was not lent twice");
}

#[test]
fn random_chains_and_completions_never_break_the_device() {
    let (mut sent, mut received, mut broken) = (0u64, 0u64, 0u32);
    let (mut offloaded, mut tso) = (0u64, 0u64);
    let mut kinds = std::collections::BTreeSet::new();
    for seed in 0..500u64 {
        let mut rng = Rng(seed);
        let mut fake = FakeNet::new();
        fake.info.tx_depth = 1 + rng.below(8) as u16;
        fake.info.tx_segments_max = 1 + rng.below(4) as u16;
        // Offloads from a stream of their own (the rest stays as it was).
        let mut orng = Rng(!seed);
        fake.info.offloads = NetOffloads::from_bits_truncate(orng.below(4) as u8);
        // The driver takes what is offered, or not.
        let offload_features = if orng.below(2) == 0 {
            VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4
        } else {
            0
        };
        let mut d = TestDriver::new(Net::new(fake, RAM_BASE));
        let offered = d.device_features() & offload_features;
        d.init(VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | offered, 2, 128);
        for _ in 0..60 {
            if d.status() & NEEDS_RESET != 0 {
                broken += 1;
                let err = d.t.take_error().expect("error recorded");
                assert!(err.is_fatal(), "seed {seed}: {err:?}");
                let kind = format!("{err:?}");
                kinds.insert(kind.split([' ', '(']).next().unwrap_or_default().to_string());
                d.init(VIRTIO_NET_F_MAC | offered, 2, 128);
            }
            match rng.below(8) {
                0 => {
                    // A well-formed transmit chain of random length and pieces.
                    let mut len = [10usize, 14, 60, 600, 1514, 1515][rng.below(6) as usize];
                    let seed = rng.next() as u8;
                    let n = 1 + rng.below(3) as usize;
                    // A quarter of them ask for an offload (negotiated or not, known
                    // or not), some for a TSO frame.
                    let h = match orng.below(8) {
                        0 => {
                            len = [len, 40000][orng.below(2) as usize];
                            tso_header()
                        }
                        1 => header(VIRTIO_NET_HDR_F_NEEDS_CSUM, 0),
                        2 => header(orng.next() as u8, orng.next() as u8),
                        _ => header(0, 0),
                    };
                    let data = frame(len, seed);
                    let mut pieces = vec![len / n; n];
                    pieces[0] += len % n;
                    send_with(&mut d, &h, &data, &pieces);
                }
                1 => {
                    // A well-formed receive buffer, sometimes small, and a frame.
                    let room = [MIN_RX_BUFFER, 2048, 100][rng.below(3) as usize];
                    d.post(RX, &[Buf::In(room)]);
                    if rng.below(2) == 0 {
                        net(&mut d).incoming.push_back(frame(14 + rng.below(1500) as usize, 0));
                    }
                    d.notify(0);
                }
                2 => {
                    // A random chain of up to 5 descriptors on either queue.
                    let q = rng.below(2) as usize;
                    let n = 1 + rng.below(5) as u16;
                    let first = d.queues[q].next_desc;
                    for k in 0..n {
                        let i = (first + k) % 128;
                        let len = [0u32, 1, 11, 12, 13, 60, 1514, 1526, 4096][rng.below(9) as usize];
                        let addr = if rng.below(20) == 0 { rng.next() } else { d.alloc(len) };
                        let mut flags = if rng.below(2) == 0 { VIRTQ_DESC_F_WRITE } else { 0 };
                        let next = if rng.below(10) == 0 {
                            rng.below(200) as u16
                        } else {
                            (i + 1) % 128
                        };
                        if k + 1 < n {
                            flags |= VIRTQ_DESC_F_NEXT;
                        }
                        d.write_desc(q, i, addr, len, flags, next);
                    }
                    d.queues[q].next_desc = (first + n) % 128;
                    d.make_available(q, first);
                    if rng.below(2) == 0 {
                        net(&mut d).incoming.push_back(frame(60, 1));
                    }
                    d.notify(q as u32);
                }
                3 => send_all(&mut d),
                4 => copy_all(&mut d),
                5 => {
                    // Bogus completions.
                    let id = RequestId(rng.next() as u32);
                    let c = if rng.below(2) == 0 {
                        NetCompletion::Sent(id)
                    } else {
                        NetCompletion::Received {
                            id,
                            len: rng.next() as u32,
                        }
                    };
                    net(&mut d).done.push_back(c);
                    d.poll();
                }
                6 if rng.below(2) == 0 => {
                    // Late completions from before a reset.
                    let orphans = std::mem::take(&mut net(&mut d).orphans);
                    net(&mut d).done.extend(orphans);
                    d.poll();
                }
                6 => {
                    net(&mut d).busy = rng.below(3) == 0;
                    d.poll();
                }
                _ => {
                    if rng.below(4) == 0 {
                        d.init(VIRTIO_NET_F_MAC | offered, 2, 128);
                    } else {
                        d.poll();
                    }
                }
            }
            let depth = usize::from(net(&mut d).info.tx_depth);
            assert!(d.t.device().tx_in_flight() <= depth, "seed {seed}");
            assert!(d.t.device().rx_lent() <= 128, "seed {seed}");
        }
        let s = d.t.device().stats();
        sent += s.tx_frames;
        received += s.rx_frames;
        offloaded += s.tx_offloaded;
        tso += s.tx_tso;
    }
    eprintln!(
        "{sent} sent ({offloaded} offloaded, {tso} TSO), {received} received, {broken} broken, error kinds {kinds:?}"
    );
    // The random guest got real work done, not only errors, and broke the device in
    // many ways.
    assert!(
        sent > 500 && received > 300 && broken > 50,
        "{sent} sent, {received} received, {broken} broken"
    );
    assert!(offloaded > 40 && tso > 20, "{offloaded} offloaded, {tso} TSO");
    assert!(kinds.len() >= 5, "too few error kinds: {kinds:?}");
}
