//! The virtual address space of one PD: which pages its program segments need, and the
//! checks that involve both the ELF file and the system description.
//!
//! Program segments are page-granular: segments that share a 4 KiB page are merged into
//! one [`Run`] (one physically contiguous allocation), and a shared page gets the union
//! of the permissions of the segments on it. The stack, IPC buffer and memory-region
//! maps come from the system description; together they size the PD's page tables.

use vcpos_abi::msg::IPC_BUFFER_VADDR;
use vcpos_abi::vspace::{self, VRange, LARGE_PAGE_SIZE, PAGE_SIZE};

use super::elf::{ElfImage, SegPerms};
use crate::diag::Diagnostic;
use crate::model::{ProtectionDomain, System};

/// A page-aligned run of the program image: one or more segments on adjacent or
/// shared pages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// First virtual address (page aligned).
    pub vaddr: u64,
    /// Size (page multiple).
    pub size: u64,
    /// Bytes from `vaddr` up to the end of the last file-backed byte; the rest of the
    /// run is zero (`.bss`) and is zeroed by the kernel.
    pub file_len: u64,
    /// Permissions of each page (union of the segments on it).
    pub pages: Vec<SegPerms>,
    /// Program-header indices of the segments in the run.
    pub segments: Vec<usize>,
}

impl Run {
    /// Maximal groups of consecutive pages with equal permissions: `(offset, size, perms)`.
    pub fn pieces(&self) -> Vec<(u64, u64, SegPerms)> {
        let mut out: Vec<(u64, u64, SegPerms)> = Vec::new();
        for (i, p) in self.pages.iter().enumerate() {
            match out.last_mut() {
                Some(last) if last.2 == *p => last.1 += PAGE_SIZE,
                _ => out.push((i as u64 * PAGE_SIZE, PAGE_SIZE, *p)),
            }
        }
        out
    }

    /// The run's initial contents (`file_len` bytes) from `image`'s segments.
    pub fn bytes(&self, image: &ElfImage) -> Vec<u8> {
        let mut out = vec![0u8; self.file_len as usize];
        for s in image
            .segments
            .iter()
            .filter(|s| self.segments.contains(&s.index))
        {
            let off = (s.vaddr - self.vaddr) as usize;
            out[off..off + s.data.len()].copy_from_slice(&s.data);
        }
        out
    }
}

/// The address-space plan of one PD.
#[derive(Clone, Debug)]
pub struct PdSpace {
    /// Program image runs, sorted by address.
    pub runs: Vec<Run>,
    /// Number of 4 KiB translation tables the kernel needs for this PD.
    pub page_tables: usize,
}

pub(crate) fn page_down(v: u64) -> u64 {
    v & !(PAGE_SIZE - 1)
}

pub(crate) fn page_up(v: u64) -> u64 {
    v.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

/// Groups `image`'s segments into runs. Returns the runs and, for every page whose
/// segments together need write and execute, the two segments and the page.
pub fn runs(image: &ElfImage) -> (Vec<Run>, Vec<(usize, usize, u64)>) {
    let mut segs: Vec<_> = image.segments.iter().collect();
    segs.sort_by_key(|s| s.vaddr);
    let mut runs: Vec<Run> = Vec::new();
    let mut wx = Vec::new();
    // For each page of the current run, the first segment on it (for messages).
    let mut owners: Vec<usize> = Vec::new();
    for s in segs {
        let start = page_down(s.vaddr);
        let end = page_up(s.vend());
        let file_end = s.vaddr + s.data.len() as u64;
        let extend = matches!(runs.last(), Some(r) if start < r.vaddr + r.size);
        if !extend {
            runs.push(Run {
                vaddr: start,
                size: 0,
                file_len: 0,
                pages: Vec::new(),
                segments: Vec::new(),
            });
            owners.clear();
        }
        let Some(r) = runs.last_mut() else { continue };
        let new_end = end.max(r.vaddr + r.size);
        while r.vaddr + r.size < new_end {
            r.pages.push(SegPerms::default());
            owners.push(s.index);
            r.size += PAGE_SIZE;
        }
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            let i = ((page - r.vaddr) / PAGE_SIZE) as usize;
            let had = r.pages[i];
            let now = had.union(s.perms);
            if now.write && now.execute && !(had.write && had.execute) && had != SegPerms::default()
            {
                wx.push((owners[i], s.index, page));
            }
            if had == SegPerms::default() {
                owners[i] = s.index;
            }
            r.pages[i] = now;
        }
        if !s.data.is_empty() {
            r.file_len = r.file_len.max(file_end - r.vaddr);
        }
        r.segments.push(s.index);
    }
    // Every mapped page is readable: AArch64 cannot express write-only pages, and the
    // kernel maps execute-only segments readable too.
    for r in &mut runs {
        for p in &mut r.pages {
            p.read = true;
        }
    }
    (runs, wx)
}

/// Plans PD `pd_index`'s address space against its (already checked) program image:
/// merges segments into runs, rejects shared pages that would be writable and
/// executable, rejects maps that overlap the program image, and counts page tables.
pub fn plan_pd(
    system: &System,
    pd_index: usize,
    image: &ElfImage,
) -> Result<PdSpace, Vec<Diagnostic>> {
    let pd: &ProtectionDomain = &system.pds[pd_index];
    let mut errors = Vec::new();
    let (runs, wx) = runs(image);
    for (a, b, page) in wx {
        errors.push(Diagnostic::at(
            format!(
                "ELF segments {a} and {b} of program image '{}' share the page at 0x{page:x}, \
                 which would need write and execute permission together",
                pd.program_image.path
            ),
            "program_image",
            &pd.program_image.span,
        ));
    }
    let mut ranges: Vec<VRange> = runs
        .iter()
        .map(|r| VRange {
            vaddr: r.vaddr,
            size: r.size,
            large: false,
        })
        .collect();
    for map in &pd.maps {
        let mr = &system.memory_regions[map.mr];
        let end = map.vaddr.saturating_add(mr.size);
        for r in &runs {
            if super::board_check::overlaps(map.vaddr, mr.size, r.vaddr, r.size) {
                errors.push(Diagnostic::at(
                    format!(
                        "map of memory region '{}' at [0x{:x}..0x{end:x}) overlaps the program \
                         image '{}' [0x{:x}..0x{:x}) in protection domain '{}'",
                        mr.name,
                        map.vaddr,
                        pd.program_image.path,
                        r.vaddr,
                        r.vaddr + r.size,
                        pd.name
                    ),
                    "map",
                    &map.span,
                ));
            }
        }
        ranges.push(VRange {
            vaddr: map.vaddr,
            size: mr.size,
            large: mr.page_size == LARGE_PAGE_SIZE,
        });
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    ranges.push(VRange {
        vaddr: vspace::stack_bottom(pd.stack_size),
        size: pd.stack_size,
        large: false,
    });
    ranges.push(VRange {
        vaddr: IPC_BUFFER_VADDR,
        size: PAGE_SIZE,
        large: false,
    });
    ranges.sort_by_key(|r| r.vaddr);
    Ok(PdSpace {
        runs,
        page_tables: vspace::page_tables_needed(&ranges),
    })
}
