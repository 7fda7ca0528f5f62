//! The JSON bodies of Docker's remote network driver protocol, as Docker reads and writes them
//! (field names in PascalCase, as in moby's `drivers/remote/api`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bus::DevicePrefix;

/// Content type of every answer; Docker's plugin client sends it as `Accept`.
pub const CONTENT_TYPE: &str = "application/vnd.docker.plugins.v1.2+json";

/// Answer to `/Plugin.Activate`: the plugin subsystems this plugin implements.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ActivateResponse {
    pub implements: Vec<&'static str>,
}

/// Whether allocations (Scope) and connectivity (ConnectivityScope) span one host or a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// One host. A CAN bus made of vcan, vxcan and can-gw exists in one kernel, and its
    /// records are the host's own (`Scope`).
    Local,
    /// Many hosts. Declared as `ConnectivityScope` (with `Scope` local, as macvlan does), it
    /// makes a Swarm node's dockerd tell vxbus of the Swarm's nodes (DiscoverNew,
    /// DiscoverDelete), which `tunnel.peers=swarm` tunnels take as peers. Plain local
    /// networks work as before.
    Global,
}

/// Answer to `/NetworkDriver.GetCapabilities`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapabilitiesResponse {
    pub scope: Scope,
    pub connectivity_scope: Scope,
    /// Asks engines that know the call (Docker 28 and later) to send GwAllocCheck before
    /// CreateNetwork; older engines ignore the field.
    pub gw_alloc_checker: bool,
}

/// Answer to `/NetworkDriver.GwAllocCheck`: whether Docker should reserve no gateway address in
/// the network's IPv4 and IPv6 subnets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GwAllocCheckResponse {
    #[serde(rename = "SkipIPv4")]
    pub skip_ipv4: bool,
    #[serde(rename = "SkipIPv6")]
    pub skip_ipv6: bool,
}

/// Every error answer: Docker shows `Err` to the user.
#[derive(Debug, Serialize)]
pub struct ErrorResponse {
    #[serde(rename = "Err")]
    pub err: String,
}

/// The key under which Docker passes the user's `-o` options in CreateNetwork's `Options`.
pub const GENERIC_OPTIONS: &str = "com.docker.network.generic";

/// Body of `/NetworkDriver.CreateNetwork` (the fields vxbus reads; IPAM data is ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateNetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(default)]
    pub options: Option<Map<String, Value>>,
}

impl CreateNetworkRequest {
    /// The user's `-o` options, if any were given. Anything but an object there is refused
    /// (rather than read as "no options", which would make a default bus the user did not ask for).
    pub fn generic_options(&self) -> Result<Option<&Map<String, Value>>, String> {
        match self.options.as_ref().and_then(|o| o.get(GENERIC_OPTIONS)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(options)) => Ok(Some(options)),
            Some(other) => Err(format!(
                "Options.{GENERIC_OPTIONS} is `{other}`, not an object of `-o` options"
            )),
        }
    }
}

/// The IDs in the body of every endpoint call (CreateEndpoint, Join, Leave, DeleteEndpoint,
/// EndpointOperInfo). Their other fields (Docker's IPAM addresses, the sandbox key) mean nothing
/// to a CAN bus and are ignored; CreateEndpoint's options are read by [`CreateEndpointRequest`].
#[derive(Debug, Deserialize)]
pub struct EndpointRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
}

/// The endpoint option of Docker 28 and later that names the container's interface
/// (`docker run --network name=N,driver-opt=com.docker.network.endpoint.ifname=NAME`, Compose
/// `interface_name:`).
pub const IFNAME_OPTION: &str = "com.docker.network.endpoint.ifname";

/// Body of CreateEndpoint, beyond its IDs: the endpoint's options (Docker 28 puts a container's
/// `driver-opt`s there, beside its own keys).
#[derive(Debug, Deserialize)]
pub struct CreateEndpointRequest {
    #[serde(flatten)]
    pub ids: EndpointRequest,
    #[serde(rename = "Options", default)]
    pub options: Option<Map<String, Value>>,
}

impl CreateEndpointRequest {
    /// The interface name the container asked for, if it asked. Docker (28.5, and moby's
    /// remote driver since) passes a plugin driver's Join only a prefix, to which it appends an
    /// index, so the name is a [`DevicePrefix`], like a network's `device`: a value that is not
    /// a string, or not such a name, is refused, naming the option.
    pub fn interface_name(&self) -> Result<Option<DevicePrefix>, String> {
        match self.options.as_ref().and_then(|o| o.get(IFNAME_OPTION)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(name)) if name.is_empty() => Ok(None),
            Some(Value::String(name)) => name.parse().map(Some).map_err(|err| {
                format!(
                    "endpoint option {IFNAME_OPTION} (interface_name): `{name}` cannot name \
                     a CAN interface: {err} (Docker appends an index to it)"
                )
            }),
            Some(other) => Err(format!(
                "endpoint option {IFNAME_OPTION} (interface_name) is `{other}`, not a string"
            )),
        }
    }
}

/// The body of DiscoverNew and DiscoverDelete: `{"DiscoveryType": 1, "DiscoveryData":
/// {"Address": "10.0.0.2", "BindAddress": "...", "Self": false}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DiscoveryRequest {
    pub discovery_type: u32,
    /// What the notification is about; its shape depends on the type.
    #[serde(default)]
    pub discovery_data: Value,
}

/// The discovery type of a node joining or leaving (libnetwork's `NodeDiscovery`); the others
/// are overlay's encryption keys.
pub const NODE_DISCOVERY: u32 = 1;

/// `DiscoveryData` of a node: its address (the one it advertises to the Swarm), and whether it
/// is this node (then it is the data-path address).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeDiscoveryData {
    pub address: String,
    #[serde(default, rename = "Self")]
    pub is_self: bool,
}

/// The body of DeleteNetwork (and of the calls that name only a network).
#[derive(Debug, Deserialize)]
pub struct NetworkRequest {
    #[serde(rename = "NetworkID")]
    pub network_id: String,
}

/// An answer with nothing to say: `{}`. CreateEndpoint answers it too: Docker assigned the
/// endpoint's addresses itself, and a driver that answers an `Interface` then is refused.
#[derive(Debug, Serialize)]
pub struct EmptyResponse {}

/// The interface Join hands Docker: Docker moves `SrcName` into the container's namespace and
/// names it `DstPrefix` followed by the lowest free index. (The API has a `DstName` too, but the
/// engine's remote driver passes it on as empty, up to Docker 28.5 at least.)
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct InterfaceName {
    pub src_name: String,
    pub dst_prefix: String,
}

/// Answer to Join.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct JoinResponse {
    pub interface_name: InterfaceName,
    /// Always true: a CAN bus offers no IP gateway, and without this Docker gives a container
    /// whose networks offer none a `docker_gwbridge` veth (IP connectivity nobody asked for).
    pub disable_gateway_service: bool,
}

/// Answer to EndpointOperInfo.
#[derive(Debug, Serialize)]
pub struct EndpointInfoResponse {
    #[serde(rename = "Value")]
    pub value: std::collections::BTreeMap<&'static str, String>,
}
