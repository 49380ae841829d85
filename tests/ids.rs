//! Object ids over HTTP: deterministic names, unique ids, and refusal of malformed and foreign
//! ids with 400.

mod common;

use common::TestServer;
use reqwest::StatusCode;
use serde_json::json;

fn id_of(body: &serde_json::Value) -> String {
    let id = body["id"].as_str().expect("an id").to_string();
    assert_eq!(id.len(), 64);
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{id}"
    );
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_give_deterministic_ids_that_address_the_same_object() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    s.deploy("Other", "duro-example-counter").await;
    let a = id_of(&s.get("/ids/Counter?name=alice").await.1);
    assert_eq!(a, id_of(&s.get("/ids/Counter?name=alice").await.1));
    assert_ne!(a, id_of(&s.get("/ids/Counter?name=bob").await.1));
    assert_ne!(a, id_of(&s.get("/ids/Other?name=alice").await.1));
    // Form encoding: '+' is a space.
    assert_eq!(
        id_of(&s.get("/ids/Counter?name=a+b").await.1),
        id_of(&s.get("/ids/Counter?name=a%20b").await.1)
    );

    s.post("/objects/Counter/alice/increment").await;
    assert_eq!(
        s.post(&format!("/ids/Counter/{a}/increment")).await,
        (StatusCode::OK, json!({"count": 2}))
    );
    assert_eq!(
        s.get("/objects/Counter/alice/get").await.1,
        json!({"count": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_ids_are_distinct_and_usable() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..50 {
        let (status, body) = s.post("/ids/Counter").await;
        assert_eq!(status, StatusCode::OK);
        assert!(ids.insert(id_of(&body)));
    }
    let id = ids.iter().next().unwrap();
    assert_eq!(
        s.post(&format!("/ids/Counter/{id}/increment")).await.1,
        json!({"count": 1})
    );
    assert_eq!(
        s.get(&format!("/ids/Counter/{id}/get")).await.1,
        json!({"count": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_foreign_ids_are_refused_with_400() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    s.deploy("Other", "duro-example-counter").await;
    let foreign = id_of(&s.get("/ids/Other?name=alice").await.1);
    let mine = id_of(&s.get("/ids/Counter?name=alice").await.1);
    let mut tampered = mine.clone().into_bytes();
    tampered[10] = if tampered[10] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        "xyz".to_string(),
        "0".repeat(64),
        mine.to_uppercase(),
        format!("{mine}0"),
        foreign,
        tampered,
    ] {
        let (status, body) = s.get(&format!("/ids/Counter/{bad}/get")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(body["error"].is_string(), "{body}");
    }
    // Missing ?name= is a 400; unknown class a 404.
    assert_eq!(s.get("/ids/Counter").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(s.post("/ids/Nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_survive_a_restart() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    let before = id_of(&s.get("/ids/Counter?name=alice").await.1);
    let (unique_status, unique) = s.post("/ids/Counter").await;
    assert_eq!(unique_status, StatusCode::OK);
    let (config, temp) = s.stop().await;
    let s = TestServer::start_in(config).await;
    assert_eq!(before, id_of(&s.get("/ids/Counter?name=alice").await.1));
    let unique = id_of(&unique);
    assert_eq!(
        s.get(&format!("/ids/Counter/{unique}/get")).await.0,
        StatusCode::OK
    );
    s.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_that_are_not_utf8_are_refused_on_every_route() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    for bad in ["%FF", "%FE", "%C3", "a%80b"] {
        let (status, body) = s.get(&format!("/ids/Counter?name={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "?name={bad}: {body}");
        let (status, body) = s.get(&format!("/objects/Counter/{bad}/get")).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "/objects/.../{bad}: {body}"
        );
    }
    // U+FFFD is a name like any other, and both routes agree on its id.
    let replacement = id_of(&s.get("/ids/Counter?name=%EF%BF%BD").await.1);
    s.post("/objects/Counter/%EF%BF%BD/increment").await;
    assert_eq!(
        s.get(&format!("/ids/Counter/{replacement}/get")).await,
        (StatusCode::OK, json!({"count": 1}))
    );
}
