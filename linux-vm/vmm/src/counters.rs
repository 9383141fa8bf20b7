//! Kernel event counters around the guest's block and network benchmarks: when the
//! guest prints a line that starts or ends one of its tests (`vcpos-blk: /dev/...`,
//! `BENCH blk_...`; `net-mtu=...`, `BENCH net_...`), the VMM prints a snapshot of the
//! counters (`linux_vmm: counters at <tag> ...`), so the harness gets each test's
//! context switches, kernel entries, guest exits and bytes copied from the difference
//! of two snapshots. The guest's line is complete when the VMM sees
//! it, so a snapshot falls between two tests. The snapshot line goes out through the
//! same UART queue as the guest's output, after the guest's line (a direct kernel
//! print could land inside the guest's line while it waits in the queue).

use alloc::string::String;
use alloc::vec::Vec;

use sel4_microkit::counters;
use vcpos_abi::counters::GuestExit;

use crate::VCPU;

/// Most threads a system has (the kernel's limit).
const MAX_THREADS: usize = 64;
/// Bytes of a guest line kept to recognise it.
const HEAD: usize = 48;

/// Watches the guest's console output for benchmark lines.
pub struct BenchWatch {
    head: [u8; HEAD],
    len: usize,
}

impl BenchWatch {
    /// A watcher at the start of a line.
    pub const fn new() -> BenchWatch {
        BenchWatch {
            head: [0; HEAD],
            len: 0,
        }
    }

    /// Guest output `bytes`: the snapshot tag for the end of each benchmark line in
    /// them (`blk_start`, `blk_<test>`, `net_start`, `net_<test>`), for [`snapshot`]
    /// lines to print after them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                out.extend(self.line_end());
                self.len = 0;
            } else if self.len < HEAD {
                self.head[self.len] = b;
                self.len += 1;
            }
        }
        out
    }

    fn line_end(&self) -> Option<String> {
        let line = &self.head[..self.len];
        let tag = if let Some(rest) = line
            .strip_prefix(b"BENCH ")
            .filter(|r| r.starts_with(b"blk_") || r.starts_with(b"net_"))
        {
            rest.split(|&c| c == b' ').next().unwrap_or_default()
        } else if line.starts_with(b"vcpos-blk: /dev/") {
            b"blk_start".as_slice()
        } else if line.starts_with(b"net-mtu=") {
            b"net_start".as_slice()
        } else {
            return None;
        };
        Some(String::from(core::str::from_utf8(tag).unwrap_or("?")))
    }
}

/// The network device's figures a snapshot carries.
#[derive(Clone, Copy, Default)]
pub struct NetFigures {
    /// Bytes the VMM copied between guest RAM and the network VCP (0: the VCP reads
    /// and writes guest RAM in place).
    pub copied: u64,
    /// Frames refused for lying in more non-adjacent guest-RAM pieces than a frame
    /// of the network protocol may take.
    pub tx_scattered: u64,
    /// Frames handed to the network VCP.
    pub tx_frames: u64,
    /// Of those, frames with an offload header (checksum or TCP segmentation offload).
    pub tx_offloaded: u64,
    /// Of those, frames for TCP segmentation (the device's count).
    pub tx_tso: u64,
    /// Protocol descriptors (guest-RAM pieces) those frames took.
    pub tx_pieces: u64,
    /// Times a frame to send found no transmit buffer free.
    pub tx_busy: u64,
    /// Virtual interrupts the VMM injected into the guest (every device's).
    pub irqs_injected: u64,
    /// Where the VMM's time went.
    pub profile: Profile,
}

/// Counter ticks the VMM spent, by part (read with `CNTVCT` around each).
#[derive(Clone, Copy, Default)]
pub struct Profile {
    /// Handling guest exits (device emulation included).
    pub exit: u64,
    /// The network device's service loop after each event.
    pub net: u64,
    /// Polling every device on a notification from the network VCP.
    pub poll: u64,
    /// Injecting virtual interrupts.
    pub irqs: u64,
    /// Exits that were writes, and the ticks spent handling them (of `exit`).
    pub exit_writes: u64,
    /// See `exit_writes`.
    pub exit_write_ticks: u64,
    /// Other exits (reads and the rest).
    pub exit_reads: u64,
    /// Queue notifications, the ticks the device took for them, and the ticks of
    /// the device poll after them.
    pub notifies: u64,
    /// See `notifies`.
    pub notify_ticks: u64,
    /// See `notifies`.
    pub notify_poll_ticks: u64,
}

/// The counters now, as a line: every thread's context switches and kernel entries
/// (through the debug capability: debug and benchmark configurations only), the
/// VMM's own, the vCPU's guest exits by reason, each thread's run time and bytes
/// copied (`CountCopied`; `copied=` their sum), the VMM's and the vCPU's run time
/// (`vmm_run`, `vcpu_run`, in counter ticks of `freq` Hz), and the network device's
/// figures so far (`net`).
pub fn snapshot(tag: &str, net: NetFigures) -> String {
    let (mut switches, mut entries, mut threads) = (0u64, 0u64, 0usize);
    let mut times = String::new();
    let mut copied = 0u64;
    for i in 0..MAX_THREADS {
        let Ok(c) = counters::thread(i) else { break };
        switches += c.thread.switches_to;
        entries += c.thread.kernel_entries;
        threads += 1;
        copied += c.thread.bytes_copied;
        times += &alloc::format!(
            " time_run_t{i}={} exhausted_t{i}={} notified_t{i}={} copied_t{i}={}",
            c.thread.time_run,
            c.thread.budget_exhaustions,
            c.thread.notifications_received,
            c.thread.bytes_copied
        );
    }
    let vmm = counters::own().map(|c| c.thread).unwrap_or_default();
    let vcpu = counters::vcpu(VCPU).map(|c| c.thread).unwrap_or_default();
    let exits: u64 = vcpu.guest_exits.iter().sum();
    let e = |r: GuestExit| vcpu.guest_exits[r as usize];
    alloc::format!(
        "linux_vmm: counters at {tag} threads={threads} switches={switches} entries={entries} vmm_switches={} vmm_entries={} vcpu_switches={} exits={exits} exits_dabt={} exits_irq={} exits_wfx={} exits_sysreg={} vmm_copied={} vmm_tx_scattered={} vmm_tx_busy={} vmm_tx_frames={} vmm_tx_offloaded={} vmm_tx_tso={} vmm_tx_pieces={} vmm_irqs_injected={} vmm_ticks_exit={} vmm_ticks_net={} vmm_ticks_poll={} vmm_ticks_irqs={} vmm_exit_writes={} vmm_exit_write_ticks={} vmm_exit_reads={} vmm_notifies={} vmm_notify_ticks={} vmm_notify_poll_ticks={} vmm_run={} vcpu_run={} copied={copied}{times} freq={} ticks={}\r\n",
        vmm.switches_to,
        vmm.kernel_entries,
        vcpu.switches_to,
        e(GuestExit::DataAbort),
        e(GuestExit::Interrupt),
        e(GuestExit::Wfx),
        e(GuestExit::SysReg),
        net.copied,
        net.tx_scattered,
        net.tx_busy,
        net.tx_frames,
        net.tx_offloaded,
        net.tx_tso,
        net.tx_pieces,
        net.irqs_injected,
        net.profile.exit,
        net.profile.net,
        net.profile.poll,
        net.profile.irqs,
        net.profile.exit_writes,
        net.profile.exit_write_ticks,
        net.profile.exit_reads,
        net.profile.notifies,
        net.profile.notify_ticks,
        net.profile.notify_poll_ticks,
        vmm.time_run,
        vcpu.time_run,
        sel4_microkit::sys::counter_frequency(),
        sel4_microkit::sys::time_now().map_or(0, |(_, now)| now),
    )
}
