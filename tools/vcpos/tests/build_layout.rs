//! Property-style tests of the physical layout: over many generated requests and
//! systems, nothing overlaps, everything is aligned, and everything lies in RAM.

mod build_support;

use build_support::*;
use vcpos_abi::bootinfo::BootInfo;
use vcpos_abi::vspace::attr;
use vcpos_tool::image::layout::{plan, LayoutError, MrRequest, PRange, PdRequest, Request};
use vcpos_tool::image::{build, Config};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const RAM: PRange = PRange {
    base: 0x4000_0000,
    size: 0x8000_0000,
};
const KPADDR: u64 = 0x4020_0000;
const PAGE: u64 = 0x1000;
const LARGE: u64 = 0x20_0000;

fn overlap(a: (u64, u64), b: (u64, u64)) -> bool {
    a.1 > 0 && b.1 > 0 && a.0 < b.0 + b.1 && b.0 < a.0 + a.1
}

fn random_request(rng: &mut Rng, ram: PRange) -> Request {
    let ksize = (1 + rng.below(64)) * PAGE + rng.below(PAGE);
    let mut kernel = vec![PRange {
        base: KPADDR,
        size: ksize,
    }];
    if rng.below(2) == 0 {
        kernel.push(PRange {
            base: (KPADDR + ksize).div_ceil(PAGE) * PAGE,
            size: 1 + rng.below(0x10000),
        });
    }
    let pds = (0..1 + rng.below(10))
        .map(|_| PdRequest {
            runs: (0..1 + rng.below(4)).map(|_| (1 + rng.below(16)) * PAGE).collect(),
            stack_size: (1 + rng.below(8)) * PAGE,
        })
        .collect();
    let mut mrs = Vec::new();
    // Fixed RAM regions start just above the kernel, where the allocator works.
    let mut fixed_ram_next = KPADDR + 0x10_0000 + rng.below(0x100) * PAGE;
    for _ in 0..rng.below(12) {
        let page_size = if rng.below(4) == 0 { LARGE } else { PAGE };
        let size = (1 + rng.below(8)) * page_size;
        let fixed = match rng.below(6) {
            // Fixed in RAM, above the kernel, not overlapping other fixed regions.
            0 if fixed_ram_next < ram.base + ram.size / 2 => {
                let at = fixed_ram_next.div_ceil(page_size) * page_size + rng.below(4) * page_size;
                fixed_ram_next = at + size;
                Some(at)
            }
            // Device memory below RAM.
            1 => Some(0x1000_0000 + mrs.len() as u64 * 0x100_0000),
            _ => None,
        };
        mrs.push(MrRequest { size, page_size, fixed });
    }
    Request {
        ram,
        kernel_paddr: KPADDR,
        kernel,
        blob_size: 56 + rng.below(0x3000),
        pt_pool_size: (1 + rng.below(40)) * PAGE,
        pds,
        mrs,
    }
}

#[test]
fn generated_layouts_never_overlap_and_stay_aligned_in_ram() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for case in 0..500 {
        let req = random_request(&mut rng, RAM);
        let l = plan(&req).unwrap_or_else(|e| panic!("case {case}: {e:?}\n{req:?}"));
        let kernel_end = req.kernel.iter().map(|k| k.base + k.size).max().unwrap();
        assert!(
            l.alloc_start >= kernel_end && l.alloc_start.is_multiple_of(PAGE),
            "case {case}"
        );
        // (base, size, align, allocated)
        let mut pieces: Vec<(u64, u64, u64, bool)> = req.kernel.iter().map(|k| (k.base, k.size, 1, false)).collect();
        pieces.push((l.blob, req.blob_size, PAGE, true));
        pieces.push((l.pt_pool, req.pt_pool_size, PAGE, true));
        for (p, place) in req.pds.iter().zip(&l.pds) {
            for (&size, &at) in p.runs.iter().zip(&place.runs) {
                pieces.push((at, size, PAGE, true));
            }
            pieces.push((place.stack, p.stack_size, PAGE, true));
            pieces.push((place.ipc_buffer, PAGE, PAGE, true));
        }
        for (m, &at) in req.mrs.iter().zip(&l.mrs) {
            if let Some(f) = m.fixed {
                assert_eq!(at, f, "case {case}: fixed regions stay put");
            }
            pieces.push((at, m.size, m.page_size, m.fixed.is_none()));
        }
        for (i, a) in pieces.iter().enumerate() {
            assert_eq!(a.0 % a.2, 0, "case {case}: piece {i} misaligned: {a:x?}");
            if a.3 {
                assert!(
                    a.0 >= l.alloc_start && a.0 + a.1 <= RAM.base + RAM.size,
                    "case {case}: {a:x?}"
                );
                assert!(a.0 + a.1 <= l.end, "case {case}: end covers everything");
            }
            for b in &pieces[i + 1..] {
                assert!(!overlap((a.0, a.1), (b.0, b.1)), "case {case}: {a:x?} overlaps {b:x?}");
            }
        }
    }
}

#[test]
fn layouts_that_do_not_fit_say_so() {
    let mut rng = Rng(42);
    let mut failures = 0;
    for case in 0..200 {
        let small = PRange {
            base: RAM.base,
            size: 0x40_0000 + rng.below(0x100) * PAGE,
        };
        let req = random_request(&mut rng, small);
        match plan(&req) {
            Ok(l) => assert!(l.end <= small.base + small.size, "case {case}"),
            Err(e) => {
                failures += 1;
                assert!(
                    matches!(e[..], [LayoutError::OutOfRam { size, needed, .. }] if size > 0 && needed >= size),
                    "case {case}: {e:?}"
                );
            }
        }
    }
    assert!(
        failures > 20 && failures < 200,
        "the generator should produce both outcomes: {failures}"
    );
}

#[test]
fn fixed_ram_region_is_skipped_by_the_allocator() {
    let req = Request {
        ram: RAM,
        kernel_paddr: KPADDR,
        kernel: vec![PRange {
            base: KPADDR,
            size: 0x1000,
        }],
        blob_size: 0x100,
        pt_pool_size: 0x1000,
        pds: vec![PdRequest {
            runs: vec![0x1000],
            stack_size: 0x1000,
        }],
        // A fixed region right where the allocator would go next, then one that must
        // move past it.
        mrs: vec![
            MrRequest {
                size: 0x2000,
                page_size: PAGE,
                fixed: Some(0x4020_3000),
            },
            MrRequest {
                size: 0x4000,
                page_size: PAGE,
                fixed: None,
            },
        ],
    };
    let l = plan(&req).unwrap();
    assert_eq!(l.alloc_start, 0x4020_1000);
    assert_eq!(l.blob, 0x4020_1000);
    assert_eq!(l.pt_pool, 0x4020_2000);
    assert_eq!(
        l.pds[0].runs[0], 0x4020_5000,
        "skips the fixed region at 0x40203000..0x40205000"
    );
    assert_eq!(l.mrs, vec![0x4020_3000, 0x4020_8000]);
    // Fixed regions under the kernel are refused.
    let mut bad = req.clone();
    bad.mrs[0].fixed = Some(KPADDR);
    assert!(matches!(
        plan(&bad).unwrap_err()[..],
        [LayoutError::FixedOverlapsKernel { mr: 0, .. }]
    ));
    let mut bad = req;
    bad.mrs[1].fixed = Some(0x4020_4000);
    assert!(matches!(
        plan(&bad).unwrap_err()[..],
        [LayoutError::FixedOverlap { a: 0, b: 1 }]
    ));
}

/// A random system: PDs with random maps of random regions, channels, IRQs.
fn random_system(rng: &mut Rng) -> vcpos_tool::model::System {
    let nmrs = rng.below(8) as usize;
    let mut mrs = Vec::new();
    for i in 0..nmrs {
        let page = if rng.below(3) == 0 { LARGE } else { PAGE };
        let mut m = mr(&format!("mr{i}"), (1 + rng.below(4)) * page, page, 100 + i as u32);
        match rng.below(5) {
            0 => m.phys_addr = Some(0x1000_0000 + i as u64 * 0x100_0000),
            1 => m.phys_addr = Some(0x4800_0000 + i as u64 * 0x100_0000),
            _ => {}
        }
        mrs.push(m);
    }
    let npds = 1 + rng.below(6) as usize;
    let mut pds = Vec::new();
    for p in 0..npds {
        let mut d = pd(&format!("pd{p}"), 10 * (p as u32 + 1));
        d.stack_size = (1 + rng.below(4)) * PAGE;
        let mut vaddr: u64 = 0x1000_0000;
        for (i, m) in mrs.iter().enumerate() {
            if rng.below(2) == 0 {
                vaddr = vaddr.div_ceil(m.page_size) * m.page_size;
                let mut mp = map(i, vaddr, 10 * (p as u32 + 1) + 2);
                mp.cached = m.phys_addr.is_none_or(|a| a >= 0x4000_0000);
                d.maps.push(mp);
                vaddr += m.size + PAGE;
            }
        }
        if rng.below(3) == 0 {
            d.irqs.push(irq(33 + p as u32, 1, 10 * (p as u32 + 1) + 3));
        }
        pds.push(d);
    }
    let mut channels = Vec::new();
    for p in 1..npds {
        channels.push(channel(
            end(p - 1, 2, false, true, 200),
            end(p, 3, false, rng.below(2) == 0, 201),
            200,
        ));
    }
    system(pds, mrs, channels)
}

#[test]
fn generated_systems_build_into_consistent_images() {
    let f = Fixture::new("layout_generated");
    let mut rng = Rng(7);
    let b = board();
    let ram_end = b.memory.ram_base + b.memory.ram_size;
    for case in 0..40 {
        let sys = random_system(&mut rng);
        let built = build(&sys, &b, &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("case {case}: {}", render(&e)));
        let mm = &built.memory_map;
        for (i, a) in mm.iter().enumerate() {
            if a.allocated {
                assert!(
                    a.paddr >= built.layout.alloc_start && a.paddr + a.size <= ram_end,
                    "case {case}: {a:?}"
                );
                assert_eq!(a.paddr % PAGE, 0, "case {case}: {a:?}");
            }
            for b2 in &mm[i + 1..] {
                assert!(
                    !overlap((a.paddr, a.size), (b2.paddr, b2.size)),
                    "case {case}: {a:?} / {b2:?}"
                );
            }
        }
        for (i, m) in sys.memory_regions.iter().enumerate() {
            assert_eq!(
                built.layout.mrs[i] % m.page_size,
                0,
                "case {case}: region {i} aligned to its page size"
            );
        }
        // Every map points into one memory-map entry, and large maps are 2 MiB aligned.
        let info = BootInfo::parse(&built.blob).unwrap();
        for i in 0..info.header.num_maps as usize {
            let m = info.map(i);
            assert!(
                mm.iter()
                    .any(|e| e.paddr <= m.paddr && m.paddr + m.size <= e.paddr + e.size),
                "case {case}: map {m:x?} not backed"
            );
            let align = if m.attrs & attr::LARGE != 0 { LARGE } else { PAGE };
            assert_eq!(
                (m.vaddr % align, m.paddr % align, m.size % align),
                (0, 0, 0),
                "case {case}: {m:x?}"
            );
        }
        // Every zero range lies in RAM and inside an entry that is not the kernel.
        for i in 0..info.header.num_zero as usize {
            let z = info.zero(i);
            assert!(
                mm.iter().any(|e| {
                    (e.allocated || e.mr.is_some())
                        && !e.what.contains("device memory")
                        && e.paddr <= z.paddr
                        && z.paddr + z.size <= e.paddr + e.size
                }),
                "case {case}: zero range {z:x?}"
            );
        }
    }
}
