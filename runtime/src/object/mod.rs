//! Objects: one live actor per object id, its mailbox, and the events it runs.
//!
//! `Directory::fetch` is where an event is queued: it finds or starts the object's actor and puts
//! the event in its bounded mailbox. The actor (`actor.rs`) runs events one at a time against the
//! object's instance, hands each event's writes to the group committer, and returns the output
//! behind the commit's `Durable` (the output gate): the caller releases it only once durable.

mod actor;
pub mod directory;
mod meter;
mod reach;
mod reaper;
pub mod remote;

pub use directory::{ActorsStopped, Directory, LiveObject, Metered};
pub use meter::{Rank, Usage};

use crate::abi::GuestError;
use crate::ids::ClassName;
use crate::storage::CommitError;

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

/// An operator's change to one object (admin API), run as an event of the object: between two
/// of its events, through its storage view and the group commit, released by its output gate.
/// A change of its storage also drops its instance (as a class upgrade does), so the guest's
/// in-memory state starts again from what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Deletes every key and the alarm.
    Wipe,
    Put {
        key: String,
        value: bytes::Bytes,
    },
    Delete {
        key: String,
    },
    /// Sets the alarm (ms since the Unix epoch), or deletes it.
    Alarm(Option<i64>),
    /// Closes one open WebSocket (1000, "closed by an operator").
    CloseSocket(crate::websocket::SocketId),
    /// Puts a part of an exported object (`storage::export`) into this one.
    Import(ImportBatch),
}

/// A part of an import: one event's worth of entries. The first part sets the alarm, and
/// refuses a target that stores something unless asked to replace it (then wipes it first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportBatch {
    pub entries: Vec<crate::storage::export::Entry>,
    pub alarm_ms: Option<i64>,
    pub first: bool,
    /// The last part: it removes the import's mark and sets the alarm.
    pub last: bool,
    pub replace: bool,
    /// The import's mark while it runs, the same in every part.
    pub token: bytes::Bytes,
}

/// What an active object holds now, for operators (admin API).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectView {
    /// Its open WebSockets (held by the runtime, hibernated or not): id and tags.
    pub websockets: Vec<(crate::websocket::SocketId, Vec<String>)>,
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
    /// An operator's edit that cannot apply (a key or value over a limit, an alarm on a class
    /// without an alarm handler); nothing changed.
    #[error("{0}")]
    BadEdit(String),
    /// An import into an object that stores something, not asked to replace it; or a part of
    /// an import that another import or a wipe overtook.
    #[error("{0}")]
    NotEmpty(String),
    /// The object holds an import that has not finished: it refuses its events until the
    /// import ends, or until it is imported again or wiped.
    #[error(
        "an import into this object has not finished: it answers once the import is done \
         (if the import was cut short, import it again or wipe the object)"
    )]
    ImportIncomplete,
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
