//! Property tests with a deterministic pseudo-random guest: random register accesses,
//! random guest memory and random descriptor rings. Whatever the guest does, the
//! device must not panic and must keep its invariants:
//! - MagicValue always reads correctly, InterruptStatus holds only bits 0 and 1,
//! - the device writes no guest memory unless DRIVER_OK is set and it does not need a
//!   reset (status writes themselves excepted: DRIVER_OK may deliver input at once),
//! - the console's buffers stay within their bounds,
//! - with an intact used ring, `used.idx` equals the device's count and every used
//!   element names a valid head with a plausible length.

mod common;

use common::{Rng, TestDriver, RAM_BASE, RAM_SIZE};
use vcpos_virtio::console::{
    Console, INPUT_CAPACITY, OUTPUT_CAPACITY, VIRTIO_CONSOLE_F_EMERG_WRITE, VIRTIO_CONSOLE_F_SIZE,
};
use vcpos_virtio::mmio::{reg, DeviceStatus, MAGIC_VALUE};
use vcpos_virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use vcpos_virtio::GuestMemory;

const REGS: &[u64] = &[
    reg::DEVICE_FEATURES_SEL,
    reg::DRIVER_FEATURES,
    reg::DRIVER_FEATURES_SEL,
    reg::QUEUE_SEL,
    reg::QUEUE_NUM,
    reg::QUEUE_READY,
    reg::QUEUE_NOTIFY,
    reg::QUEUE_NOTIFY,
    reg::INTERRUPT_ACK,
    reg::STATUS,
    reg::QUEUE_DESC_LOW,
    reg::QUEUE_DESC_HIGH,
    reg::QUEUE_DRIVER_LOW,
    reg::QUEUE_DRIVER_HIGH,
    reg::QUEUE_DEVICE_LOW,
    reg::QUEUE_DEVICE_HIGH,
    reg::SHM_SEL,
    reg::CONFIG,
    reg::CONFIG + 8,
];

fn random_value(rng: &mut Rng) -> u32 {
    match rng.below(5) {
        0 => rng.below(4) as u32,
        1 => 1 << rng.below(32),
        2 => (RAM_BASE + rng.below(RAM_SIZE as u64)) as u32 & !0xf,
        3 => rng.pick(&[0x0f, 0x0b, 0x03, 0x01, 0x07, 0x80, 0x40, 0]),
        _ => rng.next() as u32,
    }
}

/// An address for a descriptor: mostly inside guest RAM, sometimes anywhere.
fn random_addr(rng: &mut Rng) -> u64 {
    match rng.below(6) {
        0 => rng.next(),
        1 => u64::MAX - rng.below(64),
        2 => RAM_BASE + RAM_SIZE as u64 - rng.below(64),
        _ => RAM_BASE + 0x8_0000 + rng.below(0x8_0000),
    }
}

fn random_len(rng: &mut Rng) -> u32 {
    match rng.below(5) {
        0 => rng.next() as u32,
        1 => 0,
        _ => rng.below(300) as u32,
    }
}

fn random_driver(rng: &mut Rng) -> TestDriver<Console> {
    let mut d = TestDriver::new(Console::with_size(80, 25));
    if rng.chance(30) {
        for b in d.mem.inner.as_bytes_mut().iter_mut() {
            *b = rng.next() as u8;
        }
    }
    d
}

fn init_random(rng: &mut Rng, d: &mut TestDriver<Console>) {
    let mut extra = 0;
    if rng.chance(50) {
        extra |= VIRTIO_CONSOLE_F_SIZE;
    }
    if rng.chance(50) {
        extra |= VIRTIO_CONSOLE_F_EMERG_WRITE;
    }
    let size = 1u16 << rng.below(9);
    d.init(extra, 2, size);
}

/// Posts a well-formed chain (readable then writable buffers inside RAM), as long as
/// the driver would have room in the ring.
fn post_valid_chain(rng: &mut Rng, d: &mut TestDriver<Console>, q: usize) {
    let size = d.queues[q].size;
    let outstanding = d.queues[q].avail_idx.wrapping_sub(d.t.queues()[q].next_avail());
    if outstanding >= size {
        return;
    }
    let n = 1 + rng.below(u64::from(size.min(4))) as u16;
    let writable_from = rng.below(u64::from(n) + 1) as u16;
    let head = rng.below(u64::from(size)) as u16;
    for k in 0..n {
        let i = (head + k) % size;
        let len = rng.below(300) as u32;
        let addr = d.alloc(len);
        let mut flags = if k + 1 < n { VIRTQ_DESC_F_NEXT } else { 0 };
        if k >= writable_from {
            flags |= VIRTQ_DESC_F_WRITE;
        }
        d.write_desc(q, i, addr, len, flags, (i + 1) % size);
    }
    d.make_available(q, head);
}

/// Writes a random (often invalid) descriptor and maybe makes a random head available.
fn scribble_ring(rng: &mut Rng, d: &mut TestDriver<Console>, q: usize) {
    if rng.chance(97) {
        return post_valid_chain(rng, d, q);
    }
    let size = d.queues[q].size;
    let i = if rng.chance(90) {
        rng.below(u64::from(size)) as u16
    } else {
        rng.next() as u16
    };
    let mut flags = 0;
    if rng.chance(40) {
        flags |= VIRTQ_DESC_F_NEXT;
    }
    if rng.chance(40) {
        flags |= VIRTQ_DESC_F_WRITE;
    }
    if rng.chance(3) {
        flags |= rng.next() as u16;
    }
    let next = if rng.chance(90) {
        rng.below(u64::from(size)) as u16
    } else {
        rng.next() as u16
    };
    if i < size {
        d.write_desc(q, i, random_addr(rng), random_len(rng), flags, next);
    }
    if rng.chance(50) {
        let head = if rng.chance(95) {
            rng.below(u64::from(size)) as u16
        } else {
            rng.next() as u16
        };
        d.make_available(q, head);
    }
}

fn check_invariants(d: &mut TestDriver<Console>) {
    assert_eq!(d.t.read(reg::MAGIC_VALUE, 4), MAGIC_VALUE);
    assert_eq!(d.t.interrupt_status().bits() & !3, 0);
    assert!(d.t.device().pending_input() <= INPUT_CAPACITY);
    assert!(d.t.device().pending_output() <= OUTPUT_CAPACITY);
}

/// Fully random register traffic and memory contents.
#[test]
fn random_registers_and_memory() {
    let (mut active_writes, mut quiet_ops) = (0u64, 0u64);
    for seed in 0..300u64 {
        let mut rng = Rng(seed);
        let mut d = random_driver(&mut rng);
        if rng.chance(50) {
            init_random(&mut rng, &mut d);
        }
        for _ in 0..1500 {
            let status = d.t.status();
            let writes = d.mem.writes;
            let mut status_write = false;
            match rng.below(12) {
                0..=3 => {
                    let offset = if rng.chance(85) {
                        rng.pick(REGS)
                    } else {
                        rng.below(0x200)
                    };
                    let size = if rng.chance(85) {
                        4
                    } else {
                        rng.pick(&[0u8, 1, 2, 3, 8])
                    };
                    status_write = offset == reg::STATUS;
                    let value = random_value(&mut rng);
                    let _ = d.t.write(offset, size, value, &mut d.mem);
                }
                4 => {
                    let offset = rng.below(0x400);
                    let size = rng.pick(&[1u8, 2, 4, 8]);
                    let _ = d.t.read(offset, size);
                }
                5 | 6 if !d.queues.is_empty() => {
                    let q = rng.below(2) as usize;
                    scribble_ring(&mut rng, &mut d, q);
                }
                7 => {
                    let at = RAM_BASE + rng.below(RAM_SIZE as u64 - 8);
                    let v = rng.next();
                    d.mem.inner.write_u64(at, v).unwrap();
                }
                8 => {
                    let _ = d.t.write(reg::QUEUE_NOTIFY, 4, rng.below(3) as u32, &mut d.mem);
                }
                9 => {
                    let n = rng.below(100) as usize;
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    d.t.device_mut().push_input(&bytes);
                    let _ = d.t.poll(&mut d.mem);
                }
                10 => {
                    let _ = d.t.device_mut().take_output();
                    let _ = d.t.poll(&mut d.mem);
                }
                _ => {
                    if rng.chance(20) {
                        init_random(&mut rng, &mut d);
                        continue;
                    }
                }
            }
            let quiet = !status.contains(DeviceStatus::DRIVER_OK) || status.contains(DeviceStatus::DEVICE_NEEDS_RESET);
            if quiet && !status_write {
                assert_eq!(d.mem.writes, writes, "seed {seed}: device wrote memory while inactive");
                quiet_ops += 1;
            } else if d.mem.writes != writes {
                active_writes += 1;
            }
            check_invariants(&mut d);
        }
    }
    eprintln!("ops with device writes {active_writes}, ops while inactive {quiet_ops}");
    assert!(active_writes > 1000 && quiet_ops > 1000);
}

/// A correctly initialised device fed random descriptor tables and available rings.
#[test]
fn random_rings_keep_the_used_ring_consistent() {
    // What the run reached, so the test fails if it stops exploring.
    let (mut used_total, mut broken, mut kinds) = (0u64, 0u32, std::collections::BTreeSet::new());
    for seed in 1000..1400u64 {
        let mut rng = Rng(seed);
        let mut d = random_driver(&mut rng);
        init_random(&mut rng, &mut d);
        for _ in 0..400 {
            let q = rng.below(2) as usize;
            match rng.below(4) {
                0 | 1 => scribble_ring(&mut rng, &mut d, q),
                2 => {
                    let _ = d.notify(q as u32);
                }
                _ => {
                    let n = rng.below(64) as usize;
                    let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                    d.t.device_mut().push_input(&bytes);
                    let _ = d.poll();
                    let _ = d.t.device_mut().take_output();
                }
            }
            check_invariants(&mut d);
            if d.t.status().contains(DeviceStatus::DEVICE_NEEDS_RESET) {
                let err = d.t.take_error();
                assert!(err.is_some_and(|e| e.is_fatal()), "seed {seed}");
                kinds.insert(
                    format!("{:?}", err.unwrap())
                        .split([' ', '('])
                        .next()
                        .unwrap()
                        .to_string(),
                );
                broken += 1;
                assert_ne!(d.t.interrupt_status().bits() & 2, 0, "config change raised");
                break;
            }
            for (i, dq) in d.queues.clone().iter().enumerate() {
                let queue = &d.t.queues()[i];
                assert!(queue.is_ready());
                let used_idx = d.mem.inner.read_u16(dq.used + 2).unwrap();
                assert_eq!(used_idx, queue.next_used(), "seed {seed}");
                used_total += u64::from(used_idx.wrapping_sub(dq.last_used));
                d.queues[i].last_used = used_idx;
                for k in 0..used_idx.min(dq.size) {
                    let at = dq.used + 4 + 8 * u64::from(k);
                    let id = d.mem.inner.read_u32(at).unwrap();
                    let len = d.mem.inner.read_u32(at + 4).unwrap();
                    assert!(id < u32::from(dq.size), "seed {seed}: used id {id}");
                    if i == 1 {
                        assert_eq!(len, 0, "transmit buffers are returned with len 0");
                    } else {
                        assert!(len as usize <= INPUT_CAPACITY);
                    }
                }
            }
        }
    }
    eprintln!("used elements {used_total}, broken devices {broken}, error kinds {kinds:?}");
    assert!(used_total > 1000, "too few completions: {used_total}");
    assert!(broken > 50, "too few protocol errors: {broken}");
    assert!(kinds.len() >= 5, "too few error kinds: {kinds:?}");
}
