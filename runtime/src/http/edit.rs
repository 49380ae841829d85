//! The object editor's admin routes: one entry (read, put, delete), the alarm (read, set,
//! delete), one WebSocket (close) and the whole object (wipe). Every change runs as an event of
//! the object (`Directory::edit`): serialized with its other events, committed with the group,
//! answered once durable — never around a live instance. In cluster mode a change of an object
//! another node runs is relayed to that node's admin listener ([`relay`]), once.

use std::sync::{Arc, LazyLock};

use http::{StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::admin::{AdminState, body_of, deleted, document_body};
use super::error::{ApiError, Body, json};
use super::inspect::find_object;
use super::route::{ObjectPart, ObjectRef};
use crate::ids::ClassName;
use crate::object::Edit;

/// Largest value body read (the storage limit then applies, with its own message).
const MAX_VALUE_BODY: usize = 4 * 1024 * 1024;

/// Marks a change relayed from another node: it runs where it arrives, or is refused (421), and
/// never travels again.
const RELAYED: &str = "x-duro-relayed";

/// The body of `PUT .../alarm`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmBody {
    at_ms: i64,
}

/// Routes a change of one object (`part` of it); `None` when `method` changes nothing there.
pub(super) async fn route(
    state: &AdminState,
    class: &ClassName,
    object: ObjectRef,
    part: ObjectPart,
    request: http::Request<Incoming>,
) -> Option<Result<http::Response<Body>, ApiError>> {
    let method = request.method().clone();
    let edit = match (part, method) {
        (ObjectPart::Whole, http::Method::DELETE) => Ok(Edit::Wipe),
        (ObjectPart::Entry(key), http::Method::PUT) => body_of(state, request, MAX_VALUE_BODY)
            .await
            .map(|value| Edit::Put { key, value }),
        (ObjectPart::Entry(key), http::Method::DELETE) => Ok(Edit::Delete { key }),
        (ObjectPart::Alarm, http::Method::PUT) => {
            document_body::<AlarmBody>(state, request, r#"{"at_ms": <ms since the Unix epoch>}"#)
                .await
                .map(|body| Edit::Alarm(Some(body.at_ms)))
        }
        (ObjectPart::Alarm, http::Method::DELETE) => Ok(Edit::Alarm(None)),
        (ObjectPart::Socket(socket), http::Method::DELETE) => socket
            .parse()
            .map(Edit::CloseSocket)
            .map_err(|_| ApiError::NotFound(format!("no WebSocket {socket:?}"))),
        _ => return None,
    };
    Some(apply(state, class, object, edit).await)
}

async fn apply(
    state: &AdminState,
    class: &ClassName,
    object: ObjectRef,
    edit: Result<Edit, ApiError>,
) -> Result<http::Response<Body>, ApiError> {
    let edit = edit?;
    let (loaded, id, name) = find_object(state, class, object)?;
    let answer = match &edit {
        Edit::Put { key, value } => Some(serde_json::json!({ "key": key, "bytes": value.len() })),
        Edit::Alarm(Some(at_ms)) => Some(serde_json::json!({ "alarm_ms": at_ms })),
        _ => None,
    };
    let missing = match &edit {
        Edit::Delete { key } => format!("no key {key:?}"),
        Edit::Alarm(None) => "no alarm is set".to_string(),
        Edit::CloseSocket(socket) => format!("no open WebSocket {socket}"),
        _ => String::new(),
    };
    let found = state.directory.edit(loaded, id, name, edit).await?;
    match answer {
        Some(answer) => Ok(json(StatusCode::OK, &answer)),
        None => deleted(found, missing),
    }
}

/// Cluster mode: the admin address of the node that runs `object`, when that is another node
/// and `request` was not relayed to this one already.
pub(super) async fn owner_elsewhere(
    state: &AdminState,
    class: &ClassName,
    object: &ObjectRef,
    request: &http::Request<Incoming>,
) -> Result<Option<Arc<str>>, ApiError> {
    if request.headers().contains_key(RELAYED) {
        return Ok(None);
    }
    let (_, id, _) = find_object(state, class, object.clone())?;
    Ok(state.directory.owner_elsewhere(&id).await?)
}

/// Sends the change to the admin listener of `owner`, the node that runs the object (its body
/// streamed through), and answers what that node answers.
pub(super) async fn relay(
    state: &AdminState,
    owner: &str,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(reqwest::Client::new);
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut call = CLIENT
        .request(parts.method, format!("http://{owner}{path}"))
        .header(RELAYED, "1")
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    if let Some(token) = &state.token {
        call = call.bearer_auth(token);
    }
    if let Some(content_type) = parts.headers.get(header::CONTENT_TYPE) {
        call = call.header(header::CONTENT_TYPE, content_type);
    }
    let unreachable = |e: reqwest::Error| {
        ApiError::Unavailable(format!(
            "the node that runs the object ({owner}) did not answer: {e}; retry"
        ))
    };
    let answer = call.send().await.map_err(unreachable)?;
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = answer.bytes().await.map_err(unreachable)?;
    let mut response = http::Response::new(Body::new(bytes));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}
