//! Assembling the image's contents: the loadable pieces of physical memory (kernel
//! segments, boot-info blob, PD program-image runs, prefilled regions) for the writer,
//! and the physical memory map of everything placed, for the report and tests.

use vcpos_abi::vspace::PAGE_SIZE;

use super::blob::MrInit;
use super::inputs::Kernel;
use super::layout::Layout;
use super::symbols::PdImage;
use super::vspace::PdSpace;
use super::writer;
use crate::model::System;

/// One entry of the physical memory map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhysEntry {
    /// Physical address.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// What it is.
    pub what: String,
    /// The PD it belongs to, if any.
    pub pd: Option<usize>,
    /// The memory region it is, if any.
    pub mr: Option<usize>,
    /// Whether the allocator placed it in RAM (false for the kernel and device memory).
    pub allocated: bool,
}
/// What [`assemble`] needs.
pub struct Inputs<'a> {
    /// The system.
    pub system: &'a System,
    /// The kernel, patched.
    pub kernel: &'a Kernel,
    /// The serialised boot-info blob.
    pub blob: &'a [u8],
    /// The physical layout.
    pub layout: &'a Layout,
    /// Size of the page-table pool.
    pub pt_pool_size: u64,
    /// PD program images, patched.
    pub images: &'a [PdImage],
    /// PD address-space plans.
    pub spaces: &'a [PdSpace],
    /// Prefill bytes per memory region.
    pub prefill_data: &'a [Option<Vec<u8>>],
    /// How each memory region starts out.
    pub mr_init: &'a [MrInit],
}

/// The image's loadable pieces and the physical memory map (sorted by address).
pub fn assemble(inp: &Inputs) -> (Vec<writer::Piece>, Vec<PhysEntry>) {
    let Inputs {
        system,
        kernel,
        blob,
        layout,
        pt_pool_size,
        images,
        spaces,
        prefill_data,
        mr_init,
    } = *inp;
    let mut pieces = Vec::new();
    let mut map = Vec::new();
    for s in &kernel.image.segments {
        pieces.push(writer::Piece {
            paddr: s.paddr,
            data: s.data.clone(),
            memsz: s.memsz,
            flags: s.p_flags,
            what: format!("kernel segment {}", s.index),
        });
        map.push(PhysEntry {
            paddr: s.paddr,
            size: s.memsz,
            what: format!(
                "kernel segment {} ({}) of '{}'",
                s.index,
                s.perms.text(),
                kernel.path.display()
            ),
            pd: None,
            mr: None,
            allocated: false,
        });
    }
    pieces.push(writer::Piece {
        paddr: layout.blob,
        data: blob.to_vec(),
        memsz: blob.len() as u64,
        flags: object::elf::PF_R.0,
        what: "boot information".into(),
    });
    map.push(PhysEntry {
        paddr: layout.blob,
        size: blob.len() as u64,
        what: "boot information".into(),
        pd: None,
        mr: None,
        allocated: true,
    });
    map.push(PhysEntry {
        paddr: layout.pt_pool,
        size: pt_pool_size,
        what: "page-table pool".into(),
        pd: None,
        mr: None,
        allocated: true,
    });
    for (i, (img, space)) in images.iter().zip(spaces).enumerate() {
        let name = &system.pds[i].name;
        let place = &layout.pds[i];
        for (ri, run) in space.runs.iter().enumerate() {
            let segs = run
                .segments
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            pieces.push(writer::Piece {
                paddr: place.runs[ri],
                data: run.bytes(&img.image),
                memsz: run.size,
                flags: (object::elf::PF_R | object::elf::PF_W).0,
                what: format!("PD '{name}' run {ri}"),
            });
            map.push(PhysEntry {
                paddr: place.runs[ri],
                size: run.size,
                what: format!("PD '{name}' program image 0x{:x}.. (ELF segments {segs})", run.vaddr),
                pd: Some(i),
                mr: None,
                allocated: true,
            });
        }
        map.push(PhysEntry {
            paddr: place.stack,
            size: system.pds[i].stack_size,
            what: format!("PD '{name}' stack"),
            pd: Some(i),
            mr: None,
            allocated: true,
        });
        map.push(PhysEntry {
            paddr: place.ipc_buffer,
            size: PAGE_SIZE,
            what: format!("PD '{name}' IPC buffer"),
            pd: Some(i),
            mr: None,
            allocated: true,
        });
    }
    for (i, mr) in system.memory_regions.iter().enumerate() {
        let paddr = layout.mrs[i];
        if let Some(data) = &prefill_data[i] {
            pieces.push(writer::Piece {
                paddr,
                data: data.clone(),
                memsz: mr.size,
                flags: (object::elf::PF_R | object::elf::PF_W).0,
                what: format!("memory region '{}'", mr.name),
            });
        }
        let kind = match mr_init[i] {
            MrInit::Device => "device memory".to_string(),
            MrInit::Zeroed => "zeroed".to_string(),
            MrInit::Prefilled(n) => format!(
                "prefilled with 0x{n:x} bytes of '{}'",
                mr.prefill_path.as_deref().unwrap_or("")
            ),
        };
        let fixed = if mr.phys_addr.is_some() { ", fixed address" } else { "" };
        map.push(PhysEntry {
            paddr,
            size: mr.size,
            what: format!("memory region '{}' ({kind}{fixed})", mr.name),
            pd: None,
            mr: Some(i),
            allocated: mr.phys_addr.is_none(),
        });
    }
    map.sort_by_key(|e| e.paddr);
    (pieces, map)
}
