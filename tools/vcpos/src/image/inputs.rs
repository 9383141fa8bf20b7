//! Loading the build's inputs: the kernel ELF, every PD's program image (and symbol
//! file), and the memory regions' prefill files, with their checks.
//!
//! Every problem becomes a [`Diagnostic`], located at the system-description element
//! that named the file when there is one.

use std::path::PathBuf;

use vcpos_abi::bootinfo::{SYMBOL_PADDR, SYMBOL_SIZE};
use vcpos_abi::vspace::user_map_limit;
use vcpos_abi::KERNEL_VIRT_OFFSET;

use super::blob::MrInit;
use super::elf::{self, ElfImage};
use super::symbols::PdImage;
use super::{board_check, BuildOptions, KERNEL_NAME};
use crate::board::Board;
use crate::diag::Diagnostic;
use crate::model::System;

fn located_program_image(system: &System, pd: usize, msg: String) -> Diagnostic {
    let p = &system.pds[pd];
    Diagnostic::at(msg, "program_image", &p.program_image.span)
}

/// Loads and checks PD `i`'s program image (and its symbol file).
/// `ram_size` bounds what its segments may need (so a hostile ELF cannot make the
/// builder allocate for a terabyte of pages).
pub fn load_pd(system: &System, i: usize, search: &[PathBuf], ram_size: u64) -> Result<PdImage, Vec<Diagnostic>> {
    let pd = &system.pds[i];
    let pi = &pd.program_image;
    let path = elf::resolve(&pi.path, search).ok_or_else(|| {
        vec![located_program_image(
            system,
            i,
            format!("unable to find program image: '{}'", pi.path),
        )]
    })?;
    let image = elf::load(&path).map_err(|m| {
        vec![located_program_image(
            system,
            i,
            format!("program image '{}' is not usable: {m}", path.display()),
        )]
    })?;
    let mut errors: Vec<Diagnostic> = image
        .check_user(user_map_limit(pd.stack_size))
        .into_iter()
        .map(|m| {
            located_program_image(
                system,
                i,
                format!("program image '{}' is not usable: {m}", path.display()),
            )
        })
        .collect();
    let need = image.segments.iter().fold(0u64, |a, s| a.saturating_add(s.memsz));
    if need > ram_size {
        errors.push(located_program_image(
            system,
            i,
            format!(
                "program image '{}' is not usable: its segments need 0x{need:x} bytes, more \
                 than the board's RAM (0x{ram_size:x})",
                path.display()
            ),
        ));
    }
    let (symbols_path, symbols) = match &pi.path_for_symbols {
        None => (None, image.symbols.clone()),
        Some(name) => match elf::resolve(name, search) {
            None => {
                errors.push(located_program_image(
                    system,
                    i,
                    format!("unable to find program image for symbols: '{name}'"),
                ));
                (None, Default::default())
            }
            Some(p) => match elf::load(&p) {
                Ok(s) => (Some(p), s.symbols),
                Err(m) => {
                    errors.push(located_program_image(
                        system,
                        i,
                        format!("program image for symbols '{}' is not usable: {m}", p.display()),
                    ));
                    (None, Default::default())
                }
            },
        },
    };
    if errors.is_empty() {
        Ok(PdImage {
            path,
            image,
            symbols_path,
            symbols,
        })
    } else {
        Err(errors)
    }
}

/// The loaded kernel: image, physical entry, and the addresses of the two boot-info symbols.
pub struct Kernel {
    /// Where it was found.
    pub path: PathBuf,
    /// The loaded (later patched) kernel ELF.
    pub image: ElfImage,
    /// Physical entry point.
    pub entry: u64,
    /// Virtual address of [`SYMBOL_PADDR`].
    pub sym_paddr: u64,
    /// Virtual address of [`SYMBOL_SIZE`].
    pub sym_size: u64,
}

/// Finds (`--kernel`, else `vcpos-kernel` in the search paths), loads and checks the
/// kernel: segments linked at physical + `KERNEL_VIRT_OFFSET` (or at physical), no
/// physical overlaps, an entry point inside a segment, and the two boot-info symbols
/// as patchable `u64`s.
pub fn load_kernel(opts: &BuildOptions) -> Result<Kernel, Vec<Diagnostic>> {
    let path = match &opts.kernel {
        Some(p) => p.clone(),
        None => opts
            .search_paths
            .iter()
            .map(|d| d.join(KERNEL_NAME))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                vec![Diagnostic::plain(format!(
                    "unable to find kernel image '{KERNEL_NAME}' in the search paths (give --kernel)"
                ))]
            })?,
    };
    let bad = |m: String| Diagnostic::plain(format!("kernel image '{}' is not usable: {m}", path.display()));
    let image = elf::load(&path).map_err(|m| vec![bad(m)])?;
    let mut errors: Vec<Diagnostic> = image
        .overlap_errors(|s| s.paddr, "physical")
        .into_iter()
        .map(bad)
        .collect();
    if image.segments.is_empty() {
        errors.push(bad("it has no loadable segments".into()));
    }
    for s in &image.segments {
        if s.vaddr != s.paddr && s.vaddr != s.paddr.wrapping_add(KERNEL_VIRT_OFFSET) {
            errors.push(bad(format!(
                "segment {} is linked at 0x{:x} but loaded at 0x{:x}: kernel segments must be linked \
                 at their physical address plus 0x{KERNEL_VIRT_OFFSET:x}",
                s.index, s.vaddr, s.paddr
            )));
        }
    }
    let entry = image
        .segments
        .iter()
        .find(|s| s.vaddr <= image.entry && image.entry < s.vend())
        .map(|s| s.paddr + (image.entry - s.vaddr));
    if entry.is_none() {
        errors.push(bad(format!(
            "its entry point 0x{:x} is not in a loadable segment",
            image.entry
        )));
    }
    let mut sym = |name: &str| match image.check_patch(&image.symbols, name, 8) {
        Ok(v) => v,
        Err(e) => {
            let hint = if matches!(e, elf::PatchError::NotInFile { .. }) {
                ""
            } else {
                " (it must be a u64 in .data)"
            };
            errors.push(bad(format!("could not patch symbol '{name}': {e}{hint}")));
            0
        }
    };
    let sym_paddr = sym(SYMBOL_PADDR);
    let sym_size = sym(SYMBOL_SIZE);
    match entry {
        Some(entry) if errors.is_empty() => Ok(Kernel {
            path,
            image,
            entry,
            sym_paddr,
            sym_size,
        }),
        _ => Err(errors),
    }
}

/// How each memory region starts out, and the prefill bytes of those that are prefilled.
pub type Prefills = (Vec<MrInit>, Vec<Option<Vec<u8>>>);

/// Finds, reads and checks each memory region's prefill file. Returns how each region
/// starts out (device memory, zeroed RAM, prefilled RAM) and the prefill bytes.
pub fn load_prefills(system: &System, board: &Board, search: &[PathBuf]) -> Result<Prefills, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut init = Vec::new();
    let mut data = Vec::new();
    for mr in &system.memory_regions {
        let in_ram = match mr.phys_addr {
            None => true,
            Some(p) => board_check::overlaps(p, mr.size, board.memory.ram_base, board.memory.ram_size),
        };
        let Some(name) = &mr.prefill_path else {
            init.push(if in_ram { MrInit::Zeroed } else { MrInit::Device });
            data.push(None);
            continue;
        };
        let bytes = match elf::resolve(name, search) {
            None => Err(format!("unable to find prefill file: '{name}'")),
            Some(p) => match std::fs::metadata(&p) {
                // Do not read a file that cannot fit anyway.
                Ok(m) if m.len() > mr.size => Err(format!(
                    "prefill file '{name}' is 0x{:x} bytes, larger than memory region '{}' (0x{:x} bytes)",
                    m.len(),
                    mr.name,
                    mr.size
                )),
                _ => std::fs::read(&p).map_err(|e| format!("cannot read prefill file '{}': {e}", p.display())),
            },
        };
        let bytes = bytes.and_then(|b| {
            if b.is_empty() {
                Err(format!("prefill file '{name}' is empty"))
            } else if b.len() as u64 > mr.size {
                Err(format!(
                    "prefill file '{name}' is 0x{:x} bytes, larger than memory region '{}' (0x{:x} bytes)",
                    b.len(),
                    mr.name,
                    mr.size
                ))
            } else {
                Ok(b)
            }
        });
        match bytes {
            Ok(b) => {
                init.push(MrInit::Prefilled(b.len() as u64));
                data.push(Some(b));
            }
            Err(m) => {
                errors.push(Diagnostic::at(m, "memory_region", &mr.span));
                init.push(MrInit::Zeroed);
                data.push(None);
            }
        }
    }
    if errors.is_empty() {
        Ok((init, data))
    } else {
        Err(errors)
    }
}
