//! The seed's Counter through `/objects/Counter/{name}/...`: semantics, routing errors, and
//! strict serialization of one object's events under concurrency.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_increments_gets_and_resets() {
    let s = TestServer::start().await;
    assert_eq!(
        s.deploy("Counter", "duro-example-counter").await.0,
        StatusCode::CREATED
    );

    assert_eq!(
        s.get("/objects/Counter/a/get").await,
        (StatusCode::OK, json!({"count": 0}))
    );
    for n in 1..=3 {
        assert_eq!(
            s.post("/objects/Counter/a/increment").await,
            (StatusCode::OK, json!({"count": n}))
        );
    }
    assert_eq!(
        s.get("/objects/Counter/a/get").await,
        (StatusCode::OK, json!({"count": 3}))
    );
    assert_eq!(
        s.get("/objects/Counter/b/get").await,
        (StatusCode::OK, json!({"count": 0}))
    );
    assert_eq!(
        s.post("/objects/Counter/a/reset").await,
        (StatusCode::OK, json!({"count": 0}))
    );
    assert_eq!(
        s.get("/objects/Counter/a/get").await,
        (StatusCode::OK, json!({"count": 0}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_class_route_and_path_are_404() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;

    let (status, body) = s.get("/objects/Nope/a/get").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("Nope"), "{body}");

    let (status, body) = s.get("/somewhere/else").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].is_string(), "{body}");

    // The guest's own 404 passes through unchanged.
    assert_eq!(
        s.get("/objects/Counter/a/nope").await,
        (StatusCode::NOT_FOUND, json!("Not found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn percent_encoded_names_address_one_object() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    s.post("/objects/Counter/hello%20w%C3%B6rld%2Fx/increment")
        .await;
    s.post("/objects/Counter/hello%20w%C3%B6rld%2Fx/increment")
        .await;
    assert_eq!(
        s.get("/objects/Counter/hello%20w%C3%B6rld%2Fx/get").await.1,
        json!({"count": 2})
    );
    // The name is decoded: the same id as GET /ids?name= with the decoded name.
    let (_, by_query) = s.get("/ids/Counter?name=hello%20w%C3%B6rld%2Fx").await;
    let id = by_query["id"].as_str().unwrap();
    assert_eq!(
        s.get(&format!("/ids/Counter/{id}/get")).await.1,
        json!({"count": 2})
    );
    // Invalid UTF-8 in the name is a 400.
    assert_eq!(
        s.get("/objects/Counter/%FF/get").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_concurrent_increments_on_one_counter_are_serialized() {
    let s = Arc::new(TestServer::start().await);
    s.deploy("Counter", "duro-example-counter").await;
    const TOTAL: usize = 2000;
    const CONNECTIONS: usize = 64;
    let mut tasks = Vec::new();
    for worker in 0..CONNECTIONS {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in (worker..TOTAL).step_by(CONNECTIONS) {
                let (status, body) = s.post("/objects/Counter/hot/increment").await;
                assert_eq!(status, StatusCode::OK, "{body}");
                seen.push(body["count"].as_i64().unwrap());
            }
            seen
        }));
    }
    let mut counts = HashSet::new();
    for task in tasks {
        for count in task.await.unwrap() {
            assert!(counts.insert(count), "count {count} returned twice");
        }
    }
    let expected: HashSet<i64> = (1..=TOTAL as i64).collect();
    assert_eq!(counts, expected);
    assert_eq!(
        s.get("/objects/Counter/hot/get").await.1,
        json!({"count": TOTAL})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_counters_incremented_concurrently_each_read_right() {
    let s = Arc::new(TestServer::start().await);
    s.deploy("Counter", "duro-example-counter").await;
    const COUNTERS: usize = 5000;
    const CONNECTIONS: usize = 64;
    const ROUNDS: u64 = 3;
    // Each round increments every counter once, 64 requests in flight over distinct counters.
    let sweep = |action: &'static str| {
        let s = s.clone();
        async move {
            let mut tasks = Vec::new();
            for worker in 0..CONNECTIONS {
                let s = s.clone();
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    for i in (worker..COUNTERS).step_by(CONNECTIONS) {
                        let path = format!("/objects/Counter/c{i}/{action}");
                        out.push((i, s.post(&path).await));
                    }
                    out
                }));
            }
            let mut all = Vec::new();
            for task in tasks {
                all.extend(task.await.unwrap());
            }
            assert_eq!(all.len(), COUNTERS);
            all
        }
    };
    for round in 1..=ROUNDS {
        for (i, (status, body)) in sweep("increment").await {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["count"].as_u64(), Some(round), "counter c{i}");
        }
    }
    for (i, (status, body)) in sweep("get").await {
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({"count": ROUNDS})),
            "counter c{i}"
        );
    }
}
