//! The sampler on made-up kernel answers: which counter becomes which figure, rates between two
//! readings, which meter tallies count toward a bus, and how often drops are logged.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use vxbus_dataplane::{
    cangw::{flags, Rule},
    links::LinkCounters,
};

use super::*;
use crate::state::{Endpoint, HostDevice, Network};

const BUS: &str = "3f2a9c81d0e4b5a6";

fn sampler() -> Sampler {
    Sampler {
        meter: None,
        meter_status: MeterStatus::default(),
        last: None,
        drops: HashMap::new(),
        meter_missed_logged: 0,
        metered: HashMap::new(),
    }
}

fn options(given: Value) -> Map<String, Value> {
    given.as_object().cloned().unwrap()
}

/// A bus with containers a (index 11) and b (12) and, with `host`, host device hbus (10).
fn view(host: bool, options_given: Value) -> BusView {
    let endpoint = |end: &str| Endpoint {
        host_end: end.parse().unwrap(),
        peer: end.replace("vxbh", "vxbc").parse().unwrap(),
        joined: true,
        ifname: None,
    };
    let network = Network {
        options: options(options_given.clone()),
        host_device: host.then(|| HostDevice {
            name: "hbus".parse().unwrap(),
            created: true,
        }),
        endpoints: BTreeMap::from([
            ("aaaaaaaaaaaa0000".to_owned(), endpoint("vxbhaaaaaaaaaa")),
            ("bbbbbbbbbbbb0000".to_owned(), endpoint("vxbhbbbbbbbbbb")),
        ]),
        deleting: false,
    };
    BusView {
        id: BUS.to_owned(),
        spec: crate::bus::BusSpec::from_options(Some(&network.options)).ok(),
        network,
        tunnel: None,
    }
}

fn link(index: u32, name: &str, counters: LinkCounters) -> Link {
    Link {
        index,
        name: name.into(),
        kind: Some("vxcan".into()),
        is_can: true,
        up: true,
        can_bitrate: None,
        counters: Some(counters),
    }
}

fn counters(rx: u64, tx: u64, tx_dropped: u64) -> LinkCounters {
    LinkCounters {
        rx_packets: rx,
        rx_bytes: rx * 8,
        tx_packets: tx,
        tx_bytes: tx * 8,
        rx_dropped: 0,
        tx_dropped,
    }
}

fn rule(src: u32, dst: u32, fd: bool, handled: u32, dropped: u32) -> RuleStats {
    RuleStats {
        rule: Rule {
            src,
            dst,
            flags: flags::IIF_TX_OK | if fd { flags::CAN_FD } else { 0 },
        },
        handled,
        dropped,
        deleted: 0,
        plain: true,
    }
}

#[test]
fn containers_are_counted_from_their_links_and_the_host_device_from_its_rules() {
    let links = [
        link(11, "vxbhaaaaaaaaaa", counters(60, 4, 0)),
        link(12, "vxbhbbbbbbbbbb", counters(0, 64, 2)),
        link(10, "hbus", counters(999, 999, 0)),
    ];
    // a sent 50 classic and 10 FD frames, hbus sent 3 classic and 1 FD; a rule toward b
    // dropped 5.
    let rules = [
        rule(11, 10, false, 50, 0),
        rule(11, 10, true, 10, 0),
        rule(10, 11, false, 3, 0),
        rule(10, 11, true, 1, 0),
        rule(10, 12, false, 3, 0),
        rule(10, 12, true, 1, 0),
        rule(11, 12, false, 50, 5),
    ];
    let report = sampler().read(
        &[view(true, json!({"host_device": "hbus"}))],
        &links,
        &rules,
        Instant::now(),
    );
    let bus = &report.buses[BUS];
    let [a, b, host] = &bus.members[..] else {
        panic!("{:?}", bus.members)
    };
    assert_eq!(
        (a.kind, a.endpoint.as_deref()),
        (MemberKind::Container, Some("aaaaaaaaaaaa0000"))
    );
    assert_eq!(
        (a.sent.frames, a.sent.bytes, a.received.frames),
        (60, 480, 4)
    );
    assert_eq!((b.sent.frames, b.received.frames), (0, 64));
    assert_eq!(
        b.dropped,
        Drops {
            gateway: 5,
            link_tx: 2,
            link_rx: 0
        }
    );
    assert_eq!(
        (host.kind, host.link.as_str()),
        (MemberKind::HostDevice, "hbus")
    );
    assert_eq!((host.sent.frames, host.received.frames), (4, 60));
    assert_eq!(bus.frames, 64);
    // No baudrate declared: the defaults, said so.
    assert_eq!(
        (bus.bitrate, bus.data_bitrate, bus.bitrate_declared),
        (DEFAULT_BITRATE, DEFAULT_DATA_BITRATE, false)
    );
    // The meter is off: no load rather than a load of 0.
    assert_eq!(bus.load_percent, None);
}

#[test]
fn rates_are_the_growth_between_two_readings() {
    let mut sampler = sampler();
    let bus = [view(false, json!({"baudrate": "250000"}))];
    let at = Instant::now();
    let links = |a_sent| {
        [
            link(11, "vxbhaaaaaaaaaa", counters(a_sent, 0, 0)),
            link(12, "vxbhbbbbbbbbbb", counters(0, a_sent, 0)),
        ]
    };
    let first = sampler.read(&bus, &links(100), &[], at);
    assert_eq!(
        first.buses[BUS].members[0].sent_per_sec, 0.0,
        "no rate without a reading before"
    );
    let second = sampler.read(&bus, &links(300), &[], at + Duration::from_secs(2));
    let bus_stats = &second.buses[BUS];
    assert_eq!(second.interval_secs, 2.0);
    assert_eq!(bus_stats.members[0].sent_per_sec, 100.0);
    assert_eq!(bus_stats.members[1].received_per_sec, 100.0);
    assert_eq!(bus_stats.frames_per_sec, 100.0);
    // A declared nominal rate and no data rate: the data phase at the nominal rate too.
    assert_eq!(
        (
            bus_stats.bitrate,
            bus_stats.data_bitrate,
            bus_stats.bitrate_declared
        ),
        (250_000, 250_000, true)
    );
}

#[test]
fn the_load_counts_a_bus_once_where_its_frames_are_seen() {
    let tally = |frames: u64, bits: u64| Tally {
        frames,
        bits,
        data_phase_bits: 0,
    };
    // Without a host device: the members' host ends, where their frames arrive.
    let tallies = HashMap::from([
        (11, tally(10, 1000)),
        (12, tally(5, 500)),
        (99, tally(7, 7000)),
    ]);
    let mut metered = Tally::default();
    for index in bus_indexes(&[11, 12], None) {
        if let Some(t) = tallies.get(&index) {
            metered.add(*t);
        }
    }
    assert_eq!(
        metered,
        tally(15, 1500),
        "an interface of no bus (99) is not counted"
    );
    // With one: the host device alone (every frame of the bus is seen there), never the
    // members' copies as well.
    assert_eq!(bus_indexes(&[11, 12], Some(10)), vec![10]);
}

#[test]
fn drops_are_logged_once_per_member_and_interval() {
    let mut sampler = sampler();
    let mut bus = BusStats::default();
    let member = |gateway| MemberStats {
        kind: MemberKind::Container,
        endpoint: Some("aaaaaaaaaaaa0000".into()),
        container: None,
        link: "vxbhaaaaaaaaaa".into(),
        present: true,
        sent: Traffic::default(),
        sent_per_sec: 0.0,
        received: Traffic::default(),
        received_per_sec: 0.0,
        dropped: Drops {
            gateway,
            link_tx: 0,
            link_rx: 0,
        },
    };
    let start = Instant::now();
    let at = |secs| start + Duration::from_secs(secs);
    // Drops from before the first reading are not news.
    bus.members = vec![member(40)];
    assert!(sampler.drop_warnings(BUS, &bus, at(0)).is_empty());
    bus.members = vec![member(45)];
    let first = sampler.drop_warnings(BUS, &bus, at(1));
    assert_eq!(first.len(), 1, "{first:?}");
    assert!(first[0].contains("network 3f2a9c81d0e4: the container of endpoint aaaaaaaaaaaa (link vxbhaaaaaaaaaa) is dropping frames: 5 more"), "{}", first[0]);
    assert!(first[0].contains("gateway 45"), "{}", first[0]);
    // More drops within the interval wait; after it, they are said together.
    bus.members = vec![member(50)];
    assert!(sampler.drop_warnings(BUS, &bus, at(5)).is_empty());
    bus.members = vec![member(52)];
    assert!(sampler.drop_warnings(BUS, &bus, at(10)).is_empty());
    let later = sampler.drop_warnings(BUS, &bus, at(11));
    assert_eq!(later.len(), 1);
    assert!(later[0].contains(": 7 more"), "{}", later[0]);
    // Nothing new: nothing said.
    assert!(sampler.drop_warnings(BUS, &bus, at(30)).is_empty());
}

#[test]
fn members_that_left_are_forgotten() {
    let mut sampler = sampler();
    let links = [
        link(11, "vxbhaaaaaaaaaa", counters(0, 0, 0)),
        link(12, "vxbhbbbbbbbbbb", counters(0, 0, 0)),
    ];
    let at = Instant::now();
    sampler.read(&[view(false, json!({}))], &links, &[], at);
    assert_eq!(sampler.drops.len(), 2);
    // b's container left: its endpoint is no longer in the bus.
    let mut one = view(false, json!({}));
    one.network.endpoints.remove("bbbbbbbbbbbb0000");
    sampler.read(&[one], &links, &[], at + Duration::from_secs(1));
    assert_eq!(
        sampler.drops.len(),
        1,
        "what is kept grows with members that come and go"
    );
    let last = sampler.last.as_ref().unwrap();
    assert_eq!(last.members.len(), 1);
    // The bus went.
    sampler.read(&[], &links, &[], at + Duration::from_secs(2));
    assert!(sampler.drops.is_empty() && sampler.last.as_ref().unwrap().members.is_empty());
}
