//! Typed storage over the `duro:object/storage` import: values are JSON (serde_json).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::duro::object::storage as raw;
use crate::{Error, Result};

pub use raw::StorageError;

/// A readable sentence for a storage error (the generated `Display` is the debug form).
pub(crate) fn describe(error: &StorageError) -> String {
    match error {
        StorageError::KeyTooLarge(l) => {
            format!("key is {} bytes, the limit is {}", l.actual, l.limit)
        }
        StorageError::ValueTooLarge(l) => {
            format!("value is {} bytes, the limit is {}", l.actual, l.limit)
        }
        StorageError::TooManyKeys(l) => {
            format!("{} keys in one call, the limit is {}", l.actual, l.limit)
        }
        StorageError::ResultTooLarge(l) => format!("list result exceeds {} bytes", l.limit),
        StorageError::InvalidArgument(reason) => format!("invalid argument: {reason}"),
        StorageError::NoTransaction => "no open transaction".to_string(),
        StorageError::Internal(reason) => format!("internal: {reason}"),
    }
}

/// Options of [`Storage::list`]; build with the methods.
#[derive(Debug, Clone)]
pub struct ListOptions(raw::ListOptions);

impl Default for ListOptions {
    fn default() -> Self {
        Self(raw::ListOptions {
            prefix: None,
            start: None,
            start_after: None,
            end: None,
            reverse: false,
            limit: None,
        })
    }
}

impl ListOptions {
    /// All keys, ascending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys starting with `prefix`.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.0.prefix = Some(prefix.into());
        self
    }

    /// Only keys `>= start`.
    pub fn start(mut self, start: &str) -> Self {
        self.0.start = Some(start.into());
        self
    }

    /// Only keys `> key`.
    pub fn start_after(mut self, key: &str) -> Self {
        self.0.start_after = Some(key.into());
        self
    }

    /// Only keys `< end`.
    pub fn end(mut self, end: &str) -> Self {
        self.0.end = Some(end.into());
        self
    }

    /// Descending order.
    pub fn reverse(mut self) -> Self {
        self.0.reverse = true;
        self
    }

    /// At most `limit` entries.
    pub fn limit(mut self, limit: u32) -> Self {
        self.0.limit = Some(limit);
        self
    }
}

/// The object's storage. Writes of one event commit together; its response leaves only once
/// they are durable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage {
    _private: (),
}

impl Storage {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The value under `key`, decoded from JSON.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        decode_opt(self.get_bytes(key)?)
    }

    /// The raw bytes under `key`.
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(raw::get(key)?)
    }

    /// The existing entries among `keys`.
    pub fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<BTreeMap<String, T>> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        raw::get_many(&keys)?
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v)?)))
            .collect()
    }

    /// Stores `value` as JSON under `key`.
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.put_bytes(key, &serde_json::to_vec(value)?)
    }

    /// Stores raw bytes under `key`.
    pub fn put_bytes(&self, key: &str, value: &[u8]) -> Result<()> {
        Ok(raw::put(key, value)?)
    }

    /// Stores every entry, or none.
    pub fn put_many<T: Serialize>(&self, entries: &[(&str, T)]) -> Result<()> {
        let entries = entries
            .iter()
            .map(|(k, v)| Ok((k.to_string(), serde_json::to_vec(v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(raw::put_many(&entries)?)
    }

    /// Deletes `key`; whether it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(raw::delete(key)?)
    }

    /// Deletes `keys`; how many existed.
    pub fn delete_many(&self, keys: &[&str]) -> Result<u32> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Ok(raw::delete_many(&keys)?)
    }

    /// Entries in key order, decoded from JSON.
    pub fn list<T: DeserializeOwned>(&self, options: ListOptions) -> Result<Vec<(String, T)>> {
        self.list_bytes(options)?
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v)?)))
            .collect()
    }

    /// Entries in key order, raw bytes.
    pub fn list_bytes(&self, options: ListOptions) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(raw::list(&options.0)?)
    }

    /// Deletes every key of this object.
    pub fn delete_all(&self) -> Result<()> {
        Ok(raw::delete_all()?)
    }

    /// The time (ms since the Unix epoch) the object's alarm is set for, if any.
    pub fn get_alarm(&self) -> Result<Option<i64>> {
        Ok(raw::get_alarm()?)
    }

    /// Sets the object's one alarm (replacing any other) to fire at `epoch_ms`; a time in the
    /// past fires at once. Commits with the event's other writes.
    pub fn set_alarm(&self, epoch_ms: i64) -> Result<()> {
        Ok(raw::set_alarm(epoch_ms)?)
    }

    /// Cancels the object's alarm, if any.
    pub fn delete_alarm(&self) -> Result<()> {
        Ok(raw::delete_alarm()?)
    }

    /// Runs `body` in a transaction: its writes are kept if it returns `Ok`, dropped if `Err`.
    pub fn transaction<R>(&self, body: impl FnOnce(&Storage) -> Result<R>) -> Result<R> {
        raw::transaction_begin()?;
        match body(self) {
            Ok(value) => {
                raw::transaction_commit()?;
                Ok(value)
            }
            Err(error) => {
                raw::transaction_rollback()?;
                Err(error)
            }
        }
    }
}

fn decode_opt<T: DeserializeOwned>(bytes: Option<Vec<u8>>) -> Result<Option<T>> {
    bytes
        .map(|b| serde_json::from_slice(&b).map_err(Error::from))
        .transpose()
}
