//! The PD entry point: `declare_protection_domain!` (what `#[protection_domain]` expands to).
//!
//! The macro goes in the PD's binary crate and emits:
//! - `_start` (the ELF entry; lld's default entry symbol), in `global_asm!`. The kernel
//!   enters it at EL0 with SP = the top of the stack the builder mapped. With
//!   `stack_size = N`, `_start` first switches SP to the top of an `N`-byte stack
//!   inside the ELF's `.bss` (re-done on every restart of a child PD).
//! - a monomorphic `extern "C"` main that calls `_private::run_main(init)`.
//! - with `heap_size = N`, a `#[global_allocator]` over an `N`-byte static heap.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;

/// An in-ELF stack of `N` bytes (`stack_size = N`).
#[doc(hidden)]
#[repr(C, align(16))]
pub struct Stack<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: Rust code never reads or writes the stack's contents; `_start` only takes
// its address to load SP, after which the one thread of the PD owns it.
unsafe impl<const N: usize> Sync for Stack<N> {}

impl<const N: usize> Stack<N> {
    /// A zeroed stack (in `.bss`). `N` must be a multiple of 16 in 4 KiB..=256 TiB.
    pub const fn new() -> Self {
        assert!(
            N >= 4096 && N.is_multiple_of(16),
            "stack_size must be a multiple of 16 and at least 4 KiB"
        );
        assert!((N as u64) < (1 << 48), "stack_size too large");
        Stack(UnsafeCell::new([0; N]))
    }
}

impl<const N: usize> Default for Stack<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Declares the PD's entry point: `declare_protection_domain!(init = f)`, optionally
/// followed by `heap_size = N` and/or `stack_size = N` (in either order). `f` is a
/// `fn() -> impl Handler`. Use it once, in the PD's binary crate.
#[macro_export]
macro_rules! declare_protection_domain {
    (init = $init:expr $(,)?) => {
        $crate::__vcpos_microkit_entry!($init);
    };
    (init = $init:expr, heap_size = $heap:expr $(,)?) => {
        $crate::__vcpos_microkit_heap!($heap);
        $crate::__vcpos_microkit_entry!($init);
    };
    (init = $init:expr, stack_size = $stack:expr $(,)?) => {
        $crate::__vcpos_microkit_entry!($init, $stack);
    };
    (init = $init:expr, heap_size = $heap:expr, stack_size = $stack:expr $(,)?) => {
        $crate::__vcpos_microkit_heap!($heap);
        $crate::__vcpos_microkit_entry!($init, $stack);
    };
    (init = $init:expr, stack_size = $stack:expr, heap_size = $heap:expr $(,)?) => {
        $crate::__vcpos_microkit_heap!($heap);
        $crate::__vcpos_microkit_entry!($init, $stack);
    };
}

/// `#[global_allocator]` over a static heap of the given size.
#[doc(hidden)]
#[macro_export]
macro_rules! __vcpos_microkit_heap {
    ($size:expr) => {
        #[global_allocator]
        static __VCPOS_MICROKIT_HEAP: $crate::_private::StaticHeap<{ $size }> = $crate::_private::StaticHeap::new();
    };
}

/// `_start` and the main function, with or without an in-ELF stack.
#[doc(hidden)]
#[macro_export]
macro_rules! __vcpos_microkit_entry {
    ($init:expr) => {
        #[allow(dead_code)]
        extern "C" fn __vcpos_microkit_main() -> ! {
            $crate::_private::run_main($init)
        }

        // Entered with SP = the kernel-provided stack top. Clear the frame pointer and
        // link register so backtraces end here.
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        ::core::arch::global_asm!(
            ".pushsection .text._start, \"ax\", %progbits",
            ".globl _start",
            ".type _start, %function",
            "_start:",
            "    mov x29, xzr",
            "    mov x30, xzr",
            "    b {main}",
            ".size _start, . - _start",
            ".popsection",
            main = sym __vcpos_microkit_main,
        );
    };
    ($init:expr, $stack:expr) => {
        #[allow(dead_code)]
        extern "C" fn __vcpos_microkit_main() -> ! {
            $crate::_private::run_main($init)
        }

        #[allow(dead_code)]
        static __VCPOS_MICROKIT_STACK: $crate::_private::Stack<{ $stack }> = $crate::_private::Stack::new();

        // Switch SP to the top of the in-ELF stack (its size built from three 16-bit
        // immediates), then run main.
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        ::core::arch::global_asm!(
            ".pushsection .text._start, \"ax\", %progbits",
            ".globl _start",
            ".type _start, %function",
            "_start:",
            "    adrp x9, {stack}",
            "    add x9, x9, :lo12:{stack}",
            "    movz x10, #{s0}",
            "    movk x10, #{s1}, lsl #16",
            "    movk x10, #{s2}, lsl #32",
            "    add sp, x9, x10",
            "    mov x29, xzr",
            "    mov x30, xzr",
            "    b {main}",
            ".size _start, . - _start",
            ".popsection",
            main = sym __vcpos_microkit_main,
            stack = sym __VCPOS_MICROKIT_STACK,
            s0 = const (($stack) as u64 & 0xffff),
            s1 = const ((($stack) as u64 >> 16) & 0xffff),
            s2 = const ((($stack) as u64 >> 32) & 0xffff),
        );
    };
}
