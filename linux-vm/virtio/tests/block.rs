//! The virtio block device against an in-memory fake backend that completes requests
//! when the test says, in any order: requests, completions, features and config, and
//! a misbehaving driver (broken chains, wrong directions, out-of-range sectors, too
//! many segments, ...). The device must never panic and never hand the backend a
//! range outside guest RAM.

mod common;

use std::collections::VecDeque;

use common::{Buf, Rng, TestDriver, NEEDS_RESET, RAM_BASE, RAM_SIZE};
use vcpos_virtio::block::*;
use vcpos_virtio::mmio::reg;
use vcpos_virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use vcpos_virtio::{GuestError, GuestMemory};

const SECTORS: u64 = 64;

/// A submitted request, as the fake saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Submitted {
    id: RequestId,
    op: BlockOp,
    sector: u64,
    segments: Vec<DataSegment>,
}

/// An in-memory disk that keeps submitted requests until the test serves them.
struct FakeDisk {
    info: BackendInfo,
    disk: Vec<u8>,
    submitted: VecDeque<Submitted>,
    done: VecDeque<Completion>,
    /// Submissions refused with Busy from now on.
    busy: bool,
    /// Every request ever submitted.
    log: Vec<Submitted>,
}

impl FakeDisk {
    fn new() -> Self {
        FakeDisk {
            info: BackendInfo {
                capacity_sectors: SECTORS,
                block_size: 512,
                seg_max: 8,
                size_max: 4096,
                queue_depth: 64,
                read_only: false,
                flush: true,
                fua: true,
                id: *b"vcpos-disk-0\0\0\0\0\0\0\0\0",
            },
            disk: (0..SECTORS * 512).map(|i| (i * 7 % 251) as u8).collect(),
            submitted: VecDeque::new(),
            done: VecDeque::new(),
            busy: false,
            log: Vec::new(),
        }
    }
}

impl BlockBackend for FakeDisk {
    fn info(&self) -> BackendInfo {
        self.info
    }

    fn submit(&mut self, id: RequestId, op: BlockOp, sector: u64, segments: &[DataSegment]) -> Result<(), SubmitError> {
        if self.busy {
            return Err(SubmitError::Busy);
        }
        // The device's promises to the backend.
        assert!(
            segments.len() <= self.info.seg_max as usize,
            "too many segments passed on"
        );
        for s in segments {
            assert!(s.len > 0 && s.len <= self.info.size_max, "bad segment passed on: {s:?}");
            assert!(
                s.offset + u64::from(s.len) <= RAM_SIZE as u64,
                "segment outside guest RAM: {s:?}"
            );
        }
        let bytes: u64 = segments.iter().map(|s| u64::from(s.len)).sum();
        assert!(sector + bytes / 512 <= self.info.capacity_sectors, "past the capacity");
        assert!(
            !(self.info.read_only && matches!(op, BlockOp::Write { .. })),
            "write to a read-only disk"
        );
        let s = Submitted {
            id,
            op,
            sector,
            segments: segments.to_vec(),
        };
        self.log.push(s.clone());
        self.submitted.push_back(s);
        Ok(())
    }

    fn poll(&mut self) -> Option<Completion> {
        self.done.pop_front()
    }
}

type Driver = TestDriver<Block<FakeDisk>>;

fn driver_with(disk: FakeDisk, features: u64) -> Driver {
    let mut d = TestDriver::new(Block::new(disk, RAM_BASE));
    d.init(features, 1, 128);
    d
}

fn driver() -> Driver {
    driver_with(
        FakeDisk::new(),
        VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE,
    )
}

fn disk(d: &mut Driver) -> &mut FakeDisk {
    d.t.device_mut().backend_mut()
}

fn header(kind: u32, sector: u64) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&kind.to_le_bytes());
    h.extend_from_slice(&0u32.to_le_bytes());
    h.extend_from_slice(&sector.to_le_bytes());
    h
}

/// Serves the submitted request with `id` (reads and writes between the disk and
/// guest RAM, as a VCP's DMA would) and queues its completion.
fn serve(d: &mut Driver, id: RequestId, status: BlockStatus) {
    let fake = disk(d);
    let at = fake
        .submitted
        .iter()
        .position(|s| s.id == id)
        .expect("request submitted");
    let s = fake.submitted.remove(at).unwrap();
    let mut pos = s.sector * 512;
    for seg in &s.segments {
        let len = seg.len as usize;
        let addr = RAM_BASE + seg.offset;
        match s.op {
            BlockOp::Read => {
                let data = d.t.device_mut().backend_mut().disk[pos as usize..][..len].to_vec();
                d.mem.inner.write(addr, &data).unwrap();
            }
            BlockOp::Write { .. } => {
                let data = d.bytes(addr, len);
                d.t.device_mut().backend_mut().disk[pos as usize..][..len].copy_from_slice(&data);
            }
            BlockOp::Flush => {}
        }
        pos += len as u64;
    }
    disk(d).done.push_back(Completion { id, status });
}

/// Serves every submitted request in submission order, then polls the device.
fn serve_all(d: &mut Driver) {
    let ids: Vec<RequestId> = disk(d).submitted.iter().map(|s| s.id).collect();
    for id in ids {
        serve(d, id, BlockStatus::Ok);
    }
    d.poll();
}

fn status_at(d: &Driver, addr: u64) -> u8 {
    d.bytes(addr, 1)[0]
}

/// Posts a read of `sectors` sectors at `sector` with data and status in separate
/// descriptors; returns (head, data address, status address).
fn post_read(d: &mut Driver, sector: u64, sectors: u32) -> (u16, u64, u64) {
    let h = header(VIRTIO_BLK_T_IN, sector);
    let (head, a) = d.post(0, &[Buf::Out(&h), Buf::In(sectors * 512), Buf::In(1)]);
    (head, a[1], a[2])
}

#[test]
fn config_space_and_features_come_from_the_backend() {
    let mut d = TestDriver::new(Block::new(FakeDisk::new(), RAM_BASE));
    let f = d.device_features();
    for bit in [
        VIRTIO_BLK_F_SEG_MAX,
        VIRTIO_BLK_F_SIZE_MAX,
        VIRTIO_BLK_F_BLK_SIZE,
        VIRTIO_BLK_F_FLUSH,
        VIRTIO_BLK_F_CONFIG_WCE,
    ] {
        assert_ne!(f & bit, 0, "feature {bit:#x} offered");
    }
    assert_eq!(f & VIRTIO_BLK_F_RO, 0);
    assert_eq!(d.rd(reg::DEVICE_ID), BLOCK_DEVICE_ID);
    let cap = u64::from(d.rd(reg::CONFIG)) | (u64::from(d.rd(reg::CONFIG + 4)) << 32);
    assert_eq!(cap, SECTORS);
    assert_eq!(d.rd(reg::CONFIG + 8), 4096, "size_max");
    assert_eq!(d.rd(reg::CONFIG + 12), 8, "seg_max");
    assert_eq!(d.rd(reg::CONFIG + 20), 512, "blk_size");
    assert_eq!(d.t.read(reg::CONFIG + 32, 1), 1, "writeback by default");

    let mut ro = FakeDisk::new();
    ro.info.read_only = true;
    ro.info.flush = false;
    let mut d = TestDriver::new(Block::new(ro, RAM_BASE));
    let f = d.device_features();
    assert_ne!(f & VIRTIO_BLK_F_RO, 0);
    assert_eq!(f & (VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_CONFIG_WCE), 0);
}

#[test]
fn write_then_read_back_zero_copy() {
    let mut d = driver();
    let data: Vec<u8> = (0..1024u32).map(|i| (i % 256) as u8 ^ 0x5a).collect();
    let h = header(VIRTIO_BLK_T_OUT, 3);
    let (head, a) = d.post(0, &[Buf::Out(&h), Buf::Out(&data), Buf::In(1)]);
    d.mem.inner.write(a[2], &[0xee]).unwrap();
    assert!(!d.notify(0), "nothing completes before the backend does");
    let s = disk(&mut d).submitted[0].clone();
    assert_eq!(s.op, BlockOp::Write { fua: false });
    assert_eq!(s.sector, 3);
    // The data segment names the guest's own buffer: no copy in the VMM.
    assert_eq!(
        s.segments,
        vec![DataSegment {
            offset: a[1] - RAM_BASE,
            len: 1024
        }]
    );
    assert_eq!(status_at(&d, a[2]), 0xee, "status written only on completion");
    serve_all(&mut d);
    assert_eq!(d.used(0), vec![(u32::from(head), 1)]);
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_OK);
    assert_eq!(&disk(&mut d).disk[3 * 512..5 * 512], &data[..]);

    let (head, buf, st) = post_read(&mut d, 3, 2);
    d.notify(0);
    serve_all(&mut d);
    assert_eq!(d.used(0), vec![(u32::from(head), 1025)]);
    assert_eq!(status_at(&d, st), VIRTIO_BLK_S_OK);
    assert_eq!(d.bytes(buf, 1024), data);
    assert!(d.irqs >= 2);
}

#[test]
fn header_data_and_status_may_share_descriptors() {
    let mut d = driver();
    // Header and write data in one readable descriptor; read data and status in one
    // writable descriptor.
    let mut req = header(VIRTIO_BLK_T_OUT, 1);
    req.extend(std::iter::repeat_n(0xabu8, 512));
    let (_, a) = d.post(0, &[Buf::Out(&req), Buf::In(1)]);
    d.notify(0);
    assert_eq!(
        disk(&mut d).submitted[0].segments,
        vec![DataSegment {
            offset: a[0] + 16 - RAM_BASE,
            len: 512
        }]
    );
    serve_all(&mut d);
    assert_eq!(status_at(&d, a[1]), VIRTIO_BLK_S_OK);
    let h = header(VIRTIO_BLK_T_IN, 1);
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(513)]);
    d.notify(0);
    serve_all(&mut d);
    assert_eq!(d.bytes(a[1], 512), vec![0xab; 512]);
    assert_eq!(status_at(&d, a[1] + 512), VIRTIO_BLK_S_OK);
}

#[test]
fn many_requests_in_flight_complete_out_of_order() {
    let mut d = driver();
    // 64 reads of two descriptors each fill the 128-entry descriptor table: header,
    // then data and status in one writable descriptor.
    let mut posted = Vec::new();
    for i in 0..64u64 {
        let h = header(VIRTIO_BLK_T_IN, i);
        let (head, a) = d.post(0, &[Buf::Out(&h), Buf::In(513)]);
        posted.push((head, a[1], a[1] + 512));
    }
    d.notify(0);
    assert_eq!(d.t.device().in_flight(), 64);
    let ids: Vec<RequestId> = disk(&mut d).submitted.iter().map(|s| s.id).collect();
    assert_eq!(ids.len(), 64);
    // Complete in reverse order, one failing.
    for (k, id) in ids.iter().rev().enumerate() {
        serve(
            &mut d,
            *id,
            if k == 10 { BlockStatus::IoError } else { BlockStatus::Ok },
        );
    }
    d.poll();
    let used = d.used(0);
    let heads: Vec<u32> = used.iter().map(|u| u.0).collect();
    let expected: Vec<u32> = posted.iter().rev().map(|p| u32::from(p.0)).collect();
    assert_eq!(heads, expected, "used in completion order");
    for (k, p) in posted.iter().rev().enumerate() {
        let want = if k == 10 { VIRTIO_BLK_S_IOERR } else { VIRTIO_BLK_S_OK };
        assert_eq!(status_at(&d, p.2), want);
    }
    // Each read got its own sector's data.
    let expected_disk = disk(&mut d).disk.clone();
    for (i, p) in posted.iter().enumerate() {
        assert_eq!(d.bytes(p.1, 512), expected_disk[i * 512..][..512], "read {i}");
    }
    assert_eq!(d.t.device().in_flight(), 0);
    assert_eq!(d.t.device().stats().completed, 64);
}

#[test]
fn backend_depth_and_busy_hold_requests_until_room() {
    let mut fake = FakeDisk::new();
    fake.info.queue_depth = 2;
    let mut d = driver_with(fake, VIRTIO_BLK_F_FLUSH);
    for i in 0..5 {
        post_read(&mut d, i, 1);
    }
    d.notify(0);
    assert_eq!(disk(&mut d).submitted.len(), 2, "no more than the backend's depth");
    serve_all(&mut d);
    assert_eq!(disk(&mut d).log.len(), 4, "completions make room for more");
    // A busy backend: the request is kept and submitted again later.
    disk(&mut d).busy = true;
    let first = disk(&mut d).submitted[0].id;
    serve(&mut d, first, BlockStatus::Ok);
    d.poll();
    assert_eq!(disk(&mut d).log.len(), 4);
    disk(&mut d).busy = false;
    d.poll();
    assert_eq!(disk(&mut d).log.len(), 5, "the stalled request went out");
    serve_all(&mut d);
    serve_all(&mut d);
    assert_eq!(d.used(0).len(), 5);
    assert_eq!(d.t.device().in_flight(), 0);
}

#[test]
fn flush_and_fua_reach_the_backend() {
    // FLUSH negotiated, writeback cache: plain writes, flushes passed through.
    let mut d = driver();
    let h = header(VIRTIO_BLK_T_FLUSH, 0);
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(1)]);
    d.notify(0);
    assert_eq!(disk(&mut d).submitted[0].op, BlockOp::Flush);
    serve_all(&mut d);
    assert_eq!(status_at(&d, a[1]), VIRTIO_BLK_S_OK);

    let write = |d: &mut Driver| {
        let h = header(VIRTIO_BLK_T_OUT, 0);
        d.post(0, &[Buf::Out(&h), Buf::Out(&[1; 512]), Buf::In(1)]);
        d.notify(0);
        let op = disk(d).submitted.back().unwrap().op;
        serve_all(d);
        op
    };
    assert_eq!(write(&mut d), BlockOp::Write { fua: false });
    // Without FLUSH the driver expects write-through: every write is FUA.
    let mut d = driver_with(FakeDisk::new(), 0);
    assert_eq!(write(&mut d), BlockOp::Write { fua: true });
    // CONFIG_WCE: the driver switches to write-through with writeback = 0.
    let mut d = driver_with(FakeDisk::new(), VIRTIO_BLK_F_FLUSH | VIRTIO_BLK_F_CONFIG_WCE);
    assert_eq!(write(&mut d), BlockOp::Write { fua: false });
    let _ = d.t.write(reg::CONFIG + 32, 1, 0, &mut d.mem);
    assert_eq!(d.t.read(reg::CONFIG + 32, 1), 0);
    assert_eq!(write(&mut d), BlockOp::Write { fua: true });
    // Without WCE negotiated, writeback cannot be changed.
    let mut d = driver();
    let _ = d.t.write(reg::CONFIG + 32, 1, 0, &mut d.mem);
    assert_eq!(d.t.read(reg::CONFIG + 32, 1), 1);
}

#[test]
fn flush_without_backend_support_is_unsupported() {
    let mut fake = FakeDisk::new();
    fake.info.flush = false;
    let mut d = driver_with(fake, 0);
    let h = header(VIRTIO_BLK_T_FLUSH, 0);
    let (head, a) = d.post(0, &[Buf::Out(&h), Buf::In(1)]);
    assert!(d.notify(0), "answered at once");
    assert_eq!(d.used(0), vec![(u32::from(head), 1)]);
    assert_eq!(status_at(&d, a[1]), VIRTIO_BLK_S_UNSUPP);
    assert!(disk(&mut d).log.is_empty());
}

#[test]
fn read_only_disk_refuses_writes() {
    let mut fake = FakeDisk::new();
    fake.info.read_only = true;
    let mut d = driver_with(fake, VIRTIO_BLK_F_RO | VIRTIO_BLK_F_FLUSH);
    let before = disk(&mut d).disk.clone();
    let h = header(VIRTIO_BLK_T_OUT, 0);
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::Out(&[9; 512]), Buf::In(1)]);
    assert!(d.notify(0));
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_IOERR);
    assert!(disk(&mut d).log.is_empty(), "the backend never sees the write");
    assert_eq!(disk(&mut d).disk, before);
    // Reads work.
    let (_, buf, st) = post_read(&mut d, 0, 1);
    d.notify(0);
    serve_all(&mut d);
    assert_eq!(status_at(&d, st), VIRTIO_BLK_S_OK);
    assert_eq!(d.bytes(buf, 512), before[..512]);
}

#[test]
fn get_id_and_unknown_types() {
    let mut d = driver();
    let h = header(VIRTIO_BLK_T_GET_ID, 0);
    let (head, a) = d.post(0, &[Buf::Out(&h), Buf::In(20), Buf::In(1)]);
    assert!(d.notify(0));
    assert_eq!(d.used(0), vec![(u32::from(head), 21)]);
    assert_eq!(d.bytes(a[1], 20), b"vcpos-disk-0\0\0\0\0\0\0\0\0");
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_OK);
    // A short ID buffer gets what fits, the status byte stays the status.
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(5)]);
    d.notify(0);
    assert_eq!(d.bytes(a[1], 5), b"vcpo\0");
    for kind in [2u32, 11, 13, 0xffff_ffff] {
        let h = header(kind, 0);
        let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(1)]);
        d.notify(0);
        assert_eq!(status_at(&d, a[1]), VIRTIO_BLK_S_UNSUPP, "type {kind}");
    }
    assert!(disk(&mut d).log.is_empty());
}

#[test]
fn completions_after_a_reset_are_dropped() {
    let mut d = driver();
    let (_, _, st) = post_read(&mut d, 0, 1);
    d.mem.inner.write(st, &[0x77]).unwrap();
    d.notify(0);
    let id = disk(&mut d).submitted[0].id;
    // The driver resets the device and sets it up again (new rings, same heads).
    d.init(VIRTIO_BLK_F_FLUSH, 1, 128);
    let writes = d.mem.writes;
    serve(&mut d, id, BlockStatus::Ok);
    d.poll();
    assert!(
        d.used(0).is_empty(),
        "the old request is not completed on the new rings"
    );
    assert_eq!(status_at(&d, st), 0x77, "its status byte is not written");
    // (serve's own DMA write into the buffer is the backend's, not the device's.)
    assert!(d.mem.writes <= writes + 1);
    assert_eq!(d.t.device().stats().stale_completions, 1);
    // New requests with the same head work.
    let (_, _, st) = post_read(&mut d, 0, 1);
    d.notify(0);
    serve_all(&mut d);
    assert_eq!(status_at(&d, st), VIRTIO_BLK_S_OK);
}

// ---- a misbehaving driver ----

/// Checks the device needs a reset because of `expect`, and the backend saw nothing.
fn expect_needs_reset(d: &mut Driver, expect: impl Fn(&GuestError) -> bool) {
    let err = d.fatal_error();
    assert!(expect(&err), "unexpected error {err:?}");
    assert!(disk(d).log.is_empty(), "the backend got a request from a broken chain");
    // A reset brings it back.
    d.init(VIRTIO_BLK_F_FLUSH, 1, 128);
    let (_, _, st) = post_read(d, 0, 1);
    d.notify(0);
    serve_all(d);
    assert_eq!(status_at(d, st), VIRTIO_BLK_S_OK);
}

#[test]
fn header_too_short() {
    let mut d = driver();
    d.post(0, &[Buf::Out(&[0u8; 8]), Buf::In(1)]);
    assert!(d.notify(0));
    expect_needs_reset(
        &mut d,
        |e| matches!(e, GuestError::BadBlockRequest { reason, .. } if reason.contains("header")),
    );
}

#[test]
fn status_descriptor_not_writable() {
    let mut d = driver();
    let h = header(VIRTIO_BLK_T_IN, 0);
    d.post(0, &[Buf::Out(&h), Buf::Out(&[0u8; 513])]);
    assert!(d.notify(0));
    expect_needs_reset(
        &mut d,
        |e| matches!(e, GuestError::BadBlockRequest { reason, .. } if reason.contains("status")),
    );
}

#[test]
fn data_in_the_wrong_direction_is_an_io_error() {
    let mut d = driver();
    // A read whose data buffer is device-readable.
    let h = header(VIRTIO_BLK_T_IN, 0);
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::Out(&[0u8; 512]), Buf::In(1)]);
    d.notify(0);
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_IOERR);
    // A write whose data buffer is device-writable.
    let h = header(VIRTIO_BLK_T_OUT, 0);
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(512), Buf::In(1)]);
    d.notify(0);
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_IOERR);
    assert_eq!(
        d.bytes(a[1], 512),
        vec![0; 512],
        "nothing written into the wrong-way buffer"
    );
    assert!(disk(&mut d).log.is_empty());
    assert_eq!(d.t.device().stats().refused, 2);
    assert_eq!(d.status() & NEEDS_RESET, 0, "bad requests are answered, not fatal");
}

#[test]
fn too_many_or_too_large_segments_and_bad_lengths() {
    let mut d = driver();
    let h = header(VIRTIO_BLK_T_IN, 0);
    // 9 segments with seg_max 8.
    let mut bufs = vec![Buf::Out(&h)];
    bufs.extend((0..9).map(|_| Buf::In(512)));
    bufs.push(Buf::In(1));
    let (_, a) = d.post(0, &bufs);
    d.notify(0);
    assert_eq!(status_at(&d, *a.last().unwrap()), VIRTIO_BLK_S_IOERR);
    // One segment over size_max (4096).
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(8192), Buf::In(1)]);
    d.notify(0);
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_IOERR);
    // Not a multiple of 512.
    let (_, a) = d.post(0, &[Buf::Out(&h), Buf::In(100), Buf::In(1)]);
    d.notify(0);
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_IOERR);
    assert!(disk(&mut d).log.is_empty());
    // Exactly seg_max segments of size_max are fine.
    let mut bufs = vec![Buf::Out(&h)];
    bufs.extend((0..8).map(|_| Buf::In(4096)));
    bufs.push(Buf::In(1));
    d.post(0, &bufs);
    d.notify(0);
    assert_eq!(disk(&mut d).log.len(), 1);
}

#[test]
fn sectors_past_the_capacity_are_an_io_error() {
    let mut d = driver();
    for (sector, sectors) in [
        (SECTORS, 1u32),
        (SECTORS - 1, 2),
        (u64::MAX, 1),
        (u64::MAX / 512 + 1, 1),
    ] {
        let (_, _, st) = post_read(&mut d, sector, sectors);
        d.notify(0);
        assert_eq!(status_at(&d, st), VIRTIO_BLK_S_IOERR, "sector {sector} + {sectors}");
    }
    assert!(disk(&mut d).log.is_empty());
    // The last sector itself is fine.
    post_read(&mut d, SECTORS - 1, 1);
    d.notify(0);
    assert_eq!(disk(&mut d).log.len(), 1);
}

#[test]
fn zero_length_data_completes_without_the_backend() {
    let mut d = driver();
    let h = header(VIRTIO_BLK_T_IN, 0);
    // A zero-length data descriptor is dropped by the queue: header + status only.
    let (head, a) = d.post(0, &[Buf::Out(&h), Buf::In(0), Buf::In(1)]);
    assert!(d.notify(0));
    assert_eq!(d.used(0), vec![(u32::from(head), 1)]);
    assert_eq!(status_at(&d, a[2]), VIRTIO_BLK_S_OK);
    assert!(disk(&mut d).log.is_empty());
}

#[test]
fn descriptor_loop() {
    let mut d = driver();
    let buf = d.alloc(16);
    d.write_desc(0, 0, buf, 16, VIRTQ_DESC_F_NEXT, 1);
    d.write_desc(0, 1, buf, 16, VIRTQ_DESC_F_NEXT, 0);
    d.make_available(0, 0);
    assert!(d.notify(0));
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::ChainTooLong { .. }));
}

#[test]
fn buffers_outside_guest_ram() {
    for addr in [RAM_BASE - 0x1000, RAM_BASE + RAM_SIZE as u64 - 8, 0, u64::MAX - 4] {
        let mut d = driver();
        let h = d.alloc(16);
        d.mem.inner.write(h, &header(VIRTIO_BLK_T_IN, 0)).unwrap();
        d.write_desc(0, 0, h, 16, VIRTQ_DESC_F_NEXT, 1);
        d.write_desc(0, 1, addr, 512, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2);
        let st = d.alloc(1);
        d.write_desc(0, 2, st, 1, VIRTQ_DESC_F_WRITE, 0);
        d.make_available(0, 0);
        assert!(d.notify(0));
        expect_needs_reset(&mut d, |e| {
            matches!(e, GuestError::Memory(_) | GuestError::BufferOverflow { .. })
        });
    }
}

#[test]
fn avail_index_jump() {
    let mut d = driver();
    let avail = d.queues[0].avail;
    d.mem.inner.write_u16(avail + 2, 500).unwrap();
    assert!(d.notify(0));
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::AvailIndexJump { .. }));
}

#[test]
fn head_offered_again_while_in_flight() {
    let mut d = driver();
    let (head, _, _) = post_read(&mut d, 0, 1);
    d.notify(0);
    d.make_available(0, head);
    assert!(d.notify(0));
    assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    assert!(
        matches!(d.t.take_error(), Some(GuestError::BadBlockRequest { reason, .. }) if reason.contains("in flight"))
    );
}

#[test]
fn random_chains_and_completions_never_break_the_device() {
    let (mut submitted, mut completed) = (0, 0);
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let mut fake = FakeDisk::new();
        fake.info.queue_depth = 1 + rng.below(8) as u16;
        fake.info.read_only = rng.below(4) == 0;
        let mut d = driver_with(fake, VIRTIO_BLK_F_FLUSH);
        for _ in 0..40 {
            if d.status() & NEEDS_RESET != 0 && rng.below(3) == 0 {
                d.init(VIRTIO_BLK_F_FLUSH, 1, 128);
            }
            match rng.below(7) {
                0 | 1 => {
                    // A well-formed chain with random type, sector and sizes.
                    let kind = [0u32, 0, 1, 1, 4, 8, 99][rng.below(7) as usize];
                    let h = header(kind, rng.below(SECTORS + 2));
                    let n = rng.below(4) as usize;
                    let len = [512u32, 1024, 4096, 8192, 100][rng.below(5) as usize];
                    let data = vec![0x5au8; len as usize];
                    let mut bufs = vec![Buf::Out(&h)];
                    for _ in 0..n {
                        bufs.push(if kind == 1 { Buf::Out(&data) } else { Buf::In(len) });
                    }
                    bufs.push(Buf::In(1));
                    d.post(0, &bufs);
                    d.notify(0);
                }
                2 => {
                    // A random chain of up to 6 descriptors, some of them requests.
                    let n = 1 + rng.below(6) as u16;
                    let first = d.queues[0].next_desc;
                    for k in 0..n {
                        let i = (first + k) % 128;
                        let len = [0u32, 1, 8, 16, 17, 512, 513, 4096, 8192][rng.below(9) as usize];
                        let addr = if rng.below(20) == 0 { rng.next() } else { d.alloc(len) };
                        if len >= 16 && rng.below(2) == 0 && addr >= RAM_BASE && addr + 16 <= RAM_BASE + RAM_SIZE as u64
                        {
                            let kind = [0u32, 1, 4, 8, 99][rng.below(5) as usize];
                            let _ = d.mem.inner.write(addr, &header(kind, rng.below(SECTORS + 4)));
                        }
                        let mut flags = if rng.below(2) == 0 { VIRTQ_DESC_F_WRITE } else { 0 };
                        let next = if rng.below(10) == 0 {
                            rng.below(200) as u16
                        } else {
                            (i + 1) % 128
                        };
                        if k + 1 < n {
                            flags |= VIRTQ_DESC_F_NEXT;
                        }
                        d.write_desc(0, i, addr, len, flags, next);
                    }
                    d.queues[0].next_desc = (first + n) % 128;
                    d.make_available(0, first);
                    d.notify(0);
                }
                3 => {
                    // Complete some submitted requests in random order.
                    let k = rng.below(4) as usize;
                    for _ in 0..k {
                        let len = disk(&mut d).submitted.len();
                        if len == 0 {
                            break;
                        }
                        let id = disk(&mut d).submitted[rng.below(len as u64) as usize].id;
                        let status =
                            [BlockStatus::Ok, BlockStatus::IoError, BlockStatus::Unsupported][rng.below(3) as usize];
                        serve(&mut d, id, status);
                    }
                    d.poll();
                }
                4 => {
                    // A bogus completion.
                    disk(&mut d).done.push_back(Completion {
                        id: RequestId(rng.next() as u32),
                        status: BlockStatus::Ok,
                    });
                    d.poll();
                }
                _ => {
                    if rng.below(4) == 0 {
                        d.init(VIRTIO_BLK_F_FLUSH, 1, 128);
                    } else {
                        d.poll();
                    }
                }
            }
            let depth = usize::from(disk(&mut d).info.queue_depth);
            assert!(
                d.t.device().in_flight() <= depth,
                "seed {seed}: more in flight than the depth"
            );
        }
        submitted += disk(&mut d).log.len();
        completed += d.t.device().stats().completed;
    }
    // The random guest got real work done, not only errors.
    assert!(
        submitted > 100 && completed > 300,
        "{submitted} submitted, {completed} completed"
    );
}
