//! The global allocator behind `#[protection_domain(heap_size = N)]`.
//!
//! A first-fit allocator (`linked_list_allocator`) over an `N`-byte array that lives
//! in the PD's `.bss`. The heap claims its array on the first allocation, so the
//! static can be built in a `const` context.
#![allow(unsafe_code)]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use linked_list_allocator::LockedHeap;

/// An `N`-byte heap. Only for use as the `#[global_allocator]` static the
/// `#[protection_domain]` macro declares: it must never move after its first
/// allocation, which a `static` guarantees.
#[doc(hidden)]
pub struct StaticHeap<const N: usize> {
    heap: LockedHeap,
    arena: UnsafeCell<[u8; N]>,
}

// SAFETY: the arena is only touched through `heap`, whose spinlock serialises every
// access; nothing else reads or writes it.
unsafe impl<const N: usize> Sync for StaticHeap<N> {}

impl<const N: usize> StaticHeap<N> {
    /// An empty heap (claims its memory on first use).
    pub const fn new() -> Self {
        assert!(N >= 64, "heap_size must be at least 64 bytes");
        StaticHeap {
            heap: LockedHeap::empty(),
            arena: UnsafeCell::new([0; N]),
        }
    }
}

impl<const N: usize> Default for StaticHeap<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: `alloc` returns either null or a block from `linked_list_allocator` that
// satisfies `layout` and lies in the arena; `dealloc` hands back exactly such blocks.
unsafe impl<const N: usize> GlobalAlloc for StaticHeap<N> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        if heap.size() == 0 {
            // SAFETY: first use (size 0 only before init, since N >= 64): the arena is
            // N bytes that nothing else uses, and `self` is a static that never moves,
            // so the memory stays valid and exclusive to this heap for ever.
            unsafe { heap.init(self.arena.get().cast::<u8>(), N) };
        }
        heap.allocate_first_fit(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(ptr) = NonNull::new(ptr) {
            // SAFETY: the caller (GlobalAlloc contract) passes a block this allocator
            // returned for the same `layout`.
            unsafe { self.heap.lock().deallocate(ptr, layout) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static HEAP: StaticHeap<4096> = StaticHeap::new();

    #[test]
    fn allocates_frees_and_reports_exhaustion() {
        let small = Layout::from_size_align(100, 16).unwrap();
        // SAFETY: the layouts are non-zero-sized; each block is freed once with the
        // layout it was allocated with.
        unsafe {
            let a = HEAP.alloc(small);
            assert!(!a.is_null());
            assert_eq!(a as usize % 16, 0);
            let base = HEAP.arena.get() as usize;
            assert!((base..base + 4096).contains(&(a as usize)));
            let b = HEAP.alloc(small);
            assert!(!b.is_null() && b != a);
            assert!(HEAP.alloc(Layout::from_size_align(8192, 8).unwrap()).is_null());
            HEAP.dealloc(a, small);
            HEAP.dealloc(b, small);
            let big = Layout::from_size_align(3000, 8).unwrap();
            let c = HEAP.alloc(big);
            assert!(!c.is_null(), "freed blocks are reused");
            HEAP.dealloc(c, big);
        }
    }
}
