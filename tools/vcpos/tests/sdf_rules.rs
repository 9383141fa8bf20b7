//! The SDF front end, rule by rule: one fixture per validation rule in `tests/sdf/`,
//! `<element>_<violation>.system`, next to `<name>.expected`, the exact output it must
//! give: for a rejected fixture, the error lines `vcpos check` prints (message, element
//! and `file:line:col`), in order; for a valid one, `OK`, its warnings and the whole
//! model it produces (`{:#?}`). One test per fixture, named after it.
//!
//! `VCPOS_BLESS=1 cargo test -p vcpos-tool --test sdf_rules` rewrites the `.expected`
//! files from what the front end gives now (review the diff before committing it).
//! A new fixture is added to the [`fixtures!`] list; `every_fixture_is_listed` fails
//! until it is, and until it has its `.expected` file.

use std::path::{Path, PathBuf};

use vcpos_tool::sdf;

/// The fixture directory.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdf");

/// What fixture `name` (without `.system`) gives: its error lines, or `OK`, its
/// warnings and its model. Locations use the bare file name.
fn outcome(name: &str) -> String {
    let file = format!("{name}.system");
    let path = Path::new(FIXTURES).join(&file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match sdf::parse_str(&file, &text) {
        Err(errors) => errors.iter().map(|e| format!("{e}\n")).collect(),
        Ok(loaded) => {
            let warnings: String = loaded.warnings.iter().map(|w| format!("{w}\n")).collect();
            format!("OK\n{warnings}{:#?}\n", loaded.system)
        }
    }
}

/// The expectation file of fixture `name`.
fn expected_path(name: &str) -> PathBuf {
    Path::new(FIXTURES).join(format!("{name}.expected"))
}

/// Whether `VCPOS_BLESS` asks to rewrite the expectations.
fn bless() -> bool {
    std::env::var_os("VCPOS_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Checks fixture `name` against its `.expected` file (or rewrites that, blessing).
fn check(name: &str) {
    let got = outcome(name);
    let path = expected_path(name);
    if bless() {
        std::fs::write(&path, &got).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (VCPOS_BLESS=1 writes it from the current output)\ngot:\n{got}",
            path.display()
        )
    });
    if got != want {
        let diff: String = diff_lines(&want, &got);
        panic!(
            "{name}.system: output differs from {} (- expected, + got; VCPOS_BLESS=1 rewrites it):\n{diff}",
            path.display()
        );
    }
}

/// The lines of `want` and `got` that differ, position by position.
fn diff_lines(want: &str, got: &str) -> String {
    let (w, g): (Vec<&str>, Vec<&str>) = (want.lines().collect(), got.lines().collect());
    let mut out = String::new();
    for i in 0..w.len().max(g.len()) {
        match (w.get(i), g.get(i)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push_str(&format!("{:>4} - {a}\n", i + 1));
                }
                if let Some(b) = b {
                    out.push_str(&format!("{:>4} + {b}\n", i + 1));
                }
            }
        }
    }
    out
}

/// One test per fixture name: `fixtures![a, b]` makes `#[test] fn a()` checking
/// `a.system` against `a.expected`, and `LISTED` with every name.
macro_rules! fixtures {
    ($($name:ident,)*) => {
        /// Every fixture this file tests.
        const LISTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*
    };
}

fixtures![
    ch_bad_bool,
    ch_duplicate_id,
    ch_end_bad_id,
    ch_end_hex_id,
    ch_end_id_too_large,
    ch_end_missing_attributes,
    ch_invalid_attribute,
    ch_invalid_element,
    ch_no_ends,
    ch_one_end,
    ch_pp_both_ends,
    ch_ppc_equal_priority,
    ch_ppc_lower_priority,
    ch_three_ends,
    ch_unknown_pd,
    diag_control_chars,
    image_invalid_attribute,
    image_missing_path,
    irq_bad_number,
    irq_bad_trigger,
    irq_duplicate_id,
    irq_duplicate_number,
    irq_hex_id,
    irq_id_clashes_channel,
    irq_id_too_large,
    irq_invalid_attribute,
    irq_missing_id,
    irq_missing_irq,
    irq_number_too_large,
    irq_x86_attrs,
    irq_x86_msi,
    map_above_custom_stack_limit,
    map_above_stack_limit,
    map_at_stack_limit,
    map_bad_cached,
    map_bad_perms,
    map_empty_perms,
    map_invalid_attribute,
    map_missing_mr,
    map_missing_vaddr,
    map_overlap,
    map_setvar_clash,
    map_setvar_prefill_size_not_prefilled,
    map_unaligned_large_page,
    map_unaligned_vaddr,
    map_unknown_mr,
    map_vaddr_overflow,
    map_write_only,
    map_wx,
    map_wx_no_read,
    mr_auto_page_size,
    mr_bad_number,
    mr_bad_page_size,
    mr_child_element,
    mr_duplicate_name,
    mr_invalid_attribute,
    mr_missing_name,
    mr_missing_size,
    mr_overlap_paddr,
    mr_paddr_overflow,
    mr_prefill_bootinfo_fdt,
    mr_prefill_bootinfo_x86,
    mr_prefill_without_size,
    mr_size_not_large_page_multiple,
    mr_size_not_page_multiple,
    mr_size_overflow,
    mr_size_zero,
    mr_unaligned_paddr,
    mr_unaligned_paddr_large_page,
    mr_unused,
    multi_errors,
    pd_bad_bool,
    pd_budget_below_min,
    pd_budget_gt_default_period,
    pd_budget_gt_period,
    pd_child_duplicate_id,
    pd_child_id_too_large,
    pd_child_id_vcpu_collision,
    pd_child_missing_id,
    pd_child_setvar_id_clash,
    pd_cpu_not_number,
    pd_cpu_too_large,
    pd_cspace,
    pd_defaults,
    pd_domain_attr,
    pd_duplicate_name,
    pd_invalid_attribute,
    pd_invalid_element,
    pd_ioport,
    pd_missing_name,
    pd_missing_program_image,
    pd_name_64_bytes,
    pd_name_empty,
    pd_name_monitor,
    pd_name_too_long,
    pd_priority_overflow,
    pd_priority_too_high,
    pd_root_with_id,
    pd_stack_too_large,
    pd_stack_too_small,
    pd_stack_unaligned,
    pd_text,
    pd_two_program_images,
    pd_two_vms,
    ref_did_you_mean,
    setvar_clash_with_end,
    setvar_clash_with_map,
    setvar_duplicate_symbol,
    setvar_missing_attributes,
    setvar_unknown_region,
    system_domains,
    system_invalid_attribute,
    system_invalid_element,
    system_io_address_space,
    system_no_pd,
    system_root_not_system,
    system_text,
    system_too_many_pds,
    system_vm_top_level,
    valid_full,
    valid_minimal,
    vm_budget_below_min,
    vm_budget_gt_period,
    vm_duplicate_name,
    vm_invalid_attribute,
    vm_invalid_element,
    vm_map_above_limit,
    vm_map_overlap,
    vm_map_rwx,
    vm_map_setvar,
    vm_map_unknown_mr,
    vm_missing_name,
    vm_no_vcpu,
    vm_priority_too_high,
    vm_vcpu_duplicate_id,
    vm_vcpu_id_too_large,
    vm_vcpu_invalid_attribute,
    vm_vcpu_missing_id,
    xml_malformed,
    xml_unclosed,
];

/// Every `.system` file in `tests/sdf/` is listed above and has its `.expected` file;
/// every `.expected` file belongs to a fixture.
#[test]
fn every_fixture_is_listed() {
    let mut systems = Vec::new();
    let mut expected = Vec::new();
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".system") {
            systems.push(stem.to_string());
        } else if let Some(stem) = name.strip_suffix(".expected") {
            expected.push(stem.to_string());
        }
    }
    systems.sort();
    expected.sort();
    assert!(systems.len() > 100, "fixtures missing: {}", systems.len());
    let unlisted: Vec<&String> = systems.iter().filter(|s| !LISTED.contains(&s.as_str())).collect();
    assert!(
        unlisted.is_empty(),
        "fixtures not in the fixtures! list of sdf_rules.rs: {unlisted:?}"
    );
    let gone: Vec<&&str> = LISTED.iter().filter(|l| !systems.iter().any(|s| s == *l)).collect();
    assert!(gone.is_empty(), "listed fixtures without a .system file: {gone:?}");
    if !bless() {
        assert_eq!(
            expected, systems,
            "every fixture needs exactly one .expected file (VCPOS_BLESS=1 writes them)"
        );
    }
}

#[test]
fn a_difference_is_shown_line_by_line() {
    assert_eq!(diff_lines("a\nb\nc\n", "a\nB\n"), "   2 - b\n   2 + B\n   3 - c\n");
    assert_eq!(diff_lines("a\n", "a\n"), "");
}
