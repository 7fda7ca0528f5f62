//! vxbus: a Docker managed network plugin that gives containers virtual CAN buses.
//!
//! The binary (`src/main.rs`) wires these modules together; ARCHITECTURE.md describes the
//! parts, how a request from Docker flows through them, and the invariants they keep.
//!
//! - [`settings`]: what the daemon is told (command line and `VXBUS_*` environment).
//! - [`privileges`]: the kernel privileges it needs, checked once at start.
//! - [`daemon`]: the process's life: socket, serving, graceful shutdown.
//! - [`control`]: the control socket and the host-side `vxbus networks|plugins|settings|set`.
//! - [`docker`]: Docker's remote network driver protocol.
//! - [`bus`]: the network options of `docker network create`, validated into a bus spec.
//! - [`ifname`]: interface names as the kernel accepts them.
//! - [`dataplane`]: vcan/vxcan links and can-gw rules, over netlink.
//! - [`driver`]: networks and endpoints: Docker's calls applied to the data plane and the state.
//! - [`state`]: the driver's record on disk, so restarts find what it made.
//! - [`plugins`]: the plugin supervisor, the chunk protocol, plugin configuration.
//! - [`sdk`]: the plugin side of the chunk protocol, for plugin authors.

pub mod bus;
pub mod control;
pub mod daemon;
pub mod dataplane;
pub mod docker;
pub mod driver;
pub mod ifname;
pub mod lin;
pub mod plugins;
pub mod privileges;
pub mod sdk;
pub mod settings;
pub mod state;

/// This build's version, as written in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
