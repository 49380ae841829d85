//! `duro dev` on a project of its own: it builds (the config's `build.command`), serves with the
//! access log, and when a watched source changes it rebuilds and replaces the class in place,
//! storage kept; a failed build leaves the previous version serving.

mod common;

use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};

use common::{Dev, eventually, get_json, read_guest};

const CONFIG: &str = r#"{
  // the build picks the component named by src/version.txt; while a file `hold` exists it
  // waits after reading it (and says so with a file `held`), so a test can save mid-build
  "build": { "command": "v=$(cat src/version.txt); if [ -e hold ]; then touch held; while [ -e hold ]; do sleep 0.05; done; fi; mkdir -p build && cp versions/$v.wasm build/counter.wasm", "watch_dir": "src" },
  "durable_objects": { "bindings": [{ "name": "COUNTER", "class_name": "Counter", "component": "build/counter.wasm" }] },
  "migrations": [{ "tag": "v1", "new_classes": ["Counter"] }]
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_rebuilds_and_swaps_a_changed_class_keeping_storage() {
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("versions")).unwrap();
    let v1 = read_guest("duro-example-counter");
    let v2 = common::guest_revision("duro-example-counter", 2);
    std::fs::write(dir.join("versions/1.wasm"), &v1).unwrap();
    std::fs::write(dir.join("versions/2.wasm"), &v2).unwrap();
    std::fs::write(dir.join("src/version.txt"), "1").unwrap();
    std::fs::write(dir.join("duro.jsonc"), CONFIG).unwrap();

    let dev = Dev::start(common::dev_command(dir));
    let ingress = dev.line("ingress: ").await;
    let admin = dev.line("admin: ").await;
    let http = reqwest::Client::new();
    let increment = async || {
        let url = format!("{ingress}/objects/Counter/dev/increment");
        let response = http.post(url).send().await.unwrap();
        response.json::<serde_json::Value>().await.unwrap()
    };
    let deployed =
        async || get_json(&http, &format!("{admin}/classes/Counter")).await["sha256"].clone();
    assert_eq!(increment().await, json!({"count": 1}));
    assert_eq!(deployed().await, json!(hex::encode(Sha256::digest(&v1))));
    assert!(
        dev.printed()
            .contains("class Counter (binding COUNTER): created")
    );
    // Each request is printed (the access log).
    eventually(Duration::from_secs(10), || async {
        dev.printed()
            .contains("path=/objects/Counter/dev/increment")
            .then_some(())
    })
    .await;

    // Editing a watched source rebuilds and swaps the class in; the count goes on.
    std::fs::write(dir.join("src/version.txt"), "2").unwrap();
    let v2_digest = json!(hex::encode(Sha256::digest(&v2)));
    eventually(Duration::from_secs(60), || async {
        (deployed().await == v2_digest).then_some(())
    })
    .await;
    assert_eq!(increment().await, json!({"count": 2}));
    dev.line("class Counter (binding COUNTER): replaced").await;

    // A failed build says so; the previous version keeps serving.
    std::fs::write(dir.join("src/version.txt"), "missing").unwrap();
    dev.line("build failed").await;
    assert_eq!(increment().await, json!({"count": 3}));
    assert_eq!(deployed().await, v2_digest, "{}", dev.printed());

    // A save made while a build runs is built next: it is not taken for the build's own output.
    std::fs::write(dir.join("hold"), "").unwrap();
    std::fs::write(dir.join("src/version.txt"), "1").unwrap();
    let held = dir.join("held");
    eventually(Duration::from_secs(60), || async {
        held.exists().then_some(())
    })
    .await;
    std::fs::write(dir.join("src/version.txt"), "2").unwrap();
    std::fs::remove_file(dir.join("hold")).unwrap();
    let v1_digest = json!(hex::encode(Sha256::digest(&v1)));
    eventually(Duration::from_secs(60), || async {
        (deployed().await == v1_digest).then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), || async {
        (deployed().await == v2_digest).then_some(())
    })
    .await;
    assert_eq!(increment().await, json!({"count": 4}), "{}", dev.printed());
}

/// A build command runs as under `npm run`: the project's `node_modules/.bin` is on its `PATH`
/// (a wrangler `build.command` of `esbuild src/index.ts ...` finds the project's esbuild).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_command_finds_the_projects_node_modules_bin() {
    use std::os::unix::fs::PermissionsExt;
    let project = tempfile::tempdir().unwrap();
    let dir = project.path();
    let bin = dir.join("node_modules/.bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(dir.join("counter.wasm"), read_guest("duro-example-counter")).unwrap();
    let tool = bin.join("make-counter");
    std::fs::write(
        &tool,
        "#!/bin/sh\nmkdir -p build && cp counter.wasm build/counter.wasm\n",
    )
    .unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.join("duro.jsonc"),
        CONFIG.replace(
            r#""command": "v=$(cat src/version.txt); if [ -e hold ]; then touch held; while [ -e hold ]; do sleep 0.05; done; fi; mkdir -p build && cp versions/$v.wasm build/counter.wasm""#,
            r#""command": "make-counter""#,
        ),
    )
    .unwrap();
    let dev = Dev::start(common::dev_command(dir));
    let ingress = dev.line("ingress: ").await;
    let url = format!("{ingress}/objects/Counter/bin/increment");
    let response = reqwest::Client::new().post(url).send().await.unwrap();
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap(),
        json!({"count": 1})
    );
}
