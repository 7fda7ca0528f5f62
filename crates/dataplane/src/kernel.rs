//! Whether the running kernel has what a vxbus bus needs: vcan, vxcan and the CAN gateway.
//!
//! Owns: the check and its wording. Must not touch: anything it did not create for the check
//! (a probe link it makes is deleted before the check returns).
//!
//! A managed plugin cannot load kernel modules (it has no CAP_SYS_MODULE), so the host must.
//! A module counts as present when `/sys/module/<name>` exists. The link kinds are probed when it
//! does not: the kernel may have them built in without a `/sys/module` entry, or load them on
//! demand. can-gw is probed with a rule dump, which only can-gw answers.

use std::{fmt, path::Path};

use super::{
    cangw::{GwError, SharedGw},
    links::{LinkError, Links},
};
use crate::ifname::IfName;

/// Kernel modules a bus needs that the kernel does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Missing(pub Vec<&'static str>);

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (names, args) = (self.0.join(", "), self.0.join(" "));
        let (plural, them) = if self.0.len() > 1 {
            ("s", "them")
        } else {
            ("", "it")
        };
        write!(
            f,
            "the host's kernel lacks what a CAN bus needs: module{plural} {names} not loaded; \
             load {them} on the host with `modprobe -a {args}` (and list {them} in \
             /etc/modules-load.d/ to load {them} at boot)"
        )
    }
}

/// Why the check itself could not finish.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Missing(#[from] Missing),
    #[error("checking the kernel's CAN support: {0}")]
    Link(#[from] LinkError),
    #[error("checking the kernel's CAN support: {0}")]
    Gateway(GwError),
}

/// Checks for vcan, vxcan and can-gw; `Err(CheckError::Missing)` names every one missing.
pub async fn check(links: &Links, gw: &SharedGw) -> Result<(), CheckError> {
    let mut missing = Vec::new();
    if !loaded("vcan") && !probe_vcan(links).await? {
        missing.push("vcan");
    }
    if !loaded("vxcan") && !probe_vxcan(links).await? {
        missing.push("vxcan");
    }
    match gw.list().await {
        Ok(_) => {}
        Err(GwError::NotLoaded { .. }) => missing.push("can-gw"),
        Err(other) => return Err(CheckError::Gateway(other)),
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(Missing(missing).into())
    }
}

fn loaded(module: &str) -> bool {
    Path::new("/sys/module").join(module).exists()
}

fn probe_name(kind: &str) -> IfName {
    format!("vxbus-probe-{kind}")
        .chars()
        .take(crate::ifname::MAX_LEN)
        .collect::<String>()
        .parse()
        .expect("probe names are valid interface names")
}

/// Whether a vcan can be made (the kernel answers EOPNOTSUPP for an unknown kind).
async fn probe_vcan(links: &Links) -> Result<bool, LinkError> {
    let made = links.add_vcan(&probe_name("vcan")).await;
    probe_result(links, made).await
}

async fn probe_vxcan(links: &Links) -> Result<bool, LinkError> {
    let made = links.add_vxcan(&probe_name("vx"), &probe_name("vxp")).await;
    probe_result(links, made.map(|(end, _peer)| end)).await
}

/// Deletes the probe link `made` (a vxcan end takes its peer along) and says whether it was made.
async fn probe_result(links: &Links, made: Result<u32, LinkError>) -> Result<bool, LinkError> {
    match made {
        Ok(index) => links.delete(index).await.map(|()| true),
        Err(error) if error.is_unknown_kind() => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_names_each_module_and_the_command() {
        let one = Missing(vec!["can-gw"]).to_string();
        assert!(one.contains("module can-gw not loaded"), "{one}");
        assert!(one.contains("`modprobe -a can-gw`"), "{one}");
        let two = Missing(vec!["vxcan", "can-gw"]).to_string();
        assert!(two.contains("modules vxcan, can-gw not loaded"), "{two}");
        assert!(two.contains("`modprobe -a vxcan can-gw`"), "{two}");
    }

    #[test]
    fn probe_names_are_short_enough() {
        for kind in ["vcan", "vx", "vxp"] {
            assert!(probe_name(kind).as_str().len() <= crate::ifname::MAX_LEN);
        }
        assert_ne!(probe_name("vx"), probe_name("vxp"));
    }
}
