//! The QEMU command line: the one place it is made, for `vcpos run`, the tests, the
//! benchmarks' direct-Linux baseline and the shell scripts (`vcpos qemu-args`).
//!
//! A [`QemuSpec`] says what boots ([`Boot`]: a vcpos image, or a Linux kernel directly,
//! the baseline), where the console goes ([`Console`]) and which extra [`Device`]s the
//! machine has. Machine, CPU, memory and cores come from the board file
//! (`kernel-config/<board>.toml`); the baseline may set its own memory and cores (the
//! VM's). Both kinds of boot get the extra devices from the same code, in the order
//! given, so they land in the same virtio-mmio slots. QEMU's `virt` machine packs its
//! 32 virtio-mmio transports eight to a 4 KiB page (slot N at `0x0a00_0000 + N *
//! 0x200`), and a VCP maps a whole page and refuses to start if another device of
//! its page is in use: so the k-th device (from 0) gets its own page, slot
//! [`default_slot`]`(k)` = 31 - 8k (31, 23, 15, 7: pages `0x0a00_3000`, `0x0a00_2000`,
//! ...) through `bus=virtio-mmio-bus.N`, unless it names its own bus (a test that
//! wants two devices in one page). A fifth device has no page left and gets no bus:
//! QEMU gives it the highest free slot. A virtio console comes after the devices
//! without a bus (the highest free slot, e.g. 30).

use std::ffi::OsString;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use crate::board::Board;

/// Where the serial console goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Console {
    /// The terminal: serial console and QEMU monitor multiplexed on stdio.
    Interactive {
        /// Start halted with a GDB server on localhost:1234 (`-s -S`).
        gdb: bool,
    },
    /// A pipe: serial console only on stdout, no monitor, no display.
    Captured,
    /// Like [`Console::Captured`], but stdio is a virtio console
    /// (`virtio-serial-device` + `virtconsole`) instead of the PL011, which then has
    /// no backend (a directly booted Linux with `console=hvc0`). It takes the
    /// virtio-mmio slot after the [`Device`]s.
    Virtio,
}

/// What QEMU boots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Boot {
    /// A vcpos image (`vcpos build`'s output).
    Vcpos {
        /// The image file.
        image: PathBuf,
    },
    /// A Linux kernel directly, without vcpos: the baseline vcpos's VM is measured
    /// against.
    Linux {
        /// The kernel `Image`.
        kernel: PathBuf,
        /// The initramfs, if any.
        initrd: Option<PathBuf>,
        /// The kernel command line (`-append`).
        append: String,
    },
}

/// An extra device on the machine's virtio-mmio bus (see the module docs for slots).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// A virtio block device backed by a raw disk image file.
    Disk {
        /// The disk image.
        file: PathBuf,
        /// The guest cannot write it.
        read_only: bool,
        /// Its virtio-mmio slot (`bus=virtio-mmio-bus.N`, 0-31), or `None`: its own
        /// page, [`default_slot`] of its place in the list.
        bus: Option<u8>,
    },
    /// A virtio network device on QEMU's user-mode network (slirp): the guest gets
    /// 10.0.2.15 from slirp's DHCP server, the gateway 10.0.2.2 is the host.
    Nic {
        /// Its MAC address (`52:54:00:..`), or QEMU's default.
        mac: Option<String>,
        /// The guest may open connections to the host: 10.0.2.2:PORT reaches the host's
        /// 127.0.0.1:PORT. Without it the guest is isolated (`restrict=on`: it reaches
        /// only slirp's own DHCP/DNS/gateway); forwarded ports work either way.
        to_host: bool,
        /// Host ports on 127.0.0.1 whose connections go to guest ports.
        forwards: Vec<PortForward>,
        /// Its virtio-mmio slot (`bus=virtio-mmio-bus.N`, 0-31), or `None`: its own
        /// page, [`default_slot`] of its place in the list.
        bus: Option<u8>,
    },
}

/// The virtio-mmio slots QEMU's `virt` machine has (`virtio-mmio-bus.0` to `.31`).
pub const SLOTS: u8 = 32;

/// The virtio-mmio transports in one 4 KiB page.
pub const SLOTS_PER_PAGE: u8 = 8;

/// The slot the `index`-th extra device (from 0) gets unless it names one: the top
/// slot of a page of its own, 31 - 8 * `index` (31, 23, 15, 7); `None` from the fifth
/// on (no page left).
pub fn default_slot(index: usize) -> Option<u8> {
    let pages = usize::from(SLOTS / SLOTS_PER_PAGE);
    (index < pages).then(|| SLOTS - 1 - SLOTS_PER_PAGE * index as u8)
}

/// The guest-physical address of virtio-mmio `slot`'s registers on QEMU's `virt`
/// machine (the page a VCP maps is this rounded down to 4 KiB).
pub fn slot_address(slot: u8) -> u64 {
    0x0a00_0000 + 0x200 * u64::from(slot)
}

/// The GIC interrupt ID (INTID) of virtio-mmio `slot` on QEMU's `virt` machine: SPI
/// 16 + slot, INTID 32 + 16 + slot (the `<irq irq=...>` of the VCP driving it).
pub fn slot_intid(slot: u8) -> u32 {
    32 + 16 + u32::from(slot)
}

/// A TCP port forward into the guest: connections to the host's `127.0.0.1:host` are
/// made to the guest's port `guest` (`hostfwd=tcp:127.0.0.1:HOST-:GUEST`), at
/// `guest_addr` if given (`hostfwd=tcp:127.0.0.1:HOST-ADDR:GUEST`; by default slirp's
/// first DHCP address, 10.0.2.15).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortForward {
    /// The port on the host's 127.0.0.1 (pick a free one at run time: parallel runs
    /// must not share it).
    pub host: u16,
    /// The guest's address, or `None`: slirp's default (10.0.2.15).
    pub guest_addr: Option<Ipv4Addr>,
    /// The guest's port.
    pub guest: u16,
}

impl PortForward {
    /// A forward from the host's `host` port to the guest's `guest` port at slirp's
    /// default guest address.
    pub fn new(host: u16, guest: u16) -> PortForward {
        PortForward {
            host,
            guest_addr: None,
            guest,
        }
    }
}

impl fmt::Display for PortForward {
    /// `HOST:GUEST` or `HOST:ADDR:GUEST` (the `fwd=` option's value).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.guest_addr {
            Some(a) => write!(f, "{}:{a}:{}", self.host, self.guest),
            None => write!(f, "{}:{}", self.host, self.guest),
        }
    }
}

impl Device {
    /// Its virtio-mmio slot as the `index`-th device: its own, or [`default_slot`].
    pub fn slot(&self, index: usize) -> Option<u8> {
        match self {
            Device::Disk { bus, .. } | Device::Nic { bus, .. } => bus.or_else(|| default_slot(index)),
        }
    }

    /// This device's QEMU arguments; `index` (its place in the list) names its backend
    /// and, unless it names one, its slot.
    fn args(&self, index: usize) -> Vec<OsString> {
        let on_bus = self
            .slot(index)
            .map_or(String::new(), |n| format!(",bus=virtio-mmio-bus.{n}"));
        match self {
            Device::Disk { file, read_only, .. } => {
                let mut drive = OsString::from("file=");
                drive.push(file);
                drive.push(format!(",format=raw,if=none,id=disk{index}"));
                if *read_only {
                    drive.push(",readonly=on");
                }
                vec![
                    "-drive".into(),
                    drive,
                    "-device".into(),
                    format!("virtio-blk-device,drive=disk{index}{on_bus}").into(),
                ]
            }
            Device::Nic {
                mac, to_host, forwards, ..
            } => {
                let mut device = format!("virtio-net-device,netdev=net{index}");
                if let Some(mac) = mac {
                    device.push_str(&format!(",mac={mac}"));
                }
                device.push_str(&on_bus);
                let mut netdev = format!("user,id=net{index},restrict={}", if *to_host { "off" } else { "on" });
                for f in forwards {
                    let addr = f.guest_addr.map_or(String::new(), |a| a.to_string());
                    netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{}-{addr}:{}", f.host, f.guest));
                }
                vec!["-netdev".into(), netdev.into(), "-device".into(), device.into()]
            }
        }
    }
}

impl FromStr for Device {
    type Err = String;

    /// `disk=FILE`, `disk-ro=FILE`, or `nic[=MAC]` followed by options `,host` (the
    /// guest may reach the host), `,fwd=HOSTPORT:[GUESTADDR:]GUESTPORT` (any number)
    /// and `,bus=N` (its virtio-mmio slot, 0-31; a disk takes its own page's).
    fn from_str(s: &str) -> Result<Device, String> {
        if s == "nic" || s.starts_with("nic=") || s.starts_with("nic,") {
            return parse_nic(s);
        }
        match s.split_once('=') {
            Some((kind @ ("disk" | "disk-ro"), file)) if !file.is_empty() => Ok(Device::Disk {
                file: file.into(),
                read_only: kind == "disk-ro",
                bus: None,
            }),
            _ => Err(format!(
                "device '{s}': expected disk=FILE, disk-ro=FILE, nic or nic=MAC (options ,host \
                 ,fwd=HOSTPORT:[GUESTADDR:]GUESTPORT ,bus=N)"
            )),
        }
    }
}

/// Parses `nic[=MAC][,host][,fwd=H:[A:]G]...[,bus=N]` (see [`Device::from_str`]).
fn parse_nic(s: &str) -> Result<Device, String> {
    let mut parts = s.split(',');
    let mac = match parts.next().unwrap_or_default().strip_prefix("nic=") {
        None => None,
        Some(mac) if is_mac(mac) => Some(mac.to_ascii_lowercase()),
        Some(mac) => {
            return Err(format!(
                "device '{s}': '{mac}' is not a MAC address (xx:xx:xx:xx:xx:xx)"
            ))
        }
    };
    let (mut to_host, mut forwards, mut bus) = (false, Vec::new(), None);
    for opt in parts {
        let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p != 0);
        if let Some(spec) = opt.strip_prefix("fwd=") {
            let fields: Vec<&str> = spec.split(':').collect();
            let (host, addr, guest) = match fields[..] {
                [h, g] => (port(h), Some(None), port(g)),
                [h, a, g] => (port(h), a.parse::<Ipv4Addr>().ok().map(Some), port(g)),
                _ => (None, None, None),
            };
            match (host, addr, guest) {
                (Some(host), Some(guest_addr), Some(guest)) => forwards.push(PortForward {
                    host,
                    guest_addr,
                    guest,
                }),
                _ => {
                    return Err(format!(
                        "device '{s}': '{opt}' needs two ports 1-65535 and maybe an IPv4 address \
                         (fwd=HOSTPORT:[GUESTADDR:]GUESTPORT)"
                    ))
                }
            }
        } else if let Some(n) = opt.strip_prefix("bus=") {
            match n.parse::<u8>() {
                Ok(n) if n < SLOTS => bus = Some(n),
                _ => {
                    return Err(format!(
                        "device '{s}': '{opt}' is not a virtio-mmio slot (bus=0 to bus={})",
                        SLOTS - 1
                    ))
                }
            }
        } else if opt == "host" {
            to_host = true;
        } else {
            return Err(format!(
                "device '{s}': unknown nic option '{opt}' (host, fwd=HOSTPORT:[GUESTADDR:]GUESTPORT, bus=N)"
            ));
        }
    }
    Ok(Device::Nic {
        mac,
        to_host,
        forwards,
        bus,
    })
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Disk { file, read_only, .. } => {
                write!(f, "{}={}", if *read_only { "disk-ro" } else { "disk" }, file.display())
            }
            Device::Nic {
                mac,
                to_host,
                forwards,
                bus,
            } => {
                f.write_str("nic")?;
                if let Some(mac) = mac {
                    write!(f, "={mac}")?;
                }
                if *to_host {
                    f.write_str(",host")?;
                }
                forwards.iter().try_for_each(|p| write!(f, ",fwd={p}"))?;
                match bus {
                    Some(n) => write!(f, ",bus={n}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Six two-digit hex bytes separated by colons.
fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A whole QEMU command line: board, what boots, console, devices.
#[derive(Clone, Debug)]
pub struct QemuSpec<'a> {
    /// Machine, CPU, memory, cores and the emulator binary.
    pub board: &'a Board,
    /// What boots.
    pub boot: Boot,
    /// Where the console goes.
    pub console: Console,
    /// `-m` instead of the board's (the direct baseline: the VM's memory).
    pub memory: Option<String>,
    /// `-smp` instead of the board's cores (the direct baseline: the VM's vCPUs).
    pub cpus: Option<u32>,
    /// Extra devices, in virtio-mmio slot order.
    pub devices: Vec<Device>,
}

impl<'a> QemuSpec<'a> {
    /// Boots vcpos image `image` on `board`, no extra devices.
    pub fn vcpos(board: &'a Board, image: &Path, console: Console) -> QemuSpec<'a> {
        QemuSpec {
            board,
            boot: Boot::Vcpos {
                image: image.to_path_buf(),
            },
            console,
            memory: None,
            cpus: None,
            devices: Vec::new(),
        }
    }

    /// Boots Linux `kernel` (with `initrd`, command line `append`) directly on
    /// `board`'s machine, no extra devices.
    pub fn linux(
        board: &'a Board,
        kernel: &Path,
        initrd: Option<&Path>,
        append: &str,
        console: Console,
    ) -> QemuSpec<'a> {
        QemuSpec {
            board,
            boot: Boot::Linux {
                kernel: kernel.to_path_buf(),
                initrd: initrd.map(Path::to_path_buf),
                append: append.to_string(),
            },
            console,
            memory: None,
            cpus: None,
            devices: Vec::new(),
        }
    }

    /// The arguments (without the binary).
    pub fn args(&self) -> Vec<OsString> {
        let q = &self.board.qemu;
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |a: &str| args.push(a.into());
        push("-machine");
        push(&q.machine);
        push("-cpu");
        push(&q.cpu);
        push("-m");
        push(self.memory.as_deref().unwrap_or(&q.memory));
        push("-smp");
        push(&self.cpus.unwrap_or(self.board.devices.cores).to_string());
        // No default devices: no NIC (whose option ROM a minimal install lacks), no
        // default serial/monitor/parallel; the console is set up explicitly below.
        push("-nodefaults");
        // A guest reset ends QEMU instead of rebooting into the same failure forever.
        push("-no-reboot");
        match self.console {
            Console::Interactive { gdb } => {
                push("-nographic");
                push("-serial");
                push("mon:stdio");
                if gdb {
                    push("-s");
                    push("-S");
                }
            }
            Console::Captured => {
                for a in ["-display", "none", "-monitor", "none", "-serial", "stdio"] {
                    push(a);
                }
            }
            Console::Virtio => {
                for a in ["-display", "none", "-monitor", "none", "-serial", "none"] {
                    push(a);
                }
            }
        }
        match &self.boot {
            Boot::Vcpos { image } => args.extend(["-kernel".into(), image.into()]),
            Boot::Linux { kernel, initrd, append } => {
                args.extend(["-kernel".into(), kernel.into()]);
                if let Some(initrd) = initrd {
                    args.extend(["-initrd".into(), initrd.into()]);
                }
                args.extend(["-append".into(), append.into()]);
            }
        }
        for (i, device) in self.devices.iter().enumerate() {
            args.extend(device.args(i));
        }
        if self.console == Console::Virtio {
            for a in [
                "-chardev",
                "stdio,id=con0,signal=off",
                "-device",
                "virtio-serial-device",
                "-device",
                "virtconsole,chardev=con0",
            ] {
                args.push(a.into());
            }
        }
        args
    }

    /// The command: the board's QEMU binary with [`Self::args`].
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.board.qemu.binary);
        cmd.args(self.args());
        cmd
    }
}

/// The QEMU command that boots vcpos image `image` on `board` (no extra devices).
pub fn qemu_command(board: &Board, image: &Path, console: Console) -> Command {
    QemuSpec::vcpos(board, image, console).command()
}

/// The arguments of [`qemu_command`] (without the binary).
pub fn qemu_args(board: &Board, image: &Path, console: Console) -> Vec<OsString> {
    QemuSpec::vcpos(board, image, console).args()
}

/// A command line as a person would type it (for messages).
pub fn display_command(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        s.push(' ');
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
            s.push('\'');
            s.push_str(&a.replace('\'', r"'\''"));
            s.push('\'');
        } else {
            s.push_str(&a);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::board;

    fn board() -> Board {
        board::load("qemu_virt_aarch64", None).unwrap()
    }

    fn line(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn the_direct_linux_boot_shares_machine_and_devices_with_the_vcpos_boot() {
        let board = board();
        let devices = vec![
            "disk=/d/disk.img".parse::<Device>().unwrap(),
            "nic=52:54:00:00:00:2A".parse().unwrap(),
            "disk-ro=/d/ro.img".parse().unwrap(),
            "nic,host,fwd=15000:5000,fwd=15001:10.0.2.16:22".parse().unwrap(),
        ];
        let mut vcpos = QemuSpec::vcpos(&board, Path::new("/x/vcpos.img"), Console::Captured);
        vcpos.devices = devices.clone();
        let mut linux = QemuSpec::linux(
            &board,
            Path::new("/g/Image"),
            Some(Path::new("/g/initrd.gz")),
            "console=ttyAMA0",
            Console::Captured,
        );
        linux.devices = devices;
        let (v, l) = (line(&vcpos.args()), line(&linux.args()));
        let (machine, cpu) = (&board.qemu.machine, &board.qemu.cpu);
        let common = format!(
            "-machine {machine} -cpu {cpu} -m {} -smp {} -nodefaults -no-reboot -display none -monitor none -serial stdio",
            board.qemu.memory, board.devices.cores
        );
        let devs = "-drive file=/d/disk.img,format=raw,if=none,id=disk0 \
                    -device virtio-blk-device,drive=disk0,bus=virtio-mmio-bus.31 \
                    -netdev user,id=net1,restrict=on \
                    -device virtio-net-device,netdev=net1,mac=52:54:00:00:00:2a,bus=virtio-mmio-bus.23 \
                    -drive file=/d/ro.img,format=raw,if=none,id=disk2,readonly=on \
                    -device virtio-blk-device,drive=disk2,bus=virtio-mmio-bus.15 \
                    -netdev user,id=net3,restrict=off,hostfwd=tcp:127.0.0.1:15000-:5000,\
                    hostfwd=tcp:127.0.0.1:15001-10.0.2.16:22 -device virtio-net-device,netdev=net3,bus=virtio-mmio-bus.7";
        assert_eq!(v, format!("{common} -kernel /x/vcpos.img {devs}"));
        assert_eq!(
            l,
            format!("{common} -kernel /g/Image -initrd /g/initrd.gz -append console=ttyAMA0 {devs}")
        );
        // A device may name its slot (two in one page); a fifth default has no page.
        let mut many = QemuSpec::vcpos(&board, Path::new("/x/vcpos.img"), Console::Captured);
        many.devices = vec![
            "nic".parse().unwrap(),
            "nic,bus=30".parse().unwrap(),
            "nic".parse().unwrap(),
            "nic".parse().unwrap(),
            "nic".parse().unwrap(),
        ];
        let slots: Vec<_> = many.devices.iter().enumerate().map(|(i, d)| d.slot(i)).collect();
        assert_eq!(slots, [Some(31), Some(30), Some(15), Some(7), None]);
        let many = line(&many.args());
        assert!(many.contains("netdev=net1,bus=virtio-mmio-bus.30 "), "{many}");
        assert!(many.ends_with("-device virtio-net-device,netdev=net4"), "{many}");
        // The baseline may take the VM's memory and vCPUs.
        linux.memory = Some("257M".into());
        linux.cpus = Some(2);
        linux.devices.clear();
        linux.boot = Boot::Linux {
            kernel: "/g/Image".into(),
            initrd: None,
            append: "console=hvc0".into(),
        };
        linux.console = Console::Virtio;
        assert_eq!(
            line(&linux.args()),
            format!(
                "-machine {machine} -cpu {cpu} -m 257M -smp 2 -nodefaults -no-reboot -display none -monitor none \
                 -serial none -kernel /g/Image -append console=hvc0 -chardev stdio,id=con0,signal=off \
                 -device virtio-serial-device -device virtconsole,chardev=con0"
            )
        );
    }

    #[test]
    fn devices_parse_and_print() {
        for text in [
            "disk=/a b/c.img",
            "disk-ro=x.img",
            "nic",
            "nic=52:54:00:00:00:2a",
            "nic,host",
            "nic=52:54:00:00:00:2a,host,fwd=1:2,fwd=65535:80",
            "nic,fwd=15000:5000",
            "nic,fwd=8080:10.0.2.16:80,fwd=1:2,bus=23",
        ] {
            let d: Device = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!(
            "nic,host,fwd=8080:80".parse::<Device>().unwrap(),
            Device::Nic {
                mac: None,
                to_host: true,
                forwards: vec![PortForward::new(8080, 80)],
                bus: None,
            }
        );
        assert_eq!(
            "nic,fwd=8080:10.0.2.16:80,bus=0".parse::<Device>().unwrap(),
            Device::Nic {
                mac: None,
                to_host: false,
                forwards: vec![PortForward {
                    host: 8080,
                    guest_addr: Some(Ipv4Addr::new(10, 0, 2, 16)),
                    guest: 80
                }],
                bus: Some(0),
            }
        );
        assert_eq!(
            "disk=d".parse::<Device>().unwrap(),
            Device::Disk {
                file: "d".into(),
                read_only: false,
                bus: None,
            }
        );
        for (bad, why) in [
            ("disk", "expected disk=FILE"),
            ("disk=", "expected disk=FILE"),
            ("nic=52:54:00:00:00", "not a MAC"),
            ("nic=zz:54:00:00:00:00", "not a MAC"),
            ("nic,fwd=0:80", "two ports"),
            ("nic,fwd=80", "two ports"),
            ("nic,fwd=70000:80", "two ports"),
            ("nic,fwd=1:10.0.2:80", "IPv4 address"),
            ("nic,fwd=1:2:3:4", "two ports"),
            ("nic,bus=32", "not a virtio-mmio slot"),
            ("nic,bus=x", "not a virtio-mmio slot"),
            ("nic,promisc", "unknown nic option 'promisc'"),
            ("nicx", "expected"),
            ("tape=x", "expected"),
        ] {
            let e = bad.parse::<Device>().unwrap_err();
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn command_line_comes_from_the_board() {
        let board = board::load("qemu_virt_aarch64", None).unwrap();
        let img = Path::new("/x/vcpos.img");
        let cmd = qemu_command(&board, img, Console::Captured);
        let line = display_command(&cmd);
        assert!(line.starts_with("qemu-system-aarch64 "), "{line}");
        for part in [
            "-machine virt,virtualization=on,gic-version=3",
            "-cpu max,pauth=off",
            "-m 2G",
            "-smp 1",
            "-serial stdio",
            "-monitor none",
            "-kernel /x/vcpos.img",
        ] {
            assert!(line.contains(part), "{part:?} missing from {line}");
        }
        let inter = display_command(&qemu_command(&board, img, Console::Interactive { gdb: true }));
        assert!(inter.contains("-nographic -serial mon:stdio -s -S -kernel"), "{inter}");
        assert!(!inter.contains("-monitor none"), "{inter}");
    }

    #[test]
    fn slots_pages_and_interrupts() {
        assert_eq!(default_slot(0), Some(31));
        assert_eq!(slot_address(31), 0x0a00_3e00);
        assert_eq!(slot_address(default_slot(1).unwrap()) & !0xfff, 0x0a00_2000);
        assert_eq!(slot_intid(31), 79);
        assert_eq!(slot_intid(23), 71);
        assert_eq!(default_slot(4), None);
    }

    #[test]
    fn display_command_quotes() {
        let mut c = Command::new("q");
        c.args(["a b", "it's", "plain"]);
        assert_eq!(display_command(&c), r"q 'a b' 'it'\''s' plain");
    }
}
