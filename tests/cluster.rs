//! Cluster mode on a real PostgreSQL (Debian's server, started by the test on loopback): objects,
//! alarms and SQL databases live in PostgreSQL; every node serves every object (forwarding to
//! its owner), a class deployed through one node reaches all, and a migration sent to every node
//! at once applies once; a killed node's shards move to
//! the survivors (no acknowledged write lost); a node frozen past its lease can never commit
//! after the takeover, and starts over by itself; a PostgreSQL outage shorter than the lease
//! moves nothing, a longer one fences the nodes until they rejoin by themselves; a graceful
//! stop hands the shards over at once.

mod common;
#[path = "common/postgres.rs"]
mod postgres;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Process, TestServer, eventually, get_json, guest, post_json, try_get_json};
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
            advertise: None,
        });
    }
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
    s.script(
        "kv",
        json!([put("a", "1"), put("b", "2"), put("c", "3"), put("d", "4")]),
    )
    .await;
    let out = s
        .script(
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
    s.script("many", Value::Array(many)).await;

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
    let out = s
        .script("kv", json!([{"op": "list"}, {"op": "list", "prefix": "k"}]))
        .await;
    assert_eq!(out[0]["entries"].as_array().unwrap().len(), 4, "{out:?}");
    let out = s
        .script("many", json!([{"op": "list", "prefix": "k"}]))
        .await;
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

/// A `duro serve --cluster` node process with the Counter class and `classes` (class, guest
/// crate); returns once it serves.
fn node(url: &str, name: &str, dir: &std::path::Path, classes: &[(&str, &str)]) -> Process {
    node_with_lease(url, name, dir, classes, LEASE_TTL)
}

/// Like `node`, with a lease time of `ttl`.
fn node_with_lease(
    url: &str,
    name: &str,
    dir: &std::path::Path,
    classes: &[(&str, &str)],
    ttl: Duration,
) -> Process {
    let mut extra: Vec<String> = ["--cluster", url, "--node", name, "--lease-ttl-ms"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    extra.push(ttl.as_millis().to_string());
    for (class, crate_name) in classes {
        extra.push("--deploy".into());
        extra.push(format!("{class}={}", guest(crate_name).display()));
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    Process::start_with(dir, &extra, Stdio::null())
}

/// How many shards the live incarnation of node `name` owns.
fn shards_of(pg: &Postgres, db: &str, name: &str) -> u32 {
    pg.sql(
        db,
        &format!(
            "SELECT count(*) FROM duro_shards s JOIN duro_nodes n ON n.incarnation = s.owner \
             WHERE n.node = '{name}' AND n.expires > now()"
        ),
    )
    .parse()
    .expect("a count")
}

/// Waits until the shards are shared out between `nodes` (each owns some, together all).
async fn settled(pg: &Postgres, db: &str, nodes: &[&str]) {
    eventually(Duration::from_secs(30), || async {
        let owned: Vec<u32> = nodes.iter().map(|n| shards_of(pg, db, n)).collect();
        (owned.iter().sum::<u32>() == 256 && owned.iter().all(|n| *n > 0)).then_some(())
    })
    .await;
}

/// The node that runs the object `name` of `class` now.
async fn owner_of(pg: &Postgres, db: &str, ingress: &str, class: &str, name: &str) -> String {
    let id: Value = reqwest::get(format!("{ingress}/ids/{class}?name={name}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = hex::decode(id["id"].as_str().unwrap()).unwrap();
    let shard = u32::from_be_bytes(id[..4].try_into().unwrap()) % 256;
    pg.sql(
        db,
        &format!(
            "SELECT n.node FROM duro_shards s JOIN duro_nodes n ON n.incarnation = s.owner \
             WHERE s.shard = {shard}"
        ),
    )
}

/// Waits until node `name` owns every shard; returns how long that took.
async fn owns_everything(pg: &Postgres, db: &str, name: &str) -> Duration {
    let started = Instant::now();
    eventually(Duration::from_secs(30), || async {
        (shards_of(pg, db, name) == 256).then_some(())
    })
    .await;
    started.elapsed()
}

/// One increment; `None` (and the reason on stderr) when it failed.
async fn increment(http: &reqwest::Client, ingress: &str, name: &str) -> Option<u64> {
    let response = http
        .post(format!("{ingress}/objects/Counter/{name}/increment"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .inspect_err(|e| eprintln!("increment {name} through {ingress}: {e}"))
        .ok()?;
    let status = response.status();
    let body: Value = response.json().await.ok()?;
    if !status.is_success() {
        eprintln!("increment {name} through {ingress}: {status} {body}");
        return None;
    }
    body["count"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_serves_every_object_and_a_deploy_and_a_migration_on_one_reach_all() {
    let pg = Postgres::start();
    let url = pg.database("routing");
    let dirs = tempfile::tempdir().unwrap();
    let nodes: Vec<Process> = ["n1", "n2", "n3"]
        .iter()
        .map(|name| node(&url, name, &dirs.path().join(name), &[]))
        .collect();
    let http = reqwest::Client::new();
    // Each counter is incremented through every node in turn: one owner, one count.
    for round in 1..=3u64 {
        for (i, node) in nodes.iter().enumerate() {
            for c in 0..10 {
                let name = format!("c{c}");
                let expected = (round - 1) * 3 + i as u64 + 1;
                assert_eq!(
                    increment(&http, &node.ingress, &name).await,
                    Some(expected),
                    "{name} through node {i}"
                );
            }
        }
    }
    // The later nodes took their share from the first, while it served.
    settled(&pg, "routing", &["n1", "n2", "n3"]).await;

    // A class deployed through one node is served by every node.
    let alarm = std::fs::read(guest("alarm-probe")).unwrap();
    let deployed = http
        .put(format!("{}/classes/Alarm", nodes[1].admin))
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(deployed.status(), StatusCode::CREATED);
    for node in &nodes {
        eventually(Duration::from_secs(20), || async {
            let answer = http
                .get(format!("{}/objects/Alarm/a/get", node.ingress))
                .send()
                .await
                .ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
    }

    // A migration sent to every node at once applies once: one node applies it, the others
    // find it applied; then every node serves the renamed class, with its objects.
    let rename =
        json!({"tag": "v1", "renamed_classes": [{"from": "Counter", "to": "Tally"}]}).to_string();
    let sent = nodes.iter().map(|node| {
        http.post(format!("{}/migrations", node.admin))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(rename.clone())
            .send()
    });
    let mut applied = 0;
    for answer in futures_util::future::join_all(sent).await {
        let answer = answer.unwrap();
        assert_eq!(answer.status(), StatusCode::OK);
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["tag"], "v1", "{body}");
        applied += usize::from(body["applied"] == true);
    }
    assert_eq!(applied, 1, "exactly one node applied the migration");
    for node in &nodes {
        let migrations = format!("{}/migrations", node.admin);
        eventually(Duration::from_secs(20), || async {
            let applied = try_get_json(&http, &migrations).await?;
            (applied == json!({"applied": ["v1"]})).then_some(())
        })
        .await;
        let tally = format!("{}/objects/Tally/c0/get", node.ingress);
        eventually(Duration::from_secs(20), || async {
            let count = try_get_json(&http, &tally).await?;
            (count == json!({"count": 9})).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_shards_move_and_no_acknowledged_increment_is_lost() {
    let pg = Postgres::start();
    let url = pg.database("failover");
    let dirs = tempfile::tempdir().unwrap();
    let mut first = node(&url, "n1", &dirs.path().join("n1"), &[]);
    let second = node(&url, "n2", &dirs.path().join("n2"), &[]);
    settled(&pg, "failover", &["n1", "n2"]).await;
    let http = reqwest::Client::new();

    // Four clients increment their own counters through the second node until told to stop,
    // across the first node's death.
    // Counters that live on the first node.
    let mut names = Vec::new();
    for i in 0.. {
        let name = format!("c{i}");
        if owner_of(&pg, "failover", &second.ingress, "Counter", &name).await == "n1" {
            names.push(name);
        }
        if names.len() == 4 {
            break;
        }
    }
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|i| {
            let (http, ingress) = (http.clone(), second.ingress.clone());
            let (acked, stop, name) = (acked.clone(), stop.clone(), names[i].clone());
            tokio::spawn(async move {
                let mut failures = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    match increment(&http, &ingress, &name).await {
                        Some(count) => {
                            let before = acked[i].swap(count, Ordering::SeqCst);
                            // At most one unacknowledged increment (one in flight when the
                            // node died) between two acknowledged ones.
                            assert!(
                                count == before + 1 || (failures > 0 && count == before + 2),
                                "{name}: {before} then {count}"
                            );
                            failures = 0;
                        }
                        None => failures += 1,
                    }
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
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = first.child.wait();
    let killed = Instant::now();
    let before: Vec<u64> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    eventually(Duration::from_secs(30), || async {
        acked
            .iter()
            .zip(&before)
            .all(|(a, b)| a.load(Ordering::SeqCst) > b + 5)
            .then_some(())
    })
    .await;
    let took = killed.elapsed();
    stop.store(true, Ordering::SeqCst);
    for task in load {
        task.await.unwrap();
    }
    owns_everything(&pg, "failover", "n2").await;
    println!(
        "failover: every counter served again by the survivor {} ms after the kill",
        took.as_millis()
    );
}

/// One client per node, each incrementing its own counter (`r{i}` through node `i`) until
/// stopped: what each got acknowledged, and how many of its requests failed.
struct Load {
    acked: Arc<Vec<AtomicU64>>,
    failed: Arc<Vec<AtomicU64>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(http: &reqwest::Client, nodes: &[Process]) -> Self {
        let acked: Arc<Vec<AtomicU64>> =
            Arc::new(nodes.iter().map(|_| AtomicU64::new(0)).collect());
        let failed: Arc<Vec<AtomicU64>> =
            Arc::new(nodes.iter().map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let tasks = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let (http, ingress) = (http.clone(), node.ingress.clone());
                let (acked, failed, stop) = (acked.clone(), failed.clone(), stop.clone());
                tokio::spawn(async move {
                    let name = format!("r{i}");
                    while !stop.load(Ordering::SeqCst) {
                        match increment(&http, &ingress, &name).await {
                            Some(count) => acked[i].store(count, Ordering::SeqCst),
                            None => {
                                failed[i].fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            acked,
            failed,
            stop,
            tasks,
        }
    }

    /// The highest count any client got acknowledged.
    fn high(&self) -> u64 {
        let counts = self.acked.iter().map(|a| a.load(Ordering::SeqCst));
        counts.max().unwrap_or(0)
    }

    /// Waits until every client got `n` or more acknowledged.
    async fn above(&self, n: u64, deadline: Duration) {
        eventually(deadline, || async {
            let mut acked = self.acked.iter();
            acked.all(|a| a.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await;
    }

    /// Stops the clients; then every node still runs and every acknowledged increment is
    /// there (one whose answer was lost with its connection may be there too: it failed for its
    /// client, which may retry).
    async fn finish(self, http: &reqwest::Client, nodes: &mut [Process]) {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.unwrap();
        }
        for (i, node) in nodes.iter_mut().enumerate() {
            assert!(
                node.child.try_wait().unwrap().is_none(),
                "node {i} still runs"
            );
            let count = get_json(http, &format!("{}/objects/Counter/r{i}/get", node.ingress)).await;
            let count = count["count"].as_u64().unwrap();
            let (acked, failed) = (
                self.acked[i].load(Ordering::SeqCst),
                self.failed[i].load(Ordering::SeqCst),
            );
            assert!(
                count >= acked && count <= acked + failed,
                "r{i}: {count} stored, {acked} acknowledged, {failed} failed"
            );
        }
    }
}

/// Every shard's owner and epoch (a claim bumps the epoch).
fn shard_owners(pg: &Postgres, db: &str) -> String {
    pg.sql(
        db,
        "SELECT string_agg(shard || ':' || coalesce(owner, '-') || ':' || epoch, ',' \
         ORDER BY shard) FROM duro_shards",
    )
}

/// The live incarnation of each node: `name=incarnation,...`.
fn incarnations(pg: &Postgres, db: &str) -> String {
    pg.sql(
        db,
        "SELECT string_agg(node || '=' || incarnation, ',' ORDER BY node) FROM duro_nodes \
         WHERE expires > now()",
    )
}

/// Issue 35: PostgreSQL crashes and stays down for 3 s under two nodes whose 12 s lease outlasts
/// the outage: requests fail while it is down; once it is back every node serves again by
/// itself (the lease's, the writer's and the readers' connections opened again), and nothing
/// moved — no node started over, no shard changed owner — with every acknowledged increment
/// there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_shorter_than_the_lease_costs_no_node_and_no_shard() {
    let pg = Postgres::start();
    let url = pg.database("outage");
    let dirs = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(12);
    let mut nodes: Vec<Process> = ["n1", "n2"]
        .iter()
        .map(|name| node_with_lease(&url, name, &dirs.path().join(name), &[], ttl))
        .collect();
    settled(&pg, "outage", &["n1", "n2"]).await;
    let http = reqwest::Client::new();
    let load = Load::start(&http, &nodes);
    load.above(20, Duration::from_secs(20)).await;
    let (owners, members) = (shard_owners(&pg, "outage"), incarnations(&pg, "outage"));

    let down = Instant::now();
    tokio::task::block_in_place(|| pg.stop());
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::block_in_place(|| pg.resume());
    let outage = down.elapsed();
    // The lease survives 0.9 × 12 s − 1 s − 0.25 s of outage (9.55 s): a margin for a busy
    // machine's restart of PostgreSQL and reconnects.
    assert!(
        outage < Duration::from_secs(7),
        "PostgreSQL took {outage:?} to stop and start: too slow a machine for this test"
    );
    let high = load.high();
    load.above(high + 20, Duration::from_secs(30)).await;
    // A lease time after the outage began (past the deadline of a renewal made before it),
    // the clients still get answers: no node lost its lease.
    eventually(Duration::from_secs(40), || async {
        (down.elapsed() > ttl).then_some(())
    })
    .await;
    load.above(load.high(), Duration::from_secs(10)).await;
    assert_eq!(shard_owners(&pg, "outage"), owners, "a shard moved");
    assert_eq!(incarnations(&pg, "outage"), members, "a node started over");
    load.finish(&http, &mut nodes).await;
    println!(
        "outage: PostgreSQL down for {} ms, nothing moved",
        outage.as_millis()
    );
}

/// Issue 35: PostgreSQL stays down longer than the lease (2 s): both nodes stop serving (they
/// start over in place, same process, and listen again only once they joined), then — with no
/// supervisor — rejoin as new incarnations when PostgreSQL is back, and serve on from every
/// acknowledged increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_longer_than_the_lease_fences_the_nodes_and_they_rejoin_by_themselves()
{
    let pg = Postgres::start();
    let url = pg.database("fenced");
    let dirs = tempfile::tempdir().unwrap();
    let ttl = Duration::from_secs(2);
    let mut nodes: Vec<Process> = ["n1", "n2"]
        .iter()
        .map(|name| node_with_lease(&url, name, &dirs.path().join(name), &[], ttl))
        .collect();
    settled(&pg, "fenced", &["n1", "n2"]).await;
    let http = reqwest::Client::new();
    let load = Load::start(&http, &nodes);
    load.above(10, Duration::from_secs(20)).await;
    let members = incarnations(&pg, "fenced");

    tokio::task::block_in_place(|| pg.stop());
    // Both stop serving: their listeners close as they start over.
    for node in &nodes {
        let admin = node.admin.trim_start_matches("http://").to_string();
        eventually(Duration::from_secs(20), || async {
            tokio::net::TcpStream::connect(&admin)
                .await
                .is_err()
                .then_some(())
        })
        .await;
    }
    for (i, node) in nodes.iter_mut().enumerate() {
        assert!(node.child.try_wait().unwrap().is_none(), "node {i} exited");
    }
    tokio::task::block_in_place(|| pg.resume());
    let back = Instant::now();
    let high = load.high();
    load.above(high + 10, Duration::from_secs(60)).await;
    println!(
        "fenced: both nodes serve again {} ms after PostgreSQL is back",
        back.elapsed().as_millis()
    );
    settled(&pg, "fenced", &["n1", "n2"]).await;
    let rejoined = incarnations(&pg, "fenced");
    assert!(
        rejoined.starts_with("n1=") && rejoined.contains(",n2="),
        "{rejoined}"
    );
    for (old, new) in members.split(',').zip(rejoined.split(',')) {
        assert_ne!(old, new, "a node kept its incarnation");
    }
    load.finish(&http, &mut nodes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_joins_takes_its_share_while_requests_keep_succeeding() {
    let pg = Postgres::start();
    let url = pg.database("rebalance");
    let dirs = tempfile::tempdir().unwrap();
    let first = node(&url, "n1", &dirs.path().join("n1"), &[]);
    assert_eq!(shards_of(&pg, "rebalance", "n1"), 256);
    let http = reqwest::Client::new();
    // 16 clients, each with its own counter, through the first node; not one request may fail.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..16)
        .map(|i| {
            let (http, ingress, stop) = (http.clone(), first.ingress.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = 0;
                while !stop.load(Ordering::SeqCst) {
                    let count = increment(&http, &ingress, &format!("c{i}")).await;
                    assert_eq!(count, Some(acked + 1), "c{i}");
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = node(&url, "n2", &dirs.path().join("n2"), &[]);
    // The first node drains the shards that rank the second first, then hands them over.
    eventually(Duration::from_secs(30), || async {
        let (one, two) = (
            shards_of(&pg, "rebalance", "n1"),
            shards_of(&pg, "rebalance", "n2"),
        );
        (one + two == 256 && one > 60 && two > 60).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    for (i, task) in load.into_iter().enumerate() {
        let acked = task.await.unwrap();
        // Through either node, the count is every acknowledged increment.
        assert_eq!(
            increment(&http, &second.ingress, &format!("c{i}")).await,
            Some(acked + 1)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_load_fails_no_request() {
    let pg = Postgres::start();
    let url = pg.database("rolling");
    let dirs = tempfile::tempdir().unwrap();
    let start = |name: &str| node(&url, name, &dirs.path().join(name), &[]);
    let mut nodes = [start("n1"), start("n2")];
    settled(&pg, "rolling", &["n1", "n2"]).await;
    let http = reqwest::Client::new();
    // The node the clients go through: never the one restarting.
    let gateway = Arc::new(std::sync::RwLock::new(nodes[1].ingress.clone()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|i| {
            let (http, gateway, stop) = (http.clone(), gateway.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = 0;
                while !stop.load(Ordering::SeqCst) {
                    let ingress = gateway.read().unwrap().clone();
                    let count = increment(&http, &ingress, &format!("c{i}")).await;
                    assert_eq!(count, Some(acked + 1), "c{i} through {ingress}");
                    acked += 1;
                }
                acked
            })
        })
        .collect();
    for (restarting, other) in [(0, 1), (1, 0)] {
        *gateway.write().unwrap() = nodes[other].ingress.clone();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let name = format!("n{}", restarting + 1);
        nodes[restarting].signal(nix::sys::signal::Signal::SIGTERM);
        let status = nodes[restarting].child.wait().unwrap();
        assert!(status.success(), "{name} stopped with {status}");
        nodes[restarting] = start(&name);
        settled(&pg, "rolling", &["n1", "n2"]).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for (i, task) in load.into_iter().enumerate() {
        let acked = task.await.unwrap();
        assert!(acked > 0);
        assert_eq!(
            increment(&http, &nodes[0].ingress, &format!("c{i}")).await,
            Some(acked + 1)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_node_past_its_lease_never_commits_after_the_takeover() {
    let pg = Postgres::start();
    let url = pg.database("fencing");
    let dirs = tempfile::tempdir().unwrap();
    let mut frozen = node(&url, "n1", &dirs.path().join("n1"), &[]);
    let http = reqwest::Client::new();
    assert_eq!(increment(&http, &frozen.ingress, "x").await, Some(1));

    frozen.signal(nix::sys::signal::Signal::SIGSTOP);
    // Stopped for sure (state T) before the late request leaves.
    let stat = format!("/proc/{}/stat", frozen.child.id());
    eventually(Duration::from_secs(5), || async {
        let stat = std::fs::read_to_string(&stat).ok()?;
        let state = stat
            .rsplit(')')
            .next()?
            .split_whitespace()
            .next()?
            .to_string();
        (state == "T").then_some(())
    })
    .await;
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
    let took_over = node(&url, "n2", &dirs.path().join("n2"), &[]);
    owns_everything(&pg, "fencing", "n2").await;
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
    // The woken node notices it lost its lease, starts over in place (the same process) and
    // joins again as a new incarnation: it serves again, counting on from the takeover.
    assert_eq!(increment(&http, &took_over.ingress, "x").await, Some(4));
    let again = eventually(Duration::from_secs(30), || async {
        increment(&http, &frozen.ingress, "x").await
    })
    .await;
    assert_eq!(again, 5);
    assert!(
        frozen.child.try_wait().unwrap().is_none(),
        "the node exited"
    );
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
    let second = node(&url, "n2", &dirs.path().join("n2"), &[]);
    // An alarm due after the stop fires on the node that took over.
    first.post("/objects/Alarm/later/set?in=3000").await;
    first.stop().await;
    let took = owns_everything(&pg, "handover", "n2").await;
    // Well before the lease would have expired: the shards were released, not abandoned.
    assert!(took < LEASE_TTL, "the handover took {took:?}");
    fired_once(&second.ingress, "later").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_through_any_node_reaches_its_object_and_closes_when_that_node_dies() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let pg = Postgres::start();
    let url = pg.database("sockets");
    let dirs = tempfile::tempdir().unwrap();
    let chat = [("ChatRoom", "duro-example-chat-room")];
    let mut first = node(&url, "n1", &dirs.path().join("n1"), &chat);
    let second = node(&url, "n2", &dirs.path().join("n2"), &chat);
    settled(&pg, "sockets", &["n1", "n2"]).await;
    // A room that lives on n1.
    let mut room = String::new();
    for i in 0.. {
        room = format!("room{i}");
        if owner_of(&pg, "sockets", &first.ingress, "ChatRoom", &room).await == "n1" {
            break;
        }
    }
    let path = format!("/objects/ChatRoom/{room}/ws");
    // One client through the room's node, one through the other node.
    let mut direct = common::ws_connect_to(&first.ingress, &path).await;
    let mut through = common::ws_connect_to(&second.ingress, &path).await;
    through.send(Message::text("from n2")).await.unwrap();
    assert_eq!(common::ws_next(&mut direct).await, Message::text("from n2"));
    direct.send(Message::text("from n1")).await.unwrap();
    assert_eq!(
        common::ws_next(&mut through).await,
        Message::text("from n1")
    );

    // The room's node dies: the socket through n2 closes; clients reconnect and the room
    // lives on n2.
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = first.child.wait();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match through.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the socket through n2 stayed open");
    owns_everything(&pg, "sockets", "n2").await;
    let mut a = common::ws_connect_to(&second.ingress, &path).await;
    let mut b = common::ws_connect_to(&second.ingress, &path).await;
    a.send(Message::text("again")).await.unwrap();
    assert_eq!(common::ws_next(&mut b).await, Message::text("again"));
}

/// Waits until the alarm-probe object `name` (through `ingress`) logged its alarm; it ran once.
async fn fired_once(ingress: &str, name: &str) {
    let http = reqwest::Client::new();
    let log = eventually(Duration::from_secs(30), || async {
        let log = try_get_json(&http, &format!("{ingress}/objects/Alarm/{name}/log")).await?;
        let invocations = log["invocations"].as_array()?.clone();
        (!invocations.is_empty()).then_some(invocations)
    })
    .await;
    assert_eq!(log.len(), 1, "{log:?}");
}

/// The first name `{prefix}{i}` of `class` whose object lives on node `on`.
async fn name_on(
    pg: &Postgres,
    db: &str,
    ingress: &str,
    class: &str,
    prefix: &str,
    on: &str,
) -> String {
    for i in 0.. {
        let name = format!("{prefix}{i}");
        if owner_of(pg, db, ingress, class, &name).await == on {
            return name;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_calls_an_object_on_another_node() {
    let pg = Postgres::start();
    let url = pg.database("calls");
    let dirs = tempfile::tempdir().unwrap();
    let first = TestServer::start_with(cluster_config(&url, "n1")).await;
    for (class, crate_name) in [
        ("Counter", "duro-example-counter"),
        ("CounterGroup", "duro-example-counter-group"),
        ("Call", "call-probe"),
    ] {
        assert_eq!(first.deploy(class, crate_name).await.0, StatusCode::CREATED);
    }
    first
        .bind(&[("COUNTER", "Counter"), ("PROBE", "Call")])
        .await;
    let second = node(&url, "n2", &dirs.path().join("n2"), &[]);
    settled(&pg, "calls", &["n1", "n2"]).await;
    // A group on n1 calls a counter on n2 (its stub's call is forwarded), through either node.
    let group = name_on(&pg, "calls", &first.ingress, "CounterGroup", "g", "n1").await;
    let counter = name_on(&pg, "calls", &first.ingress, "Counter", "c", "n2").await;
    let http = reqwest::Client::new();
    for (round, ingress) in [(1, &first.ingress), (2, &second.ingress)] {
        let url = format!("{ingress}/objects/CounterGroup/{group}/increment?counter={counter}");
        let answer = post_json(&http, &url, "").await;
        assert_eq!(answer, json!({"group": round, "count": round}));
    }

    // An operator's change of the counter (on n2) through n1's admin API is relayed to n2 and
    // runs there as the object's event; the next increment uses it.
    let entry = format!("/classes/Counter/objects/by-name/{counter}/entries/count");
    let (status, body) = first.admin_call(Method::PUT, &entry, b"41".to_vec()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = format!("{}/objects/Counter/{counter}/increment", first.ingress);
    assert_eq!(post_json(&http, &url, "").await, json!({"count": 42}));
    let missing = format!("/classes/Counter/objects/by-name/{counter}/entries/nothing");
    let (status, body) = first.admin_call(Method::DELETE, &missing, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    // RPC between nodes: an object on n1 calls a method of one on n2, through either node.
    let caller = name_on(&pg, "calls", &first.ingress, "Call", "a", "n1").await;
    let callee = name_on(&pg, "calls", &first.ingress, "Call", "b", "n2").await;
    for ingress in [&first.ingress, &second.ingress] {
        let url = format!("{ingress}/objects/Call/{caller}/rpc?b=PROBE&n={callee}&m=add");
        let answer = post_json(&http, &url, "[2, 3]").await;
        assert_eq!(answer, json!({"returned": 5}));
    }
    // A cycle through both nodes (n1 -> n2 -> n1) is refused at once, not after the timeout:
    // the chain of waiting objects travels with the forwarded call.
    let started = Instant::now();
    let answer = try_get_json(
        &http,
        &format!(
            "{}/objects/Call/{caller}/hop?route=PROBE:{callee},PROBE:{caller}",
            second.ingress
        ),
    )
    .await
    .unwrap();
    assert!(answer.to_string().contains("cycle"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_of_a_killed_node_fires_on_the_node_that_takes_its_object() {
    let pg = Postgres::start();
    let url = pg.database("alarms");
    let dirs = tempfile::tempdir().unwrap();
    let probe = [("Alarm", "alarm-probe")];
    let mut first = node(&url, "n1", &dirs.path().join("n1"), &probe);
    let second = node(&url, "n2", &dirs.path().join("n2"), &probe);
    settled(&pg, "alarms", &["n1", "n2"]).await;
    let name = name_on(&pg, "alarms", &second.ingress, "Alarm", "a", "n1").await;
    let http = reqwest::Client::new();
    let set = http
        .post(format!(
            "{}/objects/Alarm/{name}/set?in=2000",
            second.ingress
        ))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    first.signal(nix::sys::signal::Signal::SIGKILL);
    let _ = first.child.wait();
    fired_once(&second.ingress, &name).await;
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
