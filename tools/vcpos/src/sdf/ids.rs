//! Cross-element rules, part 3: ids, symbols and channels.
//!
//! - Channel ids and irq ids share one namespace per PD (they are notification
//!   bits and capability slots of that PD).
//! - An irq number is delivered to one PD only.
//! - Child PD ids and vCPU ids share one namespace per parent (capability slots).
//! - Every symbol patched into a PD's image (`setvar`, `setvar_*` attributes) is
//!   patched once.
//! - A channel's ends: not `pp` on both, and a PPC goes to a strictly higher
//!   priority.
//!
//! Uses are gathered per namespace, sorted into document order, and a duplicate is
//! reported at the later use, naming the earlier one.

use std::collections::HashMap;

use super::ast::{RawChannel, RawSystem};
use super::names::{shown, Names};
use super::reader::Cx;
use crate::model::Span;

/// Runs the id, symbol and channel rules.
pub fn check(cx: &mut Cx<'_, '_>, raw: &RawSystem, names: &Names<'_>) {
    channel_ids(cx, raw, names);
    irq_numbers(cx, raw);
    child_ids(cx, raw);
    symbols(cx, raw, names);
    for channel in &raw.channels {
        ppc_rules(cx, raw, names, channel);
    }
}

/// One use of a key (id or symbol) in a namespace.
struct Use<'r, K> {
    key: K,
    span: &'r Span,
    tag: &'static str,
    /// What the use is, for the message about a later duplicate.
    what: String,
}

/// Reports each use whose key an earlier use (in document order) already has;
/// `message(key, earlier)` words the error.
fn report_duplicates<K: Eq + std::hash::Hash + Copy>(
    cx: &mut Cx<'_, '_>,
    mut uses: Vec<Use<'_, K>>,
    message: impl Fn(K, &str) -> String,
) {
    uses.sort_by_key(|u| (u.span.line, u.span.col));
    let mut first: HashMap<K, usize> = HashMap::new();
    for (i, u) in uses.iter().enumerate() {
        match first.get(&u.key) {
            Some(&j) => {
                let earlier = &uses[j];
                let msg = format!("{} (first defined at {})", message(u.key, &earlier.what), earlier.span);
                cx.error(msg, u.tag, u.span);
            }
            None => {
                first.insert(u.key, i);
            }
        }
    }
}

/// The two ends of a channel whose ends both name known PDs, as PD indices.
fn channel_pds(channel: &RawChannel, names: &Names<'_>) -> Option<[usize; 2]> {
    match channel.ends.as_slice() {
        [a, b] => Some([names.pd(a.pd.as_ref())?, names.pd(b.pd.as_ref())?]),
        _ => None,
    }
}

/// Channel and irq ids are unique within each PD.
fn channel_ids(cx: &mut Cx<'_, '_>, raw: &RawSystem, names: &Names<'_>) {
    let mut per_pd: Vec<Vec<Use<'_, u8>>> = raw.pds.iter().map(|_| Vec::new()).collect();
    for (pd, uses) in raw.pds.iter().zip(per_pd.iter_mut()) {
        for irq in &pd.irqs {
            let Some(id) = irq.id else { continue };
            let what = irq.irq.map_or("an irq".to_string(), |n| format!("irq {n}"));
            uses.push(Use {
                key: id,
                span: &irq.span,
                tag: "irq",
                what,
            });
        }
    }
    for channel in &raw.channels {
        let Some(pds) = channel_pds(channel, names) else {
            continue;
        };
        for (i, end) in channel.ends.iter().enumerate() {
            let Some(id) = end.id else { continue };
            let what = format!("the channel with '{}'", shown(&raw.pds[pds[1 - i]].name));
            per_pd[pds[i]].push(Use {
                key: id,
                span: &end.span,
                tag: "end",
                what,
            });
        }
    }
    for (pd, uses) in raw.pds.iter().zip(per_pd) {
        let name = shown(&pd.name);
        report_duplicates(cx, uses, |id, what| {
            format!("duplicate channel id {id} in protection domain '{name}': already used by {what}")
        });
    }
}

/// No irq number is delivered to two PDs (or twice to one).
fn irq_numbers(cx: &mut Cx<'_, '_>, raw: &RawSystem) {
    let mut uses = Vec::new();
    for pd in &raw.pds {
        for irq in &pd.irqs {
            let Some(n) = irq.irq else { continue };
            uses.push(Use {
                key: n,
                span: &irq.span,
                tag: "irq",
                what: shown(&pd.name).to_string(),
            });
        }
    }
    report_duplicates(cx, uses, |n, pd| {
        format!("irq {n} is already used by protection domain '{pd}'")
    });
}

/// Child PD ids and vCPU ids are unique within their parent.
fn child_ids(cx: &mut Cx<'_, '_>, raw: &RawSystem) {
    let mut per_parent: Vec<Vec<Use<'_, u8>>> = raw.pds.iter().map(|_| Vec::new()).collect();
    for (index, pd) in raw.pds.iter().enumerate() {
        if let (Some(parent), Some(id)) = (pd.parent, pd.child_id) {
            let what = format!("child protection domain '{}'", shown(&pd.name));
            per_parent[parent].push(Use {
                key: id,
                span: &pd.span,
                tag: "protection_domain",
                what,
            });
        }
        for vcpu in pd.vm.iter().flat_map(|vm| vm.vcpus.iter().map(move |v| (vm, v))) {
            let (vm, vcpu) = vcpu;
            let Some(id) = vcpu.id else { continue };
            let what = format!("vcpu {id} of virtual machine '{}'", shown(&vm.name));
            per_parent[index].push(Use {
                key: id,
                span: &vcpu.span,
                tag: "vcpu",
                what,
            });
        }
    }
    for (pd, uses) in raw.pds.iter().zip(per_parent) {
        let name = shown(&pd.name);
        report_duplicates(cx, uses, |id, what| {
            format!("duplicate id {id} in protection domain '{name}': already used by {what}")
        });
    }
}

/// Each symbol is patched at most once per PD image.
fn symbols(cx: &mut Cx<'_, '_>, raw: &RawSystem, names: &Names<'_>) {
    let mut per_pd: Vec<Vec<Use<'_, &str>>> = raw.pds.iter().map(|_| Vec::new()).collect();
    for (index, pd) in raw.pds.iter().enumerate() {
        for setvar in &pd.setvars {
            add_symbol(&mut per_pd[index], &setvar.symbol, &setvar.span, "setvar");
        }
        for map in &pd.maps {
            for symbol in [&map.setvar_vaddr, &map.setvar_size, &map.setvar_prefill_size] {
                add_symbol(&mut per_pd[index], symbol, &map.span, "map");
            }
        }
        for irq in &pd.irqs {
            add_symbol(&mut per_pd[index], &irq.setvar_id, &irq.span, "irq");
        }
        if let Some(parent) = pd.parent {
            add_symbol(&mut per_pd[parent], &pd.setvar_id, &pd.span, "protection_domain");
        }
        for vcpu in pd.vm.iter().flat_map(|vm| &vm.vcpus) {
            add_symbol(&mut per_pd[index], &vcpu.setvar_id, &vcpu.span, "vcpu");
        }
    }
    for channel in &raw.channels {
        let Some(pds) = channel_pds(channel, names) else {
            continue;
        };
        for (end, pd) in channel.ends.iter().zip(pds) {
            add_symbol(&mut per_pd[pd], &end.setvar_id, &end.span, "end");
        }
    }
    for uses in per_pd {
        report_duplicates(cx, uses, |symbol, _| {
            format!("setvar on symbol '{symbol}' already exists")
        });
    }
}

/// Records that element `tag` at `span` patches `symbol` (if it names one).
fn add_symbol<'r>(uses: &mut Vec<Use<'r, &'r str>>, symbol: &'r Option<String>, span: &'r Span, tag: &'static str) {
    if let Some(s) = symbol {
        uses.push(Use {
            key: s.as_str(),
            span,
            tag,
            what: String::new(),
        });
    }
}

/// `pp` on at most one end, and a PPC only to a strictly higher priority.
fn ppc_rules(cx: &mut Cx<'_, '_>, raw: &RawSystem, names: &Names<'_>, channel: &RawChannel) {
    let [a, b] = channel.ends.as_slice() else {
        return;
    };
    if a.pp && b.pp {
        cx.error("cannot ppc bidirectionally (pp is set on both ends)", "end", &b.span);
        return;
    }
    let Some(pds) = channel_pds(channel, names) else {
        return;
    };
    let (caller, callee, end) = match (a.pp, b.pp) {
        (true, _) => (&raw.pds[pds[0]], &raw.pds[pds[1]], a),
        (_, true) => (&raw.pds[pds[1]], &raw.pds[pds[0]], b),
        _ => return,
    };
    let (Some(from), Some(to)) = (caller.priority, callee.priority) else {
        return;
    };
    if to <= from {
        let msg = format!(
            "PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd {} (priority: {from}) to pd {} (priority: {to})",
            shown(&caller.name),
            shown(&callee.name)
        );
        cx.error(msg, "end", &end.span);
    }
}
