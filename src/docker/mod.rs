//! Docker's remote network driver protocol, served as HTTP on the plugin's Unix socket.
//!
//! Owns: the wire format (paths, JSON bodies, `{"Err": ...}` answers and their HTTP status,
//! the content type) and the dispatch of each call. Must not touch: the kernel or the on-disk
//! state; the driver reaches those through the data plane and state modules.
//!
//! Docker posts to `/Plugin.Activate` and `/NetworkDriver.<Call>` without a `Content-Type`
//! header, so bodies are read as bytes and parsed here, never with axum's `Json` extractor.

mod api;

use axum::{
    body::Bytes,
    http::{header, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use serde::Serialize;

pub use api::{
    ActivateResponse, CapabilitiesResponse, CreateNetworkRequest, ErrorResponse, Scope,
    CONTENT_TYPE, GENERIC_OPTIONS,
};

use crate::bus::{BusSpec, OptionError};

/// The calls of the remote network driver protocol that this release does not serve yet.
/// Each answers with [`DriverError::NotImplemented`] naming itself.
pub const PENDING_CALLS: &[&str] = &[
    "DeleteNetwork",
    "AllocateNetwork",
    "FreeNetwork",
    "CreateEndpoint",
    "EndpointOperInfo",
    "DeleteEndpoint",
    "Join",
    "Leave",
    "DiscoverNew",
    "DiscoverDelete",
    "ProgramExternalConnectivity",
    "RevokeExternalConnectivity",
];

/// A call the driver refuses; Docker shows the message to the user.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A call of the protocol that this release does not serve yet. Docker prefixes the
    /// message with the call's name (`NetworkDriver.CreateNetwork: ...`), so it does not repeat it.
    #[error(
        "not implemented yet in vxbus {version}: this release answers Docker's handshake and \
         validates network options, but does not create buses yet",
        version = crate::VERSION
    )]
    NotImplemented { call: &'static str },
    /// A body that is not the JSON the call takes.
    #[error("malformed {call} request: {reason}")]
    BadRequest { call: &'static str, reason: String },
    /// A network option the user gave is refused; the message names it.
    #[error(transparent)]
    Option(#[from] OptionError),
    /// A path that is not part of the protocol at all.
    #[error("vxbus does not serve {path}: it is not a call of Docker's network driver protocol")]
    UnknownCall { path: String },
}

impl DriverError {
    fn status(&self) -> StatusCode {
        match self {
            DriverError::NotImplemented { .. } => StatusCode::NOT_IMPLEMENTED,
            DriverError::BadRequest { .. } | DriverError::Option(_) => StatusCode::BAD_REQUEST,
            // Docker tolerates a 404 for optional calls (ProgramExternalConnectivity).
            DriverError::UnknownCall { .. } => StatusCode::NOT_FOUND,
        }
    }
}

impl IntoResponse for DriverError {
    fn into_response(self) -> Response {
        let status = self.status();
        reply(
            status,
            &ErrorResponse {
                err: self.to_string(),
            },
        )
    }
}

/// Serializes `body` as the protocol's JSON with its content type.
fn reply<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(json) => (status, [(header::CONTENT_TYPE, CONTENT_TYPE)], json).into_response(),
        Err(err) => {
            tracing::error!("cannot encode an answer to Docker: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "vxbus: cannot encode the answer",
            )
                .into_response()
        }
    }
}

/// The router that serves Docker's plugin protocol.
pub fn router() -> Router {
    let mut router = Router::new()
        .route("/Plugin.Activate", post(activate))
        .route("/NetworkDriver.GetCapabilities", post(get_capabilities))
        .route("/NetworkDriver.CreateNetwork", post(create_network));
    for &call in PENDING_CALLS {
        router = router.route(
            &format!("/NetworkDriver.{call}"),
            post(move |body: Bytes| not_implemented(call, body)),
        );
    }
    router.fallback(unknown_call)
}

async fn activate() -> Response {
    tracing::info!("Docker activated the plugin");
    reply(
        StatusCode::OK,
        &ActivateResponse {
            implements: vec!["NetworkDriver"],
        },
    )
}

async fn get_capabilities() -> Response {
    tracing::debug!("Docker asked for the driver's capabilities");
    let capabilities = CapabilitiesResponse {
        scope: Scope::Local,
        connectivity_scope: Scope::Local,
    };
    reply(StatusCode::OK, &capabilities)
}

/// Validates the network's options, so a bad one is refused naming it; creating the bus itself
/// is not implemented yet.
async fn create_network(body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "CreateNetwork";
    let request: CreateNetworkRequest =
        serde_json::from_slice(&body).map_err(|err| DriverError::BadRequest {
            call: CALL,
            reason: err.to_string(),
        })?;
    let spec = BusSpec::from_options(request.generic_options()).inspect_err(|err| {
        tracing::warn!("refused network {}: {err}", request.network_id);
    })?;
    tracing::info!("network {}: options valid: {spec}", request.network_id);
    Err(not_implemented(CALL, body).await)
}

async fn not_implemented(call: &'static str, body: Bytes) -> DriverError {
    let error = DriverError::NotImplemented { call };
    tracing::warn!(body = %String::from_utf8_lossy(&body), "refused NetworkDriver.{call}: {error}");
    error
}

async fn unknown_call(uri: Uri) -> DriverError {
    let error = DriverError::UnknownCall {
        path: uri.path().to_owned(),
    };
    tracing::warn!("{error}");
    error
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    /// Posts `body` to `path` the way Docker's plugin client does (no Content-Type).
    async fn post(path: &str, body: &str) -> (StatusCode, Option<String>, Value) {
        let request = Request::post(path)
            .header(header::ACCEPT, CONTENT_TYPE)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!(
                "{path} answered with non-JSON {:?}: {err}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, content_type, json)
    }

    #[tokio::test]
    async fn activate_declares_a_network_driver() {
        let (status, content_type, body) = post("/Plugin.Activate", "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE));
        assert_eq!(body, json!({"Implements": ["NetworkDriver"]}));
    }

    #[tokio::test]
    async fn capabilities_are_local_in_both_scopes() {
        let (status, _, body) = post("/NetworkDriver.GetCapabilities", "null").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"Scope": "local", "ConnectivityScope": "local"})
        );
    }

    #[tokio::test]
    async fn every_pending_call_answers_not_implemented_yet() {
        for call in PENDING_CALLS {
            let (status, content_type, body) =
                post(&format!("/NetworkDriver.{call}"), r#"{"NetworkID":"n1"}"#).await;
            assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{call}");
            assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "{call}");
            let err = body["Err"]
                .as_str()
                .unwrap_or_else(|| panic!("{call}: no Err in {body}"));
            assert!(
                err.starts_with("not implemented yet in vxbus "),
                "{call}: {err}"
            );
            assert_eq!(
                body.as_object().unwrap().len(),
                1,
                "{call}: only Err expected in {body}"
            );
        }
    }

    #[tokio::test]
    async fn create_network_refuses_a_bad_option_naming_it() {
        let body = r#"{"NetworkID":"n1","Options":{"com.docker.network.generic":{"device":"ecu","baudrate":"fast"}},"IPv4Data":[{"AddressSpace":"LocalDefault","Pool":"172.18.0.0/16"}]}"#;
        let (status, _, body) = post("/NetworkDriver.CreateNetwork", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let err = body["Err"].as_str().unwrap();
        assert!(
            err.starts_with("option `baudrate`: `fast` is not allowed"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn create_network_with_valid_options_is_not_implemented_yet() {
        for body in [
            r#"{"NetworkID":"n1","Options":{"com.docker.network.generic":{"device":"ecu","baudrate":"500000"}}}"#,
            r#"{"NetworkID":"n1","Options":{"com.docker.network.enable_ipv6":false}}"#,
            r#"{"NetworkID":"n1"}"#,
        ] {
            let (status, _, answer) = post("/NetworkDriver.CreateNetwork", body).await;
            assert_eq!(status, StatusCode::NOT_IMPLEMENTED, "{body}");
            assert!(
                answer["Err"]
                    .as_str()
                    .unwrap()
                    .starts_with("not implemented yet"),
                "{answer}"
            );
        }
    }

    #[tokio::test]
    async fn create_network_refuses_a_malformed_body() {
        for body in ["", "{", r#"{"Options":{}}"#] {
            let (status, _, answer) = post("/NetworkDriver.CreateNetwork", body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
            let err = answer["Err"].as_str().unwrap();
            assert!(
                err.starts_with("malformed CreateNetwork request: "),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn unknown_paths_are_404_with_an_error() {
        for path in ["/NetworkDriver.Nope", "/VolumeDriver.Create", "/"] {
            let (status, _, body) = post(path, "{}").await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            let err = body["Err"].as_str().unwrap();
            assert!(err.contains(path) && err.contains("not a call"), "{err}");
        }
    }
}
