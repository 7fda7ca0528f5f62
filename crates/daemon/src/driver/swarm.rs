//! A Swarm's nodes as tunnel peers (`tunnel.peers=swarm`). vxbus declares a global
//! connectivity scope, so the dockerd of a Swarm node tells it of each node that joins or
//! leaves the Swarm, its own included (DiscoverNew, DiscoverDelete). The nodes are recorded in
//! the state, because Docker does not tell them again to a plugin enabled later, and each
//! running tunnel that follows the Swarm is given the other nodes as peers at its own
//! listening port.
//!
//! Owns: which nodes are which tunnel's peers. Must not touch: the tunnel's sockets and wire
//! format (peers are added and removed through [`vxbus_tunnel::Tunnel`]), links and rules.

use std::{
    collections::BTreeSet,
    net::{IpAddr, SocketAddr},
};

use anyhow::Context;
use vxbus_tunnel::{spec::FarEnd, PeerError, Transport, TunnelSpec};

use super::{short, BusError, Inner};

/// What Docker said of a node of the Swarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeChange {
    Joined(IpAddr),
    Left(IpAddr),
}

/// The peers a tunnel that follows the Swarm should have, from the Swarm's `nodes` and this
/// host's addresses `own`:
/// - every other node at the tunnel's listening port, if the tunnel's socket can reach its
///   address family, and unless it is one of the tunnel's leaves;
/// - over TCP, only the nodes whose address is above this node's: each pair then connects once
///   (the lower address connects, the higher accepts), where two connections would bring each
///   frame twice. A node that finds none of the nodes' addresses its own connects to none.
pub(super) fn peers_of(
    spec: &TunnelSpec,
    nodes: &BTreeSet<IpAddr>,
    own: &BTreeSet<IpAddr>,
) -> BTreeSet<SocketAddr> {
    let Some(listen) = spec.listen().filter(|_| spec.follows_swarm()) else {
        return BTreeSet::new();
    };
    let reachable = |ip: &IpAddr| match listen.ip() {
        IpAddr::V4(_) => ip.is_ipv4(),
        IpAddr::V6(v6) => v6.is_unspecified() || ip.is_ipv6(),
    };
    let this_node = nodes.intersection(own).max();
    nodes
        .iter()
        .filter(|ip| !own.contains(ip) && reachable(ip))
        .filter(|ip| match spec.transport() {
            Transport::Udp => true,
            Transport::Tcp => this_node.is_some_and(|this| *ip > this),
        })
        .map(|&ip| SocketAddr::new(ip, listen.port()))
        .filter(|addr| !spec.leaves().contains(addr))
        .collect()
}

/// This host's IP addresses: the plugin shares the host's network namespace.
pub(super) fn own_addresses() -> anyhow::Result<BTreeSet<IpAddr>> {
    let interfaces = nix::ifaddrs::getifaddrs().context("listing this host's addresses")?;
    Ok(interfaces
        .filter_map(|interface| interface.address)
        .filter_map(|addr| {
            addr.as_sockaddr_in()
                .map(|v4| IpAddr::V4(v4.ip()))
                .or_else(|| addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect())
}

fn list(peers: &BTreeSet<SocketAddr>) -> String {
    match peers.is_empty() {
        true => "none".to_owned(),
        false => peers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    }
}

impl Inner {
    /// Records a node joining or leaving the Swarm, and changes the peers of the tunnels that
    /// follow it. Docker repeats itself (each dockerd restart tells of every node again):
    /// a node already known changes nothing.
    pub(super) async fn swarm_node(&mut self, change: NodeChange) -> Result<(), BusError> {
        let before = self.state.swarm_nodes.clone();
        let changed = match change {
            NodeChange::Joined(ip) => self.state.swarm_nodes.insert(ip),
            NodeChange::Left(ip) => self.state.swarm_nodes.remove(&ip),
        };
        if !changed {
            return Ok(());
        }
        if let Err(err) = self.save() {
            self.state.swarm_nodes = before;
            return Err(err);
        }
        match change {
            NodeChange::Joined(ip) => tracing::info!("Swarm node {ip} joined"),
            NodeChange::Left(ip) => tracing::info!("Swarm node {ip} left"),
        }
        self.follow_swarm().await;
        Ok(())
    }

    /// Gives each running tunnel that follows the Swarm the peers the recorded nodes make,
    /// adding and removing the difference. A tunnel just started has none of them yet
    /// (see [`Inner::run_tunnel`]).
    pub(super) async fn follow_swarm(&mut self) {
        let following: Vec<(String, TunnelSpec)> = self
            .tunnels
            .keys()
            .filter_map(|id| {
                let spec = self.spec(id).ok()?.tunnel?;
                spec.follows_swarm().then(|| (id.clone(), spec))
            })
            .collect();
        if following.is_empty() {
            return;
        }
        let own = match own_addresses() {
            Ok(own) => own,
            Err(err) => {
                tracing::error!("{err:#}: the tunnels' Swarm peers stay as they are");
                return;
            }
        };
        for (id, spec) in following {
            let Some(tunnel) = self.tunnels.get(&id) else {
                continue;
            };
            let want = peers_of(&spec, &self.state.swarm_nodes, &own);
            let had = self.swarm_given.remove(&id).unwrap_or_default();
            let mut given: BTreeSet<SocketAddr> = had.intersection(&want).copied().collect();
            for &peer in had.difference(&want) {
                match tunnel.remove_peer(peer).await {
                    Ok(()) | Err(PeerError::Unknown(_)) => {}
                    Err(err) => {
                        tracing::error!(
                            "network {}: removing Swarm peer {peer}: {err}",
                            short(&id)
                        );
                        given.insert(peer);
                    }
                }
            }
            for &peer in want.difference(&had) {
                match tunnel.add_peer(peer, FarEnd::Peer).await {
                    Ok(()) => {
                        given.insert(peer);
                    }
                    Err(err) => {
                        tracing::error!("network {}: adding Swarm peer {peer}: {err}", short(&id));
                    }
                }
            }
            if given != had {
                tracing::info!(
                    "network {}: the tunnel's peers are now the Swarm's other nodes: {}",
                    short(&id),
                    list(&given)
                );
            }
            self.swarm_given.insert(id, given);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn spec(transport: Transport, listen: &str, leaves: &[&str]) -> TunnelSpec {
        let leaves = leaves.iter().map(|leaf| leaf.parse().unwrap()).collect();
        TunnelSpec::new(
            transport,
            Some(listen.parse().unwrap()),
            vec![],
            leaves,
            Duration::ZERO,
        )
        .unwrap()
        .following_swarm()
        .unwrap()
    }

    fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn addrs(list: &[&str]) -> BTreeSet<SocketAddr> {
        list.iter().map(|addr| addr.parse().unwrap()).collect()
    }

    #[test]
    fn udp_peers_are_the_other_nodes_at_the_listening_port() {
        let nodes = ips(&["10.0.0.1", "10.0.0.2", "10.0.0.3", "fd00::4"]);
        let own = ips(&["127.0.0.1", "10.0.0.2"]);
        let udp = spec(Transport::Udp, "0.0.0.0:20400", &[]);
        assert_eq!(
            peers_of(&udp, &nodes, &own),
            addrs(&["10.0.0.1:20400", "10.0.0.3:20400"])
        );
        let dual = spec(Transport::Udp, "[::]:20400", &["10.0.0.3:20400"]);
        assert_eq!(
            peers_of(&dual, &nodes, &own),
            addrs(&["10.0.0.1:20400", "[fd00::4]:20400"])
        );
    }

    #[test]
    fn tcp_pairs_connect_from_the_lower_address_only() {
        let nodes = ips(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
        let tcp = spec(Transport::Tcp, "0.0.0.0:20400", &[]);
        let from = |me: &str| peers_of(&tcp, &nodes, &ips(&[me]));
        assert_eq!(
            from("10.0.0.1"),
            addrs(&["10.0.0.2:20400", "10.0.0.3:20400"])
        );
        assert_eq!(from("10.0.0.2"), addrs(&["10.0.0.3:20400"]));
        assert_eq!(from("10.0.0.3"), addrs(&[]));
        // Each pair exactly once, from one side.
        let total: usize = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .map(|me| from(me).len())
            .sum();
        assert_eq!(total, 3);
        assert_eq!(
            from("192.168.1.1"),
            addrs(&[]),
            "not a node: connects to none"
        );
    }

    #[test]
    fn a_listed_peers_tunnel_gets_no_swarm_peers() {
        let listed = TunnelSpec::new(
            Transport::Udp,
            Some("0.0.0.0:20400".parse().unwrap()),
            vec!["10.0.0.9:20400".parse().unwrap()],
            vec![],
            Duration::ZERO,
        )
        .unwrap();
        assert!(peers_of(&listed, &ips(&["10.0.0.1"]), &ips(&[])).is_empty());
    }
}
