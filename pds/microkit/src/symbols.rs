//! Symbols the builder patches: `var!`, `memory_region_symbol!` and the `microkit_*` globals.
//!
//! The builder (like Microkit's tool) writes values straight into a PD's ELF `.data`
//! before boot: the PD's name, whether it is passive, and bitmasks of the channel and
//! IRQ ids it holds capabilities for, plus any `setvar_*` symbol a system file names.
//! Each such symbol is a `#[no_mangle]` static in `.data` (so it has file bytes to
//! patch), `#[used]`, and wrapped in [`ImmutableCell`] so the compiler cannot fold the
//! default value into the code; reads go through a volatile load or a pointer the
//! optimiser cannot see through, so the patched value is what the PD sees.
#![allow(unsafe_code)]

use core::cell::UnsafeCell;
use core::ptr::NonNull;

/// A value the builder may patch before boot and nothing changes afterwards.
#[doc(hidden)]
#[repr(transparent)]
pub struct ImmutableCell<T>(UnsafeCell<T>);

// SAFETY: the contents are written only by the builder, before the PD starts; at run
// time no code writes them (there is no `&mut` or setter), so shared access from any
// thread only ever reads.
unsafe impl<T: Sync> Sync for ImmutableCell<T> {}

impl<T> ImmutableCell<T> {
    /// A cell holding `value` until the builder patches it.
    pub const fn new(value: T) -> Self {
        ImmutableCell(UnsafeCell::new(value))
    }

    /// The (possibly patched) value.
    pub fn get(&'static self) -> &'static T {
        // `black_box` hides where the pointer points, so loads through the returned
        // reference cannot be replaced by the compile-time default.
        let p: *const T = core::hint::black_box(self.0.get().cast_const());
        // SAFETY: `p` points into a `'static` cell that is never written at run time
        // (see the `Sync` impl), so a shared `'static` reference is valid.
        unsafe { &*p }
    }
}

impl<T: Copy> ImmutableCell<T> {
    /// Reads the (possibly patched) value with a volatile load.
    pub fn read(&self) -> T {
        // SAFETY: the pointer comes from a live cell, is aligned, and the contents are
        // never written at run time, so the read cannot race.
        unsafe { self.0.get().read_volatile() }
    }
}

/// Declares a builder-patched `#[no_mangle]` variable `sym` in `.data` and evaluates
/// to a `&'static T` of its value: `var!(sym: T = default)`.
///
/// Each invocation defines the symbol, so invoke it in exactly one place per symbol
/// (wrap it in a function if several places need the value).
#[macro_export]
macro_rules! var {
    ($(#[$attrs:meta])* $symbol:ident: $ty:ty = $default:expr) => {{
        $(#[$attrs])*
        #[allow(non_upper_case_globals)]
        #[no_mangle]
        #[used]
        #[link_section = ".data"]
        static $symbol: $crate::_private::ImmutableCell<$ty> =
            $crate::_private::ImmutableCell::new($default);
        $crate::_private::ImmutableCell::get(&$symbol)
    }};
}

/// Declares a memory-region symbol that the builder patches with the region's virtual
/// address (`setvar_vaddr`) and returns it as a `NonNull`.
///
/// Forms: `(sym: *mut T)` → `NonNull<T>`; `(sym: *mut [T], n = N)` →
/// `NonNull<[T]>` of `N` elements; either with `, bytes = B` to assert that the type
/// (or the `N` elements) fit in a region of `B` bytes. Panics "`sym` is null" if the
/// builder did not patch the symbol.
#[macro_export]
macro_rules! memory_region_symbol {
    ($(#[$attrs:meta])* $symbol:ident: *mut [$ty:ty], n = $n:expr, bytes = $bytes:expr $(,)?) => {{
        let n: usize = $n;
        $crate::_private::assert_fits(
            stringify!($symbol),
            n.saturating_mul(::core::mem::size_of::<$ty>()),
            $bytes,
        );
        $crate::memory_region_symbol!($(#[$attrs])* $symbol: *mut [$ty], n = n)
    }};
    ($(#[$attrs:meta])* $symbol:ident: *mut [$ty:ty], n = $n:expr $(,)?) => {
        ::core::ptr::NonNull::slice_from_raw_parts(
            $crate::memory_region_symbol!($(#[$attrs])* $symbol: *mut $ty),
            $n,
        )
    };
    ($(#[$attrs:meta])* $symbol:ident: *mut $ty:ty, bytes = $bytes:expr $(,)?) => {{
        $crate::_private::assert_fits(stringify!($symbol), ::core::mem::size_of::<$ty>(), $bytes);
        $crate::memory_region_symbol!($(#[$attrs])* $symbol: *mut $ty)
    }};
    ($(#[$attrs:meta])* $symbol:ident: *mut $ty:ty $(,)?) => {
        $crate::_private::region_ptr::<$ty>(
            *$crate::var!($(#[$attrs])* $symbol: usize = 0),
            stringify!($symbol),
        )
    };
}

/// Turns a patched region address into a pointer; panics if it was never patched.
#[doc(hidden)]
pub fn region_ptr<T>(addr: usize, symbol: &str) -> NonNull<T> {
    NonNull::new(core::ptr::with_exposed_provenance_mut(addr)).unwrap_or_else(|| panic!("{symbol} is null"))
}

/// Checks the `bytes = B` form of `memory_region_symbol!`.
#[doc(hidden)]
pub fn assert_fits(symbol: &str, needed: usize, bytes: usize) {
    assert!(
        needed <= bytes,
        "memory region {symbol}: the type needs {needed} bytes but the region has {bytes}"
    );
}

// The globals every PD image carries (Microkit's names and sizes), patched by the builder.

/// This PD's name, NUL-padded.
#[allow(non_upper_case_globals)]
#[no_mangle]
#[used]
#[link_section = ".data"]
static microkit_name: ImmutableCell<[u8; 64]> = ImmutableCell::new([0; 64]);

/// Non-zero if this PD is passive (C `bool`: one byte).
#[allow(non_upper_case_globals)]
#[no_mangle]
#[used]
#[link_section = ".data"]
static microkit_passive: ImmutableCell<u8> = ImmutableCell::new(0);

/// Bit `i` set: IRQ id `i` has a handler capability.
#[allow(non_upper_case_globals)]
#[no_mangle]
#[used]
#[link_section = ".data"]
static microkit_irqs: ImmutableCell<u64> = ImmutableCell::new(0);

/// Bit `i` set: channel `i` may notify the other end.
#[allow(non_upper_case_globals)]
#[no_mangle]
#[used]
#[link_section = ".data"]
static microkit_notifications: ImmutableCell<u64> = ImmutableCell::new(0);

/// Bit `i` set: channel `i` may PPC the other end.
#[allow(non_upper_case_globals)]
#[no_mangle]
#[used]
#[link_section = ".data"]
static microkit_pps: ImmutableCell<u64> = ImmutableCell::new(0);

/// Bit `i` set: I/O port id `i` is granted (x86 only in Microkit; always 0 here).
#[allow(non_upper_case_globals)]
#[no_mangle]
#[used]
#[link_section = ".data"]
static microkit_ioports: ImmutableCell<u64> = ImmutableCell::new(0);

/// Makes sure the linker keeps every patched global even if nothing reads it, so the
/// builder always finds them. Today's rustc already marks `#[used]` statics' sections
/// `SHF_GNU_RETAIN` (kept by `--gc-sections`); this real reference from the entry path
/// keeps them on toolchains that do not.
pub(crate) fn keep_patched_symbols() {
    core::hint::black_box(&microkit_name);
    core::hint::black_box(&microkit_passive);
    core::hint::black_box(&microkit_irqs);
    core::hint::black_box(&microkit_notifications);
    core::hint::black_box(&microkit_pps);
    core::hint::black_box(&microkit_ioports);
}

/// The id masks the event loop and [`crate::Channel`] check.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Masks {
    pub irqs: u64,
    pub notifications: u64,
    pub pps: u64,
}

/// The patched masks (on the host: the fake kernel's).
pub(crate) fn masks() -> Masks {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
    {
        Masks {
            irqs: microkit_irqs.read(),
            notifications: microkit_notifications.read(),
            pps: microkit_pps.read(),
        }
    }
    #[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
    {
        crate::sys::fake::with(|k| Masks {
            irqs: k.irqs,
            notifications: k.notifications,
            pps: k.pps,
        })
    }
}

/// The PD's name as patched by the builder, up to the first NUL.
pub fn pd_name_bytes() -> &'static [u8] {
    let name: &'static [u8; 64] = microkit_name.get();
    let len = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    &name[..len]
}

/// The PD's name as patched by the builder.
pub fn pd_name() -> Result<&'static str, core::str::Utf8Error> {
    core::str::from_utf8(pd_name_bytes())
}

/// The PD's name for messages (`"?"` if it is not UTF-8).
pub(crate) fn pd_name_for_messages() -> &'static str {
    pd_name().unwrap_or("?")
}

/// Whether the builder marked this PD passive.
pub fn pd_is_passive() -> bool {
    microkit_passive.read() != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpatched_globals_have_defaults() {
        assert_eq!(pd_name(), Ok(""));
        assert!(!pd_is_passive());
        keep_patched_symbols();
    }

    #[test]
    fn var_reads_its_symbol() {
        let v: &'static u64 = crate::var!(vcpos_test_var: u64 = 42);
        assert_eq!(*v, 42);
    }

    #[test]
    #[should_panic(expected = "vcpos_test_region is null")]
    fn unpatched_region_panics() {
        let _ = crate::memory_region_symbol!(vcpos_test_region: *mut u64);
    }

    #[test]
    #[should_panic(expected = "needs 16 bytes but the region has 8")]
    fn region_size_is_checked() {
        let _ = crate::memory_region_symbol!(vcpos_test_region2: *mut [u64], n = 2, bytes = 8);
    }

    #[test]
    fn region_pointer_from_address() {
        let p = region_ptr::<u32>(0x4000_0000, "x");
        assert_eq!(p.as_ptr() as usize, 0x4000_0000);
    }
}
