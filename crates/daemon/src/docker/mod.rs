//! Docker's remote network driver protocol, served as HTTP on the plugin's Unix socket.
//!
//! Owns: the wire format (paths, JSON bodies, `{"Err": ...}` answers and their HTTP status,
//! the content type) and the dispatch of each call. Must not touch: the kernel or the on-disk
//! state; the driver reaches those through the data plane and state modules.
//!
//! Docker posts to `/Plugin.Activate` and `/NetworkDriver.<Call>` without a `Content-Type`
//! header, so bodies are read as bytes and parsed here, never with axum's `Json` extractor.

pub mod api;

use std::{net::IpAddr, sync::Arc};

use axum::{
    body::Bytes,
    extract::State,
    http::{header, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use serde::{de::DeserializeOwned, Serialize};

pub use api::{
    ActivateResponse, CapabilitiesResponse, CreateEndpointRequest, CreateNetworkRequest,
    DiscoveryRequest, EmptyResponse, EndpointInfoResponse, EndpointRequest, ErrorResponse,
    GwAllocCheckResponse, InterfaceName, JoinResponse, NetworkRequest, NodeDiscoveryData, Scope,
    CONTENT_TYPE, GENERIC_OPTIONS, IFNAME_OPTION, NODE_DISCOVERY,
};

use crate::driver::{BusError, Driver, NodeChange};

/// Calls a CAN driver answers with an empty success: external connectivity (a CAN bus has no
/// ports to publish), and the global-scope network allocation Docker sends only to a driver
/// whose `Scope` is global.
pub const NOTHING_TO_DO: &[&str] = &[
    "ProgramExternalConnectivity",
    "RevokeExternalConnectivity",
    "AllocateNetwork",
    "FreeNetwork",
];

/// A call the driver refuses or fails; Docker shows the message to the user, prefixed with the
/// call's name (`NetworkDriver.CreateNetwork: ...`).
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A body that is not the JSON the call takes.
    #[error("malformed {call} request: {reason}")]
    BadRequest { call: &'static str, reason: String },
    /// The driver refused or failed the call; the message says why.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// A path that is not part of the protocol at all.
    #[error("vxbus does not serve {path}: it is not a call of Docker's network driver protocol")]
    UnknownCall { path: String },
}

impl DriverError {
    fn status(&self) -> StatusCode {
        match self {
            DriverError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            DriverError::Bus(error) if error.is_refusal() => StatusCode::BAD_REQUEST,
            DriverError::Bus(_) => StatusCode::INTERNAL_SERVER_ERROR,
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

fn ok<T: Serialize>(body: &T) -> Response {
    reply(StatusCode::OK, body)
}

/// Logs the whole body of `call` at debug level: what an engine version sends is the first
/// question when it misbehaves.
fn log_body(call: &str, body: &Bytes) {
    tracing::debug!("Docker sent {call}: {}", String::from_utf8_lossy(body));
}

/// Parses the body of `call`, which Docker sends without a Content-Type (and logs it).
fn parse<T: DeserializeOwned>(call: &'static str, body: &Bytes) -> Result<T, DriverError> {
    log_body(call, body);
    serde_json::from_slice(body).map_err(|err| DriverError::BadRequest {
        call,
        reason: err.to_string(),
    })
}

/// Logs a failed call (a refusal is the user's to fix: a warning; a failure: an error).
fn logged(call: &'static str, subject: &str, error: DriverError) -> DriverError {
    match error.status() {
        StatusCode::INTERNAL_SERVER_ERROR => tracing::error!("{call} {subject} failed: {error}"),
        _ => tracing::warn!("{call} {subject} refused: {error}"),
    }
    error
}

type Shared = State<Arc<Driver>>;

/// The router that serves Docker's plugin protocol with `driver`.
pub fn router(driver: Arc<Driver>) -> Router {
    let mut router = Router::new()
        .route("/Plugin.Activate", post(activate))
        .route("/NetworkDriver.GetCapabilities", post(get_capabilities))
        .route("/NetworkDriver.GwAllocCheck", post(gw_alloc_check))
        .route("/NetworkDriver.CreateNetwork", post(create_network))
        .route("/NetworkDriver.DeleteNetwork", post(delete_network))
        .route("/NetworkDriver.CreateEndpoint", post(create_endpoint))
        .route("/NetworkDriver.EndpointOperInfo", post(endpoint_oper_info))
        .route("/NetworkDriver.DeleteEndpoint", post(delete_endpoint))
        .route("/NetworkDriver.Join", post(join))
        .route("/NetworkDriver.Leave", post(leave))
        .route("/NetworkDriver.DiscoverNew", post(discover_new))
        .route("/NetworkDriver.DiscoverDelete", post(discover_delete));
    for &call in NOTHING_TO_DO {
        router = router.route(
            &format!("/NetworkDriver.{call}"),
            post(move || async move {
                tracing::debug!("{call}: nothing to do for a local CAN bus");
                ok(&EmptyResponse {})
            }),
        );
    }
    router.fallback(unknown_call).with_state(driver)
}

async fn activate() -> Response {
    tracing::info!("Docker activated the plugin");
    ok(&ActivateResponse {
        implements: vec!["NetworkDriver"],
    })
}

async fn get_capabilities() -> Response {
    tracing::debug!("Docker asked for the driver's capabilities");
    ok(&CapabilitiesResponse {
        scope: Scope::Local,
        connectivity_scope: Scope::Global,
        gw_alloc_checker: true,
    })
}

/// A CAN bus routes no IP, so no member is anyone's gateway: Docker 28 and later then reserve no
/// gateway address for a vxbus network.
async fn gw_alloc_check(body: Bytes) -> Response {
    log_body("GwAllocCheck", &body);
    ok(&GwAllocCheckResponse {
        skip_ipv4: true,
        skip_ipv6: true,
    })
}

async fn create_network(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "CreateNetwork";
    let request: CreateNetworkRequest = parse(CALL, &body)?;
    let id = &request.network_id;
    let options = request.generic_options().map_err(|reason| {
        logged(
            CALL,
            &format!("of network {id}"),
            DriverError::BadRequest { call: CALL, reason },
        )
    })?;
    let (owned_id, options) = (id.clone(), options.cloned());
    to_the_end(async move { driver.create_network(&owned_id, options.as_ref()).await })
        .await
        .map_err(|err| logged(CALL, &format!("of network {id}"), err.into()))?;
    Ok(ok(&EmptyResponse {}))
}

/// Runs a driver call to its end in a task of its own: if Docker gives up on the request (the
/// connection closes, and the handler's future is dropped), the call still finishes or undoes
/// itself, rather than stopping half way with the kernel and the state apart.
async fn to_the_end<T: Send + 'static>(
    call: impl std::future::Future<Output = Result<T, BusError>> + Send + 'static,
) -> Result<T, BusError> {
    tokio::spawn(call).await.unwrap_or_else(|err| {
        Err(BusError::Failed(anyhow::anyhow!(
            "the driver's task failed: {err}"
        )))
    })
}

async fn delete_network(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "DeleteNetwork";
    let request: NetworkRequest = parse(CALL, &body)?;
    let id = &request.network_id;
    let owned_id = id.clone();
    to_the_end(async move { driver.delete_network(&owned_id).await })
        .await
        .map_err(|err| logged(CALL, &format!("of network {id}"), err.into()))?;
    Ok(ok(&EmptyResponse {}))
}

async fn discover_new(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    discovered("DiscoverNew", &driver, &body, NodeChange::Joined).await
}

async fn discover_delete(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    discovered("DiscoverDelete", &driver, &body, NodeChange::Left).await
}

/// A Swarm node joined or left (node discovery); other discovery types are not vxbus's.
async fn discovered(
    call: &'static str,
    driver: &Driver,
    body: &Bytes,
    change: fn(IpAddr) -> NodeChange,
) -> Result<Response, DriverError> {
    let request: DiscoveryRequest = parse(call, body)?;
    if request.discovery_type != NODE_DISCOVERY {
        return Ok(ok(&EmptyResponse {}));
    }
    let bad = |reason: String| logged(call, "", DriverError::BadRequest { call, reason });
    let node: NodeDiscoveryData =
        serde_json::from_value(request.discovery_data).map_err(|err| bad(err.to_string()))?;
    let ip: IpAddr = node.address.parse().map_err(|_| {
        bad(format!(
            "node address `{}` is not an IP address",
            node.address
        ))
    })?;
    tracing::debug!(
        "{call}: Swarm node {ip}{}",
        if node.is_self { " (this node)" } else { "" }
    );
    driver
        .swarm_node(change(ip))
        .await
        .map_err(|err| logged(call, &format!("of node {ip}"), err.into()))?;
    Ok(ok(&EmptyResponse {}))
}

/// Parses an endpoint call's IDs, and names them for logs.
fn endpoint_request(
    call: &'static str,
    body: &Bytes,
) -> Result<(EndpointRequest, String), DriverError> {
    let request: EndpointRequest = parse(call, body)?;
    let subject = endpoint_subject(&request);
    Ok((request, subject))
}

fn endpoint_subject(request: &EndpointRequest) -> String {
    format!(
        "of endpoint {} on network {}",
        request.endpoint_id, request.network_id
    )
}

async fn create_endpoint(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "CreateEndpoint";
    let request: CreateEndpointRequest = parse(CALL, &body)?;
    let subject = endpoint_subject(&request.ids);
    let ifname = request
        .interface_name()
        .map_err(|reason| logged(CALL, &subject, BusError::EndpointOption(reason).into()))?;
    let ids = request.ids;
    to_the_end(async move {
        driver
            .create_endpoint(&ids.network_id, &ids.endpoint_id, ifname)
            .await
    })
    .await
    .map_err(|err| logged(CALL, &subject, err.into()))?;
    Ok(ok(&EmptyResponse {}))
}

async fn endpoint_oper_info(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "EndpointOperInfo";
    let (request, subject) = endpoint_request(CALL, &body)?;
    let value = driver
        .endpoint_info(&request.network_id, &request.endpoint_id)
        .await
        .map_err(|err| logged(CALL, &subject, err.into()))?;
    Ok(ok(&EndpointInfoResponse { value }))
}

async fn delete_endpoint(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "DeleteEndpoint";
    let (request, subject) = endpoint_request(CALL, &body)?;
    to_the_end(async move {
        driver
            .delete_endpoint(&request.network_id, &request.endpoint_id)
            .await
    })
    .await
    .map_err(|err| logged(CALL, &subject, err.into()))?;
    Ok(ok(&EmptyResponse {}))
}

async fn join(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "Join";
    let (request, subject) = endpoint_request(CALL, &body)?;
    let info =
        to_the_end(async move { driver.join(&request.network_id, &request.endpoint_id).await })
            .await
            .map_err(|err| logged(CALL, &subject, err.into()))?;
    Ok(ok(&JoinResponse {
        interface_name: InterfaceName {
            src_name: info.src_name.to_string(),
            dst_prefix: info.dst_prefix,
        },
        disable_gateway_service: true,
    }))
}

async fn leave(State(driver): Shared, body: Bytes) -> Result<Response, DriverError> {
    const CALL: &str = "Leave";
    let (request, subject) = endpoint_request(CALL, &body)?;
    to_the_end(async move {
        driver
            .leave(&request.network_id, &request.endpoint_id)
            .await
    })
    .await
    .map_err(|err| logged(CALL, &subject, err.into()))?;
    Ok(ok(&EmptyResponse {}))
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
    use crate::{bus::DevicePrefix, state::StateFile};
    use axum::{body::Body, http::Request};
    use http_body_util::BodyExt;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    /// A real driver on a temporary state directory. Needs CAP_NET_ADMIN (netlink), not CAN:
    /// these tests cover the wire format and the calls that never reach the data plane.
    async fn driver() -> (Arc<Driver>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let plugins = crate::supervisor::Supervisor::new(crate::supervisor::SupervisorConfig {
            bundled_dir: dir.path().join("plugins"),
            state_dir: dir.path().to_owned(),
            socket_dir: dir.path().join("sockets"),
            start_timeout: std::time::Duration::from_secs(1),
            restart_backoff: crate::supervisor::DEFAULT_RESTART_BACKOFF,
        });
        let driver = Driver::start(StateFile::in_dir(dir.path()), plugins)
            .await
            .unwrap();
        (Arc::new(driver), dir)
    }

    /// Posts `body` to `path` the way Docker's plugin client does (no Content-Type).
    async fn post(path: &str, body: &str) -> (StatusCode, Option<String>, Value) {
        let (driver, _dir) = driver().await;
        let request = Request::post(path)
            .header(header::ACCEPT, CONTENT_TYPE)
            .body(Body::from(body.to_owned()))
            .unwrap();
        let response = router(driver).oneshot(request).await.unwrap();
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
    async fn swarm_nodes_are_recorded_as_docker_reports_them() {
        let (driver, dir) = driver().await;
        let call = |path: &str, body: &str| {
            let request = Request::post(path)
                .body(Body::from(body.to_owned()))
                .unwrap();
            let router = router(driver.clone());
            async move { router.oneshot(request).await.unwrap().status() }
        };
        let recorded = || {
            let state = StateFile::in_dir(dir.path()).load().unwrap();
            state
                .swarm_nodes
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let node = |ip: &str, me: bool| {
            format!(
                r#"{{"DiscoveryType":1,"DiscoveryData":{{"Address":"{ip}","BindAddress":"0.0.0.0","Self":{me}}}}}"#
            )
        };
        for (ip, me) in [
            ("10.99.0.1", true),
            ("10.99.0.2", false),
            ("10.99.0.2", false),
        ] {
            let status = call("/NetworkDriver.DiscoverNew", &node(ip, me)).await;
            assert_eq!(status, StatusCode::OK);
        }
        assert_eq!(recorded(), ["10.99.0.1", "10.99.0.2"]);
        let status = call("/NetworkDriver.DiscoverDelete", &node("10.99.0.2", false)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(recorded(), ["10.99.0.1"]);
        // Overlay's encryption keys are not vxbus's business; a node without an IP is refused.
        let keys = r#"{"DiscoveryType":2,"DiscoveryData":{"Keys":[]}}"#;
        assert_eq!(
            call("/NetworkDriver.DiscoverNew", keys).await,
            StatusCode::OK
        );
        let status = call("/NetworkDriver.DiscoverNew", &node("node-1", false)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(recorded(), ["10.99.0.1"]);
    }

    #[tokio::test]
    async fn capabilities_keep_records_local_hear_of_swarm_nodes_and_ask_for_the_gateway_check() {
        let (status, _, body) = post("/NetworkDriver.GetCapabilities", "null").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"Scope": "local", "ConnectivityScope": "global", "GwAllocChecker": true})
        );
    }

    #[tokio::test]
    async fn no_gateway_address_is_reserved_on_a_can_bus() {
        let request = r#"{"Options":{"com.docker.network.generic":{"device":"ecu"}}}"#;
        let (status, _, body) = post("/NetworkDriver.GwAllocCheck", request).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, json!({"SkipIPv4": true, "SkipIPv6": true}));
    }

    #[tokio::test]
    async fn calls_with_nothing_to_do_answer_an_empty_success() {
        for call in NOTHING_TO_DO {
            let (status, content_type, body) =
                post(&format!("/NetworkDriver.{call}"), r#"{"NetworkID":"n1"}"#).await;
            assert_eq!(status, StatusCode::OK, "{call}");
            assert_eq!(content_type.as_deref(), Some(CONTENT_TYPE), "{call}");
            assert_eq!(body, json!({}), "{call}");
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
    async fn create_network_refuses_options_that_are_not_an_object() {
        for generic in [r#""device=ecu""#, "[]", "7"] {
            let body = format!(
                r#"{{"NetworkID":"n1","Options":{{"com.docker.network.generic":{generic}}}}}"#
            );
            let (status, _, answer) = post("/NetworkDriver.CreateNetwork", &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{generic}");
            let err = answer["Err"].as_str().unwrap();
            assert_eq!(
                err,
                format!(
                    "malformed CreateNetwork request: Options.com.docker.network.generic is \
                     `{generic}`, not an object of `-o` options"
                )
            );
        }
        // No options at all (or null) is a default bus, as before.
        let (status, _, _) = post(
            "/NetworkDriver.CreateNetwork",
            r#"{"NetworkID":"n2","Options":{"com.docker.network.generic":null}}"#,
        )
        .await;
        assert_ne!(status, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn deleting_what_vxbus_does_not_know_succeeds() {
        // Docker retries deletes after restarts; what is already gone is not an error.
        let (status, _, body) = post("/NetworkDriver.DeleteNetwork", r#"{"NetworkID":"n1"}"#).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
        let ids = r#"{"NetworkID":"n1","EndpointID":"0123456789abcdef"}"#;
        let (status, _, body) = post("/NetworkDriver.DeleteEndpoint", ids).await;
        assert_eq!((status, body), (StatusCode::OK, json!({})));
    }

    #[tokio::test]
    async fn endpoint_calls_on_an_unknown_network_say_so() {
        let ids = r#"{"NetworkID":"n1","EndpointID":"0123456789abcdef","Interface":{"Address":"172.18.0.2/16"}}"#;
        for call in ["CreateEndpoint", "Join", "Leave", "EndpointOperInfo"] {
            let (status, _, body) = post(&format!("/NetworkDriver.{call}"), ids).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{call}");
            let err = body["Err"].as_str().unwrap();
            assert!(
                err.starts_with("vxbus has no record of network n1"),
                "{call}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_bad_interface_name_is_refused_naming_the_option_before_anything_is_made() {
        for (value, reason) in [
            (r#""ecu/body""#, "contains '/'"),
            (
                r#""name_of_15_byte""#,
                "15 bytes long, over the limit of 14",
            ),
            (r#""..""#, "`.` and `..` are not interface names"),
            ("7", "is `7`, not a string"),
        ] {
            let body = format!(
                r#"{{"NetworkID":"n1","EndpointID":"0123456789abcdef","Options":{{"{IFNAME_OPTION}":{value}}}}}"#
            );
            let (status, _, answer) = post("/NetworkDriver.CreateEndpoint", &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{value}");
            let err = answer["Err"].as_str().unwrap();
            assert!(
                err.starts_with(&format!("endpoint option {IFNAME_OPTION} (interface_name)")),
                "{err}"
            );
            assert!(err.contains(reason), "{value}: {err}");
        }
    }

    #[test]
    fn the_asked_interface_name_is_read_from_create_endpoint_and_becomes_the_prefix() {
        let request: CreateEndpointRequest = serde_json::from_str(&format!(
            r#"{{"NetworkID":"n1","EndpointID":"e1","Options":{{"{IFNAME_OPTION}":"gw_body","other":1}}}}"#
        ))
        .unwrap();
        assert_eq!(request.ids.endpoint_id, "e1");
        assert_eq!(
            request
                .interface_name()
                .unwrap()
                .as_ref()
                .map(DevicePrefix::as_str),
            Some("gw_body")
        );
        for body in [
            r#"{"NetworkID":"n1","EndpointID":"e1"}"#,
            r#"{"NetworkID":"n1","EndpointID":"e1","Options":null}"#,
            r#"{"NetworkID":"n1","EndpointID":"e1","Options":{"com.docker.network.endpoint.ifname":""}}"#,
        ] {
            let request: CreateEndpointRequest = serde_json::from_str(body).unwrap();
            assert_eq!(request.interface_name(), Ok(None), "{body}");
        }
        let join = serde_json::to_value(JoinResponse {
            interface_name: InterfaceName {
                src_name: "vxbc0123456789".into(),
                dst_prefix: "gw_body".into(),
            },
            disable_gateway_service: true,
        })
        .unwrap();
        assert_eq!(
            join["InterfaceName"],
            json!({"SrcName": "vxbc0123456789", "DstPrefix": "gw_body"})
        );
    }

    #[tokio::test]
    async fn malformed_bodies_are_refused_naming_the_call() {
        for (call, body) in [
            ("CreateNetwork", ""),
            ("CreateNetwork", "{"),
            ("CreateNetwork", r#"{"Options":{}}"#),
            ("DeleteNetwork", "{}"),
            ("CreateEndpoint", r#"{"NetworkID":"n1"}"#),
            ("Join", "[]"),
        ] {
            let (status, _, answer) = post(&format!("/NetworkDriver.{call}"), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{call} {body:?}");
            let err = answer["Err"].as_str().unwrap();
            assert!(
                err.starts_with(&format!("malformed {call} request: ")),
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
