//! Work that outlives an event, in a JavaScript class (the JS probe): timers (`setTimeout`,
//! `setInterval`) that fire after the response as later events of the object, a handler that
//! waits on a timer, `ctx.waitUntil` on a timer and on an outgoing request, `blockConcurrencyWhile`
//! holding the object's next event, and the background limit that cuts work no event renews.

mod common;

use std::time::{Duration, Instant};

use common::{TestServer, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn probe(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    common::js_probe_server(adjust).await
}

/// Polls `path` until `ready` holds of its JSON answer (10 s at most); the answer, and how many
/// requests it took.
async fn until(s: &TestServer, path: &str, ready: impl Fn(&Value) -> bool) -> (Value, u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut polls = 0;
    loop {
        let (status, out) = s.get(path).await;
        polls += 1;
        if status == StatusCode::OK && ready(&out) {
            return (out, polls);
        }
        assert!(Instant::now() < deadline, "{path}: still {status} {out}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn object_view(s: &TestServer, name: &str) -> Value {
    let path = format!("/classes/Probe/objects/by-name/{name}");
    s.admin_call(Method::GET, &path, Vec::new()).await.1
}

/// A timer set in one event fires after the response, as an event of its own whose write is
/// kept; the object stays in memory meanwhile though its idle timeout is shorter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_fires_after_the_response_and_keeps_the_object_in_memory() {
    let s = probe(|c| c.idle_timeout = Duration::from_millis(100)).await;
    assert_eq!(s.get("/objects/Probe/t/fired").await.1["hits"], 1);
    let (status, out) = s.get("/objects/Probe/t/timer?ms=600").await;
    assert_eq!((status, out), (StatusCode::OK, json!({"set": 600})));
    assert_eq!(
        s.get("/objects/Probe/t/fired").await.1["fired"],
        Value::Null
    );
    let (out, polls) = until(&s, "/objects/Probe/t/fired", |o| !o["fired"].is_null()).await;
    let late = out["fired"]["late"].as_i64().unwrap();
    assert!((0..2000).contains(&late), "fired {late} ms after its time");
    assert_eq!(
        out["hits"],
        2 + polls,
        "the object kept its memory while its timer was pending: {out}"
    );
    // With nothing pending, it goes idle as usual.
    eventually(Duration::from_secs(5), || async {
        (object_view(&s, "t").await["in_memory"] == false).then_some(())
    })
    .await;
}

/// A handler that awaits a timer answers once it fired; an interval runs n times then clears
/// itself; a cleared timeout never runs; setTimeout with a bad callback throws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_wait_on_timers_and_intervals_repeat() {
    let s = probe(|_| {}).await;
    let started = Instant::now();
    let (status, out) = s.get("/objects/Probe/s/sleep?ms=300").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert!(out["slept"].as_i64().unwrap() >= 300, "{out}");
    assert!(started.elapsed() >= Duration::from_millis(300));

    assert_eq!(
        s.get("/objects/Probe/i/interval?n=3&ms=50").await.0,
        StatusCode::OK
    );
    let (out, _) = until(&s, "/objects/Probe/i/ticks", |o| o["ticks"] == 3).await;
    assert_eq!(out["cancelled"], false, "a cleared timeout ran");
    let (_, out) = s.get("/objects/Probe/g/global-timer").await;
    assert!(
        out["message"]
            .as_str()
            .unwrap()
            .contains("must be a function"),
        "{out}"
    );
}

/// `waitUntil` keeps work running after the response: a chain on a timer, and an outgoing
/// request still in flight when the event ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_work_finishes_after_the_response() {
    let upstream = slow_upstream(Duration::from_millis(300)).await;
    let s = probe(|_| {}).await;
    let policy = json!({"classes": {"Probe": {"allowed_hosts": [upstream.to_string()]}}});
    let (status, body) = s
        .admin_call(Method::PUT, "/outbound", policy.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let started = Instant::now();
    let path = format!("/objects/Probe/w/wait-until?url=http://{upstream}/x");
    assert_eq!(
        s.get(&path).await,
        (StatusCode::OK, json!({"waiting": true}))
    );
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "the response waited for the work"
    );
    let (out, _) = until(&s, "/objects/Probe/w/waited", |o| {
        o["waited"] == true && !o["fetched"].is_null()
    })
    .await;
    assert_eq!(out["fetched"], "pong");
}

/// `blockConcurrencyWhile` on a timer, not awaited by its event: the object's next event starts
/// only once the callback finished.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn block_concurrency_while_holds_the_next_event_until_its_timer_fired() {
    let s = probe(|_| {}).await;
    let started = Instant::now();
    assert_eq!(
        s.get("/objects/Probe/b/block?ms=400").await.1,
        json!({"ready": false})
    );
    assert_eq!(
        s.get("/objects/Probe/b/ready").await.1,
        json!({"ready": true})
    );
    assert!(started.elapsed() >= Duration::from_millis(400));
}

/// Background work that no event from outside renews is cut at the background limit: the
/// instance goes, the timer with it, and the object leaves memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_work_is_cut_at_the_limit() {
    let s = probe(|c| {
        c.idle_timeout = Duration::from_millis(100);
        c.limits.background = Duration::from_millis(300);
    })
    .await;
    assert_eq!(
        s.get("/objects/Probe/c/timer?ms=1500").await.0,
        StatusCode::OK
    );
    assert_eq!(object_view(&s, "c").await["in_memory"], true);
    eventually(Duration::from_secs(5), || async {
        (object_view(&s, "c").await["in_memory"] == false).then_some(())
    })
    .await;
    // Cut before its time: the timer never ran, and waking the object does not revive it.
    let out = s.get("/objects/Probe/c/fired").await.1;
    assert_eq!(out["fired"], Value::Null, "{out}");
}

/// An HTTP server that answers "pong" to every request after `delay`.
async fn slow_upstream(delay: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                tokio::time::sleep(delay).await;
                let answer =
                    "HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\npong";
                let _ = stream.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}
