//! Block protocol tests on the host: an honest client and server, a hostile client
//! (raw descriptors, random bytes, floods, corrupt indices) against the server's checks,
//! and a hostile server (unknown, duplicate and malformed responses) against the
//! client's.

use std::sync::atomic::Ordering;

use vcpos_blk_protocol::layout::{info_offsets, InfoError};
use vcpos_blk_protocol::server::ServerError;
use vcpos_blk_protocol::{
    Client, ClientError, Completion, ControlLayout, Op, RequestDesc, ResponseDesc, Segment, Server, ServerConfig,
    Status, MAX_SEGMENTS,
};
use vcpos_queue::fake::FakeMemory;
use vcpos_queue::{Consumer, Producer, QueueError, SharedMemory, PRODUCER_INDEX_OFFSET};

const RING: u32 = 32;
const DATA: u64 = 64 * 1024;

fn config() -> ServerConfig {
    ServerConfig {
        capacity_blocks: 1000,
        read_only: false,
        queue_depth: 8,
        ring_capacity: RING,
    }
}

fn control() -> FakeMemory {
    FakeMemory::new(ControlLayout::new(RING).unwrap().size())
}

fn pair(cfg: ServerConfig) -> (FakeMemory, Server<FakeMemory>, Client<FakeMemory>) {
    let mem = control();
    let mut server = Server::new(mem.clone(), DATA, cfg).unwrap();
    let mut client = Client::new(mem.clone(), RING, DATA).unwrap();
    assert_eq!(client.connect(), Err(ClientError::NotReady));
    server.publish(7).unwrap();
    let info = client.connect().unwrap();
    assert_eq!(info.generation, 7);
    assert_eq!(info.capacity_blocks, cfg.capacity_blocks);
    assert_eq!(info.read_only, cfg.read_only);
    assert_eq!(info.queue_depth, cfg.queue_depth);
    (mem, server, client)
}

/// A hostile client: pushes raw descriptors, bypassing every client-side check.
fn raw_requests(mem: &FakeMemory) -> Producer<FakeMemory, RequestDesc> {
    Producer::new(mem.clone(), ControlLayout::new(RING).unwrap().requests).unwrap()
}

/// A hostile server: pushes raw responses.
fn raw_responses(mem: &FakeMemory) -> Producer<FakeMemory, ResponseDesc> {
    Producer::new(mem.clone(), ControlLayout::new(RING).unwrap().responses).unwrap()
}

fn responses(mem: &FakeMemory) -> Consumer<FakeMemory, ResponseDesc> {
    Consumer::new(mem.clone(), ControlLayout::new(RING).unwrap().responses).unwrap()
}

#[test]
fn read_write_flush_round_trip_out_of_order() {
    let (_mem, mut server, mut client) = pair(config());
    client
        .write(1, 10, &[Segment::new(0, 512), Segment::new(4096, 1024)], false)
        .unwrap();
    client.read(2, 10, &[Segment::new(8192, 1536)]).unwrap();
    client.flush(3).unwrap();
    client.write(4, 999, &[Segment::new(DATA - 512, 512)], true).unwrap();
    assert!(client.signal_needed().is_ok());

    let w = server.next_request().unwrap().unwrap();
    assert_eq!((w.id, w.op, w.block, w.bytes, w.blocks()), (1, Op::Write, 10, 1536, 3));
    assert_eq!(w.segments(), &[Segment::new(0, 512), Segment::new(4096, 1024)]);
    let r = server.next_request().unwrap().unwrap();
    assert_eq!((r.id, r.op, r.bytes), (2, Op::Read, 1536));
    let f = server.next_request().unwrap().unwrap();
    assert_eq!((f.id, f.op, f.segments().len()), (3, Op::Flush, 0));
    let fua = server.next_request().unwrap().unwrap();
    assert_eq!((fua.id, fua.op), (4, Op::WriteFua));
    assert_eq!(server.next_request().unwrap(), None);
    assert_eq!(server.in_flight(), 4);

    // Out of order.
    server.complete(3, Status::Ok, 0).unwrap();
    server.complete(1, Status::Ok, 1536).unwrap();
    server.complete(4, Status::Ok, 512).unwrap();
    server.complete(2, Status::IoError, 0).unwrap();
    assert_eq!(server.complete(2, Status::Ok, 0), Err(ServerError::NotInFlight(2)));
    let got: Vec<Completion> = std::iter::from_fn(|| client.poll().unwrap()).collect();
    assert_eq!(
        got,
        vec![
            Completion {
                id: 3,
                status: Status::Ok,
                bytes: 0
            },
            Completion {
                id: 1,
                status: Status::Ok,
                bytes: 1536
            },
            Completion {
                id: 4,
                status: Status::Ok,
                bytes: 512
            },
            Completion {
                id: 2,
                status: Status::IoError,
                bytes: 0
            },
        ]
    );
    assert_eq!(client.in_flight(), 0);
    // Ids can be reused once completed.
    client.read(1, 0, &[Segment::new(0, 512)]).unwrap();
    assert_eq!(server.next_request().unwrap().unwrap().id, 1);
}

/// Every way a request can be wrong, sent raw by a hostile client: each gets its error
/// response and is never handed to the VCP.
#[test]
fn server_refuses_bad_requests() {
    let (mem, mut server, _client) = pair(ServerConfig {
        read_only: true,
        ..config()
    });
    let mut raw = raw_requests(&mem);
    let seg = |o, l| Segment::new(o, l);
    let cases: Vec<(RequestDesc, Status)> = vec![
        (RequestDesc::new(1, Op::Read, 0), Status::BadRequest), // no segments
        (
            RequestDesc {
                op: 9,
                ..RequestDesc::with_segments(2, Op::Read, 0, &[seg(0, 512)]).unwrap()
            },
            Status::Unsupported,
        ),
        (
            RequestDesc::with_segments(3, Op::Read, 0, &[seg(DATA - 512, 1024)]).unwrap(),
            Status::BadSegment,
        ),
        (
            RequestDesc::with_segments(4, Op::Read, 0, &[seg(u64::MAX - 100, 512)]).unwrap(),
            Status::BadSegment,
        ),
        (
            RequestDesc::with_segments(5, Op::Read, 0, &[seg(0, 0)]).unwrap(),
            Status::BadSegment,
        ),
        (
            RequestDesc::with_segments(6, Op::Read, 0, &[seg(0, 100)]).unwrap(),
            Status::BadSegment,
        ),
        (
            RequestDesc::with_segments(7, Op::Read, 999, &[seg(0, 1024)]).unwrap(),
            Status::OutOfRange,
        ),
        (
            RequestDesc::with_segments(8, Op::Read, u64::MAX, &[seg(0, 512)]).unwrap(),
            Status::OutOfRange,
        ),
        (
            RequestDesc::with_segments(9, Op::Write, 0, &[seg(0, 512)]).unwrap(),
            Status::ReadOnly,
        ),
        (
            RequestDesc::with_segments(10, Op::WriteFua, 0, &[seg(0, 512)]).unwrap(),
            Status::ReadOnly,
        ),
        (
            RequestDesc {
                nsegs: 1,
                ..RequestDesc::new(11, Op::Flush, 0)
            },
            Status::BadRequest,
        ),
        (
            RequestDesc {
                nsegs: MAX_SEGMENTS as u16 + 1,
                ..RequestDesc::new(12, Op::Read, 0)
            },
            Status::BadRequest,
        ),
        (
            RequestDesc::with_segments(13, Op::Read, 0, &[seg(0, 4 << 20), seg(0, 512)]).unwrap(),
            Status::BadSegment, // 4 MiB is beyond the 64 KiB data region
        ),
    ];
    for (d, _) in &cases {
        raw.push(d).unwrap();
    }
    // A good request behind them all still gets through.
    raw.push(&RequestDesc::with_segments(99, Op::Read, 0, &[seg(0, 512)]).unwrap())
        .unwrap();
    let good = server.next_request().unwrap().expect("the good request");
    assert_eq!(good.id, 99);
    let mut resp = responses(&mem);
    for (d, want) in &cases {
        let r = resp.pop().unwrap().expect("an error response");
        assert_eq!((r.id, r.status, r.bytes), (d.id, *want as u32, 0), "request {}", d.id);
    }
    assert_eq!(server.stats().refused(), cases.len() as u64);
    assert_eq!(server.stats().accepted, 1);
}

#[test]
fn server_refuses_duplicate_in_flight_id() {
    let (mem, mut server, _client) = pair(config());
    let mut raw = raw_requests(&mem);
    let d = RequestDesc::with_segments(5, Op::Read, 0, &[Segment::new(0, 512)]).unwrap();
    raw.push(&d).unwrap();
    raw.push(&d).unwrap();
    assert_eq!(server.next_request().unwrap().unwrap().id, 5);
    assert_eq!(server.next_request().unwrap(), None);
    assert_eq!(server.stats().duplicate_id, 1);
    // Once completed, the id is free again.
    server.complete(5, Status::Ok, 512).unwrap();
    raw.push(&d).unwrap();
    assert_eq!(server.next_request().unwrap().unwrap().id, 5);
}

/// A flood beyond the queue depth waits in the ring: the server never has more than
/// `queue_depth` requests in flight from one client.
#[test]
fn flood_is_bounded_by_depth() {
    let (mem, mut server, _client) = pair(config());
    let mut raw = raw_requests(&mem);
    for id in 0..RING {
        raw.push(&RequestDesc::with_segments(id, Op::Read, 0, &[Segment::new(0, 512)]).unwrap())
            .unwrap();
    }
    let mut taken = Vec::new();
    while let Some(r) = server.next_request().unwrap() {
        taken.push(r.id);
    }
    assert_eq!(taken.len(), 8, "depth 8");
    server.complete(taken[0], Status::Ok, 512).unwrap();
    assert!(server.next_request().unwrap().is_some());
    assert_eq!(server.next_request().unwrap(), None);
}

/// A client that never takes its responses: the server stops taking its requests
/// instead of overflowing the response ring.
#[test]
fn unread_responses_stop_intake() {
    let (mem, mut server, _client) = pair(ServerConfig {
        queue_depth: 32,
        ..config()
    });
    let mut raw = raw_requests(&mem);
    let mut served = 0;
    for round in 0..4u32 {
        for i in 0..RING {
            let _ =
                raw.push(&RequestDesc::with_segments(round * 100 + i, Op::Read, 0, &[Segment::new(0, 512)]).unwrap());
        }
        while let Some(r) = server.next_request().unwrap() {
            server.complete(r.id, Status::Ok, 512).unwrap();
            served += 1;
        }
    }
    assert_eq!(served, RING, "exactly one ring of responses fits");
    assert_eq!(server.cut_off(), None);
}

#[test]
fn corrupt_request_index_cuts_client_off() {
    let (mem, mut server, _client) = pair(config());
    let base = ControlLayout::new(RING).unwrap().requests.base();
    mem.store_u32(base + PRODUCER_INDEX_OFFSET, RING + 5, Ordering::Release)
        .unwrap();
    assert!(matches!(
        server.next_request(),
        Err(ServerError::Queue(QueueError::IndexJump { .. }))
    ));
    assert!(server.cut_off().is_some());
    assert!(server.next_request().is_err());
}

/// The client refuses on its side what the server would refuse.
#[test]
fn client_side_checks() {
    let (_mem, _server, mut client) = pair(config());
    assert_eq!(
        client.read(1, 0, &[Segment::new(DATA, 512)]),
        Err(ClientError::BadSegment)
    );
    assert_eq!(client.read(1, 0, &[Segment::new(0, 3)]), Err(ClientError::BadSegment));
    assert_eq!(
        client.read(1, 0, &[Segment::new(0, 512); MAX_SEGMENTS + 1]),
        Err(ClientError::BadSegment)
    );
    client.read(1, 0, &[Segment::new(0, 512)]).unwrap();
    assert_eq!(
        client.read(1, 0, &[Segment::new(0, 512)]),
        Err(ClientError::DuplicateId(1))
    );
    for id in 2..=8 {
        client.read(id, 0, &[Segment::new(0, 512)]).unwrap();
    }
    assert_eq!(
        client.read(9, 0, &[Segment::new(0, 512)]),
        Err(ClientError::DepthExceeded)
    );
}

#[test]
fn hostile_server_responses() {
    let (mem, _server, mut client) = pair(config());
    let mut raw = raw_responses(&mem);
    client.read(1, 0, &[Segment::new(0, 1024)]).unwrap();
    client.read(2, 0, &[Segment::new(0, 512)]).unwrap();
    let resp = |id, status, bytes| ResponseDesc {
        id,
        status,
        bytes,
        reserved: 0,
    };
    raw.push(&resp(77, 0, 0)).unwrap();
    assert_eq!(client.poll(), Err(ClientError::UnknownResponse(77)));
    raw.push(&resp(1, 0, 1024)).unwrap();
    assert_eq!(client.poll().unwrap().unwrap().id, 1);
    raw.push(&resp(1, 0, 1024)).unwrap();
    assert_eq!(
        client.poll(),
        Err(ClientError::UnknownResponse(1)),
        "duplicate completion"
    );
    raw.push(&resp(2, 0, 4096)).unwrap();
    assert_eq!(client.poll(), Err(ClientError::BadLength { id: 2, bytes: 4096 }));
    client.read(3, 0, &[Segment::new(0, 512)]).unwrap();
    raw.push(&resp(3, 42, 0)).unwrap();
    assert_eq!(client.poll(), Err(ClientError::BadStatus { id: 3, status: 42 }));
    assert_eq!(client.in_flight(), 0);
    // A corrupt response index is a queue error, not a panic.
    let base = ControlLayout::new(RING).unwrap().responses.base();
    mem.store_u32(base + PRODUCER_INDEX_OFFSET, 1000, Ordering::Release)
        .unwrap();
    assert!(matches!(client.poll(), Err(ClientError::Queue(_))));
}

#[test]
fn info_page_checks() {
    let mem = control();
    let mut server = Server::new(mem.clone(), DATA, config()).unwrap();
    let mut client = Client::new(mem.clone(), RING, DATA).unwrap();
    server.publish(1).unwrap();
    client.connect().unwrap();
    client.read(1, 0, &[Segment::new(0, 512)]).unwrap();
    // The server restarts: new generation.
    server.publish(2).unwrap();
    assert_eq!(
        client.read(2, 0, &[Segment::new(0, 512)]),
        Err(ClientError::GenerationChanged { was: 1, now: 2 })
    );
    // A lying info page.
    mem.store_u32(info_offsets::QUEUE_DEPTH, 1000, Ordering::Relaxed)
        .unwrap();
    assert_eq!(
        client.connect(),
        Err(ClientError::Info(InfoError::Field {
            name: "queue_depth",
            value: 1000
        }))
    );
    server.publish(3).unwrap();
    mem.store_u32(info_offsets::BLOCK_SIZE, 4096, Ordering::Relaxed)
        .unwrap();
    assert!(matches!(
        client.connect(),
        Err(ClientError::Info(InfoError::Field { name: "block_size", .. }))
    ));
    // A region too small is a construction error.
    assert!(Server::new(FakeMemory::new(0x1000), DATA, config()).is_err());
    assert!(Client::new(FakeMemory::new(0x1000), RING, DATA).is_err());
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// A hostile client writing random descriptors and random words over its control
/// region: the server never panics, and every request it accepts is valid (segments
/// inside the data region, blocks inside the window, no write to a read-only window,
/// ids unique among those in flight, never more than the depth in flight).
#[test]
fn hostile_client_random_memory() {
    let layout = ControlLayout::new(RING).unwrap();
    let (mut accepted, mut refused, mut cut) = (0, 0, 0);
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let read_only = seed % 2 == 0;
        let cfg = ServerConfig { read_only, ..config() };
        let mem = control();
        let mut server = Server::new(mem.clone(), DATA, cfg).unwrap();
        server.publish(1).unwrap();
        let mut raw = raw_requests(&mem);
        let mut in_flight: Vec<u32> = Vec::new();
        for _ in 0..200 {
            match rng.next() % 8 {
                0 => {
                    // A random word anywhere in the control region, or a nudge of the
                    // request ring's producer index.
                    let (off, value) = if rng.next().is_multiple_of(16) {
                        let at = layout.requests.base() + PRODUCER_INDEX_OFFSET;
                        (
                            at,
                            mem.load_u32(at, Ordering::Relaxed)
                                .unwrap()
                                .wrapping_add((rng.next() % 80) as u32)
                                .wrapping_sub(40),
                        )
                    } else {
                        ((rng.next() as usize % (layout.size() / 4)) * 4, rng.next() as u32)
                    };
                    mem.store_u32(off, value, Ordering::Relaxed).unwrap();
                }
                1..=4 => {
                    // A plausible-looking request, with random fields now and then.
                    let mut d = RequestDesc::new((rng.next() % 16) as u32, Op::Read, rng.next() % 1100);
                    d.op = (rng.next() % 5) as u16;
                    d.nsegs = if rng.next().is_multiple_of(8) {
                        (rng.next() % 18) as u16
                    } else {
                        (rng.next() % 4) as u16
                    };
                    for s in d.segs.iter_mut() {
                        s.offset = match rng.next() % 16 {
                            0 => rng.next(),
                            1 => DATA - 512 * (rng.next() % 4),
                            _ => (rng.next() % (DATA / 512 - 8)) * 512,
                        };
                        s.len = if rng.next().is_multiple_of(16) {
                            rng.next() as u32
                        } else {
                            ((1 + rng.next() % 8) * 512) as u32
                        };
                    }
                    let _ = raw.push(&d);
                }
                5 => {
                    let mut bytes = [0u8; 256];
                    bytes.iter_mut().for_each(|b| *b = rng.next() as u8);
                    let _ = raw.push(&zerocopy::FromBytes::read_from_bytes(&bytes[..]).unwrap());
                }
                _ => {
                    if let Some(i) = (!in_flight.is_empty()).then(|| rng.next() as usize % in_flight.len()) {
                        let id = in_flight.swap_remove(i);
                        let _ = server.complete(id, Status::Ok, 0);
                    }
                }
            }
            match server.next_request() {
                Ok(Some(r)) => {
                    assert!(
                        !in_flight.contains(&r.id),
                        "seed {seed}: duplicate id {} accepted",
                        r.id
                    );
                    in_flight.push(r.id);
                    assert!(in_flight.len() <= 8, "seed {seed}: over depth");
                    assert!(
                        !(read_only && r.op.writes()),
                        "seed {seed}: write accepted on read-only"
                    );
                    let mut total = 0u64;
                    for s in r.segments() {
                        assert!(s.len > 0 && s.len % 512 == 0, "seed {seed}: bad length {}", s.len);
                        assert!(
                            s.offset.checked_add(u64::from(s.len)).is_some_and(|e| e <= DATA),
                            "seed {seed}: {s:?}"
                        );
                        total += u64::from(s.len);
                    }
                    assert_eq!(total, r.bytes);
                    assert!(r.block + r.blocks() <= 1000, "seed {seed}: out of window");
                }
                Ok(None) => {}
                Err(_) => {
                    assert!(server.cut_off().is_some());
                    cut += 1;
                    break;
                }
            }
        }
        accepted += server.stats().accepted;
        refused += server.stats().refused();
    }
    eprintln!("hostile client: {accepted} requests accepted, {refused} refused, {cut} of 300 cut off");
    // The run exercised both paths (otherwise it proves nothing).
    assert!(
        accepted > 500 && refused > 1000 && cut > 10,
        "{accepted} {refused} {cut}"
    );
}

/// A hostile server scribbling over the response ring: the client never panics and
/// never reports a completion for an id it does not have in flight.
#[test]
fn hostile_server_random_memory() {
    let layout = ControlLayout::new(RING).unwrap();
    for seed in 1..=300u64 {
        let mut rng = Rng(seed.wrapping_mul(0xd1b5_4a32_d192_ed03) | 1);
        let (mem, _server, mut client) = pair(config());
        let mut raw = raw_responses(&mem);
        let mut next_id = 0u32;
        let mut mine: Vec<u32> = Vec::new();
        for _ in 0..200 {
            if rng.next().is_multiple_of(3) && client.read(next_id, 0, &[Segment::new(0, 512)]).is_ok() {
                mine.push(next_id);
                next_id += 1;
            }
            match rng.next() % 4 {
                0 => {
                    let off = layout.responses.base()
                        + (rng.next() as usize % (layout.responses.end() - layout.responses.base()) / 4) * 4;
                    mem.store_u32(off, rng.next() as u32, Ordering::Relaxed).unwrap();
                }
                _ => {
                    let id = if rng.next().is_multiple_of(2) && !mine.is_empty() {
                        mine[rng.next() as usize % mine.len()]
                    } else {
                        rng.next() as u32 % 64
                    };
                    let _ = raw.push(&ResponseDesc {
                        id,
                        status: (rng.next() % 10) as u32,
                        bytes: (rng.next() % 1024) as u32,
                        reserved: 0,
                    });
                }
            }
            match client.poll() {
                Ok(Some(c)) => {
                    let i = mine
                        .iter()
                        .position(|&m| m == c.id)
                        .unwrap_or_else(|| panic!("seed {seed}: completion for {} not in flight", c.id));
                    mine.swap_remove(i);
                    assert!(c.bytes <= 512);
                }
                Ok(None) => {}
                Err(ClientError::Queue(_)) => break,
                Err(ClientError::UnknownResponse(id)) => assert!(!mine.contains(&id)),
                Err(ClientError::BadStatus { id, .. }) | Err(ClientError::BadLength { id, .. }) => {
                    let i = mine.iter().position(|&m| m == id).expect("was in flight");
                    mine.swap_remove(i);
                }
                Err(e) => panic!("seed {seed}: unexpected {e}"),
            }
        }
    }
}
