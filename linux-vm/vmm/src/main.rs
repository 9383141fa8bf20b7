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
//! - serves the guest's disk through the block VCP when the system connects them
//!   ([`disk`]): zero copy, the VCP's device moves data straight to guest RAM;
//! - serves the guest's network device through the network VCP, in systems that map
//!   its client regions here ([`virtio::NetRegions`], channel [`NET_VCP`]);
//! - reports guest power-off, reset and crashes, and boots the guest again (after the
//!   disk's requests in flight have finished).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

mod boot;
mod counters;
mod disk;
mod exits;
mod guest_ram;
mod ramdisk;
mod uart;
mod virtio;

use sel4_microkit::{
    debug_println, optional_shared_region, protection_domain, shared_region, var, Channel, ChannelSet, Child, Handler,
    MessageInfo, SharedRegion, Vcpu,
};
use vcpos_vmm_devices::devices::DeviceTable;
use vcpos_vmm_devices::exit::StrayCounter;
use vcpos_vmm_devices::guest_output::LinePrefixer;
use vcpos_vmm_devices::layout;
use vcpos_vmm_devices::pl011::Pl011;
use vcpos_vmm_devices::vgic::Vgic;

use disk::{SharedDisk, DISK_CHANNEL};
use guest_ram::MappedRam;
use uart::Uart;
use virtio::Backend;

/// The guest's only vCPU.
const VCPU: Vcpu = Vcpu::new(0);
/// The board UART's receive interrupt.
const UART_IRQ: Channel = Channel::new(1);
/// The network VCP (vcp-net): notifications both ways for the network device.
const NET_VCP: Channel = Channel::new(3);
/// Rounds of "poll, notify, ask for a notification" per event before giving the VCP
/// its turn (a VCP delivering frames as fast as they are taken cannot keep the VMM).
const NET_ROUNDS: usize = 8;
/// Size of the UART's register page (the `uart` memory region).
const UART_REGION_SIZE: usize = 0x1000;

/// The VMM's state.
pub struct Vmm {
    ram: MappedRam,
    uart: Uart,
    /// Puts the guest line prefix before every line the guest prints.
    guest_lines: LinePrefixer,
    vgic: Vgic,
    pl011: Pl011,
    /// The virtio devices: slot, window, interrupt and backend of each.
    virtio: DeviceTable<Backend>,
    /// The guest kernel `Image` and initramfs, as prefilled read-only regions (views
    /// of exactly the files' lengths).
    kernel: SharedRegion,
    initrd: SharedRegion,
    /// Guest boots so far.
    boots: u32,
    /// Guest accesses outside its memory (reports are capped).
    stray_accesses: StrayCounter,
    /// Start (counter value) of the current reboot-rate window, and reboots in it.
    window_start: u64,
    boots_in_window: u32,
    /// The disk served by the block VCP, if the system has one.
    disk: Option<SharedDisk>,
    /// A reboot waiting for the disk's requests in flight to finish.
    reboot_pending: bool,
    /// Counter snapshots at the guest's block benchmark lines.
    bench_watch: counters::BenchWatch,
    /// Virtual interrupts injected so far (for the counter snapshots).
    irqs_injected: u64,
    /// Bytes copied already reported to the kernel (`counters::count_copied`).
    copied_reported: u64,
    /// Counter ticks spent in the VMM's parts (for the counter snapshots).
    profile: counters::Profile,
}

/// Why the VMM cannot go on with the guest.
#[derive(Debug)]
pub struct VmmError(pub alloc::string::String);

impl core::fmt::Display for VmmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A prefilled read-only region, cut to the prefill file's length.
fn prefilled(region: SharedRegion, len: usize) -> SharedRegion {
    let name = region.name();
    region
        .slice(0, len)
        .unwrap_or_else(|e| panic!("prefilled region {name}: {e}"))
}

#[protection_domain(heap_size = 0x10_0000)]
fn init() -> Vmm {
    // The prefill sizes are at most the regions' sizes (the builder checks), and the
    // read-only regions are only ever read.
    let kernel_len = *var!(guest_kernel_size: u64 = 0) as usize;
    let initrd_len = *var!(guest_initrd_size: u64 = 0) as usize;
    let kernel = prefilled(shared_region!(guest_kernel_vaddr, bytes = kernel_len), kernel_len);
    let initrd = prefilled(shared_region!(guest_initrd_vaddr, bytes = initrd_len), initrd_len);
    let ram_region = shared_region!(guest_ram_vaddr, size = guest_ram_size);
    // A disk for the guest, in systems that map a `ramdisk` region here.
    let ramdisk = optional_shared_region!(ramdisk_vaddr, size = ramdisk_size);
    // The disk served by vcp_blk, in systems that give the VMM a `blk_control` region
    // (and channel 2 to vcp_blk); its data region is guest RAM.
    let disk = optional_shared_region!(blk_control_vaddr, size = blk_control_size)
        .and_then(|control| SharedDisk::connect(control, ram_region.len()));
    // The guest's network device, in systems that make the VMM a client of vcp-net.
    // Its data region is guest RAM (vcp_net maps `guest_ram` as this client's data).
    let net = optional_shared_region!(net_control_vaddr, size = net_control_size)
        .map(|control| virtio::NetRegions { control });
    let virtio = virtio::device_table(&ram_region, ramdisk, disk.clone(), net);
    let ram = MappedRam::new(ram_region, layout::RAM_BASE);
    let uart = Uart::new(shared_region!(uart_vaddr, bytes = UART_REGION_SIZE));
    let mut vmm = Vmm {
        ram,
        uart,
        guest_lines: LinePrefixer::new(),
        vgic: Vgic::new(layout::NUM_SPIS, layout::VCPU0_MPIDR_AFFINITY).expect("valid vGIC configuration"),
        pl011: Pl011::new(),
        virtio,
        kernel,
        initrd,
        boots: 0,
        stray_accesses: StrayCounter::new(exits::MAX_STRAY_REPORTS),
        window_start: 0,
        boots_in_window: 0,
        disk,
        reboot_pending: false,
        bench_watch: counters::BenchWatch::new(),
        irqs_injected: 0,
        copied_reported: 0,
        profile: counters::Profile::default(),
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
            // Room in the transmit FIFO: queued output goes on, and console output
            // held back for it follows.
            self.uart.transmit_interrupt();
            self.flush_console();
            // Clear first, then drain: a byte arriving after the drain raises the
            // interrupt again instead of waiting unseen in the FIFO.
            self.uart.clear_rx_interrupt();
            let mut buf = [0u8; 64];
            let mut n = 0;
            while let Some(b) = self.uart.read_byte() {
                buf[n] = b;
                n += 1;
                if n == buf.len() {
                    self.push_console_input(&buf[..n]);
                    n = 0;
                }
            }
            self.push_console_input(&buf[..n]);
            let _ = UART_IRQ.irq_ack();
            self.poll_devices();
            self.deliver_irqs();
        }
        if channels.contains(DISK_CHANNEL) {
            // Responses from vcp_blk: completions for the guest.
            self.poll_devices();
            if let Some(d) = &self.disk {
                d.report_error();
            }
            self.finish_pending_reboot();
            self.deliver_irqs();
        }
        if channels.contains(NET_VCP) {
            let t = sel4_microkit::sys::counter();
            self.poll_devices();
            self.finish_pending_reboot();
            self.profile.poll += sel4_microkit::sys::counter().wrapping_sub(t);
        }
        let t = sel4_microkit::sys::counter();
        self.service_net();
        let u = sel4_microkit::sys::counter();
        self.deliver_irqs();
        self.profile.net += u.wrapping_sub(t);
        self.profile.irqs += sel4_microkit::sys::counter().wrapping_sub(u);
        Ok(())
    }

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, VmmError> {
        if child.index() != VCPU.index() {
            return Err(VmmError(alloc::format!("fault from unknown child {}", child.index())));
        }
        let t = sel4_microkit::sys::counter();
        let reply = self.handle_exit(msg_info);
        let u = sel4_microkit::sys::counter();
        // Reads and writes apart (ESR.WnR of a data abort).
        let write = msg_info.label() == vcpos_abi::fault::label::VM_FAULT
            && sel4_microkit::get_mr(vcpos_abi::fault::vm_fault::FSR) & vcpos_abi::esr::ISS_WNR != 0;
        if write {
            self.profile.exit_writes += 1;
            self.profile.exit_write_ticks += u.wrapping_sub(t);
        } else {
            self.profile.exit_reads += 1;
        }
        self.service_net();
        let v = sel4_microkit::sys::counter();
        self.deliver_irqs();
        self.profile.exit += u.wrapping_sub(t);
        self.profile.net += v.wrapping_sub(u);
        self.profile.irqs += sel4_microkit::sys::counter().wrapping_sub(v);
        Ok(reply)
    }
}

impl Vmm {
    /// Queues keyboard input for the virtio console.
    fn push_console_input(&mut self, bytes: &[u8]) {
        for e in self.virtio.entries_mut() {
            if let Some(console) = e.backend.console() {
                console.device_mut().push_input(bytes);
            }
        }
    }

    /// Lets every device do work that does not come from the guest (console input,
    /// completions); raises the interrupts of those that want one.
    fn poll_devices(&mut self) {
        for e in self.virtio.entries_mut() {
            if e.backend.poll(&mut self.ram) {
                self.vgic.raise(e.intid);
            }
        }
    }

    /// The network device's side of the ring protocol after every event: connects
    /// once vcp-net has published, notifies vcp-net after a batch, and asks for a
    /// notification before waiting (polling again if frames arrived meanwhile).
    fn service_net(&mut self) {
        self.service_net_devices();
        // Bytes copied for the guest's network device since the last report (none on
        // the zero-copy path), for the kernel's counter.
        let copied = self.net_stats().copied;
        if sel4_microkit::counters::count_copied(copied.saturating_sub(self.copied_reported)).is_ok() {
            self.copied_reported = copied;
        }
    }

    fn service_net_devices(&mut self) {
        for e in self.virtio.entries_mut() {
            let Some(net) = e.backend.net() else { continue };
            let backend = net.device_mut().backend_mut();
            if !backend.connect() {
                if let Some(err) = backend.take_error() {
                    debug_println!("linux_vmm: network VCP: {err}; eth0 link down");
                }
                continue;
            }
            for _ in 0..NET_ROUNDS {
                let backend = net.device_mut().backend_mut();
                if backend.signal_needed() {
                    NET_VCP.notify();
                }
                if backend.request_signal() {
                    break;
                }
                if net.poll(&mut self.ram) {
                    self.vgic.raise(e.intid);
                }
            }
            if let Some(err) = net.device_mut().backend_mut().take_error() {
                debug_println!("linux_vmm: network VCP: {err}; eth0 link down");
            }
        }
        // A reboot waiting for vcp-net to give the guest's receive buffers back may
        // have got them in the polls above (no notification follows then).
        self.finish_pending_reboot();
    }

    /// The network device's counters so far: bytes the VMM copied between guest RAM
    /// and the network VCP (0 on the zero-copy path), frames refused for lying in too
    /// many non-adjacent pieces, times no transmit descriptor was free, and the frames
    /// handed over (offloaded ones, and the descriptors they took).
    fn net_stats(&mut self) -> counters::NetFigures {
        let mut n = counters::NetFigures {
            irqs_injected: self.irqs_injected,
            profile: self.profile,
            ..Default::default()
        };
        for e in self.virtio.entries_mut() {
            if let Some(net) = e.backend.net() {
                let s = net.device().backend().stats();
                n.copied += s.tx_bytes_copied + s.rx_bytes_copied;
                n.tx_scattered += s.tx_scattered;
                n.tx_busy += s.tx_busy;
                n.tx_frames += s.tx_frames;
                n.tx_offloaded += s.tx_offloaded;
                n.tx_pieces += s.tx_pieces;
                n.tx_tso += net.device().stats().tx_tso;
            }
        }
        n
    }

    /// Hands every pending, enabled SPI to the kernel for the vCPU's list registers.
    fn deliver_irqs(&mut self) {
        while let Some(p) = self.vgic.take_pending() {
            let _ = VCPU.inject_irq(p.intid);
            self.irqs_injected += 1;
        }
    }

    /// Writes the guest's console output to the UART. While the UART's queue has no
    /// room for it the output stays in the console, which then takes no more transmit
    /// buffers: the guest waits (back-pressure) instead of the VMM.
    fn flush_console(&mut self) {
        self.uart.flush();
        let mut tags = alloc::vec::Vec::new();
        for e in self.virtio.entries_mut() {
            let Some(console) = e.backend.console() else { continue };
            // Room for the prefixed bytes (a prefix per line and \r\n): an estimate
            // that is generous; an empty queue takes anything (dropping what does not
            // fit, counted), so output larger than the queue cannot stall for ever.
            let pending = console.device().pending_output();
            if pending == 0 || (!self.uart.idle() && pending.saturating_mul(3) > self.uart.room()) {
                continue;
            }
            let out = console.device_mut().take_output();
            tags.extend(self.bench_watch.feed(&out));
            self.uart.write_bytes(&self.guest_lines.prefixed(&out));
            if console.poll(&mut self.ram) {
                self.vgic.raise(e.intid);
            }
        }
        if !tags.is_empty() {
            let net = self.net_stats();
            for tag in tags {
                self.uart.write_bytes(counters::snapshot(&tag, net).as_bytes());
            }
        }
        if let Some(n) = self.uart.take_dropped() {
            debug_println!("linux_vmm: {n} bytes of guest console output dropped: the UART stayed full");
        }
    }
}
