//! The status PD: a client of the network VCP (channel 0, regions `control` and `data`)
//! that serves the kernel's per-thread event counters over HTTP on smoltcp, as HTML at
//! `/` and JSON at `/status.json` (`vcpos-status` is the logic; this is the glue).
//! Counters are read through the debug capability (Microkit's `debug` and
//! `benchmark` configurations), every thread by index until the kernel refuses one.
//! An optional prefilled `config` region (`setvar_vaddr="config_vaddr"`,
//! `setvar_prefill_size="config_size"`; `vcpos_status::config`) sets the address;
//! without it the PD takes 10.0.2.15.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

extern crate alloc;

use alloc::boxed::Box;

use sel4_microkit::sys::{self, counter, counter_frequency};
use sel4_microkit::{
    counters, debug_println, optional_shared_region, protection_domain, shared_region, Channel, ChannelSet, Handler,
    SharedRegion,
};
use smoltcp::time::Instant;
use vcpos_abi::cap::slot;
use vcpos_net_protocol::{Client, RING_CAPACITY};
use vcpos_status::config::Config;
use vcpos_status::device::ProtocolDevice;
use vcpos_status::http::{Page, Status};
use vcpos_status::render::{Snapshot, MAX_THREADS};
use vcpos_status::server::{Host, StatusServer, Storage, PORT};

const VCP: Channel = Channel::new(0);

/// The kernel's counters, read on demand.
struct Kernel {
    threads: [counters::ThreadCounters; MAX_THREADS],
    /// This PD's thread index (the kernel names it when the PD reads its own
    /// counters), if the read worked.
    own_index: Option<usize>,
    warned: bool,
}

impl Host for Kernel {
    fn snapshot(&mut self) -> Snapshot<'_> {
        let mut n = 0;
        while n < MAX_THREADS {
            match counters::thread(n) {
                Ok(c) => self.threads[n] = c.thread,
                Err(e) => {
                    if n == 0 && !self.warned {
                        debug_println!("status: cannot read thread 0's counters ({e:?}): no debug capability?");
                        self.warned = true;
                    }
                    break;
                }
            }
            n += 1;
        }
        // Read last: the kernel-wide counters as of the end of the snapshot.
        let own = counters::own().unwrap_or_default();
        Snapshot {
            threads: &self.threads[..n],
            own: own.thread,
            own_index: self.own_index,
            kernel: own.kernel,
            now_ticks: counter(),
            counter_hz: counter_frequency(),
        }
    }

    fn served(&mut self, status: Status, page: Option<Page>) {
        debug_println!("status: {} -> {}", page.map_or("(no page)", Page::path), status as u16);
    }
}

struct Pd {
    device: ProtocolDevice<SharedRegion>,
    server: StatusServer<'static>,
    kernel: Kernel,
    /// Bytes copied already reported to the kernel (`counters::count_copied`).
    copied_reported: u64,
}

fn now() -> Instant {
    let hz = u128::from(counter_frequency().max(1));
    Instant::from_micros((u128::from(counter()) * 1_000_000 / hz) as i64)
}

impl Pd {
    fn pump(&mut self) {
        self.poll_rounds();
        let copied = self.device.stats().bytes_copied;
        if counters::count_copied(copied.saturating_sub(self.copied_reported)).is_ok() {
            self.copied_reported = copied;
        }
    }

    fn poll_rounds(&mut self) {
        for _ in 0..64 {
            self.server.poll(now(), &mut self.device, &mut self.kernel);
            if let Some(e) = self.device.take_error() {
                debug_println!("status: network protocol: {e}");
            }
            let client = self.device.client();
            match client.signal_needed() {
                Ok(true) => VCP.notify(),
                Ok(false) => {}
                Err(e) => debug_println!("status: network protocol: {e}"),
            }
            // `false`: something arrived meanwhile; poll again. An error (a cut-off
            // ring) leaves the PD waiting: vcp-net's next notification retries.
            match client.request_signal() {
                Ok(false) => {}
                Ok(true) => return,
                Err(e) => {
                    debug_println!("status: network protocol: {e}");
                    return;
                }
            }
        }
    }
}

impl Handler for Pd {
    type Error = core::convert::Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.pump();
        Ok(())
    }
}

/// The heap holds the server's [`Storage`] (about 150 KiB, mostly two 64 KiB response
/// buffers).
#[protection_domain(heap_size = 0x40000)]
fn init() -> impl Handler {
    let config = match optional_shared_region!(config_vaddr, size = config_size) {
        None => Config::default(),
        Some(region) => {
            let mut text = [0u8; 512];
            let n = region.len().min(text.len());
            if region.read_bytes(0, &mut text[..n]).is_err() {
                panic!("status: config region unreadable");
            }
            match Config::parse(&text[..n]) {
                Ok(c) => c,
                Err(e) => panic!("status: {e}"),
            }
        }
    };
    let control = shared_region!(control_vaddr, size = control_size);
    let data = shared_region!(data_vaddr, size = data_size);
    let mut client = match Client::new(control, data, RING_CAPACITY) {
        Ok(c) => c,
        Err(e) => panic!("status: network regions: {e}"),
    };
    let info = match client.connect() {
        Ok(i) => i,
        Err(e) => panic!("status: vcp-net info page: {e}"),
    };
    let mut device = ProtocolDevice::new(client);
    let storage: &'static mut Storage<'static> = Box::leak(Box::new(Storage::new()));
    let server = StatusServer::with_address(storage, info.mac, config.cidr(), &mut device, now());
    debug_println!(
        "status: serving http://{}:{PORT}/ and /status.json (mac {:02x?}, {} buffers)",
        config.address,
        info.mac,
        info.data_size / u64::from(vcpos_net_protocol::BUF_SIZE)
    );
    let mut pd = Pd {
        device,
        server,
        kernel: Kernel {
            threads: [counters::ThreadCounters::default(); MAX_THREADS],
            // A read of its own counters returns the thread's index.
            own_index: sys::thread_counters(slot::INPUT, 0)
                .ok()
                .and_then(|i| usize::try_from(i).ok()),
            warned: false,
        },
        copied_reported: 0,
    };
    pd.pump();
    pd
}
