//! The commands a child plugin and the daemon exchange over chunks, and their JSON buffers
//! (PROTOCOL.md, "Commands"). Shared by the daemon's side and the SDK.
//!
//! Owns: command names, the message types and the environment a child is started with. Must
//! not touch: the transport ([`crate::conn`]) or any decision about processes and buses.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::schema::Schema;

/// The interface version this daemon speaks; a plugin reports the one it was written to.
pub const INTERFACE_VERSION: &str = "1";
/// The lifecycle message version (`"version"` in start/stop), as the external plugin API has it.
pub const LIFECYCLE_VERSION: u32 = 1;

/// `READ_FD,WRITE_FD`: the descriptors a child reads chunks from and writes chunks to. Without
/// it, a child uses stdin and stdout.
pub const ENV_CHUNK_FDS: &str = "VXBUS_CHUNK_FDS";
/// The plugin id the child was started as.
pub const ENV_PLUGIN_ID: &str = "VXBUS_PLUGIN_ID";
/// A directory the child may write (its data: logs, caches), under the host state directory.
pub const ENV_DATA_DIR: &str = "VXBUS_PLUGIN_DATA_DIR";

/// Child → daemon, request, first of all: [`PluginInfo`]; the answer is [`Registered`].
pub const REGISTER: &str = "register";
/// Daemon → child, request: [`Lifecycle`] with action `start`; answer: anything (ignored).
pub const START: &str = "start";
/// Daemon → child, request: [`Lifecycle`] with action `stop`.
pub const STOP: &str = "stop";
/// Daemon → child, request: [`Reconfigure`].
pub const RECONFIGURE: &str = "reconfigure";
/// Child → daemon, request, no buffer: the well-known names of the plugins connected now, a
/// JSON array of strings.
pub const PLUGINS_LIST: &str = "plugins.list";
/// Daemon → child, one-way: [`PluginName`] of a plugin that registered.
pub const PLUGINS_CONNECTED: &str = "plugins.connected";
/// Daemon → child, one-way: [`PluginName`] of a plugin that went away.
pub const PLUGINS_DISCONNECTED: &str = "plugins.disconnected";
/// Child → daemon, request: [`OpenChannel`]; answer: [`ChannelOpened`] (its `peer` is the target).
pub const CHANNEL_OPEN: &str = "channel.open";
/// Daemon → child, one-way: [`ChannelOpened`]: another plugin opened a channel to this one.
pub const CHANNEL_OPENED: &str = "channel.opened";
/// Either way, one-way: channel data, buffer `CHANNEL \0 BYTES`.
pub const CHANNEL_DATA: &str = "channel.data";
/// Either way, one-way: buffer `CHANNEL`: the channel is closed (by the other end, or because
/// its plugin went away).
pub const CHANNEL_CLOSE: &str = "channel.close";

/// What a plugin tells about itself when it registers (the seed's plugin information).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginInfo {
    /// A name for reports.
    pub name: String,
    pub version: String,
    /// What kind of plugin: `bus` (serves networks) is the one kind today.
    #[serde(rename = "type")]
    pub kind: String,
    /// The interface version it was written to ([`INTERFACE_VERSION`]).
    pub interface: String,
    /// The items a network sets with `-o plugin.<item>=...`.
    #[serde(default)]
    pub config: Schema,
    /// Plugin-wide settings, kept by the daemon and changed with `vxbus plugin set`.
    #[serde(default)]
    pub settings: Schema,
}

/// The daemon's answer to `register`: the plugin's settings, typed, after merging what was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub settings: Map<String, Value>,
}

/// A bus, as the seed's lifecycle JSON describes it, plus what a plugin needs to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bus {
    /// Always `vcan`.
    #[serde(rename = "type")]
    pub bus_type: String,
    /// The containers' interface prefix.
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_device: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baudrate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baudrate_fd: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txqueuelen: Option<u32>,
    /// `driver` and the `plugin.*` items: typed values for a child plugin (its schema's defaults
    /// filled in), the text given for an external one.
    pub plugin: Map<String, Value>,
    /// vxbus: whether CAN FD frames are carried.
    pub fd: bool,
    /// vxbus: Docker's id of the network.
    pub network_id: String,
    /// vxbus: the host-side CAN interface on the bus: `host_device`, or a vcan vxbus made for the
    /// plugin. A plugin opens its CAN socket here.
    pub host_interface: String,
}

/// `start` and `stop`: the external plugin API's JSON, unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub version: u32,
    pub action: String,
    pub bus: Bus,
}

/// `reconfigure`: every setting, typed, after a change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconfigure {
    pub settings: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginName {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenChannel {
    /// The well-known name (plugin id) to open a channel to.
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelOpened {
    pub channel: u64,
    /// The plugin at the other end.
    pub peer: String,
}

/// `CHANNEL \0 BYTES`, the buffer of [`CHANNEL_DATA`].
pub fn channel_data(channel: u64, data: &[u8]) -> Vec<u8> {
    let mut out = format!("{channel}\0").into_bytes();
    out.extend_from_slice(data);
    out
}

/// The channel and the bytes of a [`CHANNEL_DATA`] buffer.
pub fn parse_channel_data(buffer: &[u8]) -> Result<(u64, &[u8]), String> {
    let end = buffer
        .iter()
        .position(|&b| b == 0)
        .ok_or("channel.data: no zero byte after the channel number")?;
    Ok((parse_channel(&buffer[..end])?, &buffer[end + 1..]))
}

/// The channel number of a [`CHANNEL_CLOSE`] buffer (or of a channel.data prefix).
pub fn parse_channel(digits: &[u8]) -> Result<u64, String> {
    std::str::from_utf8(digits)
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            format!(
                "`{}` is not a channel number",
                String::from_utf8_lossy(digits)
            )
        })
}
