//! The PD virtual address-space layout and page-table accounting.
//!
//! A PD sees a 40-bit address space (4 KiB granule, walk starting at level 0):
//!
//! ```text
//! 0xff_ffff_f000  IPC buffer (one page)               = msg::IPC_BUFFER_VADDR
//! 0xff_ffff_e000  guard page (never mapped)
//! STACK_TOP - stack_size .. STACK_TOP   stack
//! one guard page below the stack (never mapped)
//! ...             memory-region maps (must end at or below user_map_limit())
//! 0x20_0000       program image (ELF segments, linked at 2 MiB as in Microkit)
//! ```

/// First address above the PD address space.
pub const USER_VSPACE_TOP: u64 = 1 << 40;
/// Top of every PD's stack (exclusive); the page above it is a guard page.
pub const STACK_TOP: u64 = crate::msg::IPC_BUFFER_VADDR - PAGE_SIZE;
/// Base page size.
pub const PAGE_SIZE: u64 = 0x1000;
/// Large page (level-2 block) size.
pub const LARGE_PAGE_SIZE: u64 = 0x20_0000;
/// Default PD stack size (Microkit 2.1+).
pub const DEFAULT_STACK_SIZE: u64 = 0x2000;
/// Smallest and largest PD stack sizes (Microkit's limits).
pub const MIN_STACK_SIZE: u64 = 0x1000;
/// Largest PD stack size.
pub const MAX_STACK_SIZE: u64 = 0x100_0000;

/// Lowest address of a PD stack of `stack_size` bytes.
pub const fn stack_bottom(stack_size: u64) -> u64 {
    STACK_TOP - stack_size
}

/// Every user map must end at or below this address: the stack bottom less one
/// guard page.
pub const fn user_map_limit(stack_size: u64) -> u64 {
    stack_bottom(stack_size) - PAGE_SIZE
}

/// Map attribute bits ([`crate::bootinfo::MapDesc::attrs`]).
pub mod attr {
    /// Readable.
    pub const READ: u32 = 1;
    /// Writable.
    pub const WRITE: u32 = 2;
    /// Executable.
    pub const EXECUTE: u32 = 4;
    /// Normal write-back cached memory; without it the map is device memory.
    pub const CACHED: u32 = 8;
    /// Map with 2 MiB blocks (vaddr, paddr and size are 2 MiB aligned).
    pub const LARGE: u32 = 16;
}

/// A range of virtual addresses mapped with one page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VRange {
    /// First address (page aligned).
    pub vaddr: u64,
    /// Length in bytes (page multiple).
    pub size: u64,
    /// Mapped with 2 MiB blocks.
    pub large: bool,
}

/// Number of 4 KiB translation tables one address space needs for `ranges`, which
/// must be sorted by `vaddr` and must not overlap. Includes the level-0 table.
///
/// The kernel builds the tables at boot from a pool the builder sizes with this.
pub fn page_tables_needed(ranges: &[VRange]) -> usize {
    // One table per distinct index prefix at each level: L1 tables are keyed by
    // va[47:39], L2 by va[47:30], L3 (only for 4 KiB pages) by va[47:21]. Because
    // the ranges are sorted, distinct keys arrive in order and counting changes
    // suffices.
    let mut tables = 1;
    let mut last = [u64::MAX; 3];
    for r in ranges {
        if r.size == 0 {
            continue;
        }
        let end = r.vaddr + r.size - 1;
        for (level, shift) in [39u32, 30, 21].into_iter().enumerate() {
            if level == 2 && r.large {
                continue;
            }
            let first = r.vaddr >> shift;
            let lastk = end >> shift;
            let start = if last[level] == first { first + 1 } else { first };
            if lastk >= start {
                tables += (lastk - start + 1) as usize;
            }
            last[level] = lastk;
        }
    }
    tables
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(vaddr: u64, size: u64) -> VRange {
        VRange {
            vaddr,
            size,
            large: false,
        }
    }

    #[test]
    fn layout_constants() {
        assert_eq!(STACK_TOP, 0xff_ffff_e000);
        assert_eq!(stack_bottom(DEFAULT_STACK_SIZE), 0xff_ffff_c000);
        assert_eq!(user_map_limit(DEFAULT_STACK_SIZE), 0xff_ffff_b000);
    }

    #[test]
    fn counts_tables_for_typical_pd() {
        // Program image at 2 MiB, stack and IPC buffer at the top.
        let ranges = [
            r(0x20_0000, 0x3000),
            r(stack_bottom(0x2000), 0x2000),
            r(crate::msg::IPC_BUFFER_VADDR, 0x1000),
        ];
        // L0 + L1 for low half + L1 for high half + 2 L2 + 2 L3.
        assert_eq!(page_tables_needed(&ranges), 1 + 2 + 2 + 2);
    }

    #[test]
    fn counts_shared_tables_once_and_large_pages_need_no_l3() {
        let ranges = [r(0x20_0000, 0x1000), r(0x20_1000, 0x1000), r(0x40_0000, 0x1000)];
        assert_eq!(page_tables_needed(&ranges), 1 + 1 + 1 + 2);
        let large = [VRange {
            vaddr: 0x4000_0000,
            size: 0x40_0000,
            large: true,
        }];
        assert_eq!(page_tables_needed(&large), 1 + 1 + 1);
        // A range crossing a 1 GiB boundary needs two L2 tables.
        assert_eq!(page_tables_needed(&[r(0x3fff_f000, 0x2000)]), 1 + 1 + 2 + 2);
    }
}
