//! Durability: classes and values survive a restart; a restart loads compiled code from the
//! cache instead of recompiling; `kill -9` under load loses no acknowledged increment (the
//! write-ahead log is replayed); a group too big for the log is committed to redb directly; a
//! damaged log record is refused, never taken for a torn tail.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Process, TestServer};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_classes_and_values_and_does_not_recompile() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    for _ in 0..5 {
        s.post("/objects/Counter/keep/increment").await;
    }
    assert_eq!(s.metric("duro_compilations_total").await, 1.0);
    let (config, temp) = s.stop().await;

    let s = TestServer::start_in(config).await;
    let (status, list) = s.admin_call(reqwest::Method::GET, "/classes", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["class"], "Counter");
    assert_eq!(
        s.get("/objects/Counter/keep/get").await.1,
        json!({"count": 5})
    );
    assert_eq!(s.metric("duro_compilations_total").await, 0.0);
    assert_eq!(s.metric("duro_cache_loads_total").await, 1.0);
    // A clean stop checkpoints: nothing is left in the write-ahead log to replay.
    assert_eq!(s.metric("duro_log_replayed_groups_total").await, 0.0);
    s.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_increment() {
    // Checkpoints every 20 ms: the kill lands among log appends, checkpoints and log wraps.
    kill_9_under_load(&["--checkpoint-interval-ms", "20"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_write_ahead_log_is_replayed() {
    // No checkpoint during the run: every acknowledged increment is only in the log and in
    // redb commits that were never made durable, so the restart must replay them.
    let replayed = kill_9_under_load(&["--checkpoint-interval-ms", "3600000"]).await;
    assert!(replayed > 0.0, "nothing was replayed");
}

/// Increments 8 counters from 32 workers, kills the server with SIGKILL once 1,500 increments
/// were acknowledged, restarts it and checks that every counter holds at least its highest
/// acknowledged count. Returns how many groups the restart replayed from the log.
async fn kill_9_under_load(extra: &[&str]) -> f64 {
    let temp = tempfile::tempdir().unwrap();
    let mut process = Process::start_with(temp.path(), extra, Stdio::null());
    let http = reqwest::Client::new();
    const COUNTERS: usize = 8;
    const WORKERS: usize = 32;
    // Highest count acknowledged per counter.
    let acked: Arc<Mutex<HashMap<usize, u64>>> = Arc::default();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for worker in 0..WORKERS {
        let (http, acked, ingress, stop) = (
            http.clone(),
            acked.clone(),
            process.ingress.clone(),
            stop_rx.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let counter = worker % COUNTERS;
            let url = format!("{ingress}/objects/Counter/k{counter}/increment");
            while !*stop.borrow() {
                let Ok(response) = http.post(&url).send().await else {
                    break;
                };
                if response.status() != StatusCode::OK {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                let count = body["count"].as_u64().expect("a count");
                let mut acked = acked.lock().unwrap();
                let best = acked.entry(counter).or_default();
                *best = (*best).max(count);
            }
        }));
    }
    // Let load run until a good number of increments were acknowledged, then kill -9.
    common::eventually(Duration::from_secs(60), || async {
        (acked.lock().unwrap().values().sum::<u64>() >= 1500).then_some(())
    })
    .await;
    process.kill_9();
    let _ = stop_tx.send(true);
    for task in tasks {
        let _ = task.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), COUNTERS);

    let process = Process::start(temp.path());
    for (counter, acked) in acked {
        let url = format!("{}/objects/Counter/k{counter}/get", process.ingress);
        let body = common::get_json(&http, &url).await;
        let stored = body["count"].as_u64().unwrap();
        assert!(
            stored >= acked,
            "counter k{counter}: {stored} stored < {acked} acknowledged"
        );
    }
    common::metric(&http, &process.admin, "duro_log_replayed_groups_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_guest_output_reaches_the_log() {
    let temp = tempfile::tempdir().unwrap();
    let misbehave = format!("Bad={}", common::guest("misbehave").display());
    let mut process = Process::start_with(temp.path(), &["--deploy", &misbehave], Stdio::piped());
    let http = reqwest::Client::new();
    for _ in 0..10 {
        let response = http
            .post(format!(
                "{}/objects/Counter/term/increment",
                process.ingress
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = http
        .get(format!("{}/objects/Bad/talker/log", process.ingress))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    process.signal(nix::sys::signal::Signal::SIGTERM);
    let status = process.child.wait().expect("duro exits");
    assert!(status.success(), "exit status {status}");
    let mut log = String::new();
    std::io::Read::read_to_string(&mut process.child.stderr.take().unwrap(), &mut log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("hello from the guest's stdout"))
        .unwrap_or_else(|| panic!("guest output not in the log:\n{log}"));
    assert!(
        line.contains("class=Bad") && line.contains("object="),
        "{line}"
    );
    assert!(log.contains("hello from the guest's stderr"), "{log}");
    assert!(
        !log.contains("duro::access"),
        "no access log unless asked: {log}"
    );
    assert!(log.contains("duro stopped"), "{log}");

    let process = Process::start(temp.path());
    let url = format!("{}/objects/Counter/term/get", process.ingress);
    assert_eq!(common::get_json(&http, &url).await, json!({"count": 10}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_deploys_and_lists_classes() {
    let temp = tempfile::tempdir().unwrap();
    let process = Process::start(temp.path());
    let duro = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
            .args(args)
            .args(["--admin-url", &process.admin])
            .output()
            .expect("running the duro CLI");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    };
    let probe = format!("Probe={}", common::guest("storage-probe").display());
    let (ok, out) = duro(&["deploy", &probe]);
    assert!(ok, "{out}");
    assert_eq!(out.trim(), "class Probe: created");
    let (ok, out) = duro(&["deploy", &probe, "--json"]);
    assert!(ok, "{out}");
    let answer: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&answer["class"], &answer["change"]),
        (&json!("Probe"), &json!("unchanged"))
    );
    let (ok, out) = duro(&["classes"]);
    assert!(ok, "{out}");
    let table: Vec<&str> = out.lines().collect();
    assert!(
        table[0].starts_with("CLASS") && table[0].contains("SHA256"),
        "{out}"
    );
    assert!(table.iter().any(|l| l.starts_with("Counter ")), "{out}");
    assert!(table.iter().any(|l| l.starts_with("Probe ")), "{out}");
    let (ok, out) = duro(&["classes", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(ok && listed.as_array().unwrap().len() == 2, "{out}");
    let (ok, out) = duro(&["delete", "Probe"]);
    assert!(ok, "{out}");
    let (ok, out) = duro(&["classes"]);
    assert!(ok && !out.contains("Probe"), "{out}");
    let (ok, _) = duro(&["deploy", "Bad=/nonexistent.wasm"]);
    assert!(!ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_bigger_than_the_write_ahead_log_commits_and_survives_a_restart() {
    // No time-based checkpoint: the only one can come from a group too big for the log.
    let s = TestServer::start_with(|c| c.checkpoint_interval = Duration::from_secs(3600)).await;
    assert_eq!(
        s.deploy("Probe", "storage-probe").await.0,
        StatusCode::CREATED
    );
    let checkpoints = s.metric("duro_checkpoints_total").await;
    // 80 values of 128 KiB in one event: 10 MiB, more than the 8 MiB log can hold, so the group
    // is committed to redb durably instead of being logged.
    let ops: Vec<_> = (0..80)
        .map(|i| json!({"op": "put-sized", "key": format!("k{i:02}"), "size": 128 * 1024}))
        .collect();
    let path = "/objects/Probe/big/script";
    let (status, body) = s
        .call(reqwest::Method::POST, path, json!(ops).to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(s.metric("duro_checkpoints_total").await, checkpoints + 1.0);
    // A small event after it goes through the log as usual.
    let small = json!([{"op": "put", "key": "after", "value": "1"}]).to_string();
    assert_eq!(
        s.call(reqwest::Method::POST, path, small).await.0,
        StatusCode::OK
    );
    let (config, temp) = s.stop().await;

    let s = TestServer::start_in(config).await;
    let read = json!([{"op": "get", "key": "k79"}, {"op": "get", "key": "after"}]).to_string();
    let (status, body) = s.call(reqwest::Method::POST, path, read).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let results = body["results"].as_array().expect("results");
    assert_eq!(results[0]["value"].as_str().map(str::len), Some(128 * 1024));
    assert_eq!(results[1]["value"], "1");
    s.stop().await;
    drop(temp);
}

/// `duro serve` on `data_dir` that never checkpoints: acknowledged writes live in the log only.
fn start_without_checkpoints(data_dir: &std::path::Path) -> Process {
    Process::start_with(
        data_dir,
        &["--checkpoint-interval-ms", "3600000"],
        Stdio::null(),
    )
}

/// `n` acknowledged increments of the counter `c`.
async fn increment(http: &reqwest::Client, process: &Process, n: usize) {
    let url = format!("{}/objects/Counter/c/increment", process.ingress);
    for _ in 0..n {
        assert_eq!(
            http.post(&url).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
}

/// `duro serve` on `data_dir` with `extra` flags, expected to refuse to start: its stderr.
fn refused_start(data_dir: &std::path::Path, extra: &[&str]) -> String {
    let output = common::serve_command(&[], data_dir)
        .args(extra)
        .output()
        .expect("running duro");
    assert!(!output.status.success(), "duro started on a damaged log");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_cut_log_after_a_crash_refuses_the_start_unless_the_loss_is_accepted() {
    let temp = tempfile::tempdir().unwrap();
    let wal = temp.path().join("duro.wal");
    // 100 increments that only the log holds (no checkpoint), then kill -9.
    let mut process = start_without_checkpoints(temp.path());
    let http = reqwest::Client::new();
    increment(&http, &process, 100).await;
    process.kill_9();
    let log = std::fs::read(&wal).unwrap();

    // Missing: refused, with the way out.
    std::fs::remove_file(&wal).unwrap();
    let stderr = refused_start(temp.path(), &[]);
    assert!(stderr.contains("write-ahead log is missing"), "{stderr}");
    assert!(stderr.contains("--accept-log-damage"), "{stderr}");
    // Cut: refused too; nothing was changed by the refusals.
    std::fs::write(&wal, &log[..8192]).unwrap();
    let stderr = refused_start(temp.path(), &[]);
    assert!(stderr.contains("shorter than"), "{stderr}");
    // Whole again: every increment is replayed.
    std::fs::write(&wal, &log).unwrap();
    let process = Process::start(temp.path());
    let url = format!("{}/objects/Counter/c/get", process.ingress);
    assert_eq!(common::get_json(&http, &url).await, json!({"count": 100}));
    drop(process);

    // Accepting the loss of a cut log starts with what could be read.
    let mut process = start_without_checkpoints(temp.path());
    increment(&http, &process, 10).await;
    process.kill_9();
    let log = std::fs::read(&wal).unwrap();
    std::fs::write(&wal, &log[..4096 + 100]).unwrap();
    refused_start(temp.path(), &[]);
    let process = Process::start_with(temp.path(), &["--accept-log-damage"], Stdio::null());
    let url = format!("{}/objects/Counter/c/get", process.ingress);
    let count = common::get_json(&http, &url).await["count"]
        .as_u64()
        .unwrap();
    assert!((100..110).contains(&count), "{count}");
}

/// Offset of the last record of the log's current round: the last sector after the header
/// area that is not all zeros (an increment's group takes one sector).
fn last_record(log: &[u8]) -> usize {
    const SECTOR: usize = 512;
    let mut last = None;
    let mut at = 4096;
    while at + SECTOR <= log.len() && log[at..at + SECTOR].iter().any(|b| *b != 0) {
        last = Some(at);
        at += SECTOR;
    }
    last.expect("the log holds records")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_the_last_acknowledged_record_is_refused_and_checked_loudly() {
    let temp = tempfile::tempdir().unwrap();
    let wal = temp.path().join("duro.wal");
    let data_dir = temp.path().to_str().unwrap();
    let mut process = start_without_checkpoints(temp.path());
    let http = reqwest::Client::new();
    increment(&http, &process, 20).await;
    process.kill_9();
    let mut log = std::fs::read(&wal).unwrap();
    let last = last_record(&log);
    log[last + 100] ^= 0x04;
    std::fs::write(&wal, &log).unwrap();

    // Not taken for a torn tail: the start is refused, and says where.
    let stderr = refused_start(temp.path(), &[]);
    assert!(stderr.contains("may hold acknowledged writes"), "{stderr}");
    assert!(stderr.contains(&format!("offset {last}")), "{stderr}");
    // `duro check` fails with the offset too.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["check", "--data-dir", data_dir])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{said}");
    assert!(said.contains(&format!("offset {last}")), "{said}");

    // Accepting the loss starts with every increment before the damaged one.
    let process = Process::start_with(temp.path(), &["--accept-log-damage"], Stdio::null());
    let url = format!("{}/objects/Counter/c/get", process.ingress);
    assert_eq!(common::get_json(&http, &url).await, json!({"count": 19}));
}
