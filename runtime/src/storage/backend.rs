//! The seam between duro's storage path and the engine that keeps the bytes.
//!
//! Two traits: [`Backend`] reads what is durable (object entries, classes, alarms) and
//! [`Sink`] makes one group of writes durable, on the committer's thread. Everything above
//! (object views and their caches, the committer's queue and the output gate, alarms, classes,
//! inspection) works on these and never names an engine. Two engines implement them:
//! `storage::embedded` (redb and its write-ahead log: one machine, the default) and
//! `storage::postgres` (cluster mode: every node on one PostgreSQL, each commit fenced).
//!
//! Keys are the bytes `storage::schema` lays out, in every engine; entries of a range come in
//! byte order.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::ops::WriteOp;
use super::schema::{AlarmRetry, Table};

/// A range of full keys: (low, high).
pub type Range = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Entries of a range, read as they are consumed: (full key, value).
pub type Entries = Box<dyn Iterator<Item = Result<(Vec<u8>, Bytes), BackendError>> + Send>;

/// Entries read at once: (full key, value).
pub type EntryList = Vec<(Vec<u8>, Bytes)>;

/// Alarms of a range of objects, read as they are consumed: (object prefix, time in epoch ms).
pub type Alarms = Box<dyn Iterator<Item = Result<(Vec<u8>, i64), BackendError>> + Send>;

/// The alarm schedule, earliest first, read as it is consumed: (time, object prefix).
pub type Schedule = Box<dyn Iterator<Item = Result<(i64, Vec<u8>), BackendError>> + Send>;

/// A read that failed in the engine (I/O, a lost connection, a corrupt page).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(Arc<str>);

impl BackendError {
    pub fn new(message: impl std::fmt::Display) -> Self {
        Self(message.to_string().into())
    }
}

/// What an engine reads. Shared by every thread; reads block (briefly: a redb page or a
/// PostgreSQL round trip), so async callers with long reads go through `spawn_blocking`.
pub trait Backend: Send + Sync + 'static {
    /// A view of what is durable. On redb it is one point in time; on PostgreSQL each call
    /// sees the newest commit, except [`Reader::range_at_once`].
    fn reader(&self) -> Result<Box<dyn Reader>, BackendError>;

    /// The redb database, when this engine is redb (backups copy it; `duro check` reads it).
    fn redb(&self) -> Option<&Arc<redb::Database>> {
        None
    }

    /// A name for logs and errors: "redb" or "postgresql".
    fn name(&self) -> &'static str;

    /// When other processes change this storage too (a cluster): takes the lock that
    /// serializes changes of the class registry among them, held until the guard is dropped.
    /// Blocks. `None`: this process is the only writer.
    fn lock_registry(&self) -> Result<Option<Box<dyn Send>>, BackendError> {
        Ok(None)
    }
}

/// Reads of one view (see [`Backend::reader`]).
pub trait Reader {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Bytes>, BackendError>;

    /// The entries of `table` in `range`, in key order (or reversed).
    fn range(&self, table: Table, range: Range, reverse: bool) -> Result<Entries, BackendError>;

    /// The entries of `table` in `range` as of one point in time, if they hold at most
    /// `max_bytes` of keys and values (`None`: more): what a copy of one object's SQL database
    /// needs.
    fn range_at_once(
        &self,
        table: Table,
        range: Range,
        max_bytes: u64,
    ) -> Result<Option<EntryList>, BackendError> {
        within(self.range(table, range, false)?, max_bytes)
    }

    /// The alarm of the object with this prefix.
    fn alarm(&self, object: &[u8]) -> Result<Option<i64>, BackendError>;

    /// The alarms of the objects whose prefixes are in `range`, in object order.
    fn alarms(&self, range: Range) -> Result<Alarms, BackendError>;

    /// Every alarm by time (then object), earliest first.
    fn schedule(&self) -> Result<Schedule, BackendError>;

    /// The failed alarms' pending retries: (object prefix, retry).
    fn retries(&self) -> Result<Vec<(Vec<u8>, AlarmRetry)>, BackendError>;
}

/// `entries`, if their keys and values add up to at most `max_bytes` (read no further).
pub fn within(
    entries: impl Iterator<Item = Result<(Vec<u8>, Bytes), BackendError>>,
    max_bytes: u64,
) -> Result<Option<EntryList>, BackendError> {
    let mut out = Vec::new();
    let mut bytes = 0u64;
    for entry in entries {
        let (key, value) = entry?;
        bytes += (key.len() + value.len()) as u64;
        if bytes > max_bytes {
            return Ok(None);
        }
        out.push((key, value));
    }
    Ok(Some(out))
}

/// Why a group did not become durable.
#[derive(Debug, Clone)]
pub struct SinkError {
    pub message: String,
    /// Nothing may be written after this one until a restart (a group may be half in the
    /// engine: redb's log has it, redb does not). A refused group leaves nothing behind, and
    /// later groups may go on (a PostgreSQL transaction rolled back, a fenced commit).
    pub sticky: bool,
}

/// Makes groups durable, one at a time, on the committer's thread.
pub trait Sink: Send {
    /// Makes `ops` (the writes of every request in a group, in order) durable, all or none.
    fn write(&mut self, ops: &[&WriteOp]) -> Result<(), SinkError>;

    /// Called once when the committer stops after its last group.
    fn close(&mut self) {}
}

impl dyn Backend {
    /// One value, read outside any event.
    pub fn get(&self, table: Table, key: &[u8]) -> Result<Option<Bytes>, BackendError> {
        self.reader()?.get(table, key)
    }

    /// Every entry of a small table (classes, components' names, meta), in key order.
    pub fn scan(&self, table: Table) -> Result<EntryList, BackendError> {
        self.reader()?
            .range(table, (Bound::Unbounded, Bound::Unbounded), false)?
            .collect()
    }
}
