//! The tunnel against a real kernel: vcan interfaces stand for the host interfaces of buses on
//! different hosts (each tunnel has its own), joined over loopback by vxbus tunnels and by plain
//! sockets that speak cannelloni's format as leaves. Every frame must reach every other member
//! exactly once, never come back to its sender, and be counted.
//!
//! Needs SocketCAN (vcan, can-raw) and CAP_NET_ADMIN. On a kernel without CAN it skips and says
//! so; the e2e scenario `15-kernel-dataplane` runs it in the VM with
//! VXBUS_KERNEL_TESTS=required, where a missing CAN stack is a failure, not a skip.

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use bytes::BytesMut;
use socketcan::{
    tokio::CanFdSocket, CanAnyFrame, CanFdFrame, CanFrame, EmbeddedFrame, Frame as _, StandardId,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpStream, UdpSocket},
    time::timeout,
};
use vxbus_tunnel::{
    spec::{FarEnd, Transport},
    stats::{PeerStats, TunnelStats},
    wire::{decode_datagram, DatagramBuilder, Frame, TCP_HELLO},
    StartError, Tunnel, TunnelSpec,
};

fn kernel_has_can() -> bool {
    if Path::new("/proc/net/can").exists() {
        return true;
    }
    let required = std::env::var("VXBUS_KERNEL_TESTS").as_deref() == Ok("required");
    assert!(
        !required,
        "VXBUS_KERNEL_TESTS=required, but this kernel has no SocketCAN"
    );
    eprintln!("skipped: this kernel has no SocketCAN loaded (run `make e2e`: the VM has one)");
    false
}

fn ip(args: &[&str]) {
    let status = Command::new("ip").args(args).status().expect("ip runs");
    assert!(status.success(), "ip {args:?}");
}

/// A vcan, deleted when dropped.
struct Vcan(&'static str);

impl Vcan {
    fn new(name: &'static str) -> Vcan {
        Vcan::with_mtu(name, "72")
    }

    /// A classic CAN bus (`fd=false`): the kernel refuses CAN FD frames on it.
    fn classic(name: &'static str) -> Vcan {
        Vcan::with_mtu(name, "16")
    }

    fn with_mtu(name: &'static str, mtu: &str) -> Vcan {
        let _ = Command::new("ip")
            .args(["link", "del", name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["link", "add", name, "type", "vcan"]);
        ip(&["link", "set", name, "mtu", mtu, "up"]);
        Vcan(name)
    }
}

impl Drop for Vcan {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", self.0]).status();
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A key file of 64 hex digits of `digit`, in a directory that goes when the test ends.
fn key_file(dir: &tempfile::TempDir, digit: char) -> String {
    let path = dir.path().join(format!("{digit}.key"));
    std::fs::write(&path, digit.to_string().repeat(64)).unwrap();
    path.to_str().unwrap().to_owned()
}

fn spec(transport: Transport, listen: Option<u16>, peers: &[u16], leaves: &[u16]) -> TunnelSpec {
    TunnelSpec::new(
        transport,
        listen.map(addr),
        peers.iter().map(|&p| addr(p)).collect(),
        leaves.iter().map(|&p| addr(p)).collect(),
        Duration::ZERO,
    )
    .unwrap()
}

/// candump's notation of a kernel frame.
fn show(frame: &CanAnyFrame) -> String {
    let data = |d: &[u8]| d.iter().map(|b| format!("{b:02X}")).collect::<String>();
    match frame {
        CanAnyFrame::Normal(f) => format!("{:03X}#{}", f.raw_id(), data(f.data())),
        CanAnyFrame::Fd(f) => format!("{:03X}##{}", f.raw_id(), data(f.data())),
        other => format!("{other:?}"),
    }
}

fn classic(id: u16, data: &[u8]) -> CanFrame {
    CanFrame::new(StandardId::new(id).unwrap(), data).unwrap()
}

fn fd(id: u16, data: &[u8]) -> CanFdFrame {
    CanFdFrame::new(StandardId::new(id).unwrap(), data).unwrap()
}

/// Everything that arrives on `socket` until it has been quiet for 300 ms.
async fn heard(socket: &CanFdSocket) -> Vec<String> {
    let mut frames = Vec::new();
    while let Ok(Ok(frame)) = timeout(Duration::from_millis(300), socket.read_frame()).await {
        frames.push(show(&frame));
    }
    frames
}

/// The frames of every datagram that arrives on `socket` until it is quiet for 300 ms.
async fn datagrams(socket: &UdpSocket) -> Vec<String> {
    let mut frames = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(Ok(len)) = timeout(Duration::from_millis(300), socket.recv(&mut buf)).await {
        let datagram = decode_datagram(&buf[..len]).expect("vxbus sends cannelloni datagrams");
        frames.extend(datagram.frames.iter().map(|f| format!("{f:?}")));
    }
    frames
}

fn datagram(seq: u8, frames: &[Frame]) -> Vec<u8> {
    let mut builder = DatagramBuilder::new(1472);
    for frame in frames {
        assert!(builder.push(frame));
    }
    builder.finish(seq).to_vec()
}

fn peer<'a>(stats: &'a TunnelStats, address: &str) -> &'a PeerStats {
    stats
        .peers
        .iter()
        .find(|p| p.address == address)
        .unwrap_or_else(|| panic!("{address} not among {:?}", stats.peers))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_full_mesh_with_leaves_carries_each_frame_once() {
    if !kernel_has_can() {
        return;
    }
    let (va, vb, vc) = (Vcan::new("kt-ua"), Vcan::new("kt-ub"), Vcan::new("kt-uc"));
    // Three vxbus hosts in a full mesh (21101..21103); two cannelloni leaves on A.
    let a = Tunnel::start(
        "a",
        va.0,
        &spec(
            Transport::Udp,
            Some(21101),
            &[21102, 21103],
            &[21111, 21112],
        ),
    )
    .await
    .unwrap();
    let b = Tunnel::start(
        "b",
        vb.0,
        &spec(Transport::Udp, Some(21102), &[21101, 21103], &[]),
    )
    .await
    .unwrap();
    let c = Tunnel::start(
        "c",
        vc.0,
        &spec(Transport::Udp, Some(21103), &[21101, 21102], &[]),
    )
    .await
    .unwrap();
    let leaf1 = UdpSocket::bind(addr(21111)).await.unwrap();
    let leaf2 = UdpSocket::bind(addr(21112)).await.unwrap();
    leaf1.connect(addr(21101)).await.unwrap();
    leaf2.connect(addr(21101)).await.unwrap();
    let open = |name| CanFdSocket::open(name).unwrap();
    let (on_a, on_b, on_c) = (open(va.0), open(vb.0), open(vc.0));
    let sender_a = open(va.0);
    let sender_b = open(vb.0);

    // From A's bus: to B, C and both leaves, once each; A's other sockets see only the original.
    sender_a
        .write_frame(&classic(0x123, &[0x11, 0x22]))
        .await
        .unwrap();
    sender_a.write_frame(&fd(0x1a0, &[7; 12])).await.unwrap();
    let from_a = ["123#1122", "1A0##070707070707070707070707"];
    assert_eq!(heard(&on_b).await, from_a);
    assert_eq!(heard(&on_c).await, from_a);
    assert_eq!(heard(&on_a).await, from_a);
    let leaf_view = ["123#1122", "1A0##4070707070707070707070707"];
    assert_eq!(datagrams(&leaf1).await, leaf_view);
    assert_eq!(datagrams(&leaf2).await, leaf_view);

    // From B's bus: to A and C directly; A passes it to its leaves, not to C again.
    sender_b.write_frame(&classic(0x200, &[2])).await.unwrap();
    assert_eq!(heard(&on_a).await, ["200#02"]);
    assert_eq!(heard(&on_c).await, ["200#02"]);
    assert_eq!(heard(&on_b).await, ["200#02"]);
    assert_eq!(datagrams(&leaf1).await, ["200#02"]);
    assert_eq!(datagrams(&leaf2).await, ["200#02"]);

    // From leaf 1: to every bus once and to leaf 2, never back to leaf 1.
    let frames = [
        Frame::classic(0x301, &[1]).unwrap(),
        Frame::fd(0x302, 0x05, &[2; 8]).unwrap(),
    ];
    leaf1.send(&datagram(0, &frames)).await.unwrap();
    let from_leaf = ["301#01", "302##0202020202020202"];
    assert_eq!(heard(&on_a).await, from_leaf);
    assert_eq!(heard(&on_b).await, from_leaf);
    assert_eq!(heard(&on_c).await, from_leaf);
    assert_eq!(
        datagrams(&leaf2).await,
        ["301#01", "302##50202020202020202"]
    );
    assert_eq!(datagrams(&leaf1).await, Vec::<String>::new());

    // A stranger's datagram: dropped and counted.
    let stranger = UdpSocket::bind(addr(21119)).await.unwrap();
    stranger
        .send_to(&datagram(0, &frames[..1]), addr(21101))
        .await
        .unwrap();
    assert_eq!(heard(&on_a).await, Vec::<String>::new());
    // Leaf 2 skips sequence numbers 2 and 3, then 3 comes late.
    let one = [Frame::classic(0x400, &[]).unwrap()];
    for seq in [1, 4, 3] {
        leaf2.send(&datagram(seq, &one)).await.unwrap();
    }
    assert_eq!(heard(&on_a).await, ["400#", "400#", "400#"]);
    assert_eq!(datagrams(&leaf1).await, ["400#", "400#", "400#"]);
    // A datagram that is not cannelloni's: dropped whole, counted.
    leaf2
        .send(&[3, 0, 5, 0, 1, 0, 0, 1, 0x23, 0])
        .await
        .unwrap();
    assert_eq!(heard(&on_a).await, Vec::<String>::new());

    let stats = a.stats();
    assert_eq!(stats.foreign_datagrams, 1);
    assert_eq!(stats.bus_rx_frames, 2);
    // From B: 1; from leaf 1: 2; from leaf 2: 3.
    assert_eq!(stats.bus_tx_frames, 6);
    let leaf2_stats = peer(&stats, "127.0.0.1:21112");
    assert_eq!((leaf2_stats.lost, leaf2_stats.reordered), (1, 1));
    assert_eq!(leaf2_stats.decode_errors, 1);
    assert_eq!(leaf2_stats.rx_frames, 3);
    // To leaf 2: A's 2, B's 1, leaf 1's 2.
    assert_eq!(leaf2_stats.tx_frames, 5);
    assert!(!leaf2_stats.vxbus);
    let b_stats = peer(&stats, "127.0.0.1:21102");
    // To B: A's 2, leaf 1's 2, leaf 2's 3; from B: 1.
    assert_eq!((b_stats.tx_frames, b_stats.rx_frames), (7, 1));
    assert!(b_stats.vxbus && b_stats.last_seen_secs.is_some());

    // A peer added while running gets frames; removed, it gets none.
    let late = UdpSocket::bind(addr(21113)).await.unwrap();
    a.add_peer(addr(21113), FarEnd::Leaf).await.unwrap();
    assert!(a.add_peer(addr(21113), FarEnd::Leaf).await.is_err());
    sender_a.write_frame(&classic(0x500, &[5])).await.unwrap();
    assert_eq!(datagrams(&late).await, ["500#05"]);
    a.remove_peer(addr(21113)).await.unwrap();
    sender_a.write_frame(&classic(0x501, &[5])).await.unwrap();
    assert_eq!(datagrams(&late).await, Vec::<String>::new());
    assert!(a.remove_peer(addr(21113)).await.is_err());

    // A port in use is refused at start, naming it; a stopped tunnel frees its port.
    let taken = Tunnel::start("x", va.0, &spec(Transport::Udp, Some(21102), &[], &[])).await;
    assert!(
        matches!(taken, Err(StartError::Listen { .. })),
        "{:?}",
        taken.err()
    );
    b.stop().await;
    let again = Tunnel::start("b", vb.0, &spec(Transport::Udp, Some(21102), &[21101], &[])).await;
    assert!(again.is_ok());
    c.stop().await;
    a.stop().await;
}

async fn cannelloni_client(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(addr(port)).await.unwrap();
    stream.write_all(TCP_HELLO).await.unwrap();
    let mut hello = [0u8; 12];
    stream.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello, TCP_HELLO);
    stream
}

/// The frames on a client's stream until it is quiet for 300 ms.
async fn streamed(stream: &mut TcpStream) -> Vec<String> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 1024];
    while let Ok(Ok(n)) = timeout(Duration::from_millis(300), stream.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        while let Some((frame, used)) = Frame::decode(&buf).unwrap() {
            frames.push(format!("{frame:?}"));
            let _ = buf.split_to(used);
        }
    }
    frames
}

fn encoded(frames: &[Frame]) -> Vec<u8> {
    let mut bytes = Vec::new();
    frames.iter().for_each(|f| f.encode(&mut bytes));
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_takes_many_clients_and_reconnects() {
    if !kernel_has_can() {
        return;
    }
    let (va, vb) = (Vcan::new("kt-ta"), Vcan::new("kt-tb"));
    let a_spec = spec(Transport::Tcp, Some(21201), &[], &[]);
    let a = Tunnel::start("a", va.0, &a_spec).await.unwrap();
    // B is a vxbus host that connects to A; two cannelloni clients connect to A too.
    let b = Tunnel::start("b", vb.0, &spec(Transport::Tcp, None, &[21201], &[]))
        .await
        .unwrap();
    let mut client1 = cannelloni_client(21201).await;
    let mut client2 = cannelloni_client(21201).await;
    let (on_a, on_b) = (
        CanFdSocket::open(va.0).unwrap(),
        CanFdSocket::open(vb.0).unwrap(),
    );
    let sender_b = CanFdSocket::open(vb.0).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stats = a.stats();
    assert_eq!(stats.peers.len(), 3, "{:?}", stats.peers);
    assert_eq!(
        stats.peers.iter().filter(|p| p.vxbus).count(),
        1,
        "B said it is vxbus"
    );

    client1
        .write_all(&encoded(&[Frame::classic(0x10, &[1]).unwrap()]))
        .await
        .unwrap();
    assert_eq!(heard(&on_a).await, ["010#01"]);
    assert_eq!(heard(&on_b).await, ["010#01"]);
    assert_eq!(streamed(&mut client2).await, ["010#01"]);
    assert_eq!(streamed(&mut client1).await, Vec::<String>::new());

    sender_b.write_frame(&fd(0x20, &[2; 16])).await.unwrap();
    assert_eq!(
        heard(&on_a).await,
        ["020##02020202020202020202020202020202"]
    );
    let fd_view = ["020##402020202020202020202020202020202"];
    assert_eq!(streamed(&mut client1).await, fd_view);
    assert_eq!(streamed(&mut client2).await, fd_view);

    // A client that is not cannelloni is closed and counted; the others carry on.
    let mut stranger = TcpStream::connect(addr(21201)).await.unwrap();
    stranger.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let closed = timeout(Duration::from_secs(3), stranger.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the stranger is disconnected");

    // A goes away and comes back: B connects again by itself.
    a.stop().await;
    assert!(timeout(Duration::from_secs(1), client1.read_u8())
        .await
        .is_ok_and(|r| r.is_err()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let a = Tunnel::start("a", va.0, &a_spec).await.unwrap();
    let mut connected = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if a.stats().peers.iter().any(|p| p.vxbus && p.connected) {
            connected = true;
            break;
        }
    }
    assert!(connected, "B reconnected within 5 s: {:?}", a.stats().peers);
    let b_view = &b.stats().peers[0];
    assert!(b_view.connects >= 2, "{b_view:?}");
    sender_b.write_frame(&classic(0x30, &[3])).await.unwrap();
    assert_eq!(heard(&on_a).await, ["030#03"]);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_udp_between_vxbus_hosts_and_plain_to_leaves() {
    if !kernel_has_can() {
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let (va, vb) = (Vcan::new("kt-sa"), Vcan::new("kt-sb"));
    // A and B share a key; 21303 is listed as A's peer but is a plain socket (an impostor, or a
    // cannelloni end wrongly listed as a peer); 21311 is a leaf.
    let sealed = |listen, peers: &[u16], leaves: &[u16], key| {
        spec(Transport::Udp, Some(listen), peers, leaves)
            .with_key_file(&key_file(&keys, key))
            .unwrap()
    };
    let a = Tunnel::start("a", va.0, &sealed(21301, &[21302, 21303], &[21311], 'a'))
        .await
        .unwrap();
    let b = Tunnel::start("b", vb.0, &sealed(21302, &[21301], &[], 'a'))
        .await
        .unwrap();
    let impostor = UdpSocket::bind(addr(21303)).await.unwrap();
    let leaf = UdpSocket::bind(addr(21311)).await.unwrap();
    let (on_a, on_b) = (
        CanFdSocket::open(va.0).unwrap(),
        CanFdSocket::open(vb.0).unwrap(),
    );
    let sender_a = CanFdSocket::open(va.0).unwrap();
    // The impostor gets what a peer not heard from gets: empty sealed datagrams, once a second.
    let mut buf = [0u8; 2048];
    let len = timeout(Duration::from_secs(3), impostor.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf[0], vxbus_tunnel::seal::SEALED);
    assert!(
        decode_datagram(&buf[..len]).is_err(),
        "sealed is not plain cannelloni"
    );
    // Each learns the other's id from the other's first datagram it opens (B may have started
    // after A's first one went out): frames go to a sealed peer only once it has been heard.
    let heard_each_other = || {
        peer(&a.stats(), "127.0.0.1:21302").rx_bytes > 0
            && peer(&b.stats(), "127.0.0.1:21301").rx_bytes > 0
    };
    for _ in 0..50 {
        if heard_each_other() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        heard_each_other(),
        "A and B heard from each other within 5 s"
    );
    sender_a
        .write_frame(&classic(0x123, &[0x5e]))
        .await
        .unwrap();
    assert_eq!(
        heard(&on_b).await,
        ["123#5E"],
        "B opens A's sealed datagram"
    );
    assert_eq!(datagrams(&leaf).await, ["123#5E"], "the leaf gets it plain");

    // A plain datagram from a peer's address is refused; so is A's own datagram played back.
    let plain = datagram(0, &[Frame::classic(0x666, &[6]).unwrap()]);
    impostor.send_to(&plain, addr(21301)).await.unwrap();
    let replay = buf[..len].to_vec();
    impostor.send_to(&replay, addr(21301)).await.unwrap();
    assert_eq!(heard(&on_a).await, ["123#5E"], "A's own frame only");
    let stats = a.stats();
    let impostor_stats = peer(&stats, "127.0.0.1:21303");
    assert_eq!(impostor_stats.auth_failures, 2);
    assert!(impostor_stats.sealed);
    assert!(
        impostor_stats.dropped >= 1,
        "frames to a peer not heard from are dropped"
    );
    assert!(!peer(&stats, "127.0.0.1:21311").sealed);
    assert_eq!(stats.bus_tx_frames, 0);

    // B with another key: A refuses what B sends, and B what A sends.
    b.stop().await;
    let b = Tunnel::start("b", vb.0, &sealed(21302, &[21301], &[], 'b'))
        .await
        .unwrap();
    let sender_b = CanFdSocket::open(vb.0).unwrap();
    sender_b.write_frame(&classic(0x200, &[2])).await.unwrap();
    assert_eq!(heard(&on_a).await, Vec::<String>::new());
    sender_a.write_frame(&classic(0x124, &[4])).await.unwrap();
    assert_eq!(heard(&on_b).await, ["200#02"], "B's own frame only");
    assert!(peer(&a.stats(), "127.0.0.1:21302").auth_failures >= 1);
    assert!(peer(&b.stats(), "127.0.0.1:21301").auth_failures >= 1);

    // A key file that is not one is refused at start, naming it.
    let bad = keys.path().join("bad.key");
    std::fs::write(&bad, "not a key").unwrap();
    let refused = spec(Transport::Udp, Some(21309), &[], &[])
        .with_key_file(bad.to_str().unwrap())
        .unwrap();
    let started = Tunnel::start("x", va.0, &refused).await;
    assert!(
        matches!(started, Err(StartError::Key { .. })),
        "{:?}",
        started.err()
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classic_bus_passes_on_no_fd_frame_and_no_duplicate() {
    if !kernel_has_can() {
        return;
    }
    let bus = Vcan::classic("kt-cl");
    let tunnel = Tunnel::start(
        "cl",
        bus.0,
        &spec(Transport::Udp, Some(21401), &[], &[21411, 21412]),
    )
    .await
    .unwrap();
    let (leaf1, leaf2) = (
        UdpSocket::bind(addr(21411)).await.unwrap(),
        UdpSocket::bind(addr(21412)).await.unwrap(),
    );
    leaf1.connect(addr(21401)).await.unwrap();
    let on_bus = CanFdSocket::open(bus.0).unwrap();
    // Leaf 1 sends a CAN FD frame between two classic ones, and the network duplicates the
    // datagram: the classic frames reach the bus and leaf 2 once; the FD one goes nowhere.
    let sent = datagram(
        7,
        &[
            Frame::classic(0x100, &[1]).unwrap(),
            Frame::fd(0x101, 0x04, &[2; 12]).unwrap(),
            Frame::classic(0x102, &[3]).unwrap(),
        ],
    );
    leaf1.send(&sent).await.unwrap();
    leaf1.send(&sent).await.unwrap();
    assert_eq!(heard(&on_bus).await, ["100#01", "102#03"]);
    let to_leaf2 = datagrams(&leaf2).await;
    assert_eq!(to_leaf2.len(), 2, "{to_leaf2:?}");
    let stats = tunnel.stats();
    assert_eq!((stats.bus_tx_frames, stats.bus_tx_errors), (2, 1));
    let from_leaf1 = peer(&stats, "127.0.0.1:21411");
    assert_eq!((from_leaf1.duplicates, from_leaf1.reordered), (1, 0));
    tunnel.stop().await;
}
