//! SQL storage over the `duro:object/sql` import (Cloudflare's `ctx.storage.sql`): one SQLite
//! database per object, kept in the object's storage and committed with its other writes. The
//! host runs the SQL; rows come back typed, and decode into your own types with serde.

use serde::de::DeserializeOwned;

use crate::wit::duro::object::sql as raw;
use crate::{Error, Result};

/// A value bound to a statement or read from a row: SQLite's five types.
///
/// ```
/// use duro_sdk::SqlValue;
/// let bindings: [SqlValue; 4] = ["ann".into(), 42.into(), 1.5.into(), None::<i64>.into()];
/// assert!(matches!(bindings[3], SqlValue::Null));
/// ```
pub use raw::Value as SqlValue;

impl From<i64> for SqlValue {
    fn from(n: i64) -> Self {
        Self::Integer(n)
    }
}

impl From<i32> for SqlValue {
    fn from(n: i32) -> Self {
        Self::Integer(n.into())
    }
}

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        Self::Integer(b.into())
    }
}

impl From<f64> for SqlValue {
    fn from(x: f64) -> Self {
        Self::Real(x)
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        Self::Text(s.to_string())
    }
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&[u8]> for SqlValue {
    fn from(b: &[u8]) -> Self {
        Self::Blob(b.to_vec())
    }
}

impl From<Vec<u8>> for SqlValue {
    fn from(b: Vec<u8>) -> Self {
        Self::Blob(b)
    }
}

impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }
}

/// The object's SQL database: [`Storage::sql`](crate::Storage::sql).
///
/// ```no_run
/// let sql: duro_sdk::Sql = duro_sdk::State::default().storage().sql();
/// let rows: Vec<serde_json::Value> = sql.exec("SELECT 1 AS one", &[])?.to_array()?;
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Sql {
    _private: (),
}

impl Sql {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Runs `query` — one statement, or several separated by `;` with `bindings` applying to
    /// the last — and returns the last one's rows. SQLite's error message, or why duro refused
    /// the statement, comes back as [`Error::Sql`]; a failed call changes nothing.
    ///
    /// ```no_run
    /// let sql = duro_sdk::State::default().storage().sql();
    /// sql.exec("CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY, text TEXT)", &[])?;
    /// sql.exec("INSERT INTO messages (text) VALUES (?)", &["hello".into()])?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn exec(&self, query: &str, bindings: &[SqlValue]) -> Result<Cursor> {
        let cursor = raw::exec(query, bindings).map_err(Error::Sql)?;
        Ok(Cursor(cursor))
    }

    /// Bytes the database takes (its pages in use).
    ///
    /// ```no_run
    /// let bytes = duro_sdk::State::default().storage().sql().database_size()?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn database_size(&self) -> Result<u64> {
        raw::database_size().map_err(Error::Sql)
    }
}

/// What [`Sql::exec`] returns: the rows, read whole, and what the statements cost.
///
/// ```no_run
/// let sql = duro_sdk::State::default().storage().sql();
/// let cursor: duro_sdk::Cursor = sql.exec("DELETE FROM messages WHERE id < ?", &[100.into()])?;
/// println!("deleted {} rows", cursor.rows_written());
/// # Ok::<(), duro_sdk::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cursor(raw::Cursor);

impl Cursor {
    /// The result's column names, in order.
    ///
    /// ```no_run
    /// let sql = duro_sdk::State::default().storage().sql();
    /// let cursor = sql.exec("SELECT id, text FROM messages", &[])?;
    /// assert_eq!(cursor.column_names(), ["id", "text"]);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn column_names(&self) -> &[String] {
        &self.0.columns
    }

    /// The rows as values, in column order.
    ///
    /// ```no_run
    /// # use duro_sdk::SqlValue;
    /// let sql = duro_sdk::State::default().storage().sql();
    /// for row in sql.exec("SELECT id, text FROM messages", &[])?.raw() {
    ///     if let [SqlValue::Integer(id), SqlValue::Text(text)] = row.as_slice() {
    ///         println!("{id}: {text}");
    ///     }
    /// }
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn raw(self) -> Vec<Vec<SqlValue>> {
        self.0.rows
    }

    /// The rows decoded into `T` (a struct whose fields are the column names, or
    /// `serde_json::Value`): integers and reals as numbers, text as strings, blobs as arrays of
    /// bytes, `NULL` as `null`.
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Message { id: i64, text: String }
    /// let sql = duro_sdk::State::default().storage().sql();
    /// let messages: Vec<Message> = sql.exec("SELECT id, text FROM messages", &[])?.to_array()?;
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn to_array<T: DeserializeOwned>(self) -> Result<Vec<T>> {
        let columns = self.0.columns;
        self.0
            .rows
            .into_iter()
            .map(|row| {
                let object: serde_json::Map<String, serde_json::Value> = columns
                    .iter()
                    .cloned()
                    .zip(row.into_iter().map(json))
                    .collect();
                Ok(serde_json::from_value(object.into())?)
            })
            .collect()
    }

    /// The one row, decoded as in [`to_array`](Self::to_array); an error unless there is
    /// exactly one.
    ///
    /// ```no_run
    /// let sql = duro_sdk::State::default().storage().sql();
    /// let count: i64 = sql
    ///     .exec("UPDATE counter SET value = value + 1 RETURNING value", &[])?
    ///     .one::<serde_json::Value>()?["value"]
    ///     .as_i64()
    ///     .unwrap_or(0);
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn one<T: DeserializeOwned>(self) -> Result<T> {
        let mut rows = self.to_array()?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            0 => Err(Error::Sql(
                "Expected exactly one result from SQL query, but got no results.".into(),
            )),
            _ => Err(Error::Sql(
                "Expected exactly one result from SQL query, but got multiple results.".into(),
            )),
        }
    }

    /// Rows the statements read (scanned or returned; SQLite's count, approximate).
    ///
    /// ```no_run
    /// let sql = duro_sdk::State::default().storage().sql();
    /// let read = sql.exec("SELECT count(*) FROM messages", &[])?.rows_read();
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn rows_read(&self) -> u64 {
        self.0.rows_read
    }

    /// Rows the statements inserted, updated or deleted.
    ///
    /// ```no_run
    /// let sql = duro_sdk::State::default().storage().sql();
    /// let updated = sql.exec("UPDATE messages SET text = ''", &[])?.rows_written();
    /// # Ok::<(), duro_sdk::Error>(())
    /// ```
    pub fn rows_written(&self) -> u64 {
        self.0.rows_written
    }
}

fn json(value: SqlValue) -> serde_json::Value {
    match value {
        SqlValue::Null => serde_json::Value::Null,
        SqlValue::Integer(n) => n.into(),
        SqlValue::Real(x) => x.into(),
        SqlValue::Text(s) => s.into(),
        SqlValue::Blob(b) => b.into(),
    }
}
