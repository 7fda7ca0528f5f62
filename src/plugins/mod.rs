//! Plugins: programs the daemon tells when a bus they serve comes and goes.
//!
//! - [`chunk`]: the byte layout of one message on a child plugin's pipes (PROTOCOL.md).
//! - [`conn`]: a connection of chunks: calls and one-way messages in both directions at once.
//! - [`schema`]: a plugin's typed configuration items; option and setting values checked against them.
//! - [`proto`]: the commands and JSON messages between the daemon and a child plugin.
//! - [`supervisor`]: child processes, their lifecycle and settings, the registry and channels.
//! - [`external`]: plugins on Unix sockets, with the seed's start/stop JSON.
//!
//! The plugin's own side of the protocol is [`crate::sdk`].
pub mod chunk;
pub mod conn;
pub mod external;
pub mod proto;
pub mod schema;
pub mod supervisor;
