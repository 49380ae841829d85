//! Objects: one live actor per object id, its mailbox, and the events it runs.
//!
//! `Directory::fetch` is where an event is queued: it finds or starts the object's actor and puts
//! the event in its bounded mailbox. The actor (`actor.rs`) runs events one at a time against the
//! object's instance, hands each event's writes to the group committer, and returns the output
//! behind the commit's `Durable` (the output gate): the caller releases it only once durable.

mod actor;
pub mod directory;
mod reaper;
pub mod remote;
mod shared;

use bytes::Bytes;

pub use directory::{ActorsStopped, Directory};
pub use shared::SharedPool;

use crate::abi::GuestError;
use crate::ids::ClassName;
use crate::storage::CommitError;

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
    pub callers: crate::abi::CallChain,
    /// An RPC call of this method (`body`: its encoded arguments) instead of a `fetch`; see
    /// [`crate::rpc`].
    pub rpc: Option<String>,
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
    pub id: crate::websocket::SocketId,
    /// The object's auto-response, answered by the connection without waking the object.
    pub auto_response: crate::websocket::AutoResponse,
    pub class: std::sync::Arc<crate::class::LoadedClass>,
    pub object: crate::ids::ObjectId,
    /// Cluster mode: the socket was accepted by the object on another node; this is the
    /// upgraded connection to that node, whose frames the client's connection passes through.
    pub tunnel: Option<Tunnel>,
}

/// An upgraded connection to the node that holds a WebSocket (see [`Accepted::tunnel`]),
/// taken once by whoever carries the client's side.
#[derive(Clone)]
pub struct Tunnel(std::sync::Arc<std::sync::Mutex<Option<hyper::upgrade::Upgraded>>>);

impl Tunnel {
    pub fn new(upgraded: hyper::upgrade::Upgraded) -> Self {
        Self(std::sync::Arc::new(std::sync::Mutex::new(Some(upgraded))))
    }

    pub fn take(&self) -> Option<hyper::upgrade::Upgraded> {
        crate::lock(&self.0).take()
    }
}

impl std::fmt::Debug for Accepted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Accepted({} {} #{})",
            self.class.name, self.object, self.id
        )
    }
}

impl Request {
    /// Whether the request asks for a WebSocket.
    pub fn is_upgrade(&self) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && v.eq_ignore_ascii_case("websocket"))
    }
}

/// How an alarm event went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlarmOutcome {
    /// The handler succeeded; its writes (the cleared alarm included) are durable.
    Done,
    /// The object's alarm is no longer the one scheduled (replaced or deleted): nothing ran.
    Stale,
    /// The handler returned an error or trapped: retry.
    Failed(String),
}

/// What an active object holds now, for operators (admin API).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectView {
    /// Its open WebSockets (held by the runtime, hibernated or not).
    pub websockets: usize,
    /// Whether an instance of it is in memory (its own, or its place in a shared one); `false`
    /// when it hibernates with open sockets.
    pub in_memory: bool,
}

/// Why an event produced no response.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    #[error("no class named {0}")]
    UnknownClass(ClassName),
    #[error("object overloaded: {0} events already queued")]
    Overloaded(usize),
    #[error("too many live objects (limit {0}); retry later")]
    TooManyLive(usize),
    #[error(transparent)]
    Guest(#[from] GuestError),
    #[error(transparent)]
    Commit(#[from] CommitError),
    #[error("the runtime is shutting down")]
    ShuttingDown,
    #[error("the object answered 101 without accepting a WebSocket")]
    BadUpgrade,
    #[error("the object's response body is {actual} bytes, over the limit of {limit}")]
    ResponseTooLarge { limit: usize, actual: usize },
    /// A fault of the runtime itself (a panic while running the event); the object was reset.
    #[error("internal error: {0}")]
    Internal(String),
    /// Cluster mode: the object cannot be reached now (its node is unreachable, or its shard
    /// is moving); nothing ran.
    #[error("{0}")]
    Unavailable(String),
    /// Cluster mode: this node does not own the object's shard (a forwarded request arrived
    /// after the shard moved); nothing ran.
    #[error("this node does not run that object")]
    NotHere,
    /// Cluster mode: the event failed on the node that runs the object (its status and message).
    #[error("{message}")]
    Remote { status: u16, message: String },
}
