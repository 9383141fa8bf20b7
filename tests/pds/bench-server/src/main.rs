//! bench: the higher-priority end. Answers the client's PPCs with `label + 1` and, for
//! each notification, records the counter on entry to `notified` in shared memory
//! before notifying the client back.
//!
//! System: `tests/systems/bench.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::sys::counter;
use sel4_microkit::{protection_domain, Channel, ChannelSet, Handler, MessageInfo};
use vcpos_test_support::{ensure, TestFailed};

const TEST: &str = "bench";
/// Channel to the client.
const CLIENT: Channel = Channel::new(0);

/// Shared region: word 0 = notifications handled, word 1 = counter on entry.
fn region() -> vcpos_test_support::Words {
    vcpos_test_support::shared_words!(bench_shared, size = bench_shared_size, n = 2)
}

struct Server;

impl Handler for Server {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        // First thing: the timestamp the client's latency sample ends at.
        let now = counter();
        ensure!(
            TEST,
            channels.contains(CLIENT),
            "server notified on unexpected channels {}",
            channels.display()
        );
        region().get(1).store(now, SeqCst);
        region().get(0).fetch_add(1, SeqCst);
        CLIENT.notify();
        Ok(())
    }

    fn protected(&mut self, _channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, TestFailed> {
        Ok(MessageInfo::new(msg_info.label() + 1, 0))
    }
}

#[protection_domain]
fn init() -> impl Handler {
    Server
}
