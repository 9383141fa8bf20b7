//! Cross-element rules, part 2: memory. Page sizes, where regions sit in physical
//! memory, and how maps lay out a PD's or VM's address space.
//!
//! The page size of a region without `page_size` follows Microkit 2.3: the largest
//! page size (2 MiB, else 4 KiB) that divides the size and to which the fixed
//! physical address and every map's address are aligned.

use vcpos_abi::vspace::{user_map_limit, LARGE_PAGE_SIZE, PAGE_SIZE, USER_VSPACE_TOP};

use super::ast::{RawMap, RawMr, RawSystem};
use super::names::{shown, Names};
use super::reader::{Attr, Cx};
use crate::model::Span;

/// Decides every region's page size and checks regions and maps. Returns the page
/// sizes (`None` where unknown because of an earlier error).
pub fn check(cx: &mut Cx<'_, '_>, raw: &RawSystem, names: &Names<'_>) -> Vec<Option<u64>> {
    let page_sizes = page_sizes(raw, names);
    regions(cx, raw, &page_sizes);
    for pd in &raw.pds {
        let space = Space::Pd {
            name: shown(&pd.name),
            stack: pd.stack_size,
        };
        maps(cx, &pd.maps, &space, raw, names, &page_sizes);
        if let Some(vm) = &pd.vm {
            maps(
                cx,
                &vm.maps,
                &Space::Vm { name: shown(&vm.name) },
                raw,
                names,
                &page_sizes,
            );
        }
    }
    page_sizes
}

/// The page size of each region: as written, or chosen by the Microkit rule.
fn page_sizes(raw: &RawSystem, names: &Names<'_>) -> Vec<Option<u64>> {
    let mut vaddrs: Vec<Vec<u64>> = vec![Vec::new(); raw.mrs.len()];
    let pd_maps = raw.pds.iter().flat_map(|pd| &pd.maps);
    let vm_maps = raw.pds.iter().filter_map(|pd| pd.vm.as_ref()).flat_map(|vm| &vm.maps);
    for map in pd_maps.chain(vm_maps) {
        if let (Some(mr), Some(vaddr)) = (names.mr(map.mr.as_ref()), map.vaddr) {
            vaddrs[mr].push(vaddr);
        }
    }
    raw.mrs
        .iter()
        .zip(&vaddrs)
        .map(|(mr, vaddrs)| page_size(mr, vaddrs))
        .collect()
}

/// One region's page size.
fn page_size(mr: &RawMr, vaddrs: &[u64]) -> Option<u64> {
    match mr.page_size {
        Attr::Valid(p) => Some(p),
        Attr::Invalid => None,
        Attr::Absent => {
            let size = mr.size?;
            let phys = mr.phys_addr.clone().valid().unwrap_or(0);
            let fits =
                |p: u64| size.is_multiple_of(p) && phys.is_multiple_of(p) && vaddrs.iter().all(|v| v.is_multiple_of(p));
            Some(if fits(LARGE_PAGE_SIZE) {
                LARGE_PAGE_SIZE
            } else {
                PAGE_SIZE
            })
        }
    }
}

/// Region rules: size a page multiple, fixed address aligned, in range and not
/// overlapping another fixed region.
fn regions(cx: &mut Cx<'_, '_>, raw: &RawSystem, page_sizes: &[Option<u64>]) {
    let mut fixed: Vec<(u64, u64, &RawMr)> = Vec::new();
    for (mr, page) in raw.mrs.iter().zip(page_sizes) {
        let (Some(size), Some(page)) = (mr.size, *page) else {
            continue;
        };
        let tag = "memory_region";
        if !size.is_multiple_of(page) {
            cx.error(
                format!("size ({size:#x}) must be a multiple of the page size ({page:#x})"),
                tag,
                &mr.span,
            );
        }
        let Attr::Valid(phys) = mr.phys_addr else {
            continue;
        };
        if !phys.is_multiple_of(page) {
            cx.error(
                format!("phys_addr ({phys:#x}) must be aligned to the page size ({page:#x})"),
                tag,
                &mr.span,
            );
        }
        let Some(end) = phys.checked_add(size) else {
            let msg = format!("phys_addr ({phys:#x}) + size ({size:#x}) is beyond the end of the address space");
            cx.error(msg, tag, &mr.span);
            continue;
        };
        if let Some((s, e, other)) = fixed.iter().find(|(s, e, _)| phys < *e && *s < end) {
            let msg = format!(
                "memory region '{}' at [{phys:#x}..{end:#x}) overlaps memory region '{}' at [{s:#x}..{e:#x}) (first defined at {})",
                shown(&mr.name),
                shown(&other.name),
                other.span
            );
            cx.error(msg, tag, &mr.span);
        }
        fixed.push((phys, end, mr));
    }
}

/// An address space that maps go into.
enum Space<'r> {
    /// A PD's virtual address space: maps end at or below the guard page under its
    /// stack (unknown if the stack size was invalid).
    Pd {
        /// The PD's name.
        name: &'r str,
        /// The PD's stack size.
        stack: Option<u64>,
    },
    /// A VM's guest-physical address space (40 bits).
    Vm {
        /// The VM's name.
        name: &'r str,
    },
}

impl Space<'_> {
    /// The space, for messages.
    fn owner(&self) -> String {
        match self {
            Space::Pd { name, .. } => format!("protection domain '{name}'"),
            Space::Vm { name } => format!("virtual machine '{name}'"),
        }
    }

    /// What its addresses are called.
    fn addresses(&self) -> &'static str {
        match self {
            Space::Pd { .. } => "virtual",
            Space::Vm { .. } => "guest-physical",
        }
    }

    /// The highest allowed end address of a map, and why; `None` if unknown.
    fn bound(&self) -> Option<(u64, String)> {
        match *self {
            Space::Pd { stack, .. } => stack.map(|stack| {
                (
                    user_map_limit(stack),
                    format!("the start of the guard page below the {stack:#x}-byte stack"),
                )
            }),
            Space::Vm { .. } => Some((
                USER_VSPACE_TOP,
                "the top of the guest-physical address space".to_string(),
            )),
        }
    }
}

/// A map already placed in an address space (for overlap checks).
struct Placed<'r> {
    start: u64,
    end: u64,
    mr: &'r str,
    span: &'r Span,
}

/// Map rules for one address space: aligned to the region's page size, below the
/// space's bound, no overlap, `setvar_prefill_size` only with a prefilled region.
fn maps<'r>(
    cx: &mut Cx<'_, '_>,
    maps: &'r [RawMap],
    space: &Space<'_>,
    raw: &'r RawSystem,
    names: &Names<'_>,
    page_sizes: &[Option<u64>],
) {
    let mut placed: Vec<Placed<'r>> = Vec::new();
    for map in maps {
        let Some(index) = names.mr(map.mr.as_ref()) else {
            continue;
        };
        let mr = &raw.mrs[index];
        let name = shown(&mr.name);
        if map.setvar_prefill_size.is_some() && mr.prefill_path.is_none() {
            let msg = format!("setvar_prefill_size needs memory region '{name}' to have a prefill_path");
            cx.error(msg, "map", &map.span);
        }
        let (Some(vaddr), Some(size)) = (map.vaddr, mr.size) else {
            continue;
        };
        if let Some(page) = page_sizes[index].filter(|&p| !vaddr.is_multiple_of(p)) {
            let msg =
                format!("vaddr ({vaddr:#x}) must be aligned to the page size ({page:#x}) of memory region '{name}'");
            cx.error(msg, "map", &map.span);
        }
        let Some(end) = vaddr.checked_add(size) else {
            let msg = format!("vaddr ({vaddr:#x}) + size of memory region '{name}' ({size:#x}) is beyond the end of the address space");
            cx.error(msg, "map", &map.span);
            continue;
        };
        let range = format!("{} address range [{vaddr:#x}..{end:#x})", space.addresses());
        if let Some((bound, why)) = space.bound().filter(|(bound, _)| end > *bound) {
            let msg = format!("map for '{name}' has {range} which ends above {bound:#x}, {why}");
            cx.error(msg, "map", &map.span);
        }
        if let Some(other) = placed.iter().find(|p| vaddr < p.end && p.start < end) {
            let msg = format!(
                "map for '{name}' has {range} which overlaps with map for '{}' [{:#x}..{:#x}) in {} (other map at {})",
                other.mr,
                other.start,
                other.end,
                space.owner(),
                other.span
            );
            cx.error(msg, "map", &map.span);
        }
        placed.push(Placed {
            start: vaddr,
            end,
            mr: name,
            span: &map.span,
        });
    }
}
