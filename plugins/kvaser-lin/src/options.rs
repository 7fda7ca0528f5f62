//! What a network asks of `kvaser-lin`: its `plugin.*` options (RemotiveBus's names), checked
//! and resolved against the LDF into a [`Plan`] the bridge runs.
//!
//! Owns: the option names, their meanings and refusals, and the rules that combine them (the
//! bit rate: the network's `baudrate`, else the LDF's `LIN_speed`, else 19200; the checksum:
//! the option, else the LDF's protocol version, else enhanced). Must not touch adapters or
//! sockets; the LDF's text is handed in.

use std::{path::PathBuf, str::FromStr, time::Duration};

use serde_json::{Map, Value};

use kvaser_canlib::DeviceId;
use vxbus_lin::{ldf::Ldf, Checksum, Role};

use crate::schedule::Schedule;

/// The LIN bit rate when neither the network nor the LDF gives one.
pub const DEFAULT_BITRATE: u32 = 19_200;

/// Where the LIN bus is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A Kvaser adapter's channel.
    Adapter(DeviceId),
    /// No adapter: the plugin simulates the other side from the LDF.
    Simulator,
}

/// A network's options, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub role: Role,
    pub target: Target,
    /// For logs: `name`, else the bus's host interface.
    pub name: String,
    pub base_tick: Duration,
    pub database: Option<PathBuf>,
    pub schedule_table: Option<String>,
    pub schedule_autostart: bool,
    /// `None`: from the LDF's protocol version, else enhanced.
    pub checksum: Option<Checksum>,
    pub status_id: u16,
}

fn text<'a>(plugin: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    plugin
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn integer(plugin: &Map<String, Value>, key: &str, default: u64) -> u64 {
    plugin.get(key).and_then(Value::as_u64).unwrap_or(default)
}

impl Options {
    /// From the typed `plugin.*` values the daemon checked against the schema (defaults filled
    /// in); `host_interface` names the bus in logs when `name` is not given.
    pub fn from_plugin(
        plugin: &Map<String, Value>,
        host_interface: &str,
    ) -> Result<Options, String> {
        let role = match text(plugin, "host_mode") {
            Some("master") => Role::Master,
            Some("slave") => Role::Slave,
            Some(other) => {
                return Err(format!(
                    "plugin.host_mode `{other}` is not allowed: master or slave"
                ))
            }
            None => return Err("plugin.host_mode is mandatory: master or slave".into()),
        };
        let target = match text(plugin, "type").unwrap_or("lin") {
            "lin" => {
                let device = text(plugin, "device_id").ok_or(
                    "plugin.device_id is mandatory with type=lin: the adapter as EAN:serial \
                     (for example 011121:1) or a channel number",
                )?;
                Target::Adapter(
                    DeviceId::from_str(device).map_err(|e| format!("plugin.device_id {e}"))?,
                )
            }
            "simulator" => Target::Simulator,
            other => {
                return Err(format!(
                    "plugin.type `{other}` is not allowed: lin or simulator"
                ))
            }
        };
        let checksum = match text(plugin, "checksum").unwrap_or("auto") {
            "auto" => None,
            "classic" => Some(Checksum::Classic),
            "enhanced" => Some(Checksum::Enhanced),
            other => {
                return Err(format!(
                    "plugin.checksum `{other}` is not allowed: auto, classic or enhanced"
                ))
            }
        };
        let status_id = integer(plugin, "status_id", 0x7F0);
        if !(64..=0x7FF).contains(&status_id) {
            return Err(format!(
                "plugin.status_id {status_id} is not allowed: a CAN identifier from 64 to 2047 \
                 (0 to 63 are LIN's)"
            ));
        }
        let options = Options {
            role,
            target,
            name: text(plugin, "name").unwrap_or(host_interface).to_owned(),
            base_tick: Duration::from_millis(integer(plugin, "base_tick_ms", 5).clamp(1, 1000)),
            database: text(plugin, "database").map(PathBuf::from),
            schedule_table: text(plugin, "schedule_table_name").map(str::to_owned),
            schedule_autostart: plugin
                .get("schedule_autostart")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            checksum,
            status_id: status_id as u16,
        };
        if options.database.is_none() {
            if options.target == Target::Simulator {
                return Err(
                    "plugin.database is mandatory with type=simulator: the LDF whose nodes \
                     the plugin simulates"
                        .into(),
                );
            }
            if let Some(table) = &options.schedule_table {
                return Err(format!(
                    "plugin.schedule_table_name `{table}` needs plugin.database, the LDF that \
                     defines it"
                ));
            }
        }
        Ok(options)
    }
}

/// Everything a bridge needs, resolved.
#[derive(Debug, Clone)]
pub struct Plan {
    pub options: Options,
    pub ldf: Option<Ldf>,
    pub bitrate: u32,
    pub checksum: Checksum,
    pub schedule: Option<Schedule>,
}

impl Plan {
    /// Resolves `options` for a network whose `baudrate` is given; `read` reads the LDF (the
    /// plugin passes `std::fs::read_to_string`).
    pub fn new(
        options: Options,
        baudrate: Option<u32>,
        read: impl FnOnce(&std::path::Path) -> std::io::Result<String>,
    ) -> Result<Plan, String> {
        let ldf = match &options.database {
            None => None,
            Some(path) => {
                let text = read(path).map_err(|e| {
                    format!(
                        "plugin.database {}: {e} (the path is inside the managed plugin: put \
                         the LDF under the state directory, /var/lib/vxbus)",
                        path.display()
                    )
                })?;
                Some(
                    Ldf::parse(&text)
                        .map_err(|e| format!("plugin.database {}: {e}", path.display()))?,
                )
            }
        };
        let schedule =
            match (&options.schedule_table, &ldf) {
                (Some(name), Some(ldf)) => {
                    Some(Schedule::from_ldf(ldf, name).ok_or_else(|| {
                        let tables: Vec<&str> = ldf
                            .schedule_tables
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect();
                        format!(
                    "plugin.schedule_table_name `{name}` is not a schedule table of {}; its \
                     tables: {}",
                    options.database.as_deref().unwrap_or_else(|| "".as_ref()).display(),
                    if tables.is_empty() { "none".to_owned() } else { tables.join(", ") }
                )
                    })?)
                }
                // A simulated master needs a table to run: the LDF's first.
                (None, Some(ldf))
                    if options.target == Target::Simulator && options.role == Role::Slave =>
                {
                    let first =
                        ldf.schedule_tables.first().ok_or_else(|| {
                            format!(
                        "plugin.database {}: has no schedule table, and a simulated master \
                         (type=simulator, host_mode=slave) needs one to run",
                        options.database.as_deref().unwrap_or_else(|| "".as_ref()).display()
                    )
                        })?;
                    Schedule::from_ldf(ldf, &first.name)
                }
                _ => None,
            };
        let bitrate = baudrate
            .or(ldf.as_ref().and_then(|l| l.speed_bps))
            .unwrap_or(DEFAULT_BITRATE);
        let checksum = options
            .checksum
            .or(ldf.as_ref().map(Ldf::checksum))
            .unwrap_or(Checksum::Enhanced);
        Ok(Plan {
            options,
            ldf,
            bitrate,
            checksum,
            schedule,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::SlotAction;
    use serde_json::json;
    use vxbus_lin::LinId;

    fn options(v: Value) -> Result<Options, String> {
        Options::from_plugin(v.as_object().unwrap(), "vxbn0")
    }

    const LDF: &str = r#"
LIN_description_file;
LIN_protocol_version = "1.3";
LIN_language_version = "1.3";
LIN_speed = 9.6 kbps;
Nodes { Master: Gateway, 5 ms, 0.1 ms; Slaves: Door; }
Signals {
  Lock: 8, 0, Gateway, Door;
  Position: 16, 0x1234, Door, Gateway;
}
Frames {
  LockCmd: 16, Gateway, 1 { Lock, 0; }
  DoorState: 32, Door, 2 { Position, 0; }
}
Schedule_tables {
  Normal { LockCmd delay 10 ms; DoorState delay 20 ms; MasterReq delay 10 ms; AssignNAD { Door } delay 10 ms; }
}
"#;

    #[test]
    fn remotivebus_options_are_read_with_their_defaults() {
        let o =
            options(json!({"driver": "kvaser", "host_mode": "master", "device_id": "011121:1"}))
                .unwrap();
        assert_eq!(o.role, Role::Master);
        assert_eq!(
            o.target,
            Target::Adapter(DeviceId::Adapter {
                ean: "011121".into(),
                serial: 1
            })
        );
        assert_eq!(o.name, "vxbn0");
        assert_eq!(o.base_tick, Duration::from_millis(5));
        assert!(o.schedule_autostart);
        assert_eq!(o.status_id, 0x7F0);
        let o = options(
            json!({"host_mode": "slave", "type": "simulator", "database": "/x.ldf",
                               "name": "body", "base_tick_ms": 10, "checksum": "classic"}),
        )
        .unwrap();
        assert_eq!(
            (o.role, o.target, o.name.as_str()),
            (Role::Slave, Target::Simulator, "body")
        );
        assert_eq!(o.checksum, Some(Checksum::Classic));
    }

    #[test]
    fn refusals_name_the_option_and_what_is_allowed() {
        let cases = [
            (json!({}), "plugin.host_mode is mandatory: master or slave"),
            (
                json!({"host_mode": "both"}),
                "plugin.host_mode `both` is not allowed: master or slave",
            ),
            (
                json!({"host_mode": "master"}),
                "plugin.device_id is mandatory with type=lin",
            ),
            (
                json!({"host_mode": "master", "device_id": "x"}),
                "plugin.device_id `x` is not EAN:serial",
            ),
            (
                json!({"host_mode": "master", "type": "simulator"}),
                "plugin.database is mandatory with type=simulator",
            ),
            (
                json!({"host_mode": "master", "device_id": "0", "schedule_table_name": "T"}),
                "plugin.schedule_table_name `T` needs plugin.database",
            ),
            (
                json!({"host_mode": "master", "device_id": "0", "status_id": 63}),
                "plugin.status_id 63 is not allowed",
            ),
        ];
        for (given, expected) in cases {
            let err = options(given.clone()).unwrap_err();
            assert!(err.starts_with(expected), "{given}: {err}");
        }
    }

    fn plan(v: Value, baudrate: Option<u32>) -> Result<Plan, String> {
        Plan::new(options(v).unwrap(), baudrate, |_| Ok(LDF.to_owned()))
    }

    #[test]
    fn bit_rate_and_checksum_come_from_the_network_then_the_ldf_then_the_defaults() {
        let adapter = json!({"host_mode": "master", "device_id": "0"});
        let p = plan(adapter.clone(), None).unwrap();
        assert_eq!(
            (p.bitrate, p.checksum),
            (DEFAULT_BITRATE, Checksum::Enhanced)
        );
        let with_ldf = json!({"host_mode": "master", "device_id": "0", "database": "/d.ldf"});
        let p = plan(with_ldf.clone(), None).unwrap();
        assert_eq!((p.bitrate, p.checksum), (9600, Checksum::Classic));
        let p = plan(with_ldf, Some(19200)).unwrap();
        assert_eq!(p.bitrate, 19200);
        let forced = json!({"host_mode": "master", "device_id": "0", "database": "/d.ldf", "checksum": "enhanced"});
        assert_eq!(plan(forced, None).unwrap().checksum, Checksum::Enhanced);
    }

    #[test]
    fn a_schedule_table_resolves_to_what_the_master_does() {
        let p = plan(
            json!({"host_mode": "master", "device_id": "0", "database": "/d.ldf", "schedule_table_name": "Normal"}),
            None,
        )
        .unwrap();
        let schedule = p.schedule.unwrap();
        let actions: Vec<SlotAction> = schedule.slots.iter().map(|s| s.action.clone()).collect();
        let id = |n| LinId::new(n).unwrap();
        assert_eq!(
            actions,
            [
                SlotAction::Publish(id(16)),
                SlotAction::Header(id(32)),
                SlotAction::Publish(id(0x3C)),
                SlotAction::Idle("AssignNAD".into())
            ]
        );
        assert_eq!(schedule.slots[1].delay, Duration::from_millis(20));
    }

    #[test]
    fn a_bad_ldf_or_table_names_the_file_and_line() {
        let err = plan(
            json!({"host_mode": "master", "device_id": "0", "database": "/d.ldf", "schedule_table_name": "Fast"}),
            None,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "plugin.schedule_table_name `Fast` is not a schedule table of /d.ldf; its tables: Normal"
        );
        let broken = Plan::new(
            options(json!({"host_mode": "master", "device_id": "0", "database": "/b.ldf"}))
                .unwrap(),
            None,
            |_| Ok("LIN_description_file;\nLIN_speed = fast;\n".to_owned()),
        )
        .unwrap_err();
        assert!(
            broken.starts_with("plugin.database /b.ldf: line 2: "),
            "{broken}"
        );
        let missing = Plan::new(
            options(json!({"host_mode": "master", "device_id": "0", "database": "/no.ldf"}))
                .unwrap(),
            None,
            |p| std::fs::read_to_string(p),
        )
        .unwrap_err();
        assert!(
            missing.starts_with("plugin.database /no.ldf: No such file"),
            "{missing}"
        );
    }

    #[test]
    fn a_simulated_master_runs_the_first_table_unless_told() {
        let p = plan(
            json!({"host_mode": "slave", "type": "simulator", "database": "/d.ldf"}),
            None,
        )
        .unwrap();
        assert_eq!(p.schedule.unwrap().name, "Normal");
        let p = plan(
            json!({"host_mode": "master", "type": "simulator", "database": "/d.ldf"}),
            None,
        )
        .unwrap();
        assert_eq!(p.schedule, None);
    }
}
