//! `debug_print!` / `debug_println!`: formatted text to the kernel's debug console.
//!
//! Text is formatted straight into the IPC buffer's debug area (2 KiB) and printed
//! with one `DebugPut` on the debug-console capability (slot 8) per full area or per
//! call, so a line from one PD is not interleaved with another's. A kernel built
//! without a console (release configuration) refuses the capability with
//! `InvalidCapability`; the text is then dropped silently, like `sel4-microkit`'s
//! printing without the `PRINTING` config.

use core::fmt;

use vcpos_abi::cap::slot;
use vcpos_abi::msg::DEBUG_AREA_SIZE;

use crate::{ipc, sys};

/// Fills the debug area and prints it when full and when dropped.
struct DebugWriter {
    len: usize,
}

impl DebugWriter {
    fn flush(&mut self) {
        if self.len > 0 {
            // Errors (no console capability in release builds) drop the text.
            let _ = sys::debug_put(slot::DEBUG_CONSOLE, self.len);
            self.len = 0;
        }
    }
}

impl fmt::Write for DebugWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            if self.len == DEBUG_AREA_SIZE {
                self.flush();
            }
            ipc::write_debug_byte(self.len, b);
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints formatted text (the function behind the macros).
#[doc(hidden)]
pub fn debug_print(args: fmt::Arguments<'_>) {
    let mut w = DebugWriter { len: 0 };
    let _ = fmt::Write::write_fmt(&mut w, args);
    w.flush();
}

/// Prints to the kernel's debug console, like `print!`.
#[macro_export]
macro_rules! debug_print {
    ($($arg:tt)*) => {
        $crate::_private::debug_print(::core::format_args!($($arg)*))
    };
}

/// Prints a line to the kernel's debug console, like `println!`.
#[macro_export]
macro_rules! debug_println {
    () => {
        $crate::debug_print!("\n")
    };
    ($($arg:tt)*) => {
        $crate::_private::debug_print(::core::format_args!("{}\n", ::core::format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use crate::sys::fake;
    use std::string::String;

    #[test]
    fn prints_through_the_debug_area() {
        fake::reset();
        crate::debug_println!("hello, {} {:#x}", "world", 255);
        crate::debug_print!("no newline");
        crate::debug_println!();
        assert_eq!(fake::take_output(), "hello, world 0xff\nno newline\n");
        assert!(fake::take_log().is_empty(), "DebugPut is not logged as a syscall");
    }

    #[test]
    fn long_text_is_split_at_the_area_size() {
        fake::reset();
        let long: String = "x".repeat(5000);
        crate::debug_print!("{long}");
        assert_eq!(fake::take_output(), long);
    }

    #[test]
    fn refused_console_drops_text_silently() {
        fake::reset();
        fake::with(|k| k.debug_put_error = vcpos_abi::syscall::Error::InvalidCapability as u64);
        crate::debug_println!("dropped");
        assert_eq!(fake::take_output(), "");
    }
}
