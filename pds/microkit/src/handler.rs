//! The `Handler` trait: the PD-specific part of the event loop, and ready-made handlers.

use core::fmt;

pub use core::convert::Infallible;

use crate::channel::{Channel, ChannelSet, Child};
use crate::defer::DeferredAction;
use crate::message::MessageInfo;

/// What a PD does when an event arrives. `init` (see `#[protection_domain]`) returns
/// one; the event loop then calls it for every notification, PPC and child fault.
/// Each method's default panics with a clear message.
pub trait Handler {
    /// Error a method may return; it stops the PD with a message.
    type Error: fmt::Display;

    /// Notifications arrived on `channels` (all pending ones at once, unlike
    /// libmicrokit's one call per channel).
    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        panic!("unexpected notification from channels {}", channels.display())
    }

    /// A PPC arrived on `channel`; its message registers are in place. The returned
    /// message info (and the message registers set here) form the reply.
    fn protected(&mut self, channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        panic!(
            "unexpected protected procedure call from channel {} with {msg_info:?}",
            channel.index()
        )
    }

    /// Child `child` faulted; `msg_info.fault()` decodes it. `Some(reply)` replies
    /// (the child resumes at the faulting instruction); `None` does not (e.g. after
    /// [`Child::restart`]).
    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        panic!(
            "unexpected fault from child protection domain {} with {msg_info:?}",
            child.index()
        )
    }

    /// The action to perform before the next wait, if any (polled after every event).
    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        None
    }
}

/// A handler for PDs that expect no events after `init` (any event panics).
#[derive(Clone, Copy, Debug, Default)]
pub struct NullHandler(());

impl NullHandler {
    /// The null handler.
    pub const fn new() -> Self {
        NullHandler(())
    }
}

impl Handler for NullHandler {
    type Error = Infallible;
}

/// A type with no values (the `Ok` type of a loop that never returns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Never {}

impl fmt::Display for Never {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

#[cfg(feature = "alloc")]
impl<T: Handler + ?Sized> Handler for alloc::boxed::Box<T> {
    type Error = T::Error;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), Self::Error> {
        (**self).notified(channels)
    }

    fn protected(&mut self, channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, Self::Error> {
        (**self).protected(channel, msg_info)
    }

    fn fault(&mut self, child: Child, msg_info: MessageInfo) -> Result<Option<MessageInfo>, Self::Error> {
        (**self).fault(child, msg_info)
    }

    fn take_deferred_action(&mut self) -> Option<DeferredAction> {
        (**self).take_deferred_action()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "unexpected notification from channels {2, 5}")]
    fn default_notified_panics_with_the_channels() {
        let _ = NullHandler::new().notified(ChannelSet::from_badge(0b100100));
    }

    #[test]
    #[should_panic(expected = "unexpected protected procedure call from channel 3")]
    fn default_protected_panics() {
        let _ = NullHandler::new().protected(Channel::new(3), MessageInfo::default());
    }

    #[test]
    #[should_panic(expected = "unexpected fault from child protection domain 1")]
    fn default_fault_panics() {
        let _ = NullHandler::new().fault(Child::new(1), MessageInfo::default());
    }

    #[test]
    fn null_handler_defers_nothing() {
        assert_eq!(NullHandler::new().take_deferred_action(), None);
    }
}
