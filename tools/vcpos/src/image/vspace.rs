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
    /// Maximal groups of consecutive pages with equal permissions (the union of the
    /// segments on each page): `(offset, size, perms)`, covering the run in order.
    pub pieces: Vec<(u64, u64, SegPerms)>,
    /// Program-header indices of the segments in the run.
    pub segments: Vec<usize>,
}

impl Run {
    /// The run's initial contents (`file_len` bytes) from `image`'s segments.
    pub fn bytes(&self, image: &ElfImage) -> Vec<u8> {
        let mut out = vec![0u8; self.file_len as usize];
        for s in image.segments.iter().filter(|s| self.segments.contains(&s.index)) {
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

/// Groups `image`'s segments (which must end below the user address-space limit) into
/// runs. Returns the runs and, for every page range whose segments together need write
/// and execute, two of those segments and the range's first page.
///
/// Work is proportional to the number of segments, not pages.
pub fn runs(image: &ElfImage) -> (Vec<Run>, Vec<(usize, usize, u64)>) {
    // Page-granular extent of each segment: (start, end, segment).
    let mut spans: Vec<(u64, u64, &super::elf::Segment)> = image
        .segments
        .iter()
        .map(|s| (page_down(s.vaddr), page_up(s.vend()), s))
        .collect();
    spans.sort_by_key(|x| (x.0, x.1));
    // Merge spans that share a page into groups.
    let mut groups: Vec<Vec<(u64, u64, &super::elf::Segment)>> = Vec::new();
    for sp in spans {
        match groups.last_mut() {
            Some(g) if sp.0 < g.iter().map(|x| x.1).max().unwrap_or(0) => g.push(sp),
            _ => groups.push(vec![sp]),
        }
    }
    let mut wx = Vec::new();
    let runs = groups
        .into_iter()
        .map(|g| {
            let start = g[0].0;
            let end = g.iter().map(|x| x.1).max().unwrap_or(start);
            // Sweep the boundaries: between two consecutive ones the set of segments
            // covering the pages is constant.
            let mut cuts: Vec<u64> = g.iter().flat_map(|x| [x.0, x.1]).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces: Vec<(u64, u64, SegPerms)> = Vec::new();
            for w in cuts.windows(2) {
                let (lo, hi) = (w[0], w[1]);
                let on: Vec<_> = g.iter().filter(|x| x.0 <= lo && hi <= x.1).map(|x| x.2).collect();
                // Every mapped page is readable: AArch64 cannot express write-only
                // pages, and execute-only segments are mapped readable too.
                let mut perms = SegPerms {
                    read: true,
                    ..SegPerms::default()
                };
                for s in &on {
                    perms = perms.union(s.perms);
                }
                if perms.write && perms.execute && on.len() > 1 && !on.iter().any(|s| s.perms.write && s.perms.execute)
                {
                    wx.push((on[0].index, on[1].index, lo));
                }
                match pieces.last_mut() {
                    Some(last) if last.2 == perms => last.1 += hi - lo,
                    _ => pieces.push((lo - start, hi - lo, perms)),
                }
            }
            let file_len = g
                .iter()
                .filter(|x| !x.2.data.is_empty())
                .map(|x| x.2.vaddr + x.2.data.len() as u64 - start)
                .max()
                .unwrap_or(0);
            let mut segments: Vec<usize> = g.iter().map(|x| x.2.index).collect();
            segments.sort_unstable();
            Run {
                vaddr: start,
                size: end - start,
                file_len,
                pieces,
                segments,
            }
        })
        .collect();
    (runs, wx)
}

/// Plans PD `pd_index`'s address space against its (already checked) program image:
/// merges segments into runs, rejects shared pages that would be writable and
/// executable, rejects maps that overlap the program image, and counts page tables.
pub fn plan_pd(system: &System, pd_index: usize, image: &ElfImage) -> Result<PdSpace, Vec<Diagnostic>> {
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
