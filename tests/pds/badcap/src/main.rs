//! badcap test: asks the kernel for things this PD holds no capability for (a channel
//! it was not given, slots of the wrong kind, an out-of-range slot, unknown syscall
//! numbers, an over-long message, a child it does not have) and checks the exact
//! error each time; then shows the bystander PD still works by notifying it and PPCing
//! it.
//!
//! The `try_*` methods skip the runtime's mask checks, so the answers come from the
//! kernel itself. System: `tests/systems/badcap.system`.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use sel4_microkit::sys::{self, Sysno};
use sel4_microkit::{debug_println, protection_domain, Channel, ChannelSet, Child, Handler, KernelError, MessageInfo};
use vcpos_test_support::{ensure, fail, TestFailed};

const TEST: &str = "badcap";
/// Channel to the bystander: this end may notify and PPC.
const BYSTANDER: Channel = Channel::new(0);
/// A channel id this PD was not given.
const NOT_GIVEN: Channel = Channel::new(5);
/// Label of the PPC to the bystander; it replies with `PING_LABEL + 1`.
const PING_LABEL: u64 = 42;

/// One expected kernel answer.
fn expect(what: &str, got: Result<(), KernelError>, want: KernelError) -> Result<(), TestFailed> {
    ensure!(TEST, got == Err(want), "{what}: got {got:?}, expected Err({want:?})");
    debug_println!("badcap: {what}: refused with {want:?} as expected");
    Ok(())
}

/// A raw syscall's error code.
fn raw(sysno: u64, cptr: u64, arg1: u64) -> Result<(), KernelError> {
    sys::raw_syscall(sysno, cptr, arg1, 0).result()
}

fn misbehave() -> Result<(), TestFailed> {
    use KernelError::{InvalidArgument, InvalidCapability, InvalidSyscall};
    let ch = NOT_GIVEN;
    expect("notify on a channel not given", ch.try_notify(), InvalidCapability)?;
    expect(
        "PPC on a channel not given",
        ch.try_pp_call(MessageInfo::new(1, 0)).map(drop),
        InvalidCapability,
    )?;
    expect("irq_ack on an IRQ id not given", ch.try_irq_ack(), InvalidCapability)?;
    expect(
        "irq_ack on a channel that is not an IRQ",
        BYSTANDER.try_irq_ack(),
        InvalidCapability,
    )?;
    expect(
        "signal on cptr 4096 (out of range)",
        raw(Sysno::Signal as u64, 4096, 0),
        InvalidCapability,
    )?;
    expect(
        "signal on cptr u64::MAX",
        raw(Sysno::Signal as u64, u64::MAX, 0),
        InvalidCapability,
    )?;
    expect(
        "signal on a PPC endpoint slot",
        raw(Sysno::Signal as u64, BYSTANDER.endpoint(), 0),
        InvalidCapability,
    )?;
    expect(
        "call on a notification slot",
        raw(Sysno::Call as u64, BYSTANDER.notification(), raw_msginfo(PING_LABEL, 0)),
        InvalidCapability,
    )?;
    expect("syscall number 99", raw(99, 1, 0), InvalidSyscall)?;
    expect("syscall number u64::MAX", raw(u64::MAX, 1, 0), InvalidSyscall)?;
    // 65 message registers: one more than a message may carry.
    let too_long = raw_msginfo(PING_LABEL, 65);
    expect(
        "PPC with 65 message registers",
        raw(Sysno::Call as u64, BYSTANDER.endpoint(), too_long),
        InvalidArgument,
    )?;
    expect(
        "restart of a child not given",
        Child::new(0).restart(0x20_0000),
        InvalidCapability,
    )?;
    expect("stop of a child not given", Child::new(0).stop(), InvalidCapability)?;
    Ok(())
}

/// A message-info word built by hand, because `MessageInfo::new` refuses counts above
/// 64 (layout from `vcpos_abi::msg::MsgInfo`: bits 0..7 count, 12.. label).
fn raw_msginfo(label: u64, count: u64) -> u64 {
    (label << 12) | count
}

/// Shows that the bystander still works: a notification (answered by one back) and a
/// PPC.
fn behave() -> Result<(), TestFailed> {
    if let Err(e) = BYSTANDER.try_notify() {
        return Err(fail(TEST, format_args!("notify on the given channel failed: {e}")));
    }
    let reply = match BYSTANDER.try_pp_call(MessageInfo::new(PING_LABEL, 0)) {
        Ok(reply) => reply,
        Err(e) => return Err(fail(TEST, format_args!("PPC on the given channel failed: {e}"))),
    };
    ensure!(
        TEST,
        reply.label() == PING_LABEL + 1,
        "bystander replied with label {}",
        reply.label()
    );
    Ok(())
}

struct BadCap {
    ok: bool,
}

impl Handler for BadCap {
    type Error = TestFailed;

    fn notified(&mut self, channels: ChannelSet) -> Result<(), TestFailed> {
        ensure!(
            TEST,
            channels.contains(BYSTANDER),
            "notified on unexpected channels {}",
            channels.display()
        );
        if self.ok {
            debug_println!("TEST PASS: {TEST}");
        }
        Ok(())
    }
}

#[protection_domain]
fn init() -> impl Handler {
    // Failures are printed as TEST FAIL lines; `ok` keeps the PASS line from appearing.
    let ok = misbehave().and_then(|()| behave()).is_ok();
    BadCap { ok }
}
