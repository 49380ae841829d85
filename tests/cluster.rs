//! Cluster mode on a real PostgreSQL (Debian's server, started by the test on loopback): objects,
//! alarms and SQL databases live in PostgreSQL; a standby takes over when the active node is
//! killed (no acknowledged write lost), a node frozen past its lease can never commit after the
//! takeover, and a graceful stop hands the shards over at once.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{TestServer, eventually, guest};
use postgres::Postgres;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Short leases, so that takeovers happen within a test.
const LEASE_TTL: Duration = Duration::from_millis(1500);

fn cluster_config(url: &str, node: &str) -> impl FnOnce(&mut duro::Config) {
    let (url, node) = (url.to_string(), node.to_string());
    move |c: &mut duro::Config| {
        c.cluster = Some(duro::config::Cluster {
            url,
            node,
            lease_ttl: LEASE_TTL,
        });
    }
}

/// Runs a storage-probe script as one event on object `name`.
async fn script(s: &TestServer, name: &str, ops: Value) -> Vec<Value> {
    let (status, body) = s
        .call(
            Method::POST,
            &format!("/objects/Probe/{name}/script"),
            ops.to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["results"].as_array().expect("results").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_alarms_and_sql_live_in_postgresql() {
    let pg = Postgres::start();
    let url = pg.database("objects");
    let s = TestServer::start_with(cluster_config(&url, "a")).await;
    assert_eq!(
        s.deploy("Probe", "storage-probe").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.deploy("Alarm", "alarm-probe").await.0,
        StatusCode::CREATED
    );

    // Key-value storage: batches, lists in both directions with limits, transactions.
    let put = |k: &str, v: &str| json!({"op": "put", "key": k, "value": v});
    script(
        &s,
        "kv",
        json!([put("a", "1"), put("b", "2"), put("c", "3"), put("d", "4")]),
    )
    .await;
    let out = script(
        &s,
        "kv",
        json!([
            {"op": "list", "start": "b", "limit": 2},
            {"op": "list", "reverse": true, "limit": 3},
            {"op": "begin"},
            {"op": "delete", "key": "a"},
            {"op": "rollback"},
            {"op": "get", "key": "a"},
        ]),
    )
    .await;
    assert_eq!(
        out[0]["entries"],
        json!([["b", "2"], ["c", "3"]]),
        "{out:?}"
    );
    assert_eq!(
        out[1]["entries"],
        json!([["d", "4"], ["c", "3"], ["b", "2"]]),
        "{out:?}"
    );
    assert_eq!(out[5]["value"], "1", "{out:?}");
    // More entries than one page of a PostgreSQL range read.
    let many: Vec<Value> = (0..600).map(|i| put(&format!("k{i:04}"), "x")).collect();
    script(&s, "many", Value::Array(many)).await;

    // An SQL database: its pages are entries too.
    let (status, out) = s
        .call(
            Method::POST,
            "/objects/Probe/db/sql",
            json!({"statements": [
                ["CREATE TABLE t (n INTEGER)", []],
                ["INSERT INTO t VALUES (?), (?)", [1, 2]],
            ], "trap": false})
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");

    // An alarm, fired by the scheduler reading PostgreSQL's schedule.
    s.post("/objects/Alarm/soon/set?in=200").await;
    eventually(Duration::from_secs(10), || async {
        let (_, log) = s.get("/objects/Alarm/soon/log").await;
        (log["invocations"].as_array()?.len() == 1).then_some(())
    })
    .await;
    let (_, listing) = s
        .admin_call(Method::GET, "/classes/Probe/objects", Vec::new())
        .await;
    assert_eq!(listing["objects"].as_array().unwrap().len(), 3, "{listing}");

    // A new node on the same database (after a graceful stop) sees all of it.
    s.stop().await;
    let s = TestServer::start_with(cluster_config(&url, "b")).await;
    let out = script(
        &s,
        "kv",
        json!([{"op": "list"}, {"op": "list", "prefix": "k"}]),
    )
    .await;
    assert_eq!(out[0]["entries"].as_array().unwrap().len(), 4, "{out:?}");
    let out = script(&s, "many", json!([{"op": "list", "prefix": "k"}])).await;
    assert_eq!(out[0]["entries"].as_array().unwrap().len(), 600);
    let (_, out) = s
        .call(
            Method::POST,
            "/objects/Probe/db/sql",
            json!({"statements": [["SELECT sum(n) AS s FROM t", []]], "trap": false}).to_string(),
        )
        .await;
    assert_eq!(out["results"][0]["rows"], json!([{"s": 3}]), "{out}");
    let rows = pg.sql("objects", "SELECT count(*) FROM duro_entries WHERE t = 0");
    assert!(rows.parse::<u64>().unwrap() > 600, "{rows}");
}

/// A `duro serve --cluster` node process with the Counter class.
struct Node {
    child: Child,
    ingress: String,
}

impl Node {
    /// Starts a node process; the receiver gets its ingress URL once it is active (a standby
    /// prints it only after taking over).
    fn start(
        url: &str,
        name: &str,
        dir: &std::path::Path,
    ) -> (Child, std::sync::mpsc::Receiver<String>) {
        let mut child = common::serve_command(&[], dir)
            .args(["--cluster", url, "--node", name])
            .arg("--lease-ttl-ms")
            .arg(LEASE_TTL.as_millis().to_string())
            .arg("--deploy")
            .arg(format!(
                "Counter={}",
                guest("duro-example-counter").display()
            ))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning duro");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Some(url) = line.strip_prefix("ingress: ") {
                    let _ = tx.send(url.to_string());
                }
            }
        });
        (child, rx)
    }

    /// Starts a node and waits until it serves.
    fn active(url: &str, name: &str, dir: &std::path::Path) -> Self {
        let (child, ready) = Self::start(url, name, dir);
        let ingress = ready
            .recv_timeout(Duration::from_secs(60))
            .expect("the node became active");
        Self { child, ingress }
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("sending a signal");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn increment(http: &reqwest::Client, ingress: &str, name: &str) -> Option<u64> {
    let response = http
        .post(format!("{ingress}/objects/Counter/{name}/increment"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.json::<Value>().await.ok()?["count"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_over_a_killed_node_and_no_acknowledged_increment_is_lost() {
    let pg = Postgres::start();
    let url = pg.database("failover");
    let dirs = tempfile::tempdir().unwrap();
    let mut first = Node::active(&url, "n1", &dirs.path().join("n1"));
    let (standby_child, standby_ready) = Node::start(&url, "n2", &dirs.path().join("n2"));
    let http = reqwest::Client::new();

    // Four clients increment their own counters until the active node dies.
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let ingress = first.ingress.clone();
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (http, ingress, acked) = (http.clone(), ingress.clone(), acked.clone());
            tokio::spawn(async move {
                while let Some(count) = increment(&http, &ingress, &format!("c{i}")).await {
                    acked[i].store(count, Ordering::SeqCst);
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(20), || async {
        acked
            .iter()
            .all(|a| a.load(Ordering::SeqCst) >= 20)
            .then_some(())
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = first.child.wait();
    let killed = Instant::now();
    for task in load {
        task.await.unwrap();
    }

    let ingress = tokio::task::spawn_blocking(move || {
        standby_ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the standby became active")
    })
    .await
    .unwrap();
    let standby = Node {
        child: standby_child,
        ingress,
    };
    for (i, acked) in acked.iter().enumerate() {
        let acked = acked.load(Ordering::SeqCst);
        let next = increment(&http, &standby.ingress, &format!("c{i}"))
            .await
            .expect("the new active node serves");
        // Every acknowledged increment is there; at most the one in flight at the kill more.
        assert!(
            next == acked + 1 || next == acked + 2,
            "counter c{i}: {acked} acknowledged, the next increment answered {next}"
        );
    }
    let took = killed.elapsed();
    println!(
        "failover: first increment on the standby {} ms after the kill",
        took.as_millis()
    );
    assert!(took < LEASE_TTL * 10, "took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_past_its_lease_never_commits_after_the_takeover() {
    let pg = Postgres::start();
    let url = pg.database("fencing");
    let dirs = tempfile::tempdir().unwrap();
    let mut frozen = Node::active(&url, "n1", &dirs.path().join("n1"));
    let http = reqwest::Client::new();
    assert_eq!(increment(&http, &frozen.ingress, "x").await, Some(1));

    frozen.signal(nix::sys::signal::Signal::SIGSTOP);
    // A request sent to the frozen node waits in its socket until it wakes.
    let late = {
        let (http, ingress) = (http.clone(), frozen.ingress.clone());
        tokio::spawn(async move {
            http.post(format!("{ingress}/objects/Counter/x/increment"))
                .timeout(Duration::from_secs(30))
                .send()
                .await
        })
    };
    let took_over = Node::active(&url, "n2", &dirs.path().join("n2"));
    assert_eq!(increment(&http, &took_over.ingress, "x").await, Some(2));
    assert_eq!(increment(&http, &took_over.ingress, "x").await, Some(3));

    frozen.signal(nix::sys::signal::Signal::SIGCONT);
    // The late request never succeeds: refused by the fence, or cut when the node stops.
    if let Ok(response) = late.await.unwrap() {
        assert!(
            !response.status().is_success(),
            "the frozen node answered {} after the takeover",
            response.status()
        );
    }
    // The woken node notices it lost its lease and stops (exit status 3).
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = frozen.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the frozen node did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    assert_eq!(status.code(), Some(3), "{status}");
    assert_eq!(increment(&http, &took_over.ingress, "x").await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_stop_hands_the_shards_over_at_once_and_alarms_move_with_them() {
    let pg = Postgres::start();
    let url = pg.database("handover");
    let dirs = tempfile::tempdir().unwrap();
    let first = TestServer::start_with(cluster_config(&url, "n1")).await;
    assert_eq!(
        first.deploy("Alarm", "alarm-probe").await.0,
        StatusCode::CREATED
    );
    let (standby, ready) = Node::start(&url, "n2", &dirs.path().join("n2"));
    // An alarm due after the stop fires on the node that took over.
    first.post("/objects/Alarm/later/set?in=3000").await;
    let stopped = Instant::now();
    first.stop().await;
    let ingress = tokio::task::spawn_blocking(move || {
        ready
            .recv_timeout(Duration::from_secs(30))
            .expect("the standby became active")
    })
    .await
    .unwrap();
    let took = stopped.elapsed();
    // Well before the lease would have expired, plus one poll of the standby.
    assert!(took < LEASE_TTL, "the handover took {took:?}");
    let _standby = Node {
        child: standby,
        ingress: ingress.clone(),
    };
    let http = reqwest::Client::new();
    let log = eventually(Duration::from_secs(20), || async {
        let log: Value = http
            .get(format!("{ingress}/objects/Alarm/later/log"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let invocations = log["invocations"].as_array()?.clone();
        (!invocations.is_empty()).then_some(invocations)
    })
    .await;
    assert_eq!(log.len(), 1, "{log:?}");
}

#[test]
fn a_bad_cluster_url_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_duro"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--cluster", "postgres://nobody@127.0.0.1:1/none"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cluster mode: postgresql: cannot connect"),
        "{stderr}"
    );
}
