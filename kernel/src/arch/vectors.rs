//! Exception vectors: save a PD's registers into its TCB, call the Rust handler,
//! restore the (possibly different) current PD's registers and `eret`.
//!
//! The saved context is the general registers, SP_EL0, ELR, SPSR and the EL0
//! thread-ID registers (TPIDR_EL0, TPIDRRO_EL0), so no thread sees another's.
//!
//! `TPIDR_EL2` always holds the address of the current thread's
//! [`vcpos_kernel_core::thread::UserContext`]. The kernel is not reentrant: it runs
//! with interrupts masked and resets nothing on its stack between entries, so the
//! stack is balanced when it returns here.

use core::arch::global_asm;

global_asm!(
    r#"
.macro SAVE_USER
    stp     x0, x1, [sp, #-16]!
    mrs     x0, tpidr_el2
    stp     x2, x3, [x0, #16]
    stp     x4, x5, [x0, #32]
    stp     x6, x7, [x0, #48]
    stp     x8, x9, [x0, #64]
    stp     x10, x11, [x0, #80]
    stp     x12, x13, [x0, #96]
    stp     x14, x15, [x0, #112]
    stp     x16, x17, [x0, #128]
    stp     x18, x19, [x0, #144]
    stp     x20, x21, [x0, #160]
    stp     x22, x23, [x0, #176]
    stp     x24, x25, [x0, #192]
    stp     x26, x27, [x0, #208]
    stp     x28, x29, [x0, #224]
    str     x30, [x0, #240]
    ldp     x2, x3, [sp], #16
    stp     x2, x3, [x0, #0]
    mrs     x2, sp_el0
    mrs     x3, elr_el2
    mrs     x4, spsr_el2
    str     x2, [x0, #{sp_off}]
    stp     x3, x4, [x0, #{pc_off}]
    mrs     x5, tpidr_el0
    mrs     x6, tpidrro_el0
    stp     x5, x6, [x0, #{tpidr_off}]
.endm

.section .text.vectors, "ax"
.balign 2048
.global vcpos_vectors
vcpos_vectors:
    // Current EL with SP_EL0: never used.
    .balign 0x80
    mov x0, #0
    b .Lkernel_exception
    .balign 0x80
    mov x0, #1
    b .Lkernel_exception
    .balign 0x80
    mov x0, #2
    b .Lkernel_exception
    .balign 0x80
    mov x0, #3
    b .Lkernel_exception
    // Current EL with SP_EL2: an exception in the kernel itself.
    .balign 0x80
    mov x0, #4
    b .Lkernel_exception
    .balign 0x80
    mov x0, #5
    b .Lkernel_exception
    .balign 0x80
    mov x0, #6
    b .Lkernel_exception
    .balign 0x80
    b .Lkernel_serror
    // Lower EL, AArch64: PDs.
    .balign 0x80
    b .Llower_sync
    .balign 0x80
    b .Llower_irq
    .balign 0x80
    b .Llower_irq
    .balign 0x80
    b .Llower_serror
    // Lower EL, AArch32: never enabled.
    .balign 0x80
    mov x0, #12
    b .Lkernel_exception
    .balign 0x80
    mov x0, #13
    b .Lkernel_exception
    .balign 0x80
    mov x0, #14
    b .Lkernel_exception
    .balign 0x80
    mov x0, #15
    b .Lkernel_exception

.Llower_sync:
    SAVE_USER
    bl      vcpos_handle_lower_sync
    b       vcpos_return_to_user
.Llower_irq:
    SAVE_USER
    bl      vcpos_handle_lower_irq
    b       vcpos_return_to_user
.Llower_serror:
    SAVE_USER
    bl      vcpos_handle_lower_serror
    b       vcpos_return_to_user
// An SError the kernel unmasked on purpose (arch::serror::take_pending; SErrors are
// masked everywhere else in the kernel): record its syndrome, return with SErrors
// masked again.
.Lkernel_serror:
    stp     x0, x1, [sp, #-16]!
    mrs     x0, esr_el2
    orr     x0, x0, #(1 << 63)
    adrp    x1, VCPOS_TAKEN_SERROR
    str     x0, [x1, :lo12:VCPOS_TAKEN_SERROR]
    mrs     x0, spsr_el2
    orr     x0, x0, #(1 << 8)
    msr     spsr_el2, x0
    ldp     x0, x1, [sp], #16
    eret
.Lkernel_exception:
    // A stack of its own: the exception may be an overflow of the kernel stack into
    // its guard page.
    ldr     x1, =__kernel_exception_stack_top
    mov     sp, x1
    bl      vcpos_handle_kernel_exception
    b       .

.global vcpos_return_to_user
vcpos_return_to_user:
    mrs     x0, tpidr_el2
    ldr     x2, [x0, #{sp_off}]
    ldp     x3, x4, [x0, #{pc_off}]
    msr     sp_el0, x2
    msr     elr_el2, x3
    msr     spsr_el2, x4
    ldp     x5, x6, [x0, #{tpidr_off}]
    msr     tpidr_el0, x5
    msr     tpidrro_el0, x6
    ldp     x2, x3, [x0, #16]
    ldp     x4, x5, [x0, #32]
    ldp     x6, x7, [x0, #48]
    ldp     x8, x9, [x0, #64]
    ldp     x10, x11, [x0, #80]
    ldp     x12, x13, [x0, #96]
    ldp     x14, x15, [x0, #112]
    ldp     x16, x17, [x0, #128]
    ldp     x18, x19, [x0, #144]
    ldp     x20, x21, [x0, #160]
    ldp     x22, x23, [x0, #176]
    ldp     x24, x25, [x0, #192]
    ldp     x26, x27, [x0, #208]
    ldp     x28, x29, [x0, #224]
    ldr     x30, [x0, #240]
    ldp     x0, x1, [x0, #0]
    eret
"#,
    sp_off = const vcpos_kernel_core::thread::CONTEXT_SP_OFFSET,
    pc_off = const vcpos_kernel_core::thread::CONTEXT_PC_OFFSET,
    tpidr_off = const vcpos_kernel_core::thread::CONTEXT_TPIDR_OFFSET,
);

extern "C" {
    /// Restores the current thread's registers from `*TPIDR_EL2` and returns to it.
    pub fn vcpos_return_to_user() -> !;
}
