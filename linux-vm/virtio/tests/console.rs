//! The console device driven through the virtio-mmio transport by a test driver that
//! behaves like Linux's: probe, initialisation, transmit, receive, interrupts, config
//! space and reset.

mod common;

use common::{Buf, TestDriver};
use vcpos_virtio::console::{
    Console, INPUT_CAPACITY, OUTPUT_CAPACITY, RECEIVEQ, TRANSMITQ, TX_CHAIN_LIMIT, VIRTIO_CONSOLE_F_EMERG_WRITE,
    VIRTIO_CONSOLE_F_MULTIPORT, VIRTIO_CONSOLE_F_SIZE,
};
use vcpos_virtio::mmio::{features, reg, DeviceStatus, Interrupts, MAGIC_VALUE, VENDOR_ID};
use vcpos_virtio::{GuestError, GuestMemory};

const RX: usize = RECEIVEQ as usize;
const TX: usize = TRANSMITQ as usize;

fn ready_console(console: Console) -> TestDriver<Console> {
    let mut d = TestDriver::new(console);
    d.init(0, 2, 16);
    d
}

#[test]
fn probe_registers() {
    let mut d = TestDriver::new(Console::new());
    assert_eq!(d.rd(reg::MAGIC_VALUE), MAGIC_VALUE);
    assert_eq!(d.rd(reg::MAGIC_VALUE), 0x7472_6976);
    assert_eq!(d.rd(reg::VERSION), 2);
    assert_eq!(d.rd(reg::DEVICE_ID), 3);
    assert_eq!(d.rd(reg::VENDOR_ID), VENDOR_ID);
    assert_eq!(d.status(), 0);
    for q in 0..2 {
        d.wr(reg::QUEUE_SEL, q);
        assert_eq!(d.rd(reg::QUEUE_NUM_MAX), 256);
        assert_eq!(d.rd(reg::QUEUE_READY), 0);
    }
    d.wr(reg::QUEUE_SEL, 2);
    assert_eq!(d.rd(reg::QUEUE_NUM_MAX), 0, "queue 2 does not exist");
    // No shared memory regions: length all ones.
    d.wr(reg::SHM_SEL, 0);
    assert_eq!(d.rd(reg::SHM_LEN_LOW), u32::MAX);
    assert_eq!(d.rd(reg::SHM_LEN_HIGH), u32::MAX);
    // Write-only registers read as zero.
    assert_eq!(d.rd(reg::QUEUE_NOTIFY), 0);
    assert_eq!(d.rd(reg::INTERRUPT_ACK), 0);
}

#[test]
fn feature_windows() {
    let mut d = TestDriver::new(Console::new());
    let f = d.device_features();
    assert_eq!(
        f,
        features::VERSION_1 | features::RING_EVENT_IDX | VIRTIO_CONSOLE_F_EMERG_WRITE
    );
    d.wr(reg::DEVICE_FEATURES_SEL, 2);
    assert_eq!(d.rd(reg::DEVICE_FEATURES), 0);
    let mut d = TestDriver::new(Console::with_size(80, 25));
    assert_eq!(
        d.device_features(),
        features::VERSION_1 | features::RING_EVENT_IDX | VIRTIO_CONSOLE_F_EMERG_WRITE | VIRTIO_CONSOLE_F_SIZE
    );
}

#[test]
fn feature_negotiation_refuses_what_was_not_offered() {
    let mut d = TestDriver::new(Console::new());
    // VERSION_1 is mandatory for a non-legacy device.
    assert!(!d.negotiate(0));
    assert!(!d.negotiate(VIRTIO_CONSOLE_F_EMERG_WRITE));
    // MULTIPORT and SIZE were not offered.
    assert!(!d.negotiate(features::VERSION_1 | VIRTIO_CONSOLE_F_MULTIPORT));
    assert!(!d.negotiate(features::VERSION_1 | VIRTIO_CONSOLE_F_SIZE));
    // A bit in window 2 (features 64..95) was not offered either.
    d.wr(reg::STATUS, 0);
    d.wr(reg::DRIVER_FEATURES_SEL, 2);
    d.wr(reg::DRIVER_FEATURES, 1);
    d.wr(reg::DRIVER_FEATURES_SEL, 1);
    d.wr(reg::DRIVER_FEATURES, 1);
    d.add_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK);
    assert_eq!(d.status(), 0x03);
    // A subset of the offer is fine, and the device reports it.
    assert!(d.negotiate(features::VERSION_1));
    assert_eq!(d.t.negotiated_features(), features::VERSION_1);
    assert!(d.negotiate(features::VERSION_1 | VIRTIO_CONSOLE_F_EMERG_WRITE));
    // Features cannot change after FEATURES_OK.
    d.wr(reg::DRIVER_FEATURES_SEL, 0);
    d.wr(reg::DRIVER_FEATURES, 0);
    assert_eq!(d.t.take_error(), Some(GuestError::FeaturesAfterFeaturesOk));
    assert_eq!(
        d.t.negotiated_features(),
        features::VERSION_1 | VIRTIO_CONSOLE_F_EMERG_WRITE
    );
}

#[test]
fn transmit_hello() {
    let mut d = ready_console(Console::new());
    let (head, _) = d.post(TX, &[Buf::Out(b"hello")]);
    assert!(d.notify(1), "a completed transmit raises the interrupt");
    assert_eq!(d.t.device_mut().take_output(), b"hello");
    assert_eq!(d.used(TX), vec![(u32::from(head), 0)]);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 1);
    d.wr(reg::INTERRUPT_ACK, 1);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
    assert!(d.t.interrupt_status().is_empty());
    assert!(d.t.device_mut().take_output().is_empty(), "output was drained");
}

#[test]
fn transmit_gathers_segments_and_chains() {
    let mut d = ready_console(Console::new());
    let (h1, _) = d.post(TX, &[Buf::Out(b"hel"), Buf::Out(b""), Buf::Out(b"lo ")]);
    let (h2, _) = d.post(TX, &[Buf::Out(b"world")]);
    // A writable buffer on the transmit queue is not written to.
    let (h3, addrs) = d.post(TX, &[Buf::Out(b"!"), Buf::In(4)]);
    d.mem.inner.write(addrs[1], b"keep").unwrap();
    assert!(d.notify(1));
    assert_eq!(d.t.device_mut().take_output(), b"hello world!");
    assert_eq!(d.used(TX), vec![(h1.into(), 0), (h2.into(), 0), (h3.into(), 0)]);
    assert_eq!(d.bytes(addrs[1], 4), b"keep");
}

#[test]
fn receive_fills_posted_buffers() {
    let mut d = ready_console(Console::new());
    // Input before any buffer is posted waits.
    assert_eq!(d.t.device_mut().push_input(b"hello world"), 11);
    assert!(!d.poll(), "nothing to deliver into");
    assert_eq!(d.t.device().pending_input(), 11);

    let (a, aa) = d.post(RX, &[Buf::In(4)]);
    let (b, ba) = d.post(RX, &[Buf::In(2), Buf::In(2)]);
    assert!(d.notify(0), "posting receive buffers delivers pending input");
    assert_eq!(d.used(RX), vec![(a.into(), 4), (b.into(), 4)]);
    assert_eq!(d.bytes(aa[0], 4), b"hell");
    assert_eq!(d.bytes(ba[0], 2), b"o ");
    assert_eq!(d.bytes(ba[1], 2), b"wo");
    assert_eq!(d.t.device().pending_input(), 3);

    let (c, ca) = d.post(RX, &[Buf::In(8)]);
    assert!(d.notify(0));
    assert_eq!(d.used(RX), vec![(c.into(), 3)]);
    assert_eq!(d.bytes(ca[0], 3), b"rld");
    assert_eq!(d.t.device().pending_input(), 0);
}

#[test]
fn receive_via_poll_and_interrupt_ack() {
    let mut d = ready_console(Console::new());
    let (a, aa) = d.post(RX, &[Buf::In(16)]);
    assert!(!d.notify(0), "no input: buffer stays posted, no interrupt");
    assert!(d.used(RX).is_empty());
    d.t.device_mut().push_input(b"ls\r");
    assert!(d.poll());
    assert_eq!(d.used(RX), vec![(a.into(), 3)]);
    assert_eq!(d.bytes(aa[0], 3), b"ls\r");
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), Interrupts::USED_BUFFER.bits());
    d.wr(reg::INTERRUPT_ACK, 0xffff_ffff);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
    assert!(!d.poll(), "nothing new");
}

#[test]
fn input_is_bounded_and_keeps_the_oldest() {
    let mut d = ready_console(Console::new());
    let input: Vec<u8> = (0..INPUT_CAPACITY + 100).map(|i| (i % 251) as u8).collect();
    assert_eq!(d.t.device_mut().push_input(&input), INPUT_CAPACITY);
    assert_eq!(d.t.device_mut().push_input(b"x"), 0);
    assert_eq!(d.t.device().dropped_input(), 101);
    let mut got = Vec::new();
    while d.t.device().pending_input() > 0 {
        let (_, addrs) = d.post(RX, &[Buf::In(1000)]);
        d.notify(0);
        let used = d.used(RX);
        assert_eq!(used.len(), 1);
        got.extend(d.bytes(addrs[0], used[0].1 as usize));
    }
    assert_eq!(got, &input[..INPUT_CAPACITY]);
}

#[test]
fn input_before_driver_ok_is_delivered_later() {
    let mut d = TestDriver::new(Console::new());
    d.t.device_mut().push_input(b"early");
    assert!(!d.poll(), "inactive device does nothing");
    d.init(0, 2, 16);
    let (a, aa) = d.post(RX, &[Buf::In(8)]);
    assert!(d.notify(0));
    assert_eq!(d.used(RX), vec![(a.into(), 5)]);
    assert_eq!(d.bytes(aa[0], 5), b"early");
}

#[test]
fn suppressed_interrupts_are_not_raised() {
    let mut d = ready_console(Console::new());
    let avail = d.queues[TX].avail;
    d.mem.inner.write_u16(avail, 1).unwrap(); // VIRTQ_AVAIL_F_NO_INTERRUPT
    d.post(TX, &[Buf::Out(b"quiet")]);
    assert!(!d.notify(1));
    assert_eq!(d.t.device_mut().take_output(), b"quiet");
    assert_eq!(d.used(TX).len(), 1, "the buffer is still returned");
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
}

#[test]
fn config_space_and_generation() {
    let mut d = TestDriver::new(Console::with_size(80, 25));
    d.init(VIRTIO_CONSOLE_F_SIZE, 2, 16);
    assert_eq!(d.t.read(0x100, 2), 80);
    assert_eq!(d.t.read(0x102, 2), 25);
    assert_eq!(d.t.read(0x100, 4), 25 << 16 | 80);
    assert_eq!(d.t.read(0x100, 1), 80);
    assert_eq!(d.t.read(0x104, 4), 0, "max_nr_ports without MULTIPORT");
    let gen = d.rd(reg::CONFIG_GENERATION);

    assert!(d.t.device_mut().set_size(132, 43));
    assert!(d.t.config_changed());
    assert_ne!(d.rd(reg::CONFIG_GENERATION), gen);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), Interrupts::CONFIG_CHANGE.bits());
    assert_eq!(d.t.read(0x100, 2), 132);
    assert_eq!(d.t.read(0x102, 2), 43);
    d.wr(reg::INTERRUPT_ACK, 2);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
    // Writes to cols/rows are ignored.
    assert!(!d.t.write(0x100, 2, 1, &mut d.mem));
    assert_eq!(d.t.read(0x100, 2), 132);

    // Without the size feature nothing changes.
    let mut plain = Console::new();
    assert!(!plain.set_size(1, 1));
}

#[test]
fn config_change_before_driver_ok_bumps_generation_only() {
    let mut d = TestDriver::new(Console::with_size(80, 25));
    let gen = d.rd(reg::CONFIG_GENERATION);
    d.t.device_mut().set_size(100, 30);
    assert!(!d.t.config_changed());
    assert_eq!(d.rd(reg::CONFIG_GENERATION), gen.wrapping_add(1));
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
}

#[test]
fn emergency_write() {
    let mut d = ready_console(Console::new());
    assert!(!d.t.write(0x108, 4, u32::from(b'X'), &mut d.mem));
    assert!(!d.t.write(0x108, 1, u32::from(b'Y'), &mut d.mem));
    assert_eq!(d.t.read(0x108, 4), 0);
    assert_eq!(d.t.device_mut().take_output(), b"XY");
}

#[test]
fn reset_clears_transport_state() {
    let mut d = ready_console(Console::new());
    d.post(TX, &[Buf::Out(b"one")]);
    assert!(d.notify(1));
    d.t.device_mut().push_input(b"kept");
    d.wr(reg::DRIVER_FEATURES_SEL, 1);
    d.wr(reg::QUEUE_SEL, 1);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 1);

    d.wr(reg::STATUS, 0);
    assert_eq!(d.status(), 0);
    assert_eq!(d.rd(reg::INTERRUPT_STATUS), 0);
    assert_eq!(d.t.negotiated_features(), 0);
    for q in 0..2 {
        d.wr(reg::QUEUE_SEL, q);
        assert_eq!(d.rd(reg::QUEUE_READY), 0);
    }
    // Notifications after reset are ignored and touch no memory.
    let writes = d.mem.writes;
    d.make_available(TX, 0);
    assert!(!d.notify(1));
    assert_eq!(d.mem.writes, writes);

    // A fresh initialisation starts the rings from index 0 again.
    d.init(0, 2, 8);
    d.post(TX, &[Buf::Out(b"two")]);
    assert!(d.notify(1));
    assert_eq!(d.t.device_mut().take_output(), b"onetwo");
    assert_eq!(d.used(TX), vec![(0, 0)]);
    assert_eq!(d.t.queues()[TX].next_used(), 1);
    // Input pushed before the reset survives it.
    d.post(RX, &[Buf::In(8)]);
    assert!(d.notify(0));
    assert_eq!(d.used(RX), vec![(0, 4)]);
}

#[test]
fn queue_ready_zero_disables_the_queue() {
    let mut d = ready_console(Console::new());
    d.wr(reg::QUEUE_SEL, 1);
    d.wr(reg::QUEUE_READY, 0);
    assert_eq!(d.rd(reg::QUEUE_READY), 0);
    d.post(TX, &[Buf::Out(b"x")]);
    assert!(!d.notify(1));
    assert_eq!(d.t.take_error(), Some(GuestError::NotifyInvalidQueue { queue: 1 }));
    assert!(d.t.device_mut().take_output().is_empty());
}

#[test]
fn transmit_back_pressure_and_chain_limit() {
    let mut d = ready_console(Console::new());
    let big = vec![b'a'; 60 * 1024];
    d.post(TX, &[Buf::Out(&big)]);
    d.post(TX, &[Buf::Out(&big)]);
    d.post(TX, &[Buf::Out(&big)]);
    assert!(d.notify(1));
    assert_eq!(d.used(TX).len(), 2, "third chain waits for room");
    assert_eq!(d.t.device().pending_output(), 120 * 1024);
    assert!(d.t.device().pending_output() <= OUTPUT_CAPACITY);
    assert_eq!(d.t.device_mut().take_output().len(), 120 * 1024);
    assert!(d.poll(), "draining and polling resumes transmission");
    assert_eq!(d.used(TX).len(), 1);
    assert_eq!(d.t.device_mut().take_output().len(), 60 * 1024);

    // One chain longer than the per-chain limit is cut, the excess counted.
    let part = vec![b'b'; 40 * 1024];
    d.post(TX, &[Buf::Out(&part), Buf::Out(&part)]);
    assert!(d.notify(1));
    assert_eq!(d.t.device_mut().take_output().len(), TX_CHAIN_LIMIT);
    assert_eq!(d.t.device().dropped_output(), (80 * 1024 - TX_CHAIN_LIMIT) as u64);
}
