//! The ring: layout, [`Producer`] and [`Consumer`], index validation and signalling.

use core::fmt;
use core::marker::PhantomData;
use core::sync::atomic::{fence, Ordering};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::memory::{OutOfBounds, SharedMemory};

/// Offset (from the ring's base) of the producer index, a `u32` only the producer writes.
pub const PRODUCER_INDEX_OFFSET: usize = 0x00;
/// Offset of the consumer index, a `u32` only the consumer writes (on its own cache
/// line, away from the producer index).
pub const CONSUMER_INDEX_OFFSET: usize = 0x40;
/// Offset of the signal flag, a `u32`: the consumer sets it to 1 to ask for a
/// notification, the producer clears it to 0 when it sends one.
pub const SIGNAL_FLAG_OFFSET: usize = 0x44;
/// Offset of slot 0; slot `i` is at `SLOTS_OFFSET + i * slot_size`.
pub const SLOTS_OFFSET: usize = 0x80;

/// A descriptor: a plain byte layout that any bit pattern is valid for (it comes from
/// an untrusted peer), with a size that is a non-zero multiple of 4.
pub trait Descriptor: FromBytes + IntoBytes + Immutable + KnownLayout {}
impl<T: FromBytes + IntoBytes + Immutable + KnownLayout> Descriptor for T {}

/// Where a ring lives in a shared memory region: base offset, capacity (a power of
/// two, fixed by each side's configuration) and slot size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingLayout {
    base: usize,
    capacity: u32,
    slot_size: usize,
}

/// A ring layout that cannot work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The capacity is zero, not a power of two, or above 2^31.
    Capacity(u32),
    /// The slot size is zero or not a multiple of 4.
    SlotSize(usize),
    /// The base offset is not 64-byte aligned.
    Base(usize),
    /// The ring needs `end` bytes but the region has only `size`.
    TooSmall {
        /// Bytes the ring needs from the start of the region.
        end: usize,
        /// Size of the region.
        size: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::Capacity(c) => {
                write!(f, "ring capacity {c} is not a power of two in 1..=2^31")
            }
            LayoutError::SlotSize(s) => write!(f, "slot size {s} is not a non-zero multiple of 4"),
            LayoutError::Base(b) => write!(f, "ring base {b:#x} is not 64-byte aligned"),
            LayoutError::TooSmall { end, size } => {
                write!(f, "ring needs {end:#x} bytes but the region has {size:#x}")
            }
        }
    }
}

impl RingLayout {
    /// A ring at `base` (64-byte aligned) with `capacity` slots of `slot_size` bytes.
    pub const fn new(base: usize, capacity: u32, slot_size: usize) -> Result<RingLayout, LayoutError> {
        if capacity == 0 || !capacity.is_power_of_two() || capacity > 1 << 31 {
            return Err(LayoutError::Capacity(capacity));
        }
        if slot_size == 0 || !slot_size.is_multiple_of(4) {
            return Err(LayoutError::SlotSize(slot_size));
        }
        if !base.is_multiple_of(64) {
            return Err(LayoutError::Base(base));
        }
        Ok(RingLayout {
            base,
            capacity,
            slot_size,
        })
    }

    /// A ring of descriptors `D` (slot size = `size_of::<D>()`).
    pub const fn for_descriptor<D: Descriptor>(base: usize, capacity: u32) -> Result<RingLayout, LayoutError> {
        RingLayout::new(base, capacity, core::mem::size_of::<D>())
    }

    /// Bytes a ring of `capacity` slots of `slot_size` bytes occupies.
    pub const fn bytes(capacity: u32, slot_size: usize) -> usize {
        SLOTS_OFFSET + capacity as usize * slot_size
    }

    /// The base offset.
    pub const fn base(&self) -> usize {
        self.base
    }

    /// The capacity in slots.
    pub const fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The slot size in bytes.
    pub const fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// The first byte after the ring.
    pub const fn end(&self) -> usize {
        self.base + RingLayout::bytes(self.capacity, self.slot_size)
    }

    fn check(&self, mem: &impl SharedMemory, slot_size: usize) -> Result<(), LayoutError> {
        if slot_size != self.slot_size {
            return Err(LayoutError::SlotSize(slot_size));
        }
        if self.end() > mem.size() {
            return Err(LayoutError::TooSmall {
                end: self.end(),
                size: mem.size(),
            });
        }
        Ok(())
    }

    fn slot_offset(&self, index: u32) -> usize {
        self.base + SLOTS_OFFSET + (index & (self.capacity - 1)) as usize * self.slot_size
    }
}

/// Why a ring operation failed. After any of these but [`QueueError::OutOfBounds`]
/// the ring is cut off: every later operation returns [`QueueError::CutOff`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The peer's index is impossible: more than the capacity ahead of ours, or moved
    /// backwards (or forwards by more than the capacity) since we last read it.
    IndexJump {
        /// Which index: `"producer"` or `"consumer"`.
        which: &'static str,
        /// The value read from shared memory.
        seen: u32,
        /// The value last read (or our own index where that is the bound).
        previous: u32,
        /// The ring's capacity.
        capacity: u32,
    },
    /// A shared-memory access failed (a layout bug on this side; the peer cannot cause
    /// it, as all offsets are computed from private state).
    OutOfBounds(OutOfBounds),
    /// An earlier error cut this ring off; it is never used again.
    CutOff,
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::IndexJump {
                which,
                seen,
                previous,
                capacity,
            } => write!(
                f,
                "peer's {which} index jumped to {seen} (previous {previous}, capacity {capacity}): ring cut off"
            ),
            QueueError::OutOfBounds(e) => write!(f, "ring access out of bounds: {e}"),
            QueueError::CutOff => f.write_str("ring was cut off after an earlier error"),
        }
    }
}

impl From<OutOfBounds> for QueueError {
    fn from(e: OutOfBounds) -> QueueError {
        QueueError::OutOfBounds(e)
    }
}

/// Why [`Producer::push`] did not push.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// Every slot holds a descriptor the consumer has not taken yet.
    Full,
    /// The ring failed.
    Queue(QueueError),
}

impl From<QueueError> for PushError {
    fn from(e: QueueError) -> PushError {
        PushError::Queue(e)
    }
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::Full => f.write_str("ring full"),
            PushError::Queue(e) => e.fmt(f),
        }
    }
}

/// The producing half of a ring: writes descriptors and the producer index.
pub struct Producer<M, D> {
    mem: M,
    layout: RingLayout,
    /// Our index (private; published after each push).
    tail: u32,
    /// The consumer index as last read.
    head_seen: u32,
    broken: bool,
    _d: PhantomData<fn(D)>,
}

/// The consuming half of a ring: reads descriptors, writes the consumer index and sets
/// the signal flag.
pub struct Consumer<M, D> {
    mem: M,
    layout: RingLayout,
    /// Our index (private; published after each pop).
    head: u32,
    /// The producer index as last read.
    tail_seen: u32,
    broken: bool,
    _d: PhantomData<fn() -> D>,
}

/// Checks a peer index: `seen` must be at most `capacity` ahead of `lower` and must
/// not be behind `previous` (nor more than `capacity` ahead of it).
fn check_index(which: &'static str, seen: u32, lower: u32, previous: u32, capacity: u32) -> Result<u32, QueueError> {
    let jump = QueueError::IndexJump {
        which,
        seen,
        previous,
        capacity,
    };
    if seen.wrapping_sub(previous) > capacity {
        return Err(jump);
    }
    let distance = seen.wrapping_sub(lower);
    if distance > capacity {
        return Err(jump);
    }
    Ok(distance)
}

impl<M: SharedMemory, D: Descriptor> Producer<M, D> {
    /// The producer of `layout` in `mem`. Both indices start at 0 (the region is
    /// zeroed when the system boots); this writes our index 0.
    pub fn new(mem: M, layout: RingLayout) -> Result<Self, LayoutError> {
        layout.check(&mem, core::mem::size_of::<D>())?;
        let p = Producer {
            mem,
            layout,
            tail: 0,
            head_seen: 0,
            broken: false,
            _d: PhantomData,
        };
        p.mem
            .store_u32(layout.base + PRODUCER_INDEX_OFFSET, 0, Ordering::Release)
            .map_err(|_| LayoutError::TooSmall {
                end: layout.end(),
                size: p.mem.size(),
            })?;
        Ok(p)
    }

    /// The layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Whether an error cut the ring off.
    pub fn is_cut_off(&self) -> bool {
        self.broken
    }

    fn fail<T>(&mut self, e: QueueError) -> Result<T, QueueError> {
        self.broken = true;
        Err(e)
    }

    /// Slots free for [`Self::push`] (reads and checks the consumer index).
    pub fn free_slots(&mut self) -> Result<u32, QueueError> {
        if self.broken {
            return Err(QueueError::CutOff);
        }
        let cap = self.layout.capacity;
        let head = match self
            .mem
            .load_u32(self.layout.base + CONSUMER_INDEX_OFFSET, Ordering::Acquire)
        {
            Ok(h) => h,
            Err(e) => return self.fail(e.into()),
        };
        // The consumer index may only move forwards, and never past our index.
        if head.wrapping_sub(self.head_seen) > self.tail.wrapping_sub(self.head_seen) {
            return self.fail(QueueError::IndexJump {
                which: "consumer",
                seen: head,
                previous: self.head_seen,
                capacity: cap,
            });
        }
        self.head_seen = head;
        Ok(cap - self.tail.wrapping_sub(head))
    }

    /// Descriptors pushed and not yet taken by the consumer (as last read).
    pub fn pending(&self) -> u32 {
        self.tail.wrapping_sub(self.head_seen)
    }

    /// Writes `d` into the next slot and publishes it (Release on the producer index).
    pub fn push(&mut self, d: &D) -> Result<(), PushError> {
        if self.free_slots()? == 0 {
            return Err(PushError::Full);
        }
        let offset = self.layout.slot_offset(self.tail);
        if let Err(e) = self.mem.write_bytes(offset, d.as_bytes()) {
            self.broken = true;
            return Err(PushError::Queue(e.into()));
        }
        self.tail = self.tail.wrapping_add(1);
        if let Err(e) = self
            .mem
            .store_u32(self.layout.base + PRODUCER_INDEX_OFFSET, self.tail, Ordering::Release)
        {
            self.broken = true;
            return Err(PushError::Queue(e.into()));
        }
        Ok(())
    }

    /// After a batch of pushes: whether the consumer asked for a notification. If so,
    /// the flag is cleared and the caller must notify the consumer now.
    pub fn signal_needed(&mut self) -> Result<bool, QueueError> {
        if self.broken {
            return Err(QueueError::CutOff);
        }
        // Orders our index store before the flag load (pairs with the fence in
        // `Consumer::request_signal`): either the consumer sees our descriptors or we
        // see its flag.
        fence(Ordering::SeqCst);
        let flag_at = self.layout.base + SIGNAL_FLAG_OFFSET;
        let flag = match self.mem.load_u32(flag_at, Ordering::Relaxed) {
            Ok(f) => f,
            Err(e) => return self.fail(e.into()),
        };
        if flag == 0 {
            return Ok(false);
        }
        if let Err(e) = self.mem.store_u32(flag_at, 0, Ordering::Relaxed) {
            return self.fail(e.into());
        }
        Ok(true)
    }
}

impl<M: SharedMemory, D: Descriptor> Consumer<M, D> {
    /// The consumer of `layout` in `mem`. Both indices start at 0; this writes our
    /// index 0 and clears the signal flag.
    pub fn new(mem: M, layout: RingLayout) -> Result<Self, LayoutError> {
        layout.check(&mem, core::mem::size_of::<D>())?;
        let c = Consumer {
            mem,
            layout,
            head: 0,
            tail_seen: 0,
            broken: false,
            _d: PhantomData,
        };
        let too_small = |_| LayoutError::TooSmall {
            end: layout.end(),
            size: c.mem.size(),
        };
        c.mem
            .store_u32(layout.base + CONSUMER_INDEX_OFFSET, 0, Ordering::Release)
            .map_err(too_small)?;
        c.mem
            .store_u32(layout.base + SIGNAL_FLAG_OFFSET, 0, Ordering::Relaxed)
            .map_err(too_small)?;
        Ok(c)
    }

    /// The layout.
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Whether an error cut the ring off.
    pub fn is_cut_off(&self) -> bool {
        self.broken
    }

    fn fail<T>(&mut self, e: QueueError) -> Result<T, QueueError> {
        self.broken = true;
        Err(e)
    }

    /// Descriptors ready to pop (reads and checks the producer index, Acquire).
    pub fn available(&mut self) -> Result<u32, QueueError> {
        if self.broken {
            return Err(QueueError::CutOff);
        }
        let tail = match self
            .mem
            .load_u32(self.layout.base + PRODUCER_INDEX_OFFSET, Ordering::Acquire)
        {
            Ok(t) => t,
            Err(e) => return self.fail(e.into()),
        };
        match check_index("producer", tail, self.head, self.tail_seen, self.layout.capacity) {
            Ok(n) => {
                self.tail_seen = tail;
                Ok(n)
            }
            Err(e) => self.fail(e),
        }
    }

    /// Takes the next descriptor, if any: copies it out of its slot, then releases the
    /// slot (Release on the consumer index). The descriptor is untrusted data.
    pub fn pop(&mut self) -> Result<Option<D>, QueueError> {
        if self.available()? == 0 {
            return Ok(None);
        }
        let mut d = D::new_zeroed();
        let offset = self.layout.slot_offset(self.head);
        if let Err(e) = self.mem.read_bytes(offset, d.as_mut_bytes()) {
            return self.fail(e.into());
        }
        self.head = self.head.wrapping_add(1);
        if let Err(e) = self
            .mem
            .store_u32(self.layout.base + CONSUMER_INDEX_OFFSET, self.head, Ordering::Release)
        {
            return self.fail(e.into());
        }
        Ok(Some(d))
    }

    /// Asks the producer for a notification when it next publishes. Returns `Ok(true)`
    /// if the ring is still empty after the request (safe to wait for the
    /// notification), `Ok(false)` if descriptors arrived meanwhile (the request is
    /// withdrawn; pop them, then ask again).
    pub fn request_signal(&mut self) -> Result<bool, QueueError> {
        if self.broken {
            return Err(QueueError::CutOff);
        }
        let flag_at = self.layout.base + SIGNAL_FLAG_OFFSET;
        if let Err(e) = self.mem.store_u32(flag_at, 1, Ordering::Relaxed) {
            return self.fail(e.into());
        }
        // Pairs with the fence in `Producer::signal_needed` (see there).
        fence(Ordering::SeqCst);
        if self.available()? == 0 {
            return Ok(true);
        }
        self.cancel_signal()?;
        Ok(false)
    }

    /// Withdraws a notification request.
    pub fn cancel_signal(&mut self) -> Result<(), QueueError> {
        if self.broken {
            return Err(QueueError::CutOff);
        }
        if let Err(e) = self
            .mem
            .store_u32(self.layout.base + SIGNAL_FLAG_OFFSET, 0, Ordering::Relaxed)
        {
            return self.fail(e.into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_rules() {
        assert_eq!(RingLayout::new(0, 3, 16), Err(LayoutError::Capacity(3)));
        assert_eq!(RingLayout::new(0, 0, 16), Err(LayoutError::Capacity(0)));
        assert_eq!(RingLayout::new(0, 4, 6), Err(LayoutError::SlotSize(6)));
        assert_eq!(RingLayout::new(32, 4, 16), Err(LayoutError::Base(32)));
        let l = RingLayout::new(0x1000, 8, 16).unwrap();
        assert_eq!(l.end(), 0x1000 + 0x80 + 8 * 16);
        assert_eq!(l.slot_offset(9), 0x1000 + 0x80 + 16);
    }

    #[test]
    fn index_check() {
        // 3 ahead of head 10, capacity 4: fine.
        assert_eq!(check_index("producer", 13, 10, 10, 4), Ok(3));
        // 5 ahead: too many.
        assert!(check_index("producer", 15, 10, 10, 4).is_err());
        // Backwards.
        assert!(check_index("producer", 11, 10, 12, 4).is_err());
        // Wrapping around u32::MAX is normal.
        assert_eq!(check_index("producer", 1, u32::MAX - 1, u32::MAX - 1, 4), Ok(3));
    }
}
