//! The UDP tunnel: one socket, cannelloni's datagrams to and from the configured peers.
//!
//! One task does everything, so frames keep their order per sender: a frame from the bus goes
//! to every far end; a frame from one goes to the bus and to every *other* far end, but never
//! from a vxbus peer to another (they form a full mesh, see [`TunnelSpec`](crate::TunnelSpec)).
//! Frames for a peer wait in its datagram until the loop has taken everything that was ready
//! (bus and socket), then go out at once: an idle link sends each frame alone, a loaded one
//! fills datagrams. With `tunnel.batch_delay`, a datagram waits up to that long to fill.
//! Datagrams from addresses that are no peer are counted and dropped. With `tunnel.key`,
//! datagrams to and from vxbus peers are sealed ([`crate::seal`]); leaves stay plain.
//!
//! Owns: the peers' datagram builders and sequence numbers. Must not touch other buses.

use std::{
    hash::{DefaultHasher, Hash, Hasher},
    net::SocketAddr,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use tokio::{net::UdpSocket, sync::mpsc, time::Instant};

use crate::{
    bus::{bus_failed, BusSocket, Flow},
    seal::{new_id, Key, OpenError, Opened, Openers, Sealer, NO_ONE, OVERHEAD},
    seq::{Arrival, SeqTracker},
    spec::FarEnd,
    stats::PeerCounters,
    tunnel::{Command, Every, PeerError, Shared},
    wire::{decode_datagram, DatagramBuilder, Frame, MAX_DATAGRAM},
};

/// Events taken from one source before the pending datagrams go out: enough to batch under
/// load, few enough that neither the bus nor the socket waits long for the other.
const DRAIN: usize = 64;
/// A plain peer silent this long may have restarted: its sequence numbers may start afresh.
const SILENCE: Duration = Duration::from_secs(2);
/// The largest datagram taken (UDP's own limit): the buffer is fixed.
const RECEIVE_BUFFER: usize = 65_536;
/// With a key: a vxbus peer that has had nothing from us for this long gets an empty datagram,
/// so that it knows our id (and a peer that restarted learns it again).
const KEEPALIVE: Duration = Duration::from_secs(1);

struct Peer {
    addr: SocketAddr,
    /// A vxbus host (`tunnel.peers`), not a leaf.
    vxbus: bool,
    counters: Arc<PeerCounters>,
    pending: DatagramBuilder,
    /// When the oldest frame in `pending` came.
    since: Option<Instant>,
    seq_out: u8,
    seq_in: SeqTracker,
    last_in: Option<Instant>,
    /// With a key: this vxbus peer's id (learned from what it sent), and when we last sent it
    /// anything.
    their_id: Option<u64>,
    last_out: Option<Instant>,
}

struct Udp {
    shared: Arc<Shared>,
    bus: BusSocket,
    socket: UdpSocket,
    peers: Vec<Peer>,
    delay: Duration,
    foreign_log: Every,
    error_log: Every,
    /// With `tunnel.key`: seals and opens the vxbus peers' datagrams.
    sealer: Option<Sealer>,
    /// This run's id, for sealed datagrams.
    id: u64,
    /// The replay windows of the vxbus peers that sealed datagrams come from, by their ids.
    openers: Openers,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    bus: BusSocket,
    socket: UdpSocket,
    key: Option<Key>,
    mut commands: mpsc::Receiver<Command>,
) {
    let mut udp = Udp {
        sealer: key.as_ref().map(Sealer::new),
        id: new_id(),
        openers: Openers::default(),
        delay: shared.spec.batch_delay(),
        peers: Vec::new(),
        shared: shared.clone(),
        bus,
        socket,
        foreign_log: Every::new(Duration::from_secs(60)),
        error_log: Every::new(Duration::from_secs(10)),
    };
    for &addr in shared.spec.peers() {
        udp.add(addr, FarEnd::Peer);
    }
    for &addr in shared.spec.leaves() {
        udp.add(addr, FarEnd::Leaf);
    }
    let mut buf = vec![0u8; RECEIVE_BUFFER];
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let deadline = udp.deadline();
        tokio::select! {
            command = commands.recv() => match command {
                None => return,
                Some(Command::Add(addr, kind, reply)) => {
                    let _ = reply.send(udp.add_checked(addr, kind));
                }
                Some(Command::Remove(addr, reply)) => {
                    let _ = reply.send(udp.remove(addr));
                }
            },
            read = udp.bus.read() => {
                let mut flow = udp.on_bus_read(read).await;
                for _ in 1..DRAIN {
                    if flow != Flow::Go {
                        break;
                    }
                    match udp.bus.try_read() {
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                        read => flow = udp.on_bus_read(read).await,
                    }
                }
                if flow == Flow::Gone {
                    return;
                }
            }
            received = udp.socket.recv_from(&mut buf) => {
                udp.on_datagram(received, &buf).await;
                for _ in 1..DRAIN {
                    match udp.socket.try_recv_from(&mut buf) {
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                        received => udp.on_datagram(received, &buf).await,
                    }
                }
            }
            () = sleep_until(deadline), if deadline.is_some() => {}
            _ = keepalive.tick(), if udp.sealer.is_some() => {}
        }
        udp.flush().await;
        if udp.sealer.is_some() {
            // A peer whose id was just learned is answered at once; the others when due.
            udp.keep_alive().await;
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline).await;
    }
}

impl Udp {
    fn add(&mut self, addr: SocketAddr, kind: FarEnd) {
        let counters = self.shared.add_peer(addr.to_string(), kind.into());
        counters.connected.store(true, Relaxed);
        // A datagram must fit an Ethernet frame: IPv6's header is 20 bytes longer than IPv4's,
        // and a sealed datagram has its own.
        let mut max = MAX_DATAGRAM;
        if addr.is_ipv6() {
            max -= 20;
        }
        if let (Some(_), FarEnd::Peer) = (&self.sealer, kind) {
            max -= OVERHEAD;
        }
        self.peers.push(Peer {
            their_id: None,
            last_out: None,
            addr,
            vxbus: kind == FarEnd::Peer,
            counters,
            pending: DatagramBuilder::new(max),
            since: None,
            seq_out: 0,
            seq_in: SeqTracker::default(),
            last_in: None,
        });
    }

    fn add_checked(&mut self, addr: SocketAddr, kind: FarEnd) -> Result<(), PeerError> {
        if self.peers.iter().any(|peer| peer.addr == addr) {
            return Err(PeerError::Exists(addr));
        }
        if self.shared.spec.listen() == Some(addr) {
            return Err(PeerError::IsListen(addr));
        }
        self.add(addr, kind);
        tracing::info!("network {}: tunnel {kind:?} {addr} added", self.shared.name);
        Ok(())
    }

    fn remove(&mut self, addr: SocketAddr) -> Result<(), PeerError> {
        let at = self
            .peers
            .iter()
            .position(|peer| peer.addr == addr)
            .ok_or(PeerError::Unknown(addr))?;
        let peer = self.peers.remove(at);
        self.shared.remove_peer(&peer.counters);
        tracing::info!("network {}: tunnel peer {addr} removed", self.shared.name);
        Ok(())
    }

    /// When the oldest waiting frame must go, with a batching delay.
    fn deadline(&self) -> Option<Instant> {
        if self.delay.is_zero() {
            return None;
        }
        let oldest = self.peers.iter().filter_map(|peer| peer.since).min()?;
        Some(oldest + self.delay)
    }

    async fn on_bus_read(&mut self, read: std::io::Result<Option<Frame>>) -> Flow {
        match read {
            Ok(Some(frame)) => {
                self.shared.counters.bus_rx_frames.fetch_add(1, Relaxed);
                self.queue(&frame, None).await;
                Flow::Go
            }
            Ok(None) => Flow::Go,
            Err(err) => bus_failed(&self.shared.name, &err, &mut self.error_log).await,
        }
    }

    async fn on_datagram(&mut self, received: std::io::Result<(usize, SocketAddr)>, buf: &[u8]) {
        let (len, from) = match received {
            // A dual-stack socket ([::]) sees IPv4 senders as ::ffff:a.b.c.d.
            Ok((len, from)) => (len, SocketAddr::new(from.ip().to_canonical(), from.port())),
            Err(err) => {
                // ICMP port unreachable from a peer that is down comes back as a receive error.
                tracing::debug!("network {}: tunnel: receive: {err}", self.shared.name);
                return;
            }
        };
        let Some(at) = self.peers.iter().position(|peer| peer.addr == from) else {
            self.shared.counters.foreign_datagrams.fetch_add(1, Relaxed);
            self.foreign_log.warn(
                &self.shared.name,
                format_args!("dropped a datagram from {from}, which is no peer"),
            );
            return;
        };
        let bytes = buf.get(..len).unwrap_or_default();
        let now = Instant::now();
        let (id, openers) = (self.id, &mut self.openers);
        let peer = &mut self.peers[at];
        let opened;
        let mut restarted = false;
        let sealed = self.sealer.is_some() && peer.vxbus;
        let bytes = match (&self.sealer, peer.vxbus) {
            (Some(sealer), true) => {
                let checked = sealer.open(bytes).and_then(|opened| {
                    check_sealed(id, &opened)?;
                    openers.take(opened.from, opened.counter)?;
                    Ok(opened)
                });
                match checked {
                    Ok(checked) => {
                        if peer.their_id != Some(checked.from) {
                            // A peer heard from for the first time, or after its restart: it
                            // learns our id from the answer, sent at once.
                            restarted = peer.their_id.is_some();
                            peer.their_id = Some(checked.from);
                            peer.last_out = None;
                        }
                        opened = checked.plain;
                        &opened[..]
                    }
                    Err(OpenError::Replay) => {
                        // Authentic, and taken before (or older than the replay window): a
                        // copy, the network's or someone's.
                        peer.counters.duplicates.fetch_add(1, Relaxed);
                        self.error_log.warn(
                            &self.shared.name,
                            format_args!(
                                "dropped a copy of a datagram from peer {from} (duplicated by \
                                 the network, or replayed)"
                            ),
                        );
                        return;
                    }
                    Err(err) => {
                        peer.counters.auth_failures.fetch_add(1, Relaxed);
                        self.error_log.warn(
                            &self.shared.name,
                            format_args!("refused a datagram from peer {from}: {err}"),
                        );
                        return;
                    }
                }
            }
            _ => bytes,
        };
        peer.counters.seen_now();
        PeerCounters::add(&peer.counters.rx_bytes, len);
        // A sealed peer's restart shows in its id; after a silence, its numbers only say what
        // was lost meanwhile.
        let silent = !sealed && peer.last_in.is_some_and(|last| now - last > SILENCE);
        peer.last_in = Some(now);
        if restarted {
            // A new run of the peer numbers its datagrams afresh.
            peer.seq_in.reset();
            peer.counters.restarts.fetch_add(1, Relaxed);
        }
        let datagram = match decode_datagram(bytes) {
            Ok(datagram) => datagram,
            Err(err) => {
                peer.counters.decode_errors.fetch_add(1, Relaxed);
                self.error_log.warn(
                    &self.shared.name,
                    format_args!("dropped a datagram from {from}: {err}"),
                );
                return;
            }
        };
        let fingerprint = {
            let mut hasher = DefaultHasher::new();
            bytes.hash(&mut hasher);
            hasher.finish()
        };
        let arrival = match silent {
            true => peer
                .seq_in
                .arrive_after_silence(datagram.seq, fingerprint, now.into_std()),
            false => peer
                .seq_in
                .arrive(datagram.seq, fingerprint, now.into_std()),
        };
        match arrival {
            Arrival::First | Arrival::InOrder | Arrival::Stale => {}
            Arrival::Ahead { missing } => {
                peer.counters.lost.fetch_add(u64::from(missing), Relaxed);
            }
            Arrival::Late => peer.counters.late(),
            Arrival::Restart => {
                peer.counters.restarts.fetch_add(1, Relaxed);
            }
            Arrival::Duplicate => {
                // Its frames are on the bus already: once is the promise.
                peer.counters.duplicates.fetch_add(1, Relaxed);
                return;
            }
        }
        PeerCounters::add(&peer.counters.rx_frames, datagram.frames.len());
        for frame in &datagram.frames {
            if self
                .bus
                .write_from_far_end(frame, &self.shared.counters)
                .await
            {
                self.queue(frame, Some(at)).await;
            }
        }
    }

    /// With a key: an empty datagram to each vxbus peer that has had nothing from us for
    /// [`KEEPALIVE`] (or whose id we just learned), so that it knows ours.
    async fn keep_alive(&mut self) {
        let now = Instant::now();
        for at in 0..self.peers.len() {
            let peer = &self.peers[at];
            // `last_out` is taken when a datagram leaves, a little after its tick: a quarter
            // of the period's slack keeps one a second (without it, often one each two).
            let due = peer
                .last_out
                .is_none_or(|last| now - last >= KEEPALIVE * 3 / 4);
            if peer.vxbus && peer.since.is_none() && due {
                self.send(at).await;
            }
        }
    }

    /// Puts `frame` in the datagram of every far end it must reach: all of them for a frame from
    /// the bus; for one from far end `from`, all others but, if `from` is a vxbus peer, the other
    /// vxbus peers. A full datagram goes out first.
    async fn queue(&mut self, frame: &Frame, from: Option<usize>) {
        let now = Instant::now();
        let from_vxbus = from.is_some_and(|from| self.peers[from].vxbus);
        for at in 0..self.peers.len() {
            if Some(at) == from || (from_vxbus && self.peers[at].vxbus) {
                continue;
            }
            if self.sealer.is_some() && self.peers[at].vxbus && self.peers[at].their_id.is_none() {
                // A sealed peer not heard from yet: frames to it could not be bound to it.
                self.peers[at].counters.dropped.fetch_add(1, Relaxed);
                continue;
            }
            if !self.peers[at].pending.fits(frame) {
                self.send(at).await;
            }
            let peer = &mut self.peers[at];
            peer.pending.push(frame);
            peer.since.get_or_insert(now);
        }
    }

    /// Sends every waiting datagram that is due (all of them without a batching delay).
    async fn flush(&mut self) {
        let now = Instant::now();
        for at in 0..self.peers.len() {
            let due = match self.peers[at].since {
                None => false,
                Some(since) => self.delay.is_zero() || now >= since + self.delay,
            };
            if due {
                self.send(at).await;
            }
        }
    }

    async fn send(&mut self, at: usize) {
        let peer = &mut self.peers[at];
        let count = usize::from(peer.pending.count());
        let mut datagram = peer.pending.finish(peer.seq_out).to_vec();
        peer.seq_out = peer.seq_out.wrapping_add(1);
        peer.since = None;
        if let (Some(sealer), true) = (&mut self.sealer, peer.vxbus) {
            datagram = sealer.seal(self.id, peer.their_id.unwrap_or(NO_ONE), &datagram);
            peer.last_out = Some(Instant::now());
        }
        match self.socket.send_to(&datagram, peer.addr).await {
            Ok(sent) => {
                PeerCounters::add(&peer.counters.tx_frames, count);
                PeerCounters::add(&peer.counters.tx_bytes, sent);
            }
            Err(err) => {
                PeerCounters::add(&peer.counters.dropped, count);
                self.error_log.warn(
                    &self.shared.name,
                    format_args!("sending to {} failed: {err}", peer.addr),
                );
            }
        }
    }
}

/// Whether an authentic sealed datagram is ours to take: addressed to us (or, empty, to no one
/// yet), and not one of ours played back to us.
fn check_sealed(id: u64, opened: &Opened) -> Result<(), OpenError> {
    if opened.from == id || (opened.to != id && opened.to != NO_ONE) {
        return Err(OpenError::NotForUs);
    }
    // A cannelloni datagram's frame count is its bytes 3 and 4.
    if opened.to == NO_ONE && opened.plain.get(3..5) != Some(&[0, 0][..]) {
        return Err(OpenError::Unaddressed);
    }
    Ok(())
}
