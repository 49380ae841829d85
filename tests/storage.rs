//! Every storage call, list option, transaction rule and limit, driven through the
//! storage-probe class (one script = one event), against the real redb-backed runtime.

mod common;

use common::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn probe() -> TestServer {
    let s = TestServer::start().await;
    assert_eq!(
        s.deploy("Probe", "storage-probe").await.0,
        StatusCode::CREATED
    );
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_json_body_is_the_clients_error() {
    let s = probe().await;
    for body in ["{oops", "[{\"op\": 7}]"] {
        let (status, answer) = s.call(Method::POST, "/objects/Probe/m/script", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .starts_with("the request body is not valid JSON"),
            "{answer}"
        );
    }
}

fn entries(result: &Value) -> Vec<(String, String)> {
    serde_json::from_value(result["entries"].clone()).expect("entries")
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_put_delete_and_batches() {
    let s = probe().await;
    let r = s
        .script(
            "o",
            json!([
                {"op": "get", "key": "a"},
                {"op": "put", "key": "a", "value": "1"},
                {"op": "get", "key": "a"},
                {"op": "put-many", "entries": [["b", "2"], ["c", "3"]]},
                {"op": "get-many", "keys": ["c", "zz", "a"]},
                {"op": "delete", "key": "a"},
                {"op": "delete", "key": "a"},
                {"op": "delete-many", "keys": ["b", "c", "nope"]},
                {"op": "get-many", "keys": ["a", "b", "c"]},
            ]),
        )
        .await;
    assert_eq!(r[0], json!({"value": null}));
    assert_eq!(r[2], json!({"value": "1"}));
    assert_eq!(entries(&r[4]), pairs(&[("a", "1"), ("c", "3")]));
    assert_eq!(r[5], json!({"existed": true}));
    assert_eq!(r[6], json!({"existed": false}));
    assert_eq!(r[7], json!({"count": 2}));
    assert_eq!(entries(&r[8]), vec![]);

    // Writes persist across events; other objects do not see them.
    s.script("o", json!([{"op": "put", "key": "k", "value": "v"}]))
        .await;
    assert_eq!(
        s.script("o", json!([{"op": "get", "key": "k"}])).await[0],
        json!({"value": "v"})
    );
    assert_eq!(
        s.script("p", json!([{"op": "get", "key": "k"}])).await[0],
        json!({"value": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_honours_every_option() {
    let s = probe().await;
    let keys = ["a", "b", "ba", "bb", "bc", "c", "d"];
    let put: Vec<Value> = keys.iter().map(|k| json!([k, k.to_uppercase()])).collect();
    s.script("l", json!([{"op": "put-many", "entries": put}]))
        .await;
    let list = |options: Value| {
        let mut op = options;
        op["op"] = json!("list");
        op
    };
    let r = s
        .script(
            "l",
            json!([
                list(json!({})),
                list(json!({"prefix": "b"})),
                list(json!({"start": "b", "end": "c"})),
                list(json!({"startAfter": "b", "end": "c"})),
                list(json!({"reverse": true, "limit": 3})),
                list(json!({"prefix": "b", "reverse": true, "limit": 2})),
                list(json!({"limit": 0})),
                list(json!({"start": "x"})),
                list(json!({"start": "c", "end": "b"})),
                list(json!({"prefix": "b", "start": "bb"})),
                list(json!({"start": "a", "startAfter": "b"})),
            ]),
        )
        .await;
    let names = |r: &Value| -> Vec<String> { entries(r).into_iter().map(|(k, _)| k).collect() };
    assert_eq!(names(&r[0]), keys);
    assert_eq!(entries(&r[0])[1], ("b".to_string(), "B".to_string()));
    assert_eq!(names(&r[1]), ["b", "ba", "bb", "bc"]);
    assert_eq!(names(&r[2]), ["b", "ba", "bb", "bc"]);
    assert_eq!(names(&r[3]), ["ba", "bb", "bc"]);
    assert_eq!(names(&r[4]), ["d", "c", "bc"]);
    assert_eq!(names(&r[5]), ["bc", "bb"]);
    assert!(names(&r[6]).is_empty());
    assert!(names(&r[7]).is_empty());
    assert!(names(&r[8]).is_empty());
    assert_eq!(names(&r[9]), ["bb", "bc"]);
    assert_eq!(r[10]["error"]["kind"], "invalid-argument");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_merges_this_events_writes_with_stored_ones() {
    let s = probe().await;
    s.script(
        "m",
        json!([{"op": "put-many", "entries": [["a", "1"], ["c", "3"], ["e", "5"]]}]),
    )
    .await;
    let r = s
        .script(
            "m",
            json!([
                {"op": "put", "key": "b", "value": "2"},
                {"op": "delete", "key": "c"},
                {"op": "put", "key": "e", "value": "five"},
                {"op": "list"},
                {"op": "list", "reverse": true, "limit": 2},
            ]),
        )
        .await;
    assert_eq!(
        entries(&r[3]),
        pairs(&[("a", "1"), ("b", "2"), ("e", "five")])
    );
    assert_eq!(entries(&r[4]), pairs(&[("e", "five"), ("b", "2")]));
    // And the next event sees the same, now from the cache or redb.
    let r = s.script("m", json!([{"op": "list"}])).await;
    assert_eq!(
        entries(&r[0]),
        pairs(&[("a", "1"), ("b", "2"), ("e", "five")])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_all_clears_everything_of_this_object_only() {
    let s = probe().await;
    s.script(
        "x",
        json!([{"op": "put-many", "entries": [["a", "1"], ["b", "2"]]}]),
    )
    .await;
    s.script("y", json!([{"op": "put", "key": "a", "value": "other"}]))
        .await;
    let r = s
        .script(
            "x",
            json!([
                {"op": "delete-all"},
                {"op": "get", "key": "a"},
                {"op": "put", "key": "c", "value": "3"},
                {"op": "list"},
            ]),
        )
        .await;
    assert_eq!(r[1], json!({"value": null}));
    assert_eq!(entries(&r[3]), pairs(&[("c", "3")]));
    let r = s
        .script("x", json!([{"op": "list"}, {"op": "get", "key": "b"}]))
        .await;
    assert_eq!(entries(&r[0]), pairs(&[("c", "3")]));
    assert_eq!(r[1], json!({"value": null}));
    assert_eq!(
        s.script("y", json!([{"op": "get", "key": "a"}])).await[0],
        json!({"value": "other"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_commit_roll_back_and_nest() {
    let s = probe().await;
    let r = s
        .script(
            "t",
            json!([
                {"op": "put", "key": "base", "value": "0"},
                {"op": "begin"},
                {"op": "put", "key": "kept", "value": "1"},
                {"op": "begin"},
                {"op": "put", "key": "dropped", "value": "2"},
                {"op": "delete", "key": "base"},
                {"op": "get", "key": "dropped"},
                {"op": "rollback"},
                {"op": "get", "key": "dropped"},
                {"op": "get", "key": "base"},
                {"op": "commit"},
                {"op": "commit"},
                {"op": "rollback"},
                {"op": "begin"},
                {"op": "delete-all"},
                {"op": "rollback"},
                {"op": "begin"},
                {"op": "put", "key": "open", "value": "never committed"},
            ]),
        )
        .await;
    assert_eq!(r[6], json!({"value": "2"}));
    assert_eq!(r[8], json!({"value": null}));
    assert_eq!(r[9], json!({"value": "0"}));
    assert_eq!(r[10], json!({}));
    assert_eq!(r[11]["error"]["kind"], "no-transaction");
    assert_eq!(r[12]["error"]["kind"], "no-transaction");
    // A transaction left open at the end of the event is rolled back.
    let r = s.script("t", json!([{"op": "list"}])).await;
    assert_eq!(entries(&r[0]), pairs(&[("base", "0"), ("kept", "1")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_limit_gives_its_typed_error_and_writes_nothing() {
    let s = probe().await;
    let long_key = "k".repeat(2049);
    let r = s.script(
        "lim",
        json!([
            {"op": "put", "key": long_key, "value": "v"},
            {"op": "get", "key": long_key},
            {"op": "put", "key": "k".repeat(2048), "value": "max key is fine"},
            {"op": "put-sized", "key": "big", "size": 128 * 1024 + 1},
            {"op": "put-sized", "key": "max", "size": 128 * 1024},
            {"op": "put-generated", "prefix": "g", "count": 129},
            {"op": "put-generated", "prefix": "h", "count": 128},
            {"op": "get-many", "keys": (0..129).map(|i| format!("k{i}")).collect::<Vec<_>>()},
            {"op": "delete-many", "keys": (0..129).map(|i| format!("k{i}")).collect::<Vec<_>>()},
            {"op": "put-many", "entries": [["ok", "1"], [long_key, "2"]]},
        ]),
    )
    .await;
    assert_eq!(
        r[0]["error"],
        json!({"kind": "key-too-large", "limit": 2048, "actual": 2049})
    );
    assert_eq!(r[1]["error"]["kind"], "key-too-large");
    assert_eq!(r[2], json!({}));
    assert_eq!(
        r[3]["error"],
        json!({"kind": "value-too-large", "limit": 131072, "actual": 131073})
    );
    assert_eq!(r[4], json!({}));
    assert_eq!(
        r[5]["error"],
        json!({"kind": "too-many-keys", "limit": 128, "actual": 129})
    );
    assert_eq!(r[6], json!({}));
    assert_eq!(r[7]["error"]["kind"], "too-many-keys");
    assert_eq!(r[8]["error"]["kind"], "too-many-keys");
    assert_eq!(r[9]["error"]["kind"], "key-too-large");
    // put-many is all-or-nothing; refused batches wrote nothing.
    let r = s
        .script(
            "lim",
            json!([
                {"op": "get", "key": "ok"},
                {"op": "list", "prefix": "g"},
                {"op": "list", "prefix": "h", "limit": 200},
                {"op": "get", "key": "big"},
            ]),
        )
        .await;
    assert_eq!(r[0], json!({"value": null}));
    assert!(entries(&r[1]).is_empty());
    assert_eq!(entries(&r[2]).len(), 128);
    assert_eq!(r[3], json!({"value": null}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_discards_the_events_writes_and_the_object_recovers() {
    let s = probe().await;
    s.script("tr", json!([{"op": "put", "key": "a", "value": "before"}]))
        .await;
    let (status, body) = s
        .call(
            Method::POST,
            "/objects/Probe/tr/script",
            json!([
                {"op": "put", "key": "a", "value": "during"},
                {"op": "put", "key": "b", "value": "during"},
                {"op": "delete-all"},
                {"op": "trap"},
            ])
            .to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body["error"].as_str().unwrap().contains("trap"), "{body}");
    let r = s.script("tr", json!([{"op": "list"}])).await;
    assert_eq!(entries(&r[0]), pairs(&[("a", "before")]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_reports_id_name_and_class() {
    let s = probe().await;
    let (_, id) = s.get("/ids/Probe?name=who").await;
    let (status, state) = s.get("/objects/Probe/who/state").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        state,
        json!({"id": id["id"], "name": "who", "class": "Probe"})
    );
    // Addressed only by a unique id, an object has no name.
    let (_, unique) = s.post("/ids/Probe").await;
    let (_, state) = s
        .get(&format!(
            "/ids/Probe/{}/state",
            unique["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(
        state,
        json!({"id": unique["id"], "name": null, "class": "Probe"})
    );
}
