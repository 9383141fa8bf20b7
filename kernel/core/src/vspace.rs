//! Building PD address spaces: aarch64 stage-1 translation tables (4 KiB granule,
//! 40-bit VA, walk from level 0) in a pool of pages the builder reserved.
//!
//! The kernel runs with `HCR_EL2.{E2H,TGE}` set, so PD address spaces are TTBR0_EL2
//! tables of the EL2&0 regime: user pages are non-global (tagged with the PD's ASID)
//! and never executable by the kernel (PXN).
//!
//! A VM's guest-physical address space is a stage-2 table ([`Stage::Two`]): 39-bit
//! IPA, walk from level 1 (`VTCR_EL2.{T0SZ=25, SL0=1}`), stage-2 permission and
//! memory-attribute encodings.

use vcpos_abi::vspace::{attr, LARGE_PAGE_SIZE, PAGE_SIZE, USER_VSPACE_TOP};

use crate::platform::Platform;

/// MAIR_EL2 attribute index of device nGnRE memory.
pub const MAIR_DEVICE: u64 = 0;
/// MAIR_EL2 attribute index of normal write-back memory.
pub const MAIR_NORMAL: u64 = 1;
/// MAIR_EL2 value matching the indices above (index 2: normal non-cacheable).
pub const MAIR_VALUE: u64 = 0x04 | (0xff << 8) | (0x44 << 16);

/// Stage-1 descriptor bits (shared with the kernel's own map, `kernel/src/arch/kmap.rs`).
pub mod desc {
    /// Valid entry.
    pub const VALID: u64 = 1;
    /// Table (levels 0-2) or page (level 3); clear for a block.
    pub const TABLE: u64 = 1 << 1;
    /// Access flag.
    pub const AF: u64 = 1 << 10;
    /// Not global (ASID-tagged).
    pub const NG: u64 = 1 << 11;
    /// Inner shareable.
    pub const SH_INNER: u64 = 3 << 8;
    /// AP: EL0 and EL2 read-write.
    pub const AP_RW_EL0: u64 = 0b01 << 6;
    /// AP: EL0 and EL2 read-only.
    pub const AP_RO_EL0: u64 = 0b11 << 6;
    /// AP: EL2 read-only, no EL0 access.
    pub const AP_RO_KERNEL: u64 = 0b10 << 6;
    /// Never executable at EL2.
    pub const PXN: u64 = 1 << 53;
    /// Never executable at EL0.
    pub const UXN: u64 = 1 << 54;
}
use desc::{AF, AP_RO_EL0, AP_RW_EL0, NG, PXN, SH_INNER, TABLE, UXN, VALID};
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The page-table pool is exhausted.
    OutOfTables,
    /// Writable and executable at once.
    WriteAndExecute,
    /// Misaligned or outside the PD address space.
    BadRange,
    /// Something is already mapped there.
    Overlap,
}

/// A bump allocator over the page-table pool.
#[derive(Clone, Copy, Debug)]
pub struct TablePool {
    next: u64,
    end: u64,
}

impl TablePool {
    /// A pool covering `[paddr, paddr + size)`.
    pub const fn new(paddr: u64, size: u64) -> TablePool {
        TablePool {
            next: paddr,
            end: paddr + size,
        }
    }

    /// Takes one zeroed page.
    pub fn alloc(&mut self, mem: &mut impl Platform) -> Result<u64, MapError> {
        if self.next + PAGE_SIZE > self.end {
            return Err(MapError::OutOfTables);
        }
        let page = self.next;
        self.next += PAGE_SIZE;
        for i in 0..512 {
            mem.write_word(page + i * 8, 0);
        }
        Ok(page)
    }

    /// Pages left.
    pub fn remaining(&self) -> u64 {
        (self.end - self.next) / PAGE_SIZE
    }
}

/// Which translation a table is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A PD's stage-1 address space (EL2&0 regime, TTBR0_EL2, 40-bit VA, from level 0).
    One,
    /// A VM's stage-2 guest-physical space (VTTBR_EL2, 39-bit IPA, from level 1).
    Two,
}

impl Stage {
    fn first_level(self) -> u32 {
        match self {
            Stage::One => 0,
            Stage::Two => 1,
        }
    }

    fn top(self) -> u64 {
        match self {
            Stage::One => USER_VSPACE_TOP,
            Stage::Two => 1 << 39,
        }
    }
}

/// VTCR_EL2 for [`Stage::Two`] tables: T0SZ=25, SL0=1 (level 1), write-back inner-
/// shareable walks, 4 KiB granule, 40-bit PA.
pub const VTCR_VALUE: u64 = 25 | (1 << 6) | (1 << 8) | (1 << 10) | (3 << 12) | (2 << 16) | (1 << 31);

const S2_MEMATTR_NORMAL_WB: u64 = 0b1111 << 2;
const S2_MEMATTR_DEVICE: u64 = 0b0001 << 2;
const S2AP_READ: u64 = 1 << 6;
const S2AP_WRITE: u64 = 1 << 7;
const S2_XN: u64 = 1 << 54;

/// Stage-2 leaf descriptor bits for map attributes.
pub fn stage2_leaf_bits(attrs: u32) -> Result<u64, MapError> {
    if attrs & attr::WRITE != 0 && attrs & attr::EXECUTE != 0 && attrs & attr::CACHED == 0 {
        return Err(MapError::WriteAndExecute);
    }
    let mut d = AF;
    d |= if attrs & attr::CACHED != 0 {
        S2_MEMATTR_NORMAL_WB | SH_INNER
    } else {
        S2_MEMATTR_DEVICE
    };
    if attrs & attr::READ != 0 {
        d |= S2AP_READ;
    }
    if attrs & attr::WRITE != 0 {
        d |= S2AP_WRITE;
    }
    if attrs & attr::EXECUTE == 0 || attrs & attr::CACHED == 0 {
        d |= S2_XN;
    }
    Ok(d)
}

/// Leaf descriptor bits for map attributes.
pub fn leaf_bits(attrs: u32) -> Result<u64, MapError> {
    if attrs & attr::WRITE != 0 && attrs & attr::EXECUTE != 0 {
        return Err(MapError::WriteAndExecute);
    }
    let mut d = AF | NG | PXN;
    d |= if attrs & attr::CACHED != 0 {
        (MAIR_NORMAL << 2) | SH_INNER
    } else {
        (MAIR_DEVICE << 2) | UXN
    };
    d |= if attrs & attr::WRITE != 0 { AP_RW_EL0 } else { AP_RO_EL0 };
    if attrs & attr::EXECUTE == 0 {
        d |= UXN;
    }
    Ok(d)
}

fn index(vaddr: u64, level: u32) -> u64 {
    (vaddr >> (39 - 9 * level)) & 0x1ff
}

/// Returns the next-level table under `table[index]`, creating it if needed.
fn next_table(table: u64, idx: u64, pool: &mut TablePool, mem: &mut impl Platform) -> Result<u64, MapError> {
    let entry = mem.read_word(table + idx * 8);
    if entry & VALID != 0 {
        if entry & TABLE == 0 {
            return Err(MapError::Overlap);
        }
        return Ok(entry & ADDR_MASK);
    }
    let new = pool.alloc(mem)?;
    mem.write_word(table + idx * 8, new | TABLE | VALID);
    Ok(new)
}

/// Maps `[vaddr, vaddr + size)` to `[paddr, ...)` with [`vcpos_abi::vspace::attr`]
/// bits `attrs` in the `stage` tables rooted at `root` (a stage-2 `root` is a level-1
/// table and `vaddr` a guest-physical address). Guest memory may be writable and
/// executable (the guest applies its own stage-1 permissions); device memory never
/// executes.
#[allow(clippy::too_many_arguments)] // one argument per part of the mapping
pub fn map(
    stage: Stage,
    root: u64,
    vaddr: u64,
    paddr: u64,
    size: u64,
    attrs: u32,
    pool: &mut TablePool,
    mem: &mut impl Platform,
) -> Result<(), MapError> {
    let large = attrs & attr::LARGE != 0;
    let step = if large { LARGE_PAGE_SIZE } else { PAGE_SIZE };
    let aligned = vaddr.is_multiple_of(step) && paddr.is_multiple_of(step) && size.is_multiple_of(step);
    if !aligned || vaddr.checked_add(size).is_none_or(|e| e > stage.top()) {
        return Err(MapError::BadRange);
    }
    let bits = match stage {
        Stage::One => leaf_bits(attrs)?,
        Stage::Two => stage2_leaf_bits(attrs)?,
    };
    let mut off = 0;
    while off < size {
        let va = vaddr + off;
        let l1 = match stage {
            Stage::One => next_table(root, index(va, 0), pool, mem)?,
            Stage::Two => root,
        };
        let l2 = next_table(l1, index(va, 1), pool, mem)?;
        let (table, idx, desc) = if large {
            (l2, index(va, 2), (paddr + off) | bits | VALID)
        } else {
            let l3 = next_table(l2, index(va, 2), pool, mem)?;
            (l3, index(va, 3), (paddr + off) | bits | TABLE | VALID)
        };
        if mem.read_word(table + idx * 8) & VALID != 0 {
            return Err(MapError::Overlap);
        }
        mem.write_word(table + idx * 8, desc);
        off += step;
    }
    Ok(())
}

/// Walks the `stage` tables rooted at `root`: the physical address and leaf
/// descriptor for `vaddr`.
pub fn translate(stage: Stage, root: u64, vaddr: u64, mem: &impl Platform) -> Option<(u64, u64)> {
    let mut table = root;
    for level in stage.first_level()..4 {
        let entry = mem.read_word(table + index(vaddr, level) * 8);
        if entry & VALID == 0 {
            return None;
        }
        let is_table = entry & TABLE != 0;
        if level == 3 || (level == 2 && !is_table) {
            let page = if level == 3 { PAGE_SIZE } else { LARGE_PAGE_SIZE };
            return Some(((entry & ADDR_MASK & !(page - 1)) | (vaddr & (page - 1)), entry));
        }
        table = entry & ADDR_MASK;
    }
    None
}

/// True if the leaf descriptor lets EL0 write.
pub fn leaf_writable(desc: u64) -> bool {
    desc & (0b11 << 6) == AP_RW_EL0
}

/// True if the leaf descriptor lets EL0 execute.
pub fn leaf_executable(desc: u64) -> bool {
    desc & UXN == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::tests::FakePlatform;

    const POOL: u64 = 0x4100_0000;

    #[test]
    fn maps_pages_and_blocks_with_permissions() {
        let mut mem = FakePlatform::new();
        let mut pool = TablePool::new(POOL, 16 * PAGE_SIZE);
        let root = pool.alloc(&mut mem).unwrap();
        map(
            Stage::One,
            root,
            0x20_0000,
            0x4200_0000,
            0x2000,
            attr::READ | attr::EXECUTE | attr::CACHED,
            &mut pool,
            &mut mem,
        )
        .unwrap();
        map(
            Stage::One,
            root,
            0xff_ffff_f000,
            0x4300_0000,
            0x1000,
            attr::READ | attr::WRITE | attr::CACHED,
            &mut pool,
            &mut mem,
        )
        .unwrap();
        map(
            Stage::One,
            root,
            0x4000_0000,
            0x6000_0000,
            0x40_0000,
            attr::READ | attr::WRITE | attr::CACHED | attr::LARGE,
            &mut pool,
            &mut mem,
        )
        .unwrap();

        let (pa, d) = translate(Stage::One, root, 0x20_1234, &mem).unwrap();
        assert_eq!(pa, 0x4200_1234);
        assert!(leaf_executable(d) && !leaf_writable(d));
        let (pa, d) = translate(Stage::One, root, 0xff_ffff_f008, &mem).unwrap();
        assert_eq!(pa, 0x4300_0008);
        assert!(leaf_writable(d) && !leaf_executable(d));
        let (pa, _) = translate(Stage::One, root, 0x4023_4567, &mem).unwrap();
        assert_eq!(pa, 0x6023_4567);
        assert_eq!(translate(Stage::One, root, 0x20_2000, &mem), None);
        assert_eq!(
            translate(Stage::One, root, 0xff_ffff_e000, &mem),
            None,
            "guard page stays unmapped"
        );
        // root + 2 L1 + 3 L2 (2 MiB code, 1 GiB block area, top) ... all within the count.
        let used = 16 - pool.remaining() as usize;
        let ranges = [
            vcpos_abi::vspace::VRange {
                vaddr: 0x20_0000,
                size: 0x2000,
                large: false,
            },
            vcpos_abi::vspace::VRange {
                vaddr: 0x4000_0000,
                size: 0x40_0000,
                large: true,
            },
            vcpos_abi::vspace::VRange {
                vaddr: 0xff_ffff_f000,
                size: 0x1000,
                large: false,
            },
        ];
        assert_eq!(used, vcpos_abi::vspace::page_tables_needed(&ranges));
    }

    #[test]
    fn rejects_wx_overlap_misalignment_and_exhaustion() {
        let mut mem = FakePlatform::new();
        let mut pool = TablePool::new(POOL, 4 * PAGE_SIZE);
        let root = pool.alloc(&mut mem).unwrap();
        let rwx = attr::READ | attr::WRITE | attr::EXECUTE;
        assert_eq!(
            map(
                Stage::One,
                root,
                0x20_0000,
                0x4200_0000,
                0x1000,
                rwx,
                &mut pool,
                &mut mem
            ),
            Err(MapError::WriteAndExecute)
        );
        assert_eq!(
            map(
                Stage::One,
                root,
                0x20_0800,
                0x4200_0000,
                0x1000,
                attr::READ,
                &mut pool,
                &mut mem
            ),
            Err(MapError::BadRange)
        );
        assert_eq!(
            map(
                Stage::One,
                root,
                USER_VSPACE_TOP,
                0x4200_0000,
                0x1000,
                attr::READ,
                &mut pool,
                &mut mem
            ),
            Err(MapError::BadRange)
        );
        map(
            Stage::One,
            root,
            0x20_0000,
            0x4200_0000,
            0x1000,
            attr::READ,
            &mut pool,
            &mut mem,
        )
        .unwrap();
        assert_eq!(
            map(
                Stage::One,
                root,
                0x20_0000,
                0x4300_0000,
                0x1000,
                attr::READ,
                &mut pool,
                &mut mem
            ),
            Err(MapError::Overlap)
        );
        // Pool has no page left for a second L1 table.
        assert_eq!(
            map(
                Stage::One,
                root,
                0xff_ffff_f000,
                0x4300_0000,
                0x1000,
                attr::READ,
                &mut pool,
                &mut mem
            ),
            Err(MapError::OutOfTables)
        );
    }

    #[test]
    fn stage2_maps_guest_ram_rwx_and_devices_xn() {
        let mut mem = FakePlatform::new();
        let mut pool = TablePool::new(POOL, 8 * PAGE_SIZE);
        let root = pool.alloc(&mut mem).unwrap();
        let ram = attr::READ | attr::WRITE | attr::EXECUTE | attr::CACHED | attr::LARGE;
        map(
            Stage::Two,
            root,
            0x4000_0000,
            0x5000_0000,
            0x40_0000,
            ram,
            &mut pool,
            &mut mem,
        )
        .unwrap();
        map(
            Stage::Two,
            root,
            0x0801_0000,
            0x0804_0000,
            0x1000,
            attr::READ | attr::WRITE,
            &mut pool,
            &mut mem,
        )
        .unwrap();
        let (pa, d) = translate(Stage::Two, root, 0x4012_3456, &mem).unwrap();
        assert_eq!(pa, 0x5012_3456);
        assert_eq!(d & (S2AP_READ | S2AP_WRITE | S2_XN), S2AP_READ | S2AP_WRITE);
        let (pa, d) = translate(Stage::Two, root, 0x0801_0010, &mem).unwrap();
        assert_eq!(pa, 0x0804_0010);
        assert_ne!(d & S2_XN, 0);
        assert_eq!(translate(Stage::Two, root, 0x0900_0000, &mem), None);
        // Device memory never executes, even when the map asks for it.
        assert_ne!(stage2_leaf_bits(attr::READ | attr::EXECUTE).unwrap() & S2_XN, 0);
        assert_eq!(
            map(Stage::Two, root, 1 << 39, 0, 0x1000, attr::READ, &mut pool, &mut mem),
            Err(MapError::BadRange)
        );
        assert_eq!(
            map(
                Stage::Two,
                root,
                0x0,
                0x0,
                0x1000,
                attr::READ | attr::WRITE | attr::EXECUTE,
                &mut pool,
                &mut mem
            ),
            Err(MapError::WriteAndExecute)
        );
    }

    #[test]
    fn device_memory_is_never_executable() {
        let d = leaf_bits(attr::READ | attr::WRITE).unwrap();
        assert!(!leaf_executable(d));
        assert_eq!((d >> 2) & 7, MAIR_DEVICE);
    }
}
