//! The JSON bodies of Docker's remote network driver protocol, as Docker reads and writes them
//! (field names in PascalCase, as in moby's `drivers/remote/api`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    /// One host. A CAN bus made of vcan, vxcan and can-gw exists in one kernel.
    Local,
}

/// Answer to `/NetworkDriver.GetCapabilities`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CapabilitiesResponse {
    pub scope: Scope,
    pub connectivity_scope: Scope,
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
    /// The user's `-o` options, if any were given.
    pub fn generic_options(&self) -> Option<&Map<String, Value>> {
        self.options.as_ref()?.get(GENERIC_OPTIONS)?.as_object()
    }
}
