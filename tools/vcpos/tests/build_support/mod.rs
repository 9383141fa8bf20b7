//! Shared fixtures for the image-builder tests: tiny ELF files written with `object`'s
//! ELF writer, `System` values built in code, and readers for the output image.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader as _, ProgramHeader as _};
use object::write::elf::{FileHeader, ProgramHeader, SectionHeader, Sym as WSym, Writer};
use object::Endianness;
use vcpos_abi::bootinfo::BootInfo;
use vcpos_abi::KERNEL_VIRT_OFFSET;
use vcpos_tool::board::Board;
use vcpos_tool::image::{BuildOptions, Built, Config};
use vcpos_tool::model::*;

/// A loadable segment of a fixture ELF.
#[derive(Clone, Debug)]
pub struct Seg {
    pub vaddr: u64,
    pub paddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    /// `PF_*` bits.
    pub flags: u32,
}

/// A symbol of a fixture ELF.
#[derive(Clone, Debug)]
pub struct FSym {
    pub name: String,
    pub vaddr: u64,
    pub size: u64,
}

/// A fixture ELF.
#[derive(Clone, Debug)]
pub struct ElfSpec {
    pub entry: u64,
    pub segs: Vec<Seg>,
    pub syms: Vec<FSym>,
    pub machine: u16,
    pub e_type: u16,
}

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

impl ElfSpec {
    /// Removes symbol `name`.
    pub fn without(mut self, name: &str) -> Self {
        self.syms.retain(|s| s.name != name);
        self
    }

    /// Adds (or replaces) a symbol.
    pub fn with_sym(mut self, name: &str, vaddr: u64, size: u64) -> Self {
        self.syms.retain(|s| s.name != name);
        self.syms.push(FSym {
            name: name.into(),
            vaddr,
            size,
        });
        self
    }

    /// The symbol's address.
    pub fn sym(&self, name: &str) -> u64 {
        self.syms.iter().find(|s| s.name == name).unwrap().vaddr
    }

    /// Writes the ELF file: one section per segment (PROGBITS, or NOBITS if it has no
    /// file bytes), a symbol table, and the program headers.
    pub fn bytes(&self) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut w = Writer::new(Endianness::Little, true, &mut buf);
        w.reserve_file_header();
        w.reserve_program_headers(self.segs.len() as u32);
        let mut offs = Vec::new();
        let mut sec_idx = Vec::new();
        let mut sec_names = Vec::new();
        for (i, s) in self.segs.iter().enumerate() {
            let cur = w.reserved_len();
            let off = cur + (s.vaddr.wrapping_sub(cur) % 0x1000);
            w.reserve_until(off);
            w.reserve(s.data.len() as u64, 1);
            offs.push(off);
            sec_idx.push(w.reserve_section_index());
            sec_names.push(w.add_section_name(format!(".seg{i}").leak().as_bytes()));
        }
        w.reserve_null_symbol_index();
        let mut str_ids = Vec::new();
        for s in &self.syms {
            let sec = self
                .segs
                .iter()
                .position(|g| g.vaddr <= s.vaddr && s.vaddr < g.vaddr + g.memsz)
                .map(|i| sec_idx[i]);
            w.reserve_symbol_index(sec);
            str_ids.push(w.add_string(s.name.clone().leak().as_bytes()));
        }
        w.reserve_symtab_section_index();
        w.reserve_symtab();
        w.reserve_strtab_section_index();
        w.reserve_strtab().unwrap();
        w.reserve_shstrtab_section_index();
        w.reserve_shstrtab().unwrap();
        w.reserve_section_headers();

        w.write_file_header(&FileHeader {
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            e_type: elf::FileType(self.e_type),
            e_machine: elf::Machine(self.machine),
            e_entry: self.entry,
            e_flags: elf::FileFlags(0),
        })
        .unwrap();
        w.write_align_program_headers();
        for (s, &off) in self.segs.iter().zip(&offs) {
            w.write_program_header(&ProgramHeader {
                p_type: elf::PT_LOAD,
                p_flags: elf::ProgramFlags(s.flags),
                p_offset: off,
                p_vaddr: s.vaddr,
                p_paddr: s.paddr,
                p_filesz: s.data.len() as u64,
                p_memsz: s.memsz,
                p_align: 0x1000,
            });
        }
        for (s, &off) in self.segs.iter().zip(&offs) {
            w.pad_until(off);
            w.write(&s.data);
        }
        w.write_null_symbol();
        for (s, id) in self.syms.iter().zip(&str_ids) {
            let sec = self
                .segs
                .iter()
                .position(|g| g.vaddr <= s.vaddr && s.vaddr < g.vaddr + g.memsz)
                .map(|i| sec_idx[i].0);
            w.write_symbol(&WSym {
                section: sec,
                st_name: w.string_offset(Some(*id)),
                st_info: elf::SymbolInfo::new(elf::STB_GLOBAL, elf::STT_OBJECT),
                st_other: elf::SymbolOther(0),
                st_shndx: if sec.is_some() {
                    elf::SymbolSection(0)
                } else {
                    elf::SHN_ABS
                },
                st_value: s.vaddr,
                st_size: s.size,
            });
        }
        w.write_strtab();
        w.write_shstrtab();
        w.write_null_section_header();
        for (i, s) in self.segs.iter().enumerate() {
            let mut flags = elf::SHF_ALLOC;
            if s.flags & W != 0 {
                flags |= elf::SHF_WRITE;
            }
            if s.flags & X != 0 {
                flags |= elf::SHF_EXECINSTR;
            }
            w.write_section_header(&SectionHeader {
                sh_name: w.section_name_offset(Some(sec_names[i])),
                sh_type: if s.data.is_empty() {
                    elf::SHT_NOBITS
                } else {
                    elf::SHT_PROGBITS
                },
                sh_flags: flags,
                sh_addr: s.vaddr,
                sh_offset: offs[i],
                sh_size: if s.data.is_empty() {
                    s.memsz
                } else {
                    s.data.len() as u64
                },
                sh_link: 0,
                sh_info: 0,
                sh_addralign: 1,
                sh_entsize: 0,
            });
        }
        w.write_symtab_section_header(1);
        w.write_strtab_section_header();
        w.write_shstrtab_section_header();
        assert_eq!(w.reserved_len(), w.len());
        buf
    }
}

/// Address of the PD fixture's data segment.
pub const DATA: u64 = 0x20_2000;
/// Setvar targets in the PD fixture: `var0`..`var7`, 8 bytes each, in .data.
pub const VARS: u64 = DATA + 0x80;
/// Fill byte of the PD fixture's .data (so patched bytes stand out).
pub const DATA_FILL: u8 = 0xaa;

/// A PD image linked at 0x200000: text (r-x), rodata (r--), data+bss (rw-), with the
/// microkit globals, `var0..var7` (u64), `small_var` (u32) in .data and `bss_var` in .bss.
pub fn pd_elf() -> ElfSpec {
    let text: Vec<u8> = (0..0x60).flat_map(|_| 0xd503_201fu32.to_le_bytes()).collect();
    let rodata = b"rodata of the fixture PD".to_vec();
    let data = vec![DATA_FILL; 0x100];
    let mut syms = vec![
        FSym {
            name: "microkit_name".into(),
            vaddr: DATA,
            size: 64,
        },
        FSym {
            name: "microkit_passive".into(),
            vaddr: DATA + 0x40,
            size: 1,
        },
        FSym {
            name: "microkit_irqs".into(),
            vaddr: DATA + 0x48,
            size: 8,
        },
        FSym {
            name: "microkit_notifications".into(),
            vaddr: DATA + 0x50,
            size: 8,
        },
        FSym {
            name: "microkit_pps".into(),
            vaddr: DATA + 0x58,
            size: 8,
        },
        FSym {
            name: "microkit_ioports".into(),
            vaddr: DATA + 0x60,
            size: 8,
        },
        FSym {
            name: "small_var".into(),
            vaddr: DATA + 0x70,
            size: 4,
        },
        FSym {
            name: "bss_var".into(),
            vaddr: DATA + 0x200,
            size: 8,
        },
    ];
    for i in 0..8 {
        syms.push(FSym {
            name: format!("var{i}"),
            vaddr: VARS + 8 * i,
            size: 8,
        });
    }
    ElfSpec {
        entry: 0x20_0000,
        segs: vec![
            Seg {
                vaddr: 0x20_0000,
                paddr: 0x20_0000,
                memsz: text.len() as u64,
                data: text,
                flags: R | X,
            },
            Seg {
                vaddr: 0x20_1000,
                paddr: 0x20_1000,
                memsz: rodata.len() as u64,
                data: rodata,
                flags: R,
            },
            Seg {
                vaddr: DATA,
                paddr: DATA,
                data,
                memsz: 0x1900,
                flags: R | W,
            },
        ],
        syms,
        machine: elf::EM_AARCH64.0,
        e_type: elf::ET_EXEC.0,
    }
}

/// Physical address of the kernel fixture's text.
pub const KERNEL_TEXT: u64 = 0x4020_0000;
/// Offset of the kernel's entry point in its text.
pub const KERNEL_ENTRY_OFF: u64 = 0x40;

/// A kernel linked at physical + KERNEL_VIRT_OFFSET: text at 0x40200000, data (with
/// the two boot-info symbols) and bss after it.
pub fn kernel_elf() -> ElfSpec {
    let text = vec![0x11u8; 0x1000];
    let data = vec![0x22u8; 0x100];
    let v = |p: u64| p + KERNEL_VIRT_OFFSET;
    ElfSpec {
        entry: v(KERNEL_TEXT + KERNEL_ENTRY_OFF),
        segs: vec![
            Seg {
                vaddr: v(KERNEL_TEXT),
                paddr: KERNEL_TEXT,
                memsz: 0x1000,
                data: text,
                flags: R | X,
            },
            Seg {
                vaddr: v(KERNEL_TEXT + 0x1000),
                paddr: KERNEL_TEXT + 0x1000,
                data,
                memsz: 0x5000,
                flags: R | W,
            },
        ],
        syms: vec![
            FSym {
                name: "VCPOS_BOOT_INFO_PADDR".into(),
                vaddr: v(KERNEL_TEXT + 0x1000),
                size: 8,
            },
            FSym {
                name: "VCPOS_BOOT_INFO_SIZE".into(),
                vaddr: v(KERNEL_TEXT + 0x1008),
                size: 8,
            },
        ],
        machine: elf::EM_AARCH64.0,
        e_type: elf::ET_EXEC.0,
    }
}

/// A directory for one test's files, holding `vcpos-kernel` and `pd.elf`.
pub struct Fixture {
    pub dir: PathBuf,
}

impl Fixture {
    /// A fresh directory named after the test.
    pub fn new(test: &str) -> Fixture {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("build-tests").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let f = Fixture { dir };
        f.write("vcpos-kernel", &kernel_elf().bytes());
        f.write("pd.elf", &pd_elf().bytes());
        f
    }

    /// Writes a file into the fixture directory.
    pub fn write(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.dir.join(name), bytes).unwrap();
    }

    /// Build options searching this directory.
    pub fn opts(&self, config: Config) -> BuildOptions {
        BuildOptions {
            config,
            search_paths: vec![self.dir.clone()],
            kernel: None,
        }
    }
}

/// The QEMU virt board from kernel-config/.
pub fn board() -> Board {
    vcpos_tool::board::load("qemu_virt_aarch64", None).unwrap()
}

/// A span on `line` of "test.system".
pub fn span(line: u32) -> Span {
    Span {
        file: "test.system".into(),
        line,
        col: 5,
    }
}

/// A root PD with defaults (priority 100, 1000 us budget, image `pd.elf`).
pub fn pd(name: &str, line: u32) -> ProtectionDomain {
    ProtectionDomain {
        name: name.into(),
        priority: 100,
        budget_us: 1000,
        period_us: 1000,
        passive: false,
        stack_size: 0x2000,
        cpu: 0,
        smc: false,
        fpu: true,
        parent: None,
        child_id: None,
        setvar_id: None,
        program_image: ProgramImage {
            path: "pd.elf".into(),
            path_for_symbols: None,
            span: span(line + 1),
        },
        maps: vec![],
        irqs: vec![],
        setvars: vec![],
        virtual_machine: None,
        span: span(line),
    }
}

/// A memory region without a fixed address.
pub fn mr(name: &str, size: u64, page_size: u64, line: u32) -> MemoryRegion {
    MemoryRegion {
        name: name.into(),
        size,
        page_size,
        phys_addr: None,
        prefill_path: None,
        span: span(line),
    }
}

/// A read-write cached map of region `mr` at `vaddr`.
pub fn map(mr: usize, vaddr: u64, line: u32) -> Map {
    Map {
        mr,
        vaddr,
        perms: Perms {
            read: true,
            write: true,
            execute: false,
        },
        cached: true,
        setvar_vaddr: None,
        setvar_size: None,
        setvar_prefill_size: None,
        span: span(line),
    }
}

/// An IRQ.
pub fn irq(irq: u32, id: u8, line: u32) -> Irq {
    Irq {
        irq,
        id,
        trigger: Trigger::Level,
        setvar_id: None,
        span: span(line),
    }
}

/// A channel end.
pub fn end(pd: usize, id: u8, pp: bool, notify: bool, line: u32) -> ChannelEnd {
    ChannelEnd {
        pd,
        id,
        pp,
        notify,
        setvar_id: None,
        span: span(line),
    }
}

/// A channel.
pub fn channel(a: ChannelEnd, b: ChannelEnd, line: u32) -> Channel {
    Channel {
        ends: [a, b],
        span: span(line),
    }
}

/// A system.
pub fn system(pds: Vec<ProtectionDomain>, mrs: Vec<MemoryRegion>, channels: Vec<Channel>) -> System {
    System {
        path: "test.system".into(),
        memory_regions: mrs,
        pds,
        channels,
    }
}

/// The `PT_LOAD` segments of an output image.
pub struct ImageView {
    pub entry: u64,
    pub machine: u16,
    pub e_type: u16,
    /// (p_vaddr, p_paddr, p_offset, data, memsz)
    pub segs: Vec<(u64, u64, u64, Vec<u8>, u64)>,
    pub shnum: u16,
}

impl ImageView {
    /// Parses an image with `object`.
    pub fn parse(bytes: &[u8]) -> ImageView {
        let h = elf::FileHeader64::<Endianness>::parse(bytes).unwrap();
        let e = h.endian().unwrap();
        assert_eq!(e, Endianness::Little);
        let segs = h
            .program_headers(e, bytes)
            .unwrap()
            .iter()
            .filter(|p| p.p_type(e) == elf::PT_LOAD)
            .map(|p| {
                (
                    p.p_vaddr(e),
                    p.p_paddr(e),
                    p.p_offset(e),
                    p.data(e, bytes).unwrap().to_vec(),
                    p.p_memsz(e),
                )
            })
            .collect();
        ImageView {
            entry: h.e_entry(e),
            machine: h.e_machine(e).0,
            e_type: h.e_type(e).0,
            segs,
            shnum: h.e_shnum(e),
        }
    }

    /// `len` bytes of physical memory at `paddr` as QEMU would load them (zero past
    /// `p_filesz`), if a single segment covers them.
    pub fn read_phys(&self, paddr: u64, len: u64) -> Option<Vec<u8>> {
        let (_, base, _, data, memsz) = self.segs.iter().find(|s| s.1 <= paddr && paddr + len <= s.1 + s.4)?;
        let _ = memsz;
        Some(
            (paddr..paddr + len)
                .map(|a| data.get((a - base) as usize).copied().unwrap_or(0))
                .collect(),
        )
    }
}

/// Translates PD `pd`'s virtual address through its maps in the blob.
pub fn virt_to_phys(built: &Built, pd: usize, vaddr: u64) -> Option<u64> {
    let info = BootInfo::parse(&built.blob).unwrap();
    let d = info.pd(pd);
    let found = info.pd_maps(&d).find(|m| m.vaddr <= vaddr && vaddr < m.vaddr + m.size);
    found.map(|m| m.paddr + (vaddr - m.vaddr))
}

/// Reads `len` bytes of PD `pd`'s memory at `vaddr` from the output image.
pub fn read_pd(built: &Built, pd: usize, vaddr: u64, len: u64) -> Vec<u8> {
    let paddr = virt_to_phys(built, pd, vaddr).expect("vaddr is mapped");
    ImageView::parse(&built.image)
        .read_phys(paddr, len)
        .expect("bytes are in the image")
}

/// Reads a u64 of PD `pd`'s memory from the output image.
pub fn read_pd_u64(built: &Built, pd: usize, vaddr: u64) -> u64 {
    u64::from_le_bytes(read_pd(built, pd, vaddr, 8).try_into().unwrap())
}

/// The rendered errors, one per line (for assertion messages).
pub fn render(errors: &[vcpos_tool::diag::Diagnostic]) -> String {
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n")
}

/// Asserts exactly one error mentions `needle`, at element `tag` on `line`.
pub fn assert_error(errors: &[vcpos_tool::diag::Diagnostic], needle: &str, tag: &str, line: u32) {
    let hits: Vec<_> = errors.iter().filter(|e| e.message.contains(needle)).collect();
    assert_eq!(
        hits.len(),
        1,
        "expected one error containing {needle:?}, got:\n{}",
        render(errors)
    );
    assert_eq!(hits[0].tag.as_deref(), Some(tag), "{}", hits[0]);
    assert_eq!(hits[0].span.as_ref().map(|s| s.line), Some(line), "{}", hits[0]);
}
