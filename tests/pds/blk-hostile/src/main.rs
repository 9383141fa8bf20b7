//! vcp-blk hostile test client: writes its request ring directly (no client-side
//! checks) and attacks vcp-blk while the honest clients work:
//!
//! 1. refusals: a duplicate in-flight id, segments outside its data region (one that
//!    overflows), blocks past its window, an unknown op, a read without segments;
//!    each must come back with the right error status, and the valid request with Ok;
//! 2. a flood: a whole ring of reads at once (more than its queue depth), all of which
//!    must complete;
//! 3. a corrupt producer index (far beyond the ring), after which vcp-blk must cut it
//!    off (the harness checks vcp-blk's report) and serve the others.
//!
//! Then, once the read-write client said it is done (channel 1), it notifies the
//! read-only client (channel 2), whose final reads show vcp-blk still serves.
//! Channel 0 is vcp-blk. System: `tests/systems/vcp-blk-hostile.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering;

use sel4_microkit::{debug_println, protection_domain, shared_region, Channel, ChannelSet, Handler, SharedRegion};
use vcpos_blk_protocol::{ControlLayout, Info, Op, RequestDesc, ResponseDesc, Segment, Status, RING_CAPACITY};
use vcpos_queue::{Consumer, Producer, SharedMemory, PRODUCER_INDEX_OFFSET};
use vcpos_test_support::{ensure, fail, TestFailed};

const TEST: &str = "vcp-blk-hostile";
const VCP: Channel = Channel::new(0);
const WRITER: Channel = Channel::new(1);
const READER: Channel = Channel::new(2);
/// Ids of the flood.
const FLOOD_BASE: u32 = 100;
/// Responses expected at once at most: a flood of a whole ring, or the refusals.
const EXPECTED: usize = RING_CAPACITY as usize + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Refusals,
    Flood,
    Corrupted,
    Done,
}

struct Hostile {
    control: SharedRegion,
    requests: Producer<SharedRegion, RequestDesc>,
    responses: Consumer<SharedRegion, ResponseDesc>,
    info: Info,
    data_size: u64,
    phase: Phase,
    /// Responses expected in this phase, as (id, status), each taken once.
    expected: [Option<(u32, Status)>; EXPECTED],
    writer_done: bool,
    /// Id of the current duplicate-id pair.
    dup_id: u32,
    /// Pairs whose first request completed before vcp-blk read the second (the
    /// duplicate then is none), retried with a new id.
    dup_retries: u32,
}

/// Ids of the duplicate-id pairs (a new one per retry).
const DUP_BASE: u32 = 50;
const DUP_TRIES: u32 = 20;

impl Hostile {
    fn push(&mut self, d: RequestDesc, want: Status) -> Result<(), TestFailed> {
        let r = self.requests.push(&d);
        ensure!(TEST, r.is_ok(), "pushing request {}: {r:?}", d.id);
        let slot = self.expected.iter().position(Option::is_none);
        ensure!(TEST, slot.is_some(), "too many expected responses");
        self.expected[slot.unwrap_or(0)] = Some((d.id, want));
        Ok(())
    }

    fn start_refusals(&mut self) -> Result<(), TestFailed> {
        let seg = Segment::new(0, 512);
        let read = |id, block, segs: &[Segment]| {
            RequestDesc::with_segments(id, Op::Read, block, segs).unwrap_or(RequestDesc::new(id, Op::Read, block))
        };
        self.push_duplicate_pair()?;
        self.push(read(2, 0, &[Segment::new(self.data_size, 512)]), Status::BadSegment)?;
        self.push(read(3, 0, &[Segment::new(u64::MAX - 10, 512)]), Status::BadSegment)?;
        self.push(read(4, self.info.capacity_blocks, &[seg]), Status::OutOfRange)?;
        self.push(
            RequestDesc {
                op: 77,
                ..read(5, 0, &[seg])
            },
            Status::Unsupported,
        )?;
        self.push(RequestDesc::new(6, Op::Read, 0), Status::BadRequest)?;
        Ok(())
    }

    /// The same id twice in a row: the second must be refused while the first is in
    /// flight.
    fn push_duplicate_pair(&mut self) -> Result<(), TestFailed> {
        let d = RequestDesc::with_segments(self.dup_id, Op::Read, 0, &[Segment::new(0, 512)]);
        let d = d.unwrap_or(RequestDesc::new(self.dup_id, Op::Read, 0));
        self.push(d, Status::Ok)?;
        self.push(d, Status::DuplicateId)
    }

    fn start_flood(&mut self) -> Result<(), TestFailed> {
        for i in 0..RING_CAPACITY {
            let seg = Segment::new(u64::from(i % 8) * 4096, 4096);
            let d = RequestDesc::with_segments(FLOOD_BASE + i, Op::Read, u64::from(i) * 8, &[seg]);
            self.push(d.unwrap_or(RequestDesc::new(0, Op::Read, 0)), Status::Ok)?;
        }
        debug_println!(
            "blk-hostile: flooding {RING_CAPACITY} reads at once (queue depth {})",
            self.info.queue_depth
        );
        Ok(())
    }

    fn corrupt(&mut self) {
        let at = self.requests.layout().base() + PRODUCER_INDEX_OFFSET;
        let now = self.control.load_u32(at, Ordering::Relaxed).unwrap_or(0);
        let _ = self.control.store_u32(at, now.wrapping_add(1000), Ordering::Release);
        debug_println!("blk-hostile: corrupted its request ring's producer index (+1000)");
        VCP.notify();
    }

    fn take_responses(&mut self) -> Result<(), TestFailed> {
        while let Some(r) = self
            .responses
            .pop()
            .map_err(|e| fail(TEST, format_args!("response ring: {e}")))?
        {
            let status = Status::from_wire(r.status);
            let ok_taken = self
                .expected
                .iter()
                .flatten()
                .all(|&(id, s)| id != r.id || s == Status::DuplicateId);
            if r.id == self.dup_id && status == Some(Status::Ok) && ok_taken && self.phase == Phase::Refusals {
                // The first of the pair completed before the second was read: no
                // duplicate after all. Forget the pair and try a new one.
                let dup = self
                    .expected
                    .iter()
                    .position(|e| *e == Some((r.id, Status::DuplicateId)));
                if let Some(i) = dup {
                    self.expected[i] = None;
                    self.dup_retries += 1;
                    ensure!(
                        TEST,
                        self.dup_retries < DUP_TRIES,
                        "no duplicate seen in {DUP_TRIES} tries"
                    );
                    self.dup_id += 1;
                    self.push_duplicate_pair()?;
                    continue;
                }
            }
            let slot = self
                .expected
                .iter()
                .position(|e| e.is_some_and(|(id, s)| id == r.id && Some(s) == status));
            ensure!(
                TEST,
                slot.is_some(),
                "{:?}: unexpected response id {} status {}",
                self.phase,
                r.id,
                r.status
            );
            self.expected[slot.unwrap_or(0)] = None;
        }
        Ok(())
    }

    fn pump(&mut self) -> Result<(), TestFailed> {
        loop {
            self.take_responses()?;
            if self.expected.iter().all(Option::is_none) {
                match self.phase {
                    Phase::Refusals => {
                        debug_println!(
                            "blk-hostile: duplicate id ({} retries), bad segments, out-of-window, unknown op, no segments: all refused",
                            self.dup_retries
                        );
                        self.phase = Phase::Flood;
                        self.start_flood()?;
                    }
                    Phase::Flood => {
                        debug_println!("blk-hostile: flood of {RING_CAPACITY} reads completed");
                        self.phase = Phase::Corrupted;
                        self.corrupt();
                        return Ok(());
                    }
                    Phase::Corrupted | Phase::Done => return Ok(()),
                }
            }
            if self.requests.signal_needed().unwrap_or(true) {
                VCP.notify();
            }
            if self
                .responses
                .request_signal()
                .map_err(|e| fail(TEST, format_args!("{e}")))?
            {
                return Ok(());
            }
        }
    }
}

impl Handler for Hostile {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        if channels.contains(WRITER) {
            self.writer_done = true;
        }
        if self.phase == Phase::Corrupted || self.phase == Phase::Done {
            if self.writer_done && self.phase == Phase::Corrupted {
                self.phase = Phase::Done;
                READER.notify();
            }
            return Ok(());
        }
        self.pump()?;
        if self.phase == Phase::Corrupted && self.writer_done {
            self.phase = Phase::Done;
            READER.notify();
        }
        Ok(())
    }
}

fn start() -> Result<Hostile, TestFailed> {
    let control = shared_region!(control_vaddr, size = control_size);
    let data = shared_region!(data_vaddr, size = data_size);
    let layout = ControlLayout::new(RING_CAPACITY).map_err(|e| fail(TEST, format_args!("{e}")))?;
    let info = Info::read(&control, RING_CAPACITY)
        .ok()
        .flatten()
        .ok_or_else(|| fail(TEST, format_args!("vcp-blk info page not ready")))?;
    let requests = Producer::new(control.clone(), layout.requests).map_err(|e| fail(TEST, format_args!("{e}")))?;
    let responses = Consumer::new(control.clone(), layout.responses).map_err(|e| fail(TEST, format_args!("{e}")))?;
    let mut h = Hostile {
        control,
        requests,
        responses,
        info,
        data_size: data.len() as u64,
        phase: Phase::Refusals,
        expected: [None; EXPECTED],
        writer_done: false,
        dup_id: DUP_BASE,
        dup_retries: 0,
    };
    debug_println!(
        "blk-hostile: connected ({} blocks, depth {})",
        info.capacity_blocks,
        info.queue_depth
    );
    h.start_refusals()?;
    Ok(h)
}

#[protection_domain]
fn init() -> impl Handler {
    let mut h = match start() {
        Ok(h) => h,
        Err(e) => panic!("{e}"),
    };
    if let Err(e) = h.pump() {
        panic!("{e}");
    }
    h
}
