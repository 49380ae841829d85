//! Logs: one access line per ingress request (`--access-log`) naming the objects it reached
//! (directly or through the worker), JSON lines with `--log-format json`, and guest output and handler errors tagged with the object's class, name and id.

mod common;

use std::process::Stdio;

use common::Process;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_requests_guest_lines_and_handler_errors() {
    let temp = tempfile::tempdir().unwrap();
    let bad = format!("Bad={}", common::guest("misbehave").display());
    let args = ["--deploy", &bad, "--access-log", "--log-format", "json"];
    let mut process = Process::start_with(temp.path(), &args, Stdio::piped());
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", process.ingress);
    let increment = http.post(url("/objects/Counter/logged/increment"));
    assert_eq!(increment.send().await.unwrap().status(), StatusCode::OK);
    let talk = http.get(url("/objects/Bad/talker/log"));
    assert_eq!(talk.send().await.unwrap().status(), StatusCode::OK);
    // Through the worker: the line names the object the worker's stub call reached.
    let admin = |path: &str| format!("{}{path}", process.admin);
    let bind = http
        .put(admin("/bindings"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(r#"{"COUNTER":"Counter","ROOM":"ChatRoom"}"#);
    assert_eq!(bind.send().await.unwrap().status(), StatusCode::OK);
    let worker = common::read_guest("duro-example-worker");
    let deployed = http
        .put(admin("/worker?object_routes=true"))
        .header(reqwest::header::CONTENT_TYPE, "application/wasm")
        .body(worker);
    assert!(deployed.send().await.unwrap().status().is_success());
    let routed = http.post(url("/api/counters/routed/increment"));
    assert_eq!(routed.send().await.unwrap().status(), StatusCode::OK);
    let fail = http.get(url("/objects/Bad/failing/fail?why=test"));
    assert_eq!(
        fail.send().await.unwrap().status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    process.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(process.child.wait().expect("duro exits").success());
    let mut log = String::new();
    std::io::Read::read_to_string(&mut process.child.stderr.take().unwrap(), &mut log).unwrap();

    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    let find = |what: &str, matches: &dyn Fn(&Value) -> bool| {
        lines
            .iter()
            .find(|line| matches(line))
            .unwrap_or_else(|| panic!("no {what} line in:\n{log}"))
            .clone()
    };
    let access = find("access", &|l| {
        l["target"] == "duro::access" && l["path"] == "/objects/Counter/logged/increment"
    });
    assert_eq!(access["method"], "POST");
    assert_eq!(access["status"], 200);
    assert_eq!(access["object"], "Counter/logged");
    let routed = find("access through the worker", &|l| {
        l["target"] == "duro::access" && l["path"] == "/api/counters/routed/increment"
    });
    assert_eq!(
        (&routed["status"], &routed["object"]),
        (&200.into(), &"Counter/routed".into())
    );
    assert!(
        access["ms"].as_str().unwrap().parse::<f64>().is_ok(),
        "{access}"
    );
    let failed = find("access of the failure", &|l| {
        l["target"] == "duro::access" && l["path"] == "/objects/Bad/failing/fail?why=test"
    });
    assert_eq!(failed["status"], 500);

    let guest = find("guest", &|l| {
        l["message"] == "hello from the guest's stdout"
    });
    assert_eq!(guest["target"], "duro::guest");
    assert_eq!(guest["class"], "Bad");
    assert_eq!(guest["object"], "talker", "the object's name");
    assert_eq!(guest["id"].as_str().unwrap().len(), 64, "{guest}");
    assert_eq!(guest["stream"], "stdout");

    let error = find("handler error", &|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed on purpose"))
    });
    assert_eq!(error["class"], "Bad");
    assert_eq!(error["object"], "failing");
    assert_eq!(error["stream"], "stderr");
}
