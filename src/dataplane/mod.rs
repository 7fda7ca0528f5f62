//! The kernel CAN data plane: links (vcan, vxcan pairs) and can-gw rules, all over netlink.
//!
//! Owns: every change vxbus makes to the kernel's network configuration. Must not touch: the
//! Docker protocol or the state directory; it is told what to build and reports what it built.
//! Frames never pass through user space: the kernel routes them between links.

pub mod cangw;
pub mod links;
