//! Calls between objects: an object calls another through a binding; cycles of any length are
//! refused (and the server serves on); a trapping callee is an error for the caller, not its
//! trap; every call times out; the output gate covers calls (a caller whose writes cannot be made
//! durable never calls); code upgrades under load fail no request and keep sockets.

mod common;

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Process, TestServer, guest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn probes(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let s = TestServer::start_with(adjust).await;
    s.deploy("Call", "call-probe").await;
    s.deploy("Counter", "duro-example-counter").await;
    s.deploy("Bad", "misbehave").await;
    s.bind(&[("PROBE", "Call"), ("COUNTER", "Counter"), ("BAD", "Bad")])
        .await;
    s
}

fn callee_body(answer: &Value) -> Value {
    let body = answer["body"].as_str().expect("a callee body");
    serde_json::from_str(body).unwrap_or(Value::String(body.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_calls_another_through_a_binding() {
    let s = probes(|_| {}).await;
    let (status, answer) = s
        .post("/objects/Call/a/call?b=COUNTER&n=x&p=/increment")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], 200);
    assert_eq!(callee_body(&answer), json!({"count": 1}));
    assert_eq!(s.get("/objects/Counter/x/get").await.1, json!({"count": 1}));
    // An unknown binding is the caller's error value, not a trap.
    let (status, answer) = s.post("/objects/Call/a/call?b=NOPE&n=x&p=/").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("unknown binding"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_cycles_of_length_two_and_three_are_refused_without_waiting() {
    let s = probes(|c| c.call_timeout = Duration::from_secs(20)).await;
    for route in ["PROBE:b,PROBE:a", "PROBE:b,PROBE:c,PROBE:a"] {
        let started = Instant::now();
        let (status, answer) = s.get(&format!("/objects/Call/a/hop?route={route}")).await;
        assert_eq!(status, StatusCode::OK, "{route}: {answer}");
        // The innermost caller got the cycle error; it travelled back as answers.
        assert!(answer.to_string().contains("cycle"), "{route}: {answer}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{route}: refused only after {:?} (the call timeout is 20 s)",
            started.elapsed()
        );
    }
    // No cycle: a chain of three distinct objects answers.
    let (_, answer) = s.get("/objects/Call/a/hop?route=PROBE:b,PROBE:c").await;
    assert!(answer.to_string().contains("depth"), "{answer}");
    // The objects of the refused cycles serve on.
    assert_eq!(s.get("/objects/Call/a/events").await.0, StatusCode::OK);
    assert_eq!(s.get("/objects/Call/b/events").await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_callee_is_an_error_for_the_caller_not_its_trap() {
    let s = probes(|_| {}).await;
    assert_eq!(
        s.get("/objects/Call/caller/events").await.1,
        json!({"events": 1})
    );
    let (status, answer) = s
        .post("/objects/Call/caller/call?b=PROBE&n=victim&p=/trap")
        .await;
    // The caller got the `failed` error value (without the callee's backtrace) and answered.
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("failed") && error.contains("error id"),
        "{answer}"
    );
    assert!(!error.contains("wasm"), "{answer}");
    // The caller was not reset: its in-memory count goes on.
    assert_eq!(
        s.get("/objects/Call/caller/events").await.1,
        json!({"events": 3})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_times_out() {
    let s = probes(|c| {
        c.call_timeout = Duration::from_millis(300);
        c.limits.event_cpu = Duration::from_secs(3);
    })
    .await;
    let started = Instant::now();
    let (status, answer) = s
        .post("/objects/Call/impatient/call?b=BAD&n=slow&p=/loop")
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("timeout"),
        "{answer}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_on_calls_is_not_charged_to_the_callers_cpu_budget() {
    // 30 calls to a callee that runs 3 ms each: ~90 ms of waiting, against a 20 ms CPU budget
    // that only the caller's own running counts.
    let s = probes(|c| c.limits.event_cpu = Duration::from_millis(20)).await;
    let (status, answer) = s
        .post("/objects/Call/a/calls?times=30&b=BAD&n=spinner&p=/hold%3Fmib=0%26ms=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(callee_body(&answer), json!({"held_mib": 0}));
    // The budget still stops a caller that spins itself.
    let (status, _) = s.post("/objects/Bad/b/loop").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_writes_cannot_be_made_durable_never_calls() {
    let temp = tempfile::tempdir().unwrap();
    // Files may grow to 16 MiB: the caller's 1 MB writes soon cannot be committed.
    let wrapper = [
        "sh",
        "-c",
        "ulimit -f 16384; trap '' XFSZ; exec \"$0\" \"$@\"",
    ];
    let call = format!("Call={}", guest("call-probe").display());
    let process = Process::start_under(
        &wrapper,
        temp.path(),
        &["--deploy", &call, "--checkpoint-interval-ms", "50"],
        Stdio::null(),
    );
    let http = reqwest::Client::new();
    let admin = |path: &str| format!("{}{path}", process.admin);
    let response = http
        .put(admin("/bindings"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(json!({"PROBE": "Call"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let url = |path: &str| format!("{}{path}", process.ingress);
    let events = |http: reqwest::Client, url: String| async move {
        common::get_json(&http, &url).await["events"]
            .as_u64()
            .unwrap()
    };
    let mut refused = false;
    for i in 0..200 {
        let before = events(http.clone(), url("/objects/Call/callee/events")).await;
        let response = http
            .post(url(&format!(
                "/objects/Call/w{i}/write-and-call?kib=1000&b=PROBE&n=callee&p=/events"
            )))
            .send()
            .await
            .unwrap();
        let after = events(http.clone(), url("/objects/Call/callee/events")).await;
        if response.status() == StatusCode::OK {
            // Called: the callee ran one event (plus our reads).
            assert_eq!(after, before + 2);
        } else {
            // The caller's writes could not be made durable: the callee never saw the call.
            assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
            assert_eq!(
                after,
                before + 1,
                "a call left before its caller's writes were durable"
            );
            refused = true;
            break;
        }
    }
    assert!(refused, "the file size limit was never reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrading_a_class_and_the_worker_under_load_fails_no_request_and_keeps_sockets() {
    let s = TestServer::start_with(|c| c.hibernate_after = Duration::from_millis(100)).await;
    s.deploy("Counter", "duro-example-counter").await;
    s.deploy("Probe", "ws-probe").await;
    s.bind(&[("COUNTER", "Counter"), ("WS", "Probe")]).await;
    s.deploy_worker("worker-probe", true).await;
    // A socket accepted by the old code, through the worker.
    let url = format!(
        "{}/to/WS/room/connect?name=kept",
        s.ingress.replace("http://", "ws://")
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // Its object hibernates first: the upgrade finds it cold.
    common::eventually(Duration::from_secs(10), || async {
        (s.metric("duro_hibernations_total").await >= 1.0).then_some(())
    })
    .await;
    // Steady load through the worker while both are upgraded, several times.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for worker in 0..8 {
        let (http, stop, ok, failed) = (s.http.clone(), stop.clone(), ok.clone(), failed.clone());
        let url = format!("{}/to/COUNTER/c{worker}/increment", s.ingress);
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match http.post(&url).send().await {
                    Ok(r) if r.status() == StatusCode::OK => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    // Each upload swaps in other code: the worker and the socket's class alternate between two
    // versions (v2, v1, v2), the Counter between revisions of its bytes.
    for (round, version) in [2u8, 1, 2].into_iter().enumerate() {
        let counter = common::guest_revision("duro-example-counter", round as u8);
        assert_eq!(s.upload("Counter", counter).await.0, StatusCode::OK);
        let worker = common::guest_version("worker-probe", version);
        let (status, _) = s.admin_call(Method::PUT, "/worker", worker).await;
        assert_eq!(status, StatusCode::OK);
        let probe = common::guest_version("ws-probe", version);
        assert_eq!(s.upload("Probe", probe).await.0, StatusCode::OK);
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    assert!(ok.load(Ordering::Relaxed) > 50, "too little load ran");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during upgrades"
    );
    // The socket accepted by the old code is handled by the new one, state intact.
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    socket.send(Message::text("who")).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(answer, Message::text("kept"));
    socket.send(Message::text("version")).await.unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        answer,
        Message::text("probe-version-2"),
        "the new code handles it"
    );
    assert_eq!(
        s.get("/version").await.1,
        json!({"version": "probe-version-2"})
    );
    // The counters' storage survived every replacement.
    let total: u64 = futures_util::future::join_all((0..8).map(|w| {
        let s = &s;
        async move {
            s.get(&format!("/to/COUNTER/c{w}/get")).await.1["count"]
                .as_u64()
                .unwrap()
        }
    }))
    .await
    .into_iter()
    .sum();
    assert_eq!(
        total,
        ok.load(Ordering::Relaxed),
        "every acknowledged increment is kept"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_built_before_namespaces_existed_keeps_working_and_can_be_called() {
    let s = TestServer::start().await;
    let old = std::fs::read(common::root().join("tests/fixtures/counter-before-namespaces.wasm"))
        .unwrap();
    assert_eq!(s.upload("Counter", old).await.0, StatusCode::CREATED);
    s.deploy("Call", "call-probe").await;
    s.bind(&[("COUNTER", "Counter")]).await;
    assert_eq!(
        s.post("/objects/Counter/old/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
    let (_, answer) = s
        .post("/objects/Call/new/call?b=COUNTER&n=old&p=/increment")
        .await;
    assert_eq!(callee_body(&answer), json!({"count": 2}));
}
