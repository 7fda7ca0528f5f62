//! The buses' tunnels to other hosts (`tunnel.*`): each a [`Tunnel`] of `vxbus-tunnel` on the
//! bus's host interface, a member of the bus beside its containers' links. The driver starts one
//! when it creates the network, stops it before the interface goes, starts it again after a
//! restart (and whenever the periodic check finds it not running), and changes its far ends on
//! `vxbus tunnel add|remove`, recording them in the network's options.
//!
//! Owns: the running tunnels, by network id. Must not touch: links and rules (the tunnel is a
//! socket on an interface the driver made), the tunnel's wire format.

use std::{collections::BTreeSet, net::SocketAddr};

use serde_json::Value;
use vxbus_tunnel::{spec::FarEnd, PeerError, StartError, Tunnel, TunnelSpec, TunnelStats};

use super::{BusError, Inner};
use crate::bus::{BusSpec, OptionError};

pub(super) use crate::state::short_id as short;

/// A tunnel that did not start, as Docker's user reads it.
pub(super) fn refusal(err: StartError) -> BusError {
    match err {
        StartError::Listen { addr, source } => BusError::Option(OptionError::Invalid {
            name: "tunnel.listen".to_owned(),
            value: addr.to_string(),
            allowed: format!("an address this host can listen on, but: {source}"),
        }),
        StartError::Key { path, source } => BusError::Option(OptionError::Invalid {
            name: "tunnel.key".to_owned(),
            value: path,
            allowed: format!("a key file the plugin can read (under /var/lib/vxbus), but {source}"),
        }),
        other => BusError::Failed(other.into()),
    }
}

/// Refuses a far end that is this host at the tunnel's own port, where the tunnel listens on
/// every address (with one address, [`TunnelSpec`] refuses it already): the tunnel would send
/// every frame to itself.
pub(super) fn refuse_self(tunnel: &TunnelSpec) -> Result<(), BusError> {
    let Some(listen) = tunnel
        .listen()
        .filter(|listen| listen.ip().is_unspecified())
    else {
        return Ok(());
    };
    let own = super::swarm::own_addresses()?;
    for (option, list) in [
        ("tunnel.peers", tunnel.peers()),
        ("tunnel.leaves", tunnel.leaves()),
    ] {
        let is_self = |addr: &&SocketAddr| {
            addr.port() == listen.port() && (own.contains(&addr.ip()) || addr.ip().is_loopback())
        };
        if let Some(addr) = list.iter().find(is_self) {
            return Err(BusError::Option(OptionError::Invalid {
                name: option.to_owned(),
                value: addr.to_string(),
                allowed: format!(
                    "a far end other than this host: {addr} is this host's own address at the \
                     port tunnel.listen={listen} listens on, so the tunnel would send to itself"
                ),
            }));
        }
    }
    Ok(())
}

impl Inner {
    /// Starts the tunnel of each recorded network that should have one and has none running
    /// (after a restart; a tunnel whose task ended; a host device made again). A failure is
    /// logged once per network and message, and tried again at the next check.
    pub(super) async fn ensure_tunnels(&mut self, restart: &BTreeSet<String>) {
        for id in restart {
            if let Some(tunnel) = self.tunnels.remove(id) {
                tunnel.stop().await;
            }
        }
        self.tunnels.retain(|id, tunnel| {
            let running = tunnel.is_running();
            if !running {
                tracing::error!(
                    "network {}: its tunnel stopped on its own; starting it again",
                    short(id)
                );
            }
            running
        });
        let wanted: Vec<_> = self
            .state
            .networks
            .iter()
            .filter(|(id, network)| !network.deleting && !self.tunnels.contains_key(*id))
            .filter_map(|(id, network)| {
                Some((id.clone(), network.host_device.as_ref()?.name.clone()))
            })
            .collect();
        let mut started = false;
        for (id, host) in wanted {
            let Ok(spec) = self.spec(&id) else { continue };
            let Some(tunnel_spec) = spec.tunnel else {
                continue;
            };
            match Tunnel::start(short(&id), host.as_str(), &tunnel_spec).await {
                Ok(tunnel) => {
                    self.tunnel_failures.remove(&id);
                    self.run_tunnel(&id, tunnel);
                    started = true;
                }
                Err(err) => {
                    let message = err.to_string();
                    if self.tunnel_failures.get(&id) != Some(&message) {
                        tracing::error!(
                            "network {}: its tunnel did not start: {message}; tried again every \
                             few seconds",
                            short(&id)
                        );
                        self.tunnel_failures.insert(id, message);
                    }
                }
            }
        }
        if started {
            self.follow_swarm().await;
        }
    }

    /// Keeps tunnel `tunnel`, just started, as network `id`'s. It has no Swarm peers yet:
    /// [`Inner::follow_swarm`] gives them.
    pub(super) fn run_tunnel(&mut self, id: &str, tunnel: Tunnel) {
        self.swarm_given.remove(id);
        self.tunnels.insert(id.to_owned(), tunnel);
    }

    /// The running tunnels' counters, of one network or all.
    pub(super) fn tunnel_stats(&self, network: Option<&str>) -> Vec<(String, TunnelStats)> {
        self.tunnels
            .iter()
            .filter(|(id, _)| network.is_none_or(|wanted| wanted == id.as_str()))
            .map(|(id, tunnel)| (id.clone(), tunnel.stats()))
            .collect()
    }

    /// Adds or removes a far end of network `id`'s tunnel, and records it in the network's
    /// options (`tunnel.peers` or `tunnel.leaves`), so a restart has it too.
    pub(super) async fn change_far_end(
        &mut self,
        id: &str,
        addr: SocketAddr,
        change: Change,
    ) -> Result<(), BusError> {
        let spec = self.spec(id)?;
        let tunnel_spec = spec.tunnel.ok_or_else(|| {
            BusError::Conflict(format!(
                "network {} has no tunnel (no tunnel.* option)",
                short(id)
            ))
        })?;
        let tunnel = self.tunnels.get(id).ok_or_else(|| {
            BusError::Conflict(format!(
                "network {}'s tunnel is not running (the daemon's log says why)",
                short(id)
            ))
        })?;
        let peer_error = |err: PeerError| BusError::Conflict(err.to_string());
        let a_leaf = match change {
            Change::Add(kind) => kind == FarEnd::Leaf,
            Change::Remove => tunnel_spec.leaves().contains(&addr),
        };
        if tunnel_spec.follows_swarm() && !a_leaf {
            return Err(BusError::Conflict(format!(
                "network {}'s peers are the Swarm's nodes (tunnel.peers=swarm), added and removed \
                 as Docker reports them; `vxbus tunnel` adds and removes its leaves only",
                short(id)
            )));
        }
        let (option, mut list) = match change {
            Change::Add(FarEnd::Peer) => ("tunnel.peers", tunnel_spec.peers().to_vec()),
            Change::Add(FarEnd::Leaf) => ("tunnel.leaves", tunnel_spec.leaves().to_vec()),
            Change::Remove if tunnel_spec.leaves().contains(&addr) => {
                ("tunnel.leaves", tunnel_spec.leaves().to_vec())
            }
            Change::Remove => ("tunnel.peers", tunnel_spec.peers().to_vec()),
        };
        match change {
            Change::Add(_) => {
                if tunnel_spec.peers().contains(&addr) || tunnel_spec.leaves().contains(&addr) {
                    return Err(peer_error(PeerError::Exists(addr)));
                }
                list.push(addr);
            }
            Change::Remove => {
                if !list.contains(&addr) {
                    return Err(peer_error(PeerError::Unknown(addr)));
                }
                list.retain(|&other| other != addr);
            }
        }
        let text: Vec<String> = list.iter().map(ToString::to_string).collect();
        let network = self
            .state
            .networks
            .get(id)
            .ok_or_else(|| BusError::UnknownNetwork { id: id.to_owned() })?;
        let before = network.options.clone();
        let mut after = before.clone();
        if text.is_empty() {
            after.remove(option);
        } else {
            after.insert(option.to_owned(), Value::String(text.join(",")));
        }
        // The record must still make a valid bus (a tcp tunnel left with nothing to listen on
        // or connect to would not): checked before anything changes.
        match BusSpec::from_options(Some(&after)) {
            Err(err) => {
                return Err(BusError::Conflict(format!(
                    "network {}: that change would leave options vxbus refuses: {err}",
                    short(id)
                )))
            }
            Ok(BusSpec {
                tunnel: Some(changed),
                ..
            }) => refuse_self(&changed)?,
            Ok(_) => {}
        }
        match change {
            Change::Add(kind) => tunnel.add_peer(addr, kind).await,
            Change::Remove => tunnel.remove_peer(addr).await,
        }
        .map_err(peer_error)?;
        if let Some(network) = self.state.networks.get_mut(id) {
            network.options = after;
        }
        if let Err(err) = self.save() {
            // The record stays as it was; so does the running tunnel.
            if let Some(network) = self.state.networks.get_mut(id) {
                network.options = before;
            }
            let tunnel = self.tunnels.get(id);
            let undone = match (change, tunnel) {
                (Change::Add(_), Some(tunnel)) => tunnel.remove_peer(addr).await,
                (Change::Remove, Some(tunnel)) => {
                    let kind = if option == "tunnel.leaves" {
                        FarEnd::Leaf
                    } else {
                        FarEnd::Peer
                    };
                    tunnel.add_peer(addr, kind).await
                }
                (_, None) => Ok(()),
            };
            if let Err(undo) = undone {
                tracing::error!(
                    "network {}: undoing the tunnel change failed: {undo}",
                    short(id)
                );
            }
            return Err(err);
        }
        Ok(())
    }
}

/// What `vxbus tunnel add|remove` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Add(FarEnd),
    Remove,
}
