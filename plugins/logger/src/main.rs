//! `logger`, the bundled vxbus plugin that records a bus's traffic: one file per network, in
//! candump log format (what `candump -l` writes and `canplayer` replays) or pcapng (what
//! Wireshark opens), in the plugin's data directory under the host state directory, rotated by
//! size. It is also the SDK's worked example: a [`BusPlugin`] with per-network options and
//! plugin-wide settings it takes without a restart.
//!
//! Network options: `-o plugin.driver=logger [-o plugin.file=NAME] [-o plugin.format=pcapng]`
//! (the file is `NAME.log`, or `NAME.pcapng`; default NAME: the first 12 characters of the
//! network id). Settings (`vxbus plugin set logger ITEM=VALUE`): `max_file_size` (bytes, default
//! 10 MiB), `max_files` (files kept per network, the current one included, default 5).

mod output;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use output::{Format, Output};
use serde_json::{json, Map, Value};
use socketcan::tokio::CanFdSocket;
use tokio::task::JoinHandle;
use vxbus_sdk::{Bus, BusPlugin, Host, PluginInfo, Schema, INTERFACE_VERSION};

#[derive(Default)]
struct Logger {
    /// The recording task of each network served, by network id.
    recorders: Mutex<HashMap<String, JoinHandle<()>>>,
    /// The rotation settings every recorder reads before each write: set from the settings at
    /// each start and by reconfigure, so a frame costs a copy of two numbers, not of the settings.
    rotation: Arc<Mutex<Rotation>>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rotation {
    max_file_size: u64,
    max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        rotation(&Map::new())
    }
}

fn rotation(settings: &Map<String, Value>) -> Rotation {
    Rotation {
        max_file_size: settings
            .get("max_file_size")
            .and_then(Value::as_u64)
            .unwrap_or(10 << 20),
        max_files: settings
            .get("max_files")
            .and_then(Value::as_u64)
            .unwrap_or(5) as u32,
    }
}

fn info() -> PluginInfo {
    let schema =
        |v: Value| serde_json::from_value::<Schema>(v).expect("the logger's schema is valid JSON");
    PluginInfo {
        name: "logger".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        kind: "bus".into(),
        interface: INTERFACE_VERSION.into(),
        config: schema(json!({
            "file": {"type": "string", "default": "", "length": 64, "displayName": "Log file name",
                     "description": "name of the log file, without .log or .pcapng (default: the network id's first 12 characters)",
                     "order": 1},
            "format": {"type": "enumeration", "options": Format::NAMES, "default": "candump",
                       "displayName": "File format",
                       "description": "candump (text, as candump -l writes) or pcapng (Wireshark, SocketCAN link type)",
                       "order": 2}
        })),
        settings: schema(json!({
            "max_file_size": {"type": "integer", "default": "10485760", "minimum": 4096, "displayName": "Largest file",
                              "description": "bytes after which a file is rotated (NAME.log becomes NAME.log.1, NAME.pcapng NAME.pcapng.1)", "order": 1},
            "max_files": {"type": "integer", "default": "5", "minimum": 1, "maximum": 100, "displayName": "Files kept",
                          "description": "log files kept per network, the current one included", "order": 2}
        })),
    }
}

impl BusPlugin for Logger {
    async fn start(&self, host: &Host, bus: Bus) -> Result<(), String> {
        let name = match bus.plugin.get("file").and_then(Value::as_str) {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => bus.network_id.chars().take(12).collect(),
        };
        if name.contains('/') || name.starts_with('.') {
            return Err(format!("plugin.file `{name}` is not allowed: a file name without `/` that does not start with `.`"));
        }
        let format_name = bus
            .plugin
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("");
        let format = Format::from_name(format_name).ok_or_else(|| {
            format!(
                "plugin.format `{format_name}` is not allowed: one of {}",
                Format::NAMES.join(", ")
            )
        })?;
        let dir = host.data_dir().map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.{}", format.extension()));
        let socket = CanFdSocket::open(&bus.host_interface)
            .map_err(|e| format!("cannot open a CAN socket on {}: {e}", bus.host_interface))?;
        let (file, _) = Output::open(format, &path, &bus.host_interface)?;
        eprintln!(
            "network {}: recording {} to {}",
            bus.network_id,
            bus.host_interface,
            path.display()
        );
        *self.rotation.lock().unwrap() = rotation(&host.settings());
        let limits = self.rotation.clone();
        let iface = bus.host_interface.clone();
        let task = tokio::spawn(async move {
            if let Err(err) = record(socket, &iface, format, file, &path, &limits).await {
                eprintln!("recording {iface} to {}: {err}", path.display());
            }
        });
        if let Some(old) = self.recorders.lock().unwrap().insert(bus.network_id, task) {
            old.abort();
        }
        Ok(())
    }

    async fn stop(&self, _host: &Host, bus: Bus) -> Result<(), String> {
        match self.recorders.lock().unwrap().remove(&bus.network_id) {
            Some(task) => {
                task.abort();
                eprintln!("network {}: recording stopped", bus.network_id);
            }
            None => eprintln!("network {}: was not recording", bus.network_id),
        }
        Ok(())
    }

    async fn reconfigure(&self, _host: &Host, settings: Map<String, Value>) -> Result<(), String> {
        // The recorders read the rotation at each write; nothing to restart.
        let r = rotation(&settings);
        *self.rotation.lock().unwrap() = r;
        eprintln!(
            "settings now: max_file_size {} bytes, max_files {}",
            r.max_file_size, r.max_files
        );
        Ok(())
    }
}

async fn record(
    socket: CanFdSocket,
    iface: &str,
    format: Format,
    mut file: Output,
    path: &PathBuf,
    limits: &Mutex<Rotation>,
) -> Result<(), String> {
    let mut size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    loop {
        // Flush when the bus goes quiet, so the file is current without a write per frame.
        let frame =
            match tokio::time::timeout(Duration::from_millis(200), socket.read_frame()).await {
                Err(_) => {
                    file.flush().map_err(|e| e.to_string())?;
                    continue;
                }
                Ok(frame) => frame.map_err(|e| format!("reading {iface}: {e}"))?,
            };
        let record = file.encode(SystemTime::now(), iface, &frame)?;
        let r = *limits.lock().unwrap();
        if size > 0 && size + record.len() as u64 > r.max_file_size {
            file.flush().map_err(|e| e.to_string())?;
            rotate(path, r.max_files).map_err(|e| format!("rotating {}: {e}", path.display()))?;
            let (fresh, header) = Output::open(format, path, iface)?;
            file = fresh;
            size = header;
        }
        file.append(&record).map_err(|e| e.to_string())?;
        size += record.len() as u64;
    }
}

/// NAME.log → NAME.log.1 → ... → NAME.log.(max_files-1); the oldest beyond that is removed.
fn rotate(path: &Path, max_files: u32) -> std::io::Result<()> {
    let numbered = |n: u32| PathBuf::from(format!("{}.{n}", path.display()));
    if max_files <= 1 {
        return std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(numbered(max_files - 1));
    for n in (1..max_files - 1).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    vxbus_sdk::run(info(), Logger::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bus.log");
        for round in 0..5 {
            std::fs::write(&path, format!("{round}")).unwrap();
            rotate(&path, 3).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["bus.log.1", "bus.log.2"]);
        assert_eq!(
            std::fs::read_to_string(path.with_extension("log.1")).unwrap(),
            "4"
        );
        assert_eq!(
            std::fs::read_to_string(path.with_extension("log.2")).unwrap(),
            "3"
        );
    }

    #[test]
    fn its_schema_passes_the_daemons_checks() {
        let info = info();
        info.config.check("logger").unwrap();
        info.settings.check("logger").unwrap();
    }
}
