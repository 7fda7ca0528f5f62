//! The network driver: what each Docker call means for the buses, applied to the kernel and
//! recorded in the state file, in that order, with every partial change undone on failure.
//!
//! Owns: the networks and endpoints vxbus made, the links and gateway rules that carry them, and
//! keeping the state file and the kernel in agreement (at every call and, through
//! [`Driver::start`], after a restart). Must not touch: Docker's wire format (the `docker` module
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

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, Context};
use serde_json::{Map, Value};
use tokio::sync::Mutex;

use crate::{
    bus::{BusSpec, OptionError},
    dataplane::{
        cangw::{CanGw, GwError, Rule},
        kernel::{self, CheckError, Missing},
        links::{CanTiming, Link, LinkError, Links, CANFD_MTU, CAN_MTU},
        mesh::BusLinks,
    },
    ifname::IfName,
    plugins::{
        proto::Bus,
        supervisor::{PluginError, Prepared, Supervisor},
    },
    state::{Endpoint, HostDevice, Network, State, StateFile},
};
use std::sync::Arc;

/// Name prefix of the vxcan end that stays on the host.
pub const HOST_END_PREFIX: &str = "vxbh";
/// Name prefix of the vxcan end Docker moves into the container.
pub const PEER_PREFIX: &str = "vxbc";
/// Name prefix of the vcan vxbus makes for a bus whose plugin needs a host-side interface and
/// that has no `host_device`; the network ID's first 10 hex digits follow.
pub const PLUGIN_HOST_PREFIX: &str = "vxbn";
/// How many hex digits of the endpoint ID follow the prefix (4 + 10 = 14 bytes).
const ID_DIGITS: usize = 10;

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
                BusError::Option(_) | BusError::HostDevice { .. } | BusError::BadEndpointId(_)
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

/// What Join tells Docker: the interface to move into the container and its name prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinInfo {
    pub src_name: IfName,
    pub dst_prefix: String,
}

/// The driver. Cheap to share: every call takes the one lock.
pub struct Driver {
    inner: Mutex<Inner>,
    plugins: Arc<Supervisor>,
}

struct Inner {
    state: State,
    file: StateFile,
    links: Links,
    gw: CanGw,
}

impl Driver {
    /// Loads the state, reconciles it with the kernel, and returns the driver ready to serve.
    /// A missing kernel module is logged (it fails each CreateNetwork until it is loaded), not
    /// fatal: the plugin must still enable so that `docker network create` can say what is wrong.
    pub async fn start(file: StateFile, plugins: Arc<Supervisor>) -> anyhow::Result<Driver> {
        let links = Links::connect().context("opening an rtnetlink connection")?;
        let gw = CanGw::open().context("opening a netlink socket for can-gw")?;
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
            file,
            links,
            gw,
        };
        let kernel_ok = match kernel::check(&inner.links, &mut inner.gw).await {
            Ok(()) => true,
            Err(CheckError::Missing(missing)) => {
                tracing::error!("{missing}; until then `docker network create` fails");
                false
            }
            Err(other) => return Err(other.into()),
        };
        inner.reconcile(kernel_ok).await?;
        Ok(Driver {
            inner: Mutex::new(inner),
            plugins,
        })
    }

    /// The networks and endpoints as recorded, for `vxbus networks`.
    pub async fn networks(&self) -> BTreeMap<String, Network> {
        self.inner.lock().await.state.networks.clone()
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
        let spec = BusSpec::from_options(options)?;
        let options = options.cloned().unwrap_or_default();
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
        let mut inner = self.inner.lock().await;
        if let Some(existing) = inner.state.networks.get(id) {
            if existing.options == options {
                tracing::info!("network {id} exists already with these options");
                return Ok(());
            }
            return Err(anyhow!("network {id} exists already with other options").into());
        }
        let inner = &mut *inner;
        kernel::check(&inner.links, &mut inner.gw).await?;
        // A plugin needs a host-side interface to open its CAN socket on: the host device, or
        // a vcan made for it.
        let host_name = match (&spec.host_device, &prepared) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(_)) => Some(plugin_host_name(id)?),
            (None, None) => None,
        };
        let host_device = match &host_name {
            None => None,
            Some(name) => {
                if let Some(owner) = inner.state.owner_of_link(name.as_str()) {
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
        let network = Network {
            options,
            host_device: host_device.clone(),
            endpoints: BTreeMap::new(),
        };
        inner.state.networks.insert(id.to_owned(), network);
        if let Err(err) = inner.save() {
            inner.state.networks.remove(id);
            if let Some(host) = host_device.filter(|host| host.created) {
                inner.delete_link_named(&host.name).await;
            }
            return Err(err);
        }
        if let (Some(prepared), Some(host)) = (prepared, &host_device) {
            let bus = bus_of(id, &spec, &host.name, prepared);
            if let Err(err) = self.plugins.start(&bus).await {
                tracing::warn!("network {id} not created: {err}");
                inner.undo_create(id).await;
                return Err(err.into());
            }
        }
        let host = match &host_device {
            Some(host) if host.created => format!(", host device {} created", host.name),
            Some(host) => format!(", bridged to host device {}", host.name),
            None => String::new(),
        };
        tracing::info!("network {id} created: {spec}{host}");
        Ok(())
    }

    pub async fn delete_network(&self, id: &str) -> Result<(), BusError> {
        let mut inner = self.inner.lock().await;
        let Some(network) = inner.state.networks.get(id).cloned() else {
            tracing::info!("network {id}: vxbus has no record of it; nothing to delete");
            return Ok(());
        };
        // The plugin first, while the bus it serves still exists.
        if let (Ok(spec), Some(host)) = (inner.spec(id), &network.host_device) {
            if let Some(request) = &spec.plugin {
                let prepared = Prepared::untyped(&request.driver, &request.options);
                self.plugins
                    .stop(&bus_of(id, &spec, &host.name, prepared))
                    .await;
            }
        }
        for (endpoint_id, endpoint) in &network.endpoints {
            tracing::warn!(
                "network {id} is deleted with endpoint {endpoint_id} still on it: removing it"
            );
            inner.remove_member(endpoint).await?;
        }
        if let Some(host) = &network.host_device {
            if let Some(index) = inner.links.index(&host.name).await? {
                inner.remove_rules_of(index)?;
            }
            if host.created {
                inner.delete_link_named(&host.name).await;
            }
        }
        inner.state.networks.remove(id);
        inner.save()?;
        tracing::info!("network {id} deleted");
        Ok(())
    }

    pub async fn create_endpoint(
        &self,
        network_id: &str,
        endpoint_id: &str,
    ) -> Result<(), BusError> {
        let (host_end, peer) = link_names(endpoint_id)?;
        let mut inner = self.inner.lock().await;
        let network = inner.network(network_id)?;
        if network.endpoints.contains_key(endpoint_id) {
            tracing::info!("endpoint {endpoint_id} exists already");
            return Ok(());
        }
        let spec = inner.spec(network_id)?;
        for name in [&host_end, &peer] {
            if let Some(owner) = inner.state.owner_of_link(name.as_str()) {
                return Err(anyhow!(
                    "endpoint {endpoint_id}'s link name {name} is taken by network {owner}"
                )
                .into());
            }
            if inner.links.get(name).await?.is_some() {
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
            inner.sync_bus(network_id).await?;
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
        tracing::info!(
            "endpoint {endpoint_id} joins: Docker moves {} into the container as {}<n>",
            endpoint.peer,
            spec.device.as_str()
        );
        Ok(JoinInfo {
            src_name: endpoint.peer,
            dst_prefix: spec.device.as_str().to_owned(),
        })
    }

    pub async fn leave(&self, network_id: &str, endpoint_id: &str) -> Result<(), BusError> {
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

/// The names of endpoint `id`'s vxcan pair: (host end, peer).
fn link_names(id: &str) -> Result<(IfName, IfName), BusError> {
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

/// Whether `link` is a vxcan end named like vxbus's own.
fn is_ours_by_name(link: &Link) -> bool {
    link.kind.as_deref() == Some("vxcan")
        && [HOST_END_PREFIX, PEER_PREFIX].iter().any(|prefix| {
            link.name.strip_prefix(prefix).is_some_and(|rest| {
                rest.len() == ID_DIGITS && rest.bytes().all(|b| b.is_ascii_hexdigit())
            })
        })
}

/// The name of the vcan made for network `id`'s plugin.
fn plugin_host_name(id: &str) -> Result<IfName, BusError> {
    id.get(..ID_DIGITS)
        .filter(|digits| digits.bytes().all(|b| b.is_ascii_hexdigit()))
        .and_then(|digits| format!("{PLUGIN_HOST_PREFIX}{digits}").parse().ok())
        .ok_or_else(|| anyhow!("network ID `{id}` is not the hex ID Docker gives networks").into())
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
    /// Takes back a network just created (its plugin refused it): its host device if vxbus
    /// made it, and its state entry.
    async fn undo_create(&mut self, id: &str) {
        if let Some(network) = self.state.networks.remove(id) {
            if let Some(host) = network.host_device.filter(|host| host.created) {
                self.delete_link_named(&host.name).await;
            }
        }
        if let Err(err) = self.save() {
            tracing::error!("network {id}: undoing its creation: {err}");
        }
    }

    fn save(&self) -> Result<(), BusError> {
        self.file.save(&self.state).map_err(BusError::Failed)
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

    /// Makes `name` ready to be the bus's host device: found (a CAN interface, configured if it is
    /// a controller) or created (a vcan). Undoes its own changes on failure.
    async fn prepare_host_device(
        &mut self,
        name: &IfName,
        spec: &BusSpec,
    ) -> Result<HostDevice, BusError> {
        let refuse = |reason: String| BusError::HostDevice {
            name: name.clone(),
            reason,
        };
        let Some(link) = self.links.get(name).await? else {
            let index = self
                .links
                .add_vcan(name)
                .await
                .map_err(|err| err.or_missing::<BusError>("vcan"))?;
            let mtu = if spec.fd { CANFD_MTU } else { CAN_MTU };
            let configured = async {
                self.links.set_mtu(index, mtu).await?;
                self.links.set_up(index).await
            }
            .await;
            if let Err(err) = configured {
                self.delete_link_named(name).await;
                return Err(err.into());
            }
            return Ok(HostDevice {
                name: name.clone(),
                created: true,
            });
        };
        if !link.is_can {
            return Err(refuse(format!(
                "exists and is not a CAN interface (kind {}): name a CAN interface, or a name \
                 that does not exist yet for vxbus to create a vcan",
                link.kind.as_deref().unwrap_or("unknown")
            )));
        }
        if link.is_can_controller() {
            self.configure_controller(&link, spec)
                .await
                .map_err(|err| {
                    refuse(format!(
                        "is a CAN controller that refused its settings: {err:#}"
                    ))
                })?;
        } else if !link.up {
            self.links.set_up(link.index).await?;
            tracing::info!(
                "brought the existing {} {name} up",
                link.kind.as_deref().unwrap_or("CAN interface")
            );
        }
        Ok(HostDevice {
            name: name.clone(),
            created: false,
        })
    }

    /// Applies the bus's bit rates and queue length to a CAN controller, which takes them only
    /// while down; it is brought up again (or, if setting them failed, back to how it was).
    async fn configure_controller(&self, link: &Link, spec: &BusSpec) -> anyhow::Result<()> {
        let timing = CanTiming {
            bitrate: spec.bitrate.map(|rate| rate.get()),
            data_bitrate: spec.data_bitrate.map(|rate| rate.get()),
            fd: spec.data_bitrate.map(|_| true),
        };
        let changes = timing.bitrate.is_some() || timing.data_bitrate.is_some();
        if !changes && spec.txqueuelen.is_none() {
            if !link.up {
                self.links.set_up(link.index).await?;
            }
            return Ok(());
        }
        if link.up {
            self.links.set_down(link.index).await?;
        }
        let applied = async {
            if changes {
                self.links.set_can_timing(link.index, timing).await?;
            }
            if let Some(len) = spec.txqueuelen {
                self.links.set_txqueuelen(link.index, len).await?;
            }
            self.links.set_up(link.index).await
        }
        .await;
        if applied.is_err() {
            // The kernel applies a CAN change item by item, so a refused one can leave an
            // earlier one applied (a bit rate before a refused FD mode): put back what was.
            if let (Some(bitrate), true) = (link.can_bitrate.filter(|&rate| rate > 0), changes) {
                let before = CanTiming {
                    bitrate: Some(bitrate),
                    data_bitrate: None,
                    fd: None,
                };
                let _ = self.links.set_can_timing(link.index, before).await;
            }
            if link.up {
                let _ = self.links.set_up(link.index).await;
            }
        }
        applied?;
        let queue = spec
            .txqueuelen
            .map(|len| format!(" txqueuelen {len}"))
            .unwrap_or_default();
        tracing::info!("configured CAN controller {}: {timing}{queue}", link.name);
        Ok(())
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
            self.remove_rules_of(index)?;
            self.links.delete(index).await?;
        }
        Ok(())
    }

    /// Removes every rule into or out of link `index` (the kernel would remove them with the
    /// link, but a link that stays, such as a found host device, keeps its rules otherwise).
    fn remove_rules_of(&mut self, index: u32) -> Result<(), BusError> {
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
    async fn bus_links(&self, id: &str) -> Result<BusLinks, BusError> {
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
    async fn sync_bus(&mut self, id: &str) -> Result<(), BusError> {
        let bus = self.bus_links(id).await?;
        let (added, removed) = self.sync_rules(&[bus])?;
        tracing::debug!("network {id}: {added} rule(s) added, {removed} removed");
        Ok(())
    }

    /// Makes the kernel's rules whose two ends are both links of `buses` exactly the union of
    /// their meshes: missing rules added, others (and duplicates) removed. Returns the counts.
    fn sync_rules(&mut self, buses: &[BusLinks]) -> Result<(usize, usize), BusError> {
        let mut desired: BTreeSet<Rule> = BTreeSet::new();
        let mut ours = BTreeSet::new();
        for bus in buses {
            desired.extend(bus.rules());
            ours.extend(bus.indexes());
        }
        let mut present = BTreeSet::new();
        let mut removed = 0;
        for stats in self.gw.list()? {
            let rule = stats.rule;
            if !(ours.contains(&rule.src) && ours.contains(&rule.dst)) {
                continue;
            }
            if desired.contains(&rule) && present.insert(rule) {
                continue;
            }
            self.gw.remove(rule)?;
            removed += 1;
        }
        let mut added = 0;
        for rule in desired.difference(&present) {
            self.gw.add(*rule)?;
            added += 1;
        }
        Ok((added, removed))
    }

    /// After a restart: brings the kernel back in line with the state file (recreating the host
    /// devices vxbus made, forgetting endpoints whose containers are gone, deleting orphan
    /// vxcan pairs, fixing the rules), then records the result.
    async fn reconcile(&mut self, kernel_ok: bool) -> anyhow::Result<()> {
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
        for link in self.links.list().await? {
            if is_ours_by_name(&link) && self.state.owner_of_link(&link.name).is_none() {
                tracing::info!("deleting {}, an orphan vxcan of an earlier run", link.name);
                self.links.delete(link.index).await?;
                orphans += 1;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn only_vxcan_ends_named_like_ours_are_ours() {
        let link = |name: &str, kind: &str| Link {
            index: 1,
            name: name.into(),
            kind: Some(kind.into()),
            is_can: true,
            up: true,
            can_bitrate: None,
        };
        assert!(is_ours_by_name(&link("vxbh3f2a9c81d0", "vxcan")));
        assert!(is_ours_by_name(&link("vxbc3f2a9c81d0", "vxcan")));
        assert!(!is_ours_by_name(&link("vxbh3f2a9c81d0", "vcan")));
        assert!(!is_ours_by_name(&link("vxbhost", "vxcan")));
        assert!(!is_ours_by_name(&link("vxcan0", "vxcan")));
    }
}
