//! The kernel CAN data plane: links (vcan, vxcan pairs) and can-gw rules, all over netlink.
//!
//! Owns: every change vxbus makes to the kernel's network configuration. Must not touch: the
//! Docker protocol or the state directory; it is told what to build and reports what it built.
//! Frames never pass through user space: the kernel routes them between links.
//!
//! - [`links`]: vcan, vxcan and CAN controller settings (rtnetlink).
//! - [`cangw`]: can-gw rules (hand-written netlink messages).
//! - [`mesh`]: which rules make one bus of a set of links.
//! - [`kernel`]: whether the kernel has the modules a bus needs.

pub mod cangw;
pub mod kernel;
pub mod links;
pub mod mesh;
