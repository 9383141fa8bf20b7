//! Symbol patching by `vcpos build`: the microkit globals, every kind of setvar, the
//! kernel's boot-info symbols, and the located errors when a symbol does not fit.

mod build_support;

use build_support::*;
use vcpos_tool::image::{build, Config};
use vcpos_tool::model::{SetVar, System};

/// client (0) with a map, an IRQ and setvars on everything; server (1); child of
/// client (2, id 4, setvar_id in the client).
fn sample() -> System {
    let mut client = pd("client", 10);
    let mut m = map(0, 0x500_0000, 11);
    m.setvar_vaddr = Some("var0".into());
    m.setvar_size = Some("var1".into());
    client.maps.push(m);
    let mut q = irq(45, 6, 12);
    q.setvar_id = Some("var2".into());
    client.irqs.push(q);
    client.setvars.push(SetVar {
        symbol: "var3".into(),
        region_paddr: 1,
        span: span(13),
    });
    let mut server = pd("server", 20);
    server.priority = 200;
    server.passive = true;
    let mut child = pd("worker-with-a-long-name", 30);
    child.parent = Some(0);
    child.child_id = Some(4);
    child.setvar_id = Some("var5".into());
    let mut a = end(0, 7, true, false, 40);
    a.setvar_id = Some("var4".into());
    let mut b = end(1, 3, false, true, 41);
    b.setvar_id = Some("var0".into());
    system(
        vec![client, server, child],
        vec![mr("buf", 0x3000, 0x1000, 2), mr("dma", 0x20_0000, 0x20_0000, 3)],
        vec![
            channel(a, b, 40),
            channel(end(0, 9, false, true, 42), end(1, 10, false, false, 43), 42),
        ],
    )
}

fn name_bytes(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.resize(64, 0);
    v
}

#[test]
fn microkit_globals_are_patched_in_the_image() {
    let f = Fixture::new("sym_globals");
    let built = build(&sample(), &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    let spec = pd_elf();
    // client: IRQ id 6; may notify on 9 (not 7: notify=false there); may PPC on 7.
    assert_eq!(read_pd(&built, 0, spec.sym("microkit_name"), 64), name_bytes("client"));
    assert_eq!(read_pd(&built, 0, spec.sym("microkit_passive"), 1), [0]);
    assert_eq!(read_pd_u64(&built, 0, spec.sym("microkit_irqs")), 1 << 6);
    assert_eq!(read_pd_u64(&built, 0, spec.sym("microkit_notifications")), 1 << 9);
    assert_eq!(read_pd_u64(&built, 0, spec.sym("microkit_pps")), 1 << 7);
    assert_eq!(read_pd_u64(&built, 0, spec.sym("microkit_ioports")), 0);
    // server: passive; may notify on 3 only.
    assert_eq!(read_pd(&built, 1, spec.sym("microkit_name"), 64), name_bytes("server"));
    assert_eq!(read_pd(&built, 1, spec.sym("microkit_passive"), 1), [1]);
    assert_eq!(read_pd_u64(&built, 1, spec.sym("microkit_notifications")), 1 << 3);
    assert_eq!(read_pd_u64(&built, 1, spec.sym("microkit_pps")), 0);
    assert_eq!(read_pd_u64(&built, 1, spec.sym("microkit_irqs")), 0);
    assert_eq!(
        read_pd(&built, 2, spec.sym("microkit_name"), 64),
        name_bytes("worker-with-a-long-name")
    );
    // Bytes around the patched symbols keep the file's contents.
    assert_eq!(read_pd(&built, 0, spec.sym("microkit_passive") + 1, 7), [DATA_FILL; 7]);
    assert_eq!(read_pd(&built, 0, spec.sym("small_var"), 4), [DATA_FILL; 4]);
    assert_eq!(
        read_pd(&built, 0, VARS + 6 * 8, 16),
        [DATA_FILL; 16],
        "var6 and var7 untouched"
    );
}

#[test]
fn setvars_get_their_values() {
    let f = Fixture::new("sym_setvars");
    let built = build(&sample(), &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    let var = |pd: usize, i: u64| read_pd_u64(&built, pd, VARS + 8 * i);
    assert_eq!(var(0, 0), 0x500_0000, "setvar_vaddr");
    assert_eq!(var(0, 1), 0x3000, "setvar_size");
    assert_eq!(var(0, 2), 6, "irq setvar_id");
    assert_eq!(var(0, 3), built.layout.mrs[1], "setvar region_paddr");
    assert_eq!(var(0, 3) % 0x20_0000, 0, "a 2 MiB region is 2 MiB aligned");
    assert_eq!(var(0, 4), 7, "end setvar_id");
    assert_eq!(var(0, 5), 4, "child setvar_id lands in the parent");
    assert_eq!(var(1, 0), 3, "end setvar_id of the other end");
    assert_eq!(
        var(2, 5),
        u64::from_le_bytes([DATA_FILL; 8]),
        "the child's own var5 untouched"
    );
    // The typed list of patches agrees.
    let p = built.patched.iter().find(|p| p.pd == 0 && p.symbol == "var3").unwrap();
    assert_eq!(p.bytes, built.layout.mrs[1].to_le_bytes());
    assert!(p.reason.contains("region_paddr of 'dma'"));
}

#[test]
fn kernel_symbols_hold_the_blob_address_and_size() {
    let f = Fixture::new("sym_kernel");
    let built = build(&sample(), &board(), &f.opts(Config::Debug)).unwrap();
    let k: Vec<_> = built
        .kernel_patched
        .iter()
        .map(|k| (k.symbol.as_str(), k.value))
        .collect();
    assert_eq!(
        k,
        vec![
            ("VCPOS_BOOT_INFO_PADDR", built.layout.blob),
            ("VCPOS_BOOT_INFO_SIZE", built.blob.len() as u64)
        ]
    );
    let img = ImageView::parse(&built.image);
    let kdata = img.read_phys(KERNEL_TEXT + 0x1000, 16).unwrap();
    assert_eq!(&kdata[..8], &built.layout.blob.to_le_bytes());
    assert_eq!(&kdata[8..], &(built.blob.len() as u64).to_le_bytes());
}

#[test]
fn path_for_symbols_supplies_the_symbol_table() {
    let f = Fixture::new("sym_path_for_symbols");
    // The program image has no symbols at all; a second file carries them.
    let mut stripped = pd_elf();
    stripped.syms.clear();
    f.write("stripped.elf", &stripped.bytes());
    f.write("symbols.elf", &pd_elf().bytes());
    let mut sys = sample();
    sys.pds[1].program_image.path = "stripped.elf".into();
    let errors = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_err();
    assert_error(&errors, "could not patch symbol 'microkit_name'", "program_image", 21);
    sys.pds[1].program_image.path_for_symbols = Some("symbols.elf".into());
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(read_pd(&built, 1, DATA, 64), name_bytes("server"));
    assert_eq!(read_pd_u64(&built, 1, VARS), 3);
}

#[test]
fn missing_microkit_symbol_is_located_at_the_program_image() {
    let f = Fixture::new("sym_missing_global");
    f.write("nopps.elf", &pd_elf().without("microkit_pps").bytes());
    let mut sys = sample();
    sys.pds[1].program_image.path = "nopps.elf".into();
    let errors = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_err();
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert_error(
        &errors,
        "could not patch symbol 'microkit_pps': it is not defined in",
        "program_image",
        21,
    );
    assert!(errors[0].message.contains("microkit_* globals"));
}

#[test]
fn setvar_symbol_errors_are_located() {
    let f = Fixture::new("sym_setvar_errors");
    let mut sys = sample();
    // Non-word symbol, missing symbol, symbol in .bss, duplicate setvar.
    sys.pds[0].maps[0].setvar_vaddr = Some("small_var".into());
    sys.pds[0].irqs[0].setvar_id = Some("no_such_symbol".into());
    sys.pds[0].setvars[0].symbol = "bss_var".into();
    sys.pds[1].setvars.push(SetVar {
        symbol: "var0".into(),
        region_paddr: 0,
        span: span(22),
    });
    let errors = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_err();
    assert_error(
        &errors,
        "setvar to non-word size symbol 'small_var' (size 4)",
        "map",
        11,
    );
    assert_error(&errors, "could not patch symbol 'no_such_symbol'", "irq", 12);
    assert_error(&errors, "could not patch symbol 'bss_var' at 0x202200", "setvar", 13);
    assert_error(&errors, "setvar on symbol 'var0' already exists", "setvar", 22);
    assert_eq!(errors.len(), 4, "{}", render(&errors));
}

#[test]
fn wrong_size_microkit_global_is_an_error() {
    let f = Fixture::new("sym_wrong_size_global");
    f.write("short_name.elf", &pd_elf().with_sym("microkit_name", DATA, 16).bytes());
    let mut sys = sample();
    sys.pds[2].program_image.path = "short_name.elf".into();
    let errors = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_err();
    assert_error(&errors, "its size is 16 bytes, expected 64", "program_image", 31);
}

#[test]
fn kernel_without_boot_info_symbols_is_an_error() {
    let f = Fixture::new("sym_kernel_missing");
    f.write("vcpos-kernel", &kernel_elf().without("VCPOS_BOOT_INFO_SIZE").bytes());
    let errors = build(&sample(), &board(), &f.opts(Config::Debug)).unwrap_err();
    assert_eq!(errors.len(), 1, "{}", render(&errors));
    assert!(errors[0].message.contains("VCPOS_BOOT_INFO_SIZE"), "{}", errors[0]);
    assert!(errors[0].message.contains("kernel image"), "{}", errors[0]);
}

#[test]
fn setvar_prefill_size_gets_the_file_length() {
    let f = Fixture::new("sym_prefill_size");
    f.write("firmware.bin", &[0x5a; 0x1234]);
    let mut sys = sample();
    sys.memory_regions[0].prefill_path = Some("firmware.bin".into());
    sys.pds[0].maps[0].setvar_prefill_size = Some("var6".into());
    let built = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    assert_eq!(read_pd_u64(&built, 0, VARS + 6 * 8), 0x1234);
    assert_eq!(
        read_pd_u64(&built, 0, VARS + 8),
        0x3000,
        "setvar_size is still the region size"
    );
    // The region holds the file, then zeroes (the kernel zeroes the tail).
    assert_eq!(read_pd(&built, 0, 0x500_0000 + 0x1230, 4), [0x5a; 4]);
    let tail = built
        .records
        .zero
        .iter()
        .find(|z| z.paddr == built.layout.mrs[0] + 0x1234)
        .unwrap();
    assert_eq!(tail.size, 0x3000 - 0x1234);
}
