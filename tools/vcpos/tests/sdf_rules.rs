//! The SDF front end, rule by rule: one fixture in `tests/sdf/` per validation
//! rule, named `<element>_<violation>.system`, each checked against the exact error
//! lines `vcpos check` prints (message, element and `file:line:col`). Valid
//! fixtures are checked against the model they produce.

use std::path::Path;

use vcpos_tool::model::{Perms, Trigger};
use vcpos_tool::sdf::{self, Loaded};

/// The fixture directory.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdf");

/// Parses fixture `name` (locations use the bare file name).
fn parse(name: &str) -> Result<Loaded, Vec<String>> {
    let path = Path::new(FIXTURES).join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sdf::parse_str(name, &text).map_err(|errors| errors.iter().map(ToString::to_string).collect())
}

/// Asserts that fixture `name` is rejected with exactly the `expected` error lines,
/// in this order.
fn check_error(name: &str, expected: &[&str]) {
    match parse(name) {
        Ok(_) => panic!("{name}: accepted, expected errors:\n{}", expected.join("\n")),
        Err(errors) => assert_eq!(errors, expected, "{name}"),
    }
}

/// Asserts that fixture `name` is accepted and returns what it means.
fn check_ok(name: &str) -> Loaded {
    parse(name).unwrap_or_else(|errors| panic!("{name}: rejected:\n{}", errors.join("\n")))
}

/// Every fixture in `tests/sdf/` is used by a test in this file or the CLI tests.
#[test]
fn every_fixture_is_tested() {
    let sources = [include_str!("sdf_rules.rs"), include_str!("sdf_cli.rs")].concat();
    let mut fixtures: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".system"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() > 100, "fixtures missing: {}", fixtures.len());
    let untested: Vec<&String> = fixtures
        .iter()
        .filter(|f| !sources.contains(&format!("\"{f}\"")))
        .collect();
    assert!(untested.is_empty(), "fixtures without a test: {untested:?}");
}

// ---- ch

#[test]
fn ch_bad_bool() {
    check_error(
        "ch_bad_bool.system",
        &[
            "Error: invalid value 'TRUE' for attribute 'pp' (expected 'true' or 'false') on element 'end': ch_bad_bool.system:10:9",
            "Error: invalid value '0' for attribute 'notify' (expected 'true' or 'false') on element 'end': ch_bad_bool.system:11:9",
        ],
    );
}

#[test]
fn ch_duplicate_id() {
    check_error(
        "ch_duplicate_id.system",
        &[
            "Error: duplicate channel id 1 in protection domain 'a': already used by the channel with 'b' (first defined at ch_duplicate_id.system:10:9) on element 'end': ch_duplicate_id.system:14:9",
        ],
    );
}

#[test]
fn ch_end_bad_id() {
    check_error(
        "ch_end_bad_id.system",
        &[
            "Error: failed to parse integer '1a' for attribute 'id': invalid digit found in string on element 'end': ch_end_bad_id.system:10:9",
        ],
    );
}

#[test]
fn ch_end_id_too_large() {
    check_error(
        "ch_end_id_too_large.system",
        &["Error: id must be < 62 on element 'end': ch_end_id_too_large.system:10:9"],
    );
}

#[test]
fn ch_end_missing_attributes() {
    check_error(
        "ch_end_missing_attributes.system",
        &[
            "Error: Missing required attribute 'pd' on element 'end': ch_end_missing_attributes.system:11:9",
            "Error: Missing required attribute 'id' on element 'end': ch_end_missing_attributes.system:11:9",
        ],
    );
}

#[test]
fn ch_invalid_attribute() {
    check_error(
        "ch_invalid_attribute.system",
        &[
            "Error: invalid attribute 'id' on element 'channel': ch_invalid_attribute.system:9:5",
            "Error: invalid attribute 'pd_id' on element 'end': ch_invalid_attribute.system:11:9",
        ],
    );
}

#[test]
fn ch_invalid_element() {
    check_error(
        "ch_invalid_element.system",
        &["Error: invalid XML element 'irq': ch_invalid_element.system:12:9"],
    );
}

#[test]
fn ch_no_ends() {
    check_error(
        "ch_no_ends.system",
        &[
            "Error: a channel must have exactly two 'end' elements, found 0 on element 'channel': ch_no_ends.system:9:5",
        ],
    );
}

#[test]
fn ch_one_end() {
    check_error(
        "ch_one_end.system",
        &[
            "Error: a channel must have exactly two 'end' elements, found 1 on element 'channel': ch_one_end.system:9:5",
        ],
    );
}

#[test]
fn ch_pp_both_ends() {
    check_error(
        "ch_pp_both_ends.system",
        &["Error: cannot ppc bidirectionally (pp is set on both ends) on element 'end': ch_pp_both_ends.system:11:9"],
    );
}

#[test]
fn ch_ppc_equal_priority() {
    check_error(
        "ch_ppc_equal_priority.system",
        &[
            "Error: PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd a (priority: 7) to pd b (priority: 7) on element 'end': ch_ppc_equal_priority.system:10:9",
        ],
    );
}

#[test]
fn ch_ppc_lower_priority() {
    check_error(
        "ch_ppc_lower_priority.system",
        &[
            "Error: PPCs must be to protection domains of strictly higher priorities; channel with PPC exists from pd b (priority: 2) to pd a (priority: 1) on element 'end': ch_ppc_lower_priority.system:11:9",
        ],
    );
}

#[test]
fn ch_three_ends() {
    check_error(
        "ch_three_ends.system",
        &[
            "Error: a channel must have exactly two 'end' elements, found 3 on element 'channel': ch_three_ends.system:9:5",
        ],
    );
}

#[test]
fn ch_unknown_pd() {
    check_error(
        "ch_unknown_pd.system",
        &["Error: invalid protection domain name 'c' on element 'end': ch_unknown_pd.system:11:9"],
    );
}

// ---- image

#[test]
fn image_invalid_attribute() {
    check_error(
        "image_invalid_attribute.system",
        &["Error: invalid attribute 'entry' on element 'program_image': image_invalid_attribute.system:4:9"],
    );
}

#[test]
fn image_missing_path() {
    check_error(
        "image_missing_path.system",
        &["Error: Missing required attribute 'path' on element 'program_image': image_missing_path.system:4:9"],
    );
}

// ---- irq

#[test]
fn irq_bad_number() {
    check_error(
        "irq_bad_number.system",
        &[
            "Error: failed to parse integer 'thirty' for attribute 'irq': invalid digit found in string on element 'irq': irq_bad_number.system:5:9",
        ],
    );
}

#[test]
fn irq_bad_trigger() {
    check_error(
        "irq_bad_trigger.system",
        &[
            "Error: trigger must be either 'level' or 'edge', got 'rising' on element 'irq': irq_bad_trigger.system:5:9",
        ],
    );
}

#[test]
fn irq_duplicate_id() {
    check_error(
        "irq_duplicate_id.system",
        &[
            "Error: duplicate channel id 1 in protection domain 'a': already used by irq 33 (first defined at irq_duplicate_id.system:5:9) on element 'irq': irq_duplicate_id.system:6:9",
        ],
    );
}

#[test]
fn irq_duplicate_number() {
    check_error(
        "irq_duplicate_number.system",
        &[
            "Error: irq 33 is already used by protection domain 'a' (first defined at irq_duplicate_number.system:5:9) on element 'irq': irq_duplicate_number.system:9:9",
        ],
    );
}

#[test]
fn irq_id_clashes_channel() {
    check_error(
        "irq_id_clashes_channel.system",
        &[
            "Error: duplicate channel id 4 in protection domain 'a': already used by irq 33 (first defined at irq_id_clashes_channel.system:5:9) on element 'end': irq_id_clashes_channel.system:11:9",
        ],
    );
}

#[test]
fn irq_id_too_large() {
    check_error(
        "irq_id_too_large.system",
        &["Error: id must be < 62 on element 'irq': irq_id_too_large.system:5:9"],
    );
}

#[test]
fn irq_invalid_attribute() {
    check_error(
        "irq_invalid_attribute.system",
        &["Error: invalid attribute 'polarity_x' on element 'irq': irq_invalid_attribute.system:5:9"],
    );
}

#[test]
fn irq_missing_id() {
    check_error(
        "irq_missing_id.system",
        &["Error: Missing required attribute 'id' on element 'irq': irq_missing_id.system:5:9"],
    );
}

#[test]
fn irq_missing_irq() {
    check_error(
        "irq_missing_irq.system",
        &["Error: Missing required attribute 'irq' on element 'irq': irq_missing_irq.system:5:9"],
    );
}

#[test]
fn irq_number_too_large() {
    check_error(
        "irq_number_too_large.system",
        &[
            "Error: irq (4294967296) is too large (maximum 4294967295) on element 'irq': irq_number_too_large.system:5:9",
        ],
    );
}

#[test]
fn irq_x86_attrs() {
    check_error(
        "irq_x86_attrs.system",
        &[
            "Error: attribute 'pin' is x86-only, not supported on aarch64 on element 'irq': irq_x86_attrs.system:5:9",
            "Error: attribute 'vector' is x86-only, not supported on aarch64 on element 'irq': irq_x86_attrs.system:5:9",
        ],
    );
}

#[test]
fn irq_x86_msi() {
    check_error(
        "irq_x86_msi.system",
        &[
            "Error: attribute 'vector' is x86-only, not supported on aarch64 on element 'irq': irq_x86_msi.system:5:9",
            "Error: attribute 'pcidev' is x86-only, not supported on aarch64 on element 'irq': irq_x86_msi.system:5:9",
            "Error: attribute 'handle' is x86-only, not supported on aarch64 on element 'irq': irq_x86_msi.system:5:9",
        ],
    );
}

// ---- map

#[test]
fn map_above_custom_stack_limit() {
    check_error(
        "map_above_custom_stack_limit.system",
        &[
            "Error: map for 'm' has virtual address range [0xfffffee000..0xfffffef000) which ends above 0xfffffed000, the start of the guard page below the 0x10000-byte stack on element 'map': map_above_custom_stack_limit.system:6:9",
        ],
    );
}

#[test]
fn map_above_stack_limit() {
    check_error(
        "map_above_stack_limit.system",
        &[
            "Error: map for 'm' has virtual address range [0xffffffb000..0xffffffc000) which ends above 0xffffffb000, the start of the guard page below the 0x2000-byte stack on element 'map': map_above_stack_limit.system:6:9",
        ],
    );
}

#[test]
fn map_bad_cached() {
    check_error(
        "map_bad_cached.system",
        &[
            "Error: invalid value 'no' for attribute 'cached' (expected 'true' or 'false') on element 'map': map_bad_cached.system:6:9",
        ],
    );
}

#[test]
fn map_bad_perms() {
    check_error(
        "map_bad_perms.system",
        &["Error: invalid perms 'rq': only 'r', 'w' and 'x' are allowed on element 'map': map_bad_perms.system:6:9"],
    );
}

#[test]
fn map_empty_perms() {
    check_error(
        "map_empty_perms.system",
        &[
            "Error: perms must not be empty (use some of 'r', 'w' and 'x') on element 'map': map_empty_perms.system:6:9",
        ],
    );
}

#[test]
fn map_invalid_attribute() {
    check_error(
        "map_invalid_attribute.system",
        &["Error: invalid attribute 'size' on element 'map': map_invalid_attribute.system:6:9"],
    );
}

#[test]
fn map_missing_mr() {
    check_error(
        "map_missing_mr.system",
        &["Error: Missing required attribute 'mr' on element 'map': map_missing_mr.system:6:9"],
    );
}

#[test]
fn map_missing_vaddr() {
    check_error(
        "map_missing_vaddr.system",
        &["Error: Missing required attribute 'vaddr' on element 'map': map_missing_vaddr.system:6:9"],
    );
}

#[test]
fn map_overlap() {
    check_error(
        "map_overlap.system",
        &[
            "Error: map for 'm2' has virtual address range [0x2001000..0x2002000) which overlaps with map for 'm1' [0x2000000..0x2002000) in protection domain 'a' (other map at map_overlap.system:7:9) on element 'map': map_overlap.system:8:9",
        ],
    );
}

#[test]
fn map_setvar_clash() {
    check_error(
        "map_setvar_clash.system",
        &[
            "Error: setvar on symbol 'v' already exists (first defined at map_setvar_clash.system:6:9) on element 'map': map_setvar_clash.system:6:9",
        ],
    );
}

#[test]
fn map_setvar_prefill_size_not_prefilled() {
    check_error(
        "map_setvar_prefill_size_not_prefilled.system",
        &[
            "Error: setvar_prefill_size needs memory region 'm' to have a prefill_path on element 'map': map_setvar_prefill_size_not_prefilled.system:6:9",
        ],
    );
}

#[test]
fn map_unaligned_large_page() {
    check_error(
        "map_unaligned_large_page.system",
        &[
            "Error: vaddr (0x2001000) must be aligned to the page size (0x200000) of memory region 'm' on element 'map': map_unaligned_large_page.system:6:9",
        ],
    );
}

#[test]
fn map_unaligned_vaddr() {
    check_error(
        "map_unaligned_vaddr.system",
        &[
            "Error: vaddr (0x2000800) must be aligned to the page size (0x1000) of memory region 'm' on element 'map': map_unaligned_vaddr.system:6:9",
        ],
    );
}

#[test]
fn map_unknown_mr() {
    check_error(
        "map_unknown_mr.system",
        &["Error: invalid memory region name 'n' on element 'map': map_unknown_mr.system:6:9"],
    );
}

#[test]
fn map_vaddr_overflow() {
    check_error(
        "map_vaddr_overflow.system",
        &[
            "Error: vaddr (0xfffffffffffff800) must be aligned to the page size (0x1000) of memory region 'm' on element 'map': map_vaddr_overflow.system:6:9",
            "Error: vaddr (0xfffffffffffff800) + size of memory region 'm' (0x1000) is beyond the end of the address space on element 'map': map_vaddr_overflow.system:6:9",
        ],
    );
}

#[test]
fn map_write_only() {
    check_error(
        "map_write_only.system",
        &[
            "Error: perms 'w' is write-only, which is not allowed (use 'rw') on element 'map': map_write_only.system:6:9",
        ],
    );
}

#[test]
fn map_wx() {
    check_error(
        "map_wx.system",
        &[
            "Error: perms 'rwx' violates W^X: a map cannot be both writable and executable on element 'map': map_wx.system:6:9",
        ],
    );
}

#[test]
fn map_wx_no_read() {
    check_error(
        "map_wx_no_read.system",
        &[
            "Error: perms 'wx' violates W^X: a map cannot be both writable and executable on element 'map': map_wx_no_read.system:6:9",
        ],
    );
}

// ---- mr

#[test]
fn mr_bad_number() {
    check_error(
        "mr_bad_number.system",
        &[
            "Error: failed to parse integer '0x200_000sd' for attribute 'size': invalid digit found in string on element 'memory_region': mr_bad_number.system:3:5",
        ],
    );
}

#[test]
fn mr_bad_page_size() {
    check_error(
        "mr_bad_page_size.system",
        &[
            "Error: page_size (0x3000) must be 0x1000 or 0x200000 on element 'memory_region': mr_bad_page_size.system:3:5",
        ],
    );
}

#[test]
fn mr_child_element() {
    check_error(
        "mr_child_element.system",
        &["Error: invalid XML element 'map': mr_child_element.system:4:9"],
    );
}

#[test]
fn mr_duplicate_name() {
    check_error(
        "mr_duplicate_name.system",
        &[
            "Error: duplicate memory region name 'm' (first defined at mr_duplicate_name.system:3:5) on element 'memory_region': mr_duplicate_name.system:4:5",
        ],
    );
}

#[test]
fn mr_invalid_attribute() {
    check_error(
        "mr_invalid_attribute.system",
        &["Error: invalid attribute 'cached' on element 'memory_region': mr_invalid_attribute.system:3:5"],
    );
}

#[test]
fn mr_missing_name() {
    check_error(
        "mr_missing_name.system",
        &["Error: Missing required attribute 'name' on element 'memory_region': mr_missing_name.system:3:5"],
    );
}

#[test]
fn mr_missing_size() {
    check_error(
        "mr_missing_size.system",
        &["Error: Missing required attribute 'size' on element 'memory_region': mr_missing_size.system:3:5"],
    );
}

#[test]
fn mr_overlap_paddr() {
    check_error(
        "mr_overlap_paddr.system",
        &[
            "Error: memory region 'm2' at [0x9001000..0x9002000) overlaps memory region 'm1' at [0x9000000..0x9002000) (first defined at mr_overlap_paddr.system:3:5) on element 'memory_region': mr_overlap_paddr.system:4:5",
        ],
    );
}

#[test]
fn mr_paddr_overflow() {
    check_error(
        "mr_paddr_overflow.system",
        &[
            "Error: phys_addr (0xfffffffffffff000) + size (0x2000) is beyond the end of the address space on element 'memory_region': mr_paddr_overflow.system:3:5",
        ],
    );
}

#[test]
fn mr_prefill_bootinfo_fdt() {
    check_error(
        "mr_prefill_bootinfo_fdt.system",
        &[
            "Error: prefill_bootinfo 'fdt' is not supported by vcpos yet on element 'memory_region': mr_prefill_bootinfo_fdt.system:3:5",
        ],
    );
}

#[test]
fn mr_prefill_bootinfo_x86() {
    check_error(
        "mr_prefill_bootinfo_x86.system",
        &[
            "Error: prefill_bootinfo 'x86_acpi_rsdp' is x86-only, not supported on aarch64 on element 'memory_region': mr_prefill_bootinfo_x86.system:3:5",
        ],
    );
}

#[test]
fn mr_prefill_without_size() {
    // The file is not found (no search path): the region cannot be sized.
    check_error(
        "mr_prefill_without_size.system",
        &[
            "Error: unable to find prefill file 'data.bin' to size the region (give 'size', or a search path) on element 'memory_region': mr_prefill_without_size.system:3:5",
        ],
    );
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
fn mr_size_not_large_page_multiple() {
    check_error(
        "mr_size_not_large_page_multiple.system",
        &[
            "Error: size (0x1000) must be a multiple of the page size (0x200000) on element 'memory_region': mr_size_not_large_page_multiple.system:3:5",
        ],
    );
}

#[test]
fn mr_size_not_page_multiple() {
    check_error(
        "mr_size_not_page_multiple.system",
        &[
            "Error: size (0x1800) must be a multiple of the page size (0x1000) on element 'memory_region': mr_size_not_page_multiple.system:3:5",
        ],
    );
}

#[test]
fn mr_size_overflow() {
    check_error(
        "mr_size_overflow.system",
        &[
            "Error: failed to parse integer '0x1_0000_0000_0000_0000' for attribute 'size': number too large to fit in target type on element 'memory_region': mr_size_overflow.system:3:5",
        ],
    );
}

#[test]
fn mr_size_zero() {
    check_error(
        "mr_size_zero.system",
        &["Error: size must not be 0 on element 'memory_region': mr_size_zero.system:3:5"],
    );
}

#[test]
fn mr_unaligned_paddr() {
    check_error(
        "mr_unaligned_paddr.system",
        &[
            "Error: phys_addr (0x9000800) must be aligned to the page size (0x1000) on element 'memory_region': mr_unaligned_paddr.system:3:5",
        ],
    );
}

#[test]
fn mr_unaligned_paddr_large_page() {
    check_error(
        "mr_unaligned_paddr_large_page.system",
        &[
            "Error: phys_addr (0x40001000) must be aligned to the page size (0x200000) on element 'memory_region': mr_unaligned_paddr_large_page.system:3:5",
        ],
    );
}

// ---- multi

#[test]
fn multi_errors() {
    check_error(
        "multi_errors.system",
        &[
            "Error: size (0x1800) must be a multiple of the page size (0x1000) on element 'memory_region': multi_errors.system:3:5",
            "Error: duplicate memory region name 'buf' (first defined at multi_errors.system:3:5) on element 'memory_region': multi_errors.system:4:5",
            "Error: priority must be between 0 and 254, got 300 on element 'protection_domain': multi_errors.system:5:5",
            "Error: budget (2000) must be less than, or equal to, period (1000) on element 'protection_domain': multi_errors.system:5:5",
            "Error: perms 'wx' violates W^X: a map cannot be both writable and executable on element 'map': multi_errors.system:7:9",
            "Error: invalid memory region name 'nothing' on element 'map': multi_errors.system:8:9",
            "Error: id must be < 62 on element 'irq': multi_errors.system:9:9",
            "Error: stack_size (0x10) must be between 0x1000 and 0x1000000 on element 'protection_domain': multi_errors.system:11:5",
            "Error: invalid XML element 'bogus': multi_errors.system:13:9",
            "Error: irq 33 is already used by protection domain 'server' (first defined at multi_errors.system:9:9) on element 'irq': multi_errors.system:14:9",
            "Error: duplicate protection domain name 'server' (first defined at multi_errors.system:5:5) on element 'protection_domain': multi_errors.system:16:5",
            "Error: invalid protection domain name 'nobody' on element 'end': multi_errors.system:21:9",
        ],
    );
}

// ---- pd

#[test]
fn pd_bad_bool() {
    check_error(
        "pd_bad_bool.system",
        &[
            "Error: invalid value 'yes' for attribute 'passive' (expected 'true' or 'false') on element 'protection_domain': pd_bad_bool.system:3:5",
            "Error: invalid value '1' for attribute 'fpu' (expected 'true' or 'false') on element 'protection_domain': pd_bad_bool.system:3:5",
        ],
    );
}

#[test]
fn pd_budget_below_min() {
    check_error(
        "pd_budget_below_min.system",
        &[
            "Error: budget (19) must be at least 20 microseconds (the vcpos minimum) on element 'protection_domain': pd_budget_below_min.system:3:5",
        ],
    );
}

#[test]
fn pd_budget_gt_default_period() {
    check_error(
        "pd_budget_gt_default_period.system",
        &[
            "Error: budget (1000) must be less than, or equal to, period (500) on element 'protection_domain': pd_budget_gt_default_period.system:3:5",
        ],
    );
}

#[test]
fn pd_budget_gt_period() {
    check_error(
        "pd_budget_gt_period.system",
        &[
            "Error: budget (1000) must be less than, or equal to, period (100) on element 'protection_domain': pd_budget_gt_period.system:3:5",
        ],
    );
}

#[test]
fn pd_child_duplicate_id() {
    check_error(
        "pd_child_duplicate_id.system",
        &[
            "Error: duplicate id 3 in protection domain 'a': already used by child protection domain 'c1' (first defined at pd_child_duplicate_id.system:5:9) on element 'protection_domain': pd_child_duplicate_id.system:8:9",
        ],
    );
}

#[test]
fn pd_child_id_too_large() {
    check_error(
        "pd_child_id_too_large.system",
        &["Error: id must be < 62 on element 'protection_domain': pd_child_id_too_large.system:5:9"],
    );
}

#[test]
fn pd_child_id_vcpu_collision() {
    check_error(
        "pd_child_id_vcpu_collision.system",
        &[
            "Error: duplicate id 1 in protection domain 'a': already used by vcpu 1 of virtual machine 'vm' (first defined at pd_child_id_vcpu_collision.system:6:13) on element 'protection_domain': pd_child_id_vcpu_collision.system:8:9",
        ],
    );
}

#[test]
fn pd_child_missing_id() {
    check_error(
        "pd_child_missing_id.system",
        &["Error: Missing required attribute 'id' on element 'protection_domain': pd_child_missing_id.system:5:9"],
    );
}

#[test]
fn pd_child_setvar_id_clash() {
    check_error(
        "pd_child_setvar_id_clash.system",
        &[
            "Error: setvar on symbol 'child' already exists (first defined at pd_child_setvar_id_clash.system:5:9) on element 'protection_domain': pd_child_setvar_id_clash.system:7:9",
        ],
    );
}

#[test]
fn pd_cpu_not_number() {
    check_error(
        "pd_cpu_not_number.system",
        &[
            "Error: failed to parse integer 'one' for attribute 'cpu': invalid digit found in string on element 'protection_domain': pd_cpu_not_number.system:3:5",
        ],
    );
}

#[test]
fn pd_cpu_too_large() {
    check_error(
        "pd_cpu_too_large.system",
        &[
            "Error: cpu (4294967296) is too large (maximum 4294967295) on element 'protection_domain': pd_cpu_too_large.system:3:5",
        ],
    );
}

#[test]
fn pd_cspace() {
    check_error(
        "pd_cspace.system",
        &[
            "Error: element 'cspace' is not supported by vcpos (no user-managed capability slots): pd_cspace.system:5:9",
        ],
    );
}

#[test]
fn pd_domain_attr() {
    check_error(
        "pd_domain_attr.system",
        &[
            "Error: attribute 'domain' is not supported by vcpos (no domain scheduler) on element 'protection_domain': pd_domain_attr.system:3:5",
        ],
    );
}

#[test]
fn pd_duplicate_name() {
    check_error(
        "pd_duplicate_name.system",
        &[
            "Error: duplicate protection domain name 'a' (first defined at pd_duplicate_name.system:3:5) on element 'protection_domain': pd_duplicate_name.system:8:9",
        ],
    );
}

#[test]
fn pd_invalid_attribute() {
    check_error(
        "pd_invalid_attribute.system",
        &[
            "Error: invalid attribute 'foo' on element 'protection_domain': pd_invalid_attribute.system:3:5",
            "Error: invalid attribute 'pp' on element 'protection_domain': pd_invalid_attribute.system:3:5",
        ],
    );
}

#[test]
fn pd_invalid_element() {
    check_error(
        "pd_invalid_element.system",
        &["Error: invalid XML element 'channel': pd_invalid_element.system:5:9"],
    );
}

#[test]
fn pd_ioport() {
    check_error(
        "pd_ioport.system",
        &["Error: x86-only element 'ioport' is not supported on aarch64: pd_ioport.system:5:9"],
    );
}

#[test]
fn pd_missing_name() {
    check_error(
        "pd_missing_name.system",
        &["Error: Missing required attribute 'name' on element 'protection_domain': pd_missing_name.system:3:5"],
    );
}

#[test]
fn pd_missing_program_image() {
    check_error(
        "pd_missing_program_image.system",
        &[
            "Error: missing 'program_image' element on element 'protection_domain': pd_missing_program_image.system:3:5",
        ],
    );
}

#[test]
fn pd_name_empty() {
    check_error(
        "pd_name_empty.system",
        &["Error: name must not be empty on element 'protection_domain': pd_name_empty.system:3:5"],
    );
}

#[test]
fn pd_name_monitor() {
    check_error(
        "pd_name_monitor.system",
        &[
            "Error: the protection domain name 'monitor' is reserved on element 'protection_domain': pd_name_monitor.system:3:5",
        ],
    );
}

#[test]
fn pd_name_too_long() {
    check_error(
        "pd_name_too_long.system",
        &[
            "Error: name is 65 bytes long, the maximum is 64 on element 'protection_domain': pd_name_too_long.system:3:5",
        ],
    );
}

#[test]
fn pd_priority_overflow() {
    check_error(
        "pd_priority_overflow.system",
        &[
            "Error: failed to parse integer '0x1_0000_0000_0000_0000' for attribute 'priority': number too large to fit in target type on element 'protection_domain': pd_priority_overflow.system:3:5",
        ],
    );
}

#[test]
fn pd_priority_too_high() {
    check_error(
        "pd_priority_too_high.system",
        &[
            "Error: priority must be between 0 and 254, got 255 on element 'protection_domain': pd_priority_too_high.system:3:5",
        ],
    );
}

#[test]
fn pd_root_with_id() {
    check_error(
        "pd_root_with_id.system",
        &[
            "Error: invalid attribute 'id' on element 'protection_domain': pd_root_with_id.system:3:5",
            "Error: invalid attribute 'setvar_id' on element 'protection_domain': pd_root_with_id.system:3:5",
        ],
    );
}

#[test]
fn pd_stack_too_large() {
    check_error(
        "pd_stack_too_large.system",
        &[
            "Error: stack_size (0x1001000) must be between 0x1000 and 0x1000000 on element 'protection_domain': pd_stack_too_large.system:3:5",
        ],
    );
}

#[test]
fn pd_stack_too_small() {
    check_error(
        "pd_stack_too_small.system",
        &[
            "Error: stack_size (0x800) must be between 0x1000 and 0x1000000 on element 'protection_domain': pd_stack_too_small.system:3:5",
        ],
    );
}

#[test]
fn pd_stack_unaligned() {
    check_error(
        "pd_stack_unaligned.system",
        &[
            "Error: stack_size (0x1800) must be a multiple of 0x1000 on element 'protection_domain': pd_stack_unaligned.system:3:5",
        ],
    );
}

#[test]
fn pd_text() {
    check_error(
        "pd_text.system",
        &[
            "Error: non-whitespace text is not allowed ('some text') on element 'protection_domain': pd_text.system:5:9",
        ],
    );
}

#[test]
fn pd_two_program_images() {
    check_error(
        "pd_two_program_images.system",
        &[
            "Error: only one 'program_image' element is allowed per protection domain on element 'program_image': pd_two_program_images.system:5:9",
        ],
    );
}

#[test]
fn pd_two_vms() {
    check_error(
        "pd_two_vms.system",
        &[
            "Error: only one 'virtual_machine' element is allowed per protection domain on element 'virtual_machine': pd_two_vms.system:8:9",
        ],
    );
}

// ---- setvar

#[test]
fn setvar_clash_with_end() {
    check_error(
        "setvar_clash_with_end.system",
        &[
            "Error: setvar on symbol 'ch' already exists (first defined at setvar_clash_with_end.system:7:9) on element 'end': setvar_clash_with_end.system:13:9",
        ],
    );
}

#[test]
fn setvar_clash_with_map() {
    check_error(
        "setvar_clash_with_map.system",
        &[
            "Error: setvar on symbol 'buf' already exists (first defined at setvar_clash_with_map.system:6:9) on element 'setvar': setvar_clash_with_map.system:7:9",
        ],
    );
}

#[test]
fn setvar_duplicate_symbol() {
    check_error(
        "setvar_duplicate_symbol.system",
        &[
            "Error: setvar on symbol 'x' already exists (first defined at setvar_duplicate_symbol.system:7:9) on element 'setvar': setvar_duplicate_symbol.system:8:9",
        ],
    );
}

#[test]
fn setvar_missing_attributes() {
    check_error(
        "setvar_missing_attributes.system",
        &[
            "Error: Missing required attribute 'symbol' on element 'setvar': setvar_missing_attributes.system:5:9",
            "Error: Missing required attribute 'region_paddr' on element 'setvar': setvar_missing_attributes.system:5:9",
        ],
    );
}

#[test]
fn setvar_unknown_region() {
    check_error(
        "setvar_unknown_region.system",
        &["Error: invalid memory region name 'nope' on element 'setvar': setvar_unknown_region.system:5:9"],
    );
}

// ---- system

#[test]
fn system_domains() {
    check_error(
        "system_domains.system",
        &["Error: element 'domains' is not supported by vcpos (no domain scheduler): system_domains.system:3:5"],
    );
}

#[test]
fn system_invalid_attribute() {
    check_error(
        "system_invalid_attribute.system",
        &["Error: invalid attribute 'version' on element 'system': system_invalid_attribute.system:2:1"],
    );
}

#[test]
fn system_invalid_element() {
    check_error(
        "system_invalid_element.system",
        &["Error: invalid XML element 'memory_regions': system_invalid_element.system:6:5"],
    );
}

#[test]
fn system_io_address_space() {
    check_error(
        "system_io_address_space.system",
        &[
            "Error: x86-only element 'io_address_space' is not supported on aarch64: system_io_address_space.system:6:5",
        ],
    );
}

#[test]
fn system_no_pd() {
    check_error(
        "system_no_pd.system",
        &["Error: at least one protection domain must be defined on element 'system': system_no_pd.system:2:1"],
    );
}

#[test]
fn system_root_not_system() {
    check_error(
        "system_root_not_system.system",
        &["Error: invalid XML element 'sytem': the root element must be 'system': system_root_not_system.system:2:1"],
    );
}

#[test]
fn system_text() {
    check_error(
        "system_text.system",
        &["Error: non-whitespace text is not allowed ('hello world') on element 'system': system_text.system:6:5"],
    );
}

#[test]
fn system_too_many_pds() {
    check_error(
        "system_too_many_pds.system",
        &[
            "Error: too many protection domains (64) defined. Maximum is 63. on element 'protection_domain': system_too_many_pds.system:66:5",
        ],
    );
}

#[test]
fn system_vm_top_level() {
    check_error(
        "system_vm_top_level.system",
        &[
            "Error: virtual machine must be a child of a protection domain on element 'virtual_machine': system_vm_top_level.system:6:5",
        ],
    );
}

// ---- vm

#[test]
fn vm_budget_below_min() {
    check_error(
        "vm_budget_below_min.system",
        &[
            "Error: budget (10) must be at least 20 microseconds (the vcpos minimum) on element 'virtual_machine': vm_budget_below_min.system:5:9",
        ],
    );
}

#[test]
fn vm_budget_gt_period() {
    check_error(
        "vm_budget_gt_period.system",
        &[
            "Error: budget (2000) must be less than, or equal to, period (1000) on element 'virtual_machine': vm_budget_gt_period.system:5:9",
        ],
    );
}

#[test]
fn vm_duplicate_name() {
    check_error(
        "vm_duplicate_name.system",
        &[
            "Error: duplicate virtual machine name 'vm' (first defined at vm_duplicate_name.system:5:9) on element 'virtual_machine': vm_duplicate_name.system:11:9",
        ],
    );
}

#[test]
fn vm_invalid_attribute() {
    check_error(
        "vm_invalid_attribute.system",
        &["Error: invalid attribute 'passive' on element 'virtual_machine': vm_invalid_attribute.system:5:9"],
    );
}

#[test]
fn vm_invalid_element() {
    check_error(
        "vm_invalid_element.system",
        &["Error: invalid XML element 'irq': vm_invalid_element.system:7:13"],
    );
}

#[test]
fn vm_map_above_limit() {
    check_error(
        "vm_map_above_limit.system",
        &[
            "Error: map for 'ram' has guest-physical address range [0xffffe00000..0x10000200000) which ends above 0x10000000000, the top of the guest-physical address space on element 'map': vm_map_above_limit.system:8:13",
        ],
    );
}

#[test]
fn vm_map_overlap() {
    check_error(
        "vm_map_overlap.system",
        &[
            "Error: map for 'rom' has guest-physical address range [0x40100000..0x40101000) which overlaps with map for 'ram' [0x40000000..0x40200000) in virtual machine 'vm' (other map at vm_map_overlap.system:9:13) on element 'map': vm_map_overlap.system:10:13",
        ],
    );
}

#[test]
fn vm_map_rwx() {
    let s = check_ok("vm_map_rwx.system").system;
    let vm = s.pds[0].virtual_machine.as_ref().unwrap();
    assert!(vm.maps[0].perms.write && vm.maps[0].perms.execute);
}

#[test]
fn vm_map_setvar() {
    check_error(
        "vm_map_setvar.system",
        &[
            "Error: invalid attribute 'setvar_vaddr' (a virtual machine's map cannot patch symbols) on element 'map': vm_map_setvar.system:8:13",
        ],
    );
}

#[test]
fn vm_map_unknown_mr() {
    check_error(
        "vm_map_unknown_mr.system",
        &["Error: invalid memory region name 'ram' on element 'map': vm_map_unknown_mr.system:7:13"],
    );
}

#[test]
fn vm_missing_name() {
    check_error(
        "vm_missing_name.system",
        &["Error: Missing required attribute 'name' on element 'virtual_machine': vm_missing_name.system:5:9"],
    );
}

#[test]
fn vm_no_vcpu() {
    check_error(
        "vm_no_vcpu.system",
        &[
            "Error: a virtual machine needs at least one 'vcpu' element on element 'virtual_machine': vm_no_vcpu.system:5:9",
        ],
    );
}

#[test]
fn vm_priority_too_high() {
    check_error(
        "vm_priority_too_high.system",
        &[
            "Error: priority must be between 0 and 254, got 300 on element 'virtual_machine': vm_priority_too_high.system:5:9",
        ],
    );
}

#[test]
fn vm_vcpu_duplicate_id() {
    check_error(
        "vm_vcpu_duplicate_id.system",
        &[
            "Error: duplicate id 0 in protection domain 'vmm': already used by vcpu 0 of virtual machine 'vm' (first defined at vm_vcpu_duplicate_id.system:6:13) on element 'vcpu': vm_vcpu_duplicate_id.system:7:13",
        ],
    );
}

#[test]
fn vm_vcpu_id_too_large() {
    check_error(
        "vm_vcpu_id_too_large.system",
        &["Error: id must be < 62 on element 'vcpu': vm_vcpu_id_too_large.system:6:13"],
    );
}

#[test]
fn vm_vcpu_invalid_attribute() {
    check_error(
        "vm_vcpu_invalid_attribute.system",
        &["Error: invalid attribute 'priority' on element 'vcpu': vm_vcpu_invalid_attribute.system:6:13"],
    );
}

#[test]
fn vm_vcpu_missing_id() {
    check_error(
        "vm_vcpu_missing_id.system",
        &["Error: Missing required attribute 'id' on element 'vcpu': vm_vcpu_missing_id.system:6:13"],
    );
}

// ---- xml

#[test]
fn xml_malformed() {
    check_error(
        "xml_malformed.system",
        &[
            "Error: could not parse 'xml_malformed.system': expected 'protection_domain' tag, not 'system': xml_malformed.system:5:1",
        ],
    );
}

#[test]
fn xml_unclosed() {
    check_error(
        "xml_unclosed.system",
        &[
            "Error: could not parse 'xml_unclosed.system': the root node was opened but never closed: xml_unclosed.system:4:1",
        ],
    );
}

// ---- valid fixtures

/// The model's names of all PDs, in kernel PD index order.
fn pd_names(loaded: &Loaded) -> Vec<&str> {
    loaded.system.pds.iter().map(|pd| pd.name.as_str()).collect()
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
