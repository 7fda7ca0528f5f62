//! The bundled `kvaser-lin` plugin's parts, below its process (`src/bin/vxbus-kvaser-lin.rs`,
//! which only wires sockets and the SDK to them): Kvaser's libraries behind safe wrappers
//! ([`kvaser`]), LIN description files ([`ldf`]), a network's options ([`options`]), the rules
//! between CAN frames and LIN frames ([`mapping`]), the loop that joins the two buses
//! ([`bridge`]) and the adapter-less LIN bus of `type=simulator` ([`sim`]).
//!
//! Owns: talking to a Kvaser adapter and reading LDFs. Must not touch: the daemon, the driver,
//! the data plane or the supervisor: only the plugin's process uses this module.

pub mod bridge;
pub mod kvaser;
pub mod ldf;
pub mod mapping;
pub mod options;
pub mod sim;
