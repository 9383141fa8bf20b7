//! Deferred actions: a notify or IRQ ack the event loop performs just before it waits.
//!
//! As in libmicrokit and `sel4-microkit`, a PD holds at most one deferred action. A
//! handler returns it from [`crate::Handler::take_deferred_action`]; the event loop
//! performs it before its next wait (before the reply, when a PPC or fault reply is
//! owed). Deferring while an action is already queued performs the *old* one at once.

use vcpos_abi::syscall::Error;

use crate::channel::Channel;

/// What a deferred action does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeferredActionInterface {
    /// [`Channel::notify`].
    Notify,
    /// [`Channel::irq_ack`].
    IrqAck,
}

/// A notify or IRQ ack to perform later.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeferredAction {
    channel: Channel,
    interface: DeferredActionInterface,
}

impl DeferredAction {
    /// An action of kind `interface` on `channel`.
    pub const fn new(channel: Channel, interface: DeferredActionInterface) -> Self {
        DeferredAction { channel, interface }
    }

    /// A deferred [`Channel::notify`].
    pub const fn new_notify(channel: Channel) -> Self {
        Self::new(channel, DeferredActionInterface::Notify)
    }

    /// A deferred [`Channel::irq_ack`].
    pub const fn new_irq_ack(channel: Channel) -> Self {
        Self::new(channel, DeferredActionInterface::IrqAck)
    }

    /// The channel.
    pub const fn channel(&self) -> Channel {
        self.channel
    }

    /// The kind of action.
    pub const fn interface(&self) -> DeferredActionInterface {
        self.interface
    }

    /// Performs the action now (with the same mask checks and panics as the
    /// [`Channel`] methods).
    pub fn execute_now(self) -> Result<(), Error> {
        match self.interface {
            DeferredActionInterface::Notify => {
                self.channel.notify();
                Ok(())
            }
            DeferredActionInterface::IrqAck => self.channel.irq_ack(),
        }
    }
}

/// Holds at most one deferred action.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeferredActionSlot {
    inner: Option<DeferredAction>,
}

impl DeferredActionSlot {
    /// An empty slot.
    pub const fn new() -> Self {
        DeferredActionSlot { inner: None }
    }

    /// Removes and returns the queued action (for `take_deferred_action`).
    pub fn take(&mut self) -> Option<DeferredAction> {
        self.inner.take()
    }

    /// Queues `action`. If one was already queued, that old action is performed now
    /// and its result returned; otherwise `Ok(())`.
    pub fn defer(&mut self, action: DeferredAction) -> Result<(), Error> {
        match self.inner.replace(action) {
            Some(old) => old.execute_now(),
            None => Ok(()),
        }
    }

    /// Queues a notify on `channel` (see [`DeferredActionSlot::defer`]).
    pub fn defer_notify(&mut self, channel: Channel) -> Result<(), Error> {
        self.defer(DeferredAction::new_notify(channel))
    }

    /// Queues an IRQ ack on `channel` (see [`DeferredActionSlot::defer`]).
    pub fn defer_irq_ack(&mut self, channel: Channel) -> Result<(), Error> {
        self.defer(DeferredAction::new_irq_ack(channel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::fake;
    use vcpos_abi::syscall::Sysno;

    #[test]
    fn deferring_twice_runs_the_old_action_now() {
        fake::reset();
        fake::with(|k| {
            k.notifications = 0b11;
            k.irqs = 0b100;
        });
        let mut slot = DeferredActionSlot::new();
        slot.defer_notify(Channel::new(0)).unwrap();
        assert!(fake::take_log().is_empty(), "the first action must wait");
        slot.defer_notify(Channel::new(1)).unwrap();
        let log = fake::take_log();
        assert_eq!(log.len(), 1);
        assert_eq!((log[0].sysno, log[0].cptr), (Sysno::Signal as u64, 10));
        slot.defer_irq_ack(Channel::new(2)).unwrap();
        let log = fake::take_log();
        assert_eq!((log[0].sysno, log[0].cptr), (Sysno::Signal as u64, 11));
        assert_eq!(slot.take(), Some(DeferredAction::new_irq_ack(Channel::new(2))));
        assert_eq!(slot.take(), None);
        assert!(fake::take_log().is_empty());
    }

    #[test]
    fn displaced_irq_ack_reports_kernel_error() {
        fake::reset();
        fake::with(|k| k.irqs = 1);
        let mut slot = DeferredActionSlot::new();
        slot.defer_irq_ack(Channel::new(0)).unwrap();
        fake::push_result(Error::InvalidCapability as u64, 0, 0);
        assert_eq!(slot.defer_irq_ack(Channel::new(0)), Err(Error::InvalidCapability));
    }

    #[test]
    fn accessors() {
        let a = DeferredAction::new(Channel::new(3), DeferredActionInterface::IrqAck);
        assert_eq!(a.channel(), Channel::new(3));
        assert_eq!(a.interface(), DeferredActionInterface::IrqAck);
    }
}
