//! Typed storage over the `duro:object/storage` import: values are JSON (serde_json).

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wit::duro::object::storage as raw;
use crate::{Error, Result};

/// Why a storage call failed: a limit (with the actual size and the limit), a bad argument,
/// no open transaction, or an internal error.
///
/// ```no_run
/// let storage = duro_sdk::State::default().storage();
/// match storage.put("big", &"x".repeat(200_000)) {
///     Err(duro_sdk::Error::Storage(duro_sdk::StorageError::ValueTooLarge(limit))) => {
///         println!("too large: {} > {}", limit.actual, limit.limit)
///     }
///     other => other?,
/// }
/// # Ok::<(), duro_sdk::Error>(())
/// ```
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
///
/// ```no_run
/// let storage = duro_sdk::State::default().storage();
/// // The 10 newest entries under "log/" (keys sort as text: use zero-padded numbers).
/// let recent: Vec<(String, String)> =
///     storage.list(duro_sdk::ListOptions::new().prefix("log/").reverse().limit(10))?;
/// # Ok::<(), duro_sdk::Error>(())
/// ```
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
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let everything: Vec<(String, serde_json::Value)> = storage.list(duro_sdk::ListOptions::new())?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Only keys starting with `prefix`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let users: Vec<(String, String)> = storage.list(duro_sdk::ListOptions::new().prefix("user:"))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.0.prefix = Some(prefix.into());
        self
    }

    /// Only keys `>= start`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let from_m: Vec<(String, i64)> = storage.list(duro_sdk::ListOptions::new().start("m"))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn start(mut self, start: &str) -> Self {
        self.0.start = Some(start.into());
        self
    }

    /// Only keys `> key`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// // Paging: the next 100 after the last key of the previous page.
    /// let page: Vec<(String, i64)> =
    ///     storage.list(duro_sdk::ListOptions::new().start_after("item:0099").limit(100))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn start_after(mut self, key: &str) -> Self {
        self.0.start_after = Some(key.into());
        self
    }

    /// Only keys `< end`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let a_to_l: Vec<(String, i64)> = storage.list(duro_sdk::ListOptions::new().start("a").end("m"))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn end(mut self, end: &str) -> Self {
        self.0.end = Some(end.into());
        self
    }

    /// Descending order.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let last: Vec<(String, i64)> = storage.list(duro_sdk::ListOptions::new().reverse().limit(1))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn reverse(mut self) -> Self {
        self.0.reverse = true;
        self
    }

    /// At most `limit` entries.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let first_five: Vec<(String, i64)> = storage.list(duro_sdk::ListOptions::new().limit(5))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn limit(mut self, limit: u32) -> Self {
        self.0.limit = Some(limit);
        self
    }
}

/// The object's storage. Writes of one event commit together; its response leaves only once
/// they are durable.
///
/// ```no_run
/// let storage = duro_sdk::State::default().storage();
/// let count = storage.get::<i64>("count")?.unwrap_or(0) + 1;
/// storage.put("count", &count)?;
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Storage {
    _private: (),
}

impl Storage {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// The object's SQL database (Cloudflare's `ctx.storage.sql`), committed with the
    /// key-value writes of the same event.
    ///
    /// ```no_run
    /// let sql = duro_sdk::State::default().storage().sql();
    /// sql.exec("CREATE TABLE IF NOT EXISTS t (n INTEGER)", &[])?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn sql(&self) -> crate::Sql {
        crate::Sql::new()
    }

    /// The value under `key`, decoded from JSON.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// #[derive(serde::Deserialize)]
    /// struct Profile { name: String }
    /// let profile: Option<Profile> = storage.get("profile")?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        decode_opt(self.get_bytes(key)?)
    }

    /// The raw bytes under `key`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let avatar: Option<Vec<u8>> = storage.get_bytes("avatar.png")?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(raw::get(key)?)
    }

    /// The existing entries among `keys`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let found = storage.get_many::<i64>(&["a", "b", "c"])?;
    /// let total: i64 = found.values().sum();
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn get_many<T: DeserializeOwned>(&self, keys: &[&str]) -> Result<BTreeMap<String, T>> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        raw::get_many(&keys)?
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v)?)))
            .collect()
    }

    /// Stores `value` as JSON under `key`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// #[derive(serde::Serialize)]
    /// struct Profile { name: String }
    /// storage.put("profile", &Profile { name: "Ada".into() })?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn put<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.put_bytes(key, &serde_json::to_vec(value)?)
    }

    /// Stores raw bytes under `key`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// storage.put_bytes("avatar.png", &[0x89, b'P', b'N', b'G'])?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn put_bytes(&self, key: &str, value: &[u8]) -> Result<()> {
        Ok(raw::put(key, value)?)
    }

    /// Stores every entry, or none.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// storage.put_many(&[("a", 1), ("b", 2)])?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn put_many<T: Serialize>(&self, entries: &[(&str, T)]) -> Result<()> {
        let entries = entries
            .iter()
            .map(|(k, v)| Ok((k.to_string(), serde_json::to_vec(v)?)))
            .collect::<Result<Vec<_>>>()?;
        Ok(raw::put_many(&entries)?)
    }

    /// Deletes `key`; whether it existed.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let existed = storage.delete("session")?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn delete(&self, key: &str) -> Result<bool> {
        Ok(raw::delete(key)?)
    }

    /// Deletes `keys`; how many existed.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let removed = storage.delete_many(&["a", "b"])?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn delete_many(&self, keys: &[&str]) -> Result<u32> {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        Ok(raw::delete_many(&keys)?)
    }

    /// Entries in key order, decoded from JSON.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// for (key, count) in storage.list::<i64>(duro_sdk::ListOptions::new().prefix("votes:"))? {
    ///     println!("{key}: {count}");
    /// }
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn list<T: DeserializeOwned>(&self, options: ListOptions) -> Result<Vec<(String, T)>> {
        self.list_bytes(options)?
            .into_iter()
            .map(|(k, v)| Ok((k, serde_json::from_slice(&v)?)))
            .collect()
    }

    /// Entries in key order, raw bytes.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// let blobs = storage.list_bytes(duro_sdk::ListOptions::new().prefix("blob:"))?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn list_bytes(&self, options: ListOptions) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(raw::list(&options.0)?)
    }

    /// Deletes every key of this object.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// storage.delete_all()?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn delete_all(&self) -> Result<()> {
        Ok(raw::delete_all()?)
    }

    /// The time (ms since the Unix epoch) the object's alarm is set for, if any.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// if storage.get_alarm()?.is_none() {
    ///     storage.set_alarm(duro_sdk::now_ms() + 60_000)?;
    /// }
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn get_alarm(&self) -> Result<Option<i64>> {
        Ok(raw::get_alarm()?)
    }

    /// Sets the object's one alarm (replacing any other) to fire at `epoch_ms`; a time in the
    /// past fires at once. Commits with the event's other writes.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// // `alarm` runs in ten seconds.
    /// storage.set_alarm(duro_sdk::now_ms() + 10_000)?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn set_alarm(&self, epoch_ms: i64) -> Result<()> {
        Ok(raw::set_alarm(epoch_ms)?)
    }

    /// Cancels the object's alarm, if any.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// storage.delete_alarm()?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn delete_alarm(&self) -> Result<()> {
        Ok(raw::delete_alarm()?)
    }

    /// Runs `body` in a transaction: its writes are kept if it returns `Ok`, dropped if `Err`.
    ///
    /// ```no_run
    /// let storage = duro_sdk::State::default().storage();
    /// // Move 10 from one balance to another, or nothing at all.
    /// storage.transaction(|txn| {
    ///     let from = txn.get::<i64>("alice")?.unwrap_or(0);
    ///     if from < 10 {
    ///         return Err(duro_sdk::Error::http(409, "not enough"));
    ///     }
    ///     txn.put("alice", &(from - 10))?;
    ///     let to = txn.get::<i64>("bob")?.unwrap_or(0);
    ///     txn.put("bob", &(to + 10))
    /// })?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    ///
    /// The transaction covers SQL too ([`sql`](Self::sql)): its statements are undone with it.
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
