//! The last stage: a checked [`RawSystem`] (no errors) → the [`System`] model,
//! plus warnings.
//!
//! Runs only when no errors were found, so every value the model needs is known;
//! if one is not (a bug in an earlier stage), [`system`] returns `None` rather than
//! inventing a value.

use std::path::PathBuf;

use super::ast::{RawChannel, RawEnd, RawMap, RawPd, RawSystem, RawVm};
use super::check::Checked;
use crate::model::{
    Channel, ChannelEnd, Irq, Map, MemoryRegion, ProtectionDomain, SetVar, System, Vcpu, VirtualMachine,
};

/// Builds the model of a system that passed every check.
pub fn system(raw: &RawSystem, checked: &Checked<'_>, path: PathBuf) -> Option<System> {
    let memory_regions = raw
        .mrs
        .iter()
        .zip(&checked.page_sizes)
        .map(|(mr, page_size)| {
            Some(MemoryRegion {
                name: mr.name.clone()?,
                size: mr.size?,
                page_size: (*page_size)?,
                phys_addr: mr.phys_addr.clone().valid(),
                prefill_path: mr.prefill_path.clone(),
                span: mr.span.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let pds = raw
        .pds
        .iter()
        .map(|pd| protection_domain(pd, checked))
        .collect::<Option<Vec<_>>>()?;
    let channels = raw
        .channels
        .iter()
        .map(|c| channel(c, checked))
        .collect::<Option<Vec<_>>>()?;
    Some(System {
        path,
        memory_regions,
        pds,
        channels,
    })
}

/// Warnings for a valid system: memory regions that no map uses.
pub fn warnings(system: &System) -> Vec<String> {
    let pd_maps = system.pds.iter().flat_map(|pd| &pd.maps);
    let vm_maps = system
        .pds
        .iter()
        .filter_map(|pd| pd.virtual_machine.as_ref())
        .flat_map(|vm| &vm.maps);
    let mut used = vec![false; system.memory_regions.len()];
    for map in pd_maps.chain(vm_maps) {
        used[map.mr] = true;
    }
    system
        .memory_regions
        .iter()
        .zip(used)
        .filter(|(_, used)| !used)
        .map(|(mr, _)| {
            format!(
                "WARNING: unused memory region '{}'",
                crate::diag::escape_controls(&mr.name)
            )
        })
        .collect()
}

/// One PD.
fn protection_domain(pd: &RawPd, checked: &Checked<'_>) -> Option<ProtectionDomain> {
    let maps = pd.maps.iter().map(|m| map(m, checked)).collect::<Option<Vec<_>>>()?;
    let irqs = pd
        .irqs
        .iter()
        .map(|i| {
            Some(Irq {
                irq: i.irq?,
                id: i.id?,
                trigger: i.trigger,
                setvar_id: i.setvar_id.clone(),
                span: i.span.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let setvars = pd
        .setvars
        .iter()
        .map(|s| {
            Some(SetVar {
                symbol: s.symbol.clone()?,
                region_paddr: checked.names.mr(s.region_paddr.as_ref())?,
                span: s.span.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let virtual_machine = match &pd.vm {
        Some(vm) => Some(virtual_machine(vm, checked)?),
        None => None,
    };
    Some(ProtectionDomain {
        name: pd.name.clone()?,
        priority: pd.priority?,
        budget_us: pd.budget?,
        period_us: pd.period?,
        passive: pd.passive,
        stack_size: pd.stack_size?,
        cpu: pd.cpu,
        smc: pd.smc,
        fpu: pd.fpu,
        parent: pd.parent,
        child_id: if pd.parent.is_some() { Some(pd.child_id?) } else { None },
        setvar_id: pd.setvar_id.clone(),
        program_image: pd.program_image.clone()?,
        maps,
        irqs,
        setvars,
        virtual_machine,
        span: pd.span.clone(),
    })
}

/// One map.
fn map(map: &RawMap, checked: &Checked<'_>) -> Option<Map> {
    Some(Map {
        mr: checked.names.mr(map.mr.as_ref())?,
        vaddr: map.vaddr?,
        perms: map.perms,
        cached: map.cached,
        setvar_vaddr: map.setvar_vaddr.clone(),
        setvar_size: map.setvar_size.clone(),
        setvar_prefill_size: map.setvar_prefill_size.clone(),
        span: map.span.clone(),
    })
}

/// One VM.
fn virtual_machine(vm: &RawVm, checked: &Checked<'_>) -> Option<VirtualMachine> {
    let vcpus = vm
        .vcpus
        .iter()
        .map(|v| {
            Some(Vcpu {
                id: v.id?,
                cpu: v.cpu,
                setvar_id: v.setvar_id.clone(),
                span: v.span.clone(),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let maps = vm.maps.iter().map(|m| map(m, checked)).collect::<Option<Vec<_>>>()?;
    Some(VirtualMachine {
        name: vm.name.clone()?,
        priority: vm.priority?,
        budget_us: vm.budget?,
        period_us: vm.period?,
        vcpus,
        maps,
        span: vm.span.clone(),
    })
}

/// One channel.
fn channel(channel: &RawChannel, checked: &Checked<'_>) -> Option<Channel> {
    let [a, b] = channel.ends.as_slice() else {
        return None;
    };
    Some(Channel {
        ends: [end(a, checked)?, end(b, checked)?],
        span: channel.span.clone(),
    })
}

/// One channel end.
fn end(end: &RawEnd, checked: &Checked<'_>) -> Option<ChannelEnd> {
    Some(ChannelEnd {
        pd: checked.names.pd(end.pd.as_ref())?,
        id: end.id?,
        pp: end.pp,
        notify: end.notify,
        setvar_id: end.setvar_id.clone(),
        span: end.span.clone(),
    })
}
