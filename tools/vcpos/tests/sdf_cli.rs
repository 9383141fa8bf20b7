//! `vcpos check` from the command line: exit status, stdout and stderr for a valid
//! system, one with warnings, one with errors, a malformed one and a missing file.

use std::process::{Command, Output};

/// Runs `vcpos check <fixture>` from the package directory, so locations read
/// `tests/sdf/<fixture>:line:col`.
fn vcpos_check(fixture: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vcpos"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["check", &format!("tests/sdf/{fixture}")])
        .output()
        .expect("run vcpos")
}

/// Stdout and stderr as text.
fn texts(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn valid_system_exits_0_with_a_summary() {
    let out = vcpos_check("valid_full.system");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        "tests/sdf/valid_full.system: OK (7 protection domains, 6 memory regions, 3 channels)\n"
    );
    assert_eq!(stderr, "");
}

#[test]
fn warnings_go_to_stdout_and_do_not_fail() {
    let out = vcpos_check("mr_unused.system");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "stderr: {stderr}");
    assert_eq!(
        stdout,
        "WARNING: unused memory region 'spare'\n\
         WARNING: unused memory region 'spare2'\n\
         tests/sdf/mr_unused.system: OK (1 protection domains, 3 memory regions, 0 channels)\n"
    );
}

#[test]
fn invalid_system_exits_1_with_every_error_on_stderr() {
    let out = vcpos_check("multi_errors.system");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    let f = "tests/sdf/multi_errors.system";
    let expected = [
        format!("Error: size (0x1800) must be a multiple of the page size (0x1000) on element 'memory_region': {f}:3:5"),
        format!("Error: duplicate memory region name 'buf' (first defined at {f}:3:5) on element 'memory_region': {f}:4:5"),
        format!("Error: priority must be between 0 and 254, got 300 on element 'protection_domain': {f}:5:5"),
        format!("Error: budget (2000) must be less than, or equal to, period (1000) on element 'protection_domain': {f}:5:5"),
        format!("Error: perms 'wx' violates W^X: a map cannot be both writable and executable on element 'map': {f}:7:9"),
        format!("Error: invalid memory region name 'nothing' on element 'map': {f}:8:9"),
        format!("Error: id must be < 62 on element 'irq': {f}:9:9"),
        format!("Error: stack_size (0x10) must be between 0x1000 and 0x1000000 on element 'protection_domain': {f}:11:5"),
        format!("Error: invalid XML element 'bogus': {f}:13:9"),
        format!("Error: irq 33 is already used by protection domain 'server' (first defined at {f}:9:9) on element 'irq': {f}:14:9"),
        format!("Error: duplicate protection domain name 'server' (first defined at {f}:5:5) on element 'protection_domain': {f}:16:5"),
        format!("Error: invalid protection domain name 'nobody' on element 'end': {f}:21:9"),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn malformed_xml_exits_1_with_one_located_error() {
    let out = vcpos_check("xml_malformed.system");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        "Error: could not parse 'tests/sdf/xml_malformed.system': expected 'protection_domain' tag, \
         not 'system': tests/sdf/xml_malformed.system:5:1\n"
    );
}

#[test]
fn missing_file_exits_1() {
    let out = vcpos_check("no_such_fixture.system");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("Error: cannot read 'tests/sdf/no_such_fixture.system': "),
        "{stderr}"
    );
}
