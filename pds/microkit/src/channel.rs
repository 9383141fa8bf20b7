//! Channels, sets of channels, and child PDs: the names a PD uses for its capabilities.
//!
//! A channel id `i` (0..62) names up to three capabilities in Microkit's slot layout:
//! the notification at slot 10+i, the PPC endpoint at 74+i and (for IRQs, which share
//! the id space) the IRQ handler at 138+i. As in `sel4-microkit`, the plain methods
//! first check the builder-patched masks and **panic** if the PD was not given that
//! kind of access; the vcpos `try_*` methods skip that check and return the kernel's
//! own answer instead.

use core::fmt;

use vcpos_abi::cap::slot;
use vcpos_abi::syscall::Error;

use crate::message::MessageInfo;
use crate::{symbols, sys};

/// Most channel (and IRQ) ids a PD can have: ids are `0..MAX_CHANNELS`.
pub const MAX_CHANNELS: usize = vcpos_abi::MAX_CHANNELS;

/// Error from [`Channel::irq_ack`]: the kernel's error code.
pub type IrqAckError = Error;

/// A channel between this PD and another (or an IRQ), identified by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Channel {
    index: usize,
}

impl Channel {
    /// The channel with id `index`. Panics unless `index < 62`.
    #[track_caller]
    pub const fn new(index: usize) -> Self {
        assert!(index < MAX_CHANNELS, "channel id must be < 62");
        Channel { index }
    }

    /// The channel id.
    pub const fn index(&self) -> usize {
        self.index
    }

    /// Slot of the outgoing notification capability.
    #[doc(hidden)]
    pub const fn notification(&self) -> u64 {
        slot::BASE_NOTIFICATION + self.index as u64
    }

    /// Slot of the PPC endpoint capability.
    #[doc(hidden)]
    pub const fn endpoint(&self) -> u64 {
        slot::BASE_ENDPOINT + self.index as u64
    }

    /// Slot of the IRQ handler capability.
    #[doc(hidden)]
    pub const fn irq_handler(&self) -> u64 {
        slot::BASE_IRQ + self.index as u64
    }

    #[track_caller]
    fn check(&self, mask: u64, what: &str) {
        if mask & (1 << self.index) == 0 {
            panic!("{what}: not valid for channel '{}'", self.index);
        }
    }

    /// Notifies the other end (`microkit_notify`). Panics if this PD may not notify on
    /// this channel.
    #[track_caller]
    pub fn notify(&self) {
        self.check(symbols::masks().notifications, "notify");
        if let Err(e) = self.try_notify() {
            panic!("notify: the kernel refused channel '{}': {e}", self.index);
        }
    }

    /// Acknowledges the IRQ with this id (`microkit_irq_ack`). Panics if this PD has no
    /// IRQ with this id.
    #[track_caller]
    pub fn irq_ack(&self) -> Result<(), IrqAckError> {
        self.check(symbols::masks().irqs, "irq_ack");
        self.try_irq_ack()
    }

    /// Makes a PPC to the other end (`microkit_ppcall`): the message registers set
    /// beforehand go with it and the reply's are in place when it returns. Panics if
    /// this PD may not PPC on this channel, or if the call fails (e.g. the callee has
    /// faulted); use [`Channel::try_pp_call`] to handle that.
    #[track_caller]
    pub fn pp_call(&self, msg_info: MessageInfo) -> MessageInfo {
        self.check(symbols::masks().pps, "pp_call");
        match self.try_pp_call(msg_info) {
            Ok(reply) => reply,
            Err(e) => panic!("pp_call: call on channel '{}' failed: {e}", self.index),
        }
    }

    /// vcpos addition: [`Channel::notify`] without the mask check; returns the
    /// kernel's error (e.g. `InvalidCapability` for a channel this PD was not given).
    pub fn try_notify(&self) -> Result<(), Error> {
        sys::signal(self.notification())
    }

    /// vcpos addition: [`Channel::pp_call`] without the mask check, returning the
    /// kernel's error instead of panicking.
    pub fn try_pp_call(&self, msg_info: MessageInfo) -> Result<MessageInfo, Error> {
        sys::call(self.endpoint(), msg_info.into_inner()).map(MessageInfo::from_inner)
    }

    /// vcpos addition: [`Channel::irq_ack`] without the mask check.
    pub fn try_irq_ack(&self) -> Result<(), Error> {
        sys::irq_ack(self.irq_handler())
    }
}

/// The set of channels a notification arrived on (several may arrive at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub struct ChannelSet(u64);

impl ChannelSet {
    /// The set named by a notification badge (bit `i` = channel `i`).
    #[doc(hidden)]
    pub const fn from_badge(badge: u64) -> Self {
        ChannelSet(badge)
    }

    /// The badge bits.
    #[doc(hidden)]
    pub const fn bits(&self) -> u64 {
        self.0
    }

    /// Whether `channel` is in the set.
    pub fn contains(&self, channel: Channel) -> bool {
        self.0 & (1 << channel.index()) != 0
    }

    /// The channels in the set, in ascending order of id.
    pub fn iter(&self) -> impl Iterator<Item = Channel> + '_ {
        let bits = self.0;
        (0..MAX_CHANNELS)
            .filter(move |i| bits & (1 << i) != 0)
            .map(Channel::new)
    }

    /// A `Display` view: `{1, 3}`.
    pub fn display(&self) -> DisplayChannelSet<'_> {
        DisplayChannelSet(self)
    }
}

/// Shows a [`ChannelSet`] as `{1, 3}`.
pub struct DisplayChannelSet<'a>(&'a ChannelSet);

impl fmt::Display for DisplayChannelSet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (n, ch) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}", ch.index())?;
        }
        f.write_str("}")
    }
}

/// A child PD of this PD, identified by the id its `<protection_domain id=...>` gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Child {
    index: usize,
}

impl Child {
    /// The child with id `index`.
    pub const fn new(index: usize) -> Self {
        Child { index }
    }

    /// The child id.
    pub const fn index(&self) -> usize {
        self.index
    }

    /// Slot of the child's TCB capability.
    #[doc(hidden)]
    pub const fn tcb(&self) -> u64 {
        slot::BASE_TCB + self.index as u64
    }

    /// vcpos addition (`microkit_pd_restart`): sets the child's PC to `entry_pc` and
    /// makes it runnable. Only the PC changes: registers, stack and memory keep their
    /// values. A fault the child had pending is cancelled (do not also reply to it).
    pub fn restart(&self, entry_pc: usize) -> Result<(), Error> {
        sys::tcb_restart(self.tcb(), entry_pc as u64)
    }

    /// vcpos addition (`microkit_pd_stop`): stops the child.
    pub fn stop(&self) -> Result<(), Error> {
        sys::tcb_stop(self.tcb())
    }

    /// vcpos addition (`microkit_pd_resume`): resumes a stopped child.
    pub fn resume(&self) -> Result<(), Error> {
        sys::tcb_resume(self.tcb())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake;
    use std::string::ToString;

    #[test]
    fn channel_set_iterates_in_order_and_displays() {
        let set = ChannelSet::from_badge((1 << 3) | (1 << 1) | (1 << 61));
        let ids: std::vec::Vec<usize> = set.iter().map(|c| c.index()).collect();
        assert_eq!(ids, [1, 3, 61]);
        assert!(set.contains(Channel::new(3)));
        assert!(!set.contains(Channel::new(2)));
        assert_eq!(set.display().to_string(), "{1, 3, 61}");
        assert_eq!(ChannelSet::default().display().to_string(), "{}");
    }

    #[test]
    #[should_panic(expected = "channel id must be < 62")]
    fn channel_62_is_rejected() {
        let _ = Channel::new(62);
    }

    #[test]
    fn channel_slots_follow_microkit_layout() {
        let ch = Channel::new(5);
        assert_eq!((ch.notification(), ch.endpoint(), ch.irq_handler()), (15, 79, 143));
        assert_eq!(Child::new(2).tcb(), 204);
    }

    #[test]
    fn notify_checks_the_mask_then_signals() {
        fake::reset();
        fake::with(|k| k.notifications = 1 << 4);
        Channel::new(4).notify();
        let log = fake::take_log();
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].sysno, log[0].cptr), (Sysno::Signal as u64, 14));
    }

    #[test]
    #[should_panic(expected = "notify: not valid for channel '5'")]
    fn notify_on_missing_channel_panics() {
        fake::reset();
        fake::with(|k| k.notifications = 1 << 4);
        Channel::new(5).notify();
    }

    #[test]
    #[should_panic(expected = "pp_call: not valid for channel '0'")]
    fn pp_call_on_missing_channel_panics() {
        fake::reset();
        let _ = Channel::new(0).pp_call(MessageInfo::default());
    }

    #[test]
    #[should_panic(expected = "irq_ack: not valid for channel '7'")]
    fn irq_ack_on_missing_id_panics() {
        fake::reset();
        let _ = Channel::new(7).irq_ack();
    }

    #[test]
    fn try_methods_skip_the_mask_and_return_kernel_errors() {
        fake::reset();
        fake::push_result(Error::InvalidCapability as u64, 0, 0);
        fake::push_result(Error::InvalidCapability as u64, 0, 0);
        fake::push_result(Error::InvalidCapability as u64, 0, 0);
        let ch = Channel::new(5);
        assert_eq!(ch.try_notify(), Err(Error::InvalidCapability));
        assert_eq!(ch.try_pp_call(MessageInfo::new(1, 0)), Err(Error::InvalidCapability));
        assert_eq!(ch.try_irq_ack(), Err(Error::InvalidCapability));
        let cptrs: std::vec::Vec<u64> = fake::take_log().iter().map(|r| r.cptr).collect();
        assert_eq!(cptrs, [15, 79, 143]);
    }

    #[test]
    fn pp_call_returns_reply_info() {
        fake::reset();
        fake::with(|k| k.pps = 1);
        fake::push_result(0, 0, MessageInfo::new(9, 3).into_inner().0);
        let reply = Channel::new(0).pp_call(MessageInfo::new(8, 2));
        assert_eq!((reply.label(), reply.count()), (9, 3));
    }

    #[test]
    fn child_control_uses_tcb_slot() {
        fake::reset();
        Child::new(1).restart(0x20_0100).unwrap();
        Child::new(1).stop().unwrap();
        Child::new(1).resume().unwrap();
        let log = fake::take_log();
        assert_eq!(
            log.iter()
                .map(|r| (r.sysno, r.cptr, r.arg1))
                .collect::<std::vec::Vec<_>>(),
            [
                (Sysno::TcbRestart as u64, 203, 0x20_0100),
                (Sysno::TcbStop as u64, 203, 0),
                (Sysno::TcbResume as u64, 203, 0)
            ]
        );
    }

    use vcpos_abi::syscall::Sysno;
}
