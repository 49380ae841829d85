//! The deploy config (`duro.jsonc`): bindings uploaded, migrations applied in order and once
//! each — a renamed class keeps its objects, ids and storage (even with its objects live), a
//! deleted one loses them — through `duro deploy --config` and `duro serve --config`.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::{Process, TestServer, get_json, guest, serve_command, status_json};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Writes a config beside the test's data and returns its path.
fn write_config(dir: &Path, file: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, text).expect("writing the config");
    path
}

/// Runs `duro deploy ARGS... --admin-url ADMIN`; returns success and stdout + stderr.
fn duro_deploy(admin: &str, args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_duro"))
        .arg("deploy")
        .args(args)
        .args(["--admin-url", admin])
        .stdin(Stdio::null())
        .output()
        .expect("running duro deploy");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn config_v1(counter: &Path, probe: &Path) -> String {
    format!(
        r#"{{
          // as in the seed's wrangler.jsonc
          "name": "demo",
          "durable_objects": {{
            "bindings": [
              {{ "name": "COUNTER", "class_name": "Counter", "component": "{}" }},
              {{ "name": "PROBE", "class_name": "Probe", "component": "{}" }},
            ],
          }},
          "migrations": [{{ "tag": "v1", "new_classes": ["Counter", "Probe"] }}],
        }}"#,
        counter.display(),
        probe.display()
    )
}

fn config_v2(counter: &Path) -> String {
    format!(
        r#"{{
          "durable_objects": {{
            "bindings": [{{ "name": "COUNTER", "class_name": "Tally", "component": "{}" }}]
          }},
          "migrations": [
            {{ "tag": "v1", "new_classes": ["Counter", "Probe"] }},
            {{ "tag": "v2", "renamed_classes": [{{ "from": "Counter", "to": "Tally" }}],
               "deleted_classes": ["Probe"] }}
          ]
        }}"#,
        counter.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_rename_and_delete_classes_once_each() {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (counter, probe) = (guest("duro-example-counter"), guest("storage-probe"));

    let v1 = write_config(dir.path(), "duro.jsonc", &config_v1(&counter, &probe));
    let (ok, out) = duro_deploy(&s.admin, &["--config", v1.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("migration v1: applied"), "{out}");
    assert!(
        out.contains("class Counter (binding COUNTER): created"),
        "{out}"
    );
    s.post("/objects/Counter/a/increment").await;
    assert_eq!(
        s.post("/objects/Counter/a/increment").await.1,
        json!({"count": 2})
    );
    let id = get_json(&s.http, &format!("{}/ids/Counter?name=a", s.ingress)).await["id"].clone();
    s.post("/objects/Probe/p/increment").await; // a live object of the class to delete

    // v2 renames Counter (its object `a` is live) and deletes Probe.
    let v2 = write_config(dir.path(), "v2.jsonc", &config_v2(&counter));
    // (An admin URL without a scheme means http://.)
    let bare_admin = s.admin.replace("http://", "");
    let (ok, out) = duro_deploy(&bare_admin, &[v2.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("migration v1: applied before"), "{out}");
    assert!(out.contains("migration v2: applied"), "{out}");
    assert!(
        out.contains("class Tally (binding COUNTER): unchanged"),
        "{out}"
    );
    let (status, classes) = s.admin_call(Method::GET, "/classes", vec![]).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> = classes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["class"].clone())
        .collect();
    assert_eq!(names, vec![json!("Tally")]);
    assert_eq!(
        s.get("/objects/Counter/a/get").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(s.get("/objects/Probe/p/get").await.0, StatusCode::NOT_FOUND);
    // Same object, same storage, same id, under the new name.
    assert_eq!(
        s.post("/objects/Tally/a/increment").await.1,
        json!({"count": 3})
    );
    let renamed = get_json(&s.http, &format!("{}/ids/Tally?name=a", s.ingress)).await;
    assert_eq!(renamed["id"], id);
    assert_eq!(
        s.get(&format!("/ids/Tally/{}/get", id.as_str().unwrap()))
            .await
            .1,
        json!({"count": 3})
    );

    // Applying the same config again changes nothing.
    let (ok, out) = duro_deploy(&s.admin, &["--config", v2.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("migration v2: applied before"), "{out}");
    assert_eq!(s.get("/objects/Tally/a/get").await.1, json!({"count": 3}));
    let (_, applied) = s.admin_call(Method::GET, "/migrations", vec![]).await;
    assert_eq!(applied, json!({"applied": ["v1", "v2"]}));

    // A new class under the old name is another class: empty storage, other ids.
    assert_eq!(
        s.upload("Counter", std::fs::read(&counter).unwrap())
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(s.get("/objects/Counter/a/get").await.1, json!({"count": 0}));
    let fresh = get_json(&s.http, &format!("{}/ids/Counter?name=a", s.ingress)).await;
    assert_ne!(fresh["id"], id);
    let (status, _) = s
        .get(&format!("/ids/Counter/{}/get", id.as_str().unwrap()))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a Tally id is not a Counter id"
    );

    // A migration that cannot apply is refused whole, with the reason.
    let bad = json!({"tag": "v3", "deleted_classes": ["Tally"], "renamed_classes": [{"from": "Counter", "to": "no good"}]});
    let (status, body) = s
        .admin_call(Method::POST, "/migrations", bad.to_string().into_bytes())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid class name"),
        "{body}"
    );
    let (status, body) = s
        .admin_call(
            Method::POST,
            "/migrations",
            json!({"tag": "v3", "renamed_classes": [{"from": "Tally", "to": "Counter"}]})
                .to_string()
                .into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("Counter exists"),
        "{body}"
    );
    assert_eq!(s.get("/objects/Tally/a/get").await.1, json!({"count": 3}));
    let (_, applied) = s.admin_call(Method::GET, "/migrations", vec![]).await;
    assert_eq!(applied, json!({"applied": ["v1", "v2"]}));

    // Deletes come before renames: one migration replaces Counter by Tally.
    let replace = json!({"tag": "v3", "deleted_classes": ["Counter"], "renamed_classes": [{"from": "Tally", "to": "Counter"}]});
    let (status, body) = s
        .admin_call(
            Method::POST,
            "/migrations",
            replace.to_string().into_bytes(),
        )
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"tag": "v3", "applied": true}))
    );
    assert_eq!(s.get("/objects/Counter/a/get").await.1, json!({"count": 3}));
    let back = get_json(&s.http, &format!("{}/ids/Counter?name=a", s.ingress)).await;
    assert_eq!(back["id"], id);

    // The whole history on a fresh server: nothing to rename or delete yet; the binding creates
    // the class under its current name.
    let fresh = TestServer::start().await;
    let (ok, out) = duro_deploy(&fresh.admin, &["--config", v2.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(
        out.contains("class Tally (binding COUNTER): created"),
        "{out}"
    );
    assert_eq!(
        fresh.post("/objects/Tally/a/increment").await.1,
        json!({"count": 1})
    );
    let (_, applied) = fresh.admin_call(Method::GET, "/migrations", vec![]).await;
    assert_eq!(applied, json!({"applied": ["v1", "v2"]}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_applies_its_config_at_every_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let counter = guest("duro-example-counter");
    let config = write_config(
        dir.path(),
        "duro.jsonc",
        &format!(
            r#"{{ "durable_objects": {{ "bindings": [
                 {{ "name": "TALLY", "class_name": "Tally", "component": "{}" }} ] }},
               "migrations": [ {{ "tag": "v1", "new_classes": ["Tally"] }} ] }}"#,
            counter.display()
        ),
    );
    let http = reqwest::Client::new();
    let args = ["--config", config.to_str().unwrap()];
    for round in 1..=2 {
        let server = Process::start_with(&data, &args, Stdio::null());
        let (status, body) = status_json(
            http.post(format!("{}/objects/Tally/t/increment", server.ingress))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!((status, body), (StatusCode::OK, json!({"count": round})));
        let applied: Value = get_json(&http, &format!("{}/migrations", server.admin)).await;
        assert_eq!(applied, json!({"applied": ["v1"]}));
    }

    // A config that cannot be applied stops the start with the reason, and changes nothing.
    for (file, text, reason) in [
        (
            "worker.jsonc",
            r#"{ "worker": "missing-worker.wasm" }"#,
            "worker: cannot read",
        ),
        (
            "rename.jsonc",
            r#"{ "migrations": [ { "tag": "v2", "deleted_classes": [ "Tally", "1bad" ] } ] }"#,
            "invalid class name",
        ),
        (
            "typo.jsonc",
            "{\n  \"durable_object\": { \"bindings\": [] }\n}",
            "line 2 column 3: unknown key \"durable_object\" (did you mean \"durable_objects\"?)",
        ),
        (
            "comma.jsonc",
            "{\n  \"migrations\": []\n  \"worker\": \"w.wasm\"\n}",
            "Expected comma on line 2",
        ),
        // No such file (nothing is written for it).
        ("absent.jsonc", "", "absent.jsonc does not exist"),
    ] {
        let broken = match text {
            "" => dir.path().join(file),
            _ => write_config(dir.path(), file, text),
        };
        let output = serve_command(&[], &data)
            .arg("--config")
            .arg(&broken)
            .output()
            .expect("running duro serve");
        assert!(!output.status.success(), "{file}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(reason), "{file}: {stderr}");
    }
    let server = Process::start_with(&data, &args, Stdio::null());
    let applied: Value = get_json(&http, &format!("{}/migrations", server.admin)).await;
    assert_eq!(applied, json!({"applied": ["v1"]}));
    let (status, body) = status_json(
        http.get(format!("{}/objects/Tally/t/get", server.ingress))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"count": 2})));
}

/// `duro deploy --config` uploads the config's static assets as one bundle; the server keeps it
/// durable (a kill -9 and a start without the config still serve it), a same bundle changes
/// nothing, a bad one is refused, and the admin API shows and removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_assets_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(dir.path().join("site/img")).unwrap();
    std::fs::write(dir.path().join("site/index.html"), "<p>home</p>").unwrap();
    std::fs::write(dir.path().join("site/img/dot.svg"), "<svg/>").unwrap();
    let config = write_config(
        dir.path(),
        "wrangler.jsonc",
        r#"{ "name": "site", "assets": { "directory": "./site", "not_found_handling": "404-page" } }"#,
    );
    let http = reqwest::Client::new();
    let mut server = Process::start_with(&data, &[], Stdio::null());
    for change in ["created", "unchanged"] {
        let (ok, out) = duro_deploy(&server.admin, &["--config", config.to_str().unwrap()]);
        assert!(ok, "{out}");
        assert!(
            out.contains(&format!("assets: {change} (2 files from")),
            "{out}"
        );
    }
    let info: Value = get_json(&http, &format!("{}/assets", server.admin)).await;
    assert_eq!(info["files"], json!(2));
    assert_eq!(info["options"]["not_found_handling"], json!("404-page"));

    server.kill_9();
    let server = Process::start_with(&data, &[], Stdio::null());
    let svg = http
        .get(format!("{}/img/dot.svg", server.ingress))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert_eq!(svg.text().await.unwrap(), "<svg/>");
    // The object routes are still the objects'.
    let counter = http
        .post(format!("{}/objects/Counter/a/increment", server.ingress))
        .send()
        .await
        .unwrap();
    assert_eq!(counter.status(), StatusCode::OK);

    let bad = http
        .put(format!("{}/assets", server.admin))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body("not a bundle")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("not an assets bundle"));
    let gone = http
        .delete(format!("{}/assets", server.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), StatusCode::NO_CONTENT);
    let page = http
        .get(format!("{}/", server.ingress))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::NOT_FOUND);
}

/// `/readyz` answers 503 while `duro serve --config` applies its config (here a JavaScript
/// component compiling into an empty cache, seconds), then 200 once the ingress serves it;
/// `/healthz` (liveness) is 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_the_deploy_config() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let js = common::js_build();
    let config = write_config(
        dir.path(),
        "duro.jsonc",
        &format!(
            r#"{{ "durable_objects": {{ "bindings": [
                 {{ "name": "COUNTER", "class_name": "Counter", "component": "{}" }} ] }},
               "migrations": [ {{ "tag": "v1", "new_classes": ["Counter"] }} ] }}"#,
            js.objects.display()
        ),
    );
    let mut child = serve_command(&[], &dir.path().join("data"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    // The admin listener is up (and logged) before the config is applied.
    let admin = loop {
        let line = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("duro logs its addresses");
        if let Some(rest) = line.split("admin_addr=").nth(1) {
            break format!("http://{}", rest.split_whitespace().next().unwrap());
        }
    };
    let http = reqwest::Client::new();
    let (mut not_ready, deadline) = (
        0,
        std::time::Instant::now() + std::time::Duration::from_secs(120),
    );
    loop {
        let health = http.get(format!("{admin}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), StatusCode::OK);
        let ready = http.get(format!("{admin}/readyz")).send().await.unwrap();
        let status = ready.status();
        let body: Value = ready.json().await.unwrap();
        if status == StatusCode::OK {
            assert_eq!(body, json!({"ready": true}));
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["ready"], json!(false));
        not_ready += 1;
        assert!(std::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(not_ready > 0, "not ready while the component compiled");
    let classes: Value = get_json(&http, &format!("{admin}/classes")).await;
    assert_eq!(classes[0]["class"], json!("Counter"));
    let _ = child.kill();
    let _ = child.wait();
}

/// `duro deploy` of a large component with a wrong token says 401, not a broken pipe (the server
/// answers a bad token before reading the body); with the right one it shows the upload and the
/// server's compile as they go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_deploy_shows_its_progress_and_a_wrong_token_says_401() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::start_with(
        &dir.path().join("data"),
        &["--admin-token", "the-right-token"],
        Stdio::null(),
    );
    let big = common::js_build().objects.clone();
    assert!(std::fs::metadata(&big).unwrap().len() > 10 << 20);
    let deploy = |token: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_duro"))
            .arg("deploy")
            .arg(format!("Big={}", big.display()))
            .args(["--admin-url", &server.admin, "--admin-token", token])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        (output.status.success(), stderr)
    };
    let (ok, text) = deploy("a-wrong-token");
    assert!(!ok);
    assert!(text.contains("401"), "{text}");
    assert!(!text.contains("Broken pipe"), "{text}");

    // With the right token: announced, then the upload and the server's compile (a new
    // component: the server's cache is empty) shown once a second, then timed.
    let (ok, text) = deploy("the-right-token");
    assert!(ok, "{text}");
    assert!(text.contains("a new component is compiled once"), "{text}");
    let seconds: f64 = text
        .split("Big: done in ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no total time: {text}"));
    if seconds >= 2.5 {
        assert!(
            text.contains("the server is compiling it"),
            "{seconds} s without a compile progress line: {text}"
        );
    }
}
