//! SQL storage (`ctx.storage.sql`) through the real server: the JS probe class
//! (tests/components/js-probe/sql.js) answers Cloudflare's API shapes; an event's SQL writes
//! are atomic with its key-value writes (a trap discards both, `deleteAll` clears both).
//! Crash safety of SQL writes under `kill -9` is in tests/cloudflare.rs (the durable chat).

mod common;

use std::time::Duration;

use common::TestServer;
use redb::ReadableTable;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn probe() -> TestServer {
    common::js_probe_server(|c| c.limits.event_cpu = Duration::from_millis(300)).await
}

/// Cloudflare's shapes: typed values (blobs as ArrayBuffers), cursors read by `one`, `next`,
/// `raw`, iteration and `toArray`, several statements with bindings to the last, `RETURNING`,
/// SQLite's messages, Cloudflare's refusals, `transactionSync`, the synchronous `kv`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_sql_api_behaves_as_cloudflares() {
    let s = probe().await;
    let (status, out) = s.get("/objects/Probe/sql-api/sql").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["sizeEmpty"], 0);
    assert_eq!(out["insertRows"], json!([0, 1]));
    assert_eq!(
        out["row"],
        json!({"i": 42, "r": 1.5, "t": "text", "b": [1, 2, 3], "blobIsArrayBuffer": true, "n": null})
    );
    assert_eq!(out["columnNames"], json!(["a", "b"]));
    assert_eq!(
        out["next"],
        json!({"done": false, "value": {"a": 1, "b": "x"}})
    );
    assert_eq!(out["raw"], json!([[2, "y"], [3, "z"]]));
    assert_eq!(out["exhausted"], json!({"done": true}));
    assert_eq!(
        out["iterated"],
        json!([{"i": 42}, {"i": 9007199254740991_i64}])
    );
    assert_eq!(out["rawIterated"], json!([[42], [9007199254740991_i64]]));
    assert_eq!(out["several"], json!([{"x": 2}]));
    assert_eq!(out["returning"], json!([{"x": 10}, {"x": 20}]));

    let message = |key: &str| out[key].as_str().unwrap_or_default().to_string();
    assert_eq!(
        message("oneOfNone"),
        "Expected exactly one result from SQL query, but got no results."
    );
    assert!(message("oneOfMany").contains("multiple results"), "{out}");
    assert!(message("syntax").contains("syntax error"), "{out}");
    assert!(message("syntax").contains("SQLITE_ERROR"), "{out}");
    assert!(
        message("noTable").contains("no such table: nowhere"),
        "{out}"
    );
    for refused in ["begin", "savepoint"] {
        assert!(
            message(refused).contains("state.storage.transactionSync()"),
            "{refused}: {out}"
        );
    }
    assert!(message("attach").contains("not allowed"), "{out}");
    assert!(message("reserved").contains("_cf_"), "{out}");
    assert!(message("pragma").contains("not authorized"), "{out}");
    assert_eq!(out["tableInfo"], json!(["x"]));
    assert!(message("badBinding").contains("cannot bind"), "{out}");
    assert!(!message("tooManyBindings").is_empty(), "{out}");
    for failed in ["constraint", "severalFailed"] {
        assert!(
            message(failed).contains("UNIQUE constraint failed: u.k"),
            "{failed}: {out}"
        );
    }
    assert_eq!(out["afterConstraint"], 0, "a failed call changes nothing");

    assert_eq!(out["kept"], 3);
    assert_eq!(out["thrownOut"], "changed my mind");
    assert_eq!(out["afterThrow"], json!([3, null]));
    assert_eq!(
        out["kv"],
        json!([{"v": 1}, true, false, [["k1", {"v": 1}]]])
    );
    // The pages in use, and the key-value entry left: "k1" and `{"v":1}`, 9 bytes.
    let size = out["size"].as_u64().unwrap();
    assert!(size >= 4096 && size % 4096 == 9, "{out}");
}

async fn read(s: &TestServer, name: &str) -> Value {
    let (status, out) = s.get(&format!("/objects/Probe/{name}/sql-read")).await;
    assert_eq!(status, StatusCode::OK, "{out}");
    out
}

/// A trap (here the CPU limit) after SQL and key-value writes discards both: the object's
/// database is what was committed before, and it goes on counting from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_discards_the_events_sql_writes_with_its_other_writes() {
    let s = probe().await;
    for n in 1..=2 {
        assert_eq!(
            s.get("/objects/Probe/trapped/sql-count").await,
            (StatusCode::OK, json!({"value": n}))
        );
    }
    let (status, out) = s.get("/objects/Probe/trapped/sql-then-spin").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{out}");
    assert_eq!(read(&s, "trapped").await["value"], 2);
    assert_eq!(read(&s, "trapped").await["kv"], Value::Null);
    assert_eq!(
        s.get("/objects/Probe/trapped/sql-count").await,
        (StatusCode::OK, json!({"value": 3}))
    );
}

/// `deleteAll` clears the database with the key-value entries; the object starts over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_all_clears_the_database_too() {
    let s = probe().await;
    assert_eq!(
        s.get("/objects/Probe/cleared/sql-count").await.1,
        json!({"value": 1})
    );
    let size = read(&s, "cleared").await["size"].as_u64().unwrap();
    assert!(size > 0);
    let (status, out) = s.get("/objects/Probe/cleared/sql-delete-all").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(
        out.as_str()
            .unwrap_or_default()
            .contains("no such table: counter"),
        "{out}"
    );
    assert_eq!(
        s.get("/objects/Probe/cleared/sql-count").await.1,
        json!({"value": 1})
    );
}

/// A Rust class uses the same database through the SDK's typed API (`storage().sql()`): typed
/// bindings and rows, SQLite's messages as `Error::Sql`, and a panic discards the SQL writes of
/// its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_class_has_the_same_sql_storage() {
    let s = TestServer::start_with(common::shared_cache).await;
    assert_eq!(
        s.deploy("Store", "storage-probe").await.0,
        StatusCode::CREATED
    );
    let script = async |statements: Value, trap: bool| {
        let body = json!({ "statements": statements, "trap": trap }).to_string();
        s.call(reqwest::Method::POST, "/objects/Store/r/sql", body)
            .await
    };
    let (status, out) = script(
        json!([
            [
                "CREATE TABLE notes (id INTEGER PRIMARY KEY, text TEXT, score REAL, data BLOB)",
                []
            ],
            [
                "INSERT INTO notes (text, score, data) VALUES (?, ?, ?), (?, ?, ?)",
                ["one", 1.5, [1, 2], "two", null, null]
            ],
            ["SELECT * FROM notes ORDER BY id", []],
            ["SELECT * FROM missing", []],
        ]),
        false,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let results = &out["results"];
    assert_eq!(results[1]["written"], 2);
    assert_eq!(
        results[2]["rows"],
        json!([
            {"id": 1, "text": "one", "score": 1.5, "data": [1, 2]},
            {"id": 2, "text": "two", "score": null, "data": null}
        ])
    );
    assert_eq!(
        results[2]["columns"],
        json!(["id", "text", "score", "data"])
    );
    assert!(
        results[3]["error"]
            .as_str()
            .unwrap()
            .contains("no such table: missing"),
        "{out}"
    );
    assert!(out["size"].as_u64().unwrap() > 0);

    let (status, _) = script(json!([["DELETE FROM notes", []]]), true).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let (_, out) = script(json!([["SELECT count(*) AS n FROM notes", []]]), false).await;
    assert_eq!(
        out["results"][0]["rows"],
        json!([{"n": 2}]),
        "the trap discarded the delete"
    );
}

/// The Python SDK's `ctx.storage.sql`: the same values, cursors, errors and `transaction_sync`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_class_has_the_same_sql_storage() {
    let s = TestServer::start_with(common::shared_cache).await;
    let probe = std::fs::read(common::python_probe()).expect("the Python probe component");
    assert_eq!(s.upload("PyProbe", probe).await.0, StatusCode::CREATED);
    let (status, out) = s.get("/objects/PyProbe/p/sql").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["sizeEmpty"], 0);
    assert_eq!(out["written"], 1);
    assert_eq!(
        out["row"],
        json!({"i": 7, "r": 0.5, "s": "py", "b": [1, 2], "n": null})
    );
    assert_eq!(out["columns"], json!(["i", "s"]));
    assert_eq!(out["raw"], json!([[7, "py"]]));
    assert!(
        out["error"]["message"]
            .as_str()
            .unwrap()
            .contains("syntax error"),
        "{out}"
    );
    assert!(
        out["none"]["message"]
            .as_str()
            .unwrap()
            .contains("no results"),
        "{out}"
    );
    assert_eq!(out["undone"]["message"], "changed my mind");
    assert_eq!(out["afterUndone"], json!([1, null]));
    assert_eq!(out["kept"], json!({"i": 8}));
    assert!(out["size"].as_u64().unwrap() > 0);
}

/// The inspector shows an object's SQL tables and rows, read from a snapshot (never through the
/// live connection, whose object is not even woken), and listings give the database's size
/// apart from the key-value entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_shows_tables_and_rows() {
    let s = probe().await;
    for _ in 0..3 {
        s.get("/objects/Probe/looked-at/sql-count").await;
    }
    let admin = async |path: &str| s.admin_call(reqwest::Method::GET, path, Vec::new()).await;
    let (status, out) = admin("/classes/Probe/objects/by-name/looked-at/sql").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["name"], "looked-at");
    assert_eq!(out["tables"][0]["name"], "counter");
    assert_eq!(out["tables"][0]["rows"], 1);
    assert!(
        out["tables"][0]["sql"]
            .as_str()
            .unwrap()
            .starts_with("CREATE TABLE counter")
    );
    let size = out["size"].as_u64().unwrap();
    assert!(size >= 8192, "{out}");
    let (status, out) = admin("/classes/Probe/objects/by-name/looked-at/sql?table=counter").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["columns"], json!(["id", "value"]));
    assert_eq!(out["rows"], json!([[1, 3]]));
    let (status, _) = admin("/classes/Probe/objects/by-name/looked-at/sql?table=nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, out) = admin("/classes/Probe/objects/by-name/never-used/sql").await;
    assert_eq!(out["tables"], json!([]));

    let (_, listing) = admin("/classes/Probe/objects").await;
    let object = &listing["objects"][0];
    assert_eq!(
        (object["keys"].clone(), object["sql_bytes"].as_u64()),
        (json!(0), Some(size))
    );
    let (_, entries) = admin("/classes/Probe/objects/by-name/looked-at").await;
    assert_eq!(entries["entries"], json!([]), "the pages are not entries");
}

/// `duro check` runs SQLite's `integrity_check` on every object's database: a sound one passes;
/// a page overwritten behind SQLite's back (through redb, so redb's own checksums hold) fails
/// the check, naming the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_runs_sqlites_integrity_check_on_every_database() {
    let temp = tempfile::tempdir().unwrap();
    let probe = format!("Store={}", common::guest("storage-probe").display());
    let mut process = common::Process::start_with(
        temp.path(),
        &["--deploy", &probe],
        std::process::Stdio::null(),
    );
    let statements = json!({"statements": [
        ["CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)", []],
        ["WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO t SELECT i, printf('%0100d', i) FROM n", []],
    ]});
    let response = reqwest::Client::new()
        .post(format!("{}/objects/Store/checked/sql", process.ingress))
        .body(statements.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    process.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(process.child.wait().unwrap().success());
    let data_dir = temp.path().to_str().unwrap();
    let check = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
            .args(["check", "--data-dir", data_dir])
            .output()
            .unwrap()
    };
    let output = check();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{printed}");
    assert!(
        printed.contains("sql: 1 of 1 databases pass SQLite's integrity_check"),
        "{printed}"
    );

    // Overwrite the table's root page (page 2) with garbage, through redb.
    {
        let db = redb::Database::open(temp.path().join("duro.redb")).unwrap();
        let table: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("data");
        let txn = db.begin_write().unwrap();
        {
            let mut data = txn.open_table(table).unwrap();
            let key = {
                let mut page = None;
                for entry in data.iter().unwrap() {
                    let (key, _) = entry.unwrap();
                    if key.value().ends_with(&[0xFF, b'p', 0, 0, 0, 1]) {
                        page = Some(key.value().to_vec());
                    }
                }
                page.expect("page 2 of the database")
            };
            data.insert(key.as_slice(), [0x55u8; 4096].as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let output = check();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("SQL database of object"), "{printed}");
}

/// A C class reaches the same database through `duro.h` (`duro_sql_exec` with typed bindings):
/// the C Counter's `/sql/increment` counts in a table, beside its key-value count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c_class_has_the_same_sql_storage() {
    let s = TestServer::start_with(common::shared_cache).await;
    let counter = std::fs::read(common::c_build()).expect("the C counter");
    assert_eq!(s.upload("CCounter", counter).await.0, StatusCode::CREATED);
    for n in 1..=3 {
        assert_eq!(
            s.get("/objects/CCounter/c/sql/increment").await,
            (StatusCode::OK, json!({"count": n}))
        );
    }
    assert_eq!(
        s.get("/objects/CCounter/c/increment").await.1,
        json!({"count": 1}),
        "the key-value count is apart"
    );
    let (_, out) = s
        .admin_call(
            reqwest::Method::GET,
            "/classes/CCounter/objects/by-name/c/sql?table=counter",
            Vec::new(),
        )
        .await;
    assert_eq!(out["rows"], json!([[1, 3]]));
}

/// A statement that never ends on its own (issue 35: it froze the server).
const ENDLESS: &str =
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c";

/// One statement as the storage probe's `/sql` script.
fn one_statement(query: &str) -> String {
    json!({ "statements": [[query, []]] }).to_string()
}

/// Two endless statements, as many as this runtime has async threads, each fail their event at
/// the event's CPU limit (8 s) with Cloudflare's error; while they run, another object and
/// `/healthz` answer (a statement never holds an async thread); their objects go on afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_statement_fails_at_the_cpu_limit_while_its_neighbours_go_on() {
    let s = TestServer::start_with(|c| {
        common::shared_cache(c);
        c.limits.event_cpu = Duration::from_secs(8);
    })
    .await;
    assert_eq!(
        s.deploy("Store", "storage-probe").await.0,
        StatusCode::CREATED
    );
    s.deploy("Counter", "duro-example-counter").await;
    let spinners: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let (http, url) = (
                s.http.clone(),
                format!("{}/objects/Store/{name}/sql", s.ingress),
            );
            tokio::spawn(async move {
                let started = std::time::Instant::now();
                let response = http.post(url).body(one_statement(ENDLESS)).send().await;
                let answer = common::status_json(response.unwrap()).await;
                (answer, started.elapsed())
            })
        })
        .collect();
    // Until both are cut off, a neighbour counts and the admin API answers, each quickly.
    let (mut slowest, mut answered) = (Duration::ZERO, 0);
    let spinning = std::time::Instant::now();
    while !spinners.iter().all(|s| s.is_finished()) {
        assert!(
            spinning.elapsed() < Duration::from_secs(60),
            "the statements were not cut off"
        );
        let started = std::time::Instant::now();
        let (status, out) = s.post("/objects/Counter/neighbour/increment").await;
        assert_eq!(status, StatusCode::OK, "{out}");
        let (status, _) = s
            .admin_call(reqwest::Method::GET, "/healthz", Vec::new())
            .await;
        assert_eq!(status, StatusCode::OK);
        slowest = slowest.max(started.elapsed());
        answered += 1;
    }
    assert!(answered > 10, "{answered} neighbour rounds");
    // Held behind the statements, a neighbour would wait the 8 s they run.
    assert!(slowest < Duration::from_secs(3), "{slowest:?}");
    for spinner in spinners {
        let ((status, out), took) = spinner.await.unwrap();
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{out}");
        let error = out["error"].as_str().unwrap_or_default();
        assert!(error.contains("exceeded CPU time limit"), "{out}");
        assert!(took >= Duration::from_secs(8), "{took:?}");
        assert!(took < Duration::from_secs(30), "{took:?}");
    }
    // The objects go on.
    let (status, out) = s
        .call(
            reqwest::Method::POST,
            "/objects/Store/a/sql",
            one_statement("SELECT 1 AS one"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["results"][0]["rows"], json!([{"one": 1}]), "{out}");
}

/// SQLite's memory for one object (here a `UNION` that grows its temporary b-tree without end)
/// is capped at the object's memory limit: the statement fails with SQLite's out-of-memory
/// error, saying so, and the object goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_cannot_hold_more_memory_than_its_object_may() {
    let s = TestServer::start_with(|c| {
        common::shared_cache(c);
        c.limits.instance_memory_bytes = 32 * 1024 * 1024;
    })
    .await;
    assert_eq!(
        s.deploy("Store", "storage-probe").await.0,
        StatusCode::CREATED
    );
    let growing =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION SELECT x + 1 FROM c) SELECT count(*) FROM c";
    let (status, out) = s
        .call(
            reqwest::Method::POST,
            "/objects/Store/m/sql",
            one_statement(growing),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let error = out["results"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("out of memory"), "{out}");
    assert!(error.contains("32 MiB"), "{out}");
    let (status, out) = s
        .call(
            reqwest::Method::POST,
            "/objects/Store/m/sql",
            one_statement("SELECT 2 AS two"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["results"][0]["rows"], json!([{"two": 2}]), "{out}");
}

/// SIGTERM while an endless statement runs: the stop ends at its drain timeout (the statement is
/// cut off), not at the event's CPU limit, and not never.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_cuts_an_endless_statement_off_at_the_drain_timeout() {
    let temp = tempfile::tempdir().unwrap();
    let probe = format!("Store={}", common::guest("storage-probe").display());
    let mut process = common::Process::start_with(
        temp.path(),
        &[
            "--deploy",
            &probe,
            "--drain-timeout-ms",
            "1000",
            "--event-cpu-ms",
            "600000",
        ],
        std::process::Stdio::null(),
    );
    let http = reqwest::Client::new();
    let url = format!("{}/objects/Store/endless/sql", process.ingress);
    let request = tokio::spawn(http.post(url).body(one_statement(ENDLESS)).send());
    // The statement's object is live: its event runs.
    common::eventually(Duration::from_secs(30), || async {
        (common::metric(&http, &process.admin, "duro_live_objects").await >= 1.0).then_some(())
    })
    .await;
    let stopping = std::time::Instant::now();
    process.signal(nix::sys::signal::Signal::SIGTERM);
    let exited = tokio::task::spawn_blocking(move || {
        let status = process.child.wait().unwrap();
        (status, process)
    });
    let (status, _process) = tokio::time::timeout(Duration::from_secs(30), exited)
        .await
        .expect("duro did not exit within 30 s of SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "{:?}",
        stopping.elapsed()
    );
    // The caller got an answer or a closed connection, never a hang.
    let _ = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the request ended with the server");
}
