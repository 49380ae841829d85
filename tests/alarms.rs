//! Alarms against the real server: on time and never early, replace and delete, restarts and
//! kill -9, retries with backoff (continued across a restart), rescheduling from `alarm()`,
//! re-activation of evicted objects, many alarms at once, and classes without an `alarm` export.
//! Timing is checked on a manual clock (the scheduler's and the guests'), moved by the test.

mod common;

use std::time::Duration;

use common::{Process, TestServer, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn now_ms() -> i64 {
    duro::clock::Clock::system().now_ms()
}

/// Where the manual clocks of these tests start.
const T0: i64 = 1_800_000_000_000;

async fn server(adjust: impl FnOnce(&mut duro::Config)) -> TestServer {
    let s = TestServer::start_with(adjust).await;
    assert_eq!(
        s.deploy("Alarm", "alarm-probe").await.0,
        StatusCode::CREATED
    );
    s
}

async fn invocations(s: &TestServer, name: &str) -> Vec<Value> {
    let (status, body) = s.get(&format!("/objects/Alarm/{name}/log")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["invocations"].as_array().unwrap().clone()
}

/// Waits until the object's log has `n` invocations; returns them.
async fn wait_for(s: &TestServer, name: &str, n: usize, deadline: Duration) -> Vec<Value> {
    eventually(deadline, || async {
        let log = invocations(s, name).await;
        (log.len() >= n).then_some(log)
    })
    .await
}

fn at(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_fires_on_time_and_never_before() {
    let clock = duro::clock::Clock::manual(T0);
    let s = server(|c| c.clock = clock.clone()).await;
    let (_, set) = s.post("/objects/Alarm/a/set?in=10000").await;
    let scheduled = at(&set, "at");
    assert_eq!(scheduled, T0 + 10_000);
    assert_eq!(
        s.get("/objects/Alarm/a/get").await.1,
        json!({"alarm": scheduled})
    );
    // A sentinel due 1 ms before: once it has fired, the scheduler has looked at the index at
    // 9,999 ms, and the alarm had not fired.
    s.post(&format!("/objects/Alarm/sentinel/set?at={}", scheduled - 1))
        .await;
    clock.advance(Duration::from_millis(9_999));
    wait_for(&s, "sentinel", 1, Duration::from_secs(10)).await;
    assert!(invocations(&s, "a").await.is_empty());
    clock.advance(Duration::from_millis(1));
    let log = wait_for(&s, "a", 1, Duration::from_secs(10)).await;
    assert_eq!(log.len(), 1);
    assert_eq!(at(&log[0], "firedAtMs"), scheduled);
    assert_eq!(log[0]["retryCount"], 0);
    assert_eq!(log[0]["isRetry"], false);
    // Cleared when the handler starts; stays cleared after.
    assert_eq!(log[0]["alarmDuringHandler"], Value::Null);
    assert_eq!(
        s.get("/objects/Alarm/a/get").await.1,
        json!({"alarm": null})
    );
    // A time in the past fires at once.
    s.post(&format!("/objects/Alarm/past/set?at={}", T0 - 60_000))
        .await;
    wait_for(&s, "past", 1, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_alarms_backoff_continues_across_a_restart() {
    let clock = duro::clock::Clock::manual(T0);
    let s = server(|c| c.clock = clock.clone()).await;
    s.post("/objects/Alarm/b/fail?times=3").await;
    s.post("/objects/Alarm/b/set?in=0").await;
    wait_for(&s, "b", 1, Duration::from_secs(10)).await;
    clock.advance(Duration::from_millis(2_000));
    wait_for(&s, "b", 2, Duration::from_secs(10)).await;
    // Two attempts failed; the second retry is due 4 s after the first retry. Restart.
    let (mut config, temp) = s.stop().await;
    config.clock = clock.clone();
    let s = TestServer::start_in(config).await;
    clock.advance(Duration::from_millis(3_999));
    // Not yet: a sentinel due at the same instant proves the scheduler looked.
    s.post(&format!(
        "/objects/Alarm/sentinel/set?at={}",
        clock.now_ms()
    ))
    .await;
    wait_for(&s, "sentinel", 1, Duration::from_secs(10)).await;
    assert_eq!(invocations(&s, "b").await.len(), 2);
    clock.advance(Duration::from_millis(1));
    wait_for(&s, "b", 3, Duration::from_secs(10)).await;
    clock.advance(Duration::from_millis(8_000));
    let log = wait_for(&s, "b", 4, Duration::from_secs(10)).await;
    let counts: Vec<i64> = log.iter().map(|l| at(l, "retryCount")).collect();
    assert_eq!(
        counts,
        [0, 1, 2, 3],
        "the restart did not start the retries over"
    );
    let fired: Vec<i64> = log.iter().map(|l| at(l, "firedAtMs") - T0).collect();
    assert_eq!(fired, [0, 2_000, 6_000, 14_000]);
    // The fourth attempt succeeded: nothing is left to retry.
    assert_eq!(
        s.get("/objects/Alarm/b/get").await.1,
        json!({"alarm": null})
    );
    s.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setting_replaces_and_deleting_cancels() {
    let s = server(|_| {}).await;
    s.post("/objects/Alarm/r/set?in=300").await;
    let (_, later) = s.post("/objects/Alarm/r/set?in=700").await;
    s.post("/objects/Alarm/d/set?in=300").await;
    s.post("/objects/Alarm/d/delete").await;
    assert_eq!(
        s.get("/objects/Alarm/d/get").await.1,
        json!({"alarm": null})
    );
    // A sentinel firing after both original times shows the others had their chance.
    s.post("/objects/Alarm/sentinel/set?in=1200").await;
    let log = wait_for(&s, "r", 1, Duration::from_secs(10)).await;
    assert!(at(&log[0], "firedAtMs") >= at(&later, "at"));
    wait_for(&s, "sentinel", 1, Duration::from_secs(10)).await;
    assert_eq!(invocations(&s, "r").await.len(), 1);
    assert!(invocations(&s, "d").await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_survives_a_restart() {
    let s = server(|_| {}).await;
    let (_, set) = s.post("/objects/Alarm/persist/set?in=1500").await;
    let (config, temp) = s.stop().await;
    let s = TestServer::start_in(config).await;
    // A restart loads no object: the alarm waits in the index, not in a live instance.
    assert_eq!(s.metric("duro_live_objects").await, 0.0);
    let log = wait_for(&s, "persist", 1, Duration::from_secs(10)).await;
    assert!(at(&log[0], "firedAtMs") >= at(&set, "at"));
    s.stop().await;
    drop(temp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_exponential_backoff() {
    let clock = duro::clock::Clock::manual(T0);
    let s = server(|c| c.clock = clock.clone()).await;
    s.post("/objects/Alarm/f/fail?times=2").await;
    s.post("/objects/Alarm/f/set?in=0").await;
    wait_for(&s, "f", 1, Duration::from_secs(10)).await;
    // The default backoff: 2 s, then 4 s. Each advance waits until the failure is counted (its
    // retry time is then fixed); advancing earlier would push the retry out with the clock.
    let failures = |n: f64| {
        let s = &s;
        async move { (s.metric("duro_alarm_failures_total").await >= n).then_some(()) }
    };
    eventually(Duration::from_secs(10), || failures(1.0)).await;
    clock.advance(Duration::from_millis(2_000));
    wait_for(&s, "f", 2, Duration::from_secs(10)).await;
    eventually(Duration::from_secs(10), || failures(2.0)).await;
    clock.advance(Duration::from_millis(4_000));
    let log = wait_for(&s, "f", 3, Duration::from_secs(10)).await;
    let counts: Vec<i64> = log.iter().map(|l| at(l, "retryCount")).collect();
    assert_eq!(counts, [0, 1, 2]);
    let retries: Vec<bool> = log
        .iter()
        .map(|l| l["isRetry"].as_bool().unwrap())
        .collect();
    assert_eq!(retries, [false, true, true]);
    let fired: Vec<i64> = log.iter().map(|l| at(l, "firedAtMs") - T0).collect();
    assert_eq!(fired, [0, 2_000, 6_000]);
    // Succeeded on the third attempt: cleared.
    assert_eq!(
        s.get("/objects/Alarm/f/get").await.1,
        json!({"alarm": null})
    );
    assert!(s.metric("duro_alarm_failures_total").await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_failing_every_time_is_dropped_after_the_last_retry() {
    let s = server(|c| {
        c.alarm_retry.base = Duration::from_millis(20);
        c.alarm_retry.max_retries = 3;
    })
    .await;
    s.post("/objects/Alarm/doomed/fail?times=100").await;
    s.post("/objects/Alarm/doomed/set?in=0").await;
    let log = wait_for(&s, "doomed", 4, Duration::from_secs(10)).await;
    assert_eq!(at(&log[3], "retryCount"), 3);
    eventually(Duration::from_secs(5), || async {
        let (_, body) = s.get("/objects/Alarm/doomed/get").await;
        body["alarm"].is_null().then_some(())
    })
    .await;
    s.post("/objects/Alarm/sentinel/set?in=300").await;
    wait_for(&s, "sentinel", 1, Duration::from_secs(5)).await;
    assert_eq!(invocations(&s, "doomed").await.len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_can_reschedule_itself() {
    let s = server(|_| {}).await;
    s.post("/objects/Alarm/again/reschedule?every=150&count=3")
        .await;
    let log = wait_for(&s, "again", 4, Duration::from_secs(10)).await;
    for pair in log.windows(2) {
        assert!(at(&pair[1], "firedAtMs") >= at(&pair[1], "scheduledAtMs"));
        assert!(at(&pair[1], "firedAtMs") - at(&pair[0], "firedAtMs") >= 150);
    }
    assert_eq!(
        s.get("/objects/Alarm/again/get").await.1,
        json!({"alarm": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_reactivates_an_evicted_object() {
    let s = server(|c| c.idle_timeout = Duration::from_millis(100)).await;
    s.post("/objects/Alarm/sleepy/set?in=1000").await;
    eventually(Duration::from_secs(5), || async {
        (s.metric("duro_live_objects").await == 0.0).then_some(())
    })
    .await;
    let activations = s.metric("duro_activations_total").await;
    wait_for(&s, "sleepy", 1, Duration::from_secs(10)).await;
    assert!(s.metric("duro_activations_total").await > activations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_alarms_fire_at_once() {
    let s = std::sync::Arc::new(server(|_| {}).await);
    const OBJECTS: usize = 500;
    let at = now_ms() + 500;
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for i in (worker..OBJECTS).step_by(16) {
                let (status, _) = s.post(&format!("/objects/Alarm/m{i}/set?at={at}")).await;
                assert_eq!(status, StatusCode::OK);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    eventually(Duration::from_secs(20), || async {
        (s.metric("duro_alarms_fired_total").await >= OBJECTS as f64).then_some(())
    })
    .await;
    for i in [0, OBJECTS / 2, OBJECTS - 1] {
        let log = wait_for(&s, &format!("m{i}"), 1, Duration::from_secs(5)).await;
        assert!(log[0]["firedAtMs"].as_i64().unwrap() >= at);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_without_an_alarm_export_cannot_set_one() {
    let s = TestServer::start().await;
    assert_eq!(s.deploy("Plain", "no-alarm").await.0, StatusCode::CREATED);
    let (status, body) = s.get("/objects/Plain/x/anything").await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap();
    assert!(
        text.contains("InvalidArgument") && text.contains("alarm"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_example_expires_data_and_reschedules() {
    let s = TestServer::start().await;
    assert_eq!(
        s.deploy("Scheduler", "duro-example-scheduler").await.0,
        StatusCode::CREATED
    );
    let (status, body) = s.post("/objects/Scheduler/jobs/schedule?ms=200").await;
    assert_eq!((status, body), (StatusCode::OK, json!({"scheduled": true})));
    let (_, status_body) = s.get("/objects/Scheduler/jobs/status").await;
    assert!(status_body["expiredData"].is_object(), "{status_body}");
    let status_body = eventually(Duration::from_secs(10), || async {
        let (_, body) = s.get("/objects/Scheduler/jobs/status").await;
        (body["runs"].as_u64() >= Some(2)).then_some(body)
    })
    .await;
    assert!(status_body["expiredData"].is_null(), "{status_body}");
    assert!(status_body["alarm"].is_i64(), "rescheduled: {status_body}");
}

/// A `duro serve` child process on `data_dir` with the alarm probe deployed as `Alarm`.
fn alarm_process(data_dir: &std::path::Path) -> Process {
    let probe = format!("Alarm={}", common::guest("alarm-probe").display());
    Process::start_with(data_dir, &["--deploy", &probe], std::process::Stdio::null())
}

/// Waits until `object`'s alarm log on a child-process server is not empty.
async fn wait_for_log(http: &reqwest::Client, process: &Process, object: &str) -> Vec<Value> {
    let url = format!("{}/objects/Alarm/{object}/log", process.ingress);
    eventually(Duration::from_secs(15), || async {
        let log = common::try_get_json(http, &url).await?["invocations"]
            .as_array()?
            .clone();
        (!log.is_empty()).then_some(log)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_due_during_a_kill_9_fires_after_the_restart() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = alarm_process(temp.path());
    let http = reqwest::Client::new();
    let set: Value = http
        .post(format!("{}/objects/Alarm/k9/set?in=300", process.ingress))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Acknowledged, so durable: killed before it is due, restarted after.
    process.kill_9();
    let process = alarm_process(temp.path());
    let log = wait_for_log(&http, &process, "k9").await;
    assert!(at(&log[0], "firedAtMs") >= at(&set, "at"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_running_when_the_runtime_dies_fires_again_after_the_restart() {
    let temp = tempfile::tempdir().unwrap();
    let mut process = alarm_process(temp.path());
    let http = reqwest::Client::new();
    let fired = |admin: String| {
        let http = http.clone();
        async move {
            let response = http.get(format!("{admin}/metrics")).send().await.ok()?;
            common::metric_value(&response.text().await.ok()?, "duro_alarms_fired_total")
        }
    };
    for step in ["slow?ms=3000", "set?in=0"] {
        let url = format!("{}/objects/Alarm/busy/{step}", process.ingress);
        assert_eq!(
            http.post(url).send().await.unwrap().status(),
            StatusCode::OK
        );
    }
    // The handler is running (delivered; it spins 3 s before it can commit): kill -9 now.
    eventually(Duration::from_secs(5), || async {
        (fired(process.admin.clone()).await? >= 1.0).then_some(())
    })
    .await;
    process.kill_9();

    let process = alarm_process(temp.path());
    let log = wait_for_log(&http, &process, "busy").await;
    // The killed run committed nothing (not even its log entry); this one is the re-delivery.
    assert_eq!(log.len(), 1, "{log:?}");
    let url = format!("{}/objects/Alarm/busy/get", process.ingress);
    assert_eq!(common::get_json(&http, &url).await, json!({"alarm": null}));
}
