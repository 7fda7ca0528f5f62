//! The tunnel's counters: per peer (frames and bytes each way, datagrams lost and reordered,
//! decode errors, frames dropped, last seen) and for the tunnel (frames from and to the bus,
//! datagrams from senders that are no peer). Atomics, written by the tunnel's tasks and read
//! at any time as a [`TunnelStats`] snapshot.
//!
//! Owns: what is counted and how it is shown. Must not touch sockets.

use std::{
    sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use crate::spec::Transport;

/// One peer's counters: a configured peer keeps them across reconnections.
#[derive(Debug, Default)]
pub struct PeerCounters {
    pub tx_frames: AtomicU64,
    /// Bytes sent on the wire (datagrams with headers, or stream bytes).
    pub tx_bytes: AtomicU64,
    pub rx_frames: AtomicU64,
    pub rx_bytes: AtomicU64,
    /// Datagrams the sequence numbers say never came (a late one is taken back off).
    pub lost: AtomicU64,
    /// Datagrams that came after a later one.
    pub reordered: AtomicU64,
    /// Datagrams that came twice (the network duplicated them, or, sealed, someone replayed
    /// them, or a sealed one came later than its sender's replay window): dropped, frames and
    /// all.
    pub duplicates: AtomicU64,
    /// Datagrams or streams that were not cannelloni's format, or carried a frame vxbus
    /// refuses (each dropped whole).
    pub decode_errors: AtomicU64,
    /// Sealed datagrams refused: another key, changed on the way, a clock too far off, or not
    /// sealed (a replay of an authentic one is in `duplicates`).
    pub auth_failures: AtomicU64,
    /// Frames not sent to this peer: its queue was full (a slow TCP peer), or sending failed.
    pub dropped: AtomicU64,
    /// TCP: connections made (a configured peer) or taken (a client), handshake or not.
    pub connects: AtomicU64,
    /// Times the link to this far end started afresh, the gap a restart leaves: over UDP, a
    /// sealed vxbus peer with a new id; a peer numbering afresh (or 128 datagrams or more lost
    /// in a row, which reads the same), or a plain peer sending a 0 or a number behind after
    /// [`SILENCE`](crate::udp) of nothing (what was missed then is not in `lost`; the rules
    /// are in [`seq`](crate::seq)); over TCP, a configured peer connected again after its
    /// connection ended.
    pub restarts: AtomicU64,
    /// TCP: connections that got through the handshake (a restart is one after the first).
    pub established: AtomicU64,
    pub connected: AtomicBool,
    /// A vxbus host (a configured peer, or a client that said so): frames from it are not
    /// sent on to other vxbus hosts.
    pub vxbus: AtomicBool,
    /// Milliseconds since the Unix epoch of the last bytes from this peer; 0 for never.
    pub last_seen_ms: AtomicU64,
}

impl PeerCounters {
    pub fn seen_now(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_seen_ms
            .store(u64::try_from(now.as_millis()).unwrap_or(u64::MAX), Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Relaxed);
    }

    /// A late datagram was counted lost when the one after it came: it was reordered instead.
    pub fn late(&self) {
        self.reordered.fetch_add(1, Relaxed);
        let _ = self
            .lost
            .fetch_update(Relaxed, Relaxed, |lost| Some(lost.saturating_sub(1)));
    }
}

/// The tunnel's own counters.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    /// Frames read from the bus (sent by its other members), each sent to every peer.
    pub bus_rx_frames: AtomicU64,
    /// Frames from peers written to the bus.
    pub bus_tx_frames: AtomicU64,
    /// Frames from peers the bus's interface refused: a full queue, or CAN FD on a classic bus
    /// (such a frame goes to no other far end either).
    pub bus_tx_errors: AtomicU64,
    /// UDP datagrams from addresses that are no peer: dropped, as cannelloni does.
    pub foreign_datagrams: AtomicU64,
    /// TCP clients refused because the tunnel had its maximum.
    pub refused_clients: AtomicU64,
}

/// Where a far end comes from: `tunnel.peers`, `tunnel.leaves`, or a TCP client that connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerRole {
    Peer,
    Leaf,
    Client,
}

impl From<crate::spec::FarEnd> for PeerRole {
    fn from(kind: crate::spec::FarEnd) -> PeerRole {
        match kind {
            crate::spec::FarEnd::Peer => PeerRole::Peer,
            crate::spec::FarEnd::Leaf => PeerRole::Leaf,
        }
    }
}

/// One peer's counters, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    pub address: String,
    pub role: PeerRole,
    /// A vxbus host (frames from it go to leaves only), not a plain cannelloni end.
    pub vxbus: bool,
    /// TCP: connected now. UDP: always true (there is no connection).
    pub connected: bool,
    pub tx_frames: u64,
    pub tx_bytes: u64,
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
    pub decode_errors: u64,
    pub auth_failures: u64,
    /// Datagrams to and from it are sealed (`tunnel.key`).
    pub sealed: bool,
    pub dropped: u64,
    pub connects: u64,
    /// Times the link started afresh after a gap (see [`PeerCounters::restarts`]).
    pub restarts: u64,
    /// Seconds since the last bytes from the peer; none if it has sent nothing.
    pub last_seen_secs: Option<f64>,
}

impl PeerStats {
    pub fn read(
        address: String,
        role: PeerRole,
        sealed: bool,
        counters: &PeerCounters,
    ) -> PeerStats {
        let last = counters.last_seen_ms.load(Relaxed);
        let last_seen_secs = (last > 0).then(|| {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            now.saturating_sub(Duration::from_millis(last))
                .as_secs_f64()
        });
        PeerStats {
            address,
            role,
            vxbus: counters.vxbus.load(Relaxed),
            connected: counters.connected.load(Relaxed),
            tx_frames: counters.tx_frames.load(Relaxed),
            tx_bytes: counters.tx_bytes.load(Relaxed),
            rx_frames: counters.rx_frames.load(Relaxed),
            rx_bytes: counters.rx_bytes.load(Relaxed),
            lost: counters.lost.load(Relaxed),
            reordered: counters.reordered.load(Relaxed),
            duplicates: counters.duplicates.load(Relaxed),
            decode_errors: counters.decode_errors.load(Relaxed),
            auth_failures: counters.auth_failures.load(Relaxed),
            sealed,
            dropped: counters.dropped.load(Relaxed),
            connects: counters.connects.load(Relaxed),
            restarts: counters.restarts.load(Relaxed),
            last_seen_secs,
        }
    }
}

/// A tunnel's counters, read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TunnelStats {
    pub transport: Transport,
    pub listen: Option<String>,
    pub bus_rx_frames: u64,
    pub bus_tx_frames: u64,
    pub bus_tx_errors: u64,
    pub foreign_datagrams: u64,
    pub refused_clients: u64,
    pub peers: Vec<PeerStats>,
}
