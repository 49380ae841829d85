//! The cluster engine: every node keeps its objects in one PostgreSQL database.
//!
//! Tables (created at first connect, `schema.sql`): `duro_entries (t, k, v)` holds what redb's
//! `data`, `classes`, `components` and `meta` tables hold, keyed by the same bytes (a `bytea`
//! orders as redb orders keys); `duro_alarms (object, at_ms, retry)` is the alarm of each object
//! and, through its `(at_ms, object)` index, the schedule; `duro_nodes` and `duro_shards` are
//! the leases (`lease`). Groups are made durable by `sink::PgSink`: one transaction per group,
//! fenced by the shard leases.
//!
//! The connections run on a thread of their own (a small tokio runtime): a read blocks its caller
//! for one round trip without needing, or starving, the caller's runtime; SQLite's page reads
//! (which cannot be async) work the same way.

pub mod lease;
pub mod sink;

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio_postgres::{Client, NoTls, Statement};

use super::backend::{Alarms, Backend, BackendError, Entries, EntryList, Range, Reader, Schedule};
use super::schema::{AlarmRetry, Table};

/// Connections that serve reads (statements are pipelined on each; calls spread over them).
const READ_CONNECTIONS: usize = 4;
/// Rows fetched per round trip when a range is read lazily.
const PAGE_ROWS: i64 = 256;

/// The schema, created if missing (idempotent, under a transaction-level advisory lock so that
/// nodes starting together do not race).
const SCHEMA: &str = include_str!("schema.sql");
/// The advisory lock that serializes schema creation.
const SCHEMA_LOCK: i64 = 0x6475_726f_0001;
/// The advisory lock that serializes changes of the class registry among nodes.
const REGISTRY_LOCK: i64 = 0x6475_726f_0002;

/// The number code of a table in `duro_entries.t`.
fn table_code(table: Table) -> i16 {
    match table {
        Table::Data => 0,
        Table::Classes => 1,
        Table::Components => 2,
        Table::Meta => 3,
        Table::Names => 4,
    }
}

pub(super) fn fail(error: impl std::fmt::Display) -> BackendError {
    BackendError::new(format!("postgresql: {error}"))
}

/// The display form of a PostgreSQL error: its server message when there is one.
pub(super) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

/// The prepared statements of one connection.
struct Statements {
    get: Statement,
    range_asc: Statement,
    range_asc_open: Statement,
    range_desc: Statement,
    range_desc_open: Statement,
    alarm: Statement,
    alarms: Statement,
    alarms_open: Statement,
    schedule: Statement,
    retries: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Self, tokio_postgres::Error> {
        let entries = "SELECT k, v FROM duro_entries WHERE t = $1 AND k >= $2";
        Ok(Self {
            get: client
                .prepare("SELECT v FROM duro_entries WHERE t = $1 AND k = $2")
                .await?,
            range_asc: client
                .prepare(&format!("{entries} AND k < $3 ORDER BY k LIMIT $4"))
                .await?,
            range_asc_open: client
                .prepare(&format!("{entries} ORDER BY k LIMIT $3"))
                .await?,
            range_desc: client
                .prepare(&format!("{entries} AND k < $3 ORDER BY k DESC LIMIT $4"))
                .await?,
            range_desc_open: client
                .prepare(&format!("{entries} ORDER BY k DESC LIMIT $3"))
                .await?,
            alarm: client
                .prepare("SELECT at_ms FROM duro_alarms WHERE object = $1")
                .await?,
            alarms: client
                .prepare(
                    "SELECT object, at_ms FROM duro_alarms WHERE object >= $1 AND object < $2 \
                     ORDER BY object LIMIT $3",
                )
                .await?,
            alarms_open: client
                .prepare(
                    "SELECT object, at_ms FROM duro_alarms WHERE object >= $1 ORDER BY object \
                     LIMIT $2",
                )
                .await?,
            schedule: client
                .prepare(
                    "SELECT at_ms, object FROM duro_alarms WHERE (at_ms, object) > ($1, $2) \
                     ORDER BY at_ms, object LIMIT $3",
                )
                .await?,
            retries: client
                .prepare("SELECT object, retry FROM duro_alarms WHERE retry IS NOT NULL")
                .await?,
        })
    }
}

/// One connection and its statements.
struct Connection {
    client: Client,
    statements: Statements,
}

/// The connections to PostgreSQL and the thread that drives them.
pub struct Pg {
    runtime: tokio::runtime::Handle,
    /// Each slot is replaced by a new connection when its connection closed (a PostgreSQL
    /// restart, a network cut).
    readers: Vec<std::sync::Mutex<Arc<Connection>>>,
    next_reader: AtomicUsize,
    url: String,
    /// Keeps the connections' thread alive; it ends when this is dropped.
    _stop: std::sync::mpsc::SyncSender<()>,
}

impl Pg {
    /// Connects to the database at `url` (a `postgres://` URL or key=value string) and creates
    /// the schema if missing.
    pub fn connect(url: &str) -> Result<Arc<Self>, BackendError> {
        let (handle_tx, handle_rx) = std::sync::mpsc::sync_channel(1);
        let (stop, stopped) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("duro-postgres".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                        return;
                    }
                };
                let _ = handle_tx.send(Ok(runtime.handle().clone()));
                // Runs the connections until the `Pg` is dropped.
                runtime.block_on(async move {
                    let _ = tokio::task::spawn_blocking(move || stopped.recv()).await;
                });
            })
            .map_err(fail)?;
        let runtime = handle_rx
            .recv()
            .map_err(fail)?
            .map_err(|e| fail(format!("cannot start the connection thread: {e}")))?;
        let mut pg = Self {
            runtime,
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            url: url.to_string(),
            _stop: stop,
        };
        let first = pg.connect_one()?;
        pg.block({
            let first = first.clone();
            async move {
                first
                    // One implicit transaction; the lock is held until it commits.
                    .batch_execute(&format!(
                        "SET client_min_messages = warning; \
                         SELECT pg_advisory_xact_lock({SCHEMA_LOCK}); {SCHEMA}"
                    ))
                    .await
            }
        })
        .map_err(|e| fail(format!("creating the schema: {}", describe(&e))))?;
        let first = pg.prepared(first)?;
        pg.readers.push(std::sync::Mutex::new(first));
        for _ in 1..READ_CONNECTIONS {
            let conn = pg.prepared(pg.connect_one()?)?;
            pg.readers.push(std::sync::Mutex::new(conn));
        }
        Ok(Arc::new(pg))
    }

    /// A new connection (its statements not prepared yet).
    fn connect_one(&self) -> Result<Arc<Client>, BackendError> {
        let client = self
            .block(self.open())
            .map_err(|e| fail(format!("cannot connect: {}", describe(&e))))?;
        Ok(Arc::new(client))
    }

    /// Opens a connection, driven on the connections' thread; for code running there (that
    /// cannot `block`).
    ///
    /// Unless the URL says otherwise, a connection gives up on an unreachable server after 2 s
    /// and on a silent peer (a cut network, a paused host) within about 10 s (TCP keepalives
    /// and a user timeout), instead of the hours the system defaults allow.
    fn open(&self) -> impl Future<Output = Result<Client, tokio_postgres::Error>> + use<> {
        let (url, runtime) = (self.url.clone(), self.runtime.clone());
        async move {
            let mut config: tokio_postgres::Config = url.parse()?;
            if config.get_connect_timeout().is_none() {
                config.connect_timeout(Duration::from_secs(2));
            }
            config
                .keepalives(true)
                .keepalives_idle(Duration::from_secs(5))
                .keepalives_interval(Duration::from_secs(2))
                .keepalives_retries(3);
            #[cfg(target_os = "linux")]
            if config.get_tcp_user_timeout().is_none() {
                config.tcp_user_timeout(Duration::from_secs(10));
            }
            let (client, connection) = config.connect(NoTls).await?;
            runtime.spawn(async move {
                if let Err(error) = connection.await {
                    tracing::warn!(error = %describe(&error), "a PostgreSQL connection ended");
                }
            });
            Ok(client)
        }
    }

    fn prepared(&self, client: Arc<Client>) -> Result<Arc<Connection>, BackendError> {
        let statements = self
            .block({
                let client = client.clone();
                async move { Statements::prepare(&client).await }
            })
            .map_err(|e| fail(describe(&e)))?;
        let client = Arc::try_unwrap(client).map_err(|_| fail("a connection is shared"))?;
        Ok(Arc::new(Connection { client, statements }))
    }

    /// A connection of its own, for a user that needs one (the group writer, the leases).
    pub fn dedicated(&self) -> Result<Client, BackendError> {
        let client = self.connect_one()?;
        Arc::try_unwrap(client).map_err(|_| fail("a connection is shared"))
    }

    /// Runs `future` on the connections' thread and waits for it. Blocks the calling thread
    /// (never the connections' one), so it may be called from anywhere, async code included.
    pub fn block<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.runtime.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv()
            .expect("the PostgreSQL thread runs while the engine lives")
    }

    /// The connections' runtime, for tasks that live on it (the lease heartbeat).
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    fn reader_connection(&self) -> Result<Arc<Connection>, BackendError> {
        let n = self.next_reader.fetch_add(1, Ordering::Relaxed);
        let slot = &self.readers[n % self.readers.len()];
        let conn = crate::lock(slot).clone();
        if !conn.client.is_closed() {
            return Ok(conn);
        }
        let fresh = self.prepared(self.connect_one()?)?;
        *crate::lock(slot) = fresh.clone();
        Ok(fresh)
    }
}

/// The PostgreSQL engine's reads.
pub struct Postgres(pub Arc<Pg>);

impl Backend for Postgres {
    fn reader(&self) -> Result<Box<dyn Reader>, BackendError> {
        Ok(Box::new(PgReader(self.0.clone())))
    }

    fn name(&self) -> &'static str {
        "postgresql"
    }

    /// A session-level advisory lock on a connection of its own; dropping the guard closes the
    /// connection, which releases the lock.
    fn lock_registry(&self) -> Result<Option<Box<dyn Send>>, BackendError> {
        let client = Arc::new(self.0.dedicated()?);
        let locking = client.clone();
        self.0
            .block(async move {
                locking
                    .execute("SELECT pg_advisory_lock($1)", &[&REGISTRY_LOCK])
                    .await
            })
            .map_err(|e| fail(format!("locking the class registry: {}", describe(&e))))?;
        Ok(Some(Box::new(client)))
    }
}

/// Reads of the newest committed state; each call is its own statement.
struct PgReader(Arc<Pg>);

/// `range`'s bounds as `low <= k` and, if any, `k < high`.
fn normalize(range: Range) -> (Vec<u8>, Option<Vec<u8>>) {
    let after = |mut k: Vec<u8>| {
        k.push(0);
        k
    };
    let low = match range.0 {
        Bound::Unbounded => Vec::new(),
        Bound::Included(k) => k,
        Bound::Excluded(k) => after(k),
    };
    let high = match range.1 {
        Bound::Unbounded => None,
        Bound::Included(k) => Some(after(k)),
        Bound::Excluded(k) => Some(k),
    };
    (low, high)
}

/// One page of a range: rows of (key, value).
fn range_page(
    pg: &Pg,
    table: i16,
    low: Vec<u8>,
    high: Option<Vec<u8>>,
    reverse: bool,
    rows: i64,
) -> Result<EntryList, BackendError> {
    let conn = pg.reader_connection()?;
    let rows = pg
        .block(async move {
            let s = &conn.statements;
            match (&high, reverse) {
                (Some(high), false) => {
                    conn.client
                        .query(&s.range_asc, &[&table, &low, high, &rows])
                        .await
                }
                (Some(high), true) => {
                    conn.client
                        .query(&s.range_desc, &[&table, &low, high, &rows])
                        .await
                }
                (None, false) => {
                    conn.client
                        .query(&s.range_asc_open, &[&table, &low, &rows])
                        .await
                }
                (None, true) => {
                    conn.client
                        .query(&s.range_desc_open, &[&table, &low, &rows])
                        .await
                }
            }
        })
        .map_err(|e| fail(describe(&e)))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let key: Vec<u8> = row.get(0);
            let value: Vec<u8> = row.get(1);
            (key, Bytes::from(value))
        })
        .collect())
}

/// A sequence read a page of [`PAGE_ROWS`] at a time, as it is consumed: `fetch(last)` reads
/// the page after `last` (the previous page's last item; `None` for the first).
fn paged<T: Clone + Send + 'static>(
    mut fetch: impl FnMut(Option<&T>) -> Result<Vec<T>, BackendError> + Send + 'static,
) -> impl Iterator<Item = Result<T, BackendError>> + Send {
    let mut buffered = VecDeque::new();
    let mut last: Option<T> = None;
    let mut done = false;
    std::iter::from_fn(move || {
        if buffered.is_empty() && !done {
            match fetch(last.as_ref()) {
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
                Ok(page) => {
                    done = (page.len() as i64) < PAGE_ROWS;
                    last = page.last().cloned().or(last.take());
                    buffered.extend(page);
                }
            }
        }
        buffered.pop_front().map(Ok)
    })
}

/// The smallest key after `key`.
fn after(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

impl Reader for PgReader {
    fn get(&self, table: Table, key: &[u8]) -> Result<Option<Bytes>, BackendError> {
        let conn = self.0.reader_connection()?;
        let (table, key) = (table_code(table), key.to_vec());
        let row = self
            .0
            .block(async move {
                conn.client
                    .query_opt(&conn.statements.get, &[&table, &key])
                    .await
            })
            .map_err(|e| fail(describe(&e)))?;
        Ok(row.map(|row| Bytes::from(row.get::<_, Vec<u8>>(0))))
    }

    fn range(&self, table: Table, range: Range, reverse: bool) -> Result<Entries, BackendError> {
        let (low, high) = normalize(range);
        let (pg, table) = (self.0.clone(), table_code(table));
        Ok(Box::new(paged(move |last: Option<&(Vec<u8>, Bytes)>| {
            let (low, high) = match (last, reverse) {
                (None, _) => (low.clone(), high.clone()),
                (Some((key, _)), false) => (after(key), high.clone()),
                (Some((key, _)), true) => (low.clone(), Some(key.clone())),
            };
            range_page(&pg, table, low, high, reverse, PAGE_ROWS)
        })))
    }

    /// One statement: one point in time.
    fn range_at_once(
        &self,
        table: Table,
        range: Range,
        max_bytes: u64,
    ) -> Result<Option<EntryList>, BackendError> {
        let (low, high) = normalize(range);
        let entries = range_page(&self.0, table_code(table), low, high, false, i64::MAX)?;
        super::backend::within(entries.into_iter().map(Ok), max_bytes)
    }

    fn alarm(&self, object: &[u8]) -> Result<Option<i64>, BackendError> {
        let conn = self.0.reader_connection()?;
        let object = object.to_vec();
        let row = self
            .0
            .block(async move {
                conn.client
                    .query_opt(&conn.statements.alarm, &[&object])
                    .await
            })
            .map_err(|e| fail(describe(&e)))?;
        Ok(row.map(|row| row.get(0)))
    }

    fn alarms(&self, range: Range) -> Result<Alarms, BackendError> {
        let (low, high) = normalize(range);
        let pg = self.0.clone();
        Ok(Box::new(paged(move |last: Option<&(Vec<u8>, i64)>| {
            let from = last.map_or_else(|| low.clone(), |(object, _)| after(object));
            let conn = pg.reader_connection()?;
            let high = high.clone();
            let rows = pg
                .block(async move {
                    let s = &conn.statements;
                    match &high {
                        Some(high) => {
                            conn.client
                                .query(&s.alarms, &[&from, high, &PAGE_ROWS])
                                .await
                        }
                        None => {
                            conn.client
                                .query(&s.alarms_open, &[&from, &PAGE_ROWS])
                                .await
                        }
                    }
                })
                .map_err(|e| fail(describe(&e)))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })))
    }

    fn schedule(&self) -> Result<Schedule, BackendError> {
        let pg = self.0.clone();
        Ok(Box::new(paged(move |last: Option<&(i64, Vec<u8>)>| {
            let (at, object) = last.cloned().unwrap_or((i64::MIN, Vec::new()));
            let conn = pg.reader_connection()?;
            let rows = pg
                .block(async move {
                    conn.client
                        .query(&conn.statements.schedule, &[&at, &object, &PAGE_ROWS])
                        .await
                })
                .map_err(|e| fail(describe(&e)))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })))
    }

    fn retries(&self) -> Result<Vec<(Vec<u8>, AlarmRetry)>, BackendError> {
        let conn = self.0.reader_connection()?;
        let rows = self
            .0
            .block(async move { conn.client.query(&conn.statements.retries, &[]).await })
            .map_err(|e| fail(describe(&e)))?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let retry: Vec<u8> = row.get(1);
                Some((row.get(0), AlarmRetry::decode(&retry)?))
            })
            .collect())
    }
}
