//! vcp-blk, the block VCP: drives one virtio-blk device (virtio-mmio) for up to four
//! clients, each confined to its window of the disk, through the block protocol
//! (`vcpos-blk-protocol`). The logic is in `vcpos-vcp-blk` (host-tested); this PD adds
//! the mapped regions, the virtio driver and the event loop.
//!
//! System description (see `tests/systems/vcp-blk.system`):
//! - `virtio_mmio`: the device page (uncached), `setvar_vaddr="virtio_mmio"`; the PD
//!   finds the block transport in it and refuses to start if another device is in
//!   use in the same page;
//! - `dma` (64 KiB: the virtqueue, request headers and status bytes):
//!   `setvar_vaddr="dma_vaddr"`, `setvar_size="dma_size"`, and a
//!   `<setvar symbol="dma_paddr" region_paddr="..."/>`;
//! - `config`: the prefilled configuration text (`vcpos_vcp_blk::config`),
//!   `setvar_vaddr="config_vaddr"`, `setvar_prefill_size="config_size"`;
//! - per client `i` (0..4): its control region (`client<i>_control`,
//!   `client<i>_control_size`), its data region (`client<i>_data`,
//!   `client<i>_data_size`, `region_paddr` into `client<i>_data_paddr`), and a channel
//!   with id `i`;
//! - the device's interrupt as `<irq ... id="61"/>`;
//! - `stack_size="0x10000"` (the driver's set-up needs more than the default 8 KiB).
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod device;

use core::fmt;
use core::ptr::NonNull;

use sel4_microkit::{
    debug_println, optional_shared_region, protection_domain, var, Channel, ChannelSet, Handler, SharedRegion,
};
use vcpos_vcp_blk::scan::{self, TRANSPORT_STRIDE};
use vcpos_vcp_blk::{ClientRegions, Config, Engine, MAX_CLIENTS};

use vcpos_vcp_hal::DevicePage;

use crate::device::VirtioDisk;

/// The channel id of the device interrupt.
const IRQ: Channel = Channel::new(61);

/// A region's patched address and size (0 if the system file maps none).
#[derive(Clone, Copy)]
struct Patched {
    name: &'static str,
    vaddr: usize,
    size: usize,
}

impl Patched {
    fn present(&self) -> bool {
        self.vaddr != 0 && self.size != 0
    }

    /// # Safety
    /// The region must be mapped read-write at `vaddr` for the PD's life and shared
    /// only through atomics, volatile accesses and DMA.
    #[allow(unsafe_code)]
    unsafe fn region(&self) -> Option<SharedRegion> {
        let base = NonNull::new(core::ptr::with_exposed_provenance_mut::<u8>(self.vaddr))?;
        // SAFETY: by the caller's contract.
        self.present()
            .then(|| unsafe { SharedRegion::from_raw(self.name, base, self.size) })
    }
}

struct ClientSymbols {
    control: Patched,
    data: Patched,
    data_paddr: usize,
}

macro_rules! client_symbols {
    ($ctl:ident, $ctl_size:ident, $data:ident, $data_size:ident, $paddr:ident) => {
        ClientSymbols {
            control: Patched { name: stringify!($ctl), vaddr: *var!($ctl: usize = 0), size: *var!($ctl_size: usize = 0) },
            data: Patched { name: stringify!($data), vaddr: *var!($data: usize = 0), size: *var!($data_size: usize = 0) },
            data_paddr: *var!($paddr: usize = 0),
        }
    };
}

fn client_symbols() -> [ClientSymbols; MAX_CLIENTS] {
    [
        client_symbols!(
            client0_control,
            client0_control_size,
            client0_data,
            client0_data_size,
            client0_data_paddr
        ),
        client_symbols!(
            client1_control,
            client1_control_size,
            client1_data,
            client1_data_size,
            client1_data_paddr
        ),
        client_symbols!(
            client2_control,
            client2_control_size,
            client2_data,
            client2_data_size,
            client2_data_paddr
        ),
        client_symbols!(
            client3_control,
            client3_control_size,
            client3_data,
            client3_data_size,
            client3_data_paddr
        ),
    ]
}

/// Why vcp-blk did not start (printed once; the PD then ignores every event).
enum StartError {
    Missing(&'static str),
    Config(vcpos_vcp_blk::ConfigError),
    Scan(scan::ScanError),
    Device(device::InitError),
    Engine(vcpos_vcp_blk::EngineError),
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

fn start() -> Result<Engine<SharedRegion, VirtioDisk>, StartError> {
    let mmio = *var!(virtio_mmio: usize = 0);
    // SAFETY: the builder patches `virtio_mmio` with the vaddr of the device map (a
    // 4 KiB virtio-mmio page, uncached, for the PD's life), or leaves it 0.
    #[allow(unsafe_code)]
    let page = unsafe { DevicePage::new(mmio) }.ok_or(StartError::Missing("virtio_mmio device page"))?;
    let dma = Patched {
        name: "dma_vaddr",
        vaddr: *var!(dma_vaddr: usize = 0),
        size: *var!(dma_size: usize = 0),
    };
    let dma_paddr = *var!(dma_paddr: usize = 0);
    if !dma.present() || dma_paddr == 0 {
        return Err(StartError::Missing("dma region (with setvar region_paddr dma_paddr)"));
    }
    vcpos_vcp_hal::register(0, dma.vaddr, dma.size, dma_paddr);

    let config_region =
        optional_shared_region!(config_vaddr, size = config_size).ok_or(StartError::Missing("config region"))?;
    let mut text = [0u8; 1024];
    let n = config_region.len().min(text.len());
    config_region
        .read_bytes(0, &mut text[..n])
        .map_err(|_| StartError::Missing("config region"))?;
    let config = Config::parse(&text[..n]).map_err(StartError::Config)?;

    let mut data: [Option<SharedRegion>; MAX_CLIENTS] = Default::default();
    let mut regions: [Option<ClientRegions<SharedRegion>>; MAX_CLIENTS] = Default::default();
    for (i, s) in client_symbols().iter().enumerate() {
        // SAFETY: the system file maps these regions read-write; they are shared with
        // client i (and the device) only through atomics, volatile accesses and DMA.
        #[allow(unsafe_code)]
        let (control, region) = unsafe { (s.control.region(), s.data.region()) };
        if let (Some(control), Some(region)) = (control, region) {
            if s.data_paddr == 0 {
                return Err(StartError::Missing("client data_paddr (setvar region_paddr)"));
            }
            vcpos_vcp_hal::register(1 + i, s.data.vaddr, s.data.size, s.data_paddr);
            data[i] = Some(region);
            regions[i] = Some(ClientRegions {
                control,
                data_size: s.data.size as u64,
            });
        }
    }

    let offset = scan::find_alone_in_page(|off| page.read_u32(off)).map_err(StartError::Scan)?;
    debug_println!(
        "vcp-blk: virtio-blk transport at page offset {offset:#x} (transport {} of 8 in the page), alone in its page",
        offset / TRANSPORT_STRIDE
    );
    let header = page.transport(offset);
    // SAFETY: the transport's registers (0x200 bytes) are mapped for the PD's life and
    // only this driver uses them.
    #[allow(unsafe_code)]
    let disk = unsafe { VirtioDisk::new(header, TRANSPORT_STRIDE, data) }.map_err(StartError::Device)?;
    let engine = Engine::new(disk, &config, regions).map_err(StartError::Engine)?;
    Ok(engine)
}

struct VcpBlk {
    engine: Option<Engine<SharedRegion, VirtioDisk>>,
    /// Peak of device transfers in flight reported so far.
    peak: usize,
}

impl VcpBlk {
    fn run(&mut self) {
        let Some(engine) = self.engine.as_mut() else { return };
        let r = engine.run();
        let peak = engine.stats().peak_in_flight;
        if peak > self.peak {
            self.peak = peak;
            debug_println!("vcp-blk: {peak} device transfers in flight (new peak)");
        }
        for i in 0..MAX_CLIENTS {
            if r.cut_off & (1 << i) != 0 {
                let why = engine.server(i).and_then(|s| s.cut_off());
                match why {
                    Some(e) => debug_println!("vcp-blk: client {i} cut off: {e}"),
                    None => debug_println!("vcp-blk: client {i} cut off"),
                }
            }
            if r.notify & (1 << i) != 0 {
                let _ = Channel::new(i).try_notify();
            }
        }
    }
}

impl Handler for VcpBlk {
    type Error = sel4_microkit::Infallible;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        let irq = channels.contains(IRQ);
        if irq {
            if let Some(engine) = self.engine.as_mut() {
                engine.device_mut().ack_interrupt();
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
    let mut vcp = match start() {
        Ok(engine) => {
            let clients = (0..MAX_CLIENTS).filter(|&i| engine.server(i).is_some()).count();
            let (seg_max, size_max) = engine.device().limits();
            debug_println!(
                "vcp-blk: serving {clients} clients, disk of {} sectors; virtqueue of {} descriptors, up to {} requests in flight, {seg_max} segments of at most {size_max} bytes each",
                vcpos_vcp_blk::BlockDevice::capacity_sectors(engine.device()),
                device::QUEUE_SIZE,
                device::SLOTS,
            );
            VcpBlk {
                engine: Some(engine),
                peak: 0,
            }
        }
        Err(e) => {
            debug_println!("vcp-blk: ERROR: cannot start: {e}");
            VcpBlk { engine: None, peak: 0 }
        }
    };
    vcp.run();
    vcp
}
