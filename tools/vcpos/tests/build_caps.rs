//! Capability spaces, badges, IRQ routing and PD descriptors produced by `vcpos build`.

mod build_support;

use build_support::*;
use vcpos_abi::bootinfo::{BootInfo, CapDesc, IrqDesc, NO_PARENT};
use vcpos_abi::cap::{CapKind, BADGE_PPC};
use vcpos_tool::image::{build, Config};
use vcpos_tool::model::{System, Trigger};

/// server(0, prio 200), client(1, prio 100), child of client (2, id 5), driver(3).
fn sample() -> System {
    let mut server = pd("server", 10);
    server.priority = 200;
    server.passive = true;
    server.budget_us = 500;
    server.period_us = 2000;
    let client = pd("client", 20);
    let mut child = pd("child", 30);
    child.parent = Some(1);
    child.child_id = Some(5);
    child.priority = 50;
    let mut driver = pd("driver", 40);
    driver.irqs.push(irq(33, 3, 41));
    let mut edge = irq(40, 7, 42);
    edge.trigger = Trigger::Edge;
    driver.irqs.push(edge);
    system(
        vec![server, client, child, driver],
        vec![],
        vec![
            // client may PPC and notify server; server may notify client.
            channel(end(1, 2, true, true, 50), end(0, 4, false, true, 51), 50),
            // only the driver may notify the client.
            channel(end(1, 3, false, false, 52), end(3, 0, false, true, 53), 52),
            // only the server may notify the driver.
            channel(end(0, 9, false, true, 54), end(3, 61, false, false, 55), 54),
        ],
    )
}

fn c(slot: u16, kind: CapKind, object: u32, badge: u64) -> CapDesc {
    CapDesc {
        slot,
        kind: kind as u8,
        reserved: 0,
        object,
        badge,
    }
}

fn caps_of(blob: &[u8], pd: usize) -> Vec<CapDesc> {
    let info = BootInfo::parse(blob).unwrap();
    let d = info.pd(pd);
    let caps: Vec<CapDesc> = info.pd_caps(&d).collect();
    caps
}

#[test]
fn cap_tables_and_badges_are_exact() {
    let f = Fixture::new("caps_exact");
    let built = build(&sample(), &board(), &f.opts(Config::Debug)).unwrap_or_else(|e| panic!("{}", render(&e)));
    use CapKind::*;
    assert_eq!(
        caps_of(&built.blob, 0),
        vec![
            c(1, Input, 0, 0),
            c(8, DebugConsole, 0, 0),
            c(14, Notification, 1, 1 << 2),
            c(19, Notification, 3, 1 << 61),
        ]
    );
    assert_eq!(
        caps_of(&built.blob, 1),
        vec![
            c(1, Input, 1, 0),
            c(8, DebugConsole, 0, 0),
            c(12, Notification, 0, 1 << 4),
            c(76, Endpoint, 0, BADGE_PPC | 4),
            c(207, Tcb, 2, 0),
        ]
    );
    assert_eq!(
        caps_of(&built.blob, 2),
        vec![c(1, Input, 2, 0), c(8, DebugConsole, 0, 0)]
    );
    assert_eq!(
        caps_of(&built.blob, 3),
        vec![
            c(1, Input, 3, 0),
            c(8, DebugConsole, 0, 0),
            c(10, Notification, 1, 1 << 3),
            c(141, IrqHandler, 33, 0),
            c(145, IrqHandler, 40, 0),
        ]
    );
    let info = BootInfo::parse(&built.blob).unwrap();
    let irqs: Vec<IrqDesc> = (0..info.header.num_irqs as usize).map(|i| info.irq(i)).collect();
    assert_eq!(
        irqs,
        vec![
            IrqDesc {
                irq: 33,
                pd: 3,
                trigger: 0,
                reserved: 0,
                badge: 1 << 3
            },
            IrqDesc {
                irq: 40,
                pd: 3,
                trigger: 1,
                reserved: 0,
                badge: 1 << 7
            },
        ]
    );
}

#[test]
fn release_config_has_no_debug_console() {
    let f = Fixture::new("caps_release");
    let built = build(&sample(), &board(), &f.opts(Config::Release)).unwrap();
    for pd in 0..4 {
        let caps = caps_of(&built.blob, pd);
        assert!(caps.iter().all(|c| c.kind != CapKind::DebugConsole as u8), "{caps:?}");
        assert_eq!(caps[0], c(1, CapKind::Input, pd as u32, 0));
    }
    let bench = build(&sample(), &board(), &f.opts(Config::Benchmark)).unwrap();
    assert!(caps_of(&bench.blob, 0).contains(&c(8, CapKind::DebugConsole, 0, 0)));
}

#[test]
fn pd_descriptors_carry_scheduling_and_family() {
    let f = Fixture::new("caps_pd_desc");
    let built = build(&sample(), &board(), &f.opts(Config::Debug)).unwrap();
    let info = BootInfo::parse(&built.blob).unwrap();
    let server = info.pd(0);
    assert_eq!(server.name_str(), "server");
    assert_eq!(
        (server.priority, server.passive, server.budget_us, server.period_us),
        (200, 1, 500, 2000)
    );
    assert_eq!(server.parent, NO_PARENT);
    let child = info.pd(2);
    assert_eq!((child.parent, child.child_id, child.priority), (1, 5, 50));
    assert_eq!(info.pd(1).parent, NO_PARENT);
    // Caps and maps of consecutive PDs follow each other in the tables.
    let mut next_cap = 0;
    let mut next_map = 0;
    for i in 0..4 {
        let d = info.pd(i);
        assert_eq!(d.caps_first, next_cap);
        assert_eq!(d.maps_first, next_map);
        next_cap += d.caps_count;
        next_map += d.maps_count;
    }
    assert_eq!(next_cap, info.header.num_caps);
    assert_eq!(next_map, info.header.num_maps);
}

#[test]
fn reused_slot_and_out_of_range_ids_are_located_errors() {
    let f = Fixture::new("caps_reused");
    let mut sys = sample();
    // A second IRQ with id 3 in the driver collides with the first one's slot.
    sys.pds[3].irqs.push(irq(50, 3, 43));
    // A channel id past 61 cannot have a slot.
    sys.channels
        .push(channel(end(0, 62, false, true, 56), end(2, 1, false, true, 57), 56));
    let errors = build(&sys, &board(), &f.opts(Config::Debug)).unwrap_err();
    assert_error(
        &errors,
        "capability slot 141 of protection domain 'driver' is used twice",
        "irq",
        43,
    );
    assert_error(&errors, "channel id must be < 62, got 62", "end", 56);
}
