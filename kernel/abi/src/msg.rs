//! Message info encoding and the IPC buffer layout.
//!
//! Every PD has one IPC buffer page at [`IPC_BUFFER_VADDR`]. Words `0..MAX_MRS` are
//! the message registers; bytes from [`DEBUG_AREA_OFFSET`] on hold text for
//! [`crate::syscall::Sysno::DebugPut`], so printing never clobbers a message.

/// Virtual address of every PD's IPC buffer (Microkit 2.3: the top page of a 40-bit
/// address space).
pub const IPC_BUFFER_VADDR: u64 = 0xff_ffff_f000;
/// Message registers per direction (Microkit: "up to 64 words").
pub const MAX_MRS: usize = 64;
/// Byte offset of the debug text area in the IPC buffer.
pub const DEBUG_AREA_OFFSET: usize = 2048;
/// Size of the debug text area in bytes.
pub const DEBUG_AREA_SIZE: usize = 2048;

// The message registers and the debug area share the IPC buffer page.
const _: () = assert!(MAX_MRS * 8 <= DEBUG_AREA_OFFSET);
const _: () = assert!(DEBUG_AREA_OFFSET + DEBUG_AREA_SIZE == 4096);

/// A message's label and length, passed in one register.
///
/// Bits 0..7: count of message registers (0..=64); bits 12..64: label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct MsgInfo(pub u64);

impl MsgInfo {
    /// Largest label that fits.
    pub const MAX_LABEL: u64 = (1 << 52) - 1;

    /// Builds a message info; the label is truncated to 52 bits and the count to 7.
    pub const fn new(label: u64, count: usize) -> MsgInfo {
        MsgInfo(((label & Self::MAX_LABEL) << 12) | (count as u64 & 0x7f))
    }

    /// The label.
    pub const fn label(self) -> u64 {
        self.0 >> 12
    }

    /// The number of message registers (may exceed [`MAX_MRS`] if a PD says so; the
    /// kernel rejects that).
    pub const fn count(self) -> usize {
        (self.0 & 0x7f) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msginfo_round_trips() {
        let m = MsgInfo::new(0xabc, 5);
        assert_eq!(m.label(), 0xabc);
        assert_eq!(m.count(), 5);
        assert_eq!(MsgInfo::new(MsgInfo::MAX_LABEL, 64).label(), MsgInfo::MAX_LABEL);
        assert_eq!(MsgInfo::new(1, 64).count(), 64);
    }
}
