//! The names vxbus gives the links it makes, and how it knows its own: `vxbh<id>` (a member's
//! vxcan host end), `vxbc<id>` (the peer Docker moves into the container), `vxbn<id>` (the vcan
//! made for a bus with a plugin or a tunnel and without `host_device`), `<id>` being the first 10
//! characters of Docker's endpoint or network ID: hex digits, or for a Swarm network (whose IDs
//! are 25 characters of base 36) digits and lowercase letters.
//!
//! Owns: those names (pure functions). Must not touch the kernel.

use anyhow::anyhow;
use vxbus_dataplane::{ifname::IfName, links::Link};

use super::BusError;

/// Name prefix of the vxcan end that stays on the host.
pub const HOST_END_PREFIX: &str = "vxbh";
/// Name prefix of the vxcan end Docker moves into the container.
pub const PEER_PREFIX: &str = "vxbc";
/// Name prefix of the vcan vxbus makes for a bus whose plugin or tunnel needs a host-side interface and
/// that has no `host_device`; the network ID's first 10 hex digits follow.
pub const PLUGIN_HOST_PREFIX: &str = "vxbn";
/// How many hex digits of the endpoint ID follow the prefix (4 + 10 = 14 bytes).
const ID_DIGITS: usize = 10;

/// The names of endpoint `id`'s vxcan pair: (host end, peer).
pub(super) fn link_names(id: &str) -> Result<(IfName, IfName), BusError> {
    let digits = id
        .get(..ID_DIGITS)
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| BusError::BadEndpointId(id.to_owned()))?;
    let name = |prefix: &str| {
        format!("{prefix}{digits}")
            .parse()
            .map_err(|_| BusError::BadEndpointId(id.to_owned()))
    };
    Ok((name(HOST_END_PREFIX)?, name(PEER_PREFIX)?))
}

/// Whether `link` is named like one vxbus makes: a vxcan end (`vxbh`, `vxbc`), or a vcan made
/// for a plugin (`vxbn`; one left behind when the daemon died while its plugin was starting).
pub(super) fn is_ours_by_name(link: &Link) -> bool {
    let prefixes: &[&str] = match link.kind.as_deref() {
        Some("vxcan") => &[HOST_END_PREFIX, PEER_PREFIX],
        Some("vcan") => &[PLUGIN_HOST_PREFIX],
        _ => &[],
    };
    prefixes.iter().any(|prefix| {
        link.name.strip_prefix(prefix).is_some_and(|rest| {
            let of_id = |b: u8| match *prefix {
                PLUGIN_HOST_PREFIX => network_id_char(b),
                _ => b.is_ascii_hexdigit(),
            };
            rest.len() == ID_DIGITS && rest.bytes().all(of_id)
        })
    })
}

/// Whether `b` can be in a network ID: Docker's are hex, a Swarm network's base 36.
fn network_id_char(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_lowercase()
}

/// Whether `id` is a Swarm network's (25 digits and lowercase letters), not a local one's (64
/// hex digits).
pub(super) fn is_swarm_id(id: &str) -> bool {
    id.len() == 25 && id.bytes().all(network_id_char)
}

/// The name of the vcan made for network `id`'s plugin or tunnel.
pub(super) fn plugin_host_name(id: &str) -> Result<IfName, BusError> {
    id.get(..ID_DIGITS)
        .filter(|digits| digits.bytes().all(network_id_char))
        .and_then(|digits| format!("{PLUGIN_HOST_PREFIX}{digits}").parse().ok())
        .ok_or_else(|| {
            anyhow!(
                "network ID `{id}` is not an ID Docker gives networks (hex digits, or a Swarm \
                 network's digits and lowercase letters)"
            )
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swarm_ids_are_told_from_local_ones() {
        assert!(is_swarm_id("k32bz3zl8j820tzb6lylsydfc"));
        assert!(!is_swarm_id(&"0a".repeat(32)));
        assert!(!is_swarm_id("K32BZ3ZL8J820TZB6LYLSYDFC"));
    }

    #[test]
    fn a_swarm_networks_vcan_is_named_after_its_base_36_id() {
        // Docker 28 gives a Swarm network (`--scope swarm --config-from`) such an ID.
        let name = plugin_host_name("k32bz3zl8j820tzb6lylsydfc").unwrap();
        assert_eq!(name.as_str(), "vxbnk32bz3zl8j");
        assert_eq!(
            plugin_host_name("3f2a9c81d0e4b5a6").unwrap().as_str(),
            "vxbn3f2a9c81d0"
        );
        for bad in ["", "k32bz", "K32BZ3ZL8J820", "k32bz3/l8j820"] {
            assert!(plugin_host_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn link_names_come_from_the_endpoint_id() {
        let id = "3f2a9c81d0e4b5a6978877665544332211000fedcba9876543210fedcba98765";
        let (host, peer) = link_names(id).unwrap();
        assert_eq!(host.as_str(), "vxbh3f2a9c81d0");
        assert_eq!(peer.as_str(), "vxbc3f2a9c81d0");
        for bad in ["", "abc", "zz2a9c81d0e4", "3f2a9c81/0e4"] {
            assert!(
                matches!(link_names(bad), Err(BusError::BadEndpointId(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn only_links_named_like_ours_and_of_our_kind_are_ours() {
        let link = |name: &str, kind: &str| Link {
            index: 1,
            name: name.into(),
            kind: Some(kind.into()),
            is_can: true,
            up: true,
            can_bitrate: None,
            counters: None,
        };
        assert!(is_ours_by_name(&link("vxbh3f2a9c81d0", "vxcan")));
        assert!(is_ours_by_name(&link("vxbc3f2a9c81d0", "vxcan")));
        assert!(!is_ours_by_name(&link("vxbh3f2a9c81d0", "vcan")));
        assert!(!is_ours_by_name(&link("vxbhost", "vxcan")));
        assert!(!is_ours_by_name(&link("vxcan0", "vxcan")));
        // The vcan made for a plugin's bus, and only as a vcan; a Swarm network's too.
        assert!(is_ours_by_name(&link("vxbn3f2a9c81d0", "vcan")));
        assert!(!is_ours_by_name(&link("vxbn3f2a9c81d0", "vxcan")));
        assert!(is_ours_by_name(&link("vxbnk32bz3zl8j", "vcan")));
        assert!(!is_ours_by_name(&link("vxbhk32bz3zl8j", "vxcan")));
        assert!(!is_ours_by_name(&link("vxbnK32bz3zl8j", "vcan")));
    }
}
