//! Seeing the stored objects: the admin API lists a class's objects (keys, bytes, alarm) a page
//! at a time and shows one object's entries, by id or by name; `duro objects` and `duro object`
//! print them. They are read from the database: nothing is activated.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{TestServer, eventually, read_guest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn id_of(s: &TestServer, class: &str, name: &str) -> String {
    let (status, body) = s.get(&format!("/ids/{class}?name={name}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Runs `duro ARGS --admin-url` against the server; its stdout (it must succeed).
fn cli(s: &TestServer, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(args)
        .args(["--admin-url", &s.admin])
        .output()
        .expect("running duro");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    stdout
}

async fn admin_get(s: &TestServer, path: &str) -> (StatusCode, Value) {
    s.admin_call(Method::GET, path, Vec::new()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_classs_objects_and_their_entries_are_listed() {
    let s = TestServer::start_with(|c| c.idle_timeout = Duration::from_millis(300)).await;
    s.upload("Counter", read_guest("duro-example-counter"))
        .await;
    s.upload("Scheduler", read_guest("duro-example-scheduler"))
        .await;
    let (status, empty) = admin_get(&s, "/classes/Counter/objects").await;
    assert_eq!(status, StatusCode::OK, "{empty}");
    assert_eq!(
        empty,
        json!({"class": "Counter", "objects": [], "next": null})
    );

    for (name, times) in [("a", 1), ("b", 2), ("c", 3)] {
        for _ in 0..times {
            let (status, _) = s.post(&format!("/objects/Counter/{name}/increment")).await;
            assert_eq!(status, StatusCode::OK);
        }
    }
    let mut ids = vec![
        id_of(&s, "Counter", "a").await,
        id_of(&s, "Counter", "b").await,
        id_of(&s, "Counter", "c").await,
    ];
    ids.sort();

    // One key each ("count" and its JSON value), in id order.
    let (_, page) = admin_get(&s, "/classes/Counter/objects").await;
    let listed: Vec<&str> = page["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids);
    for object in page["objects"].as_array().unwrap() {
        assert_eq!(object["keys"], 1, "{object}");
        assert!(object["active"].is_boolean(), "{object}");
        assert_eq!(object["bytes"], "count".len() + 1, "{object}");
        assert_eq!(object["alarm_ms"], Value::Null);
    }
    assert_eq!(page["next"], Value::Null);

    // Active while in memory; not once evicted (idle).
    eventually(Duration::from_secs(20), || async {
        let (_, page) = admin_get(&s, "/classes/Counter/objects").await;
        let objects = page["objects"].as_array().cloned().unwrap_or_default();
        objects.iter().all(|o| o["active"] == false).then_some(())
    })
    .await;
    s.post("/objects/Counter/a/increment").await;
    s.post("/objects/Counter/a/increment").await;
    let (_, a) = admin_get(&s, "/classes/Counter/objects/by-name/a").await;
    assert_eq!(
        (&a["active"], &a["in_memory"]),
        (&json!(true), &json!(true)),
        "{a}"
    );
    assert_eq!(a["entries"], json!([{"key": "count", "value": 3}]));

    // A page at a time.
    let (_, first) = admin_get(&s, "/classes/Counter/objects?limit=2").await;
    assert_eq!(first["objects"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], json!(ids[1]));
    let after = format!("/classes/Counter/objects?limit=2&after={}", ids[1]);
    let (_, second) = admin_get(&s, &after).await;
    assert_eq!(second["objects"][0]["id"], json!(ids[2]));
    assert_eq!(second["next"], Value::Null);

    // One object, by name and by id.
    let (status, b) = admin_get(&s, "/classes/Counter/objects/by-name/b").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    let b_id = id_of(&s, "Counter", "b").await;
    assert_eq!(
        b,
        json!({"class": "Counter", "id": b_id, "name": "b", "alarm_ms": null, "active": false,
               "in_memory": false, "websockets": 0,
               "entries": [{"key": "count", "value": 2}], "next": null})
    );
    let (_, by_id) = admin_get(&s, &format!("/classes/Counter/objects/{b_id}")).await;
    assert_eq!(by_id["entries"], b["entries"]);
    assert_eq!(by_id["name"], Value::Null);
    let (_, none) = admin_get(&s, "/classes/Counter/objects/by-name/b?prefix=x").await;
    assert_eq!(none["entries"], json!([]));

    // An alarm shows.
    let (status, _) = s.post("/objects/Scheduler/jobs/schedule?ms=60000").await;
    assert_eq!(status, StatusCode::OK);
    let (_, jobs) = admin_get(&s, "/classes/Scheduler/objects").await;
    let alarm = jobs["objects"][0]["alarm_ms"].as_i64().expect("an alarm");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(alarm > now.as_millis() as i64 + 50_000, "{jobs}");

    // Mistakes say what is wrong.
    let scheduler_id = id_of(&s, "Scheduler", "jobs").await;
    for (path, status) in [
        ("/classes/Nope/objects".to_string(), StatusCode::NOT_FOUND),
        (
            "/classes/Counter/objects/xyz".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/classes/Counter/objects/{scheduler_id}"),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/classes/Counter/objects?limit=0".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/classes/Counter/objects?after=zz".to_string(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (got, body) = admin_get(&s, &path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }

    // The CLI prints them.
    let cli = |args: &[&str]| cli(&s, args);
    let table = cli(&["objects", "Counter", "--limit", "2"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.lines().next().unwrap().contains("ACTIVE"), "{table}");
    assert!(
        table.contains(&ids[0]) && table.contains(&ids[1]),
        "{table}"
    );
    assert!(
        table.contains(&format!("more: duro objects Counter --after {}", ids[1])),
        "{table}"
    );
    let object = cli(&["object", "Counter", "--name", "c"]);
    assert!(object.contains("name: c"), "{object}");
    assert!(
        object
            .lines()
            .any(|l| l.split_whitespace().eq(["count", "3"])),
        "{object}"
    );
    let json_out = cli(&["object", "Counter", &b_id, "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&json_out).unwrap()["entries"],
        b["entries"]
    );
}

/// An operator deletes one object's storage and alarm: it happens between two of the object's
/// events, the object starts over from empty storage, and nothing else is touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_is_wiped_between_its_events() {
    let s = TestServer::start().await;
    s.upload("Counter", read_guest("duro-example-counter"))
        .await;
    s.upload("Scheduler", read_guest("duro-example-scheduler"))
        .await;
    for name in ["a", "a", "a", "b"] {
        s.post(&format!("/objects/Counter/{name}/increment")).await;
    }
    let (status, _) = s.post("/objects/Scheduler/jobs/schedule?ms=60000").await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = s
        .admin_call(
            Method::DELETE,
            "/classes/Counter/objects/by-name/a",
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (_, a) = admin_get(&s, "/classes/Counter/objects/by-name/a").await;
    assert_eq!(a["entries"], json!([]), "{a}");
    assert_eq!(
        s.post("/objects/Counter/a/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
    // The other object is untouched.
    assert_eq!(
        s.get("/objects/Counter/b/get").await,
        (StatusCode::OK, json!({"count": 1}))
    );

    // The alarm goes with the storage; by id, through the CLI.
    let jobs = id_of(&s, "Scheduler", "jobs").await;
    let said = cli(&s, &["wipe", "Scheduler", &jobs]);
    assert!(said.contains("storage and alarm deleted"), "{said}");
    let (_, scheduler) = admin_get(&s, "/classes/Scheduler/objects").await;
    assert_eq!(scheduler["objects"], json!([]), "{scheduler}");

    // Mistakes change nothing.
    let (status, _) = s
        .admin_call(
            Method::DELETE,
            "/classes/Nope/objects/by-name/a",
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .admin_call(
            Method::DELETE,
            &format!("/classes/Counter/objects/{jobs}"),
            Vec::new(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        s.get("/objects/Counter/b/get").await,
        (StatusCode::OK, json!({"count": 1}))
    );
}

/// An object holding WebSockets shows how many, and that it hibernates: active, not in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objects_websockets_show_through_hibernation() {
    let s = TestServer::start_with(|c| c.hibernate_after = Duration::from_millis(300)).await;
    s.upload("ChatRoom", read_guest("duro-example-chat-room"))
        .await;
    let url = format!(
        "{}/objects/ChatRoom/lobby/ws",
        s.ingress.replace("http", "ws")
    );
    let (_alice, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (_bob, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let path = "/classes/ChatRoom/objects/by-name/lobby";
    let (status, room) = admin_get(&s, path).await;
    assert_eq!(status, StatusCode::OK, "{room}");
    assert_eq!(
        (&room["active"], &room["websockets"]),
        (&json!(true), &json!(2)),
        "{room}"
    );
    eventually(Duration::from_secs(20), || async {
        let (_, room) = admin_get(&s, path).await;
        (room["in_memory"] == false).then_some(room)
    })
    .await;
    let (_, room) = admin_get(&s, path).await;
    assert_eq!(
        (&room["active"], &room["websockets"]),
        (&json!(true), &json!(2)),
        "{room}"
    );
}
