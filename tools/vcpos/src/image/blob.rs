//! The boot-information blob: PD descriptors, maps, capabilities, IRQs and zero ranges,
//! serialised with `vcpos_abi::bootinfo::write`.
//!
//! The number of records never depends on physical addresses, so the same functions
//! run twice: once with a zero layout to size the blob (the layout needs its size), and
//! once with the real layout to fill it.

use vcpos_abi::bootinfo::{self, CapDesc, Header, IrqDesc, MapDesc, PdDesc, ZeroDesc};
use vcpos_abi::msg::IPC_BUFFER_VADDR;
use vcpos_abi::vspace::{self, attr, LARGE_PAGE_SIZE, PAGE_SIZE};
use zerocopy::FromZeros;

use super::caps::CapTables;
use super::elf::SegPerms;
use super::layout::PdPlacement;
use super::vspace::PdSpace;
use crate::model::System;

/// What a map is, for the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MapWhat {
    /// Part of program-image run `run`, made of ELF segments `segments`.
    Program {
        /// Run index.
        run: usize,
        /// Program-header indices.
        segments: Vec<usize>,
    },
    /// The stack.
    Stack,
    /// The IPC buffer.
    IpcBuffer,
    /// Memory region `mr` (a `<map>`).
    Region {
        /// Memory-region index.
        mr: usize,
    },
}

fn perm_attrs(p: SegPerms) -> u32 {
    (if p.read { attr::READ } else { 0 })
        | (if p.write { attr::WRITE } else { 0 })
        | (if p.execute { attr::EXECUTE } else { 0 })
}

/// PD `pd`'s maps, sorted by virtual address.
pub fn pd_maps(
    system: &System,
    pd: usize,
    space: &PdSpace,
    place: &PdPlacement,
    mr_paddrs: &[u64],
) -> Vec<(MapDesc, MapWhat)> {
    let p = &system.pds[pd];
    let mut maps = Vec::new();
    for (ri, run) in space.runs.iter().enumerate() {
        let paddr = place.runs.get(ri).copied().unwrap_or(0);
        for &(off, size, perms) in &run.pieces {
            maps.push((
                MapDesc {
                    vaddr: run.vaddr + off,
                    paddr: paddr + off,
                    size,
                    attrs: perm_attrs(perms) | attr::CACHED,
                    reserved: 0,
                },
                MapWhat::Program {
                    run: ri,
                    segments: run.segments.clone(),
                },
            ));
        }
    }
    maps.push((
        MapDesc {
            vaddr: vspace::stack_bottom(p.stack_size),
            paddr: place.stack,
            size: p.stack_size,
            attrs: attr::READ | attr::WRITE | attr::CACHED,
            reserved: 0,
        },
        MapWhat::Stack,
    ));
    maps.push((
        MapDesc {
            vaddr: IPC_BUFFER_VADDR,
            paddr: place.ipc_buffer,
            size: PAGE_SIZE,
            attrs: attr::READ | attr::WRITE | attr::CACHED,
            reserved: 0,
        },
        MapWhat::IpcBuffer,
    ));
    for m in &p.maps {
        let mr = &system.memory_regions[m.mr];
        let attrs = (if m.perms.read { attr::READ } else { 0 })
            | (if m.perms.write { attr::WRITE } else { 0 })
            | (if m.perms.execute { attr::EXECUTE } else { 0 })
            | (if m.cached { attr::CACHED } else { 0 })
            | (if mr.page_size == LARGE_PAGE_SIZE {
                attr::LARGE
            } else {
                0
            });
        maps.push((
            MapDesc {
                vaddr: m.vaddr,
                paddr: mr_paddrs.get(m.mr).copied().unwrap_or(0),
                size: mr.size,
                attrs,
                reserved: 0,
            },
            MapWhat::Region { mr: m.mr },
        ));
    }
    maps.sort_by_key(|m| m.0.vaddr);
    maps
}

/// Where a memory region's contents come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MrInit {
    /// Device memory outside RAM: left alone.
    Device,
    /// RAM, zeroed by the kernel.
    Zeroed,
    /// RAM, the first `.0` bytes come from the prefill file (the rest is zeroed).
    Prefilled(u64),
}

/// Every physical range the kernel zeroes at boot: `.bss` tails of program-image runs,
/// stacks, IPC buffers, and RAM memory regions (beyond any prefill).
pub fn zero_ranges(
    system: &System,
    spaces: &[PdSpace],
    places: &[PdPlacement],
    mr_paddrs: &[u64],
    mr_init: &[MrInit],
) -> Vec<ZeroDesc> {
    let mut zero = Vec::new();
    for (pd, (space, place)) in spaces.iter().zip(places).enumerate() {
        for (ri, run) in space.runs.iter().enumerate() {
            if run.file_len < run.size {
                let paddr = place.runs.get(ri).copied().unwrap_or(0);
                zero.push(ZeroDesc {
                    paddr: paddr + run.file_len,
                    size: run.size - run.file_len,
                });
            }
        }
        zero.push(ZeroDesc {
            paddr: place.stack,
            size: system.pds[pd].stack_size,
        });
        zero.push(ZeroDesc {
            paddr: place.ipc_buffer,
            size: PAGE_SIZE,
        });
    }
    for (i, mr) in system.memory_regions.iter().enumerate() {
        let paddr = mr_paddrs.get(i).copied().unwrap_or(0);
        match mr_init[i] {
            MrInit::Device => {}
            MrInit::Zeroed => zero.push(ZeroDesc { paddr, size: mr.size }),
            MrInit::Prefilled(len) if len < mr.size => zero.push(ZeroDesc {
                paddr: paddr + len,
                size: mr.size - len,
            }),
            MrInit::Prefilled(_) => {}
        }
    }
    zero
}

/// Size in bytes of a blob with these record counts.
pub fn blob_size(pds: usize, maps: usize, caps: usize, irqs: usize, zero: usize) -> u64 {
    use core::mem::size_of;
    (size_of::<Header>()
        + pds * size_of::<PdDesc>()
        + maps * size_of::<MapDesc>()
        + caps * size_of::<CapDesc>()
        + irqs * size_of::<IrqDesc>()
        + zero * size_of::<ZeroDesc>()) as u64
}

/// The blob's records, before serialisation (kept for the report and tests).
#[derive(Clone, Debug)]
pub struct Records {
    /// PD descriptors.
    pub pds: Vec<PdDesc>,
    /// All maps, PD by PD, with what each is.
    pub maps: Vec<(MapDesc, MapWhat)>,
    /// All capabilities, PD by PD.
    pub caps: Vec<CapDesc>,
    /// IRQs.
    pub irqs: Vec<IrqDesc>,
    /// Zero ranges.
    pub zero: Vec<ZeroDesc>,
}

/// Inputs of [`records`] that come from earlier stages.
pub struct RecordInputs<'a> {
    /// The system.
    pub system: &'a System,
    /// Entry point of each PD.
    pub entries: &'a [u64],
    /// Address-space plans.
    pub spaces: &'a [PdSpace],
    /// Capabilities and IRQs.
    pub caps: &'a CapTables,
    /// Physical placement of each PD.
    pub places: &'a [PdPlacement],
    /// Physical address of each memory region.
    pub mr_paddrs: &'a [u64],
    /// How each memory region is initialised.
    pub mr_init: &'a [MrInit],
}

/// Builds every record of the blob.
pub fn records(inp: &RecordInputs) -> Records {
    let mut out = Records {
        pds: Vec::new(),
        maps: Vec::new(),
        caps: Vec::new(),
        irqs: inp.caps.irqs.clone(),
        zero: Vec::new(),
    };
    for (i, p) in inp.system.pds.iter().enumerate() {
        let maps = pd_maps(inp.system, i, &inp.spaces[i], &inp.places[i], inp.mr_paddrs);
        let caps = &inp.caps.pds[i];
        // Start from zero so reserved (and future) fields are zero; kind 0 = a PD thread.
        let mut d = PdDesc::new_zeroed();
        d.name = PdDesc::encode_name(&p.name);
        d.entry = inp.entries[i];
        d.stack_top = vspace::STACK_TOP;
        d.ipc_buffer_paddr = inp.places[i].ipc_buffer;
        d.budget_us = p.budget_us;
        d.period_us = p.period_us;
        d.maps_first = out.maps.len() as u32;
        d.maps_count = maps.len() as u32;
        d.caps_first = out.caps.len() as u32;
        d.caps_count = caps.len() as u32;
        d.priority = p.priority;
        d.passive = u8::from(p.passive);
        d.parent = p.parent.map_or(bootinfo::NO_PARENT, |x| x as u8);
        d.child_id = p.child_id.unwrap_or(0);
        d.cpu = p.cpu as u8;
        out.pds.push(d);
        out.maps.extend(maps);
        out.caps.extend_from_slice(caps);
    }
    for t in super::vm::vcpu_threads(inp.system) {
        let maps = super::vm::vm_maps(inp.system, t.vm, inp.mr_paddrs);
        out.pds
            .push(super::vm::vcpu_desc(&t, out.maps.len() as u32, maps.len() as u32));
        out.maps
            .extend(maps.into_iter().map(|(d, mr)| (d, MapWhat::Region { mr })));
    }
    out.zero = zero_ranges(inp.system, inp.spaces, inp.places, inp.mr_paddrs, inp.mr_init);
    out
}

impl Records {
    /// Serialises the blob; `pt_pool` is the page-table pool's `(paddr, size)`.
    pub fn serialise(&self, pt_pool: (u64, u64)) -> Vec<u8> {
        let maps: Vec<MapDesc> = self.maps.iter().map(|m| m.0).collect();
        bootinfo::write(
            pt_pool.0, pt_pool.1, &self.pds, &maps, &self.caps, &self.irqs, &self.zero,
        )
    }

    /// Size of the serialised blob.
    pub fn size(&self) -> u64 {
        blob_size(
            self.pds.len(),
            self.maps.len(),
            self.caps.len(),
            self.irqs.len(),
            self.zero.len(),
        )
    }
}
