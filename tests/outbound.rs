//! Outgoing HTTP (`wasi:http/outgoing-handler`) against a local upstream server: an allowed host
//! answers, any other is refused before a connection is made (objects and the worker alike);
//! the policy comes from the deploy config or the admin API; a slow upstream hits the timeout and
//! a large body the size limit; an object's writes made before a fetch are durable before the
//! request leaves (the upstream sees it, duro is killed, the writes are there after a restart).

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Process, TestServer, guest};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A local HTTP server: `/hello` answers, `/slow` never does, `/big?n=N` sends N bytes with a
/// content-length and `/stream?n=N` without one. Every request's path is recorded and announced.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    arrivals: mpsc::UnboundedReceiver<String>,
}

type UpstreamBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

impl Upstream {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (announce, arrivals) = mpsc::unbounded_channel();
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let record = record.clone();
                let announce = announce.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let record = record.clone();
                        let announce = announce.clone();
                        async move { Ok::<_, Infallible>(answer(request, record, announce).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self {
            addr,
            seen,
            arrivals,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    record: Arc<Mutex<Vec<String>>>,
    announce: mpsc::UnboundedSender<String>,
) -> hyper::Response<UpstreamBody> {
    let path = request.uri().path().to_string();
    let n: usize = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("n="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    record.lock().unwrap().push(path.clone());
    let _ = announce.send(path.clone());
    let full = |body: Vec<u8>| Full::new(Bytes::from(body)).boxed();
    match path.as_str() {
        "/hello" => hyper::Response::new(full(b"hello from upstream".to_vec())),
        "/slow" => std::future::pending().await,
        "/big" => hyper::Response::new(full(vec![b'x'; n])),
        "/stream" => {
            let chunks = futures_util::stream::iter(
                (0..n.div_ceil(1024))
                    .map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'y'; 1024])))),
            );
            hyper::Response::new(StreamBody::new(chunks).boxed())
        }
        _ => {
            let mut response = hyper::Response::new(full(b"no such path".to_vec()));
            *response.status_mut() = hyper::StatusCode::NOT_FOUND;
            response
        }
    }
}

async fn set_outbound(s: &TestServer, document: Value) {
    let (status, body) = s
        .admin_call(Method::PUT, "/outbound", document.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Object `a` of class `Call` GETs `url`: its answer (`{"status", "body"}`, or 502 `{"error"}`).
async fn object_fetch(s: &TestServer, url: &str) -> (StatusCode, Value) {
    s.get(&format!("/objects/Call/a/fetch?url={url}")).await
}

fn error_of(answer: &Value) -> &str {
    answer["error"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_hosts_are_reached_and_others_refused_for_objects_and_the_worker() {
    let allowed = Upstream::start().await;
    let other = Upstream::start().await;
    let s = TestServer::start().await;
    s.deploy("Call", "call-probe").await;
    s.deploy_worker("worker-probe", true).await;
    // No policy: nothing may be fetched.
    let (status, answer) = object_fetch(&s, &allowed.url("/hello")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert!(error_of(&answer).contains("allowed_hosts"), "{answer}");
    set_outbound(
        &s,
        json!({
            "classes": {"Call": {"allowed_hosts": [allowed.addr.to_string()]}},
            "worker": {"allowed_hosts": [format!("http://{}", allowed.addr)]},
        }),
    )
    .await;
    assert_eq!(object_fetch(&s, "x").await.0, StatusCode::BAD_GATEWAY);
    let (status, answer) = object_fetch(&s, &allowed.url("/hello")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer,
        json!({"status": 200, "body": "hello from upstream"})
    );
    let (status, answer) = object_fetch(&s, &allowed.url("/none")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["status"], 404, "any status is an answer");
    // The worker, through its own policy.
    let (status, answer) = s
        .get(&format!("/fetch?url={}", allowed.url("/hello")))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer, json!("hello from upstream"));
    // Another port of the same host is another host: refused, and never connected to.
    for path in [
        format!("/objects/Call/a/fetch?url={}", other.url("/hello")),
        format!("/fetch?url={}", other.url("/hello")),
        // The worker's rule names the scheme.
        format!("/fetch?url=https://{}/hello", allowed.addr),
    ] {
        let (status, answer) = s.get(&path).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {answer}");
        assert!(
            error_of(&answer).contains("fetch: the host is not allowed"),
            "{answer}"
        );
    }
    assert!(other.seen().is_empty(), "{:?}", other.seen());
    assert_eq!(allowed.seen(), ["/hello", "/none", "/hello"]);
    // The policy is kept across a restart.
    let (config, temp) = s.stop().await;
    let s = TestServer::start_in(config).await;
    let (status, answer) = object_fetch(&s, &allowed.url("/hello")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        s.admin_call(Method::GET, "/outbound", Vec::new()).await.1["classes"]["Call"]["allowed_hosts"],
        json!([allowed.addr.to_string()])
    );
    // A malformed policy changes nothing.
    let (status, body) = s
        .admin_call(
            Method::PUT,
            "/outbound",
            json!({"classes": {"Call": {"allowed_hosts": ["ftp://x"]}}})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("class Call"),
        "{body}"
    );
    assert_eq!(
        object_fetch(&s, &allowed.url("/hello")).await.0,
        StatusCode::OK
    );
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_times_out_and_a_large_body_is_cut_at_the_limit() {
    let upstream = Upstream::start().await;
    let s = TestServer::start().await;
    s.deploy("Call", "call-probe").await;
    set_outbound(
        &s,
        json!({"classes": {"Call": {
            "allowed_hosts": [upstream.addr.to_string()],
            "timeout_ms": 500,
            "max_response_bytes": 100_000,
        }}}),
    )
    .await;
    let started = Instant::now();
    let (status, answer) = object_fetch(&s, &upstream.url("/slow")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{answer}");
    assert!(error_of(&answer).contains("timeout"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // At the limit: whole (the stream sends whole KiB chunks).
    for (path, bytes) in [("/big?n=100000", 100_000), ("/stream?n=99328", 99_328)] {
        let (status, answer) = object_fetch(&s, &upstream.url(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        assert_eq!(answer["body"].as_str().unwrap().len(), bytes, "{path}");
    }
    for path in ["/big?n=100001", "/stream?n=200000"] {
        let (status, answer) = object_fetch(&s, &upstream.url(path)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}: {answer}");
        // Refused at the head (content-length) or while streaming.
        let error = error_of(&answer);
        assert!(
            error.contains("limit") && error.contains("100000"),
            "{path}: {answer}"
        );
    }
    // The object and the server serve on.
    let (status, answer) = object_fetch(&s, &upstream.url("/hello")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_objects_writes_are_durable_before_its_fetch_leaves() {
    let mut upstream = Upstream::start().await;
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("duro.jsonc");
    let call = guest("call-probe");
    std::fs::write(
        &config,
        json!({
            "durable_objects": {"bindings": [{
                "name": "PROBE", "class_name": "Call", "component": call,
                "outbound": {"allowed_hosts": [upstream.addr.to_string()]},
            }]},
            "migrations": [{"tag": "v1", "new_classes": ["Call"]}],
        })
        .to_string(),
    )
    .unwrap();
    let data = temp.path().join("data");
    let config_arg = config.to_str().unwrap();
    let mut process = Process::start_with(
        &data,
        &["--config", config_arg, "--checkpoint-interval-ms", "60000"],
        std::process::Stdio::null(),
    );
    let http = reqwest::Client::new();
    // The object writes 64 KiB, then fetches `/slow`: when the upstream sees the request, the
    // write must already be durable. Kill -9 at that moment and look after a restart.
    let url = format!(
        "{}/objects/Call/w/write-and-fetch?kib=64&url={}",
        process.ingress,
        upstream.url("/slow")
    );
    let pending = tokio::spawn({
        let http = http.clone();
        async move { http.get(url).send().await }
    });
    let arrived = tokio::time::timeout(Duration::from_secs(30), upstream.arrivals.recv())
        .await
        .expect("the fetch reached the upstream");
    assert_eq!(arrived.as_deref(), Some("/slow"));
    process.kill_9();
    assert!(pending.await.unwrap().is_err(), "killed before answering");
    let process = Process::start_with(
        &data,
        &["--config", config_arg],
        std::process::Stdio::null(),
    );
    let answer = common::get_json(&http, &format!("{}/objects/Call/w/blob", process.ingress)).await;
    assert_eq!(answer, json!({"bytes": 64 * 1024}));
}
