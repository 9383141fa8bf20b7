//! The parsed but unchecked system: the output of [`super::parse`], the input of
//! [`super::check`] and [`super::build`].
//!
//! It mirrors the XML, with two differences from [`crate::model`]:
//! - references are still names (a map's `mr`, an end's `pd`, a setvar's
//!   `region_paddr`); [`super::check`] resolves them;
//! - a value that cross-element rules need is an `Option`, `None` when it was
//!   missing or invalid (and already reported), so those rules can skip it instead
//!   of reporting follow-on errors. Values only copied into the model fall back to
//!   their defaults; the model is never built when there were errors.
//!
//! Every element that was recognised appears here (even with bad attributes), so
//! the PD list index is the model's PD index and names stay resolvable.

use crate::model::{Perms, ProgramImage, Span, Trigger};

use super::reader::Attr;

/// `<system>`.
#[derive(Debug)]
pub struct RawSystem {
    /// Where `<system>` starts.
    pub span: Span,
    /// `<memory_region>`s in document order.
    pub mrs: Vec<RawMr>,
    /// All PDs in document order, each parent before its children.
    pub pds: Vec<RawPd>,
    /// `<channel>`s in document order.
    pub channels: Vec<RawChannel>,
}

/// `<memory_region>`.
#[derive(Debug)]
pub struct RawMr {
    /// `name`.
    pub name: Option<String>,
    /// `size` (non-zero).
    pub size: Option<u64>,
    /// `page_size` as written (absent: chosen by [`super::memory`]).
    pub page_size: Attr<u64>,
    /// `phys_addr`.
    pub phys_addr: Attr<u64>,
    /// `prefill_path`.
    pub prefill_path: Option<String>,
    /// Location.
    pub span: Span,
}

/// `<protection_domain>` (root or child).
#[derive(Debug)]
pub struct RawPd {
    /// `name`.
    pub name: Option<String>,
    /// `priority` (0..=254).
    pub priority: Option<u8>,
    /// `budget` in µs.
    pub budget: Option<u64>,
    /// `period` in µs.
    pub period: Option<u64>,
    /// `passive`.
    pub passive: bool,
    /// `stack_size` (valid range and alignment).
    pub stack_size: Option<u64>,
    /// `cpu`.
    pub cpu: u32,
    /// `smc`.
    pub smc: bool,
    /// `fpu`.
    pub fpu: bool,
    /// Index of the parent in [`RawSystem::pds`].
    pub parent: Option<usize>,
    /// `id` (children only, 0..=61).
    pub child_id: Option<u8>,
    /// `setvar_id` (children only; a symbol of the parent).
    pub setvar_id: Option<String>,
    /// `<program_image>`.
    pub program_image: Option<ProgramImage>,
    /// `<map>`s.
    pub maps: Vec<RawMap>,
    /// `<irq>`s.
    pub irqs: Vec<RawIrq>,
    /// `<setvar>`s.
    pub setvars: Vec<RawSetVar>,
    /// `<virtual_machine>`.
    pub vm: Option<RawVm>,
    /// Location.
    pub span: Span,
}

/// `<map>` (in a PD or a VM).
#[derive(Debug)]
pub struct RawMap {
    /// `mr` (a memory region name).
    pub mr: Option<String>,
    /// `vaddr`.
    pub vaddr: Option<u64>,
    /// `perms`.
    pub perms: Perms,
    /// `cached`.
    pub cached: bool,
    /// `setvar_vaddr`.
    pub setvar_vaddr: Option<String>,
    /// `setvar_size`.
    pub setvar_size: Option<String>,
    /// `setvar_prefill_size`.
    pub setvar_prefill_size: Option<String>,
    /// Location.
    pub span: Span,
}

/// `<irq>`.
#[derive(Debug)]
pub struct RawIrq {
    /// `irq` (interrupt number).
    pub irq: Option<u32>,
    /// `id` (0..=61).
    pub id: Option<u8>,
    /// `trigger`.
    pub trigger: Trigger,
    /// `setvar_id`.
    pub setvar_id: Option<String>,
    /// Location.
    pub span: Span,
}

/// `<setvar>`.
#[derive(Debug)]
pub struct RawSetVar {
    /// `symbol`.
    pub symbol: Option<String>,
    /// `region_paddr` (a memory region name).
    pub region_paddr: Option<String>,
    /// Location.
    pub span: Span,
}

/// `<channel>`.
#[derive(Debug)]
pub struct RawChannel {
    /// The `<end>`s (exactly two in a valid file).
    pub ends: Vec<RawEnd>,
    /// Location.
    pub span: Span,
}

/// `<end>`.
#[derive(Debug)]
pub struct RawEnd {
    /// `pd` (a PD name).
    pub pd: Option<String>,
    /// `id` (0..=61).
    pub id: Option<u8>,
    /// `pp`.
    pub pp: bool,
    /// `notify`.
    pub notify: bool,
    /// `setvar_id`.
    pub setvar_id: Option<String>,
    /// Location.
    pub span: Span,
}

/// `<virtual_machine>`.
#[derive(Debug)]
pub struct RawVm {
    /// `name`.
    pub name: Option<String>,
    /// `priority` (0..=254).
    pub priority: Option<u8>,
    /// `budget` in µs.
    pub budget: Option<u64>,
    /// `period` in µs.
    pub period: Option<u64>,
    /// `<vcpu>`s.
    pub vcpus: Vec<RawVcpu>,
    /// `<map>`s (guest-physical).
    pub maps: Vec<RawMap>,
    /// Location.
    pub span: Span,
}

/// `<vcpu>`.
#[derive(Debug)]
pub struct RawVcpu {
    /// `id` (0..=61).
    pub id: Option<u8>,
    /// `cpu` (default: the VMM PD's core).
    pub cpu: u32,
    /// `setvar_id` (a symbol of the VMM PD).
    pub setvar_id: Option<String>,
    /// Location.
    pub span: Span,
}
