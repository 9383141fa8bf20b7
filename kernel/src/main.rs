//! The vcpos kernel for aarch64 at EL2 (VHE), QEMU `virt`.
//!
//! vcpos is an seL4-style capability microkernel: it is not seL4 and it is not
//! verified. This crate is the machine-dependent shell around
//! [`vcpos_kernel_core`]: boot, trap entry and exit, the interrupt controller, the
//! timer and the console. Boot sequence:
//!
//! 1. `_start` ([`arch::boot`]): VHE on, `.bss` zeroed, MMU on, jump to the upper
//!    half, `kernel_main`.
//! 2. [`kernel_main`]: find the boot-information blob (two symbols the builder
//!    patched), zero the ranges it lists, bring up the GIC, build every PD's
//!    capability space and address space ([`Kernel::boot`]), enable its IRQs.
//! 3. Pick the first PD and `eret` to it. From then on the kernel runs only on
//!    exceptions: syscalls, faults, interrupts.
#![no_std]
#![no_main]

mod arch;

use core::fmt::Write;
use core::ptr::addr_of_mut;

use aarch64_cpu::registers::{Readable, Writeable, ELR_EL2, ESR_EL2, FAR_EL2, TPIDR_EL2, TTBR0_EL2};
use vcpos_abi::bootinfo::BootInfo;
use vcpos_abi::console::{KERNEL_ERROR, KERNEL_INFO};
use vcpos_abi::esr;
use vcpos_kernel_core::{Kernel, Platform};

use arch::vcpu::{self, VcpuArch};
use arch::{gic, mmio, timer, uart};
use vcpos_kernel_core::cspace::ThreadIndex;
use vcpos_kernel_core::thread::ThreadKind;

/// Physical address of the boot-information blob (patched by the builder).
#[no_mangle]
#[used]
#[link_section = ".data"]
static mut VCPOS_BOOT_INFO_PADDR: u64 = 0;
/// Size of the boot-information blob (patched by the builder).
#[no_mangle]
#[used]
#[link_section = ".data"]
static mut VCPOS_BOOT_INFO_SIZE: u64 = 0;

/// The machine as the kernel core sees it.
struct Machine {
    /// ASID of the address space loaded in TTBR0_EL2.
    active_asid: u16,
}

impl Platform for Machine {
    fn console_write(&mut self, bytes: &[u8]) {
        uart::write_bytes(bytes);
    }
    fn read_word(&self, paddr: u64) -> u64 {
        mmio::ram_read_word(paddr)
    }
    fn write_word(&mut self, paddr: u64, value: u64) {
        mmio::ram_write_word(paddr, value)
    }
    fn read_byte(&self, paddr: u64) -> u8 {
        mmio::ram_read_byte(paddr)
    }
    fn now(&self) -> u64 {
        timer::now()
    }
    fn counter_hz(&self) -> u64 {
        timer::frequency()
    }
    fn irq_mask(&mut self, irq: u32) {
        gic::mask(irq)
    }
    fn irq_unmask(&mut self, irq: u32) {
        gic::unmask(irq)
    }
}

/// Everything the kernel owns.
struct State {
    kernel: Kernel,
    machine: Machine,
    vcpu: VcpuArch,
    /// The thread the kernel returned to at its last exit: the one that ran until this
    /// entry, which an SError found pending is charged to.
    ran: Option<ThreadIndex>,
}

static mut STATE: State = State {
    kernel: Kernel::new(),
    machine: Machine { active_asid: 0 },
    vcpu: VcpuArch::new(),
    ran: None,
};

/// The kernel state.
///
/// # Safety
///
/// Call at most once per kernel entry (boot, or one exception) and drop the
/// reference before the entry ends: one core runs the kernel with interrupts masked
/// at EL2 for the whole of every entry, so entries never overlap, and one call per
/// entry means no two live `&mut` to the state.
unsafe fn state() -> &'static mut State {
    // SAFETY: the caller upholds the one-reference-per-entry contract above.
    unsafe { &mut *addr_of_mut!(STATE) }
}

macro_rules! kprintln {
    ($($arg:tt)*) => {{
        let _ = writeln!(uart::Uart, $($arg)*);
    }};
}

/// Stops the kernel for good.
fn halt() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Rust entry point, called by `_start` in the upper half with a valid stack.
#[no_mangle]
extern "C" fn kernel_main() -> ! {
    arch::kmap::install();
    kprintln!("{KERNEL_INFO} vcpos kernel starting (seL4-style capability microkernel; not seL4, not verified)");
    // SAFETY: the builder patched these two words in the image before boot and
    // nothing writes them afterwards; volatile reads keep the compiler from folding
    // the link-time zeros.
    let (paddr, size) = unsafe {
        (
            core::ptr::read_volatile(addr_of_mut!(VCPOS_BOOT_INFO_PADDR)),
            core::ptr::read_volatile(addr_of_mut!(VCPOS_BOOT_INFO_SIZE)),
        )
    };
    let Some(blob) = mmio::ram_slice(paddr, size).filter(|_| size > 0) else {
        kprintln!(
            "{KERNEL_ERROR} no boot information (paddr {paddr:#x}, size {size:#x}): build the image with `vcpos build`"
        );
        halt();
    };
    let info = match BootInfo::parse(blob) {
        Ok(info) => info,
        Err(e) => {
            kprintln!("{KERNEL_ERROR} bad boot information: {e:?}");
            halt();
        }
    };
    if let Err(e) = info.check_ranges(kernel_image(), (paddr, size)) {
        kprintln!("{KERNEL_ERROR} bad boot information: {e}; refusing to start");
        halt();
    }
    for i in 0..info.header.num_zero as usize {
        let z = info.zero(i);
        if !mmio::ram_zero(z.paddr, z.size) {
            kprintln!(
                "{KERNEL_ERROR} zero range {:#x}+{:#x} is not RAM; skipped",
                z.paddr,
                z.size
            );
        }
    }
    // SAFETY: boot is one kernel entry and this is its only call to `state`.
    let st = unsafe { state() };
    gic::init();
    st.vcpu.init();
    for i in 0..info.header.num_irqs as usize {
        let irq = info.irq(i);
        gic::set_trigger(irq.irq, irq.trigger != 0);
    }
    if let Err(e) = st.kernel.boot(&info, &mut st.machine) {
        kprintln!("{KERNEL_ERROR} cannot start the system: {e:?}");
        halt();
    }
    kprintln!(
        "{KERNEL_INFO} {} protection domains, counter {} Hz; starting",
        st.kernel.num_threads(),
        timer::frequency()
    );
    reschedule(st);
    // SAFETY: `reschedule` made TPIDR_EL2 point at a runnable PD's saved registers
    // and loaded its address space.
    unsafe { arch::vectors::vcpos_return_to_user() }
}

/// The kernel image's physical address and size (text to the top of the stack).
fn kernel_image() -> (u64, u64) {
    extern "C" {
        static __kernel_start: u8;
        static __kernel_end: u8;
    }
    // Only the symbols' addresses are taken, never their contents.
    let (start, end) = (
        core::ptr::addr_of!(__kernel_start) as u64,
        core::ptr::addr_of!(__kernel_end) as u64,
    );
    (start - vcpos_abi::KERNEL_VIRT_OFFSET, end - start)
}

/// Chooses the next thread, idling (`wfi`, interrupts polled) while none is
/// runnable; then loads its address space, points TPIDR_EL2 at its registers and
/// programs the timer for its budget (only when the deadline changed).
fn reschedule(st: &mut State) {
    loop {
        // Before another thread can run: an SError that became pending meanwhile
        // is still the last thread's.
        charge_pending_serror(st);
        let now = timer::now();
        let next = st.kernel.schedule(now);
        if let Some(deadline) = st.kernel.arm_timer(now) {
            timer::set_deadline(deadline);
        }
        if next.is_some() {
            break;
        }
        aarch64_cpu::asm::wfi();
        poll_interrupts(st);
    }
    let current = st.kernel.current().expect("schedule returned a thread");
    if st.kernel.tcb(current).kind == ThreadKind::Vcpu {
        st.vcpu.enter_guest(&mut st.kernel, current);
    } else {
        st.vcpu.enter_host();
        let tcb = st.kernel.tcb(current);
        if st.machine.active_asid != tcb.asid {
            TTBR0_EL2.set(tcb.vspace_root | ((tcb.asid as u64) << 48));
            aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
            st.machine.active_asid = tcb.asid;
        }
    }
    st.ran = Some(current);
    let tcb = st.kernel.current_tcb_mut().expect("schedule returned a thread");
    TPIDR_EL2.set(&mut tcb.ctx as *mut _ as u64);
}

/// Charges an SError that became pending while the last thread ran to that thread
/// (see [`arch::serror`]); true if there was one. Call first thing on every entry
/// from a lower EL, after reading ESR/FAR (taking the SError overwrites them).
fn charge_pending_serror(st: &mut State) -> bool {
    let Some(esr) = arch::serror::take_pending() else {
        return false;
    };
    if let Some(t) = st.ran {
        st.kernel.handle_serror(&mut st.machine, t, esr);
    }
    true
}

/// Takes every pending interrupt: the timer just needs stopping (the scheduler
/// then sees the used budget); the guest's virtual timer is masked and injected
/// into the vCPU that owns it (unmasked again when the guest has handled it); vGIC
/// maintenance frees list registers; device IRQs go to their PDs.
fn poll_interrupts(st: &mut State) {
    loop {
        let intid = gic::acknowledge();
        if intid >= gic::SPURIOUS {
            break;
        }
        match intid {
            i if i as u64 == arch::board::TIMER_IRQ => {
                timer::set_deadline(None);
                st.kernel.timer_fired();
            }
            vcpu::VTIMER_PPI => {
                gic::disable_ppi(vcpu::VTIMER_PPI);
                if let Some(v) = st.vcpu.loaded() {
                    st.kernel.inject_virq(v, vcpu::VTIMER_PPI);
                }
            }
            vcpu::MAINTENANCE_PPI => st.vcpu.maintenance(&mut st.kernel),
            _ => st.kernel.handle_irq(&mut st.machine, intid),
        }
        gic::end_of_interrupt(intid);
    }
}

/// A synchronous exception from a PD: a syscall or a fault.
#[no_mangle]
extern "C" fn vcpos_handle_lower_sync() {
    // SAFETY: the only call to `state` in this exception entry.
    let st = unsafe { state() };
    let (esr, far) = (ESR_EL2.get(), FAR_EL2.get());
    if charge_pending_serror(st) {
        // The thread that trapped is stopped for the SError; its exception is moot.
        reschedule(st);
        return;
    }
    let is_vcpu = st
        .kernel
        .current()
        .is_some_and(|c| st.kernel.tcb(c).kind == ThreadKind::Vcpu);
    if is_vcpu {
        let in_flight = st.vcpu.virq_in_flight();
        st.kernel
            .handle_vcpu_exit(&mut st.machine, esr, far, vcpu::hpfar(), in_flight);
    } else if esr::class(esr) == esr::ec::SVC64 {
        st.kernel.handle_syscall(&mut st.machine);
    } else {
        st.kernel.handle_fault(&mut st.machine, esr, far);
    }
    reschedule(st);
}

/// An interrupt while a PD ran.
#[no_mangle]
extern "C" fn vcpos_handle_lower_irq() {
    // SAFETY: the only call to `state` in this exception entry.
    let st = unsafe { state() };
    charge_pending_serror(st);
    st.kernel.note_interrupt_entry();
    poll_interrupts(st);
    reschedule(st);
}

/// An SError while a thread ran: charged to the thread that ran at the last kernel
/// exit (the one interrupted), reported with its name.
#[no_mangle]
extern "C" fn vcpos_handle_lower_serror() {
    // SAFETY: the only call to `state` in this exception entry.
    let st = unsafe { state() };
    let esr = ESR_EL2.get();
    if let Some(t) = st.ran {
        st.kernel.handle_serror(&mut st.machine, t, esr);
    }
    reschedule(st);
}

/// An exception taken in the kernel itself: a kernel bug. Report and stop.
#[no_mangle]
extern "C" fn vcpos_handle_kernel_exception(vector: u64) -> ! {
    let (esr, far) = (ESR_EL2.get(), FAR_EL2.get());
    let elr = ELR_EL2.get();
    let what = if arch::kmap::in_stack_guard(far) {
        "kernel stack overflow"
    } else {
        "kernel exception"
    };
    kprintln!("{KERNEL_ERROR} {what} (vector {vector}): esr {esr:#x} far {far:#x} elr {elr:#x}");
    halt();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    kprintln!("{KERNEL_ERROR} kernel panic: {info}");
    halt();
}
