//! # vxbus-sdk: write a vxbus plugin
//!
//! A vxbus plugin is a program the vxbus daemon starts when a network names it
//! (`docker network create -d vxbus:latest -o plugin.driver=ID ...`). The daemon and the plugin
//! talk in *chunks* over two pipes (PROTOCOL.md in the repository is the specification): the
//! plugin registers, telling its name and the typed configuration it accepts; the daemon then
//! asks it to `start` and `stop` serving buses, and sends `reconfigure` when its settings change.
//!
//! This crate is everything a plugin needs and nothing of the daemon: the chunk codec and
//! connection ([`Connection`]), the messages ([`Bus`], [`PluginInfo`], ...), the configuration
//! schema ([`Schema`], [`Item`]) and the plugin's main loop ([`run`] with a [`BusPlugin`]). The
//! daemon uses the same codec, connection, messages and schema for its side, so the two cannot
//! drift apart.
//!
//! A plugin that logs every bus it serves (`examples/hello.rs`):
//!
#![doc = concat!("```no_run\n", include_str!("../examples/hello.rs"), "```")]
//!
//! The bundled plugins (`plugins/logger`, `plugins/kvaser-lin` in the repository) are complete
//! examples; `crates/daemon/tests/pyplugin` is one written in Python from PROTOCOL.md alone.
//!
//! ## Inside
//! - `chunk`: the byte layout of one chunk; every malformed input is a [`ChunkError`].
//! - `conn`: a chunk connection: calls and one-way messages both ways at once, timeouts.
//! - `id`: [`PluginId`], a plugin's well-known name, safe as a file name.
//! - `proto`: command names ([`cmd`]), the JSON messages, the environment a plugin starts with.
//! - `schema`: typed configuration items; values checked against them; settings merged.
//! - `plugin`: the plugin's side: pipes, registration, [`BusPlugin`] dispatch, [`Host`].

mod chunk;
mod conn;
mod id;
mod plugin;
mod proto;
mod schema;

pub use chunk::{
    Chunk, ChunkCodec, ChunkError, Direction, EncodeError, DEFAULT_MAX_BUFFER, MAX_CMD_LEN,
};
pub use conn::{handler, no_handler, CallError, Connection, Handler, Incoming};
pub use id::{BadPluginId, PluginId, PLUGIN_ID_RULE};
pub use plugin::{run, stdio_pipes, BusPlugin, Host, CALL_TIMEOUT};
pub use proto::{
    channel_data, parse_channel, parse_channel_data, Bus, ChannelOpened, Lifecycle, OpenChannel,
    PluginInfo, PluginName, Reconfigure, Registered, ENV_CHUNK_FDS, ENV_DATA_DIR, ENV_PLUGIN_ID,
    INTERFACE_VERSION, LIFECYCLE_VERSION,
};
pub use schema::{ConfigError, Context, Item, ItemType, Schema};

/// The chunk protocol's command names (PROTOCOL.md, "Commands").
pub mod cmd {
    pub use crate::proto::{
        CHANNEL_CLOSE, CHANNEL_DATA, CHANNEL_OPEN, CHANNEL_OPENED, PLUGINS_CONNECTED,
        PLUGINS_DISCONNECTED, PLUGINS_LIST, RECONFIGURE, REGISTER, START, STOP,
    };
}
