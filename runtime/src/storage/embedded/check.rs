//! `duro check`: an offline integrity check of a data dir.
//!
//! The check verifies redb's checksums over every page (a flipped byte in a value is found), reads
//! every entry of every table, checks the write-ahead log as a start would (without replaying
//! it), and checks what the runtime's tables promise each other: every class's component is
//! stored under its sha256, every alarm has its schedule entry; and runs SQLite's
//! `integrity_check` on every object's SQL database.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
use sha2::{Digest, Sha256};

use super::wal;
use crate::storage::schema::{self, CLASS_PREFIX_LEN};
use crate::storage::sql::{pages, snapshot::Snapshot};

/// `[class][id]`: the part of a data key that names its object.
const OBJECT_PREFIX_LEN: usize = CLASS_PREFIX_LEN + 32;
/// Largest SQL database checked (it is copied into memory for SQLite to read).
const MAX_CHECKED_DATABASE: u64 = 4 * 1024 * 1024 * 1024;

/// What a check found: `problems` empty means healthy.
#[derive(Debug, Default)]
pub struct Report {
    /// What was checked and found fine, one line each.
    pub checked: Vec<String>,
    /// What is damaged or inconsistent, one line each.
    pub problems: Vec<String>,
}

/// Checks the data dir at `data_dir`. Errors are for a data dir that cannot be checked at all
/// (missing, or in use by a running server).
pub fn check(data_dir: &Path) -> Result<Report, String> {
    let path = data_dir.join(super::DB_FILE);
    if !path.exists() {
        return Err(format!("no database at {}", path.display()));
    }
    let mut db = Database::open(&path).map_err(|e| match e {
        redb::DatabaseError::DatabaseAlreadyOpen => format!(
            "{} is in use by a running duro: stop it first, or copy it with `duro backup`",
            path.display()
        ),
        other => format!("cannot open {}: {other}", path.display()),
    })?;
    let mut report = Report::default();
    match db.check_integrity() {
        Ok(true) => report
            .checked
            .push("database: every page's checksum holds".into()),
        Ok(false) => report.problems.push(
            "database: the integrity check failed and redb repaired the file; \
             the last transactions may be lost"
                .into(),
        ),
        Err(e) => {
            report
                .problems
                .push(format!("database: damaged beyond repair: {e}"));
            return Ok(report);
        }
    }
    if let Err(e) = read_everything(&db, &mut report) {
        report
            .problems
            .push(format!("database: reading failed: {e}"));
    }
    match wal::inspect(data_dir, &db) {
        Ok(found) => {
            report.checked.push(match found.groups {
                0 => "write-ahead log: nothing to replay".into(),
                n => format!(
                    "write-ahead log: {n} groups will be replayed at the next start (an unclean stop)"
                ),
            });
            if let Some(torn) = found.torn {
                report
                    .checked
                    .push(format!("write-ahead log: {torn}; the next start drops it"));
            }
        }
        Err(damage) => report.problems.push(format!("write-ahead log: {damage}")),
    }
    Ok(report)
}

/// Reads every entry of every table (redb reports damage it meets) and checks the tables
/// against each other.
fn read_everything(db: &Database, report: &mut Report) -> Result<(), redb::Error> {
    let txn = db.begin_read()?;
    let data = txn.open_table(schema::DATA)?;
    let mut entries = 0u64;
    let mut databases = Vec::new();
    for entry in data.iter()? {
        let (key, _) = entry?;
        entries += 1;
        let key = key.value();
        if key.get(OBJECT_PREFIX_LEN..) == Some(&pages::SIZE_KEY[..]) {
            databases.push(key[..OBJECT_PREFIX_LEN].to_vec());
        }
    }
    report
        .checked
        .push(format!("data: {entries} entries readable"));
    check_sql(db, &databases, report);

    let components = txn.open_table(schema::COMPONENTS)?;
    for entry in components.iter()? {
        let (digest, bytes) = entry?;
        if hex::encode(Sha256::digest(bytes.value())) != digest.value() {
            report.problems.push(format!(
                "component {}: its bytes do not match their sha256",
                digest.value()
            ));
        }
    }
    let classes = txn.open_table(schema::CLASSES)?;
    let mut count = 0;
    for entry in classes.iter()? {
        let (name, record) = entry?;
        count += 1;
        let digest = serde_json::from_slice::<serde_json::Value>(record.value())
            .ok()
            .and_then(|r| r["digest"].as_str().map(String::from));
        match digest {
            None => report
                .problems
                .push(format!("class {}: its record is unreadable", name.value())),
            Some(digest) if components.get(digest.as_str())?.is_none() => report
                .problems
                .push(format!("class {}: its component is missing", name.value())),
            Some(_) => {}
        }
    }
    report.checked.push(format!(
        "classes: {count} records, components match their sha256"
    ));

    let alarms = txn.open_table(schema::ALARMS)?;
    let schedule = txn.open_table(schema::ALARM_SCHEDULE)?;
    let mut count = 0;
    for entry in alarms.iter()? {
        let (object, at) = entry?;
        count += 1;
        let key = schema::schedule_key(at.value(), object.value());
        if schedule.get(key.as_slice())?.is_none() {
            report
                .problems
                .push(format!("an alarm at {} has no schedule entry", at.value()));
        }
    }
    report
        .checked
        .push(format!("alarms: {count}, each in the schedule"));
    count_entries(&txn, schema::META, report)?;
    Ok(())
}

/// Runs SQLite's `integrity_check` on each object's database, as a snapshot of `db` holds it.
fn check_sql(db: &Database, databases: &[Vec<u8>], report: &mut Report) {
    let reader = match db.begin_read() {
        Ok(txn) => super::RedbReader(txn),
        Err(e) => {
            report.problems.push(format!("SQL databases: {e}"));
            return;
        }
    };
    let mut passed = 0;
    for object in databases {
        let name = format!(
            "SQL database of object {} (class incarnation {})",
            hex::encode(&object[CLASS_PREFIX_LEN..]),
            u64::from_be_bytes(object[..CLASS_PREFIX_LEN].try_into().expect("8 bytes"))
        );
        let checked = Snapshot::read(&reader, object, MAX_CHECKED_DATABASE)
            .and_then(|s| s.map(|s| s.integrity_check()).transpose());
        match checked {
            Ok(Some(found)) if found == ["ok"] => passed += 1,
            Ok(Some(found)) => report
                .problems
                .push(format!("{name}: integrity_check: {}", found.join("; "))),
            Ok(None) => {}
            Err(e) => report.problems.push(format!("{name}: {e}")),
        }
    }
    report.checked.push(format!(
        "sql: {passed} of {} databases pass SQLite's integrity_check",
        databases.len()
    ));
}

fn count_entries(
    txn: &redb::ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    report: &mut Report,
) -> Result<(), redb::Error> {
    let mut count = 0;
    for entry in txn.open_table(table)?.iter()? {
        entry?;
        count += 1;
    }
    report
        .checked
        .push(format!("{}: {count} entries readable", table.name()));
    Ok(())
}
