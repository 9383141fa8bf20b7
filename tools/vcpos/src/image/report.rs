//! The build report: a human-readable account of everything in the image, PD by PD.
//!
//! Like Microkit's report it has no fixed format and is not meant for machines; tests
//! read the typed [`super::Built`] instead.

use std::fmt::Write as _;

use vcpos_abi::bootinfo::{CapDesc, MapDesc, NO_PARENT};
use vcpos_abi::cap::{CapKind, BADGE_PPC};
use vcpos_abi::vspace::{self, attr, PAGE_SIZE};

use super::blob::MapWhat;
use super::{BuildOptions, Built};
use crate::board::Board;
use crate::model::{System, Trigger};

fn map_line(out: &mut String, system: &System, m: &MapDesc, what: &MapWhat) {
    let perms = format!(
        "{}{}{}",
        if m.attrs & attr::READ != 0 { 'r' } else { '-' },
        if m.attrs & attr::WRITE != 0 { 'w' } else { '-' },
        if m.attrs & attr::EXECUTE != 0 { 'x' } else { '-' }
    );
    let cache = if m.attrs & attr::CACHED != 0 {
        "cached"
    } else {
        "device"
    };
    let large = if m.attrs & attr::LARGE != 0 { " 2M-pages" } else { "" };
    let what = match what {
        MapWhat::Program { segments, .. } => format!(
            "program image (ELF segments {})",
            segments.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        ),
        MapWhat::Stack => "stack".into(),
        MapWhat::IpcBuffer => "IPC buffer".into(),
        MapWhat::Region { mr } => format!("memory region '{}'", system.memory_regions[*mr].name),
    };
    let _ = writeln!(
        out,
        "    0x{:010x}..0x{:010x} -> 0x{:010x}..0x{:010x}  0x{:08x}  {perms} {cache}{large}  {what}",
        m.vaddr,
        m.vaddr + m.size,
        m.paddr,
        m.paddr + m.size,
        m.size
    );
}

fn cap_line(out: &mut String, system: &System, c: &CapDesc) {
    let pd_name = |i: u32| system.pds.get(i as usize).map_or("?", |p| p.name.as_str());
    let text = match CapKind::from_u8(c.kind) {
        Some(CapKind::Input) => "Input (own notification and endpoint)".to_string(),
        Some(CapKind::DebugConsole) => "DebugConsole".to_string(),
        Some(CapKind::Notification) => {
            format!("Notification -> '{}', badge 0x{:x}", pd_name(c.object), c.badge)
        }
        Some(CapKind::Endpoint) => format!(
            "Endpoint (PPC) -> '{}', badge 0x{:x} (PPC, channel {})",
            pd_name(c.object),
            c.badge,
            c.badge & !BADGE_PPC
        ),
        Some(CapKind::IrqHandler) => format!("IrqHandler -> IRQ {}", c.object),
        Some(CapKind::Tcb) => format!("Tcb -> child '{}'", pd_name(c.object)),
        Some(CapKind::Vcpu) => format!("vCPU -> thread {}", c.object),
        _ => format!("kind {} object {}", c.kind, c.object),
    };
    let _ = writeln!(out, "    slot {:3}: {text}", c.slot);
}

/// Renders the report of `built`.
pub fn render(system: &System, board: &Board, opts: &BuildOptions, built: &Built) -> String {
    let mut out = String::new();
    let mem = &board.memory;
    let _ = writeln!(out, "# vcpos build report\n");
    let _ = writeln!(out, "System:       {}", system.path.display());
    let _ = writeln!(
        out,
        "Board:        {} (RAM 0x{:x}..0x{:x}, kernel loaded at 0x{:x}, {} core(s))",
        board.name,
        mem.ram_base,
        mem.ram_base + mem.ram_size,
        mem.kernel_paddr,
        board.devices.cores
    );
    let _ = writeln!(out, "Config:       {:?}", opts.config);
    let _ = writeln!(
        out,
        "Image:        {} bytes, kernel entry (physical) 0x{:x}",
        built.image.len(),
        built.entry
    );
    let _ = writeln!(
        out,
        "Boot info:    0x{:x} ({} bytes: {} PDs, {} maps, {} caps, {} IRQs, {} zero ranges)",
        built.layout.blob,
        built.blob.len(),
        built.records.pds.len(),
        built.records.maps.len(),
        built.records.caps.len(),
        built.records.irqs.len(),
        built.records.zero.len()
    );
    let _ = writeln!(
        out,
        "Page tables:  0x{:x} ({} tables of 4 KiB)",
        built.pt_pool.0,
        built.pt_pool.1 / PAGE_SIZE
    );
    let _ = writeln!(
        out,
        "RAM used:     0x{:x}..0x{:x} (0x{:x} bytes free above)",
        mem.kernel_paddr,
        built.layout.end,
        (mem.ram_base + mem.ram_size).saturating_sub(built.layout.end)
    );

    let _ = writeln!(out, "\n# Protection domains");
    for (i, (pd, d)) in system.pds.iter().zip(&built.records.pds).enumerate() {
        let _ = writeln!(out, "\n## PD {i}: '{}'", pd.name);
        let parent = if d.parent == NO_PARENT {
            "none".to_string()
        } else {
            format!("'{}' (child id {})", system.pds[d.parent as usize].name, d.child_id)
        };
        let _ = writeln!(out, "  parent:       {parent}");
        let _ = writeln!(
            out,
            "  priority:     {}, budget {} us / period {} us, passive: {}, cpu: {}",
            d.priority,
            d.budget_us,
            d.period_us,
            if d.passive != 0 { "yes" } else { "no" },
            d.cpu
        );
        let _ = writeln!(out, "  entry:        0x{:x}", d.entry);
        let _ = writeln!(
            out,
            "  stack:        0x{:x}..0x{:x} (0x{:x} bytes)",
            vspace::stack_bottom(pd.stack_size),
            d.stack_top,
            pd.stack_size
        );
        let _ = writeln!(out, "  IPC buffer:   physical 0x{:x}", d.ipc_buffer_paddr);
        let _ = writeln!(out, "  program:      {}", pd.program_image.path);
        let _ = writeln!(out, "  maps (virtual -> physical, size, rights, what):");
        let first = d.maps_first as usize;
        for (m, what) in &built.records.maps[first..first + d.maps_count as usize] {
            map_line(&mut out, system, m, what);
        }
        let _ = writeln!(out, "  capabilities:");
        let first = d.caps_first as usize;
        for c in &built.records.caps[first..first + d.caps_count as usize] {
            cap_line(&mut out, system, c);
        }
        let chans: Vec<_> = system
            .channels
            .iter()
            .filter_map(|c| {
                let (me, other) = if c.ends[0].pd == i {
                    (&c.ends[0], &c.ends[1])
                } else if c.ends[1].pd == i {
                    (&c.ends[1], &c.ends[0])
                } else {
                    return None;
                };
                Some(format!(
                    "    channel {} <-> '{}' channel {} (may notify: {}, may PPC: {})",
                    me.id,
                    system.pds[other.pd].name,
                    other.id,
                    if me.notify { "yes" } else { "no" },
                    if me.pp { "yes" } else { "no" }
                ))
            })
            .collect();
        if !chans.is_empty() {
            let _ = writeln!(out, "  channels:");
            for c in chans {
                let _ = writeln!(out, "{c}");
            }
        }
        if !pd.irqs.is_empty() {
            let _ = writeln!(out, "  IRQs:");
            for q in &pd.irqs {
                let trig = match q.trigger {
                    Trigger::Level => "level",
                    Trigger::Edge => "edge",
                };
                let _ = writeln!(
                    out,
                    "    IRQ {} -> channel {} ({trig}, badge 0x{:x})",
                    q.irq,
                    q.id,
                    1u64 << q.id
                );
            }
        }
        let _ = writeln!(out, "  patched symbols:");
        for p in built.patched.iter().filter(|p| p.pd == i) {
            let value = if p.bytes.len() == 8 {
                let mut w = [0u8; 8];
                w.copy_from_slice(&p.bytes);
                format!("0x{:x}", u64::from_le_bytes(w))
            } else if p.symbol == "microkit_name" {
                let n = p.bytes.iter().position(|&b| b == 0).unwrap_or(p.bytes.len());
                format!("\"{}\"", String::from_utf8_lossy(&p.bytes[..n]))
            } else if p.bytes.len() == 1 {
                p.bytes[0].to_string()
            } else {
                format!("{:?}", p.bytes)
            };
            let _ = writeln!(out, "    {} @ 0x{:x} = {value}  ({})", p.symbol, p.vaddr, p.reason);
        }
    }

    let threads = super::vm::vcpu_threads(system);
    if !threads.is_empty() {
        let _ = writeln!(
            out,
            "\n# Virtual machines (vCPU threads, run at EL1 behind stage-2 translation)"
        );
    }
    for t in &threads {
        let Some(d) = built.records.pds.get(t.thread) else {
            continue;
        };
        let _ = writeln!(out, "\n## thread {}: '{}'", t.thread, super::vm::vcpu_name(t));
        let _ = writeln!(
            out,
            "  VMM:          '{}' (vCPU id {})",
            system.pds[t.vmm].name, t.vcpu.id
        );
        let _ = writeln!(out, "  priority:     {}", d.priority);
        let _ = writeln!(out, "  budget:       {} us per {} us", d.budget_us, d.period_us);
        let _ = writeln!(out, "  cpu:          {}", d.cpu);
        let _ = writeln!(out, "  guest-physical maps (stage 2):");
        let first = d.maps_first as usize;
        for (m, what) in &built.records.maps[first..first + d.maps_count as usize] {
            let name = match what {
                MapWhat::Region { mr } => system.memory_regions[*mr].name.as_str(),
                _ => "?",
            };
            let _ = writeln!(
                out,
                "    IPA 0x{:010x}..0x{:010x} -> 0x{:010x}  {}{}{} {}  '{name}'",
                m.vaddr,
                m.vaddr + m.size,
                m.paddr,
                if m.attrs & attr::READ != 0 { 'r' } else { '-' },
                if m.attrs & attr::WRITE != 0 { 'w' } else { '-' },
                if m.attrs & attr::EXECUTE != 0 { 'x' } else { '-' },
                if m.attrs & attr::CACHED != 0 {
                    "cached"
                } else {
                    "device"
                },
            );
        }
    }

    let _ = writeln!(out, "\n# Physical memory map");
    for e in &built.memory_map {
        let _ = writeln!(
            out,
            "  0x{:010x}..0x{:010x}  0x{:08x}  {}",
            e.paddr,
            e.paddr + e.size,
            e.size,
            e.what
        );
    }
    let _ = writeln!(out, "\n# Zeroed by the kernel at boot");
    for z in &built.records.zero {
        let _ = writeln!(
            out,
            "  0x{:010x}..0x{:010x}  0x{:08x}",
            z.paddr,
            z.paddr + z.size,
            z.size
        );
    }
    let _ = writeln!(out, "\n# Kernel symbols");
    for k in &built.kernel_patched {
        let _ = writeln!(out, "  {} @ 0x{:x} = 0x{:x}", k.symbol, k.vaddr, k.value);
    }
    out
}
