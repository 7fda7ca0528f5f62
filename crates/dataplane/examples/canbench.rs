//! `canbench`: the measuring tool of `make bench` (tests/vm/bench.sh runs it in containers).
//!
//! `canbench send IFACE COUNT [RATE]` sends COUNT classic frames (RATE per second, or as fast as
//! the socket takes them). Each frame carries its sequence number in its 29-bit ID and the send
//! time (CLOCK_MONOTONIC, which every container on a host shares) in its 8 data bytes.
//! `canbench recv IFACE COUNT` reads until COUNT frames or 3 s without one, then prints one line:
//! `received=N lost=N duplicates=N reordered=N seconds=S fps=F p50_us=X p99_us=Y max_us=Z`.
//!
//! Not part of the daemon: an example of the data plane crate, built with
//! `cargo build --release -p vxbus-dataplane --example canbench`.

use std::{io, time::Duration};

use nix::{
    sys::socket::{setsockopt, sockopt},
    time::{clock_gettime, ClockId},
};
use socketcan::{CanFrame, CanSocket, EmbeddedFrame, ExtendedId, Frame, Socket};

fn now_ns() -> u64 {
    let t = clock_gettime(ClockId::CLOCK_MONOTONIC).expect("CLOCK_MONOTONIC");
    t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64
}

fn usage() -> ! {
    eprintln!("usage: canbench send IFACE COUNT [RATE] | canbench recv IFACE COUNT");
    std::process::exit(2)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let (mode, iface, count) = match args.as_slice() {
        [_, mode, iface, count, ..] => (
            mode.as_str(),
            iface.as_str(),
            count.parse::<u32>().unwrap_or_else(|_| usage()),
        ),
        _ => usage(),
    };
    let socket = CanSocket::open(iface)?;
    match mode {
        "send" => {
            let rate: Option<f64> = args.get(4).map(|r| r.parse().unwrap_or_else(|_| usage()));
            send(&socket, count, rate)
        }
        "recv" => recv(&socket, count),
        _ => usage(),
    }
}

fn send(socket: &CanSocket, count: u32, rate: Option<f64>) -> io::Result<()> {
    let start = now_ns();
    let mut backoffs = 0u64;
    for seq in 0..count {
        if let Some(rate) = rate {
            let due = start + (f64::from(seq) * 1e9 / rate) as u64;
            while now_ns() < due {
                std::hint::spin_loop();
            }
        }
        let id = ExtendedId::new(seq & 0x1FFF_FFFF).expect("29 bits");
        loop {
            let frame = CanFrame::new(id, &now_ns().to_le_bytes()).expect("8 bytes");
            match socket.write_frame(&frame) {
                Ok(()) => break,
                // The transmit queue is full: wait for room (backpressure, not loss).
                Err(err) if err.raw_os_error() == Some(nix::libc::ENOBUFS) => {
                    backoffs += 1;
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(err) => return Err(err),
            }
        }
    }
    let seconds = (now_ns() - start) as f64 / 1e9;
    println!(
        "sent={count} seconds={seconds:.3} fps={:.0} backoffs={backoffs}",
        f64::from(count) / seconds
    );
    Ok(())
}

fn recv(socket: &CanSocket, count: u32) -> io::Result<()> {
    // Room for a whole burst, so the receiver's own socket is not what drops frames.
    let _ = setsockopt(socket, sockopt::RcvBuf, &(8 << 20));
    println!("ready"); // tests/vm/bench.sh starts the sender after this line
    let mut seen = vec![false; count as usize];
    let mut latencies = Vec::with_capacity(count as usize);
    let (mut received, mut duplicates, mut reordered, mut last_seq) = (0u32, 0u32, 0u32, None);
    let (mut first, mut last) = (0u64, 0u64);
    let mut wait = Duration::from_secs(120); // the first frame may take a while to come
    socket.set_read_timeout(wait)?;
    while received < count {
        let frame = match socket.read_frame() {
            Ok(frame) => frame,
            Err(err)
                if matches!(
                    err.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(err) => return Err(err),
        };
        let now = now_ns();
        if wait > Duration::from_secs(3) {
            wait = Duration::from_secs(3);
            socket.set_read_timeout(wait)?;
            first = now;
        }
        last = now;
        let seq = frame.raw_id() as usize;
        let Ok(sent) = <[u8; 8]>::try_from(frame.data()) else {
            continue;
        };
        if seq >= seen.len() {
            continue;
        }
        if seen[seq] {
            duplicates += 1;
            continue;
        }
        seen[seq] = true;
        received += 1;
        if last_seq.is_some_and(|prev| seq < prev) {
            reordered += 1;
        }
        last_seq = Some(seq);
        latencies.push(now.saturating_sub(u64::from_le_bytes(sent)) / 1000);
    }
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0)
    };
    let seconds = (last - first) as f64 / 1e9;
    let fps = if seconds > 0.0 {
        f64::from(received.saturating_sub(1)) / seconds
    } else {
        0.0
    };
    println!(
        "received={received} lost={} duplicates={duplicates} reordered={reordered} seconds={seconds:.3} \
         fps={fps:.0} p50_us={} p99_us={} max_us={}",
        count - received,
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or(0)
    );
    Ok(())
}
