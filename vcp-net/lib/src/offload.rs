//! Transmit offloads done in software for the clients (the NIC, QEMU's virtio-net on
//! a user network, offers none): checksum offload and IPv4 TCP segmentation (TSO).
//!
//! A frame with an offload header ([`OffloadHeader`], untrusted) becomes a [`Plan`]:
//! how many wire frames it makes and, for each, its header (built here from the
//! checked copy of the client's headers) and which bytes of the client's frame are
//! its payload (sent in place). The checksums need the payload's sum, which the
//! engine reads from the client's data region ([`crate::DataRegion::sum`]) and gives to
//! [`Plan::finish`]. Everything is checked before use: a header the plan cannot be
//! made for refuses the frame ([`vcpos_net_protocol::TxStatus::Unsupported`]), it
//! never panics.

use vcpos_net_protocol::{OffloadHeader, GSO_NONE, GSO_TCPV4, MAX_FRAME_LEN, OFFLOAD_F_NEEDS_CSUM};

/// The longest header a plan builds: Ethernet (14), IPv4 with options (60), TCP with
/// options (60); also the most a checksum offload's field may lie into the frame.
pub const MAX_HEADER: usize = 14 + 60 + 60;

const ETH: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_TCP: u8 = 6;
const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// A ones'-complement sum of 16-bit big-endian words (RFC 1071), kept wide and
/// folded at the end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum(pub u64);

impl Sum {
    /// The sum of `bytes` as if they started at an even offset (an odd last byte is
    /// the high half of a word). Summed as little-endian 64-bit words with the carries
    /// kept (2^64 = 1 modulo 2^16 - 1, so this is the sum of little-endian 16-bit
    /// words), then byte-swapped into the big-endian words' sum (RFC 1071 §2(B)):
    /// about three instructions per 8 bytes.
    pub fn of(bytes: &[u8]) -> Sum {
        let mut acc: u128 = 0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            acc += u128::from(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut last = [0u8; 8];
        last[..rest.len()].copy_from_slice(rest);
        acc += u128::from(u64::from_le_bytes(last));
        let le = Sum((acc as u64 & 0xffff_ffff) + (acc as u64 >> 32) + ((acc >> 64) as u64)).fold();
        Sum(u64::from(le.swap_bytes()))
    }

    /// This sum plus `other`, where `other` was summed from an offset `at` bytes
    /// into this sum's data (odd: its bytes sit in the other halves of the words).
    pub fn add_at(self, other: Sum, at: usize) -> Sum {
        let o = if at % 2 == 1 {
            Sum(u64::from(other.fold().swap_bytes()))
        } else {
            other
        };
        Sum(self.0 + o.0)
    }

    /// The sum folded to 16 bits (not complemented).
    pub fn fold(self) -> u16 {
        let mut s = self.0;
        while s >> 16 != 0 {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// The checksum to store: the folded sum complemented; 0 becomes 0xffff (the same
    /// value in ones' complement, and UDP's "no checksum" is never produced).
    pub fn checksum(self) -> u16 {
        match !self.fold() {
            0 => 0xffff,
            c => c,
        }
    }
}

/// A byte range of the client's frame (offsets from its first byte, the offload
/// header not counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First byte.
    pub start: u32,
    /// Bytes.
    pub len: u32,
}

/// How a frame is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// As it is: one wire frame, the checked 14-byte Ethernet header then the rest.
    Plain,
    /// One wire frame whose checksum the engine computes: from `start` to the frame's
    /// end, stored at `field`; the header is the frame's first `header` bytes (up to
    /// the field's end), the rest is sent in place.
    Csum {
        /// Header bytes copied (at least 14, through the checksum field).
        header: u32,
        /// Where the sum starts.
        start: u32,
        /// Where the checksum goes.
        field: u32,
    },
    /// IPv4 TCP segmentation: `segments` wire frames, each the frame's Ethernet, IPv4
    /// and TCP headers (`header` bytes, IPv4 header at 14, TCP at `tcp`) rewritten for
    /// it and up to `mss` payload bytes.
    Tso {
        /// Header bytes (Ethernet + IPv4 + TCP).
        header: u32,
        /// Offset of the TCP header.
        tcp: u32,
        /// Payload bytes per segment.
        mss: u32,
        /// Wire frames.
        segments: u32,
    },
}

/// Why a plan cannot be made (the frame is refused as unsupported).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// The offload header asks for something not offered or undefined.
    Request,
    /// The frame's headers are not ones the offload can be done for (not IPv4 TCP,
    /// fragmented, truncated, a segment size that does not fit the MTU, a checksum
    /// field outside the frame or past [`MAX_HEADER`]).
    Headers,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

impl Plan {
    /// The plan for a frame of `frame_len` bytes whose first bytes (at least
    /// `min(frame_len, MAX_HEADER)`) are `head`, with offload header `offload` (None:
    /// the frame had none).
    pub fn new(offload: Option<&OffloadHeader>, head: &[u8], frame_len: u32) -> Result<Plan, PlanError> {
        if frame_len < ETH as u32 {
            return Err(PlanError::Headers);
        }
        let Some(o) = offload else { return Ok(Plan::Plain) };
        if o.flags & !OFFLOAD_F_NEEDS_CSUM != 0 {
            return Err(PlanError::Request);
        }
        if o.gso_type == GSO_NONE && frame_len > MAX_FRAME_LEN {
            // Only segmentation makes a longer frame fit the MTU.
            return Err(PlanError::Headers);
        }
        match o.gso_type {
            GSO_NONE if o.flags & OFFLOAD_F_NEEDS_CSUM == 0 => Ok(Plan::Plain),
            GSO_NONE => {
                let start = u32::from(o.csum_start.get());
                let field = start + u32::from(o.csum_offset.get());
                let header = (field + 2).max(ETH as u32);
                if header as usize > MAX_HEADER || header > frame_len || header as usize > head.len() {
                    return Err(PlanError::Headers);
                }
                Ok(Plan::Csum { header, start, field })
            }
            GSO_TCPV4 => Self::tso(head, frame_len, u32::from(o.gso_size.get())),
            _ => Err(PlanError::Request),
        }
    }

    fn tso(head: &[u8], frame_len: u32, mss: u32) -> Result<Plan, PlanError> {
        let h = PlanError::Headers;
        if be16(head, 12).ok_or(h)? != ETHERTYPE_IPV4 {
            return Err(h);
        }
        let vihl = *head.get(ETH).ok_or(h)?;
        let ihl = usize::from(vihl & 0xf) * 4;
        // Version 4, a header of 20..=60 bytes, TCP, not a fragment (MF clear, offset 0).
        if vihl >> 4 != 4 || ihl < 20 || *head.get(ETH + 9).ok_or(h)? != PROTO_TCP {
            return Err(h);
        }
        if be16(head, ETH + 6).ok_or(h)? & 0x3fff != 0 {
            return Err(h);
        }
        let tcp = ETH + ihl;
        let doff = usize::from(*head.get(tcp + 12).ok_or(h)? >> 4) * 4;
        let header = tcp + doff;
        if doff < 20 || header > head.len() || header as u32 > frame_len {
            return Err(h);
        }
        if mss == 0 || header as u32 + mss > MAX_FRAME_LEN {
            return Err(h);
        }
        let payload = frame_len - header as u32;
        Ok(Plan::Tso {
            header: header as u32,
            tcp: tcp as u32,
            mss,
            segments: payload.div_ceil(mss).max(1),
        })
    }

    /// Wire frames the plan makes.
    pub fn segments(&self) -> u32 {
        match *self {
            Plan::Tso { segments, .. } => segments,
            _ => 1,
        }
    }

    /// Header bytes of every wire frame (copied from the client's checked headers).
    pub fn header_len(&self) -> u32 {
        match *self {
            Plan::Plain => ETH as u32,
            Plan::Csum { header, .. } | Plan::Tso { header, .. } => header,
        }
    }

    /// The payload of wire frame `k` of a frame of `frame_len` bytes: the bytes after
    /// the header, sent in place.
    pub fn payload(&self, k: u32, frame_len: u32) -> Range {
        match *self {
            Plan::Tso { header, mss, .. } => {
                let start = header + k * mss;
                Range {
                    start,
                    len: mss.min(frame_len.saturating_sub(start)),
                }
            }
            _ => {
                let start = self.header_len();
                Range {
                    start,
                    len: frame_len.saturating_sub(start),
                }
            }
        }
    }

    /// Whether wire frames need the payload's sum ([`Self::finish`]).
    pub fn needs_sum(&self) -> bool {
        !matches!(self, Plan::Plain)
    }

    /// Writes wire frame `k`'s header into `out` (`header_len` bytes) from the
    /// client's checked headers `head`, given the sum of its payload (summed from its
    /// first byte).
    pub fn finish(&self, k: u32, head: &[u8], payload: Range, payload_sum: Sum, out: &mut [u8]) {
        let n = self.header_len() as usize;
        let out = &mut out[..n];
        out.copy_from_slice(&head[..n]);
        match *self {
            Plan::Plain => {}
            Plan::Csum { header, start, field } => {
                let (start, field) = (start as usize, field as usize);
                let s = Sum::of(&out[start.min(n)..]).add_at(payload_sum, header as usize - start.min(n));
                out[field..field + 2].copy_from_slice(&s.checksum().to_be_bytes());
            }
            Plan::Tso { tcp, segments, mss, .. } => {
                let tcp = tcp as usize;
                let last = k + 1 == segments;
                let tcp_len = (n - tcp) as u32 + payload.len;
                // IPv4: total length, identification + k, header checksum.
                let ip = &mut out[ETH..tcp];
                ip[2..4].copy_from_slice(&((tcp - ETH) as u16 + tcp_len as u16).to_be_bytes());
                let id = u16::from_be_bytes([ip[4], ip[5]]).wrapping_add(k as u16);
                ip[4..6].copy_from_slice(&id.to_be_bytes());
                ip[10..12].fill(0);
                let ip_sum = Sum::of(ip).checksum();
                ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
                let pseudo = {
                    let mut p = [0u8; 12];
                    p[..8].copy_from_slice(&ip[12..20]);
                    p[9] = PROTO_TCP;
                    p[10..12].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                    Sum::of(&p)
                };
                // TCP: sequence number + k * mss; FIN and PSH on the last segment
                // only, CWR on the first only; checksum over pseudo-header, header and
                // payload.
                let t = &mut out[tcp..];
                let seq = u32::from_be_bytes([t[4], t[5], t[6], t[7]]).wrapping_add(k.wrapping_mul(mss));
                t[4..8].copy_from_slice(&seq.to_be_bytes());
                if !last {
                    t[13] &= !(TCP_FIN | TCP_PSH);
                }
                if k != 0 {
                    t[13] &= !TCP_CWR;
                }
                t[16..18].fill(0);
                let sum = Sum(pseudo.0 + Sum::of(t).0).add_at(payload_sum, t.len());
                t[16..18].copy_from_slice(&sum.checksum().to_be_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{offload_header as offload, rfc1071 as naive, tcp_checksums_ok as checksums_ok};

    /// An IPv4 TCP frame: 20-byte IP header, TCP with 12 bytes of options, payload.
    fn tcp_frame(payload: usize, flags: u8) -> Vec<u8> {
        crate::testing::tcp_frame([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 0xfffff000, 12, payload, flags)
    }

    #[test]
    fn sums_match_rfc1071_at_any_split() {
        let data: Vec<u8> = (0..1501u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in [0, 1, 2, 7, 8, 9, 63, 1500, 1501] {
            assert_eq!(Sum::of(&data[..len]).fold(), naive(&data[..len]), "len {len}");
        }
        for split in [0, 1, 2, 3, 8, 9, 700, 1499, 1501] {
            let s = Sum::of(&data[..split]).add_at(Sum::of(&data[split..]), split);
            assert_eq!(s.fold(), naive(&data), "split {split}");
        }
        // A run of all-ones words folds without overflow.
        assert_eq!(Sum::of(&[0xff; 0x11000]).fold(), 0xffff);
    }

    fn wire(plan: &Plan, k: u32, f: &[u8]) -> Vec<u8> {
        let r = plan.payload(k, f.len() as u32);
        let payload = &f[r.start as usize..(r.start + r.len) as usize];
        let mut h = [0u8; MAX_HEADER];
        plan.finish(k, &f[..f.len().min(MAX_HEADER)], r, Sum::of(payload), &mut h);
        let mut w = h[..plan.header_len() as usize].to_vec();
        w.extend_from_slice(payload);
        w
    }

    #[test]
    fn tso_cuts_a_frame_into_valid_segments() {
        let f = tcp_frame(10_000, TCP_PSH | TCP_FIN | TCP_CWR | 0x10);
        let o = offload(OFFLOAD_F_NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16);
        let plan = Plan::new(Some(&o), &f[..MAX_HEADER], f.len() as u32).unwrap();
        assert_eq!(plan.segments(), 7);
        let mut payload = Vec::new();
        for k in 0..7 {
            let w = wire(&plan, k, &f);
            assert!(checksums_ok(&w), "segment {k}");
            assert!(w.len() <= MAX_FRAME_LEN as usize);
            let seq = u32::from_be_bytes([w[38], w[39], w[40], w[41]]);
            assert_eq!(seq, 0xfffff000u32.wrapping_add(k * 1448));
            assert_eq!(u16::from_be_bytes([w[18], w[19]]), 0x1234 + k as u16);
            let flags = w[47];
            assert_eq!(flags & TCP_FIN != 0, k == 6);
            assert_eq!(flags & TCP_PSH != 0, k == 6);
            assert_eq!(flags & TCP_CWR != 0, k == 0);
            assert_eq!(flags & 0x10, 0x10);
            payload.extend_from_slice(&w[66..]);
        }
        assert_eq!(payload, f[66..]);
    }

    #[test]
    fn checksum_offload_fills_the_field_from_any_start() {
        // A UDP-like frame: the client seeds the field with its pseudo-header sum.
        let mut f: Vec<u8> = (0..301u32).map(|i| (i * 31 + 1) as u8).collect();
        for (start, offset) in [(34u16, 6u16), (35, 6), (34, 16), (14, 2)] {
            let o = offload(OFFLOAD_F_NEEDS_CSUM, GSO_NONE, 0, start, offset);
            let plan = Plan::new(Some(&o), &f[..MAX_HEADER], f.len() as u32).unwrap();
            let field = usize::from(start + offset);
            f[field..field + 2].copy_from_slice(&[0x12, 0x34]);
            let w = wire(&plan, 0, &f);
            assert_eq!(w.len(), f.len());
            // The receiver's check: the sum over start.. with the field is all ones,
            // given the seed the client put there was part of the sum.
            let mut seeded = w.clone();
            seeded[field..field + 2].copy_from_slice(&[0x12, 0x34]);
            let without = {
                let mut z = seeded[usize::from(start)..].to_vec();
                z[usize::from(offset)..usize::from(offset) + 2].fill(0);
                naive(&z)
            };
            let c = u16::from_be_bytes([w[field], w[field + 1]]);
            let s = Sum(u64::from(without) + 0x1234 + u64::from(c));
            assert_eq!(s.fold(), 0xffff, "start {start} offset {offset}");
            assert_eq!(w[..field], f[..field]);
            assert_eq!(w[field + 2..], f[field + 2..]);
        }
    }

    #[test]
    fn hostile_offload_headers_are_refused() {
        let f = tcp_frame(3000, 0x10);
        let len = f.len() as u32;
        let head = &f[..MAX_HEADER];
        let tso = |mss| offload(OFFLOAD_F_NEEDS_CSUM, GSO_TCPV4, mss, 34, 16);
        assert_eq!(Plan::new(Some(&tso(0)), head, len), Err(PlanError::Headers));
        assert_eq!(Plan::new(Some(&tso(1449)), head, len), Err(PlanError::Headers));
        assert!(Plan::new(Some(&tso(1448)), head, len).is_ok());
        assert_eq!(Plan::new(Some(&tso(1)), head, len).unwrap().segments(), 3000);
        assert_eq!(
            Plan::new(Some(&offload(0, 3, 1000, 0, 0)), head, len),
            Err(PlanError::Request)
        );
        assert_eq!(
            Plan::new(Some(&offload(0x80, 0, 0, 0, 0)), head, len),
            Err(PlanError::Request)
        );
        assert_eq!(
            Plan::new(Some(&offload(2, 0, 0, 0, 0)), head, len),
            Err(PlanError::Request)
        );
        let csum = |s, o| offload(OFFLOAD_F_NEEDS_CSUM, GSO_NONE, 0, s, o);
        assert_eq!(
            Plan::new(Some(&csum(0xffff, 0xffff)), head, len),
            Err(PlanError::Headers)
        );
        assert_eq!(Plan::new(Some(&csum(120, 20)), head, len), Err(PlanError::Headers));
        assert_eq!(Plan::new(Some(&csum(20, 10)), &f[..31], 31), Err(PlanError::Headers));
        let mut bad = f.clone();
        for (at, v) in [(12, 0x86), (14, 0x65), (14, 0x44), (23, 17), (20, 0x20), (46, 0x40)] {
            bad.copy_from_slice(&f);
            bad[at] = v;
            assert_eq!(
                Plan::new(Some(&tso(1000)), &bad[..MAX_HEADER], len),
                Err(PlanError::Headers),
                "byte {at} = {v:#x}"
            );
        }
        // Truncated headers, and a frame shorter than its own headers.
        assert_eq!(Plan::new(Some(&tso(1000)), &f[..50], 50), Err(PlanError::Headers));
        assert_eq!(Plan::new(Some(&tso(1000)), &f[..65], 65), Err(PlanError::Headers));
        // A bare header: one segment without payload.
        let p = Plan::new(Some(&tso(1000)), &f[..66], 66).unwrap();
        assert_eq!((p.segments(), p.payload(0, 66).len), (1, 0));
        assert!(checksums_ok(&wire(&p, 0, &f[..66])));
        // Without segmentation a frame must fit the MTU.
        let long = tcp_frame(1500, 0x10);
        let l = long.len() as u32;
        assert_eq!(
            Plan::new(Some(&csum(34, 16)), &long[..MAX_HEADER], l),
            Err(PlanError::Headers)
        );
        assert_eq!(
            Plan::new(Some(&offload(0, 0, 0, 0, 0)), &long[..MAX_HEADER], l),
            Err(PlanError::Headers)
        );
        // No offload asked: plain.
        let short = &f[..1000];
        assert_eq!(
            Plan::new(Some(&offload(0, 0, 0, 0, 0)), &short[..MAX_HEADER], 1000),
            Ok(Plan::Plain)
        );
        assert_eq!(Plan::new(None, head, len), Ok(Plan::Plain));
        assert_eq!(Plan::new(None, &f[..13], 13), Err(PlanError::Headers));
    }

    /// Random offload headers and header bytes: a plan is made or refused, never a
    /// panic, and every segment of a plan made stays within the frame and the MTU.
    #[test]
    fn random_headers_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = tcp_frame(4000, 0x18);
        for _ in 0..20_000 {
            let mut f = base.clone();
            for _ in 0..(next() % 4) {
                let at = (next() % 80) as usize;
                f[at] = next() as u8;
            }
            let len = (next() % f.len() as u64) as u32;
            let head = &f[..(len as usize).min(MAX_HEADER)];
            let o = offload(
                (next() % 2) as u8,
                [0, 1, 1, 3][(next() % 4) as usize],
                (next() % 2000) as u16,
                (next() % 200) as u16,
                (next() % 40) as u16,
            );
            if let Ok(plan) = Plan::new(Some(&o), head, len) {
                for k in 0..plan.segments().min(50) {
                    let r = plan.payload(k, len);
                    assert!(r.start + r.len <= len);
                    assert!(plan.header_len() + r.len <= MAX_FRAME_LEN);
                    let mut h = [0u8; MAX_HEADER];
                    plan.finish(k, head, r, Sum::default(), &mut h);
                }
            }
        }
    }
}
