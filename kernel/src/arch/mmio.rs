//! The kernel's window on physical memory: its upper-half linear map.
//!
//! Every physical address below 4 GiB is mapped at `paddr + KERNEL_VIRT_OFFSET`
//! (device memory below RAM, normal memory for RAM; see [`super::boot`]). These are
//! the only functions that turn a physical address into a pointer.

use vcpos_abi::KERNEL_VIRT_OFFSET;

use super::board;

/// True if `[paddr, paddr + len)` lies in RAM.
pub fn in_ram(paddr: u64, len: u64) -> bool {
    paddr >= board::RAM_BASE
        && paddr
            .checked_add(len)
            .is_some_and(|end| end <= board::RAM_BASE + board::RAM_SIZE)
}

fn ptr<T>(paddr: u64) -> *mut T {
    (paddr + KERNEL_VIRT_OFFSET) as *mut T
}

/// Reads a device register.
pub fn read32(paddr: u64) -> u32 {
    // SAFETY: callers pass addresses of device registers of this board (UART, GIC),
    // which the boot tables map as device memory; a 4-byte aligned volatile read of
    // a register has no memory-safety effect on Rust objects.
    unsafe { core::ptr::read_volatile(ptr::<u32>(paddr)) }
}

/// Writes a device register.
pub fn write32(paddr: u64, value: u32) {
    // SAFETY: as for `read32`: a device register of this board, mapped as device
    // memory, not aliased by any Rust object.
    unsafe { core::ptr::write_volatile(ptr::<u32>(paddr), value) }
}

/// Writes a 64-bit device register.
pub fn write64(paddr: u64, value: u64) {
    // SAFETY: as for `write32`.
    unsafe { core::ptr::write_volatile(ptr::<u64>(paddr), value) }
}

/// Reads a RAM word; addresses outside RAM or misaligned read as 0.
pub fn ram_read_word(paddr: u64) -> u64 {
    if !paddr.is_multiple_of(8) || !in_ram(paddr, 8) {
        return 0;
    }
    // SAFETY: aligned and inside RAM, which the linear map covers. The frames the
    // kernel core reads (IPC buffers, page tables) are not Rust objects; a racing
    // write from a PD only changes the value read.
    unsafe { core::ptr::read_volatile(ptr::<u64>(paddr)) }
}

/// Writes a RAM word; addresses outside RAM or misaligned are ignored.
pub fn ram_write_word(paddr: u64, value: u64) {
    if !paddr.is_multiple_of(8) || !in_ram(paddr, 8) {
        return;
    }
    // SAFETY: as for `ram_read_word`; the builder placed IPC buffers and the page-
    // table pool outside the kernel image, so no Rust object is overwritten.
    unsafe { core::ptr::write_volatile(ptr::<u64>(paddr), value) }
}

/// Reads a RAM byte (0 outside RAM).
pub fn ram_read_byte(paddr: u64) -> u8 {
    if !in_ram(paddr, 1) {
        return 0;
    }
    // SAFETY: inside RAM (linear map); see `ram_read_word`.
    unsafe { core::ptr::read_volatile(ptr::<u8>(paddr)) }
}

/// Zeroes `[paddr, paddr + len)` of RAM; ranges not wholly in RAM are ignored.
pub fn ram_zero(paddr: u64, len: u64) -> bool {
    if !in_ram(paddr, len) {
        return false;
    }
    // SAFETY: inside RAM; the builder lists only PD frames (memory regions, stacks,
    // .bss tails), never the kernel image or the boot-info blob (checked by the
    // caller), so no Rust object is overwritten.
    unsafe { core::ptr::write_bytes(ptr::<u8>(paddr), 0, len as usize) };
    true
}

/// The boot-information blob as a byte slice, if it lies in RAM.
pub fn ram_slice(paddr: u64, len: u64) -> Option<&'static [u8]> {
    if !in_ram(paddr, len) {
        return None;
    }
    // SAFETY: inside RAM, covered by the linear map, and never written after boot
    // (the builder keeps the blob apart from every PD frame and zero range).
    Some(unsafe { core::slice::from_raw_parts(ptr::<u8>(paddr), len as usize) })
}
