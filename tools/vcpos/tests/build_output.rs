//! The output image and the boot-info blob of `vcpos build`: ELF structure, entry
//! point, segments, blob contents, report.

mod build_support;

use build_support::*;
use vcpos_abi::bootinfo::{BootInfo, NO_PARENT};
use vcpos_abi::vspace::{attr, stack_bottom, STACK_TOP};
use vcpos_abi::KERNEL_VIRT_OFFSET;
use vcpos_tool::image::{build, Config};

/// Two PDs, a shared region (mapped in both), a prefilled region, a device region.
fn sample(f: &Fixture) -> vcpos_tool::model::System {
    f.write("blob.bin", b"prefilled contents!");
    let mut a = pd("alpha", 10);
    let mut b = pd("beta", 20);
    b.priority = 150;
    let mut prefilled = mr("pre", 0x2000, 0x1000, 3);
    prefilled.prefill_path = Some("blob.bin".into());
    let mut uart = mr("uart", 0x1000, 0x1000, 4);
    uart.phys_addr = Some(0x0904_0000);
    a.maps.push(map(0, 0x100_0000, 11));
    a.maps.push(map(1, 0x200_0000, 12));
    let mut dev = map(2, 0x300_0000, 13);
    dev.cached = false;
    a.maps.push(dev);
    b.maps.push(map(0, 0x400_0000, 21));
    system(
        vec![a, b],
        vec![mr("shared", 0x4000, 0x1000, 2), prefilled, uart],
        vec![channel(end(0, 1, true, true, 30), end(1, 2, false, true, 31), 30)],
    )
}

#[test]
fn output_is_a_bootable_elf_with_physical_segments() {
    let f = Fixture::new("output_elf");
    let sys = sample(&f);
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    let img = ImageView::parse(&built.image);
    assert_eq!(img.machine, object::elf::EM_AARCH64.0);
    assert_eq!(img.e_type, object::elf::ET_EXEC.0);
    assert_eq!(img.shnum, 0, "the image has no sections");
    let kernel = kernel_elf();
    assert_eq!(img.entry, kernel.entry - KERNEL_VIRT_OFFSET);
    assert_eq!(img.entry, KERNEL_TEXT + KERNEL_ENTRY_OFF);
    assert_eq!(built.entry, img.entry);
    for (vaddr, paddr, offset, data, memsz) in &img.segs {
        assert_eq!(vaddr, paddr, "p_vaddr = p_paddr");
        assert!(*memsz >= data.len() as u64);
        if !data.is_empty() {
            assert_eq!(offset % 0x1000, paddr % 0x1000, "offset congruent to address");
        }
    }
    // Kernel text as it was, kernel data with the two symbols patched.
    assert_eq!(img.read_phys(KERNEL_TEXT, 0x1000).unwrap(), vec![0x11; 0x1000]);
    let kdata = img.read_phys(KERNEL_TEXT + 0x1000, 0x100).unwrap();
    let blob_paddr = u64::from_le_bytes(kdata[0..8].try_into().unwrap());
    let blob_size = u64::from_le_bytes(kdata[8..16].try_into().unwrap());
    assert_eq!(blob_paddr, built.layout.blob);
    assert_eq!(blob_size, built.blob.len() as u64);
    assert_eq!(&kdata[16..], &[0x22; 0xf0][..], "the rest of kernel data is untouched");
    let kseg = img.segs.iter().find(|s| s.1 == KERNEL_TEXT + 0x1000).unwrap();
    assert_eq!(kseg.4, 0x5000, "kernel bss kept in p_memsz");
    // The blob in the image is the blob, and parses.
    assert_eq!(img.read_phys(blob_paddr, blob_size).unwrap(), built.blob);
    BootInfo::parse(&built.blob).unwrap();
    // The prefilled region carries the file; the PD text is in the image.
    let pre = built.layout.mrs[1];
    assert_eq!(img.read_phys(pre, 19).unwrap(), b"prefilled contents!");
    let text = read_pd(&built, 0, 0x20_0000, 8);
    assert_eq!(text, [0x1f, 0x20, 0x03, 0xd5, 0x1f, 0x20, 0x03, 0xd5]);
    // Segments: 2 kernel + blob + 3 runs per PD (text, rodata, data) + 1 prefilled MR.
    assert_eq!(img.segs.len(), 2 + 1 + 2 * 3 + 1);
    // Device memory is not in the image.
    assert!(img.segs.iter().all(|s| s.1 != 0x0904_0000));
}

#[test]
fn blob_matches_the_system() {
    let f = Fixture::new("blob_matches");
    let sys = sample(&f);
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    let info = BootInfo::parse(&built.blob).unwrap();
    assert_eq!(info.num_pds(), 2);
    assert_eq!(info.header.pt_pool_paddr, built.pt_pool.0);
    assert_eq!(info.header.pt_pool_size, built.pt_pool.1);
    assert_eq!(info.header.pt_pool_paddr % 0x1000, 0);
    for (i, p) in sys.pds.iter().enumerate() {
        let d = info.pd(i);
        assert_eq!(d.name_str(), p.name);
        assert_eq!(d.entry, 0x20_0000);
        assert_eq!(d.stack_top, STACK_TOP);
        assert_eq!(d.priority, p.priority);
        assert_eq!(d.budget_us, 1000);
        assert_eq!(d.parent, NO_PARENT);
        assert_eq!(d.ipc_buffer_paddr, built.layout.pds[i].ipc_buffer);
        let maps: Vec<_> = info.pd_maps(&d).collect();
        // Maps are sorted and do not overlap.
        for w in maps.windows(2) {
            assert!(w[0].vaddr + w[0].size <= w[1].vaddr, "{maps:x?}");
        }
        let find = |v: u64| maps.iter().find(|m| m.vaddr == v).copied().unwrap();
        let text = find(0x20_0000);
        assert_eq!(text.attrs, attr::READ | attr::EXECUTE | attr::CACHED);
        assert_eq!(text.size, 0x1000);
        assert_eq!(find(0x20_1000).attrs, attr::READ | attr::CACHED);
        let data = find(DATA);
        assert_eq!(data.attrs, attr::READ | attr::WRITE | attr::CACHED);
        assert_eq!(data.size, 0x2000, "0x1900 bytes of data+bss take two pages");
        let stack = find(stack_bottom(0x2000));
        assert_eq!((stack.size, stack.paddr), (0x2000, built.layout.pds[i].stack));
        let ipc = find(vcpos_abi::msg::IPC_BUFFER_VADDR);
        assert_eq!((ipc.size, ipc.paddr), (0x1000, built.layout.pds[i].ipc_buffer));
    }
    // The shared region is mapped at the same physical address in both PDs.
    let a_shared = info.pd_maps(&info.pd(0)).find(|m| m.vaddr == 0x100_0000).unwrap();
    let b_shared = info.pd_maps(&info.pd(1)).find(|m| m.vaddr == 0x400_0000).unwrap();
    assert_eq!(a_shared.paddr, b_shared.paddr);
    assert_eq!(a_shared.paddr, built.layout.mrs[0]);
    assert_eq!(a_shared.size, 0x4000);
    // The device region keeps its address and is mapped uncached.
    let dev = info.pd_maps(&info.pd(0)).find(|m| m.vaddr == 0x300_0000).unwrap();
    assert_eq!(dev.paddr, 0x0904_0000);
    assert_eq!(dev.attrs, attr::READ | attr::WRITE);
    // Zero ranges: stacks, IPC buffers, .bss tails, the zeroed region and the tail of
    // the prefilled one; never the device region.
    let zero: Vec<_> = (0..info.header.num_zero as usize).map(|i| info.zero(i)).collect();
    let has = |paddr: u64, size: u64| zero.iter().any(|z| z.paddr == paddr && z.size == size);
    for p in &built.layout.pds {
        assert!(has(p.stack, 0x2000));
        assert!(has(p.ipc_buffer, 0x1000));
        // Each run is zeroed past its file bytes: text 0x180, rodata 0x18, data 0x100.
        assert!(has(p.runs[0] + 0x180, 0x1000 - 0x180), "{zero:x?}");
        assert!(has(p.runs[1] + 0x18, 0x1000 - 0x18), "{zero:x?}");
        assert!(has(p.runs[2] + 0x100, 0x2000 - 0x100), "{zero:x?}");
    }
    assert!(has(built.layout.mrs[0], 0x4000));
    assert!(has(built.layout.mrs[1] + 19, 0x2000 - 19));
    assert!(zero
        .iter()
        .all(|z| z.paddr + z.size <= 0x4000_0000 + 0x8000_0000 && z.paddr >= 0x4000_0000));
    assert_eq!(zero.len(), 2 * 5 + 2);
    // Record tables agree with the typed records.
    assert_eq!(built.records.pds[0], info.pd(0));
    assert_eq!(built.records.maps.len(), info.header.num_maps as usize);
    assert_eq!(built.records.caps.len(), info.header.num_caps as usize);
}

#[test]
fn page_table_pool_is_sized_per_pd() {
    let f = Fixture::new("pt_pool");
    let sys = sample(&f);
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap();
    use vcpos_abi::vspace::{page_tables_needed, VRange};
    let info = BootInfo::parse(&built.blob).unwrap();
    let mut expected = 0;
    for i in 0..info.num_pds() {
        let d = info.pd(i);
        let mut ranges: Vec<VRange> = info
            .pd_maps(&d)
            .map(|m| VRange {
                vaddr: m.vaddr,
                size: m.size,
                large: m.attrs & attr::LARGE != 0,
            })
            .collect();
        ranges.sort_by_key(|r| r.vaddr);
        expected += page_tables_needed(&ranges);
    }
    assert_eq!(built.pt_pool.1, expected as u64 * 0x1000);
    // Every PD here: L0, L1 low, L1 high, L2 low, L2 high, L3 for 0x200000, L3 for the
    // region maps (16 MiB.. 64 MiB: 0x1000000, 0x2000000, 0x3000000 / 0x4000000), L3 top.
    assert!(built.pt_pool.1 >= 2 * 7 * 0x1000);
}

#[test]
fn report_describes_every_pd() {
    let f = Fixture::new("report");
    let sys = sample(&f);
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap();
    let r = &built.report;
    for needle in [
        "## PD 0: 'alpha'",
        "## PD 1: 'beta'",
        "priority:     150",
        "slot  11: Notification -> 'beta', badge 0x4",
        "slot  75: Endpoint (PPC) -> 'beta', badge 0x8000000000000002 (PPC, channel 2)",
        "memory region 'shared'",
        "memory region 'uart' (device memory, fixed address)",
        "microkit_name @ 0x202000 = \"alpha\"",
        "VCPOS_BOOT_INFO_PADDR",
        "# Physical memory map",
        "boot information",
        "page-table pool",
        "PD 'beta' stack",
        "channel 1 <-> 'beta' channel 2 (may notify: yes, may PPC: yes)",
    ] {
        assert!(r.contains(needle), "report lacks {needle:?}:\n{r}");
    }
}

#[test]
fn build_command_writes_image_and_report() {
    // The SDF parser is another stage; here only the error path of a missing file is
    // exercised end to end, and the files are written by `build` + std::fs.
    let f = Fixture::new("build_command");
    let args = vcpos_tool::image::BuildArgs {
        board: "qemu_virt_aarch64".into(),
        config: "fast".into(),
        search_paths: vec![f.dir.clone()],
        kernel: None,
        output: f.dir.join("out.img"),
        report: f.dir.join("report.txt"),
        system: f.dir.join("missing.system"),
    };
    let errors = vcpos_tool::image::build_command(&args).unwrap_err();
    assert!(
        errors[0].message.contains("unknown config 'fast'"),
        "{}",
        render(&errors)
    );
    let args = vcpos_tool::image::BuildArgs {
        config: "debug".into(),
        ..args
    };
    let errors = vcpos_tool::image::build_command(&args).unwrap_err();
    assert!(!errors.is_empty());
    assert!(!f.dir.join("out.img").exists());
}
