//! Cross-element rules, part 1: names, counts and references; and the order in
//! which all cross-element rules run.
//!
//! Input is the [`RawSystem`] from [`super::parse`], however incomplete. Every error
//! is reported at the later (or offending) element, and names the other element
//! with its location ("first defined at file:line:col"). Memory rules live in
//! [`super::memory`], id and symbol rules in [`super::ids`].

use std::collections::HashMap;

use vcpos_abi::MAX_PDS;

use super::ast::RawSystem;
use super::names::{did_you_mean, Names};
use super::reader::Cx;
use super::{ids, memory};
use crate::model::Span;

/// What the checks work out for building the model.
pub struct Checked<'r> {
    /// Name tables.
    pub names: Names<'r>,
    /// The page size of each memory region (`None` if it could not be decided).
    pub page_sizes: Vec<Option<u64>>,
}

/// Runs every cross-element rule over `raw`, recording errors in `cx`.
pub fn check<'r>(cx: &mut Cx<'_, '_>, raw: &'r RawSystem) -> Checked<'r> {
    let names = Names {
        mrs: unique_names(
            cx,
            raw.mrs.iter().map(|m| (m.name.as_deref(), &m.span)),
            "memory region",
            "memory_region",
        ),
        pds: unique_names(
            cx,
            raw.pds.iter().map(|p| (p.name.as_deref(), &p.span)),
            "protection domain",
            "protection_domain",
        ),
    };
    let vms = raw
        .pds
        .iter()
        .filter_map(|p| p.vm.as_ref())
        .map(|vm| (vm.name.as_deref(), &vm.span));
    unique_names(cx, vms, "virtual machine", "virtual_machine");
    pd_count(cx, raw);
    references(cx, raw, &names);
    let page_sizes = memory::check(cx, raw, &names);
    ids::check(cx, raw, &names);
    Checked { names, page_sizes }
}

/// Reports every name defined twice (at the second definition) and returns the
/// table of first definitions.
fn unique_names<'r>(
    cx: &mut Cx<'_, '_>,
    items: impl Iterator<Item = (Option<&'r str>, &'r Span)>,
    what: &str,
    tag: &str,
) -> HashMap<&'r str, usize> {
    let mut first: HashMap<&'r str, (usize, &'r Span)> = HashMap::new();
    for (index, (name, span)) in items.enumerate() {
        let Some(name) = name else { continue };
        match first.get(name) {
            Some((_, earlier)) => {
                cx.error(
                    format!("duplicate {what} name '{name}' (first defined at {earlier})"),
                    tag,
                    span,
                );
            }
            None => {
                first.insert(name, (index, span));
            }
        }
    }
    first.into_iter().map(|(name, (index, _))| (name, index)).collect()
}

/// At least one PD, and at most [`MAX_PDS`] (reported at the first one too many).
fn pd_count(cx: &mut Cx<'_, '_>, raw: &RawSystem) {
    if raw.pds.is_empty() {
        cx.error("at least one protection domain must be defined", "system", &raw.span);
    }
    if let Some(extra) = raw.pds.get(MAX_PDS) {
        let msg = format!(
            "too many protection domains ({}) defined. Maximum is {MAX_PDS}.",
            raw.pds.len()
        );
        cx.error(msg, "protection_domain", &extra.span);
    }
}

/// Every name used as a reference must be defined: map `mr`, setvar
/// `region_paddr`, end `pd`.
fn references(cx: &mut Cx<'_, '_>, raw: &RawSystem, names: &Names<'_>) {
    for pd in &raw.pds {
        let vm_maps = pd.vm.iter().flat_map(|vm| &vm.maps);
        for map in pd.maps.iter().chain(vm_maps) {
            if let Some(mr) = map.mr.as_ref().filter(|&n| names.mr(Some(n)).is_none()) {
                let hint = did_you_mean(mr, names.mrs.keys().copied());
                cx.error(format!("invalid memory region name '{mr}'{hint}"), "map", &map.span);
            }
        }
        for setvar in &pd.setvars {
            if let Some(mr) = setvar.region_paddr.as_ref().filter(|&n| names.mr(Some(n)).is_none()) {
                let hint = did_you_mean(mr, names.mrs.keys().copied());
                cx.error(
                    format!("invalid memory region name '{mr}'{hint}"),
                    "setvar",
                    &setvar.span,
                );
            }
        }
    }
    for end in raw.channels.iter().flat_map(|c| &c.ends) {
        if let Some(pd) = end.pd.as_ref().filter(|&n| names.pd(Some(n)).is_none()) {
            let hint = did_you_mean(pd, names.pds.keys().copied());
            cx.error(format!("invalid protection domain name '{pd}'{hint}"), "end", &end.span);
        }
    }
}
