//! The messages an actor receives: events from outside (requests, alarms, socket traffic, an
//! operator's edits), a look at its state, and the runtime's own (a wake for its timers, an
//! eviction).

use tokio::sync::{mpsc, oneshot};

use crate::abi::{Request, Response};
use crate::object::{AlarmOutcome, ObjectError};
use crate::storage::Gated;
use crate::websocket::{Outgoing, SocketEvent, SocketId};

/// A message to an actor.
pub(in crate::object) enum Envelope {
    Fetch {
        request: Request,
        /// The name the object was addressed by, if any.
        name: Option<String>,
        reply: oneshot::Sender<Gated<Result<Response, ObjectError>>>,
    },
    Alarm {
        /// The time the scheduler fired it for; stale if the object's alarm changed since.
        at_ms: i64,
        retry_count: u32,
        /// No retry follows a failure: the alarm is deleted then.
        last_attempt: bool,
        reply: oneshot::Sender<Gated<AlarmOutcome>>,
    },
    /// A connection finished its handshake.
    SocketOpened {
        id: SocketId,
        tx: mpsc::Sender<Outgoing>,
    },
    /// A connection received a message or closed.
    Socket { id: SocketId, event: SocketEvent },
    /// An operator asks what the object holds now (admin API).
    View {
        reply: oneshot::Sender<crate::object::ObjectView>,
    },
    /// An operator changes the object (admin API); the answer says whether what it named was
    /// there (a deleted key, alarm or socket).
    Edit {
        edit: crate::object::Edit,
        /// The name the operator addressed the object by, if any.
        name: Option<String>,
        reply: oneshot::Sender<Gated<Result<bool, ObjectError>>>,
    },
    /// The guest's timers are due (`timers.wake-after`); made by the actor itself, never sent.
    Wake,
    /// Cluster mode: the object's shard moves to another node. Its sockets close (1012, the
    /// clients reconnect and reach it there) and the actor stops once its commits are durable.
    Evict,
}

impl Envelope {
    /// What kind of event it is, as a live tail names it.
    pub(in crate::object) fn kind(&self) -> &'static str {
        match self {
            Self::Fetch { request, .. } if request.rpc.is_some() => "rpc",
            Self::Fetch { .. } => "fetch",
            Self::Alarm { .. } => "alarm",
            Self::SocketOpened { .. } => "socket-open",
            Self::Socket { .. } => "socket",
            Self::View { .. } => "view",
            Self::Edit { .. } => "edit",
            Self::Wake => "timers",
            Self::Evict => "evict",
        }
    }
}
