//! Keeping the kernel in line with the state file: after vxbus was away (a plugin restart, an
//! upgrade, a crash, a host reboot), [`Inner::reconcile`] makes again the host devices vxbus
//! made and lost, forgets endpoints whose containers went while vxbus was not running, deletes
//! orphan vxcan pairs (and vcans made for a plugin whose start never finished), and makes the
//! rules exactly the buses' meshes; while running, [`Inner::heal`] repairs what other tools
//! change underneath (`cangw -F`, a deleted vcan) every few seconds.
//!
//! One bad item (a network whose recorded options no longer parse, a link the kernel will not
//! delete) is reported and skipped: the rest still starts, and its links and rules are left as
//! they are.
//!
//! Owns: those passes and their summary log lines. Must not touch Docker (it sends nothing about
//! existing networks after a restart: the state file is all there is).

use std::collections::BTreeSet;

use anyhow::Context as _;
use vxbus_dataplane::{ifname::IfName, mesh::BusLinks};

use super::{names::is_ours_by_name, BusError, Inner};

/// What a [`Inner::heal`] pass repaired.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Repairs {
    pub rules_added: usize,
    pub rules_removed: usize,
    /// Host devices vxbus made that were gone, made again.
    pub devices_made: Vec<IfName>,
    /// Networks whose deletion had failed half-way, now deleted.
    pub deletions_finished: usize,
}

impl Inner {
    /// After a restart: brings the kernel back in line with the state file (recreating the host
    /// devices vxbus made, forgetting endpoints whose containers are gone, deleting orphan
    /// vxcan pairs, fixing the rules), then records the result. A network that cannot be
    /// reconciled is logged and left as it is; only a state file that cannot be written stops
    /// the start.
    pub(super) async fn reconcile(&mut self, kernel_ok: bool) -> anyhow::Result<()> {
        for id in self.deleting() {
            match self.tear_down(&id).await {
                Ok(()) => tracing::info!(
                    "network {id} deleted (finishing a docker network rm that failed half-way)"
                ),
                Err(err) => tracing::error!("network {id}: finishing its deletion failed: {err}"),
            }
        }
        let networks: Vec<String> = self
            .state
            .networks
            .iter()
            .filter(|(_, n)| !n.deleting)
            .map(|(id, _)| id.clone())
            .collect();
        let mut forgotten = 0;
        let mut skipped: BTreeSet<String> = self
            .state
            .networks
            .iter()
            .filter(|(_, n)| n.deleting)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &networks {
            if let Err(err) = self.reconcile_network(id, kernel_ok, &mut forgotten).await {
                tracing::error!(
                    "network {id} skipped while reconciling: {err:#}; its links and rules are \
                     left as they are (`docker network rm` it if it is not wanted)"
                );
                skipped.insert(id.clone());
            }
        }
        let orphans = self.delete_orphans().await;
        let (mut added, mut removed) = (0, 0);
        if kernel_ok {
            let buses = self.buses(&skipped).await;
            match self.sync_rules(&buses).await {
                Ok(counts) => (added, removed) = counts,
                Err(err) => tracing::error!(
                    "the buses' rules could not be made their meshes: {err}; retried every few \
                     seconds"
                ),
            }
        }
        self.save().context("recording the reconciled state")?;
        let endpoints: usize = self
            .state
            .networks
            .values()
            .map(|n| n.endpoints.len())
            .sum();
        tracing::info!(
            "state reconciled with the kernel: {} network(s), {endpoints} endpoint(s); {forgotten} \
             endpoint(s) forgotten, {orphans} orphan link(s) deleted, {added} rule(s) added, \
             {removed} removed, {} network(s) skipped",
            self.state.networks.len(),
            skipped.len()
        );
        Ok(())
    }

    /// The networks whose deletion failed half-way.
    fn deleting(&self) -> Vec<String> {
        self.state
            .networks
            .iter()
            .filter(|(_, n)| n.deleting)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// One network's part of [`Inner::reconcile`].
    async fn reconcile_network(
        &mut self,
        id: &str,
        kernel_ok: bool,
        forgotten: &mut usize,
    ) -> Result<(), BusError> {
        let network = self.network(id)?.clone();
        if let Some(host) = &network.host_device {
            if self.links.get(&host.name).await?.is_none() {
                if host.created && kernel_ok {
                    let spec = self.spec(id)?;
                    self.prepare_host_device(&host.name, &spec).await?;
                    tracing::warn!(
                        "network {id}: host device {} was gone: created it again",
                        host.name
                    );
                } else {
                    tracing::warn!("network {id}: host device {} is gone", host.name);
                }
            }
        }
        for (endpoint_id, endpoint) in &network.endpoints {
            let gone = match self.links.get(&endpoint.host_end).await? {
                None => Some("its vxcan pair went with its container"),
                Some(_) if endpoint.joined && self.links.get(&endpoint.peer).await?.is_some() => {
                    Some("Docker moved its interface back out of a container that is gone")
                }
                Some(link) => {
                    if !link.up {
                        self.links.set_up(link.index).await?;
                    }
                    None
                }
            };
            if let Some(why) = gone {
                tracing::info!(
                    "network {id}: endpoint {endpoint_id} is stale ({why}, while vxbus was not \
                     running): removing it"
                );
                self.remove_member(endpoint).await?;
                if let Some(network) = self.state.networks.get_mut(id) {
                    network.endpoints.remove(endpoint_id);
                }
                *forgotten += 1;
            }
        }
        Ok(())
    }

    /// Deletes links named like vxbus's that no network records; returns how many. Kept while
    /// an unreadable state file is set aside; a link that cannot be deleted is logged.
    async fn delete_orphans(&mut self) -> usize {
        let listed = match self.links.list().await {
            Ok(listed) => listed,
            Err(err) => {
                tracing::error!("listing links to find orphans: {err}");
                return 0;
            }
        };
        // A state file set aside as unreadable may be the only record of live buses: until a
        // person has looked at it (and removed it), links named like vxbus's are kept.
        let set_aside = self.file.set_aside_files();
        let (mut orphans, mut kept) = (0, 0);
        for link in listed {
            if !is_ours_by_name(&link) || self.owner_of_link(&link.name).is_some() {
                continue;
            }
            if !set_aside.is_empty() {
                kept += 1;
                continue;
            }
            let kind = link.kind.as_deref().unwrap_or("link");
            match self.links.delete(link.index).await {
                Ok(()) => {
                    tracing::info!("deleting {}, an orphan {kind} of an earlier run", link.name);
                    orphans += 1;
                }
                Err(err) => {
                    tracing::error!("could not delete {}, an orphan {kind}: {err}", link.name)
                }
            }
        }
        if kept > 0 {
            tracing::warn!(
                "{kept} link(s) named like vxbus's are not in the state, and kept: {} holds a \
                 state vxbus could not read, which may record them; once it is looked at and \
                 removed, the next start deletes them",
                set_aside
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        orphans
    }

    /// The links of every recorded network but those in `skip`; a network whose links cannot
    /// be read is left out (its rules untouched), with a warning.
    async fn buses(&self, skip: &BTreeSet<String>) -> Vec<BusLinks> {
        let mut buses = Vec::new();
        for id in self.state.networks.keys().filter(|id| !skip.contains(*id)) {
            match self.bus_links(id).await {
                Ok(bus) => buses.push(bus),
                Err(err) => tracing::warn!("network {id}: its rules are left as they are: {err}"),
            }
        }
        buses
    }

    /// While running: repairs what changed underneath vxbus since the last pass. Host devices
    /// vxbus made are made again if gone, and the rules among each bus's links are made its
    /// mesh again (rules someone else made, or between links of no bus, are left alone).
    /// Endpoints are left to Docker: a member whose link was deleted cannot be given back to its
    /// container, and is reported once.
    pub(super) async fn heal(&mut self) -> Result<Repairs, BusError> {
        let mut repairs = Repairs::default();
        let mut failed = None;
        for id in self.deleting() {
            match self.tear_down(&id).await {
                Ok(()) => {
                    tracing::info!(
                        "network {id} deleted (finishing a docker network rm that failed half-way)"
                    );
                    repairs.deletions_finished += 1;
                }
                Err(err) => failed = failed.or(Some(err)),
            }
        }
        let made: Vec<(String, IfName)> = self
            .state
            .networks
            .iter()
            .filter(|(_, network)| !network.deleting)
            .filter_map(|(id, network)| {
                let host = network.host_device.as_ref().filter(|host| host.created)?;
                Some((id.clone(), host.name.clone()))
            })
            .collect();
        for (id, name) in made {
            if self.links.get(&name).await?.is_some() {
                continue;
            }
            let Ok(spec) = self.spec(&id) else { continue };
            if let Err(err) = self.prepare_host_device(&name, &spec).await {
                failed = failed.or(Some(err));
                continue;
            }
            tracing::warn!(
                "network {id}: host device {name} was deleted by someone else: made it again \
                 (a plugin serving the bus has lost its socket on it: `vxbus plugins` shows it)"
            );
            repairs.devices_made.push(name);
        }
        // A member's link deleted by someone (its pair's end in the container went with it):
        // said once; Docker's DeleteEndpoint removes the record when the container goes.
        let mut gone = BTreeSet::new();
        for (id, network) in self.state.networks.iter().filter(|(_, n)| !n.deleting) {
            for (endpoint_id, endpoint) in &network.endpoints {
                if self.links.index(&endpoint.host_end).await?.is_none() {
                    if !self.reported_gone.contains(&endpoint.host_end) {
                        tracing::warn!(
                            "network {id}: endpoint {endpoint_id}'s link {} was deleted by someone \
                             else: its container has lost the bus (reconnect it: docker network \
                             disconnect, then connect)",
                            endpoint.host_end
                        );
                    }
                    gone.insert(endpoint.host_end.clone());
                }
            }
        }
        self.reported_gone = gone;
        // Networks whose options no longer parse were reported at start, and those being
        // deleted are going: their rules stay as they are.
        let skip: BTreeSet<String> = self
            .state
            .networks
            .keys()
            .filter(|id| self.network(id).is_ok_and(|n| n.deleting) || self.spec(id).is_err())
            .cloned()
            .collect();
        let buses = self.buses(&skip).await;
        (repairs.rules_added, repairs.rules_removed) = self.sync_rules(&buses).await?;
        match failed {
            Some(err) => Err(err),
            None => Ok(repairs),
        }
    }
}
