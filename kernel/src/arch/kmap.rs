//! The kernel's final upper-half map, with W^X: its text read-only and executable,
//! its read-only data read-only, everything else (data, stack, the rest of RAM and
//! the devices) writable or device memory and never executable.
//!
//! The boot tables ([`super::boot`]) map all of the first 4 GiB with 1 GiB blocks,
//! all writable and executable. Once running in the upper half, [`install`] builds
//! finer tables in `.bss` and switches `TTBR1_EL2` to them.

use core::arch::asm;
use core::ptr::addr_of_mut;

use vcpos_abi::KERNEL_VIRT_OFFSET;

use super::boot::Table;

use vcpos_kernel_core::vspace::desc::{
    AF, AP_RO_KERNEL as AP_READ_ONLY, PXN, SH_INNER, TABLE as TABLE_OR_PAGE, UXN, VALID,
};
use vcpos_kernel_core::vspace::{MAIR_DEVICE, MAIR_NORMAL};

const ATTR_DEVICE: u64 = MAIR_DEVICE << 2;
const ATTR_NORMAL: u64 = MAIR_NORMAL << 2;
const NORMAL_RW_XN: u64 = AF | SH_INNER | ATTR_NORMAL | PXN | UXN;
const GIB: u64 = 1 << 30;
const MIB2: u64 = 1 << 21;
const PAGE: u64 = 1 << 12;

/// Level-1 table of the final map.
static mut KERNEL_L1: Table = Table([0; 512]);
/// Level-2 table for the GiB that holds the kernel image.
static mut KERNEL_L2: Table = Table([0; 512]);
/// An empty level-0 table: TTBR0 points here until the first PD runs, so the boot
/// identity map can no longer be walked (not even speculatively).
static mut EMPTY_L0: Table = Table([0; 512]);
/// Level-3 tables for the 2 MiB blocks that hold the kernel image (it is < 4 MiB).
static mut KERNEL_L3: [Table; 2] = [Table([0; 512]), Table([0; 512])];

extern "C" {
    static __kernel_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
}

fn phys<T>(p: *const T) -> u64 {
    p as u64 - KERNEL_VIRT_OFFSET
}

/// Builds the W^X map and switches to it. Called once, early in `kernel_main`.
pub fn install() {
    let start = phys(core::ptr::addr_of!(__kernel_start));
    let (text_end, rodata_end) = (
        phys(core::ptr::addr_of!(__text_end)),
        phys(core::ptr::addr_of!(__rodata_end)),
    );
    let first_block = start & !(MIB2 - 1);
    assert!(
        rodata_end <= first_block + 2 * MIB2,
        "kernel text and rodata must fit the two level-3 tables"
    );
    // SAFETY: these tables are used nowhere else; the kernel runs single-threaded with
    // interrupts masked, and the MMU does not use them until TTBR1 is switched below.
    let (l1, l2, l3) = unsafe {
        (
            &mut *addr_of_mut!(KERNEL_L1),
            &mut *addr_of_mut!(KERNEL_L2),
            &mut *addr_of_mut!(KERNEL_L3),
        )
    };
    let kernel_gib = start / GIB;
    for (i, e) in l1.0.iter_mut().enumerate().take(4) {
        let pa = i as u64 * GIB;
        *e = if i == 0 {
            pa | AF | ATTR_DEVICE | PXN | UXN | VALID
        } else if i as u64 == kernel_gib {
            phys(l2.0.as_ptr()) | TABLE_OR_PAGE | VALID
        } else {
            pa | NORMAL_RW_XN | VALID
        };
    }
    for (i, e) in l2.0.iter_mut().enumerate() {
        let pa = kernel_gib * GIB + i as u64 * MIB2;
        let l3_index = (pa.wrapping_sub(first_block) / MIB2) as usize;
        *e = match l3.get(l3_index) {
            Some(t) if pa >= first_block => phys(t.0.as_ptr()) | TABLE_OR_PAGE | VALID,
            _ => pa | NORMAL_RW_XN | VALID,
        };
    }
    for (t, table) in l3.iter_mut().enumerate() {
        for (i, e) in table.0.iter_mut().enumerate() {
            let pa = first_block + t as u64 * MIB2 + i as u64 * PAGE;
            let attrs = if (start..text_end).contains(&pa) {
                AF | SH_INNER | ATTR_NORMAL | AP_READ_ONLY | UXN
            } else if (text_end..rodata_end).contains(&pa) {
                NORMAL_RW_XN | AP_READ_ONLY
            } else {
                NORMAL_RW_XN
            };
            *e = pa | attrs | TABLE_OR_PAGE | VALID;
        }
    }
    let root = phys(l1.0.as_ptr());
    let empty = phys(core::ptr::addr_of!(EMPTY_L0));
    // SAFETY: TTBR0 gets an all-invalid table (nothing runs at EL0 yet); the new tables
    // map every address the kernel uses (its image, all RAM and
    // the devices below RAM) to the same physical addresses as the boot tables, with
    // narrower permissions; the barriers make the table writes visible to the walker
    // before TTBR1 changes and drop stale TLB entries after.
    unsafe {
        asm!(
            "dsb ishst",
            "msr S3_4_C2_C0_1, {root}", // TTBR1_EL2
            "msr ttbr0_el2, {empty}",
            "isb",
            "tlbi alle2",
            "dsb ish",
            "isb",
            root = in(reg) root,
            empty = in(reg) empty,
        );
    }
}
