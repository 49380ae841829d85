//! The listeners under hostile clients, and `duro serve`'s checks: header, body and keep-alive
//! timeouts, the connection cap (the admin API stays reachable), a shutdown that ends at its
//! drain deadline with requests still open, and flag values refused with the flag's name.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Process, TestServer};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(url: &str) -> String {
    url.trim_start_matches("http://").to_string()
}

/// Waits until the server closes `stream` (EOF or reset); fails after `deadline`. Returns what
/// the server sent before closing.
async fn closed_by_server(stream: &mut TcpStream, deadline: Duration) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 1024];
    let started = Instant::now();
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {deadline:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return String::from_utf8_lossy(&received).into_owned(),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_silent_and_idle_connections_are_closed() {
    let s = TestServer::start_with(|c| {
        c.http.header_timeout = Duration::from_millis(300);
        c.http.body_timeout = Duration::from_millis(300);
    })
    .await;
    s.deploy("Counter", "duro-example-counter").await;
    let ingress = addr(&s.ingress);
    // Slowloris: many connections that never finish their headers.
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&ingress).await.unwrap();
        stream
            .write_all(b"GET /objects/Counter/a/get HTTP/1.1\r\nhost: x\r\nx-slow:")
            .await
            .unwrap();
        slow.push(stream);
    }
    // A silent connection, and an idle keep-alive one after a complete request.
    let mut silent = TcpStream::connect(&ingress).await.unwrap();
    let mut idle = TcpStream::connect(&ingress).await.unwrap();
    idle.write_all(b"GET /objects/Counter/a/get HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // Meanwhile the server answers everyone else.
    assert_eq!(
        s.post("/objects/Counter/a/increment").await,
        (StatusCode::OK, json!({"count": 1}))
    );
    for stream in &mut slow {
        closed_by_server(stream, Duration::from_secs(10)).await;
    }
    closed_by_server(&mut silent, Duration::from_secs(10)).await;
    let answered = closed_by_server(&mut idle, Duration::from_secs(10)).await;
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    // A body that stops coming is 408.
    let mut stream = TcpStream::connect(&ingress).await.unwrap();
    stream
        .write_all(b"POST /objects/Counter/a/increment HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let answer = closed_by_server(&mut stream, Duration::from_secs(10)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert_eq!(
        s.get("/objects/Counter/a/get").await,
        (StatusCode::OK, json!({"count": 1}))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_clients_get_503_and_the_admin_api_stays_reachable() {
    let s = TestServer::start_with(|c| c.http.max_connections = 5).await;
    s.deploy("Counter", "duro-example-counter").await;
    let ingress = addr(&s.ingress);
    let mut held = Vec::new();
    for _ in 0..5 {
        let mut stream = TcpStream::connect(&ingress).await.unwrap();
        stream
            .write_all(b"GET /objects/Counter/a/get HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 12];
        stream.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"HTTP/1.1 200");
        held.push(stream);
    }
    let mut extra = TcpStream::connect(&ingress).await.unwrap();
    let refused = closed_by_server(&mut extra, Duration::from_secs(10)).await;
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.contains("too many open connections"), "{refused}");
    assert!(s.metric("duro_connections_refused_total").await >= 1.0);
    let (status, _) = s.admin_call(reqwest::Method::GET, "/healthz", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    // A closed connection frees its place.
    held.pop();
    common::eventually(Duration::from_secs(10), || async {
        let response = reqwest::Client::new()
            .get(format!("{}/objects/Counter/a/get", s.ingress))
            .send()
            .await
            .ok()?;
        (response.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_requests_still_open_exits_at_the_drain_deadline() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = Process::start_with(
        temp.path(),
        &["--drain-timeout-ms", "500", "--body-timeout-ms", "600000"],
        Stdio::null(),
    );
    let ingress = addr(&process.ingress);
    // 100 requests whose bodies never finish arriving.
    let mut open = Vec::new();
    for i in 0..100 {
        let mut stream = TcpStream::connect(&ingress).await.unwrap();
        let head = format!(
            "POST /objects/Counter/c{i}/increment HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\npartial"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        open.push(stream);
    }
    // They reached the server (a request behind them is answered), then SIGTERM.
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{}/objects/Counter/x/increment", process.ingress))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    process.signal(nix::sys::signal::Signal::SIGTERM);
    let started = Instant::now();
    loop {
        if let Some(status) = process.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "duro did not exit within 15 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(open);
}

#[test]
fn bad_flag_values_are_refused_with_the_flags_name() {
    let temp = tempfile::tempdir().unwrap();
    for (args, flag) in [
        (&["--max-live-objects", "1000000"][..], "--max-live-objects"),
        (&["--max-live-objects", "0"][..], "--max-live-objects"),
        (
            &["--instance-memory-mib", "18446744073709551615"][..],
            "--instance-memory-mib",
        ),
        (&["--event-cpu-ms", "0"][..], "--event-cpu-ms"),
        (&["--memory-budget-mib", "1"][..], "--memory-budget-mib"),
        (&["--max-connections", "0"][..], "--max-connections"),
    ] {
        let output = common::serve_command(&[], temp.path())
            .args(args)
            .output()
            .expect("running duro");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_file_descriptor_limit_the_admin_api_stays_reachable() {
    let temp = tempfile::tempdir().unwrap();
    // 1,024 descriptors: the ingress cap is lowered to fit beside the admin listener's.
    let wrapper = ["sh", "-c", "ulimit -n 1024; exec \"$0\" \"$@\""];
    let process = Process::start_under(&wrapper, temp.path(), &[], Stdio::null());
    let ingress = addr(&process.ingress);
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..700 {
        let mut stream = TcpStream::connect(&ingress).await.unwrap();
        stream
            .write_all(b"GET /objects/Counter/a/get HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        if stream.read_exact(&mut head).await.is_ok() && &head == b"HTTP/1.1 503" {
            refused += 1;
        }
        open.push(stream);
    }
    assert!(
        refused > 0,
        "700 connections fit under a 1,024 descriptor limit?"
    );
    let http = reqwest::Client::new();
    let health = http
        .get(format!("{}/healthz", process.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(open);
}

#[test]
fn a_port_in_use_is_named_once_with_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let temp = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["serve", "--listen", &addr, "--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(temp.path())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.matches("in use").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("choose another with --listen"), "{stderr}");
}

#[test]
fn a_data_dir_in_use_and_a_server_not_running_say_what_to_do() {
    let temp = tempfile::tempdir().unwrap();
    let first = Process::start(temp.path());
    let second = common::serve_command(&[], temp.path())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(stderr.contains("is in use by another duro"), "{stderr}");
    assert_eq!(stderr.matches("locked").count(), 1, "said once: {stderr}");
    drop(first);

    let unreachable = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["classes", "--admin-url", "http://127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(stderr.contains("is `duro serve` running?"), "{stderr}");
}

/// A server started closed (as `serve --config` starts) routes nothing until it is opened: a
/// request sent before the class is deployed is answered 503 with `Retry-After` at once, never
/// 404 and never held; once opened, the class answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingress_serves_only_once_opened() {
    let temp = tempfile::tempdir().unwrap();
    let server = duro::start_closed(common::config(temp.path()))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = format!(
        "http://{}/objects/Counter/early/increment",
        server.ingress_addr()
    );
    let admin = |path: &str| format!("http://{}{path}", server.admin_addr());
    // Until it is opened, the ingress answers at once that it is starting (issue 35: it held
    // clients through a long compile), and the admin API says alive but not ready.
    let early = http.post(&url).send().await.unwrap();
    assert_eq!(early.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(early.headers().contains_key("retry-after"));
    let said: serde_json::Value = early.json().await.unwrap();
    assert!(
        said["error"].as_str().unwrap().contains("starting"),
        "{said}"
    );
    let status = |path: &'static str| {
        let (http, url) = (http.clone(), admin(path));
        async move { http.get(url).send().await.unwrap().status() }
    };
    assert_eq!(status("/healthz").await, StatusCode::OK);
    assert_eq!(status("/readyz").await, StatusCode::SERVICE_UNAVAILABLE);
    let counter = common::read_guest("duro-example-counter");
    let name = duro::ids::ClassName::parse("Counter").unwrap();
    server.deploy(name, counter.into()).await.unwrap();
    server.open_ingress();
    let response = http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"count": 1})
    );
    assert_eq!(status("/readyz").await, StatusCode::OK);
    server.shutdown().await;
}
