//! Events for objects that run on another node of the cluster.
//!
//! `Directory::fetch` asks [`Remote::place`] where an object runs (the shard map the lease
//! publishes). Elsewhere: the request goes to the owner's internal route (`POST /internal/forward`
//! on its admin listener, with the admin token), which runs it there with
//! `Directory::fetch_here` and sends the object's answer back. A node that does not own the shard
//! (any more) answers 421 before running anything; the sender waits for the next map and tries
//! again, so a request runs at most once. Calls between objects, RPC and the worker's stubs all
//! pass through `Directory::fetch`, so they cross nodes the same way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::ObjectError;
use crate::abi::{Accepted, Holder, Request, Response, Tunnel};
use crate::class::LoadedClass;
use crate::ids::ObjectId;
use crate::ids::ObjectKey;
use crate::storage::postgres::lease::{Route, ShardMap};

/// The internal route's path on the admin listener.
pub const FORWARD_PATH: &str = "/internal/forward";
/// The header carrying a forwarded request's envelope (JSON), and an answer's.
pub const ENVELOPE_HEADER: &str = "x-duro-envelope";

/// What travels with a forwarded request's body.
#[derive(Serialize, Deserialize)]
pub struct Envelope {
    pub class: String,
    pub id: String,
    pub name: Option<String>,
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub rpc: Option<String>,
    /// The calling objects (class incarnation, id hex), for cycle detection.
    pub callers: Vec<(u64, String)>,
}

/// What travels with an answer's body.
#[derive(Serialize, Deserialize)]
pub struct Answer {
    /// The object's response status; `None` when the event failed (`error` says why).
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    /// The failure's HTTP status and message.
    pub error: Option<(u16, String)>,
}

/// Where an object runs.
pub enum Place {
    Here,
    There(Arc<str>),
}

/// See the module docs.
pub struct Remote {
    map: Arc<ShardMap>,
    http: reqwest::Client,
    token: Option<Arc<str>>,
    /// How long a request waits for a shard without an owner to get one.
    wait: Duration,
}

impl Remote {
    pub fn new(map: Arc<ShardMap>, token: Option<Arc<str>>, wait: Duration) -> Self {
        Self {
            map,
            http: reqwest::Client::new(),
            token,
            wait,
        }
    }

    /// Where the object with `id` runs; waits (up to the lease time) while its shard has no
    /// owner (its node failed or left and no node claimed it yet).
    pub async fn place(&self, id: &ObjectId) -> Result<Place, ObjectError> {
        let deadline = tokio::time::Instant::now() + self.wait;
        loop {
            let changed = self.map.changed();
            match self.map.route_of(id) {
                Route::Here => return Ok(Place::Here),
                Route::There(address) => return Ok(Place::There(address)),
                Route::Nobody | Route::Leaving => {}
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(ObjectError::Unavailable(
                    "no node of the cluster holds this object's shard yet; retry".into(),
                ));
            }
        }
    }

    /// Whether this node runs the object with `id` now.
    pub fn is_here(&self, id: &ObjectId) -> bool {
        self.map.route_of(id) == Route::Here
    }

    /// Sends the event to the node at `address`; when that node turns out not to own the
    /// object (421) or cannot be reached (nothing was sent), waits for the next map and tries
    /// where it says: a request runs at most once. `None`: the object is this node's now.
    pub async fn forward(
        &self,
        mut address: Arc<str>,
        class: &Arc<LoadedClass>,
        id: ObjectId,
        name: Option<String>,
        request: Request,
    ) -> Result<Option<Response>, ObjectError> {
        let upgrade = request.is_upgrade();
        let body = request.body;
        let envelope = Envelope {
            class: class.name.as_str().to_string(),
            id: id.to_hex(),
            name,
            method: request.method,
            url: request.url,
            headers: request.headers,
            rpc: request.rpc,
            callers: request
                .callers
                .iter()
                .map(|key| (key.incarnation, key.id.to_hex()))
                .collect(),
        };
        // A request that ran nowhere may try again until the lease time has passed thrice.
        let deadline = tokio::time::Instant::now() + self.wait;
        while tokio::time::Instant::now() < deadline {
            let changed = self.map.changed();
            let sent = if upgrade {
                self.send_upgrade(&address, &envelope, &body).await
            } else {
                self.send(&address, &envelope, &body).await
            };
            match sent? {
                Sent::Answer(mut answered) => {
                    if let Some(tunnel) = answered.tunnel.take() {
                        answered.response.websocket = Some(Accepted {
                            id: 0,
                            auto_response: Default::default(),
                            holder: Holder::There(tunnel),
                        });
                    }
                    return Ok(Some(answered.response));
                }
                // Nothing ran there: the next map says where the object is.
                Sent::Elsewhere(why) => {
                    tracing::debug!(%address, %why, "the object is not there; waiting for the map");
                    let _ = tokio::time::timeout(self.wait, changed).await;
                    match self.place(&id).await? {
                        Place::Here => return Ok(None),
                        Place::There(next) => address = next,
                    }
                }
            }
        }
        Err(ObjectError::Unavailable(
            "the object is moving between nodes; retry".into(),
        ))
    }

    /// One try over the pooled connections.
    async fn send(
        &self,
        address: &str,
        envelope: &Envelope,
        body: &Bytes,
    ) -> Result<Sent, ObjectError> {
        let envelope = serde_json::to_string(envelope).expect("an envelope serializes");
        let mut call = self
            .http
            .post(format!("http://{address}{FORWARD_PATH}"))
            .header(ENVELOPE_HEADER, envelope)
            .header(http::header::CONTENT_TYPE, "application/octet-stream")
            .body(body.clone());
        if let Some(token) = &self.token {
            call = call.bearer_auth(token);
        }
        let response = match call.send().await {
            Ok(response) => response,
            // Nothing was sent: the node is gone (its shards move once its lease expires).
            Err(e) if e.is_connect() => return Ok(Sent::Elsewhere(e.to_string())),
            Err(e) => return Err(failed_during(address, &e)),
        };
        if response.status() == reqwest::StatusCode::MISDIRECTED_REQUEST {
            return Ok(Sent::Elsewhere("421".into()));
        }
        let status = response.status().as_u16();
        let answer = response.headers().get(ENVELOPE_HEADER).cloned();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed_during(address, &e))?;
        decode(status, answer.as_ref().map(|v| v.as_bytes()), body).map(|r| Sent::Answer(r.into()))
    }

    /// One try of a WebSocket handshake, on a connection of its own: when the object accepts,
    /// the connection is upgraded and carries the socket's frames from then on.
    async fn send_upgrade(
        &self,
        address: &str,
        envelope: &Envelope,
        body: &Bytes,
    ) -> Result<Sent, ObjectError> {
        use http_body_util::Full;
        let stream = match tokio::net::TcpStream::connect(address).await {
            Ok(stream) => stream,
            Err(e) => return Ok(Sent::Elsewhere(e.to_string())),
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(|e| failed_during(address, &e))?;
        tokio::spawn(connection.with_upgrades());
        // GET, as a WebSocket handshake must be (the object's node checks it as its ingress does).
        let mut request = http::Request::get(FORWARD_PATH)
            .header(http::header::HOST, address)
            .header(
                ENVELOPE_HEADER,
                serde_json::to_string(envelope).expect("serializes"),
            );
        // The client's handshake headers, as the object's node checks them.
        for (name, value) in &envelope.headers {
            let lower = name.to_ascii_lowercase();
            if matches!(lower.as_str(), "upgrade" | "connection")
                || lower.starts_with("sec-websocket-")
            {
                request = request.header(name.as_str(), value.as_str());
            }
        }
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| failed_during(address, &e))?;
        let mut response = sender
            .send_request(request)
            .await
            .map_err(|e| failed_during(address, &e))?;
        let status = response.status();
        if status == http::StatusCode::MISDIRECTED_REQUEST {
            return Ok(Sent::Elsewhere("421".into()));
        }
        let answer = response.headers().get(ENVELOPE_HEADER).cloned();
        let answer = answer.as_ref().map(|v| v.as_bytes());
        if status != http::StatusCode::SWITCHING_PROTOCOLS {
            use http_body_util::BodyExt;
            let body = response
                .body_mut()
                .collect()
                .await
                .map_err(|e| failed_during(address, &e))?
                .to_bytes();
            return decode(status.as_u16(), answer, body).map(|r| Sent::Answer(r.into()));
        }
        let mut answered = decode(101, answer, Bytes::new())?;
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|e| failed_during(address, &e))?;
        // The node's own handshake headers are the client's to get from this node.
        answered.headers.retain(|(name, _)| {
            let lower = name.to_ascii_lowercase();
            !matches!(
                lower.as_str(),
                "upgrade" | "connection" | "sec-websocket-accept"
            )
        });
        Ok(Sent::Answer(Answered {
            response: answered,
            tunnel: Some(Tunnel::new(upgraded)),
        }))
    }
}

/// How one try went.
enum Sent {
    Answer(Answered),
    /// Not run there: that node does not own the object, or could not be reached.
    Elsewhere(String),
}

/// An answer from the object's node, and the socket's connection when it accepted one.
struct Answered {
    response: Response,
    tunnel: Option<Tunnel>,
}

impl From<Response> for Answered {
    fn from(response: Response) -> Self {
        Self {
            response,
            tunnel: None,
        }
    }
}

fn failed_during(address: &str, error: &dyn std::fmt::Display) -> ObjectError {
    ObjectError::Unavailable(format!(
        "the object's node ({address}) failed during the request: {error}"
    ))
}

/// The object's answer from a forwarded request's status, answer header and body.
fn decode(status: u16, answer: Option<&[u8]>, body: Bytes) -> Result<Response, ObjectError> {
    let answer: Option<Answer> = answer.and_then(|v| serde_json::from_slice(v).ok());
    match answer {
        Some(Answer {
            status: Some(status),
            headers,
            ..
        }) => Ok(Response {
            status,
            headers,
            body,
            websocket: None,
        }),
        Some(Answer {
            error: Some((status, message)),
            ..
        }) => Err(ObjectError::Remote { status, message }),
        _ => Err(ObjectError::Remote {
            status,
            message: String::from_utf8_lossy(&body).into_owned(),
        }),
    }
}

impl Envelope {
    /// The request this envelope and `body` carry, and the calling objects' keys.
    pub fn request(self, body: Bytes) -> Result<(Request, Option<String>), String> {
        let mut callers = Vec::with_capacity(self.callers.len());
        for (incarnation, id) in self.callers {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&id, &mut bytes).map_err(|_| format!("bad caller id {id}"))?;
            let id = ObjectId::from_bytes(bytes);
            callers.push(ObjectKey { incarnation, id });
        }
        let request = Request {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body,
            callers: callers.into(),
            rpc: self.rpc,
        };
        Ok((request, self.name))
    }
}
