//! The output image: an ELF64 executable that QEMU's `-kernel` loader boots.
//!
//! QEMU loads every `PT_LOAD` at its physical address (`p_paddr`) and jumps to `e_entry`
//! with the MMU off, so the file has one `PT_LOAD` per placed piece with
//! `p_vaddr = p_paddr` = physical address, and `e_entry` is the kernel's physical entry.
//! There are no sections. File offsets are congruent to addresses modulo 4 KiB
//! (`p_align` = 4 KiB), as ELF loaders expect. Written with `object::write::elf::Writer`,
//! which gets the header encoding right; the content is ours.

use object::elf;
use object::write::elf::{FileHeader, ProgramHeader, Writer};
use object::Endianness;

/// One piece of physical memory with initial contents.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Physical address.
    pub paddr: u64,
    /// Bytes loaded at `paddr`.
    pub data: Vec<u8>,
    /// Size in memory (>= `data.len()`; QEMU zero-fills the rest).
    pub memsz: u64,
    /// `p_flags` (informational: `PF_R`/`PF_W`/`PF_X`).
    pub flags: u32,
    /// What it is (for errors).
    pub what: String,
}

const ALIGN: u64 = 0x1000;

/// Writes the image. Pieces may come in any order; they must not overlap.
pub fn write_image(entry: u64, pieces: &[Piece]) -> Result<Vec<u8>, String> {
    let mut order: Vec<&Piece> = pieces.iter().collect();
    order.sort_by_key(|p| p.paddr);
    for w in order.windows(2) {
        if w[0].paddr.saturating_add(w[0].memsz) > w[1].paddr {
            return Err(format!(
                "internal error: image pieces '{}' at 0x{:x} and '{}' at 0x{:x} overlap",
                w[0].what, w[0].paddr, w[1].what, w[1].paddr
            ));
        }
    }
    let mut buffer = Vec::new();
    let mut w = Writer::new(Endianness::Little, true, &mut buffer);
    w.reserve_file_header();
    w.reserve_program_headers(order.len() as u32);
    let mut offsets = Vec::with_capacity(order.len());
    for p in &order {
        let cur = w.reserved_len();
        let off = if p.data.is_empty() {
            cur
        } else {
            cur + (p.paddr.wrapping_sub(cur) % ALIGN)
        };
        w.reserve_until(off);
        w.reserve(p.data.len() as u64, 1);
        offsets.push(off);
    }
    w.write_file_header(&FileHeader {
        os_abi: elf::ELFOSABI_NONE,
        abi_version: 0,
        e_type: elf::ET_EXEC,
        e_machine: elf::EM_AARCH64,
        e_entry: entry,
        e_flags: elf::FileFlags(0),
    })
    .map_err(|e| format!("cannot write the image header: {e}"))?;
    w.write_align_program_headers();
    for (p, &off) in order.iter().zip(&offsets) {
        w.write_program_header(&ProgramHeader {
            p_type: elf::PT_LOAD,
            p_flags: elf::ProgramFlags(p.flags),
            p_offset: off,
            p_vaddr: p.paddr,
            p_paddr: p.paddr,
            p_filesz: p.data.len() as u64,
            p_memsz: p.memsz.max(p.data.len() as u64),
            p_align: ALIGN,
        });
    }
    for (p, &off) in order.iter().zip(&offsets) {
        w.pad_until(off);
        w.write(&p.data);
    }
    Ok(buffer)
}
