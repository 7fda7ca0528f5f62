//! `make bench`'s chunk protocol figures: round trips per second and p50/p99 latency of calls to
//! a child process over pipes, for 64 B and 64 KiB buffers with 1 and 64 calls in flight, beside
//! the floor: the same bytes echoed by a child over bare pipes, no framing, no threadIDs.
//!
//!   cargo run --release -p vxbus-sdk --example chunkbench [SECONDS_PER_ROW]
//!
//! The child is this program again (`--echo-chunk`: a chunk connection whose handler returns the
//! buffer; `--echo-raw`: copies stdin to stdout).

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::process::{Child, Command};
use vxbus_sdk::{handler, no_handler, ChunkCodec, Connection, Incoming};

fn spawn_child(mode: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .arg(mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

struct Row {
    round_trips_per_s: f64,
    p50_us: f64,
    p99_us: f64,
}

fn summarize(mut latencies: Vec<Duration>, elapsed: Duration) -> Row {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Row {
        round_trips_per_s: latencies.len() as f64 / elapsed.as_secs_f64(),
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

/// Calls over a chunk connection to a child that echoes: `inflight` tasks, each calling in turn.
async fn chunk_row(size: usize, inflight: usize, run_for: Duration) -> Row {
    let mut child = spawn_child("--echo-chunk");
    let conn = Connection::spawn(
        "bench child",
        child.stdout.take().unwrap(),
        child.stdin.take().unwrap(),
        ChunkCodec::default(),
        no_handler(),
    );
    let payload = Bytes::from(vec![0x5a; size]);
    // Warm up: the child is running and its connection answers.
    conn.call("echo", payload.clone(), Duration::from_secs(10))
        .await
        .unwrap();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..inflight {
        let (conn, payload) = (conn.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while start.elapsed() < run_for {
                let sent = Instant::now();
                let answer = conn
                    .call("echo", payload.clone(), Duration::from_secs(10))
                    .await
                    .unwrap();
                assert_eq!(answer.len(), payload.len());
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    summarize(latencies, start.elapsed())
}

/// The floor: `inflight` messages of `size` bytes kept outstanding on bare pipes to a child that
/// copies them back (answers come back in order), with plain blocking threads on both sides.
async fn raw_row(size: usize, inflight: usize, run_for: Duration) -> Row {
    use std::io::{Read, Write};
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--echo-raw")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut to_child = child.stdin.take().unwrap();
    let mut from_child = child.stdout.take().unwrap();
    let (sent_tx, sent_rx) = std::sync::mpsc::channel::<Instant>();
    let (credit_tx, credit_rx) = std::sync::mpsc::sync_channel::<()>(inflight);
    for _ in 0..inflight {
        credit_tx.send(()).unwrap();
    }
    let start = Instant::now();
    let writer = std::thread::spawn(move || {
        let payload = vec![0x5a; size];
        while start.elapsed() < run_for {
            credit_rx.recv().unwrap();
            sent_tx.send(Instant::now()).unwrap();
            to_child.write_all(&payload).unwrap();
        }
        // Dropping sent_tx tells the reader no more messages come.
    });
    let reader = std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut buffer = vec![0u8; size];
        while let Ok(sent) = sent_rx.recv() {
            from_child.read_exact(&mut buffer).unwrap();
            latencies.push(sent.elapsed());
            let _ = credit_tx.try_send(());
        }
        latencies
    });
    let latencies = tokio::task::spawn_blocking(move || {
        writer.join().unwrap();
        reader.join().unwrap()
    })
    .await
    .unwrap();
    let elapsed = start.elapsed();
    let _ = child.kill();
    let _ = child.wait();
    summarize(latencies, elapsed)
}

async fn echo_chunk() {
    let echo = handler(|incoming: Incoming| async move { Ok(incoming.buffer) });
    // As the SDK does: stdin and stdout are pipes here, read and written through epoll.
    let (reader, writer) = vxbus_sdk::stdio_pipes().expect("stdin and stdout are pipes");
    let conn = Connection::spawn("bench parent", reader, writer, ChunkCodec::default(), echo);
    conn.closed().await;
}

fn echo_raw() {
    use std::io::{Read, Write};
    let (mut stdin, mut stdout) = (std::io::stdin().lock(), std::io::stdout().lock());
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = stdin.read(&mut buffer).unwrap();
        if n == 0 {
            return;
        }
        stdout.write_all(&buffer[..n]).unwrap();
        stdout.flush().unwrap();
    }
}

fn main() {
    let arg = std::env::args().nth(1).unwrap_or_default();
    match arg.as_str() {
        // The child runs as the bundled logger does: a single-threaded runtime.
        "--echo-chunk" => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            return runtime.block_on(echo_chunk());
        }
        "--echo-raw" => return echo_raw(),
        _ => {}
    }
    // The parent runs as the daemon does: tokio's multi-threaded runtime.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(measure(&arg));
}

async fn measure(arg: &str) {
    let seconds: f64 = arg.parse().unwrap_or(3.0);
    let run_for = Duration::from_secs_f64(seconds);
    println!("chunk protocol over pipes to a child process, {seconds} s per row, this machine ({} cores)", 
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    println!();
    println!("| buffer | in flight | floor round trips/s | chunk round trips/s | vs floor | floor p50 µs | chunk p50 µs | floor p99 µs | chunk p99 µs |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (size, label) in [(64, "64 B"), (64 << 10, "64 KiB")] {
        for inflight in [1, 64] {
            let floor = raw_row(size, inflight, run_for).await;
            let chunk = chunk_row(size, inflight, run_for).await;
            println!(
                "| {label} | {inflight} | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.0} | {:.0} |",
                floor.round_trips_per_s,
                chunk.round_trips_per_s,
                100.0 * chunk.round_trips_per_s / floor.round_trips_per_s,
                floor.p50_us,
                chunk.p50_us,
                floor.p99_us,
                chunk.p99_us
            );
        }
    }
}
