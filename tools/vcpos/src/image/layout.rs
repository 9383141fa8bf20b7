//! The physical memory layout of an image: a pure function from sizes to addresses.
//!
//! RAM below the kernel's load address is left alone (QEMU puts the device tree there).
//! The kernel's segments sit at their own physical addresses; everything else is
//! allocated upwards from the first page after the kernel, in this order: boot-info
//! blob, page-table pool, then per PD its program-image runs, stack and IPC buffer page,
//! then the memory regions without a fixed address (aligned to their page size).
//! Fixed-address regions inside RAM are reserved before anything is allocated; fixed
//! regions outside RAM are device memory and are used where they say.

use super::board_check::overlaps;

/// A physical range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PRange {
    /// First address.
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

impl PRange {
    /// End (exclusive).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.size)
    }
}

/// What a PD needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdRequest {
    /// Sizes of its program-image runs (page multiples).
    pub runs: Vec<u64>,
    /// Stack size (page multiple).
    pub stack_size: u64,
}

/// What a memory region needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MrRequest {
    /// Size (multiple of `page_size`).
    pub size: u64,
    /// Page size, which is also its alignment.
    pub page_size: u64,
    /// Fixed physical address, if any.
    pub fixed: Option<u64>,
}

/// Everything the layout depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The board's RAM.
    pub ram: PRange,
    /// The kernel's load address; RAM below it is not used.
    pub kernel_paddr: u64,
    /// The kernel's loadable segments (physical address, memory size).
    pub kernel: Vec<PRange>,
    /// Size of the boot-info blob in bytes.
    pub blob_size: u64,
    /// Size of the page-table pool in bytes (page multiple).
    pub pt_pool_size: u64,
    /// One entry per PD, in PD index order.
    pub pds: Vec<PdRequest>,
    /// One entry per memory region, in model order.
    pub mrs: Vec<MrRequest>,
}

/// Where a PD's pieces went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdPlacement {
    /// Physical address of each program-image run.
    pub runs: Vec<u64>,
    /// Physical address of the stack.
    pub stack: u64,
    /// Physical address of the IPC buffer page.
    pub ipc_buffer: u64,
}

/// The result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// First address the builder allocates from (the page after the kernel).
    pub alloc_start: u64,
    /// The boot-info blob (page aligned).
    pub blob: u64,
    /// The page-table pool (page aligned).
    pub pt_pool: u64,
    /// Per PD.
    pub pds: Vec<PdPlacement>,
    /// Physical address of each memory region.
    pub mrs: Vec<u64>,
    /// First address above every allocation.
    pub end: u64,
}

/// Something the layout allocates (for errors and reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    /// The boot-info blob.
    BootInfo,
    /// The page-table pool.
    PageTables,
    /// Run `run` of PD `pd`'s program image.
    ProgramImage {
        /// PD index.
        pd: usize,
        /// Run index.
        run: usize,
    },
    /// PD `pd`'s stack.
    Stack {
        /// PD index.
        pd: usize,
    },
    /// PD `pd`'s IPC buffer.
    IpcBuffer {
        /// PD index.
        pd: usize,
    },
    /// Memory region `mr`.
    MemoryRegion {
        /// Memory-region index.
        mr: usize,
    },
}

/// Why no layout exists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// A kernel segment lies outside RAM or below the kernel load address.
    KernelOutsideRam {
        /// The segment's range.
        segment: PRange,
    },
    /// A fixed-address region inside RAM overlaps the kernel image (or lies below it).
    FixedOverlapsKernel {
        /// Memory-region index.
        mr: usize,
        /// The kernel's RAM: `[ram_base, alloc_start)`.
        kernel: PRange,
    },
    /// Two fixed-address regions overlap.
    FixedOverlap {
        /// First memory-region index.
        a: usize,
        /// Second memory-region index.
        b: usize,
    },
    /// RAM ran out while placing `item`.
    OutOfRam {
        /// What did not fit.
        item: Item,
        /// Its size.
        size: u64,
        /// Bytes of RAM the whole system needs above the kernel (with alignment).
        needed: u64,
        /// Bytes of RAM available above the kernel (less fixed regions).
        available: u64,
    },
}

const PAGE: u64 = 0x1000;

fn align_up(v: u64, align: u64) -> Option<u64> {
    let align = align.max(1);
    v.checked_add(align - 1).map(|x| x / align * align)
}

struct Allocator {
    cursor: u64,
    ram_end: u64,
    reserved: Vec<PRange>,
}

impl Allocator {
    fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let mut at = align_up(self.cursor, align)?;
        loop {
            let end = at.checked_add(size)?;
            if end > self.ram_end {
                return None;
            }
            match self.reserved.iter().find(|r| overlaps(at, size, r.base, r.size)) {
                Some(r) => at = align_up(r.end(), align)?,
                None => {
                    self.cursor = end;
                    return Some(at);
                }
            }
        }
    }
}

/// Computes the layout, or every reason there is none.
pub fn plan(req: &Request) -> Result<Layout, Vec<LayoutError>> {
    let mut errors = Vec::new();
    let ram_end = req.ram.end();
    for k in &req.kernel {
        if k.base < req.kernel_paddr.max(req.ram.base) || k.end() > ram_end {
            errors.push(LayoutError::KernelOutsideRam { segment: *k });
        }
    }
    let kernel_end = req.kernel.iter().map(PRange::end).max().unwrap_or(req.kernel_paddr);
    let alloc_start = align_up(kernel_end.max(req.kernel_paddr), PAGE).unwrap_or(ram_end);

    // Fixed regions: inside RAM they are reserved, outside they are device memory.
    let mut reserved = Vec::new();
    let mut mrs = vec![0u64; req.mrs.len()];
    for (i, m) in req.mrs.iter().enumerate() {
        let Some(base) = m.fixed else { continue };
        mrs[i] = base;
        let r = PRange { base, size: m.size };
        for (j, other) in req.mrs[..i].iter().enumerate() {
            if let Some(ob) = other.fixed {
                if overlaps(base, m.size, ob, other.size) {
                    errors.push(LayoutError::FixedOverlap { a: j, b: i });
                }
            }
        }
        if overlaps(base, m.size, req.ram.base, req.ram.size) {
            if base < alloc_start {
                errors.push(LayoutError::FixedOverlapsKernel {
                    mr: i,
                    kernel: PRange {
                        base: req.ram.base,
                        size: alloc_start - req.ram.base,
                    },
                });
            }
            reserved.push(r);
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    // Everything to allocate, in order, as (item, size, align).
    let mut items = vec![
        (Item::BootInfo, align_up(req.blob_size, PAGE).unwrap_or(u64::MAX), PAGE),
        (Item::PageTables, req.pt_pool_size, PAGE),
    ];
    for (pd, p) in req.pds.iter().enumerate() {
        for (run, &size) in p.runs.iter().enumerate() {
            items.push((Item::ProgramImage { pd, run }, size, PAGE));
        }
        items.push((Item::Stack { pd }, p.stack_size, PAGE));
        items.push((Item::IpcBuffer { pd }, PAGE, PAGE));
    }
    for (mr, m) in req.mrs.iter().enumerate() {
        if m.fixed.is_none() {
            items.push((Item::MemoryRegion { mr }, m.size, m.page_size.max(PAGE)));
        }
    }

    let mut alloc = Allocator {
        cursor: alloc_start,
        ram_end,
        reserved: reserved.clone(),
    };
    let mut placed = Vec::with_capacity(items.len());
    for &(item, size, align) in &items {
        match alloc.alloc(size, align) {
            Some(at) => placed.push(at),
            None => {
                let needed = items.iter().fold(0u64, |acc, &(_, s, a)| {
                    align_up(acc, a).unwrap_or(u64::MAX).saturating_add(s)
                });
                let fixed: u64 = reserved.iter().map(|r| r.size).sum();
                let available = ram_end.saturating_sub(alloc_start).saturating_sub(fixed);
                return Err(vec![LayoutError::OutOfRam {
                    item,
                    size,
                    needed,
                    available,
                }]);
            }
        }
    }

    let mut next = placed.into_iter();
    let mut take = || next.next().unwrap_or(0);
    let blob = take();
    let pt_pool = take();
    let pds = req
        .pds
        .iter()
        .map(|p| {
            let runs = p.runs.iter().map(|_| take()).collect();
            let stack = take();
            let ipc_buffer = take();
            PdPlacement {
                runs,
                stack,
                ipc_buffer,
            }
        })
        .collect();
    for (i, m) in req.mrs.iter().enumerate() {
        if m.fixed.is_none() {
            mrs[i] = take();
        }
    }
    let end = alloc.cursor.max(reserved.iter().map(PRange::end).max().unwrap_or(0));
    Ok(Layout {
        alloc_start,
        blob,
        pt_pool,
        pds,
        mrs,
        end,
    })
}
