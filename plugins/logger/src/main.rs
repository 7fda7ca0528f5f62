//! `logger`, the bundled vxbus plugin that records a bus's traffic: one candump-format log file
//! per network (what `candump -l` writes and `canplayer` replays), in the plugin's data
//! directory under the host state directory, rotated by size. It is also the SDK's worked
//! example: a [`BusPlugin`] with per-network options and plugin-wide settings it takes without
//! a restart.
//!
//! Network options: `-o plugin.driver=logger [-o plugin.file=NAME]` (the file is
//! `NAME.log`; default: the first 12 characters of the network id).
//! Settings (`vxbus plugin set logger ITEM=VALUE`): `max_file_size` (bytes, default 10 MiB),
//! `max_files` (files kept per network, the current one included, default 5).

use std::{
    collections::HashMap,
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use serde_json::{json, Map, Value};
use socketcan::{tokio::CanFdSocket, CanAnyFrame, EmbeddedFrame, Frame, Id};
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
                     "description": "name of the log file, without .log (default: the network id's first 12 characters)"}
        })),
        settings: schema(json!({
            "max_file_size": {"type": "integer", "default": "10485760", "minimum": 4096, "displayName": "Largest file",
                              "description": "bytes after which a log file is rotated (NAME.log becomes NAME.log.1)", "order": 1},
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
        let dir = host.data_dir().map_err(|e| e.to_string())?;
        let path = dir.join(format!("{name}.log"));
        let socket = CanFdSocket::open(&bus.host_interface)
            .map_err(|e| format!("cannot open a CAN socket on {}: {e}", bus.host_interface))?;
        let file = open_append(&path)?;
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
            if let Err(err) = record(socket, &iface, file, &path, &limits).await {
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

fn open_append(path: &Path) -> Result<std::io::BufWriter<std::fs::File>, String> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(std::io::BufWriter::new)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

async fn record(
    socket: CanFdSocket,
    iface: &str,
    mut file: std::io::BufWriter<std::fs::File>,
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
        let line = candump_line(SystemTime::now(), iface, &frame);
        let r = *limits.lock().unwrap();
        if size > 0 && size + line.len() as u64 > r.max_file_size {
            file.flush().map_err(|e| e.to_string())?;
            rotate(path, r.max_files).map_err(|e| format!("rotating {}: {e}", path.display()))?;
            file = open_append(path)?;
            size = 0;
        }
        file.write_all(line.as_bytes()).map_err(|e| e.to_string())?;
        size += line.len() as u64;
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

/// One line of a candump log: `(SECONDS.MICROS) IFACE ID#DATA`, FD frames as `ID##FLAGSDATA`,
/// remote requests as `ID#R`.
fn candump_line(when: SystemTime, iface: &str, frame: &CanAnyFrame) -> String {
    let since = when
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let id = |id: Id| match id {
        Id::Standard(id) => format!("{:03X}", id.as_raw()),
        Id::Extended(id) => format!("{:08X}", id.as_raw()),
    };
    let hex = |data: &[u8]| data.iter().map(|b| format!("{b:02X}")).collect::<String>();
    let body = match frame {
        CanAnyFrame::Normal(f) => format!("{}#{}", id(f.id()), hex(f.data())),
        CanAnyFrame::Remote(f) => format!("{}#R", id(f.id())),
        CanAnyFrame::Error(f) => format!("{:08X}#{}", f.raw_id() | libc_err_flag(), hex(f.data())),
        CanAnyFrame::Fd(f) => format!(
            "{}##{:X}{}",
            id(f.id()),
            f.flags().bits() & 0x0f,
            hex(f.data())
        ),
    };
    format!(
        "({}.{:06}) {iface} {body}\n",
        since.as_secs(),
        since.subsec_micros()
    )
}

/// CAN_ERR_FLAG: marks an error frame's id in a log line.
fn libc_err_flag() -> u32 {
    0x2000_0000
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    vxbus_sdk::run(info(), Logger::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use socketcan::{CanDataFrame, CanFdFrame, CanRemoteFrame, ExtendedId, StandardId};

    #[test]
    fn lines_are_candump_logs() {
        let when = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let std_id = StandardId::new(0x123).unwrap();
        let classic = CanAnyFrame::Normal(CanDataFrame::new(std_id, &[0xde, 0xad]).unwrap());
        assert_eq!(
            candump_line(when, "vxbn0", &classic),
            "(1700000000.123456) vxbn0 123#DEAD\n"
        );
        let ext =
            CanAnyFrame::Normal(CanDataFrame::new(ExtendedId::new(0x1A0).unwrap(), &[]).unwrap());
        assert_eq!(
            candump_line(when, "h", &ext),
            "(1700000000.123456) h 000001A0#\n"
        );
        let rtr = CanAnyFrame::Remote(CanRemoteFrame::new_remote(std_id, 2).unwrap());
        assert_eq!(
            candump_line(when, "h", &rtr),
            "(1700000000.123456) h 123#R\n"
        );
        let fd = CanAnyFrame::Fd(CanFdFrame::new(std_id, &[1; 12]).unwrap());
        assert_eq!(
            candump_line(when, "h", &fd),
            format!("(1700000000.123456) h 123##4{}\n", "01".repeat(12))
        );
    }

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
