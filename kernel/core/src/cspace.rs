//! Capabilities and a PD's capability space.

use vcpos_abi::bootinfo::CapDesc;
use vcpos_abi::cap::{CapKind, CSPACE_SLOTS};
use vcpos_abi::syscall::Error;

/// Index of a thread (its TCB) in the kernel's tables: every PD and every vCPU has one.
pub type ThreadIndex = u8;

/// One capability: the authority to do one thing to one object.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cap {
    /// Nothing.
    #[default]
    Null,
    /// Wait on the owning PD's own input.
    Input,
    /// Signal PD `pd`'s notification with `badge`.
    Notification {
        /// Receiver.
        pd: ThreadIndex,
        /// Bits OR-ed into the receiver's notification word.
        badge: u64,
    },
    /// PPC into PD `pd`, which sees `badge`.
    Endpoint {
        /// Callee.
        pd: ThreadIndex,
        /// Badge the callee receives.
        badge: u64,
    },
    /// Acknowledge IRQ `irq`.
    IrqHandler {
        /// Interrupt number.
        irq: u32,
    },
    /// Control child PD `pd`.
    Tcb {
        /// The child.
        pd: ThreadIndex,
    },
    /// Write to the debug console.
    DebugConsole,
    /// Control vCPU thread `thread`.
    Vcpu {
        /// The vCPU's thread.
        thread: ThreadIndex,
    },
}

impl Cap {
    /// Converts a boot-info record; `None` if malformed (unknown kind, PD index out
    /// of range).
    pub fn from_desc(desc: &CapDesc, num_pds: usize) -> Option<Cap> {
        let pd = || {
            (desc.object as usize)
                .lt(&num_pds)
                .then_some(desc.object as ThreadIndex)
        };
        Some(match CapKind::from_u8(desc.kind)? {
            CapKind::Null => Cap::Null,
            CapKind::Input => Cap::Input,
            CapKind::Notification => Cap::Notification {
                pd: pd()?,
                badge: desc.badge,
            },
            CapKind::Endpoint => Cap::Endpoint {
                pd: pd()?,
                badge: desc.badge,
            },
            CapKind::IrqHandler => Cap::IrqHandler { irq: desc.object },
            CapKind::Tcb => Cap::Tcb { pd: pd()? },
            CapKind::DebugConsole => Cap::DebugConsole,
            CapKind::Vcpu => Cap::Vcpu { thread: pd()? },
        })
    }
}

/// A PD's capability space: a flat table indexed by the capability pointer.
#[derive(Clone, Debug)]
pub struct CSpace {
    slots: [Cap; CSPACE_SLOTS],
}

impl Default for CSpace {
    fn default() -> Self {
        CSpace::new()
    }
}

impl CSpace {
    /// An empty capability space.
    pub const fn new() -> CSpace {
        CSpace {
            slots: [Cap::Null; CSPACE_SLOTS],
        }
    }

    /// Puts `cap` in `slot`; false if the slot is out of range.
    pub fn insert(&mut self, slot: usize, cap: Cap) -> bool {
        match self.slots.get_mut(slot) {
            Some(s) => {
                *s = cap;
                true
            }
            None => false,
        }
    }

    /// Looks up capability pointer `cptr`: out of range or empty is
    /// [`Error::InvalidCapability`].
    pub fn lookup(&self, cptr: u64) -> Result<Cap, Error> {
        match usize::try_from(cptr).ok().and_then(|i| self.slots.get(i)) {
            Some(Cap::Null) | None => Err(Error::InvalidCapability),
            Some(cap) => Ok(*cap),
        }
    }

    /// Iterates over the non-empty slots.
    pub fn iter(&self) -> impl Iterator<Item = (usize, Cap)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != Cap::Null)
            .map(|(i, c)| (i, *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_rejects_empty_and_out_of_range() {
        let mut cs = CSpace::new();
        assert!(cs.insert(10, Cap::Notification { pd: 1, badge: 4 }));
        assert!(!cs.insert(CSPACE_SLOTS, Cap::Input));
        assert_eq!(cs.lookup(10), Ok(Cap::Notification { pd: 1, badge: 4 }));
        assert_eq!(cs.lookup(11), Err(Error::InvalidCapability));
        assert_eq!(cs.lookup(CSPACE_SLOTS as u64), Err(Error::InvalidCapability));
        assert_eq!(cs.lookup(u64::MAX), Err(Error::InvalidCapability));
        assert_eq!(cs.iter().count(), 1);
    }

    #[test]
    fn from_desc_checks_targets() {
        let d = CapDesc {
            slot: 74,
            kind: CapKind::Endpoint as u8,
            reserved: 0,
            object: 2,
            badge: 9,
        };
        assert_eq!(Cap::from_desc(&d, 3), Some(Cap::Endpoint { pd: 2, badge: 9 }));
        assert_eq!(Cap::from_desc(&d, 2), None);
        let bad = CapDesc { kind: 99, ..d };
        assert_eq!(Cap::from_desc(&bad, 3), None);
        let irq = CapDesc {
            kind: CapKind::IrqHandler as u8,
            object: 40,
            ..d
        };
        assert_eq!(Cap::from_desc(&irq, 0), Some(Cap::IrqHandler { irq: 40 }));
    }
}
