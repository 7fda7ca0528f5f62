//! The can-gw rules of the buses: listing them, making them agree with each bus's mesh
//! (`vxbus_dataplane::mesh` computes what to add and remove; this applies it), and removing a
//! bus's rules before its links go. Only rules of vxbus's kind (interfaces and flags, nothing
//! more) are ever removed: an administrator's filtered or modifying rules stay.
//!
//! Owns: applying rule changes for the driver. Must not touch links or the state file.

use vxbus_dataplane::{
    cangw::{GwError, Rule},
    mesh::{self, BusLinks},
};

use super::{BusError, Inner};

impl Inner {
    /// Removes the rules `which` picks among vxbus's kind of rule (interfaces and flags only): a
    /// rule with more (a filter, modifications, a hop limit) is someone else's, and is left.
    pub(super) fn remove_rules(&mut self, which: impl Fn(&Rule) -> bool) -> Result<(), BusError> {
        let listed = match self.gw.list() {
            // Without can-gw there are no rules to remove.
            Err(GwError::NotLoaded { .. }) => return Ok(()),
            listed => listed?,
        };
        for stats in listed {
            if stats.plain && which(&stats.rule) {
                self.gw.remove(stats.rule)?;
            }
        }
        Ok(())
    }

    /// The kernel indexes of network `id`'s links, as the state records them (links that are
    /// gone are left out, with a warning), and whether it carries CAN FD.
    pub(super) async fn bus_links(&self, id: &str) -> Result<BusLinks, BusError> {
        let fd = self.spec(id)?.fd;
        Ok(BusLinks {
            fd,
            ..self.links_of(id).await?
        })
    }

    /// The kernel indexes of network `id`'s links that exist now (`fd` left false): what its
    /// rules can connect, whether or not its recorded options still parse.
    pub(super) async fn links_of(&self, id: &str) -> Result<BusLinks, BusError> {
        let network = self.network(id)?;
        let mut bus = BusLinks::default();
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
        // Only rules of vxbus's kind can be vxbus's (and only those can be removed by sending
        // them back): the others are left as they are.
        let listed = self.gw.list()?.into_iter().filter(|stats| stats.plain);
        let diff = mesh::diff(buses, listed.map(|stats| stats.rule));
        for rule in &diff.remove {
            self.gw.remove(*rule)?;
        }
        for rule in &diff.add {
            self.gw.add(*rule)?;
        }
        Ok((diff.add.len(), diff.remove.len()))
    }
}
