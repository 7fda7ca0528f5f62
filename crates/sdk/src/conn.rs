//! A chunk connection: both ends of a pipe pair (or any byte stream) carrying many calls at once,
//! in both directions.
//!
//! Owns: threadIDs, the calls waiting for answers, timeouts, running the local handler for each
//! incoming request, and closing on a protocol error with the reason given to every waiting call.
//! Used the same way by the daemon (towards a child) and by the SDK (towards the daemon). Must
//! not touch: processes, what commands mean, or the bytes of a chunk ([`crate::chunk`] does).

use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{future::BoxFuture, SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::{mpsc, oneshot, watch, Semaphore},
};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::chunk::{Chunk, ChunkCodec, ChunkError, Direction};

/// A request or one-way message from the peer, as the local handler sees it.
pub struct Incoming {
    pub cmd: String,
    pub buffer: Bytes,
    /// True for a one-way message: whatever the handler returns is not sent back.
    pub oneway: bool,
    /// The connection it came on, to call or notify the peer from the handler.
    pub conn: Connection,
}

/// What answers the peer's requests: the result becomes a response, an `Err` an error chunk
/// carrying the message.
pub type Handler = Arc<dyn Fn(Incoming) -> BoxFuture<'static, Result<Bytes, String>> + Send + Sync>;

/// Why a call or a notification did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The peer's handler returned an error; its message.
    #[error("{0}")]
    Remote(String),
    #[error("no answer to `{cmd}` within {} ms", timeout.as_millis())]
    Timeout { cmd: String, timeout: Duration },
    /// The peer did not read: the message could not even be queued within the time allowed
    /// (the outgoing queue stayed full). A peer in that state is stuck, not slow.
    #[error("`{cmd}` not sent: the peer read nothing for {} ms", timeout.as_millis())]
    Stalled { cmd: String, timeout: Duration },
    /// The connection is closed; why.
    #[error("connection closed: {0}")]
    Closed(Arc<str>),
    /// The message breaks the protocol's limits and was not sent.
    #[error("not sent: {0}")]
    Limit(ChunkError),
}

enum Pending {
    Waiting(oneshot::Sender<Result<Bytes, CallError>>),
    /// The caller gave up (timeout); a late answer is dropped, not a protocol error.
    Abandoned,
}

struct Shared {
    name: String,
    codec: ChunkCodec,
    /// Permits for the bytes of requests and one-way messages being handled
    /// ([`MAX_IN_FLIGHT_BYTES`]), each message costing its buffer and [`MESSAGE_COST`].
    in_flight: Arc<Semaphore>,
    out: mpsc::Sender<Chunk>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_thread: AtomicU64,
    closed: watch::Sender<Option<Arc<str>>>,
}

/// One end of a chunk connection. Cheap to clone; every clone is the same connection.
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.shared.name)
            .finish()
    }
}

/// Outgoing chunks queued before the writer blocks the senders.
const OUT_QUEUE: usize = 256;

/// How much of what the peer sent may be being handled at once: the buffers of its requests and
/// one-way messages, each counted with [`MESSAGE_COST`] more (so their number is bounded too,
/// to 16384). Beyond it a request is answered with an error and a one-way message dropped, at
/// once: the reader never waits (it must go on reading answers), and memory does not grow with
/// what the peer sends.
pub const MAX_IN_FLIGHT_BYTES: usize = 64 << 20;
/// What a message costs of [`MAX_IN_FLIGHT_BYTES`] besides its buffer.
pub const MESSAGE_COST: usize = 4096;

/// How long a one-way message may wait for room in the outgoing queue; a call waits as long
/// as its own timeout, which covers queueing and answer together.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);

impl Connection {
    /// Starts serving a connection: `peer` names the other end in logs and errors; `handler`
    /// answers its requests, each in its own task, so a slow one holds up nothing else.
    pub fn spawn<R, W>(
        peer: impl Into<String>,
        reader: R,
        writer: W,
        codec: ChunkCodec,
        handler: Handler,
    ) -> Connection
    where
        R: AsyncRead + Send + Unpin + 'static,
        W: AsyncWrite + Send + Unpin + 'static,
    {
        let (out, out_rx) = mpsc::channel(OUT_QUEUE);
        let conn = Connection {
            shared: Arc::new(Shared {
                name: peer.into(),
                codec,
                in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT_BYTES)),
                out,
                pending: Mutex::new(HashMap::new()),
                next_thread: AtomicU64::new(1),
                closed: watch::Sender::new(None),
            }),
        };
        tokio::spawn(
            conn.clone()
                .write_loop(FramedWrite::new(writer, codec), out_rx),
        );
        tokio::spawn(
            conn.clone()
                .read_loop(FramedRead::new(reader, codec), handler),
        );
        conn
    }

    /// The peer's name, as given to [`Connection::spawn`].
    pub fn peer(&self) -> &str {
        &self.shared.name
    }

    /// Sends a request and waits up to `timeout` for its answer: `timeout` covers the time to
    /// queue the request (a peer that does not read fills the queue) and the time to answer.
    pub async fn call(
        &self,
        cmd: &str,
        buffer: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let thread = self.shared.next_thread.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(thread, Pending::Waiting(tx));
        if let Some(reason) = self.closed_reason() {
            // Closed before the entry went in: close() may have drained the map already.
            self.pending().remove(&thread);
            return Err(CallError::Closed(reason));
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let sent = match self.chunk(thread, Direction::Request, cmd, buffer.into()) {
            Ok(chunk) => self.send(chunk, deadline, timeout).await,
            Err(err) => Err(err),
        };
        if let Err(err) = sent {
            self.pending().remove(&thread);
            return Err(err);
        }
        match tokio::time::timeout_at(deadline, rx).await {
            Ok(Ok(answer)) => answer,
            // The sender is dropped only by close(), after it sent the reason; be safe anyway.
            Ok(Err(_)) => Err(CallError::Closed(
                self.closed_reason().unwrap_or_else(|| "dropped".into()),
            )),
            Err(_) => {
                if let Some(entry) = self.pending().get_mut(&thread) {
                    *entry = Pending::Abandoned;
                }
                Err(CallError::Timeout {
                    cmd: cmd.to_owned(),
                    timeout,
                })
            }
        }
    }

    /// Sends a one-way message, waiting at most [`NOTIFY_TIMEOUT`] for room to queue it.
    pub async fn notify(&self, cmd: &str, buffer: impl Into<Bytes>) -> Result<(), CallError> {
        let thread = self.shared.next_thread.fetch_add(1, Ordering::Relaxed);
        let chunk = self.chunk(thread, Direction::Oneway, cmd, buffer.into())?;
        self.send_within(chunk, NOTIFY_TIMEOUT).await
    }

    /// Closes the connection (if it is not closed yet) and fails every waiting call with `reason`.
    pub fn close(&self, reason: impl Into<Arc<str>>) {
        let reason = reason.into();
        let first = self.shared.closed.send_if_modified(|closed| {
            if closed.is_some() {
                return false;
            }
            *closed = Some(reason.clone());
            true
        });
        if !first {
            return;
        }
        let drained: Vec<Pending> = self.pending().drain().map(|(_, p)| p).collect();
        for pending in drained {
            if let Pending::Waiting(tx) = pending {
                let _ = tx.send(Err(CallError::Closed(reason.clone())));
            }
        }
    }

    /// Why the connection closed, once it has.
    pub fn closed_reason(&self) -> Option<Arc<str>> {
        self.shared.closed.borrow().clone()
    }

    /// Waits until the connection closes; returns why.
    pub async fn closed(&self) -> Arc<str> {
        let mut rx = self.shared.closed.subscribe();
        let reason = rx.wait_for(Option::is_some).await.map(|r| r.clone());
        // The sender lives in `shared`, which `self` keeps alive, so wait_for cannot fail.
        reason.ok().flatten().unwrap_or_else(|| "dropped".into())
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        // A panic while holding this lock would be a bug here; the map stays usable regardless.
        self.shared
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn chunk(
        &self,
        thread: u64,
        direction: Direction,
        cmd: &str,
        buffer: Bytes,
    ) -> Result<Chunk, CallError> {
        let chunk = Chunk {
            thread,
            direction,
            cmd: cmd.to_owned(),
            buffer,
        };
        self.shared.codec.check(&chunk).map_err(CallError::Limit)?;
        Ok(chunk)
    }

    /// Queues `chunk` for the writer, waiting for room at most `allowed`.
    async fn send_within(&self, chunk: Chunk, allowed: Duration) -> Result<(), CallError> {
        self.send(chunk, tokio::time::Instant::now() + allowed, allowed)
            .await
    }

    /// Queues `chunk` for the writer, waiting for room until `deadline` (`allowed` from its
    /// start, for the error).
    async fn send(
        &self,
        chunk: Chunk,
        deadline: tokio::time::Instant,
        allowed: Duration,
    ) -> Result<(), CallError> {
        if let Some(reason) = self.closed_reason() {
            return Err(CallError::Closed(reason));
        }
        // Room first, then the chunk: a sender that gives up still has it (for the error), and
        // nothing is copied on the way.
        match tokio::time::timeout_at(deadline, self.shared.out.reserve()).await {
            Ok(Ok(room)) => {
                room.send(chunk);
                Ok(())
            }
            Ok(Err(_)) => Err(CallError::Closed(
                self.closed_reason()
                    .unwrap_or_else(|| "writer stopped".into()),
            )),
            Err(_) => Err(CallError::Stalled {
                cmd: chunk.cmd,
                timeout: allowed,
            }),
        }
    }

    async fn write_loop<W: AsyncWrite + Unpin>(
        self,
        mut sink: FramedWrite<W, ChunkCodec>,
        mut rx: mpsc::Receiver<Chunk>,
    ) {
        let mut closed = self.shared.closed.subscribe();
        loop {
            let chunk = tokio::select! {
                chunk = rx.recv() => chunk,
                _ = closed.wait_for(Option::is_some) => None,
            };
            let Some(chunk) = chunk else { break };
            // Write what is queued, then flush once: many calls in flight share the syscalls.
            let mut result = sink.feed(chunk).await;
            while result.is_ok() {
                match rx.try_recv() {
                    Ok(chunk) => result = sink.feed(chunk).await,
                    Err(_) => break,
                }
            }
            if let Err(err) = result.and(sink.flush().await) {
                self.close(format!("writing to {} failed: {err}", self.shared.name));
                break;
            }
        }
        // Dropping the sink closes our write end: the peer reads end-of-stream.
    }

    async fn read_loop<R: AsyncRead + Unpin>(
        self,
        mut stream: FramedRead<R, ChunkCodec>,
        handler: Handler,
    ) {
        let mut closed = self.shared.closed.subscribe();
        loop {
            let next = tokio::select! {
                next = stream.next() => next,
                _ = closed.wait_for(Option::is_some) => return,
            };
            let chunk = match next {
                None => {
                    self.close(format!("{} closed the connection", self.shared.name));
                    return;
                }
                Some(Err(err)) => return self.protocol_error(err.to_string()),
                Some(Ok(chunk)) => chunk,
            };
            match chunk.direction {
                Direction::Request | Direction::Oneway => self.dispatch(chunk, &handler),
                Direction::Response | Direction::Error => {
                    let entry = self.pending().remove(&chunk.thread);
                    let answer = match chunk.direction {
                        Direction::Response => Ok(chunk.buffer),
                        _ => Err(CallError::Remote(
                            String::from_utf8_lossy(&chunk.buffer).into_owned(),
                        )),
                    };
                    match entry {
                        Some(Pending::Waiting(tx)) => {
                            let _ = tx.send(answer);
                        }
                        Some(Pending::Abandoned) => {
                            tracing::debug!(peer = %self.shared.name, thread = chunk.thread, cmd = %chunk.cmd,
                                "late answer to a call that timed out, dropped");
                        }
                        None => {
                            return self.protocol_error(format!(
                                "{} to unknown thread {} (cmd `{}`)",
                                chunk.direction, chunk.thread, chunk.cmd
                            ))
                        }
                    }
                }
            }
        }
    }

    fn protocol_error(&self, what: String) {
        let reason = format!("protocol error from {}: {what}", self.shared.name);
        tracing::warn!(peer = %self.shared.name, "closing the chunk connection: {reason}");
        self.close(reason);
    }

    fn dispatch(&self, chunk: Chunk, handler: &Handler) {
        let oneway = chunk.direction == Direction::Oneway;
        let cost =
            u32::try_from(chunk.buffer.len().saturating_add(MESSAGE_COST)).unwrap_or(u32::MAX);
        let Ok(permit) = self.shared.in_flight.clone().try_acquire_many_owned(cost) else {
            let busy = format!(
                "`{}` not handled: {} MiB of messages are being handled already",
                chunk.cmd,
                MAX_IN_FLIGHT_BYTES >> 20
            );
            tracing::warn!(peer = %self.shared.name, "{busy}");
            if !oneway {
                // Queued only if there is room: waiting would stop the reader, and a peer that
                // floods requests gets its refusals as its reading allows, or its timeouts.
                let _ = self.shared.out.try_send(Chunk {
                    thread: chunk.thread,
                    direction: Direction::Error,
                    cmd: chunk.cmd,
                    buffer: busy.into(),
                });
            }
            return;
        };
        let incoming = Incoming {
            cmd: chunk.cmd.clone(),
            buffer: chunk.buffer,
            oneway,
            conn: self.clone(),
        };
        let answer = handler(incoming);
        let conn = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let result = answer.await;
            if oneway {
                if let Err(err) = result {
                    tracing::warn!(peer = %conn.shared.name, cmd = %chunk.cmd, "one-way message failed: {err}");
                }
                return;
            }
            let (direction, buffer) = match result {
                Ok(buffer) => (Direction::Response, buffer),
                Err(message) => (Direction::Error, Bytes::from(message)),
            };
            let reply = match conn.chunk(chunk.thread, direction, &chunk.cmd, buffer) {
                Ok(reply) => reply,
                Err(err) => {
                    let message = format!("the answer to `{}` could not be sent: {err}", chunk.cmd);
                    tracing::warn!(peer = %conn.shared.name, "{message}");
                    let mut message = message.into_bytes();
                    // Even this message must fit the peer's limit.
                    message.truncate(conn.shared.codec.max_buffer());
                    Chunk {
                        thread: chunk.thread,
                        direction: Direction::Error,
                        cmd: chunk.cmd,
                        buffer: message.into(),
                    }
                }
            };
            // A closed connection has no one to answer, and a peer that reads nothing will
            // not read the answer either: nothing else to do.
            let _ = conn.send_within(reply, NOTIFY_TIMEOUT).await;
        });
    }
}

/// A handler built from an async closure over [`Incoming`].
pub fn handler<F, Fut>(f: F) -> Handler
where
    F: Fn(Incoming) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Bytes, String>> + Send + 'static,
{
    Arc::new(move |incoming| Box::pin(f(incoming)))
}

/// A handler that refuses everything: for a side that only calls.
pub fn no_handler() -> Handler {
    handler(|incoming: Incoming| async move { Err(format!("unknown command `{}`", incoming.cmd)) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    const SECOND: Duration = Duration::from_secs(1);

    /// An echo handler that also fails on request and calls back the other side on request.
    fn echo() -> Handler {
        handler(|incoming: Incoming| async move {
            match incoming.cmd.as_str() {
                "echo" => Ok(incoming.buffer),
                "double" => Ok([&incoming.buffer[..], &incoming.buffer[..]].concat().into()),
                "fail" => Err(format!(
                    "failed: {}",
                    String::from_utf8_lossy(&incoming.buffer)
                )),
                "sleep" => {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(incoming.buffer)
                }
                "hold" => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(Bytes::new())
                }
                "ask-back" => incoming
                    .conn
                    .call("echo", incoming.buffer, SECOND)
                    .await
                    .map_err(|e| e.to_string()),
                other => Err(format!("unknown command `{other}`")),
            }
        })
    }

    fn pair() -> (Connection, Connection) {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let codec = ChunkCodec::default();
        (
            Connection::spawn("b", ar, aw, codec, echo()),
            Connection::spawn("a", br, bw, codec, echo()),
        )
    }

    /// One end is a Connection, the other raw bytes the test writes and reads.
    fn raw() -> (Connection, DuplexStream) {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        (
            Connection::spawn("raw", ar, aw, ChunkCodec::default(), echo()),
            b,
        )
    }

    /// A peer that sends more than is handled at once gets the excess refused at once, saying
    /// so; the reader goes on (answers still arrive) and memory stays bounded.
    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_in_flight_limit_are_refused_not_queued() {
        let (a, b) = pair();
        // Each `hold` request keeps its share for 5 s (of the paused clock: until everything
        // else is done); 24 of 3 MiB are over 64 MiB.
        let big = Bytes::from(vec![7u8; 3 << 20]);
        let calls = (0..24).map(|_| a.call("hold", big.clone(), 10 * SECOND));
        let results = futures_util::future::join_all(calls).await;
        let fit = MAX_IN_FLIGHT_BYTES / ((3 << 20) + MESSAGE_COST);
        let refused: Vec<_> = results.iter().filter(|r| r.is_err()).collect();
        assert_eq!(refused.len(), 24 - fit, "{refused:?}");
        for err in refused {
            assert_eq!(
                err.as_ref().unwrap_err().to_string(),
                "`hold` not handled: 64 MiB of messages are being handled already"
            );
        }
        // The permits come back: the next calls are served.
        assert_eq!(b.call("echo", "x", SECOND).await.unwrap(), "x");
        assert_eq!(a.call("echo", "y", SECOND).await.unwrap(), "y");
    }

    /// A peer that stops reading fills the pipe, then the outgoing queue: from then on a
    /// notify gives up after NOTIFY_TIMEOUT and a call within its own timeout, saying the peer
    /// is stalled (before, both waited for room for ever).
    #[tokio::test(start_paused = true)]
    async fn a_peer_that_reads_nothing_stalls_sends_within_their_time() {
        let (conn, _unread) = raw();
        let big = Bytes::from(vec![0u8; 60_000]);
        let stalled = tokio::time::timeout(Duration::from_secs(3600), async {
            for sent in 0.. {
                if let Err(err) = conn.notify("x", big.clone()).await {
                    return (sent, err);
                }
            }
            unreachable!()
        })
        .await
        .expect("a notify to a peer that reads nothing gives up");
        assert!(stalled.0 >= OUT_QUEUE, "stalled after {}", stalled.0);
        assert_eq!(
            stalled.1,
            CallError::Stalled {
                cmd: "x".into(),
                timeout: NOTIFY_TIMEOUT
            }
        );
        let err = conn.call("echo", big, SECOND).await.unwrap_err();
        assert_eq!(
            err,
            CallError::Stalled {
                cmd: "echo".into(),
                timeout: SECOND
            }
        );
    }

    #[tokio::test]
    async fn calls_answers_and_errors() {
        let (a, _b) = pair();
        assert_eq!(a.call("echo", "hi", SECOND).await.unwrap(), "hi");
        assert_eq!(
            a.call("fail", "boom", SECOND).await.unwrap_err(),
            CallError::Remote("failed: boom".into())
        );
        assert_eq!(
            a.call("nope", "", SECOND).await.unwrap_err(),
            CallError::Remote("unknown command `nope`".into())
        );
    }

    #[tokio::test]
    async fn many_calls_in_both_directions_at_once() {
        let (a, b) = pair();
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let (from, cmd) = match i % 4 {
                0 => (a.clone(), "echo"),
                1 => (b.clone(), "echo"),
                2 => (a.clone(), "ask-back"),
                _ => (b.clone(), "sleep"),
            };
            tasks.push(tokio::spawn(async move {
                let body = format!("{i}-{}", "x".repeat(i as usize * 37));
                let answer = from.call(cmd, body.clone(), 5 * SECOND).await.unwrap();
                assert_eq!(answer, body, "call {i} ({cmd})");
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_timed_out_call_fails_and_its_late_answer_is_dropped() {
        let (a, _b) = pair();
        let err = a
            .call("sleep", "z", Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no answer to `sleep` within 50 ms");
        tokio::time::sleep(Duration::from_millis(400)).await;
        // The late answer did not close the connection.
        assert_eq!(a.call("echo", "still", SECOND).await.unwrap(), "still");
    }

    #[tokio::test]
    async fn one_way_messages_get_no_answer() {
        let (conn, mut peer) = raw();
        conn.notify("tick", "1").await.unwrap();
        let mut buf = vec![0u8; 64];
        let n = peer.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"1\x003\x004\x001\x00tick1");
        // The peer's one-way to us gets nothing back, even when the handler fails.
        peer.write_all(b"9\x003\x004\x000\x00fail").await.unwrap();
        peer.write_all(b"10\x001\x004\x002\x00echook")
            .await
            .unwrap();
        let n = peer.read(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"10\x002\x004\x002\x00echook");
    }

    #[tokio::test]
    async fn a_protocol_error_closes_and_fails_every_waiting_call() {
        let (conn, mut peer) = raw();
        let waiting = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.call("slow", "", 5 * SECOND).await })
        };
        let mut buf = vec![0u8; 64];
        let _ = peer.read(&mut buf).await.unwrap(); // the request went out
        peer.write_all(b"1\x007\x001\x000\x00x").await.unwrap();
        let expected = "protocol error from raw: unknown direction 7 (allowed: 1 request, 2 response, 3 one-way, 4 error)";
        assert_eq!(
            waiting.await.unwrap().unwrap_err(),
            CallError::Closed(expected.into())
        );
        assert_eq!(&*conn.closed().await, expected);
        // Our write end is closed: the peer reads end-of-stream.
        assert_eq!(peer.read(&mut buf).await.unwrap(), 0);
        assert_eq!(
            conn.call("echo", "", SECOND).await.unwrap_err(),
            CallError::Closed(expected.into())
        );
    }

    #[tokio::test]
    async fn an_answer_to_an_unknown_thread_is_a_protocol_error() {
        let (conn, mut peer) = raw();
        peer.write_all(b"42\x002\x004\x000\x00echo").await.unwrap();
        assert_eq!(
            &*conn.closed().await,
            "protocol error from raw: response to unknown thread 42 (cmd `echo`)"
        );
    }

    #[tokio::test]
    async fn end_of_stream_fails_waiting_calls() {
        let (conn, peer) = raw();
        let waiting = {
            let conn = conn.clone();
            tokio::spawn(async move { conn.call("slow", "", 5 * SECOND).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(peer);
        assert_eq!(
            waiting.await.unwrap().unwrap_err(),
            CallError::Closed("raw closed the connection".into())
        );
    }

    #[tokio::test]
    async fn oversized_messages_are_refused_before_sending() {
        let (a, b) = duplex(1 << 16);
        let (ar, aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let small = ChunkCodec::with_max_buffer(100);
        let a = Connection::spawn("b", ar, aw, small, echo());
        let _b = Connection::spawn("a", br, bw, small, echo());
        let err = a.call("echo", "x".repeat(101), SECOND).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "not sent: buffer is 101 bytes, more than the limit of 100"
        );
        // A handler's answer over the limit reaches the caller as an error, not a broken pipe.
        let err = a.call("double", "y".repeat(60), SECOND).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "the answer to `double` could not be sent: not sent: buffer is 120 bytes, more than the limit of 100"
        );
        assert_eq!(a.call("echo", "ok", SECOND).await.unwrap(), "ok");
    }
}
