//! `duro backup` copies a running server's database consistently (under load), a server started
//! on the copy serves it, and `duro check` finds it healthy; `duro check` finds a flipped byte in
//! a stored value, and refuses a data dir in use.

mod common;

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Process, guest};
use reqwest::StatusCode;
use serde_json::{Value, json};

const MARKER: &str = "MARKER-a-value-duro-check-must-verify-0123456789";

fn duro(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(args)
        .output()
        .expect("running duro")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn put_marker(http: &reqwest::Client, process: &Process) {
    let ops = json!([{ "op": "put", "key": "marker", "value": MARKER }]);
    let response = http
        .post(format!("{}/objects/Probe/m/script", process.ingress))
        .body(ops.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    common::get_json(http, &url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_write() {
    let temp = tempfile::tempdir().unwrap();
    let probe = format!("Probe={}", guest("storage-probe").display());
    let process = Process::start_with(temp.path(), &["--deploy", &probe], Stdio::null());
    let http = reqwest::Client::new();
    put_marker(&http, &process).await;
    // Increments run on while the backup is made.
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (http, acked) = (http.clone(), acked.clone());
        let url = format!("{}/objects/Counter/busy/increment", process.ingress);
        tokio::spawn(async move {
            while let Ok(response) = http.post(&url).send().await {
                let Ok(body) = response.json::<Value>().await else {
                    break;
                };
                acked.store(body["count"].as_u64().unwrap(), Ordering::SeqCst);
            }
        })
    };
    common::eventually(std::time::Duration::from_secs(10), || async {
        (acked.load(Ordering::SeqCst) >= 50).then_some(())
    })
    .await;
    let before = acked.load(Ordering::SeqCst);
    let backup = tempfile::tempdir().unwrap();
    let dest = backup.path().join("copy");
    let admin = &process.admin;
    let output = duro(&["backup", "--admin-url", admin, dest.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    let after = acked.load(Ordering::SeqCst);
    writer.abort();
    // A second backup into the same place is refused.
    let output = duro(&["backup", "--admin-url", admin, dest.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("exists already"),
        "{}",
        text(&output)
    );
    drop(process);

    let output = duro(&["check", "--data-dir", dest.to_str().unwrap()]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("healthy"), "{}", text(&output));
    let restored = Process::start_with(&dest, &["--deploy", &probe], Stdio::null());
    let count = get(
        &http,
        format!("{}/objects/Counter/busy/get", restored.ingress),
    )
    .await["count"]
        .as_u64()
        .unwrap();
    assert!(
        (before..=after + 1).contains(&count),
        "the backup holds {count}; {before} were acknowledged before it began, {after} after"
    );
    let ops = json!([{ "op": "get", "key": "marker" }]);
    let response = http
        .post(format!("{}/objects/Probe/m/script", restored.ingress))
        .body(ops.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"results": [{"value": MARKER}]})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_finds_a_flipped_byte_and_refuses_a_data_dir_in_use() {
    let temp = tempfile::tempdir().unwrap();
    let probe = format!("Probe={}", guest("storage-probe").display());
    let mut process = Process::start_with(temp.path(), &["--deploy", &probe], Stdio::null());
    let http = reqwest::Client::new();
    put_marker(&http, &process).await;
    let data_dir = temp.path().to_str().unwrap();
    let output = duro(&["check", "--data-dir", data_dir]);
    assert!(!output.status.success());
    assert!(text(&output).contains("in use"), "{}", text(&output));
    // A clean stop, then the check passes.
    process.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(process.child.wait().unwrap().success());
    let output = duro(&["check", "--data-dir", data_dir]);
    assert!(output.status.success(), "{}", text(&output));
    // Flip one byte of the stored value (every copy of it in the file).
    let db = temp.path().join("duro.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    let mut flipped = 0;
    let mut at = 0;
    while let Some(found) = bytes[at..]
        .windows(MARKER.len())
        .position(|w| w == MARKER.as_bytes())
    {
        bytes[at + found + 10] ^= 0x20;
        flipped += 1;
        at += found + MARKER.len();
    }
    assert!(flipped > 0, "the value was not found in the file");
    std::fs::write(&db, &bytes).unwrap();
    let output = duro(&["check", "--data-dir", data_dir]);
    assert!(!output.status.success(), "{}", text(&output));
    assert!(text(&output).contains("DAMAGED"), "{}", text(&output));
}
