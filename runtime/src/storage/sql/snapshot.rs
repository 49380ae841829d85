//! An object's database as one read of storage holds it, never through its live connection: the
//! pages, read at one point in time, are copied into a read-only in-memory SQLite. The
//! inspector routes read tables and rows from it; `duro check` runs `integrity_check` on it.

use std::ops::Bound;

use rusqlite::{Connection, MAIN_DB, OpenFlags};

use super::pages::{self, CHUNK};
use super::{Cursor, SqlError, Value, column_value, fail_plain};
use crate::storage::backend::Reader;
use crate::storage::schema;

/// One table of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: String,
    /// Its `CREATE TABLE` statement.
    pub sql: String,
    pub rows: u64,
}

/// A read-only copy of one object's database.
pub struct Snapshot {
    conn: Connection,
    /// The file's bytes.
    pub size: u64,
}

impl Snapshot {
    /// The database of the object whose keys start with `object` as `txn` sees it; `None` when
    /// it has none. A database over `max_bytes` is refused (it would be copied into memory).
    pub fn read(
        reader: &dyn Reader,
        object: &[u8],
        max_bytes: u64,
    ) -> Result<Option<Self>, SqlError> {
        let storage =
            |e: &dyn std::fmt::Display| SqlError::Failed(format!("reading the database: {e}"));
        let too_large = |size: &dyn std::fmt::Display| {
            SqlError::Failed(format!(
                "the database is {size} bytes; a snapshot copies at most {max_bytes}"
            ))
        };
        // The pages and then the size entry (`[0xFF]['p']...` sorts before `[0xFF]['s']`),
        // read as of one point in time; keys add a little to the pages' bytes.
        let start = [object, &pages::CHUNKS].concat();
        let end = [object, &pages::SIZE_KEY].concat();
        let cap = max_bytes.saturating_add(max_bytes / 8).saturating_add(4096);
        let entries = reader
            .range_at_once(
                schema::Table::Data,
                (Bound::Included(start), Bound::Included(end.clone())),
                cap,
            )
            .map_err(|e| storage(&e))?
            .ok_or_else(|| too_large(&format!("more than {max_bytes}")))?;
        let size = match entries.last() {
            Some((key, value)) if *key == end => pages::decode_size(value),
            _ => return Ok(None),
        };
        if size > max_bytes {
            return Err(too_large(&size));
        }
        let len =
            usize::try_from(size).map_err(|_| SqlError::failed("the database is too large"))?;
        let mut file = vec![0u8; len];
        for (key, value) in &entries {
            let Some(index) = pages::chunk_index(&key[object.len()..]) else {
                continue;
            };
            let at = (index as usize).saturating_mul(CHUNK);
            if at < len {
                let n = value.len().min(len - at);
                file[at..at + n].copy_from_slice(&value[..n]);
            }
        }
        super::heap::init();
        let mut conn = Connection::open_with_flags(
            ":memory:",
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(fail_plain)?;
        conn.deserialize_read_exact(MAIN_DB, file.as_slice(), len, true)
            .map_err(fail_plain)?;
        Ok(Some(Self { conn, size }))
    }

    /// The user's tables (not SQLite's own), by name, with their row counts.
    pub fn tables(&self) -> Result<Vec<Table>, SqlError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
            )
            .map_err(fail_plain)?;
        let named = statement
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(fail_plain)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail_plain)?;
        named
            .into_iter()
            .map(|(name, sql)| {
                let rows = self
                    .conn
                    .query_row(
                        &format!("SELECT count(*) FROM {}", quoted(&name)),
                        [],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(fail_plain)?;
                Ok(Table {
                    name,
                    sql,
                    rows: rows.max(0) as u64,
                })
            })
            .collect()
    }

    /// Rows of `table` in rowid (or primary key) order: `limit` after the first `offset`.
    pub fn rows(&self, table: &str, offset: u64, limit: u64) -> Result<Cursor, SqlError> {
        let query = format!("SELECT * FROM {} LIMIT ? OFFSET ?", quoted(table));
        let mut statement = self.conn.prepare(&query).map_err(fail_plain)?;
        let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
        let width = columns.len();
        let rows = statement
            .query_map([limit as i64, offset as i64], |row| {
                (0..width)
                    .map(|i| row.get_ref(i).map(column_value))
                    .collect::<Result<Vec<Value>, _>>()
            })
            .map_err(fail_plain)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail_plain)?;
        Ok(Cursor {
            columns,
            rows_read: rows.len() as u64,
            rows,
            rows_written: 0,
        })
    }

    /// SQLite's `integrity_check`: `["ok"]`, or the problems it found.
    pub fn integrity_check(&self) -> Result<Vec<String>, SqlError> {
        let mut statement = self
            .conn
            .prepare("PRAGMA integrity_check")
            .map_err(fail_plain)?;
        statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(fail_plain)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail_plain)
    }
}

/// `name` as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Whether the file at `path` is an SQLite database that passes `quick_check` (an import's
/// pages, assembled, before any of them is written). Read-only, through SQLite's own file VFS.
pub fn check_file(path: &std::path::Path) -> Result<(), String> {
    super::heap::init();
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| fail_plain(e).to_string())?;
    let found = conn
        .prepare("PRAGMA quick_check")
        .and_then(|mut statement| {
            let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
            rows.collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(|e| fail_plain(e).to_string())?;
    if found != ["ok"] {
        return Err(format!(
            "it fails SQLite's quick_check: {}",
            found.join("; ")
        ));
    }
    Ok(())
}
