//! Ring tests on the host: a producer and a consumer thread moving millions of
//! descriptors with the signalling protocol (nothing lost, duplicated or reordered,
//! no lost wake-up), and hostile peers writing random shared memory against an honest
//! consumer and producer (never a panic, never an impossible index accepted).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{
    Consumer, Producer, PushError, QueueError, RingLayout, SharedMemory, CONSUMER_INDEX_OFFSET, PRODUCER_INDEX_OFFSET,
    SIGNAL_FLAG_OFFSET,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Item {
    seq: u64,
    check: u64,
}

fn item(seq: u64) -> Item {
    Item {
        seq,
        check: seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5a5a,
    }
}

/// A notification: a word the signaller sets and the waiter takes, plus a wake-up.
struct Notification {
    word: AtomicU32,
    waiter: std::sync::Mutex<Option<thread::Thread>>,
}

impl Notification {
    fn new() -> Arc<Notification> {
        Arc::new(Notification {
            word: AtomicU32::new(0),
            waiter: std::sync::Mutex::new(None),
        })
    }
    fn signal(&self) {
        self.word.store(1, Ordering::SeqCst);
        if let Some(t) = self.waiter.lock().unwrap().as_ref() {
            t.unpark();
        }
    }
    /// Waits up to `limit` for a signal; false on timeout.
    fn wait(&self, limit: Duration) -> bool {
        *self.waiter.lock().unwrap() = Some(thread::current());
        let start = Instant::now();
        while self.word.swap(0, Ordering::SeqCst) == 0 {
            if start.elapsed() > limit {
                return false;
            }
            thread::park_timeout(Duration::from_millis(50));
        }
        true
    }
}

/// Moves `count` items through a ring of `capacity` slots between two threads. The
/// consumer sleeps on a notification whenever the ring is empty (request_signal); a
/// lost wake-up shows up as a wait that times out while items are pending.
fn run_pair(count: u64, capacity: u32) -> (u64, u64) {
    let layout = RingLayout::for_descriptor::<Item>(0, capacity).unwrap();
    let mem = FakeMemory::new(layout.end());
    let mut producer = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    let mut consumer = Consumer::<_, Item>::new(mem.clone(), layout).unwrap();
    let wake = Notification::new();
    let wake_c = wake.clone();

    let consumer_thread = thread::spawn(move || {
        let mut next = 0u64;
        let mut requests = 0u64;
        while next < count {
            match consumer.pop().expect("honest producer") {
                Some(got) => {
                    assert_eq!(got, item(next), "item {next} lost, duplicated or corrupted");
                    next += 1;
                }
                None => {
                    requests += 1;
                    if consumer.request_signal().expect("honest producer") {
                        assert!(
                            wake_c.wait(Duration::from_secs(5)),
                            "lost wake-up: waited 5 s at item {next}"
                        );
                    }
                }
            }
        }
        assert_eq!(consumer.pop().unwrap(), None, "more items than produced");
        requests
    });

    let mut signals = 0u64;
    let mut seq = 0u64;
    while seq < count {
        // Batches of up to 8, then one signal check, as a VCP does.
        let mut pushed = 0;
        while pushed < 8 && seq < count {
            match producer.push(&item(seq)) {
                Ok(()) => {
                    seq += 1;
                    pushed += 1;
                }
                Err(PushError::Full) => break,
                Err(e) => panic!("honest consumer: {e}"),
            }
        }
        if producer.signal_needed().unwrap() {
            signals += 1;
            wake.signal();
        }
        if pushed == 0 {
            thread::yield_now();
        }
    }
    let requests = consumer_thread.join().expect("consumer thread");
    (requests, signals)
}

#[test]
fn two_threads_million_items() {
    // Sized to run in a few seconds in a debug build on a loaded 2-core machine.
    let count = if cfg!(debug_assertions) { 2_000_000 } else { 5_000_000 };
    let start = Instant::now();
    let (requests, signals) = run_pair(count, 64);
    eprintln!(
        "{count} items in {:.2} s: consumer asked for a signal {requests} times, producer signalled {signals} times",
        start.elapsed().as_secs_f64()
    );
    assert!(
        signals <= requests,
        "signals ({signals}) only answer requests ({requests})"
    );
}

#[test]
fn two_threads_tiny_ring_wraps_often() {
    // Capacity 2: the ring is full or empty most of the time, the hardest case for the
    // signalling double-check.
    run_pair(200_000, 2);
}

#[test]
fn indices_wrap_around_u32() {
    let layout = RingLayout::for_descriptor::<Item>(0, 4).unwrap();
    let mem = FakeMemory::new(layout.end());
    let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    let mut c = Consumer::<_, Item>::new(mem.clone(), layout).unwrap();
    // Push/pop across 2^32 is impractical here; instead check that index arithmetic is
    // modular by going around the ring many times.
    for i in 0..1000u64 {
        p.push(&item(i)).unwrap();
        assert_eq!(c.pop().unwrap(), Some(item(i)));
    }
    assert_eq!(mem.load_u32(PRODUCER_INDEX_OFFSET, Ordering::Relaxed).unwrap(), 1000);
    assert_eq!(mem.load_u32(CONSUMER_INDEX_OFFSET, Ordering::Relaxed).unwrap(), 1000);
}

#[test]
fn full_ring_refuses() {
    let layout = RingLayout::for_descriptor::<Item>(0, 4).unwrap();
    let mem = FakeMemory::new(layout.end());
    let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    for i in 0..4 {
        p.push(&item(i)).unwrap();
    }
    assert_eq!(p.push(&item(4)), Err(PushError::Full));
}

#[test]
fn producer_index_jump_cuts_off() {
    let layout = RingLayout::for_descriptor::<Item>(0x40, 8).unwrap();
    let mem = FakeMemory::new(layout.end());
    let mut c = Consumer::<_, Item>::new(mem.clone(), layout).unwrap();
    mem.store_u32(0x40 + PRODUCER_INDEX_OFFSET, 9, Ordering::Release)
        .unwrap();
    assert!(matches!(
        c.pop(),
        Err(QueueError::IndexJump {
            which: "producer",
            seen: 9,
            ..
        })
    ));
    // Cut off for good, even once the index looks sane again.
    mem.store_u32(0x40 + PRODUCER_INDEX_OFFSET, 0, Ordering::Release)
        .unwrap();
    assert_eq!(c.pop(), Err(QueueError::CutOff));
    assert!(c.is_cut_off());
}

#[test]
fn producer_index_backwards_cuts_off() {
    let layout = RingLayout::for_descriptor::<Item>(0, 8).unwrap();
    let mem = FakeMemory::new(layout.end());
    let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    let mut c = Consumer::<_, Item>::new(mem.clone(), layout).unwrap();
    for i in 0..3 {
        p.push(&item(i)).unwrap();
    }
    assert_eq!(c.pop().unwrap(), Some(item(0)));
    // The producer claims 2 published instead of 3: slot 1 would be read twice later.
    mem.store_u32(PRODUCER_INDEX_OFFSET, 2, Ordering::Release).unwrap();
    assert!(matches!(c.pop(), Err(QueueError::IndexJump { .. })));
}

#[test]
fn consumer_index_jumps_cut_off() {
    let layout = RingLayout::for_descriptor::<Item>(0, 8).unwrap();
    // Ahead of what was produced.
    let mem = FakeMemory::new(layout.end());
    let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    p.push(&item(0)).unwrap();
    mem.store_u32(CONSUMER_INDEX_OFFSET, 2, Ordering::Release).unwrap();
    assert!(matches!(
        p.push(&item(1)),
        Err(PushError::Queue(QueueError::IndexJump { which: "consumer", .. }))
    ));
    assert_eq!(p.free_slots(), Err(QueueError::CutOff));
    // Backwards.
    let mem = FakeMemory::new(layout.end());
    let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    for i in 0..4 {
        p.push(&item(i)).unwrap();
    }
    mem.store_u32(CONSUMER_INDEX_OFFSET, 3, Ordering::Release).unwrap();
    assert_eq!(p.free_slots(), Ok(7));
    mem.store_u32(CONSUMER_INDEX_OFFSET, 1, Ordering::Release).unwrap();
    assert!(p.free_slots().is_err());
}

#[test]
fn signal_protocol_single_thread() {
    let layout = RingLayout::for_descriptor::<Item>(0, 4).unwrap();
    let mem = FakeMemory::new(layout.end());
    let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
    let mut c = Consumer::<_, Item>::new(mem.clone(), layout).unwrap();
    // Nobody asked: no signal.
    p.push(&item(0)).unwrap();
    assert!(!p.signal_needed().unwrap());
    // Asking with an item waiting withdraws the request and says "don't sleep".
    assert!(!c.request_signal().unwrap());
    assert_eq!(mem.load_u32(SIGNAL_FLAG_OFFSET, Ordering::Relaxed).unwrap(), 0);
    c.pop().unwrap();
    // Empty: the request stands, the next publication signals once.
    assert!(c.request_signal().unwrap());
    p.push(&item(1)).unwrap();
    assert!(p.signal_needed().unwrap());
    assert!(!p.signal_needed().unwrap(), "one signal per request");
}

/// A small deterministic PRNG (xorshift64*), so hostile runs are reproducible.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A hostile producer scribbles random words over the whole ring while an honest
/// consumer pops: every accepted pop must be within what the producer index allowed,
/// and no call may panic.
#[test]
fn hostile_producer_random_memory() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed.wrapping_mul(0x1234_5678_9abc_def1));
        let layout = RingLayout::for_descriptor::<Item>(0, 8).unwrap();
        let mem = FakeMemory::new(layout.end());
        let mut c = Consumer::<_, Item>::new(mem.clone(), layout).unwrap();
        let mut popped = 0u32;
        for _ in 0..500 {
            // Mostly plausible indices, sometimes wild ones, and random descriptor bytes.
            let word = (rng.next() as usize % (layout.end() / 4)) * 4;
            let value = match rng.next() % 4 {
                0 => rng.next() as u32,
                _ => popped.wrapping_add((rng.next() % 10) as u32),
            };
            let target = if rng.next().is_multiple_of(2) {
                PRODUCER_INDEX_OFFSET
            } else {
                word
            };
            mem.store_u32(target, value, Ordering::Release).unwrap();
            let tail = mem.load_u32(PRODUCER_INDEX_OFFSET, Ordering::Acquire).unwrap();
            match c.pop() {
                Ok(Some(_)) => {
                    popped += 1;
                    let ahead = tail.wrapping_sub(popped - 1);
                    assert!(
                        (1..=8).contains(&ahead),
                        "seed {seed}: popped with producer index {tail}"
                    );
                }
                Ok(None) => assert_eq!(tail, popped, "seed {seed}: nothing popped though {tail} != {popped}"),
                Err(QueueError::IndexJump { .. }) | Err(QueueError::CutOff) => {
                    assert!(c.is_cut_off());
                    break;
                }
                Err(e) => panic!("seed {seed}: unexpected {e}"),
            }
            let _ = c.request_signal();
        }
    }
}

/// A hostile consumer scribbles over the ring while an honest producer pushes: the
/// producer never overwrites a slot it has not been given back and never panics.
#[test]
fn hostile_consumer_random_memory() {
    for seed in 1..=200u64 {
        let mut rng = Rng(seed ^ 0xdead_beef_cafe_f00d);
        let layout = RingLayout::for_descriptor::<Item>(0, 8).unwrap();
        let mem = FakeMemory::new(layout.end());
        let mut p = Producer::<_, Item>::new(mem.clone(), layout).unwrap();
        let mut pushed = 0u32;
        for _ in 0..500 {
            let word = (rng.next() as usize % (layout.end() / 4)) * 4;
            if word != PRODUCER_INDEX_OFFSET {
                mem.store_u32(word, rng.next() as u32, Ordering::Release).unwrap();
            }
            if rng.next().is_multiple_of(2) {
                let value = pushed.wrapping_sub((rng.next() % 12) as u32);
                mem.store_u32(CONSUMER_INDEX_OFFSET, value, Ordering::Release).unwrap();
            }
            let head = mem.load_u32(CONSUMER_INDEX_OFFSET, Ordering::Acquire).unwrap();
            match p.push(&item(u64::from(pushed))) {
                Ok(()) => {
                    assert!(
                        pushed.wrapping_sub(head) < 8,
                        "seed {seed}: pushed over an unreleased slot"
                    );
                    pushed += 1;
                }
                Err(PushError::Full) => assert_eq!(pushed.wrapping_sub(head), 8),
                Err(PushError::Queue(QueueError::IndexJump { .. })) | Err(PushError::Queue(QueueError::CutOff)) => {
                    break
                }
                Err(e) => panic!("seed {seed}: unexpected {e}"),
            }
            let _ = p.signal_needed();
        }
    }
}

#[test]
fn region_too_small_is_an_error() {
    let layout = RingLayout::for_descriptor::<Item>(0, 8).unwrap();
    let mem = FakeMemory::new(layout.end() - 4);
    assert!(Producer::<_, Item>::new(mem.clone(), layout).is_err());
    assert!(Consumer::<_, Item>::new(mem, layout).is_err());
}
