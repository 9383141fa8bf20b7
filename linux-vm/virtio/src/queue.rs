//! Split virtqueues, device side (virtio 1.2 §2.7): popping descriptor chains from the
//! available ring and returning them through the used ring.
//!
//! Every value read from guest memory is untrusted. A chain is read once, each
//! descriptor copied out and checked before use:
//! - head and `next` indices are below the queue size (§2.7.5),
//! - a chain has at most queue-size descriptors, so a `next` loop ends (§2.7.5.2 forbids loops),
//! - `addr + len` does not overflow and lies inside guest memory,
//! - device-readable descriptors come before device-writable ones (§2.7.4.2),
//! - VIRTQ_DESC_F_INDIRECT is refused, since VIRTIO_F_RING_INDIRECT_DESC is never
//!   offered (§2.7.5.3),
//! - `avail.idx` never runs more than queue-size entries ahead (§2.7.6).
//!
//! Any violation is a [`GuestError`]; the transport then sets DEVICE_NEEDS_RESET.

use crate::error::GuestError;
use crate::memory::{GuestMemory, MemoryError};
use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Largest queue size a split virtqueue may have (virtio 1.2 §2.7: `Queue Size`
/// is at most 32768).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Descriptor flag: the chain continues in `next` (virtio 1.2 §2.7.5).
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable (otherwise device-readable).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds a table of indirect descriptors (§2.7.5.3).
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Available-ring flag: the driver asks not to be interrupted (§2.7.7, no EVENT_IDX).
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// One descriptor-table entry (virtio 1.2 §2.7.5), 16 bytes, little-endian.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Descriptor {
    /// Guest-physical address of the buffer.
    pub addr: U64,
    /// Length of the buffer in bytes.
    pub len: U32,
    /// `VIRTQ_DESC_F_*` bits.
    pub flags: U16,
    /// Index of the next descriptor if `flags` has NEXT.
    pub next: U16,
}

/// One used-ring element (virtio 1.2 §2.7.8), 8 bytes, little-endian.
#[derive(Debug, Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct UsedElem {
    /// Head index of the completed chain.
    pub id: U32,
    /// Bytes the device wrote into the chain's writable buffers.
    pub len: U32,
}

const DESC_SIZE: u64 = core::mem::size_of::<Descriptor>() as u64;
const USED_ELEM_SIZE: u64 = core::mem::size_of::<UsedElem>() as u64;
const _: () = assert!(DESC_SIZE == 16 && USED_ELEM_SIZE == 8);

/// Bytes of the descriptor table for `size` entries (virtio 1.2 §2.7, table of sizes).
pub fn desc_table_bytes(size: u16) -> u64 {
    DESC_SIZE * u64::from(size)
}

/// Bytes of the driver area (available ring) incl. `used_event`.
pub fn avail_ring_bytes(size: u16) -> u64 {
    6 + 2 * u64::from(size)
}

/// Bytes of the device area (used ring) incl. `avail_event`.
pub fn used_ring_bytes(size: u16) -> u64 {
    6 + USED_ELEM_SIZE * u64::from(size)
}

/// A guest buffer: `len` bytes at guest-physical `addr`, checked to be inside guest
/// memory when the chain was popped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address.
    pub addr: u64,
    /// Length in bytes (never 0: empty descriptors are dropped).
    pub len: u32,
}

/// A descriptor chain taken from the available ring: its head index (to return it
/// through [`Queue::push_used`]) and its buffers, readable ones first.
///
/// The chain owns copies of the checked descriptors, so a device may keep it while a
/// request is in flight (block and network devices backed by I/O PDs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorChain {
    queue: u16,
    head: u16,
    readable: Vec<Segment>,
    writable: Vec<Segment>,
}

impl DescriptorChain {
    /// Head descriptor index, the `id` of the used element.
    pub fn head(&self) -> u16 {
        self.head
    }

    /// Device-readable buffers, in chain order.
    pub fn readable(&self) -> &[Segment] {
        &self.readable
    }

    /// Device-writable buffers, in chain order.
    pub fn writable(&self) -> &[Segment] {
        &self.writable
    }

    /// Total device-readable bytes.
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// Total device-writable bytes.
    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| u64::from(s.len)).sum()
    }

    /// A cursor reading the readable buffers in order.
    pub fn reader(&self) -> Reader<'_> {
        Reader {
            segments: &self.readable,
            seg: 0,
            offset: 0,
        }
    }

    /// A cursor filling the writable buffers in order.
    pub fn writer(&self) -> Writer<'_> {
        Writer {
            segments: &self.writable,
            seg: 0,
            offset: 0,
            written: 0,
        }
    }

    /// Index of the queue the chain came from.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

/// Sequential reader over a chain's device-readable buffers.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    segments: &'a [Segment],
    seg: usize,
    offset: u32,
}

impl Reader<'_> {
    /// Fills as much of `buf` as the remaining readable bytes allow; returns the count.
    pub fn read(&mut self, mem: &dyn GuestMemory, buf: &mut [u8]) -> Result<usize, GuestError> {
        let mut done = 0;
        while done < buf.len() {
            let Some(s) = self.segments.get(self.seg) else {
                break;
            };
            let n = ((s.len - self.offset) as usize).min(buf.len() - done);
            // Cannot overflow: addr + len was checked when the chain was popped.
            mem.read(s.addr + u64::from(self.offset), &mut buf[done..done + n])?;
            done += n;
            self.offset += n as u32;
            if self.offset == s.len {
                self.seg += 1;
                self.offset = 0;
            }
        }
        Ok(done)
    }

    /// Readable bytes not yet read.
    pub fn remaining(&self) -> u64 {
        let rest: u64 = self.segments.iter().skip(self.seg).map(|s| u64::from(s.len)).sum();
        rest - u64::from(self.offset)
    }
}

/// Sequential writer over a chain's device-writable buffers.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    segments: &'a [Segment],
    seg: usize,
    offset: u32,
    written: u64,
}

impl Writer<'_> {
    /// Writes as much of `data` as the remaining writable space allows; returns the
    /// count.
    pub fn write(&mut self, mem: &mut dyn GuestMemory, data: &[u8]) -> Result<usize, GuestError> {
        let mut done = 0;
        while done < data.len() {
            let Some(s) = self.segments.get(self.seg) else {
                break;
            };
            let n = ((s.len - self.offset) as usize).min(data.len() - done);
            // Cannot overflow: addr + len was checked when the chain was popped.
            mem.write(s.addr + u64::from(self.offset), &data[done..done + n])?;
            done += n;
            self.offset += n as u32;
            if self.offset == s.len {
                self.seg += 1;
                self.offset = 0;
            }
        }
        self.written += done as u64;
        Ok(done)
    }

    /// Writable bytes not yet written.
    pub fn remaining(&self) -> u64 {
        let rest: u64 = self.segments.iter().skip(self.seg).map(|s| u64::from(s.len)).sum();
        rest - u64::from(self.offset)
    }

    /// Bytes written so far, as the used element's `len` (saturating at `u32::MAX`).
    pub fn used_len(&self) -> u32 {
        u32::try_from(self.written).unwrap_or(u32::MAX)
    }
}

/// One split virtqueue's state: the driver's setup (via the transport registers) and
/// the device's positions in the rings.
#[derive(Debug, Clone)]
pub struct Queue {
    index: u16,
    max_size: u16,
    size: u32,
    ready: bool,
    desc_table: u64,
    avail_ring: u64,
    used_ring: u64,
    next_avail: u16,
    next_used: u16,
    /// VIRTIO_F_RING_EVENT_IDX negotiated (virtio 1.2 §2.7.7, §2.7.10): interrupts
    /// follow the driver's `used_event`, and the device asks for kicks with
    /// `avail_event`.
    event_idx: bool,
}

/// Whether moving an index from `old` to `new` passes `event` (virtio 1.2 §2.7.7.2's
/// `vring_need_event`, modulo 2^16).
pub fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

/// `base + off` or a memory error naming the range.
fn offset(base: u64, off: u64, len: u64) -> Result<u64, GuestError> {
    base.checked_add(off).ok_or(GuestError::Memory(MemoryError {
        addr: base,
        len: off + len,
    }))
}

impl Queue {
    /// A queue with index `index` (for error reports) and QueueNumMax `max_size`
    /// (clamped to 1..=[`MAX_QUEUE_SIZE`] and rounded down to a power of two).
    pub fn new(index: u16, max_size: u16) -> Self {
        let clamped = max_size.clamp(1, MAX_QUEUE_SIZE);
        let max_size = 1u16 << (15 - clamped.leading_zeros().min(15));
        let mut q = Queue {
            index,
            max_size,
            size: 0,
            ready: false,
            desc_table: 0,
            avail_ring: 0,
            used_ring: 0,
            next_avail: 0,
            next_used: 0,
            event_idx: false,
        };
        q.reset();
        q
    }

    /// Back to the state after device reset: not ready, size = max, addresses 0.
    pub(crate) fn reset(&mut self) {
        self.size = u32::from(self.max_size);
        self.ready = false;
        self.desc_table = 0;
        self.avail_ring = 0;
        self.used_ring = 0;
        self.next_avail = 0;
        self.next_used = 0;
        self.event_idx = false;
    }

    /// Uses the driver's and device's event indices (VIRTIO_F_RING_EVENT_IDX
    /// negotiated) or the flags (not).
    pub(crate) fn set_event_idx(&mut self, on: bool) {
        self.event_idx = on;
    }

    /// Queue index.
    pub fn index(&self) -> u16 {
        self.index
    }

    /// QueueNumMax.
    pub fn max_size(&self) -> u16 {
        self.max_size
    }

    /// Whether the driver enabled the queue (QueueReady = 1) and it passed the checks.
    pub fn is_ready(&self) -> bool {
        self.ready
    }

    /// Queue size the driver chose (only meaningful while ready).
    pub fn size(&self) -> u16 {
        // Checked to be <= max_size (a u16) when the queue was enabled.
        self.size.min(u32::from(self.max_size)) as u16
    }

    /// Driver's available-ring entries the device has consumed (modulo 2^16).
    pub fn next_avail(&self) -> u16 {
        self.next_avail
    }

    /// Used-ring entries the device has produced (modulo 2^16).
    pub fn next_used(&self) -> u16 {
        self.next_used
    }

    /// Descriptor table, driver area and device area addresses.
    pub fn addresses(&self) -> (u64, u64, u64) {
        (self.desc_table, self.avail_ring, self.used_ring)
    }

    pub(crate) fn set_size(&mut self, size: u32) {
        self.size = size;
    }

    pub(crate) fn set_desc_table(&mut self, addr: u64) {
        self.desc_table = addr;
    }

    pub(crate) fn set_avail_ring(&mut self, addr: u64) {
        self.avail_ring = addr;
    }

    pub(crate) fn set_used_ring(&mut self, addr: u64) {
        self.used_ring = addr;
    }

    /// QueueReady = 1: checks size and areas (virtio 1.2 §2.7 alignment and size
    /// rules; whole rings inside guest memory) and makes the queue live with both ring
    /// positions at 0.
    pub(crate) fn enable(&mut self, mem: &dyn GuestMemory) -> Result<(), GuestError> {
        let queue = self.index;
        let size = self.size;
        if size == 0 || !size.is_power_of_two() || size > u32::from(self.max_size) {
            return Err(GuestError::QueueSize { queue, size });
        }
        let size = size as u16;
        if !self.desc_table.is_multiple_of(16)
            || !self.avail_ring.is_multiple_of(2)
            || !self.used_ring.is_multiple_of(4)
        {
            return Err(GuestError::QueueAlignment { queue });
        }
        mem.check_range(self.desc_table, desc_table_bytes(size))?;
        mem.check_range(self.avail_ring, avail_ring_bytes(size))?;
        mem.check_range(self.used_ring, used_ring_bytes(size))?;
        self.next_avail = 0;
        self.next_used = 0;
        self.ready = true;
        Ok(())
    }

    /// QueueReady = 0: the device stops using the queue and forgets its positions.
    pub(crate) fn disable(&mut self) {
        self.ready = false;
        self.next_avail = 0;
        self.next_used = 0;
    }

    /// Takes the next descriptor chain the driver made available, or `None` if there
    /// is none (or the queue is not ready). Virtio 1.2 §2.7.13 (driver side) and
    /// §2.7.5/§2.7.6 define what is read here.
    pub fn pop(&mut self, mem: &mut dyn GuestMemory) -> Result<Option<DescriptorChain>, GuestError> {
        if !self.ready {
            return Ok(None);
        }
        let queue = self.index;
        let size = self.size();
        let mut avail_idx = mem.read_u16(offset(self.avail_ring, 2, 2)?)?;
        if avail_idx == self.next_avail {
            if !self.event_idx {
                return Ok(None);
            }
            // Ask for a kick at the next entry (avail_event = the next index the
            // device reads), then look once more: the driver may have added one
            // before it could see the request (§2.7.10).
            let at = offset(self.used_ring, 4 + USED_ELEM_SIZE * u64::from(size), 2)?;
            mem.write_u16(at, self.next_avail)?;
            fence(Ordering::SeqCst);
            avail_idx = mem.read_u16(offset(self.avail_ring, 2, 2)?)?;
            if avail_idx == self.next_avail {
                return Ok(None);
            }
        }
        let pending = avail_idx.wrapping_sub(self.next_avail);
        if pending > size {
            return Err(GuestError::AvailIndexJump {
                queue,
                avail_idx,
                last_seen: self.next_avail,
            });
        }
        // Read the ring entry and descriptors only after seeing the index
        // (virtio 1.2 §2.7.13.3: the driver publishes them before the idx).
        fence(Ordering::Acquire);
        let slot = self.next_avail % size; // size is a power of two
        let head = mem.read_u16(offset(self.avail_ring, 4 + 2 * u64::from(slot), 2)?)?;
        let chain = self.walk(mem, head)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        Ok(Some(chain))
    }

    /// Reads and checks the chain starting at `head`.
    fn walk(&self, mem: &dyn GuestMemory, head: u16) -> Result<DescriptorChain, GuestError> {
        let queue = self.index;
        let size = self.size();
        let mut chain = DescriptorChain {
            queue,
            head,
            readable: Vec::new(),
            writable: Vec::new(),
        };
        let mut index = head;
        let mut count: u32 = 0;
        loop {
            if index >= size {
                return Err(GuestError::DescriptorIndex { queue, index });
            }
            count += 1;
            if count > u32::from(size) {
                return Err(GuestError::ChainTooLong { queue });
            }
            let mut raw = [0u8; DESC_SIZE as usize];
            mem.read(
                offset(self.desc_table, DESC_SIZE * u64::from(index), DESC_SIZE)?,
                &mut raw,
            )?;
            let desc: Descriptor = zerocopy::transmute!(raw);
            let (addr, len, flags) = (desc.addr.get(), desc.len.get(), desc.flags.get());
            if flags & VIRTQ_DESC_F_INDIRECT != 0 {
                return Err(GuestError::IndirectDescriptor { queue });
            }
            if addr.checked_add(u64::from(len)).is_none() {
                return Err(GuestError::BufferOverflow { queue, addr, len });
            }
            mem.check_range(addr, u64::from(len))?;
            let segment = Segment { addr, len };
            if flags & VIRTQ_DESC_F_WRITE != 0 {
                if len != 0 {
                    chain.writable.push(segment);
                }
            } else {
                if !chain.writable.is_empty() {
                    return Err(GuestError::ReadableAfterWritable { queue });
                }
                if len != 0 {
                    chain.readable.push(segment);
                }
            }
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = desc.next.get();
        }
    }

    /// Tells the driver not to notify the device about new available entries (the
    /// device will look anyway, e.g. when a request in flight completes): with
    /// VIRTIO_F_RING_EVENT_IDX, `avail_event` is set to an index the driver has
    /// already passed; without, nothing changes (the flag is not used). The next
    /// [`Self::pop`] that finds the ring empty asks for notifications again.
    pub fn suppress_notifications(&mut self, mem: &mut dyn GuestMemory) -> Result<(), GuestError> {
        if !self.ready || !self.event_idx {
            return Ok(());
        }
        let at = offset(self.used_ring, 4 + USED_ELEM_SIZE * u64::from(self.size()), 2)?;
        mem.write_u16(at, self.next_avail.wrapping_sub(1))?;
        Ok(())
    }

    /// Returns chain `head` to the driver with `len` bytes written (virtio 1.2
    /// §2.7.8): writes the used element, then (after a release fence) the new
    /// `used.idx`. Returns whether the driver wants an interrupt for it
    /// (VIRTQ_AVAIL_F_NO_INTERRUPT clear, §2.7.7). A queue that is no longer ready
    /// (reset while a request was in flight) ignores the call.
    pub fn push_used(&mut self, mem: &mut dyn GuestMemory, head: u16, len: u32) -> Result<bool, GuestError> {
        if !self.ready {
            return Ok(false);
        }
        let size = self.size();
        if head >= size {
            return Err(GuestError::UsedIndex {
                queue: self.index,
                index: head,
            });
        }
        let slot = self.next_used % size;
        let elem = UsedElem {
            id: U32::new(u32::from(head)),
            len: U32::new(len),
        };
        let at = offset(self.used_ring, 4 + USED_ELEM_SIZE * u64::from(slot), USED_ELEM_SIZE)?;
        mem.write(at, elem.as_bytes())?;
        // The element must be visible before the index that publishes it (§2.7.8).
        fence(Ordering::Release);
        let next = self.next_used.wrapping_add(1);
        mem.write_u16(offset(self.used_ring, 2, 2)?, next)?;
        self.next_used = next;
        // Order the idx store before reading the driver's suppression flag.
        fence(Ordering::SeqCst);
        if self.event_idx {
            // used_event sits after the available ring's entries (§2.7.6).
            let at = offset(self.avail_ring, 4 + 2 * u64::from(size), 2)?;
            let used_event = mem.read_u16(at)?;
            return Ok(need_event(used_event, next, next.wrapping_sub(1)));
        }
        let flags = mem.read_u16(self.avail_ring)?;
        Ok(flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::VecMemory;

    const BASE: u64 = 0x4000_0000;
    const DESC: u64 = BASE;
    const AVAIL: u64 = BASE + 0x1000;
    const USED: u64 = BASE + 0x2000;
    const BUF: u64 = BASE + 0x3000;

    fn setup(size: u32) -> (Queue, VecMemory) {
        let mem = VecMemory::zeroed(BASE, 0x10000);
        let mut q = Queue::new(1, 16);
        q.set_size(size);
        q.set_desc_table(DESC);
        q.set_avail_ring(AVAIL);
        q.set_used_ring(USED);
        (q, mem)
    }

    fn desc(mem: &mut VecMemory, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let d = Descriptor {
            addr: U64::new(addr),
            len: U32::new(len),
            flags: U16::new(flags),
            next: U16::new(next),
        };
        mem.write(DESC + 16 * u64::from(i), d.as_bytes()).unwrap();
    }

    fn offer(mem: &mut VecMemory, slot: u16, head: u16, new_idx: u16) {
        mem.write_u16(AVAIL + 4 + 2 * u64::from(slot), head).unwrap();
        mem.write_u16(AVAIL + 2, new_idx).unwrap();
    }

    #[test]
    fn need_event_is_virtios_window_test_with_wrap() {
        // Moving used.idx from 3 to 5 passes events 3 and 4 only.
        assert!(!need_event(2, 5, 3));
        assert!(need_event(3, 5, 3));
        assert!(need_event(4, 5, 3));
        assert!(!need_event(5, 5, 3));
        // Across the 2^16 wrap.
        assert!(need_event(u16::MAX, 1, u16::MAX - 1));
        assert!(need_event(0, 1, u16::MAX));
        assert!(!need_event(1, 1, u16::MAX));
        // No movement, no event.
        assert!(!need_event(7, 7, 7));
    }

    #[test]
    fn event_idx_interrupts_at_the_drivers_used_event_and_asks_for_kicks() {
        let (mut q, mut mem) = setup(8);
        q.enable(&mem).unwrap();
        q.set_event_idx(true);
        let used_event = AVAIL + 4 + 2 * 8;
        let avail_event = USED + 4 + 8 * 8;
        for i in 0..4u16 {
            desc(&mut mem, i, BUF + 0x100 * u64::from(i), 16, VIRTQ_DESC_F_WRITE, 0);
            offer(&mut mem, i, i, i + 1);
        }
        // The driver wants an interrupt once the third entry (index 2) is used.
        mem.write_u16(used_event, 2).unwrap();
        let mut wanted = Vec::new();
        for _ in 0..4 {
            let c = q.pop(&mut mem).unwrap().unwrap();
            wanted.push(q.push_used(&mut mem, c.head(), 16).unwrap());
        }
        assert_eq!(wanted, [false, false, true, false]);
        // Emptied: the device asks for a kick at the next entry it will read, and the
        // flags no longer matter.
        assert!(q.pop(&mut mem).unwrap().is_none());
        assert_eq!(mem.read_u16(avail_event).unwrap(), 4);
        mem.write_u16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
        mem.write_u16(used_event, 4).unwrap();
        desc(&mut mem, 4, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
        offer(&mut mem, 4, 4, 5);
        let c = q.pop(&mut mem).unwrap().unwrap();
        assert!(q.push_used(&mut mem, c.head(), 16).unwrap(), "event index, not flags");
        // Whatever a hostile driver puts in used_event, a push answers without error.
        for e in [0, 1, u16::MAX, 0x8000] {
            mem.write_u16(used_event, e).unwrap();
            desc(&mut mem, 5, BUF, 16, VIRTQ_DESC_F_WRITE, 0);
            let n = q.next_avail();
            offer(&mut mem, n % 8, 5, n.wrapping_add(1));
            let c = q.pop(&mut mem).unwrap().unwrap();
            q.push_used(&mut mem, c.head(), 16).unwrap();
        }
        // Suppressed: avail_event lags behind, so the driver's next add does not
        // cross it; the next pop of an empty ring asks again.
        q.suppress_notifications(&mut mem).unwrap();
        let n = q.next_avail();
        assert_eq!(mem.read_u16(avail_event).unwrap(), n.wrapping_sub(1));
        assert!(!need_event(n.wrapping_sub(1), n.wrapping_add(1), n));
        assert!(q.pop(&mut mem).unwrap().is_none());
        assert_eq!(mem.read_u16(avail_event).unwrap(), n);
        // A reset forgets the negotiation.
        q.reset();
        assert!(!q.event_idx);
    }

    #[test]
    fn new_rounds_max_size_to_power_of_two() {
        assert_eq!(Queue::new(0, 100).max_size(), 64);
        assert_eq!(Queue::new(0, 0).max_size(), 1);
        assert_eq!(Queue::new(0, u16::MAX).max_size(), 32768);
        assert_eq!(Queue::new(0, 256).max_size(), 256);
    }

    #[test]
    fn pop_gathers_readable_then_writable() {
        let (mut q, mut mem) = setup(8);
        q.enable(&mem).unwrap();
        desc(&mut mem, 3, BUF, 4, VIRTQ_DESC_F_NEXT, 5);
        desc(&mut mem, 5, BUF + 0x10, 0, VIRTQ_DESC_F_NEXT, 6); // empty: dropped
        desc(&mut mem, 6, BUF + 0x20, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0);
        desc(&mut mem, 0, BUF + 0x40, 2, VIRTQ_DESC_F_WRITE, 0);
        offer(&mut mem, 0, 3, 1);
        mem.write(BUF, b"abcd").unwrap();
        let chain = q.pop(&mut mem).unwrap().unwrap();
        assert_eq!(chain.head(), 3);
        assert_eq!(chain.readable(), &[Segment { addr: BUF, len: 4 }]);
        assert_eq!(chain.writable().len(), 2);
        assert_eq!(chain.writable_len(), 10);
        let mut r = chain.reader();
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mem, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"abcd");
        let mut w = chain.writer();
        assert_eq!(w.write(&mut mem, b"0123456789xyz").unwrap(), 10);
        assert_eq!(w.used_len(), 10);
        assert_eq!(&mem.as_bytes()[0x3020..0x3028], b"01234567");
        assert_eq!(&mem.as_bytes()[0x3040..0x3042], b"89");
        assert!(q.pop(&mut mem).unwrap().is_none());

        assert!(q.push_used(&mut mem, chain.head(), 10).unwrap());
        assert_eq!(mem.read_u16(USED + 2).unwrap(), 1);
        assert_eq!(mem.read_u32(USED + 4).unwrap(), 3);
        assert_eq!(mem.read_u32(USED + 8).unwrap(), 10);
    }

    #[test]
    fn no_interrupt_flag_is_honoured() {
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        mem.write_u16(AVAIL, VIRTQ_AVAIL_F_NO_INTERRUPT).unwrap();
        assert!(!q.push_used(&mut mem, 0, 0).unwrap());
        assert_eq!(q.next_used(), 1);
    }

    #[test]
    fn ring_indices_wrap() {
        let (mut q, mut mem) = setup(2);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BUF, 1, 0, 0);
        desc(&mut mem, 1, BUF, 1, 0, 0);
        for n in 0..70_000u32 {
            let idx = n as u16;
            offer(&mut mem, idx % 2, idx % 2, idx.wrapping_add(1));
            let c = q.pop(&mut mem).unwrap().unwrap();
            assert_eq!(c.head(), idx % 2);
            q.push_used(&mut mem, c.head(), 0).unwrap();
        }
        assert_eq!(q.next_avail(), (70_000u32 % 65536) as u16);
        assert_eq!(mem.read_u16(USED + 2).unwrap(), q.next_used());
    }

    #[test]
    fn enable_rejects_bad_setup() {
        for size in [0u32, 3, 12, 32, 0x1_0000] {
            let (mut q, mem) = setup(size);
            assert_eq!(q.enable(&mem), Err(GuestError::QueueSize { queue: 1, size }));
            assert!(!q.is_ready());
        }
        let (mut q, mem) = setup(8);
        q.set_desc_table(DESC + 8);
        assert_eq!(q.enable(&mem), Err(GuestError::QueueAlignment { queue: 1 }));
        let (mut q, mem) = setup(8);
        q.set_used_ring(BASE + 0x10000 - 8);
        assert!(matches!(q.enable(&mem), Err(GuestError::Memory(_))));
        let (mut q, mem) = setup(8);
        q.set_avail_ring(u64::MAX - 1);
        assert!(matches!(q.enable(&mem), Err(GuestError::Memory(_))));
    }

    #[test]
    fn malicious_chains() {
        // Loop 0 -> 1 -> 0.
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 1);
        desc(&mut mem, 1, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
        offer(&mut mem, 0, 0, 1);
        assert_eq!(q.pop(&mut mem), Err(GuestError::ChainTooLong { queue: 1 }));

        // Self loop with the full queue size is still too long.
        let (mut q, mut mem) = setup(1);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 0);
        offer(&mut mem, 0, 0, 1);
        assert_eq!(q.pop(&mut mem), Err(GuestError::ChainTooLong { queue: 1 }));

        // next out of range.
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_NEXT, 4);
        offer(&mut mem, 0, 0, 1);
        assert_eq!(q.pop(&mut mem), Err(GuestError::DescriptorIndex { queue: 1, index: 4 }));

        // head out of range.
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        offer(&mut mem, 0, 9, 1);
        assert_eq!(q.pop(&mut mem), Err(GuestError::DescriptorIndex { queue: 1, index: 9 }));

        // Buffer outside memory, buffer wrapping the address space.
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BASE + 0xfff0, 0x20, 0, 0);
        offer(&mut mem, 0, 0, 1);
        assert!(matches!(q.pop(&mut mem), Err(GuestError::Memory(_))));
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, u64::MAX - 2, 0x10, 0, 0);
        offer(&mut mem, 0, 0, 1);
        assert!(matches!(q.pop(&mut mem), Err(GuestError::BufferOverflow { .. })));

        // Indirect, readable after writable.
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BUF, 16, VIRTQ_DESC_F_INDIRECT, 0);
        offer(&mut mem, 0, 0, 1);
        assert_eq!(q.pop(&mut mem), Err(GuestError::IndirectDescriptor { queue: 1 }));
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        desc(&mut mem, 0, BUF, 1, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
        desc(&mut mem, 1, BUF, 1, 0, 0);
        offer(&mut mem, 0, 0, 1);
        assert_eq!(q.pop(&mut mem), Err(GuestError::ReadableAfterWritable { queue: 1 }));

        // avail idx jumping further than the queue size.
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        mem.write_u16(AVAIL + 2, 5).unwrap();
        assert!(matches!(q.pop(&mut mem), Err(GuestError::AvailIndexJump { .. })));
    }

    #[test]
    fn used_head_out_of_range_is_an_error() {
        let (mut q, mut mem) = setup(4);
        q.enable(&mem).unwrap();
        assert_eq!(
            q.push_used(&mut mem, 4, 0),
            Err(GuestError::UsedIndex { queue: 1, index: 4 })
        );
        assert_eq!(mem.read_u16(USED + 2).unwrap(), 0);
    }

    #[test]
    fn not_ready_queue_does_nothing() {
        let (mut q, mut mem) = setup(4);
        offer(&mut mem, 0, 0, 1);
        assert_eq!(q.pop(&mut mem), Ok(None));
        assert_eq!(q.push_used(&mut mem, 0, 0), Ok(false));
        assert_eq!(mem.read_u16(USED + 2).unwrap(), 0);
    }
}
