//! The TCP tunnel: cannelloni's stream. A server for any number of clients (up to
//! [`MAX_CLIENTS`]) on the listening address, and a client of each configured peer that
//! reconnects with backoff when the peer goes away.
//!
//! One hub task owns the bus socket and the connections' queues, so frames keep their order per
//! sender: a frame from the bus goes to every connection; a frame from a connection goes to
//! the bus and to every *other* connection, but never from a vxbus host to another (they form
//! a full mesh). A connection to a configured peer starts with [`VXBUS_MARK`] after the hello,
//! so the vxbus host that accepts it knows; any other client is a cannelloni leaf. With
//! `tunnel.key`, the mark is [`VXBUS_SEALED_MARK`] and the stream between the two vxbus hosts
//! is sealed records (see [`crate::seal`]); a vxbus host that says otherwise than this bus
//! does is refused. Leaves stay plain. Each connection has a task that writes its queue
//! (bounded: a slow peer loses frames, counted, and never grows the daemon's memory) and reads
//! its frames for the hub. A connection whose stream is not cannelloni's ends.
//!
//! Owns: connections, handshakes, backoff. Must not touch other buses.

use std::{
    collections::{hash_map::Entry, HashMap},
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering::Relaxed},
        Arc,
    },
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
    seal::{
        Key, OwnIds, RecordCodec, StreamHandshake, StreamOpener, StreamSealer, MAX_RECORD, OVERHEAD,
    },
    spec::FarEnd,
    stats::{PeerCounters, PeerRole},
    tunnel::{Command, Every, PeerError, Shared},
    wire::{Frame, StreamCodec, StreamError, TCP_HELLO, VXBUS_MARK, VXBUS_SEALED_MARK},
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
    key: Option<Key>,
    mut commands: mpsc::Receiver<Command>,
) {
    let key = key.map(|key| {
        Arc::new(Sealing {
            key,
            own: OwnIds::default(),
        })
    });
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
            key.clone(),
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
            key.clone(),
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
            // A connection whose far end was removed after it said Up: its task is gone.
            if !queue.is_closed() && shared.has_peer(&counters) {
                conns.insert(key, Conn { queue, counters });
            }
        }
        Event::Down { key } => {
            conns.remove(&key);
        }
        Event::Frame { key, frame } => {
            // From a connection already gone (its peer removed): nowhere to come from.
            if !conns.contains_key(&key) {
                return;
            }
            if bus.write_from_far_end(&frame, &shared.counters).await {
                fan_out(conns, &frame, Some(key));
            }
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
    seal_key: Option<Arc<Sealing>>,
) {
    let mut clients = JoinSet::new();
    let mut error_log = Every::new(Duration::from_secs(10));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = clients.join_next() => continue,
        };
        // Clients that ended are not counted against the limit.
        while clients.try_join_next().is_some() {}
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
        let (shared, events, seal_key) = (shared.clone(), events.clone(), seal_key.clone());
        clients.spawn(async move {
            counters.connects.fetch_add(1, Relaxed);
            tracing::info!("network {}: tunnel client {from} connected", shared.name);
            let accept = Accept {
                plain_allowed: shared.spec.takes_plain_client(from.ip()),
                refused: &shared.counters.refused_clients,
            };
            let result = connection(
                stream,
                key,
                &counters,
                &events,
                Some(accept),
                seal_key.as_deref(),
            )
            .await;
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
    seal_key: Option<Arc<Sealing>>,
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
                let result =
                    connection(stream, key, &counters, &events, None, seal_key.as_deref()).await;
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

/// One sealed record from `stream` (its sealed bytes); `None` for a length out of bounds.
async fn read_record(stream: &mut TcpStream) -> std::io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len));
    if !(OVERHEAD..=MAX_RECORD).contains(&len) {
        return Ok(None);
    }
    let mut record = vec![0u8; len];
    stream.read_exact(&mut record).await?;
    Ok(Some(record))
}

/// A tunnel's key, and the ids of its sealed connections (a hello from one is refused).
struct Sealing {
    key: Key,
    own: OwnIds,
}

/// What a connection taken on the listening address needs to know of its client.
struct Accept<'a> {
    /// Whether the client may stay if it says it is no vxbus host (`tunnel.clients`).
    plain_allowed: bool,
    /// The tunnel's count of refused clients.
    refused: &'a std::sync::atomic::AtomicU64,
}

fn invalid(message: impl Into<String>) -> StreamError {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.into()).into()
}

fn timed_out(message: &str) -> StreamError {
    std::io::Error::new(std::io::ErrorKind::TimedOut, message).into()
}

/// One connection, after connect or accept: the hello both ways, then frames both ways until
/// either side ends. The hub knows of it between `Up` and `Down`. An `accepted` connection is
/// a vxbus host if [`VXBUS_MARK`] or [`VXBUS_SEALED_MARK`] follows its hello; that is known
/// before the hub is told. With `seal_key`, a connection between vxbus hosts is sealed.
async fn connection(
    mut stream: TcpStream,
    key: u64,
    counters: &Arc<PeerCounters>,
    events: &mpsc::Sender<Event>,
    accept: Option<Accept<'_>>,
    seal_key: Option<&Sealing>,
) -> Result<(), StreamError> {
    stream.set_nodelay(true)?;
    let mut hello = [0u8; TCP_HELLO.len()];
    // A vxbus host calling a configured peer says so (a client that is not counted as vxbus
    // is a leaf, or a peer that has yet to say so).
    let announce = counters.vxbus.load(Relaxed);
    let mark = match seal_key {
        Some(_) => VXBUS_SEALED_MARK,
        None => VXBUS_MARK,
    };
    let handshake = async {
        // The hello and the mark in one write: a mark in a segment of its own, lost and sent
        // again, would come after MARK_WAIT.
        let mut first = TCP_HELLO.to_vec();
        if announce {
            first.extend_from_slice(&mark);
        }
        stream.write_all(&first).await?;
        stream.read_exact(&mut hello).await
    };
    match timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(_)) if &hello == TCP_HELLO => {}
        Ok(Ok(_)) => {
            counters.decode_errors.fetch_add(1, Relaxed);
            return Err(invalid("the peer's hello is not CANNELLONIv1"));
        }
        Ok(Err(err)) => return Err(err.into()),
        Err(_) => return Err(timed_out("no hello from the peer in 5 s")),
    }
    counters.seen_now();
    let refused = |message: &str| {
        counters.auth_failures.fetch_add(1, Relaxed);
        invalid(message)
    };
    // A vxbus host sends its mark with its hello: bytes that come within MARK_WAIT of it. Any
    // other bytes are a leaf's first frames, kept for the reader.
    let mut first = BytesMut::new();
    let mut sealed = announce && seal_key.is_some();
    if let Some(accept) = &accept {
        let marked =
            |first: &[u8]| VXBUS_MARK.starts_with(first) || VXBUS_SEALED_MARK.starts_with(first);
        let mut byte = [0u8; 1];
        while first.len() < VXBUS_MARK.len() && marked(&first) {
            match timeout(MARK_WAIT, stream.read(&mut byte)).await {
                Ok(Ok(1)) => first.extend_from_slice(&byte),
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => break,
            }
        }
        let says_sealed = match &first[..] {
            said if said == VXBUS_MARK => Some(false),
            said if said == VXBUS_SEALED_MARK => Some(true),
            _ => None,
        };
        if says_sealed.is_none() && !accept.plain_allowed {
            accept.refused.fetch_add(1, Relaxed);
            return Err(refused(
                "a plain cannelloni client, from an address not in tunnel.clients (a bus with \
                 tunnel.key takes plain clients only from there)",
            ));
        }
        if let Some(says_sealed) = says_sealed {
            counters.vxbus.store(true, Relaxed);
            first.clear();
            match (says_sealed, seal_key.is_some()) {
                (true, true) => sealed = true,
                (false, false) => {}
                (true, false) => {
                    return Err(refused(
                        "a vxbus host that seals its stream (tunnel.key) called; this bus has \
                         no tunnel.key",
                    ))
                }
                (false, true) => {
                    return Err(refused(
                        "a vxbus host without tunnel.key called; this bus seals its streams \
                         between vxbus hosts",
                    ))
                }
            }
        }
    }
    let (mut sealer, mut opener): (Option<StreamSealer>, Option<StreamOpener>) = (None, None);
    if let (true, Some(seal_key)) = (sealed, seal_key) {
        // Hellos both ways, then an empty record each way: each side proves it holds the key
        // now, in this connection.
        let mut shake = StreamHandshake::new(&seal_key.key, &seal_key.own);
        let exchange = async {
            stream.write_all(&shake.hello()).await?;
            let Some(hello) = read_record(&mut stream).await? else {
                return Ok(Err("a hello of a bad length".to_owned()));
            };
            let (mut out, mut into) = match shake.take_hello(&hello) {
                Ok(halves) => halves,
                Err(err) => return Ok(Err(format!("its hello: {err}"))),
            };
            stream.write_all(&out.seal(&[])).await?;
            let Some(ack) = read_record(&mut stream).await? else {
                return Ok(Err("a first record of a bad length".to_owned()));
            };
            let outcome = match into.open(&ack) {
                Ok(plain) if plain.is_empty() => Ok((out, into)),
                Ok(_) => Err("frames before the handshake ended".to_owned()),
                Err(err) => Err(format!("its first record: {err}")),
            };
            Ok::<_, std::io::Error>(outcome)
        };
        match timeout(HANDSHAKE_TIMEOUT, exchange).await {
            Ok(Ok(Ok((out, into)))) => (sealer, opener) = (Some(out), Some(into)),
            Ok(Ok(Err(why))) => {
                return Err(refused(&format!(
                    "the peer's sealed handshake failed: {why}"
                )))
            }
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => return Err(timed_out("the peer's sealed handshake did not end in 5 s")),
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
    if counters.established.fetch_add(1, Relaxed) > 0 {
        // A configured peer connected again: the gap between is a restart.
        counters.restarts.fetch_add(1, Relaxed);
    }
    let (read, mut write) = stream.into_split();
    // A frame read: to the hub. False when the hub is gone.
    let deliver = |frame: Frame| async move {
        counters.seen_now();
        counters.rx_frames.fetch_add(1, Relaxed);
        events.send(Event::Frame { key, frame }).await.is_ok()
    };
    let reading = async {
        let Some(mut opener) = opener else {
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
                PeerCounters::add(&counters.rx_bytes, frame.encoded_len());
                if !deliver(frame).await {
                    break;
                }
            }
            return Ok(());
        };
        let mut records = FramedRead::new(read, RecordCodec);
        while let Some(record) = records.next().await {
            let record = record.inspect_err(|_| {
                counters.decode_errors.fetch_add(1, Relaxed);
            })?;
            PeerCounters::add(&counters.rx_bytes, 2 + record.len());
            let plain = opener
                .open(&record)
                .map_err(|err| refused(&format!("a sealed record: {err}")))?;
            let mut plain = BytesMut::from(&plain[..]);
            while !plain.is_empty() {
                let frame = match tokio_util::codec::Decoder::decode(&mut StreamCodec, &mut plain) {
                    Ok(Some(frame)) => frame,
                    Ok(None) => {
                        counters.decode_errors.fetch_add(1, Relaxed);
                        return Err(invalid("a sealed record ends inside a frame"));
                    }
                    Err(err) => {
                        counters.decode_errors.fetch_add(1, Relaxed);
                        return Err(err);
                    }
                };
                if !deliver(frame).await {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    // Frames taken off the queue and not yet written: dropped if the reader ends meanwhile.
    let in_flight = AtomicUsize::new(0);
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
            in_flight.store(count, Relaxed);
            let written = match &mut sealer {
                Some(sealer) => {
                    let record = sealer.seal(&buf);
                    write.write_all(&record).await.map(|()| record.len())
                }
                None => write.write_all(&buf).await.map(|()| buf.len()),
            };
            in_flight.store(0, Relaxed);
            match written {
                Ok(bytes) => {
                    PeerCounters::add(&counters.tx_frames, count);
                    PeerCounters::add(&counters.tx_bytes, bytes);
                }
                Err(err) => {
                    PeerCounters::add(&counters.dropped, count);
                    return Err(err.into());
                }
            }
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
    // Frames queued for this connection and never written are dropped: counted.
    frames_out.close();
    let mut unsent = in_flight.load(Relaxed);
    while frames_out.try_recv().is_ok() {
        unsent += 1;
    }
    PeerCounters::add(&counters.dropped, unsent);
    result
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// Two ends of one TCP connection over loopback, run by `connection`: the dialer with
    /// `dial_key` (a configured peer, so a vxbus host, unless `plain`: then a cannelloni
    /// client), the acceptor with `take_key`, taking no plain client. Returns each side's hub
    /// events and counters, and the ends' results.
    async fn pair(
        dial_key: Option<Key>,
        take_key: Option<Key>,
        plain: bool,
    ) -> (
        [(mpsc::Receiver<Event>, Arc<PeerCounters>); 2],
        [tokio::task::JoinHandle<Result<(), StreamError>>; 2],
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (dial_events, dial_rx) = mpsc::channel(16);
        let (take_events, take_rx) = mpsc::channel(16);
        let dialer = Arc::new(PeerCounters::default());
        dialer.vxbus.store(!plain, Relaxed);
        let taker = Arc::new(PeerCounters::default());
        let dialing = tokio::spawn({
            let counters = dialer.clone();
            async move {
                let stream = TcpStream::connect(addr).await?;
                let sealing = dial_key.map(|key| Sealing {
                    key,
                    own: OwnIds::default(),
                });
                connection(stream, 1, &counters, &dial_events, None, sealing.as_ref()).await
            }
        });
        let (stream, _) = listener.accept().await.unwrap();
        let taking = tokio::spawn({
            let counters = taker.clone();
            async move {
                let refused = AtomicU64::new(0);
                let accept = Accept {
                    plain_allowed: false,
                    refused: &refused,
                };
                let sealing = take_key.map(|key| Sealing {
                    key,
                    own: OwnIds::default(),
                });
                let key = sealing.as_ref();
                connection(stream, 2, &counters, &take_events, Some(accept), key).await
            }
        });
        ([(dial_rx, dialer), (take_rx, taker)], [dialing, taking])
    }

    async fn up(events: &mut mpsc::Receiver<Event>) -> mpsc::Sender<Frame> {
        match events.recv().await {
            Some(Event::Up { queue, .. }) => queue,
            _ => panic!("no Up"),
        }
    }

    async fn frame(events: &mut mpsc::Receiver<Event>) -> Frame {
        match events.recv().await {
            Some(Event::Frame { frame, .. }) => frame,
            _ => panic!("no frame"),
        }
    }

    #[tokio::test]
    async fn a_sealed_connection_carries_frames_both_ways() {
        let key = Key::from_hex(&"ab".repeat(32)).unwrap();
        let ([(mut dial_rx, dialer), (mut take_rx, taker)], ends) =
            pair(Some(key.clone()), Some(key), false).await;
        let (to_taker, to_dialer) = (up(&mut dial_rx).await, up(&mut take_rx).await);
        assert!(
            taker.vxbus.load(Relaxed),
            "the sealed mark says a vxbus host calls"
        );
        let one = Frame::classic(0x123, &[1, 2]).unwrap();
        let two = Frame::fd(0x1a0, 0x01, &[7; 24]).unwrap();
        to_taker.send(one).await.unwrap();
        to_taker.send(two).await.unwrap();
        assert_eq!(frame(&mut take_rx).await, one);
        assert_eq!(frame(&mut take_rx).await, two);
        to_dialer.send(two).await.unwrap();
        assert_eq!(frame(&mut dial_rx).await, two);
        // Sealed records cost more than plain frames on the wire: the bytes counted are those.
        let plain = u64::try_from(one.encoded_len() + two.encoded_len()).unwrap();
        assert!(dialer.tx_bytes.load(Relaxed) > plain);
        assert_eq!(taker.rx_frames.load(Relaxed), 2);
        assert_eq!(taker.auth_failures.load(Relaxed), 0);
        assert_eq!(dialer.established.load(Relaxed), 1);
        drop((to_taker, to_dialer));
        for end in ends {
            end.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn what_does_not_seal_as_this_bus_does_is_refused() {
        let key = Key::from_hex(&"ab".repeat(32)).unwrap();
        let other = Key::from_hex(&"cd".repeat(32)).unwrap();
        let cases = [
            (
                None,
                Some(key.clone()),
                false,
                "a vxbus host without tunnel.key",
            ),
            (Some(key.clone()), None, false, "seals its stream"),
            (
                Some(key.clone()),
                Some(other),
                false,
                "sealed with another key",
            ),
            (None, Some(key), true, "a plain cannelloni client"),
        ];
        for (dial_key, take_key, plain, why) in cases {
            // The dialer's events are kept: a client stays connected while it is refused.
            let ([(_dial_events, _), (_, taker)], [dialing, taking]) =
                pair(dial_key, take_key, plain).await;
            let refused = taking.await.unwrap().unwrap_err().to_string();
            assert!(refused.contains(why), "{why}: {refused}");
            assert_eq!(taker.auth_failures.load(Relaxed), 1, "{why}");
            assert_eq!(taker.established.load(Relaxed), 0, "{why}");
            let _ = dialing.await.unwrap();
        }
    }
}
