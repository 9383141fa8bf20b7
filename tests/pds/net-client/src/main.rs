//! vcp-net test client. Its role follows from the MAC vcp-net's info page gives it:
//!
//! - **sender** ([`SENDER`]): sends, in this order, a frame with the receiver's source
//!   MAC (spoofed), a frame to a MAC nobody has, [`UNICASTS`] frames to the receiver
//!   (lengths 60..=1514), [`BULK`] full-size frames (timed by the receiver), a
//!   broadcast and a final frame, reusing its transmit buffers
//!   as vcp-net gives them back. When the receiver's acknowledgement arrives it checks
//!   what vcp-net said about each frame (one spoofed, two device errors: there is no
//!   NIC, the rest sent) and prints `TEST PASS: vcp-net`.
//! - **receiver** ([`RECEIVER`]): checks that it gets exactly the unicasts, the
//!   broadcast and the final frame, in order and byte for byte, and nothing else (not
//!   the spoofed frame, not the frame for the unknown MAC), then acknowledges.
//!
//! - **ARP prober** ([`PROBER`], with a NIC): broadcasts an ARP request for QEMU's
//!   user-network gateway ([`GATEWAY_IP`]) and waits for the reply, which must come
//!   from the gateway and be addressed to its own MAC; its request must have been
//!   sent by the NIC. Then it times [`ARP_ROUND_TRIPS`] more (up to
//!   [`ARP_OUTSTANDING`] in flight) and prints `TEST PASS: vcp-net-nic`.
//!
//! - **hostile** ([`HOSTILE`]): bypasses its client half and writes raw TX
//!   descriptors: one outside its data region, one whose offset + length overflows, a
//!   buffer with an impossible length and a buffer whose frame carries no source MAC
//!   of its own; checks that exactly the last two come back (bad length, spoofed), then
//!   corrupts its TX index, which gets it cut off (vcp-net says so) while the others
//!   carry on.
//!
//! - **flooder** ([`FLOODER`], `tests/systems/linux-net-hostile.system`, beside the
//!   Linux guest): from its start it floods vcp-net, as fast as vcp-net gives its
//!   transmit buffers back, with frames in turn spoofing the guest's source MAC
//!   ([`GUEST`]), broadcast, to the guest's MAC and to a MAC nobody has (all with a
//!   local experimental EtherType the guest ignores). When the guest asks for
//!   [`STOP_IP`] by ARP it stops, checks that every spoofed frame came back refused
//!   and every other one sent, prints its counts, then sends frames with hostile
//!   offload headers ([`ATTACK`]) and checks each piece's status, then writes a
//!   descriptor outside its data region and corrupts its TX index, which gets it cut
//!   off.
//!
//! Channel 0 is vcp-net. Systems: `tests/systems/vcp-net.system` (the receiver runs at
//! a higher priority than the sender, so it takes each frame before the next arrives)
//! and `vcp-net-nic.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::sys::{counter, counter_frequency};
use sel4_microkit::{debug_println, protection_domain, shared_region, Channel, ChannelSet, Handler, SharedRegion};
use vcpos_net_protocol::{
    BufDesc, ClientError, ControlLayout, SmallClient, TxStatus, BUF_SIZE, MAX_FRAME_LEN, RING_CAPACITY, TX_STATUSES,
};
use vcpos_queue::{Consumer, Producer, PRODUCER_INDEX_OFFSET, SLOTS_OFFSET};
use vcpos_test_support::{ensure, fail, TestFailed};
use zerocopy::IntoBytes;

const TEST: &str = "vcp-net";
/// The flooder's test (`tests/tests/net.rs`).
const HOSTILE_TEST: &str = "vcp-net-hostile";
const VCP: Channel = Channel::new(0);
/// The sender's MAC (`tests/systems/vcp-net.cfg`).
const SENDER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
/// The receiver's MAC.
const RECEIVER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
/// The hostile client's MAC (`tests/systems/vcp-net.cfg`).
const HOSTILE: [u8; 6] = [0x02, 0, 0, 0, 0, 0x04];
/// The ARP prober's MAC (`tests/systems/vcp-net-nic.cfg`).
const PROBER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];
/// The flooder's MAC (`tests/systems/linux-net-hostile.cfg`).
const FLOODER: [u8; 6] = [0x02, 0, 0, 0, 0, 0x05];
/// The Linux guest's MAC there (client 0).
const GUEST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0f];
/// The guest's ARP request for this address stops the flood (`arping 10.0.2.99`).
const STOP_IP: [u8; 4] = [10, 0, 2, 99];
/// The prober's IPv4 address on QEMU's user network (slirp's default guest address).
const PROBER_IP: [u8; 4] = [10, 0, 2, 15];
/// QEMU's user-network gateway, which answers ARP.
const GATEWAY_IP: [u8; 4] = [10, 0, 2, 2];
/// ARP round trips the prober times after the first.
const ARP_ROUND_TRIPS: u32 = 200;
/// ARP requests the prober keeps in flight (its transmit buffers).
const ARP_OUTSTANDING: u32 = 8;
/// A unicast MAC no client has.
const UNKNOWN: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const BROADCAST: [u8; 6] = [0xff; 6];
/// Unicast frames of varied lengths from the sender to the receiver.
const UNICASTS: u16 = 40;
/// Full-size (1514-byte) frames after them, timed by the receiver.
const BULK: u16 = 1000;
/// A local experimental EtherType.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];

/// What a frame of the test is (byte 14 of the frame).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Spoofed = 1,
    Unknown = 2,
    Unicast = 3,
    Broadcast = 4,
    Fin = 5,
    Ack = 6,
    Bulk = 7,
}

/// Frame number `seq` of the sender's plan (0..[`plan_len`]).
fn plan(seq: u16) -> (Kind, [u8; 6], [u8; 6], usize) {
    let u = UNICASTS;
    match seq {
        0 => (Kind::Spoofed, RECEIVER, RECEIVER, 100),
        1 => (Kind::Unknown, UNKNOWN, SENDER, 100),
        s if s < 2 + u => {
            let i = usize::from(s - 2);
            (
                Kind::Unicast,
                RECEIVER,
                SENDER,
                60 + (i * 37) % (MAX_FRAME_LEN as usize - 59),
            )
        }
        s if s < 2 + u + BULK => (Kind::Bulk, RECEIVER, SENDER, MAX_FRAME_LEN as usize),
        s if s == 2 + u + BULK => (Kind::Broadcast, BROADCAST, SENDER, MAX_FRAME_LEN as usize),
        _ => (Kind::Fin, RECEIVER, SENDER, 64),
    }
}

fn plan_len() -> u16 {
    UNICASTS + BULK + 4
}

/// The bytes of a frame: header, kind, sequence number, then a pattern of both.
fn build(kind: Kind, dst: [u8; 6], src: [u8; 6], seq: u16, len: usize, out: &mut [u8]) -> usize {
    out[..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&src);
    out[12..14].copy_from_slice(&ETHERTYPE);
    out[14] = kind as u8;
    out[15..17].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in out[17..len].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7) ^ (seq as u8).wrapping_mul(31) ^ kind as u8;
    }
    len
}

/// The client's part in the test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Sender,
    Receiver,
    Prober,
    Hostile,
    Flooder,
}

/// The flooder's frames, in turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flood {
    /// The guest's source MAC, broadcast: vcp-net must refuse it.
    Spoofed,
    /// Broadcast with the flooder's MAC: to the guest and the NIC.
    Broadcast,
    /// To the guest's MAC.
    ToGuest,
    /// To a MAC nobody has: to the NIC.
    Unknown,
}

impl Flood {
    const ALL: [Flood; 4] = [Flood::Spoofed, Flood::Broadcast, Flood::ToGuest, Flood::Unknown];

    fn addresses(self) -> ([u8; 6], [u8; 6]) {
        match self {
            Flood::Spoofed => (BROADCAST, GUEST),
            Flood::Broadcast => (BROADCAST, FLOODER),
            Flood::ToGuest => (GUEST, FLOODER),
            Flood::Unknown => (UNKNOWN, FLOODER),
        }
    }
}

/// The flooder's progress.
#[derive(Default)]
struct Flooding {
    /// Frames handed to vcp-net, by [`Flood`] kind.
    sent: [u64; 4],
    /// The guest asked for [`STOP_IP`].
    stop: bool,
    /// The flood's statuses checked; the offload attack sent: the statuses before
    /// it.
    offload_sent: Option<[u64; TX_STATUSES]>,
}

/// Where the offload attack's pieces lie in the flooder's data region: its transmit
/// half (buffers 8..16, free once the flood is over), headers first, then one payload
/// every frame names.
const ATTACK_HEADERS: u64 = 8 * BUF_SIZE as u64;
/// See [`ATTACK_HEADERS`].
const ATTACK_PAYLOAD: u64 = 10 * BUF_SIZE as u64;
/// Payload bytes of the offload attack's frames.
const ATTACK_PAYLOAD_LEN: u32 = 6000;

/// The offload attack's frames, each in two pieces (offload header and protocol
/// headers, then the payload) and what vcp-net must say of every piece: a segmented
/// frame spoofing the guest's MAC, one whose IP header is not IPv4, an undefined
/// segmentation type, a checksum field far past the headers, and an honest segmented
/// frame to a MAC nobody has (six segments to the NIC).
const ATTACK: [(Attack, TxStatus); 5] = [
    (Attack::Spoofed, TxStatus::Spoofed),
    (Attack::NotIpv4, TxStatus::Unsupported),
    (Attack::GsoType, TxStatus::Unsupported),
    (Attack::CsumField, TxStatus::Unsupported),
    (Attack::Honest, TxStatus::Sent),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Attack {
    Spoofed,
    NotIpv4,
    GsoType,
    CsumField,
    Honest,
}

/// The first piece of offload attack frame `a`: its offload header (virtio_net_hdr_v1
/// layout) and Ethernet, IPv4 and TCP headers.
fn attack_headers(a: Attack) -> [u8; 66] {
    let mut h = [0u8; 66];
    let (flags, gso, mss, start, offset) = match a {
        Attack::GsoType => (1, 9, 1000u16, 34u16, 16u16),
        Attack::CsumField => (1, 0, 0, 0x7000, 16),
        _ => (1, 1, 1000, 34, 16),
    };
    h[0] = flags;
    h[1] = gso;
    h[4..6].copy_from_slice(&mss.to_le_bytes());
    h[6..8].copy_from_slice(&start.to_le_bytes());
    h[8..10].copy_from_slice(&offset.to_le_bytes());
    let f = &mut h[12..];
    f[..6].copy_from_slice(&UNKNOWN);
    f[6..12].copy_from_slice(if a == Attack::Spoofed { &GUEST } else { &FLOODER });
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = if a == Attack::NotIpv4 { 0x65 } else { 0x45 };
    f[14 + 8] = 64;
    f[14 + 9] = 6;
    f[14 + 12..14 + 20].copy_from_slice(&[10, 0, 2, 77, 10, 0, 2, 99]);
    f[34..36].copy_from_slice(&40000u16.to_be_bytes());
    f[36..38].copy_from_slice(&9u16.to_be_bytes());
    f[34 + 12] = 5 << 4;
    f[34 + 13] = 0x10;
    h
}

/// True if `f` is an ARP request for [`STOP_IP`].
fn is_stop_request(f: &[u8]) -> bool {
    f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[20..22] == [0, 1] && f[38..42] == STOP_IP
}

/// The hostile client's raw view of its own TX rings.
struct Raw {
    control: SharedRegion,
    tx_active: Producer<SharedRegion, BufDesc>,
    tx_free: Consumer<SharedRegion, BufDesc>,
    /// Offsets and statuses given back so far.
    back: [(u64, u16); 4],
    nback: usize,
    corrupted: bool,
}

impl Raw {
    /// Buffer `i` of the data region (the client half keeps 8.. for sending).
    const fn buf(i: u64) -> u64 {
        i * BUF_SIZE as u64
    }

    fn new(control: SharedRegion) -> Result<Raw, TestFailed> {
        let l = ControlLayout::new(RING_CAPACITY).map_err(|e| fail(TEST, format_args!("layout: {e}")))?;
        let tx_active = Producer::new(control.clone(), l.tx_active).map_err(|e| fail(TEST, format_args!("{e}")))?;
        let tx_free = Consumer::new(control.clone(), l.tx_free).map_err(|e| fail(TEST, format_args!("{e}")))?;
        Ok(Raw {
            control,
            tx_active,
            tx_free,
            back: [(0, 0); 4],
            nback: 0,
            corrupted: false,
        })
    }

    /// Phase 1: the bad descriptors.
    fn start(&mut self) -> Result<(), TestFailed> {
        for d in [
            BufDesc::new(Self::buf(16) - 59, 60, 1), // one byte past the 16-buffer region
            BufDesc::new(u64::MAX - 10, 60, 2),      // offset + length overflows
            BufDesc::new(Self::buf(8), 10, 3),
            BufDesc::new(Self::buf(9), 60, 4), // all zero: source MAC 00:00:00:00:00:00
        ] {
            self.tx_active
                .push(&d)
                .map_err(|e| fail(TEST, format_args!("raw push: {e}")))?;
        }
        let _ = self.tx_free.request_signal();
        let _ = self.tx_active.signal_needed();
        VCP.notify();
        Ok(())
    }

    /// Phase 2, once both refusals are back: a corrupt index.
    fn step(&mut self) -> Result<(), TestFailed> {
        while let Some(d) = self
            .tx_free
            .pop()
            .map_err(|e| fail(TEST, format_args!("tx free: {e}")))?
        {
            ensure!(
                TEST,
                self.nback < self.back.len(),
                "hostile: too many buffers given back"
            );
            self.back[self.nback] = (d.offset, d.status);
            self.nback += 1;
        }
        if self.corrupted || self.nback < 2 {
            let _ = self.tx_free.request_signal();
            return Ok(());
        }
        let want = [
            (Self::buf(8), TxStatus::BadLength as u16),
            (Self::buf(9), TxStatus::Spoofed as u16),
        ];
        ensure!(
            TEST,
            self.back[..self.nback] == want,
            "hostile: given back {:?}, expected {want:?}",
            &self.back[..self.nback]
        );
        debug_println!(
            "net-client: hostile: of 4 raw descriptors, the bad length and the spoofed frame came back, \
             the two outside the data region did not; corrupting the TX index"
        );
        corrupt_tx_index(&self.control, 4 + 1000)?;
        self.corrupted = true;
        VCP.notify();
        Ok(())
    }
}

/// Stores `index` as the TX active ring's producer index: far beyond what the ring
/// holds, so vcp-net cuts the client off.
fn corrupt_tx_index(control: &SharedRegion, index: u32) -> Result<(), TestFailed> {
    let at = ControlLayout::new(RING_CAPACITY)
        .map_err(|e| fail(TEST, format_args!("layout: {e}")))?
        .tx_active
        .base()
        + PRODUCER_INDEX_OFFSET;
    control
        .atomic_u32(at)
        .map_err(|e| fail(TEST, format_args!("{e}")))?
        .store(index, core::sync::atomic::Ordering::Release);
    Ok(())
}

/// An ARP request from the prober for [`GATEWAY_IP`], padded to the 60-byte minimum.
fn arp_request() -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&PROBER);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    // Ethernet/IPv4, 6-byte and 4-byte addresses, request.
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&PROBER);
    f[28..32].copy_from_slice(&PROBER_IP);
    f[38..42].copy_from_slice(&GATEWAY_IP);
    f
}

struct Tester {
    client: SmallClient<SharedRegion>,
    role: Role,
    sender: bool,
    /// Sender: next frame of the plan to send. Receiver: next frame expected.
    next: u16,
    acked: bool,
    done: bool,
    /// Receiver: counter value at the first bulk frame.
    bulk_start: u64,
    /// The hostile client's raw rings.
    raw: Option<Raw>,
    /// Prober: ARP requests sent and replies received.
    arps_sent: u32,
    replies: u32,
    /// Flooder: its counts; its control region (for the corruption at the end) and
    /// data region (for the offload attack).
    flooding: Flooding,
    control: SharedRegion,
    data: SharedRegion,
}

impl Tester {
    fn err(&self, what: &str, e: ClientError) -> TestFailed {
        fail(TEST, format_args!("{what}: {e}"))
    }

    fn send_plan(&mut self) -> Result<(), TestFailed> {
        let mut frame = [0u8; MAX_FRAME_LEN as usize];
        while self.next < plan_len() {
            let (kind, dst, src, len) = plan(self.next);
            let n = build(kind, dst, src, self.next, len, &mut frame);
            match self.client.send(&frame[..n]) {
                Ok(()) => self.next += 1,
                Err(ClientError::NoTxBuffer) => break,
                Err(e) => return Err(self.err("send", e)),
            }
        }
        Ok(())
    }

    /// Checks a received frame against what the receiver expects next.
    fn on_frame(&mut self, f: &[u8]) -> Result<(), TestFailed> {
        if self.role == Role::Prober {
            return self.on_prober_frame(f);
        }
        if self.role == Role::Flooder {
            // It may get any broadcast (the guest's ARP, DHCP) and its own; nothing
            // for another unicast MAC.
            ensure!(
                HOSTILE_TEST,
                f.len() >= 14 && (f[..6] == FLOODER || f[0] & 1 != 0),
                "flooder received a frame for {:02x?}",
                &f[..f.len().min(6)]
            );
            self.flooding.stop |= is_stop_request(f);
            return Ok(());
        }
        ensure!(TEST, f.len() >= 17, "received a {}-byte frame", f.len());
        let seq = u16::from_le_bytes([f[15], f[16]]);
        if self.sender {
            ensure!(
                TEST,
                f[14] == Kind::Ack as u8 && f[..6] == SENDER && f[6..12] == RECEIVER,
                "sender received an unexpected frame (kind {}, seq {seq})",
                f[14]
            );
            self.acked = true;
            return Ok(());
        }
        // The receiver expects plan frames 2 + 0.. (unicasts), then the broadcast and fin.
        let want = self.next + 2;
        ensure!(
            TEST,
            want < plan_len(),
            "receiver got a frame after fin (kind {})",
            f[14]
        );
        let (kind, dst, src, len) = plan(want);
        let mut expected = [0u8; MAX_FRAME_LEN as usize];
        let n = build(kind, dst, src, want, len, &mut expected);
        ensure!(
            TEST,
            f == &expected[..n],
            "receiver: frame {} is not plan frame {want} ({kind:?}, {len} bytes): got kind {} seq {seq}, {} bytes",
            self.next,
            f[14],
            f.len()
        );
        self.next += 1;
        if want == 2 + UNICASTS {
            self.bulk_start = counter();
        }
        if want == 2 + UNICASTS + BULK - 1 {
            let ticks = counter().wrapping_sub(self.bulk_start).max(1);
            let us = ticks * 1_000_000 / counter_frequency().max(1);
            let bytes = u64::from(BULK) * u64::from(MAX_FRAME_LEN);
            debug_println!(
                "net-client: receiver: local delivery of {BULK} frames of {MAX_FRAME_LEN} bytes in {us} us: \
                 {} frames/s, {} KB/s (sender's copy-in, vcp-net's copy, receiver's copy-out and byte check included)",
                u64::from(BULK) * 1_000_000 / us.max(1),
                bytes * 1_000 / us.max(1)
            );
        }
        if kind == Kind::Fin {
            debug_println!(
                "net-client: receiver: {UNICASTS} unicast frames, {BULK} full-size ones, the broadcast and fin, \
                 in order, byte for byte, nothing else (no spoofed frame, no frame for another MAC)"
            );
            let mut ack = [0u8; 64];
            let n = build(Kind::Ack, SENDER, RECEIVER, 0, 64, &mut ack);
            self.client.send(&ack[..n]).map_err(|e| self.err("send ack", e))?;
            self.done = true;
        }
        Ok(())
    }

    /// The prober takes the gateway's ARP reply; anything else must at least be
    /// addressed to it (or to a group).
    fn on_prober_frame(&mut self, f: &[u8]) -> Result<(), TestFailed> {
        const NIC_TEST: &str = "vcp-net-nic";
        ensure!(NIC_TEST, f.len() >= 42, "prober received a {}-byte frame", f.len());
        ensure!(
            NIC_TEST,
            f[..6] == PROBER || f[0] & 1 != 0,
            "prober received a frame for {:02x?}",
            &f[..6]
        );
        let is_reply = f[12..14] == [0x08, 0x06] && f[20..22] == [0, 2] && f[28..32] == GATEWAY_IP;
        if !is_reply || self.done {
            return Ok(());
        }
        ensure!(
            NIC_TEST,
            f[..6] == PROBER && f[32..38] == PROBER,
            "ARP reply not addressed to the prober"
        );
        ensure!(NIC_TEST, f[38..42] == PROBER_IP, "ARP reply for another address");
        self.replies += 1;
        if self.replies == 1 {
            while self.client.reclaim_tx().map_err(|e| self.err("reclaim", e))?.is_some() {}
            let sent = self.client.stats().tx_status[TxStatus::Sent as usize];
            ensure!(
                NIC_TEST,
                sent == 1,
                "the ARP request's buffer came back {sent} times as sent"
            );
            debug_println!(
                "net-client: prober: ARP request sent through the NIC; reply: {}.{}.{}.{} is at {:02x?}",
                f[28],
                f[29],
                f[30],
                f[31],
                &f[22..28]
            );
            self.bulk_start = counter();
        }
        if self.replies == 1 + ARP_ROUND_TRIPS {
            let ticks = counter().wrapping_sub(self.bulk_start).max(1);
            let us = (ticks * 1_000_000 / counter_frequency().max(1)).max(1);
            debug_println!(
                "net-client: prober: {ARP_ROUND_TRIPS} ARP round trips through vcp-net, virtio-net and QEMU's \
                 gateway in {us} us: {} per second (up to 8 in flight)",
                u64::from(ARP_ROUND_TRIPS) * 1_000_000 / us
            );
            while self.client.reclaim_tx().map_err(|e| self.err("reclaim", e))?.is_some() {}
            let s = self.client.stats();
            let sent = s.tx_status[TxStatus::Sent as usize];
            let all = s.tx_status.iter().sum::<u64>();
            ensure!(
                NIC_TEST,
                sent == all && sent + u64::from(ARP_OUTSTANDING) >= u64::from(1 + ARP_ROUND_TRIPS),
                "ARP requests given back: {sent} sent of {all}"
            );
            debug_println!("TEST PASS: {NIC_TEST}");
            self.done = true;
        }
        Ok(())
    }

    /// The prober keeps up to [`ARP_OUTSTANDING`] requests in flight until
    /// [`ARP_ROUND_TRIPS`] more have been sent after the first reply.
    fn send_arps(&mut self) -> Result<(), TestFailed> {
        while self.replies >= 1
            && self.arps_sent < 1 + ARP_ROUND_TRIPS
            && self.arps_sent - self.replies < ARP_OUTSTANDING
        {
            match self.client.send(&arp_request()) {
                Ok(()) => self.arps_sent += 1,
                Err(ClientError::NoTxBuffer) => break,
                Err(e) => return Err(self.err("send ARP request", e)),
            }
        }
        Ok(())
    }

    fn finish_sender(&mut self) -> Result<(), TestFailed> {
        while self.client.reclaim_tx().map_err(|e| self.err("reclaim", e))?.is_some() {}
        let s = self.client.stats();
        let st = |t: TxStatus| s.tx_status[t as usize];
        ensure!(
            TEST,
            st(TxStatus::Spoofed) == 1
                && st(TxStatus::DeviceError) == 2
                && st(TxStatus::Sent) == u64::from(UNICASTS + BULK) + 1,
            "transmit statuses: sent {}, spoofed {}, device error {}, bad length {}",
            st(TxStatus::Sent),
            st(TxStatus::Spoofed),
            st(TxStatus::DeviceError),
            st(TxStatus::BadLength)
        );
        debug_println!(
            "net-client: sender: {} frames sent, the spoofed one refused, the unknown-MAC one and the broadcast \
             failed at the NIC (none), the rest delivered",
            plan_len()
        );
        debug_println!("TEST PASS: {TEST}");
        self.done = true;
        Ok(())
    }

    /// Sends flood frames until vcp-net holds every transmit buffer.
    fn flood(&mut self) -> Result<(), TestFailed> {
        let mut frame = [0u8; MAX_FRAME_LEN as usize];
        loop {
            let n: u64 = self.flooding.sent.iter().sum();
            let kind = Flood::ALL[(n % 4) as usize];
            let (dst, src) = kind.addresses();
            let len = 60 + (n as usize * 97) % (MAX_FRAME_LEN as usize - 59);
            let len = build(Kind::Bulk, dst, src, n as u16, len, &mut frame);
            match self.client.send(&frame[..len]) {
                Ok(()) => self.flooding.sent[kind as usize] += 1,
                Err(ClientError::NoTxBuffer) => return Ok(()),
                Err(e) => return Err(self.err("flood", e)),
            }
        }
    }

    /// Once the guest asked for [`STOP_IP`] and every buffer is back: checks what
    /// vcp-net said of each frame, then sends the offload attack ([`ATTACK`]); once
    /// every piece of it is back, checks those statuses and goes hostile for good.
    fn finish_flood(&mut self) -> Result<(), TestFailed> {
        while self.client.reclaim_tx().map_err(|e| self.err("reclaim", e))?.is_some() {}
        let s = self.client.stats();
        let back: u64 = s.tx_status.iter().sum();
        if back < self.pieces_out() {
            return Ok(()); // more to come back (the client asks to hear of them)
        }
        match self.flooding.offload_sent {
            None => {
                self.check_flood(&s)?;
                self.flooding.offload_sent = Some(s.tx_status);
                self.send_offload_attack()
            }
            Some(before) => self.finish_offload_attack(&s, before),
        }
    }

    /// Descriptors handed over so far: one per flood frame, two per attack frame.
    fn pieces_out(&self) -> u64 {
        let attack = if self.flooding.offload_sent.is_some() {
            2 * ATTACK.len() as u64
        } else {
            0
        };
        self.flooding.sent.iter().sum::<u64>() + attack
    }

    fn check_flood(&self, s: &vcpos_net_protocol::ClientStats) -> Result<(), TestFailed> {
        let sent = |k: Flood| self.flooding.sent[k as usize];
        let st = |t: TxStatus| s.tx_status[t as usize];
        ensure!(
            HOSTILE_TEST,
            st(TxStatus::Spoofed) == sent(Flood::Spoofed)
                && st(TxStatus::Sent) == sent(Flood::Broadcast) + sent(Flood::ToGuest) + sent(Flood::Unknown)
                && st(TxStatus::BadLength) == 0
                && st(TxStatus::DeviceError) == 0,
            "flood statuses: sent {}, spoofed {}, device error {}, bad length {} for {:?} sent",
            st(TxStatus::Sent),
            st(TxStatus::Spoofed),
            st(TxStatus::DeviceError),
            st(TxStatus::BadLength),
            self.flooding.sent
        );
        debug_println!(
            "net-client: flooder: stopped by the guest's ARP for 10.0.2.99 after {} frames: {} spoofing the guest's \
             MAC (all refused), {} broadcasts, {} to the guest, {} to an unknown MAC (all sent); now frames with \
             offload headers",
            s.sent,
            sent(Flood::Spoofed),
            sent(Flood::Broadcast),
            sent(Flood::ToGuest),
            sent(Flood::Unknown)
        );
        Ok(())
    }

    /// Sends [`ATTACK`]'s frames, each in two pieces of the transmit half.
    fn send_offload_attack(&mut self) -> Result<(), TestFailed> {
        let payload: [u8; ATTACK_PAYLOAD_LEN as usize] = core::array::from_fn(|i| i as u8);
        self.data
            .write_bytes(ATTACK_PAYLOAD as usize, &payload)
            .map_err(|e| fail(HOSTILE_TEST, format_args!("{e}")))?;
        for (k, &(a, _)) in ATTACK.iter().enumerate() {
            let at = ATTACK_HEADERS + 128 * k as u64;
            self.data
                .write_bytes(at as usize, &attack_headers(a))
                .map_err(|e| fail(HOSTILE_TEST, format_args!("{e}")))?;
            // The checksum offload cannot segment: a frame it could send whole.
            let len = if a == Attack::CsumField {
                500
            } else {
                ATTACK_PAYLOAD_LEN
            };
            self.client
                .send_frame(&[(at, 66), (ATTACK_PAYLOAD, len)], true)
                .map_err(|e| fail(HOSTILE_TEST, format_args!("offload attack frame {k}: {e}")))?;
        }
        if self.client.signal_needed().map_err(|e| self.err("signal", e))? {
            VCP.notify();
        }
        Ok(())
    }

    /// Checks what vcp-net said of every piece of the offload attack, then writes a
    /// descriptor outside the data region and corrupts the TX index.
    fn finish_offload_attack(
        &mut self,
        s: &vcpos_net_protocol::ClientStats,
        before: [u64; TX_STATUSES],
    ) -> Result<(), TestFailed> {
        let mut want = before;
        for (_, status) in ATTACK {
            want[status as usize] += 2;
        }
        ensure!(
            HOSTILE_TEST,
            s.tx_status == want,
            "offload attack statuses {:?} (sent, bad length, spoofed, device error, unsupported), expected {:?}",
            s.tx_status,
            want
        );
        debug_println!(
            "net-client: flooder: offload headers: a segmented frame spoofing the guest's MAC refused, a non-IPv4 \
             one, an undefined segmentation type and a checksum field past the headers unsupported, an honest \
             segmented frame sent; now a descriptor outside the data region and a corrupt TX index"
        );
        // Raw, past the client half (which refuses both): the next slot of the TX
        // active ring gets a descriptor far outside the data region, then the
        // producer index jumps by far more than the ring holds.
        let ring = ControlLayout::new(RING_CAPACITY)
            .map_err(|e| fail(HOSTILE_TEST, format_args!("layout: {e}")))?
            .tx_active;
        let index = self.pieces_out() as u32;
        let slot = ring.base() + SLOTS_OFFSET + (index & (ring.capacity() - 1)) as usize * ring.slot_size();
        self.control
            .write_bytes(slot, BufDesc::new(u64::MAX - 10, 60, 0).as_bytes())
            .map_err(|e| fail(HOSTILE_TEST, format_args!("{e}")))?;
        corrupt_tx_index(&self.control, index.wrapping_add(1))?;
        VCP.notify();
        corrupt_tx_index(&self.control, index.wrapping_add(1 << 30))?;
        VCP.notify();
        self.done = true;
        Ok(())
    }

    fn pump(&mut self) -> Result<(), TestFailed> {
        if let Some(raw) = self.raw.as_mut() {
            return raw.step();
        }
        if self.role == Role::Flooder && self.done {
            return Ok(());
        }
        let mut frame = [0u8; 2048];
        loop {
            while let Some(n) = self.client.recv(&mut frame).map_err(|e| self.err("recv", e))? {
                self.on_frame(&frame[..n])?;
            }
            if self.role == Role::Prober && !self.done {
                self.send_arps()?;
            }
            if self.role == Role::Flooder {
                if self.flooding.stop {
                    // Done once every frame is back; until then wait for them below.
                    self.finish_flood()?;
                    if self.done {
                        return Ok(());
                    }
                } else {
                    self.flood()?;
                }
            }
            if self.sender && !self.done {
                self.send_plan()?;
                if self.acked {
                    self.finish_sender()?;
                }
            }
            if self.client.signal_needed().map_err(|e| self.err("signal", e))? {
                VCP.notify();
            }
            // The flooder, stopped, waits for its last frames' statuses too.
            if self.role == Role::Flooder
                && self.flooding.stop
                && !self
                    .client
                    .request_tx_signal()
                    .map_err(|e| self.err("request tx signal", e))?
            {
                continue;
            }
            if self
                .client
                .request_signal()
                .map_err(|e| self.err("request signal", e))?
            {
                return Ok(());
            }
        }
    }
}

impl Handler for Tester {
    type Error = TestFailed;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), TestFailed> {
        self.pump()
    }
}

fn start() -> Result<Tester, TestFailed> {
    let control = shared_region!(control_vaddr, size = control_size);
    let control_copy = control.clone();
    let data = shared_region!(data_vaddr, size = data_size);
    let data_copy = data.clone();
    let mut client =
        SmallClient::new(control.clone(), data, RING_CAPACITY).map_err(|e| fail(TEST, format_args!("regions: {e}")))?;
    let info = client
        .connect()
        .map_err(|e| fail(TEST, format_args!("vcp-net info page: {e}")))?;
    let role = match info.mac {
        SENDER => Role::Sender,
        RECEIVER => Role::Receiver,
        PROBER => Role::Prober,
        HOSTILE => Role::Hostile,
        FLOODER => Role::Flooder,
        mac => return Err(fail(TEST, format_args!("unexpected MAC {mac:02x?}"))),
    };
    if role == Role::Prober {
        client
            .send(&arp_request())
            .map_err(|e| fail(TEST, format_args!("send the ARP request: {e}")))?;
    }
    let mut raw = None;
    if role == Role::Hostile {
        let mut r = Raw::new(control)?;
        r.start()?;
        raw = Some(r);
    }
    let sender = role == Role::Sender;
    debug_println!(
        "net-client: {} connected: mac {:02x?}, mtu {}, {} buffers, generation {}",
        match role {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
            Role::Prober => "prober",
            Role::Hostile => "hostile",
            Role::Flooder => "flooder",
        },
        info.mac,
        info.mtu,
        info.data_size / u64::from(BUF_SIZE),
        info.generation
    );
    Ok(Tester {
        client,
        role,
        sender,
        next: 0,
        acked: false,
        done: false,
        bulk_start: 0,
        raw,
        arps_sent: u32::from(role == Role::Prober),
        replies: 0,
        flooding: Flooding::default(),
        control: control_copy,
        data: data_copy,
    })
}

#[protection_domain]
fn init() -> impl Handler {
    let mut t = match start() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = t.pump() {
        panic!("{e}");
    }
    t
}
