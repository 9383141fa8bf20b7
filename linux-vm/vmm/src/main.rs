//! The Linux VMM PD: boots an unmodified Debian arm64 Linux kernel in its VM and
//! emulates the guest's devices.
//!
//! The VM (vCPU 0) is this PD's child: every guest exit the kernel does not handle
//! itself arrives at [`Handler::fault`]. The VMM
//! - loads the kernel `Image`, the initramfs and a device tree it generates into
//!   guest RAM and starts the vCPU ([`boot`]);
//! - emulates the GICv3 distributor and redistributor, PSCI, a PL011 for early boot
//!   messages and a virtio-mmio console ([`exits`]);
//! - connects the virtio console to the board's UART: guest output is written to it,
//!   and keyboard input arrives as its receive interrupt ([`uart`]);
//! - reports guest power-off, reset and crashes, and boots the guest again.
#![no_std]
#![no_main]

extern crate alloc;

mod boot;
mod exits;
mod guest_ram;
mod uart;

use sel4_microkit::{
    debug_println, memory_region_symbol, protection_domain, var, Channel, ChannelSet, Child, Handler, MessageInfo, Vcpu,
};
use vcpos_virtio::{Console, MmioTransport};
use vcpos_vmm_devices::layout;
use vcpos_vmm_devices::pl011::Pl011;
use vcpos_vmm_devices::vgic::Vgic;

use guest_ram::MappedRam;
use uart::Uart;

/// The guest's only vCPU.
const VCPU: Vcpu = Vcpu::new(0);
/// The board UART's receive interrupt.
const UART_IRQ: Channel = Channel::new(1);
/// The virtio-mmio slot of the console.
const CONSOLE_SLOT: u32 = 0;
/// Guest kernel command line.
const BOOTARGS: &str = "console=hvc0 earlycon=pl011,0x9000000 panic=1 rdinit=/init";

/// The VMM's state.
pub struct Vmm {
    ram: MappedRam,
    uart: Uart,
    vgic: Vgic,
    pl011: Pl011,
    console: MmioTransport<Console>,
    /// The guest kernel `Image` and initramfs, as prefilled read-only regions.
    kernel: &'static [u8],
    initrd: &'static [u8],
    /// Guest boots so far.
    boots: u32,
    /// Guest accesses outside its memory reported so far (reports are capped).
    stray_accesses: u32,
    /// Start (counter value) of the current reboot-rate window, and reboots in it.
    window_start: u64,
    boots_in_window: u32,
}

/// Why the VMM cannot go on with the guest.
#[derive(Debug)]
pub struct VmmError(pub alloc::string::String);

impl core::fmt::Display for VmmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A `&'static [u8]` over a read-only memory region the builder prefilled.
fn prefilled(ptr: core::ptr::NonNull<u8>, len: u64) -> &'static [u8] {
    // SAFETY: the system description maps this region read-only into this PD only, for
    // at least `len` bytes (the builder patched `len` with the prefill file's size, which
    // fits the region); nothing ever writes it, so a shared slice is sound.
    unsafe { core::slice::from_raw_parts(ptr.as_ptr(), len as usize) }
}

#[protection_domain(heap_size = 0x10_0000)]
fn init() -> Vmm {
    let ram_ptr = memory_region_symbol!(guest_ram_vaddr: *mut u8);
    let ram_size = *var!(guest_ram_size: u64 = 0);
    let kernel = prefilled(
        memory_region_symbol!(guest_kernel_vaddr: *mut u8),
        *var!(guest_kernel_size: u64 = 0),
    );
    let initrd = prefilled(
        memory_region_symbol!(guest_initrd_vaddr: *mut u8),
        *var!(guest_initrd_size: u64 = 0),
    );
    let uart_ptr = memory_region_symbol!(uart_vaddr: *mut u32);
    // SAFETY: the system description maps guest RAM read-write here for `ram_size`
    // bytes, and this PD never makes a Rust reference into it (only `MappedRam` copies).
    let ram = unsafe { MappedRam::new(ram_ptr.as_ptr(), layout::RAM_BASE, ram_size) };
    // SAFETY: the system description maps the board's PL011 page as device memory here.
    let uart = unsafe { Uart::new(uart_ptr.as_ptr()) };
    let mut vmm = Vmm {
        ram,
        uart,
        vgic: Vgic::new(layout::NUM_SPIS, layout::VCPU0_MPIDR_AFFINITY).expect("valid vGIC configuration"),
        pl011: Pl011::new(),
        console: MmioTransport::new(Console::new()),
        kernel,
        initrd,
        boots: 0,
        stray_accesses: 0,
        window_start: 0,
        boots_in_window: 0,
    };
    vmm.uart.enable_rx_interrupt();
    if let Err(e) = vmm.boot_guest() {
        debug_println!("linux_vmm: cannot boot the guest: {e}");
    }
    vmm
}

impl Handler for Vmm {
    type Error = VmmError;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), VmmError> {
        if channels.contains(UART_IRQ) {
            // Clear first, then drain: a byte arriving after the drain raises the
            // interrupt again instead of waiting unseen in the FIFO.
            self.uart.clear_rx_interrupt();
            let mut buf = [0u8; 64];
            let mut n = 0;
            while let Some(b) = self.uart.read_byte() {
                buf[n] = b;
                n += 1;
                if n == buf.len() {
                    self.console.device_mut().push_input(&buf[..n]);
                    n = 0;
                }
            }
            self.console.device_mut().push_input(&buf[..n]);
            let _ = UART_IRQ.irq_ack();
            if self.console.poll(&mut self.ram) {
                self.raise_console_irq();
            }
            self.deliver_irqs();
        }
        Ok(())
    }

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, VmmError> {
        if child.index() != VCPU.index() {
            return Err(VmmError(alloc::format!("fault from unknown child {}", child.index())));
        }
        Ok(self.handle_exit(msg_info).then(|| MessageInfo::new(0, 0)))
    }
}

impl Vmm {
    /// Marks the console's SPI pending in the distributor.
    fn raise_console_irq(&mut self) {
        if let Some(intid) = layout::virtio_mmio_intid(CONSOLE_SLOT) {
            self.vgic.raise(intid);
        }
    }

    /// Hands every pending, enabled SPI to the kernel for the vCPU's list registers.
    fn deliver_irqs(&mut self) {
        while let Some(p) = self.vgic.take_pending() {
            let _ = VCPU.inject_irq(p.intid);
        }
    }

    /// Writes the guest's console output to the UART.
    fn flush_console(&mut self) {
        let out = self.console.device_mut().take_output();
        if !out.is_empty() {
            self.uart.write_bytes(&out);
            if self.console.poll(&mut self.ram) {
                self.raise_console_irq();
            }
        }
    }
}
