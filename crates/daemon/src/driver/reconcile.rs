//! Bringing the kernel back in line with the state file after vxbus was away (a plugin restart,
//! an upgrade, a crash, a host reboot): host devices vxbus made and lost are made again,
//! endpoints whose containers went while vxbus was not running are forgotten, orphan vxcan
//! pairs (and vcans made for a plugin whose start never finished) deleted, and the rules made exactly the buses' meshes.
//!
//! Owns: that pass and its one summary log line. Must not touch Docker (it sends nothing about
//! existing networks after a restart: the state file is all there is).

use super::{names::is_ours_by_name, Inner};

impl Inner {
    /// After a restart: brings the kernel back in line with the state file (recreating the host
    /// devices vxbus made, forgetting endpoints whose containers are gone, deleting orphan
    /// vxcan pairs, fixing the rules), then records the result.
    pub(super) async fn reconcile(&mut self, kernel_ok: bool) -> anyhow::Result<()> {
        let networks: Vec<String> = self.state.networks.keys().cloned().collect();
        let mut forgotten = 0;
        for id in &networks {
            let network = self.state.networks[id].clone();
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
                    Some(_)
                        if endpoint.joined && self.links.get(&endpoint.peer).await?.is_some() =>
                    {
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
                        "network {id}: endpoint {endpoint_id} is stale ({why}, while vxbus was \
                         not running): removing it"
                    );
                    self.remove_member(endpoint).await?;
                    if let Some(network) = self.state.networks.get_mut(id) {
                        network.endpoints.remove(endpoint_id);
                    }
                    forgotten += 1;
                }
            }
        }
        let mut orphans = 0;
        // A state file set aside as unreadable may be the only record of live buses: until a
        // person has looked at it (and removed it), links named like vxbus's are kept.
        let set_aside = self.file.set_aside_files();
        let mut kept = 0;
        for link in self.links.list().await? {
            if is_ours_by_name(&link) && self.state.owner_of_link(&link.name).is_none() {
                if !set_aside.is_empty() {
                    kept += 1;
                    continue;
                }
                tracing::info!(
                    "deleting {}, an orphan {} of an earlier run",
                    link.name,
                    link.kind.as_deref().unwrap_or("link")
                );
                self.links.delete(link.index).await?;
                orphans += 1;
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
        let (mut added, mut removed) = (0, 0);
        if kernel_ok {
            let mut buses = Vec::new();
            for id in &networks {
                buses.push(self.bus_links(id).await?);
            }
            (added, removed) = self.sync_rules(&buses)?;
        }
        self.save()?;
        let endpoints: usize = self
            .state
            .networks
            .values()
            .map(|n| n.endpoints.len())
            .sum();
        tracing::info!(
            "state reconciled with the kernel: {} network(s), {endpoints} endpoint(s); {forgotten} \
             endpoint(s) forgotten, {orphans} orphan link(s) deleted, {added} rule(s) added, \
             {removed} removed",
            self.state.networks.len()
        );
        Ok(())
    }
}
