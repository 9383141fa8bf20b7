//! Running vCPUs: switching the CPU between the host regime (PDs) and a guest at
//! EL1, the guest's EL1 and FP/SIMD state, and the vGIC list registers.
//!
//! PDs and the kernel are soft-float and never touch EL1 system registers, so a
//! guest's EL1 and FP/SIMD state stays live in the CPU while PDs run. It is saved
//! and restored only when a *different* vCPU is to run (`loaded`), or reset when
//! the VMM restarts a vCPU.

use core::arch::{asm, global_asm};

use aarch64_cpu::asm::barrier::{isb, SY};
use aarch64_cpu::registers::{
    Readable, Writeable, CPTR_EL2, HCR_EL2, HPFAR_EL2, ICH_HCR_EL2, ICH_VTR_EL2, ID_AA64PFR0_EL1, VTCR_EL2, VTTBR_EL2,
};

use vcpos_kernel_core::cspace::ThreadIndex;
use vcpos_kernel_core::kernel::MAX_THREADS;
use vcpos_kernel_core::vgic::{self, ListRegisters, MAX_LRS};
use vcpos_kernel_core::vspace::VTCR_VALUE;
use vcpos_kernel_core::Kernel;

use super::gic;

/// HCR_EL2.TWI (trap WFI), which aarch64-cpu's `HCR_EL2` does not name.
const HCR_TWI: u64 = 1 << 13;
/// HCR_EL2 while a PD (or the kernel) runs: VHE host, EL0 traps to EL2. VM stays set:
/// with E2H and TGE set it has no effect on the host, and not flipping it on every
/// guest entry and exit spares QEMU a flush of its whole TLB each time.
pub const HCR_HOST: u64 = HCR_EL2::E2H::EnableOsAtEl2.value
    | HCR_EL2::RW::EL1IsAarch64.value
    | HCR_EL2::TGE::EnableTrapGeneralExceptionsToEl2.value
    | HCR_EL2::VM::Enable.value;
/// HCR_EL2 while a guest runs: stage 2 on, physical interrupts to EL2, WFI and SMC
/// trapped, EL1 AArch64, pointer-authentication keys not trapped.
pub const HCR_GUEST: u64 = HCR_EL2::VM::Enable.value
    | HCR_EL2::SWIO::SET.value
    | HCR_EL2::FMO::EnableVirtualFIQ.value
    | HCR_EL2::IMO::EnableVirtualIRQ.value
    | HCR_EL2::AMO::SET.value
    | HCR_TWI
    | HCR_EL2::TSC::EnableTrapEl1SmcToEl2.value
    | HCR_EL2::RW::EL1IsAarch64.value
    | HCR_EL2::E2H::EnableOsAtEl2.value
    | HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2.value
    | HCR_EL2::API::DisableTrapPointerAuthInstToEl2.value;
const _: () = assert!(HCR_HOST & HCR_EL2::VM::Enable.value == HCR_GUEST & HCR_EL2::VM::Enable.value);
/// CPTR_EL2 for PDs: FP/SIMD trapped (PDs are soft-float).
const CPTR_HOST: u64 = 0;
/// CPTR_EL2 for guests (E2H layout, which aarch64-cpu's `CPTR_EL2` does not name):
/// FP/SIMD, SVE and SME allowed (ZEN, FPEN, SMEN). Only the FP/SIMD registers are
/// switched between vCPUs; SVE/SME state is left live, which is sound while one VM
/// runs (see ARCHITECTURE.md).
const CPTR_GUEST: u64 = (3 << 16) | (3 << 20) | (3 << 24);

/// MDCR_EL2 trap bits (the HPMN field keeps its reset value): TPM and TPMCR, every
/// PMU access from EL1 and from a guest's EL0 traps to EL2 and reaches the VMM as a
/// trapped system register; E2PB = E2TB = 0b00, the statistical-profiling and trace
/// buffers (where implemented) belong to EL2 and EL1 cannot reach them. Debug
/// registers are not trapped (see ARCHITECTURE.md, *EL0-visible state*).
const MDCR_TRAPS: u64 = (1 << 5) | (1 << 6);
/// MDCR_EL2 fields this kernel sets: HPMN (4:0) is kept, everything else is ours.
const MDCR_KEEP: u64 = 0x1f;
/// MDSCR_EL1 while PDs run: TDCC, so EL0 cannot use the debug communications channel
/// (a register pair any PD could otherwise write and another read); no debug events.
const MDSCR_HOST: u64 = 1 << 12;
/// CPTR_EL2.TAM: activity-monitor (AMU) accesses from EL0 and EL1 trap to EL2.
const CPTR_TAM: u64 = CPTR_EL2::TAM::SET.value;

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
    loaded: Option<ThreadIndex>,
    /// Saved state per thread index.
    saved: [SavedState; MAX_THREADS],
    /// Number of list registers.
    num_lrs: usize,
    /// Whether the host regime is in force (false while a guest's is).
    host: bool,
    /// The loaded vCPU's MDSCR_EL1 while PDs run (PDs see zero: with TGE set,
    /// MDSCR_EL1 would arm the guest's single-step and debug settings for the PDs
    /// themselves).
    guest_mdscr: u64,
    /// [`CPTR_TAM`] if the CPU has activity monitors, else 0 (the bit is RES0).
    cptr_tam: u64,
}

impl VcpuArch {
    /// Nothing loaded.
    pub const fn new() -> VcpuArch {
        VcpuArch {
            loaded: None,
            saved: [SavedState([0; STATE_WORDS]); MAX_THREADS],
            num_lrs: 0,
            host: true,
            guest_mdscr: 0,
            cptr_tam: 0,
        }
    }

    /// Boot-time setup: stage-2 control, list-register count, virtual CPU interface
    /// on, the virtual-timer and maintenance PPIs enabled.
    pub fn init(&mut self) {
        // VTCR_EL2 only takes effect for guests (HCR_EL2.VM with TGE clear), none runs
        // yet; enabling the virtual CPU interface only affects EL1.
        VTCR_EL2.set(VTCR_VALUE);
        let vtr = ICH_VTR_EL2.get();
        ICH_HCR_EL2.write(ICH_HCR_EL2::En::SET);
        isb(SY);
        self.num_lrs = ((vtr & 0x1f) as usize + 1).min(MAX_LRS);
        self.isolate_el0_state();
        gic::enable_ppi(VTIMER_PPI);
        gic::enable_ppi(MAINTENANCE_PPI);
    }

    /// Closes the EL0-visible performance, debug and activity-monitor state: nothing a
    /// guest does can open the PMU, the debug channel or the AMU to PDs.
    fn isolate_el0_state(&mut self) {
        if ID_AA64PFR0_EL1.read(ID_AA64PFR0_EL1::AMU) != 0 {
            self.cptr_tam = CPTR_TAM;
            // SAFETY: AMUSERENR_EL0 = 0: EL0 has no access to the activity monitors.
            unsafe { asm!("msr S3_3_C13_C2_3, xzr") };
        }
        // SAFETY: MDCR_EL2 only adds traps of EL0/EL1 accesses to EL2 (which the kernel
        // reports as faults or passes to the VMM); PMUSERENR_EL0 = 0 closes the PMU to
        // PDs (the host's EL0 is governed by it alone, not by MDCR_EL2.TPM);
        // MDSCR_EL1 only affects debug at EL0/EL1.
        unsafe {
            asm!(
                "mrs {m}, mdcr_el2",
                "and {m}, {m}, {keep}",
                "orr {m}, {m}, {traps}",
                "msr mdcr_el2, {m}",
                "msr pmuserenr_el0, xzr",
                "msr mdscr_el1, {mdscr}",
                m = out(reg) _,
                keep = in(reg) MDCR_KEEP,
                traps = in(reg) MDCR_TRAPS,
                mdscr = in(reg) MDSCR_HOST,
            );
        }
        CPTR_EL2.set(CPTR_HOST | self.cptr_tam);
        isb(SY);
    }

    /// Puts the CPU in the host regime for a PD's turn (cheap if already so). The
    /// guest's MDSCR_EL1 (which would apply the guest's debug settings to PDs) is put
    /// aside and replaced by the PDs' value ([`MDSCR_HOST`]).
    pub fn enter_host(&mut self) {
        if !self.host {
            HCR_EL2.set(HCR_HOST);
            CPTR_EL2.set(CPTR_HOST | self.cptr_tam);
            let mdscr: u64;
            // SAFETY: swaps MDSCR_EL1, which only affects debug events at EL0 and EL1.
            unsafe { asm!("mrs {}, mdscr_el1", "msr mdscr_el1, {}", out(reg) mdscr, in(reg) MDSCR_HOST) };
            isb(SY);
            self.guest_mdscr = mdscr;
            self.host = true;
        }
    }

    /// Prepares vCPU `v` to run: its EL1 state loaded (reset if it was restarted),
    /// the guest regime with its stage-2 tables, pending virtual interrupts in free
    /// list registers.
    pub fn enter_guest(&mut self, kernel: &mut Kernel, v: ThreadIndex) {
        let reset = kernel.take_vcpu_reset(v);
        if self.host {
            if self.loaded.is_some() {
                // SAFETY: puts back the loaded vCPU's MDSCR_EL1 (set aside by
                // `enter_host`), so the CPU holds exactly that vCPU's debug state again.
                unsafe { asm!("msr mdscr_el1, {}", in(reg) self.guest_mdscr) };
            }
            // FP/SIMD allowed at EL2 too, so the state switch below can move the guest's
            // q registers; PDs never run until `enter_host` traps FP again.
            CPTR_EL2.set(CPTR_GUEST | self.cptr_tam);
            isb(SY);
        }
        if self.loaded != Some(v) || reset {
            if let Some(old) = self.loaded.filter(|&o| o != v) {
                kernel.vgic_save(old, &mut HwLrs(self.num_lrs), virq_done);
                // The PPI now reports the incoming vCPU's timer.
                gic::enable_ppi(VTIMER_PPI);
                // SAFETY: `saved[old]` is a valid, aligned buffer of STATE_WORDS words.
                unsafe { vcpos_vcpu_save(self.saved[old as usize].0.as_mut_ptr()) };
            }
            if reset {
                // `v` is the current thread (the one about to run): its EL0
                // thread-ID registers start at zero like the rest of its EL1 state.
                if kernel.current() == Some(v) {
                    if let Some(tcb) = kernel.current_tcb_mut() {
                        (tcb.ctx.tpidr, tcb.ctx.tpidrro) = (0, 0);
                    }
                }
                self.saved[v as usize] = SavedState([0; STATE_WORDS]);
                self.saved[v as usize].0[0] = SCTLR_EL1_RESET;
                gic::enable_ppi(VTIMER_PPI);
            }
            // The vCPU's own list registers (all clear after a restart).
            kernel.vgic_restore(v, &mut HwLrs(self.num_lrs));
            // SAFETY: `saved[v]` holds either a state saved from this vCPU or the
            // reset state; restoring EL1 registers affects only the guest.
            unsafe { vcpos_vcpu_restore(self.saved[v as usize].0.as_ptr()) };
            let tcb = kernel.tcb(v);
            // The stage-2 tables the kernel built for this vCPU from the VM's maps,
            // tagged with its own VMID (written only when another vCPU was loaded).
            VTTBR_EL2.set(tcb.vspace_root | ((tcb.asid as u64) << 48));
            // The guest's MPIDR: affinity 0.0.0.<vCPU id>, bit 31 RES1 (what its device
            // tree's cpu@<id> and the redistributor's GICR_TYPER say).
            let vmpidr = (1u64 << 31) | u64::from(tcb.child_id);
            // SAFETY: VMPIDR_EL2 (not in aarch64-cpu) is what the guest reads as MPIDR.
            unsafe { asm!("msr vmpidr_el2, {}", in(reg) vmpidr) };
            self.loaded = Some(v);
        }
        if self.host {
            // The guest regime (HCR_EL2 is written only when it changes).
            HCR_EL2.set(HCR_GUEST);
            isb(SY);
        }
        self.host = false;
        self.fill_lrs(kernel, v);
    }

    /// True if a list register still holds a pending or active interrupt.
    pub fn virq_in_flight(&self) -> bool {
        vgic::in_flight(&HwLrs(self.num_lrs))
    }

    /// The vCPU whose virtual timer the CPU holds.
    pub fn loaded(&self) -> Option<ThreadIndex> {
        self.loaded
    }

    /// vGIC maintenance: free the list registers the guest has finished with
    /// (unmasking the virtual timer when its interrupt was handled), then refill.
    pub fn maintenance(&mut self, kernel: &mut Kernel) {
        match self.loaded {
            Some(v) => self.fill_lrs(kernel, v),
            None => vgic::retire(&mut HwLrs(self.num_lrs), virq_done),
        }
    }

    /// Refills vCPU `v`'s list registers (finished ones freed first) and asks for
    /// underflow maintenance while more interrupts wait.
    fn fill_lrs(&mut self, kernel: &mut Kernel, v: ThreadIndex) {
        let waiting = kernel.vgic_fill(v, &mut HwLrs(self.num_lrs), virq_done);
        let uie = if waiting { 1 << 1 } else { 0 };
        // SAFETY: ICH_HCR_EL2 = En (| UIE): only changes virtual-interrupt delivery.
        unsafe { asm!("msr S3_4_C12_C11_0, {}", in(reg) 1u64 | uie) };
    }
}

/// The guest has finished with virtual interrupt `virq`: the virtual timer's PPI,
/// masked while its interrupt was with the guest, may fire again.
fn virq_done(virq: u32) {
    if virq == VTIMER_PPI {
        gic::enable_ppi(VTIMER_PPI);
    }
}

/// The CPU's ICH_LR<n>_EL2 registers, of which there are `.0`; the bookkeeping is
/// `vcpos_kernel_core::vgic`.
struct HwLrs(usize);

impl ListRegisters for HwLrs {
    fn count(&self) -> usize {
        self.0
    }
    fn read(&self, i: usize) -> u64 {
        read_lr(i)
    }
    fn write(&mut self, i: usize, value: u64) {
        write_lr(i, value)
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
    HPFAR_EL2.get()
}

extern "C" {
    fn vcpos_vcpu_save(area: *mut u64);
    fn vcpos_vcpu_restore(area: *const u64);
}

// EL1 system registers (through their EL12/EL02 aliases under VHE) and FP/SIMD
// state (the EL0 thread-ID registers are part of every thread's UserContext). Word i of the save area holds register i of this list; FP/SIMD q0..q31
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
    \op par_el1, 20
    \op csselr_el1, 21
    \op mdscr_el1, 22
    \op S3_4_C12_C11_7, 23
    \op S3_4_C12_C8_0, 24
    \op S3_4_C12_C9_0, 25
    \op fpcr, 26
    \op fpsr, 27
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
