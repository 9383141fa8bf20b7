//! The root system, `system.xml` (what `./run.sh` boots): the extra QEMU devices it
//! needs, in the runner's page-per-device order (the disk in slot 31 for vcp_blk, the
//! NIC in slot 23 for vcp_net), and the status PD's address (`system.status.cfg`).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use vcpos_status::config::Config;
use vcpos_tool::runner::{Device, PortForward};

use crate::workspace_root;

/// The status PD's configuration file in the workspace (prefilled by `system.xml`).
pub fn status_config_file() -> PathBuf {
    workspace_root().join("system.status.cfg")
}

/// The status PD's address in `system.xml` (from [`status_config_file`]).
pub fn status_address() -> Result<Ipv4Addr, String> {
    let file = status_config_file();
    let text = std::fs::read(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let config = Config::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(config.address)
}

/// `system.xml`'s devices: the raw image `disk` (vcp_blk's, slot 31) and a NIC on
/// QEMU's user network (vcp_net's, slot 23), with host port `status_port` on
/// 127.0.0.1 forwarded to the status PD's HTTP port if given (as `./run.sh` does).
pub fn devices(disk: &Path, status_port: Option<u16>) -> Result<Vec<Device>, String> {
    let forwards = match status_port {
        None => Vec::new(),
        Some(host) => vec![PortForward {
            host,
            guest_addr: Some(status_address()?),
            guest: vcpos_status::server::PORT,
        }],
    };
    Ok(vec![
        Device::Disk {
            file: disk.to_path_buf(),
            read_only: false,
            bus: None,
        },
        Device::Nic {
            mac: None,
            to_host: false,
            forwards,
            bus: None,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_then_nic_forwarding_to_the_status_pd() {
        assert_eq!(status_address().unwrap(), Ipv4Addr::new(10, 0, 2, 16));
        let d = devices(Path::new("/d/vda.img"), Some(18080)).unwrap();
        assert_eq!(d[0].to_string(), "disk=/d/vda.img");
        assert_eq!(d[1].to_string(), "nic,fwd=18080:10.0.2.16:80");
        assert_eq!((d[0].slot(0), d[1].slot(1)), (Some(31), Some(23)));
    }
}
