//! vxbus-tunnel: a bus across hosts, in cannelloni's wire format so that anything that speaks
//! cannelloni joins a vxbus bus unchanged.
//!
//! - [`wire`]: cannelloni's bytes (UDP datagrams, the TCP stream), written by hand.
//! - [`spec`]: what a tunnel is asked to be, valid by construction.
//! - [`Tunnel`]: one bus's tunnel, running: a member of the bus through a CAN socket on the
//!   bus's host interface, beside the can-gw mesh; `udp` and `tcp` are its two engines.
//! - [`seal`]: authenticated encryption between vxbus hosts (`tunnel.key`).
//! - [`stats`]: its counters.
//!
//! Must not touch: links, rules, Docker or the daemon's state. The daemon creates the bus's
//! host interface, starts a [`Tunnel`] on it and stops it before the interface goes.

mod bus;
pub mod seal;
pub mod seq;
pub mod spec;
pub mod stats;
mod tcp;
mod tunnel;
mod udp;
pub mod wire;

pub use spec::{Transport, TunnelSpec};

/// The receive buffer the tunnel asks for on its sockets (the bus's, and UDP's): room for bursts
/// while the other side is busy. Above the system's `rmem_max` it takes CAP_NET_ADMIN, which the
/// daemon has; without, the system's maximum.
const RECEIVE_BUFFER_BYTES: libc::c_int = 4 << 20;
pub use stats::TunnelStats;
pub use tunnel::{PeerError, StartError, Tunnel};
