//! The serial-console contract: the markers the kernel and PDs print and the runner
//! believes, and the prefix that sets a guest's console lines apart from them.
//!
//! Every line a VM's guest prints reaches the serial console behind [`GUEST_LINE_PREFIX`]
//! (the VMM adds it at the start of each guest line), so no guest byte can start a line
//! and a guest printing `TEST PASS: x` cannot pass a test or forge a kernel message. The
//! runner believes a marker only at the start of a line.

/// A test PD's verdict: the test named after it passed.
pub const TEST_PASS: &str = "TEST PASS:";
/// A test PD's verdict: the test named after it failed.
pub const TEST_FAIL: &str = "TEST FAIL:";
/// Every line the kernel prints starts with this.
pub const KERNEL_PREFIX: &str = "vcpos|";
/// The kernel's informational lines.
pub const KERNEL_INFO: &str = "vcpos|INFO:";
/// The kernel's report of an error that stops the system or a part of it.
pub const KERNEL_ERROR: &str = "vcpos|ERROR:";
/// The kernel's report of a PD (or vCPU) fault.
pub const KERNEL_FAULT: &str = "vcpos|FAULT:";
/// What the VMM puts before every line of guest console output.
pub const GUEST_LINE_PREFIX: &str = "guest| ";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_markers_share_the_kernel_prefix_and_guest_lines_cannot_start_a_marker() {
        for m in [KERNEL_INFO, KERNEL_ERROR, KERNEL_FAULT] {
            assert!(m.starts_with(KERNEL_PREFIX), "{m}");
        }
        for m in [TEST_PASS, TEST_FAIL, KERNEL_PREFIX] {
            assert!(
                !GUEST_LINE_PREFIX.starts_with(m) && !m.starts_with(GUEST_LINE_PREFIX),
                "{m}"
            );
        }
    }
}
