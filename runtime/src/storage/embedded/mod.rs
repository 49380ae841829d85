//! The single-node engine: one redb database in the data dir, with a write-ahead log in front of
//! it (`wal`) so that a group commit costs one small `fdatasync`. Reads ([`Redb`]) are redb read
//! transactions; groups are made durable by [`sink::RedbSink`]; `backup`, `check` and the
//! power-cut simulation are this engine's own.

pub(crate) mod apply;
pub mod backup;
pub mod check;
#[cfg(test)]
mod powercut;
pub mod sink;
pub mod wal;

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use ::redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
};
use bytes::Bytes;

use super::backend::{Alarms, Backend, BackendError, Entries, Range, Reader, Schedule};
use super::schema::{self, AlarmRetry, Table};

/// File name of the database inside the data dir.
pub const DB_FILE: &str = "duro.redb";

/// Opens (or creates) the database in `data_dir` and makes sure every table exists.
pub fn open(data_dir: &Path) -> Result<Arc<Database>, ::redb::Error> {
    let db = Database::create(data_dir.join(DB_FILE))?;
    apply::create_tables(&db)?;
    Ok(Arc::new(db))
}

/// Reads one value of a string-keyed table (classes, components, meta) outside any event.
pub fn read_str_table(
    db: &Database,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<Vec<u8>>, ::redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(table)?;
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// The redb engine's reads.
pub struct Redb(pub Arc<Database>);

impl Backend for Redb {
    fn reader(&self) -> Result<Box<dyn Reader>, BackendError> {
        Ok(Box::new(RedbReader(self.0.begin_read().map_err(fail)?)))
    }

    fn redb(&self) -> Option<&Arc<Database>> {
        Some(&self.0)
    }

    fn name(&self) -> &'static str {
        "redb"
    }
}

/// One redb read transaction: a point in time.
pub struct RedbReader(pub ReadTransaction);

fn fail(error: impl std::fmt::Display) -> BackendError {
    BackendError::new(error)
}

type OwnedGuard = ::redb::OwnedAccessGuard<&'static [u8]>;

impl RedbReader {
    fn bytes_table(&self, table: Table) -> Result<BytesTable, BackendError> {
        Ok(match table {
            Table::Data => BytesTable::Data(self.0.open_table(schema::DATA).map_err(fail)?),
            Table::Classes => BytesTable::Named(self.0.open_table(schema::CLASSES).map_err(fail)?),
            Table::Components => {
                BytesTable::Named(self.0.open_table(schema::COMPONENTS).map_err(fail)?)
            }
            Table::Meta => BytesTable::Named(self.0.open_table(schema::META).map_err(fail)?),
            Table::Names => BytesTable::Data(self.0.open_table(schema::NAMES).map_err(fail)?),
        })
    }
}

/// A byte-keyed table (data, names) or a string-keyed one, opened.
enum BytesTable {
    Data(ReadOnlyTable<&'static [u8], &'static [u8]>),
    Named(ReadOnlyTable<&'static str, &'static [u8]>),
}

fn bound_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn str_bound(bound: &Bound<Vec<u8>>) -> Result<Bound<&str>, BackendError> {
    fn s(k: &[u8]) -> Result<&str, BackendError> {
        std::str::from_utf8(k).map_err(fail)
    }
    Ok(match bound {
        Bound::Included(k) => Bound::Included(s(k)?),
        Bound::Excluded(k) => Bound::Excluded(s(k)?),
        Bound::Unbounded => Bound::Unbounded,
    })
}

impl Reader for RedbReader {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Bytes>, BackendError> {
        let value = match self.bytes_table(table)? {
            BytesTable::Data(t) => t.get(key).map_err(fail)?,
            BytesTable::Named(t) => {
                let Ok(key) = std::str::from_utf8(key) else {
                    return Ok(None);
                };
                t.get(key).map_err(fail)?
            }
        };
        Ok(value.map(|v| Bytes::copy_from_slice(v.value())))
    }

    fn range(&self, table: Table, range: Range, reverse: bool) -> Result<Entries, BackendError> {
        match self.bytes_table(table)? {
            BytesTable::Data(t) => {
                // An owned range pins the snapshot after the transaction handle is gone.
                let entries = t
                    .range_owned::<&[u8]>((bound_ref(&range.0), bound_ref(&range.1)))
                    .map_err(fail)?;
                let entry = |e: Result<(OwnedGuard, OwnedGuard), ::redb::StorageError>| {
                    e.map_err(fail)
                        .map(|(k, v)| (k.value().to_vec(), Bytes::copy_from_slice(v.value())))
                };
                Ok(if reverse {
                    Box::new(entries.rev().map(entry))
                } else {
                    Box::new(entries.map(entry))
                })
            }
            BytesTable::Named(t) => {
                // Small tables (classes, components, meta): read at once.
                let bounds = (str_bound(&range.0)?, str_bound(&range.1)?);
                let mut out = Vec::new();
                for entry in t.range::<&str>(bounds).map_err(fail)? {
                    let (k, v) = entry.map_err(fail)?;
                    out.push(Ok((
                        k.value().as_bytes().to_vec(),
                        Bytes::copy_from_slice(v.value()),
                    )));
                }
                if reverse {
                    out.reverse();
                }
                Ok(Box::new(out.into_iter()))
            }
        }
    }

    fn alarm(&self, object: &[u8]) -> Result<Option<i64>, BackendError> {
        let table = self.0.open_table(schema::ALARMS).map_err(fail)?;
        Ok(table.get(object).map_err(fail)?.map(|v| v.value()))
    }

    fn alarms(&self, range: Range) -> Result<Alarms, BackendError> {
        let table = self.0.open_table(schema::ALARMS).map_err(fail)?;
        let entries = table
            .range_owned::<&[u8]>((bound_ref(&range.0), bound_ref(&range.1)))
            .map_err(fail)?;
        Ok(Box::new(entries.map(|e| {
            e.map_err(fail)
                .map(|(k, v)| (k.value().to_vec(), v.value()))
        })))
    }

    fn schedule(&self) -> Result<Schedule, BackendError> {
        let table = self.0.open_table(schema::ALARM_SCHEDULE).map_err(fail)?;
        let entries = table.range_owned::<&[u8]>(..).map_err(fail)?;
        Ok(Box::new(entries.filter_map(|e| {
            match e {
                Err(e) => Some(Err(fail(e))),
                Ok((key, _)) => schema::decode_schedule_key(key.value())
                    .map(|(at, object)| Ok((at, object.to_vec()))),
            }
        })))
    }

    fn retries(&self) -> Result<Vec<(Vec<u8>, AlarmRetry)>, BackendError> {
        let table = self.0.open_table(schema::ALARM_RETRIES).map_err(fail)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(fail)? {
            let (object, value) = entry.map_err(fail)?;
            if let Some(retry) = AlarmRetry::decode(value.value()) {
                out.push((object.value().to_vec(), retry));
            }
        }
        Ok(out)
    }
}
