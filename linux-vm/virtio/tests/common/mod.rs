//! A small virtio-mmio test driver: plays the guest's driver against the transport,
//! the way Linux's virtio_mmio and virtio_ring drive a device (virtio 1.2 §3.1, §2.7.13).
#![allow(dead_code)]

use vcpos_virtio::memory::{GuestMemory, MemoryError, VecMemory};
use vcpos_virtio::mmio::{features, reg, Device, DeviceStatus, MmioTransport};
use vcpos_virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use vcpos_virtio::GuestError;

/// The device's DEVICE_NEEDS_RESET bit of the status register.
pub const NEEDS_RESET: u8 = DeviceStatus::DEVICE_NEEDS_RESET.bits();

/// Guest RAM used by the tests.
pub const RAM_BASE: u64 = 0x4000_0000;
pub const RAM_SIZE: usize = 1 << 20;
/// Buffers handed to the device start here.
pub const BUF_BASE: u64 = RAM_BASE + 0x8_0000;

/// Guest memory that counts the device's writes (to check it stays quiet when it must).
pub struct CountingMemory {
    pub inner: VecMemory,
    pub writes: usize,
}

impl GuestMemory for CountingMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        self.inner.read(addr, buf)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), MemoryError> {
        self.writes += 1;
        self.inner.write(addr, data)
    }
    fn check_range(&self, addr: u64, len: u64) -> Result<(), MemoryError> {
        self.inner.check_range(addr, len)
    }
}

/// The driver's view of one queue.
#[derive(Clone, Debug)]
pub struct DriverQueue {
    pub size: u16,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    pub next_desc: u16,
    pub avail_idx: u16,
    pub last_used: u16,
}

/// One buffer of a chain to post.
pub enum Buf<'a> {
    /// Device-readable, with these contents.
    Out(&'a [u8]),
    /// Device-writable, this many bytes.
    In(u32),
}

pub struct TestDriver<D: Device> {
    pub t: MmioTransport<D>,
    pub mem: CountingMemory,
    /// Interrupts the transport asked the VMM to inject.
    pub irqs: usize,
    pub queues: Vec<DriverQueue>,
    next_buf: u64,
}

impl<D: Device> TestDriver<D> {
    pub fn new(device: D) -> Self {
        Self {
            t: MmioTransport::new(device),
            mem: CountingMemory {
                inner: VecMemory::zeroed(RAM_BASE, RAM_SIZE),
                writes: 0,
            },
            irqs: 0,
            queues: Vec::new(),
            next_buf: BUF_BASE,
        }
    }

    pub fn rd(&mut self, offset: u64) -> u32 {
        self.t.read(offset, 4)
    }

    /// A 32-bit register write; returns whether an interrupt was raised.
    pub fn wr(&mut self, offset: u64, value: u32) -> bool {
        let irq = self.t.write(offset, 4, value, &mut self.mem);
        if irq {
            self.irqs += 1;
        }
        irq
    }

    pub fn status(&mut self) -> u8 {
        self.rd(reg::STATUS) as u8
    }

    /// Checks the device moved to DEVICE_NEEDS_RESET and returns the guest error it
    /// recorded for it.
    pub fn fatal_error(&mut self) -> GuestError {
        assert_eq!(self.status() & NEEDS_RESET, NEEDS_RESET, "device needs a reset");
        self.t.take_error().expect("error recorded")
    }

    pub fn add_status(&mut self, bits: DeviceStatus) -> bool {
        let s = self.status() | bits.bits();
        self.wr(reg::STATUS, u32::from(s))
    }

    pub fn device_features(&mut self) -> u64 {
        self.wr(reg::DEVICE_FEATURES_SEL, 1);
        let hi = self.rd(reg::DEVICE_FEATURES);
        self.wr(reg::DEVICE_FEATURES_SEL, 0);
        let lo = self.rd(reg::DEVICE_FEATURES);
        (u64::from(hi) << 32) | u64::from(lo)
    }

    /// Reset, ACKNOWLEDGE, DRIVER, write `features`, FEATURES_OK; returns whether the
    /// device kept FEATURES_OK (virtio 1.2 §3.1.1 steps 1-6).
    pub fn negotiate(&mut self, features: u64) -> bool {
        self.wr(reg::STATUS, 0);
        assert_eq!(self.status(), 0, "reset must complete at once");
        self.add_status(DeviceStatus::ACKNOWLEDGE);
        self.add_status(DeviceStatus::DRIVER);
        self.wr(reg::DRIVER_FEATURES_SEL, 1);
        self.wr(reg::DRIVER_FEATURES, (features >> 32) as u32);
        self.wr(reg::DRIVER_FEATURES_SEL, 0);
        self.wr(reg::DRIVER_FEATURES, features as u32);
        self.add_status(DeviceStatus::FEATURES_OK);
        self.status() & DeviceStatus::FEATURES_OK.bits() != 0
    }

    /// Sets up queue `index` with `size` entries in its own 64 KiB slot of RAM.
    pub fn setup_queue(&mut self, index: u32, size: u16) {
        let base = RAM_BASE + u64::from(index) * 0x1_0000;
        let q = DriverQueue {
            size,
            desc: base,
            avail: base + 0x8000,
            used: base + 0xc000,
            next_desc: 0,
            avail_idx: 0,
            last_used: 0,
        };
        // Fresh rings, as a driver allocates them zeroed.
        for a in [q.avail, q.used] {
            self.mem.inner.as_bytes_mut()[(a - RAM_BASE) as usize..][..0x4000].fill(0);
        }
        self.wr(reg::QUEUE_SEL, index);
        assert_eq!(self.rd(reg::QUEUE_READY), 0);
        assert!(self.rd(reg::QUEUE_NUM_MAX) >= u32::from(size));
        self.wr(reg::QUEUE_NUM, u32::from(size));
        self.wr(reg::QUEUE_DESC_LOW, q.desc as u32);
        self.wr(reg::QUEUE_DESC_HIGH, (q.desc >> 32) as u32);
        self.wr(reg::QUEUE_DRIVER_LOW, q.avail as u32);
        self.wr(reg::QUEUE_DRIVER_HIGH, (q.avail >> 32) as u32);
        self.wr(reg::QUEUE_DEVICE_LOW, q.used as u32);
        self.wr(reg::QUEUE_DEVICE_HIGH, (q.used >> 32) as u32);
        self.wr(reg::QUEUE_READY, 1);
        let i = index as usize;
        if self.queues.len() <= i {
            self.queues.resize(i + 1, q.clone());
        }
        self.queues[i] = q;
    }

    /// The full initialisation with VERSION_1 plus `extra` features and `nqueues`
    /// queues of `size` entries (virtio 1.2 §3.1.1).
    pub fn init(&mut self, extra: u64, nqueues: u32, size: u16) {
        assert!(self.negotiate(features::VERSION_1 | extra), "FEATURES_OK refused");
        for i in 0..nqueues {
            self.setup_queue(i, size);
        }
        self.add_status(DeviceStatus::DRIVER_OK);
        assert_eq!(self.status(), 0x0f);
    }

    /// Allocates a guest buffer of `len` bytes.
    pub fn alloc(&mut self, len: u32) -> u64 {
        let addr = self.next_buf;
        self.next_buf += u64::from(len.max(1)).next_multiple_of(16);
        if self.next_buf > RAM_BASE + RAM_SIZE as u64 {
            self.next_buf = BUF_BASE;
            return self.alloc(len);
        }
        addr
    }

    pub fn write_desc(&mut self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let at = self.queues[q].desc + 16 * u64::from(i);
        let m = &mut self.mem.inner;
        m.write_u64(at, addr).unwrap();
        m.write_u32(at + 8, len).unwrap();
        m.write_u16(at + 12, flags).unwrap();
        m.write_u16(at + 14, next).unwrap();
    }

    /// Makes head `head` available on queue `q` (without notifying).
    pub fn make_available(&mut self, q: usize, head: u16) {
        let dq = &mut self.queues[q];
        let slot = dq.avail_idx % dq.size;
        dq.avail_idx = dq.avail_idx.wrapping_add(1);
        let (avail, idx) = (dq.avail, dq.avail_idx);
        self.mem.inner.write_u16(avail + 4 + 2 * u64::from(slot), head).unwrap();
        self.mem.inner.write_u16(avail + 2, idx).unwrap();
    }

    /// Builds a chain of `bufs` on queue `q`, makes it available; returns the head and
    /// the addresses of the buffers.
    pub fn post(&mut self, q: usize, bufs: &[Buf<'_>]) -> (u16, Vec<u64>) {
        let size = self.queues[q].size;
        let first = self.queues[q].next_desc;
        let mut addrs = Vec::new();
        for (k, b) in bufs.iter().enumerate() {
            let i = (first + k as u16) % size;
            let next = (i + 1) % size;
            let more = if k + 1 < bufs.len() { VIRTQ_DESC_F_NEXT } else { 0 };
            let (len, flags) = match b {
                Buf::Out(data) => (data.len() as u32, more),
                Buf::In(len) => (*len, more | VIRTQ_DESC_F_WRITE),
            };
            let addr = self.alloc(len);
            if let Buf::Out(data) = b {
                self.mem.inner.write(addr, data).unwrap();
            }
            self.write_desc(q, i, addr, len, flags, next);
            addrs.push(addr);
        }
        self.queues[q].next_desc = (first + bufs.len() as u16) % size;
        self.make_available(q, first);
        (first, addrs)
    }

    pub fn notify(&mut self, q: u32) -> bool {
        self.wr(reg::QUEUE_NOTIFY, q)
    }

    /// New used elements (id, len) on queue `q` since the last call.
    pub fn used(&mut self, q: usize) -> Vec<(u32, u32)> {
        let dq = self.queues[q].clone();
        let idx = self.mem.inner.read_u16(dq.used + 2).unwrap();
        let mut out = Vec::new();
        let mut i = dq.last_used;
        while i != idx {
            let at = dq.used + 4 + 8 * u64::from(i % dq.size);
            out.push((
                self.mem.inner.read_u32(at).unwrap(),
                self.mem.inner.read_u32(at + 4).unwrap(),
            ));
            i = i.wrapping_add(1);
        }
        self.queues[q].last_used = idx;
        out
    }

    pub fn bytes(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.inner.read(addr, &mut v).unwrap();
        v
    }

    pub fn poll(&mut self) -> bool {
        let irq = self.t.poll(&mut self.mem);
        if irq {
            self.irqs += 1;
        }
        irq
    }
}

/// A deterministic pseudo-random source for the property tests (splitmix64: small,
/// good enough to drive a fuzzer); seed it with `Rng(seed)`.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}
