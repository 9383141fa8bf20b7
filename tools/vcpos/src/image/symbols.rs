//! Symbol patching, Microkit style: the `microkit_*` globals every PD image defines and
//! the `setvar*` symbols the system description names.
//!
//! [`plan`] checks every symbol (exists, right size, in file-backed bytes) before the
//! layout is computed, so errors arrive early and all together; [`apply`] writes the
//! values once physical addresses (for `setvar region_paddr`) are known.

use std::collections::HashMap;

use vcpos_abi::PD_NAME_LEN;

use super::elf::{ElfImage, PatchError, Symbol};
use crate::diag::Diagnostic;
use crate::model::{Span, System};

/// A PD's loaded program image and the symbol table used to patch it.
#[derive(Clone, Debug)]
pub struct PdImage {
    /// The program image as resolved on disk.
    pub path: std::path::PathBuf,
    /// The loaded (and later patched) program image.
    pub image: ElfImage,
    /// The file symbols were taken from (`path_for_symbols`), if not the image itself.
    pub symbols_path: Option<std::path::PathBuf>,
    /// Symbols, from `symbols_path` or from the image.
    pub symbols: HashMap<String, Symbol>,
}

/// The value a symbol receives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A little-endian `u64`.
    Word(u64),
    /// Raw bytes (the name, the passive flag).
    Bytes(Vec<u8>),
    /// The physical address of memory region `.0` (known after layout).
    RegionPaddr(usize),
}

impl Value {
    fn len(&self) -> u64 {
        match self {
            Value::Bytes(b) => b.len() as u64,
            Value::Word(_) | Value::RegionPaddr(_) => 8,
        }
    }
}

/// One checked patch, waiting for its value.
#[derive(Clone, Debug)]
pub struct Patch {
    /// PD index.
    pub pd: usize,
    /// Symbol name.
    pub symbol: String,
    /// Its address in the PD's image.
    pub vaddr: u64,
    /// What to write.
    pub value: Value,
    /// Why (for the report), e.g. "setvar_vaddr of map 'buf'".
    pub reason: String,
}

/// A patch as applied (for the report and tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Patched {
    /// PD index.
    pub pd: usize,
    /// Symbol name.
    pub symbol: String,
    /// Its address.
    pub vaddr: u64,
    /// The bytes written.
    pub bytes: Vec<u8>,
    /// Why.
    pub reason: String,
}

/// Names of the globals every PD image must define, with their sizes.
pub const MICROKIT_GLOBALS: [(&str, u64); 6] = [
    ("microkit_name", PD_NAME_LEN as u64),
    ("microkit_passive", 1),
    ("microkit_irqs", 8),
    ("microkit_notifications", 8),
    ("microkit_pps", 8),
    ("microkit_ioports", 8),
];

struct Want<'a> {
    pd: usize,
    symbol: &'a str,
    value: Value,
    reason: String,
    /// `setvar`s get Microkit's setvar wording; microkit globals a plainer one.
    setvar: bool,
    tag: &'a str,
    span: &'a Span,
}

/// Every patch the system asks for, checked against the PD images. `prefill_len` gives
/// the size of each memory region's prefill file (for `setvar_prefill_size`).
pub fn plan(system: &System, images: &[PdImage], prefill_len: &[Option<u64>]) -> Result<Vec<Patch>, Vec<Diagnostic>> {
    let mut wants: Vec<Want> = Vec::new();
    for (i, pd) in system.pds.iter().enumerate() {
        let mask = |ids: &mut dyn Iterator<Item = u8>| {
            ids.fold(0u64, |m, id| m | 1u64.checked_shl(u32::from(id)).unwrap_or(0))
        };
        let mut name = vec![0u8; PD_NAME_LEN];
        let n = pd.name.len().min(PD_NAME_LEN);
        name[..n].copy_from_slice(&pd.name.as_bytes()[..n]);
        let ends = || {
            system
                .channels
                .iter()
                .flat_map(|c| c.ends.iter())
                .filter(move |e| e.pd == i)
        };
        let globals = [
            Value::Bytes(name),
            Value::Bytes(vec![u8::from(pd.passive)]),
            Value::Word(mask(&mut pd.irqs.iter().map(|q| q.id))),
            Value::Word(mask(&mut ends().filter(|e| e.notify).map(|e| e.id))),
            Value::Word(mask(&mut ends().filter(|e| e.pp).map(|e| e.id))),
            Value::Word(0),
        ];
        for ((symbol, _), value) in MICROKIT_GLOBALS.iter().zip(globals) {
            wants.push(Want {
                pd: i,
                symbol,
                value,
                reason: "microkit global".into(),
                setvar: false,
                tag: "program_image",
                span: &pd.program_image.span,
            });
        }
        for map in &pd.maps {
            let mr = &system.memory_regions[map.mr];
            if let Some(s) = &map.setvar_vaddr {
                wants.push(Want {
                    pd: i,
                    symbol: s,
                    value: Value::Word(map.vaddr),
                    reason: format!("setvar_vaddr of map '{}'", mr.name),
                    setvar: true,
                    tag: "map",
                    span: &map.span,
                });
            }
            if let Some(s) = &map.setvar_size {
                wants.push(Want {
                    pd: i,
                    symbol: s,
                    value: Value::Word(mr.size),
                    reason: format!("setvar_size of map '{}'", mr.name),
                    setvar: true,
                    tag: "map",
                    span: &map.span,
                });
            }
            if let Some(s) = &map.setvar_prefill_size {
                wants.push(Want {
                    pd: i,
                    symbol: s,
                    value: Value::Word(prefill_len.get(map.mr).copied().flatten().unwrap_or(0)),
                    reason: format!("setvar_prefill_size of map '{}'", mr.name),
                    setvar: true,
                    tag: "map",
                    span: &map.span,
                });
            }
        }
        for irq in &pd.irqs {
            if let Some(s) = &irq.setvar_id {
                wants.push(Want {
                    pd: i,
                    symbol: s,
                    value: Value::Word(u64::from(irq.id)),
                    reason: format!("setvar_id of irq {}", irq.irq),
                    setvar: true,
                    tag: "irq",
                    span: &irq.span,
                });
            }
        }
        for end in ends() {
            if let Some(s) = &end.setvar_id {
                wants.push(Want {
                    pd: i,
                    symbol: s,
                    value: Value::Word(u64::from(end.id)),
                    reason: format!("setvar_id of channel end {}", end.id),
                    setvar: true,
                    tag: "end",
                    span: &end.span,
                });
            }
        }
        for child in system.pds.iter().filter(|c| c.parent == Some(i)) {
            if let (Some(s), Some(id)) = (&child.setvar_id, child.child_id) {
                wants.push(Want {
                    pd: i,
                    symbol: s,
                    value: Value::Word(u64::from(id)),
                    reason: format!("setvar_id of child '{}'", child.name),
                    setvar: true,
                    tag: "protection_domain",
                    span: &child.span,
                });
            }
        }
        for sv in &pd.setvars {
            wants.push(Want {
                pd: i,
                symbol: &sv.symbol,
                value: Value::RegionPaddr(sv.region_paddr),
                reason: format!("region_paddr of '{}'", system.memory_regions[sv.region_paddr].name),
                setvar: true,
                tag: "setvar",
                span: &sv.span,
            });
        }
    }

    let mut errors = Vec::new();
    let mut patches = Vec::new();
    let mut seen: HashMap<(usize, &str), ()> = HashMap::new();
    for w in wants {
        let img = &images[w.pd];
        let file = img.symbols_path.as_ref().unwrap_or(&img.path).display().to_string();
        if seen.insert((w.pd, w.symbol), ()).is_some() {
            errors.push(Diagnostic::at(
                format!("setvar on symbol '{}' already exists", w.symbol),
                w.tag,
                w.span,
            ));
            continue;
        }
        match img.image.check_patch(&img.symbols, w.symbol, w.value.len()) {
            Ok(vaddr) => patches.push(Patch {
                pd: w.pd,
                symbol: w.symbol.to_string(),
                vaddr,
                value: w.value,
                reason: w.reason,
            }),
            Err(e) => {
                let msg = match e {
                    PatchError::NotFound if w.setvar => {
                        format!("could not patch symbol '{}': it is not defined in '{file}'", w.symbol)
                    }
                    PatchError::NotFound => format!(
                        "could not patch symbol '{}': it is not defined in '{file}' (every PD image \
                         must define the microkit_* globals)",
                        w.symbol
                    ),
                    PatchError::WrongSize { actual, .. } if w.setvar => {
                        format!(
                            "setvar to non-word size symbol '{}' (size {actual}) in '{file}'",
                            w.symbol
                        )
                    }
                    PatchError::WrongSize { actual, expected } => format!(
                        "could not patch symbol '{}' in '{file}': its size is {actual} bytes, expected \
                         {expected}",
                        w.symbol
                    ),
                    PatchError::NotInFile { vaddr } => format!(
                        "could not patch symbol '{}' at 0x{vaddr:x}: it is not in the file-backed \
                         bytes of a loadable segment of '{}' (is it in .bss?)",
                        w.symbol,
                        img.path.display()
                    ),
                };
                errors.push(Diagnostic::at(msg, w.tag, w.span));
            }
        }
    }
    if errors.is_empty() {
        Ok(patches)
    } else {
        Err(errors)
    }
}

/// Writes every patch into its PD's image; `mr_paddrs` gives memory-region addresses.
pub fn apply(patches: &[Patch], images: &mut [PdImage], mr_paddrs: &[u64]) -> Result<Vec<Patched>, Diagnostic> {
    let mut done = Vec::with_capacity(patches.len());
    for p in patches {
        let bytes = match &p.value {
            Value::Word(v) => v.to_le_bytes().to_vec(),
            Value::Bytes(b) => b.clone(),
            Value::RegionPaddr(mr) => mr_paddrs[*mr].to_le_bytes().to_vec(),
        };
        images[p.pd]
            .image
            .write(p.vaddr, &bytes)
            .map_err(|e| Diagnostic::plain(format!("internal error: checked patch of '{}' failed: {e}", p.symbol)))?;
        done.push(Patched {
            pd: p.pd,
            symbol: p.symbol.clone(),
            vaddr: p.vaddr,
            bytes,
            reason: p.reason.clone(),
        });
    }
    Ok(done)
}
