//! vcp-blk test client. What it does depends on what vcp-blk's info page says:
//!
//! - **read-write**: [`blk::ROUNDS`] rounds of writing [`blk::TEST_BLOCKS`] blocks of
//!   [`blk::rw_word`] patterns (8-block requests, each in two 2 KiB segments at
//!   different offsets of the data region, up to 4 in flight, the last one of a round
//!   with forced unit access), a flush, and reading them all back into other buffers
//!   and checking every word. Then it notifies its peer (channel 1) and says so.
//! - **read-only**: reads its first [`blk::TEST_BLOCKS`] blocks and checks the
//!   [`blk::ro_word`] pattern the harness put there (so it sees its own window, not the
//!   writer's); checks that a write is refused with `ReadOnly` and a read past its
//!   window with `OutOfRange`; waits for its peer's "done" (channel 1), reads and
//!   checks everything again, and prints `TEST PASS: vcp-blk`.
//!
//! Channel 0 is vcp-blk. Systems: `tests/systems/vcp-blk.system`, `vcp-blk-hostile.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, shared_region, Channel, ChannelSet, Handler, SharedRegion};
use vcpos_blk_protocol::{Client, ClientError, Completion, Segment, Status, RING_CAPACITY};
use vcpos_test_support::blk::{self, ROUNDS, TEST_BLOCKS, WORDS};
use vcpos_test_support::{ensure, fail, ticks_to_ns, TestFailed};

const TEST: &str = "vcp-blk";
const VCP: Channel = Channel::new(0);
const PEER: Channel = Channel::new(1);
const BLOCKS_PER_REQ: u64 = 8;
const REQ_BYTES: usize = BLOCKS_PER_REQ as usize * 512;
const REQS: u32 = (TEST_BLOCKS / BLOCKS_PER_REQ) as u32;
/// Buffers in the data region (and so requests in flight at most).
const SLOTS: u32 = 4;
const SLOT_BYTES: u64 = 8192;
const SEG_LEN: u32 = REQ_BYTES as u32 / 2;
/// The second segment starts mid-page, away from the first.
const SEG_B: u64 = 4096 + 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Write(u32),
    Flush(u32),
    Read(u32),
    CheckReadOnly,
    Probe,
    WaitPeer,
    FinalRead,
    Done,
}

struct Tester {
    client: Client<SharedRegion>,
    data: SharedRegion,
    capacity: u64,
    depth: u32,
    phase: Phase,
    /// Counts phases, so a stale completion is recognised.
    seq: u32,
    next: u32,
    done: u32,
    free: u32,
    peer_done: bool,
    /// Counter value at the start (counter frequency, ticks).
    started: (u64, u64),
}

fn id(seq: u32, req: u32, slot: u32) -> u32 {
    (seq << 16) | (req << 4) | slot
}

fn segments(slot: u32) -> [Segment; 2] {
    let base = u64::from(slot) * SLOT_BYTES;
    [Segment::new(base, SEG_LEN), Segment::new(base + SEG_B, SEG_LEN)]
}

impl Tester {
    fn expected(&self, block: u64, w: usize) -> u32 {
        match self.phase {
            Phase::Write(r) | Phase::Read(r) => blk::rw_word(r, block, w),
            _ => blk::ro_word(block, w),
        }
    }

    fn fill(&self, slot: u32, req: u32) -> Result<(), TestFailed> {
        let mut buf = [0u8; REQ_BYTES];
        for (i, word) in buf.chunks_exact_mut(4).enumerate() {
            let block = u64::from(req) * BLOCKS_PER_REQ + (i / WORDS) as u64;
            word.copy_from_slice(&self.expected(block, i % WORDS).to_le_bytes());
        }
        let [a, b] = segments(slot);
        let half = SEG_LEN as usize;
        let ok = self.data.write_bytes(a.offset as usize, &buf[..half]).is_ok()
            && self.data.write_bytes(b.offset as usize, &buf[half..]).is_ok();
        ensure!(TEST, ok, "data region too small for slot {slot}");
        Ok(())
    }

    fn check(&self, slot: u32, req: u32) -> Result<(), TestFailed> {
        let mut buf = [0u8; REQ_BYTES];
        let [a, b] = segments(slot);
        let half = SEG_LEN as usize;
        let ok = self.data.read_bytes(a.offset as usize, &mut buf[..half]).is_ok()
            && self.data.read_bytes(b.offset as usize, &mut buf[half..]).is_ok();
        ensure!(TEST, ok, "data region too small for slot {slot}");
        for (i, word) in buf.chunks_exact(4).enumerate() {
            let block = u64::from(req) * BLOCKS_PER_REQ + (i / WORDS) as u64;
            let got = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            let want = self.expected(block, i % WORDS);
            ensure!(
                TEST,
                got == want,
                "{:?}: block {block} word {}: read {got:#010x}, expected {want:#010x}",
                self.phase,
                i % WORDS
            );
        }
        Ok(())
    }

    fn take_slot(&mut self) -> Option<u32> {
        let slot = (0..SLOTS.min(self.depth)).find(|s| self.free & (1 << s) != 0)?;
        self.free &= !(1 << slot);
        Some(slot)
    }

    fn submit_error(&self, e: ClientError) -> TestFailed {
        fail(TEST, format_args!("{:?}: submit: {e}", self.phase))
    }

    /// Submits what the phase still needs, as far as depth and buffers allow.
    fn submit(&mut self) -> Result<(), TestFailed> {
        match self.phase {
            Phase::Write(_) | Phase::Read(_) | Phase::CheckReadOnly | Phase::FinalRead => {
                while self.next < REQS {
                    let Some(slot) = self.take_slot() else { break };
                    let req = self.next;
                    let rid = id(self.seq, req, slot);
                    let block = u64::from(req) * BLOCKS_PER_REQ;
                    let r = if let Phase::Write(_) = self.phase {
                        self.fill(slot, req)?;
                        self.client.write(rid, block, &segments(slot), req == REQS - 1)
                    } else {
                        self.client.read(rid, block, &segments(slot))
                    };
                    r.map_err(|e| self.submit_error(e))?;
                    self.next += 1;
                }
            }
            Phase::Flush(_) if self.next == 0 => {
                self.client
                    .flush(id(self.seq, 0, 15))
                    .map_err(|e| self.submit_error(e))?;
                self.next = 1;
            }
            Phase::Probe if self.next == 0 => {
                // A write to a read-only window, and a read past the window's end.
                self.client
                    .write(id(self.seq, 0, 14), 0, &segments(0), false)
                    .map_err(|e| self.submit_error(e))?;
                self.client
                    .read(id(self.seq, 1, 14), self.capacity, &segments(1))
                    .map_err(|e| self.submit_error(e))?;
                self.next = 2;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_completion(&mut self, c: Completion) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            c.id >> 16 == self.seq,
            "{:?}: completion {:#x} from another phase",
            self.phase,
            c.id
        );
        let (req, slot) = ((c.id >> 4) & 0xfff, c.id & 0xf);
        match self.phase {
            Phase::Probe => {
                let want = if req == 0 { Status::ReadOnly } else { Status::OutOfRange };
                ensure!(
                    TEST,
                    c.status == want,
                    "probe {req}: status {:?}, expected {want:?}",
                    c.status
                );
            }
            Phase::Flush(_) => ensure!(TEST, c.status == Status::Ok, "flush: status {:?}", c.status),
            _ => {
                ensure!(
                    TEST,
                    c.status == Status::Ok,
                    "{:?}: request {req}: status {:?}",
                    self.phase,
                    c.status
                );
                ensure!(
                    TEST,
                    c.bytes as usize == REQ_BYTES,
                    "{:?}: request {req}: {} bytes",
                    self.phase,
                    c.bytes
                );
                if !matches!(self.phase, Phase::Write(_)) {
                    self.check(slot, req)?;
                }
                self.free |= 1 << slot;
            }
        }
        self.done += 1;
        Ok(())
    }

    fn phase_total(&self) -> u32 {
        match self.phase {
            Phase::Flush(_) => 1,
            Phase::Probe => 2,
            Phase::WaitPeer | Phase::Done => 0,
            _ => REQS,
        }
    }

    /// Moves to the next phase when this one is complete; true if it moved.
    fn advance(&mut self) -> bool {
        if self.phase == Phase::WaitPeer {
            if !self.peer_done {
                return false;
            }
        } else if self.phase == Phase::Done || self.done < self.phase_total() {
            return false;
        }
        let next = match self.phase {
            Phase::Write(r) => Phase::Flush(r),
            Phase::Flush(r) => Phase::Read(r),
            Phase::Read(r) if r + 1 < ROUNDS => Phase::Write(r + 1),
            Phase::Read(_) => {
                debug_println!(
                    "blk-client: read-write: {ROUNDS} rounds of {TEST_BLOCKS} blocks written (FUA, flush) and read back"
                );
                let (hz, now) = sel4_microkit::sys::time_now().unwrap_or((0, 0));
                let us = ticks_to_ns(now.wrapping_sub(self.started.1), hz) / 1000;
                let kib = u64::from(ROUNDS) * TEST_BLOCKS * 512 * 2 / 1024;
                debug_println!("blk-client: read-write: {kib} KiB written and read in {us} us (QEMU TCG)");
                // A system may give it no peer (system.xml): then nobody waits.
                let _ = PEER.try_notify();
                Phase::Done
            }
            Phase::CheckReadOnly => Phase::Probe,
            Phase::Probe => {
                debug_println!("blk-client: read-only: own window read, write refused, read past the window refused");
                Phase::WaitPeer
            }
            Phase::WaitPeer => Phase::FinalRead,
            Phase::FinalRead => {
                debug_println!("blk-client: read-only: window unchanged after the other clients' I/O");
                debug_println!("TEST PASS: {TEST}");
                Phase::Done
            }
            Phase::Done => Phase::Done,
        };
        self.phase = next;
        self.seq += 1;
        self.next = 0;
        self.done = 0;
        true
    }

    fn pump(&mut self) -> Result<(), TestFailed> {
        loop {
            while let Some(c) = self
                .client
                .poll()
                .map_err(|e| fail(TEST, format_args!("response: {e}")))?
            {
                self.on_completion(c)?;
            }
            while self.advance() {}
            self.submit()?;
            if self
                .client
                .signal_needed()
                .map_err(|e| fail(TEST, format_args!("{e}")))?
            {
                VCP.notify();
            }
            if self.client.in_flight() == 0 {
                return Ok(()); // nothing to wait for but the peer
            }
            if self
                .client
                .request_signal()
                .map_err(|e| fail(TEST, format_args!("{e}")))?
            {
                return Ok(());
            }
        }
    }
}

impl Handler for Tester {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        if channels.contains(PEER) {
            self.peer_done = true;
        }
        self.pump()
    }
}

fn start() -> Result<Tester, TestFailed> {
    let control = shared_region!(control_vaddr, size = control_size);
    let data = shared_region!(data_vaddr, size = data_size);
    let mut client = Client::new(control, RING_CAPACITY, data.len() as u64)
        .map_err(|e| fail(TEST, format_args!("control region: {e}")))?;
    let info = client
        .connect()
        .map_err(|e| fail(TEST, format_args!("vcp-blk info page: {e}")))?;
    ensure!(
        TEST,
        info.capacity_blocks >= TEST_BLOCKS,
        "window of {} blocks is too small",
        info.capacity_blocks
    );
    ensure!(
        TEST,
        data.len() as u64 >= u64::from(SLOTS) * SLOT_BYTES,
        "data region too small"
    );
    debug_println!(
        "blk-client: connected: {} blocks, {}, depth {}, generation {}",
        info.capacity_blocks,
        if info.read_only { "read-only" } else { "read-write" },
        info.queue_depth,
        info.generation
    );
    Ok(Tester {
        client,
        data,
        capacity: info.capacity_blocks,
        depth: info.queue_depth,
        phase: if info.read_only {
            Phase::CheckReadOnly
        } else {
            Phase::Write(0)
        },
        seq: 0,
        next: 0,
        done: 0,
        free: (1 << SLOTS) - 1,
        peer_done: false,
        started: sel4_microkit::sys::time_now().unwrap_or((0, 0)),
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
