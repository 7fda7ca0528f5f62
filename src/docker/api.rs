//! The JSON bodies of Docker's remote network driver protocol, as Docker reads and writes them
//! (field names in PascalCase, as in moby's `drivers/remote/api`).

use serde::Serialize;

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
