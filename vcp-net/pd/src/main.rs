//! vcp-net, the network VCP: serves up to four clients through the network protocol
//! (`vcpos-net-protocol`), each with its own MAC address, over one virtio-net device
//! (virtio-mmio), or none: frames between clients are delivered locally, a client can
//! only send with its own MAC, and it receives only frames addressed to it (or to a
//! group). The logic is in `vcpos-vcp-net` (host-tested); this PD adds the mapped
//! regions, the virtio-net driver ([`nic`]) and the event loop.
//!
//! System description (see `tests/systems/vcp-net*.system`):
//! - `config`: the prefilled configuration text (`vcpos_vcp_net::config`),
//!   `setvar_vaddr="config_vaddr"`, `setvar_prefill_size="config_size"`;
//! - per client `i` (0..4): its control region (`client<i>_control`,
//!   `client<i>_control_size`), its data region (`client<i>_data`,
//!   `client<i>_data_size`, with a NIC also `region_paddr` into `client<i>_data_paddr`),
//!   and a channel with id `i`;
//! - optionally a NIC: the device page (uncached) at `virtio_mmio`; the PD finds the
//!   network transport in it and refuses to start if another device is in use in the
//!   same page; `dma`: `setvar_vaddr="dma_vaddr"`, `setvar_size="dma_size"` and a
//!   `<setvar symbol="dma_paddr" region_paddr="..."/>` (512 KiB: 128 receive buffers of 2 KiB and the virtqueues); the
//!   device's interrupt as `<irq ... id="61"/>`. Without `virtio_mmio` frames for the
//!   outside world are given back with a device error.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod nic;

use alloc::boxed::Box;
use core::fmt;

use sel4_microkit::{
    counters, debug_println, optional_shared_region, protection_domain, shared_region, var, Channel, ChannelSet,
    Handler, SharedRegion,
};
use vcpos_vcp_net::scan::{self, TRANSPORT_STRIDE};
use vcpos_vcp_net::{format_mac, ClientRegions, Config, Engine, Nic, NicError, NoNic, TxRequest, MAX_CLIENTS};

use vcpos_vcp_hal::DevicePage;

use crate::nic::VirtioNic;

/// The channel id of the device interrupt.
const IRQ: Channel = Channel::new(61);
/// Runs of the engine per notification before the PD waits again; each run handles
/// everything pending, so more than a few means clients keep producing.
const MAX_RUNS: usize = 64;

/// The NIC the system gives vcp-net, if any.
enum PdNic {
    None(NoNic),
    /// On the heap: the driver's state is large and there is one, for the PD's life.
    Virtio(Box<VirtioNic>),
}

impl Nic for PdNic {
    fn max_in_flight(&self) -> usize {
        match self {
            PdNic::None(n) => n.max_in_flight(),
            PdNic::Virtio(n) => n.max_in_flight(),
        }
    }
    fn transmit(&mut self, req: &TxRequest) -> Result<u16, NicError> {
        match self {
            PdNic::None(n) => n.transmit(req),
            PdNic::Virtio(n) => n.transmit(req),
        }
    }
    fn next_tx_completion(&mut self) -> Option<(u16, bool)> {
        match self {
            PdNic::None(n) => n.next_tx_completion(),
            PdNic::Virtio(n) => n.next_tx_completion(),
        }
    }
    fn receive<R>(&mut self, deliver: impl FnOnce(&[u8]) -> R) -> Option<R> {
        match self {
            PdNic::None(n) => n.receive(deliver),
            PdNic::Virtio(n) => n.receive(deliver),
        }
    }
    fn flush(&mut self) {
        match self {
            PdNic::None(n) => n.flush(),
            PdNic::Virtio(n) => n.flush(),
        }
    }
}

/// The engine as this PD runs it.
type NetEngine = Engine<SharedRegion, PdNic>;

struct ClientSymbols {
    regions: Option<ClientRegions<SharedRegion>>,
    data_paddr: usize,
}

fn client_symbols() -> [ClientSymbols; MAX_CLIENTS] {
    macro_rules! client {
        ($ctl:ident, $ctl_size:ident, $data:ident, $data_size:ident, $paddr:ident) => {
            ClientSymbols {
                regions: match (
                    optional_shared_region!($ctl, size = $ctl_size),
                    optional_shared_region!($data, size = $data_size),
                ) {
                    (Some(control), Some(data)) => Some(ClientRegions { control, data }),
                    _ => None,
                },
                data_paddr: *var!($paddr: usize = 0),
            }
        };
    }
    [
        client!(
            client0_control,
            client0_control_size,
            client0_data,
            client0_data_size,
            client0_data_paddr
        ),
        client!(
            client1_control,
            client1_control_size,
            client1_data,
            client1_data_size,
            client1_data_paddr
        ),
        client!(
            client2_control,
            client2_control_size,
            client2_data,
            client2_data_size,
            client2_data_paddr
        ),
        client!(
            client3_control,
            client3_control_size,
            client3_data,
            client3_data_size,
            client3_data_paddr
        ),
    ]
}

/// Why vcp-net did not start (printed once; the PD then ignores every event).
enum StartError {
    Missing(&'static str),
    Config(vcpos_vcp_net::ConfigError),
    Scan(scan::ScanError),
    Device(nic::InitError),
    Engine(vcpos_vcp_net::EngineError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Missing(what) => write!(f, "system file maps no {what}"),
            StartError::Config(e) => e.fmt(f),
            StartError::Scan(e) => e.fmt(f),
            StartError::Device(e) => e.fmt(f),
            StartError::Engine(e) => e.fmt(f),
        }
    }
}

/// The virtio-net device, if the system maps one.
fn start_nic(clients: &[ClientSymbols; MAX_CLIENTS]) -> Result<Option<VirtioNic>, StartError> {
    let mmio = *var!(virtio_mmio: usize = 0);
    // SAFETY: the builder patches `virtio_mmio` with the vaddr of the device map (a
    // 4 KiB virtio-mmio page, uncached, for the PD's life), or leaves it 0.
    #[allow(unsafe_code)]
    let Some(page) = (unsafe { DevicePage::new(mmio) }) else {
        return Ok(None);
    };
    let dma = optional_shared_region!(dma_vaddr, size = dma_size);
    let dma_paddr = *var!(dma_paddr: usize = 0);
    let Some(dma) = dma.filter(|_| dma_paddr != 0) else {
        return Err(StartError::Missing("dma region (with setvar region_paddr dma_paddr)"));
    };
    vcpos_vcp_hal::register(0, dma.addr(), dma.len(), dma_paddr);
    let mut data: [Option<SharedRegion>; MAX_CLIENTS] = Default::default();
    for (i, c) in clients.iter().enumerate() {
        if let Some(r) = &c.regions {
            if c.data_paddr == 0 {
                return Err(StartError::Missing("client data_paddr (setvar region_paddr)"));
            }
            vcpos_vcp_hal::register(1 + i, r.data.addr(), r.data.len(), c.data_paddr);
            data[i] = Some(r.data.clone());
        }
    }
    let offset = scan::find_alone_in_page(|off| page.read_u32(off)).map_err(StartError::Scan)?;
    debug_println!(
        "vcp-net: virtio-net transport at page offset {offset:#x} (transport {} of 8 in the page), alone in its page",
        offset / TRANSPORT_STRIDE
    );
    let header = page.transport(offset);
    // SAFETY: the transport's registers (0x200 bytes) are mapped for the PD's life and
    // only this driver uses them; the HAL's table holds the DMA and data regions.
    #[allow(unsafe_code)]
    let nic = unsafe { VirtioNic::new(header, TRANSPORT_STRIDE, data) }.map_err(StartError::Device)?;
    Ok(Some(nic))
}

fn start() -> Result<(NetEngine, Config), StartError> {
    let config_region = shared_region!(config_vaddr, size = config_size);
    let mut text = [0u8; 1024];
    let n = config_region.len().min(text.len());
    config_region
        .read_bytes(0, &mut text[..n])
        .map_err(|_| StartError::Missing("readable config region"))?;
    let config = Config::parse(&text[..n]).map_err(StartError::Config)?;
    let mut clients = client_symbols();
    let nic = match start_nic(&clients)? {
        Some(n) => {
            debug_println!("vcp-net: NIC mac {} (promiscuous)", format_mac(&n.mac()));
            PdNic::Virtio(Box::new(n))
        }
        None => {
            debug_println!("vcp-net: no NIC (local delivery only)");
            PdNic::None(NoNic)
        }
    };
    let regions = core::array::from_fn(|i| clients[i].regions.take());
    let engine = Engine::new(nic, &config, regions).map_err(StartError::Engine)?;
    Ok((engine, config))
}

struct VcpNet {
    engine: Option<NetEngine>,
    /// Spoofed frames reported so far per client (a line at 1, 2, 4, 8, ...).
    spoof_reported: [u64; MAX_CLIENTS],
    /// Frames lost for want of a receive buffer reported so far per client (a line at
    /// 1, 2, 4, 8, ...).
    lost_reported: [u64; MAX_CLIENTS],
    /// Bytes copied already reported to the kernel (`counters::count_copied`).
    copied_reported: u64,
}

impl VcpNet {
    /// Runs the engine until every client's TX ring is empty and each has been asked
    /// for a notification on its next frame.
    fn run(&mut self) {
        self.run_engine();
        // The bytes copied since the last report, for the kernel's counter: once
        // they reach `COPIED_REPORT_BYTES` (a syscall per run would cost more than
        // the header checks it reports).
        if let Some(engine) = &self.engine {
            let copied = engine.bytes_copied();
            let unreported = copied.saturating_sub(self.copied_reported);
            if unreported >= COPIED_REPORT_BYTES && counters::count_copied(unreported).is_ok() {
                self.copied_reported = copied;
            }
        }
    }

    fn run_engine(&mut self) {
        let Some(engine) = self.engine.as_mut() else { return };
        for _ in 0..MAX_RUNS {
            let r = engine.run();
            for i in 0..MAX_CLIENTS {
                if r.cut_off & (1 << i) != 0 {
                    match engine.cut_off(i) {
                        Some(e) => debug_println!("vcp-net: client {i}: {e}"),
                        None => debug_println!("vcp-net: client {i} cut off"),
                    }
                }
                if r.notify & (1 << i) != 0 {
                    let _ = Channel::new(i).try_notify();
                }
                if let Some(c) = engine.counters(i) {
                    if c.spoofed > self.spoof_reported[i] && c.spoofed.is_power_of_two() {
                        debug_println!(
                            "vcp-net: client {i} sent with another source MAC: dropped ({} so far)",
                            c.spoofed
                        );
                    }
                    self.spoof_reported[i] = c.spoofed;
                    let lost = c.rx_dropped_no_buffer;
                    if lost > self.lost_reported[i] && lost.is_power_of_two() {
                        debug_println!("vcp-net: client {i} had no receive buffer: frames lost ({lost} so far)");
                    }
                    self.lost_reported[i] = lost;
                }
            }
            if !r.more && engine.prepare_wait() {
                return;
            }
        }
        // Still busy: wait anyway; the clients that sent meanwhile withdrew their
        // requests, and the next notification from any of them runs everything again.
    }
}

/// Bytes copied that make a report to the kernel's `bytes_copied` counter: the
/// counter lags the truth by less than this (0.02 % of a 64 MiB transfer).
const COPIED_REPORT_BYTES: u64 = 16 * 1024;

impl Handler for VcpNet {
    type Error = sel4_microkit::Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let irq = channels.contains(IRQ);
        if irq {
            if let Some(PdNic::Virtio(n)) = self.engine.as_mut().map(|e| e.nic_mut()) {
                n.ack_interrupt();
            }
        }
        self.run();
        if irq {
            let _ = IRQ.irq_ack();
        }
        Ok(())
    }
}

#[protection_domain(heap_size = 0x40000)]
fn init() -> impl Handler {
    let engine = match start() {
        Ok((engine, config)) => {
            for (i, mac) in config.clients.iter().enumerate() {
                if let Some(mac) = mac {
                    debug_println!("vcp-net: client {i} mac {}", format_mac(mac));
                }
            }
            let clients = config.clients.iter().flatten().count();
            debug_println!("vcp-net: serving {clients} clients");
            Some(engine)
        }
        Err(e) => {
            debug_println!("vcp-net: ERROR: cannot start: {e}");
            None
        }
    };
    let mut vcp = VcpNet {
        engine,
        spoof_reported: [0; MAX_CLIENTS],
        lost_reported: [0; MAX_CLIENTS],
        copied_reported: 0,
    };
    vcp.run();
    vcp
}
