//! Board configurations from `kernel-config/<board>.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::diag::Diagnostic;

/// A board as the builder and runner see it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// Board name (matches the file name).
    pub name: String,
    /// RAM and kernel placement.
    pub memory: Memory,
    /// Device addresses and interrupt numbers.
    pub devices: Devices,
    /// How to start it in QEMU.
    pub qemu: Qemu,
}

/// RAM and kernel placement.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Memory {
    /// First RAM address.
    pub ram_base: u64,
    /// RAM size in bytes.
    pub ram_size: u64,
    /// Physical load address of the kernel.
    pub kernel_paddr: u64,
}

/// Device addresses and interrupt numbers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Devices {
    /// PL011 UART.
    pub uart_pl011: u64,
    /// GICv3 distributor.
    pub gicd: u64,
    /// GICv3 redistributors.
    pub gicr: u64,
    /// Redistributor stride per core.
    pub gicr_stride: u64,
    /// Kernel timer PPI.
    pub timer_irq: u32,
    /// Highest interrupt id.
    pub max_irq: u32,
    /// Number of cores.
    pub cores: u32,
}

/// QEMU command-line pieces.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// Emulator binary.
    pub binary: String,
    /// `-machine` value.
    pub machine: String,
    /// `-cpu` value.
    pub cpu: String,
    /// `-m` value.
    pub memory: String,
}

/// The repository's `kernel-config/` directory.
pub fn default_config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../kernel-config")
}

/// Loads board `name` from `dir` (default: [`default_config_dir`]).
pub fn load(name: &str, dir: Option<&Path>) -> Result<Board, Diagnostic> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(default_config_dir);
    let path = dir.join(format!("{name}.toml"));
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Diagnostic::plain(format!("unknown board '{name}': cannot read {}: {e}", path.display())))?;
    let board: Board =
        toml::from_str(&text).map_err(|e| Diagnostic::plain(format!("bad board file {}: {e}", path.display())))?;
    if board.name != name {
        return Err(Diagnostic::plain(format!(
            "board file {} names board '{}', expected '{name}'",
            path.display(),
            board.name
        )));
    }
    Ok(board)
}

#[cfg(test)]
mod tests {
    #[test]
    fn qemu_virt_loads() {
        let b = super::load("qemu_virt_aarch64", None).unwrap();
        assert_eq!(b.memory.ram_base, 0x4000_0000);
        assert_eq!(b.devices.timer_irq, 26);
        assert!(super::load("no_such_board", None).is_err());
    }
}
