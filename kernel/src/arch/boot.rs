//! First instructions: from QEMU's jump at EL2 with the MMU off to `kernel_main`
//! running in the upper half with translation on.
//!
//! Steps (all in assembly, because nothing is mapped yet):
//! 1. Park every core but core 0 (SMP comes later) and check we are at EL2.
//! 2. Enable VHE: `HCR_EL2 = E2H | TGE | RW`, so EL2 has two address ranges like
//!    EL1 and EL0 runs under the kernel's translation regime.
//! 3. Zero `.bss` (physical addresses, via `adrp`).
//! 4. Build the boot tables: `BOOT_L1` maps the first 4 GiB with 1 GiB blocks
//!    (device memory below RAM, normal memory for RAM); TTBR1 uses it directly for
//!    the kernel's linear map, TTBR0 through `BOOT_L0` for the identity map that
//!    covers the jump.
//! 5. Set MAIR/TCR/SCTLR, turn the MMU on, jump to the linked (upper-half)
//!    address, set the stack and vector base, call `kernel_main`.

use core::arch::global_asm;

/// The boot tables (one page each, zeroed with `.bss` before use).
#[repr(C, align(4096))]
pub struct Table(pub [u64; 512]);

/// Level-0 table for TTBR0 during boot (identity map).
#[no_mangle]
pub static mut BOOT_L0: Table = Table([0; 512]);
/// Level-1 table: 1 GiB blocks over the first 4 GiB of physical memory.
#[no_mangle]
pub static mut BOOT_L1: Table = Table([0; 512]);

global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mrs     x19, mpidr_el1
    and     x19, x19, #0xff
    cbnz    x19, .Lpark
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)
    b.ne    .Lpark

    mov     x1, #(1 << 27)              // TGE
    orr     x1, x1, #(1 << 31)          // RW: EL1 is AArch64
    orr     x1, x1, #(1 << 34)          // E2H: VHE
    msr     hcr_el2, x1
    isb

    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:
    adrp    x1, BOOT_L1
    adrp    x2, BOOT_L0
    orr     x3, x1, #3                  // table descriptor
    str     x3, [x2]
    ldr     x3, ={device_block}
    str     x3, [x1]
    ldr     x3, ={normal_block}
    mov     x4, #(1 << 30)
    add     x3, x3, x4
    str     x3, [x1, #8]
    add     x3, x3, x4
    str     x3, [x1, #16]
    add     x3, x3, x4
    str     x3, [x1, #24]

    ldr     x3, ={mair}
    msr     mair_el2, x3
    ldr     x3, ={tcr}
    msr     tcr_el2, x3
    msr     ttbr0_el2, x2
    msr     S3_4_C2_C0_1, x1            // TTBR1_EL2 (needs FEAT_VHE)
    msr     cptr_el2, xzr               // FP/SIMD traps (PDs and kernel are soft-float)
    ldr     x3, ={cnthctl}
    msr     cnthctl_el2, x3
    msr     cntvoff_el2, xzr
    isb
    tlbi    alle2
    dsb     ish
    isb
    ldr     x3, ={sctlr}
    msr     sctlr_el2, x3
    isb
    ldr     x3, =.Lhigh
    br      x3
.Lhigh:
    ldr     x3, =__kernel_stack_top
    mov     sp, x3
    ldr     x3, =vcpos_vectors
    msr     vbar_el2, x3
    isb
    bl      kernel_main
.Lpark:
    wfe
    b       .Lpark
"#,
    device_block = const 0x0060_0000_0000_0401u64, // block, AF, AttrIndx 0, PXN, UXN
    normal_block = const 0x705u64,                 // block, AF, inner shareable, AttrIndx 1
    mair = const vcpos_kernel_core::vspace::MAIR_VALUE,
    tcr = const TCR,
    sctlr = const SCTLR,
    cnthctl = const CNTHCTL,
);

/// TCR_EL2 (E2H layout): T0SZ=24 (40-bit PD address spaces), T1SZ=25 (39-bit
/// kernel half), 4 KiB granules, write-back inner-shareable walks, 40-bit PA,
/// 8-bit ASIDs taken from TTBR0.
const TCR: u64 =
    24 | (1 << 8) | (1 << 10) | (3 << 12) | (25 << 16) | (1 << 24) | (1 << 26) | (3 << 28) | (2 << 30) | (2 << 32);

/// SCTLR_EL2 (E2H layout): MMU, caches, SP alignment checks; EL0 may use WFI/WFE,
/// read CTR, zero cache lines and do cache maintenance (for DMA buffers); PAN is
/// left alone on exception entry; exception entry and return synchronise.
const SCTLR: u64 = (1 << 0)
    | (1 << 2)
    | (1 << 3)
    | (1 << 4)
    | (1 << 11)
    | (1 << 12)
    | (1 << 14)
    | (1 << 15)
    | (1 << 16)
    | (1 << 18)
    | (1 << 20)
    | (1 << 22)
    | (1 << 23)
    | (1 << 26)
    | (1 << 28)
    | (1 << 29);

/// CNTHCTL_EL2 (E2H layout): EL0 may read the physical and virtual counters (PDs
/// time things without a syscall); EL1 (guests, later) may use the physical timer.
const CNTHCTL: u64 = (1 << 0) | (1 << 1) | (1 << 10) | (1 << 11);

const _: () = assert!(
    vcpos_abi::KERNEL_VIRT_OFFSET == 0xffff_ff80_0000_0000,
    "build.rs and kernel.ld.in assume this offset"
);
