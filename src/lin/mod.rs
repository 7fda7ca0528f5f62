//! The parts of the bundled `kvaser-lin` plugin that are not the plugin's main loop: Kvaser's
//! libraries behind safe wrappers ([`kvaser`]), LIN description files ([`ldf`]) and the rules
//! between CAN frames and LIN frames ([`mapping`]).
//!
//! Owns: talking to a Kvaser adapter and reading LDFs. Must not touch: the daemon, the driver,
//! the data plane or the supervisor: only the plugin's process uses this module.

pub mod kvaser;
pub mod ldf;
pub mod mapping;
