//! Durable storage on one redb database: schema, per-object views, group commit and its
//! write-ahead log, and a read-only view of the stored objects for operators (`inspect`).
//!
//! Storage sees `(class, object id, key bytes)` and nothing from wasmtime. It never says an output
//! may leave before the fsync covering its writes: that promise is [`Durable`].

mod backup;
mod check;
pub(crate) mod commit;
pub mod inspect;
mod object;
#[cfg(test)]
mod powercut;
pub mod schema;
pub mod sql;
mod wal;

use std::path::Path;
use std::sync::Arc;

pub use backup::copy as backup;
pub use check::{Report, check};
pub use commit::{CommitError, Committer, CommitterThread, Durable, Gated, WriteOp};
pub use object::{EventWrites, ListOptions, ObjectStorage, StorageError};
use redb::{Database, ReadableDatabase};
pub use wal::{Log, LogDamage, LogFile, RecoverError, Recovery, TornRecord, WAL_FILE, fuzz_log};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "duro.redb";

/// Opens (or creates) the database in `data_dir` and makes sure every table exists.
pub fn open(data_dir: &Path) -> Result<Arc<Database>, redb::Error> {
    let db = Database::create(data_dir.join(DB_FILE))?;
    commit::create_tables(&db)?;
    Ok(Arc::new(db))
}

/// Reads one value of a string-keyed table (classes, components, meta) outside any event.
pub fn read_str_table(
    db: &Database,
    table: redb::TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// Every entry of a string-keyed table.
pub fn scan_str_table(
    db: &Database,
    table: redb::TableDefinition<&str, &[u8]>,
) -> Result<Vec<(String, Vec<u8>)>, redb::Error> {
    use redb::ReadableTable;
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    let mut out = Vec::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        out.push((k.value().to_string(), v.value().to_vec()));
    }
    Ok(out)
}
