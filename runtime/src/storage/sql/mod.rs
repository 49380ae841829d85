//! SQL storage: each object's SQLite database (a real SQLite, bundled), whose file is entries
//! of that object ([`pages`], through the VFS in [`vfs`]), so an event's SQL writes commit in
//! the same group commit as its key-value writes and leave through the same output gate.
//!
//! One connection per live object, opened on first use with the journal and temporary tables in
//! memory and exclusive locking (the object is the only writer); each statement autocommits
//! into the running event's write set. The connection is dropped whenever its view of the file
//! may be ahead of storage — the event failed (its writes are discarded), `deleteAll`, a
//! key-value transaction rolled back — and reopened from storage on the next use. Only the host
//! parses SQL: guests send text and bindings ([`SqlDatabase::exec`]).
//!
//! A statement runs inside the event's limits: its memory (page cache, temporary b-trees,
//! sorter, journal) is counted in the object's [`heap::Heap`], its time is cut off at the
//! event's CPU limit and never holds an async worker thread for long ([`interrupt`]).

mod guard;
mod heap;
mod interrupt;
pub mod pages;
pub mod snapshot;
#[cfg(test)]
mod tests;
mod vfs;

use std::sync::Arc;
use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, StatementStatus};

use super::{ObjectStorage, StorageError};
use guard::Guard;
pub use guard::Settings;
use heap::{Heap, Refusal};
pub use interrupt::SqlBudget;
use interrupt::{Cut, Interrupter};

/// SQLite's page cache per connection (KiB): hot pages of a live object; the rest is read
/// from storage again.
const CACHE_KIB: i64 = 1024;
/// Pages a database may grow to: 10 GiB of 4 KiB pages (Cloudflare's 10 GB per object). A write
/// past it fails with SQLite's "database or disk is full".
const MAX_PAGES: u64 = 10 * 1024 * 1024 * 1024 / 4096;

/// A value bound to a statement or read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// What `exec` returns: the last statement's columns and rows (read whole).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Cursor {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub rows_read: u64,
    pub rows_written: u64,
}

/// Where a connection's heap is counted: the runtime's memory budget (which lives above storage
/// and implements this). A connection reserves what SQLite holds for it, a step at a time, and
/// gives it back when it closes.
pub trait MemoryAccount: Send + Sync {
    /// Reserves `bytes` if they fit now; `false` (after asking idle objects to make room) if not.
    fn try_reserve(&self, bytes: usize) -> bool;
    fn release(&self, bytes: usize);
}

/// A failed SQL call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// SQLite's message, or why duro refused the statement: the guest sees it as an exception.
    #[error("{0}")]
    Failed(String),
    /// The statement ran past the event's CPU time: the event fails as a guest running past it
    /// does.
    #[error("the SQL statement ran past the event's CPU time limit")]
    CpuLimit,
    /// The runtime stopped while the statement ran.
    #[error("the server is stopping: the SQL statement was cut off")]
    Halted,
    /// The statement outlived its slice on an async worker thread: [`ObjectStorage::sql_exec`]
    /// runs it again off that thread; never seen above it.
    #[error("the SQL statement outlived its slice on an async worker thread")]
    Sliced,
}

impl SqlError {
    fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

impl From<StorageError> for SqlError {
    fn from(e: StorageError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// One object's open database.
pub struct SqlDatabase {
    conn: Connection,
    guard: Guard,
    /// What SQLite holds for this connection (dropped after `conn`: its blocks point to it).
    heap: Arc<Heap>,
    interrupter: Interrupter,
}

impl std::fmt::Debug for SqlDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlDatabase").finish_non_exhaustive()
    }
}

/// Why a connection cannot open while the memory budget is spent.
const BUDGET_SPENT: &str = "the runtime's memory budget is exhausted: the SQL database cannot \
     be opened now; retry";

impl SqlDatabase {
    /// Opens the database of the object behind `view`, its heap capped at `max_heap` bytes, with
    /// the connection settings the guest made before (`settings`).
    pub fn open(
        view: &mut ObjectStorage,
        max_heap: usize,
        settings: Settings,
    ) -> Result<Self, SqlError> {
        let heap = Heap::new(max_heap, view.memory.clone());
        if !heap.reserve_first() {
            return Err(SqlError::failed(BUDGET_SPENT));
        }
        let interrupter = Interrupter::default();
        let (db, failure) = heap.charging(|| {
            vfs::with_view(view, || -> rusqlite::Result<(Connection, Guard)> {
                let mut conn = Connection::open_with_flags_and_vfs(
                    "object",
                    OpenFlags::SQLITE_OPEN_READ_WRITE
                        | OpenFlags::SQLITE_OPEN_CREATE
                        | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    vfs::NAME,
                )?;
                conn.execute_batch(&format!(
                    "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = MEMORY; \
                     PRAGMA temp_store = MEMORY; PRAGMA synchronous = OFF; \
                     PRAGMA cache_size = -{CACHE_KIB}; PRAGMA max_page_count = {MAX_PAGES};"
                ))?;
                conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
                let guard = Guard {
                    settings,
                    ..Guard::default()
                };
                guard.install(&mut conn)?;
                guard.restore(&conn)?;
                interrupter.install(&mut conn)?;
                Ok((conn, guard))
            })
        });
        let (conn, guard) = db.map_err(|e| fail(e, failure, None, heap.take_refusal(), None))?;
        Ok(SqlDatabase {
            conn,
            guard,
            heap,
            interrupter,
        })
    }

    /// Runs `query` — one statement or several separated by `;`, `bindings` applying to the
    /// last — and returns the last one's rows. Cut off at `deadline` (as `cut`) or when `halt`
    /// is set.
    pub fn exec(
        &mut self,
        view: &mut ObjectStorage,
        query: &str,
        bindings: &[Value],
        max_bytes: usize,
        (deadline, cut): (Instant, Cut),
        halt: Option<&Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<Cursor, SqlError> {
        self.guard.take_refusal();
        // A refusal SQLite absorbed in an earlier call (a cache that could not grow) is not
        // this call's.
        self.heap.take_refusal();
        self.interrupter.arm(deadline, cut, halt);
        let before = self.conn.total_changes();
        let (result, failure) = self
            .heap
            .charging(|| vfs::with_view(view, || run(&self.conn, query, bindings, max_bytes)));
        let mut cursor = result.map_err(|e| {
            fail(
                e,
                failure,
                self.guard.take_refusal(),
                self.heap.take_refusal(),
                self.interrupter.take_cut(),
            )
        })?;
        cursor.rows_written = self.conn.total_changes().saturating_sub(before);
        Ok(cursor)
    }

    /// Bytes the database takes: the pages in use, as Cloudflare counts.
    pub fn size(&mut self, view: &mut ObjectStorage) -> Result<u64, SqlError> {
        let conn = &self.conn;
        let guard = &self.guard;
        let (size, failure) = self.heap.charging(|| {
            vfs::with_view(view, || {
                guard.internally(|| {
                    conn.query_row(
                        "SELECT ((SELECT page_count FROM pragma_page_count()) - \
                         (SELECT freelist_count FROM pragma_freelist_count())) * \
                         (SELECT page_size FROM pragma_page_size())",
                        [],
                        |row| row.get::<_, i64>(0),
                    )
                })
            })
        });
        let bytes = size.map_err(|e| fail(e, failure, None, self.heap.take_refusal(), None))?;
        Ok(bytes.max(0) as u64)
    }
}

/// What the guest is told of a failure: why the statement was cut off, why the authorizer
/// refused, which memory limit it ran into, the storage error behind a failed read or write, or
/// SQLite's own message.
fn fail(
    error: rusqlite::Error,
    storage: Option<StorageError>,
    refusal: Option<String>,
    memory: Option<Refusal>,
    cut: Option<Cut>,
) -> SqlError {
    match cut {
        Some(Cut::CpuLimit) => return SqlError::CpuLimit,
        Some(Cut::Halted) => return SqlError::Halted,
        Some(Cut::Slice) => return SqlError::Sliced,
        None => {}
    }
    if let Some(why) = refusal {
        return SqlError::Failed(why);
    }
    let out_of_memory = matches!(
        &error,
        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::OutOfMemory
    );
    match memory.filter(|_| out_of_memory) {
        Some(Refusal::Cap(cap)) => {
            return SqlError::Failed(format!(
                "out of memory: the statement needed more than the {} MiB SQLite may hold for \
                 one object (its memory limit): SQLITE_NOMEM",
                cap / (1024 * 1024)
            ));
        }
        Some(Refusal::Budget) => {
            return SqlError::failed(
                "out of memory: the runtime's memory budget is exhausted; retry: SQLITE_NOMEM",
            );
        }
        None => {}
    }
    if let Some(e) = storage {
        return SqlError::Failed(e.to_string());
    }
    SqlError::Failed(match error {
        rusqlite::Error::SqliteFailure(e, Some(message)) => {
            format!("{message}: {}", code_name(e.code))
        }
        rusqlite::Error::SqlInputError { error, msg, .. } => {
            format!("{msg}: {}", code_name(error.code))
        }
        rusqlite::Error::SqliteFailure(e, None) => format!("{e}"),
        other => other.to_string(),
    })
}

/// SQLite's message of a failure outside an object's event (snapshots).
fn fail_plain(error: rusqlite::Error) -> SqlError {
    fail(error, None, None, None, None)
}

/// A column's value, owned.
fn column_value(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Integer(n),
        ValueRef::Real(x) => Value::Real(x),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

fn code_name(code: rusqlite::ErrorCode) -> &'static str {
    use rusqlite::ErrorCode::*;
    match code {
        ConstraintViolation => "SQLITE_CONSTRAINT",
        TooBig => "SQLITE_TOOBIG",
        AuthorizationForStatementDenied => "SQLITE_AUTH",
        DatabaseBusy => "SQLITE_BUSY",
        TypeMismatch => "SQLITE_MISMATCH",
        ParameterOutOfRange => "SQLITE_RANGE",
        DiskFull => "SQLITE_FULL",
        _ => "SQLITE_ERROR",
    }
}

/// Runs each statement of `query` in order; the last gets `bindings` and its rows are read.
fn run(
    conn: &Connection,
    query: &str,
    bindings: &[Value],
    max_bytes: usize,
) -> rusqlite::Result<Cursor> {
    // One statement (the usual case): prepared once and cached.
    // Otherwise several statements, or one whose tail did not prepare: one by one.
    if let Ok(mut statement) = conn.prepare_cached(query) {
        return read_rows(&mut statement, bindings, max_bytes);
    }
    let mut rest = query;
    if is_blank(rest) {
        return Ok(Cursor::default());
    }
    loop {
        let len = first_statement_len(conn, rest)?;
        let (statement, tail) = rest.split_at(len);
        let last = is_blank(tail);
        let mut prepared = conn.prepare(statement)?;
        let cursor = read_rows(&mut prepared, if last { bindings } else { &[] }, max_bytes)?;
        if last {
            return Ok(cursor);
        }
        rest = tail;
    }
}

/// Binds `bindings`, steps `statement` to its end and collects its rows.
fn read_rows(
    statement: &mut rusqlite::Statement<'_>,
    bindings: &[Value],
    max_bytes: usize,
) -> rusqlite::Result<Cursor> {
    if bindings.len() != statement.parameter_count() {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_RANGE),
            Some(format!(
                "Wrong number of parameter bindings for SQL query. Expected {}, got {}",
                statement.parameter_count(),
                bindings.len()
            )),
        ));
    }
    for (i, value) in bindings.iter().enumerate() {
        let at = i + 1;
        match value {
            Value::Null => statement.raw_bind_parameter(at, rusqlite::types::Null)?,
            Value::Integer(n) => statement.raw_bind_parameter(at, n)?,
            Value::Real(x) => statement.raw_bind_parameter(at, x)?,
            Value::Text(s) => statement.raw_bind_parameter(at, s)?,
            Value::Blob(b) => statement.raw_bind_parameter(at, b)?,
        }
    }
    let columns: Vec<String> = statement.column_names().map(str::to_string).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    let mut raw = statement.raw_query();
    while let Some(row) = raw.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            let value = column_value(row.get_ref(i)?);
            bytes += match &value {
                Value::Text(s) => s.len(),
                Value::Blob(b) => b.len(),
                _ => 8,
            };
            values.push(value);
        }
        if bytes > max_bytes {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_TOOBIG),
                Some(format!(
                    "SQL query result set is too large to return at once (over {max_bytes} bytes)"
                )),
            ));
        }
        rows.push(values);
    }
    drop(raw);
    let scanned = statement.get_status(StatementStatus::FullscanStep) as u64;
    Ok(Cursor {
        columns,
        rows_read: scanned.max(rows.len() as u64),
        rows,
        rows_written: 0,
    })
}

/// The length of the first statement of `sql` (through its `;`), as SQLite's parser sees it.
fn first_statement_len(conn: &Connection, sql: &str) -> rusqlite::Result<usize> {
    use rusqlite::ffi;
    let len = i32::try_from(sql.len())
        .map_err(|_| rusqlite::Error::SqliteFailure(ffi::Error::new(ffi::SQLITE_TOOBIG), None))?;
    let mut statement = std::ptr::null_mut();
    let mut tail = std::ptr::null();
    // SAFETY: the handle is this open connection's; `sql` outlives the call and `tail` points
    // into it; the statement is finalized at once (only its length is wanted).
    let rc = unsafe {
        let rc = ffi::sqlite3_prepare_v2(
            conn.handle(),
            sql.as_ptr().cast(),
            len,
            &mut statement,
            &mut tail,
        );
        ffi::sqlite3_finalize(statement);
        rc
    };
    if rc != ffi::SQLITE_OK {
        // Prepare it through rusqlite for the error with SQLite's message.
        return Err(conn
            .prepare(sql)
            .err()
            .unwrap_or_else(|| rusqlite::Error::SqliteFailure(ffi::Error::new(rc), None)));
    }
    if tail.is_null() {
        return Ok(sql.len());
    }
    Ok((tail as usize - sql.as_ptr() as usize).min(sql.len()))
}

/// Whether `sql` holds only whitespace, comments and empty statements.
fn is_blank(sql: &str) -> bool {
    let mut rest = sql.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
    loop {
        if let Some(comment) = rest.strip_prefix("--") {
            rest = comment.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(comment) = rest.strip_prefix("/*") {
            rest = comment.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return rest.is_empty();
        }
        rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ';');
    }
}

/// The SQL calls of an object's storage view: each runs on the object's database, opened on
/// first use.
impl ObjectStorage {
    /// Runs `query` within `budget`. On an async worker thread it first runs for at most a
    /// slice; if it needs longer it is rolled back and run again, off that thread, until the
    /// budget's end.
    pub fn sql_exec(
        &mut self,
        query: &str,
        bindings: &[Value],
        budget: SqlBudget<'_>,
    ) -> Result<Cursor, SqlError> {
        let max = self.max_list_bytes();
        let end = Instant::now() + budget.cpu;
        if interrupt::on_async_worker() {
            let slice_end = Instant::now() + interrupt::SLICE;
            let first = if slice_end < end {
                (slice_end, Cut::Slice)
            } else {
                (end, Cut::CpuLimit)
            };
            match self.with_sql(|db, view| db.exec(view, query, bindings, max, first, budget.halt))
            {
                Err(SqlError::Sliced) => {}
                done => return done,
            }
            return interrupt::off_async_worker(|| {
                let halt = budget.halt.map(|h| h.as_ref());
                let Some((_slot, waited)) = interrupt::long_slot(halt) else {
                    return Err(SqlError::Halted);
                };
                if let Some(total) = budget.waited {
                    total.set(total.get() + waited);
                }
                let end = (end + waited, Cut::CpuLimit);
                self.with_sql(|db, view| db.exec(view, query, bindings, max, end, budget.halt))
            });
        }
        self.with_sql(|db, view| {
            db.exec(
                view,
                query,
                bindings,
                max,
                (end, Cut::CpuLimit),
                budget.halt,
            )
        })
    }

    /// Closes the database's connection (its page cache goes with it) while the object sleeps;
    /// the next SQL call reopens it from storage.
    pub fn close_sql(&mut self) {
        self.sql = None;
    }

    /// `databaseSize`: the SQL pages in use and the key-value entries' bytes, as Cloudflare
    /// counts both (it keeps the key-value entries in a table of the same file).
    pub fn sql_database_size(&mut self) -> Result<u64, SqlError> {
        let pages = self.with_sql(|db, view| db.size(view))?;
        Ok(pages + self.kv_bytes()?)
    }

    /// Runs `f` on the database with its page writes in a write-set layer of their own: kept
    /// if it succeeds; if it fails (a statement SQLite rolled back, a write over the event's
    /// limit, a failed read) the layer and the connection go, so SQLite's view and the pages
    /// can never disagree — the next call reopens from what the event holds.
    fn with_sql<T>(
        &mut self,
        f: impl FnOnce(&mut SqlDatabase, &mut ObjectStorage) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        let mut db = match self.sql.take() {
            Some(db) => db,
            None => {
                self.transaction_begin()?;
                let settings = self.sql_settings.clone();
                let opened = SqlDatabase::open(self, self.max_sql_heap_bytes, settings);
                self.transaction_commit()?;
                opened?
            }
        };
        self.transaction_begin()?;
        let out = f(&mut db, self);
        if out.is_ok() {
            self.transaction_commit()?;
            self.sql = Some(db);
        } else {
            self.transaction_rollback()?;
        }
        out
    }
}
