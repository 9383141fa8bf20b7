//! Test helpers for the offloads, shared by the crate's unit tests and the engine's
//! host tests (feature `fake`): IPv4 TCP frames and a receiver's checksum checks.

use alloc::vec;
use alloc::vec::Vec;

use vcpos_net_protocol::OffloadHeader;
use zerocopy::little_endian::U16;

/// The RFC 1071 sum of `bytes`, folded (not complemented), the plain way: a byte at
/// an even offset is a word's high half.
pub fn rfc1071(bytes: &[u8]) -> u16 {
    let mut s: u64 = 0;
    for (i, b) in bytes.iter().enumerate() {
        s += if i % 2 == 0 { u64::from(*b) << 8 } else { u64::from(*b) };
    }
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// An IPv4 TCP frame from `src` to `dst`: a 20-byte IPv4 header (identification
/// 0x1234, don't fragment, 10.0.2.15 to 10.0.2.2), a TCP header with `options` bytes
/// of options (a multiple of 4) and sequence number `seq` and `flags`, then `payload`
/// bytes of a pattern. Lengths and checksums are left to the offload.
pub fn tcp_frame(dst: [u8; 6], src: [u8; 6], seq: u32, options: usize, payload: usize, flags: u8) -> Vec<u8> {
    let tcp = 34;
    let data = tcp + 20 + options;
    let mut f = vec![0u8; data + payload];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[14 + 4..14 + 6].copy_from_slice(&0x1234u16.to_be_bytes());
    f[14 + 6] = 0x40;
    f[14 + 8] = 64;
    f[14 + 9] = 6;
    f[14 + 12..14 + 20].copy_from_slice(&[10, 0, 2, 15, 10, 0, 2, 2]);
    f[tcp..tcp + 2].copy_from_slice(&40000u16.to_be_bytes());
    f[tcp + 2..tcp + 4].copy_from_slice(&5201u16.to_be_bytes());
    f[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
    f[tcp + 12] = (((20 + options) / 4) as u8) << 4;
    f[tcp + 13] = flags;
    for (i, b) in f[data..].iter_mut().enumerate() {
        *b = (i * 13 + 5) as u8;
    }
    f
}

/// Whether wire frame `w` is an IPv4 TCP segment a receiver accepts: its length is
/// the IP total length's, the IP header checksum and the TCP checksum (over the
/// pseudo-header) verify.
pub fn tcp_checksums_ok(w: &[u8]) -> bool {
    let ihl = usize::from(w[14] & 0xf) * 4;
    let ip = &w[14..14 + ihl];
    let tot = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if w.len() != 14 + tot {
        return false;
    }
    let tcp = &w[14 + ihl..];
    let mut p = vec![0u8; 12];
    p[..8].copy_from_slice(&ip[12..20]);
    p[9] = 6;
    p[10..12].copy_from_slice(&(tcp.len() as u16).to_be_bytes());
    p.extend_from_slice(tcp);
    rfc1071(ip) == 0xffff && rfc1071(&p) == 0xffff
}

/// An offload header.
pub fn offload_header(flags: u8, gso_type: u8, gso_size: u16, csum_start: u16, csum_offset: u16) -> OffloadHeader {
    OffloadHeader {
        flags,
        gso_type,
        gso_size: U16::new(gso_size),
        csum_start: U16::new(csum_start),
        csum_offset: U16::new(csum_offset),
        ..OffloadHeader::default()
    }
}
