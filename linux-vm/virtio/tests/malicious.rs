//! A misbehaving guest driver: broken descriptor chains, bad queue setup, forbidden
//! register accesses. The device must never panic; protocol errors put it into
//! DEVICE_NEEDS_RESET with a configuration change interrupt (virtio 1.2 §2.1.2),
//! forbidden accesses are ignored.

mod common;

use common::{Buf, TestDriver, NEEDS_RESET, RAM_BASE, RAM_SIZE};
use vcpos_virtio::console::{Console, TRANSMITQ};
use vcpos_virtio::mmio::{features, reg, DeviceStatus, Interrupts, MAGIC_VALUE};
use vcpos_virtio::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use vcpos_virtio::{GuestError, GuestMemory};

const TX: usize = TRANSMITQ as usize;

fn ready() -> TestDriver<Console> {
    let mut d = TestDriver::new(Console::new());
    d.init(0, 2, 16);
    d
}

/// Notifies the transmit queue with a bad chain already written and checks the
/// device moved to NEEDS_RESET with a config-change interrupt, reporting `expect`.
fn expect_needs_reset(d: &mut TestDriver<Console>, expect: impl Fn(&GuestError) -> bool) {
    assert!(d.notify(1), "the config change must be signalled");
    assert_eq!(d.rd(reg::INTERRUPT_STATUS) & 2, 2);
    let err = d.fatal_error();
    assert!(expect(&err), "unexpected error {err:?}");
    assert!(err.is_fatal());
    // While it needs a reset the device ignores the queues and writes no memory.
    let writes = d.mem.writes;
    d.post(TX, &[Buf::Out(b"ignored")]);
    assert!(!d.notify(1));
    assert!(!d.poll());
    assert_eq!(d.mem.writes, writes);
    assert!(d.t.device_mut().take_output().is_empty());
    // A reset and a fresh initialisation bring it back.
    d.init(0, 2, 16);
    d.post(TX, &[Buf::Out(b"ok")]);
    assert!(d.notify(1));
    assert_eq!(d.t.device_mut().take_output(), b"ok");
}

#[test]
fn descriptor_loop() {
    let mut d = ready();
    let buf = d.alloc(4);
    d.write_desc(TX, 0, buf, 4, VIRTQ_DESC_F_NEXT, 1);
    d.write_desc(TX, 1, buf, 4, VIRTQ_DESC_F_NEXT, 2);
    d.write_desc(TX, 2, buf, 4, VIRTQ_DESC_F_NEXT, 0);
    d.make_available(TX, 0);
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::ChainTooLong { queue: 1 }));
}

#[test]
fn next_index_out_of_range() {
    let mut d = ready();
    let buf = d.alloc(4);
    d.write_desc(TX, 0, buf, 4, VIRTQ_DESC_F_NEXT, 16);
    d.make_available(TX, 0);
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::DescriptorIndex { index: 16, .. }));
}

#[test]
fn head_index_out_of_range() {
    let mut d = ready();
    d.make_available(TX, 0xffff);
    expect_needs_reset(&mut d, |e| {
        matches!(e, GuestError::DescriptorIndex { index: 0xffff, .. })
    });
}

#[test]
fn buffer_outside_guest_memory() {
    for (addr, len) in [
        (RAM_BASE + RAM_SIZE as u64 - 2, 4u32),
        (RAM_BASE - 1, 1),
        (0, 16),
        (0xffff_ffff_0000_0000, 0x1000),
    ] {
        let mut d = ready();
        d.write_desc(TX, 0, addr, len, 0, 0);
        d.make_available(TX, 0);
        expect_needs_reset(&mut d, |e| matches!(e, GuestError::Memory(_)));
    }
}

#[test]
fn buffer_length_overflows_address_space() {
    let mut d = ready();
    d.write_desc(TX, 0, u64::MAX - 8, 0x100, 0, 0);
    d.make_available(TX, 0);
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::BufferOverflow { .. }));
}

#[test]
fn receive_buffer_outside_memory_is_not_written() {
    let mut d = ready();
    d.t.device_mut().push_input(b"secret");
    d.write_desc(0, 0, RAM_BASE + RAM_SIZE as u64 - 3, 6, VIRTQ_DESC_F_WRITE, 0);
    d.make_available(0, 0);
    let writes = d.mem.writes;
    assert!(d.notify(0));
    assert_eq!(d.mem.writes, writes, "nothing written");
    assert!(matches!(d.t.take_error(), Some(GuestError::Memory(_))));
    assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
}

#[test]
fn indirect_and_misordered_descriptors() {
    let mut d = ready();
    let buf = d.alloc(16);
    d.write_desc(TX, 0, buf, 16, 4 /* INDIRECT */, 0);
    d.make_available(TX, 0);
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::IndirectDescriptor { .. }));

    let mut d = ready();
    d.write_desc(TX, 0, buf, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    d.write_desc(TX, 1, buf, 4, 0, 0);
    d.make_available(TX, 0);
    expect_needs_reset(&mut d, |e| matches!(e, GuestError::ReadableAfterWritable { .. }));
}

#[test]
fn avail_index_far_ahead() {
    let mut d = ready();
    let avail = d.queues[TX].avail;
    d.mem.inner.write_u16(avail + 2, 17).unwrap();
    expect_needs_reset(&mut d, |e| {
        matches!(e, GuestError::AvailIndexJump { avail_idx: 17, .. })
    });
}

#[test]
fn queue_size_not_a_power_of_two_or_too_big() {
    for (num, max_ok) in [
        (3u32, false),
        (0, false),
        (257, false),
        (512, false),
        (0x1_0000, false),
        (256, true),
    ] {
        let mut d = TestDriver::new(Console::new());
        assert!(d.negotiate(features::VERSION_1));
        d.wr(reg::QUEUE_SEL, 0);
        d.wr(reg::QUEUE_NUM, num);
        d.wr(reg::QUEUE_DESC_LOW, RAM_BASE as u32);
        d.wr(reg::QUEUE_DRIVER_LOW, (RAM_BASE + 0x8000) as u32);
        d.wr(reg::QUEUE_DEVICE_LOW, (RAM_BASE + 0xc000) as u32);
        assert!(!d.wr(reg::QUEUE_READY, 1), "no interrupt before DRIVER_OK");
        assert_eq!(d.rd(reg::QUEUE_READY), u32::from(max_ok), "size {num}");
        if !max_ok {
            assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
            assert_eq!(d.t.take_error(), Some(GuestError::QueueSize { queue: 0, size: num }));
        }
    }
}

#[test]
fn rings_outside_memory_or_misaligned() {
    for (desc, avail, used) in [
        (RAM_BASE + 8, RAM_BASE + 0x8000, RAM_BASE + 0xc000),
        (RAM_BASE, RAM_BASE + 0x8001, RAM_BASE + 0xc000),
        (RAM_BASE, RAM_BASE + 0x8000, RAM_BASE + 0xc002),
        (0x1000, RAM_BASE + 0x8000, RAM_BASE + 0xc000),
        (RAM_BASE, RAM_BASE + 0x8000, RAM_BASE + RAM_SIZE as u64 - 0x10),
        (RAM_BASE, u64::MAX - 1, RAM_BASE + 0xc000),
    ] {
        let mut d = TestDriver::new(Console::new());
        assert!(d.negotiate(features::VERSION_1));
        d.wr(reg::QUEUE_SEL, 1);
        d.wr(reg::QUEUE_NUM, 16);
        for (lo, v) in [
            (reg::QUEUE_DESC_LOW, desc),
            (reg::QUEUE_DRIVER_LOW, avail),
            (reg::QUEUE_DEVICE_LOW, used),
        ] {
            d.wr(lo, v as u32);
            d.wr(lo + 4, (v >> 32) as u32);
        }
        d.wr(reg::QUEUE_READY, 1);
        assert_eq!(d.rd(reg::QUEUE_READY), 0);
        assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
        let err = d.t.take_error().unwrap();
        assert!(
            matches!(err, GuestError::QueueAlignment { .. } | GuestError::Memory(_)),
            "{err:?}"
        );
    }
}

#[test]
fn notify_nonexistent_queue_is_ignored() {
    let mut d = ready();
    for q in [2u32, 3, 0xffff, u32::MAX] {
        assert!(!d.notify(q));
        assert_eq!(d.t.take_error(), Some(GuestError::NotifyInvalidQueue { queue: q }));
    }
    assert_eq!(d.status(), 0x0f, "not fatal");
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
}

#[test]
fn wrong_register_access_sizes_are_ignored() {
    let mut d = ready();
    for size in [0u8, 1, 2, 3, 8, 16] {
        assert_eq!(d.t.read(reg::MAGIC_VALUE, size), 0, "size {size}");
        assert!(matches!(
            d.t.take_error(),
            Some(GuestError::RegisterAccess { write: false, .. })
        ));
    }
    assert_eq!(d.t.read(reg::MAGIC_VALUE + 2, 4), 0, "misaligned");
    assert_eq!(d.t.read(reg::MAGIC_VALUE, 4), MAGIC_VALUE);
    // A 2-byte status write of 0 would reset the device if it were honoured.
    assert!(!d.t.write(reg::STATUS, 2, 0, &mut d.mem));
    assert!(!d.t.write(reg::STATUS, 1, 0, &mut d.mem));
    assert!(!d.t.write(reg::STATUS + 1, 4, 0, &mut d.mem));
    assert!(!d.t.write(reg::STATUS, 8, 0, &mut d.mem));
    assert_eq!(d.status(), 0x0f);
    assert!(matches!(
        d.t.take_error(),
        Some(GuestError::RegisterAccess { write: true, .. })
    ));
    // Offsets inside the window that name no register read 0; writes do nothing.
    for off in (0..0x100).step_by(4) {
        let _ = d.t.read(off, 4);
    }
    assert_eq!(d.t.read(0x0f0, 4), 0);
    assert!(!d.wr(reg::MAGIC_VALUE, 0));
    assert!(!d.wr(0x0f0, 0xffff_ffff));
    assert_eq!(d.rd(reg::MAGIC_VALUE), MAGIC_VALUE);
    assert_eq!(d.status(), 0x0f);
}

#[test]
fn device_config_out_of_range() {
    let mut d = TestDriver::new(Console::with_size(80, 25));
    d.init(0, 2, 16);
    for (off, size) in [
        (0x10cu64, 1u8),
        (0x10a, 4),
        (0x1fc, 4),
        (0x101, 2),
        (0x102, 4),
        (0x100, 8),
        (0x100, 3),
        (u64::MAX, 4),
    ] {
        assert_eq!(d.t.read(off, size), 0, "{off:#x}/{size}");
        assert!(matches!(d.t.take_error(), Some(GuestError::ConfigAccess { .. })));
        assert!(!d.t.write(off, size, 0x41, &mut d.mem));
    }
    assert_eq!(d.t.read(0x100, 2), 80);
    assert!(d.t.device_mut().take_output().is_empty(), "no stray emergency writes");
    assert_eq!(d.status(), 0x0f, "not fatal");
}

#[test]
fn queue_setup_while_ready_or_for_missing_queue_is_ignored() {
    let mut d = ready();
    let before = d.t.queues()[1].addresses();
    d.wr(reg::QUEUE_SEL, 1);
    d.wr(reg::QUEUE_DESC_LOW, 0x1234_5670);
    d.wr(reg::QUEUE_NUM, 2);
    assert!(matches!(
        d.t.take_error(),
        Some(GuestError::QueueSetupRejected { queue: 1, .. })
    ));
    assert_eq!(d.t.queues()[1].addresses(), before);
    assert_eq!(d.t.queues()[1].size(), 16);
    d.wr(reg::QUEUE_SEL, 7);
    d.wr(reg::QUEUE_NUM, 4);
    d.wr(reg::QUEUE_READY, 1);
    assert_eq!(d.rd(reg::QUEUE_READY), 0);
    assert_eq!(d.rd(reg::QUEUE_NUM_MAX), 0);
    assert_eq!(d.status(), 0x0f);
    // The transmit queue still works.
    d.post(TX, &[Buf::Out(b"fine")]);
    assert!(d.notify(1));
    assert_eq!(d.t.device_mut().take_output(), b"fine");
}

#[test]
fn driver_ok_without_features_ok() {
    let mut d = TestDriver::new(Console::new());
    d.add_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    assert!(d.add_status(DeviceStatus::DRIVER_OK));
    assert_eq!(d.t.take_error(), Some(GuestError::DriverOkWithoutFeaturesOk));
    assert_eq!(d.status() & NEEDS_RESET, NEEDS_RESET);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), Interrupts::CONFIG_CHANGE.bits());
}

#[test]
fn status_bits_cannot_be_cleared_or_forged() {
    let mut d = ready();
    d.wr(reg::STATUS, u32::from(DeviceStatus::ACKNOWLEDGE.bits()));
    assert_eq!(d.status(), 0x0f, "bits only accumulate until reset");
    d.wr(reg::STATUS, 0x0f | u32::from(NEEDS_RESET) | 0xffff_ff00);
    assert_eq!(d.status(), 0x0f, "NEEDS_RESET is the device's bit");
    d.wr(reg::STATUS, 0x0f | 0x80);
    assert_eq!(d.status(), 0x8f, "the driver may set FAILED");
}

#[test]
fn receive_chain_without_writable_space() {
    let mut d = ready();
    d.t.device_mut().push_input(b"abc");
    let (h, _) = d.post(0, &[Buf::Out(b"read-only")]);
    assert!(d.notify(0));
    assert_eq!(d.used(0), vec![(h.into(), 0)]);
    assert_eq!(d.t.device().pending_input(), 3, "input kept for a proper buffer");
    assert_eq!(d.status(), 0x0f);
}

#[test]
fn ack_of_unknown_bits_is_harmless() {
    let mut d = ready();
    d.post(TX, &[Buf::Out(b"x")]);
    assert!(d.notify(1));
    d.wr(reg::INTERRUPT_ACK, 0xffff_fffc);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 1);
    d.wr(reg::INTERRUPT_ACK, 0xffff_ffff);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
}
