//! The worker (the seed's Hono app, in wasm): the seed's routes through it, ids from every
//! creation path, a WebSocket chat through it (hibernation included), the direct routes switched
//! off, and a bad deploy that changes nothing.

mod common;

use std::time::Duration;

use common::{TestServer, eventually};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// The examples as `duro.jsonc` deploys them: Counter, ChatRoom, CounterGroup and the worker.
async fn seed(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let s = TestServer::start_with(adjust).await;
    s.deploy("Counter", "duro-example-counter").await;
    s.deploy("ChatRoom", "duro-example-chat-room").await;
    s.deploy("CounterGroup", "duro-example-counter-group").await;
    s.bind(&[
        ("COUNTER", "Counter"),
        ("ROOM", "ChatRoom"),
        ("GROUP", "CounterGroup"),
    ])
    .await;
    let (status, body) = s.deploy_worker("duro-example-worker", true).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_routes_answer_through_the_worker() {
    let s = seed(|_| {}).await;
    assert_eq!(
        s.post("/api/counters/foo/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
    assert_eq!(
        s.post("/api/counters/foo/increment").await,
        (StatusCode::OK, json!({"count": 2}))
    );
    assert_eq!(
        s.get("/api/counters/foo").await,
        (StatusCode::OK, json!({"count": 2}))
    );
    // The same object as the direct route's.
    assert_eq!(
        s.get("/objects/Counter/foo/get").await,
        (StatusCode::OK, json!({"count": 2}))
    );
    assert_eq!(
        s.get("/api/rooms/lobby/ws").await,
        (StatusCode::BAD_REQUEST, json!("Expected WebSocket"))
    );
    assert_eq!(
        s.get("/elsewhere").await,
        (StatusCode::NOT_FOUND, json!("404 Not Found"))
    );
    // An object calling an object: the group counts, then increments the counter.
    assert_eq!(
        s.post("/api/groups/g/counters/foo/increment").await,
        (StatusCode::OK, json!({"group": 1, "count": 3}))
    );
    let (status, worker) = s.admin_call(Method::GET, "/worker", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(worker["object_routes"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_from_every_creation_path_agree_through_the_worker() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    s.deploy("Other", "duro-example-counter").await;
    s.bind(&[("COUNTER", "Counter"), ("OTHER", "Other")]).await;
    s.deploy_worker("worker-probe", true).await;
    let id = |body: &serde_json::Value| body["id"].as_str().unwrap().to_string();
    let (_, by_name) = s.get("/id/name/COUNTER/alice").await;
    let (_, direct) = s.get("/ids/Counter?name=alice").await;
    assert_eq!(id(&by_name), id(&direct));
    let (status, unique) = s.post("/id/unique/COUNTER").await;
    assert_eq!(status, StatusCode::OK);
    let unique = id(&unique);
    assert_ne!(unique, id(&by_name));
    assert_eq!(
        id(&s.get(&format!("/id/string/COUNTER/{unique}")).await.1),
        unique
    );
    // A made-up id, an id of another class, an unknown binding: refused with the reason.
    for (path, reason) in [
        ("/id/string/COUNTER/abc".to_string(), "bad id"),
        (format!("/id/string/OTHER/{unique}"), "bad id"),
        ("/id/name/NOPE/alice".to_string(), "unknown binding"),
    ] {
        let (status, body) = s.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains(reason), "{body}");
    }
    // The unique id addresses a real object, through the worker and directly.
    s.post(&format!("/ids/Counter/{unique}/increment")).await;
    assert_eq!(
        s.get("/to/COUNTER/alice/get").await,
        (StatusCode::OK, json!({"count": 0}))
    );
    assert_eq!(
        s.get(&format!("/ids/Counter/{unique}/get")).await,
        (StatusCode::OK, json!({"count": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_through_the_worker_broadcasts_and_hibernates() {
    let s = seed(|c| c.hibernate_after = Duration::from_millis(100)).await;
    let url = format!(
        "{}/api/rooms/lobby/ws",
        s.ingress.replace("http://", "ws://")
    );
    let (mut a, response) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert_eq!(response.status(), 101);
    let (mut b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    a.send(Message::text("hello")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), b.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::text("hello"));
    // The room hibernates; the next message wakes it and still reaches the other socket.
    eventually(Duration::from_secs(10), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    b.send(Message::text("again")).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), a.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got, Message::text("again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_routes_can_be_switched_off() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    s.bind(&[("COUNTER", "Counter")]).await;
    s.deploy_worker("duro-example-worker", false).await;
    // /objects/... is the worker's now: it has no such route.
    assert_eq!(
        s.post("/objects/Counter/foo/increment").await,
        (StatusCode::NOT_FOUND, json!("404 Not Found"))
    );
    assert_eq!(
        s.post("/api/counters/foo/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
    // Without the worker, the direct routes answer again.
    let (status, _) = s.admin_call(Method::DELETE, "/worker", vec![]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        s.post("/objects/Counter/foo/increment").await,
        (StatusCode::OK, json!({"count": 2}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_deploy_changes_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let s = TestServer::start().await;
    let guests = common::guest("duro-example-counter");
    let guests = guests.parent().unwrap();
    let config = |worker: &str| {
        format!(
            r#"{{ "worker": "{worker}",
                 "durable_objects": {{ "bindings": [
                   {{ "name": "COUNTER", "class_name": "Counter", "component": "{}/duro_example_counter.wasm" }} ] }},
                 "migrations": [ {{ "tag": "v1", "new_classes": ["Counter"] }} ] }}"#,
            guests.display()
        )
    };
    let good = temp.path().join("good.jsonc");
    std::fs::write(
        &good,
        config(&format!("{}/duro_example_worker.wasm", guests.display())),
    )
    .unwrap();
    // A worker that is an object class, not a worker: refused before anything changed.
    let bad = temp.path().join("bad.jsonc");
    std::fs::write(
        &bad,
        config(&format!("{}/misbehave.wasm", guests.display())),
    )
    .unwrap();
    let deploy = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
            .args(["deploy", "--admin-url", &s.admin, "--config"])
            .arg(path)
            .output()
            .unwrap()
    };
    let output = deploy(&bad);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("worker"), "{stderr}");
    let (_, classes) = s.admin_call(Method::GET, "/classes", vec![]).await;
    assert_eq!(classes, json!([]), "the bad deploy created classes");
    let (_, migrations) = s.admin_call(Method::GET, "/migrations", vec![]).await;
    assert_eq!(migrations, json!({"applied": []}));
    assert_eq!(
        s.admin_call(Method::GET, "/worker", vec![]).await.0,
        StatusCode::NOT_FOUND
    );
    // The good one deploys all of it.
    let output = deploy(&good);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        s.post("/api/counters/x/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
}
