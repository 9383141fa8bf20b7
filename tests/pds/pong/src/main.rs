//! pingpong test, the higher-priority side: answers ping's notification by writing a
//! value computed from the shared memory region back into it, and answers ping's PPC
//! with message registers computed from the request's.
//!
//! System: `tests/systems/pingpong.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::{debug_println, get_mr, protection_domain, set_mr, Channel, ChannelSet, Handler, MessageInfo};
use vcpos_test_support::pingpong::{self, REQUEST_LABEL, REQUEST_MRS};
use vcpos_test_support::{ensure, shared_words, TestFailed, Words};

const TEST: &str = "pingpong";
/// Channel to ping.
const PING: Channel = Channel::new(0);
/// Label of the reply to a malformed request (ping then reports the mismatch).
const BAD_REQUEST: u64 = 0xbad;

/// The shared region (mapped at a different address than in ping): word 0 = request,
/// word 1 = reply.
fn region() -> Words {
    shared_words!(shared, size = shared_size, n = 2)
}

struct Pong;

impl Handler for Pong {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(PING),
            "pong notified on unexpected channels {}",
            channels.display()
        );
        let request = region().get(0).load(SeqCst);
        region().get(1).store(pingpong::reply_value(request), SeqCst);
        PING.notify();
        Ok(())
    }

    fn protected(&mut self, channel: Channel, msg_info: MessageInfo) -> Result<MessageInfo, TestFailed> {
        if channel != PING || msg_info.label() != REQUEST_LABEL || msg_info.count() != REQUEST_MRS {
            debug_println!("pong: malformed request on channel {}: {msg_info:?}", channel.index());
            return Ok(MessageInfo::new(BAD_REQUEST, 0));
        }
        let args: [u64; REQUEST_MRS] = core::array::from_fn(get_mr);
        let reply = pingpong::reply_mrs(&args);
        for (i, &v) in reply.iter().enumerate() {
            set_mr(i, v);
        }
        Ok(MessageInfo::new(REQUEST_LABEL + 1, reply.len()))
    }
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("pong: ready");
    Pong
}
