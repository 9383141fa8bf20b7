//! Building a bootable image and its report from a checked system.
//!
//! Stages, each a module with typed input and output:
//!
//! 1. [`board_check`]: board-dependent checks of the system (also used by `vcpos check`);
//! 2. [`inputs`] (with [`elf`]): load the kernel, every PD's program image and the
//!    prefill files, with ELF checks;
//! 3. [`vspace`]: each PD's address space (program-image runs, page-table count);
//! 4. [`caps`]: capability spaces and IRQ routing;
//! 5. [`symbols`]: check (then apply) the `microkit_*` and `setvar` patches;
//! 6. [`layout`]: the physical memory layout (pure, sizes in, addresses out);
//! 7. [`blob`]: the boot-information blob;
//! 8. [`pieces`] and [`writer`]: the loadable pieces and the output ELF image;
//! 9. [`report`]: the human-readable report.
//!
//! [`build`] runs them all and returns every error it can find, each located at the
//! system-description element it concerns when there is one.

pub mod blob;
pub mod board_check;
pub mod caps;
pub mod elf;
pub mod inputs;
pub mod layout;
pub mod pieces;
pub mod report;
pub mod symbols;
pub mod vm;
pub mod vspace;
pub mod writer;

use std::path::PathBuf;

use vcpos_abi::bootinfo::{SYMBOL_PADDR, SYMBOL_SIZE};
use vcpos_abi::vspace::PAGE_SIZE;

pub use board_check::check_board;
pub use pieces::PhysEntry;

use self::blob::{RecordInputs, Records};
use self::inputs::{load_kernel, load_pd, load_prefills};
use self::layout::{Item, Layout, LayoutError, PRange, PdPlacement};
use self::symbols::Patched;
use self::vspace::PdSpace;
use crate::board::Board;
use crate::diag::Diagnostic;
use crate::model::System;

/// `vcpos build` arguments (Microkit's tool is the model).
#[derive(clap::Args, Clone, Debug)]
pub struct BuildArgs {
    /// Board (a file in kernel-config/).
    #[arg(long, default_value = "qemu_virt_aarch64")]
    pub board: String,
    /// debug, release or benchmark.
    #[arg(long, default_value = "debug")]
    pub config: String,
    /// Directories where program images (and the kernel) are looked up.
    #[arg(long = "search-path", short = 's')]
    pub search_paths: Vec<PathBuf>,
    /// Kernel ELF (default: `vcpos-kernel` in the search paths).
    #[arg(long)]
    pub kernel: Option<PathBuf>,
    /// Output image.
    #[arg(long, short = 'o', default_value = "vcpos.img")]
    pub output: PathBuf,
    /// Output report.
    #[arg(long, short = 'r', default_value = "report.txt")]
    pub report: PathBuf,
    /// The system description.
    pub system: PathBuf,
}

/// Build configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    /// PDs get the debug console.
    Debug,
    /// No debug console.
    Release,
    /// Like debug (benchmarks print their results).
    Benchmark,
}

impl Config {
    /// Parses `debug`, `release` or `benchmark`.
    pub fn parse(s: &str) -> Result<Config, Diagnostic> {
        match s {
            "debug" => Ok(Config::Debug),
            "release" => Ok(Config::Release),
            "benchmark" => Ok(Config::Benchmark),
            _ => Err(Diagnostic::plain(format!(
                "unknown config '{s}' (expected debug, release or benchmark)"
            ))),
        }
    }
}

/// Everything [`build`] needs besides the system and the board.
#[derive(Clone, Debug)]
pub struct BuildOptions {
    /// Build configuration.
    pub config: Config,
    /// Where program images, prefill files and (by default) the kernel are found.
    pub search_paths: Vec<PathBuf>,
    /// The kernel ELF; default `vcpos-kernel` in the search paths.
    pub kernel: Option<PathBuf>,
}

/// Name of the kernel ELF looked up in the search paths.
pub const KERNEL_NAME: &str = "vcpos-kernel";

/// A kernel symbol the builder patched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPatch {
    /// Symbol name.
    pub symbol: String,
    /// Its virtual address in the kernel.
    pub vaddr: u64,
    /// The value written.
    pub value: u64,
}

/// A built image and everything that went into it.
#[derive(Clone, Debug)]
pub struct Built {
    /// The output ELF file.
    pub image: Vec<u8>,
    /// The report text.
    pub report: String,
    /// The serialised boot-info blob (also inside `image` at `layout.blob`).
    pub blob: Vec<u8>,
    /// The blob's records.
    pub records: Records,
    /// The physical layout.
    pub layout: Layout,
    /// The page-table pool `(paddr, size)`.
    pub pt_pool: (u64, u64),
    /// The kernel's physical entry point (`e_entry` of the image).
    pub entry: u64,
    /// Physical memory map, sorted by address.
    pub memory_map: Vec<PhysEntry>,
    /// PD symbols patched.
    pub patched: Vec<Patched>,
    /// Kernel symbols patched.
    pub kernel_patched: Vec<KernelPatch>,
}

fn layout_error(system: &System, e: &LayoutError) -> Diagnostic {
    let mr_at = |mr: usize, msg: String| {
        let m = &system.memory_regions[mr];
        Diagnostic::at(msg, "memory_region", &m.span)
    };
    match e {
        LayoutError::KernelOutsideRam { segment } => Diagnostic::plain(format!(
            "kernel segment [0x{:x}..0x{:x}) lies outside the RAM the board gives the kernel",
            segment.base,
            segment.end()
        )),
        LayoutError::FixedOverlapsKernel { mr, kernel } => {
            let m = &system.memory_regions[*mr];
            mr_at(
                *mr,
                format!(
                    "memory region '{}' [0x{:x}..0x{:x}) overlaps the RAM the kernel uses [0x{:x}..0x{:x})",
                    m.name,
                    m.phys_addr.unwrap_or(0),
                    m.phys_addr.unwrap_or(0).saturating_add(m.size),
                    kernel.base,
                    kernel.end()
                ),
            )
        }
        LayoutError::FixedOverlap { a, b } => mr_at(
            *b,
            format!(
                "memory region '{}' overlaps memory region '{}' (both have fixed physical addresses)",
                system.memory_regions[*b].name, system.memory_regions[*a].name
            ),
        ),
        LayoutError::OutOfRam {
            item,
            size,
            needed,
            available,
        } => {
            let what = match *item {
                Item::BootInfo => "the boot information".to_string(),
                Item::PageTables => "the page tables".to_string(),
                Item::ProgramImage { pd, .. } => {
                    format!("the program image of protection domain '{}'", system.pds[pd].name)
                }
                Item::Stack { pd } => format!("the stack of protection domain '{}'", system.pds[pd].name),
                Item::IpcBuffer { pd } => format!("the IPC buffer of protection domain '{}'", system.pds[pd].name),
                Item::MemoryRegion { mr } => format!("memory region '{}'", system.memory_regions[mr].name),
            };
            let msg = format!(
                "the system does not fit in RAM: no room for {what} (0x{size:x} bytes); the system \
                 needs 0x{needed:x} bytes of RAM above the kernel but only 0x{available:x} are free"
            );
            match *item {
                Item::MemoryRegion { mr } => mr_at(mr, msg),
                Item::ProgramImage { pd, .. } | Item::Stack { pd } | Item::IpcBuffer { pd } => {
                    Diagnostic::at(msg, "protection_domain", &system.pds[pd].span)
                }
                _ => Diagnostic::plain(msg),
            }
        }
    }
}

/// Builds the image: runs every stage and collects every error it can.
pub fn build(system: &System, board: &Board, opts: &BuildOptions) -> Result<Built, Vec<Diagnostic>> {
    let mut errors = check_board(system, board);
    if system.pds.len() > vcpos_abi::MAX_PDS {
        errors.push(Diagnostic::plain(format!(
            "too many protection domains ({}) defined. Maximum is {}.",
            system.pds.len(),
            vcpos_abi::MAX_PDS
        )));
        return Err(errors);
    }
    for pd in &system.pds {
        if pd.smc {
            errors.push(Diagnostic::at(
                format!(
                    "protection domain '{}' asks for smc, but vcpos does not support SMC calls from PDs",
                    pd.name
                ),
                "protection_domain",
                &pd.span,
            ));
        }
    }
    errors.extend(vm::check_thread_count(system));
    let kernel = load_kernel(opts).map_err(|e| errors.extend(e)).ok();
    let mut images = Vec::new();
    for i in 0..system.pds.len() {
        match load_pd(system, i, &opts.search_paths, board.memory.ram_size) {
            Ok(img) => images.push(img),
            Err(e) => errors.extend(e),
        }
    }
    let prefills = load_prefills(system, board, &opts.search_paths)
        .map_err(|e| errors.extend(e))
        .ok();
    let (Some(mut kernel), Some((mr_init, prefill_data))) = (kernel, prefills) else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    // Address spaces, capabilities, symbol checks: independent of physical addresses.
    let mut spaces: Vec<PdSpace> = Vec::new();
    for (i, img) in images.iter().enumerate() {
        match vspace::plan_pd(system, i, &img.image) {
            Ok(s) => spaces.push(s),
            Err(e) => errors.extend(e),
        }
    }
    let caps = caps::build(system, opts.config != Config::Release)
        .map_err(|e| errors.extend(e))
        .ok();
    let prefill_len: Vec<Option<u64>> = prefill_data
        .iter()
        .map(|d| d.as_ref().map(|d| d.len() as u64))
        .collect();
    let patches = symbols::plan(system, &images, &prefill_len)
        .map_err(|e| errors.extend(e))
        .ok();
    let (Some(caps), Some(patches)) = (caps, patches) else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }

    // Size the blob with a zero layout, then lay out physical memory.
    let entries: Vec<u64> = images.iter().map(|i| i.image.entry).collect();
    let zero_places: Vec<PdPlacement> = spaces
        .iter()
        .map(|s| PdPlacement {
            runs: vec![0; s.runs.len()],
            stack: 0,
            ipc_buffer: 0,
        })
        .collect();
    let zero_mrs = vec![0u64; system.memory_regions.len()];
    let sizing = blob::records(&RecordInputs {
        system,
        entries: &entries,
        spaces: &spaces,
        caps: &caps,
        places: &zero_places,
        mr_paddrs: &zero_mrs,
        mr_init: &mr_init,
    });
    let vcpu_tables: u64 = vm::vcpu_threads(system)
        .iter()
        .map(|t| vm::vm_page_tables(system, t.vm) as u64)
        .sum();
    let pt_pool_size = (spaces.iter().map(|s| s.page_tables as u64).sum::<u64>() + vcpu_tables) * PAGE_SIZE;
    let request = layout::Request {
        ram: PRange {
            base: board.memory.ram_base,
            size: board.memory.ram_size,
        },
        kernel_paddr: board.memory.kernel_paddr,
        kernel: kernel
            .image
            .segments
            .iter()
            .map(|s| PRange {
                base: s.paddr,
                size: s.memsz,
            })
            .collect(),
        blob_size: sizing.size(),
        pt_pool_size,
        pds: system
            .pds
            .iter()
            .zip(&spaces)
            .map(|(p, s)| layout::PdRequest {
                runs: s.runs.iter().map(|r| r.size).collect(),
                stack_size: p.stack_size,
            })
            .collect(),
        mrs: system
            .memory_regions
            .iter()
            .map(|m| layout::MrRequest {
                size: m.size,
                page_size: m.page_size,
                fixed: m.phys_addr,
            })
            .collect(),
    };
    let layout = layout::plan(&request).map_err(|es| es.iter().map(|e| layout_error(system, e)).collect::<Vec<_>>())?;

    // Patch, then assemble the blob and the image.
    let patched = symbols::apply(&patches, &mut images, &layout.mrs).map_err(|e| vec![e])?;
    let records = blob::records(&RecordInputs {
        system,
        entries: &entries,
        spaces: &spaces,
        caps: &caps,
        places: &layout.pds,
        mr_paddrs: &layout.mrs,
        mr_init: &mr_init,
    });
    let pt_pool = (layout.pt_pool, pt_pool_size);
    let blob = records.serialise(pt_pool);
    let internal = |m: String| vec![Diagnostic::plain(format!("internal error: {m}"))];
    if blob.len() as u64 != sizing.size() {
        return Err(internal(format!(
            "blob is 0x{:x} bytes, sized as 0x{:x}",
            blob.len(),
            sizing.size()
        )));
    }
    let kernel_patched = vec![
        KernelPatch {
            symbol: SYMBOL_PADDR.into(),
            vaddr: kernel.sym_paddr,
            value: layout.blob,
        },
        KernelPatch {
            symbol: SYMBOL_SIZE.into(),
            vaddr: kernel.sym_size,
            value: blob.len() as u64,
        },
    ];
    for p in &kernel_patched {
        kernel
            .image
            .write(p.vaddr, &p.value.to_le_bytes())
            .map_err(|e| internal(e.to_string()))?;
    }

    let (pieces, map) = pieces::assemble(&pieces::Inputs {
        system,
        kernel: &kernel,
        blob: &blob,
        layout: &layout,
        pt_pool_size,
        images: &images,
        spaces: &spaces,
        prefill_data: &prefill_data,
        mr_init: &mr_init,
    });

    let image = writer::write_image(kernel.entry, &pieces).map_err(internal)?;
    let mut built = Built {
        image,
        report: String::new(),
        blob,
        records,
        layout,
        pt_pool,
        entry: kernel.entry,
        memory_map: map,
        patched,
        kernel_patched,
    };
    built.report = report::render(system, board, opts, &built);
    Ok(built)
}

/// Runs `vcpos build`: reads the system and board, builds, writes the image and report.
pub fn build_command(args: &BuildArgs) -> Result<(), Vec<Diagnostic>> {
    let config = Config::parse(&args.config).map_err(|e| vec![e])?;
    let loaded = crate::sdf::load_with(&args.system, &args.search_paths)?;
    for w in &loaded.warnings {
        println!("{w}");
    }
    let board = crate::board::load(&args.board, None).map_err(|e| vec![e])?;
    let opts = BuildOptions {
        config,
        search_paths: args.search_paths.clone(),
        kernel: args.kernel.clone(),
    };
    let built = build(&loaded.system, &board, &opts)?;
    std::fs::write(&args.output, &built.image).map_err(|e| {
        vec![Diagnostic::plain(format!(
            "cannot write image '{}': {e}",
            args.output.display()
        ))]
    })?;
    std::fs::write(&args.report, &built.report).map_err(|e| {
        vec![Diagnostic::plain(format!(
            "cannot write report '{}': {e}",
            args.report.display()
        ))]
    })?;
    println!(
        "vcpos: image '{}': {} bytes, {} protection domains, {} bytes of RAM used \
         (0x{:x}..0x{:x}); report '{}'",
        args.output.display(),
        built.image.len(),
        loaded.system.pds.len(),
        built.layout.end - board.memory.kernel_paddr,
        board.memory.kernel_paddr,
        built.layout.end,
        args.report.display()
    );
    Ok(())
}
