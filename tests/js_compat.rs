//! The JS SDK's Cloudflare API around the examples' (the JS probe): WebSockets of the standard
//! API (`ws.accept()` with listeners; the object kept in memory while one is open), `env` that
//! enumerates its vars and bindings, `request.clone()` keeping every header, `request.cf`,
//! `CF-Connecting-IP`, `WebSocket.READY_STATE_*`.

mod common;

use std::time::Duration;

use common::{TestServer, eventually};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

async fn probe(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    common::js_probe_server(adjust).await
}

async fn text(ws: &mut common::WsClient) -> String {
    match common::ws_next(ws).await {
        Message::Text(text) => text.to_string(),
        other => panic!("expected text, got {other:?}"),
    }
}

/// A socket accepted with `ws.accept()` gets its messages through its listeners (which may wait
/// on timers), keeps the object in memory past its hibernation and idle times while it is open,
/// and its `close` listener runs when the client leaves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standard_websockets_reach_their_listeners_and_hold_the_object() {
    let s = probe(|c| {
        c.idle_timeout = Duration::from_millis(100);
        c.hibernate_after = Duration::from_millis(100);
    })
    .await;
    let mut ws = common::ws_connect(&s, "/objects/Probe/std/ws-standard").await;
    assert_eq!(text(&mut ws).await, "welcome");
    ws.send(Message::text("one")).await.unwrap();
    assert_eq!(text(&mut ws).await, "echo one (1 heard, open=true)");
    // Longer than the idle and hibernation times: the listeners (memory) are still there.
    let view = "/classes/Probe/objects/by-name/std";
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, object) = s.admin_call(Method::GET, view, Vec::new()).await;
    assert_eq!(object["in_memory"], true, "{object}");
    ws.send(Message::text("sleep")).await.unwrap();
    assert_eq!(text(&mut ws).await, "echo sleep (2 heard, open=true)");
    ws.close(None).await.unwrap();
    let closed = eventually(Duration::from_secs(10), || async {
        let (_, out) = s.get("/objects/Probe/std/standard-closed").await;
        (!out["closed"].is_null()).then_some(out["closed"].clone())
    })
    .await;
    assert_eq!(closed["code"], 1005, "{closed}");
    // Closed, it lets the object go.
    eventually(Duration::from_secs(10), || async {
        let (_, object) = s.admin_call(Method::GET, view, Vec::new()).await;
        (object["in_memory"] == false).then_some(())
    })
    .await;
}

/// `env` enumerates, `request.clone()` keeps every header, `request.cf` and `CF-Connecting-IP`
/// are there (the latter set by the runtime, whatever the client sent); no global `location`,
/// names kept, `idFromString` and `Response.redirect` throw Cloudflare's error types.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_requests_and_constants_behave_as_on_cloudflare() {
    let s = probe(|_| {}).await;
    let (status, body) = s
        .admin_call(
            Method::PUT,
            "/vars",
            json!({"vars": {"GREETING": "hello"}})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let http = reqwest::Client::new();
    let response = http
        .get(format!("{}/objects/Probe/c/compat", s.ingress))
        .header("x-custom", "kept")
        .header("cf-connecting-ip", "6.6.6.6")
        .send()
        .await
        .unwrap();
    let out: Value = response.json().await.unwrap();
    assert_eq!(
        out,
        json!({
            "envKeys": ["COUNTER", "GREETING", "PROBE"],
            "spreadHasCounter": true,
            "cloneKeepsHeaders": "kept",
            "ip": "127.0.0.1",
            "colo": "duro",
            "country": null,
            "latitude": null,
            "readyStates": [0, 1, 2, 3],
            // Issue 36: no `location` global (libraries feature-test it at load), class names
            // kept through the bundle, Cloudflare's error types.
            "location": "undefined",
            "decoratedName": "Decorated",
            "idFromStringInvalid": "TypeError",
            "redirect200": "RangeError",
            "redirect301": "https://example.com/",
        })
    );
}

/// `request.cf` says where the client is as the server was told: the place `wrangler dev` gives
/// (`duro dev`'s default), or a Cloudflare proxy's visitor location headers — never what a
/// client puts in the runtime's own header.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_cf_says_where_the_client_is_as_configured() {
    use duro::config::ClientLocation;
    let http = reqwest::Client::new();
    let cf = async |s: &TestServer, headers: &[(&str, &str)]| {
        let mut request = http.get(format!("{}/objects/Probe/c/compat", s.ingress));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let out: Value = request.send().await.unwrap().json().await.unwrap();
        (
            out["colo"].clone(),
            out["country"].clone(),
            out["latitude"].clone(),
        )
    };
    let forged = ("duro-cf", r#"{"country":"XX"}"#);
    let s = probe(|c| c.client_location = ClientLocation::Placeholder).await;
    assert_eq!(
        cf(&s, &[forged]).await,
        (json!("DFW"), json!("US"), json!("30.27130"))
    );
    let s = probe(|c| c.client_location = ClientLocation::Headers).await;
    let proxy = [
        ("cf-ipcountry", "DE"),
        ("cf-iplatitude", "52.52000"),
        ("cf-ray", "8f1e2d3c4b5a6978-FRA"),
    ];
    assert_eq!(
        cf(&s, &proxy).await,
        (json!("FRA"), json!("DE"), json!("52.52000"))
    );
    assert_eq!(
        cf(&s, &[forged]).await,
        (json!("duro"), json!(null), json!(null))
    );
}

/// Out of memory in a shared JS instance behaves as the memory limit documents, although the JS
/// engine reports it as an exception the code can catch: the event fails with "memory limit
/// exceeded", the instance is reset (the object's memory starts over) and its memory returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_in_a_shared_instance_resets_it() {
    let s = probe(|c| c.limits.instance_memory_bytes = 96 << 20).await;
    for hits in [1, 2] {
        let (status, body) = s.get("/objects/Probe/a/memory").await;
        assert_eq!((status, body), (StatusCode::OK, json!({"hits": hits})));
    }
    let (status, body) = s.get("/objects/Probe/a/hog").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("memory limit exceeded"),
        "{body}"
    );
    let (status, body) = s.get("/objects/Probe/a/memory").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"hits": 1})));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.metric("duro_instance_memory_bytes").await > (80 << 20) as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the memory was not returned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A mate spinning in a shared instance holds only itself: the instance's other objects move to
/// another instance after the bound (`mate_wait`) instead of waiting out its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_mate_does_not_hold_its_neighbours() {
    let s = probe(|_| {}).await;
    // More objects than the pool has instances: every instance holds several.
    let names: Vec<String> = (0..12).map(|i| format!("n{i}")).collect();
    for name in &names {
        let (status, _) = s.get(&format!("/objects/Probe/{name}/memory")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let spinner = {
        let (http, ingress) = (s.http.clone(), s.ingress.clone());
        tokio::spawn(async move {
            http.get(format!("{ingress}/objects/Probe/n0/spin-for?ms=4000"))
                .send()
                .await
                .unwrap()
                .status()
        })
    };
    // The spin has begun (or the mates run first, which holds as well).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    let mates = names[1..].iter().map(|name| {
        let (http, url) = (
            s.http.clone(),
            format!("{}/objects/Probe/{name}/memory", s.ingress),
        );
        async move {
            let t = std::time::Instant::now();
            let status = http.get(url).send().await.unwrap().status();
            (status, t.elapsed())
        }
    });
    let answers = futures_util::future::join_all(mates).await;
    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap();
    eprintln!("slowest mate while n0 spins: {slowest:?}");
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK));
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the mates waited on the spinner: {answers:?}"
    );
    assert_eq!(spinner.await.unwrap(), StatusCode::OK);
}

/// Web and Workers APIs as Cloudflare has them: `signal.throwIfAborted()` throws the reason (a
/// catchable error, not a trap), a FormData file keeps its bytes, `scheduler.wait`,
/// `namespace.jurisdiction()`, `structuredClone`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_apis_behave_as_on_cloudflare() {
    let s = probe(|_| {}).await;
    let (status, out) = s.get("/objects/Probe/w/web-apis").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out["notAborted"], Value::Null);
    assert_eq!(
        out["aborted"],
        json!({"name": "RangeError", "message": "stop"})
    );
    assert_eq!(
        out["abortedDefault"],
        json!({"name": "AbortError", "message": "This operation was aborted"})
    );
    assert_eq!(out["formFile"], json!([true, "f.bin", [0, 128, 255]]));
    assert_eq!(out["formRoundTrip"], json!([0, 128, 255]));
    assert_eq!(out["waited"], true);
    assert_eq!(out["jurisdiction"], true);
    assert_eq!(out["structuredClone"], 3);

    // A client's multipart upload reaches the object's `request.formData()` byte for byte.
    let mut body =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.bin\"\r\n\
Content-Type: application/octet-stream\r\n\r\n"
            .to_vec();
    body.extend_from_slice(&[0, 128, 255, 13, 10]);
    body.extend_from_slice(
        b"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"field\"\r\n\r\nhello\r\n--XyZ--\r\n",
    );
    let answer = reqwest::Client::new()
        .post(format!("{}/objects/Probe/w/form-echo", s.ingress))
        .header("content-type", "multipart/form-data; boundary=XyZ")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(
        answer.json::<Value>().await.unwrap(),
        json!({"name": "a.bin", "bytes": [0, 128, 255, 13, 10], "field": "hello"})
    );
}

/// Cloudflare's input gate is open while a handler awaits anything but storage: a fetch that
/// waits for a promise only another event settles is released by a request, an RPC call, the
/// object's alarm or a socket's message, each run beside it — in the same instance (its memory
/// counts both requests) — and a handler waiting
/// inside a storage transaction, where nothing may run beside it, fails with an error that says
/// so instead of resetting the instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_run_beside_a_handler_that_waits() {
    let s = probe(|_| {}).await;
    assert_eq!(s.get("/objects/Probe/s/memory").await.1, json!({"hits": 1}));
    // A request releases it (polled until the waiting fetch has set its promise).
    let release = async {
        eventually(Duration::from_secs(30), || async {
            let (status, out) = s.get("/objects/Probe/s/release").await;
            (status == StatusCode::OK).then_some(out)
        })
        .await
    };
    let (stuck, released) = tokio::join!(s.get("/objects/Probe/s/stuck"), release);
    assert_eq!(stuck, (StatusCode::OK, json!({"released": true})));
    assert_eq!(released, json!({"waiting": true}));
    assert_eq!(s.get("/objects/Probe/s/memory").await.1, json!({"hits": 2}));

    // So does an RPC call from another object.
    let release = async {
        eventually(Duration::from_secs(30), || async {
            let (status, out) = s.get("/objects/Probe/t/release-by-rpc?to=s").await;
            (status == StatusCode::OK && out["released"] == true).then_some(())
        })
        .await
    };
    let (stuck, ()) = tokio::join!(s.get("/objects/Probe/s/stuck"), release);
    assert_eq!(stuck, (StatusCode::OK, json!({"released": true})));

    // The object's alarm fires beside a fetch that waits for it (cleared as it runs).
    let (status, fired) = s.get("/objects/Probe/a/await-alarm").await;
    assert_eq!(status, StatusCode::OK, "{fired}");
    assert_eq!(
        fired,
        json!({"fired": true, "retryCount": 0, "alarm": null})
    );

    // A socket's message runs beside a fetch that waits for it (sent until one lands while the
    // fetch waits), and its answer leaves at once.
    let mut ws = common::ws_connect(&s, "/objects/Probe/m/ws").await;
    let waiting = s.get("/objects/Probe/m/await-message");
    tokio::pin!(waiting);
    let heard = loop {
        ws.send(Message::text("release hi")).await.unwrap();
        assert_eq!(text(&mut ws).await, "released hi");
        if let Ok(answer) = tokio::time::timeout(Duration::from_millis(200), &mut waiting).await {
            break answer;
        }
    };
    assert_eq!(heard, (StatusCode::OK, json!({"said": "hi"})));

    // A call that comes back: r -> v (RPC) -> r (fetch) while r waits on v.
    let (status, out) = s.get("/objects/Probe/r/reenter?via=v").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(out, json!({"before": 1, "back": {"hits": 2}}));

    // Inside a transaction nothing runs beside it: it fails, and the instance stays.
    let (status, body) = s.get("/objects/Probe/s/stuck-in-transaction").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains("storage transaction waits"), "{body}");
    assert_eq!(s.get("/objects/Probe/s/memory").await.1, json!({"hits": 3}));
}

/// `crypto.subtle`'s algorithms the JS engine lacks, as Cloudflare has them: AES-GCM (with
/// additional data; a tampered ciphertext fails with OperationError), AES-CBC, AES-CTR, AES-KW
/// (wrapKey/unwrapKey), PBKDF2 and HKDF (deriveBits, deriveKey), generateKey and JWK export —
/// each answer the one Node's WebCrypto gives for the same input (HKDF's is RFC 5869's first
/// test vector); the engine's own HMAC still signs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_crypto_has_aes_pbkdf2_and_hkdf() {
    let s = probe(|_| {}).await;
    let (status, out) = s.get("/objects/Probe/c/webcrypto").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    let pbkdf2 = "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43";
    assert_eq!(
        out,
        json!({
            "gcm": "6d8f36b983b494f33ecd0690416d0a18cb237e6563bb16df4977",
            "opened": "hello duro",
            "tampered": "OperationError",
            "cbc": "48125aa04dc8198b5458d0da9af93d84",
            "ctr": "aec4575be8af3ff71d20",
            "wrapped": "0e7808f506f2c3e7aa6edad793ac4495b093eb482e5c7ca9c170c9faa07dc0cbbb87512e19fd4092",
            "unwrapped": "hello duro",
            "pbkdf2": pbkdf2,
            "derived": pbkdf2,
            "hkdf": "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
            "generated": [true, "A128GCM", 128],
            "hmac": 32,
        })
    );
}

/// `crypto.subtle`'s curves, which the JS engine lacks (its ECDSA import trapped the instance):
/// Ed25519 signs and verifies RFC 8032's first vector, X25519 derives RFC 7748's shared secret,
/// ECDSA P-256 verifies a signature Node's WebCrypto made and its own through a JWK round trip,
/// ECDH P-384's two sides agree, HMAC keys are generated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_crypto_has_the_curves() {
    let s = probe(|_| {}).await;
    let (status, out) = s.get("/objects/Probe/c/webcrypto-curves").await;
    assert_eq!(status, StatusCode::OK, "{out}");
    assert_eq!(
        out,
        json!({
            "ed25519": [true, true, false],
            "x25519": "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742",
            "ecdsaNode": true,
            "ecdsa": [64, true, false, "EC", "P-256", true, "private"],
            "ecdh": true,
            "hmac": "HMAC",
        })
    );
}
