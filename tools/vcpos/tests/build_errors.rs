//! Located errors from `vcpos build` and `check_board`: missing and malformed ELF files,
//! maps over program images, board limits, RAM exhaustion, unsupported features.

mod build_support;

use build_support::*;
use vcpos_abi::KERNEL_VIRT_OFFSET;
use vcpos_tool::image::{build, check_board, Config};
use vcpos_tool::model::System;

fn one_pd() -> System {
    system(vec![pd("hello", 10)], vec![], vec![])
}

fn build_err(f: &Fixture, sys: &System) -> Vec<vcpos_tool::diag::Diagnostic> {
    match build(sys, &board(), &f.opts(Config::Debug)) {
        Ok(_) => panic!("build succeeded"),
        Err(e) => e,
    }
}

#[test]
fn missing_program_images_are_all_reported() {
    let f = Fixture::new("err_missing_image");
    let mut sys = system(vec![pd("a", 10), pd("b", 20), pd("c", 30)], vec![], vec![]);
    sys.pds[0].program_image.path = "nope.elf".into();
    sys.pds[2].program_image.path = "gone.elf".into();
    let errors = build_err(&f, &sys);
    assert_eq!(errors.len(), 2, "{}", render(&errors));
    assert_error(&errors, "unable to find program image: 'nope.elf'", "program_image", 11);
    assert_error(&errors, "unable to find program image: 'gone.elf'", "program_image", 31);
    assert_eq!(
        errors[0].to_string(),
        "Error: unable to find program image: 'nope.elf' on element 'program_image': test.system:11:5"
    );
}

#[test]
fn program_images_are_found_in_search_paths_then_cwd() {
    let f = Fixture::new("err_search_order");
    let second = f.dir.join("second");
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join("only-here.elf"), pd_elf().bytes()).unwrap();
    let mut sys = one_pd();
    sys.pds[0].program_image.path = "only-here.elf".into();
    let mut opts = f.opts(Config::Debug);
    opts.search_paths.push(second.clone());
    build(&sys, &board(), &opts).unwrap_or_else(|e| panic!("{}", render(&e)));
    // An absolute path works with no search path at all (the CWD rule).
    sys.pds[0].program_image.path = second.join("only-here.elf").display().to_string();
    let opts = vcpos_tool::image::BuildOptions {
        config: Config::Debug,
        search_paths: vec![],
        kernel: Some(f.dir.join("vcpos-kernel")),
    };
    build(&sys, &board(), &opts).unwrap_or_else(|e| panic!("{}", render(&e)));
}

#[test]
fn malformed_elf_files_are_located_errors() {
    let f = Fixture::new("err_bad_elf");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "text.elf",
            b"this is not an ELF file at all, just text".to_vec(),
            "not an ELF64 file",
        ),
        (
            "x86.elf",
            ElfSpec {
                machine: 62,
                ..pd_elf()
            }
            .bytes(),
            "not an AArch64 ELF file",
        ),
        (
            "dyn.elf",
            ElfSpec { e_type: 3, ..pd_elf() }.bytes(),
            "not an executable ELF file",
        ),
        (
            "wx.elf",
            {
                let mut s = pd_elf();
                s.segs[0].flags = R | W | X;
                s.bytes()
            },
            "segment 0 [0x200000..0x200180) is both writable and executable",
        ),
        (
            "overlap.elf",
            {
                let mut s = pd_elf();
                s.segs[1].vaddr = 0x20_0100;
                s.bytes()
            },
            "segments 0 [0x200000..0x200180) and 1 [0x200100..0x200118) overlap in virtual memory",
        ),
        (
            "high.elf",
            {
                let mut s = pd_elf();
                s.segs[1].vaddr = 0xff_ffff_c000;
                s.bytes()
            },
            "lies outside the PD's user address space",
        ),
        (
            "entry.elf",
            ElfSpec {
                entry: DATA,
                ..pd_elf()
            }
            .bytes(),
            "its entry point 0x202000 is not in an executable segment",
        ),
        (
            "elf32.elf",
            {
                let mut b = pd_elf().bytes();
                b[4] = 1; // ELFCLASS32
                b
            },
            "not an ELF64 file",
        ),
        (
            "big_endian.elf",
            {
                let mut b = pd_elf().bytes();
                b[5] = 2; // ELFDATA2MSB
                b
            },
            "not a little-endian ELF file",
        ),
        (
            "huge.elf",
            {
                let mut s = pd_elf();
                s.segs[2].memsz = 0xf0_0000_0000;
                s.bytes()
            },
            "more than the board's RAM",
        ),
        (
            "truncated.elf",
            {
                let b = pd_elf().bytes();
                b[..b.len() / 3].to_vec()
            },
            "program image",
        ),
    ];
    let mut pds = Vec::new();
    for (i, (name, bytes, _)) in cases.iter().enumerate() {
        f.write(name, bytes);
        let mut p = pd(&format!("pd{i}"), 10 * (i as u32 + 1));
        p.program_image.path = name.to_string();
        pds.push(p);
    }
    let errors = build_err(&f, &system(pds, vec![], vec![]));
    for (i, (name, _, needle)) in cases.iter().enumerate() {
        let line = 10 * (i as u32 + 1) + 1;
        let hit = errors
            .iter()
            .find(|e| e.span.as_ref().map(|s| s.line) == Some(line))
            .unwrap_or_else(|| panic!("no error for {name}:\n{}", render(&errors)));
        assert!(hit.message.contains(needle), "{name}: {hit}");
        assert!(hit.message.contains(name), "{name}: {hit}");
        assert_eq!(hit.tag.as_deref(), Some("program_image"));
    }
}

#[test]
fn shared_page_that_would_be_writable_and_executable_is_an_error() {
    let f = Fixture::new("err_shared_wx");
    let mut s = pd_elf();
    // Put rodata as writable data on the text page: the page would need rwx.
    s.segs[1].vaddr = 0x20_0800;
    s.segs[1].flags = R | W;
    f.write("shared.elf", &s.bytes());
    let mut sys = one_pd();
    sys.pds[0].program_image.path = "shared.elf".into();
    let errors = build_err(&f, &sys);
    assert_error(
        &errors,
        "ELF segments 0 and 1 of program image 'shared.elf' share the page at 0x200000",
        "program_image",
        11,
    );
    // A read-only segment sharing the text page is fine, and the page is r-x.
    let mut s = pd_elf();
    s.segs[1].vaddr = 0x20_0800;
    f.write("shared_ro.elf", &s.bytes());
    sys.pds[0].program_image.path = "shared_ro.elf".into();
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    let m = &built.records.maps[0].0;
    assert_eq!((m.vaddr, m.size), (0x20_0000, 0x1000));
    assert_eq!(read_pd(&built, 0, 0x20_0800, 6), b"rodata");
}

#[test]
fn map_over_the_program_image_is_located_at_the_map() {
    let f = Fixture::new("err_map_over_elf");
    let mut sys = one_pd();
    sys.memory_regions.push(mr("buf", 0x2000, 0x1000, 2));
    sys.pds[0].maps.push(map(0, 0x20_3000, 12));
    let errors = build_err(&f, &sys);
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert_error(
        &errors,
        "map of memory region 'buf' at [0x203000..0x205000) overlaps the program image 'pd.elf' [0x202000..0x204000)",
        "map",
        12,
    );
}

#[test]
fn irqs_must_be_spis_the_board_has() {
    let mut sys = one_pd();
    sys.pds[0].irqs.push(irq(27, 0, 12));
    sys.pds[0].irqs.push(irq(288, 1, 13));
    sys.pds[0].irqs.push(irq(32, 2, 14));
    sys.pds[0].irqs.push(irq(287, 3, 15));
    let errors = check_board(&sys, &board());
    assert_eq!(errors.len(), 2, "{}", render(&errors));
    assert_error(&errors, "IRQ 27 is not available", "irq", 12);
    assert_error(&errors, "IRQ 288 is not available", "irq", 13);
    assert!(errors[0].message.contains("32..=287"), "{}", errors[0]);
    // build reports them too.
    let f = Fixture::new("err_irq_range");
    let errors = build_err(&f, &sys);
    assert_error(&errors, "IRQ 27 is not available", "irq", 12);
}

#[test]
fn cpu_must_exist() {
    let mut sys = one_pd();
    sys.pds[0].cpu = 1;
    let errors = check_board(&sys, &board());
    assert_eq!(errors.len(), 1);
    assert_error(&errors, "cpu core must be less than 1, got 1", "protection_domain", 10);
}

#[test]
fn fixed_regions_must_avoid_kernel_devices_and_ram() {
    let mut sys = one_pd();
    let fixed = |name: &str, paddr: u64, size: u64, line: u32| {
        let mut m = mr(name, size, 0x1000, line);
        m.phys_addr = Some(paddr);
        m
    };
    sys.memory_regions = vec![
        fixed("gicd", 0x0800_0000, 0x1000, 2),
        fixed("gicr", 0x080b_0000, 0x1000, 3),
        fixed("uart", 0x0900_0000, 0x1000, 4),
        fixed("dtb", 0x4000_0000, 0x1000, 5),
        fixed("straddle", 0xbfff_f000, 0x2000, 6),
        fixed("rtc", 0x0901_0000, 0x1000, 7),
        fixed("ram", 0x5000_0000, 0x1000, 8),
    ];
    let mut pre = fixed("pre_dev", 0x0a00_0000, 0x1000, 9);
    pre.prefill_path = Some("x".into());
    sys.memory_regions.push(pre);
    let errors = check_board(&sys, &board());
    assert_error(
        &errors,
        "memory region 'gicd' [0x8000000..0x8001000) overlaps the GIC distributor",
        "memory_region",
        2,
    );
    assert_error(&errors, "overlaps the GIC redistributors", "memory_region", 3);
    assert_error(&errors, "overlaps the RAM below the kernel", "memory_region", 5);
    assert_error(&errors, "lies partly inside RAM", "memory_region", 6);
    assert_error(&errors, "cannot be prefilled", "memory_region", 9);
    assert_eq!(
        errors.len(),
        5,
        "uart (shared with the kernel's console), rtc and ram are fine:\n{}",
        render(&errors)
    );
}

#[test]
fn fixed_ram_region_over_the_kernel_image_is_an_error() {
    let f = Fixture::new("err_fixed_over_kernel");
    let mut sys = one_pd();
    let mut m = mr("over", 0x1000, 0x1000, 2);
    m.phys_addr = Some(KERNEL_TEXT + 0x3000); // inside the kernel's .bss
    sys.memory_regions.push(m);
    sys.pds[0].maps.push(map(0, 0x100_0000, 12));
    assert!(check_board(&sys, &board()).is_empty());
    let errors = build_err(&f, &sys);
    assert_error(
        &errors,
        "memory region 'over' [0x40203000..0x40204000) overlaps the RAM the kernel uses",
        "memory_region",
        2,
    );
}

#[test]
fn system_too_big_for_ram_is_located() {
    let f = Fixture::new("err_too_big");
    let mut sys = one_pd();
    sys.memory_regions.push(mr("small", 0x1000, 0x1000, 2));
    sys.memory_regions.push(mr("huge", 0x8000_0000, 0x20_0000, 3));
    sys.pds[0].maps.push(map(1, 0x4000_0000, 12));
    let errors = build_err(&f, &sys);
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert_error(
        &errors,
        "the system does not fit in RAM: no room for memory region 'huge' (0x80000000 bytes)",
        "memory_region",
        3,
    );
    // Just fits: RAM above the kernel image less everything else.
    let mut b = board();
    b.memory.ram_size = 0x1000_0000;
    sys.memory_regions[1].size = 0x0c00_0000;
    build(&sys, &b, &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
}

#[test]
fn smc_is_not_supported() {
    let f = Fixture::new("err_smc");
    let mut sys = one_pd();
    sys.pds[0].smc = true;
    let errors = build_err(&f, &sys);
    assert_error(&errors, "asks for smc", "protection_domain", 10);
}

#[test]
fn missing_kernel_and_bad_kernel_are_reported() {
    let f = Fixture::new("err_kernel");
    std::fs::remove_file(f.dir.join("vcpos-kernel")).unwrap();
    let errors = build_err(&f, &one_pd());
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message.contains("unable to find kernel image 'vcpos-kernel'"),
        "{}",
        errors[0]
    );
    // A kernel segment linked at the wrong virtual address.
    let mut k = kernel_elf();
    k.segs[0].vaddr = 0x1234_0000;
    k.entry = 0x1234_0040;
    f.write("vcpos-kernel", &k.bytes());
    let errors = build_err(&f, &one_pd());
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert!(
        errors[0]
            .message
            .contains("segment 0 is linked at 0x12340000 but loaded at 0x40200000"),
        "{}",
        errors[0]
    );
    // A kernel segment outside RAM.
    let mut k = kernel_elf();
    k.segs[1].paddr = 0x3000_0000;
    k.segs[1].vaddr = 0x3000_0000 + KERNEL_VIRT_OFFSET;
    k = k
        .with_sym("VCPOS_BOOT_INFO_PADDR", 0x3000_0000 + KERNEL_VIRT_OFFSET, 8)
        .with_sym("VCPOS_BOOT_INFO_SIZE", 0x3000_0008 + KERNEL_VIRT_OFFSET, 8);
    f.write("vcpos-kernel", &k.bytes());
    let errors = build_err(&f, &one_pd());
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert!(
        errors[0]
            .message
            .contains("kernel segment [0x30000000..0x30005000) lies outside the RAM"),
        "{}",
        errors[0]
    );
    // Boot-info symbols in .bss cannot be patched.
    let k = kernel_elf().with_sym("VCPOS_BOOT_INFO_SIZE", KERNEL_TEXT + 0x2000 + KERNEL_VIRT_OFFSET, 8);
    f.write("vcpos-kernel", &k.bytes());
    let errors = build_err(&f, &one_pd());
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert!(
        errors[0]
            .message
            .contains("'VCPOS_BOOT_INFO_SIZE': 0xffffff8040202000 is not in the file-backed bytes"),
        "{}",
        errors[0]
    );
}

#[test]
fn errors_from_independent_stages_are_collected() {
    let f = Fixture::new("err_collected");
    let mut sys = system(vec![pd("a", 10), pd("b", 20)], vec![], vec![]);
    sys.pds[0].irqs.push(irq(5, 0, 12));
    sys.pds[1].program_image.path = "missing.elf".into();
    let errors = build_err(&f, &sys);
    assert_error(&errors, "IRQ 5 is not available", "irq", 12);
    assert_error(
        &errors,
        "unable to find program image: 'missing.elf'",
        "program_image",
        21,
    );
}

#[test]
fn prefill_files_are_checked() {
    let f = Fixture::new("err_prefill");
    f.write("empty.bin", b"");
    f.write("big.bin", &[1u8; 0x1001]);
    let mut sys = one_pd();
    for (i, name) in ["empty.bin", "big.bin", "absent.bin"].iter().enumerate() {
        let mut m = mr(&format!("m{i}"), 0x1000, 0x1000, 2 + i as u32);
        m.prefill_path = Some(name.to_string());
        sys.memory_regions.push(m);
    }
    let errors = build_err(&f, &sys);
    assert_error(&errors, "prefill file 'empty.bin' is empty", "memory_region", 2);
    assert_error(
        &errors,
        "prefill file 'big.bin' is 0x1001 bytes, larger than memory region 'm1'",
        "memory_region",
        3,
    );
    assert_error(&errors, "unable to find prefill file: 'absent.bin'", "memory_region", 4);
}

#[test]
fn mutated_elf_files_never_panic() {
    use vcpos_tool::image::{elf, vspace};
    let good = pd_elf().bytes();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut parsed = 0;
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rand() % 4 {
            // Mostly the headers (file header, program headers), sometimes anywhere.
            let at = if rand() % 4 == 0 {
                rand() as usize % bytes.len()
            } else {
                rand() as usize % 0x100
            };
            bytes[at] = rand() as u8;
        }
        if rand() % 8 == 0 {
            bytes.truncate(rand() as usize % bytes.len());
        }
        if let Ok(img) = elf::parse(&bytes) {
            parsed += 1;
            if img.check_user(vcpos_abi::vspace::user_map_limit(0x2000)).is_empty() {
                let _ = vspace::runs(&img);
                let _ = img.check_patch(&img.symbols, "microkit_name", 64);
            }
        }
    }
    assert!(parsed > 100, "most single-byte changes still parse: {parsed}");
}
