//! Engine tests on the host against a fake NIC: demultiplexing by destination MAC,
//! group frames, local delivery, spoofed source MACs, zero-copy transmit with the
//! checked header, round robin, bounded receive, hostile clients.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use zerocopy::IntoBytes;

use vcpos_net_protocol::{Client, ControlLayout, TxStatus, BUF_SIZE};
use vcpos_net_protocol::{GSO_TCPV4, OFFLOAD_F_NEEDS_CSUM};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{SharedMemory, PRODUCER_INDEX_OFFSET, SLOTS_OFFSET};
use vcpos_vcp_net::testing::{self, rfc1071, tcp_checksums_ok};
use vcpos_vcp_net::{
    ClientRegions, Config, Engine, Nic, NicError, NoNic, TxRequest, MAX_CLIENTS, RING_CAPACITY, RX_BUDGET,
};

const BUFFERS: u32 = 32;
const EXTERNAL: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const BROADCAST: [u8; 6] = [0xff; 6];
const MULTICAST: [u8; 6] = [0x01, 0x00, 0x5e, 0, 0, 1];

fn mac(i: usize) -> [u8; 6] {
    [0x02, 0, 0, 0, 0, i as u8 + 1]
}

/// A NIC that "DMAs" a frame when it completes it (as a device reads its buffers
/// some time after the request), from the client data regions it was given.
struct FakeNic {
    data: Vec<FakeMemory>,
    slots: usize,
    next_token: u16,
    in_flight: VecDeque<(u16, TxRequest)>,
    completions: VecDeque<(u16, bool)>,
    /// Frames on the wire: (client, bytes).
    wire: Vec<(usize, Vec<u8>)>,
    /// Requests in the order the engine made them.
    requests: Vec<TxRequest>,
    rx: VecDeque<Vec<u8>>,
}

impl FakeNic {
    /// A NIC with `slots` transmit slots that reads the client data regions `data`.
    fn new(data: &[FakeMemory], slots: usize) -> FakeNic {
        FakeNic {
            data: data.to_vec(),
            slots,
            next_token: 0,
            in_flight: VecDeque::new(),
            completions: VecDeque::new(),
            wire: Vec::new(),
            requests: Vec::new(),
            rx: VecDeque::new(),
        }
    }

    /// Completes the oldest `n` transmissions (reading the client buffers now).
    fn complete(&mut self, n: usize, ok: bool) {
        for _ in 0..n {
            let Some((token, req)) = self.in_flight.pop_front() else {
                return;
            };
            let mut frame = req.header().to_vec();
            for &(offset, len) in req.payload() {
                let mut payload = vec![0; len as usize];
                self.data[req.client].read_bytes(offset as usize, &mut payload).unwrap();
                frame.extend_from_slice(&payload);
            }
            if ok {
                self.wire.push((req.client, frame));
            }
            self.completions.push_back((token, ok));
        }
    }
}

impl Nic for FakeNic {
    fn max_in_flight(&self) -> usize {
        self.slots
    }
    fn transmit(&mut self, req: &TxRequest) -> Result<u16, NicError> {
        if self.in_flight.len() >= self.slots {
            return Err(NicError::Full);
        }
        self.next_token = self.next_token.wrapping_add(1);
        self.in_flight.push_back((self.next_token, *req));
        self.requests.push(*req);
        Ok(self.next_token)
    }
    fn next_tx_completion(&mut self) -> Option<(u16, bool)> {
        self.completions.pop_front()
    }
    fn receive<R>(&mut self, deliver: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let f = self.rx.pop_front()?;
        Some(deliver(&f))
    }
}

struct Net<N> {
    engine: Engine<FakeMemory, N>,
    clients: Vec<Client<FakeMemory>>,
    controls: Vec<FakeMemory>,
    datas: Vec<FakeMemory>,
}

fn regions(n: usize) -> (Config, Vec<FakeMemory>, Vec<FakeMemory>) {
    let mut config = Config::default();
    let size = ControlLayout::new(RING_CAPACITY).unwrap().size();
    let (mut controls, mut datas) = (Vec::new(), Vec::new());
    for i in 0..n {
        config.clients[i] = Some(mac(i));
        config.rings[i] = RING_CAPACITY;
        controls.push(FakeMemory::new(size));
        datas.push(FakeMemory::new((BUFFERS * BUF_SIZE) as usize));
    }
    (config, controls, datas)
}

fn build<N: Nic>(n: usize, nic: impl FnOnce(&[FakeMemory]) -> N) -> Net<N> {
    let (config, controls, datas) = regions(n);
    let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    for i in 0..n {
        r[i] = Some(ClientRegions {
            control: controls[i].clone(),
            data: datas[i].clone(),
        });
    }
    let engine = Engine::new(nic(&datas), &config, r).unwrap();
    let clients = (0..n)
        .map(|i| {
            let mut c = Client::new(controls[i].clone(), datas[i].clone(), RING_CAPACITY).unwrap();
            assert_eq!(c.connect().unwrap().mac, mac(i));
            c
        })
        .collect();
    Net {
        engine,
        clients,
        controls,
        datas,
    }
}

fn net(n: usize, slots: usize) -> Net<FakeNic> {
    build(n, |datas| FakeNic::new(datas, slots))
}

fn frame(dst: [u8; 6], src: [u8; 6], tag: u8, len: usize) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7) ^ tag).collect();
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f
}

fn recv_all<N>(net: &mut Net<N>, i: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while let Some(n) = net.clients[i].recv(&mut buf).unwrap() {
        out.push(buf[..n].to_vec());
    }
    out
}

fn reclaim_all<N>(net: &mut Net<N>, i: usize) -> Vec<TxStatus> {
    let mut out = Vec::new();
    while let Some(r) = net.clients[i].reclaim_tx().unwrap() {
        out.push(r.status);
    }
    out
}

#[test]
fn nic_frames_go_to_the_client_they_name() {
    let mut net = net(3, 8);
    let to1 = frame(mac(1), EXTERNAL, 1, 100);
    let to_nobody = frame([0x02, 9, 9, 9, 9, 9], EXTERNAL, 2, 80);
    let bcast = frame(BROADCAST, EXTERNAL, 3, 60);
    let mcast = frame(MULTICAST, EXTERNAL, 4, 1514);
    let rx = &mut net.engine.nic_mut().rx;
    rx.extend([
        to1.clone(),
        to_nobody,
        bcast.clone(),
        vec![0; 13],
        vec![0; 1515],
        mcast.clone(),
    ]);
    // Clients 0 and 1 wait for a signal; client 2 does not.
    assert!(net.clients[0].request_signal().unwrap());
    assert!(net.clients[1].request_signal().unwrap());
    let r = net.engine.run();
    assert!(r.progress);
    assert_eq!(r.notify, 0b011, "{r:?}");
    assert_eq!(recv_all(&mut net, 0), vec![bcast.clone(), mcast.clone()]);
    assert_eq!(recv_all(&mut net, 1), vec![to1.clone(), bcast.clone(), mcast.clone()]);
    assert_eq!(recv_all(&mut net, 2), vec![bcast.clone(), mcast.clone()]);
    let s = net.engine.stats();
    assert_eq!((s.nic_rx_frames, s.nic_rx_unmatched, s.nic_rx_bad_length), (4, 1, 2));
    // One copy each: bytes copied into each client's RX buffers are exactly its frames.
    assert_eq!(net.engine.counters(0).unwrap().rx_bytes_copied, 60 + 1514);
    assert_eq!(net.engine.counters(1).unwrap().rx_bytes_copied, 100 + 60 + 1514);
    assert_eq!(net.engine.counters(1).unwrap().rx_frames, 3);
}

#[test]
fn transmit_is_zero_copy_and_sends_the_checked_header() {
    let mut net = net(2, 8);
    let f = frame(EXTERNAL, mac(0), 9, 1000);
    net.clients[0].send(&f).unwrap();
    net.engine.run();
    let req = net.engine.nic().requests[0];
    assert_eq!((req.client, req.len()), (0, 1000));
    assert_eq!(req.header(), &f[..14]);
    let offset = req.payload()[0].0 - 14;
    let c = net.engine.counters(0).unwrap();
    assert_eq!((c.tx_bytes_copied, c.tx_bytes_zero_copy, c.tx_nic), (14, 986, 1));
    // The buffer stays with the VCP until the device is done with it.
    assert_eq!(reclaim_all(&mut net, 0), vec![]);
    // The client rewrites its buffer (source MAC and payload) before the device reads
    // it: the device still sends the header that was checked; the payload is the
    // client's own business.
    net.datas[0].write_bytes(offset as usize + 6, &mac(1)).unwrap();
    net.datas[0].write_bytes(offset as usize + 20, &[0xee]).unwrap();
    net.engine.nic_mut().complete(1, true);
    net.engine.run();
    let wire = &net.engine.nic().wire;
    assert_eq!(wire.len(), 1);
    assert_eq!(&wire[0].1[..14], &f[..14], "checked header on the wire");
    assert_eq!(wire[0].1[20], 0xee);
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::Sent]);
    // Nobody else saw it.
    assert!(recv_all(&mut net, 1).is_empty());
}

#[test]
fn frames_between_clients_are_delivered_locally() {
    let mut net = net(3, 8);
    let f = frame(mac(2), mac(0), 5, 700);
    net.clients[0].send(&f).unwrap();
    assert!(net.clients[1].request_signal().unwrap());
    assert!(net.clients[2].request_signal().unwrap());
    let r = net.engine.run();
    // Client 2 (frame) is notified, client 1 (nothing for it) is not.
    assert_eq!(r.notify & 0b110, 0b100);
    assert_eq!(recv_all(&mut net, 2), vec![f.clone()]);
    assert!(recv_all(&mut net, 1).is_empty());
    assert!(recv_all(&mut net, 0).is_empty());
    assert!(
        net.engine.nic().requests.is_empty(),
        "the NIC does not hairpin: not sent to it"
    );
    // Given back at once.
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::Sent]);
    let c0 = net.engine.counters(0).unwrap();
    let c2 = net.engine.counters(2).unwrap();
    // One copy: the header checked (14 bytes out of the sender), the frame into the receiver.
    assert_eq!((c0.tx_local, c0.tx_nic, c0.tx_bytes_copied), (1, 0, 14));
    assert_eq!((c2.rx_frames, c2.rx_bytes_copied), (1, 700));
    assert_eq!(net.engine.counters(1).unwrap().rx_bytes_copied, 0);
}

#[test]
fn group_frames_go_to_every_other_client_and_the_nic() {
    let mut net = net(3, 8);
    let b = frame(BROADCAST, mac(1), 1, 300);
    let m = frame(MULTICAST, mac(1), 2, 90);
    net.clients[1].send(&b).unwrap();
    net.clients[1].send(&m).unwrap();
    net.engine.run();
    assert_eq!(recv_all(&mut net, 0), vec![b.clone(), m.clone()]);
    assert_eq!(recv_all(&mut net, 2), vec![b.clone(), m.clone()]);
    assert!(recv_all(&mut net, 1).is_empty(), "no echo to the sender");
    assert_eq!(net.engine.nic().requests.len(), 2);
    // Given back only when the NIC is done.
    assert_eq!(reclaim_all(&mut net, 1), vec![]);
    net.engine.nic_mut().complete(2, true);
    net.engine.run();
    assert_eq!(reclaim_all(&mut net, 1), vec![TxStatus::Sent, TxStatus::Sent]);
    assert_eq!(net.engine.counters(1).unwrap().tx_local, 4);
    // Each receiver's buffers got exactly the two frames, once.
    assert_eq!(net.engine.counters(0).unwrap().rx_bytes_copied, 300 + 90);
    assert_eq!(net.engine.counters(2).unwrap().rx_bytes_copied, 300 + 90);
    assert_eq!(net.engine.counters(1).unwrap().tx_bytes_copied, 2 * 14);
}

#[test]
fn spoofed_source_macs_are_dropped_and_counted() {
    let mut net = net(3, 8);
    for src in [mac(2), EXTERNAL, [0; 6]] {
        for dst in [mac(2), EXTERNAL, BROADCAST] {
            net.clients[0].send(&frame(dst, src, 0, 64)).unwrap();
        }
    }
    net.engine.run();
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::Spoofed; 9]);
    assert_eq!(net.engine.counters(0).unwrap().spoofed, 9);
    assert!(net.engine.nic().requests.is_empty());
    for i in 1..3 {
        assert!(recv_all(&mut net, i).is_empty());
        assert_eq!(net.engine.counters(i).unwrap().rx_bytes_copied, 0);
    }
    // The same client's honest frame still goes.
    let ok = frame(mac(2), mac(0), 1, 64);
    net.clients[0].send(&ok).unwrap();
    net.engine.run();
    assert_eq!(recv_all(&mut net, 2), vec![ok]);
}

#[test]
fn transmit_is_round_robin_and_bounded_per_client() {
    let mut net = net(2, 4);
    // Client 0 fills every transmit buffer it has; client 1 sends two frames.
    for k in 0..BUFFERS / 2 {
        net.clients[0].send(&frame(EXTERNAL, mac(0), k as u8, 100)).unwrap();
    }
    for k in 0..2 {
        net.clients[1].send(&frame(EXTERNAL, mac(1), k, 100)).unwrap();
    }
    let mut sent = 0;
    while sent < BUFFERS as usize / 2 + 2 {
        net.engine.run();
        // Each client holds at most its share (4 slots / 2 clients) of the device.
        let mut per = [0usize; 2];
        for (_, r) in &net.engine.nic().in_flight {
            per[r.client] += 1;
        }
        assert!(per[0] <= 2 && per[1] <= 2, "{per:?}");
        let n = net.engine.nic().in_flight.len();
        net.engine.nic_mut().complete(n, true);
        sent += n;
        assert!(n > 0, "no progress");
    }
    let order: Vec<usize> = net.engine.nic().requests.iter().map(|r| r.client).collect();
    // Client 1's two frames are in the first device batch, not behind client 0's flood.
    assert_eq!(order[..4].iter().filter(|&&c| c == 1).count(), 2, "{order:?}");
    net.engine.run();
    assert_eq!(reclaim_all(&mut net, 0).len(), (BUFFERS / 2) as usize);
    assert_eq!(reclaim_all(&mut net, 1).len(), 2);
}

#[test]
fn a_full_nic_does_not_block_local_delivery() {
    let mut net = net(3, 2);
    for k in 0..4 {
        net.clients[0].send(&frame(EXTERNAL, mac(0), k, 100)).unwrap();
    }
    net.engine.run();
    // Client 0's share is 1 of 2 slots... and the NIC may be full; client 1 still
    // reaches client 2.
    let f = frame(mac(2), mac(1), 7, 200);
    net.clients[1].send(&f).unwrap();
    net.engine.run();
    assert_eq!(recv_all(&mut net, 2), vec![f]);
    assert!(net.engine.nic().in_flight.len() <= 2);
    // Everything of client 0 gets out eventually, in order.
    for _ in 0..8 {
        net.engine.nic_mut().complete(2, true);
        net.engine.run();
    }
    let tags: Vec<u8> = net.engine.nic().wire.iter().map(|(_, f)| f[20]).collect();
    let want: Vec<u8> = (0..4u8).map(|k| frame(EXTERNAL, mac(0), k, 100)[20]).collect();
    assert_eq!(tags, want);
}

#[test]
fn a_burst_larger_than_a_clients_rx_buffers_is_not_lost_when_it_drains_between_runs() {
    // The NIC holds four times the client's RX buffers (QEMU fills the NIC's queue
    // while vcp-net runs); a client that takes its frames whenever a run has notified
    // it loses none: a run delivers at most RX_BUDGET frames, no more than it has
    // buffers. (With a budget above the client's buffers the first run dropped frames,
    // and each drop cost slirp's TCP about a second of recovery.)
    let mut net = net(1, 8);
    let rx_buffers = BUFFERS as usize / 2;
    let burst = 4 * rx_buffers;
    for k in 0..burst {
        net.engine.nic_mut().rx.push_back(frame(mac(0), EXTERNAL, k as u8, 60));
    }
    let mut got = 0;
    loop {
        // The client waits for a notification (it took everything there was).
        assert!(net.clients[0].request_signal().unwrap());
        let r = net.engine.run();
        let n = recv_all(&mut net, 0).len();
        assert!(n == 0 || r.notify & 1 != 0, "frames delivered without a notification");
        got += n;
        if !r.more {
            break;
        }
    }
    assert_eq!(net.engine.counters(0).unwrap().rx_dropped_no_buffer, 0);
    assert_eq!(got, burst);
}

#[test]
fn a_client_without_rx_buffers_loses_only_its_own_frames() {
    let mut net = net(2, 8);
    // Client 1 has BUFFERS/2 RX buffers and does not read: the rest of its frames drop,
    // while client 0, with frames interleaved, gets every one of its own.
    let half = BUFFERS as usize / 2;
    for k in 0..half + 5 {
        net.engine.nic_mut().rx.push_back(frame(mac(1), EXTERNAL, k as u8, 60));
        if k < half {
            net.engine.nic_mut().rx.push_back(frame(mac(0), EXTERNAL, k as u8, 60));
        }
    }
    // Several runs (each takes at most RX_BUDGET frames from the NIC).
    while net.engine.run().more {}
    assert_eq!(net.engine.counters(1).unwrap().rx_frames, half as u64);
    assert_eq!(net.engine.counters(1).unwrap().rx_dropped_no_buffer, 5);
    assert_eq!(net.engine.counters(0).unwrap().rx_dropped_no_buffer, 0);
    assert_eq!(recv_all(&mut net, 0).len(), half);
    // Once client 1 reads, its buffers are back and frames reach it again.
    assert_eq!(recv_all(&mut net, 1).len(), half);
    net.engine.nic_mut().rx.push_back(frame(mac(1), EXTERNAL, 0, 60));
    net.engine.run();
    assert_eq!(recv_all(&mut net, 1).len(), 1);
}

#[test]
fn receive_is_bounded_per_run() {
    let mut net = net(1, 8);
    for _ in 0..RX_BUDGET + 10 {
        net.engine.nic_mut().rx.push_back(frame(EXTERNAL, EXTERNAL, 0, 60));
    }
    // A transmit waiting behind a receive flood still goes in the same run.
    net.clients[0].send(&frame(EXTERNAL, mac(0), 0, 60)).unwrap();
    let r = net.engine.run();
    assert!(r.more, "budget used up: the PD must run again before waiting");
    assert_eq!(net.engine.stats().nic_rx_unmatched, RX_BUDGET as u64);
    assert_eq!(net.engine.nic().requests.len(), 1);
    let r = net.engine.run();
    assert!(!r.more);
    assert_eq!(net.engine.stats().nic_rx_unmatched, RX_BUDGET as u64 + 10);
}

#[test]
fn device_errors_and_no_device() {
    let mut net = net(2, 8);
    net.clients[0].send(&frame(EXTERNAL, mac(0), 0, 60)).unwrap();
    net.engine.run();
    net.engine.nic_mut().complete(1, false);
    net.engine.run();
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::DeviceError]);
    assert_eq!(net.engine.counters(0).unwrap().tx_device_errors, 1);

    let mut net = build(2, |_| NoNic);
    let f = frame(mac(1), mac(0), 3, 128);
    net.clients[0].send(&frame(EXTERNAL, mac(0), 0, 60)).unwrap();
    net.clients[0].send(&f).unwrap();
    net.clients[0].send(&frame(BROADCAST, mac(0), 0, 60)).unwrap();
    net.engine.run();
    assert_eq!(
        reclaim_all(&mut net, 0),
        vec![TxStatus::DeviceError, TxStatus::Sent, TxStatus::DeviceError]
    );
    assert_eq!(recv_all(&mut net, 1).len(), 2);
}

#[test]
fn a_hostile_client_is_cut_off_and_the_others_carry_on() {
    let mut net = net(3, 8);
    let l = ControlLayout::new(RING_CAPACITY).unwrap();
    // Client 2 hands over a buffer twice (its own business: both go out), an RX
    // buffer as a TX one and one outside its region, then corrupts its TX active
    // index.
    net.clients[2].send(&frame(EXTERNAL, mac(2), 0, 60)).unwrap();
    net.engine.run();
    // Raw descriptors written past the one the client pushed (index 1 on).
    let raw = [
        vcpos_net_protocol::BufDesc::new(u64::from(BUFFERS / 2 * BUF_SIZE), 60, 100), // still held: sent again
        vcpos_net_protocol::BufDesc::new(0, 60, 101), // an RX buffer: zeros, no source MAC
        vcpos_net_protocol::BufDesc::new(u64::from(BUFFERS * BUF_SIZE) - 59, 60, 102), // one byte outside
    ];
    for (k, d) in raw.iter().enumerate() {
        let at = l.tx_active.base() + SLOTS_OFFSET + (1 + k) * 16;
        net.controls[2]
            .write_bytes(at, zerocopy::IntoBytes::as_bytes(d))
            .unwrap();
    }
    net.controls[2]
        .store_u32(l.tx_active.base() + PRODUCER_INDEX_OFFSET, 4, Ordering::Release)
        .unwrap();
    for _ in 0..4 {
        net.engine.run();
        net.engine.nic_mut().complete(8, true);
    }
    let st = net.engine.server_stats(2).unwrap();
    assert_eq!((st.bad_offset, st.tx_accepted), (1, 3), "{st:?}");
    // Buffer 0 holds no frame of client 2's MAC: refused as spoofed.
    assert_eq!(net.engine.counters(2).unwrap().spoofed, 1);
    assert!(
        net.engine.cut_off(2).is_none(),
        "refusals alone do not cut a client off"
    );
    net.controls[2]
        .store_u32(l.tx_active.base() + PRODUCER_INDEX_OFFSET, 12345, Ordering::Release)
        .unwrap();
    let r = net.engine.run();
    assert_eq!(r.cut_off, 0b100);
    assert!(net.engine.cut_off(2).is_some());
    // Reported once; client 2 gets nothing any more.
    net.engine.nic_mut().rx.push_back(frame(BROADCAST, EXTERNAL, 1, 60));
    let f = frame(mac(0), mac(1), 2, 60);
    net.clients[1].send(&f).unwrap();
    let r = net.engine.run();
    assert_eq!(r.cut_off, 0);
    let got = recv_all(&mut net, 0);
    assert!(got.contains(&f), "client 0 still served");
    assert_eq!(net.engine.counters(2).unwrap().rx_frames, 0);
}

#[test]
fn engine_refuses_bad_regions() {
    let (config, controls, datas) = regions(2);
    let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    r[0] = Some(ClientRegions {
        control: controls[0].clone(),
        data: datas[0].clone(),
    });
    assert!(
        Engine::new(NoNic, &config, r).is_err(),
        "client 1 configured without regions"
    );
    let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    for i in 0..2 {
        r[i] = Some(ClientRegions {
            control: FakeMemory::new(0x1000),
            data: datas[i].clone(),
        });
    }
    assert!(
        Engine::new(NoNic, &config, r).is_err(),
        "control region too small for the rings"
    );
    // Any data region size will do (buffers are any (offset, len) in it).
    let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    for i in 0..2 {
        r[i] = Some(ClientRegions {
            control: controls[i].clone(),
            data: FakeMemory::new(3001),
        });
    }
    assert!(Engine::new(NoNic, &config, r).is_ok());
}

#[test]
fn a_restarted_engine_changes_the_generation() {
    let mut net = net(1, 8);
    let g = net.clients[0].info().unwrap().generation;
    let (config, _, _) = regions(1);
    let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    r[0] = Some(ClientRegions {
        control: net.controls[0].clone(),
        data: net.datas[0].clone(),
    });
    let _again = Engine::new(NoNic, &config, r).unwrap();
    let e = net.clients[0].send(&frame(EXTERNAL, mac(0), 0, 60)).unwrap_err();
    assert_eq!(
        e,
        vcpos_net_protocol::ClientError::GenerationChanged {
            was: g,
            now: g.wrapping_add(1)
        }
    );
}

#[test]
fn a_client_cut_off_while_the_engine_prepares_to_wait_is_reported_by_the_next_run() {
    let mut net = net(2, 8);
    net.engine.run();
    assert!(net.engine.prepare_wait());
    let l = ControlLayout::new(RING_CAPACITY).unwrap();
    net.controls[1]
        .store_u32(l.tx_active.base() + PRODUCER_INDEX_OFFSET, 999, Ordering::Release)
        .unwrap();
    assert!(!net.engine.prepare_wait(), "run again: there is a cut-off to report");
    assert_eq!(net.engine.run().cut_off, 0b10);
    assert!(net.engine.prepare_wait());
}

/// A client that names its own buffers at odd offsets and sizes (as the VMM does in
/// guest RAM), with rings of 256: the NIC reads the frame in place (14 header bytes
/// copied), a received frame is copied once into the buffer it named, and 256 receive
/// buffers can be posted at once.
#[test]
fn buffers_anywhere_and_rings_of_256() {
    let mut config = Config::default();
    config.clients[0] = Some(mac(0));
    config.rings[0] = 256;
    let control = FakeMemory::new(ControlLayout::new(256).unwrap().size());
    let data = FakeMemory::new(1 << 20);
    let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    r[0] = Some(ClientRegions {
        control: control.clone(),
        data: data.clone(),
    });
    let datas = vec![data.clone()];
    let mut engine = Engine::new(FakeNic::new(&datas, 8), &config, r).unwrap();
    let mut client = Client::with_region(control, data.clone(), 256).unwrap();
    client.connect().unwrap();
    let mut ids = Vec::new();
    for i in 0..256u64 {
        ids.push(client.post_rx(12 + i * 1600, 1526).unwrap());
    }
    // Transmit from an odd offset.
    let f = frame(EXTERNAL, mac(0), 5, 777);
    data.write_bytes(100_003, &f).unwrap();
    let tx_id = client.send_at(100_003, 777).unwrap();
    // 300 frames arrive: 256 fit the posted buffers, the rest are dropped.
    let frames: Vec<Vec<u8>> = (0..300).map(|i| frame(mac(0), EXTERNAL, i as u8, 60 + i)).collect();
    engine.nic_mut().rx.extend(frames.iter().cloned());
    // Runs take at most RX_BUDGET frames each.
    for _ in 0..300 / RX_BUDGET + 2 {
        engine.run();
        engine.nic_mut().complete(8, true);
    }
    let c = engine.counters(0).unwrap();
    assert_eq!((c.tx_bytes_copied, c.tx_bytes_zero_copy), (14, 763));
    assert_eq!(engine.nic().wire, vec![(0, f)]);
    let r = client.reclaim_tx().unwrap().unwrap();
    assert_eq!((r.id, r.offset, r.len, r.status), (tx_id, 100_003, 777, TxStatus::Sent));
    assert_eq!((c.rx_frames, c.rx_dropped_no_buffer), (256, 44));
    let expected: u64 = frames[..256].iter().map(|f| f.len() as u64).sum();
    assert_eq!(c.rx_bytes_copied, expected, "each frame copied once");
    assert_eq!(
        engine.bytes_copied(),
        14 + expected,
        "what the PD reports to the kernel"
    );
    for (i, f) in frames[..256].iter().enumerate() {
        let r = client.take_rx().unwrap().unwrap();
        assert_eq!((r.id, r.offset), (ids[i], 12 + i as u64 * 1600));
        assert_eq!(r.outcome, vcpos_net_protocol::RxOutcome::Frame(f.len() as u32));
        let mut got = vec![0; f.len()];
        data.read_bytes(r.offset as usize, &mut got).unwrap();
        assert_eq!(&got, f);
    }
}

/// A recall: the engine gives back every receive buffer it holds, unused, before it
/// delivers another frame, and none of them is written.
#[test]
fn a_recall_gives_receive_buffers_back_unused() {
    let mut net = net(1, 8);
    net.engine.nic_mut().rx.push_back(frame(mac(0), EXTERNAL, 1, 100));
    net.engine.run();
    net.clients[0].recall_rx().unwrap();
    assert!(net.clients[0].signal_needed().unwrap());
    net.engine.nic_mut().rx.push_back(frame(mac(0), EXTERNAL, 2, 100));
    let r = net.engine.run();
    assert!(r.progress);
    // The frame before the recall arrived; the one after found no buffer.
    let c = net.engine.counters(0).unwrap();
    assert_eq!(
        (c.rx_frames, c.rx_recalled, c.rx_dropped_no_buffer),
        (1, u64::from(BUFFERS / 2 - 1), 1)
    );
    assert!(!net.clients[0].recall_pending().unwrap());
    let mut unused = 0;
    let mut frames = 0;
    while let Some(r) = net.clients[0].take_rx().unwrap() {
        match r.outcome {
            vcpos_net_protocol::RxOutcome::Unused => unused += 1,
            vcpos_net_protocol::RxOutcome::Frame(100) => frames += 1,
            o => panic!("{o:?}"),
        }
    }
    assert_eq!((frames, unused), (1, BUFFERS / 2 - 1));
    assert_eq!(net.clients[0].rx_outstanding(), 0);
}

/// An IPv4 TCP frame from `src` to `dst` with `payload` bytes of data (20-byte IP and
/// TCP headers, sequence number 1000, ACK and PSH), checksums left to the offload.
fn tcp_frame(dst: [u8; 6], src: [u8; 6], payload: usize) -> Vec<u8> {
    testing::tcp_frame(dst, src, 1000, 0, payload, 0x18)
}

/// The offload header (virtio_net_hdr_v1 layout) for TCP segmentation at `mss`.
fn tso_header(mss: u16) -> [u8; 12] {
    let h = testing::offload_header(OFFLOAD_F_NEEDS_CSUM, GSO_TCPV4, mss, 34, 16);
    let mut out = [0u8; 12];
    out.copy_from_slice(h.as_bytes());
    out
}

/// Writes `offload ++ frame` into client `i`'s data region from `at`, cut into pieces
/// at `cuts` (offsets into that byte string, each piece placed 100 bytes after the
/// previous one ends, so no two are adjacent), and sends it.
fn send_pieces(net: &mut Net<FakeNic>, i: usize, at: u64, bytes: &[u8], cuts: &[usize], offload: bool) {
    let mut pieces = Vec::new();
    let (mut from, mut pos) = (0usize, at);
    for &to in cuts.iter().chain([bytes.len()].iter()) {
        net.datas[i].write_bytes(pos as usize, &bytes[from..to]).unwrap();
        pieces.push((pos, (to - from) as u32));
        pos += (to - from) as u64 + 100;
        from = to;
    }
    net.clients[i].send_frame(&pieces, offload).unwrap();
}

#[test]
fn tcp_segmentation_cuts_a_frame_in_pieces_into_valid_segments_read_in_place() {
    let mut net = net(2, 64);
    let f = tcp_frame(EXTERNAL, mac(0), 10_000);
    let mut bytes = tso_header(1460).to_vec();
    bytes.extend_from_slice(&f);
    // Headers and the first payload bytes in one piece; the rest in three, with a cut
    // at an odd offset.
    send_pieces(
        &mut net,
        0,
        32 * 1024,
        &bytes,
        &[12 + 54 + 100, 12 + 3001, 12 + 7000],
        true,
    );
    net.engine.run();
    let reqs = net.engine.nic().requests.clone();
    assert_eq!(reqs.len(), 7);
    assert!(reqs.iter().all(|r| r.len() <= 1514 && r.header().len() == 54));
    // Nothing comes back before the device is done with every segment.
    net.engine.nic_mut().complete(6, true);
    net.engine.run();
    assert_eq!(reclaim_all(&mut net, 0), vec![]);
    net.engine.nic_mut().complete(1, true);
    net.engine.run();
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::Sent; 4]);
    let wire: Vec<Vec<u8>> = net.engine.nic().wire.iter().map(|w| w.1.clone()).collect();
    let mut payload = Vec::new();
    for (k, w) in wire.iter().enumerate() {
        assert!(tcp_checksums_ok(w), "segment {k}");
        assert_eq!(&w[..14], &f[..14]);
        let seq = u32::from_be_bytes([w[38], w[39], w[40], w[41]]);
        assert_eq!(seq, 1000 + 1460 * k as u32);
        assert_eq!(w[47] & 0x08 != 0, k == 6, "PSH on the last segment only");
        payload.extend_from_slice(&w[54..]);
    }
    assert_eq!(payload, f[54..]);
    let c = net.engine.counters(0).unwrap();
    // Copied: the offload header and the headers checked; the payload is read in place.
    assert_eq!((c.tx_frames, c.tx_nic, c.tx_bytes_zero_copy), (1, 7, 10_000));
    assert_eq!(c.tx_bytes_copied, 12 + 134);
}

#[test]
fn offloaded_frames_to_a_local_client_arrive_segmented_with_checksums() {
    let mut net = net(2, 8);
    let f = tcp_frame(mac(1), mac(0), 4000);
    let mut bytes = tso_header(1000).to_vec();
    bytes.extend_from_slice(&f);
    send_pieces(&mut net, 0, 32 * 1024, &bytes, &[12 + 54], true);
    net.engine.run();
    let got = recv_all(&mut net, 1);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|w| tcp_checksums_ok(w) && w.len() == 1054));
    assert!(net.engine.nic().requests.is_empty());
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::Sent; 2]);

    // Checksum offload alone (a UDP datagram, its field seeded with the pseudo-header
    // sum as Linux does): one frame, its checksum filled.
    let mut u = frame(mac(1), mac(0), 9, 14 + 20 + 8 + 333);
    u[12..14].copy_from_slice(&[0x08, 0x00]);
    u[14..34].fill(0);
    u[14] = 0x45;
    u[14 + 9] = 17;
    u[14 + 12..14 + 20].copy_from_slice(&[10, 0, 2, 15, 10, 0, 2, 2]);
    let udp_len = (8 + 333) as u16;
    u[34 + 4..34 + 6].copy_from_slice(&udp_len.to_be_bytes());
    let mut pseudo = u[14 + 12..14 + 20].to_vec();
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&udp_len.to_be_bytes());
    u[34 + 6..34 + 8].copy_from_slice(&rfc1071(&pseudo).to_be_bytes());
    let h = testing::offload_header(OFFLOAD_F_NEEDS_CSUM, 0, 0, 34, 6);
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&u);
    send_pieces(&mut net, 0, 40 * 1024, &bytes, &[12 + 35], true);
    net.engine.run();
    let got = recv_all(&mut net, 1);
    assert_eq!(got.len(), 1);
    let w = &got[0];
    let mut check = pseudo.clone();
    check.extend_from_slice(&w[34..]);
    assert_eq!(rfc1071(&check), 0xffff, "UDP checksum");
    assert_eq!(w[..40], u[..40]);
    assert_eq!(w[42..], u[42..]);
}

#[test]
fn bad_offload_requests_and_spoofed_segments_are_refused() {
    let mut net = net(2, 8);
    let cases: [(Vec<u8>, [u8; 12], TxStatus); 4] = [
        // Not IPv4 TCP.
        (
            frame(EXTERNAL, mac(0), 1, 3000),
            tso_header(1000),
            TxStatus::Unsupported,
        ),
        // A segment size the MTU cannot carry.
        (
            tcp_frame(EXTERNAL, mac(0), 3000),
            tso_header(1461),
            TxStatus::Unsupported,
        ),
        // An undefined GSO type.
        (
            tcp_frame(EXTERNAL, mac(0), 3000),
            {
                let mut h = tso_header(1000);
                h[1] = 4;
                h
            },
            TxStatus::Unsupported,
        ),
        // Another client's source MAC.
        (tcp_frame(EXTERNAL, mac(1), 3000), tso_header(1000), TxStatus::Spoofed),
    ];
    for (f, h, want) in cases {
        let mut bytes = h.to_vec();
        bytes.extend_from_slice(&f);
        send_pieces(&mut net, 0, 32 * 1024, &bytes, &[100], true);
        net.engine.run();
        assert_eq!(reclaim_all(&mut net, 0), vec![want; 2]);
    }
    assert!(net.engine.nic().requests.is_empty());
    assert_eq!(net.engine.counters(0).unwrap().unsupported, 3);
    assert!(recv_all(&mut net, 1).is_empty());
}

#[test]
fn a_segmented_frame_takes_its_turn_a_segment_at_a_time() {
    // Client 0 sends one frame of 40 segments; client 1 sends plain frames. The NIC
    // sees them alternate: a large frame does not hold the NIC for its whole length.
    let mut net = net(2, 64);
    let f = tcp_frame(EXTERNAL, mac(0), 40 * 500);
    let mut bytes = tso_header(500).to_vec();
    bytes.extend_from_slice(&f);
    send_pieces(&mut net, 0, 32 * 1024, &bytes, &[], true);
    for k in 0..4 {
        net.clients[1].send(&frame(EXTERNAL, mac(1), k, 200)).unwrap();
    }
    net.engine.run();
    let order: Vec<usize> = net.engine.nic().requests.iter().map(|r| r.client).take(8).collect();
    assert_eq!(order, [0, 1, 0, 1, 0, 1, 0, 1]);
    // Each client holds at most its share of the NIC's 64 slots.
    assert_eq!(net.engine.nic().requests.len(), 32 + 4);
    net.engine.nic_mut().complete(36, true);
    net.engine.run();
    net.engine.nic_mut().complete(8, true);
    net.engine.run();
    assert_eq!(net.engine.nic().wire.len(), 44);
    assert_eq!(reclaim_all(&mut net, 0), vec![TxStatus::Sent]);
}
