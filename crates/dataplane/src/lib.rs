//! # vxbus-dataplane: the kernel CAN data plane
//!
//! A vxbus bus is kernel state: vcan and vxcan links in the host's namespace, joined by can-gw
//! rules. This crate makes and reads that state over netlink, and decides which rules make a
//! bus of a set of links. Frames never pass through user space: the kernel routes them.
//!
//! Owns: every change vxbus makes to the kernel's network configuration. Must not touch: the
//! Docker protocol, the state directory or plugins; it is told what to build and reports what
//! it built. Its tests against a real kernel are `tests/kernel_dataplane.rs` (they skip where
//! the kernel has no CAN, and run in the test VM).
//!
//! - [`ifname`]: interface names as the kernel accepts them ([`ifname::IfName`]).
//! - [`links`]: vcan, vxcan and CAN controller settings (rtnetlink).
//! - [`cangw`]: can-gw rules (hand-written netlink messages: no crate encodes them).
//! - [`mesh`]: which rules make one bus of a set of links, and the diff against the kernel's.
//! - [`kernel`]: whether the kernel has the modules a bus needs.
//!
//! `examples/canbench.rs` is the measuring tool of `make bench`: frames through a bus, timed.

pub mod cangw;
pub mod ifname;
pub mod kernel;
pub mod links;
pub mod mesh;
