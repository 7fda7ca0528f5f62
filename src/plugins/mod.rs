//! Plugins: programs the daemon tells when a bus they serve comes and goes.
//!
//! - [`chunk`]: the byte layout of one message on a child plugin's pipes (PROTOCOL.md).
//! - [`conn`]: a connection of chunks: calls and one-way messages in both directions at once.
//! - [`schema`]: a plugin's typed configuration items; option and setting values checked against them.
pub mod chunk;
pub mod conn;
pub mod schema;
