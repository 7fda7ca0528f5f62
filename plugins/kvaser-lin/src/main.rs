//! `kvaser-lin` (also answering to `kvaser`), the bundled vxbus plugin that joins a network's
//! CAN bus to a LIN bus: a Kvaser adapter's LIN channel (LINlib, loaded at run time from the
//! `library_path` setting), or with `type=simulator` a LIN bus simulated from an LDF.
//!
//! This file only wires things together: the SDK's start and stop, one CAN socket per network
//! on its host interface, and a bridge thread ([`bridge`]) that owns the LIN side. The plugin's
//! own modules:
//!
//! - [`options`]: a network's `plugin.*` options, resolved with its LDF into a plan.
//! - [`schedule`]: schedule tables and the one clock that runs them.
//! - [`mapping`]: CAN frames to LIN calls and LIN frames to CAN frames (pure functions).
//! - [`bridge`]: the loop that owns the LIN side (an adapter's channel, or the simulator).
//! - [`sim`]: `type=simulator`, a LIN bus made from the LDF.
//!
//! LIN's types and the LDF parser are the `vxbus-lin` crate; Kvaser's libraries are reached
//! through `kvaser-canlib`.
//!
//! Network options (RemotiveBus's): `-o plugin.driver=kvaser -o plugin.host_mode=master
//! -o plugin.device_id=011121:1 [-o plugin.database=/var/lib/vxbus/x.ldf
//! -o plugin.schedule_table_name=Normal ...]`; see the README's "LIN through a Kvaser adapter".
//! Setting (`vxbus plugin set kvaser-lin library_path=DIR`): where `liblinlib.so.1` and
//! `libcanlib.so.1` are, inside the managed plugin.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
};

use kvaser_canlib::Kvaser;
use serde_json::{json, Value};
use socketcan::{tokio::CanFdSocket, CanAnyFrame, CanDataFrame, EmbeddedFrame, Frame, StandardId};
use tokio::task::JoinHandle;
use vxbus_lin::Role;
use vxbus_sdk::{Bus, BusPlugin, Host, PluginInfo, Schema, INTERFACE_VERSION};

mod bridge;
mod mapping;
mod options;
mod schedule;
mod sim;

use bridge::{worth_logging, Bridge, CanFrameIn, Command, LinPort};
use mapping::CanOut;
use options::{Options, Plan, Target};
use sim::SimulatedBus;

/// Where the plugin looks for `liblinlib.so.1` and `libcanlib.so.1` unless told otherwise: the
/// destination of the managed plugin's `kvaser` mount.
pub const DEFAULT_LIBRARY_DIR: &str = "/usr/lib/kvaser";

/// How many CAN frames may wait for the bridge thread; more are dropped (and counted) rather than
/// held: a member flooding the bus must not grow the plugin's memory.
const QUEUE: usize = 1024;

/// The most bytes `plugin.database` may have: LDFs are text of a few kilobytes to a few hundred.
const MAX_DATABASE_BYTES: u64 = 4 << 20;

/// One network being bridged.
struct Running {
    commands: mpsc::SyncSender<Command>,
    thread: std::thread::JoinHandle<()>,
    can: JoinHandle<()>,
}

#[derive(Default)]
struct KvaserLin {
    running: Mutex<HashMap<String, Running>>,
    /// Libraries loaded so far, by directory: loaded once, shared by the networks' channels.
    libraries: Mutex<HashMap<PathBuf, Arc<Kvaser>>>,
}

fn info() -> PluginInfo {
    let schema =
        |v: Value| serde_json::from_value::<Schema>(v).expect("kvaser-lin's schema is valid JSON");
    PluginInfo {
        name: "kvaser-lin".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        kind: "bus".into(),
        interface: INTERFACE_VERSION.into(),
        config: schema(json!({
            "host_mode": {"type": "enumeration", "options": ["master", "slave"], "mandatory": true, "order": 1,
                          "displayName": "Host mode",
                          "description": "the part the bus's containers play on the LIN bus: master (they publish and send headers) or slave (they set responses)"},
            "device_id": {"type": "string", "default": "", "length": 32, "order": 2, "displayName": "Adapter",
                          "description": "the Kvaser adapter as EAN:serial (011121:1, matched against the adapter's EAN and serial number) or a CANlib channel number; needed with type=lin"},
            "type": {"type": "enumeration", "options": ["lin", "simulator"], "default": "lin", "order": 3, "displayName": "Type",
                     "description": "lin: a Kvaser adapter; simulator: no adapter, the LDF's other nodes simulated"},
            "name": {"type": "string", "default": "", "length": 64, "order": 4, "displayName": "Name",
                     "description": "the LIN bus's name in logs (default: the bus's host interface)"},
            "base_tick_ms": {"type": "integer", "default": "5", "minimum": 1, "maximum": 1000, "order": 5, "displayName": "Base tick",
                             "description": "milliseconds: the longest a CAN frame waits before it reaches the LIN bus, and the schedule's resolution"},
            "database": {"type": "string", "default": "", "length": 4096, "order": 6, "displayName": "LDF",
                         "description": "the LIN description file, a path inside the managed plugin (files under the host's /var/lib/vxbus are there)"},
            "schedule_table_name": {"type": "string", "default": "", "length": 128, "order": 7, "displayName": "Schedule table",
                                    "description": "master: the LDF's schedule table to run on the base tick"},
            "schedule_autostart": {"type": "boolean", "default": "true", "order": 8, "displayName": "Start the schedule",
                                   "description": "run the schedule table from the start; if false, a frame on status_id with data 1 starts it and 0 stops it"},
            "checksum": {"type": "enumeration", "options": ["auto", "classic", "enhanced"], "default": "auto", "order": 9, "displayName": "Checksum",
                         "description": "auto: classic for an LDF of LIN 1.x, else enhanced"},
            "status_id": {"type": "integer", "default": "2032", "minimum": 64, "maximum": 2047, "order": 10, "displayName": "Status CAN id",
                          "description": "the CAN identifier of LIN error reports [LIN id, error bits, count] (and of schedule start/stop)"}
        })),
        settings: schema(json!({
            "library_path": {"type": "string", "default": DEFAULT_LIBRARY_DIR, "length": 4096, "displayName": "Kvaser libraries",
                             "description": "the directory holding liblinlib.so.1 and libcanlib.so.1, inside the managed plugin (its `kvaser` mount, the host's /usr/lib, is there)"}
        })),
    }
}

impl KvaserLin {
    /// Kvaser's libraries from `dir`, loaded on first use.
    fn library(&self, dir: PathBuf) -> Result<Arc<Kvaser>, String> {
        let mut loaded = self.libraries.lock().unwrap();
        if let Some(kvaser) = loaded.get(&dir) {
            return Ok(kvaser.clone());
        }
        let kvaser = Arc::new(Kvaser::load(&dir).map_err(|e| e.to_string())?);
        loaded.insert(dir, kvaser.clone());
        Ok(kvaser)
    }
}

/// Opens the LIN side of `plan`: the adapter's channel set up and on the bus, or the simulator.
/// Returns it and a description for the log.
fn open_port(
    plan: &Plan,
    kvaser: Option<Arc<Kvaser>>,
) -> Result<(Box<dyn LinPort>, String), String> {
    let role = plan.options.role;
    match (&plan.options.target, kvaser) {
        (Target::Adapter(device), Some(kvaser)) => {
            let channel = kvaser.find(device)?;
            let lin = kvaser
                .open(channel, role)
                .map_err(|e| format!("opening Kvaser channel {channel} for LIN: {e}"))?;
            lin.setup(plan.checksum, plan.bitrate)
                .map_err(|e| format!("setting up Kvaser channel {channel}: {e}"))?;
            lin.bus_on()
                .map_err(|e| format!("Kvaser channel {channel} going on the LIN bus: {e}"))?;
            let what = format!(
                "Kvaser channel {channel} (device_id {device}) as {role:?}, {} bit/s, {:?} checksum",
                plan.bitrate, plan.checksum
            );
            Ok((Box::new(lin), what))
        }
        (Target::Simulator, _) => {
            let what = format!(
                "a simulated LIN bus ({} of {})",
                match role {
                    Role::Master => "slave nodes".to_owned(),
                    Role::Slave => format!(
                        "master running {}",
                        plan.schedule
                            .as_ref()
                            .map_or("no table", |s| s.name.as_str())
                    ),
                },
                plan.options
                    .database
                    .as_deref()
                    .unwrap_or("".as_ref())
                    .display()
            );
            Ok((Box::new(SimulatedBus::new(plan)), what))
        }
        (Target::Adapter(_), None) => unreachable!("the library is loaded for an adapter"),
    }
}

impl BusPlugin for KvaserLin {
    async fn start(&self, host: &Host, bus: Bus) -> Result<(), String> {
        // A start for a network already bridged (told again): its channel is closed first, as an
        // adapter's LIN channel opens only once.
        let previous = self.running.lock().unwrap().remove(&bus.network_id);
        if let Some(previous) = previous {
            end(previous).await;
        }
        let options = Options::from_plugin(&bus.plugin, &bus.host_interface)?;
        let plan = Plan::new(options, bus.baudrate, read_database)?;
        let kvaser = match plan.options.target {
            Target::Adapter(_) => {
                let dir = host
                    .settings()
                    .get("library_path")
                    .and_then(Value::as_str)
                    .unwrap_or(DEFAULT_LIBRARY_DIR)
                    .into();
                Some(self.library(dir)?)
            }
            Target::Simulator => None,
        };
        let socket = CanFdSocket::open(&bus.host_interface)
            .map_err(|e| format!("cannot open a CAN socket on {}: {e}", bus.host_interface))?;
        let name = plan.options.name.clone();
        let (commands, commands_rx) = mpsc::sync_channel(QUEUE);
        let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel::<CanOut>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        // The LIN side is opened, used and closed on this one thread (Kvaser: one handle, one
        // thread).
        let thread = std::thread::Builder::new()
            .name(format!("lin-{name}"))
            .spawn(move || {
                let port = match open_port(&plan, kvaser) {
                    Ok((port, what)) => {
                        let _ = ready_tx.send(Ok(what));
                        port
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let result = Bridge::new(port, &plan).run(commands_rx, |frame| {
                    let _ = out_tx.send(frame);
                });
                match result {
                    Ok(()) => eprintln!("{name}: LIN channel closed"),
                    Err(e) => eprintln!("{name}: bridge stopped: {e}; LIN channel closed"),
                }
            })
            .map_err(|e| format!("cannot start the bridge thread: {e}"))?;
        let what = match ready_rx.await {
            Ok(Ok(what)) => what,
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => return Err("the bridge thread ended before the LIN bus was open".into()),
        };
        eprintln!(
            "network {}: bridging {} to {what}",
            bus.network_id, bus.host_interface
        );
        let can = tokio::spawn(carry(
            socket,
            bus.host_interface.clone(),
            commands.clone(),
            out_rx,
        ));
        self.running.lock().unwrap().insert(
            bus.network_id,
            Running {
                commands,
                thread,
                can,
            },
        );
        Ok(())
    }

    async fn stop(&self, _host: &Host, bus: Bus) -> Result<(), String> {
        let running = self.running.lock().unwrap().remove(&bus.network_id);
        match running {
            Some(running) => {
                end(running).await;
                eprintln!("network {}: no longer bridged", bus.network_id);
            }
            None => eprintln!("network {}: was not bridged", bus.network_id),
        }
        Ok(())
    }
}

/// Stops a bridge and waits until its thread has closed the LIN side. `Stop` waits for room in
/// the queue on a blocking thread: the bridge takes commands every turn, so there will be some.
async fn end(running: Running) {
    running.can.abort();
    let Running {
        commands, thread, ..
    } = running;
    let _ = tokio::task::spawn_blocking(move || {
        let _ = commands.send(Command::Stop);
        thread.join()
    })
    .await;
}

/// Reads `plugin.database`: a regular file of at most [`MAX_DATABASE_BYTES`]. Opened without
/// blocking, so a FIFO or a device named by mistake is refused instead of hanging the plugin
/// (or, like `/dev/zero`, filling its memory).
fn read_database(path: &Path) -> std::io::Result<String> {
    use std::{io::Read, os::unix::fs::OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(std::io::Error::other(format!(
            "not a regular file ({:?})",
            metadata.file_type()
        )));
    }
    if metadata.len() > MAX_DATABASE_BYTES {
        return Err(std::io::Error::other(format!(
            "{} bytes, more than an LDF has (at most {MAX_DATABASE_BYTES})",
            metadata.len()
        )));
    }
    let mut text = String::new();
    file.take(MAX_DATABASE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// Carries frames between the CAN socket and the bridge until aborted or the socket fails.
async fn carry(
    socket: CanFdSocket,
    iface: String,
    commands: mpsc::SyncSender<Command>,
    mut out: tokio::sync::mpsc::UnboundedReceiver<CanOut>,
) {
    let mut dropped = 0u32;
    loop {
        tokio::select! {
            frame = socket.read_frame() => {
                let frame = match frame {
                    Ok(frame) => frame,
                    Err(e) => {
                        eprintln!("reading {iface}: {e}; frames from the bus no longer reach LIN");
                        return;
                    }
                };
                let frame = match frame {
                    CanAnyFrame::Normal(f) => CanFrameIn { id: f.raw_id(), extended: f.is_extended(), remote: false, data: f.data().to_vec() },
                    CanAnyFrame::Remote(f) => CanFrameIn { id: f.raw_id(), extended: f.is_extended(), remote: true, data: Vec::new() },
                    CanAnyFrame::Fd(f) => CanFrameIn { id: f.raw_id(), extended: f.is_extended(), remote: false, data: f.data().to_vec() },
                    CanAnyFrame::Error(_) => continue,
                };
                match commands.try_send(Command::Can(frame)) {
                    Ok(()) => {}
                    Err(mpsc::TrySendError::Full(_)) => {
                        dropped += 1;
                        if worth_logging(dropped) {
                            eprintln!("{iface}: the LIN side is {QUEUE} frames behind: a frame from the bus was dropped ({dropped} so far)");
                        }
                    }
                    Err(mpsc::TrySendError::Disconnected(_)) => return, // the bridge has ended
                }
            }
            Some(frame) = out.recv() => {
                let data = StandardId::new(frame.id).and_then(|id| CanDataFrame::new(id, &frame.data));
                let Some(data) = data else {
                    eprintln!("{iface}: not a classic CAN frame, not sent: id 0x{:X}, {} bytes", frame.id, frame.data.len());
                    continue;
                };
                if let Err(e) = socket.write_frame(&data).await {
                    eprintln!("writing 0x{:X} to {iface}: {e}", frame.id);
                }
            }
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    vxbus_sdk::run(info(), KvaserLin::default()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn its_schema_passes_the_daemons_checks() {
        let info = info();
        info.config.check("kvaser-lin").unwrap();
        info.settings.check("kvaser-lin").unwrap();
    }

    /// The managed plugin's `kvaser` mount lands where this plugin looks for Kvaser's libraries.
    #[test]
    fn the_kvaser_mount_lands_on_the_default_library_path() {
        let config: Value =
            serde_json::from_str(include_str!("../../../plugin/config.json")).unwrap();
        let mounts = config["mounts"].as_array().unwrap();
        let kvaser = mounts.iter().find(|m| m["name"] == "kvaser").unwrap();
        assert_eq!(kvaser["destination"], DEFAULT_LIBRARY_DIR);
        assert_eq!(kvaser["options"], serde_json::json!(["rbind", "ro"]));
    }

    /// `plugin.database` names what the plugin reads at `docker network create`: a FIFO (which
    /// would block the read for ever) or a device such as `/dev/zero` (which would fill the
    /// plugin's memory) is refused at once, and so is a file larger than an LDF.
    #[test]
    fn the_database_is_a_regular_file_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let ldf = dir.path().join("body.ldf");
        std::fs::write(&ldf, "LIN_description_file ;").unwrap();
        assert_eq!(read_database(&ldf).unwrap(), "LIN_description_file ;");
        let fifo = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let err = read_database(&fifo).unwrap_err().to_string();
        assert!(err.starts_with("not a regular file"), "{err}");
        let err = read_database(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("not a regular file"), "{err}");
        let big = dir.path().join("big.ldf");
        let file = std::fs::File::create(&big).unwrap();
        file.set_len(MAX_DATABASE_BYTES + 1).unwrap();
        let err = read_database(&big).unwrap_err().to_string();
        assert!(err.contains("more than an LDF has"), "{err}");
    }
}
