//! The checked system model: what a system description means once it is valid.
//!
//! [`crate::sdf`] turns XML into this model (or a list of located diagnostics);
//! [`crate::image`] turns this model plus program images into a bootable image. Every
//! element keeps the [`Span`] it came from so later stages can report errors at the
//! right place.

use std::path::PathBuf;

/// Where an element starts in its source file (1-based line and column).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Span {
    /// The file as named on the command line.
    pub file: String,
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1.
    pub col: u32,
}

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// A whole system.
#[derive(Clone, Debug)]
pub struct System {
    /// The file it was read from.
    pub path: PathBuf,
    /// Memory regions, in document order.
    pub memory_regions: Vec<MemoryRegion>,
    /// All PDs, children included, in document order (a parent comes before its
    /// children). The index in this vector is the PD index the kernel uses.
    pub pds: Vec<ProtectionDomain>,
    /// Channels, in document order.
    pub channels: Vec<Channel>,
}

/// A `<memory_region>`.
#[derive(Clone, Debug)]
pub struct MemoryRegion {
    /// Unique name.
    pub name: String,
    /// Size in bytes (a multiple of `page_size`).
    pub size: u64,
    /// 0x1000 or 0x200000 (chosen by the rules of Microkit 2.3 if not given).
    pub page_size: u64,
    /// Fixed physical address (device memory or a pinned region).
    pub phys_addr: Option<u64>,
    /// File whose contents fill the region at boot (`prefill_path`), as written.
    pub prefill_path: Option<String>,
    /// Where it was declared.
    pub span: Span,
}

/// A PD (root or child).
#[derive(Clone, Debug)]
pub struct ProtectionDomain {
    /// Unique name (at most 64 bytes).
    pub name: String,
    /// 0..=254.
    pub priority: u8,
    /// Microseconds.
    pub budget_us: u64,
    /// Microseconds, >= budget.
    pub period_us: u64,
    /// Runs only on callers' and notifications' time after init.
    pub passive: bool,
    /// Bytes, page multiple in 0x1000..=0x1000000.
    pub stack_size: u64,
    /// CPU core.
    pub cpu: u32,
    /// `smc`: may make Secure Monitor Calls (Microkit 2.0+, ARM only; default false).
    pub smc: bool,
    /// `fpu`: may use the FPU (Microkit 2.3; default true). vcpos PDs are built
    /// soft-float, so this is recorded but grants nothing.
    pub fpu: bool,
    /// Index of the parent PD in [`System::pds`], for children.
    pub parent: Option<usize>,
    /// The id the parent names this child by (children only).
    pub child_id: Option<u8>,
    /// Symbol in the parent's image patched with the child id (`setvar_id`).
    pub setvar_id: Option<String>,
    /// `<program_image>`.
    pub program_image: ProgramImage,
    /// `<map>`s.
    pub maps: Vec<Map>,
    /// `<irq>`s.
    pub irqs: Vec<Irq>,
    /// `<setvar>`s.
    pub setvars: Vec<SetVar>,
    /// `<virtual_machine>`, if any (parsed and validated; built by a later issue).
    pub virtual_machine: Option<VirtualMachine>,
    /// Where it was declared.
    pub span: Span,
}

/// `<program_image>`.
#[derive(Clone, Debug)]
pub struct ProgramImage {
    /// ELF to load, as written (resolved against the search path by the builder).
    pub path: String,
    /// ELF used only for symbol lookup and patching, as written.
    pub path_for_symbols: Option<String>,
    /// Where it was declared.
    pub span: Span,
}

/// Access rights of a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Perms {
    /// `r`.
    pub read: bool,
    /// `w`.
    pub write: bool,
    /// `x`.
    pub execute: bool,
}

/// A `<map>` of a memory region into a PD or VM.
#[derive(Clone, Debug)]
pub struct Map {
    /// Index into [`System::memory_regions`].
    pub mr: usize,
    /// Virtual address (aligned to the region's page size).
    pub vaddr: u64,
    /// Rights.
    pub perms: Perms,
    /// Normal cached memory if true, device memory if false.
    pub cached: bool,
    /// Symbol patched with `vaddr`.
    pub setvar_vaddr: Option<String>,
    /// Symbol patched with the region's size.
    pub setvar_size: Option<String>,
    /// Symbol patched with the size of the region's prefill file (region has a
    /// `prefill_path`).
    pub setvar_prefill_size: Option<String>,
    /// Where it was declared.
    pub span: Span,
}

/// IRQ trigger mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Level triggered (the default).
    Level,
    /// Edge triggered.
    Edge,
}

/// An `<irq>` delivered to a PD.
#[derive(Clone, Debug)]
pub struct Irq {
    /// Interrupt number (GIC INTID).
    pub irq: u32,
    /// Channel id it arrives on (0..=61).
    pub id: u8,
    /// Trigger mode.
    pub trigger: Trigger,
    /// Symbol patched with `id`.
    pub setvar_id: Option<String>,
    /// Where it was declared.
    pub span: Span,
}

/// A `<setvar>`: patch `symbol` with the physical address of a region.
#[derive(Clone, Debug)]
pub struct SetVar {
    /// Symbol in the PD's image.
    pub symbol: String,
    /// Index into [`System::memory_regions`].
    pub region_paddr: usize,
    /// Where it was declared.
    pub span: Span,
}

/// A `<channel>` between two PDs.
#[derive(Clone, Debug)]
pub struct Channel {
    /// The two ends.
    pub ends: [ChannelEnd; 2],
    /// Where it was declared.
    pub span: Span,
}

/// One `<end>` of a channel.
#[derive(Clone, Debug)]
pub struct ChannelEnd {
    /// Index into [`System::pds`].
    pub pd: usize,
    /// Channel id at this end (0..=61).
    pub id: u8,
    /// This end may PPC the other end.
    pub pp: bool,
    /// This end may notify the other end.
    pub notify: bool,
    /// Symbol patched with `id`.
    pub setvar_id: Option<String>,
    /// Where it was declared.
    pub span: Span,
}

/// A `<virtual_machine>` (child of its VMM PD).
#[derive(Clone, Debug)]
pub struct VirtualMachine {
    /// Unique VM name.
    pub name: String,
    /// 0..=254.
    pub priority: u8,
    /// Microseconds.
    pub budget_us: u64,
    /// Microseconds.
    pub period_us: u64,
    /// vCPUs.
    pub vcpus: Vec<Vcpu>,
    /// Maps into guest-physical space.
    pub maps: Vec<Map>,
    /// Where it was declared.
    pub span: Span,
}

/// A `<vcpu>`.
#[derive(Clone, Debug)]
pub struct Vcpu {
    /// Id the VMM names it by (0..=61; distinct from child PD ids).
    pub id: u8,
    /// CPU core (default: the VMM PD's core).
    pub cpu: u32,
    /// Symbol in the VMM PD's image patched with `id`.
    pub setvar_id: Option<String>,
    /// Where it was declared.
    pub span: Span,
}
