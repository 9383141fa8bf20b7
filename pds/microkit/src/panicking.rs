//! Panics: the PD's panic handler and a settable hook.
//!
//! A panic prints `"<pd name>: <panic info>"` on the debug console (or runs the hook
//! set with [`set_hook`]) and then stops the PD with an undefined-instruction fault,
//! which the kernel reports (root PD) or delivers to the parent (child PD). Panics
//! abort: there is no unwinding.

use core::panic::PanicInfo;

use spinning_top::Spinlock;

/// A panic hook: called with the panic's information before the PD stops.
pub type PanicHook = &'static (dyn Fn(&PanicInfo<'_>) + Send + Sync);

static HOOK: Spinlock<Option<PanicHook>> = spinning_top::const_spinlock(None);

/// Replaces the panic hook (the default prints `"<pd name>: <info>"`).
pub fn set_hook(hook: PanicHook) {
    *HOOK.lock() = Some(hook);
}

/// Restores the default hook.
pub fn reset_hook() {
    *HOOK.lock() = None;
}

/// The default hook: prints `"<pd name>: <info>"`.
pub fn default_hook(info: &PanicInfo<'_>) {
    crate::debug_println!("{}: {info}", crate::symbols::pd_name_for_messages());
}

/// Runs the hook for `info` (the default if none is set or the lock is held, e.g.
/// by a panic inside `set_hook`).
#[cfg_attr(not(all(target_arch = "aarch64", target_os = "none")), allow(dead_code))]
fn run_hook(info: &PanicInfo<'_>) {
    let hook = HOOK.try_lock().and_then(|h| *h);
    match hook {
        Some(hook) => hook(info),
        None => default_hook(info),
    }
}

#[cfg(all(target_arch = "aarch64", target_os = "none"))]
#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKING: AtomicBool = AtomicBool::new(false);
    // A panic inside the hook (or while printing) must not recurse forever.
    if !PANICKING.swap(true, Ordering::Relaxed) {
        run_hook(info);
    }
    crate::sys::abort()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quiet(_: &PanicInfo<'_>) {}

    #[test]
    fn hook_can_be_set_and_reset() {
        set_hook(&quiet);
        assert!(HOOK.lock().is_some());
        reset_hook();
        assert!(HOOK.lock().is_none());
    }
}
