//! Loading ELF files (PD program images and the kernel) and patching their symbols.
//!
//! An [`ElfImage`] owns the file-backed bytes of every `PT_LOAD` segment, so patching a
//! symbol changes what ends up in the boot image. Reading uses the `object` crate's
//! low-level ELF API; every malformed input becomes an error message (the caller adds
//! the location), never a panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _, Sym as _};
use object::Endianness;

/// Segment permission bits as in `p_flags` (`PF_R`, `PF_W`, `PF_X`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegPerms {
    /// Readable.
    pub read: bool,
    /// Writable.
    pub write: bool,
    /// Executable.
    pub execute: bool,
}

impl SegPerms {
    /// The union of two sets of permissions.
    pub fn union(self, other: SegPerms) -> SegPerms {
        SegPerms {
            read: self.read || other.read,
            write: self.write || other.write,
            execute: self.execute || other.execute,
        }
    }

    /// `rwx`-style text.
    pub fn text(self) -> String {
        format!(
            "{}{}{}",
            if self.read { 'r' } else { '-' },
            if self.write { 'w' } else { '-' },
            if self.execute { 'x' } else { '-' }
        )
    }
}

/// One `PT_LOAD` segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Index of its program header (for messages).
    pub index: usize,
    /// Virtual address.
    pub vaddr: u64,
    /// Physical (load) address.
    pub paddr: u64,
    /// Size in memory (>= `data.len()`).
    pub memsz: u64,
    /// The file-backed bytes (`p_filesz` of them).
    pub data: Vec<u8>,
    /// Permissions.
    pub perms: SegPerms,
    /// Raw `p_flags`.
    pub p_flags: u32,
}

impl Segment {
    /// End of the segment in memory (exclusive).
    pub fn vend(&self) -> u64 {
        self.vaddr + self.memsz
    }
}

/// A defined symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Address (`st_value`).
    pub vaddr: u64,
    /// Size in bytes (`st_size`).
    pub size: u64,
}

/// A loaded executable: its entry point, loadable segments and symbol table.
#[derive(Clone, Debug)]
pub struct ElfImage {
    /// Entry point (`e_entry`).
    pub entry: u64,
    /// `PT_LOAD` segments with a non-zero memory size, in program-header order.
    pub segments: Vec<Segment>,
    /// Defined symbols by name (a global wins over a local of the same name).
    pub symbols: HashMap<String, Symbol>,
}

/// Why a symbol could not be patched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchError {
    /// No such symbol.
    NotFound,
    /// The symbol's size is not the size of the value.
    WrongSize {
        /// The symbol's size.
        actual: u64,
        /// The value's size.
        expected: u64,
    },
    /// The symbol's bytes are not all file-backed bytes of one loadable segment.
    NotInFile {
        /// The symbol's address.
        vaddr: u64,
    },
}

impl std::fmt::Display for PatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatchError::NotFound => write!(f, "it is not defined"),
            PatchError::WrongSize { actual, expected } => {
                write!(f, "its size is {actual} bytes, expected {expected}")
            }
            PatchError::NotInFile { vaddr } => write!(
                f,
                "0x{vaddr:x} is not in the file-backed bytes of a loadable segment (is it in .bss?)"
            ),
        }
    }
}

/// Looks `name` up Microkit-style: in each search directory in order, then relative to
/// the current directory. Absolute names are used as they are.
pub fn resolve(name: &str, search_paths: &[PathBuf]) -> Option<PathBuf> {
    search_paths
        .iter()
        .map(|dir| dir.join(name))
        .chain(std::iter::once(PathBuf::from(name)))
        .find(|p| p.is_file())
}

/// Reads an ELF file: header checks (ELF64, little-endian, AArch64, executable),
/// segments and symbols. Messages do not name the file; the caller does.
pub fn parse(bytes: &[u8]) -> Result<ElfImage, String> {
    let header = elf::FileHeader64::<Endianness>::parse(bytes).map_err(|e| format!("not an ELF64 file ({e})"))?;
    let endian = header.endian().map_err(|e| format!("bad ELF header ({e})"))?;
    if endian != Endianness::Little {
        return Err("not a little-endian ELF file".into());
    }
    let machine = header.e_machine(endian);
    if machine != elf::EM_AARCH64 {
        return Err(format!("not an AArch64 ELF file (e_machine {})", machine.0));
    }
    let e_type = header.e_type(endian);
    if e_type != elf::ET_EXEC {
        return Err(format!(
            "not an executable ELF file (e_type {}; position-independent and relocatable files \
             are not supported)",
            e_type.0
        ));
    }
    let phdrs = header
        .program_headers(endian, bytes)
        .map_err(|e| format!("bad program headers ({e})"))?;
    let mut segments = Vec::new();
    for (index, ph) in phdrs.iter().enumerate() {
        if ph.p_type(endian) != elf::PT_LOAD {
            continue;
        }
        let vaddr = ph.p_vaddr(endian);
        let paddr = ph.p_paddr(endian);
        let memsz = ph.p_memsz(endian);
        let filesz = ph.p_filesz(endian);
        if filesz > memsz {
            return Err(format!(
                "segment {index} has a file size (0x{filesz:x}) larger than its memory size \
                 (0x{memsz:x})"
            ));
        }
        if vaddr.checked_add(memsz).is_none() || paddr.checked_add(memsz).is_none() {
            return Err(format!("segment {index} wraps around the address space"));
        }
        if memsz == 0 {
            continue;
        }
        let data = ph
            .data(endian, bytes)
            .map_err(|_| format!("segment {index} lies outside the file"))?
            .to_vec();
        let flags = ph.p_flags(endian);
        let perms = SegPerms {
            read: flags.contains(elf::PF_R),
            write: flags.contains(elf::PF_W),
            execute: flags.contains(elf::PF_X),
        };
        segments.push(Segment {
            index,
            vaddr,
            paddr,
            memsz,
            data,
            perms,
            p_flags: flags.0,
        });
    }
    let symbols = parse_symbols(header, endian, bytes)?;
    Ok(ElfImage {
        entry: header.e_entry(endian),
        segments,
        symbols,
    })
}

fn parse_symbols(
    header: &elf::FileHeader64<Endianness>,
    endian: Endianness,
    bytes: &[u8],
) -> Result<HashMap<String, Symbol>, String> {
    let sections = header
        .sections(endian, bytes)
        .map_err(|e| format!("bad section headers ({e})"))?;
    let table = sections
        .symbols(endian, bytes, elf::SHT_SYMTAB)
        .map_err(|e| format!("bad symbol table ({e})"))?;
    let mut symbols: HashMap<String, (Symbol, bool)> = HashMap::new();
    for sym in table.iter() {
        if sym.st_shndx(endian) == elf::SHN_UNDEF {
            continue;
        }
        let ty = sym.st_type();
        if ty == elf::STT_SECTION || ty == elf::STT_FILE {
            continue;
        }
        let Ok(name) = sym.name(endian, table.strings()) else {
            continue;
        };
        let Ok(name) = std::str::from_utf8(name) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let global = sym.st_bind() != elf::STB_LOCAL;
        let s = Symbol {
            vaddr: sym.st_value(endian),
            size: sym.st_size(endian),
        };
        match symbols.get(name) {
            Some((_, true)) => {}
            Some((_, false)) if !global => {}
            _ => {
                symbols.insert(name.to_string(), (s, global));
            }
        }
    }
    Ok(symbols.into_iter().map(|(k, (s, _))| (k, s)).collect())
}

/// Reads and parses the ELF file at `path`.
pub fn load(path: &Path) -> Result<ElfImage, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
    parse(&bytes)
}

impl ElfImage {
    /// The rules for a PD program image: every segment below `limit` (the bottom of the
    /// stack's guard page), no segment both writable and executable, no two segments
    /// overlapping, at least one segment, and the entry point in an executable segment.
    pub fn check_user(&self, limit: u64) -> Vec<String> {
        let mut errors = Vec::new();
        if self.segments.is_empty() {
            errors.push("it has no loadable segments".to_string());
        }
        for s in &self.segments {
            if s.vend() > limit {
                errors.push(format!(
                    "segment {} [0x{:x}..0x{:x}) lies outside the PD's user address space (it \
                     must end at or below 0x{limit:x}, under the stack)",
                    s.index,
                    s.vaddr,
                    s.vend()
                ));
            }
            if s.perms.write && s.perms.execute {
                errors.push(format!(
                    "segment {} [0x{:x}..0x{:x}) is both writable and executable",
                    s.index,
                    s.vaddr,
                    s.vend()
                ));
            }
        }
        errors.extend(self.overlap_errors(|s| s.vaddr, "virtual"));
        if !self.segments.is_empty()
            && !self
                .segments
                .iter()
                .any(|s| s.perms.execute && s.vaddr <= self.entry && self.entry < s.vend())
        {
            errors.push(format!(
                "its entry point 0x{:x} is not in an executable segment",
                self.entry
            ));
        }
        errors
    }

    /// Errors for every pair of segments whose ranges (by `addr`) intersect.
    pub fn overlap_errors(&self, addr: impl Fn(&Segment) -> u64, what: &str) -> Vec<String> {
        let mut errors = Vec::new();
        for (i, a) in self.segments.iter().enumerate() {
            for b in &self.segments[i + 1..] {
                if super::board_check::overlaps(addr(a), a.memsz, addr(b), b.memsz) {
                    errors.push(format!(
                        "segments {} [0x{:x}..0x{:x}) and {} [0x{:x}..0x{:x}) overlap in {what} \
                         memory",
                        a.index,
                        addr(a),
                        addr(a) + a.memsz,
                        b.index,
                        addr(b),
                        addr(b) + b.memsz
                    ));
                }
            }
        }
        errors
    }

    /// Checks `symbol` (looked up in `symbols`, which may come from another file) can
    /// hold a value of `len` bytes in this image's file-backed bytes; returns its address.
    pub fn check_patch(&self, symbols: &HashMap<String, Symbol>, symbol: &str, len: u64) -> Result<u64, PatchError> {
        let sym = symbols.get(symbol).ok_or(PatchError::NotFound)?;
        if sym.size != len {
            return Err(PatchError::WrongSize {
                actual: sym.size,
                expected: len,
            });
        }
        self.locate(sym.vaddr, len)
            .ok_or(PatchError::NotInFile { vaddr: sym.vaddr })?;
        Ok(sym.vaddr)
    }

    /// The segment and offset of `[vaddr, vaddr+len)` when it lies in file-backed bytes.
    fn locate(&self, vaddr: u64, len: u64) -> Option<(usize, usize)> {
        let end = vaddr.checked_add(len)?;
        self.segments.iter().enumerate().find_map(|(i, s)| {
            let file_end = s.vaddr + s.data.len() as u64;
            (s.vaddr <= vaddr && end <= file_end).then(|| (i, (vaddr - s.vaddr) as usize))
        })
    }

    /// Writes `value` at `vaddr` (which [`ElfImage::check_patch`] accepted).
    pub fn write(&mut self, vaddr: u64, value: &[u8]) -> Result<(), PatchError> {
        let (seg, off) = self
            .locate(vaddr, value.len() as u64)
            .ok_or(PatchError::NotInFile { vaddr })?;
        self.segments[seg].data[off..off + value.len()].copy_from_slice(value);
        Ok(())
    }

    /// The file-backed bytes at `[vaddr, vaddr+len)`, if there are that many.
    pub fn read(&self, vaddr: u64, len: u64) -> Option<&[u8]> {
        let (seg, off) = self.locate(vaddr, len)?;
        Some(&self.segments[seg].data[off..off + len as usize])
    }
}
