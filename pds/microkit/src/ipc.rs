//! Access to this PD's IPC buffer page: message registers and the debug text area.
//!
//! The page is at `vcpos_abi::msg::IPC_BUFFER_VADDR` in every PD (the builder maps it,
//! the kernel reads and writes it during syscalls). No Rust reference into it ever
//! exists: every access is one volatile load or store of a word or byte, so a syscall
//! that changes the page can never invalidate a borrow. On the host the page is the
//! fake kernel's (`crate::sys::fake`).
#![allow(unsafe_code)]

use vcpos_abi::msg::{DEBUG_AREA_OFFSET, DEBUG_AREA_SIZE, MAX_MRS};

/// Reads message register `i` (`i < MAX_MRS`, checked).
#[track_caller]
pub(crate) fn read_mr(i: usize) -> u64 {
    assert!(i < MAX_MRS, "message register {i} out of range (max {MAX_MRS})");
    arch::read_word(i)
}

/// Writes message register `i` (`i < MAX_MRS`, checked).
#[track_caller]
pub(crate) fn write_mr(i: usize, value: u64) {
    assert!(i < MAX_MRS, "message register {i} out of range (max {MAX_MRS})");
    arch::write_word(i, value);
}

/// Writes byte `offset` of the debug area (`offset < DEBUG_AREA_SIZE`, checked).
pub(crate) fn write_debug_byte(offset: usize, byte: u8) {
    assert!(offset < DEBUG_AREA_SIZE, "debug area offset {offset} out of range");
    arch::write_byte(DEBUG_AREA_OFFSET + offset, byte);
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
mod arch {
    use vcpos_abi::msg::IPC_BUFFER_VADDR;

    // Callers check bounds: words < MAX_MRS (512 bytes), bytes < 4096.

    pub(super) fn read_word(i: usize) -> u64 {
        let p = (IPC_BUFFER_VADDR as usize + i * 8) as *const u64;
        // SAFETY: the IPC buffer page is mapped read-write in every PD for its whole
        // life (vspace contract); `i < MAX_MRS` keeps the 8-byte-aligned word inside
        // the page; the access is volatile and no reference to the page exists.
        unsafe { p.read_volatile() }
    }

    pub(super) fn write_word(i: usize, value: u64) {
        let p = (IPC_BUFFER_VADDR as usize + i * 8) as *mut u64;
        // SAFETY: as in `read_word`; the page is writable by this PD.
        unsafe { p.write_volatile(value) }
    }

    pub(super) fn write_byte(offset: usize, byte: u8) {
        let p = (IPC_BUFFER_VADDR as usize + offset) as *mut u8;
        // SAFETY: as in `write_word`; `offset < 4096` keeps the byte inside the page.
        unsafe { p.write_volatile(byte) }
    }
}

#[cfg(not(all(target_arch = "aarch64", target_os = "none")))]
mod arch {
    use crate::sys::fake;

    pub(super) fn read_word(i: usize) -> u64 {
        fake::with(|k| u64::from_le_bytes(k.ipc[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8])))
    }

    pub(super) fn write_word(i: usize, value: u64) {
        fake::with(|k| k.ipc[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes()));
    }

    pub(super) fn write_byte(offset: usize, byte: u8) {
        fake::with(|k| k.ipc[offset] = byte);
    }
}
