//! The ingress listener: object routes and id routes. A request enters here, is parsed once into
//! a `route::Ingress`, becomes an object `Request` and goes to the `Directory`.

use std::sync::Arc;

use http::{HeaderName, HeaderValue, Method, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;

use super::error::{ApiError, Body, json};
use super::read_body;
use super::route::{self, Ingress};
use crate::class::LoadedClass;
use crate::ids::ObjectId;
use crate::object::{Directory, Request, Response};
use crate::websocket::{self, SocketEvent};
use tokio::sync::watch;

/// What the ingress handlers need.
#[derive(Clone)]
pub struct IngressState {
    pub directory: Directory,
    pub max_body: usize,
    pub max_ws_message: usize,
    /// Turns true at shutdown: open WebSockets close with 1001.
    pub stop: watch::Receiver<bool>,
}

/// Handles one ingress request; every failure becomes a JSON error response.
pub async fn handle(state: IngressState, request: http::Request<Incoming>) -> http::Response<Body> {
    let response = route(&state, request)
        .await
        .unwrap_or_else(ApiError::into_response);
    state.directory.metrics().requests.inc();
    response
}

async fn route(
    state: &IngressState,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    let directory = &state.directory;
    let route =
        route::ingress(request.uri().path(), request.uri().query()).map_err(|e| match e {
            route::RouteError::NotFound => ApiError::NotFound("no such route".into()),
            route::RouteError::BadRequest(reason) => ApiError::BadRequest(reason),
        })?;
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
                    let name = request
                        .uri()
                        .query()
                        .and_then(|q| {
                            form_urlencoded::parse(q.as_bytes())
                                .find(|(k, _)| k == "name")
                                .map(|(_, v)| v.into_owned())
                        })
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

/// Delivers a request to an object; completes the WebSocket handshake if the object accepted.
async fn to_object(
    state: &IngressState,
    class: Arc<LoadedClass>,
    id: ObjectId,
    name: Option<String>,
    mut request: http::Request<Incoming>,
    rest: &str,
) -> Result<http::Response<Body>, ApiError> {
    let client_key = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned();
    let on_upgrade = client_key
        .is_some()
        .then(|| hyper::upgrade::on(&mut request));
    let object_request = object_request(request, rest, state.max_body).await?;
    let mut response = state
        .directory
        .fetch(class.clone(), id, name, object_request)
        .await?;
    let Some(accepted) = response.websocket.take() else {
        return into_http(response);
    };
    let owner = state.directory.socket_owner(class, id);
    let (Some(on_upgrade), Some(client_key)) = (on_upgrade, client_key) else {
        // Accepted, but this connection cannot switch protocols: the socket never opened.
        let closed = SocketEvent::Closed {
            code: 1006,
            reason: String::new(),
            was_clean: false,
        };
        owner.event(accepted.id, closed).await;
        return Err(ApiError::BadRequest(
            "a WebSocket needs an HTTP/1.1 upgrade request".into(),
        ));
    };
    let (max_message, stop) = (state.max_ws_message, state.stop.clone());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                websocket::run_connection(
                    upgraded,
                    accepted.id,
                    owner,
                    accepted.auto_response,
                    max_message,
                    stop,
                )
                .await;
            }
            Err(_) => {
                let closed = SocketEvent::Closed {
                    code: 1006,
                    reason: String::new(),
                    was_clean: false,
                };
                owner.event(accepted.id, closed).await;
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

async fn object_request(
    request: http::Request<Incoming>,
    rest: &str,
    max_body: usize,
) -> Result<Request, ApiError> {
    let (parts, body) = request.into_parts();
    let body = read_body(&parts.headers, body, max_body).await?;
    let headers = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    Ok(Request {
        method: parts.method.as_str().to_string(),
        url: format!("http://do{rest}"),
        headers,
        body,
    })
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
