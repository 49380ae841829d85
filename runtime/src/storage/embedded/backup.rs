//! `duro backup`: a consistent copy of a running server's database.
//!
//! One read transaction is a snapshot of everything the writer has applied, and the writer applies
//! every group before its outputs are released: every acknowledged write is in it. The snapshot
//! is copied, table by table, into a new database file, marked as cleanly stopped, so a server
//! started on a data dir holding only that file serves exactly the snapshot (it recompiles the
//! classes' components once; the compiled cache is not part of a backup).

use std::path::Path;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::wal;
use crate::storage::schema;

/// Copies the current state of `db` into a new database at `dest` (which must not exist) and
/// makes it durable.
pub fn copy(db: &Database, dest: &Path) -> Result<(), redb::Error> {
    let copy = Database::create(dest)?;
    let snapshot = db.begin_read()?;
    let mut txn = copy.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    copy_table(&snapshot, &txn, schema::DATA)?;
    copy_table(&snapshot, &txn, schema::CLASSES)?;
    copy_table(&snapshot, &txn, schema::COMPONENTS)?;
    copy_table(&snapshot, &txn, schema::META)?;
    copy_table(&snapshot, &txn, schema::ALARMS)?;
    copy_table(&snapshot, &txn, schema::ALARM_SCHEDULE)?;
    copy_table(&snapshot, &txn, schema::ALARM_RETRIES)?;
    wal::mark_clean(&txn)?;
    txn.commit()?;
    Ok(())
}

fn copy_table<K, V>(
    from: &redb::ReadTransaction,
    to: &redb::WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<(), redb::Error>
where
    K: redb::Key + 'static,
    V: redb::Value + 'static,
    for<'a> K::SelfType<'a>: std::borrow::Borrow<K::SelfType<'a>>,
{
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    for entry in source.iter()? {
        let (key, value) = entry?;
        target.insert(key.value(), value.value())?;
    }
    Ok(())
}
