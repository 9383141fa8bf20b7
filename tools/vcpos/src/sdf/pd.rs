//! Per-element parsing, part 2: `<protection_domain>` and everything inside it
//! (`program_image`, `map`, `irq`, `setvar`, child PDs, `virtual_machine`, `vcpu`).
//!
//! PDs are appended to the PD list in document order, each parent before its
//! children, so the list index is the kernel's PD index. See [`super::parse`] for
//! the error-handling conventions.

use vcpos_abi::vspace::{DEFAULT_STACK_SIZE, MAX_STACK_SIZE, MIN_STACK_SIZE, PAGE_SIZE};
use vcpos_abi::MAX_PDS;

use super::ast::*;
use super::attrs::{
    budget_period, check_name, invalid_element, no_children, not_supported, priority, required_id, x86_only,
};
use super::reader::{Attr, Cx, Elem};
use crate::model::{Perms, ProgramImage, Trigger};

/// Attributes of `<irq>` that only exist on x86 (IOAPIC and MSI forms).
const X86_IRQ_ATTRS: [&str; 6] = ["pin", "vector", "ioapic", "polarity", "pcidev", "handle"];

/// The parent of a child PD, as its children need it.
#[derive(Clone, Copy)]
pub(super) struct Parent {
    /// Index in the PD list.
    index: usize,
    /// Nesting depth of the parent (root PDs are 1).
    depth: usize,
}

/// `<protection_domain>`: appends it, then its children (recursively), to `pds`.
pub(super) fn protection_domain(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, parent: Option<Parent>, pds: &mut Vec<RawPd>) {
    let mut allowed = vec![
        "name",
        "priority",
        "budget",
        "period",
        "passive",
        "stack_size",
        "smc",
        "cpu",
        "fpu",
        "domain",
    ];
    if parent.is_some() {
        allowed.extend(["id", "setvar_id"]);
    }
    el.check_attributes(cx, &allowed);
    let pd = pd_attributes(cx, el, parent);
    let cpu = pd.cpu;
    let index = pds.len();
    pds.push(pd);
    let depth = parent.map_or(1, |p| p.depth + 1);
    let mut has_image = false;
    for node in el.children() {
        let child = Elem::new(cx, node);
        match child.tag {
            "program_image" => {
                let image = program_image(cx, &child);
                if has_image {
                    child.error(cx, "only one 'program_image' element is allowed per protection domain");
                } else {
                    pds[index].program_image = image;
                    has_image = true;
                }
            }
            "map" => pds[index].maps.push(map(cx, &child, false)),
            "irq" => pds[index].irqs.push(irq(cx, &child)),
            "setvar" => pds[index].setvars.push(setvar(cx, &child)),
            "protection_domain" if depth >= MAX_PDS => {
                child.error(cx, format!("protection domains are nested more than {MAX_PDS} deep"));
            }
            "protection_domain" => protection_domain(cx, &child, Some(Parent { index, depth }), pds),
            "virtual_machine" => {
                let vm = virtual_machine(cx, &child, cpu);
                if pds[index].vm.is_some() {
                    child.error(
                        cx,
                        "only one 'virtual_machine' element is allowed per protection domain",
                    );
                } else {
                    pds[index].vm = Some(vm);
                }
            }
            "ioport" => x86_only(cx, &child),
            "cspace" => not_supported(cx, &child, "no user-managed capability slots"),
            _ => invalid_element(cx, &child),
        }
    }
    if !has_image {
        el.error(cx, "missing 'program_image' element");
    }
}

/// The attributes of a `<protection_domain>` (children not yet read).
fn pd_attributes(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, parent: Option<Parent>) -> RawPd {
    let name = el.required_text(cx, "name");
    if let Some(n) = &name {
        check_name(cx, el, n, true);
        if n == "monitor" {
            el.error(cx, "the protection domain name 'monitor' is reserved");
        }
    }
    let priority = priority(cx, el);
    let (budget, period) = budget_period(cx, el);
    let passive = el.boolean(cx, "passive").or(false).unwrap_or_default();
    let stack_size = el
        .number(cx, "stack_size")
        .or(DEFAULT_STACK_SIZE)
        .and_then(|s| stack_size(cx, el, s));
    let smc = el.boolean(cx, "smc").or(false).unwrap_or_default();
    let cpu = el
        .number(cx, "cpu")
        .or(0)
        .and_then(|c| el.fit_u32(cx, "cpu", c))
        .unwrap_or_default();
    let fpu = el.boolean(cx, "fpu").or(true).unwrap_or(true);
    if el.has("domain") {
        el.error(cx, "attribute 'domain' is not supported by vcpos (no domain scheduler)");
    }
    let (child_id, setvar_id) = match parent {
        Some(_) => (required_id(cx, el), el.text("setvar_id")),
        None => (None, None),
    };
    RawPd {
        name,
        priority,
        budget,
        period,
        passive,
        stack_size,
        cpu,
        smc,
        fpu,
        parent: parent.map(|p| p.index),
        child_id,
        setvar_id,
        program_image: None,
        maps: Vec::new(),
        irqs: Vec::new(),
        setvars: Vec::new(),
        vm: None,
        span: el.span.clone(),
    }
}

/// Checks a `stack_size` value: 0x1000..=0x1000000 and a multiple of 0x1000.
fn stack_size(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, size: u64) -> Option<u64> {
    if !(MIN_STACK_SIZE..=MAX_STACK_SIZE).contains(&size) {
        el.error(
            cx,
            format!("stack_size ({size:#x}) must be between {MIN_STACK_SIZE:#x} and {MAX_STACK_SIZE:#x}"),
        );
        None
    } else if !size.is_multiple_of(PAGE_SIZE) {
        el.error(
            cx,
            format!("stack_size ({size:#x}) must be a multiple of {PAGE_SIZE:#x}"),
        );
        None
    } else {
        Some(size)
    }
}

/// `<program_image>`.
fn program_image(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> Option<ProgramImage> {
    el.check_attributes(cx, &["path", "path_for_symbols"]);
    no_children(cx, el);
    let path = el.required_text(cx, "path")?;
    Some(ProgramImage {
        path,
        path_for_symbols: el.text("path_for_symbols"),
        span: el.span.clone(),
    })
}

/// `<map>` in a PD, or in a VM (`in_vm`: no `setvar_*`).
fn map(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, in_vm: bool) -> RawMap {
    const SETVARS: [&str; 3] = ["setvar_vaddr", "setvar_size", "setvar_prefill_size"];
    el.check_attributes(
        cx,
        &["mr", "vaddr", "perms", "cached", SETVARS[0], SETVARS[1], SETVARS[2]],
    );
    no_children(cx, el);
    if in_vm {
        for attr in SETVARS.into_iter().filter(|a| el.has(a)) {
            el.error(
                cx,
                format!("invalid attribute '{attr}' (a virtual machine's map cannot patch symbols)"),
            );
        }
    }
    let mr = el.required_text(cx, "mr");
    let vaddr = el.required_number(cx, "vaddr");
    let perms = perms(cx, el, in_vm);
    let cached = el.boolean(cx, "cached").or(true).unwrap_or(true);
    let setvar = |name: &str| if in_vm { None } else { el.text(name) };
    RawMap {
        mr,
        vaddr,
        perms,
        cached,
        setvar_vaddr: setvar(SETVARS[0]),
        setvar_size: setvar(SETVARS[1]),
        setvar_prefill_size: setvar(SETVARS[2]),
        span: el.span.clone(),
    }
}

/// `perms`: letters from `r`, `w`, `x` (default `rw`); no write-only maps, and no
/// PD map both writable and executable (W^X, a vcpos rule). A VM's guest RAM may be
/// `rwx`: the guest enforces its own permissions in its stage-1 tables.
fn perms(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, in_vm: bool) -> Perms {
    let default = Perms {
        read: true,
        write: true,
        execute: false,
    };
    let Some(text) = el.node.attribute("perms") else {
        return default;
    };
    let mut p = Perms {
        read: false,
        write: false,
        execute: false,
    };
    for c in text.chars() {
        match c {
            'r' => p.read = true,
            'w' => p.write = true,
            'x' => p.execute = true,
            _ => {
                el.error(cx, format!("invalid perms '{text}': only 'r', 'w' and 'x' are allowed"));
                return default;
            }
        }
    }
    if text.is_empty() {
        el.error(cx, "perms must not be empty (use some of 'r', 'w' and 'x')");
    } else if p.write && p.execute && !in_vm {
        el.error(
            cx,
            format!("perms '{text}' violates W^X: a map cannot be both writable and executable"),
        );
    } else if p.write && !p.read {
        el.error(
            cx,
            format!("perms '{text}' is write-only, which is not allowed (use 'rw')"),
        );
    }
    p
}

/// `<irq>` (the ARM form; x86 attributes are refused).
fn irq(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> RawIrq {
    let mut allowed = vec!["irq", "id", "trigger", "setvar_id"];
    allowed.extend(X86_IRQ_ATTRS);
    el.check_attributes(cx, &allowed);
    no_children(cx, el);
    let mut x86 = false;
    for attr in X86_IRQ_ATTRS.into_iter().filter(|a| el.has(a)) {
        el.error(cx, format!("attribute '{attr}' is x86-only, not supported on aarch64"));
        x86 = true;
    }
    let irq = match el.number(cx, "irq") {
        Attr::Absent if !x86 => {
            el.missing(cx, "irq");
            None
        }
        n => n.valid().and_then(|n| el.fit_u32(cx, "irq", n)),
    };
    let id = required_id(cx, el);
    let trigger = match el.node.attribute("trigger") {
        None | Some("level") => Trigger::Level,
        Some("edge") => Trigger::Edge,
        Some(other) => {
            el.error(cx, format!("trigger must be either 'level' or 'edge', got '{other}'"));
            Trigger::Level
        }
    };
    RawIrq {
        irq,
        id,
        trigger,
        setvar_id: el.text("setvar_id"),
        span: el.span.clone(),
    }
}

/// `<setvar>`.
fn setvar(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>) -> RawSetVar {
    el.check_attributes(cx, &["symbol", "region_paddr"]);
    no_children(cx, el);
    let symbol = el.required_text(cx, "symbol");
    let region_paddr = el.required_text(cx, "region_paddr");
    RawSetVar {
        symbol,
        region_paddr,
        span: el.span.clone(),
    }
}

/// `<virtual_machine>` inside a PD whose core is `pd_cpu`.
fn virtual_machine(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, pd_cpu: u32) -> RawVm {
    el.check_attributes(cx, &["name", "priority", "budget", "period"]);
    let name = el.required_text(cx, "name");
    if let Some(n) = &name {
        check_name(cx, el, n, true);
    }
    let priority = priority(cx, el);
    let (budget, period) = budget_period(cx, el);
    let mut vm = RawVm {
        name,
        priority,
        budget,
        period,
        vcpus: Vec::new(),
        maps: Vec::new(),
        span: el.span.clone(),
    };
    for node in el.children() {
        let child = Elem::new(cx, node);
        match child.tag {
            "vcpu" => vm.vcpus.push(vcpu(cx, &child, pd_cpu)),
            "map" => vm.maps.push(map(cx, &child, true)),
            _ => invalid_element(cx, &child),
        }
    }
    if vm.vcpus.is_empty() {
        el.error(cx, "a virtual machine needs at least one 'vcpu' element");
    }
    vm
}

/// `<vcpu>`; `cpu` defaults to the VMM PD's core (Microkit 2.3).
fn vcpu(cx: &mut Cx<'_, '_>, el: &Elem<'_, '_>, pd_cpu: u32) -> RawVcpu {
    el.check_attributes(cx, &["id", "cpu", "setvar_id"]);
    no_children(cx, el);
    let id = required_id(cx, el);
    let cpu = el
        .number(cx, "cpu")
        .or(u64::from(pd_cpu))
        .and_then(|c| el.fit_u32(cx, "cpu", c));
    RawVcpu {
        id,
        cpu: cpu.unwrap_or(pd_cpu),
        setvar_id: el.text("setvar_id"),
        span: el.span.clone(),
    }
}
