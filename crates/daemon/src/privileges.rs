//! The kernel privileges the daemon needs, checked once at start so that a plugin installed
//! without them fails at `docker plugin enable` with a message, not at the first network.
//!
//! Owns: reading this process's capability sets. Must not touch: raising or dropping
//! capabilities (the plugin supervisor drops them for child plugins, not this module).

use caps::{CapSet, Capability};

/// Why the daemon may not start.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// CAP_NET_ADMIN is not in the effective set.
    #[error(
        "vxbus needs CAP_NET_ADMIN to create CAN interfaces and gateway rules, and this process \
         does not have it (effective capabilities: {effective}). As a managed plugin it asks for \
         CAP_NET_ADMIN in its config.json: install it with `docker plugin install \
         --grant-all-permissions` or accept the permission prompt. Run by hand, start it as root."
    )]
    MissingNetAdmin {
        /// The effective set, for the log: `none` or a sorted, comma-separated list.
        effective: String,
    },
    /// The kernel would not tell us the process's capabilities.
    #[error("cannot read this process's capabilities")]
    Unreadable(#[from] caps::errors::CapsError),
}

/// Succeeds when this process may administer network interfaces (CAP_NET_ADMIN is effective).
pub fn require_net_admin() -> Result<(), PrivilegeError> {
    let effective = caps::read(None, CapSet::Effective)?;
    if effective.contains(&Capability::CAP_NET_ADMIN) {
        return Ok(());
    }
    let mut names: Vec<String> = effective.iter().map(ToString::to_string).collect();
    names.sort();
    let effective = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    Err(PrivilegeError::MissingNetAdmin { effective })
}
