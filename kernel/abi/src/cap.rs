//! Capability slots of a PD and the badges that name events.
//!
//! Each PD has a flat capability space of [`CSPACE_SLOTS`] slots laid out as
//! Microkit's CNode, so a Microkit runtime's slot numbers mean the same here. A
//! capability pointer (cptr) is simply the slot number; anything `>= CSPACE_SLOTS`
//! is an invalid capability.

/// Slots in a PD's capability space.
pub const CSPACE_SLOTS: usize = 512;

/// Well-known slots (Microkit's layout, plus [`slot::DEBUG_CONSOLE`]).
pub mod slot {
    /// The PD's input: its notification word and its endpoint (PPCs, child faults).
    pub const INPUT: u64 = 1;
    /// Reply object (implicit in vcpos; kept for layout compatibility).
    pub const REPLY: u64 = 4;
    /// Debug console (vcpos addition; Microkit prints through a kernel debug call).
    pub const DEBUG_CONSOLE: u64 = 8;
    /// Outgoing notification to the other end of channel `ch` is at `BASE_NOTIFICATION + ch`.
    pub const BASE_NOTIFICATION: u64 = 10;
    /// PPC endpoint of channel `ch` is at `BASE_ENDPOINT + ch`.
    pub const BASE_ENDPOINT: u64 = 74;
    /// IRQ handler of IRQ id `id` is at `BASE_IRQ + id`.
    pub const BASE_IRQ: u64 = 138;
    /// TCB of child PD `id` is at `BASE_TCB + id`.
    pub const BASE_TCB: u64 = 202;
    /// TCB of the VM vCPU `id` is at `BASE_VM_TCB + id`.
    pub const BASE_VM_TCB: u64 = 266;
    /// vCPU object `id` is at `BASE_VCPU + id`.
    pub const BASE_VCPU: u64 = 330;
}

/// Kinds of capability the builder can grant ([`crate::bootinfo::CapDesc::kind`]).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapKind {
    /// Empty slot.
    Null = 0,
    /// The PD's own input (notification + endpoint). `object` = own PD index.
    Input = 1,
    /// Right to signal PD `object`'s notification, OR-ing in `badge`.
    Notification = 2,
    /// Right to PPC PD `object`, which sees `badge`.
    Endpoint = 3,
    /// Right to acknowledge IRQ number `object`.
    IrqHandler = 4,
    /// Control of child PD `object` (restart, stop, resume).
    Tcb = 5,
    /// Right to write to the debug console.
    DebugConsole = 6,
    /// Control of the vCPU thread `object` (restart, stop, registers, interrupts).
    Vcpu = 7,
}

impl CapKind {
    /// Decodes a boot-info byte.
    pub const fn from_u8(v: u8) -> Option<CapKind> {
        Some(match v {
            0 => CapKind::Null,
            1 => CapKind::Input,
            2 => CapKind::Notification,
            3 => CapKind::Endpoint,
            4 => CapKind::IrqHandler,
            5 => CapKind::Tcb,
            6 => CapKind::DebugConsole,
            7 => CapKind::Vcpu,
            _ => return None,
        })
    }
}

// Every slot range fits in the capability space, and the IRQ range ends before the
// child TCBs begin.
const _: () = assert!(slot::BASE_VCPU as usize + crate::MAX_CHANNELS <= CSPACE_SLOTS);
const _: () = assert!(slot::BASE_IRQ + crate::MAX_CHANNELS as u64 <= slot::BASE_TCB);

/// Badge bit 63: the event is a PPC; the low bits hold the callee's channel id.
pub const BADGE_PPC: u64 = 1 << 63;
/// Badge bit 62: the event is a child fault; the low bits hold the child id.
pub const BADGE_FAULT: u64 = 1 << 62;
/// Mask of the channel/child id in a PPC or fault badge.
pub const BADGE_ID_MASK: u64 = 0x3f;

/// Badge delivered when a notification arrives on channel `id` of the receiver.
pub const fn notification_badge(id: u64) -> u64 {
    1 << id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_do_not_collide() {
        for id in 0..crate::MAX_CHANNELS as u64 {
            assert_eq!(notification_badge(id) & (BADGE_PPC | BADGE_FAULT), 0);
        }
        for v in 0..=7 {
            assert_eq!(CapKind::from_u8(v).map(|k| k as u8), Some(v));
        }
        assert_eq!(CapKind::from_u8(8), None);
    }
}
