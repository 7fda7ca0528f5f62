//! The network driver: what each Docker call means for the buses, applied to the kernel and
//! recorded in the state file, in that order, with every partial change undone on failure
//! (DeleteNetwork's is finished instead: Docker forgets the network whatever the answer).
//!
//! Owns: the networks and endpoints vxbus made, the links and gateway rules that carry them, and
//! keeping the state file and the kernel in agreement (at every call; through
//! [`Driver::start`], after a restart; through [`Driver::keep_healthy`], every few seconds and
//! after Docker's calls, against other tools). Must not touch: Docker's wire format (the `docker` module
//! hands calls in), interfaces and rules it does not own.
//!
//! What vxbus owns in the kernel:
//! - the vxcan pairs of its endpoints, named `vxbh<id>` (host end) and `vxbc<id>` (the peer
//!   Docker moves into the container), `<id>` being the first 10 hex digits of Docker's
//!   endpoint ID: the `vxbh`/`vxbc` names are reserved, and a vxcan with such a name that the
//!   state does not list is an orphan of an earlier run, deleted;
//! - the host devices it created (vcan);
//! - every gateway rule between two links of one of its buses.
//!
//! All calls are serialized by one lock: Docker's calls are few and quick, and the lock makes
//! each call's read-modify-write of the kernel and the state file atomic with respect to the others.
//! can-gw requests (blocking netlink) run on tokio's blocking pool, each wait bounded; a
//! joining member adds only its own rules (no dump of every rule), a leaving one takes its
//! rules with its link: a call's cost grows with its bus's size, not with its square.
//!
//! Its parts: [`names`] (the links' names), [`host_device`] (a bus's host device), [`rules`]
//! (the rules made to agree with each bus's mesh), [`reconcile`] (after a restart, and the
//! periodic check).

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, Notify};
use vxbus_dataplane::{
    cangw::{GwError, SharedGw},
    ifname::IfName,
    kernel::{self, CheckError, Missing},
    links::{LinkError, Links},
};
use vxbus_sdk::Bus;
use vxbus_tunnel::{Tunnel, TunnelStats};

use crate::{
    bus::{BusSpec, DevicePrefix, OptionError},
    state::{Endpoint, HostDevice, Network, State, StateFile},
    supervisor::{PluginError, Prepared, Supervisor},
};

mod host_device;
mod names;
mod reconcile;
mod rules;
mod swarm;
mod tunnels;

use names::{is_ours_by_name, is_swarm_id, link_names, plugin_host_name};
pub use names::{HOST_END_PREFIX, PEER_PREFIX, PLUGIN_HOST_PREFIX};
pub use swarm::NodeChange;
use tunnels::short;
pub use tunnels::Change;

/// Why a call failed. Docker shows the message to the user.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A network option is refused; the message names it.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// The host device cannot serve as the bus's host interface.
    #[error("option `host_device`: `{name}` {reason}")]
    HostDevice { name: IfName, reason: String },
    /// The kernel lacks a module a bus needs; the message names it and how to load it.
    #[error(transparent)]
    Kernel(#[from] Missing),
    /// Docker names a network vxbus has no record of.
    #[error(
        "vxbus has no record of network {id}: it was created while vxbus's state directory was \
         elsewhere or lost; remove the network and create it again"
    )]
    UnknownNetwork { id: String },
    /// Docker names an endpoint vxbus has no record of.
    #[error("vxbus has no record of endpoint {endpoint} on network {network}")]
    UnknownEndpoint { network: String, endpoint: String },
    /// What the call asks for collides with what exists (a network, a link): the user's to
    /// resolve, not a failure of the host.
    #[error("{0}")]
    Conflict(String),
    /// An endpoint option (a container's `driver-opt`, Compose's `interface_name`) is refused;
    /// the message names it.
    #[error("{0}")]
    EndpointOption(String),
    /// Docker sent an ID vxbus cannot name links after.
    #[error("endpoint ID `{0}` is not the hex ID Docker gives endpoints")]
    BadEndpointId(String),
    /// The bus's plugin refused the network or could not serve it; the message names the plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The kernel or the state file refused; the chain says what was being done.
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl BusError {
    /// Whether the user's request is at fault (rather than the host or vxbus).
    pub fn is_refusal(&self) -> bool {
        match self {
            BusError::Plugin(err) => err.is_refusal(),
            other => matches!(
                other,
                BusError::Option(_)
                    | BusError::HostDevice { .. }
                    | BusError::BadEndpointId(_)
                    | BusError::EndpointOption(_)
                    | BusError::Conflict(_)
            ),
        }
    }
}

impl From<LinkError> for BusError {
    fn from(error: LinkError) -> Self {
        BusError::Failed(error.into())
    }
}

impl From<GwError> for BusError {
    fn from(error: GwError) -> Self {
        BusError::Failed(error.into())
    }
}

impl From<CheckError> for BusError {
    fn from(error: CheckError) -> Self {
        match error {
            CheckError::Missing(missing) => BusError::Kernel(missing),
            other => BusError::Failed(other.into()),
        }
    }
}

/// What Join tells Docker: the interface to move into the container and its name prefix (the
/// name the container asked for, or the network's `device`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInfo {
    pub src_name: IfName,
    pub dst_prefix: String,
}

/// How often the driver checks the kernel against its state while it runs ([`Driver::keep_healthy`]).
pub const HEAL_PERIOD: Duration = Duration::from_secs(2);
/// After a Docker call, how long the check waits for more before it runs: a burst of calls
/// (`docker compose up`) gets one check.
const HEAL_AFTER_CALLS: Duration = Duration::from_millis(300);

/// Wakes the check when dropped: at the end of a Docker call, however it ends.
struct CheckAfter<'a>(&'a Notify);

impl Drop for CheckAfter<'_> {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

/// A recorded bus as [`Driver::bus_views`] hands it out.
#[derive(Debug, Clone)]
pub struct BusView {
    pub id: String,
    /// `None` only for a record whose options no longer validate (kept, never served).
    pub spec: Option<BusSpec>,
    pub network: Network,
    pub tunnel: Option<TunnelStats>,
}

/// The driver. Cheap to share: every call takes the one lock.
pub struct Driver {
    inner: Mutex<Inner>,
    plugins: Arc<Supervisor>,
    /// Docker called: the kernel is checked soon.
    called: Notify,
}

struct Inner {
    state: State,
    /// Networks whose plugin is being told to start (outside the lock): made in the kernel,
    /// not recorded in the state until the plugin confirms. Their names and links are taken.
    creating: BTreeMap<String, Network>,
    file: StateFile,
    links: Links,
    gw: SharedGw,
    /// Members' links found deleted by someone else, already reported (said once each).
    reported_gone: BTreeSet<IfName>,
    /// The last check's failure, already logged (a failure that repeats is said once).
    heal_failure: Option<String>,
    /// The running tunnels, by network id.
    tunnels: BTreeMap<String, Tunnel>,
    /// Each network's last tunnel start failure, already logged.
    tunnel_failures: BTreeMap<String, String>,
    /// The Swarm nodes given as peers to each running tunnel that follows the Swarm.
    swarm_given: BTreeMap<String, BTreeSet<std::net::SocketAddr>>,
}

impl Driver {
    /// Loads the state, reconciles it with the kernel, and returns the driver ready to serve.
    /// A missing kernel module is logged (it fails each CreateNetwork until it is loaded), not
    /// fatal: the plugin must still enable so that `docker network create` can say what is wrong.
    pub async fn start(file: StateFile, plugins: Arc<Supervisor>) -> anyhow::Result<Driver> {
        let links = Links::connect().context("opening an rtnetlink connection")?;
        let gw = SharedGw::open().context("opening a netlink socket for can-gw")?;
        let state = match file.load() {
            Ok(state) => state,
            Err(err) => {
                let aside = file.set_aside()?;
                tracing::error!(
                    "{err:#}: starting with no networks; the unreadable file is kept as {}",
                    aside.display()
                );
                State::new()
            }
        };
        let mut inner = Inner {
            state,
            creating: BTreeMap::new(),
            file,
            links,
            gw,
            reported_gone: BTreeSet::new(),
            heal_failure: None,
            tunnels: BTreeMap::new(),
            tunnel_failures: BTreeMap::new(),
            swarm_given: BTreeMap::new(),
        };
        let kernel_ok = match kernel::check(&inner.links, &inner.gw).await {
            Ok(()) => true,
            Err(CheckError::Missing(missing)) => {
                tracing::error!("{missing}; until then `docker network create` fails");
                false
            }
            Err(other) => return Err(other.into()),
        };
        inner.reconcile(kernel_ok).await?;
        inner.ensure_tunnels(&BTreeSet::new()).await;
        Ok(Driver {
            inner: Mutex::new(inner),
            plugins,
            called: Notify::new(),
        })
    }

    /// Checks the kernel against the state every `period`, and shortly after Docker's calls,
    /// for as long as the process runs, repairing what other tools changed underneath (rules
    /// flushed with `cangw -F`, a vcan vxbus made deleted) and logging what it repaired.
    pub fn keep_healthy(self: &Arc<Self>, period: Duration) {
        let driver = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = driver.called.notified() => tokio::time::sleep(HEAL_AFTER_CALLS).await,
                }
                driver.heal().await;
                ticks.reset();
            }
        });
    }

    /// One check of [`Driver::keep_healthy`].
    pub async fn heal(&self) {
        let mut inner = self.inner.lock().await;
        let healed = inner.heal().await;
        // A tunnel whose host device was made again has a socket on the one that went.
        let remade: BTreeSet<String> = match &healed {
            Ok(repairs) => inner
                .state
                .networks
                .iter()
                .filter(|(_, n)| {
                    n.host_device
                        .as_ref()
                        .is_some_and(|host| repairs.devices_made.contains(&host.name))
                })
                .map(|(id, _)| id.clone())
                .collect(),
            Err(_) => BTreeSet::new(),
        };
        inner.ensure_tunnels(&remade).await;
        match healed {
            Ok(repairs) => {
                if inner.heal_failure.take().is_some() {
                    tracing::info!("the kernel's CAN buses can be checked again");
                }
                if repairs.rules_added + repairs.rules_removed > 0
                    || !repairs.devices_made.is_empty()
                {
                    tracing::warn!(
                        "repaired the buses: {} rule(s) added, {} removed{} (another tool                          changed what vxbus made: `cangw -F`?)",
                        repairs.rules_added,
                        repairs.rules_removed,
                        if repairs.devices_made.is_empty() {
                            String::new()
                        } else {
                            format!(", host device(s) {} made again", repairs.devices_made.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
                        }
                    );
                }
            }
            Err(err) => {
                let message = err.to_string();
                if inner.heal_failure.as_ref() != Some(&message) {
                    tracing::error!("checking the buses in the kernel: {message}; tried again every {HEAL_PERIOD:?}");
                    inner.heal_failure = Some(message);
                }
            }
        }
    }

    /// The networks and endpoints as recorded, for `vxbus networks`.
    pub async fn networks(&self) -> BTreeMap<String, Network> {
        self.inner.lock().await.state.networks.clone()
    }

    /// Every recorded bus (not one being deleted) with its spec and its tunnel's counters: what
    /// the `stats` module reads its members and bit rates from, each second.
    pub async fn bus_views(&self) -> Vec<BusView> {
        let inner = self.inner.lock().await;
        let mut tunnels: BTreeMap<String, TunnelStats> =
            inner.tunnel_stats(None).into_iter().collect();
        inner
            .state
            .networks
            .iter()
            .filter(|(_, network)| !network.deleting)
            .map(|(id, network)| BusView {
                id: id.clone(),
                spec: BusSpec::from_options(Some(&network.options)).ok(),
                network: network.clone(),
                tunnel: tunnels.remove(id),
            })
            .collect()
    }

    /// The running tunnels' counters, of one network (an id or its unique start) or all.
    pub async fn tunnels(
        &self,
        network: Option<&str>,
    ) -> Result<BTreeMap<String, TunnelStats>, BusError> {
        let inner = self.inner.lock().await;
        let id = network.map(|given| inner.resolve(given)).transpose()?;
        Ok(inner.tunnel_stats(id.as_deref()).into_iter().collect())
    }

    /// Docker's DiscoverNew or DiscoverDelete: a node joined or left the Swarm.
    pub async fn swarm_node(&self, change: NodeChange) -> Result<(), BusError> {
        self.inner.lock().await.swarm_node(change).await
    }

    /// The Swarm nodes recorded, for `vxbus swarm`.
    pub async fn swarm_nodes(&self) -> BTreeSet<std::net::IpAddr> {
        self.inner.lock().await.state.swarm_nodes.clone()
    }

    /// `vxbus swarm --forget IP`: a node Docker did not say had left, forgotten as if it had.
    pub async fn forget_swarm_node(&self, ip: std::net::IpAddr) -> Result<(), BusError> {
        let mut inner = self.inner.lock().await;
        if !inner.state.swarm_nodes.contains(&ip) {
            return Err(BusError::Conflict(format!(
                "{ip} is not a recorded Swarm node (`vxbus swarm` lists them)"
            )));
        }
        inner.swarm_node(NodeChange::Left(ip)).await
    }

    /// `vxbus tunnel add|remove`: changes a far end of a network's running tunnel and records it.
    pub async fn change_tunnel(
        &self,
        network: &str,
        addr: std::net::SocketAddr,
        change: Change,
    ) -> Result<(), BusError> {
        let mut inner = self.inner.lock().await;
        let id = inner.resolve(network)?;
        inner.change_far_end(&id, addr, change).await?;
        // A leaf removed from a bus that follows the Swarm may leave a node's address free.
        inner.follow_swarm().await;
        Ok(())
    }

    /// After a restart: starts each existing bus's plugin again (in the background; a bus
    /// works without its plugin, so failures are logged, not fatal).
    pub async fn resume_plugins(&self) {
        let networks: Vec<(String, Network)> = {
            let inner = self.inner.lock().await;
            inner
                .state
                .networks
                .iter()
                .filter(|(_, n)| !n.deleting)
                .map(|(id, n)| (id.clone(), n.clone()))
                .collect()
        };
        for (id, network) in networks {
            let Ok(spec) = BusSpec::from_options(Some(&network.options)) else {
                continue;
            };
            let Some(request) = &spec.plugin else {
                continue;
            };
            let Some(host) = &network.host_device else {
                continue;
            };
            match self
                .plugins
                .prepare(&request.driver, &request.options)
                .await
            {
                Ok(prepared) => {
                    self.plugins
                        .resume(bus_of(&id, &spec, &host.name, prepared))
                        .await
                }
                Err(err) => tracing::warn!("network {id}: its plugin did not start again: {err}"),
            }
        }
    }

    pub async fn create_network(
        &self,
        id: &str,
        options: Option<&Map<String, Value>>,
    ) -> Result<(), BusError> {
        let _check = CheckAfter(&self.called);
        let spec = BusSpec::from_options(options)?;
        if let Some(tunnel) = &spec.tunnel {
            tunnels::refuse_self(tunnel)?;
        }
        let options = options.cloned().unwrap_or_default();
        let spec_has_no_options = options.is_empty();
        // The plugin checks its options before anything exists (it may have to be spawned:
        // done outside the lock, which Docker's other calls need meanwhile).
        let prepared = match &spec.plugin {
            Some(request) => Some(
                self.plugins
                    .prepare(&request.driver, &request.options)
                    .await?,
            ),
            None => None,
        };
        let mut guard = self.inner.lock().await;
        if let Some(existing) = guard.state.networks.get(id) {
            if existing.options == options {
                tracing::info!("network {id} exists already with these options");
                return Ok(());
            }
            return Err(BusError::Conflict(format!(
                "network {id} exists already with other options"
            )));
        }
        if guard.creating.contains_key(id) {
            return Err(BusError::Conflict(format!("network {id} is being created")));
        }
        let inner = &mut *guard;
        kernel::check(&inner.links, &inner.gw).await?;
        // A plugin and a tunnel need a host-side interface to open their CAN socket on: the
        // host device, or a vcan made for them.
        let host_name = match (
            &spec.host_device,
            prepared.is_some() || spec.tunnel.is_some(),
        ) {
            (Some(name), _) => Some(name.clone()),
            (None, true) => Some(plugin_host_name(id)?),
            (None, false) => None,
        };
        let host_device = match &host_name {
            None => None,
            Some(name) => {
                if let Some(owner) = inner.owner_of_link(name.as_str()) {
                    return Err(BusError::HostDevice {
                        name: name.clone(),
                        reason: format!(
                            "is already used by vxbus network {owner}; two buses would merge \
                             through it: give each bus its own host_device"
                        ),
                    });
                }
                Some(inner.prepare_host_device(name, &spec).await?)
            }
        };
        // The tunnel binds its address now: a port in use is refused before anything else.
        let tunnel = match (&spec.tunnel, &host_device) {
            (Some(tunnel_spec), Some(host)) => {
                match Tunnel::start(short(id), host.name.as_str(), tunnel_spec).await {
                    Ok(tunnel) => Some(tunnel),
                    Err(err) => {
                        inner.undo_host_device(&host_device).await;
                        return Err(tunnels::refusal(err));
                    }
                }
            }
            _ => None,
        };
        let network = Network {
            options,
            host_device: host_device.clone(),
            endpoints: BTreeMap::new(),
            deleting: false,
        };
        // The plugin is told outside the lock: it may take up to the start timeout, and
        // Docker's calls for other networks must not wait for it. Meanwhile the network is
        // reserved, and recorded only once the plugin has confirmed it.
        let mut started_bus = None;
        if let (Some(prepared), Some(host)) = (prepared, &host_device) {
            let bus = bus_of(id, &spec, &host.name, prepared);
            inner.creating.insert(id.to_owned(), network.clone());
            drop(guard);
            let started = self.plugins.start(&bus).await;
            guard = self.inner.lock().await;
            guard.creating.remove(id);
            if let Err(err) = started {
                tracing::warn!("network {id} not created: {err}");
                // The plugin may have started it after all (a late answer): it is told to stop,
                // in the background, as Docker waits for this answer.
                let plugins = self.plugins.clone();
                tokio::spawn(async move { plugins.stop(&bus).await });
                if let Some(tunnel) = tunnel {
                    tunnel.stop().await;
                }
                guard.undo_host_device(&host_device).await;
                return Err(err.into());
            }
            started_bus = Some(bus);
        }
        let inner = &mut *guard;
        inner.state.networks.insert(id.to_owned(), network);
        if let Err(err) = inner.save() {
            inner.state.networks.remove(id);
            if let Some(tunnel) = tunnel {
                tunnel.stop().await;
            }
            inner.undo_host_device(&host_device).await;
            if let Some(bus) = started_bus {
                let plugins = self.plugins.clone();
                tokio::spawn(async move { plugins.stop(&bus).await });
            }
            return Err(err);
        }
        if let Some(tunnel) = tunnel {
            inner.run_tunnel(id, tunnel);
            inner.follow_swarm().await;
        }
        let host = match &host_device {
            Some(host) if host.created => format!(", host device {} created", host.name),
            Some(host) => format!(", bridged to host device {}", host.name),
            None => String::new(),
        };
        tracing::info!("network {id} created: {spec}{host}");
        if spec_has_no_options && is_swarm_id(id) {
            // Docker hands a local-scope driver no `-o` option of a `--scope swarm` network:
            // those come only through `--config-from` a `--config-only` network on each node.
            tracing::warn!(
                "network {id} is a Swarm network and came with no option: a plain bus on this \
                 node. Options of a Swarm network (tunnel.peers=swarm, ...) go in a \
                 `docker network create --config-only` network on each node, named with \
                 `--config-from` on the manager; `-o` beside `--scope swarm` never reaches vxbus"
            );
        }
        Ok(())
    }

    pub async fn delete_network(&self, id: &str) -> Result<(), BusError> {
        let _check = CheckAfter(&self.called);
        // The plugin first, while the bus it serves still exists; outside the lock, as it may
        // take up to the start timeout.
        let bus = {
            let inner = self.inner.lock().await;
            let network = inner.state.networks.get(id);
            let host = network.and_then(|network| network.host_device.as_ref());
            match (inner.spec(id), host) {
                (Ok(spec), Some(host)) => spec.plugin.as_ref().map(|request| {
                    let prepared = Prepared::untyped(&request.driver, &request.options);
                    bus_of(id, &spec, &host.name, prepared)
                }),
                _ => None,
            }
        };
        if let Some(bus) = bus {
            self.plugins.stop(&bus).await;
        }
        let mut inner = self.inner.lock().await;
        if !inner.state.networks.contains_key(id) {
            tracing::info!("network {id}: vxbus has no record of it; nothing to delete");
            return Ok(());
        }
        match inner.tear_down(id).await {
            Ok(()) => {
                tracing::info!("network {id} deleted");
                Ok(())
            }
            Err(err) => {
                // Docker forgets the network whatever the answer: vxbus finishes the job itself
                // (and on a second DeleteNetwork, if one comes), after a restart too if the
                // mark can be saved.
                if let Some(network) = inner.state.networks.get_mut(id) {
                    network.deleting = true;
                }
                let _ = inner.save();
                tracing::error!(
                    "network {id}: deleting it failed half-way: {err}; vxbus tries again every \
                     {HEAL_PERIOD:?}"
                );
                Err(err)
            }
        }
    }

    /// Makes the endpoint's vxcan pair and connects it to the bus. `ifname` is the name the
    /// container asked for (Docker 28's `com.docker.network.endpoint.ifname`), which Join hands
    /// Docker as the prefix instead of the network's `device`.
    pub async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
        ifname: Option<DevicePrefix>,
    ) -> Result<(), BusError> {
        let _check = CheckAfter(&self.called);
        let (host_end, peer) = link_names(endpoint_id)?;
        let mut inner = self.inner.lock().await;
        let network = inner.network(network_id)?;
        if network.endpoints.contains_key(endpoint_id) {
            tracing::info!("endpoint {endpoint_id} exists already");
            return Ok(());
        }
        let spec = inner.spec(network_id)?;
        for name in [&host_end, &peer] {
            if let Some(owner) = inner.owner_of_link(name.as_str()) {
                return Err(BusError::Conflict(format!(
                    "endpoint {endpoint_id}'s link name {name} is taken by network {owner}"
                )));
            }
            if let Some(link) = inner.links.get(name).await? {
                // Named like vxbus's: an orphan of an earlier run if it is a vxcan; anything
                // else with that name is someone's, and stays.
                if !is_ours_by_name(&link) {
                    return Err(BusError::Conflict(format!(
                        "endpoint {endpoint_id}'s link name {name} is taken by a {} that \
                         vxbus did not make",
                        link.kind.as_deref().unwrap_or("link")
                    )));
                }
                tracing::warn!("deleting {name}, an orphan vxcan of an earlier run");
                inner.delete_link_named(name).await;
            }
        }
        let (index, _) = inner
            .links
            .add_vxcan(&host_end, &peer)
            .await
            .map_err(|err| err.or_missing::<BusError>("vxcan"))?;
        let endpoint = Endpoint {
            host_end: host_end.clone(),
            peer: peer.clone(),
            joined: false,
            ifname,
        };
        let joined = async {
            inner.links.set_up(index).await?;
            inner
                .state
                .networks
                .get_mut(network_id)
                .expect("checked above, under the lock")
                .endpoints
                .insert(endpoint_id.to_owned(), endpoint.clone());
            inner.connect_member(network_id, index).await?;
            inner.save()
        }
        .await;
        if let Err(err) = joined {
            tracing::warn!("endpoint {endpoint_id}: {err}; undoing it");
            if let Some(network) = inner.state.networks.get_mut(network_id) {
                network.endpoints.remove(endpoint_id);
            }
            if let Err(undo) = inner.remove_member(&endpoint).await {
                tracing::error!("endpoint {endpoint_id}: undoing failed too: {undo}");
            }
            return Err(err);
        }
        tracing::info!(
            "endpoint {endpoint_id} on network {network_id}: vxcan {host_end} <-> {peer}, \
             bus {} with {} member(s)",
            spec.device.as_str(),
            inner.network(network_id)?.endpoints.len()
        );
        Ok(())
    }

    pub async fn join(&self, network_id: &str, endpoint_id: &str) -> Result<JoinInfo, BusError> {
        let _check = CheckAfter(&self.called);
        let mut inner = self.inner.lock().await;
        let endpoint = inner.endpoint(network_id, endpoint_id)?.clone();
        let spec = inner.spec(network_id)?;
        if inner.links.get(&endpoint.peer).await?.is_none() {
            return Err(anyhow!(
                "endpoint {endpoint_id}'s interface {} is gone from the host",
                endpoint.peer
            )
            .into());
        }
        inner.set_joined(network_id, endpoint_id, true)?;
        let (prefix, whose) = match &endpoint.ifname {
            Some(name) => (name.as_str(), "the name the container asked for"),
            None => (spec.device.as_str(), "the network's device"),
        };
        tracing::info!(
            "endpoint {endpoint_id} joins: Docker moves {} into the container as {prefix}<n> \
             ({whose}, and an index Docker appends)",
            endpoint.peer
        );
        Ok(JoinInfo {
            dst_prefix: prefix.to_owned(),
            src_name: endpoint.peer,
        })
    }

    pub async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<(), BusError> {
        let _check = CheckAfter(&self.called);
        let mut inner = self.inner.lock().await;
        inner.set_joined(network_id, endpoint_id, false)?;
        // Docker moves the peer back to the host; DeleteEndpoint removes the pair.
        tracing::info!("endpoint {endpoint_id} left its container");
        Ok(())
    }

    pub async fn delete_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), BusError> {
        let _check = CheckAfter(&self.called);
        let mut inner = self.inner.lock().await;
        let Some(endpoint) = inner
            .state
            .networks
            .get(network_id)
            .and_then(|network| network.endpoints.get(endpoint_id))
            .cloned()
        else {
            tracing::info!("endpoint {endpoint_id}: vxbus has no record of it; nothing to delete");
            return Ok(());
        };
        inner.remove_member(&endpoint).await?;
        if let Some(network) = inner.state.networks.get_mut(network_id) {
            network.endpoints.remove(endpoint_id);
        }
        inner.save()?;
        tracing::info!(
            "endpoint {endpoint_id} deleted ({} and its peer)",
            endpoint.host_end
        );
        Ok(())
    }

    /// What `EndpointOperInfo` reports: the endpoint's links.
    pub async fn endpoint_info(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<BTreeMap<&'static str, String>, BusError> {
        let inner = self.inner.lock().await;
        let endpoint = inner.endpoint(network_id, endpoint_id)?;
        Ok(BTreeMap::from([
            ("host_end", endpoint.host_end.to_string()),
            ("peer", endpoint.peer.to_string()),
        ]))
    }
}

/// The bus as its plugin is told about it.
fn bus_of(id: &str, spec: &BusSpec, host_interface: &IfName, prepared: Prepared) -> Bus {
    Bus {
        bus_type: "vcan".into(),
        device: spec.device.as_str().to_owned(),
        host_device: spec.host_device.as_ref().map(|name| name.to_string()),
        baudrate: spec.bitrate.map(|b| b.get()),
        baudrate_fd: spec.data_bitrate.map(|b| b.get()),
        txqueuelen: spec.txqueuelen,
        plugin: prepared.plugin,
        fd: spec.fd,
        network_id: id.to_owned(),
        host_interface: host_interface.to_string(),
    }
}

impl Inner {
    /// Removes network `id` from the kernel and the state: its rules, its members' links, the
    /// host device vxbus made. Each step skips what is already gone, so a pass that failed
    /// half-way is finished by the next; the record goes last, once the rest has.
    async fn tear_down(&mut self, id: &str) -> Result<(), BusError> {
        let Some(network) = self.state.networks.get(id).cloned() else {
            return Ok(());
        };
        // The tunnel first: its socket is on the host device, and its port is freed.
        if let Some(tunnel) = self.tunnels.remove(id) {
            tunnel.stop().await;
        }
        self.swarm_given.remove(id);
        // The bus's own rules first: those between two of its links. A bridged host device
        // may carry other rules, to links not on the bus: they are not vxbus's, and stay.
        let ours: BTreeSet<u32> = self.links_of(id).await?.indexes().collect();
        self.remove_rules(|rule| ours.contains(&rule.src) && ours.contains(&rule.dst))
            .await?;
        for (endpoint_id, endpoint) in &network.endpoints {
            tracing::warn!(
                "network {id} is deleted with endpoint {endpoint_id} still on it: removing it"
            );
            self.remove_member(endpoint).await?;
        }
        if let Some(host) = network.host_device.as_ref().filter(|host| host.created) {
            if let Some(index) = self.links.index(&host.name).await? {
                self.links.delete(index).await?;
            }
        }
        self.state.networks.remove(id);
        if let Err(err) = self.save() {
            self.state.networks.insert(id.to_owned(), network);
            return Err(err);
        }
        Ok(())
    }

    /// Takes back the host device of a network that was not created: deleted if vxbus made
    /// it (a host device it found stays, as it is).
    async fn undo_host_device(&self, host_device: &Option<HostDevice>) {
        if let Some(host) = host_device.as_ref().filter(|host| host.created) {
            self.delete_link_named(&host.name).await;
        }
    }

    /// The network that uses link `name`, recorded or being created.
    fn owner_of_link(&self, name: &str) -> Option<String> {
        let creating = self.creating.iter().find_map(|(id, network)| {
            let host = network.host_device.as_ref()?;
            (host.name.as_str() == name).then(|| id.clone())
        });
        creating.or_else(|| self.state.owner_of_link(name).map(str::to_owned))
    }

    fn save(&self) -> Result<(), BusError> {
        self.file.save(&self.state).map_err(BusError::Failed)
    }

    /// The recorded network whose id is `given` or starts with it (as `docker network ls` shows
    /// ids), if exactly one does.
    fn resolve(&self, given: &str) -> Result<String, BusError> {
        if self.state.networks.contains_key(given) {
            return Ok(given.to_owned());
        }
        let matching: Vec<&String> = self
            .state
            .networks
            .keys()
            .filter(|id| !given.is_empty() && id.starts_with(given))
            .collect();
        match matching.as_slice() {
            [id] => Ok((*id).clone()),
            [] => Err(BusError::UnknownNetwork {
                id: given.to_owned(),
            }),
            _ => Err(BusError::Conflict(format!(
                "`{given}` is the start of {} network ids: give more of it",
                matching.len()
            ))),
        }
    }

    fn network(&self, id: &str) -> Result<&Network, BusError> {
        self.state
            .networks
            .get(id)
            .ok_or_else(|| BusError::UnknownNetwork { id: id.to_owned() })
    }

    fn spec(&self, id: &str) -> Result<BusSpec, BusError> {
        let network = self.network(id)?;
        BusSpec::from_options(Some(&network.options))
            .with_context(|| format!("network {id}'s recorded options"))
            .map_err(BusError::Failed)
    }

    /// Records whether endpoint `endpoint_id`'s peer is in a container.
    fn set_joined(
        &mut self,
        network_id: &str,
        endpoint_id: &str,
        joined: bool,
    ) -> Result<(), BusError> {
        self.endpoint(network_id, endpoint_id)?;
        if let Some(endpoint) = self
            .state
            .networks
            .get_mut(network_id)
            .and_then(|network| network.endpoints.get_mut(endpoint_id))
        {
            endpoint.joined = joined;
        }
        self.save()
    }

    fn endpoint(&self, network_id: &str, endpoint_id: &str) -> Result<&Endpoint, BusError> {
        self.network(network_id)?
            .endpoints
            .get(endpoint_id)
            .ok_or_else(|| BusError::UnknownEndpoint {
                network: network_id.to_owned(),
                endpoint: endpoint_id.to_owned(),
            })
    }

    /// Deletes the link `name` if it exists; failures are logged (cleanup goes on).
    async fn delete_link_named(&self, name: &IfName) {
        let deleted = async {
            if let Some(index) = self.links.index(name).await? {
                self.links.delete(index).await?;
            }
            Ok::<_, LinkError>(())
        }
        .await;
        if let Err(err) = deleted {
            tracing::error!("could not delete {name}: {err}");
        }
    }

    /// Removes a member's rules and its vxcan pair (if the pair is still there).
    async fn remove_member(&mut self, endpoint: &Endpoint) -> Result<(), BusError> {
        if let Some(index) = self.links.index(&endpoint.host_end).await? {
            // Deleting the link takes its rules with it (can-gw drops the rules of an
            // interface that goes away): no dump of every rule per member.
            self.links.delete(index).await?;
        }
        Ok(())
    }
}
