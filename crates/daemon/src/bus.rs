//! What a user asked for with `docker network create -d vxbus:latest -o ...`: the network options,
//! validated into a [`BusSpec`] before anything is created.
//!
//! Owns: the option names (vxbus's, which are RemotiveBus's, and rustycan4docker's as aliases),
//! their defaults, and every refusal's wording, which Docker shows the user. Must not touch: the
//! kernel, the Docker wire format or the state directory; the driver hands the options in and
//! gets a spec or an [`OptionError`] back.

use std::{collections::BTreeMap, fmt, net::SocketAddr, num::NonZeroU32, str::FromStr};

use serde_json::{Map, Value};

use vxbus_dataplane::ifname::{self, IfName, IfNameError};
use vxbus_sdk::{PluginId, PLUGIN_ID_RULE};
use vxbus_tunnel::{
    spec::{parse_address, parse_batch_delay, parse_clients, parse_peers, SpecError, SWARM_PEERS},
    Transport, TunnelSpec,
};

/// The bus types vxbus builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusType {
    /// A virtual bus of vxcan pairs and can-gw rules, with an optional host vcan.
    Vcan,
}

/// The prefix of the bus's interface inside each container. Docker appends an index (`ecu` gives
/// `ecu0`, then `ecu1` for a second vxbus network with the same prefix), so it is one byte shorter
/// than an interface name can be: room for indexes 0 to 9. Serde goes through [`FromStr`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DevicePrefix(String);

/// The longest prefix that leaves room for a one-digit index.
pub const DEVICE_PREFIX_MAX_LEN: usize = ifname::MAX_LEN - 1;

impl DevicePrefix {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DevicePrefix {
    type Err = IfNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ifname::check(s, DEVICE_PREFIX_MAX_LEN)?;
        Ok(DevicePrefix(s.to_owned()))
    }
}

impl TryFrom<String> for DevicePrefix {
    type Error = IfNameError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DevicePrefix> for String {
    fn from(prefix: DevicePrefix) -> String {
        prefix.0
    }
}

/// A plugin the network names with `plugin.driver`, and its `plugin.*` items (prefix removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginRequest {
    pub driver: PluginId,
    pub options: BTreeMap<String, String>,
}

/// A bus as the user asked for it, every option valid and every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusSpec {
    pub bus_type: BusType,
    /// The containers' interface prefix (`device`, alias `vxcan.peer`; default `can`).
    pub device: DevicePrefix,
    /// The bus's interface on the host (`host_device`, or `vxcan.dev` + `vxcan.id`): bridged to
    /// when it exists, created as a vcan when it does not.
    pub host_device: Option<IfName>,
    /// Bit rate in bit/s (`baudrate`): applied to a physical host device, else declared.
    pub bitrate: Option<NonZeroU32>,
    /// CAN FD data bit rate in bit/s (`baudrate_fd`).
    pub data_bitrate: Option<NonZeroU32>,
    /// Transmit queue length of a physical host device (`txqueuelen`).
    pub txqueuelen: Option<u32>,
    /// Whether CAN FD frames are carried (`fd`, default true).
    pub fd: bool,
    /// The plugin that serves this bus (`plugin.driver`, `plugin.*`).
    pub plugin: Option<PluginRequest>,
    /// The bus's tunnel to other hosts (`tunnel.*`).
    pub tunnel: Option<TunnelSpec>,
}

/// The spec in vxbus's own option names, aliases resolved and defaults shown, for logs:
/// `type=vcan device=mybus host_device=myhostbus baudrate=19200 fd=true plugin.driver=kvaser`.
impl fmt::Display for BusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let BusType::Vcan = self.bus_type;
        write!(f, "type=vcan device={}", self.device.as_str())?;
        if let Some(host) = &self.host_device {
            write!(f, " host_device={host}")?;
        }
        if let Some(rate) = self.bitrate {
            write!(f, " baudrate={rate}")?;
        }
        if let Some(rate) = self.data_bitrate {
            write!(f, " baudrate_fd={rate}")?;
        }
        if let Some(len) = self.txqueuelen {
            write!(f, " txqueuelen={len}")?;
        }
        write!(f, " fd={}", self.fd)?;
        if let Some(plugin) = &self.plugin {
            write!(f, " plugin.driver={}", plugin.driver)?;
            for (item, value) in &plugin.options {
                write!(f, " plugin.{item}={value}")?;
            }
        }
        if let Some(tunnel) = &self.tunnel {
            write!(f, " {tunnel}")?;
        }
        Ok(())
    }
}

/// The options vxbus takes, for messages that list them.
pub const KNOWN_OPTIONS: &str = "type, device, host_device, baudrate, baudrate_fd, txqueuelen, fd, \
     plugin.driver and plugin.<item>, tunnel.transport, tunnel.listen, tunnel.peers, tunnel.leaves, \
     tunnel.batch_delay, tunnel.key, tunnel.clients, and the rustycan4docker aliases vxcan.peer, vxcan.dev, vxcan.id";

/// A refused network option. Each message names the option, the value and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("unknown option `{name}`: vxbus takes {KNOWN_OPTIONS}")]
    Unknown { name: String },
    #[error("option `{name}`: `{value}` is not allowed: {allowed}")]
    Invalid {
        name: String,
        value: String,
        allowed: String,
    },
    #[error("option `{alias}` is rustycan4docker's name for `{name}`: give one of them, not both")]
    AliasBeside {
        alias: &'static str,
        name: &'static str,
    },
    #[error("option `{name}` needs option `{needs}` as well")]
    Needs { name: String, needs: &'static str },
    #[error("option `{name}`: `{value}` {conflict}")]
    Conflict {
        name: &'static str,
        value: String,
        conflict: String,
    },
    #[error("option `{name}` must be a string, not {value}")]
    NotAString { name: String, value: String },
}

impl OptionError {
    /// The same refusal, its allowed values followed by another that is allowed too.
    fn with_alternative(self, alternative: &str) -> OptionError {
        match self {
            OptionError::Invalid {
                name,
                value,
                allowed,
            } => OptionError::Invalid {
                name,
                value,
                allowed: format!("{allowed}; {alternative}"),
            },
            other => other,
        }
    }
}

/// What `tunnel.peers` takes besides a list of addresses.
const SWARM_PEERS_ALLOWED: &str =
    "or `swarm`: the Swarm's other nodes, at tunnel.listen's port (a Swarm-scoped network)";

fn invalid(name: &str, value: &str, allowed: impl Into<String>) -> OptionError {
    OptionError::Invalid {
        name: name.to_owned(),
        value: value.to_owned(),
        allowed: allowed.into(),
    }
}

/// The `-o` options as given: name to value.
type Given<'a> = BTreeMap<&'a str, &'a str>;

/// The option names vxbus reads, besides `plugin.<item>`.
const NAMES: [&str; 18] = [
    "type",
    "device",
    "host_device",
    "baudrate",
    "baudrate_fd",
    "txqueuelen",
    "fd",
    "plugin.driver",
    "vxcan.peer",
    "vxcan.dev",
    "vxcan.id",
    "tunnel.transport",
    "tunnel.listen",
    "tunnel.peers",
    "tunnel.leaves",
    "tunnel.batch_delay",
    "tunnel.key",
    "tunnel.clients",
];

/// Docker's own options that Docker also puts among a driver's (`-o`, or `default-network-opts`
/// in daemon.json): Docker acts on them (Docker 28: no IPv4 subnet, an IPv6 one), vxbus has
/// nothing to do for them and lets them pass.
const DOCKER_OPTIONS: [&str; 2] = [
    "com.docker.network.enable_ipv4",
    "com.docker.network.enable_ipv6",
];

impl BusSpec {
    /// Validates the options of `docker network create -o` (Docker's
    /// `Options["com.docker.network.generic"]`). `None` (no `-o` at all) gives the defaults.
    pub fn from_options(options: Option<&Map<String, Value>>) -> Result<BusSpec, OptionError> {
        let mut given = Given::new();
        for (name, value) in options.into_iter().flatten() {
            if DOCKER_OPTIONS.contains(&name.as_str()) {
                continue;
            }
            let Value::String(value) = value else {
                let (name, value) = (name.clone(), value.to_string());
                return Err(OptionError::NotAString { name, value });
            };
            if !NAMES.contains(&name.as_str()) && plugin_item(name).is_none() {
                return Err(OptionError::Unknown { name: name.clone() });
            }
            given.insert(name, value);
        }

        let bus_type = match given.get("type") {
            None | Some(&"vcan") => BusType::Vcan,
            Some(other) => return Err(invalid("type", other, "vcan (the only bus type for now)")),
        };
        let fd = match given.get("fd") {
            None | Some(&"true") => true,
            Some(&"false") => false,
            Some(other) => return Err(invalid("fd", other, "true or false")),
        };
        const BIT_RATE: &str = "a positive integer bit rate in bit/s, such as 500000";
        let bitrate = number(&given, "baudrate", BIT_RATE)?;
        let data_bitrate: Option<NonZeroU32> = number(&given, "baudrate_fd", BIT_RATE)?;
        if let (Some(rate), false) = (data_bitrate, fd) {
            return Err(OptionError::Conflict {
                name: "baudrate_fd",
                value: rate.to_string(),
                conflict: "is a CAN FD data bit rate, but fd=false turns CAN FD off".to_owned(),
            });
        }
        Ok(BusSpec {
            bus_type,
            device: device(&given)?,
            host_device: host_device(&given)?,
            bitrate,
            data_bitrate,
            txqueuelen: number(&given, "txqueuelen", "a non-negative integer (frames)")?,
            fd,
            plugin: plugin(&given)?,
            tunnel: tunnel(&given)?,
        })
    }
}

/// `plugin.<item>`'s item, if `name` is one (`plugin.driver` names the plugin, not an item).
fn plugin_item(name: &str) -> Option<&str> {
    name.strip_prefix("plugin.")
        .filter(|item| !item.is_empty() && *item != "driver")
}

/// The option `name` parsed as a number, if given.
fn number<T: FromStr>(given: &Given, name: &str, allowed: &str) -> Result<Option<T>, OptionError> {
    given
        .get(name)
        .map(|&value| value.parse().map_err(|_| invalid(name, value, allowed)))
        .transpose()
}

/// `device`, or rustycan4docker's `vxcan.peer`; default `can`.
fn device(given: &Given) -> Result<DevicePrefix, OptionError> {
    let (name, value) = match (given.get("device"), given.get("vxcan.peer")) {
        (Some(_), Some(_)) => {
            return Err(OptionError::AliasBeside {
                alias: "vxcan.peer",
                name: "device",
            })
        }
        (Some(&value), None) => ("device", value),
        (None, Some(&value)) => ("vxcan.peer", value),
        (None, None) => return Ok(DevicePrefix("can".to_owned())),
    };
    value.parse().map_err(|err: IfNameError| {
        let allowed = format!(
            "an interface name prefix of at most {DEVICE_PREFIX_MAX_LEN} bytes (Docker appends \
             an index), but {err}"
        );
        invalid(name, value, allowed)
    })
}

/// `host_device`, or rustycan4docker's `vxcan.dev` followed by `vxcan.id` (default 0).
fn host_device(given: &Given) -> Result<Option<IfName>, OptionError> {
    let (dev, id) = (given.get("vxcan.dev"), given.get("vxcan.id"));
    if let Some(&value) = given.get("host_device") {
        if dev.is_some() || id.is_some() {
            let alias = if dev.is_some() {
                "vxcan.dev"
            } else {
                "vxcan.id"
            };
            return Err(OptionError::AliasBeside {
                alias,
                name: "host_device",
            });
        }
        return value.parse().map(Some).map_err(|err: IfNameError| {
            invalid(
                "host_device",
                value,
                format!("an interface name, but {err}"),
            )
        });
    }
    let Some(&dev) = dev else {
        return match id {
            Some(_) => Err(OptionError::Needs {
                name: "vxcan.id".to_owned(),
                needs: "vxcan.dev",
            }),
            None => Ok(None),
        };
    };
    let id: u32 = number(
        given,
        "vxcan.id",
        "a non-negative integer appended to vxcan.dev",
    )?
    .unwrap_or(0);
    let name = format!("{dev}{id}");
    name.parse().map(Some).map_err(|err: IfNameError| {
        let allowed = format!("vxcan.dev and vxcan.id make the interface name `{name}`, but {err}");
        invalid("vxcan.dev", dev, allowed)
    })
}

/// Whether `id` can name a plugin: a bundled plugin's directory or an external one's socket, so
/// never a path (`/`, `..`) nor hidden.
/// `plugin.driver` and its `plugin.<item>` options.
fn plugin(given: &Given) -> Result<Option<PluginRequest>, OptionError> {
    let items: BTreeMap<String, String> = given
        .iter()
        .filter_map(|(&name, &value)| Some((plugin_item(name)?.to_owned(), value.to_owned())))
        .collect();
    match given.get("plugin.driver") {
        Some(&driver) => Ok(Some(PluginRequest {
            driver: driver
                .parse()
                .map_err(|_| invalid("plugin.driver", driver, PLUGIN_ID_RULE))?,
            options: items,
        })),
        None => match items.keys().next() {
            Some(item) => Err(OptionError::Needs {
                name: format!("plugin.{item}"),
                needs: "plugin.driver",
            }),
            None => Ok(None),
        },
    }
}

/// The `tunnel.*` options, if any is given.
fn tunnel(given: &Given) -> Result<Option<TunnelSpec>, OptionError> {
    if !given.keys().any(|name| name.starts_with("tunnel.")) {
        return Ok(None);
    }
    let value = |name: &str| given.get(name).copied();
    let refuse =
        |name: &str, err: SpecError| invalid(name, value(name).unwrap_or(""), err.to_string());
    let transport: Transport = match value("tunnel.transport") {
        Some(text) => text
            .parse()
            .map_err(|err| refuse("tunnel.transport", err))?,
        None => Transport::default(),
    };
    let listen = value("tunnel.listen")
        .map(|text| parse_address(text).map_err(|err| refuse("tunnel.listen", err)))
        .transpose()?;
    let list = |name: &str| {
        value(name)
            .map(|text| parse_peers(text).map_err(|err| refuse(name, err)))
            .transpose()
            .map(Option::unwrap_or_default)
    };
    let follows_swarm = value("tunnel.peers").map(str::trim) == Some(SWARM_PEERS);
    if follows_swarm && listen.is_none() {
        // The Swarm's nodes are peers at the port this node listens on.
        return Err(OptionError::Needs {
            name: "tunnel.peers".to_owned(),
            needs: "tunnel.listen",
        });
    }
    let peers = match follows_swarm {
        true => Vec::new(),
        false => value("tunnel.peers")
            .map(|text| {
                parse_peers(text).map_err(|err| match err {
                    SpecError::Address => refuse("tunnel.peers", SpecError::Address)
                        .with_alternative(SWARM_PEERS_ALLOWED),
                    other => refuse("tunnel.peers", other),
                })
            })
            .transpose()?
            .unwrap_or_default(),
    };
    let leaves = list("tunnel.leaves")?;
    let batch_delay = value("tunnel.batch_delay")
        .map(|text| parse_batch_delay(text).map_err(|err| refuse("tunnel.batch_delay", err)))
        .transpose()?
        .unwrap_or_default();
    // A tunnel that lacks what its transport needs is named by the option that asked for one:
    // the transport if given, else the first given of those that make a tunnel.
    let asked = [
        "tunnel.transport",
        "tunnel.peers",
        "tunnel.leaves",
        "tunnel.key",
        "tunnel.clients",
        "tunnel.batch_delay",
    ]
    .into_iter()
    .find(|name| given.contains_key(name))
    .unwrap_or("tunnel.transport");
    // An address given twice, or the listening one, is named under the list it is in last.
    let list_of = |addr: SocketAddr| match leaves.contains(&addr) {
        true => "tunnel.leaves",
        false => "tunnel.peers",
    };
    let spec = TunnelSpec::new(
        transport,
        listen,
        peers.clone(),
        leaves.clone(),
        batch_delay,
    )
    .map_err(|err| match err {
        SpecError::UdpNeedsListen => OptionError::Needs {
            name: asked.to_owned(),
            needs: "tunnel.listen",
        },
        SpecError::TcpNeedsEnd => OptionError::Needs {
            name: asked.to_owned(),
            needs: "tunnel.listen, tunnel.peers or tunnel.leaves",
        },
        SpecError::PeerIsListen(addr) | SpecError::PeerTwice(addr) => refuse(list_of(addr), err),
        other => refuse("tunnel.peers", other),
    })?;
    let spec = match follows_swarm {
        true => spec
            .following_swarm()
            .map_err(|err| refuse("tunnel.peers", err))?,
        false => spec,
    };
    let spec = match value("tunnel.key") {
        Some(path) => spec
            .with_key_file(path)
            .map_err(|err| refuse("tunnel.key", err))?,
        None => spec,
    };
    match value("tunnel.clients") {
        Some(text) => parse_clients(text)
            .and_then(|clients| spec.with_clients(clients))
            .map(Some)
            .map_err(|err| refuse("tunnel.clients", err)),
        None => Ok(Some(spec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(options: Value) -> Result<BusSpec, OptionError> {
        BusSpec::from_options(Some(options.as_object().unwrap()))
    }

    fn refusal(options: Value) -> String {
        parse(options).unwrap_err().to_string()
    }

    #[test]
    fn no_options_give_the_defaults() {
        let spec = BusSpec::from_options(None).unwrap();
        assert_eq!(spec.bus_type, BusType::Vcan);
        assert_eq!(spec.device.as_str(), "can");
        assert_eq!(spec.host_device, None);
        assert_eq!(
            (spec.bitrate, spec.data_bitrate, spec.txqueuelen),
            (None, None, None)
        );
        assert!(spec.fd);
        assert_eq!(spec.plugin, None);
        assert_eq!(parse(json!({})).unwrap(), spec);
    }

    #[test]
    fn a_remotivebus_definition_is_accepted_unchanged() {
        let spec = parse(json!({
            "type": "vcan", "device": "mybus", "baudrate": "19200", "host_device": "myhostbus",
            "plugin.driver": "kvaser", "plugin.host_mode": "master", "plugin.device_id": "011121:1",
        }))
        .unwrap();
        assert_eq!(spec.device.as_str(), "mybus");
        assert_eq!(spec.host_device.unwrap().as_str(), "myhostbus");
        assert_eq!(spec.bitrate.map(NonZeroU32::get), Some(19200));
        let plugin = spec.plugin.unwrap();
        assert_eq!(plugin.driver.as_str(), "kvaser");
        let items: Vec<_> = plugin
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(items, [("device_id", "011121:1"), ("host_mode", "master")]);
    }

    #[test]
    fn displays_in_vxbus_option_names_with_aliases_resolved() {
        let spec = parse(json!({
            "vxcan.dev": "vcan", "vxcan.peer": "vxcanp", "baudrate": "500000",
            "baudrate_fd": "2000000", "txqueuelen": "1000",
            "plugin.driver": "kvaser", "plugin.host_mode": "master",
        }))
        .unwrap();
        assert_eq!(
            spec.to_string(),
            "type=vcan device=vxcanp host_device=vcan0 baudrate=500000 baudrate_fd=2000000 \
             txqueuelen=1000 fd=true plugin.driver=kvaser plugin.host_mode=master"
        );
        assert_eq!(
            BusSpec::from_options(None).unwrap().to_string(),
            "type=vcan device=can fd=true"
        );
    }

    #[test]
    fn a_rustycan4docker_definition_maps_onto_vxbus_names() {
        let spec =
            parse(json!({"vxcan.dev": "vcan", "vxcan.id": "0", "vxcan.peer": "vxcanp"})).unwrap();
        assert_eq!(spec.device.as_str(), "vxcanp");
        assert_eq!(spec.host_device.unwrap().as_str(), "vcan0");
        // vxcan.id defaults to 0.
        let spec = parse(json!({"vxcan.dev": "bus"})).unwrap();
        assert_eq!(spec.host_device.unwrap().as_str(), "bus0");
        let spec = parse(json!({"vxcan.dev": "bus", "vxcan.id": "12"})).unwrap();
        assert_eq!(spec.host_device.unwrap().as_str(), "bus12");
    }

    #[test]
    fn an_alias_beside_its_vxbus_name_is_refused() {
        let err = refusal(json!({"device": "ecu", "vxcan.peer": "ecu"}));
        assert_eq!(err, "option `vxcan.peer` is rustycan4docker's name for `device`: give one of them, not both");
        let err = refusal(json!({"host_device": "hbus", "vxcan.dev": "vcan"}));
        assert!(
            err.starts_with("option `vxcan.dev` is rustycan4docker's name for `host_device`"),
            "{err}"
        );
        let err = refusal(json!({"host_device": "hbus", "vxcan.id": "1"}));
        assert!(
            err.starts_with("option `vxcan.id` is rustycan4docker's name for `host_device`"),
            "{err}"
        );
        let err = refusal(json!({"vxcan.id": "1"}));
        assert_eq!(err, "option `vxcan.id` needs option `vxcan.dev` as well");
    }

    #[test]
    fn refusals_name_the_option_the_value_and_what_is_allowed() {
        for (options, expected) in [
            (json!({"type": "slcan"}), "option `type`: `slcan` is not allowed: vcan (the only bus type for now)"),
            (json!({"baudrate": "fast"}), "option `baudrate`: `fast` is not allowed: a positive integer bit rate in bit/s, such as 500000"),
            (json!({"baudrate": "0"}), "option `baudrate`: `0` is not allowed"),
            (json!({"baudrate": "-500000"}), "option `baudrate`: `-500000` is not allowed"),
            (json!({"baudrate": " 500000"}), "option `baudrate`: ` 500000` is not allowed"),
            (json!({"baudrate_fd": "2M"}), "option `baudrate_fd`: `2M` is not allowed: a positive integer bit rate"),
            (json!({"txqueuelen": "lots"}), "option `txqueuelen`: `lots` is not allowed: a non-negative integer (frames)"),
            (json!({"fd": "yes"}), "option `fd`: `yes` is not allowed: true or false"),
            (json!({"vxcan.id": "x", "vxcan.dev": "vcan"}), "option `vxcan.id`: `x` is not allowed: a non-negative integer"),
            (json!({"plugin.driver": ""}), "option `plugin.driver`: `` is not allowed: a plugin id: 1 to 64 of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit"),
            (json!({"plugin.driver": "../bin"}), "option `plugin.driver`: `../bin` is not allowed: a plugin id: 1 to 64 of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit"),
            (json!({"plugin.driver": "a/b"}), "option `plugin.driver`: `a/b` is not allowed: a plugin id: 1 to 64 of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit"),
            (json!({"plugin.driver": ".hidden"}), "option `plugin.driver`: `.hidden` is not allowed: a plugin id: 1 to 64 of a-z, 0-9, `_`, `-`, `.`, starting with a letter or digit"),
        ] {
            let err = refusal(options.clone());
            assert!(err.starts_with(expected), "{options}: {err}");
        }
    }

    #[test]
    fn device_leaves_room_for_dockers_index_and_follows_the_kernels_rules() {
        assert_eq!(
            parse(json!({"device": "a2345678901234"}))
                .unwrap()
                .device
                .as_str(),
            "a2345678901234"
        );
        let err = refusal(json!({"device": "a23456789012345"}));
        assert_eq!(
            err,
            "option `device`: `a23456789012345` is not allowed: an interface name prefix of at most \
             14 bytes (Docker appends an index), but it is 15 bytes long, over the limit of 14"
        );
        let err = refusal(json!({"device": "ecu/0"}));
        assert!(
            err.ends_with(
                "but it contains '/'; interface names may not contain `/`, `:`, `%` or whitespace"
            ),
            "{err}"
        );
        let err = refusal(json!({"vxcan.peer": ""}));
        assert!(
            err.starts_with("option `vxcan.peer`: `` is not allowed")
                && err.ends_with("but it is empty"),
            "{err}"
        );
    }

    #[test]
    fn host_device_follows_the_kernels_rules() {
        let err = refusal(json!({"host_device": "x234567890123456"}));
        assert_eq!(
            err,
            "option `host_device`: `x234567890123456` is not allowed: an interface name, but it is \
             16 bytes long, over the limit of 15"
        );
        let err = refusal(json!({"vxcan.dev": "x2345678901234", "vxcan.id": "10"}));
        assert!(
            err.contains("make the interface name `x234567890123410`, but it is 16 bytes long"),
            "{err}"
        );
    }

    #[test]
    fn can_fd_options_agree() {
        let spec = parse(json!({"baudrate": "500000", "baudrate_fd": "2000000"})).unwrap();
        assert_eq!(spec.data_bitrate.map(NonZeroU32::get), Some(2_000_000));
        assert!(
            !parse(json!({"fd": "false", "baudrate": "500000"}))
                .unwrap()
                .fd
        );
        let err = refusal(json!({"fd": "false", "baudrate_fd": "2000000"}));
        assert_eq!(err, "option `baudrate_fd`: `2000000` is a CAN FD data bit rate, but fd=false turns CAN FD off");
    }

    #[test]
    fn unknown_options_are_refused_with_the_list_of_known_ones() {
        for name in ["bitrate", "Device", "plugin.", "plugin", "vxcan.bogus"] {
            let err = refusal(json!({ name: "x" }));
            assert_eq!(
                err,
                format!("unknown option `{name}`: vxbus takes {KNOWN_OPTIONS}")
            );
        }
    }

    #[test]
    fn dockers_own_ip_options_pass() {
        // As Docker 28 sends them when daemon.json's default-network-opts names vxbus.
        let spec = parse(json!({
            "com.docker.network.enable_ipv4": "false",
            "com.docker.network.enable_ipv6": "false",
            "device": "body",
        }))
        .unwrap();
        assert_eq!(spec.device.as_str(), "body");
        let err = refusal(json!({"com.docker.network.driver.mtu": "72"}));
        assert!(
            err.starts_with("unknown option `com.docker.network.driver.mtu`"),
            "{err}"
        );
    }

    #[test]
    fn plugin_items_need_a_plugin() {
        let err = refusal(json!({"plugin.host_mode": "master"}));
        assert_eq!(
            err,
            "option `plugin.host_mode` needs option `plugin.driver` as well"
        );
        let spec = parse(json!({"plugin.driver": "kvaser-lin"})).unwrap();
        assert_eq!(spec.plugin.unwrap().options.len(), 0);
    }

    #[test]
    fn tunnel_options_make_a_tunnel_spec() {
        let spec = parse(json!({
            "host_device": "can0", "tunnel.listen": "0.0.0.0:20000",
            "tunnel.peers": "10.0.0.2:20000", "tunnel.leaves": "10.0.0.7:20000",
        }))
        .unwrap();
        let tunnel = spec.tunnel.unwrap();
        assert_eq!(tunnel.transport(), Transport::Udp);
        assert_eq!(tunnel.peers().len(), 1);
        assert_eq!(tunnel.leaves().len(), 1);
        assert_eq!(
            tunnel.to_string(),
            "tunnel.transport=udp tunnel.listen=0.0.0.0:20000 tunnel.peers=10.0.0.2:20000 \
             tunnel.leaves=10.0.0.7:20000 tunnel.batch_delay=0us"
        );
        let swarm = parse(json!({"tunnel.listen": "0.0.0.0:20400", "tunnel.peers": "swarm"}));
        let swarm = swarm.unwrap().tunnel.unwrap();
        assert!(swarm.follows_swarm() && swarm.peers().is_empty());
        let tcp = parse(json!({"tunnel.transport": "tcp", "tunnel.peers": "10.0.0.1:20000"}));
        assert!(tcp.unwrap().tunnel.is_some());
        assert_eq!(parse(json!({})).unwrap().tunnel, None);
    }

    #[test]
    fn tunnel_refusals_name_the_option() {
        let cases = [
            (json!({"tunnel.listen": "0.0.0.0"}), "option `tunnel.listen`: `0.0.0.0` is not allowed: an IP address and a port"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.transport": "sctp"}), "option `tunnel.transport`: `sctp` is not allowed: udp or tcp"),
            (json!({"tunnel.peers": "10.0.0.2:1"}), "option `tunnel.peers` needs option `tunnel.listen`"),
            (json!({"tunnel.key": "/var/lib/vxbus/k"}), "option `tunnel.key` needs option `tunnel.listen`"),
            (json!({"tunnel.batch_delay": "1ms", "tunnel.peers": "10.0.0.2:1"}), "option `tunnel.peers` needs option `tunnel.listen`"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.clients": "10.0.0.7"}), "option `tunnel.clients`: `10.0.0.7` is not allowed: plain clients connect to a tcp tunnel's"),
            (json!({"tunnel.transport": "tcp", "tunnel.listen": "0.0.0.0:1", "tunnel.clients": "10.0.0.7:1"}), "option `tunnel.clients`: `10.0.0.7:1` is not allowed: IP addresses"),
            (json!({"tunnel.transport": "udp", "tunnel.key": "/var/lib/vxbus/k"}), "option `tunnel.transport` needs option `tunnel.listen`"),
            (json!({"tunnel.transport": "tcp"}), "option `tunnel.transport` needs option `tunnel.listen, tunnel.peers or tunnel.leaves`"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.peers": "10.0.0.2:1,10.0.0.2:1"}), "option `tunnel.peers`: `10.0.0.2:1,10.0.0.2:1` is not allowed: 10.0.0.2:1 is given twice"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.peers": "10.0.0.2:1", "tunnel.leaves": "10.0.0.2:1"}), "option `tunnel.leaves`: `10.0.0.2:1` is not allowed: 10.0.0.2:1 is given twice"),
            (json!({"tunnel.listen": "10.0.0.1:1", "tunnel.leaves": "10.0.0.1:1"}), "option `tunnel.leaves`: `10.0.0.1:1` is not allowed: 10.0.0.1:1 is the tunnel's own"),
            (json!({"tunnel.peers": "swarm"}), "option `tunnel.peers` needs option `tunnel.listen`"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.peers": "swarms"}), "option `tunnel.peers`: `swarms` is not allowed: an IP address and a port other than 0, such as 0.0.0.0:20000 or [::]:20000; or `swarm`"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.batch_delay": "1s"}), "option `tunnel.batch_delay`: `1s` is not allowed: a delay such as"),
            (json!({"tunnel.listen": "0.0.0.0:1", "tunnel.key": "body.key"}), "option `tunnel.key`: `body.key` is not allowed: an absolute path"),
        ];
        for (options, expected) in cases {
            let refusal = refusal(options.clone());
            assert!(refusal.starts_with(expected), "{options}: {refusal}");
        }
    }

    #[test]
    fn values_must_be_strings() {
        let err = refusal(json!({"baudrate": 500000}));
        assert_eq!(err, "option `baudrate` must be a string, not 500000");
    }
}
