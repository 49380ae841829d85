//! `/healthz` tells the truth: an internal fault (a panic inside the runtime while running an
//! event) is a 500 with an error id, the object recovers from storage, and the runtime reports
//! itself unhealthy; a storage writer that failed (here: a file size limit, as a full disk)
//! makes `/healthz` unhealthy with the reason, and `/metrics` says so too, while reads go on.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::{Process, TestServer, guest};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_panic_is_a_500_with_an_id_and_makes_the_runtime_unhealthy() {
    // SAFETY: this binary's tests do not read or write the environment concurrently; the flag
    // only arms the debug-build fault injection of requests that ask for it.
    unsafe { std::env::set_var("DURO_FAULT_INJECTION", "1") };
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    assert_eq!(
        s.post("/objects/Counter/p/increment").await.1,
        json!({"count": 1})
    );
    let response = s
        .http
        .post(format!("{}/objects/Counter/p/increment", s.ingress))
        .header("x-duro-fault", "panic")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("internal error"),
        "{body}"
    );
    assert!(body["error_id"].is_string(), "{body}");
    // The object starts over from what is durable and serves on.
    assert_eq!(
        s.post("/objects/Counter/p/increment").await,
        (StatusCode::OK, json!({"count": 2}))
    );
    let (status, health) = s.admin_call(reqwest::Method::GET, "/healthz", vec![]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert_eq!(health["ok"], false);
    assert!(
        health["problems"][0]
            .as_str()
            .unwrap()
            .contains("injected fault"),
        "{health}"
    );
    assert_eq!(s.metric("duro_internal_errors_total").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_storage_writer_makes_healthz_unhealthy_until_a_restart() {
    let temp = tempfile::tempdir().unwrap();
    // Files may grow to 16 MiB (the log is 8): redb's file soon cannot grow, as on a full disk.
    let wrapper = [
        "sh",
        "-c",
        "ulimit -f 16384; trap '' XFSZ; exec \"$0\" \"$@\"",
    ];
    let bad = format!("Bad={}", guest("misbehave").display());
    let process = Process::start_under(
        &wrapper,
        temp.path(),
        &["--deploy", &bad, "--checkpoint-interval-ms", "50"],
        Stdio::null(),
    );
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", process.ingress);
    assert_eq!(
        http.post(url("/objects/Counter/kept/increment"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Write 1 MB events until one fails.
    let mut failed = None;
    for i in 0..200 {
        let response = http
            .post(url(&format!("/objects/Bad/o{i}/write?kib=1000")))
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            failed = Some((response.status(), response.text().await.unwrap()));
            break;
        }
    }
    let (status, body) = failed.expect("a write failed once the file could not grow");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    // Every later write fails, /healthz says why, /metrics agrees; reads still work.
    let health = common::eventually(Duration::from_secs(10), || async {
        let response = http
            .get(format!("{}/healthz", process.admin))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())?;
        response.json::<serde_json::Value>().await.ok()
    })
    .await;
    assert!(
        health["problems"][0]
            .as_str()
            .unwrap()
            .contains("storage writer failed"),
        "{health}"
    );
    assert_eq!(
        common::metric(&http, &process.admin, "duro_storage_writer_ok").await,
        0.0
    );
    let response = http
        .post(url("/objects/Counter/kept/increment"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = http
        .get(url("/objects/Counter/kept/get"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"count": 1})
    );
}
