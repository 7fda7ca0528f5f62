//! The control socket, and the host-side commands that use it: `vxbus networks`, `vxbus plugins`,
//! `vxbus settings PLUGIN`, `vxbus set PLUGIN ITEM=VALUE`.
//!
//! The daemon serves `control.sock` in its state directory (a host directory mounted into the
//! managed plugin, so the host reaches it at `/var/lib/vxbus/control.sock`); each connection
//! carries one JSON request line and gets one JSON answer line.
//!
//! Owns: that exchange and how its answers are printed. Must not touch: the kernel or the state
//! file; it asks the driver and the supervisor.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::UnixStream,
};

use vxbus_sdk::PluginId;

use crate::{driver::Driver, supervisor::Supervisor};

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
}

/// The longest request line the control socket reads.
pub const MAX_REQUEST: u64 = 64 * 1024;
/// How long a client has to send its request line.
pub const REQUEST_TIME: Duration = Duration::from_secs(5);

/// Serves the control socket at `path` until the process ends.
pub fn serve(path: &Path, driver: Arc<Driver>, plugins: Arc<Supervisor>) -> anyhow::Result<()> {
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
            let (driver, plugins) = (driver.clone(), plugins.clone());
            tokio::spawn(async move {
                if let Err(err) = answer(stream, &driver, &plugins).await {
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
            Ok(command) => run(command, driver, plugins).await,
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
) -> Result<Value, String> {
    match command {
        Command::Networks => Ok(json(&driver.networks().await)),
        Command::Plugins => Ok(json(&plugins.report())),
        Command::Settings { plugin } => plugins
            .settings(&plugin)
            .map(Value::Object)
            .map_err(|e| e.to_string()),
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

/// An answer's JSON value. Every answer type here serializes (no maps with non-string keys).
fn json<T: Serialize>(answer: &T) -> Value {
    serde_json::to_value(answer).expect("a control answer serializes")
}

/// The host side: sends `command` to the daemon on `socket` and prints the answer for a person
/// (or as JSON).
pub async fn client(socket: &Path, command: Command, as_json: bool) -> anyhow::Result<()> {
    let stream = UnixStream::connect(socket).await.with_context(|| {
        format!(
            "connecting to {} (is the vxbus plugin enabled, and is this its state directory?)",
            socket.display()
        )
    })?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(format!("{}\n", serde_json::to_string(&command)?).as_bytes())
        .await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let answer: Value = serde_json::from_str(&line)
        .with_context(|| format!("the daemon answered `{}`", line.trim()))?;
    if let Some(error) = answer.get("error").and_then(Value::as_str) {
        bail!("{error}");
    }
    let value = answer
        .get("ok")
        .cloned()
        .ok_or_else(|| anyhow!("the daemon answered `{}`", line.trim()))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    print!("{}", human(&command, &value));
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The first 12 characters of a Docker id, as `docker network ls` shows them (characters, not
/// bytes: the id comes from the daemon's record and is not trusted to be ASCII).
fn short(id: &str) -> &str {
    id.char_indices().nth(12).map_or(id, |(end, _)| &id[..end])
}

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
        Command::Settings { .. } | Command::Set { .. } => {
            for (item, value) in value.as_object().into_iter().flatten() {
                out += &format!("{item} = {}\n", text(value));
            }
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
