//! Daemon settings: where the daemon serves Docker, keeps its state and finds external plugin
//! sockets, and how much it logs.
//!
//! Owns: parsing and validating the command line and the `VXBUS_*` environment (the managed
//! plugin's `env` in `plugin/config.json`, which users change with `docker plugin set`).
//! Must not touch: the filesystem or the kernel; it only describes what the daemon will use.

use std::{fmt, path::PathBuf, str::FromStr};

use clap::Parser;

/// Where Docker looks for a managed plugin's socket: `/run/docker/plugins/<interface.socket>`.
pub const DEFAULT_SOCKET: &str = "/run/docker/plugins/vxbus.sock";
/// The state directory inside the plugin; `plugin/config.json` bind-mounts the host's here.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/vxbus";
/// Where external plugins put their Unix sockets; bind-mounted from the host.
pub const DEFAULT_PLUGIN_SOCKET_DIR: &str = "/run/vxbus/plugins";

/// Everything the daemon is told at start. Every flag can also come from its `VXBUS_*`
/// environment variable; the flag wins when both are given.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "vxbus",
    version,
    about = "Docker network driver that gives containers virtual CAN buses"
)]
pub struct Settings {
    /// Unix socket on which Docker's plugin protocol is served.
    #[arg(long, env = "VXBUS_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// Directory where the driver keeps its state (the host directory mounted there survives
    /// plugin restarts and upgrades).
    #[arg(long, env = "VXBUS_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Directory where external plugins bind their Unix sockets, one per plugin id.
    #[arg(long, env = "VXBUS_PLUGIN_SOCKET_DIR", default_value = DEFAULT_PLUGIN_SOCKET_DIR)]
    pub plugin_socket_dir: PathBuf,

    /// Directory of bundled plugins: `<dir>/<id>/plugin.json` and the program it names.
    #[arg(long, env = "VXBUS_PLUGIN_DIR", default_value = crate::supervisor::DEFAULT_BUNDLED_DIR)]
    pub plugin_dir: PathBuf,

    /// Seconds a plugin has to register and to answer `start` or `stop`.
    #[arg(long, env = "VXBUS_PLUGIN_START_TIMEOUT", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
    pub plugin_start_timeout: u64,

    /// The control socket (`vxbus networks`, `plugins`, `settings`, `set`); default:
    /// `control.sock` in the state directory.
    #[arg(long, env = "VXBUS_CONTROL_SOCKET")]
    pub control_socket: Option<PathBuf>,

    /// With a command: print the daemon's answer as JSON (before or after the command).
    #[arg(long, global = true)]
    pub json: bool,

    /// Without a command, vxbus runs the daemon; with one, it asks the running daemon.
    #[command(subcommand)]
    pub command: Option<crate::control::Command>,

    /// Serve Prometheus metrics at IP:PORT (`http://IP:PORT/metrics`); `off` (or empty): none.
    #[arg(long, env = "METRICS", default_value = "off")]
    pub metrics: MetricsAddress,

    /// Count each bus's load (a CAN socket that reads every frame): on or off.
    #[arg(long, env = "VXBUS_BUS_LOAD", default_value = "on", value_parser = clap::builder::BoolishValueParser::new(), action = clap::ArgAction::Set)]
    pub bus_load: bool,

    /// How much to log: one of off, error, warn, info, debug, trace, or per-module directives
    /// such as `vxbus=debug,info`.
    #[arg(long, env = "VXBUS_LOG", default_value = "info")]
    pub log: LogFilter,
}

impl Settings {
    /// Where the control socket is.
    pub fn control_socket_path(&self) -> PathBuf {
        self.control_socket
            .clone()
            .unwrap_or_else(|| self.state_dir.join(crate::control::SOCKET_NAME))
    }
}

/// Where the Prometheus metrics are served, if anywhere (`METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddress(pub Option<std::net::SocketAddr>);

/// A `METRICS` value that is neither an address nor `off`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "METRICS (--metrics) `{given}` is not an address to serve metrics on: give IP:PORT, such as \
     127.0.0.1:9464 or [::1]:9464, or `off` (or nothing) for none"
)]
pub struct BadMetricsAddress {
    given: String,
}

impl FromStr for MetricsAddress {
    type Err = BadMetricsAddress;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let given = s.trim();
        if given.is_empty() || given.eq_ignore_ascii_case("off") {
            return Ok(MetricsAddress(None));
        }
        given
            .parse()
            .map(|address| MetricsAddress(Some(address)))
            .map_err(|_| BadMetricsAddress {
                given: s.to_owned(),
            })
    }
}

/// The log levels a [`LogFilter`] accepts, in increasing verbosity.
pub const LOG_LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A validated log filter: a level, or comma-separated `target=level` directives.
///
/// `tracing_subscriber::EnvFilter` would accept almost any word (it reads `verbose` as "the
/// target named verbose"), which silently turns logging off; a user who mistypes a level with
/// `docker plugin set` must be told instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(String);

/// A log filter that is not one of [`LOG_LEVELS`] nor `target=level` directives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "VXBUS_LOG (--log) `{given}` is not a log level: use one of off, error, warn, info, debug, \
     trace, or directives such as `vxbus=debug,info`"
)]
pub struct BadLogFilter {
    given: String,
}

fn is_level(word: &str) -> bool {
    LOG_LEVELS
        .iter()
        .any(|level| level.eq_ignore_ascii_case(word))
}

impl FromStr for LogFilter {
    type Err = BadLogFilter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadLogFilter {
            given: s.to_owned(),
        };
        let mut directives = s.split(',').map(str::trim).peekable();
        if directives.peek().is_none_or(|first| first.is_empty()) {
            return Err(bad());
        }
        for directive in directives {
            let level = match directive.rsplit_once('=') {
                Some((target, level)) if !target.is_empty() => level,
                Some(_) => return Err(bad()),
                None => directive,
            };
            if !is_level(level) {
                return Err(bad());
            }
        }
        Ok(LogFilter(s.to_owned()))
    }
}

impl LogFilter {
    /// The filter as `tracing_subscriber::EnvFilter` reads it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Command, TunnelAction};

    #[test]
    fn json_goes_before_or_after_a_command() {
        for args in [
            ["vxbus", "--json", "tunnel", "list", "body"],
            ["vxbus", "tunnel", "list", "body", "--json"],
        ] {
            let settings = Settings::try_parse_from(args).unwrap();
            assert!(settings.json, "{args:?}");
            let list = TunnelAction::List {
                network: Some("body".into()),
            };
            assert_eq!(settings.command, Some(Command::Tunnel { action: list }));
        }
        let add =
            Settings::try_parse_from(["vxbus", "tunnel", "add", "body", "10.0.0.9:1", "--leaf"]);
        let expected = TunnelAction::Add {
            network: "body".into(),
            address: "10.0.0.9:1".into(),
            leaf: true,
        };
        assert_eq!(
            add.unwrap().command,
            Some(Command::Tunnel { action: expected })
        );
        let forget = Settings::try_parse_from(["vxbus", "swarm", "--forget", "10.0.0.9"]);
        let ip = "10.0.0.9".parse().unwrap();
        assert_eq!(
            forget.unwrap().command,
            Some(Command::Swarm { forget: Some(ip) })
        );
        assert!(Settings::try_parse_from(["vxbus", "swarm", "--forget", "node-9"]).is_err());
    }

    #[test]
    fn accepts_levels_in_any_case() {
        for level in LOG_LEVELS {
            assert!(level.parse::<LogFilter>().is_ok(), "{level}");
            assert!(level.to_uppercase().parse::<LogFilter>().is_ok(), "{level}");
        }
    }

    #[test]
    fn accepts_target_directives() {
        let filter: LogFilter = "vxbus=debug,axum=warn, info".parse().unwrap();
        assert_eq!(filter.as_str(), "vxbus=debug,axum=warn, info");
    }

    #[test]
    fn metrics_are_an_address_or_off_and_a_bad_one_is_named() {
        let parse = |given: &str| given.parse::<MetricsAddress>();
        assert_eq!(parse("off"), Ok(MetricsAddress(None)));
        assert_eq!(parse(""), Ok(MetricsAddress(None)));
        assert_eq!(
            parse("127.0.0.1:9464"),
            Ok(MetricsAddress(Some("127.0.0.1:9464".parse().unwrap())))
        );
        assert!(parse("[::1]:9464").is_ok());
        for bad in ["localhost:9464", "9464", "127.0.0.1", "127.0.0.1:99999"] {
            let message = parse(bad).unwrap_err().to_string();
            assert!(
                message.starts_with(&format!("METRICS (--metrics) `{bad}` is not an address")),
                "{message}"
            );
            assert!(
                message.contains("127.0.0.1:9464") && message.contains("`off`"),
                "{message}"
            );
        }
        // Off unless set.
        let settings = Settings::try_parse_from(["vxbus"]).unwrap();
        assert_eq!(
            (settings.metrics, settings.bus_load),
            (MetricsAddress(None), true)
        );
    }

    #[test]
    fn refuses_words_that_are_not_levels_and_says_what_is_allowed() {
        for given in [
            "verbose",
            "",
            "vxbus=loud",
            "=debug",
            "info,,debug",
            "vxbus=",
        ] {
            let err = given.parse::<LogFilter>().unwrap_err().to_string();
            assert!(err.contains("VXBUS_LOG"), "{err}");
            assert!(err.contains(&format!("`{given}`")), "{err}");
            assert!(
                err.contains("off, error, warn, info, debug, trace"),
                "{err}"
            );
        }
    }

    #[test]
    fn defaults_match_the_managed_plugin_layout() {
        let settings = Settings::try_parse_from(["vxbus"]).unwrap();
        assert_eq!(settings.socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(settings.state_dir, PathBuf::from(DEFAULT_STATE_DIR));
        assert_eq!(
            settings.plugin_socket_dir,
            PathBuf::from(DEFAULT_PLUGIN_SOCKET_DIR)
        );
        assert_eq!(settings.log.as_str(), "info");
        assert_eq!(settings.plugin_dir, PathBuf::from("/usr/lib/vxbus/plugins"));
        assert_eq!(settings.plugin_start_timeout, 5);
    }

    /// `plugin/config.json` is what users see in `docker plugin inspect` and change with `docker
    /// plugin set`: each setting it offers must be one the daemon reads, with the same default,
    /// and its mounts must land where the daemon looks (the kvaser-lin plugin checks its own).
    #[test]
    fn the_managed_plugin_config_offers_settings_the_daemon_reads() {
        use clap::CommandFactory;
        let config: serde_json::Value =
            serde_json::from_str(include_str!("../../../plugin/config.json")).unwrap();
        let command = Settings::command();
        let env = config["env"].as_array().unwrap();
        assert!(!env.is_empty());
        for entry in env {
            let name = entry["name"].as_str().unwrap();
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == name))
                .unwrap_or_else(|| panic!("config.json offers {name}, which the daemon ignores"));
            let default: Vec<_> = arg.get_default_values().iter().collect();
            assert_eq!(
                default,
                [entry["value"].as_str().unwrap()],
                "default of {name} in config.json and in the daemon"
            );
            assert_eq!(entry["settable"], serde_json::json!(["value"]), "{name}");
        }
        let mounts: Vec<_> = config["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|mount| {
                (
                    mount["name"].as_str().unwrap(),
                    mount["destination"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            mounts[..2],
            [
                ("state", DEFAULT_STATE_DIR),
                ("plugins", DEFAULT_PLUGIN_SOCKET_DIR)
            ],
            "the daemon's mounts"
        );
        let others: Vec<_> = mounts[2..].iter().map(|(name, _)| *name).collect();
        assert_eq!(others, ["kvaser"], "a mount no bundled plugin checks");
        assert!(config["description"]
            .as_str()
            .unwrap()
            .starts_with("vxbus: "));
    }
}
