//! `tunnelrun`: one end of `make bench-tunnel` (tests/vm/bench-tunnel.sh runs two, one in each
//! network namespace): a vxbus tunnel on a CAN interface, the same `Tunnel` the daemon runs for a
//! bus, without Docker around it.
//!
//! `tunnelrun IFACE TRANSPORT LISTEN|- PEERS|- LEAVES|- BATCH_DELAY` runs until SIGTERM or
//! SIGINT, then prints its counters as one line of JSON.
//!
//! Not part of the daemon: an example of the tunnel crate, built with
//! `cargo build --release -p vxbus-tunnel --example tunnelrun`.

use vxbus_tunnel::{spec, Transport, Tunnel, TunnelSpec};

fn usage() -> ! {
    eprintln!("usage: tunnelrun IFACE udp|tcp LISTEN|- PEERS|- LEAVES|- BATCH_DELAY");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, iface, transport, listen, peers, leaves, batch] = args.as_slice() else {
        usage()
    };
    let given = |text: &String| (text != "-").then(|| text.clone());
    let transport: Transport = transport.parse().unwrap_or_else(|_| usage());
    let listen = given(listen).map(|text| spec::parse_address(&text).unwrap_or_else(|_| usage()));
    let list = |text: &String| given(text).map_or(Ok(vec![]), |text| spec::parse_peers(&text));
    let (Ok(peers), Ok(leaves), Ok(batch)) =
        (list(peers), list(leaves), spec::parse_batch_delay(batch))
    else {
        usage()
    };
    let spec = TunnelSpec::new(transport, listen, peers, leaves, batch).unwrap_or_else(|err| {
        eprintln!("tunnelrun: {err}");
        std::process::exit(2)
    });
    let tunnel = match Tunnel::start("bench", iface, &spec).await {
        Ok(tunnel) => tunnel,
        Err(err) => {
            eprintln!("tunnelrun: {err}");
            std::process::exit(1)
        }
    };
    println!("ready");
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        eprintln!("tunnelrun: cannot handle SIGTERM");
        std::process::exit(1)
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!(
        "{}",
        serde_json::to_string(&tunnel.stats()).unwrap_or_default()
    );
    tunnel.stop().await;
}
