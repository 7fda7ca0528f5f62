//! A running tunnel: the handle the daemon keeps per bus ([`Tunnel`]), the counters its tasks
//! share with it, and the commands that change its peers while it runs.
//!
//! Owns: starting (sockets bound before `start` returns, so a port in use is the caller's
//! error) and stopping (every socket closed and every task ended when `stop` returns). Must not
//! touch the kernel's links or rules: the bus's interface exists before and after.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use nix::sys::socket::{setsockopt, sockopt};
use tokio::{
    net::{TcpListener, UdpSocket},
    sync::{mpsc, oneshot},
    task::JoinHandle,
};

use crate::{
    bus::BusSocket,
    spec::{FarEnd, Transport, TunnelSpec},
    stats::{PeerCounters, PeerRole, PeerStats, TunnelCounters, TunnelStats},
    tcp, udp,
};

/// Why a tunnel did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot open a CAN socket on {interface}: {source}")]
    Bus {
        interface: String,
        source: std::io::Error,
    },
    #[error("key file {path}: {source}")]
    Key {
        path: String,
        source: crate::seal::KeyError,
    },
}

/// Why a peer was not added or removed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    #[error("peer {0} is already one of the tunnel's peers")]
    Exists(SocketAddr),
    #[error("{0} is not one of the tunnel's peers")]
    Unknown(SocketAddr),
    #[error("peer {0} is the tunnel's own listening address")]
    IsListen(SocketAddr),
    #[error("the tunnel has stopped")]
    Stopped,
}

pub(crate) enum Command {
    Add(SocketAddr, FarEnd, oneshot::Sender<Result<(), PeerError>>),
    Remove(SocketAddr, oneshot::Sender<Result<(), PeerError>>),
}

/// A peer as the tunnel lists it.
pub(crate) struct PeerEntry {
    pub address: String,
    pub role: PeerRole,
    pub counters: Arc<PeerCounters>,
}

/// What the tunnel's tasks and its handle share.
pub(crate) struct Shared {
    pub name: String,
    pub spec: TunnelSpec,
    pub counters: TunnelCounters,
    peers: Mutex<Vec<PeerEntry>>,
}

impl Shared {
    /// Lists a peer, a leaf or a client and gives its counters.
    pub fn add_peer(&self, address: String, role: PeerRole) -> Arc<PeerCounters> {
        let counters = Arc::new(PeerCounters::default());
        counters
            .vxbus
            .store(role == PeerRole::Peer, std::sync::atomic::Ordering::Relaxed);
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(PeerEntry {
                address,
                role,
                counters: counters.clone(),
            });
        counters
    }

    /// Whether `counters` are still those of a far end of the tunnel (not removed).
    pub fn has_peer(&self, counters: &Arc<PeerCounters>) -> bool {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .any(|entry| Arc::ptr_eq(&entry.counters, counters))
    }

    pub fn remove_peer(&self, counters: &Arc<PeerCounters>) {
        self.peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|entry| !Arc::ptr_eq(&entry.counters, counters));
    }
}

/// A bus's tunnel, running. Dropping it stops its tasks; [`stop`](Tunnel::stop) also waits
/// until their sockets are closed.
pub struct Tunnel {
    shared: Arc<Shared>,
    /// Closed to stop the tunnel (its task then ends its connections and returns).
    commands: Option<mpsc::Sender<Command>>,
    task: JoinHandle<()>,
}

impl Tunnel {
    /// Opens the bus socket on `interface`, binds the listening address and starts the tunnel.
    /// `name` names the bus in logs.
    pub async fn start(
        name: &str,
        interface: &str,
        spec: &TunnelSpec,
    ) -> Result<Tunnel, StartError> {
        let key = spec
            .key_file()
            .map(|path| {
                crate::seal::Key::read(path).map_err(|source| StartError::Key {
                    path: path.display().to_string(),
                    source,
                })
            })
            .transpose()?;
        let bus = BusSocket::open(interface).map_err(|source| StartError::Bus {
            interface: interface.to_owned(),
            source,
        })?;
        let (commands, receiver) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            spec: spec.clone(),
            counters: TunnelCounters::default(),
            peers: Mutex::new(Vec::new()),
        });
        let listen_error = |addr| move |source| StartError::Listen { addr, source };
        let task = match (spec.transport(), spec.listen()) {
            (Transport::Udp, Some(addr)) => {
                let socket = UdpSocket::bind(addr).await.map_err(listen_error(addr))?;
                let size = usize::try_from(crate::RECEIVE_BUFFER_BYTES).unwrap_or(1 << 20);
                if setsockopt(&socket, sockopt::RcvBufForce, &size).is_err() {
                    let _ = setsockopt(&socket, sockopt::RcvBuf, &size);
                }
                tokio::spawn(udp::run(shared.clone(), bus, socket, key, receiver))
            }
            (Transport::Udp, None) => unreachable!("a udp TunnelSpec has a listening address"),
            (Transport::Tcp, listen) => {
                let listener = match listen {
                    Some(addr) => Some(TcpListener::bind(addr).await.map_err(listen_error(addr))?),
                    None => None,
                };
                tokio::spawn(tcp::run(shared.clone(), bus, listener, key, receiver))
            }
        };
        tracing::info!("network {name}: tunnel started on {interface}: {spec}");
        Ok(Tunnel {
            shared,
            commands: Some(commands),
            task,
        })
    }

    /// Adds a peer or a leaf while the tunnel runs.
    pub async fn add_peer(&self, peer: SocketAddr, kind: FarEnd) -> Result<(), PeerError> {
        self.command(|reply| Command::Add(peer, kind, reply)).await
    }

    /// Removes a peer or a leaf (a TCP connection to it is closed).
    pub async fn remove_peer(&self, peer: SocketAddr) -> Result<(), PeerError> {
        self.command(|reply| Command::Remove(peer, reply)).await
    }

    async fn command(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), PeerError>>) -> Command,
    ) -> Result<(), PeerError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .as_ref()
            .ok_or(PeerError::Stopped)?
            .send(make(reply))
            .await
            .map_err(|_| PeerError::Stopped)?;
        answer.await.map_err(|_| PeerError::Stopped)?
    }

    /// The counters, now.
    pub fn stats(&self) -> TunnelStats {
        use std::sync::atomic::Ordering::Relaxed;
        let counters = &self.shared.counters;
        let peers = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|entry| {
                // With a key, every vxbus far end is sealed (one that is not is refused).
                let vxbus = match entry.role {
                    PeerRole::Peer => true,
                    PeerRole::Client => entry.counters.vxbus.load(Relaxed),
                    PeerRole::Leaf => false,
                };
                let sealed = self.shared.spec.key_file().is_some() && vxbus;
                PeerStats::read(entry.address.clone(), entry.role, sealed, &entry.counters)
            })
            .collect();
        TunnelStats {
            transport: self.shared.spec.transport(),
            listen: self.shared.spec.listen().map(|addr| addr.to_string()),
            bus_rx_frames: counters.bus_rx_frames.load(Relaxed),
            bus_tx_frames: counters.bus_tx_frames.load(Relaxed),
            bus_tx_errors: counters.bus_tx_errors.load(Relaxed),
            foreign_datagrams: counters.foreign_datagrams.load(Relaxed),
            refused_clients: counters.refused_clients.load(Relaxed),
            peers,
        }
    }

    /// Whether the tunnel's task still runs (it ends only when stopped, or if it panicked).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Stops the tunnel: when this returns, its sockets are closed and its tasks have ended
    /// (aborted if they take more than a few seconds).
    pub async fn stop(mut self) {
        self.commands = None;
        if tokio::time::timeout(Duration::from_secs(5), &mut self.task)
            .await
            .is_err()
        {
            self.task.abort();
            let _ = (&mut self.task).await;
        }
        tracing::info!("network {}: tunnel stopped", self.shared.name);
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// At most one log line per `period` for one kind of event (a flood of foreign datagrams, a
/// peer that keeps refusing).
pub(crate) struct Every {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl Every {
    pub fn new(period: Duration) -> Every {
        Every {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log now; if not, the event is counted as suppressed.
    fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self.last.is_some_and(|last| now - last < self.period) {
            self.suppressed += 1;
            return false;
        }
        self.last = Some(now);
        true
    }

    /// Logs `network NAME: tunnel: MESSAGE` as a warning if it is time, saying how many were
    /// held back since the last line.
    pub fn warn(&mut self, name: &str, message: std::fmt::Arguments<'_>) {
        if self.ready() {
            let more = self.more();
            tracing::warn!("network {name}: tunnel: {message}{more}");
        }
    }

    /// ` (and N more since the last line)`, then resets the count.
    fn more(&mut self) -> String {
        let n = std::mem::take(&mut self.suppressed);
        if n == 0 {
            String::new()
        } else {
            format!(" (and {n} more since the last line)")
        }
    }
}
