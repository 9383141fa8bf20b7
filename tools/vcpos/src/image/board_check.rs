//! Board-dependent checks of a system: what a system description cannot know by itself.
//!
//! [`check_board`] needs only the model and the board (no ELF files), so both `vcpos
//! check` and `vcpos build` run it. Every error is located at the element concerned.
//! The checks that need the kernel's real size (fixed regions against the kernel image)
//! run later, in the physical layout stage.

use crate::board::Board;
use crate::diag::Diagnostic;
use crate::model::System;

/// First INTID a PD may own: INTIDs 0..32 are SGIs and PPIs, which belong to the kernel.
pub const FIRST_SPI: u32 = 32;
/// Size of the GICv3 distributor frame.
pub const GICD_SIZE: u64 = 0x1_0000;

/// A physical range the kernel owns (a device it drives or RAM it is loaded into).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelRange {
    /// What it is, for messages.
    pub what: &'static str,
    /// First address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// The physical ranges no memory region may overlap on `board`: the interrupt controller
/// the kernel drives and the RAM below the kernel's load address (device tree, firmware).
///
/// The kernel's console UART is deliberately not among them: as on seL4's debug builds,
/// a PD may map it (a serial driver, or the VMM reading the keyboard). The kernel only
/// ever writes whole characters to its data register, so output interleaves by line.
pub fn kernel_ranges(board: &Board) -> Vec<KernelRange> {
    let d = &board.devices;
    let mut v = vec![
        KernelRange {
            what: "the GIC distributor",
            base: d.gicd,
            size: GICD_SIZE,
        },
        KernelRange {
            what: "the GIC redistributors",
            base: d.gicr,
            size: d.gicr_stride.saturating_mul(u64::from(d.cores.max(1))),
        },
    ];
    let m = &board.memory;
    if m.kernel_paddr > m.ram_base {
        v.push(KernelRange {
            what: "the RAM below the kernel (device tree and firmware)",
            base: m.ram_base,
            size: m.kernel_paddr - m.ram_base,
        });
    }
    v
}

/// Whether `[a, a+alen)` and `[b, b+blen)` intersect (empty ranges never do).
pub(crate) fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    alen != 0 && blen != 0 && a < b.saturating_add(blen) && b < a.saturating_add(alen)
}

/// Board-dependent checks: IRQ numbers are SPIs the board has, CPU cores exist,
/// fixed-address memory regions avoid the kernel's devices and RAM, lie either wholly
/// inside or wholly outside RAM, and only RAM regions are prefilled.
pub fn check_board(system: &System, board: &Board) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    let d = &board.devices;
    for pd in &system.pds {
        if pd.cpu >= d.cores {
            errors.push(Diagnostic::at(
                format!("cpu core must be less than {}, got {}", d.cores, pd.cpu),
                "protection_domain",
                &pd.span,
            ));
        }
        for irq in &pd.irqs {
            if irq.irq < FIRST_SPI || irq.irq > d.max_irq {
                errors.push(Diagnostic::at(
                    format!(
                        "IRQ {} is not available to protection domains on board '{}': it must be \
                         an SPI in {FIRST_SPI}..={} (INTIDs below {FIRST_SPI} belong to the kernel)",
                        irq.irq, board.name, d.max_irq
                    ),
                    "irq",
                    &irq.span,
                ));
            }
        }
        if let Some(vm) = &pd.virtual_machine {
            for vcpu in &vm.vcpus {
                if vcpu.cpu >= d.cores {
                    errors.push(Diagnostic::at(
                        format!("cpu core must be less than {}, got {}", d.cores, vcpu.cpu),
                        "vcpu",
                        &vcpu.span,
                    ));
                }
            }
        }
    }

    let ram_base = board.memory.ram_base;
    let ram_end = board.memory.ram_base.saturating_add(board.memory.ram_size);
    let reserved = kernel_ranges(board);
    for mr in &system.memory_regions {
        let Some(base) = mr.phys_addr else { continue };
        let Some(end) = base.checked_add(mr.size) else {
            errors.push(Diagnostic::at(
                format!(
                    "memory region '{}' at 0x{base:x} of size 0x{:x} goes past the end of the \
                     physical address space",
                    mr.name, mr.size
                ),
                "memory_region",
                &mr.span,
            ));
            continue;
        };
        for r in &reserved {
            if overlaps(base, mr.size, r.base, r.size) {
                errors.push(Diagnostic::at(
                    format!(
                        "memory region '{}' [0x{base:x}..0x{end:x}) overlaps {} [0x{:x}..0x{:x}), \
                         which the kernel uses",
                        mr.name,
                        r.what,
                        r.base,
                        r.base + r.size
                    ),
                    "memory_region",
                    &mr.span,
                ));
            }
        }
        let in_ram = overlaps(base, mr.size, ram_base, ram_end - ram_base);
        if in_ram && (base < ram_base || end > ram_end) {
            errors.push(Diagnostic::at(
                format!(
                    "memory region '{}' [0x{base:x}..0x{end:x}) lies partly inside RAM \
                     [0x{ram_base:x}..0x{ram_end:x}): a fixed region must be wholly inside or \
                     wholly outside RAM",
                    mr.name
                ),
                "memory_region",
                &mr.span,
            ));
        }
        if !in_ram && mr.prefill_path.is_some() {
            errors.push(Diagnostic::at(
                format!(
                    "memory region '{}' at 0x{base:x} is device memory (outside RAM \
                     [0x{ram_base:x}..0x{ram_end:x})) and cannot be prefilled",
                    mr.name
                ),
                "memory_region",
                &mr.span,
            ));
        }
    }
    errors
}
