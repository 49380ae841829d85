//! One live object's view of its storage: what its guest's `storage` calls read and write.
//!
//! Writes of the running event go into its write set (`write_set`: a stack of layers, one per
//! open transaction). When the event ends its writes become a commit request and enter the
//! object's read cache (`cache`) marked with that commit's sequence number, so the next event
//! reads them at once, before they are durable. Reads look at the write set, then the cache,
//! then storage. This file holds the view itself: the guest's calls, their limits, and the
//! hand-over of an event's writes. Never sees wasmtime.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use super::Store;
use super::commit::WriteOp;
use super::schema::{self, Table};
use super::sql::{MemoryAccount, SqlDatabase};
use crate::config::Limits;

mod cache;
mod list;
mod write_set;

use cache::ReadCache;
pub use list::ListOptions;
use write_set::{WriteSet, size as write_size};

/// A range of user keys: (low, high).
pub(super) type KeyRange = (Bound<Vec<u8>>, Bound<Vec<u8>>);
/// Stored entries of one object, read as they are consumed: (user key, value).
pub(super) type DiskEntries = Box<dyn Iterator<Item = Result<(Vec<u8>, Bytes), StorageError>>>;

/// A storage call's failure, as the guest will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("key is {actual} bytes, the limit is {limit}")]
    KeyTooLarge { limit: u64, actual: u64 },
    #[error("value is {actual} bytes, the limit is {limit}")]
    ValueTooLarge { limit: u64, actual: u64 },
    #[error("{actual} keys in one call, the limit is {limit}")]
    TooManyKeys { limit: u64, actual: u64 },
    #[error("list result exceeds {limit} bytes; use a smaller limit")]
    ResultTooLarge { limit: u64, actual: u64 },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("no open transaction")]
    NoTransaction,
    #[error("storage read failed: {0}")]
    Internal(String),
}

/// A finished event's writes, ready for the committer.
pub struct EventWrites {
    /// The sequence number the object gave this write set; passed back to `mark_durable`.
    pub seq: u64,
    pub ops: Vec<WriteOp>,
}

/// See the module docs.
pub struct ObjectStorage {
    store: Store,
    /// `[class][id]`, prepended to every user key.
    prefix: Vec<u8>,
    max_key_bytes: usize,
    max_value_bytes: usize,
    max_batch_keys: usize,
    max_list_bytes: usize,
    max_event_write_bytes: usize,
    /// Most bytes SQLite may hold for the object's database (the instance's memory limit).
    pub(super) max_sql_heap_bytes: usize,
    /// Known values (clean or not yet durable), including known absences.
    cache: ReadCache,
    /// The alarm (`Some(None)`: none), once known from a read or a write. Only this object
    /// writes it, so it never goes stale.
    alarm: Option<Option<i64>>,
    /// The running event's write set; empty between events.
    writes: WriteSet,
    /// A commit of this view failed while the event ran (before a call): the cache may hold
    /// writes that are not durable and never will be. The view must be replaced.
    poisoned: bool,
    /// An alarm runs in the running event (it cleared the alarm): its alarm changes commit only
    /// with the event's end, so a crash before that fires the alarm again, and a failure can
    /// undo them. Otherwise they commit with the writes made before a call, as the rest.
    alarm_running: bool,
    /// The object's SQL database, once used; dropped whenever it may be ahead of storage.
    pub(super) sql: Option<SqlDatabase>,
    /// What the guest's pragmas set on its SQL connection: set again on each reopen.
    pub(super) sql_settings: super::sql::Settings,
    /// Where the SQL connection's heap is counted (none in tests of storage alone).
    pub(super) memory: Option<Arc<dyn MemoryAccount>>,
    /// The object's name, once known (it was addressed by it, or read from storage).
    name: Option<Arc<str>>,
    /// The import mark (`Some(None)`: none), once known.
    import_mark: Option<Option<Bytes>>,
    /// Whether the name is known to be stored (its entry and its index entry): then no write
    /// set needs to carry it.
    name_stored: bool,
    /// Bytes (keys and values) its reads returned and its events wrote, since the last
    /// `take_traffic` (metering).
    read_bytes: u64,
    written_bytes: u64,
}

impl ObjectStorage {
    pub fn new(store: Store, prefix: Vec<u8>, limits: &Limits) -> Self {
        Self {
            store,
            prefix,
            max_key_bytes: limits.max_key_bytes,
            max_value_bytes: limits.max_value_bytes,
            max_batch_keys: limits.max_batch_keys,
            max_list_bytes: limits.max_list_bytes,
            max_event_write_bytes: limits.max_event_write_bytes,
            max_sql_heap_bytes: limits.instance_memory_bytes,
            cache: ReadCache::default(),
            alarm: None,
            writes: WriteSet::default(),
            poisoned: false,
            alarm_running: false,
            sql: None,
            sql_settings: Default::default(),
            memory: None,
            name: None,
            import_mark: None,
            name_stored: false,
            read_bytes: 0,
            written_bytes: 0,
        }
    }

    /// The bytes its reads returned and its events wrote since the last call (metering).
    pub fn take_traffic(&mut self) -> (u64, u64) {
        let traffic = (self.read_bytes, self.written_bytes);
        (self.read_bytes, self.written_bytes) = (0, 0);
        traffic
    }

    /// The object was addressed by `name`: its first durable write will store it.
    pub fn learn_name(&mut self, name: &str) {
        if self.name.is_none() {
            self.name = Some(name.into());
        }
    }

    /// The object's name: the one it was addressed by, or else the one it stored at its first
    /// write (read once; `None` for an object made by `newUniqueId` or never written).
    pub fn name(&mut self) -> Option<Arc<str>> {
        if self.name.is_none()
            && let Ok(Some(stored)) = self.read_internal(&schema::NAME_KEY)
        {
            self.name = Some(String::from_utf8_lossy(&stored).into());
            self.name_stored = true;
        }
        self.name.clone()
    }

    /// Counts the SQL connection's heap in `account` (the runtime's memory budget).
    pub fn with_memory(mut self, account: Arc<dyn MemoryAccount>) -> Self {
        self.memory = Some(account);
        self
    }

    /// Starts a new event's write set.
    pub fn begin_event(&mut self) {
        self.writes.begin();
        self.alarm_running = false;
    }

    /// An alarm runs in this event: see `alarm_running`.
    pub fn alarm_runs(&mut self) {
        self.alarm_running = true;
    }

    /// Drops the running event's writes (trap, error), SQL ones included.
    pub fn abort_event(&mut self) {
        self.writes.abort();
        self.sql = None;
    }

    /// Ends the event: its writes (transactions still open are rolled back) move into the cache
    /// as not yet durable, and come back as ops to commit. `None` if it wrote nothing.
    pub fn finish_event(&mut self) -> Option<EventWrites> {
        let layer = self.writes.finish().filter(|layer| !layer.is_empty())?;
        let seq = self.cache.next_seq();
        let mut ops = Vec::with_capacity(layer.writes.len() + 1);
        if layer.cleared {
            // Its name goes with everything else; it comes back with the next write.
            let name = self.name();
            ops.push(WriteOp::DeletePrefix {
                table: Table::Data,
                prefix: self.prefix.clone(),
            });
            self.cache.cleared(seq);
            self.name_stored = false;
            self.import_mark = Some(None);
            if let Some(name) = name {
                ops.push(WriteOp::Delete {
                    table: Table::Names,
                    key: self.name_index_key(&name),
                });
            }
        }
        let stores_something =
            layer.writes.values().any(Option::is_some) || matches!(layer.alarm, Some(Some(_)));
        if stores_something && !self.name_stored {
            self.store_name(&mut ops, seq);
        }
        if let Some(at_ms) = layer.alarm {
            ops.push(WriteOp::SetAlarm {
                object: self.prefix.clone(),
                at_ms,
            });
            self.alarm = Some(at_ms);
        }
        for (key, value) in layer.writes {
            self.written_bytes += (key.len() + value.as_ref().map_or(0, Bytes::len)) as u64;
            if key == schema::IMPORT_KEY {
                self.import_mark = Some(value.clone());
            }
            let full = self.full_key(&key);
            ops.push(match &value {
                Some(v) => WriteOp::Put {
                    table: Table::Data,
                    key: full,
                    value: v.clone(),
                },
                None => WriteOp::Delete {
                    table: Table::Data,
                    key: full,
                },
            });
            self.cache.remember(key, value, seq);
        }
        Some(EventWrites { seq, ops })
    }

    /// Adds the writes that store the object's name, if it has one not stored yet: its own
    /// entry and the class's index entry, in the commit of its first durable write.
    fn store_name(&mut self, ops: &mut Vec<WriteOp>, seq: u64) {
        let Some(name) = self.name.clone() else {
            return;
        };
        // Read through the cache: once per view, and nothing when the name was read already.
        if !matches!(self.read_internal(&schema::NAME_KEY), Ok(Some(_))) {
            let value = Bytes::copy_from_slice(name.as_bytes());
            ops.push(WriteOp::Put {
                table: Table::Data,
                key: self.full_key(&schema::NAME_KEY),
                value: value.clone(),
            });
            ops.push(WriteOp::Put {
                table: Table::Names,
                key: self.name_index_key(&name),
                value: Bytes::copy_from_slice(&self.prefix[schema::CLASS_PREFIX_LEN..]),
            });
            self.cache
                .remember(schema::NAME_KEY.to_vec(), Some(value), seq);
        }
        self.name_stored = true;
    }

    /// The key of `name` in the class's name index.
    fn name_index_key(&self, name: &str) -> Vec<u8> {
        [&self.prefix[..schema::CLASS_PREFIX_LEN], name.as_bytes()].concat()
    }

    /// Hands over what the running event wrote so far, as a unit of its own, and goes on with an
    /// empty write set (before a call leaves: the output gate). The event's alarm change stays
    /// for its end (a failed alarm handler must still be able to keep its alarm). Not allowed
    /// inside an open transaction.
    pub fn commit_so_far(&mut self) -> Result<Option<EventWrites>, StorageError> {
        if self.writes.in_transaction() {
            return Err(StorageError::InvalidArgument(
                "a call cannot leave inside a storage transaction: commit or roll it back first"
                    .into(),
            ));
        }
        let held = self.alarm_running;
        let alarm = if held { self.writes.take_alarm() } else { None };
        let writes = self.finish_event();
        self.begin_event();
        if held {
            self.alarm_running = true;
            self.writes.keep_alarm(alarm);
        }
        Ok(writes)
    }

    /// Marks the view unusable after one of its commits failed mid-event.
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The write set `seq` (and every earlier one) is durable.
    pub fn mark_durable(&mut self, seq: u64) {
        self.cache.mark_durable(seq);
    }

    /// Whether some write set handed out is not durable yet.
    pub fn has_pending_writes(&self) -> bool {
        self.cache.has_pending_writes()
    }

    pub fn get(&mut self, key: &str) -> Result<Option<Bytes>, StorageError> {
        self.check_key(key)?;
        let value = self.read(key.as_bytes())?;
        self.read_bytes += value.as_ref().map_or(0, |v| (key.len() + v.len()) as u64);
        Ok(value)
    }

    /// The existing entries among `keys`, in key order.
    pub fn get_many(&mut self, keys: &[String]) -> Result<Vec<(String, Bytes)>, StorageError> {
        self.check_batch(keys.len())?;
        keys.iter().try_for_each(|k| self.check_key(k))?;
        let mut found = BTreeMap::new();
        for key in keys {
            if let Some(value) = self.read(key.as_bytes())? {
                self.read_bytes += (key.len() + value.len()) as u64;
                found.insert(key.clone(), value);
            }
        }
        Ok(found.into_iter().collect())
    }

    /// Whether the object stores nothing (its name aside): no key, no SQL database, no alarm.
    pub fn stores_nothing(&mut self) -> Result<bool, StorageError> {
        let first = ListOptions {
            limit: Some(1),
            ..ListOptions::default()
        };
        Ok(self.list(&first)?.is_empty()
            && self.read_internal(&super::sql::pages::SIZE_KEY)?.is_none()
            && self.get_alarm()?.is_none())
    }

    /// The token of an import into the object that has not finished (`None`: none). Read from
    /// storage once, then known (only the object's own events write it): every event asks.
    pub fn import_marker(&mut self) -> Result<Option<Bytes>, StorageError> {
        if let Some(known) = self.writes.lookup(&schema::IMPORT_KEY) {
            return Ok(known);
        }
        if let Some(known) = &self.import_mark {
            return Ok(known.clone());
        }
        let mark = self.read_through(&schema::IMPORT_KEY, false)?;
        self.import_mark = Some(mark.clone());
        Ok(mark)
    }

    /// Marks the object as holding an import that has not finished (`None`: it finished).
    pub fn set_import_marker(&mut self, token: Option<Bytes>) -> Result<(), StorageError> {
        self.write_internal(&schema::IMPORT_KEY, token)
    }

    /// Puts an imported entry (`storage::import` checked it): a user key, within the limits, or
    /// an entry of the SQL database (whose connection then reopens from the pages).
    pub fn put_entry(&mut self, key: &[u8], value: Bytes) -> Result<(), StorageError> {
        if key.first() == Some(&schema::INTERNAL) {
            self.sql = None;
            return self.write_internal(key, Some(value));
        }
        let key = std::str::from_utf8(key)
            .map_err(|_| StorageError::InvalidArgument("a key is not UTF-8".into()))?;
        self.put(key, value)
    }

    pub fn put(&mut self, key: &str, value: Bytes) -> Result<(), StorageError> {
        self.check_key(key)?;
        self.check_value(&value)?;
        self.check_write_set(write_size(key.as_bytes(), Some(&value)))?;
        self.write(key, Some(value))?;
        Ok(())
    }

    /// All or nothing: every entry is checked before any is written.
    pub fn put_many(&mut self, entries: Vec<(String, Bytes)>) -> Result<(), StorageError> {
        self.check_batch(entries.len())?;
        let mut size = 0;
        for (key, value) in &entries {
            self.check_key(key)?;
            self.check_value(value)?;
            size += write_size(key.as_bytes(), Some(value));
        }
        self.check_write_set(size)?;
        for (key, value) in entries {
            self.write(&key, Some(value))?;
        }
        Ok(())
    }

    pub fn delete(&mut self, key: &str) -> Result<bool, StorageError> {
        self.check_key(key)?;
        self.check_write_set(key.len())?;
        let existed = self.read(key.as_bytes())?.is_some();
        self.write(key, None)?;
        Ok(existed)
    }

    pub fn delete_many(&mut self, keys: &[String]) -> Result<u32, StorageError> {
        self.check_batch(keys.len())?;
        keys.iter().try_for_each(|k| self.check_key(k))?;
        self.check_write_set(keys.iter().map(String::len).sum())?;
        let mut existed = 0;
        for key in keys {
            if self.read(key.as_bytes())?.is_some() {
                existed += 1;
            }
            self.write(key, None)?;
        }
        Ok(existed)
    }

    pub fn delete_all(&mut self) -> Result<(), StorageError> {
        self.writes.clear()?;
        self.sql = None;
        Ok(())
    }

    pub fn transaction_begin(&mut self) -> Result<(), StorageError> {
        self.writes.begin_transaction()
    }

    pub fn transaction_commit(&mut self) -> Result<(), StorageError> {
        self.writes.commit_transaction()
    }

    pub fn transaction_rollback(&mut self) -> Result<(), StorageError> {
        self.writes.rollback_transaction()?;
        // SQL written inside the transaction is undone with it.
        self.sql = None;
        Ok(())
    }

    /// The time the alarm is set for, as this event sees it.
    pub fn get_alarm(&mut self) -> Result<Option<i64>, StorageError> {
        if let Some(at) = self.writes.alarm() {
            return Ok(at);
        }
        if let Some(known) = self.alarm {
            return Ok(known);
        }
        let at_ms = self.disk_alarm()?;
        self.alarm = Some(at_ms);
        Ok(at_ms)
    }

    pub fn set_alarm(&mut self, at_ms: i64) -> Result<(), StorageError> {
        self.writes.set_alarm(Some(at_ms))
    }

    pub fn delete_alarm(&mut self) -> Result<(), StorageError> {
        self.writes.set_alarm(None)
    }

    /// Forgets whatever the running event did to the alarm (a failed alarm handler: the alarm
    /// that failed stays set, to be retried).
    pub fn discard_alarm_change(&mut self) {
        self.writes.discard_alarm_change();
    }

    /// Reads one key through write set, cache and redb; remembers what redb said.
    fn read(&mut self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        self.read_through(key, true)
    }

    /// The most bytes one read may return (a `list`, an SQL result).
    pub(super) fn max_list_bytes(&self) -> usize {
        self.max_list_bytes
    }

    /// Reads an internal entry (a key no user key can be: the SQL pages, see `sql::pages`)
    /// like any other, without caching what redb says (SQLite keeps its own page cache).
    pub(super) fn read_internal(&mut self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        self.read_through(key, false)
    }

    /// Writes (`None`: deletes) an internal entry in the running event's write set, within
    /// its size limit.
    pub(super) fn write_internal(
        &mut self,
        key: &[u8],
        value: Option<Bytes>,
    ) -> Result<(), StorageError> {
        self.check_write_set(write_size(key, value.as_ref()))?;
        self.writes.insert(key, value)
    }

    fn read_through(&mut self, key: &[u8], remember: bool) -> Result<Option<Bytes>, StorageError> {
        if let Some(known) = self.writes.lookup(key) {
            return Ok(known);
        }
        if let Some(known) = self.cache.lookup(key) {
            return Ok(known);
        }
        let value = self.disk_get(key)?;
        if remember {
            self.cache.trim();
            self.cache.remember(key.to_vec(), value.clone(), 0);
        }
        Ok(value)
    }

    /// Writes (`None`: deletes) `key` in the running event's write set (its size checked).
    fn write(&mut self, key: &str, value: Option<Bytes>) -> Result<(), StorageError> {
        self.writes.insert(key.as_bytes(), value)
    }

    /// Whether `more` bytes still fit in the running event's write set.
    fn check_write_set(&self, more: usize) -> Result<(), StorageError> {
        let total = self.writes.bytes() + more;
        if total > self.max_event_write_bytes {
            return Err(StorageError::InvalidArgument(format!(
                "this event's writes would hold {total} bytes, over the limit of {} bytes one \
                 event may write",
                self.max_event_write_bytes
            )));
        }
        Ok(())
    }

    fn full_key(&self, key: &[u8]) -> Vec<u8> {
        let mut full = Vec::with_capacity(self.prefix.len() + key.len());
        full.extend_from_slice(&self.prefix);
        full.extend_from_slice(key);
        full
    }

    fn disk_get(&self, key: &[u8]) -> Result<Option<Bytes>, StorageError> {
        let reader = self.store.reader().map_err(internal)?;
        reader
            .get(Table::Data, self.full_key(key).as_slice())
            .map_err(internal)
    }

    fn disk_alarm(&self) -> Result<Option<i64>, StorageError> {
        let reader = self.store.reader().map_err(internal)?;
        reader.alarm(&self.prefix).map_err(internal)
    }

    fn check_key(&self, key: &str) -> Result<(), StorageError> {
        if key.len() > self.max_key_bytes {
            return Err(StorageError::KeyTooLarge {
                limit: self.max_key_bytes as u64,
                actual: key.len() as u64,
            });
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), StorageError> {
        if value.len() > self.max_value_bytes {
            return Err(StorageError::ValueTooLarge {
                limit: self.max_value_bytes as u64,
                actual: value.len() as u64,
            });
        }
        Ok(())
    }

    fn check_batch(&self, len: usize) -> Result<(), StorageError> {
        if len > self.max_batch_keys {
            return Err(StorageError::TooManyKeys {
                limit: self.max_batch_keys as u64,
                actual: len as u64,
            });
        }
        Ok(())
    }
}

pub(super) fn internal(error: impl std::fmt::Display) -> StorageError {
    StorageError::Internal(error.to_string())
}
