//! The ingress listener: object routes and id routes. A request enters here, is parsed once into
//! a `route::Ingress`, becomes an object `Request` and goes to the `Directory`.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use super::error::{ApiError, Body, json};
use super::read_body;
use super::route::{self, Ingress};
use crate::abi::{Holder, Request, Response, rpc};
use crate::access;
use crate::assets::{Answer, AssetRequest};
use crate::class::LoadedClass;
use crate::config::ClientLocation;
use crate::ids::ObjectId;
use crate::object::{Directory, ObjectError};
use crate::websocket;
use crate::worker::{Worker, WorkerError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// What the ingress handlers need.
#[derive(Clone)]
pub struct IngressState {
    pub directory: Directory,
    pub max_body: usize,
    pub body_timeout: Duration,
    pub max_ws_message: usize,
    /// Where `request.cf` says a client is.
    pub client_location: ClientLocation,
    /// The ingress connection cap: an accepted WebSocket holds one permit while open.
    pub connections: Arc<Semaphore>,
    /// Turns true at shutdown: open WebSockets close with 1001.
    pub stop: watch::Receiver<bool>,
}

/// Handles one ingress request; every failure becomes a JSON error response.
/// A request to the ingress, served once the server is ready (`ready` set); until then 503 with
/// `Retry-After`, at once.
pub async fn handle_when_ready(
    ready: std::sync::Arc<std::sync::OnceLock<IngressState>>,
    request: http::Request<Incoming>,
) -> http::Response<Body> {
    match ready.get() {
        Some(state) => handle(state.clone(), request).await,
        None => starting(),
    }
}

/// The answer of a listener whose server is still starting.
pub(super) fn starting() -> http::Response<Body> {
    ApiError::Unavailable(
        "duro is starting (loading classes, applying the deploy config); retry".into(),
    )
    .into_response()
}

pub async fn handle(state: IngressState, request: http::Request<Incoming>) -> http::Response<Body> {
    let line = access::enabled().then(|| {
        let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
        (request.method().clone(), path.to_string())
    });
    let respond = async {
        let response = route(&state, request)
            .await
            .unwrap_or_else(ApiError::into_response);
        state.directory.metrics().requests.inc();
        response
    };
    match line {
        None => respond.await,
        Some((method, path)) => {
            access::logged(method, path, respond, |r| r.status().as_u16()).await
        }
    }
}

async fn route(
    state: &IngressState,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    super::check_head(&request)?;
    let directory = &state.directory;
    let parsed = route::ingress(request.uri().path(), request.uri().query());
    let worker = directory.classes().worker();
    // With a worker, every request that is not a direct object route (or every request, when
    // the deploy config switched those off) goes to it; the static assets, if any, answer first
    // what they have (`run_worker_first` aside).
    let front = parsed == Err(route::RouteError::NotFound)
        || worker.as_ref().is_some_and(|w| !w.info.object_routes);
    if front
        && let Some(assets) = directory.classes().assets()
        && let Some(answer) = assets.route(&asset_request(&request), worker.is_some())
    {
        return Ok(asset_response(answer));
    }
    if front && let Some(worker) = worker {
        return to_worker(state, &worker, request).await;
    }
    let route = parsed.map_err(route_error)?;
    let classes = directory.classes();
    let class_of = |name: &crate::ids::ClassName| {
        classes
            .get(name)
            .ok_or_else(|| ApiError::NotFound(format!("no class named {name}")))
    };
    match route {
        Ingress::ByName { class, name, rest } => {
            let class = class_of(&class)?;
            let id = class.ids.from_name(&name);
            to_object(state, class, id, Some(name), request, &rest).await
        }
        Ingress::ById { class, id, rest } => {
            let class = class_of(&class)?;
            let id = class.ids.from_string(&id)?;
            to_object(state, class, id, None, request, &rest).await
        }
        Ingress::Ids { class } => {
            let class = class_of(&class)?;
            let id = match *request.method() {
                Method::POST => class.ids.new_unique(),
                Method::GET => {
                    let name = route::query_value(request.uri().query(), "name")
                        .map_err(route_error)?
                        .ok_or_else(|| {
                            ApiError::BadRequest("GET /ids/{class} needs ?name=".into())
                        })?;
                    class.ids.from_name(&name)
                }
                _ => return Err(ApiError::MethodNotAllowed),
            };
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "id": id.to_hex() }),
            ))
        }
    }
}

fn route_error(error: route::RouteError) -> ApiError {
    match error {
        route::RouteError::NotFound => ApiError::NotFound("no such route".into()),
        route::RouteError::BadRequest(reason) => ApiError::BadRequest(reason),
    }
}

/// Delivers a request to an object; completes the WebSocket handshake if the object accepted.
async fn to_object(
    state: &IngressState,
    class: Arc<LoadedClass>,
    id: ObjectId,
    name: Option<String>,
    mut request: http::Request<Incoming>,
    rest: &str,
) -> Result<http::Response<Body>, ApiError> {
    let upgrade = Upgrade::prepare(state, &mut request)?;
    let url = format!("http://do{rest}");
    let object_request = object_request(request, url, state).await?;
    access::reached(&class.name, name.as_deref(), id);
    let response = state
        .directory
        .fetch(class, id, name, object_request)
        .await?;
    upgrade.finish(state, response).await
}

/// Runs a request through the worker; completes the WebSocket handshake if an object accepted a
/// socket the worker forwarded.
async fn to_worker(
    state: &IngressState,
    worker: &Arc<Worker>,
    mut request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    let upgrade = Upgrade::prepare(state, &mut request)?;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost")
        .to_string();
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let url = format!("http://{host}{path}");
    let worker_request = object_request(request, url, state).await?;
    let response = worker
        .fetch(state.directory.instance_env(), worker_request)
        .await
        .map_err(|error| match error {
            WorkerError::Guest(error) => ApiError::from(ObjectError::Guest(error)),
            busy @ WorkerError::Busy => ApiError::Unavailable(busy.to_string()),
        })?;
    upgrade.finish(state, response).await
}

/// The upgrade side of a request that asks for a WebSocket: its client key, hyper's handle on
/// the switched connection, and the connection permit the socket will hold.
pub(super) struct Upgrade {
    handshake: Option<(HeaderValue, hyper::upgrade::OnUpgrade, OwnedSemaphorePermit)>,
}

impl Upgrade {
    /// Validates the handshake (RFC 6455) of a request that asks for a WebSocket and takes a
    /// connection permit for the socket (a WebSocket outlives its request).
    pub(super) fn prepare<B>(
        state: &IngressState,
        request: &mut http::Request<B>,
    ) -> Result<Self, ApiError> {
        let Some(client_key) = websocket_key(request)? else {
            return Ok(Self { handshake: None });
        };
        let permit =
            state.connections.clone().try_acquire_owned().map_err(|_| {
                ApiError::Unavailable("too many open connections; retry later".into())
            })?;
        let on_upgrade = hyper::upgrade::on(request);
        Ok(Self {
            handshake: Some((client_key, on_upgrade, permit)),
        })
    }

    /// Answers with `response`; when it carries a socket an object accepted, completes the
    /// handshake and runs the connection for that object.
    pub(super) async fn finish(
        self,
        state: &IngressState,
        mut response: Response,
    ) -> Result<http::Response<Body>, ApiError> {
        let Some(accepted) = response.websocket.take() else {
            return into_http(response);
        };
        let Some((client_key, on_upgrade, permit)) = self.handshake else {
            // Accepted, but this connection cannot switch protocols: the socket never opened.
            accepted.never_opened().await;
            return Err(ApiError::BadRequest(
                "a WebSocket needs an HTTP/1.1 upgrade request".into(),
            ));
        };
        let (max_message, stop) = (state.max_ws_message, state.stop.clone());
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(_) => return accepted.never_opened().await,
            };
            match accepted.holder {
                // The socket lives on another node: pass the frames through both ways.
                Holder::There(tunnel) => {
                    let Some(remote) = tunnel.take() else { return };
                    let mut client = hyper_util::rt::TokioIo::new(upgraded);
                    let mut remote = hyper_util::rt::TokioIo::new(remote);
                    let mut stop = stop;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut remote) => {}
                        // Shutting down: both connections close (the client reconnects).
                        _ = stop.wait_for(|stop| *stop) => {}
                    }
                    drop(permit);
                }
                Holder::Here(owner) => {
                    websocket::run_connection(
                        upgraded,
                        accepted.id,
                        owner,
                        accepted.auto_response,
                        max_message,
                        stop,
                    )
                    .await;
                    drop(permit);
                }
            }
        });
        let mut switching = into_http(response)?;
        let headers = switching.headers_mut();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        let accept = websocket::accept_key(client_key.as_bytes());
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&accept).expect("base64 is a valid header value"),
        );
        Ok(switching)
    }
}

/// The header naming the client's address.
const CF_CONNECTING_IP: &str = "cf-connecting-ip";

/// The header telling the SDK where the client is (`request.cf`): `placeholder`, or a JSON
/// object of `request.cf`'s location fields.
const CLIENT_LOCATION: &str = "duro-cf";

/// Cloudflare's visitor location headers and the `request.cf` field each fills.
const LOCATION_HEADERS: [(&str, &str); 10] = [
    ("cf-ipcountry", "country"),
    ("cf-ipcity", "city"),
    ("cf-ipcontinent", "continent"),
    ("cf-iplatitude", "latitude"),
    ("cf-iplongitude", "longitude"),
    ("cf-region", "region"),
    ("cf-region-code", "regionCode"),
    ("cf-metro-code", "metroCode"),
    ("cf-postal-code", "postalCode"),
    ("cf-timezone", "timezone"),
];

/// `request.cf`'s location fields from a Cloudflare proxy's headers (and the colo from the end
/// of `cf-ray`, `…-DFW`), as JSON; `None` when it sent none.
fn location_headers(headers: &http::HeaderMap) -> Option<String> {
    let mut location = serde_json::Map::new();
    for (header, field) in LOCATION_HEADERS {
        if let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) {
            location.insert(field.into(), value.into());
        }
    }
    let colo = headers
        .get("cf-ray")
        .and_then(|v| v.to_str().ok()?.rsplit_once('-'));
    if let Some((_, colo)) = colo.filter(|(_, colo)| !colo.is_empty()) {
        location.insert("colo".into(), colo.into());
    }
    (!location.is_empty()).then(|| serde_json::Value::Object(location).to_string())
}

/// The request as an object (or the worker) sees it, at `url`.
pub(super) async fn object_request(
    request: http::Request<Incoming>,
    url: String,
    state: &IngressState,
) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, state.max_body, state.body_timeout).await?;
    let mut headers: Vec<_> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    // The client's address, as Cloudflare gives it: set by the runtime, never taken from the
    // client (a client could otherwise pick the address a per-client limit counts against).
    if let Some(super::ClientAddr(peer)) = parts.extensions.get() {
        headers.retain(|(name, _)| name != CF_CONNECTING_IP);
        headers.push((
            CF_CONNECTING_IP.to_string(),
            peer.ip().to_canonical().to_string(),
        ));
    }
    // Where the client is, last (the SDK looks there); never the client's own say.
    headers.retain(|(name, _)| name != CLIENT_LOCATION);
    let location = match state.client_location {
        ClientLocation::Unknown => None,
        ClientLocation::Placeholder => Some("placeholder".to_string()),
        ClientLocation::Headers => location_headers(&parts.headers),
    };
    if let Some(location) = location {
        headers.push((CLIENT_LOCATION.to_string(), location));
    }
    Ok(Request {
        method: parts.method.as_str().to_string(),
        url,
        headers,
        body,
        callers: Default::default(),
        rpc: None,
    })
}

/// The client's `Sec-WebSocket-Key` when the request asks for a WebSocket (`Upgrade:
/// websocket`) and is a valid opening handshake (RFC 6455 4.2.1); `None` when it does not ask.
/// A bad version is 426 with the supported one; anything else malformed is 400.
fn websocket_key<B>(request: &http::Request<B>) -> Result<Option<HeaderValue>, ApiError> {
    let headers = request.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value
                .to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Ok(None);
    }
    let bad = |why: &str| {
        Err(ApiError::BadRequest(format!(
            "bad WebSocket handshake: {why}"
        )))
    };
    if request.method() != Method::GET {
        return bad("the method must be GET");
    }
    if request.version() != http::Version::HTTP_11 {
        return bad("WebSockets need HTTP/1.1");
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return bad("`Connection` must include `Upgrade`");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        return Err(ApiError::UpgradeRequired(
            "unsupported WebSocket version: only 13 is supported".into(),
        ));
    }
    match headers.get(header::SEC_WEBSOCKET_KEY) {
        Some(key) if is_websocket_key(key.as_bytes()) => Ok(Some(key.clone())),
        _ => bad("`Sec-WebSocket-Key` must be 16 bytes in base64"),
    }
}

/// Whether `key` is the base64 of 16 bytes: 22 base64 characters and `==`.
fn is_websocket_key(key: &[u8]) -> bool {
    key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

fn into_http(response: Response) -> Result<http::Response<Body>, ApiError> {
    let status = StatusCode::from_u16(response.status).map_err(|_| {
        ApiError::Internal(format!(
            "the object answered with an invalid status {}",
            response.status
        ))
    })?;
    let mut out = http::Response::new(Full::new(response.body));
    *out.status_mut() = status;
    for (name, value) in response.headers {
        if name.eq_ignore_ascii_case(rpc::THROWN_HEADER) {
            continue;
        }
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            (Ok(name), Ok(value)) => {
                out.headers_mut().append(name, value);
            }
            _ => tracing::warn!(header = name, "dropping an invalid header from an object"),
        }
    }
    Ok(out)
}

/// What the static assets need of an ingress request.
fn asset_request(request: &http::Request<Incoming>) -> AssetRequest<'_> {
    let headers = request.headers();
    AssetRequest::new(
        request.method().as_str(),
        request.uri().path(),
        request.uri().query(),
        |name| headers.get(name).and_then(|v| v.to_str().ok()),
    )
}

/// An answer of the static assets as the ingress's response.
fn asset_response(answer: Answer) -> http::Response<Body> {
    let mut response = http::Response::new(Full::new(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a valid status");
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}
