//! The kernel's final upper-half map, with W^X: its text read-only and executable,
//! its read-only data read-only, everything else (data, stack, the rest of RAM and
//! the devices) writable or device memory and never executable. The page below the
//! kernel stack is left unmapped, so a stack overflow faults instead of overwriting
//! `.bss`; [`install`] checks that with the MMU itself (`AT S1E2R`).
//!
//! The boot tables ([`super::boot`]) map all of the first 4 GiB with 1 GiB blocks,
//! all writable and executable. Once running in the upper half, [`install`] builds
//! finer tables in `.bss` and switches `TTBR1_EL2` to them.

use core::arch::asm;

use aarch64_cpu::asm::barrier::{dsb, isb, ISH, ISHST, SY};
use aarch64_cpu::registers::{Readable, Writeable, PAR_EL1, TTBR0_EL2};
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
    static __kernel_stack_guard: u8;
    static __kernel_stack_bottom: u8;
}

/// Physical boundaries of the kernel image's parts (from the linker script).
#[derive(Clone, Copy)]
struct Layout {
    start: u64,
    text_end: u64,
    rodata_end: u64,
    /// The guard page below the kernel stack: `guard..guard + PAGE`.
    guard: u64,
}

/// How one 4 KiB page of the kernel image's 2 MiB blocks is mapped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PageKind {
    /// Read-only, executable.
    Text,
    /// Read-only, never executable.
    Rodata,
    /// Read-write, never executable (data, `.bss`, stack, other RAM).
    Data,
    /// Not mapped at all (the stack guard).
    Unmapped,
}

/// The map description: what page `pa` of the kernel's level-3 tables is.
const fn page_kind(l: &Layout, pa: u64) -> PageKind {
    if pa >= l.start && pa < l.text_end {
        PageKind::Text
    } else if pa >= l.text_end && pa < l.rodata_end {
        PageKind::Rodata
    } else if pa >= l.guard && pa < l.guard + PAGE {
        PageKind::Unmapped
    } else {
        PageKind::Data
    }
}

/// Build-time check of the map description on a sample layout: the guard page is
/// unmapped, the pages around it (the `.bss` tail and the stack bottom) are data.
const _: () = {
    let l = Layout {
        start: 0x4020_0000,
        text_end: 0x4021_0000,
        rodata_end: 0x4021_4000,
        guard: 0x4023_0000,
    };
    assert!(matches!(page_kind(&l, l.guard), PageKind::Unmapped));
    assert!(matches!(page_kind(&l, l.guard - PAGE), PageKind::Data));
    assert!(matches!(page_kind(&l, l.guard + PAGE), PageKind::Data));
    assert!(matches!(page_kind(&l, l.start), PageKind::Text));
    assert!(matches!(page_kind(&l, l.text_end), PageKind::Rodata));
};

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
    let guard = phys(core::ptr::addr_of!(__kernel_stack_guard));
    let layout = Layout {
        start,
        text_end,
        rodata_end,
        guard,
    };
    let first_block = start & !(MIB2 - 1);
    assert!(
        rodata_end <= first_block + 2 * MIB2,
        "kernel text and rodata must fit the two level-3 tables"
    );
    assert!(
        guard.is_multiple_of(PAGE)
            && guard + PAGE == phys(core::ptr::addr_of!(__kernel_stack_bottom))
            && guard + PAGE <= first_block + 2 * MIB2,
        "the stack guard must be the page below the stack, inside the level-3 tables"
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
            *e = match page_kind(&layout, pa) {
                PageKind::Text => pa | AF | SH_INNER | ATTR_NORMAL | AP_READ_ONLY | UXN | TABLE_OR_PAGE | VALID,
                PageKind::Rodata => pa | NORMAL_RW_XN | AP_READ_ONLY | TABLE_OR_PAGE | VALID,
                PageKind::Data => pa | NORMAL_RW_XN | TABLE_OR_PAGE | VALID,
                PageKind::Unmapped => 0,
            };
        }
    }
    let root = phys(l1.0.as_ptr());
    let empty = phys(core::ptr::addr_of!(EMPTY_L0));
    // The barriers make the table writes visible to the walker before TTBR1 changes
    // and drop stale TLB entries after. TTBR0 gets an all-invalid table (nothing runs
    // at EL0 yet).
    dsb(ISHST);
    // SAFETY: the new tables map every address the kernel uses (its image, all RAM and
    // the devices below RAM) to the same physical addresses as the boot tables, with
    // narrower permissions. TTBR1_EL2 (FEAT_VHE) is not in aarch64-cpu.
    unsafe { asm!("msr S3_4_C2_C0_1, {}", in(reg) root) };
    TTBR0_EL2.set(empty);
    isb(SY);
    // SAFETY: TLB invalidation only drops cached translations.
    unsafe { asm!("tlbi alle2") };
    dsb(ISH);
    isb(SY);
    check_guard_unmapped(guard + KERNEL_VIRT_OFFSET);
}

/// True if virtual address `va` is in the kernel stack's guard page (a fault there is
/// a kernel stack overflow).
pub fn in_stack_guard(va: u64) -> bool {
    let guard = core::ptr::addr_of!(__kernel_stack_guard) as u64;
    (guard..guard + PAGE).contains(&va)
}

/// Asks the MMU whether the stack guard at `va` translates; stops the kernel if it
/// does (the map description and the tables disagree).
fn check_guard_unmapped(va: u64) {
    // SAFETY: an address translation for a read at EL2 only writes PAR_EL1, which
    // nothing else uses; no memory is accessed.
    unsafe { asm!("at s1e2r, {}", "isb", in(reg) va) };
    if PAR_EL1.read(PAR_EL1::F) == 0 {
        panic!("the kernel stack guard page {va:#x} is mapped");
    }
}
