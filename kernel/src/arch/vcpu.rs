//! Running vCPUs: switching the CPU between the host regime (PDs) and a guest at
//! EL1, the guest's EL1 and FP/SIMD state, and the vGIC list registers.
//!
//! PDs and the kernel are soft-float and never touch EL1 system registers, so a
//! guest's EL1 and FP/SIMD state stays live in the CPU while PDs run. It is saved
//! and restored only when a *different* vCPU is to run (`loaded`), or reset when
//! the VMM restarts a vCPU.

use core::arch::{asm, global_asm};

use vcpos_kernel_core::cspace::PdIndex;
use vcpos_kernel_core::kernel::MAX_THREADS;
use vcpos_kernel_core::vspace::VTCR_VALUE;
use vcpos_kernel_core::Kernel;

use super::gic;

/// HCR_EL2 while a PD (or the kernel) runs: VHE host, EL0 traps to EL2.
pub const HCR_HOST: u64 = (1 << 34) | (1 << 31) | (1 << 27);
/// HCR_EL2 while a guest runs: stage 2 on, physical interrupts to EL2, WFI and SMC
/// trapped, EL1 AArch64, pointer-authentication keys not trapped.
pub const HCR_GUEST: u64 = (1 << 0)
    | (1 << 1)
    | (1 << 3)
    | (1 << 4)
    | (1 << 5)
    | (1 << 13)
    | (1 << 19)
    | (1 << 31)
    | (1 << 34)
    | (1 << 40)
    | (1 << 41);
/// CPTR_EL2 for PDs: FP/SIMD trapped (PDs are soft-float).
const CPTR_HOST: u64 = 0;
/// CPTR_EL2 for guests: FP/SIMD, SVE and SME allowed (ZEN, FPEN, SMEN). Only the
/// FP/SIMD registers are switched between vCPUs; SVE/SME state is left live, which is
/// sound while one VM runs (see ARCHITECTURE.md).
const CPTR_GUEST: u64 = (3 << 16) | (3 << 20) | (3 << 24);

/// The virtual timer's PPI and the vGIC maintenance PPI.
pub const VTIMER_PPI: u32 = 27;
/// vGIC maintenance interrupt.
pub const MAINTENANCE_PPI: u32 = 25;

/// Words of saved EL1 + FP/SIMD state (layout shared with the assembly below).
const STATE_WORDS: usize = 32 + 64;

/// One vCPU's saved EL1 and FP/SIMD registers.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
pub struct SavedState([u64; STATE_WORDS]);

/// vCPU bookkeeping of the boot core.
pub struct VcpuArch {
    /// The vCPU whose state is in the CPU.
    loaded: Option<PdIndex>,
    /// Saved state per thread index.
    saved: [SavedState; MAX_THREADS],
    /// Virtual interrupt id held by each list register (0 = free).
    lr_virq: [u32; 16],
    /// Number of list registers.
    num_lrs: usize,
    /// Whether the host regime is in force (false while a guest's is).
    host: bool,
    /// The loaded vCPU's TPIDR_EL0, TPIDRRO_EL0 and MDSCR_EL1 while PDs run (PDs see
    /// zeros: with TGE set, MDSCR_EL1 would arm the guest's single-step and debug
    /// settings for the PDs themselves).
    thread_ids: [u64; 3],
}

impl VcpuArch {
    /// Nothing loaded.
    pub const fn new() -> VcpuArch {
        VcpuArch {
            loaded: None,
            saved: [SavedState([0; STATE_WORDS]); MAX_THREADS],
            lr_virq: [0; 16],
            num_lrs: 0,
            host: true,
            thread_ids: [0; 3],
        }
    }

    /// Boot-time setup: stage-2 control, list-register count, virtual CPU interface
    /// on, the virtual-timer and maintenance PPIs enabled.
    pub fn init(&mut self) {
        let vtr: u64;
        // SAFETY: VTCR_EL2 only takes effect for guests (HCR_EL2.VM), none runs yet;
        // ICH_VTR_EL2 is read-only; enabling the virtual CPU interface (ICH_HCR_EL2.En)
        // only affects EL1, which nothing uses yet.
        unsafe {
            asm!(
                "msr vtcr_el2, {vtcr}",
                "mrs {vtr}, S3_4_C12_C11_1", // ICH_VTR_EL2
                "msr S3_4_C12_C11_0, {en}",  // ICH_HCR_EL2 = En
                "isb",
                vtcr = in(reg) VTCR_VALUE,
                vtr = out(reg) vtr,
                en = in(reg) 1u64,
            );
        }
        self.num_lrs = ((vtr & 0x1f) as usize + 1).min(16);
        gic::enable_ppi(VTIMER_PPI);
        gic::enable_ppi(MAINTENANCE_PPI);
    }

    /// Puts the CPU in the host regime for a PD's turn (cheap if already so). The
    /// guest's EL0 thread-ID registers (readable by PDs) and MDSCR_EL1 (which would
    /// apply the guest's debug settings to PDs) are put aside and zeroed.
    pub fn enter_host(&mut self) {
        if !self.host {
            let (tpidr, tpidrro, mdscr): (u64, u64, u64);
            // SAFETY: restores the host HCR/CPTR values the kernel booted with and
            // swaps the EL0 thread-ID registers, which only EL0 code reads.
            unsafe {
                asm!(
                    "msr hcr_el2, {h}",
                    "msr cptr_el2, {c}",
                    "mrs {t}, tpidr_el0",
                    "mrs {r}, tpidrro_el0",
                    "mrs {d}, mdscr_el1",
                    "msr tpidr_el0, xzr",
                    "msr tpidrro_el0, xzr",
                    "msr mdscr_el1, xzr",
                    "isb",
                    h = in(reg) HCR_HOST,
                    c = in(reg) CPTR_HOST,
                    t = out(reg) tpidr,
                    r = out(reg) tpidrro,
                    d = out(reg) mdscr,
                )
            };
            self.thread_ids = [tpidr, tpidrro, mdscr];
            self.host = true;
        }
    }

    /// Prepares vCPU `v` to run: its EL1 state loaded (reset if it was restarted),
    /// the guest regime with its stage-2 tables, pending virtual interrupts in free
    /// list registers.
    pub fn enter_guest(&mut self, kernel: &mut Kernel, v: PdIndex) {
        let reset = kernel.take_vcpu_reset(v);
        if self.host && self.loaded.is_some() {
            // SAFETY: puts back the loaded vCPU's EL0 thread-ID and debug registers (set aside
            // by `enter_host`), so the CPU holds exactly that vCPU's state again.
            unsafe {
                asm!(
                    "msr tpidr_el0, {}",
                    "msr tpidrro_el0, {}",
                    "msr mdscr_el1, {}",
                    in(reg) self.thread_ids[0],
                    in(reg) self.thread_ids[1],
                    in(reg) self.thread_ids[2],
                )
            };
        }
        // SAFETY: allow FP/SIMD at EL2 too, so the state switch below can move the
        // guest's q registers; PDs never run until `enter_host` traps FP again.
        unsafe { asm!("msr cptr_el2, {}", "isb", in(reg) CPTR_GUEST) };
        if self.loaded != Some(v) || reset {
            if let Some(old) = self.loaded.filter(|&o| o != v) {
                self.save_lrs_into_pending(kernel, old);
                // SAFETY: `saved[old]` is a valid, aligned buffer of STATE_WORDS words.
                unsafe { vcpos_vcpu_save(self.saved[old as usize].0.as_mut_ptr()) };
            }
            if reset {
                self.saved[v as usize] = SavedState([0; STATE_WORDS]);
                self.saved[v as usize].0[0] = SCTLR_EL1_RESET;
                self.clear_lrs();
                gic::enable_ppi(VTIMER_PPI);
            }
            // SAFETY: `saved[v]` holds either a state saved from this vCPU or the
            // reset state; restoring EL1 registers affects only the guest.
            unsafe { vcpos_vcpu_restore(self.saved[v as usize].0.as_ptr()) };
            self.loaded = Some(v);
        }
        let tcb = kernel.tcb(v);
        let vttbr = tcb.vspace_root | ((tcb.asid as u64) << 48);
        // The guest's MPIDR: affinity 0.0.0.<vCPU id>, bit 31 RES1 (what its device
        // tree's cpu@<id> and the redistributor's GICR_TYPER say).
        let vmpidr = (1u64 << 31) | u64::from(tcb.child_id);
        // SAFETY: the guest regime: stage-2 tables the kernel built for this vCPU
        // from the VM's maps, tagged with its own VMID; FP access for the guest.
        unsafe {
            asm!(
                "msr vttbr_el2, {vttbr}",
                "msr vmpidr_el2, {vmpidr}",
                "msr hcr_el2, {hcr}",
                "msr cptr_el2, {cptr}",
                "isb",
                vttbr = in(reg) vttbr,
                vmpidr = in(reg) vmpidr,
                hcr = in(reg) HCR_GUEST,
                cptr = in(reg) CPTR_GUEST,
            );
        }
        self.host = false;
        self.fill_lrs(kernel, v);
    }

    /// True if a list register still holds a pending or active interrupt.
    pub fn virq_in_flight(&self) -> bool {
        (0..self.num_lrs).any(|i| read_lr(i) >> 62 != 0)
    }

    /// The vCPU whose virtual timer the CPU holds.
    pub fn loaded(&self) -> Option<PdIndex> {
        self.loaded
    }

    /// vGIC maintenance: free the list registers the guest has finished with
    /// (unmasking the virtual timer when its interrupt was handled), then refill.
    pub fn maintenance(&mut self, kernel: &mut Kernel) {
        for i in 0..self.num_lrs {
            if self.lr_virq[i] != 0 && read_lr(i) >> 62 == 0 {
                if self.lr_virq[i] == VTIMER_PPI {
                    gic::enable_ppi(VTIMER_PPI);
                }
                self.lr_virq[i] = 0;
                write_lr(i, 0);
            }
        }
        if let Some(v) = self.loaded {
            self.fill_lrs(kernel, v);
        }
    }

    fn fill_lrs(&mut self, kernel: &mut Kernel, v: PdIndex) {
        for i in 0..self.num_lrs {
            if read_lr(i) >> 62 != 0 {
                continue;
            }
            if self.lr_virq[i] == VTIMER_PPI {
                gic::enable_ppi(VTIMER_PPI);
            }
            self.lr_virq[i] = 0;
            let Some(virq) = kernel.take_virq(v) else { break };
            // Pending, group 1, priority 0xa0; EOI maintenance so the kernel learns
            // when the guest is done with it.
            write_lr(i, (1 << 62) | (1 << 60) | (0xa0 << 48) | (1 << 41) | virq as u64);
            self.lr_virq[i] = virq;
        }
        // Underflow maintenance while more interrupts wait, so they get a register.
        let uie = if kernel.tcb(v).virqs.is_empty() { 0 } else { 1 << 1 };
        // SAFETY: ICH_HCR_EL2 = En (| UIE): only changes virtual-interrupt delivery.
        unsafe { asm!("msr S3_4_C12_C11_0, {}", in(reg) 1u64 | uie) };
    }

    fn save_lrs_into_pending(&mut self, kernel: &mut Kernel, v: PdIndex) {
        for i in 0..self.num_lrs {
            let lr = read_lr(i);
            if lr >> 62 & 1 != 0 {
                kernel.inject_virq(v, lr as u32);
            }
            write_lr(i, 0);
            self.lr_virq[i] = 0;
        }
    }

    fn clear_lrs(&mut self) {
        for i in 0..self.num_lrs {
            write_lr(i, 0);
            self.lr_virq[i] = 0;
        }
    }
}

/// SCTLR_EL1 at reset: MMU and caches off, RES1 bits set.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

macro_rules! lr_access {
    ($($n:literal => $name:literal),*) => {
        fn read_lr(i: usize) -> u64 {
            let v: u64;
            match i {
                // SAFETY: reading a list register has no side effects.
                $($n => unsafe { asm!(concat!("mrs {}, ", $name), out(reg) v) },)*
                _ => v = 0,
            }
            v
        }

        fn write_lr(i: usize, v: u64) {
            match i {
                // SAFETY: list registers only hold virtual interrupts for EL1.
                $($n => unsafe { asm!(concat!("msr ", $name, ", {}"), in(reg) v) },)*
                _ => {}
            }
        }
    };
}

lr_access!(
    0 => "S3_4_C12_C12_0", 1 => "S3_4_C12_C12_1", 2 => "S3_4_C12_C12_2", 3 => "S3_4_C12_C12_3",
    4 => "S3_4_C12_C12_4", 5 => "S3_4_C12_C12_5", 6 => "S3_4_C12_C12_6", 7 => "S3_4_C12_C12_7",
    8 => "S3_4_C12_C13_0", 9 => "S3_4_C12_C13_1", 10 => "S3_4_C12_C13_2", 11 => "S3_4_C12_C13_3",
    12 => "S3_4_C12_C13_4", 13 => "S3_4_C12_C13_5", 14 => "S3_4_C12_C13_6", 15 => "S3_4_C12_C13_7"
);

/// Reads HPFAR_EL2 (the faulting guest-physical page of a stage-2 abort).
pub fn hpfar() -> u64 {
    let v: u64;
    // SAFETY: reading a fault-syndrome register has no side effects.
    unsafe { asm!("mrs {}, hpfar_el2", out(reg) v) };
    v
}

extern "C" {
    fn vcpos_vcpu_save(area: *mut u64);
    fn vcpos_vcpu_restore(area: *const u64);
}

// EL1 system registers (through their EL12/EL02 aliases under VHE) and FP/SIMD
// state. Word i of the save area holds register i of this list; FP/SIMD q0..q31
// start at word 32.
global_asm!(
    r#"
.arch armv8.1-a+fp+simd
.macro EL1_REGS op
    \op sctlr_el12, 0
    \op cpacr_el12, 1
    \op ttbr0_el12, 2
    \op ttbr1_el12, 3
    \op tcr_el12, 4
    \op esr_el12, 5
    \op afsr0_el12, 6
    \op afsr1_el12, 7
    \op far_el12, 8
    \op mair_el12, 9
    \op vbar_el12, 10
    \op contextidr_el12, 11
    \op amair_el12, 12
    \op cntkctl_el12, 13
    \op elr_el12, 14
    \op spsr_el12, 15
    \op cntv_cval_el02, 16
    \op cntv_ctl_el02, 17
    \op sp_el1, 18
    \op tpidr_el1, 19
    \op tpidr_el0, 20
    \op tpidrro_el0, 21
    \op par_el1, 22
    \op csselr_el1, 23
    \op mdscr_el1, 24
    \op S3_4_C12_C11_7, 25
    \op S3_4_C12_C8_0, 26
    \op S3_4_C12_C9_0, 27
    \op fpcr, 28
    \op fpsr, 29
.endm
.macro SAVE_ONE reg, idx
    mrs     x2, \reg
    str     x2, [x0, #(\idx * 8)]
.endm
.macro LOAD_ONE reg, idx
    ldr     x2, [x0, #(\idx * 8)]
    msr     \reg, x2
.endm

.section .text.vcpu, "ax"
.global vcpos_vcpu_save
vcpos_vcpu_save:
    EL1_REGS SAVE_ONE
    add     x1, x0, #256
    stp     q0, q1, [x1, #0]
    stp     q2, q3, [x1, #32]
    stp     q4, q5, [x1, #64]
    stp     q6, q7, [x1, #96]
    stp     q8, q9, [x1, #128]
    stp     q10, q11, [x1, #160]
    stp     q12, q13, [x1, #192]
    stp     q14, q15, [x1, #224]
    stp     q16, q17, [x1, #256]
    stp     q18, q19, [x1, #288]
    stp     q20, q21, [x1, #320]
    stp     q22, q23, [x1, #352]
    stp     q24, q25, [x1, #384]
    stp     q26, q27, [x1, #416]
    stp     q28, q29, [x1, #448]
    stp     q30, q31, [x1, #480]
    ret

.global vcpos_vcpu_restore
vcpos_vcpu_restore:
    EL1_REGS LOAD_ONE
    add     x1, x0, #256
    ldp     q0, q1, [x1, #0]
    ldp     q2, q3, [x1, #32]
    ldp     q4, q5, [x1, #64]
    ldp     q6, q7, [x1, #96]
    ldp     q8, q9, [x1, #128]
    ldp     q10, q11, [x1, #160]
    ldp     q12, q13, [x1, #192]
    ldp     q14, q15, [x1, #224]
    ldp     q16, q17, [x1, #256]
    ldp     q18, q19, [x1, #288]
    ldp     q20, q21, [x1, #320]
    ldp     q22, q23, [x1, #352]
    ldp     q24, q25, [x1, #384]
    ldp     q26, q27, [x1, #416]
    ldp     q28, q29, [x1, #448]
    ldp     q30, q31, [x1, #480]
    isb
    ret
"#
);
