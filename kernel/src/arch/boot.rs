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

use aarch64_cpu::registers::{CNTKCTL_EL1, SCTLR_EL1, TCR_EL1};

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

// With E2H set, TCR_EL2, SCTLR_EL2 and the low bits of CNTHCTL_EL2 have the layouts of
// TCR_EL1, SCTLR_EL1 and CNTKCTL_EL1, so their values are built from aarch64-cpu's
// field definitions of those registers (written by the assembly above, before any
// Rust code can run).

/// TCR_EL2 (E2H layout): T0SZ=24 (40-bit PD address spaces), T1SZ=25 (39-bit
/// kernel half), 4 KiB granules, write-back inner-shareable walks, 40-bit PA,
/// 8-bit ASIDs taken from TTBR0.
const TCR: u64 = TCR_EL1::T0SZ.val(24).value
    | TCR_EL1::TG0::KiB_4.value
    | TCR_EL1::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH0::Inner.value
    | TCR_EL1::T1SZ.val(25).value
    | TCR_EL1::TG1::KiB_4.value
    | TCR_EL1::IRGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::ORGN1::WriteBack_ReadAlloc_WriteAlloc_Cacheable.value
    | TCR_EL1::SH1::Inner.value
    | TCR_EL1::IPS::Bits_40.value
    | TCR_EL1::AS::ASID8Bits.value
    | TCR_EL1::A1::TTBR0.value;

/// SCTLR bits aarch64-cpu's `SCTLR_EL1` does not name: EOS (11), TSCXT (20), EIS (22),
/// SPAN (23, PSTATE.PAN left alone on exception entry), nTLSMD (28), LSMAOE (29).
const SCTLR_UNNAMED: u64 = (1 << 11) | (1 << 20) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

/// SCTLR_EL2 (E2H layout): MMU, caches, SP alignment checks; EL0 may use WFI/WFE,
/// read CTR, zero cache lines and do cache maintenance (for DMA buffers); PAN is
/// left alone on exception entry; exception entry and return synchronise.
const SCTLR: u64 = SCTLR_EL1::M::Enable.value
    | SCTLR_EL1::C::Cacheable.value
    | SCTLR_EL1::SA::Enable.value
    | SCTLR_EL1::SA0::Enable.value
    | SCTLR_EL1::I::Cacheable.value
    | SCTLR_EL1::DZE::DontTrap.value
    | SCTLR_EL1::UCT::DontTrap.value
    | SCTLR_EL1::NTWI::DontTrap.value
    | SCTLR_EL1::NTWE::DontTrap.value
    | SCTLR_EL1::UCI::DontTrap.value
    | SCTLR_UNNAMED;

/// CNTHCTL_EL2 (E2H layout; aarch64-cpu's `CNTHCTL_EL2` has only the other one): EL0
/// may read the physical and virtual counters (PDs time things without a syscall) but
/// not use the EL0 timers; EL1 (guests) may use the physical counter and timer
/// (EL1PCTEN, bit 10, and EL1PTEN, bit 11).
const CNTHCTL: u64 =
    CNTKCTL_EL1::EL0PCTEN::TrappedNone.value | CNTKCTL_EL1::EL0VCTEN::TrappedNone.value | (1 << 10) | (1 << 11);

// The raw values, as a cross-check of the field names above.
const _: () = assert!(TCR == 0x2_b519_3518, "TCR_EL2");
const _: () = assert!(SCTLR == 0x34d5_d81d, "SCTLR_EL2");
const _: () = assert!(CNTHCTL == 0xc03, "CNTHCTL_EL2");

const _: () = assert!(
    vcpos_abi::KERNEL_VIRT_OFFSET == 0xffff_ff80_0000_0000,
    "build.rs and kernel.ld.in assume this offset"
);
