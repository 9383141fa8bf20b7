//! badcap test, the well-behaved neighbour: answers the badcap PD's notification with
//! one back and its PPC with `label + 1`, showing that a PD making bad requests does not
//! disturb others.
//!
//! System: `tests/systems/badcap.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::{debug_println, protection_domain, Channel, ChannelSet, Handler, MessageInfo};
use vcpos_test_support::{ensure, TestFailed};

const TEST: &str = "badcap";
/// Channel to the badcap PD.
const BADCAP: Channel = Channel::new(0);

struct Bystander;

impl Handler for Bystander {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(BADCAP),
            "bystander notified on unexpected channels {}",
            channels.display()
        );
        debug_println!("bystander: notified, answering");
        BADCAP.notify();
        Ok(())
    }

    fn protected(&mut self, channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, TestFailed> {
        ensure!(TEST, channel == BADCAP, "PPC on unexpected channel {}", channel.index());
        Ok(MessageInfo::new(msg_info.label() + 1, 0))
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Bystander
}
