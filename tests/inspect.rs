//! Seeing the stored objects: the admin API lists a class's objects (keys, bytes, alarm) a page
//! at a time and shows one object's entries, by id or by name; `duro objects` and `duro object`
//! print them. They are read from the database: nothing is activated. Objects keep the names
//! they were created by (stored at their first durable write), found by prefix from the class's
//! name index, and answered by `state.name` even when reached by id.

#[path = "inspect/browser.rs"]
mod browser;
mod common;

use std::process::Command;
use std::time::Duration;

use common::{TestServer, eventually, read_guest};
use futures_util::StreamExt;
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
    let (status, mut b) = admin_get(&s, "/classes/Counter/objects/by-name/b").await;
    assert_eq!(status, StatusCode::OK, "{b}");
    // What its events cost is kept after its actor retired.
    let usage = b.as_object_mut().unwrap().remove("usage").unwrap();
    assert_eq!(usage["events"], json!(2), "{usage}");
    assert!(usage["wall_ms"].as_f64().unwrap() > 0.0, "{usage}");
    let b_id = id_of(&s, "Counter", "b").await;
    assert_eq!(
        b,
        json!({"class": "Counter", "id": b_id, "name": "b", "alarm_ms": null, "active": false,
               "in_memory": false, "websockets": 0, "sockets": [], "last_event_ms": null,
               "entries": [{"key": "count", "value": 2}], "next": null})
    );
    let (_, by_id) = admin_get(&s, &format!("/classes/Counter/objects/{b_id}")).await;
    assert_eq!(by_id["entries"], b["entries"]);
    // Reached by id, it shows the name it stored at its first write.
    assert_eq!(by_id["name"], json!("b"));
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
    assert!(table.starts_with("NAME"), "{table}");
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

/// An operator reads, puts and deletes one key and sets or deletes the alarm, each as an event of
/// the object: the Counter's next increment starts from the value put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_edits_an_object_through_its_events() {
    let s = TestServer::start().await;
    s.upload("Counter", read_guest("duro-example-counter"))
        .await;
    s.upload("Scheduler", read_guest("duro-example-scheduler"))
        .await;
    s.post("/objects/Counter/a/increment").await;
    let entry = "/classes/Counter/objects/by-name/a/entries/count";
    assert_eq!(
        admin_get(&s, entry).await,
        (StatusCode::OK, json!({"key": "count", "value": 1}))
    );
    let (status, body) = s.admin_call(Method::PUT, entry, b"41".to_vec()).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"key": "count", "bytes": 2}))
    );
    assert_eq!(
        s.post("/objects/Counter/a/increment").await,
        (StatusCode::OK, json!({"count": 42}))
    );
    // A key with a slash, by id; then deleted, twice.
    let id = id_of(&s, "Counter", "a").await;
    let other = format!("/classes/Counter/objects/{id}/entries/x/y");
    let (status, _) = s
        .admin_call(Method::PUT, &other, b"not json".to_vec())
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        admin_get(&s, &other).await,
        (
            StatusCode::OK,
            json!({"key": "x/y", "hex": hex(b"not json")})
        )
    );
    let (status, _) = s.admin_call(Method::DELETE, &other, Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = s.admin_call(Method::DELETE, &other, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(admin_get(&s, &other).await.0, StatusCode::NOT_FOUND);

    // Over the value limit: refused, nothing changed.
    let (status, body) = s
        .admin_call(Method::PUT, entry, vec![b'1'; 200 * 1024])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("limit"), "{body}");
    assert_eq!(
        s.get("/objects/Counter/a/get").await,
        (StatusCode::OK, json!({"count": 42}))
    );

    // The alarm: set, read, deleted, set again and fired (scheduled like the guest's own).
    let alarm = "/classes/Scheduler/objects/by-name/jobs/alarm";
    let in_a_minute = now_ms() + 60_000;
    let (status, body) = s
        .admin_call(
            Method::PUT,
            alarm,
            json!({"at_ms": in_a_minute}).to_string().into_bytes(),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"alarm_ms": in_a_minute}))
    );
    assert_eq!(
        admin_get(&s, alarm).await.1,
        json!({"alarm_ms": in_a_minute})
    );
    let (status, _) = s.admin_call(Method::DELETE, alarm, Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = s.admin_call(Method::DELETE, alarm, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let soon = json!({"at_ms": now_ms() + 100}).to_string().into_bytes();
    assert_eq!(
        s.admin_call(Method::PUT, alarm, soon).await.0,
        StatusCode::OK
    );
    // Its handler ran (it counts its runs, then schedules itself again).
    let runs = "/classes/Scheduler/objects/by-name/jobs/entries/runs";
    eventually(Duration::from_secs(20), || async {
        (admin_get(&s, runs).await.1 == json!({"key": "runs", "value": 1})).then_some(())
    })
    .await;
    // A class without an alarm handler cannot get one; a body of another shape is refused.
    let body = json!({"at_ms": in_a_minute}).to_string().into_bytes();
    assert_eq!(s.deploy("Plain", "no-alarm").await.0, StatusCode::CREATED);
    let (status, said) = s
        .admin_call(Method::PUT, "/classes/Plain/objects/by-name/a/alarm", body)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    let (status, _) = s
        .admin_call(Method::PUT, alarm, b"{\"at\": 1}".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    let (mut alice, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut bob, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
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

    // An operator closes one socket: its client sees the close, the other stays.
    let socket = room["sockets"][0]["id"].as_u64().expect("a socket id");
    let close = format!("{path}/websockets/{socket}");
    let (status, body) = s.admin_call(Method::DELETE, &close, Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let room = eventually(Duration::from_secs(20), || async {
        let (_, room) = admin_get(&s, path).await;
        (room["websockets"] == 1).then_some(room)
    })
    .await;
    assert_ne!(room["sockets"][0]["id"], json!(socket), "{room}");
    let (status, _) = s.admin_call(Method::DELETE, &close, Vec::new()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let mut closed = 0;
    for client in [&mut alice, &mut bob] {
        // Past any chat messages, until a close or a quiet half second.
        while let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_millis(500), client.next()).await
        {
            if let tokio_tungstenite::tungstenite::Message::Close(frame) = message {
                let frame = frame.expect("a close frame with a code");
                assert_eq!(u16::from(frame.code), 1000);
                assert_eq!(frame.reason.as_str(), "closed by an operator");
                closed += 1;
                break;
            }
        }
    }
    assert_eq!(closed, 1);
}

/// A listing (or one object) from the admin API, which must answer 200.
async fn listing(s: &TestServer, path: &str) -> Value {
    let (status, body) = admin_get(s, path).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// The names of a listing, in its order (`null` for an object without one).
fn names(page: &Value) -> Vec<Value> {
    page["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| o["name"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_keep_their_names_and_are_found_by_prefix() {
    let s = TestServer::start_with(|c| c.idle_timeout = Duration::from_millis(200)).await;
    assert_eq!(
        s.deploy("Counter", "duro-example-counter").await.0,
        StatusCode::CREATED
    );
    for name in ["alpha", "beta", "alfa", "gamma", "al pha/ü"] {
        let path = format!("/objects/Counter/{}/increment", urlencode(name));
        assert_eq!(s.post(&path).await.0, StatusCode::OK, "{name}");
    }
    // Read-only events store nothing, so no name either.
    assert_eq!(s.get("/objects/Counter/ghost/get").await.0, StatusCode::OK);
    // An object made by id has no name.
    let (_, unique) = s.post("/ids/Counter").await;
    let unique = unique["id"].as_str().unwrap().to_string();
    let path = format!("/ids/Counter/{unique}/increment");
    assert_eq!(s.post(&path).await.0, StatusCode::OK);

    // The listing in id order carries every name, and the unique object's null.
    let all = listing(&s, "/classes/Counter/objects").await;
    let mut listed: Vec<String> = names(&all).iter().map(Value::to_string).collect();
    listed.sort();
    let mut expected: Vec<String> = [
        "\"al pha/ü\"",
        "\"alfa\"",
        "\"alpha\"",
        "\"beta\"",
        "\"gamma\"",
        "null",
    ]
    .map(String::from)
    .to_vec();
    expected.sort();
    assert_eq!(listed, expected, "{all}");
    for object in all["objects"].as_array().unwrap() {
        assert_eq!(
            object["keys"], 1,
            "the name is not one of the user's keys: {object}"
        );
        assert!(object["websockets"].is_u64(), "{object}");
    }

    // By prefix, in name order, a page at a time.
    let al = listing(&s, "/classes/Counter/objects?name_prefix=al").await;
    assert_eq!(
        names(&al),
        [json!("al pha/ü"), json!("alfa"), json!("alpha")],
        "{al}"
    );
    let alpha_id = id_of(&s, "Counter", "alpha").await;
    assert_eq!(al["objects"][2]["id"], json!(alpha_id));
    assert_eq!(al["objects"][2]["keys"], 1);
    let first = listing(&s, "/classes/Counter/objects?name_prefix=al&limit=2").await;
    assert_eq!(names(&first), [json!("al pha/ü"), json!("alfa")]);
    assert_eq!(first["next"], json!("alfa"));
    let rest = listing(
        &s,
        "/classes/Counter/objects?name_prefix=al&limit=2&after=alfa",
    )
    .await;
    assert_eq!(
        (names(&rest), &rest["next"]),
        (vec![json!("alpha")], &Value::Null)
    );
    let every = listing(&s, "/classes/Counter/objects?name_prefix=").await;
    assert_eq!(
        names(&every),
        ["al pha/ü", "alfa", "alpha", "beta", "gamma"].map(|n| json!(n))
    );
    let none = listing(&s, "/classes/Counter/objects?name_prefix=zz").await;
    assert_eq!(none["objects"], json!([]));

    // One object read by id shows its stored name; a live one shows its last event's time.
    let by_id = listing(&s, &format!("/classes/Counter/objects/{alpha_id}")).await;
    assert_eq!(by_id["name"], json!("alpha"), "{by_id}");
    assert_eq!(
        s.post("/objects/Counter/alpha/increment").await.0,
        StatusCode::OK
    );
    let alpha = listing(&s, "/classes/Counter/objects?name_prefix=alpha").await;
    let last = alpha["objects"][0]["last_event_ms"].as_i64();
    assert!(last.is_some_and(|ms| ms > 1_600_000_000_000), "{alpha}");

    // `duro objects` shows the names and searches them.
    let table = cli(
        &s,
        &["objects", "Counter", "--name-prefix", "al", "--limit", "2"],
    );
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("alfa") && !table.contains("beta"), "{table}");
    assert!(
        table.contains("more: duro objects Counter --name-prefix al --after alfa"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_reached_by_id_knows_its_name_and_delete_all_forgets_it() {
    let s = TestServer::start_with(|c| c.idle_timeout = Duration::from_millis(200)).await;
    assert_eq!(
        s.deploy("Probe", "storage-probe").await.0,
        StatusCode::CREATED
    );
    s.script("alice", json!([{"op": "put", "key": "k", "value": "v"}]))
        .await;
    let id = id_of(&s, "Probe", "alice").await;
    // Evicted, then reached by id only: it still knows its name (as an alarm would).
    eventually(Duration::from_secs(20), || async {
        let page = listing(&s, "/classes/Probe/objects").await;
        (page["objects"][0]["active"] == false).then_some(())
    })
    .await;
    let (status, state) = s.get(&format!("/ids/Probe/{id}/state")).await;
    assert_eq!(status, StatusCode::OK, "{state}");
    assert_eq!(state["name"], json!("alice"), "{state}");
    // A never-written object reached by id has none.
    let (_, other) = s.post("/ids/Probe").await;
    let other = other["id"].as_str().unwrap();
    let (_, state) = s.get(&format!("/ids/Probe/{other}/state")).await;
    assert_eq!(state["name"], Value::Null, "{state}");

    // deleteAll (by id) takes the name with everything else; the next write stores it again.
    let script = |ops: Value| {
        let path = format!("/ids/Probe/{id}/script");
        let s = &s;
        async move {
            let (status, body) = s.call(Method::POST, &path, ops.to_string()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    script(json!([{"op": "delete-all"}])).await;
    let listed = listing(&s, "/classes/Probe/objects?name_prefix=").await;
    assert_eq!(listed["objects"], json!([]), "{listed}");
    script(json!([{"op": "put", "key": "k2", "value": "v"}])).await;
    let listed = listing(&s, "/classes/Probe/objects?name_prefix=ali").await;
    assert_eq!(names(&listed), [json!("alice")], "{listed}");

    // Names survive a restart (they are stored, not remembered).
    let (config, temp) = s.stop().await;
    let s = TestServer::start_in(config).await;
    let listed = listing(&s, "/classes/Probe/objects?name_prefix=a").await;
    assert_eq!(names(&listed), [json!("alice")], "{listed}");
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_class_deletes_its_names() {
    let s = TestServer::start().await;
    s.deploy("Counter", "duro-example-counter").await;
    assert_eq!(
        s.post("/objects/Counter/n1/increment").await.0,
        StatusCode::OK
    );
    let (status, _) = s
        .admin_call(Method::DELETE, "/classes/Counter", Vec::new())
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    s.deploy("Counter", "duro-example-counter").await;
    let listed = listing(&s, "/classes/Counter/objects?name_prefix=").await;
    assert_eq!(listed["objects"], json!([]), "{listed}");
    assert_eq!(
        s.post("/objects/Counter/n2/increment").await.0,
        StatusCode::OK
    );
    let listed = listing(&s, "/classes/Counter/objects?name_prefix=").await;
    assert_eq!(names(&listed), [json!("n2")], "{listed}");
}

fn urlencode(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An object goes out as JSON lines (entries, alarm, SQL database) and comes back byte for
/// byte into another object, of the same or another class; a target that stores something
/// refuses unless asked to replace; the CLI exports to a file, imports from it, and forks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_is_exported_and_imported_as_json_lines() {
    let s = TestServer::start().await;
    assert_eq!(
        s.deploy("Probe", "storage-probe").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.deploy("Other", "storage-probe").await.0,
        StatusCode::CREATED
    );
    s.script(
        "src",
        json!([
            {"op": "put", "key": "json", "value": "{\"b\":1,\"a\":[true]}"},
            {"op": "put", "key": "text", "value": "not json"},
            {"op": "put", "key": "a/b", "value": " 7"},
        ]),
    )
    .await;
    let sql = json!({"statements": [
        ["CREATE TABLE t (a INTEGER, b TEXT)", []],
        ["INSERT INTO t VALUES (?, ?), (?, ?)", [1, "x", 2, "y"]],
    ]});
    let (status, out) = s
        .call(Method::POST, "/objects/Probe/src/sql", sql.to_string())
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");

    let export = |path: String| {
        let s = &s;
        async move {
            let response = s
                .http
                .get(format!("{}{path}", s.admin))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };
    let lines = export("/classes/Probe/objects/by-name/src/export".into()).await;
    let header: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&header["duro_export"], &header["class"], &header["name"]),
        (&json!(2), &json!("Probe"), &json!("src")),
        "{lines}"
    );
    assert!(
        lines.contains(r#"{"key":"json","value":{"b":1,"a":[true]}}"#),
        "{lines}"
    );
    assert!(lines.contains(r#""internal":"#), "the SQL pages: {lines}");

    // Into another name of another class: the same entries, the same rows.
    let import = |path: &str, body: String| {
        let s = &s;
        let path = path.to_string();
        async move { s.admin_call(Method::POST, &path, body.into_bytes()).await }
    };
    let (status, answer) = import("/classes/Other/objects/by-name/dst/import", lines.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["parts"], 1, "{answer}");
    let entries = |class: &str, name: &str| {
        let path = format!("/classes/{class}/objects/by-name/{name}");
        let s = &s;
        async move { admin_get(s, &path).await.1["entries"].clone() }
    };
    assert_eq!(entries("Other", "dst").await, entries("Probe", "src").await);
    let again = export("/classes/Other/objects/by-name/dst/export".into()).await;
    let body = |text: &str| text.lines().skip(1).map(String::from).collect::<Vec<_>>();
    assert_eq!(body(&again), body(&lines));
    let (_, rows) = admin_get(&s, "/classes/Other/objects/by-name/dst/sql?table=t").await;
    assert_eq!(rows["rows"], json!([[1, "x"], [2, "y"]]), "{rows}");
    let (_, named) = admin_get(&s, "/classes/Other/objects?name_prefix=d").await;
    assert_eq!(
        names(&named),
        [json!("dst")],
        "the target keeps its own name"
    );

    // A target that stores something: 409, unless replacing; bad lines say where.
    let (status, said) = import("/classes/Other/objects/by-name/dst/import", lines.clone()).await;
    assert_eq!(status, StatusCode::CONFLICT, "{said}");
    let replace = "/classes/Other/objects/by-name/dst/import?replace=true";
    assert_eq!(import(replace, lines.clone()).await.0, StatusCode::OK);
    for (bad, says) in [
        ("{\"key\":\"a\",\"value\":1}\n".to_string(), "header"),
        (
            format!("{}\nnot json\n", lines.lines().next().unwrap()),
            "line 2",
        ),
        (String::new(), "no header"),
    ] {
        let (status, said) = import("/classes/Other/objects/by-name/fresh/import", bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
        assert!(said["error"].as_str().unwrap().contains(says), "{said}");
    }
    assert_eq!(entries("Other", "fresh").await, json!([]));

    // The CLI: export to a file, import from it, fork.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("src.jsonl");
    let file = file.to_str().unwrap();
    cli(&s, &["export", "Probe", "--name", "src", "-o", file]);
    assert_eq!(body(&std::fs::read_to_string(file).unwrap()), body(&lines));
    let said = cli(&s, &["import", "Probe", "--name", "copy", "-i", file]);
    assert!(said.starts_with("imported "), "{said}");
    cli(
        &s,
        &[
            "fork",
            "Probe",
            "--name",
            "src",
            "--to-name",
            "forked",
            "--to-class",
            "Other",
        ],
    );
    assert_eq!(
        entries("Other", "forked").await,
        entries("Probe", "src").await
    );
    assert_eq!(
        entries("Probe", "copy").await,
        entries("Probe", "src").await
    );
}

/// Every object's events are metered — events, wall and CPU time, gate wait, storage bytes,
/// memory — listed as top objects (`GET /top`, `duro top`) and summed per class on `/metrics`;
/// an object's totals outlive its actor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_metered_and_the_costliest_are_listed() {
    let s = TestServer::start_with(|c| c.idle_timeout = Duration::from_millis(200)).await;
    assert_eq!(
        s.deploy("Counter", "duro-example-counter").await.0,
        StatusCode::CREATED
    );
    for _ in 0..5 {
        assert_eq!(
            s.post("/objects/Counter/hot/increment").await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        s.post("/objects/Counter/cold/increment").await.0,
        StatusCode::OK
    );

    let top = listing(&s, "/top?by=requests").await;
    let hot = &top["objects"][0];
    assert_eq!(
        (&hot["name"], &hot["class"], &hot["events"]),
        (&json!("hot"), &json!("Counter"), &json!(5)),
        "{top}"
    );
    for field in ["cpu_ms", "wall_ms", "gate_ms"] {
        assert!(hot[field].as_f64().unwrap() > 0.0, "{field}: {top}");
    }
    // Four reads of {"count": n} (the first found nothing) and five writes of it.
    assert_eq!(hot["read_bytes"], 4 * ("count".len() + 1), "{top}");
    assert_eq!(hot["written_bytes"], 5 * ("count".len() + 1), "{top}");
    assert!(hot["peak_memory_bytes"].as_u64().unwrap() > 0, "{top}");
    assert_eq!(top["objects"][1]["name"], json!("cold"), "{top}");
    assert_eq!(top["classes"][0]["class"], json!("Counter"), "{top}");
    assert_eq!(top["classes"][0]["events"], json!(6), "{top}");
    let metrics = s
        .http
        .get(format!("{}/metrics", s.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("duro_class_events_total{class=\"Counter\"} 6"),
        "{metrics}"
    );
    assert!(
        metrics.contains("duro_class_cpu_seconds_total{class=\"Counter\"}"),
        "{metrics}"
    );
    assert!(metrics.trim_end().ends_with("# EOF"), "{metrics}");

    // Kept after the actor retires, and continued when the object comes back.
    eventually(Duration::from_secs(20), || async {
        let top = listing(&s, "/top?by=requests").await;
        (top["objects"][0]["active"] == false).then_some(())
    })
    .await;
    assert_eq!(
        s.post("/objects/Counter/hot/increment").await.0,
        StatusCode::OK
    );
    let top = listing(&s, "/top?by=storage&class=Counter&limit=1").await;
    assert_eq!(top["objects"].as_array().unwrap().len(), 1, "{top}");
    assert_eq!(
        (&top["objects"][0]["name"], &top["objects"][0]["events"]),
        (&json!("hot"), &json!(6)),
        "{top}"
    );

    // Mistakes say what is wrong.
    assert_eq!(
        admin_get(&s, "/top?by=fame").await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        admin_get(&s, "/top?class=Nope").await.0,
        StatusCode::NOT_FOUND
    );
    let table = cli(&s, &["top", "--by", "requests"]);
    assert!(table.starts_with("top objects by requests"), "{table}");
    assert!(
        table.contains("hot") && table.contains("per class"),
        "{table}"
    );
}

/// `GET /tail` streams, while a client listens, the ingress requests, each object's events and
/// its guest's log lines, filtered by class and object; `duro tail --json` prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_tail_shows_requests_events_and_log_lines() {
    let s = TestServer::start().await;
    assert_eq!(
        s.deploy("TailBad", "misbehave").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        s.deploy("TailCounter", "duro-example-counter").await.0,
        StatusCode::CREATED
    );
    let mut tail = s
        .http
        .get(format!("{}/tail?class=TailBad&object=talker", s.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::OK);
    assert_eq!(tail.headers()["content-type"], "text/event-stream");
    let first = tail.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b": listening"), "{first:?}");

    // Another class and another object of the class: filtered out.
    s.post("/objects/TailCounter/alpha/increment").await;
    s.get("/objects/TailBad/quiet/log").await;
    assert_eq!(s.get("/objects/TailBad/talker/log").await.0, StatusCode::OK);
    let mut seen: Vec<Value> = Vec::new();
    let mut pending = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let has = |seen: &[Value], kind: &str| seen.iter().filter(|e| e["kind"] == kind).count();
    while has(&seen, "log") < 2 || has(&seen, "fetch") == 0 || has(&seen, "request") == 0 {
        let chunk = tokio::time::timeout_at(deadline, tail.chunk())
            .await
            .expect("the tail's events in time")
            .unwrap()
            .unwrap();
        pending.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = pending.find("\n\n") {
            let message: String = pending.drain(..end + 2).collect();
            if let Some(data) = message.strip_prefix("data: ") {
                seen.push(serde_json::from_str(data.trim_end()).unwrap());
            }
        }
    }
    let request = seen.iter().find(|e| e["kind"] == "request").unwrap();
    assert_eq!(
        (&request["what"], &request["status"], &request["object"]),
        (
            &json!("GET /objects/TailBad/talker/log"),
            &json!(200),
            &json!("TailBad/talker")
        ),
        "{request}"
    );
    let events = seen.iter().filter(|e| e["kind"] != "request");
    assert!(
        events
            .clone()
            .all(|e| e["class"] == "TailBad" && e["object"] == "talker"),
        "{seen:?}"
    );
    let logs: Vec<_> = seen.iter().filter(|e| e["kind"] == "log").collect();
    assert_eq!(
        logs[0]["message"], "hello from the guest's stdout",
        "{seen:?}"
    );
    assert_eq!(logs[1]["what"], "stderr", "{seen:?}");
    let fetch = seen.iter().find(|e| e["kind"] == "fetch").unwrap();
    assert!(fetch["ms"].as_f64().unwrap() > 0.0, "{fetch}");
    drop(tail);

    // The CLI prints the events as JSON lines.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["tail", "TailCounter", "--json", "--admin-url", &s.admin])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|line| line.contains("\"kind\":\"fetch\""))
    });
    // Keep incrementing until the CLI (which connects on its own time) has seen one.
    eventually(Duration::from_secs(20), || async {
        s.post("/objects/TailCounter/beta/increment").await;
        lines.is_finished().then_some(())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let line = lines.join().unwrap().expect("a fetch line");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (&event["class"], &event["object"]),
        (&json!("TailCounter"), &json!("beta")),
        "{line}"
    );
}

/// Issue 35: a name (any ingress client picks one), a key and a guest's log line holding terminal
/// escapes — a window title (OSC 0), the clipboard (OSC 52), a cleared screen, a carriage return,
/// a right-to-left override — reach the operator's terminal escaped through `duro objects`,
/// `duro object` and `duro tail`; `--json` keeps them exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_shows_what_clients_and_guests_chose_escaped() {
    let s = TestServer::start().await;
    assert_eq!(s.deploy("Bad", "misbehave").await.0, StatusCode::CREATED);
    let hostile = "a\u{1b}]0;owned\u{7}b\u{1b}]52;c;cHduZWQ=\u{7}\u{1b}[2J\rc\u{202e}d";
    let encoded =
        percent_encoding::utf8_percent_encode(hostile, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    assert_eq!(
        s.post(&format!("/objects/Bad/{encoded}/bump")).await.0,
        StatusCode::OK
    );
    let entry = format!("/classes/Bad/objects/by-name/{encoded}/entries/{encoded}");
    assert_eq!(
        s.admin_call(Method::PUT, &entry, b"1".to_vec()).await.0,
        StatusCode::OK
    );
    let raw = |text: &str| text.contains(['\u{1b}', '\u{7}', '\r', '\u{202e}']);
    let escaped = "a\\u{1b}]0;owned\\u{7}b\\u{1b}]52;c;cHduZWQ=\\u{7}\\u{1b}[2J\\u{d}c\\u{202e}d";
    for args in [
        vec!["objects", "Bad"],
        vec!["object", "Bad", "--name", hostile],
    ] {
        let printed = cli(&s, &args);
        assert!(!raw(&printed), "{args:?}: {printed:?}");
        assert!(printed.contains(escaped), "{args:?}: {printed:?}");
    }
    let json: Value = serde_json::from_str(&cli(&s, &["objects", "Bad", "--json"])).unwrap();
    assert_eq!(json["objects"][0]["name"], hostile);

    // The live tail: the object's name in its events, the guest's line as it printed it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["tail", "Bad", "--admin-url", &s.admin])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = std::thread::spawn(move || {
        use std::io::Read;
        let mut printed = Vec::new();
        let mut reader = stdout;
        let mut buf = [0u8; 4096];
        // Until the guest's line has shown (it ends with "d": the rest is the terminal's).
        while !String::from_utf8_lossy(&printed).contains("c\\u{202e}d\n") {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => printed.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&printed).into_owned()
    });
    eventually(Duration::from_secs(20), || async {
        let said = s
            .call(
                Method::POST,
                &format!("/objects/Bad/{encoded}/say"),
                hostile,
            )
            .await;
        assert_eq!(said.0, StatusCode::OK);
        lines.is_finished().then_some(())
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let printed = lines.join().unwrap();
    assert!(!raw(&printed), "{printed:?}");
    assert!(printed.contains(&format!("Bad/{escaped}")), "{printed:?}");
    assert!(printed.contains(&format!(": {escaped}")), "{printed:?}");
}

/// Issue 35: live tails have a budget of their own. Asked for 70 at once from one address (more
/// than the admin API's 64 connections), 8 open (a client's share) and the rest are refused at
/// once; with them open, `/healthz` and the API answer, many at a time; a tail that leaves gives
/// its place back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_tails_never_take_the_admin_apis_connections() {
    let s = TestServer::start().await;
    let url = format!("{}/tail", s.admin);
    let asked = (0..70).map(|_| {
        let (http, url) = (reqwest::Client::new(), url.clone());
        async move {
            let answer = http.get(url).send().await.unwrap();
            (http, answer)
        }
    });
    let answers = futures_util::future::join_all(asked).await;
    let (mut open, mut refused) = (Vec::new(), 0);
    for (http, answer) in answers {
        match answer.status() {
            StatusCode::OK => open.push((http, answer)),
            StatusCode::SERVICE_UNAVAILABLE => {
                let said: Value = answer.json().await.unwrap();
                assert!(
                    said["error"]
                        .as_str()
                        .unwrap()
                        .contains("too many open tails")
                );
                refused += 1;
            }
            other => panic!("a tail answered {other}"),
        }
    }
    assert_eq!((open.len(), refused), (8, 62));
    let asked = (0..40).map(|i| {
        let http = reqwest::Client::new();
        let path = if i % 2 == 0 { "/healthz" } else { "/classes" };
        let url = format!("{}{path}", s.admin);
        async move { http.get(url).send().await.unwrap().status() }
    });
    for status in futures_util::future::join_all(asked).await {
        assert_eq!(status, StatusCode::OK);
    }
    open.pop();
    let (http, url) = (reqwest::Client::new(), url.clone());
    eventually(Duration::from_secs(10), || async {
        let answer = http.get(&url).send().await.ok()?;
        (answer.status() == StatusCode::OK).then_some(answer)
    })
    .await;
}

/// A synthetic export for `class`: `entries` lines (`key`, `value` as JSON text) between the
/// header and the end line.
fn export_of(class: &str, entries: &[String]) -> Vec<String> {
    // The header's first field is `duro_export`, as duro writes it.
    let header =
        format!(r#"{{"duro_export":2,"class":"{class}","id":"00","name":null,"alarm_ms":null}}"#);
    let mut lines = vec![header];
    lines.extend(entries.iter().cloned());
    lines.push(json!({"duro_end": {"entries": entries.len()}}).to_string());
    lines
}

/// Issue 35: an import is applied whole or not at all. Into an object that stores keys and an
/// SQL table, with `replace`, each bad body — a bad line 51 of a 6 MiB export, a body cut at a
/// line or inside one, a body whose transfer fails, an unknown or forged internal entry, pages
/// that are no database, a value over the limit — answers 400 saying why and that nothing was
/// imported, and the object is exactly as before. The good body then goes in whole, in parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_import_changes_nothing_and_says_why() {
    let s = TestServer::start().await;
    assert_eq!(
        s.deploy("Probe", "storage-probe").await.0,
        StatusCode::CREATED
    );
    s.script("tgt", json!([{"op": "put", "key": "keep", "value": "1"}]))
        .await;
    let sql = json!({"statements": [["CREATE TABLE t (a)", []], ["INSERT INTO t VALUES (7)", []]]});
    let (status, _) = s
        .call(Method::POST, "/objects/Probe/tgt/sql", sql.to_string())
        .await;
    assert_eq!(status, StatusCode::OK);
    let export = async || {
        let url = format!("{}/classes/Probe/objects/by-name/tgt/export", s.admin);
        let text = s.http.get(url).send().await.unwrap().text().await.unwrap();
        text.lines().skip(1).map(String::from).collect::<Vec<_>>()
    };
    let before = export().await;
    let big = "x".repeat(100 * 1024);
    let entries: Vec<String> = (0..60)
        .map(|i| json!({"key": format!("k{i:02}"), "value": big}).to_string())
        .collect();
    let good = export_of("Probe", &entries);
    let import = "/classes/Probe/objects/by-name/tgt/import?replace=true";
    let page = |hex: String| json!({"internal": "ff7000000000", "hex": hex}).to_string();
    let size = json!({"internal": "ff73", "hex": "0010000000000000"}).to_string();
    let with = |at: usize, line: &str| {
        let mut lines = good.clone();
        lines[at] = line.to_string();
        lines.join("\n")
    };
    let all = good.join("\n");
    let cases: Vec<(String, &str)> = vec![
        (with(50, "not json"), "line 51"),
        (good[..40].join("\n"), "cut off"),
        (all[..5 * 1024 * 1024].to_string(), "line "),
        (
            with(30, r#"{"internal":"ff7a7a","hex":"00"}"#),
            "unknown internal entry ff7a7a",
        ),
        (
            with(30, r#"{"internal":"ff73","hex":"ffffffffffffff7f"}"#),
            "an SQL database of",
        ),
        (
            export_of("Probe", &[page("ab".repeat(4096)), size.clone()]).join("\n"),
            "the SQL database",
        ),
        (
            with(
                55,
                &json!({"key": "huge", "value": "y".repeat(200 * 1024)}).to_string(),
            ),
            "a value of",
        ),
    ];
    for (body, says) in cases {
        let (status, said) = s.admin_call(Method::POST, import, body.into_bytes()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{says}: {said}");
        let error = said["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says) && error.contains("nothing was imported"),
            "{said}"
        );
        assert_eq!(export().await, before, "{says}: the object changed");
    }
    // A transfer that fails half-way.
    let (first, _) = all.as_bytes().split_at(5 * 1024 * 1024);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        vec![Ok(first.to_vec()), Err(std::io::Error::other("cut"))];
    let failing = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let sent = s
        .http
        .post(format!("{}{import}", s.admin))
        .header("content-type", "application/x-ndjson")
        .body(failing)
        .send()
        .await;
    assert!(sent.is_err() || !sent.unwrap().status().is_success());
    assert_eq!(
        export().await,
        before,
        "a failed transfer changed the object"
    );
    // The object serves as before.
    let kept = s.script("tgt", json!([{"op": "get", "key": "keep"}])).await;
    assert_eq!(kept[0]["value"], "1");

    // The good body goes in whole: in parts of at most 2 MiB.
    let (status, said) = s.admin_call(Method::POST, import, all.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert_eq!(
        (&said["entries"], &said["complete"]),
        (&json!(60), &json!(true))
    );
    assert!(said["parts"].as_u64().unwrap() >= 3, "{said}");
    let (_, listed) = admin_get(&s, "/classes/Probe/objects/by-name/tgt?limit=1000").await;
    assert_eq!(listed["entries"].as_array().unwrap().len(), 60);
    // Many tiny entries: parts are cut by count as well.
    let tiny: Vec<String> = (0..20_000)
        .map(|i| json!({"key": format!("t{i:05}"), "value": 1}).to_string())
        .collect();
    let body = export_of("Probe", &tiny).join("\n");
    let (status, said) = s.admin_call(Method::POST, import, body.into_bytes()).await;
    assert_eq!(status, StatusCode::OK, "{said}");
    assert_eq!(
        (&said["entries"], &said["parts"]),
        (&json!(20_000), &json!(3))
    );
}

/// Issue 35: an import cut short by `kill -9` (here stalled on purpose after its second part,
/// then killed) leaves its object marked: after the restart the object refuses its events (409)
/// instead of serving half an import, `duro check` finds the data dir sound, and importing again
/// — without `replace` — puts it in whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_cut_short_by_a_crash_is_refused_until_imported_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = common::Process::start_env(
        dir.path(),
        &[],
        std::process::Stdio::null(),
        &[("DURO_FAULT_INJECTION", "1")],
    );
    let http = reqwest::Client::new();
    let value = "z".repeat(100 * 1024);
    let entries: Vec<String> = (0..60)
        .map(|i| json!({"key": format!("k{i:02}"), "value": value}).to_string())
        .chain(std::iter::once(
            json!({"key": "count", "value": 41}).to_string(),
        ))
        .collect();
    let body = export_of("Counter", &entries).join("\n");
    let url = format!(
        "{}/classes/Counter/objects/by-name/big/import",
        server.admin
    );
    let stalled = {
        let (http, url, body) = (http.clone(), url.clone(), body.clone());
        tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/x-ndjson")
                .header("x-duro-fault", "stall-import-after-2")
                .body(body)
                .send()
                .await
        })
    };
    let get = format!("{}/objects/Counter/big/get", server.ingress);
    eventually(Duration::from_secs(30), || async {
        let status = http.get(&get).send().await.ok()?.status();
        (status == StatusCode::CONFLICT).then_some(())
    })
    .await;
    server.kill_9();
    drop(stalled);

    let mut server = common::Process::start(dir.path());
    let get = format!("{}/objects/Counter/big/get", server.ingress);
    let refused = http.get(&get).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let said = refused.text().await.unwrap();
    assert!(said.contains("import"), "{said}");
    let export = format!(
        "{}/classes/Counter/objects/by-name/big/export",
        server.admin
    );
    let refused = http.get(export).send().await.unwrap();
    assert_eq!(
        refused.status(),
        StatusCode::CONFLICT,
        "half an import is no export"
    );
    server.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(server.child.wait().unwrap().success());
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["check", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let server = common::Process::start(dir.path());
    let url = format!(
        "{}/classes/Counter/objects/by-name/big/import",
        server.admin
    );
    let answer = http
        .post(url)
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let said: Value = answer.json().await.unwrap();
    assert_eq!(
        (&said["entries"], &said["complete"]),
        (&json!(61), &json!(true))
    );
    let increment = format!("{}/objects/Counter/big/increment", server.ingress);
    let counted: Value = http
        .post(increment)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(counted, json!({"count": 42}));
}
