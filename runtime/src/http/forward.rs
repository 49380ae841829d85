//! The internal route of cluster mode (`POST /internal/forward` on the admin listener, behind the
//! admin token): another node sends the event of an object whose shard this node owns, and gets
//! its answer. The event runs here only (`Directory::fetch_here`): when this node does not own
//! the shard (it moved), the answer is 421 and nothing ran. A WebSocket handshake the object
//! accepts upgrades this connection, which then carries the socket's frames to and from the
//! node that holds the client's connection.

use bytes::Bytes;
use http::{StatusCode, header::HeaderValue};
use hyper::body::Incoming;

use super::admin::{AdminState, body_of};
use super::error::{ApiError, Body};
use super::ingress::Upgrade;
use crate::ids::ClassName;
use crate::object::ObjectError;
use crate::object::remote::{Answer, ENVELOPE_HEADER, Envelope};

pub(super) async fn forward(
    state: &AdminState,
    mut request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    // A WebSocket handshake: when the object accepts, this connection carries the socket.
    let upgrade = Upgrade::prepare(&state.ingress, &mut request)?;
    let envelope: Envelope = request
        .headers()
        .get(ENVELOPE_HEADER)
        .and_then(|v| serde_json::from_slice(v.as_bytes()).ok())
        .ok_or_else(|| ApiError::BadRequest(format!("no valid {ENVELOPE_HEADER} header")))?;
    let body = body_of(state, request, state.limits.max_component_bytes).await?;
    let class = ClassName::parse(&envelope.class)?;
    let class = state
        .classes
        .get(&class)
        .ok_or_else(|| ApiError::NotFound(format!("no class named {class}")))?;
    let id = class.ids.from_string(&envelope.id)?;
    let (request, name) = envelope.request(body).map_err(ApiError::BadRequest)?;
    let (status, answer, body) = match state.directory.fetch_here(class, id, name, request).await {
        Ok(response) if response.websocket.is_some() => {
            let answer = Answer {
                status: Some(response.status),
                headers: response.headers.clone(),
                error: None,
            };
            let mut switching = upgrade.finish(&state.ingress, response).await?;
            insert_answer(&mut switching, &answer)?;
            return Ok(switching);
        }
        Ok(response) => (
            StatusCode::OK,
            Answer {
                status: Some(response.status),
                headers: response.headers,
                error: None,
            },
            response.body,
        ),
        Err(ObjectError::NotHere) => return Err(ApiError::from(ObjectError::NotHere)),
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status();
            let message = error.to_string();
            (
                status,
                Answer {
                    status: None,
                    headers: Vec::new(),
                    error: Some((status.as_u16(), message)),
                },
                Bytes::new(),
            )
        }
    };
    let mut response = http::Response::new(Body::from(body));
    *response.status_mut() = status;
    insert_answer(&mut response, &answer)?;
    Ok(response)
}

fn insert_answer(response: &mut http::Response<Body>, answer: &Answer) -> Result<(), ApiError> {
    let answer = serde_json::to_string(answer).expect("an answer serializes");
    let answer = HeaderValue::from_str(&answer)
        .map_err(|e| ApiError::Internal(format!("the object's headers cannot travel: {e}")))?;
    response.headers_mut().insert(ENVELOPE_HEADER, answer);
    Ok(())
}
