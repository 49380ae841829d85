//! Misbehaving guests and callers: an infinite loop, a memory bomb, a panic, an oversized body.
//! Each gets a clear error and the runtime (and the object) keeps serving.

mod common;

use std::time::Duration;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn misbehave(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let s = TestServer::start_with(adjust).await;
    assert_eq!(s.deploy("Bad", "misbehave").await.0, StatusCode::CREATED);
    s.deploy("Counter", "duro-example-counter").await;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_hits_the_cpu_limit_and_the_object_recovers() {
    let s = misbehave(|c| c.limits.event_cpu = Duration::from_millis(300)).await;
    assert_eq!(s.get("/objects/Bad/x/events").await.1, json!({"events": 1}));
    // Other objects keep being served while the loop runs.
    let looping = {
        let http = s.http.clone();
        let url = format!("{}/objects/Bad/x/loop", s.ingress);
        tokio::spawn(async move { common::status_json(http.get(url).send().await.unwrap()).await })
    };
    for _ in 0..5 {
        assert_eq!(
            s.post("/objects/Counter/c/increment").await.0,
            StatusCode::OK
        );
    }
    let (status, body) = looping.await.unwrap();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"].as_str().unwrap().contains("CPU limit"),
        "{body}"
    );
    // The instance was reset: a fresh one counts from 1 again.
    assert_eq!(
        s.get("/objects/Bad/x/events").await,
        (StatusCode::OK, json!({"events": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_memory_limit_and_the_runtime_lives() {
    let s = misbehave(|c| c.limits.instance_memory_bytes = 32 * 1024 * 1024).await;
    let (status, body) = s.get("/objects/Bad/m/alloc").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"].as_str().unwrap().contains("memory limit"),
        "{body}"
    );
    assert_eq!(
        s.get("/objects/Bad/m/events").await,
        (StatusCode::OK, json!({"events": 1}))
    );
    assert_eq!(
        s.post("/objects/Counter/c/increment").await.1,
        json!({"count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_500_and_its_write_is_discarded() {
    let s = misbehave(|_| {}).await;
    assert_eq!(s.post("/objects/Bad/p/bump").await.1, json!({"bumps": 1}));
    let (status, body) = s.post("/objects/Bad/p/bump?trap").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"].as_str().unwrap().contains("trap"), "{body}");
    assert_eq!(s.post("/objects/Bad/p/bump").await.1, json!({"bumps": 2}));
    let (status, _) = s.get("/objects/Bad/p/trap").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(s.metric("duro_traps_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_413() {
    let s = misbehave(|c| c.limits.max_request_body_bytes = 1024).await;
    let (status, body) = s
        .call(
            Method::POST,
            "/objects/Counter/c/increment",
            vec![b'x'; 1025],
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(body["error"].as_str().unwrap().contains("1024"), "{body}");
    // Without a Content-Length too (chunked).
    let chunks = futures_util::stream::iter(
        (0..4).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 512]))),
    );
    let response = s
        .http
        .post(format!("{}/objects/Counter/c/increment", s.ingress))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = s
        .call(
            Method::POST,
            "/objects/Counter/c/increment",
            vec![b'x'; 1024],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guest_output_is_logged_and_events_keep_working() {
    let s = misbehave(|_| {}).await;
    assert_eq!(
        s.get("/objects/Bad/l/log").await,
        (StatusCode::OK, json!("logged"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_objects_are_evicted_and_come_back_with_their_state() {
    let s = misbehave(|c| c.idle_timeout = Duration::from_millis(200)).await;
    assert_eq!(
        s.post("/objects/Counter/e/increment").await.1,
        json!({"count": 1})
    );
    common::eventually(Duration::from_secs(10), || async {
        (s.metric("duro_evictions_total").await >= 1.0).then_some(())
    })
    .await;
    assert_eq!(s.metric("duro_live_objects").await, 0.0);
    assert_eq!(
        s.post("/objects/Counter/e/increment").await.1,
        json!({"count": 2})
    );
    assert!(s.metric("duro_activations_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_live_object_bound_idle_objects_make_room() {
    let s = misbehave(|c| c.limits.max_live_objects = 2).await;
    for name in ["a", "b", "c", "d", "a"] {
        let (status, body) = s.post(&format!("/objects/Counter/{name}/increment")).await;
        assert_eq!(status, StatusCode::OK, "{name}: {body}");
    }
    assert_eq!(
        s.post("/objects/Counter/a/increment").await.1,
        json!({"count": 3})
    );
    assert!(s.metric("duro_live_objects").await <= 2.0);
    assert!(s.metric("duro_evictions_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_live_object_is_busy_the_bound_answers_503() {
    let s = misbehave(|c| {
        c.limits.max_live_objects = 1;
        c.limits.event_cpu = Duration::from_secs(4);
    })
    .await;
    let busy = {
        let http = s.http.clone();
        let url = format!("{}/objects/Bad/busy/loop", s.ingress);
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    };
    // Wait until the looping object holds the only slot.
    common::eventually(Duration::from_secs(5), || async {
        (s.metric("duro_live_objects").await == 1.0).then_some(())
    })
    .await;
    let (status, body) = s.post("/objects/Counter/other/increment").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("live objects"),
        "{body}"
    );
    assert_eq!(busy.await.unwrap(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        s.post("/objects/Counter/other/increment").await.1,
        json!({"count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_answers_an_error_id_not_the_backtrace() {
    let s = misbehave(|_| {}).await;
    let (status, body) = s.get("/objects/Bad/t/trap").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let error = body["error"].as_str().unwrap();
    let id = body["error_id"].as_str().expect("an error id");
    assert!(error.contains(id), "{body}");
    for leak in ["wasm backtrace", "wasm function", "0x", "panicked"] {
        assert!(!error.contains(leak), "{leak} in {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_events_writes_are_bounded() {
    let s = misbehave(|c| c.limits.max_event_write_bytes = 1024 * 1024).await;
    let (status, body) = s.post("/objects/Bad/w/write?kib=2000").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("one event may write"), "{body}");
    // Under the bound the same event is fine, and the runtime serves on.
    assert_eq!(
        s.post("/objects/Bad/w2/write?kib=900").await,
        (StatusCode::OK, json!("written"))
    );
    assert_eq!(
        s.post("/objects/Counter/c/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_over_the_limit_is_an_error_and_the_object_resets() {
    let s = misbehave(|c| c.limits.max_response_body_bytes = 2 * 1024 * 1024).await;
    let (status, body) = s.get("/objects/Bad/r/big?mib=1").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_str().unwrap().len(), 1024 * 1024);
    let (status, body) = s.get("/objects/Bad/r/big?mib=3").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        body["error"].as_str().unwrap().contains("over the limit"),
        "{body}"
    );
    assert_eq!(
        s.get("/objects/Bad/r/events").await,
        (StatusCode::OK, json!({"events": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_budget_answers_503_while_busy_objects_hold_it_and_evicts_idle_ones() {
    const MIB: f64 = 1024.0 * 1024.0;
    let s = misbehave(|c| {
        c.limits.instance_memory_bytes = 64 << 20;
        c.limits.memory_budget_bytes = 72 << 20;
    })
    .await;
    // `d` takes 60 MiB and stays busy with it for 4 s.
    let busy = {
        let http = s.http.clone();
        let url = format!("{}/objects/Bad/d/hold?mib=60&ms=4000", s.ingress);
        tokio::spawn(async move { http.get(url).send().await.unwrap().status() })
    };
    common::eventually(Duration::from_secs(10), || async {
        (s.metric("duro_instance_memory_bytes").await >= 60.0 * MIB).then_some(())
    })
    .await;
    // No idle object can make room: another object's growth waits, then 503 with Retry-After.
    let response = s
        .http
        .get(format!("{}/objects/Bad/c/hold?mib=20", s.ingress))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("memory budget"),
        "{body}"
    );
    assert_eq!(busy.await.unwrap(), StatusCode::OK);
    // Now `d` is idle: it is evicted to make room, and `c` gets its memory.
    let evictions = s.metric("duro_evictions_total").await;
    let (status, body) = s.get("/objects/Bad/c/hold?mib=20").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"held_mib": 20})));
    assert!(s.metric("duro_evictions_total").await > evictions);
    assert!(s.metric("duro_instance_memory_bytes").await < 40.0 * MIB);
}

/// A request head over the limit (128 KiB of target and headers) is answered 431 with the JSON
/// error, on both listeners; the server serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_get_431_with_the_json_error() {
    let s = TestServer::start().await;
    let big = "x".repeat(200 * 1024);
    for url in [
        format!("{}/objects/Counter/a/get", s.ingress),
        format!("{}/classes", s.admin),
    ] {
        let response = s.http.get(&url).header("x-big", &big).send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "{url}"
        );
        let body: serde_json::Value = response.json().await.unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("the limit is 131072"), "{error}");
    }
    let health = s
        .http
        .get(format!("{}/healthz", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
}
