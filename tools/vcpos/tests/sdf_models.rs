//! What valid system descriptions mean: model assertions on the valid fixtures of
//! `tests/sdf/` (whose whole model is also compared with their `.expected` files by
//! `sdf_rules.rs`), and loading through search paths and from files.

use std::path::Path;

use vcpos_tool::model::{Perms, Trigger};
use vcpos_tool::sdf::{self, Loaded};

/// The fixture directory.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdf");

/// Parses fixture `name` (locations use the bare file name); panics if rejected.
fn check_ok(name: &str) -> Loaded {
    let path = Path::new(FIXTURES).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sdf::parse_str(name, &text).unwrap_or_else(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("{name}: rejected:\n{}", lines.join("\n"))
    })
}

/// The model's names of all PDs, in kernel PD index order.
fn pd_names(loaded: &Loaded) -> Vec<&str> {
    loaded.system.pds.iter().map(|pd| pd.name.as_str()).collect()
}

#[test]
fn mr_prefill_without_size() {
    // Not found (no search path), the region cannot be sized: see its `.expected`.
    // Found through a search path: sized from the file, rounded up to the page size
    // (Microkit semantics).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdf-prefill");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.bin"), vec![7u8; 0x1801]).unwrap();
    let text = std::fs::read_to_string(Path::new(FIXTURES).join("mr_prefill_without_size.system")).unwrap();
    let loaded = sdf::parse_str_with("mr_prefill_without_size.system", &text, std::slice::from_ref(&dir)).unwrap();
    assert_eq!(loaded.system.memory_regions[0].size, 0x2000);
    std::fs::write(dir.join("data.bin"), b"").unwrap();
    let errors = sdf::parse_str_with("mr_prefill_without_size.system", &text, &[dir]).unwrap_err();
    assert!(
        errors[0].to_string().contains("prefill file 'data.bin' is empty"),
        "{}",
        errors[0]
    );
}

#[test]
fn vm_map_rwx() {
    let s = check_ok("vm_map_rwx.system").system;
    let vm = s.pds[0].virtual_machine.as_ref().unwrap();
    assert!(vm.maps[0].perms.write && vm.maps[0].perms.execute);
}

#[test]
fn valid_minimal() {
    let loaded = check_ok("valid_minimal.system");
    let pd = &loaded.system.pds[0];
    assert_eq!(pd_names(&loaded), ["hello"]);
    assert_eq!(pd.program_image.path, "hello.elf");
    assert!(loaded.system.memory_regions.is_empty() && loaded.system.channels.is_empty());
    assert!(loaded.warnings.is_empty());
}

#[test]
fn valid_full_pds_in_document_order_parents_first() {
    let loaded = check_ok("valid_full.system");
    let s = &loaded.system;
    assert_eq!(
        pd_names(&loaded),
        [
            "driver",
            "client",
            "child_a",
            "child_b",
            "grandchild",
            "vmm",
            "vmm_helper"
        ]
    );
    let parents: Vec<Option<usize>> = s.pds.iter().map(|pd| pd.parent).collect();
    assert_eq!(parents, [None, None, Some(1), Some(1), Some(3), None, Some(5)]);
    let ids: Vec<Option<u8>> = s.pds.iter().map(|pd| pd.child_id).collect();
    assert_eq!(ids, [None, None, Some(1), Some(2), Some(0), None, Some(2)]);
    assert_eq!(s.pds[2].setvar_id.as_deref(), Some("child_a_id"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn valid_full_pd_attributes() {
    let s = check_ok("valid_full.system").system;
    let driver = &s.pds[0];
    assert_eq!((driver.priority, driver.budget_us, driver.period_us), (200, 500, 1000));
    assert_eq!((driver.stack_size, driver.passive, driver.cpu), (0x4000, false, 0));
    let child_b = &s.pds[3];
    assert_eq!((child_b.budget_us, child_b.period_us), (1000, 10_000));
    let grandchild = &s.pds[4];
    assert!(grandchild.smc && !grandchild.fpu);
    assert!(!driver.smc && driver.fpu);
    assert_eq!(s.pds[1].program_image.path_for_symbols.as_deref(), Some("client.dbg"));
    assert_eq!(s.pds[5].stack_size, 0x1_0000);
}

#[test]
fn valid_full_memory_regions_and_maps() {
    let s = check_ok("valid_full.system").system;
    let mrs: Vec<(&str, u64, u64, Option<u64>)> = s
        .memory_regions
        .iter()
        .map(|m| (m.name.as_str(), m.size, m.page_size, m.phys_addr))
        .collect();
    assert_eq!(
        mrs,
        [
            ("uart", 0x1000, 0x1000, Some(0x900_0000)),
            ("shared", 0x4000, 0x1000, None),
            ("big", 0x40_0000, 0x20_0000, None),
            ("dma", 0x2000, 0x1000, None),
            ("guest_ram", 0x1000_0000, 0x20_0000, None),
            ("guest_flash", 0x20_0000, 0x20_0000, None),
        ]
    );
    let driver = &s.pds[0];
    let uart = &driver.maps[0];
    assert_eq!((uart.mr, uart.vaddr, uart.cached), (0, 0x200_0000, false));
    assert_eq!(
        uart.perms,
        Perms {
            read: true,
            write: true,
            execute: false
        }
    );
    assert_eq!(uart.setvar_vaddr.as_deref(), Some("uart_base"));
    assert_eq!(driver.maps[1].setvar_size.as_deref(), Some("shared_size"));
    assert!(driver.maps[1].cached, "cached defaults to true");
    let client = &s.pds[1];
    assert_eq!(
        client.maps[0].perms,
        Perms {
            read: true,
            write: false,
            execute: false
        }
    );
    assert_eq!(
        client.maps[1].perms,
        Perms {
            read: true,
            write: false,
            execute: true
        }
    );
    assert_eq!((client.maps[2].mr, client.maps[2].vaddr), (3, 0x500_0000));
    assert_eq!(driver.setvars.len(), 1);
    assert_eq!(
        (driver.setvars[0].symbol.as_str(), driver.setvars[0].region_paddr),
        ("dma_paddr", 3)
    );
}

#[test]
fn valid_full_irqs_and_channels() {
    let s = check_ok("valid_full.system").system;
    let irqs: Vec<(u32, u8, Trigger)> = s.pds[0].irqs.iter().map(|i| (i.irq, i.id, i.trigger)).collect();
    assert_eq!(irqs, [(33, 0, Trigger::Level), (0x50, 61, Trigger::Edge)]);
    assert_eq!(s.pds[0].irqs[0].setvar_id.as_deref(), Some("uart_irq_ch"));
    let ends: Vec<[(usize, u8, bool, bool); 2]> = s
        .channels
        .iter()
        .map(|c| c.ends.clone().map(|e| (e.pd, e.id, e.pp, e.notify)))
        .collect();
    assert_eq!(
        ends,
        [
            [(1, 0, true, true), (0, 1, false, true)],
            [(1, 61, false, false), (2, 5, false, true)],
            [(5, 1, false, true), (0, 2, false, true)],
        ]
    );
    assert_eq!(s.channels[0].ends[0].setvar_id.as_deref(), Some("driver_ch"));
}

#[test]
fn valid_full_virtual_machine() {
    let s = check_ok("valid_full.system").system;
    let vmm = &s.pds[5];
    assert_eq!(vmm.name, "vmm");
    let vm = vmm.virtual_machine.as_ref().expect("vmm has a VM");
    assert_eq!(
        (vm.name.as_str(), vm.priority, vm.budget_us, vm.period_us),
        ("linux", 140, 2000, 4000)
    );
    let vcpus: Vec<(u8, u32, Option<&str>)> = vm.vcpus.iter().map(|v| (v.id, v.cpu, v.setvar_id.as_deref())).collect();
    assert_eq!(
        vcpus,
        [(0, 0, Some("vcpu0")), (1, 0, None)],
        "cpu defaults to the parent's core"
    );
    let maps: Vec<(usize, u64, bool)> = vm.maps.iter().map(|m| (m.mr, m.vaddr, m.perms.execute)).collect();
    assert_eq!(maps, [(4, 0x4000_0000, false), (5, 0, true), (0, 0x900_0000, false)]);
    assert!(s
        .pds
        .iter()
        .filter(|pd| pd.name != "vmm")
        .all(|pd| pd.virtual_machine.is_none()));
}

#[test]
fn valid_full_keeps_locations() {
    let s = check_ok("valid_full.system").system;
    let span = &s.pds[1].span;
    assert_eq!((span.file.as_str(), span.line, span.col), ("valid_full.system", 20, 5));
    assert_eq!(s.pds[1].maps[1].span.to_string(), "valid_full.system:23:9");
    assert_eq!(s.channels[2].ends[1].span.to_string(), "valid_full.system:62:9");
}

#[test]
fn pd_defaults() {
    let s = check_ok("pd_defaults.system").system;
    let a = &s.pds[0];
    assert_eq!(
        (a.priority, a.budget_us, a.period_us, a.stack_size),
        (0, 1000, 1000, 0x2000)
    );
    assert_eq!((a.passive, a.cpu, a.smc, a.fpu), (false, 0, false, true));
    assert_eq!((a.parent, a.child_id), (None, None));
    let b = &s.pds[1];
    assert_eq!(
        (b.budget_us, b.period_us),
        (2000, 2000),
        "period defaults to the budget"
    );
}

#[test]
fn pd_name_64_bytes() {
    assert_eq!(check_ok("pd_name_64_bytes.system").system.pds[0].name.len(), 64);
}

#[test]
fn irq_hex_id() {
    let s = check_ok("irq_hex_id.system").system;
    let irqs: Vec<(u32, u8, Trigger)> = s.pds[0].irqs.iter().map(|i| (i.irq, i.id, i.trigger)).collect();
    assert_eq!(irqs, [(0x21, 0x3d, Trigger::Level), (34, 10, Trigger::Edge)]);
}

#[test]
fn ch_end_hex_id() {
    let s = check_ok("ch_end_hex_id.system").system;
    let [a, b] = &s.channels[0].ends;
    assert_eq!((a.pd, a.id, a.pp, a.notify), (0, 61, true, true));
    assert_eq!((b.pd, b.id, b.pp, b.notify), (1, 10, false, false));
}

#[test]
fn mr_auto_page_size() {
    let loaded = check_ok("mr_auto_page_size.system");
    let sizes: Vec<(&str, u64)> = loaded
        .system
        .memory_regions
        .iter()
        .map(|m| (m.name.as_str(), m.page_size))
        .collect();
    assert_eq!(
        sizes,
        [
            ("small", 0x1000),
            ("large", 0x20_0000),
            ("large_misaligned_map", 0x1000),
            ("large_misaligned_paddr", 0x1000),
            ("large_unused", 0x20_0000),
            ("forced_small", 0x1000),
        ]
    );
    assert_eq!(loaded.warnings, ["WARNING: unused memory region 'large_unused'"]);
}

#[test]
fn mr_unused() {
    let loaded = check_ok("mr_unused.system");
    assert_eq!(
        loaded.warnings,
        [
            "WARNING: unused memory region 'spare'",
            "WARNING: unused memory region 'spare2'"
        ]
    );
}

#[test]
fn map_at_stack_limit() {
    let s = check_ok("map_at_stack_limit.system").system;
    // Default stack: limit 0xff_ffff_b000; 64 KiB stack: limit 0xff_fffe_d000.
    assert_eq!(
        s.pds[0].maps[0].vaddr + 0x1000,
        vcpos_abi::vspace::user_map_limit(0x2000)
    );
    assert_eq!(
        s.pds[1].maps[0].vaddr + 0x1000,
        vcpos_abi::vspace::user_map_limit(0x1_0000)
    );
}

#[test]
fn load_reads_a_file_and_records_its_path() {
    let path = Path::new(FIXTURES).join("valid_minimal.system");
    let loaded = sdf::load(&path).unwrap();
    assert_eq!(loaded.system.path, path);
    assert_eq!(loaded.system.pds[0].span.file, path.display().to_string());
    let missing = sdf::load(Path::new("no/such/file.system")).unwrap_err();
    assert_eq!(missing.len(), 1);
    assert!(
        missing[0]
            .to_string()
            .starts_with("Error: cannot read 'no/such/file.system': "),
        "{}",
        missing[0]
    );
}
