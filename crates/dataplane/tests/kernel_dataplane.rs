//! The data plane against a real kernel: vcan and vxcan links made over rtnetlink, can-gw rules
//! made by vxbus's own netlink messages, and frames crossing them exactly once.
//!
//! Needs SocketCAN (vcan, vxcan, can-gw, can-raw) and CAP_NET_ADMIN. On a kernel without CAN it
//! skips and says so; the e2e scenario `15-kernel-dataplane` runs it in the VM with
//! VXBUS_KERNEL_TESTS=required, where a missing CAN stack is a failure, not a skip.

use std::{collections::BTreeSet, io, path::Path, process::Command, time::Duration};

use socketcan::{
    CanAnyFrame, CanFdFrame, CanFdSocket, CanFrame, EmbeddedFrame, Frame, Socket, StandardId,
};
use vxbus_dataplane::{
    cangw::{flags, CanGw, GwError, Rule},
    ifname::IfName,
    links::Links,
    mesh::BusLinks,
};

/// Skips the test with `why`, or fails it when VXBUS_KERNEL_TESTS=required (in the VM).
fn skip(why: &str) {
    let required = std::env::var("VXBUS_KERNEL_TESTS").as_deref() == Ok("required");
    assert!(!required, "VXBUS_KERNEL_TESTS=required, but {why}");
    eprintln!("skipped: {why}");
}

fn kernel_has_can() -> bool {
    let present = Path::new("/proc/net/can").exists();
    if !present {
        skip("this kernel has no SocketCAN loaded (run `make e2e`: the VM has one)");
    }
    present
}

fn name(s: &str) -> IfName {
    s.parse().unwrap()
}

fn open(interface: &str) -> CanFdSocket {
    let socket = CanFdSocket::open(interface).unwrap();
    socket.set_read_timeout(Duration::from_secs(5)).unwrap();
    socket
}

fn classic(id: u16, data: &[u8]) -> CanFrame {
    CanFrame::new(StandardId::new(id).unwrap(), data).unwrap()
}

fn fd(id: u16, data: &[u8]) -> CanFdFrame {
    CanFdFrame::new(StandardId::new(id).unwrap(), data).unwrap()
}

/// The next frame on `socket` as (id, data, is_fd).
fn receive(socket: &CanFdSocket, on: &str) -> (u32, Vec<u8>, bool) {
    match socket.read_frame() {
        Ok(CanAnyFrame::Normal(frame)) => (frame.raw_id(), frame.data().to_vec(), false),
        Ok(CanAnyFrame::Fd(frame)) => (frame.raw_id(), frame.data().to_vec(), true),
        Ok(other) => panic!("{on}: unexpected frame {other:?}"),
        Err(err) => panic!("{on}: no frame within 5 s: {err}"),
    }
}

/// Nothing more arrives on `socket` within a moment: the frame came exactly once.
fn nothing_more(socket: &CanFdSocket, on: &str) {
    socket.set_read_timeout(Duration::from_millis(300)).unwrap();
    match socket.read_frame() {
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("{on}: a frame arrived twice or unasked: {other:?}"),
    }
    socket.set_read_timeout(Duration::from_secs(5)).unwrap();
}

#[tokio::test]
async fn links_and_gateway_rules_carry_frames_once_and_leave_nothing_behind() {
    if !kernel_has_can() {
        return;
    }
    let links = Links::connect().unwrap();
    // Leftovers of an earlier failed run.
    for stale in ["kt-a", "kt-b", "kt-bus"] {
        if let Some(index) = links.index(&name(stale)).await.unwrap() {
            links.delete(index).await.unwrap();
        }
    }

    // Two members (host end <-> member end) and a host vcan, as a bus with host_device.
    let (a, a_member) = links
        .add_vxcan(&name("kt-a"), &name("kt-ap"))
        .await
        .unwrap();
    let (b, b_member) = links
        .add_vxcan(&name("kt-b"), &name("kt-bp"))
        .await
        .unwrap();
    let bus = links.add_vcan(&name("kt-bus")).await.unwrap();
    for index in [a, a_member, b, b_member, bus] {
        links.set_up(index).await.unwrap();
    }
    assert_eq!(links.index(&name("kt-ap")).await.unwrap(), Some(a_member));
    assert_eq!(links.index(&name("kt-nosuch")).await.unwrap(), None);

    // The driver's mesh: direct rules, classic and FD, so no frame needs two hops.
    let mut gw = CanGw::open().unwrap();
    let rules = BusLinks {
        members: vec![a, b],
        host_device: Some(bus),
        fd: true,
    }
    .rules();
    assert_eq!(rules.len(), 12);
    for rule in &rules {
        gw.add(*rule).unwrap();
    }
    let ours = |gw: &mut CanGw| -> Vec<_> {
        let mine = [a, b, bus];
        gw.list()
            .unwrap()
            .into_iter()
            .filter(|s| mine.contains(&s.rule.src))
            .collect()
    };
    let listed: BTreeSet<Rule> = ours(&mut gw).iter().map(|stats| stats.rule).collect();
    assert_eq!(listed, rules, "the kernel lists exactly the rules added");
    // The kernel lists vxbus's rules with interfaces and flags only: the driver takes only
    // such `plain` rules as its own.
    assert!(
        ours(&mut gw).iter().all(|stats| stats.plain),
        "{:?}",
        ours(&mut gw)
    );
    // The kernel does not refuse a duplicate: it adds a second, equal rule, which would deliver
    // every frame twice. Whoever adds rules must know what exists. One remove takes one copy.
    let first = *rules.iter().next().unwrap();
    gw.add(first).unwrap();
    let copies = |gw: &mut CanGw| ours(gw).iter().filter(|s| s.rule == first).count();
    assert_eq!(copies(&mut gw), 2, "a duplicate add");
    gw.remove(first).unwrap();
    assert_eq!(copies(&mut gw), 1, "one remove after a duplicate add");

    let (a_socket, b_socket, bus_socket) = (open("kt-ap"), open("kt-bp"), open("kt-bus"));

    // A member's classic frame reaches the other member and the host vcan, once each.
    a_socket.write_frame(&classic(0x123, &[1, 2, 3])).unwrap();
    assert_eq!(receive(&b_socket, "kt-bp"), (0x123, vec![1, 2, 3], false));
    assert_eq!(
        receive(&bus_socket, "kt-bus"),
        (0x123, vec![1, 2, 3], false)
    );
    nothing_more(&b_socket, "kt-bp");
    nothing_more(&a_socket, "kt-ap");

    // An FD frame, the other way.
    let data: Vec<u8> = (0..16).collect();
    b_socket.write_frame(&fd(0x1a0, &data)).unwrap();
    assert_eq!(receive(&a_socket, "kt-ap"), (0x1a0, data.clone(), true));
    assert_eq!(receive(&bus_socket, "kt-bus"), (0x1a0, data, true));
    nothing_more(&a_socket, "kt-ap");

    // The host injects on its vcan: both members get it.
    bus_socket
        .write_frame(&classic(0x7df, &[2, 1, 0x0c]))
        .unwrap();
    assert_eq!(
        receive(&a_socket, "kt-ap"),
        (0x7df, vec![2, 1, 0x0c], false)
    );
    assert_eq!(
        receive(&b_socket, "kt-bp"),
        (0x7df, vec![2, 1, 0x0c], false)
    );
    nothing_more(&a_socket, "kt-ap");
    nothing_more(&b_socket, "kt-bp");

    // Counters: each rule out of a sender handled its frame once; the host vcan's echo of a
    // routed frame stopped at the hop limit (counted as deleted, not handled).
    let stats = ours(&mut gw);
    let handled = |src, dst, fd_flag| {
        let found = stats.iter().find(|s| {
            (s.rule.src, s.rule.dst, s.rule.flags & flags::CAN_FD) == (src, dst, fd_flag)
        });
        found.unwrap().handled
    };
    assert_eq!(handled(a, b, 0), 1);
    assert_eq!(handled(b, a, flags::CAN_FD), 1);
    assert_eq!(handled(bus, a, 0), 1);
    assert_eq!(handled(bus, b, 0), 1);
    let echoes_stopped: u32 = stats
        .iter()
        .filter(|s| s.rule.src == bus)
        .map(|s| s.deleted)
        .sum();
    assert_eq!(
        echoes_stopped, 4,
        "the host vcan's echoes of a's classic and b's FD frame, each seen by two rules: {stats:?}"
    );
    assert_eq!(
        handled(b, a, 0),
        0,
        "a frame routed to a member must not be routed again"
    );

    // Deleting a link takes every rule with it at either end (the driver relies on this when
    // a member leaves: no dump of every rule per member).
    links.delete(b).await.unwrap();
    let left: BTreeSet<Rule> = ours(&mut gw).iter().map(|stats| stats.rule).collect();
    let without_b: BTreeSet<Rule> = rules
        .iter()
        .filter(|r| r.src != b && r.dst != b)
        .copied()
        .collect();
    assert_eq!(left, without_b, "the rules after deleting kt-b");

    // Removal takes exactly our rules, then the links (a vxcan end takes its peer with it).
    for rule in &without_b {
        gw.remove(*rule).unwrap();
    }
    assert!(
        ours(&mut gw).is_empty(),
        "rules left behind: {:?}",
        ours(&mut gw)
    );
    for index in [a, bus] {
        links.delete(index).await.unwrap();
    }
    for gone in ["kt-a", "kt-ap", "kt-b", "kt-bp", "kt-bus"] {
        assert_eq!(
            links.index(&name(gone)).await.unwrap(),
            None,
            "{gone} left behind"
        );
    }
}

/// Loads `can-gw` again when dropped, so a failing test leaves the kernel as it found it.
struct ReloadCanGw;

impl Drop for ReloadCanGw {
    fn drop(&mut self) {
        let _ = Command::new("modprobe").arg("can-gw").status();
    }
}

#[test]
fn a_missing_can_gw_module_is_reported_with_the_command_that_loads_it() {
    if !kernel_has_can() {
        return;
    }
    let unloaded = Command::new("modprobe").args(["-r", "can-gw"]).status();
    if !unloaded.is_ok_and(|status| status.success()) {
        // Built in, or in use by rules this test must not touch.
        skip("can-gw cannot be unloaded here (`modprobe -r can-gw` failed)");
        return;
    }
    let _reload = ReloadCanGw;

    let mut gw = CanGw::open().unwrap();
    // Without can-gw the kernel answers a dump with its IP routes; that must not pass for "no rules".
    let listed = gw.list().unwrap_err();
    assert!(matches!(listed, GwError::NotLoaded { .. }), "{listed:?}");
    let added = gw
        .add(Rule {
            src: 1,
            dst: 1,
            flags: flags::ECHO,
        })
        .unwrap_err();
    assert!(matches!(added, GwError::NotLoaded { .. }), "{added:?}");
    let message = added.to_string();
    assert!(
        message.contains("module can-gw) is not loaded"),
        "{message}"
    );
    assert!(message.contains("`modprobe can-gw`"), "{message}");
}

/// A link is found by its own name only: the kernel also matches alternative names, and vxbus
/// must not take someone's link that carries one of its names as an altname for its own.
#[tokio::test]
async fn a_link_is_found_by_its_name_not_by_an_altname() {
    if !kernel_has_can() {
        return;
    }
    let links = Links::connect().unwrap();
    if let Some(index) = links.index(&name("kt-alt")).await.unwrap() {
        links.delete(index).await.unwrap();
    }
    let index = links.add_vcan(&name("kt-alt")).await.unwrap();
    let status = Command::new("ip")
        .args([
            "link",
            "property",
            "add",
            "dev",
            "kt-alt",
            "altname",
            "kt-altname",
        ])
        .status()
        .unwrap();
    assert!(status.success(), "ip link property add ... altname");
    assert_eq!(links.index(&name("kt-alt")).await.unwrap(), Some(index));
    assert_eq!(links.get(&name("kt-altname")).await.unwrap(), None);
    links.delete(index).await.unwrap();
}
