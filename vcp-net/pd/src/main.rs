//! vcp-net, the network VCP: serves up to four clients through the network protocol
//! (`vcpos-net-protocol`), each with its own MAC address: frames between clients are
//! delivered locally, a client can only send with its own MAC, and it receives only
//! frames addressed to it (or to a group). The logic is in `vcpos-vcp-net`
//! (host-tested); this PD adds the mapped regions and the event loop. It has no NIC
//! driver yet: frames for the outside world are given back with a device error.
//!
//! System description (see `tests/systems/vcp-net.system`):
//! - `config`: the prefilled configuration text (`vcpos_vcp_net::config`),
//!   `setvar_vaddr="config_vaddr"`, `setvar_prefill_size="config_size"`;
//! - per client `i` (0..4): its control region (`client<i>_control`,
//!   `client<i>_control_size`), its data region (`client<i>_data`,
//!   `client<i>_data_size`), and a channel with id `i`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::fmt;

use sel4_microkit::{
    debug_println, optional_shared_region, protection_domain, shared_region, Channel, ChannelSet, Handler, SharedRegion,
};
use vcpos_vcp_net::{format_mac, ClientRegions, Config, Engine, NoNic, MAX_CLIENTS};

/// The engine as this PD runs it.
type NetEngine = Engine<SharedRegion, NoNic>;

/// Runs of the engine per notification before the PD waits again; each run handles
/// everything pending, so more than a few means clients keep producing.
const MAX_RUNS: usize = 64;

fn client_regions() -> [Option<ClientRegions<SharedRegion>>; MAX_CLIENTS] {
    macro_rules! client {
        ($ctl:ident, $ctl_size:ident, $data:ident, $data_size:ident) => {
            match (
                optional_shared_region!($ctl, size = $ctl_size),
                optional_shared_region!($data, size = $data_size),
            ) {
                (Some(control), Some(data)) => Some(ClientRegions { control, data }),
                _ => None,
            }
        };
    }
    [
        client!(client0_control, client0_control_size, client0_data, client0_data_size),
        client!(client1_control, client1_control_size, client1_data, client1_data_size),
        client!(client2_control, client2_control_size, client2_data, client2_data_size),
        client!(client3_control, client3_control_size, client3_data, client3_data_size),
    ]
}

/// Why vcp-net did not start (printed once; the PD then ignores every event).
enum StartError {
    Config(vcpos_vcp_net::ConfigError),
    ConfigRegion,
    Engine(vcpos_vcp_net::EngineError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => e.fmt(f),
            StartError::ConfigRegion => f.write_str("config region unreadable"),
            StartError::Engine(e) => e.fmt(f),
        }
    }
}

fn start() -> Result<(NetEngine, Config), StartError> {
    let config_region = shared_region!(config_vaddr, size = config_size);
    let mut text = [0u8; 1024];
    let n = config_region.len().min(text.len());
    config_region
        .read_bytes(0, &mut text[..n])
        .map_err(|_| StartError::ConfigRegion)?;
    let config = Config::parse(&text[..n]).map_err(StartError::Config)?;
    let engine = Engine::new(NoNic, &config, client_regions()).map_err(StartError::Engine)?;
    Ok((engine, config))
}

struct VcpNet {
    engine: Option<NetEngine>,
    /// Spoofed frames reported so far per client (a line at 1, 2, 4, 8, ...).
    spoof_reported: [u64; MAX_CLIENTS],
}

impl VcpNet {
    /// Runs the engine until every client's TX ring is empty and each has been asked
    /// for a notification on its next frame.
    fn run(&mut self) {
        let Some(engine) = self.engine.as_mut() else { return };
        for _ in 0..MAX_RUNS {
            let r = engine.run();
            for i in 0..MAX_CLIENTS {
                if r.cut_off & (1 << i) != 0 {
                    match engine.cut_off(i) {
                        Some(e) => debug_println!("vcp-net: client {i} cut off: {e}"),
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
                }
            }
            if engine.prepare_wait() {
                return;
            }
        }
        // Still busy: wait anyway; the clients that sent meanwhile withdrew their
        // requests, and the next notification from any of them runs everything again.
    }
}

impl Handler for VcpNet {
    type Error = sel4_microkit::Infallible;

    fn notified(&mut self, _channels: ChannelSet) -> Result<(), Self::Error> {
        self.run();
        Ok(())
    }
}

#[protection_domain(heap_size = 0x4000)]
fn init() -> impl Handler {
    let engine = match start() {
        Ok((engine, config)) => {
            for (i, mac) in config.clients.iter().enumerate() {
                if let Some(mac) = mac {
                    debug_println!("vcp-net: client {i} mac {}", format_mac(mac));
                }
            }
            let clients = config.clients.iter().flatten().count();
            debug_println!("vcp-net: serving {clients} clients, no NIC (local delivery only)");
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
    };
    vcp.run();
    vcp
}
