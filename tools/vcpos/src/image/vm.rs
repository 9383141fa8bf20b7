//! Virtual machines: each `<vcpu>` of a `<virtual_machine>` becomes a kernel thread of
//! kind vCPU, after all PDs, with the VM's maps as its stage-2 (guest-physical) maps
//! and no capabilities; its VMM PD gets the vCPU capability in slots 266+id and 330+id.

use vcpos_abi::bootinfo::{self, MapDesc, PdDesc};
use vcpos_abi::vspace::{attr, VRange, LARGE_PAGE_SIZE};
use zerocopy::FromZeros;

use crate::diag::Diagnostic;
use crate::model::{Map, System, Vcpu, VirtualMachine};

/// Most kernel threads (PDs plus vCPUs): `vcpos_kernel_core::kernel::MAX_THREADS`.
pub const MAX_THREADS: usize = 64;

/// One vCPU thread.
#[derive(Clone, Copy, Debug)]
pub struct VcpuThread<'a> {
    /// Index of the VMM PD.
    pub vmm: usize,
    /// The VM.
    pub vm: &'a VirtualMachine,
    /// The vCPU.
    pub vcpu: &'a Vcpu,
    /// Kernel thread index (after all PDs).
    pub thread: usize,
}

/// Every vCPU thread of the system, in PD order then vCPU order.
pub fn vcpu_threads(system: &System) -> Vec<VcpuThread<'_>> {
    let mut out = Vec::new();
    for (i, pd) in system.pds.iter().enumerate() {
        if let Some(vm) = &pd.virtual_machine {
            for vcpu in &vm.vcpus {
                let thread = system.pds.len() + out.len();
                out.push(VcpuThread {
                    vmm: i,
                    vm,
                    vcpu,
                    thread,
                });
            }
        }
    }
    out
}

/// Too many threads for the kernel is an error at the offending VM.
pub fn check_thread_count(system: &System) -> Vec<Diagnostic> {
    let threads = vcpu_threads(system);
    match threads.iter().find(|t| t.thread >= MAX_THREADS) {
        Some(t) => vec![Diagnostic::at(
            format!(
                "too many threads: {} protection domains and {} vCPUs, the kernel holds at most {MAX_THREADS}",
                system.pds.len(),
                threads.len()
            ),
            "virtual_machine",
            &t.vm.span,
        )],
        None => Vec::new(),
    }
}

fn map_attrs(system: &System, m: &Map) -> u32 {
    let mr = &system.memory_regions[m.mr];
    (if m.perms.read { attr::READ } else { 0 })
        | (if m.perms.write { attr::WRITE } else { 0 })
        | (if m.perms.execute { attr::EXECUTE } else { 0 })
        | (if m.cached { attr::CACHED } else { 0 })
        | (if mr.page_size == LARGE_PAGE_SIZE {
            attr::LARGE
        } else {
            0
        })
}

/// The stage-2 maps of a VM, sorted by guest-physical address.
pub fn vm_maps(system: &System, vm: &VirtualMachine, mr_paddrs: &[u64]) -> Vec<(MapDesc, usize)> {
    let mut maps: Vec<(MapDesc, usize)> = vm
        .maps
        .iter()
        .map(|m| {
            let d = MapDesc {
                vaddr: m.vaddr,
                paddr: mr_paddrs.get(m.mr).copied().unwrap_or(0),
                size: system.memory_regions[m.mr].size,
                attrs: map_attrs(system, m),
                reserved: 0,
            };
            (d, m.mr)
        })
        .collect();
    maps.sort_by_key(|m| m.0.vaddr);
    maps
}

/// Translation tables a VM's stage-2 space needs (an upper bound).
pub fn vm_page_tables(system: &System, vm: &VirtualMachine) -> usize {
    let ranges: Vec<VRange> = vm_maps(system, vm, &[])
        .iter()
        .map(|(d, _)| VRange {
            vaddr: d.vaddr,
            size: d.size,
            large: d.attrs & attr::LARGE != 0,
        })
        .collect();
    vcpos_abi::vspace::page_tables_needed(&ranges)
}

/// The descriptor of a vCPU thread whose maps start at `maps_first`.
pub fn vcpu_desc(t: &VcpuThread<'_>, maps_first: u32, maps_count: u32) -> PdDesc {
    let mut d = PdDesc::new_zeroed();
    d.name = PdDesc::encode_name(&vcpu_name(t));
    d.kind = bootinfo::THREAD_VCPU;
    d.budget_us = t.vm.budget_us;
    d.period_us = t.vm.period_us;
    d.maps_first = maps_first;
    d.maps_count = maps_count;
    d.priority = t.vm.priority;
    d.parent = t.vmm as u8;
    d.child_id = t.vcpu.id;
    d.cpu = t.vcpu.cpu as u8;
    d
}

/// `<vm name>:vcpu<id>`, the thread's name in kernel messages and the report.
pub fn vcpu_name(t: &VcpuThread<'_>) -> String {
    format!("{}:vcpu{}", t.vm.name, t.vcpu.id)
}
