//! The VMM's disk backend against the block protocol's server half on fake shared
//! memory: a small fake VCP moves data between a fake disk and fake guest RAM by the
//! segments it is given (so zero copy on the VMM's side shows as the VCP reading and
//! writing guest RAM at the guest's offsets), completing out of order.

use std::cell::Cell;
use std::rc::Rc;

use vcpos_blk_protocol::{
    Client, ClientError, ControlLayout, Op, ResponseDesc, Server, ServerConfig, Status, RING_CAPACITY,
};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::Producer;
use vcpos_virtio::block::{BlockBackend, BlockOp, BlockStatus, Completion, DataSegment, RequestId, SubmitError};
use vcpos_vmm_blk::ProtocolDisk;

/// Guest RAM of the tests.
const RAM: usize = 1 << 20;
/// The VMM's window of the disk, in blocks.
const BLOCKS: u64 = 2048;

/// A fake block VCP: serves one client from a disk in a Vec, data moved to and from
/// the fake guest RAM by each request's segments.
struct FakeVcp {
    server: Server<FakeMemory>,
    disk: Vec<u8>,
    ram: Rc<std::cell::RefCell<Vec<u8>>>,
    /// Every op seen, in order.
    ops: Vec<Op>,
    held: Vec<vcpos_blk_protocol::Request>,
}

impl FakeVcp {
    /// Takes every request, then completes them newest first.
    fn serve(&mut self) {
        self.take();
        self.complete_all();
    }

    fn take(&mut self) {
        while let Some(r) = self.server.next_request().unwrap() {
            self.ops.push(r.op);
            self.held.push(r);
        }
    }

    fn complete_all(&mut self) {
        while let Some(r) = self.held.pop() {
            let mut pos = (r.block * 512) as usize;
            let mut ram = self.ram.borrow_mut();
            for s in r.segments() {
                let (o, l) = (s.offset as usize, s.len as usize);
                match r.op {
                    Op::Read => ram[o..o + l].copy_from_slice(&self.disk[pos..pos + l]),
                    Op::Write | Op::WriteFua => self.disk[pos..pos + l].copy_from_slice(&ram[o..o + l]),
                    Op::Flush => {}
                }
                pos += l;
            }
            self.server.complete(r.id, Status::Ok, r.bytes as u32).unwrap();
        }
    }
}

struct Setup {
    control: FakeMemory,
    vcp: FakeVcp,
    disk: ProtocolDisk<FakeMemory, Box<dyn FnMut()>>,
    ram: Rc<std::cell::RefCell<Vec<u8>>>,
    notified: Rc<Cell<u32>>,
}

fn setup(read_only: bool, depth: u32) -> Setup {
    let control = FakeMemory::new(ControlLayout::new(RING_CAPACITY).unwrap().size());
    let cfg = ServerConfig {
        capacity_blocks: BLOCKS,
        read_only,
        queue_depth: depth,
        ring_capacity: RING_CAPACITY,
    };
    let mut server = Server::new(control.clone(), RAM as u64, cfg).unwrap();
    let client = Client::new(control.clone(), RING_CAPACITY, RAM as u64).unwrap();
    let notified = Rc::new(Cell::new(0));
    let n = notified.clone();
    let notify: Box<dyn FnMut()> = Box::new(move || n.set(n.get() + 1));
    let client_again = Client::new(control.clone(), RING_CAPACITY, RAM as u64).unwrap();
    assert!(matches!(
        ProtocolDisk::connect(client_again, Box::new(|| {}) as Box<dyn FnMut()>),
        Err(ClientError::NotReady)
    ));
    server.publish(1).unwrap();
    // The VCP waits for requests.
    assert!(server.request_signal().unwrap());
    let disk = ProtocolDisk::connect(client, notify).unwrap();
    let ram = Rc::new(std::cell::RefCell::new(vec![0u8; RAM]));
    let mut d = vec![0u8; BLOCKS as usize * 512];
    for (i, b) in d.iter_mut().enumerate() {
        *b = (i / 512) as u8 ^ (i as u8).rotate_left(3);
    }
    Setup {
        control,
        vcp: FakeVcp {
            server,
            disk: d,
            ram: ram.clone(),
            ops: Vec::new(),
            held: Vec::new(),
        },
        disk,
        ram,
        notified,
    }
}

fn seg(offset: u64, len: u32) -> DataSegment {
    DataSegment { offset, len }
}

fn drain(disk: &mut impl BlockBackend) -> Vec<Completion> {
    std::iter::from_fn(|| disk.poll()).collect()
}

#[test]
fn info_comes_from_the_info_page() {
    let s = setup(true, 48);
    let i = s.disk.info();
    assert_eq!(i.capacity_sectors, BLOCKS);
    assert_eq!(i.block_size, 512);
    assert_eq!(i.queue_depth, 48);
    assert_eq!(i.seg_max, 15);
    assert!(i.read_only && i.flush && i.fua);
    assert_eq!(&i.id[..13], b"vcpos-vcp-blk");
}

#[test]
fn reads_and_writes_move_data_between_disk_and_guest_ram_at_the_guest_offsets() {
    let mut s = setup(false, 64);
    // A write of two segments at scattered guest-RAM offsets, to blocks 10..14.
    {
        let mut ram = s.ram.borrow_mut();
        ram[0x3000..0x3400].fill(0xaa);
        ram[0x8000..0x8400].fill(0xbb);
    }
    s.disk
        .submit(
            RequestId(1),
            BlockOp::Write { fua: false },
            10,
            &[seg(0x3000, 1024), seg(0x8000, 1024)],
        )
        .unwrap();
    s.disk.kick();
    s.vcp.serve();
    assert_eq!(
        drain(&mut s.disk),
        [Completion {
            id: RequestId(1),
            status: BlockStatus::Ok
        }]
    );
    assert!(s.vcp.disk[10 * 512..12 * 512].iter().all(|&b| b == 0xaa));
    assert!(s.vcp.disk[12 * 512..14 * 512].iter().all(|&b| b == 0xbb));
    // Read blocks 9..15 back into one segment elsewhere.
    s.disk
        .submit(RequestId(2), BlockOp::Read, 9, &[seg(0x2_0000, 6 * 512)])
        .unwrap();
    s.disk.kick();
    s.vcp.serve();
    assert_eq!(
        drain(&mut s.disk),
        [Completion {
            id: RequestId(2),
            status: BlockStatus::Ok
        }]
    );
    let ram = s.ram.borrow();
    assert_eq!(&ram[0x2_0000..0x2_0000 + 512], &s.vcp.disk[9 * 512..10 * 512]);
    assert!(ram[0x2_0000 + 512..0x2_0000 + 1536].iter().all(|&b| b == 0xaa));
    assert!(ram[0x2_0000 + 1536..0x2_0000 + 2560].iter().all(|&b| b == 0xbb));
    assert_eq!(&ram[0x2_0000 + 2560..0x2_0000 + 3072], &s.vcp.disk[14 * 512..15 * 512]);
}

#[test]
fn sixty_four_requests_in_flight_complete_in_any_order() {
    let mut s = setup(false, 64);
    for i in 0..64u32 {
        s.disk
            .submit(
                RequestId(i),
                BlockOp::Read,
                u64::from(i) * 8,
                &[seg(u64::from(i) * 4096, 4096)],
            )
            .unwrap();
    }
    // The 65th waits (the virtio device holds it until a completion).
    assert_eq!(
        s.disk.submit(RequestId(64), BlockOp::Read, 0, &[seg(0, 512)]),
        Err(SubmitError::Busy)
    );
    s.disk.kick();
    s.vcp.take();
    assert_eq!(s.vcp.held.len(), 64, "all 64 at the VCP at once");
    assert_eq!(s.disk.in_flight(), 64);
    s.vcp.complete_all(); // newest first
    let done = drain(&mut s.disk);
    assert_eq!(done.len(), 64);
    assert_eq!(done[0].id, RequestId(63));
    assert!(done.iter().all(|c| c.status == BlockStatus::Ok));
    let ram = s.ram.borrow();
    for i in 0..64usize {
        assert_eq!(&ram[i * 4096..(i + 1) * 4096], &s.vcp.disk[i * 4096..(i + 1) * 4096]);
    }
}

#[test]
fn flush_and_fua_pass_through() {
    let mut s = setup(false, 8);
    s.disk
        .submit(RequestId(1), BlockOp::Write { fua: true }, 0, &[seg(0, 512)])
        .unwrap();
    s.disk.submit(RequestId(2), BlockOp::Flush, 0, &[]).unwrap();
    s.disk
        .submit(RequestId(3), BlockOp::Write { fua: false }, 1, &[seg(0, 512)])
        .unwrap();
    s.disk.kick();
    s.vcp.serve();
    assert_eq!(s.vcp.ops, [Op::WriteFua, Op::Flush, Op::Write]);
    assert_eq!(drain(&mut s.disk).len(), 3);
}

#[test]
fn a_read_only_window_refuses_writes() {
    let mut s = setup(true, 8);
    s.disk
        .submit(RequestId(5), BlockOp::Write { fua: false }, 0, &[seg(0, 512)])
        .unwrap();
    s.disk.submit(RequestId(6), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    s.vcp.serve();
    let mut done = drain(&mut s.disk);
    done.sort_by_key(|c| c.id);
    assert_eq!(
        done,
        [
            Completion {
                id: RequestId(5),
                status: BlockStatus::IoError
            },
            Completion {
                id: RequestId(6),
                status: BlockStatus::Ok
            },
        ]
    );
    assert!(s.vcp.disk[..512].iter().any(|&b| b != 0), "the disk kept its data");
}

#[test]
fn blocks_outside_the_window_are_an_io_error() {
    let mut s = setup(false, 8);
    s.disk
        .submit(RequestId(1), BlockOp::Read, BLOCKS - 1, &[seg(0, 1024)])
        .unwrap();
    s.disk.kick();
    s.vcp.serve();
    assert_eq!(
        drain(&mut s.disk),
        [Completion {
            id: RequestId(1),
            status: BlockStatus::IoError
        }]
    );
}

#[test]
fn segments_that_are_not_whole_blocks_are_refused_here() {
    let mut s = setup(false, 8);
    assert_eq!(
        s.disk.submit(RequestId(1), BlockOp::Read, 0, &[seg(0, 1000)]),
        Err(SubmitError::Refused(BlockStatus::IoError))
    );
    let many = vec![seg(0, 512); 16];
    assert_eq!(
        s.disk.submit(RequestId(2), BlockOp::Read, 0, &many),
        Err(SubmitError::Refused(BlockStatus::IoError))
    );
    assert_eq!(s.disk.in_flight(), 0);
}

#[test]
fn notifications_once_per_batch_and_only_when_asked() {
    let mut s = setup(false, 16);
    for i in 0..4 {
        s.disk.submit(RequestId(i), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    }
    assert_eq!(s.notified.get(), 0, "nothing before the kick");
    s.disk.kick();
    assert_eq!(s.notified.get(), 1);
    // The VCP has not asked again: no second notification.
    s.disk.submit(RequestId(4), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    assert_eq!(s.notified.get(), 1);
    // The VCP takes them and waits again; the next batch notifies.
    s.vcp.take();
    assert!(s.vcp.server.request_signal().unwrap());
    s.disk.submit(RequestId(5), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    assert_eq!(s.notified.get(), 2);
    assert_eq!(s.disk.notifications(), 2);
}

#[test]
fn poll_with_requests_out_asks_the_vcp_for_a_notification() {
    let mut s = setup(false, 8);
    s.disk.submit(RequestId(1), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    assert_eq!(s.disk.poll(), None);
    s.vcp.serve();
    assert!(
        s.vcp.server.signal_needed().unwrap(),
        "the VMM is woken by the response"
    );
    assert_eq!(drain(&mut s.disk).len(), 1);
    // Nothing out: no notification asked for.
    s.vcp.server.signal_needed().unwrap();
    assert_eq!(s.disk.poll(), None);
    s.disk.submit(RequestId(2), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    s.vcp.take();
    s.vcp.complete_all();
    assert!(
        !s.vcp.server.signal_needed().unwrap(),
        "not asked: the VMM polls on its own"
    );
}

/// A response for an id the VMM never sent: the VCP is broken; everything in flight
/// fails with an I/O error, the error is reported once, new requests are refused.
#[test]
fn a_broken_vcp_fails_requests_in_flight_and_is_reported() {
    let mut s = setup(false, 8);
    s.disk.submit(RequestId(1), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.submit(RequestId(2), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    let layout = ControlLayout::new(RING_CAPACITY).unwrap();
    let mut raw: Producer<FakeMemory, ResponseDesc> = Producer::new(s.control.clone(), layout.responses).unwrap();
    raw.push(&ResponseDesc {
        id: 99,
        status: 0,
        bytes: 0,
        reserved: 0,
    })
    .unwrap();
    let mut done = drain(&mut s.disk);
    done.sort_by_key(|c| c.id);
    assert_eq!(
        done,
        [
            Completion {
                id: RequestId(1),
                status: BlockStatus::IoError
            },
            Completion {
                id: RequestId(2),
                status: BlockStatus::IoError
            },
        ]
    );
    assert_eq!(s.disk.take_error(), Some(ClientError::UnknownResponse(99)));
    assert_eq!(s.disk.take_error(), None, "reported once");
    assert_eq!(
        s.disk.submit(RequestId(3), BlockOp::Read, 0, &[seg(0, 512)]),
        Err(SubmitError::Refused(BlockStatus::IoError))
    );
}

#[test]
fn a_short_transfer_reported_ok_is_an_io_error() {
    let mut s = setup(false, 8);
    s.disk.submit(RequestId(1), BlockOp::Read, 0, &[seg(0, 1024)]).unwrap();
    s.disk.kick();
    let r = s.vcp.server.next_request().unwrap().unwrap();
    s.vcp.server.complete(r.id, Status::Ok, 512).unwrap();
    assert_eq!(
        drain(&mut s.disk),
        [Completion {
            id: RequestId(1),
            status: BlockStatus::IoError
        }]
    );
    assert_eq!(
        s.disk.failed(),
        None,
        "a short transfer fails the request, not the disk"
    );
}

#[test]
fn a_restarted_vcp_fails_what_was_in_flight() {
    let mut s = setup(false, 8);
    s.disk.submit(RequestId(1), BlockOp::Read, 0, &[seg(0, 512)]).unwrap();
    s.disk.kick();
    s.vcp.server.publish(2).unwrap();
    assert_eq!(
        s.disk.submit(RequestId(2), BlockOp::Read, 0, &[seg(0, 512)]),
        Err(SubmitError::Refused(BlockStatus::IoError))
    );
    assert_eq!(
        drain(&mut s.disk),
        [Completion {
            id: RequestId(1),
            status: BlockStatus::IoError
        }]
    );
    assert_eq!(
        s.disk.take_error(),
        Some(ClientError::GenerationChanged { was: 1, now: 2 })
    );
}
