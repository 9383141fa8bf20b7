//! Shared memory regions: the one safe accessor for memory the builder maps into a PD.
//!
//! A [`SharedRegion`] is a view of `len` bytes of a memory region, made from the
//! region's `setvar_vaddr` symbol and its size ([`shared_region!`]). Memory regions are
//! shared with other PDs, VMs or devices, which change them behind the compiler's
//! back, so no Rust reference to plain bytes ever points into one. Every access goes
//! through this module, with a bounds check first:
//! - volatile loads and stores of bytes and little-endian `u16`/`u32`/`u64` (one access
//!   of the full width when naturally aligned, as device registers need);
//! - atomic `u32`/`u64` views at aligned offsets ([`SharedRegion::atomic_u32`],
//!   [`SharedRegion::atomic_u64`]) for indices another PD reads (queue heads and tails,
//!   with `Acquire`/`Release`);
//! - copies between a slice and the region, and between two regions (volatile too,
//!   in 8-byte words where alignment allows);
//! - sub-range views ([`SharedRegion::slice`]).
//!
//! Errors name the region and the offending range ([`RegionError`]).
//!
//! On the host a region is backed by a zeroed heap buffer ([`SharedRegion::new_host`]),
//! so the same code is unit-tested there; on the target it is the builder's mapping.
//! This module holds the only `unsafe` for region memory in the PDs.
#![allow(unsafe_code)]

use core::fmt;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU32, AtomicU64};

/// An access outside a region, or an atomic view at a misaligned offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionError {
    /// `offset .. offset + len` is not wholly inside the region (or overflows).
    OutOfBounds {
        /// The region's name (its `setvar_vaddr` symbol).
        region: &'static str,
        /// First byte of the rejected range, relative to the view's start.
        offset: usize,
        /// Length of the rejected range.
        len: usize,
        /// Size of the view.
        size: usize,
    },
    /// An atomic view needs `align`-byte alignment and `offset` does not have it.
    Misaligned {
        /// The region's name.
        region: &'static str,
        /// The requested offset, relative to the view's start.
        offset: usize,
        /// The alignment needed.
        align: usize,
    },
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RegionError::OutOfBounds {
                region,
                offset,
                len,
                size,
            } => write!(
                f,
                "memory region '{region}': {len} bytes at offset {offset:#x} are outside its {size:#x} bytes"
            ),
            RegionError::Misaligned { region, offset, align } => write!(
                f,
                "memory region '{region}': offset {offset:#x} is not {align}-byte aligned for an atomic access"
            ),
        }
    }
}

/// A view of (part of) a memory region mapped into this PD.
///
/// Cloning gives another view of the same memory (like a second map of it). All
/// accesses are bounds-checked against the view.
#[derive(Clone)]
pub struct SharedRegion {
    name: &'static str,
    base: NonNull<u8>,
    len: usize,
}

impl fmt::Debug for SharedRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedRegion")
            .field("name", &self.name)
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl SharedRegion {
    /// The region of `len` bytes mapped at `base`.
    ///
    /// # Safety
    ///
    /// `base .. base + len` must be mapped readable and writable in this PD for the
    /// rest of its life (or, on the host, be memory that lives for ever), and no Rust
    /// reference to its bytes may exist anywhere (other parties change it).
    pub unsafe fn from_raw(name: &'static str, base: NonNull<u8>, len: usize) -> SharedRegion {
        SharedRegion { name, base, len }
    }

    /// A host-backed region of `len` zero bytes, 4096-byte aligned, for tests and host
    /// tools (the buffer lives for the rest of the program, as a mapped region does).
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    pub fn new_host(name: &'static str, len: usize) -> SharedRegion {
        #[repr(C, align(4096))]
        struct Page([u8; 4096]);
        let pages = len.div_ceil(4096).max(1);
        let buffer: &'static mut [Page] = std::boxed::Box::leak(
            (0..pages)
                .map(|_| Page([0; 4096]))
                .collect::<std::vec::Vec<_>>()
                .into_boxed_slice(),
        );
        let base = NonNull::new(buffer.as_mut_ptr().cast::<u8>()).unwrap_or(NonNull::dangling());
        // SAFETY: the leaked buffer is `pages * 4096 >= len` bytes, lives for ever and
        // its only reference (`buffer`) ends here; every later access goes through the
        // returned region.
        unsafe { SharedRegion::from_raw(name, base, len) }
    }

    /// The region's name (its `setvar_vaddr` symbol), used in errors.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Size of the view in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the view is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the view's first byte in this PD (for reports and for handing
    /// to hardware; never dereference it outside this module).
    pub fn addr(&self) -> usize {
        self.base.as_ptr() as usize
    }

    /// Checks `offset .. offset + len` is inside the view.
    fn check(&self, offset: usize, len: usize) -> Result<(), RegionError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            _ => Err(RegionError::OutOfBounds {
                region: self.name,
                offset,
                len,
                size: self.len,
            }),
        }
    }

    /// Pointer to byte `offset`, which `check` has validated (`offset <= len`).
    fn ptr(&self, offset: usize) -> *mut u8 {
        // SAFETY: callers check `offset .. offset + n` is inside the mapping first, so
        // the pointer stays in (or one past) the mapped range.
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// The sub-range `offset .. offset + len` as its own view (same name).
    pub fn slice(&self, offset: usize, len: usize) -> Result<SharedRegion, RegionError> {
        self.check(offset, len)?;
        let base = NonNull::new(self.ptr(offset)).unwrap_or(self.base);
        Ok(SharedRegion {
            name: self.name,
            base,
            len,
        })
    }

    /// Copies `buf.len()` bytes from `offset` into `buf` (volatile loads: the bytes
    /// may change while they are copied, so a reader copies once and then validates
    /// the copy).
    pub fn read_bytes(&self, offset: usize, buf: &mut [u8]) -> Result<(), RegionError> {
        self.check(offset, buf.len())?;
        // SAFETY: the source range is inside the mapping (checked); `buf` is a Rust
        // buffer of `buf.len()` bytes, which the mapping cannot overlap (no reference
        // into it exists).
        unsafe { volatile_copy(self.ptr(offset), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }

    /// Copies `data` into the region at `offset` (volatile stores).
    pub fn write_bytes(&self, offset: usize, data: &[u8]) -> Result<(), RegionError> {
        self.check(offset, data.len())?;
        // SAFETY: as for `read_bytes`; the mapping is writable.
        unsafe { volatile_copy(data.as_ptr(), self.ptr(offset), data.len()) };
        Ok(())
    }

    /// Copies `len` bytes from `src` at `src_offset` to this region at `offset`
    /// (volatile; the two may be views of the same region: overlapping ranges are
    /// copied as if through a buffer).
    pub fn copy_from(
        &self,
        offset: usize,
        src: &SharedRegion,
        src_offset: usize,
        len: usize,
    ) -> Result<(), RegionError> {
        src.check(src_offset, len)?;
        self.check(offset, len)?;
        let (from, to) = (src.ptr(src_offset), self.ptr(offset));
        if (to as usize) > (from as usize) && (to as usize) < (from as usize).wrapping_add(len) {
            // The destination starts inside the source: copy from the end.
            for i in (0..len).rev() {
                // SAFETY: byte `i` of both ranges is inside its checked mapping.
                unsafe { to.add(i).write_volatile(from.add(i).read_volatile()) };
            }
        } else {
            // SAFETY: both ranges are inside their mappings (checked); a forward copy
            // is correct for these (possibly overlapping) ranges.
            unsafe { volatile_copy(from, to, len) };
        }
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `value` (volatile stores).
    pub fn fill(&self, offset: usize, len: usize, value: u8) -> Result<(), RegionError> {
        self.check(offset, len)?;
        let p = self.ptr(offset);
        for i in 0..len {
            // SAFETY: byte `i` is inside the writable mapping (checked).
            unsafe { p.add(i).write_volatile(value) };
        }
        Ok(())
    }

    /// Volatile load of `N` bytes at `offset`: one access if naturally aligned,
    /// otherwise byte by byte.
    fn load<const N: usize>(&self, offset: usize) -> Result<[u8; N], RegionError> {
        self.check(offset, N)?;
        let p = self.ptr(offset);
        let mut out = [0u8; N];
        // SAFETY: (all arms) `offset .. offset + N` is inside the mapping (checked);
        // the typed loads are only used when `p` is aligned for the type.
        unsafe {
            match N {
                2 if p.cast::<u16>().is_aligned() => {
                    out.copy_from_slice(&p.cast::<u16>().read_volatile().to_ne_bytes())
                }
                4 if p.cast::<u32>().is_aligned() => {
                    out.copy_from_slice(&p.cast::<u32>().read_volatile().to_ne_bytes())
                }
                8 if p.cast::<u64>().is_aligned() => {
                    out.copy_from_slice(&p.cast::<u64>().read_volatile().to_ne_bytes())
                }
                _ => {
                    for (i, b) in out.iter_mut().enumerate() {
                        *b = p.add(i).read_volatile();
                    }
                }
            }
        }
        Ok(out)
    }

    /// Volatile store of `bytes` at `offset`: one access if naturally aligned,
    /// otherwise byte by byte.
    fn store<const N: usize>(&self, offset: usize, bytes: [u8; N]) -> Result<(), RegionError> {
        self.check(offset, N)?;
        let p = self.ptr(offset);
        // SAFETY: (all arms) as for `load`; the mapping is writable.
        unsafe {
            match N {
                2 if p.cast::<u16>().is_aligned() => {
                    p.cast::<u16>().write_volatile(u16::from_ne_bytes([bytes[0], bytes[1]]))
                }
                4 if p.cast::<u32>().is_aligned() => p
                    .cast::<u32>()
                    .write_volatile(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])),
                8 if p.cast::<u64>().is_aligned() => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(&bytes);
                    p.cast::<u64>().write_volatile(u64::from_ne_bytes(w))
                }
                _ => {
                    for (i, b) in bytes.iter().enumerate() {
                        p.add(i).write_volatile(*b);
                    }
                }
            }
        }
        Ok(())
    }

    /// Volatile load of the byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> Result<u8, RegionError> {
        self.load::<1>(offset).map(|b| b[0])
    }

    /// Volatile load of a little-endian `u16` at `offset`.
    pub fn read_u16(&self, offset: usize) -> Result<u16, RegionError> {
        self.load(offset).map(u16::from_le_bytes)
    }

    /// Volatile load of a little-endian `u32` at `offset`.
    pub fn read_u32(&self, offset: usize) -> Result<u32, RegionError> {
        self.load(offset).map(u32::from_le_bytes)
    }

    /// Volatile load of a little-endian `u64` at `offset`.
    pub fn read_u64(&self, offset: usize) -> Result<u64, RegionError> {
        self.load(offset).map(u64::from_le_bytes)
    }

    /// Volatile store of a byte at `offset`.
    pub fn write_u8(&self, offset: usize, value: u8) -> Result<(), RegionError> {
        self.store(offset, [value])
    }

    /// Volatile store of a little-endian `u16` at `offset`.
    pub fn write_u16(&self, offset: usize, value: u16) -> Result<(), RegionError> {
        self.store(offset, value.to_le_bytes())
    }

    /// Volatile store of a little-endian `u32` at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) -> Result<(), RegionError> {
        self.store(offset, value.to_le_bytes())
    }

    /// Volatile store of a little-endian `u64` at `offset`.
    pub fn write_u64(&self, offset: usize, value: u64) -> Result<(), RegionError> {
        self.store(offset, value.to_le_bytes())
    }

    /// Checks an atomic view of `size` bytes at `offset`.
    fn check_atomic(&self, offset: usize, size: usize) -> Result<*mut u8, RegionError> {
        self.check(offset, size)?;
        let p = self.ptr(offset);
        if !(p as usize).is_multiple_of(size) {
            return Err(RegionError::Misaligned {
                region: self.name,
                offset,
                align: size,
            });
        }
        Ok(p)
    }

    /// The `u32` at `offset` (4-byte aligned) as an atomic, e.g. a queue index shared
    /// with another PD (store with `Release`, load with `Acquire`). The value is in the
    /// CPU's byte order (little-endian on every vcpos target).
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, RegionError> {
        let p = self.check_atomic(offset, 4)?;
        // SAFETY: 4 bytes at `p` are inside the mapping, which lives for the PD's life
        // (longer than `&self`), aligned for `AtomicU32` (checked). An `AtomicU32` is an
        // `UnsafeCell`, so a shared reference allows the concurrent changes other
        // parties make; they must use atomic accesses for this word too.
        Ok(unsafe { AtomicU32::from_ptr(p.cast::<u32>()) })
    }

    /// The `u64` at `offset` (8-byte aligned) as an atomic (see [`Self::atomic_u32`]).
    pub fn atomic_u64(&self, offset: usize) -> Result<&AtomicU64, RegionError> {
        let p = self.check_atomic(offset, 8)?;
        // SAFETY: as for `atomic_u32`, with 8 bytes and 8-byte alignment.
        Ok(unsafe { AtomicU64::from_ptr(p.cast::<u64>()) })
    }
}

/// Copies `len` bytes from `src` to `dst` front to back with volatile accesses: bytes
/// until `dst` is 8-byte aligned, then aligned 8-byte words: loaded straight when the
/// source is aligned too, else as pairs of aligned source words shifted together
/// (a frame copied from after a 12-byte header into a buffer start is the common
/// case; byte by byte it cost the network path several microseconds per frame in
/// QEMU). Every access is aligned (device memory allows no other). A shifted copy
/// also loads the bytes that share an aligned word with the first and last source
/// byte: the same page, so mapped.
///
/// # Safety
///
/// `src .. src + len` must be readable and `dst .. dst + len` writable; if they
/// overlap, `dst` must not start inside the source after `src`.
unsafe fn volatile_copy(src: *const u8, dst: *mut u8, len: usize) {
    let mut i = 0;
    while i < len && !(dst as usize + i).is_multiple_of(8) {
        // SAFETY: i < len (the caller's ranges).
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
    let misalign = (src as usize + i) % 8;
    if misalign == 0 {
        while i + 8 <= len {
            // SAFETY: 8 bytes from i are inside both ranges, and both pointers are
            // 8-byte aligned here.
            unsafe {
                dst.add(i)
                    .cast::<u64>()
                    .write_volatile(src.add(i).cast::<u64>().read_volatile())
            };
            i += 8;
        }
    } else if i + 8 <= len {
        let shift = 8 * misalign as u32;
        // The aligned source word holding byte i (in the same page as byte i).
        let mut word = src.wrapping_add(i).wrapping_sub(misalign).cast::<u64>();
        // SAFETY: an aligned word of a mapped page (it holds source byte i).
        let mut low = u64::from_le(unsafe { word.read_volatile() });
        while i + 8 <= len {
            // SAFETY: the next aligned word holds source bytes up to i + 8 - misalign
            // + 7 and starts at most at i + 7 < len: it holds source bytes, so it is
            // in a mapped page; dst + i is aligned with 8 bytes inside the
            // destination. With overlap (dst before src) the word stored covers only
            // source bytes already loaded.
            unsafe {
                word = word.add(1);
                let high = u64::from_le(word.read_volatile());
                let out = (low >> shift) | (high << (64 - shift));
                dst.add(i).cast::<u64>().write_volatile(out.to_le());
                low = high;
            }
            i += 8;
        }
    }
    while i < len {
        // SAFETY: i < len.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
}

/// Makes the region a `shared_region!` names (the macros' expansion calls this).
///
/// # Safety
///
/// `addr` must be the value of a `setvar_vaddr` symbol the macro declares (which the
/// builder patches with the address where it mapped the region read-write for the
/// PD's life, or leaves 0: then this panics), and `len` at most the region's size.
#[doc(hidden)]
pub unsafe fn region_from_symbol(symbol: &'static str, addr: usize, len: usize) -> SharedRegion {
    let base = crate::symbols::region_ptr::<u8>(addr, symbol);
    // SAFETY: by this function's contract the range is mapped read-write for the PD's
    // life; the runtime makes no reference into region memory.
    unsafe { SharedRegion::from_raw(symbol, base, len) }
}

/// Declares a memory region's `setvar_vaddr` symbol and evaluates to its
/// [`SharedRegion`]: `shared_region!(sym, size = sym_size)` takes the size from a
/// `setvar_size` symbol (`<map ... setvar_vaddr="sym" setvar_size="sym_size"/>`);
/// `shared_region!(sym, bytes = N)` states it (the region must be at least `N` bytes).
///
/// Each invocation defines the symbols, so invoke it in exactly one place per symbol
/// (wrap it in a function if several places need the region). Panics "`sym` is null"
/// if the builder did not patch the address.
#[macro_export]
macro_rules! shared_region {
    ($symbol:ident, size = $size_symbol:ident $(,)?) => {{
        let addr: usize = *$crate::var!($symbol: usize = 0);
        let len: usize = *$crate::var!($size_symbol: usize = 0);
        // SAFETY: `addr` and `len` are the `setvar_vaddr` and `setvar_size` values the
        // builder patched for this map (a region mapped read-write for the PD's life).
        unsafe { $crate::_private::region_from_symbol(stringify!($symbol), addr, len) }
    }};
    ($symbol:ident, bytes = $bytes:expr $(,)?) => {{
        let addr: usize = *$crate::var!($symbol: usize = 0);
        let len: usize = $bytes;
        // SAFETY: `addr` is the `setvar_vaddr` value the builder patched for this map;
        // the invoker states the region has at least `bytes` bytes (the macro's
        // contract, as the system file's size).
        unsafe { $crate::_private::region_from_symbol(stringify!($symbol), addr, len) }
    }};
}

/// Like [`shared_region!`], for a region a system may leave out: `None` if the builder
/// did not patch the address (no map names the symbol), instead of a panic.
#[macro_export]
macro_rules! optional_shared_region {
    ($symbol:ident, size = $size_symbol:ident $(,)?) => {{
        let addr: usize = *$crate::var!($symbol: usize = 0);
        let len: usize = *$crate::var!($size_symbol: usize = 0);
        // SAFETY: as for `shared_region!`: the builder's patched address and size.
        (addr != 0).then(|| unsafe { $crate::_private::region_from_symbol(stringify!($symbol), addr, len) })
    }};
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::sync::atomic::Ordering;

    #[test]
    fn integers_are_little_endian_at_any_offset() {
        let r = SharedRegion::new_host("r", 64);
        r.write_u32(4, 0x1122_3344).unwrap();
        let mut b = [0u8; 4];
        r.read_bytes(4, &mut b).unwrap();
        assert_eq!(b, [0x44, 0x33, 0x22, 0x11]);
        assert_eq!(r.read_u32(4).unwrap(), 0x1122_3344);
        // Unaligned accesses work byte by byte.
        r.write_u64(9, 0x0102_0304_0506_0708).unwrap();
        assert_eq!(r.read_u64(9).unwrap(), 0x0102_0304_0506_0708);
        assert_eq!(r.read_u8(9).unwrap(), 0x08);
        r.write_u16(31, 0xbeef).unwrap();
        assert_eq!(r.read_u16(31).unwrap(), 0xbeef);
        assert_eq!(r.read_u8(32).unwrap(), 0xbe);
        r.write_u8(63, 7).unwrap();
        assert_eq!(r.read_u8(63).unwrap(), 7);
    }

    #[test]
    fn out_of_bounds_names_region_and_offset() {
        let r = SharedRegion::new_host("queue_mem", 16);
        let e = r.read_u32(14).unwrap_err();
        assert_eq!(
            e,
            RegionError::OutOfBounds {
                region: "queue_mem",
                offset: 14,
                len: 4,
                size: 16
            }
        );
        assert_eq!(
            e.to_string(),
            "memory region 'queue_mem': 4 bytes at offset 0xe are outside its 0x10 bytes"
        );
        assert!(r.write_u64(9, 0).is_err());
        assert!(r.write_bytes(usize::MAX, &[1]).is_err());
        assert!(r.read_bytes(1, &mut [0u8; 16]).is_err());
        assert!(r.fill(8, 9, 0).is_err());
        // A failed write changes nothing.
        assert!(r.write_bytes(12, &[9; 5]).is_err());
        let mut all = [0u8; 16];
        r.read_bytes(0, &mut all).unwrap();
        assert_eq!(all, [0; 16]);
        // The last byte and an empty access at the end are fine.
        r.write_u8(15, 1).unwrap();
        r.read_bytes(16, &mut []).unwrap();
    }

    #[test]
    fn slices_are_bounded_views_of_the_same_memory() {
        let r = SharedRegion::new_host("r", 0x1000);
        let s = r.slice(0x100, 0x20).unwrap();
        assert_eq!((s.name(), s.len(), s.addr()), ("r", 0x20, r.addr() + 0x100));
        s.write_u32(0, 0xabcd).unwrap();
        assert_eq!(r.read_u32(0x100).unwrap(), 0xabcd);
        assert_eq!(
            s.read_u32(0x1e).unwrap_err(),
            RegionError::OutOfBounds {
                region: "r",
                offset: 0x1e,
                len: 4,
                size: 0x20
            }
        );
        assert!(r.slice(0xff0, 0x11).is_err());
        assert!(r.slice(usize::MAX, 2).is_err());
        let inner = s.slice(0x10, 0x10).unwrap();
        assert!(inner.slice(1, 0x10).is_err());
        assert!(r.slice(0x1000, 0).unwrap().is_empty());
    }

    #[test]
    fn atomics_need_alignment_and_share_memory() {
        let r = SharedRegion::new_host("idx", 64);
        let head = r.atomic_u32(8).unwrap();
        head.store(5, Ordering::Release);
        assert_eq!(r.read_u32(8).unwrap(), 5);
        assert_eq!(r.clone().atomic_u32(8).unwrap().fetch_add(1, Ordering::AcqRel), 5);
        assert_eq!(head.load(Ordering::Acquire), 6);
        let w = r.atomic_u64(16).unwrap();
        w.store(u64::MAX - 1, Ordering::Release);
        assert_eq!(r.read_u64(16).unwrap(), u64::MAX - 1);
        assert_eq!(
            r.atomic_u32(6).unwrap_err(),
            RegionError::Misaligned {
                region: "idx",
                offset: 6,
                align: 4
            }
        );
        assert!(r.atomic_u64(4).is_err());
        assert!(r.atomic_u32(62).is_err());
        assert!(r.slice(4, 16).unwrap().atomic_u64(4).is_ok());
        assert!(r.atomic_u64(64).is_err());
    }

    #[test]
    fn copies_of_every_alignment_and_length_are_exact() {
        let a = SharedRegion::new_host("a", 128);
        let b = SharedRegion::new_host("b", 128);
        let pattern: Vec<u8> = (0..128u32).map(|i| (i * 37 + 11) as u8).collect();
        let mut cases = std::vec::Vec::new();
        for src_off in 0..17 {
            for dst_off in 0..17 {
                for len in [0, 1, 7, 8, 9, 15, 16, 17, 31, 33, 64, 100] {
                    cases.push((src_off, dst_off, len));
                }
            }
        }
        for (src_off, dst_off, len) in cases {
            a.write_bytes(0, &pattern).unwrap();
            b.fill(0, 128, 0).unwrap();
            b.copy_from(dst_off, &a, src_off, len).unwrap();
            let mut out = [0u8; 128];
            b.read_bytes(0, &mut out).unwrap();
            let mut want = [0u8; 128];
            want[dst_off..dst_off + len].copy_from_slice(&pattern[src_off..src_off + len]);
            assert_eq!(out, want, "src {src_off} dst {dst_off} len {len}");
            let mut part = vec![0u8; len];
            a.read_bytes(src_off, &mut part).unwrap();
            assert_eq!(part, pattern[src_off..src_off + len]);
        }
        // Overlap inside one region, destination before the source (forward copy),
        // every relative alignment.
        for back in 1..17 {
            a.write_bytes(0, &pattern).unwrap();
            a.copy_from(1, &a, 1 + back, 100).unwrap();
            let mut out = [0u8; 100];
            a.read_bytes(1, &mut out).unwrap();
            assert_eq!(&out[..], &pattern[1 + back..101 + back], "back {back}");
        }
        // Overlap in both directions inside one region.
        a.write_bytes(0, &pattern).unwrap();
        a.copy_from(3, &a, 0, 100).unwrap();
        let mut out = [0u8; 103];
        a.read_bytes(0, &mut out).unwrap();
        assert_eq!(&out[3..], &pattern[..100]);
        a.write_bytes(0, &pattern).unwrap();
        a.copy_from(0, &a, 9, 100).unwrap();
        let mut out = [0u8; 100];
        a.read_bytes(0, &mut out).unwrap();
        assert_eq!(&out[..], &pattern[9..109]);
    }

    #[test]
    fn copies_between_regions_and_fill() {
        let a = SharedRegion::new_host("a", 32);
        let b = SharedRegion::new_host("b", 32);
        a.write_bytes(0, b"hello, region!").unwrap();
        b.copy_from(4, &a, 0, 5).unwrap();
        let mut out = [0u8; 9];
        b.read_bytes(0, &mut out).unwrap();
        assert_eq!(&out, b"\0\0\0\0hello");
        // Overlapping copy inside one region.
        a.copy_from(1, &a, 0, 5).unwrap();
        let mut o = [0u8; 6];
        a.read_bytes(0, &mut o).unwrap();
        assert_eq!(&o, b"hhello");
        assert!(b.copy_from(30, &a, 0, 5).is_err());
        assert!(b.copy_from(0, &a, 30, 5).is_err());
        b.fill(0, 32, 0xaa).unwrap();
        assert_eq!(b.read_u64(24).unwrap(), 0xaaaa_aaaa_aaaa_aaaa);
    }

    #[test]
    #[should_panic(expected = "vcpos_test_shared is null")]
    fn unpatched_shared_region_panics() {
        let _ = crate::shared_region!(vcpos_test_shared, bytes = 16);
    }

    #[test]
    fn optional_region_is_none_when_not_patched() {
        assert!(crate::optional_shared_region!(vcpos_test_optional, size = vcpos_test_optional_size).is_none());
    }

    #[test]
    fn sized_form_declares_both_symbols() {
        let r = std::panic::catch_unwind(|| crate::shared_region!(vcpos_test_shared2, size = vcpos_test_shared2_size));
        assert!(r.is_err(), "unpatched address must panic");
        let sym: &'static usize = crate::var!(vcpos_test_patched_addr: usize = 0x4000_0000);
        // SAFETY: only the pointer value is checked; the region is never accessed.
        let region = unsafe { region_from_symbol("x", *sym, 0x1000) };
        assert_eq!((region.addr(), region.len(), region.name()), (0x4000_0000, 0x1000, "x"));
    }
}
