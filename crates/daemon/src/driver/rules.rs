//! The can-gw rules of the buses: listing them, making them agree with each bus's mesh
//! (`vxbus_dataplane::mesh` computes what to add and remove; this applies it), and removing a
//! link's rules before the link goes.
//!
//! Owns: applying rule changes for the driver. Must not touch links or the state file.

use vxbus_dataplane::{
    cangw::GwError,
    mesh::{self, BusLinks},
};

use super::{BusError, Inner};

impl Inner {
    /// Removes every rule into or out of link `index` (the kernel would remove them with the
    /// link, but a link that stays, such as a found host device, keeps its rules otherwise).
    pub(super) fn remove_rules_of(&mut self, index: u32) -> Result<(), BusError> {
        let listed = match self.gw.list() {
            // Without can-gw there are no rules to remove.
            Err(GwError::NotLoaded { .. }) => return Ok(()),
            listed => listed?,
        };
        for stats in listed {
            let rule = stats.rule;
            if rule.src == index || rule.dst == index {
                self.gw.remove(rule)?;
            }
        }
        Ok(())
    }

    /// The kernel indexes of network `id`'s links, as the state records them (links that are
    /// gone are left out, with a warning).
    pub(super) async fn bus_links(&self, id: &str) -> Result<BusLinks, BusError> {
        let network = self.network(id)?;
        let spec = self.spec(id)?;
        let mut bus = BusLinks {
            fd: spec.fd,
            ..BusLinks::default()
        };
        for endpoint in network.endpoints.values() {
            match self.links.index(&endpoint.host_end).await? {
                Some(index) => bus.members.push(index),
                None => tracing::warn!("network {id}: member link {} is gone", endpoint.host_end),
            }
        }
        if let Some(host) = &network.host_device {
            match self.links.index(&host.name).await? {
                Some(index) => bus.host_device = Some(index),
                None => tracing::warn!("network {id}: host device {} is gone", host.name),
            }
        }
        Ok(bus)
    }

    /// Makes the kernel's rules among network `id`'s links exactly its mesh.
    pub(super) async fn sync_bus(&mut self, id: &str) -> Result<(), BusError> {
        let bus = self.bus_links(id).await?;
        let (added, removed) = self.sync_rules(&[bus])?;
        tracing::debug!("network {id}: {added} rule(s) added, {removed} removed");
        Ok(())
    }

    /// Makes the kernel's rules whose two ends are both links of `buses` exactly the union of
    /// their meshes: missing rules added, others (and duplicates) removed. Returns the counts.
    pub(super) fn sync_rules(&mut self, buses: &[BusLinks]) -> Result<(usize, usize), BusError> {
        let listed = self.gw.list()?.into_iter().map(|stats| stats.rule);
        let diff = mesh::diff(buses, listed);
        for rule in &diff.remove {
            self.gw.remove(*rule)?;
        }
        for rule in &diff.add {
            self.gw.add(*rule)?;
        }
        Ok((diff.add.len(), diff.remove.len()))
    }
}
