//! # vxbus: the daemon and the host CLI
//!
//! The program inside the managed plugin: it answers Docker's remote network driver protocol
//! on the plugin's socket, makes each network a CAN bus in the kernel (through
//! `vxbus-dataplane`), keeps a record so restarts find what it made, and runs the plugins that
//! serve buses (speaking `vxbus-sdk`'s chunk protocol to them). On the host, the same binary
//! with a command (`vxbus networks`, `plugins`, `stats`, `top`, ...) asks the running daemon over
//! its control socket. ARCHITECTURE.md draws how a request flows through these modules.
//!
//! - [`settings`]: what the daemon is told (command line and `VXBUS_*` environment).
//! - [`privileges`]: the kernel privileges it needs, checked once at start.
//! - [`daemon`]: the process's life: socket, serving, graceful shutdown.
//! - [`control`]: the control socket and the host-side commands.
//! - [`docker`]: Docker's remote network driver protocol (HTTP and JSON live here only).
//! - [`bus`]: the network options of `docker network create`, validated into a bus spec.
//! - [`driver`]: networks and endpoints: Docker's calls applied to the data plane and the state.
//! - [`state`]: the driver's record on disk, so restarts find what it made.
//! - [`stats`]: what the buses carry (counters, load), for `vxbus stats`, `top` and Prometheus.
//! - [`watch`]: the host-side views of those: `vxbus stats` and `vxbus top`.
//! - [`supervisor`]: child and external plugins: processes, lifecycle, settings, registry.

pub mod bus;
pub mod control;
pub mod daemon;
pub mod docker;
pub mod driver;
pub mod privileges;
pub mod settings;
pub mod state;
pub mod stats;
pub mod supervisor;
pub mod watch;

/// This build's version, as written in Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
