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
    pub(super) async fn remove_rules(&self, which: impl Fn(&Rule) -> bool) -> Result<(), BusError> {
        let listed = match self.gw.list().await {
            // Without can-gw there are no rules to remove.
            Err(GwError::NotLoaded { .. }) => return Ok(()),
            listed => listed?,
        };
        let doomed: Vec<Rule> = listed
            .into_iter()
            .filter(|stats| stats.plain && which(&stats.rule))
            .map(|stats| stats.rule)
            .collect();
        self.apply(Vec::new(), doomed).await
    }

    /// Adds `add` and removes `remove`, in one trip to the blocking pool.
    async fn apply(&self, add: Vec<Rule>, remove: Vec<Rule>) -> Result<(), BusError> {
        if add.is_empty() && remove.is_empty() {
            return Ok(());
        }
        self.gw
            .run(move |gw| {
                remove.into_iter().try_for_each(|rule| gw.remove(rule))?;
                add.into_iter().try_for_each(|rule| gw.add(rule))
            })
            .await
            .map_err(BusError::from)
    }

    /// The kernel indexes of network `id`'s links, as the state records them (links that are
    /// gone are left out: reconcile and heal report them), and whether it carries CAN FD.
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
                None => tracing::debug!("network {id}: member link {} is gone", endpoint.host_end),
            }
        }
        if let Some(host) = &network.host_device {
            match self.links.index(&host.name).await? {
                Some(index) => bus.host_device = Some(index),
                None => tracing::debug!("network {id}: host device {} is gone", host.name),
            }
        }
        Ok(bus)
    }

    /// Adds the rules that connect link `index`, a member that just joined network `id`, to
    /// the rest of the bus. No dump of the kernel's rules: a new link has none yet, so the cost
    /// grows with the bus's size only (the periodic check, `heal`, finds any other drift).
    pub(super) async fn connect_member(&mut self, id: &str, index: u32) -> Result<(), BusError> {
        let bus = self.bus_links(id).await?;
        let rules: Vec<Rule> = bus.rules_of(index).into_iter().collect();
        let added = rules.len();
        self.apply(rules, Vec::new()).await?;
        tracing::debug!("network {id}: {added} rule(s) added for link {index}");
        Ok(())
    }

    /// Makes the kernel's rules whose two ends are both links of `buses` exactly the union of
    /// their meshes: missing rules added, others (and duplicates) removed. Returns the counts.
    pub(super) async fn sync_rules(
        &mut self,
        buses: &[BusLinks],
    ) -> Result<(usize, usize), BusError> {
        // Only rules of vxbus's kind can be vxbus's (and only those can be removed by sending
        // them back): the others are left as they are.
        let listed = self
            .gw
            .list()
            .await?
            .into_iter()
            .filter(|stats| stats.plain);
        let diff = mesh::diff(buses, listed.map(|stats| stats.rule));
        let counts = (diff.add.len(), diff.remove.len());
        self.apply(diff.add, diff.remove).await?;
        Ok(counts)
    }
}
