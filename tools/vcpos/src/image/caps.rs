//! Capability spaces: which capabilities each PD gets, in which slot, with which badge.
//!
//! The layout is Microkit's CNode layout (`vcpos_abi::cap::slot`):
//!
//! | slot          | capability                       | object        | badge                     |
//! |---------------|----------------------------------|---------------|---------------------------|
//! | 1             | Input (own notification+endpoint)| own PD index  | 0                         |
//! | 8             | DebugConsole (not in release)    | 0             | 0                         |
//! | 10 + ch       | Notification to the other end    | other PD      | `1 << other end's id`     |
//! | 74 + ch       | Endpoint (PPC) to the other end  | other PD      | `BADGE_PPC \| other id`   |
//! | 138 + id      | IrqHandler                       | IRQ number    | 0 (IRQ badge: `1 << id`)  |
//! | 202 + child   | Tcb of the child                 | child PD      | 0                         |
//! | 266 + vcpu    | vCPU (as Microkit's VM TCB)      | vCPU thread   | 0                         |
//! | 330 + vcpu    | vCPU (as Microkit's VCPU object) | vCPU thread   | 0                         |

use vcpos_abi::bootinfo::{CapDesc, IrqDesc};
use vcpos_abi::cap::{self, slot, CapKind};

use vcpos_abi::MAX_CHANNELS;

use crate::diag::Diagnostic;
use crate::model::{Span, System, Trigger};

/// The capabilities of every PD plus the IRQ routing table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapTables {
    /// Per PD (index order), sorted by slot.
    pub pds: Vec<Vec<CapDesc>>,
    /// Every IRQ, in PD order then declaration order.
    pub irqs: Vec<IrqDesc>,
}

/// Child ids are `0..64`: slots 202..266 hold child TCBs.
pub const MAX_CHILDREN: usize = (slot::BASE_VM_TCB - slot::BASE_TCB) as usize;

fn cap(slot: u64, kind: CapKind, object: u32, badge: u64) -> CapDesc {
    CapDesc {
        slot: slot as u16,
        kind: kind as u8,
        reserved: 0,
        object,
        badge,
    }
}

/// Derives every PD's capabilities. `debug_console` grants slot 8 (all configs but
/// release). Two capabilities in one slot (ids reused) is a located error.
pub fn build(system: &System, debug_console: bool) -> Result<CapTables, Vec<Diagnostic>> {
    // (cap, element tag, span) per PD, so collisions can be reported where they arise.
    let mut per_pd: Vec<Vec<(CapDesc, &str, &Span)>> = vec![Vec::new(); system.pds.len()];
    let mut errors = Vec::new();
    let mut check_id = |id: u8, max: usize, what: &str, tag: &str, span: &Span| {
        if usize::from(id) >= max {
            errors.push(Diagnostic::at(
                format!("{what} id must be < {max}, got {id}"),
                tag,
                span,
            ));
        }
    };
    let mut irqs = Vec::new();
    for (i, pd) in system.pds.iter().enumerate() {
        per_pd[i].push((
            cap(slot::INPUT, CapKind::Input, i as u32, 0),
            "protection_domain",
            &pd.span,
        ));
        if debug_console {
            per_pd[i].push((
                cap(slot::DEBUG_CONSOLE, CapKind::DebugConsole, 0, 0),
                "protection_domain",
                &pd.span,
            ));
        }
        for irq in &pd.irqs {
            check_id(irq.id, MAX_CHANNELS, "irq", "irq", &irq.span);
            per_pd[i].push((
                cap(slot::BASE_IRQ + u64::from(irq.id), CapKind::IrqHandler, irq.irq, 0),
                "irq",
                &irq.span,
            ));
            irqs.push(IrqDesc {
                irq: irq.irq,
                pd: i as u8,
                trigger: match irq.trigger {
                    Trigger::Level => 0,
                    Trigger::Edge => 1,
                },
                reserved: 0,
                badge: cap::notification_badge(u64::from(irq.id)),
            });
        }
        if let (Some(parent), Some(id)) = (pd.parent, pd.child_id) {
            check_id(id, MAX_CHILDREN, "child", "protection_domain", &pd.span);
            per_pd[parent].push((
                cap(slot::BASE_TCB + u64::from(id), CapKind::Tcb, i as u32, 0),
                "protection_domain",
                &pd.span,
            ));
        }
    }
    for t in super::vm::vcpu_threads(system) {
        for base in [slot::BASE_VM_TCB, slot::BASE_VCPU] {
            per_pd[t.vmm].push((
                cap(base + u64::from(t.vcpu.id), CapKind::Vcpu, t.thread as u32, 0),
                "vcpu",
                &t.vcpu.span,
            ));
        }
    }
    for ch in &system.channels {
        for (a, b) in [(&ch.ends[0], &ch.ends[1]), (&ch.ends[1], &ch.ends[0])] {
            check_id(a.id, MAX_CHANNELS, "channel", "end", &a.span);
            let ia = u64::from(a.id);
            let ib = u64::from(b.id);
            if a.notify {
                per_pd[a.pd].push((
                    cap(
                        slot::BASE_NOTIFICATION + ia,
                        CapKind::Notification,
                        b.pd as u32,
                        cap::notification_badge(ib),
                    ),
                    "end",
                    &a.span,
                ));
            }
            if a.pp {
                per_pd[a.pd].push((
                    cap(
                        slot::BASE_ENDPOINT + ia,
                        CapKind::Endpoint,
                        b.pd as u32,
                        cap::BADGE_PPC | ib,
                    ),
                    "end",
                    &a.span,
                ));
            }
        }
    }
    let mut pds = Vec::with_capacity(per_pd.len());
    for (i, mut caps) in per_pd.into_iter().enumerate() {
        caps.sort_by_key(|c| c.0.slot);
        for w in caps.windows(2) {
            if w[0].0.slot == w[1].0.slot {
                errors.push(Diagnostic::at(
                    format!(
                        "capability slot {} of protection domain '{}' is used twice (a channel, \
                         IRQ or child id is reused)",
                        w[1].0.slot, system.pds[i].name
                    ),
                    w[1].1,
                    w[1].2,
                ));
            }
        }
        pds.push(caps.into_iter().map(|c| c.0).collect());
    }
    if errors.is_empty() {
        Ok(CapTables { pds, irqs })
    } else {
        Err(errors)
    }
}
