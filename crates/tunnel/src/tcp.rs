//! The TCP tunnel: cannelloni's stream. A server for any number of clients (up to
//! [`MAX_CLIENTS`]) on the listening address, and a client of each configured peer that
//! reconnects with backoff when the peer goes away.
//!
//! One hub task owns the bus socket and the connections' queues, so frames keep their order per
//! sender: a frame from the bus goes to every connection; a frame from a connection goes to
//! the bus and to every *other* connection, but never from a vxbus host to another (they form
//! a full mesh). A connection to a configured peer starts with [`VXBUS_MARK`] after the hello,
//! so the vxbus host that accepts it knows; any other client is a cannelloni leaf. Each connection has a task that writes its queue
//! (bounded: a slow peer loses frames, counted, and never grows the daemon's memory) and reads
//! its frames for the hub. A connection whose stream is not cannelloni's ends.
//!
//! Owns: connections, handshakes, backoff. Must not touch other buses.

use std::{
    collections::{hash_map::Entry, HashMap},
    net::SocketAddr,
    sync::{atomic::Ordering::Relaxed, Arc},
    time::Duration,
};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
    task::{AbortHandle, JoinSet},
    time::{timeout, Instant},
};
use tokio_util::codec::FramedRead;

use crate::{
    bus::{bus_failed, BusSocket, Flow},
    spec::FarEnd,
    stats::{PeerCounters, PeerRole},
    tunnel::{Command, Every, PeerError, Shared},
    wire::{Frame, StreamCodec, StreamError, TCP_HELLO, VXBUS_MARK},
};

/// Clients the server takes at once; more are refused (counted).
pub const MAX_CLIENTS: usize = 64;
/// Frames waiting for one connection (76 bytes each); more are dropped (counted).
pub const QUEUE: usize = 4096;
/// Frames written to a connection in one write.
const WRITE_BATCH: usize = 64;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an accepted connection's mark may follow its hello.
const MARK_WAIT: Duration = Duration::from_millis(200);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection that lasted this long resets the backoff.
const STABLE: Duration = Duration::from_secs(10);
/// Events the hub takes from one source before looking at the others.
const DRAIN: usize = 64;

/// What connection tasks tell the hub.
enum Event {
    Up {
        key: u64,
        queue: mpsc::Sender<Frame>,
        counters: Arc<PeerCounters>,
    },
    Frame {
        key: u64,
        frame: Frame,
    },
    Down {
        key: u64,
    },
}

struct Conn {
    queue: mpsc::Sender<Frame>,
    counters: Arc<PeerCounters>,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    bus: BusSocket,
    listener: Option<TcpListener>,
    mut commands: mpsc::Receiver<Command>,
) {
    let (events_tx, mut events) = mpsc::channel::<Event>(QUEUE);
    let keys = Arc::new(std::sync::atomic::AtomicU64::new(0));
    // Every connection's task lives in this set: dropping it (the tunnel stopped) ends them.
    let mut tasks = JoinSet::new();
    let mut dialers: HashMap<SocketAddr, (AbortHandle, Arc<PeerCounters>)> = HashMap::new();
    if let Some(listener) = listener {
        tasks.spawn(serve(
            shared.clone(),
            listener,
            events_tx.clone(),
            keys.clone(),
        ));
    }
    let dial = |addr: SocketAddr, kind: FarEnd, tasks: &mut JoinSet<()>| {
        let counters = shared.add_peer(addr.to_string(), kind.into());
        let task = tasks.spawn(dial(
            shared.clone(),
            addr,
            counters.clone(),
            events_tx.clone(),
            keys.clone(),
        ));
        (task, counters)
    };
    for &addr in shared.spec.peers() {
        dialers.insert(addr, dial(addr, FarEnd::Peer, &mut tasks));
    }
    for &addr in shared.spec.leaves() {
        dialers.insert(addr, dial(addr, FarEnd::Leaf, &mut tasks));
    }
    let mut conns: HashMap<u64, Conn> = HashMap::new();
    let mut error_log = Every::new(Duration::from_secs(10));
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                None => {
                    // Stopped: every connection's task ends before the tunnel says it has.
                    tasks.shutdown().await;
                    return;
                }
                Some(Command::Add(addr, kind, reply)) => {
                    let answer = match dialers.entry(addr) {
                        Entry::Occupied(_) => Err(PeerError::Exists(addr)),
                        Entry::Vacant(_) if shared.spec.listen() == Some(addr) => {
                            Err(PeerError::IsListen(addr))
                        }
                        Entry::Vacant(entry) => {
                            entry.insert(dial(addr, kind, &mut tasks));
                            tracing::info!("network {}: tunnel {kind:?} {addr} added", shared.name);
                            Ok(())
                        }
                    };
                    let _ = reply.send(answer);
                }
                Some(Command::Remove(addr, reply)) => {
                    let answer = match dialers.remove(&addr) {
                        Some((task, counters)) => {
                            task.abort();
                            shared.remove_peer(&counters);
                            conns.retain(|_, conn| !Arc::ptr_eq(&conn.counters, &counters));
                            tracing::info!("network {}: tunnel peer {addr} removed", shared.name);
                            Ok(())
                        }
                        None => Err(PeerError::Unknown(addr)),
                    };
                    let _ = reply.send(answer);
                }
            },
            read = bus.read() => {
                let mut flow = on_bus_read(&shared, &conns, read, &mut error_log).await;
                for _ in 1..DRAIN {
                    if flow != Flow::Go {
                        break;
                    }
                    match bus.try_read() {
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                        read => flow = on_bus_read(&shared, &conns, read, &mut error_log).await,
                    }
                }
                if flow == Flow::Gone {
                    tasks.shutdown().await;
                    return;
                }
            }
            Some(event) = events.recv() => {
                on_event(&shared, &bus, &mut conns, event).await;
                for _ in 1..DRAIN {
                    let Ok(event) = events.try_recv() else { break };
                    on_event(&shared, &bus, &mut conns, event).await;
                }
            }
        }
    }
}

async fn on_bus_read(
    shared: &Shared,
    conns: &HashMap<u64, Conn>,
    read: std::io::Result<Option<Frame>>,
    error_log: &mut Every,
) -> Flow {
    match read {
        Ok(Some(frame)) => {
            shared.counters.bus_rx_frames.fetch_add(1, Relaxed);
            fan_out(conns, &frame, None);
            Flow::Go
        }
        Ok(None) => Flow::Go,
        Err(err) => bus_failed(&shared.name, &err, error_log).await,
    }
}

async fn on_event(shared: &Shared, bus: &BusSocket, conns: &mut HashMap<u64, Conn>, event: Event) {
    match event {
        Event::Up {
            key,
            queue,
            counters,
        } => {
            conns.insert(key, Conn { queue, counters });
        }
        Event::Down { key } => {
            conns.remove(&key);
        }
        Event::Frame { key, frame } => {
            // From a connection already gone (its peer removed): nowhere to come from.
            if !conns.contains_key(&key) {
                return;
            }
            match bus.write(&frame).await {
                Ok(()) => shared.counters.bus_tx_frames.fetch_add(1, Relaxed),
                Err(_) => shared.counters.bus_tx_errors.fetch_add(1, Relaxed),
            };
            fan_out(conns, &frame, Some(key));
        }
    }
}

/// Queues `frame` for every connection it must reach: all for a frame from the bus; for one
/// from connection `from`, all others but, if `from` is a vxbus host, the other vxbus hosts.
/// A full queue drops the frame, counted.
fn fan_out(conns: &HashMap<u64, Conn>, frame: &Frame, from: Option<u64>) {
    let from_vxbus = from
        .and_then(|key| conns.get(&key))
        .is_some_and(|conn| conn.counters.vxbus.load(Relaxed));
    for (key, conn) in conns {
        if Some(*key) == from || (from_vxbus && conn.counters.vxbus.load(Relaxed)) {
            continue;
        }
        if conn.queue.try_send(*frame).is_err() {
            conn.counters.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// Takes clients on the listening address.
async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    events: mpsc::Sender<Event>,
    keys: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut clients = JoinSet::new();
    let mut error_log = Every::new(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = clients.join_next() => continue,
        };
        let (stream, from) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                error_log.warn(&shared.name, format_args!("accept: {err}"));
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if clients.len() >= MAX_CLIENTS {
            shared.counters.refused_clients.fetch_add(1, Relaxed);
            error_log.warn(
                &shared.name,
                format_args!("refused client {from}: {MAX_CLIENTS} are connected"),
            );
            continue;
        }
        let counters = shared.add_peer(from.to_string(), PeerRole::Client);
        let key = keys.fetch_add(1, Relaxed);
        let (shared, events) = (shared.clone(), events.clone());
        clients.spawn(async move {
            counters.connects.fetch_add(1, Relaxed);
            tracing::info!("network {}: tunnel client {from} connected", shared.name);
            let result = connection(stream, key, &counters, &events, true).await;
            shared.remove_peer(&counters);
            tracing::info!(
                "network {}: tunnel client {from} gone: {}",
                shared.name,
                ended(&result)
            );
        });
    }
}

/// Connects to a configured peer, again and again, with backoff.
async fn dial(
    shared: Arc<Shared>,
    addr: SocketAddr,
    counters: Arc<PeerCounters>,
    events: mpsc::Sender<Event>,
    keys: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        match timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                counters.connects.fetch_add(1, Relaxed);
                let again = if failures > 0 {
                    format!(" after {failures} failed attempt(s)")
                } else {
                    String::new()
                };
                tracing::info!(
                    "network {}: tunnel connected to peer {addr}{again}",
                    shared.name
                );
                failures = 0;
                let started = Instant::now();
                let key = keys.fetch_add(1, Relaxed);
                let result = connection(stream, key, &counters, &events, false).await;
                tracing::warn!(
                    "network {}: tunnel connection to peer {addr} ended: {}; connecting again",
                    shared.name,
                    ended(&result)
                );
                if started.elapsed() >= STABLE {
                    backoff = BACKOFF_MIN;
                }
            }
            Ok(Err(err)) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(
                        "network {}: tunnel cannot connect to peer {addr}: {err}; trying again \
                         with backoff up to {BACKOFF_MAX:?}",
                        shared.name
                    );
                }
            }
            Err(_) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(
                        "network {}: tunnel: peer {addr} did not answer in {CONNECT_TIMEOUT:?}; \
                         trying again",
                        shared.name
                    );
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn ended(result: &Result<(), StreamError>) -> String {
    match result {
        Ok(()) => "closed by the peer".to_owned(),
        Err(err) => err.to_string(),
    }
}

/// One connection, after connect or accept: the hello both ways, then frames both ways until
/// either side ends. The hub knows of it between `Up` and `Down`. An `accepted` connection is
/// a vxbus host if [`VXBUS_MARK`] follows its hello; that is known before the hub is told.
async fn connection(
    mut stream: TcpStream,
    key: u64,
    counters: &Arc<PeerCounters>,
    events: &mpsc::Sender<Event>,
    accepted: bool,
) -> Result<(), StreamError> {
    stream.set_nodelay(true)?;
    let mut hello = [0u8; TCP_HELLO.len()];
    // A vxbus host calling a configured peer says so (a client that is not counted as vxbus
    // is a leaf, or a peer that has yet to say so).
    let announce = counters.vxbus.load(Relaxed);
    let handshake = async {
        stream.write_all(TCP_HELLO).await?;
        if announce {
            stream.write_all(&VXBUS_MARK).await?;
        }
        stream.read_exact(&mut hello).await
    };
    match timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(_)) if &hello == TCP_HELLO => {}
        Ok(Ok(_)) => {
            counters.decode_errors.fetch_add(1, Relaxed);
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "the peer's hello is not CANNELLONIv1",
            )
            .into());
        }
        Ok(Err(err)) => return Err(err.into()),
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no hello from the peer in 5 s",
            )
            .into())
        }
    }
    counters.seen_now();
    // A vxbus host sends its mark with its hello: bytes that come within MARK_WAIT of it. Any
    // other bytes are a leaf's first frames, kept for the reader.
    let mut first = BytesMut::new();
    if accepted {
        let mut byte = [0u8; 1];
        while first.len() < VXBUS_MARK.len() && VXBUS_MARK.starts_with(&first) {
            match timeout(MARK_WAIT, stream.read(&mut byte)).await {
                Ok(Ok(1)) => first.extend_from_slice(&byte),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => break,
            }
        }
        if first[..] == VXBUS_MARK {
            counters.vxbus.store(true, Relaxed);
            first.clear();
        }
    }
    let (queue, mut frames_out) = mpsc::channel(QUEUE);
    let up = Event::Up {
        key,
        queue,
        counters: counters.clone(),
    };
    if events.send(up).await.is_err() {
        return Ok(());
    }
    counters.connected.store(true, Relaxed);
    let (read, mut write) = stream.into_split();
    let reading = async {
        let mut frames_in = FramedRead::new(read, StreamCodec);
        frames_in.read_buffer_mut().extend_from_slice(&first);
        while let Some(frame) = frames_in.next().await {
            let frame = match frame {
                Ok(frame) => frame,
                Err(err) => {
                    if matches!(err, StreamError::Wire(_)) {
                        counters.decode_errors.fetch_add(1, Relaxed);
                    }
                    return Err(err);
                }
            };
            counters.seen_now();
            counters.rx_frames.fetch_add(1, Relaxed);
            PeerCounters::add(&counters.rx_bytes, frame.encoded_len());
            if events.send(Event::Frame { key, frame }).await.is_err() {
                break;
            }
        }
        Ok(())
    };
    let writing = async {
        let mut buf = BytesMut::new();
        while let Some(frame) = frames_out.recv().await {
            let mut count = 1;
            frame.encode(&mut buf);
            while count < WRITE_BATCH {
                let Ok(frame) = frames_out.try_recv() else {
                    break;
                };
                frame.encode(&mut buf);
                count += 1;
            }
            write.write_all(&buf).await?;
            PeerCounters::add(&counters.tx_frames, count);
            PeerCounters::add(&counters.tx_bytes, buf.len());
            buf.clear();
        }
        Ok::<(), StreamError>(())
    };
    let result = tokio::select! {
        result = reading => result,
        result = writing => result,
    };
    counters.connected.store(false, Relaxed);
    let _ = events.send(Event::Down { key }).await;
    result
}
