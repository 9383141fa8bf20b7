//! pingpong test, the lower-priority side: each round it writes a value into the shared
//! memory region and notifies pong, checks pong's answer in the region, then PPCs pong
//! with four message registers and a label and checks the reply exactly.
//!
//! System: `tests/systems/pingpong.system` (pong has the strictly higher priority that
//! a PPC target needs).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::sync::atomic::Ordering::SeqCst;

use sel4_microkit::{debug_println, get_mr, protection_domain, set_mr, Channel, ChannelSet, Handler, MessageInfo};
use vcpos_test_support::pingpong::{self, REPLY_MRS, REQUEST_LABEL, ROUNDS};
use vcpos_test_support::{ensure, shared_words, TestFailed, Words};

const TEST: &str = "pingpong";
/// Channel to pong: both ends notify, this end may PPC.
const PONG: Channel = Channel::new(0);

/// The shared region: word 0 = ping's request value, word 1 = pong's reply value.
fn region() -> Words {
    shared_words!(shared, size = shared_size, n = 2)
}

struct Ping {
    round: u64,
}

impl Ping {
    /// Starts `round`: request value into shared memory, then notify pong.
    fn start_round(&self) {
        region().get(0).store(pingpong::request_value(self.round), SeqCst);
        PONG.notify();
    }

    /// The PPC half of a round.
    fn call_pong(&self) -> Result<(), TestFailed> {
        let args = pingpong::request_mrs(self.round);
        for (i, &a) in args.iter().enumerate() {
            set_mr(i, a);
        }
        let reply = PONG.pp_call(MessageInfo::new(REQUEST_LABEL, args.len()));
        ensure!(
            TEST,
            reply.label() == REQUEST_LABEL + 1,
            "round {}: reply label {:#x}",
            self.round,
            reply.label()
        );
        ensure!(
            TEST,
            reply.count() == REPLY_MRS,
            "round {}: reply has {} MRs",
            self.round,
            reply.count()
        );
        let expected = pingpong::reply_mrs(&args);
        for (i, &want) in expected.iter().enumerate() {
            let got = get_mr(i);
            ensure!(
                TEST,
                got == want,
                "round {}: reply MR{i} = {got:#x}, expected {want:#x}",
                self.round
            );
        }
        Ok(())
    }
}

impl Handler for Ping {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(PONG),
            "notified on unexpected channels {}",
            channels.display()
        );
        let want = pingpong::reply_value(pingpong::request_value(self.round));
        let got = region().get(1).load(SeqCst);
        ensure!(
            TEST,
            got == want,
            "round {}: shared reply {got:#x}, expected {want:#x}",
            self.round
        );
        self.call_pong()?;
        self.round += 1;
        if self.round == ROUNDS {
            debug_println!("ping: {ROUNDS} rounds of notify + PPC checked");
            debug_println!("TEST PASS: {TEST}");
        } else {
            self.start_round();
        }
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    debug_println!("ping: starting {ROUNDS} rounds");
    let ping = Ping { round: 0 };
    ping.start_round();
    ping
}
