//! The examples' end-to-end tests, once per language: the same Counter, ChatRoom and alarm
//! checks run against the Rust build and the JavaScript build (Cloudflare's TypeScript example,
//! unchanged but for import lines, compiled by componentize-js), each deployed as `duro.jsonc`
//! deploys it — the classes, their bindings and the worker in front. Then one storage shared
//! across languages: a class upgraded from Rust to JavaScript and back keeps counting.

mod common;

use std::time::Duration;

use common::{TestServer, eventually};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, Clone, Copy)]
enum Lang {
    Rust,
    Js,
    Python,
    C,
}

/// One language's build of the examples. Python and C have no worker: theirs run behind the Rust
/// worker (the C example is the Counter alone).
struct Build {
    counter: Vec<u8>,
    chat_room: Option<Vec<u8>>,
    scheduler: Option<Vec<u8>>,
    worker: Vec<u8>,
}

impl Lang {
    fn build(self) -> Build {
        match self {
            Lang::Rust => Build {
                counter: common::read_guest("duro-example-counter"),
                chat_room: Some(common::read_guest("duro-example-chat-room")),
                scheduler: Some(common::read_guest("duro-example-scheduler")),
                worker: common::read_guest("duro-example-worker"),
            },
            Lang::Python => {
                let objects = std::fs::read(common::python_build()).expect("the Python objects");
                Build {
                    counter: objects.clone(),
                    chat_room: Some(objects.clone()),
                    scheduler: Some(objects),
                    worker: common::read_guest("duro-example-worker"),
                }
            }
            Lang::C => Build {
                counter: std::fs::read(common::c_build()).expect("the C counter"),
                chat_room: None,
                scheduler: None,
                worker: common::read_guest("duro-example-worker"),
            },
            Lang::Js => {
                let js = common::js_build();
                let objects = std::fs::read(&js.objects).expect("the JS objects component");
                Build {
                    counter: objects.clone(),
                    chat_room: Some(objects.clone()),
                    scheduler: Some(objects),
                    worker: std::fs::read(&js.worker).expect("the JS worker component"),
                }
            }
        }
    }
}

/// A server with `lang`'s examples deployed: Counter (COUNTER), ChatRoom (ROOM), Scheduler
/// (SCHEDULER) — those the language has — and the worker, the direct routes kept.
async fn examples(lang: Lang, adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let build = lang.build();
    let s = TestServer::start_with(|c| {
        common::shared_cache(c);
        adjust(c)
    })
    .await;
    let mut bindings = Vec::new();
    for (binding, class, bytes) in [
        ("COUNTER", "Counter", Some(build.counter)),
        ("ROOM", "ChatRoom", build.chat_room),
        ("SCHEDULER", "Scheduler", build.scheduler),
    ] {
        let Some(bytes) = bytes else { continue };
        let (status, body) = s.upload(class, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{lang:?} {class}: {body}");
        bindings.push((binding, class));
    }
    s.bind(&bindings).await;
    let (status, body) = s
        .admin_call(Method::PUT, "/worker?object_routes=true", build.worker)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lang:?} worker: {body}");
    s
}

/// The seed's counter routes through the worker, the same object on the direct route, and
/// concurrent increments serialized.
async fn counter(lang: Lang) {
    let s = examples(lang, |_| {}).await;
    for n in 1..=3 {
        assert_eq!(
            s.post("/api/counters/foo/increment").await,
            (StatusCode::OK, json!({ "count": n })),
            "{lang:?}"
        );
    }
    assert_eq!(
        s.get("/api/counters/foo").await,
        (StatusCode::OK, json!({"count": 3}))
    );
    assert_eq!(
        s.get("/objects/Counter/foo/get").await,
        (StatusCode::OK, json!({"count": 3}))
    );
    assert_eq!(
        s.post("/objects/Counter/foo/reset").await,
        (StatusCode::OK, json!({"count": 0}))
    );
    assert_eq!(
        s.get("/api/counters/foo").await,
        (StatusCode::OK, json!({"count": 0}))
    );
    assert_eq!(
        s.get("/objects/Counter/foo/nope").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get("/elsewhere").await.0, StatusCode::NOT_FOUND);

    const CLIENTS: usize = 200;
    let increments = (0..CLIENTS).map(|_| s.post("/api/counters/busy/increment"));
    let mut counts: Vec<u64> = futures_util::future::join_all(increments)
        .await
        .into_iter()
        .map(|(status, body)| {
            assert_eq!(status, StatusCode::OK, "{body}");
            body["count"].as_u64().expect("a count")
        })
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, (1..=CLIENTS as u64).collect::<Vec<_>>(), "{lang:?}");
}

type Client = common::WsClient;

async fn join(s: &TestServer, room: &str) -> Client {
    common::ws_connect(s, &format!("/api/rooms/{room}/ws")).await
}

async fn next(client: &mut Client) -> Message {
    common::ws_next(client).await
}

/// The seed's chat room through the worker: broadcast to every other socket, text and binary
/// kept, a plain request refused, the room hibernating between messages.
async fn chat_room(lang: Lang) {
    let s = examples(lang, |c| c.hibernate_after = Duration::from_millis(100)).await;
    assert_eq!(
        s.get("/api/rooms/lobby/ws").await,
        (StatusCode::BAD_REQUEST, json!("Expected WebSocket"))
    );
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(join(&s, "lobby").await);
    }
    clients[0].send(Message::text("hello")).await.unwrap();
    assert_eq!(next(&mut clients[1]).await, Message::text("hello"));
    assert_eq!(next(&mut clients[2]).await, Message::text("hello"));
    clients[1]
        .send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    for i in [0, 2] {
        assert_eq!(
            next(&mut clients[i]).await,
            Message::binary(vec![0u8, 159, 146, 150]),
            "{lang:?} client {i}"
        );
    }
    // The sender never gets its own message: the next thing client 0 sees is client 2's.
    clients[2].send(Message::text("from 2")).await.unwrap();
    assert_eq!(next(&mut clients[0]).await, Message::text("from 2"));
    assert_eq!(next(&mut clients[1]).await, Message::text("from 2"));

    // Idle with open sockets: the room hibernates, and wakes for the next message.
    eventually(Duration::from_secs(10), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    clients[0].send(Message::text("after sleep")).await.unwrap();
    assert_eq!(next(&mut clients[1]).await, Message::text("after sleep"));
    assert_eq!(next(&mut clients[2]).await, Message::text("after sleep"));
    // A closed socket leaves the room.
    let mut gone = clients.remove(2);
    gone.close(None).await.unwrap();
    let mut newcomer = join(&s, "lobby").await;
    clients[0].send(Message::text("to all")).await.unwrap();
    assert_eq!(next(&mut clients[1]).await, Message::text("to all"));
    assert_eq!(next(&mut newcomer).await, Message::text("to all"));
}

/// The seed's Scheduler: a request sets the alarm 60 s ahead; the alarm runs then, and sets
/// itself again. (That an alarm never runs early is tests/alarms.rs's.)
async fn alarm(lang: Lang) {
    const T0: i64 = 1_800_000_000_000;
    let clock = duro::clock::Clock::manual(T0);
    let s = examples(lang, |c| c.clock = clock.clone()).await;
    assert_eq!(
        s.post("/objects/Scheduler/jobs/schedule?ms=60000").await,
        (StatusCode::OK, json!({"scheduled": true})),
        "{lang:?}"
    );
    let fired = || s.metric("duro_alarms_fired_total");
    clock.advance(Duration::from_millis(60_000));
    eventually(Duration::from_secs(10), || async {
        (fired().await >= 1.0).then_some(())
    })
    .await;
    // The handler set the next alarm 60 s after the time it read, which this test cannot see:
    // move the clock a minute at a time until it fires, with no request in between.
    eventually(Duration::from_secs(10), || async {
        clock.advance(Duration::from_millis(60_000));
        (fired().await >= 2.0).then_some(())
    })
    .await;
    assert_eq!(s.metric("duro_alarm_failures_total").await, 0.0, "{lang:?}");
}

/// An idle object's instance is dropped, whatever its language (a JavaScript or Python instance
/// holds megabytes), and the object comes back with its storage at its next request.
async fn eviction(lang: Lang) {
    let s = examples(lang, |c| c.idle_timeout = Duration::from_millis(200)).await;
    for n in 1..=2 {
        assert_eq!(
            s.post("/objects/Counter/sleepy/increment").await,
            (StatusCode::OK, json!({ "count": n }))
        );
    }
    eventually(Duration::from_secs(10), || async {
        let gone = s.metric("duro_live_objects").await == 0.0
            && s.metric("duro_evictions_total").await >= 1.0;
        gone.then_some(())
    })
    .await;
    assert_eq!(
        s.post("/objects/Counter/sleepy/increment").await,
        (StatusCode::OK, json!({"count": 3})),
        "{lang:?}"
    );
}

/// One storage, four languages: the Rust Counter counts, the class is replaced by the
/// JavaScript build and goes on from the stored count (values are JSON in every SDK), then by the
/// Python build, then C, then Rust again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_upgraded_across_languages_keeps_its_storage() {
    let js = std::fs::read(&common::js_build().objects).expect("the JS objects component");
    let s = TestServer::start_with(common::shared_cache).await;
    s.deploy("Counter", "duro-example-counter").await;
    for n in 1..=3 {
        assert_eq!(
            s.post("/objects/Counter/shared/increment").await,
            (StatusCode::OK, json!({ "count": n }))
        );
    }
    assert_eq!(s.upload("Counter", js).await.0, StatusCode::OK);
    assert_eq!(
        s.post("/objects/Counter/shared/increment").await,
        (StatusCode::OK, json!({"count": 4}))
    );
    assert_eq!(
        s.deploy("Counter", "duro-example-counter").await.0,
        StatusCode::OK
    );
    assert_eq!(
        s.post("/objects/Counter/shared/increment").await,
        (StatusCode::OK, json!({"count": 5}))
    );
}

/// A server with the JavaScript `Probe` class (bound as PROBE) and the Rust Counter (COUNTER).
async fn js_probe() -> TestServer {
    js_probe_with(|_| {}).await
}

async fn js_probe_with(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    common::js_probe_server(adjust).await
}

/// Instances the server created (for objects, or shared).
async fn instances(s: &TestServer) -> f64 {
    s.metric("duro_instantiate_seconds_count").await
}

/// A JS class is of the shared-instance world: its objects live many to an instance (a JS
/// instance is ~10 MiB), each with its own memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_objects_share_instances_and_keep_their_memory_apart() {
    let s = js_probe().await;
    let names: Vec<String> = (0..24).map(|n| format!("m{n}")).collect();
    for round in 1..=3 {
        for name in &names {
            assert_eq!(
                s.get(&format!("/objects/Probe/{name}/memory")).await,
                (StatusCode::OK, json!({ "hits": round })),
                "{name}"
            );
        }
    }
    assert_eq!(s.metric("duro_live_objects").await, 24.0);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let created = instances(&s).await;
    assert!(
        created <= (2 * cores) as f64,
        "{created} instances for 24 objects"
    );
}

/// Objects `0..=n` of a shared class touched in order take one instance each of the pool (2 per
/// core), and the last one lodges with the first: returns `n`.
fn first_ones_mate() -> usize {
    2 * std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// An operator's wipe of an object of a shared class forgets what the object keeps in memory,
/// and only that object's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_js_object_starts_over_in_memory() {
    let s = js_probe().await;
    let last = first_ones_mate();
    for round in 1..=2 {
        for n in 0..=last {
            let path = format!("/objects/Probe/v{n}/memory");
            assert_eq!(
                s.get(&path).await,
                (StatusCode::OK, json!({ "hits": round }))
            );
        }
    }
    let path = format!("/classes/Probe/objects/by-name/v{last}");
    let (status, body) = s.admin_call(Method::DELETE, &path, Vec::new()).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(
        s.get(&format!("/objects/Probe/v{last}/memory")).await,
        (StatusCode::OK, json!({ "hits": 1 }))
    );
    // Its instance mate keeps what it has in memory.
    assert_eq!(
        s.get("/objects/Probe/v0/memory").await,
        (StatusCode::OK, json!({ "hits": 3 }))
    );
}

/// An outgoing request counts as a call: an object of a shared class whose request comes back
/// (through an outside server) to another object of its own instance does not wait on itself —
/// that object moves to another instance and answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_out_and_back_into_a_shared_instance_does_not_wait_on_itself() {
    let s = js_probe().await;
    // The outside server: forwards every request to duro's ingress and answers what it got.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let ingress = s.ingress.clone();
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        while let Ok((stream, _)) = listener.accept().await {
            let (http, ingress) = (http.clone(), ingress.clone());
            tokio::spawn(async move {
                let forward = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (http, url) = (http.clone(), format!("{ingress}{}", request.uri()));
                        async move {
                            let body = match http.get(url).send().await {
                                Ok(answer) => answer.bytes().await.unwrap_or_default(),
                                Err(error) => error.to_string().into(),
                            };
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(body),
                            ))
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, forward)
                    .await;
            });
        }
    });
    let policy = json!({"classes": {"Probe": {"allowed_hosts": [upstream.to_string()], "timeout_ms": 10_000}}});
    let (status, body) = s
        .admin_call(Method::PUT, "/outbound", policy.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let last = first_ones_mate();
    for n in 0..=last {
        let (status, _) = s.get(&format!("/objects/Probe/w{n}/memory")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let started = std::time::Instant::now();
    let url = format!("http://{upstream}/objects/Probe/w{last}/memory");
    let (status, out) = s
        .get(&format!("/objects/Probe/w0/outbound?url={url}"))
        .await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out["hits"].is_number(), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered after {:?}: the object waited on its own instance",
        started.elapsed()
    );
}

/// Objects of one shared class calling each other in a chain never wait on an instance whose
/// guest waits on the chain: the calls complete, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_objects_of_one_class_call_each_other() {
    let s = js_probe_with(|c| c.call_timeout = Duration::from_secs(5)).await;
    for round in 1..=3 {
        let (status, out) = s.get("/objects/Probe/r0/relay?to=r1,r2,r3,r4,r5").await;
        assert_eq!(status, StatusCode::OK, "round {round}: {out}");
        let hits = out["hits"].as_array().expect("hits");
        assert_eq!(hits.len(), 6, "{out}");
        assert!(
            hits.iter()
                .all(|h| (1..=round).contains(&h.as_i64().unwrap())),
            "{out}"
        );
    }
    // A call back to the caller (r0 -> r1 -> r0) is served: the caller waits on its call
    // without holding its instance, and takes the call back beside it, as on Cloudflare.
    let (status, out) = s.get("/objects/Probe/r0/relay?to=r1,r0").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    // (r0 reads its count after the call, which counted the call back.)
    assert_eq!(out["hits"], json!([5, 4, 5]), "{out}");
}

/// A trap drops the shared instance (what its objects kept in memory goes with it); the class
/// goes on serving, the trapping object included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trap_resets_a_shared_instance_and_the_class_keeps_serving() {
    let s = js_probe_with(|c| c.limits.event_cpu = Duration::from_millis(200)).await;
    for name in ["spinner", "bystander"] {
        assert_eq!(
            s.get(&format!("/objects/Probe/{name}/memory")).await.1,
            json!({"hits": 1})
        );
    }
    let (status, out) = s.get("/objects/Probe/spinner/spin").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{out}");
    assert!(out.to_string().contains("CPU"), "{out}");
    assert_eq!(
        s.get("/objects/Probe/spinner/memory").await,
        (StatusCode::OK, json!({"hits": 1})),
        "the spinner starts over in a new instance"
    );
    let (status, out) = s.get("/objects/Probe/bystander/memory").await;
    assert_eq!(status, StatusCode::OK, "{out}");
}

/// The JS SDK's storage API, Cloudflare's shapes: get of one key or many (a Map), put of one or
/// an object, delete of one (existed?) or many (how many), list's options, transactions kept,
/// thrown away or rolled back, errors with their kind, alarms, deleteAll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_storage_api_behaves_as_cloudflares() {
    let s = js_probe().await;
    let (status, out) = s.post("/objects/Probe/p/storage").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["missing"], "undefined");
    assert_eq!(
        out["undefinedValue"]["message"],
        "put() called with undefined value."
    );
    assert_eq!(out["skipped"], 1);
    let refused = &out["refusedOptions"];
    for (case, name, message) in [
        ("negative", "TypeError", "List limit must be positive."),
        ("zero", "TypeError", "List limit must be positive."),
        (
            "both",
            "TypeError",
            "list() cannot be called with both start and startAfter values.",
        ),
        (
            "key",
            "RangeError",
            "Keys cannot be larger than 2048 bytes. A key of size 2049 was provided.",
        ),
        (
            "value",
            "RangeError",
            "Values cannot be larger than 131072 bytes. A value of size 200002 was provided.",
        ),
        (
            "many",
            "RangeError",
            "Maximum number of key value pairs is 128. 129 pairs were provided.",
        ),
    ] {
        assert_eq!(
            refused[case],
            json!({"name": name, "message": message}),
            "{case}"
        );
    }
    storage_probe_answers(&out);
}

/// JS storage keeps a value's structured clone, as Cloudflare: every type read back in a later
/// event as it was stored (Date, BigInt, Map, Set, bytes, typed arrays, RegExp, NaN, -0, Errors
/// with their cause and fields, shared objects and cycles; a class instance as its own
/// properties), through `get`, `get([..])`, `list`, `kv` and transactions; what cannot be cloned
/// throws DataCloneError and writes nothing, not even the rest of its batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_storage_keeps_what_was_stored() {
    let s = js_probe().await;
    let (status, refused) = s.post("/objects/Probe/c/clone-put").await;
    assert_eq!(status, StatusCode::OK, "{refused}");
    for case in ["fn", "symbol", "batch", "request", "kv"] {
        assert_eq!(refused[case]["name"], "DataCloneError", "{case}: {refused}");
    }
    let message = refused["fn"]["message"].as_str().unwrap();
    assert!(message.ends_with("could not be cloned."), "{message}");
    assert_eq!(refused["written"], json!(["graph", "kv", "many", "sample"]));
    let (status, read) = s.get("/objects/Probe/c/clone-get").await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let failed = |v: &Value| -> Vec<String> {
        let mut out = Vec::new();
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    if v != &json!(true) {
                        out.push(format!("{k}: {v}"));
                    }
                }
            }
            other => out.push(other.to_string()),
        }
        out
    };
    for part in ["sample", "graph"] {
        assert!(
            failed(&read[part]).is_empty(),
            "{part}: {:?}",
            failed(&read[part])
        );
    }
    for check in ["many", "listed", "kv", "kvList", "inTransaction"] {
        assert_eq!(read[check], true, "{check}: {read}");
    }
}

/// What the JS and Python probes' `/storage` route must answer alike.
fn storage_probe_answers(out: &Value) {
    assert_eq!(out["get"], json!({"nested": [true, null]}));
    assert_eq!(out["getMany"], json!({"a": 1, "c": "three"}));
    assert_eq!(
        out["list"],
        json!({"a": 1, "b": {"nested": [true, null]}, "c": "three", "user:1": "ann", "user:2": "bob"})
    );
    assert_eq!(out["prefix"], json!(["user:1", "user:2"]));
    assert_eq!(out["range"], json!(["b", "c"]));
    assert_eq!(out["startAfter"], json!(["c", "user:1"]));
    assert_eq!(out["reverse"], json!(["user:2", "user:1"]));
    assert_eq!(out["deleted"], true);
    assert_eq!(out["deletedAgain"], false);
    assert_eq!(out["deletedMany"], 2);
    assert_eq!(out["kept"], 2);
    assert_eq!(out["thrown"], json!({"kind": null, "message": "no thanks"}));
    assert_eq!(out["afterTransactions"], json!(["b", "t", "user:1"]));
    assert_eq!(out["tooLarge"]["kind"], "value-too-large");
    assert_eq!(out["alarmBefore"], Value::Null);
    let set = out["alarmSet"].as_i64().unwrap();
    assert!((3_599_000..=3_600_000).contains(&set), "{set}");
    assert_eq!(out["alarmAfter"], Value::Null);
    assert_eq!(out["afterDeleteAll"], 0);
}

/// Ids, an object calling an object of another language, an unknown binding, and a handler that
/// throws (a 500 whose body names the error; the object keeps serving).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_objects_have_ids_call_other_objects_and_report_errors() {
    let s = js_probe().await;
    let (_, id) = s.get("/ids/Probe?name=me").await;
    assert_eq!(
        s.get("/objects/Probe/me/id").await.1,
        json!({"id": id["id"], "name": "me"})
    );
    for n in 1..=2 {
        assert_eq!(
            s.post("/objects/Probe/me/call?counter=c").await,
            (
                StatusCode::OK,
                json!({"status": 200, "counter": {"count": n}})
            )
        );
    }
    assert_eq!(s.get("/objects/Counter/c/get").await.1, json!({"count": 2}));
    let (status, unknown) = s.get("/objects/Probe/me/unknown-binding").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(unknown, json!({"value": "undefined", "has": false}));
    assert_eq!(
        s.get("/objects/Probe/me/throw").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({"error": "TypeError: thrown on purpose"})
        )
    );
    // What the handler threw crosses to calling objects only: a client sees the body.
    let raw = reqwest::get(format!("{}/objects/Probe/me/throw", s.ingress))
        .await
        .unwrap();
    assert_eq!(raw.headers().get("duro-thrown"), None);
    assert_eq!(s.get("/objects/Probe/me/id").await.0, StatusCode::OK);
    // `request.json()` on a body that is not JSON: the client's mistake, 400.
    let echo = "/objects/Probe/me/echo-json";
    let (status, bad) = s.call(Method::POST, echo, b"{oops".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let reason = bad["error"].as_str().unwrap_or_default();
    assert!(
        reason.starts_with("the request body is not valid JSON"),
        "{bad}"
    );
    assert_eq!(
        s.call(Method::POST, echo, br#"{"a":1}"#.to_vec()).await,
        (StatusCode::OK, json!({"echo": {"a": 1}}))
    );

    // The deploy config's vars and secrets are `env` properties.
    set_vars(&s).await;
    assert_eq!(
        s.get("/objects/Probe/me/env?name=GREETING").await.1,
        json!({"value": "hello"})
    );
    assert_eq!(
        s.get("/objects/Probe/me/env?name=API_KEY").await.1,
        json!({"value": "k3y"})
    );
}

/// Sets a var and a secret through the admin API.
async fn set_vars(s: &TestServer) {
    let vars = json!({"vars": {"GREETING": "hello"}, "secrets": {"API_KEY": "k3y"}});
    let (status, shown) = s
        .admin_call(Method::PUT, "/vars", vars.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["secrets"], json!(["API_KEY"]));
}

/// Sockets in JS: tags, attachments that survive hibernation, getWebSockets by tag, binary
/// messages, and the auto-response answered without waking the object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_websockets_keep_tags_and_attachments_across_hibernation() {
    let s = TestServer::start_with(|c| {
        common::shared_cache(c);
        c.hibernate_after = Duration::from_millis(100);
    })
    .await;
    let probe = std::fs::read(&common::js_build().probe).expect("the JS probe component");
    assert_eq!(s.upload("Probe", probe).await.0, StatusCode::CREATED);
    let base = format!(
        "{}/objects/Probe/room/ws",
        s.ingress.replace("http://", "ws://")
    );
    let (mut red, _) = tokio_tungstenite::connect_async(format!("{base}?tag=red&tag=all"))
        .await
        .expect("handshake");
    let (mut blue, _) = tokio_tungstenite::connect_async(format!("{base}?tag=blue&tag=all"))
        .await
        .expect("handshake");
    let ask = async |ws: &mut Client, command: &str| {
        ws.send(Message::text(command)).await.unwrap();
        next(ws).await
    };
    assert_eq!(ask(&mut red, "count red").await, Message::text("1"));
    assert_eq!(ask(&mut red, "count all").await, Message::text("2"));
    assert_eq!(
        ask(&mut blue, "tags").await,
        Message::text(r#"["blue","all"]"#)
    );
    assert_eq!(
        ask(&mut red, "bytes").await,
        Message::binary(vec![1u8, 2, 3])
    );
    assert_eq!(ask(&mut red, "auto").await, Message::text("auto set"));
    eventually(Duration::from_secs(10), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    let activations = s.metric("duro_activations_total").await;
    assert_eq!(ask(&mut blue, "ping").await, Message::text("pong"));
    assert_eq!(s.metric("duro_activations_total").await, activations);
    assert_eq!(
        ask(&mut blue, "attachment").await,
        Message::text(r#"{"joined":["blue","all"],"at":"Date 9"}"#)
    );
    assert!(s.metric("duro_activations_total").await > activations);
}

/// The Python SDK's storage API: the JS probe's checks in Python's shapes (dicts in key order,
/// `with` transactions, errors with their kind). Python objects share instances too, each with
/// its own memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_behaves_as_the_others() {
    let s = TestServer::start_with(common::shared_cache).await;
    let probe = std::fs::read(common::python_probe()).expect("the Python probe component");
    assert_eq!(s.upload("PyProbe", probe).await.0, StatusCode::CREATED);
    let (status, out) = s.post("/objects/PyProbe/p/storage").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["missing"], Value::Null);
    assert_eq!(out["typed"], json!(["bytes", true, true, true]));
    storage_probe_answers(&out);
    let message = out["tooLarge"]["message"].as_str().unwrap();
    assert!(message.contains("the limit is"), "{message}");

    for round in 1..=2 {
        for n in 0..8 {
            let (status, out) = s.get(&format!("/objects/PyProbe/m{n}/memory")).await;
            assert_eq!(
                (status, &out["hits"]),
                (StatusCode::OK, &json!(round)),
                "{out}"
            );
        }
    }
    assert!(instances(&s).await < 8.0, "8 objects share instances");
    set_vars(&s).await;
    assert_eq!(
        s.get("/objects/PyProbe/p/env?GREETING").await.1,
        json!({"value": "hello"})
    );
}

/// RPC on stubs, across languages: JavaScript's `stub.method(...args)` with every encodable type
/// there and back, thrown errors with their name and message, storage writes in methods, calls in
/// order; Rust (`Stub::call`, `DurableObject::call`) and Python (`stub.method(...)`, public
/// methods) calling and called; a class built before RPC existed answers a TypeError.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_methods_are_called_across_languages() {
    let s = js_probe().await;
    let py = std::fs::read(common::python_probe()).expect("the Python probe component");
    assert_eq!(s.upload("PyProbe", py).await.0, StatusCode::CREATED);
    s.deploy("CallProbe", "call-probe").await;
    let old = std::fs::read(common::root().join("tests/fixtures/counter-before-namespaces.wasm"))
        .unwrap();
    assert_eq!(s.upload("Old", old).await.0, StatusCode::CREATED);
    s.bind(&[
        ("COUNTER", "Counter"),
        ("PROBE", "Probe"),
        ("PY", "PyProbe"),
        ("CALLS", "CallProbe"),
        ("OLD", "Old"),
    ])
    .await;

    let (status, out) = s.get("/objects/Probe/a/rpc?to=b&rust").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    for (value, same) in out["same"].as_object().unwrap() {
        assert_eq!(
            same,
            &json!(true),
            "{value} did not come back as it went: {out}"
        );
    }
    let (_, b) = s.get("/ids/Probe?name=b").await;
    let remote =
        |name: &str, message: &str| json!({"name": name, "message": message, "remote": true});
    let no_method = |m: &str| {
        remote(
            "TypeError",
            &format!("The RPC receiver does not implement the method \"{m}\"."),
        )
    };
    assert_eq!(out["sum"], 5);
    assert_eq!(out["who"], json!({"id": b["id"], "name": "b"}));
    assert_eq!(out["counts"], json!([1, 2]));
    assert_eq!(out["ordered"], json!([3, 4]));
    assert_eq!(out["thrownRange"], remote("RangeError", "too far"));
    assert_eq!(out["thrownPlain"], json!({"value": "a plain string"}));
    assert_eq!(out["missing"], no_method("nope"));
    assert_eq!(out["handler"], no_method("alarm"));
    assert_eq!(out["uncloneable"]["name"], "DataCloneError");
    assert_eq!(out["uncloneable"]["remote"], false);
    assert_eq!(out["fetched"], json!({"id": b["id"], "name": "b"}));
    assert_eq!(out["rust"], 42);
    // An error crosses a stub whole, RPC and fetch alike (Cloudflare's enhanced error
    // serialization); only RPC says which object threw.
    assert_eq!(
        out["thrownDetailed"],
        json!({"type": "SyntaxError", "name": "SyntaxError", "message": "with details",
               "remote": true, "code": 42, "retryable": true, "cause": "the cause",
               "durableObjectId": b["id"]})
    );
    assert_eq!(
        out["fetchThrew"],
        json!({"type": "TypeError", "name": "TypeError", "message": "thrown on purpose",
               "remote": true, "code": "E_PROBE", "retryable": null, "cause": null,
               "durableObjectId": null})
    );

    // Rust calling JavaScript and Python; a class without `rpc`.
    let rpc = |binding: &str, name: &str, method: &str, args: Value| {
        let path = format!("/objects/CallProbe/r/rpc?b={binding}&n={name}&m={method}");
        let s = &s;
        async move { s.call(Method::POST, &path, args.to_string()).await }
    };
    assert_eq!(
        rpc("PROBE", "b", "add", json!([1, 2])).await,
        (StatusCode::OK, json!({"returned": 3}))
    );
    assert_eq!(
        rpc("PROBE", "b", "fail", json!(["range"])).await.1,
        json!({"thrown": {"$type": "Error", "name": "RangeError", "message": "too far"}})
    );
    assert_eq!(
        rpc("PY", "p", "sayHello", json!(["Ann"])).await.1,
        json!({"returned": "Hello, Ann!"})
    );
    assert_eq!(
        rpc("PY", "p", "fail", json!([])).await.1,
        json!({"thrown": {"$type": "Error", "name": "ValueError", "message": "python says no"}})
    );
    let (_, old) = rpc("OLD", "x", "add", json!([1, 2])).await;
    assert_eq!(old["thrown"]["name"], "TypeError", "{old}");
    assert!(
        old["thrown"]["message"]
            .as_str()
            .unwrap()
            .contains("has no RPC methods"),
        "{old}"
    );
    assert_eq!(
        rpc("CALLS", "r2", "relay", json!(["PROBE", "b", "add", 20, 22]))
            .await
            .1,
        json!({"returned": 42})
    );

    // Python calling JavaScript.
    let (status, out) = s.get("/objects/PyProbe/p/rpc?b").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out,
        json!({"sum": 42, "echo": ["b'\\x01'", "{1, 2}"], "thrown": {"name": "RangeError", "message": "too far"}})
    );
}

/// `suite` as one test per language.
macro_rules! per_language {
    ($($suite:ident),* $(,)?) => {
        mod rust {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $suite() {
                    super::$suite(super::Lang::Rust).await
                }
            )*
        }
        mod js {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $suite() {
                    super::$suite(super::Lang::Js).await
                }
            )*
        }
        mod python {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $suite() {
                    super::$suite(super::Lang::Python).await
                }
            )*
        }
    };
}

per_language!(counter, chat_room, alarm, eviction);

/// The C example is a Counter: its suites.
mod c {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn counter() {
        super::counter(super::Lang::C).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn eviction() {
        super::eviction(super::Lang::C).await
    }
}
