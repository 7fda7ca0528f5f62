//! The control socket, and the host-side commands that use it: `vxbus networks`, `vxbus plugins`,
//! `vxbus settings PLUGIN`, `vxbus set PLUGIN ITEM=VALUE`, `vxbus tunnel list|add|remove`,
//! `vxbus swarm`, `vxbus status`, and the request behind `vxbus stats` and `vxbus top` (which
//! `watch` prints).
//!
//! The daemon serves `control.sock` in its state directory (a host directory mounted into the
//! managed plugin, so the host reaches it at `/var/lib/vxbus/control.sock`); each connection
//! carries one JSON request line and gets one JSON answer line.
//!
//! Owns: that exchange and how its answers are printed. Must not touch: the kernel or the state
//! file; it asks the driver and the supervisor.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use vxbus_sdk::PluginId;

use crate::{
    driver::{Change, Driver},
    stats::{Report, Stats},
    supervisor::Supervisor,
};
use vxbus_tunnel::spec::{parse_address, FarEnd};

/// The control socket's file name in the state directory.
pub const SOCKET_NAME: &str = "control.sock";

/// What the host-side command asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Command {
    /// List the networks vxbus serves, their host interface, plugin and endpoints.
    Networks,
    /// List the plugins with their status, process, restarts and last error.
    Plugins,
    /// Show a plugin's settings.
    Settings {
        /// The plugin id.
        plugin: PluginId,
    },
    /// Change one of a plugin's settings (ITEM=VALUE); the running plugin gets it at once.
    Set {
        /// The plugin id.
        plugin: PluginId,
        /// ITEM=VALUE
        #[arg(value_name = "ITEM=VALUE")]
        assignment: String,
    },
    /// A bus's tunnel to other hosts: its far ends and their counters; add or remove one.
    Tunnel {
        #[command(subcommand)]
        action: TunnelAction,
    },
    /// The Swarm nodes vxbus heard of from Docker, which `tunnel.peers=swarm` tunnels take as
    /// peers; `--forget IP` drops one Docker did not say had left (a node gone while the plugin
    /// was disabled, or the nodes of a Swarm this host left).
    Swarm {
        #[arg(long, value_name = "IP")]
        forget: Option<IpAddr>,
    },
    /// Networks, plugins and tunnels at once (with --json, for scripts).
    Status,
    /// What each bus carries: its members' frames and bytes each way and their drops, the bus's
    /// frames per second and its load in % of its bit rate (of NETWORK, or all).
    Stats {
        network: Option<String>,
        /// Print again every SECONDS until interrupted (with --json, one JSON line each time).
        #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
        #[serde(skip)]
        watch: Option<u64>,
    },
    /// A live view of every bus (load, frames per second, drops), refreshed each second; q quits.
    #[serde(skip)]
    Top,
}

/// `vxbus tunnel ...`. NETWORK is a network's name (looked up with the docker CLI), its id, or
/// the start of its id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum TunnelAction {
    /// List the tunnels (of NETWORK, or all) with each far end's counters.
    List { network: Option<String> },
    /// Add a far end: another vxbus host of the bus, or with --leaf a plain cannelloni end.
    Add {
        network: String,
        /// IP:PORT
        address: String,
        /// A plain cannelloni end (gets every frame, its frames go everywhere), not a vxbus host.
        #[arg(long)]
        leaf: bool,
    },
    /// Remove a far end (a TCP connection to it is closed).
    Remove {
        network: String,
        /// IP:PORT
        address: String,
    },
}

/// The longest request line the control socket reads.
pub const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client has to send its request line.
pub const REQUEST_TIME: Duration = Duration::from_secs(5);

/// Serves the control socket at `path` until the process ends.
pub fn serve(
    path: &Path,
    driver: Arc<Driver>,
    plugins: Arc<Supervisor>,
    stats: Stats,
) -> anyhow::Result<()> {
    // Settings may hold secrets, and changing them is an administrator's act: root only, from
    // the moment the socket exists.
    let listener = crate::daemon::bind(path, "control socket", Some(0o600))?;
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!("control socket: accepting a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let (driver, plugins, stats) = (driver.clone(), plugins.clone(), stats.clone());
            tokio::spawn(async move {
                if let Err(err) = answer(stream, &driver, &plugins, &stats).await {
                    tracing::warn!("control socket: {err:#}");
                }
            });
        }
    });
    Ok(())
}

async fn answer(
    stream: UnixStream,
    driver: &Driver,
    plugins: &Arc<Supervisor>,
    stats: &Stats,
) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST));
    tokio::time::timeout(REQUEST_TIME, reader.read_line(&mut line))
        .await
        .map_err(|_| anyhow!("no request line within {} s", REQUEST_TIME.as_secs()))?
        .context("reading a request")?;
    let result = if !line.ends_with('\n') && line.len() as u64 >= MAX_REQUEST {
        Err(format!("a request longer than {MAX_REQUEST} bytes"))
    } else {
        match serde_json::from_str::<Command>(&line) {
            Err(err) => Err(format!("not a control request: {err}")),
            Ok(command) => run(command, driver, plugins, stats).await,
        }
    };
    let answer = match result {
        Ok(value) => json!({"ok": value}),
        Err(error) => json!({"error": error}),
    };
    write.write_all(format!("{answer}\n").as_bytes()).await?;
    Ok(())
}

async fn run(
    command: Command,
    driver: &Driver,
    plugins: &Arc<Supervisor>,
    stats: &Stats,
) -> Result<Value, String> {
    match command {
        Command::Stats { network, .. } => {
            let mut report = (*stats.latest()).clone();
            if let Some(given) = network {
                report.buses.retain(|id, _| id.starts_with(&given));
                if report.buses.is_empty() {
                    return Err(format!("no vxbus network `{given}`"));
                }
            }
            Ok(json(&report))
        }
        Command::Top => Err("`top` runs on the host side, not in the daemon".to_owned()),
        Command::Networks => Ok(json(&driver.networks().await)),
        Command::Plugins => Ok(json(&plugins.report())),
        Command::Settings { plugin } => plugins
            .settings(&plugin)
            .map(Value::Object)
            .map_err(|e| e.to_string()),
        Command::Tunnel { action } => tunnel(action, driver).await,
        Command::Swarm { forget: None } => Ok(json(&driver.swarm_nodes().await)),
        Command::Swarm { forget: Some(ip) } => {
            driver
                .forget_swarm_node(ip)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("control socket: Swarm node {ip} forgotten");
            Ok(json(&driver.swarm_nodes().await))
        }
        Command::Status => {
            let tunnels = driver.tunnels(None).await.map_err(|e| e.to_string())?;
            Ok(json!({
                "networks": json(&driver.networks().await),
                "plugins": json(&plugins.report()),
                "tunnels": json(&tunnels),
                "swarm_nodes": json(&driver.swarm_nodes().await),
            }))
        }
        Command::Set { plugin, assignment } => {
            let (item, value) = assignment
                .split_once('=')
                .ok_or_else(|| format!("`{assignment}` is not ITEM=VALUE"))?;
            let values = plugins
                .set_setting(&plugin, item, value)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("control socket: plugin {plugin} setting {item} changed");
            Ok(Value::Object(values))
        }
    }
}

async fn tunnel(action: TunnelAction, driver: &Driver) -> Result<Value, String> {
    let address = |text: &str| -> Result<SocketAddr, String> {
        parse_address(text).map_err(|err| format!("address `{text}`: not allowed: {err}"))
    };
    match action {
        TunnelAction::List { network } => driver
            .tunnels(network.as_deref())
            .await
            .map(|tunnels| json(&tunnels))
            .map_err(|e| e.to_string()),
        TunnelAction::Add {
            network,
            address: text,
            leaf,
        } => {
            let kind = if leaf { FarEnd::Leaf } else { FarEnd::Peer };
            let addr = address(&text)?;
            driver
                .change_tunnel(&network, addr, Change::Add(kind))
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("control socket: network {network}: tunnel {kind:?} {addr} added");
            Ok(json!({"added": addr.to_string()}))
        }
        TunnelAction::Remove {
            network,
            address: text,
        } => {
            let addr = address(&text)?;
            driver
                .change_tunnel(&network, addr, Change::Remove)
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!("control socket: network {network}: tunnel far end {addr} removed");
            Ok(json!({"removed": addr.to_string()}))
        }
    }
}

/// An answer's JSON value. Every answer type here serializes (no maps with non-string keys).
fn json<T: Serialize>(answer: &T) -> Value {
    serde_json::to_value(answer).expect("a control answer serializes")
}

/// The host side: sends `command` to the daemon on `socket` and prints the answer for a person
/// (or as JSON).
pub async fn client(socket: &Path, mut command: Command, as_json: bool) -> anyhow::Result<()> {
    match &mut command {
        Command::Top => return crate::watch::top(socket).await,
        Command::Stats { network, watch } => {
            let network = match network {
                Some(given) => Some(network_id(given).await?),
                None => None,
            };
            return crate::watch::stats(socket, network, *watch, as_json).await;
        }
        Command::Tunnel { action } => match action {
            TunnelAction::List {
                network: Some(network),
            }
            | TunnelAction::Add { network, .. }
            | TunnelAction::Remove { network, .. } => *network = network_id(network).await?,
            TunnelAction::List { network: None } => {}
        },
        _ => {}
    }
    let value = ask(socket, &command).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print!("{}", human(&command, &value));
    Ok(())
}

/// Sends `command` to the daemon on `socket`; its answer, or its error.
pub async fn ask(socket: &Path, command: &Command) -> anyhow::Result<Value> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "connecting to {} (is the vxbus plugin enabled, and is this its state directory?)",
            socket.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{}\n", serde_json::to_string(command)?).as_bytes())
        .await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let answer: Value = serde_json::from_str(&line)
        .with_context(|| format!("the daemon answered `{}`", line.trim()))?;
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        bail!("{error}");
    }
    answer
        .get("ok")
        .cloned()
        .ok_or_else(|| anyhow!("the daemon answered `{}`", line.trim()))
}

/// The daemon's latest [`Report`], of `network` or all.
pub async fn ask_stats(socket: &Path, network: Option<String>) -> anyhow::Result<Report> {
    let value = ask(
        socket,
        &Command::Stats {
            network,
            watch: None,
        },
    )
    .await?;
    serde_json::from_value(value).context("reading the daemon's stats")
}

/// A network's id from what the user typed, through the docker CLI (the daemon knows networks
/// by id only: Docker does not tell a driver their names): a name, an id or the start of one.
/// Without the docker CLI, or if Docker does not know it, hex is taken as an id's start.
pub(crate) async fn network_id(given: &str) -> anyhow::Result<String> {
    let hex = !given.is_empty() && given.bytes().all(|b| b.is_ascii_hexdigit());
    let output = tokio::process::Command::new("docker")
        .args(["network", "inspect", "--format", "{{.Id}}", given])
        .output()
        .await;
    let output = match output {
        Ok(output) => output,
        Err(_) if hex => return Ok(given.to_owned()),
        Err(err) => {
            return Err(err).with_context(|| {
                format!("running `docker network inspect {given}` to find its id")
            })
        }
    };
    if !output.status.success() && hex {
        return Ok(given.to_owned());
    }
    if !output.status.success() {
        bail!(
            "network `{given}`: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

use crate::state::short_id as short;

/// The answer as lines for a person.
fn human(command: &Command, value: &Value) -> String {
    let mut out = String::new();
    match command {
        Command::Networks => {
            out += "NETWORK       HOST INTERFACE  OPTIONS\n";
            for (id, network) in value.as_object().into_iter().flatten() {
                let host = network["host_device"]["name"].as_str().unwrap_or("-");
                let options: Vec<String> = network["options"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}={}", text(v)))
                    .collect();
                out += &format!("{:<13} {:<15} {}\n", short(id), host, options.join(" "));
                for (endpoint_id, endpoint) in
                    network["endpoints"].as_object().into_iter().flatten()
                {
                    out += &format!(
                        "  endpoint {} {} <-> {}{}\n",
                        short(endpoint_id),
                        text(&endpoint["host_end"]),
                        text(&endpoint["peer"]),
                        if endpoint["joined"] == true {
                            " (in a container)"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        Command::Plugins => {
            // PIDs are in the plugin's PID namespace (the managed plugin's own, under Docker).
            out += "PLUGIN        STATUS    PID      RESTARTS  NETWORKS  LAST ERROR\n";
            for plugin in value.as_array().into_iter().flatten() {
                out += &format!(
                    "{:<13} {:<9} {:<8} {:<9} {:<9} {}\n",
                    text(&plugin["id"]),
                    text(&plugin["status"]),
                    text(&plugin["pid"]),
                    text(&plugin["restarts"]),
                    plugin["networks"].as_array().map_or(0, Vec::len),
                    text(&plugin["last_error"])
                );
            }
        }
        Command::Tunnel {
            action: TunnelAction::List { .. },
        } => out += &tunnels_table(value),
        Command::Tunnel { .. } => {
            for (what, address) in value.as_object().into_iter().flatten() {
                out += &format!("{what} {}\n", text(address));
            }
        }
        Command::Swarm { .. } => {
            let nodes: Vec<String> = value.as_array().into_iter().flatten().map(text).collect();
            out += &format!(
                "Swarm nodes: {}\n",
                if nodes.is_empty() {
                    "none".to_owned()
                } else {
                    nodes.join(", ")
                }
            );
        }
        Command::Status => {
            out += &human(&Command::Networks, &value["networks"]);
            out += "\n";
            out += &human(&Command::Plugins, &value["plugins"]);
            out += "\n";
            out += &tunnels_table(&value["tunnels"]);
        }
        Command::Stats { .. } | Command::Top => {
            // Printed by `watch`, never through here.
        }
        Command::Settings { .. } | Command::Set { .. } => {
            for (item, value) in value.as_object().into_iter().flatten() {
                out += &format!("{item} = {}\n", text(value));
            }
        }
    }
    out
}

/// `vxbus tunnel list`: a line per tunnel, a line per far end. ERRORS are datagrams or streams
/// not in cannelloni's format; REFUSED, sealed datagrams or streams that failed (`tunnel.key`);
/// DUPS, datagrams that came twice; RESTARTS, times the link started afresh after a gap (a
/// peer's restart, a TCP reconnection).
fn tunnels_table(value: &Value) -> String {
    let mut out = String::new();
    let tunnels = value.as_object().into_iter().flatten();
    out += "NETWORK       TRANSPORT  LISTEN                 FROM BUS   TO BUS     BUS ERRORS  FOREIGN\n";
    for (id, tunnel) in tunnels {
        out += &format!(
            "{:<13} {:<10} {:<22} {:<10} {:<10} {:<11} {}\n",
            short(id),
            text(&tunnel["transport"]),
            text(&tunnel["listen"]),
            text(&tunnel["bus_rx_frames"]),
            text(&tunnel["bus_tx_frames"]),
            text(&tunnel["bus_tx_errors"]),
            text(&tunnel["foreign_datagrams"]),
        );
        out += "  FAR END                ROLE    UP   SENT      RECEIVED  LOST    REORDERED  DUPS  RESTARTS  ERRORS  REFUSED  DROPPED  LAST SEEN\n";
        for peer in tunnel["peers"].as_array().into_iter().flatten() {
            let role = match (text(&peer["role"]).as_str(), peer["vxbus"] == true) {
                ("client", true) => "peer".to_owned(),
                (role, _) => role.to_owned(),
            };
            let seen = peer["last_seen_secs"]
                .as_f64()
                .map_or("never".to_owned(), |secs| format!("{secs:.1} s ago"));
            out += &format!(
                "  {:<22} {:<7} {:<4} {:<9} {:<9} {:<7} {:<10} {:<5} {:<9} {:<7} {:<8} {:<8} {}\n",
                text(&peer["address"]),
                role,
                if peer["connected"] == true {
                    "yes"
                } else {
                    "no"
                },
                text(&peer["tx_frames"]),
                text(&peer["rx_frames"]),
                text(&peer["lost"]),
                text(&peer["reordered"]),
                text(&peer["duplicates"]),
                text(&peer["restarts"]),
                text(&peer["decode_errors"]),
                text(&peer["auth_failures"]),
                text(&peer["dropped"]),
                seen,
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shortened_by_characters_not_bytes() {
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(short("abc"), "abc");
        // Byte 12 of this id falls inside an `é`: slicing bytes would panic.
        assert_eq!(short("aéééééééééééé"), "aééééééééééé");
        // A record with a non-ASCII id is shown, not a panic of the host-side command.
        let networks = json!({"aéééééééééééé": {"host_device": null, "options": {},
            "endpoints": {"ü": {"host_end": "vxbh1", "peer": "vxbc1", "joined": true}}}});
        let text = human(&Command::Networks, &networks);
        assert!(text.contains("aééééééééééé "), "{text}");
        assert!(text.contains("endpoint ü vxbh1 <-> vxbc1"), "{text}");
    }
}
