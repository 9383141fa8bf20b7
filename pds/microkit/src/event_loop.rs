//! The event loop every PD runs after `init`: wait, decode the badge, call the handler.
//!
//! Same shape as libmicrokit's `handler_loop`: ack every configured IRQ once, then
//! loop: perform a deferred action if the handler has one, wait on the input
//! capability (slot 1) with `Recv`, or `ReplyRecv` when a PPC or fault reply is owed,
//! and dispatch on the badge: bit 63 → `protected`, bit 62 → `fault`, otherwise
//! `notified` once with every pending bit.

use vcpos_abi::cap::{slot, BADGE_FAULT, BADGE_ID_MASK, BADGE_PPC};

use crate::channel::{Channel, ChannelSet, Child};
use crate::defer::DeferredAction;
use crate::handler::{Handler, Never};
use crate::message::MessageInfo;
use crate::{symbols, sys};

/// One event, decoded from the badge and message info the kernel returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// Notifications (and IRQs) on these channels.
    Notified(ChannelSet),
    /// A PPC on this channel.
    Protected(Channel, MessageInfo),
    /// A fault of this child.
    Fault(Child, MessageInfo),
}

/// Decodes a badge: bit 63 first, then bit 62, as `sel4-microkit` does. The child id
/// is the badge with bit 62 cleared (not masked further).
pub(crate) fn decode(badge: u64, info: MessageInfo) -> Event {
    if badge & BADGE_PPC != 0 {
        Event::Protected(Channel::new((badge & BADGE_ID_MASK) as usize), info)
    } else if badge & BADGE_FAULT != 0 {
        Event::Fault(Child::new((badge & !BADGE_FAULT) as usize), info)
    } else {
        Event::Notified(ChannelSet::from_badge(badge))
    }
}

/// The loop's state between events: the reply owed, if any.
#[derive(Debug, Default)]
pub(crate) struct EventLoop {
    reply: Option<MessageInfo>,
}

impl EventLoop {
    /// Performs `action`, then replies if a reply is owed and waits for the next event.
    pub(crate) fn wait(&mut self, action: Option<DeferredAction>) -> (u64, MessageInfo) {
        if let Some(action) = action {
            if let Err(e) = action.execute_now() {
                panic!(
                    "deferred {:?} on channel {} failed: {e}",
                    action.interface(),
                    action.channel().index()
                );
            }
        }
        let result = match self.reply.take() {
            Some(reply) => sys::reply_recv(slot::INPUT, reply.into_inner()),
            None => sys::recv(slot::INPUT),
        };
        match result {
            Ok((badge, info)) => (badge, MessageInfo::from_inner(info)),
            Err(e) => panic!("waiting on the input capability failed: {e}"),
        }
    }

    /// Calls the handler for one event and remembers the reply it owes.
    pub(crate) fn dispatch<H: Handler + ?Sized>(
        &mut self,
        handler: &mut H,
        badge: u64,
        info: MessageInfo,
    ) -> Result<(), H::Error> {
        self.reply = match decode(badge, info) {
            Event::Notified(channels) => {
                handler.notified(channels)?;
                None
            }
            Event::Protected(channel, info) => Some(handler.protected(channel, info)?),
            Event::Fault(child, info) => handler.fault(child, info)?,
        };
        Ok(())
    }
}

/// Acks every IRQ the builder configured, once (IRQs start masked until acked).
pub(crate) fn ack_configured_irqs() {
    let irqs = symbols::masks().irqs;
    for id in (0..crate::MAX_CHANNELS).filter(|i| irqs & (1 << i) != 0) {
        if let Err(e) = Channel::new(id).try_irq_ack() {
            crate::debug_println!(
                "{}: initial ack of IRQ id {id} failed: {e}",
                symbols::pd_name_for_messages()
            );
        }
    }
}

/// Runs the event loop until a handler method returns an error.
pub fn run<H: Handler + ?Sized>(handler: &mut H) -> Result<Never, H::Error> {
    ack_configured_irqs();
    let mut event_loop = EventLoop::default();
    loop {
        let (badge, info) = event_loop.wait(handler.take_deferred_action());
        event_loop.dispatch(handler, badge, info)?;
    }
}

/// The PD's main function: runs `init`, then the event loop. If a handler returns an
/// error it prints "main thread terminated with error: ..." and stops the PD with a
/// fault the kernel reports.
pub fn run_main<H: Handler>(init: impl FnOnce() -> H) -> ! {
    symbols::keep_patched_symbols();
    let mut handler = init();
    let Err(err) = run(&mut handler);
    crate::debug_println!(
        "{}: main thread terminated with error: {err}",
        symbols::pd_name_for_messages()
    );
    sys::abort()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::defer::DeferredActionSlot;
    use crate::message::{get_mr, set_mr};
    use crate::sys::fake::{self, Record};
    use vcpos_abi::syscall::Sysno;

    #[derive(Default)]
    struct Recorder {
        calls: std::vec::Vec<std::string::String>,
        slot: DeferredActionSlot,
        fault_reply: bool,
    }

    impl Handler for Recorder {
        type Error = &'static str;

        fn notified(&mut self, channels: ChannelSet) -> Result<(), &'static str> {
            self.calls.push(std::format!("notified {}", channels.display()));
            if channels.contains(Channel::new(9)) {
                return Err("channel 9 is poison");
            }
            self.slot.defer_notify(Channel::new(1)).unwrap();
            Ok(())
        }

        fn protected(&mut self, channel: Channel, info: MessageInfo) -> Result<MessageInfo, &'static str> {
            self.calls
                .push(std::format!("protected {} {}", channel.index(), info.label()));
            set_mr(0, get_mr(0) * 2);
            Ok(MessageInfo::new(info.label() + 1, 1))
        }

        fn fault(&mut self, child: Child, info: MessageInfo) -> Result<Option<MessageInfo>, &'static str> {
            self.calls
                .push(std::format!("fault {} {}", child.index(), info.label()));
            Ok(self.fault_reply.then(MessageInfo::default))
        }

        fn take_deferred_action(&mut self) -> Option<DeferredAction> {
            self.slot.take()
        }
    }

    fn step(lp: &mut EventLoop, h: &mut Recorder, badge: u64, info: MessageInfo) -> Result<(), &'static str> {
        fake::push_event(badge, info.into_inner().0);
        let (b, i) = lp.wait(h.take_deferred_action());
        lp.dispatch(h, b, i)
    }

    fn rec(sysno: Sysno, cptr: u64, arg1: u64) -> Record {
        Record {
            sysno: sysno as u64,
            cptr,
            arg1,
            arg2: 0,
        }
    }

    #[test]
    fn badges_decode_ppc_before_fault_before_notification() {
        let info = MessageInfo::new(1, 0);
        assert_eq!(decode(BADGE_PPC | 5, info), Event::Protected(Channel::new(5), info));
        // Bit 63 wins even with bit 62 set.
        assert_eq!(
            decode(BADGE_PPC | BADGE_FAULT | 2, info),
            Event::Protected(Channel::new(2), info)
        );
        assert_eq!(decode(BADGE_FAULT | 3, info), Event::Fault(Child::new(3), info));
        // The child id is the badge without bit 62, not masked to 8 bits.
        assert_eq!(decode(BADGE_FAULT | 0x100, info), Event::Fault(Child::new(0x100), info));
        assert_eq!(decode(0b1010, info), Event::Notified(ChannelSet::from_badge(0b1010)));
    }

    #[test]
    fn ppc_reply_is_sent_with_the_next_wait() {
        fake::reset();
        let (mut lp, mut h) = (EventLoop::default(), Recorder::default());
        set_mr(0, 21);
        step(&mut lp, &mut h, BADGE_PPC | 4, MessageInfo::new(7, 1)).unwrap();
        assert_eq!(get_mr(0), 42);
        step(&mut lp, &mut h, 1 << 3, MessageInfo::default()).unwrap();
        assert_eq!(h.calls, ["protected 4 7", "notified {3}"]);
        assert_eq!(
            fake::take_log(),
            [
                rec(Sysno::Recv, 1, 0),
                rec(Sysno::ReplyRecv, 1, MessageInfo::new(8, 1).into_inner().0),
            ]
        );
    }

    #[test]
    fn deferred_action_runs_before_the_wait_and_before_the_reply() {
        fake::reset();
        fake::with(|k| k.notifications = 0b10);
        let (mut lp, mut h) = (EventLoop::default(), Recorder::default());
        // notified defers notify(1); the next wait must signal slot 11 then Recv.
        step(&mut lp, &mut h, 0b1, MessageInfo::default()).unwrap();
        step(&mut lp, &mut h, BADGE_PPC, MessageInfo::new(3, 0)).unwrap();
        // A reply is owed and nothing deferred: ReplyRecv.
        step(&mut lp, &mut h, 0b1, MessageInfo::default()).unwrap();
        // Deferred action and no reply.
        step(&mut lp, &mut h, 0b1, MessageInfo::default()).unwrap();
        let log = fake::take_log();
        assert_eq!(
            log,
            [
                rec(Sysno::Recv, 1, 0),
                rec(Sysno::Signal, 11, 0),
                rec(Sysno::Recv, 1, 0),
                rec(Sysno::ReplyRecv, 1, MessageInfo::new(4, 1).into_inner().0),
                rec(Sysno::Signal, 11, 0),
                rec(Sysno::Recv, 1, 0),
            ]
        );
    }

    #[test]
    fn fault_replies_only_when_asked() {
        fake::reset();
        let (mut lp, mut h) = (EventLoop::default(), Recorder::default());
        step(&mut lp, &mut h, BADGE_FAULT | 1, MessageInfo::new(6, 4)).unwrap();
        h.fault_reply = true;
        step(&mut lp, &mut h, BADGE_FAULT | 1, MessageInfo::new(6, 4)).unwrap();
        step(&mut lp, &mut h, BADGE_FAULT | 1, MessageInfo::new(6, 4)).unwrap();
        let sysnos: std::vec::Vec<u64> = fake::take_log().iter().map(|r| r.sysno).collect();
        // First wait: Recv; after a `None` fault: Recv; after a `Some`: ReplyRecv.
        assert_eq!(
            sysnos,
            [Sysno::Recv as u64, Sysno::Recv as u64, Sysno::ReplyRecv as u64]
        );
        assert_eq!(h.calls, ["fault 1 6", "fault 1 6", "fault 1 6"]);
    }

    #[test]
    fn handler_error_stops_the_loop() {
        fake::reset();
        let (mut lp, mut h) = (EventLoop::default(), Recorder::default());
        assert_eq!(
            step(&mut lp, &mut h, 1 << 9, MessageInfo::default()),
            Err("channel 9 is poison")
        );
    }

    #[test]
    fn configured_irqs_are_acked_once_at_start() {
        fake::reset();
        fake::with(|k| k.irqs = (1 << 0) | (1 << 2));
        fake::push_result(0, 0, 0);
        fake::push_result(vcpos_abi::syscall::Error::InvalidCapability as u64, 0, 0);
        ack_configured_irqs();
        assert_eq!(
            fake::take_log(),
            [rec(Sysno::IrqAck, 138, 0), rec(Sysno::IrqAck, 140, 0)]
        );
        assert_eq!(
            fake::take_output(),
            ": initial ack of IRQ id 2 failed: invalid capability\n"
        );
    }

    #[test]
    #[should_panic(expected = "waiting on the input capability failed")]
    fn failed_wait_panics() {
        fake::reset();
        let _ = EventLoop::default().wait(None);
    }
}
