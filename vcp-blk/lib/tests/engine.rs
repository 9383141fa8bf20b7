//! Engine tests with a fake block device: windows, read-only clients, one device
//! transfer per request (scatter-gather), splitting at the device's segment limits,
//! one device notification per batch, out-of-order completion, flush and FUA ordering, round-robin fairness
//! under a flood, a hostile client cut off while the other goes on, device errors.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use vcpos_blk_protocol::{Client, ClientError, Completion, ControlLayout, Segment, Status};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{SharedMemory, PRODUCER_INDEX_OFFSET};
use vcpos_vcp_blk::{
    BlockDevice, ClientRegions, Config, Direction, Engine, EngineError, SubmitError, Transfer, MAX_CLIENTS,
    RING_CAPACITY,
};

const DATA: u64 = 64 * 1024;
const DISK_SECTORS: u64 = 1024;

/// A disk in memory whose transfers finish only when the test says, in any order.
struct FakeDisk {
    disk: Vec<u8>,
    data: Vec<FakeMemory>,
    max: usize,
    /// The device's `seg_max` and `size_max`.
    max_segments: usize,
    max_segment_len: u32,
    in_flight: Vec<(u16, Transfer)>,
    /// Transfers at the front of `in_flight` the device was notified of (only those
    /// can finish).
    notified: usize,
    notifies: usize,
    done: VecDeque<(u16, bool)>,
    next_token: u16,
    log: Vec<Transfer>,
    flushes: Vec<usize>,
    fail_sector: Option<u64>,
}

impl FakeDisk {
    fn new(data: Vec<FakeMemory>, max: usize) -> FakeDisk {
        let disk = (0..DISK_SECTORS * 512).map(|i| (i / 512) as u8 ^ 0x5a).collect();
        FakeDisk {
            disk,
            data,
            max,
            max_segments: 15,
            max_segment_len: u32::MAX,
            in_flight: Vec::new(),
            notified: 0,
            notifies: 0,
            done: VecDeque::new(),
            next_token: 0,
            log: Vec::new(),
            flushes: Vec::new(),
            fail_sector: None,
        }
    }

    /// Finishes up to `n` transfers in flight the device was notified of, newest
    /// first (out of order).
    fn finish(&mut self, n: usize) {
        for _ in 0..n {
            if self.notified == 0 {
                return;
            }
            let (token, t) = self.in_flight.remove(self.notified - 1);
            self.notified -= 1;
            let mut at = (t.sector * 512) as usize;
            let ok = !self
                .fail_sector
                .is_some_and(|f| (t.sector..t.sector + t.sectors()).contains(&f));
            if ok {
                let mem = &self.data[t.client];
                for seg in t.segments() {
                    let len = seg.len as usize;
                    match t.direction {
                        Direction::Read => mem.write_bytes(seg.offset as usize, &self.disk[at..at + len]).unwrap(),
                        Direction::Write => mem
                            .read_bytes(seg.offset as usize, &mut self.disk[at..at + len])
                            .unwrap(),
                    }
                    at += len;
                }
            }
            self.done.push_back((token, ok));
        }
    }
}

impl BlockDevice for FakeDisk {
    fn capacity_sectors(&self) -> u64 {
        DISK_SECTORS
    }
    fn read_only(&self) -> bool {
        false
    }
    fn max_in_flight(&self) -> usize {
        self.max
    }
    fn max_segments(&self) -> usize {
        self.max_segments
    }
    fn max_segment_len(&self) -> u32 {
        self.max_segment_len
    }
    fn submit(&mut self, t: &Transfer) -> Result<u16, SubmitError> {
        if self.in_flight.len() >= self.max {
            return Err(SubmitError::Full);
        }
        assert!(
            !t.segments().is_empty() && t.segments().len() <= self.max_segments,
            "engine passed {} segments (device limit {})",
            t.segments().len(),
            self.max_segments
        );
        for seg in t.segments() {
            assert!(
                seg.offset + u64::from(seg.len) <= DATA,
                "engine passed an unchecked segment {t:?}"
            );
            assert!(
                seg.len > 0 && seg.len % 512 == 0 && seg.len <= self.max_segment_len,
                "engine passed a bad segment length {t:?}"
            );
        }
        assert!(t.sector + t.sectors() <= DISK_SECTORS);
        self.next_token = self.next_token.wrapping_add(1);
        self.in_flight.push((self.next_token, *t));
        self.log.push(*t);
        Ok(self.next_token)
    }
    fn notify(&mut self) {
        assert!(self.notified < self.in_flight.len(), "notified with nothing new queued");
        self.notified = self.in_flight.len();
        self.notifies += 1;
    }
    fn next_completion(&mut self) -> Option<(u16, bool)> {
        self.done.pop_front()
    }
    fn flush(&mut self) -> bool {
        assert!(
            self.in_flight.is_empty() && self.done.is_empty(),
            "flush with transfers in flight"
        );
        self.flushes.push(self.log.len());
        true
    }
}

struct Setup {
    engine: Engine<FakeMemory, FakeDisk>,
    clients: Vec<Client<FakeMemory>>,
    controls: Vec<FakeMemory>,
    data: Vec<FakeMemory>,
}

fn setup(config: &str, max_in_flight: usize) -> Setup {
    let config = Config::parse(config.as_bytes()).unwrap();
    let n = config.clients.iter().flatten().count();
    let size = ControlLayout::new(RING_CAPACITY).unwrap().size();
    let controls: Vec<FakeMemory> = (0..n).map(|_| FakeMemory::new(size)).collect();
    let data: Vec<FakeMemory> = (0..n).map(|_| FakeMemory::new(DATA as usize)).collect();
    let mut regions: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    for (slot, control) in regions.iter_mut().zip(&controls) {
        *slot = Some(ClientRegions {
            control: control.clone(),
            data_size: DATA,
        });
    }
    let engine = Engine::new(FakeDisk::new(data.clone(), max_in_flight), &config, regions).unwrap();
    let clients = controls
        .iter()
        .map(|c| {
            let mut cl = Client::new(c.clone(), RING_CAPACITY, DATA).unwrap();
            cl.connect().unwrap();
            cl
        })
        .collect();
    Setup {
        engine,
        clients,
        controls,
        data,
    }
}

impl Setup {
    /// Runs the engine and finishes device transfers until nothing moves; returns
    /// every client's completions.
    fn settle(&mut self) -> Vec<Vec<Completion>> {
        let mut out = vec![Vec::new(); self.clients.len()];
        for _ in 0..1000 {
            self.engine.run();
            let moving = !self.engine.device().in_flight.is_empty();
            self.engine.device_mut().finish(usize::MAX);
            let mut any = false;
            for (i, c) in self.clients.iter_mut().enumerate() {
                while let Ok(Some(done)) = c.poll() {
                    out[i].push(done);
                    any = true;
                }
            }
            if !moving && !any {
                return out;
            }
        }
        panic!("engine never settled");
    }
}

const TWO: &str = "client 0 start=100 blocks=64 rw\nclient 1 start=200 blocks=64 ro\n";

#[test]
fn windows_read_only_and_data() {
    let mut s = setup(TWO, 4);
    // Client 0 writes 8 blocks from two segments of its data region.
    let pattern: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    s.data[0].write_bytes(0, &pattern[..1024]).unwrap();
    s.data[0].write_bytes(8192, &pattern[1024..]).unwrap();
    s.clients[0]
        .write(1, 8, &[Segment::new(0, 1024), Segment::new(8192, 3072)], false)
        .unwrap();
    // Client 1 reads its first 2 blocks, and tries to write.
    s.clients[1].read(1, 0, &[Segment::new(512, 1024)]).unwrap();
    s.clients[1].write(2, 0, &[Segment::new(0, 512)], false).unwrap();
    // Client 0 reads past its window.
    s.clients[0].read(2, 63, &[Segment::new(0, 1024)]).unwrap();
    let done = s.settle();
    assert_eq!(
        done[0],
        vec![
            Completion {
                id: 2,
                status: Status::OutOfRange,
                bytes: 0
            },
            Completion {
                id: 1,
                status: Status::Ok,
                bytes: 4096
            },
        ]
    );
    let mut d1 = done[1].clone();
    d1.sort_by_key(|c| c.id);
    assert_eq!(
        d1,
        vec![
            Completion {
                id: 1,
                status: Status::Ok,
                bytes: 1024
            },
            Completion {
                id: 2,
                status: Status::ReadOnly,
                bytes: 0
            },
        ]
    );
    // The write landed at client 0's window start + 8, nowhere else.
    let disk = &s.engine.device().disk;
    assert_eq!(&disk[108 * 512..116 * 512], &pattern[..]);
    assert_eq!(disk[107 * 512], 107 ^ 0x5a);
    assert_eq!(disk[116 * 512], 116 ^ 0x5a);
    // Client 1 read disk blocks 200 and 201.
    let mut got = vec![0u8; 1024];
    s.data[1].read_bytes(512, &mut got).unwrap();
    assert!(got[..512].iter().all(|&b| b == 200 ^ 0x5a) && got[512..].iter().all(|&b| b == 201 ^ 0x5a));
    // Transfers: the write as one of two segments, the read at 200.
    let log = &s.engine.device().log;
    assert!(log.contains(
        &Transfer::new(
            Direction::Write,
            108,
            0,
            &[Segment::new(0, 1024), Segment::new(8192, 3072)]
        )
        .unwrap()
    ));
    assert!(log.contains(&Transfer::new(Direction::Read, 200, 1, &[Segment::new(512, 1024)]).unwrap()));
    assert_eq!(log.len(), 2);
}

/// A request of 15 segments (the protocol's most) is one device transfer with one
/// notification, its data scattered and gathered right.
#[test]
fn multi_segment_request_is_one_transfer() {
    let mut s = setup(TWO, 4);
    let segs: Vec<Segment> = (0..15).map(|i| Segment::new(i * 4096 + 512, 1024)).collect();
    let pattern: Vec<u8> = (0..15 * 1024u32).map(|i| (i * 13 + 1) as u8).collect();
    for (i, seg) in segs.iter().enumerate() {
        s.data[0]
            .write_bytes(seg.offset as usize, &pattern[i * 1024..(i + 1) * 1024])
            .unwrap();
    }
    s.clients[0].write(1, 4, &segs, false).unwrap();
    let done = s.settle();
    assert_eq!(
        done[0],
        vec![Completion {
            id: 1,
            status: Status::Ok,
            bytes: 15 * 1024
        }]
    );
    assert_eq!(
        s.engine.device().log,
        vec![Transfer::new(Direction::Write, 104, 0, &segs).unwrap()]
    );
    assert_eq!(s.engine.stats().transfers, 1);
    assert_eq!(s.engine.device().notifies, 1);
    assert_eq!(&s.engine.device().disk[104 * 512..134 * 512], &pattern[..]);
    // Read back into other offsets: one transfer again.
    let back: Vec<Segment> = (0..15).map(|i| Segment::new(32768 + i * 2048, 1024)).collect();
    s.clients[0].read(2, 4, &back).unwrap();
    s.settle();
    assert_eq!(s.engine.stats().transfers, 2);
    for (i, seg) in back.iter().enumerate() {
        let mut got = vec![0u8; 1024];
        s.data[0].read_bytes(seg.offset as usize, &mut got).unwrap();
        assert_eq!(got, &pattern[i * 1024..(i + 1) * 1024], "segment {i}");
    }
}

/// Many requests queued in one run go to the device with one notification, all in
/// flight at once.
#[test]
fn one_notification_per_batch() {
    let mut s = setup(
        "client 0 start=0 blocks=512 depth=32 rw
",
        64,
    );
    for id in 0..32 {
        s.clients[0].read(id, u64::from(id), &[Segment::new(0, 512)]).unwrap();
    }
    s.engine.run();
    assert_eq!(s.engine.device().in_flight.len(), 32);
    assert_eq!(s.engine.device().notifies, 1);
    assert_eq!(s.engine.stats().peak_in_flight, 32);
    // A run that queues nothing does not notify.
    s.engine.run();
    assert_eq!(s.engine.device().notifies, 1);
    let done = s.settle();
    assert_eq!(done[0].len(), 32);
    assert!(done[0].iter().all(|c| c.status == Status::Ok));
}

/// A request beyond the device's limits (`seg_max` 4, `size_max` 1 KiB) is split
/// into transfers within them, continued as the device finds room (2 in flight).
#[test]
fn request_split_at_device_limits() {
    let mut s = setup(TWO, 2);
    s.engine.device_mut().max_segments = 4;
    s.engine.device_mut().max_segment_len = 1024;
    let mut segs: Vec<Segment> = (0..6).map(|i| Segment::new(i * 4096, 512)).collect();
    segs.push(Segment::new(32768, 2560));
    s.clients[0].read(9, 0, &segs).unwrap();
    let done = s.settle();
    assert_eq!(
        done[0],
        vec![Completion {
            id: 9,
            status: Status::Ok,
            bytes: 3072 + 2560
        }]
    );
    let seg = Segment::new;
    let read = |sector, segs: &[Segment]| Transfer::new(Direction::Read, sector, 0, segs).unwrap();
    assert_eq!(
        s.engine.device().log,
        vec![
            read(100, &[seg(0, 512), seg(4096, 512), seg(8192, 512), seg(12288, 512)]),
            read(
                104,
                &[seg(16384, 512), seg(20480, 512), seg(32768, 1024), seg(33792, 1024)]
            ),
            read(110, &[seg(34816, 512)]),
        ]
    );
    // The data: each piece from its own sectors.
    let mut got = vec![0u8; 2560];
    s.data[0].read_bytes(32768, &mut got).unwrap();
    for (i, b) in got.iter().enumerate() {
        assert_eq!(*b, (106 + i / 512) as u8 ^ 0x5a, "byte {i}");
    }
}

#[test]
fn flush_waits_for_transfers_and_fua_flushes() {
    let mut s = setup(TWO, 4);
    s.clients[0].write(1, 0, &[Segment::new(0, 512)], false).unwrap();
    s.clients[0].write(2, 1, &[Segment::new(512, 512)], false).unwrap();
    s.clients[0].flush(3).unwrap();
    s.clients[0].write(4, 2, &[Segment::new(1024, 512)], false).unwrap();
    s.engine.run();
    // Two writes in flight; the flush waits, and so does the write behind it.
    assert_eq!(s.engine.device().in_flight.len(), 2);
    assert!(s.engine.device().flushes.is_empty());
    let done = s.settle();
    let ids: Vec<u32> = done[0].iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        vec![2, 1, 3, 4],
        "writes (out of order), then the flush, then the later write"
    );
    assert_eq!(
        s.engine.device().flushes,
        vec![2],
        "the flush ran after the first two writes only"
    );
    // FUA: the response comes after a flush that follows the write.
    s.clients[0].write(5, 3, &[Segment::new(0, 512)], true).unwrap();
    let done = s.settle();
    assert_eq!(
        done[0],
        vec![Completion {
            id: 5,
            status: Status::Ok,
            bytes: 512
        }]
    );
    assert_eq!(s.engine.device().flushes, vec![2, 4]);
}

#[test]
fn device_error_is_an_io_error() {
    let mut s = setup(TWO, 4);
    s.engine.device_mut().fail_sector = Some(101);
    s.clients[0]
        .read(1, 0, &[Segment::new(0, 512), Segment::new(512, 512)])
        .unwrap();
    s.clients[0].read(2, 5, &[Segment::new(0, 512)]).unwrap();
    let mut done = s.settle().remove(0);
    done.sort_by_key(|c| c.id);
    assert_eq!(
        done,
        vec![
            Completion {
                id: 1,
                status: Status::IoError,
                bytes: 0
            },
            Completion {
                id: 2,
                status: Status::Ok,
                bytes: 512
            },
        ]
    );
}

/// Client 0 floods (a whole ring of requests, depth 8), client 1 keeps one request
/// going: client 1 still gets a transfer at least every third one.
#[test]
fn round_robin_under_flood() {
    let mut s = setup(
        "client 0 start=0 blocks=512 depth=8 rw\nclient 1 start=512 blocks=512 depth=8 rw\n",
        2,
    );
    let mut next0 = 0u32;
    let mut c1_done = 0;
    let mut c1_id = 0u32;
    s.clients[1].read(c1_id, 0, &[Segment::new(0, 512)]).unwrap();
    for _round in 0..300 {
        // Keep client 0's ring full.
        while s.clients[0].read(next0, 0, &[Segment::new(0, 512)]).is_ok() {
            next0 += 1;
        }
        s.engine.run();
        s.engine.device_mut().finish(1);
        s.engine.run();
        while let Ok(Some(_)) = s.clients[0].poll() {}
        while let Ok(Some(c)) = s.clients[1].poll() {
            assert_eq!(c.status, Status::Ok);
            c1_done += 1;
            c1_id += 1;
            s.clients[1].read(c1_id, 0, &[Segment::new(0, 512)]).unwrap();
        }
    }
    let log = &s.engine.device().log;
    let c1 = log.iter().filter(|t| t.client == 1).count();
    eprintln!(
        "{} transfers: client 0 {}, client 1 {c1}; client 1 completed {c1_done}",
        log.len(),
        log.len() - c1
    );
    // Longest run of client-0 transfers between client-1 transfers.
    let mut run = 0;
    let mut longest = 0;
    for t in log.iter().skip(2) {
        if t.client == 0 {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    assert!(
        longest <= 2,
        "client 1 waited behind {longest} transfers of the flooding client"
    );
    assert!(c1_done >= 90, "client 1 completed only {c1_done} of 300 rounds");
    assert_eq!(
        s.engine.stats().peak_in_flight,
        2,
        "the device's room is used, never exceeded"
    );
}

/// Client 1 corrupts its request ring's index: it is cut off, client 0 goes on.
#[test]
fn hostile_client_cut_off_other_continues() {
    let mut s = setup(TWO, 4);
    let base = ControlLayout::new(RING_CAPACITY).unwrap().requests.base();
    s.clients[0].read(1, 0, &[Segment::new(0, 512)]).unwrap();
    s.controls[1]
        .store_u32(base + PRODUCER_INDEX_OFFSET, 5000, Ordering::Release)
        .unwrap();
    let r = s.engine.run();
    assert_eq!(r.cut_off, 0b10);
    assert!(s.engine.server(1).unwrap().cut_off().is_some());
    s.engine.device_mut().finish(usize::MAX);
    for id in 2..50 {
        s.clients[0].read(id, 0, &[Segment::new(0, 512)]).unwrap();
        let done = s.settle();
        assert!(done[0].iter().all(|c| c.status == Status::Ok));
    }
    // The dead client is never served again, and never reported twice.
    s.controls[1]
        .store_u32(base + PRODUCER_INDEX_OFFSET, 0, Ordering::Release)
        .unwrap();
    assert_eq!(s.engine.run().cut_off, 0);
    assert!(s.engine.device().log.iter().all(|t| t.client == 0));
}

#[test]
fn generation_changes_on_restart() {
    let s = setup(TWO, 4);
    let g = s.clients[0].info().unwrap().generation;
    let config = Config::parse(TWO.as_bytes()).unwrap();
    let mut regions: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
    for (slot, control) in regions.iter_mut().zip(&s.controls) {
        *slot = Some(ClientRegions {
            control: control.clone(),
            data_size: DATA,
        });
    }
    let _again = Engine::new(FakeDisk::new(s.data.clone(), 4), &config, regions).unwrap();
    let mut c0 = s.clients;
    assert_eq!(
        c0[0].read(1, 0, &[Segment::new(0, 512)]),
        Err(ClientError::GenerationChanged { was: g, now: g + 1 })
    );
}

#[test]
fn engine_setup_errors() {
    let size = ControlLayout::new(RING_CAPACITY).unwrap().size();
    let regions = |n: usize, ctl: usize| {
        let mut r: [Option<ClientRegions<FakeMemory>>; MAX_CLIENTS] = Default::default();
        for slot in r.iter_mut().take(n) {
            *slot = Some(ClientRegions {
                control: FakeMemory::new(ctl),
                data_size: DATA,
            });
        }
        r
    };
    let past = Config::parse(b"client 0 start=1000 blocks=100 rw").unwrap();
    assert_eq!(
        Engine::new(FakeDisk::new(vec![], 1), &past, regions(1, size)).err(),
        Some(EngineError::WindowPastDisk { client: 0 })
    );
    let one = Config::parse(b"client 0 start=0 blocks=100 rw").unwrap();
    assert_eq!(
        Engine::new(FakeDisk::new(vec![], 1), &one, regions(2, size)).err(),
        Some(EngineError::Regions { client: 1 })
    );
    assert!(matches!(
        Engine::new(FakeDisk::new(vec![], 1), &one, regions(1, 0x1000)).err(),
        Some(EngineError::Layout { client: 0, .. })
    ));
}
