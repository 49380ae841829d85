//! What an event carries in and out of a guest: the request an object (or the worker) receives,
//! its answer, and the WebSocket an answer may have accepted. Plain data, shared by every layer
//! above the ABI.

use std::sync::Arc;

use bytes::Bytes;

use crate::websocket::{AutoResponse, SocketEvent, SocketId, SocketOwner};

/// A request as an object receives it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// `http://do/{path...}?{query}`.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The objects whose events wait on this request (a call from another object); empty for
    /// a request from the ingress or a worker.
    pub callers: super::CallChain,
    /// An RPC call of this method (`body`: its encoded arguments) instead of a `fetch`; see
    /// [`crate::rpc`].
    pub rpc: Option<String>,
}

impl Request {
    /// Whether the request asks for a WebSocket.
    pub fn is_upgrade(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && v.eq_ignore_ascii_case("websocket"))
    }
}

/// An object's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// The socket the object accepted (with status 101): the caller completes the handshake.
    pub websocket: Option<Accepted>,
}

/// A WebSocket an object accepted during a fetch. The object that accepted it owns it, which is
/// not the addressed one when the request was forwarded to it by a call.
#[derive(Clone)]
pub struct Accepted {
    pub id: SocketId,
    /// The object's auto-response, answered by the connection without waking the object.
    pub auto_response: AutoResponse,
    /// Where the socket's frames go.
    pub holder: Holder,
}

/// Who holds an accepted socket.
#[derive(Clone)]
pub enum Holder {
    /// An object on this node: the connection delivers the socket's events to it.
    Here(Arc<dyn SocketOwner>),
    /// Cluster mode: the object on another node holds it; this is the upgraded connection to
    /// that node, whose frames the client's connection passes through.
    There(Tunnel),
}

impl Accepted {
    /// A socket no connection will ever carry (the request could not switch protocols, or a
    /// forwarded upgrade was not answered 101): the object is told it closed (1006), so its
    /// registry forgets it. On another node, dropping the connection to it does the same.
    pub async fn never_opened(self) {
        if let Holder::Here(owner) = self.holder {
            let closed = SocketEvent::Closed {
                code: 1006,
                reason: String::new(),
                was_clean: false,
            };
            owner.event(self.id, closed).await;
        }
    }
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place = match self.holder {
            Holder::Here(_) => "here",
            Holder::There(_) => "on another node",
        };
        write!(f, "Accepted(#{} {place})", self.id)
    }
}

/// An upgraded connection to the node that holds a WebSocket (see [`Holder::There`]), taken
/// once by whoever carries the client's side.
#[derive(Clone)]
pub struct Tunnel(Arc<std::sync::Mutex<Option<hyper::upgrade::Upgraded>>>);

impl Tunnel {
    pub fn new(upgraded: hyper::upgrade::Upgraded) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Some(upgraded))))
    }

    pub fn take(&self) -> Option<hyper::upgrade::Upgraded> {
        crate::lock(&self.0).take()
    }
}
