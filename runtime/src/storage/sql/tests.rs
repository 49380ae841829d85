//! SQL storage on a real redb file: values, statements, refusals, and that the database always
//! equals what the object's events committed.

use std::sync::Arc;

use bytes::Bytes;

use redb::{Database, ReadableDatabase};

use super::{Cursor, SqlBudget, SqlError, Value};
use crate::config::Limits;
use crate::storage::embedded::{Redb, RedbReader};
use crate::storage::{ListOptions, ObjectStorage, Store};

fn store(db: &Arc<Database>) -> Store {
    Arc::new(Redb(db.clone()))
}

struct Object {
    db: Arc<Database>,
    view: ObjectStorage,
    _dir: tempfile::TempDir,
}

impl Object {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::storage::open(dir.path()).unwrap();
        let view = ObjectStorage::new(store(&db), vec![7; 40], &Limits::default());
        Object {
            db,
            view,
            _dir: dir,
        }
    }

    /// Runs `f` as one event and commits its writes to redb.
    fn event<T>(&mut self, f: impl FnOnce(&mut ObjectStorage) -> T) -> T {
        self.view.begin_event();
        let out = f(&mut self.view);
        if let Some(writes) = self.view.finish_event() {
            let txn = self.db.begin_write().unwrap();
            crate::storage::embedded::apply::apply_ops(&txn, writes.ops.iter()).unwrap();
            txn.commit().unwrap();
            self.view.mark_durable(writes.seq);
        }
        out
    }

    /// A fresh view of the same object: what a restart sees.
    fn reopen(&mut self) {
        self.view = ObjectStorage::new(store(&self.db), vec![7; 40], &Limits::default());
    }

    fn sql(&mut self, query: &str, bindings: &[Value]) -> Result<Cursor, SqlError> {
        self.event(|view| view.sql_exec(query, bindings, SqlBudget::unbounded()))
    }

    fn rows(&mut self, query: &str) -> Vec<Vec<Value>> {
        self.sql(query, &[]).unwrap().rows
    }
}

fn int(n: i64) -> Value {
    Value::Integer(n)
}

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

#[test]
fn values_round_trip_with_their_types() {
    let mut o = Object::new();
    o.sql("CREATE TABLE t (a, b, c, d, e)", &[]).unwrap();
    let inserted = o
        .sql(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            &[
                Value::Null,
                int(i64::MAX),
                Value::Real(1.5),
                text("héllo"),
                Value::Blob(vec![0, 255]),
            ],
        )
        .unwrap();
    assert_eq!(inserted.rows_written, 1);
    let cursor = o.sql("SELECT * FROM t", &[]).unwrap();
    assert_eq!(cursor.columns, ["a", "b", "c", "d", "e"]);
    assert_eq!(
        cursor.rows,
        [[
            Value::Null,
            int(i64::MAX),
            Value::Real(1.5),
            text("héllo"),
            Value::Blob(vec![0, 255])
        ]]
    );
    assert_eq!(
        o.rows("SELECT 'Hello, World!' AS greeting"),
        [[text("Hello, World!")]]
    );
}

#[test]
fn several_statements_run_in_order_and_bindings_go_to_the_last() {
    let mut o = Object::new();
    let cursor = o
        .sql(
            "CREATE TABLE t (n); INSERT INTO t VALUES (1); -- a comment\n\
             INSERT INTO t VALUES (2); SELECT sum(n) + ? AS s FROM t; /* done */",
            &[int(10)],
        )
        .unwrap();
    assert_eq!(cursor.rows, [[int(13)]]);
    assert!(o.sql("", &[]).unwrap().rows.is_empty());
    let wrong = o.sql("SELECT ?", &[]).unwrap_err();
    assert!(wrong.to_string().contains("Expected 1, got 0"), "{wrong}");
}

#[test]
fn cloudflares_refusals_hold() {
    let mut o = Object::new();
    for (query, says) in [
        ("BEGIN TRANSACTION", "transactionSync"),
        ("SAVEPOINT x", "transactionSync"),
        ("ATTACH DATABASE 'x' AS y", "ATTACH"),
        ("CREATE TABLE _cf_mine (a)", "_cf_"),
        ("CREATE TABLE _CF_Mine (a)", "_cf_"),
        ("PRAGMA journal_mode = WAL", "pragma"),
        ("PRAGMA cache_size = 100000", "pragma"),
    ] {
        let error = o.sql(query, &[]).expect_err(query);
        assert!(error.to_string().contains(says), "{query}: {error}");
    }
    o.sql("CREATE TABLE t (a)", &[]).unwrap();
    assert_eq!(o.rows("PRAGMA page_size"), [[int(4096)]]);
    let tables = o.rows("PRAGMA table_list");
    assert!(
        tables.iter().any(|row| row.contains(&text("t"))),
        "{tables:?}"
    );
    let error = o.sql("SELECT * FROM missing", &[]).unwrap_err();
    assert_eq!(error.to_string(), "no such table: missing: SQLITE_ERROR");
}

#[test]
fn the_database_is_what_the_events_committed() {
    let mut o = Object::new();
    o.sql("CREATE TABLE t (n INTEGER PRIMARY KEY, v TEXT)", &[])
        .unwrap();
    for i in 0..200 {
        o.sql("INSERT INTO t (v) VALUES (?)", &[text(&"x".repeat(i))])
            .unwrap();
    }
    // A failed event: its SQL is gone with its other writes.
    o.view.begin_event();
    o.view
        .sql_exec("DELETE FROM t", &[], SqlBudget::unbounded())
        .unwrap();
    o.view.put("k", "v".into()).unwrap();
    o.view.abort_event();
    assert_eq!(o.rows("SELECT count(*) FROM t"), [[int(200)]]);
    // A restart reads the same database from storage.
    o.reopen();
    assert_eq!(
        o.rows("SELECT count(*), sum(length(v)) FROM t"),
        [[int(200), int(19900)]]
    );
    let size = o.event(|view| view.sql_database_size()).unwrap();
    assert!(size > 4096 && size.is_multiple_of(4096), "{size}");
    // The pages are not the object's keys.
    let listed = o.event(|view| view.list(&ListOptions::default())).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    // deleteAll clears the database too.
    o.event(|view| view.delete_all()).unwrap();
    let error = o.sql("SELECT * FROM t", &[]).unwrap_err();
    assert!(error.to_string().contains("no such table"), "{error}");
}

#[test]
fn a_rolled_back_transaction_undoes_sql_and_key_value_writes_alike() {
    let mut o = Object::new();
    o.sql("CREATE TABLE t (n)", &[]).unwrap();
    o.event(|view| {
        view.sql_exec("INSERT INTO t VALUES (1)", &[], SqlBudget::unbounded())
            .unwrap();
        view.transaction_begin().unwrap();
        view.sql_exec("INSERT INTO t VALUES (2)", &[], SqlBudget::unbounded())
            .unwrap();
        view.transaction_begin().unwrap();
        view.sql_exec("INSERT INTO t VALUES (3)", &[], SqlBudget::unbounded())
            .unwrap();
        view.put("k", Bytes::from_static(b"1")).unwrap();
        view.transaction_commit().unwrap();
        view.transaction_rollback().unwrap();
        // The event goes on with the database as it was before the outer transaction.
        let seen = view
            .sql_exec("SELECT n FROM t", &[], SqlBudget::unbounded())
            .unwrap();
        assert_eq!(seen.rows, [[int(1)]]);
        assert_eq!(view.get("k").unwrap(), None);
    });
    o.reopen();
    assert_eq!(o.rows("SELECT n FROM t"), [[int(1)]]);
}

#[test]
fn a_statement_over_the_write_limit_fails_and_leaves_the_database_whole() {
    let mut o = Object::new();
    o.sql("CREATE TABLE t (v BLOB)", &[]).unwrap();
    o.sql("INSERT INTO t VALUES (zeroblob(1000))", &[]).unwrap();
    let error = o
        .event(|view| {
            view.sql_exec(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20) \
                 INSERT INTO t SELECT zeroblob(1000000) FROM n",
                &[],
                SqlBudget::unbounded(),
            )
        })
        .unwrap_err();
    assert!(error.to_string().contains("over the limit"), "{error}");
    assert_eq!(o.rows("SELECT count(*) FROM t"), [[int(1)]]);
    o.reopen();
    assert_eq!(o.rows("PRAGMA quick_check"), [[text("ok")]]);
    assert_eq!(o.rows("SELECT count(*) FROM t"), [[int(1)]]);
}

#[test]
fn limits_answer_with_sqlites_messages() {
    let mut o = Object::new();
    let long = format!("SELECT '{}'", "x".repeat(100_001));
    let error = o.sql(&long, &[]).unwrap_err();
    assert_eq!(error.to_string(), "statement too long: SQLITE_TOOBIG");
    let placeholders = vec!["?"; 101].join(", ");
    let bindings = vec![int(1); 101];
    let error = o
        .sql(&format!("SELECT {placeholders}"), &bindings)
        .unwrap_err();
    assert_eq!(error.to_string(), "too many SQL variables: SQLITE_ERROR");
    let error = o.sql("SELECT zeroblob(2000001)", &[]).unwrap_err();
    assert_eq!(error.to_string(), "string or blob too big: SQLITE_TOOBIG");
    let error = o
        .sql("SELECT 1 UNION SELECT 2 UNION SELECT 3 UNION SELECT 4 UNION SELECT 5 UNION SELECT 6 UNION SELECT 7", &[])
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("too many terms in compound SELECT"),
        "{error}"
    );
}

#[test]
fn a_snapshot_reads_what_the_events_committed_without_the_live_connection() {
    use super::snapshot::Snapshot;
    let mut o = Object::new();
    let snapshot = |o: &Object| {
        let reader = RedbReader(o.db.begin_read().unwrap());
        Snapshot::read(&reader, &[7; 40], 1 << 30).unwrap()
    };
    assert!(snapshot(&o).is_none(), "no database yet");
    o.sql(
        "CREATE TABLE \"odd \"\"name\" (k TEXT PRIMARY KEY, v BLOB); CREATE TABLE e (x)",
        &[],
    )
    .unwrap();
    for n in 0..300 {
        o.sql(
            "INSERT INTO \"odd \"\"name\" VALUES (?, ?)",
            &[text(&format!("k{n:03}")), Value::Blob(vec![n as u8; 100])],
        )
        .unwrap();
    }
    // Not yet committed: the snapshot does not see it.
    o.view.begin_event();
    o.view
        .sql_exec("DELETE FROM e", &[], SqlBudget::unbounded())
        .unwrap();
    o.view
        .sql_exec("INSERT INTO e VALUES (1)", &[], SqlBudget::unbounded())
        .unwrap();
    let s = snapshot(&o).unwrap();
    let tables = s.tables().unwrap();
    let summary: Vec<_> = tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    assert_eq!(summary, [("e", 0), ("odd \"name", 300)]);
    assert!(tables[1].sql.starts_with("CREATE TABLE"));
    let page = s.rows("odd \"name", 298, 10).unwrap();
    assert_eq!(page.columns, ["k", "v"]);
    assert_eq!(page.rows.len(), 2);
    assert_eq!(page.rows[0][0], text("k298"));
    assert_eq!(s.integrity_check().unwrap(), ["ok"]);
    assert!(
        s.rows("nope", 0, 1)
            .unwrap_err()
            .to_string()
            .contains("no such table")
    );
    let refused = Snapshot::read(&RedbReader(o.db.begin_read().unwrap()), &[7; 40], 4096);
    assert!(refused.err().unwrap().to_string().contains("at most 4096"));
}

/// An account of bytes with a limit, as the runtime's memory budget is.
#[derive(Default)]
struct Account {
    limit: usize,
    used: std::sync::Mutex<usize>,
}

impl super::MemoryAccount for Account {
    fn try_reserve(&self, bytes: usize) -> bool {
        let mut used = self.used.lock().unwrap();
        let fits = *used + bytes <= self.limit;
        if fits {
            *used += bytes;
        }
        fits
    }

    fn release(&self, bytes: usize) {
        *self.used.lock().unwrap() -= bytes;
    }
}

#[test]
fn a_connection_holds_its_page_cache_in_the_memory_budget_while_it_is_open() {
    let mut o = Object::new();
    let account = Arc::new(Account {
        limit: 1536 * 1024,
        ..Account::default()
    });
    let view = |o: &Object| {
        ObjectStorage::new(store(&o.db), vec![7; 40], &Limits::default())
            .with_memory(account.clone())
    };
    o.view = view(&o);
    o.sql("CREATE TABLE t (n)", &[]).unwrap();
    assert_eq!(*account.used.lock().unwrap(), 1024 * 1024);
    // A second open connection does not fit: its call fails, saying why, and changes nothing.
    let mut other = view(&o);
    other.begin_event();
    let error = other
        .sql_exec("INSERT INTO t VALUES (1)", &[], SqlBudget::unbounded())
        .unwrap_err();
    assert!(error.to_string().contains("memory budget"), "{error}");
    // Closing the first gives its bytes back; the second opens.
    o.view.close_sql();
    assert_eq!(*account.used.lock().unwrap(), 0);
    other
        .sql_exec("INSERT INTO t VALUES (1)", &[], SqlBudget::unbounded())
        .unwrap();
    drop(other);
    assert_eq!(*account.used.lock().unwrap(), 0);
}

/// A statement that never ends on its own.
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

#[test]
fn a_statement_is_cut_off_when_the_events_cpu_time_is_spent_and_changes_nothing() {
    let mut o = Object::new();
    o.sql("CREATE TABLE t (n)", &[]).unwrap();
    let started = std::time::Instant::now();
    let budget = SqlBudget {
        cpu: std::time::Duration::from_millis(200),
        halt: None,
        waited: None,
    };
    let error = o
        .event(|view| {
            view.sql_exec("INSERT INTO t VALUES (1)", &[], budget)?;
            view.sql_exec(ENDLESS, &[], budget)
        })
        .unwrap_err();
    assert_eq!(error, SqlError::CpuLimit);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The statement before it in the same event stands (the event, not SQL, decides to fail).
    assert_eq!(o.rows("SELECT count(*) FROM t"), [[int(1)]]);
    o.reopen();
    assert_eq!(o.rows("PRAGMA quick_check"), [[text("ok")]]);
}

#[test]
fn a_statement_is_cut_off_when_the_runtime_halts() {
    let mut o = Object::new();
    let halt = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopper = {
        let halt = halt.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            halt.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let budget = SqlBudget {
        cpu: std::time::Duration::from_secs(3600),
        halt: Some(&halt),
        waited: None,
    };
    let error = o
        .event(|view| view.sql_exec(ENDLESS, &[], budget))
        .unwrap_err();
    assert_eq!(error, SqlError::Halted);
    stopper.join().unwrap();
}

#[test]
fn a_statement_that_needs_more_memory_than_the_object_may_hold_fails_saying_so() {
    let mut o = Object::new();
    let limits = Limits {
        instance_memory_bytes: 8 * 1024 * 1024,
        ..Limits::default()
    };
    o.view = ObjectStorage::new(store(&o.db), vec![7; 40], &limits);
    o.sql("CREATE TABLE t (n)", &[]).unwrap();
    let error = o
        .sql(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION SELECT x + 1 FROM c) SELECT count(*) FROM c",
            &[],
        )
        .unwrap_err();
    assert!(error.to_string().contains("out of memory"), "{error}");
    assert!(error.to_string().contains("8 MiB"), "{error}");
    // The object goes on: the next statement opens the database again.
    o.sql("INSERT INTO t VALUES (1)", &[]).unwrap();
    assert_eq!(o.rows("SELECT count(*) FROM t"), [[int(1)]]);
}

/// On a runtime with a single async worker thread, a long statement must not hold that thread:
/// another task keeps ticking while it runs, and the statement's answer is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_long_statement_hands_its_async_worker_thread_to_the_other_tasks() {
    let mut o = Object::new();
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let ticker = {
        let ticks = ticks.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    let (rows, ticked, took) = tokio::spawn(async move {
        // Let the ticker start first.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let before = ticks.load(std::sync::atomic::Ordering::Relaxed);
        let started = std::time::Instant::now();
        let rows = o.rows(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
             SELECT count(*) FROM c",
        );
        let took = started.elapsed();
        let ticked = ticks.load(std::sync::atomic::Ordering::Relaxed) - before;
        (rows, ticked, took)
    })
    .await
    .unwrap();
    ticker.abort();
    assert_eq!(rows, [[int(3_000_000)]]);
    assert!(took > std::time::Duration::from_millis(50), "{took:?}");
    // A tick a millisecond while the statement ran, give or take a busy machine: far from none.
    assert!(
        ticked as u128 >= took.as_millis() / 10,
        "{ticked} ticks in {took:?}"
    );
}

#[test]
fn vacuum_is_refused_saying_why() {
    let mut o = Object::new();
    o.sql("CREATE TABLE t (n)", &[]).unwrap();
    let error = o.sql("VACUUM", &[]).unwrap_err();
    assert!(error.to_string().contains("nor VACUUM"), "{error}");
}

/// A connection setting the guest made (here foreign keys off) holds after duro reopens the
/// connection: after a failed statement (the connection is dropped), and after the object slept.
#[test]
fn a_connection_setting_outlives_a_reopen() {
    let mut o = Object::new();
    o.sql("CREATE TABLE p (id INTEGER PRIMARY KEY)", &[])
        .unwrap();
    o.sql("CREATE TABLE c (p INTEGER REFERENCES p(id))", &[])
        .unwrap();
    assert!(
        o.sql("INSERT INTO c VALUES (1)", &[]).is_err(),
        "enforced by default"
    );
    o.sql("PRAGMA foreign_keys = OFF", &[]).unwrap();
    assert!(o.sql("SELECT * FROM nowhere", &[]).is_err());
    o.sql("INSERT INTO c VALUES (2)", &[]).unwrap();
    o.view.close_sql();
    o.sql("INSERT INTO c VALUES (3)", &[]).unwrap();
    assert_eq!(o.rows("SELECT count(*) FROM c"), [[int(2)]]);
    assert_eq!(o.rows("PRAGMA foreign_keys"), [[int(0)]]);
}
