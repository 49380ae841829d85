//! Vars and secrets: the deploy config's `vars` and the values of its `secrets` (from the
//! environment, or `.dev.vars` beside the config) reach classes through the `env` import; secret
//! values never show in the admin API, the CLI's output or the server's log; a secret without a
//! value stops the deploy before anything changed; `--env` reads an environment's section.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;

use serde_json::json;

const SECRET: &str = "s3cr3t-value-8d1f";
const FILE_SECRET: &str = "from-the-file-52ac";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vars_and_secrets_reach_classes_and_secrets_stay_hidden() {
    let temp = tempfile::tempdir().unwrap();
    let config = temp.path().join("duro.jsonc");
    let component = common::guest("misbehave");
    std::fs::write(
        &config,
        format!(
            r#"{{
  "vars": {{ "GREETING": "hello", "LIMIT": 10 }},
  "secrets": ["API_KEY", "FROM_FILE"],
  "durable_objects": {{ "bindings": [{{ "name": "BAD", "class_name": "Bad", "component": {:?} }}] }},
  "migrations": [{{ "tag": "v1", "new_classes": ["Bad"] }}]
}}"#,
            component.display()
        ),
    )
    .unwrap();
    std::fs::write(
        temp.path().join(".dev.vars"),
        format!("# local secrets\nFROM_FILE=\"{FILE_SECRET}\"\n"),
    )
    .unwrap();

    let mut child = common::serve_command(&[], &temp.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("API_KEY", SECRET)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning duro");
    // The log is read as it comes (a full pipe would stall the server).
    let mut stderr = child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut log = String::new();
        stderr.read_to_string(&mut log).unwrap();
        log
    });
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut address = |prefix: &str| {
        lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .expect("duro printed its address")
    };
    let ingress = address("ingress: ");
    let admin = address("admin: ");
    let http = reqwest::Client::new();
    let env = async |name: &str| {
        common::get_json(&http, &format!("{ingress}/objects/Bad/e/env?{name}")).await["value"]
            .clone()
    };
    assert_eq!(env("GREETING").await, json!("hello"));
    assert_eq!(
        env("LIMIT").await,
        json!("10"),
        "non-strings as their JSON text"
    );
    assert_eq!(env("API_KEY").await, json!(SECRET), "from the environment");
    assert_eq!(env("FROM_FILE").await, json!(FILE_SECRET), "from .dev.vars");
    assert_eq!(env("NOPE").await, json!(null));

    let shown = http.get(format!("{admin}/vars")).send().await.unwrap();
    let shown = shown.text().await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&shown).unwrap(),
        json!({"vars": {"GREETING": "hello", "LIMIT": "10"}, "secrets": ["API_KEY", "FROM_FILE"]})
    );

    // A malformed document is refused with where and why, never with the values it carried.
    let malformed = http
        .put(format!("{admin}/vars"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(format!(r#"{{"vars": {{}}, "secrets": "{SECRET}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), reqwest::StatusCode::BAD_REQUEST);
    let reason = malformed.text().await.unwrap();
    assert!(
        reason.contains("at secrets: invalid type: string"),
        "{reason}"
    );
    assert!(!reason.contains(SECRET), "the secret echoed: {reason}");

    // `duro deploy` with a secret it cannot find changes nothing and says which one.
    let deploy = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["deploy", "--config"])
        .arg(&config)
        .args(["--admin-url", &admin])
        .env_remove("API_KEY")
        .output()
        .unwrap();
    assert!(!deploy.status.success());
    let error = String::from_utf8_lossy(&deploy.stderr);
    assert!(error.contains("secret \"API_KEY\" has no value"), "{error}");
    assert_eq!(env("API_KEY").await, json!(SECRET), "nothing changed");
    // With it, the deploy prints the secrets' names only.
    let deploy = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["deploy", "--config"])
        .arg(&config)
        .args(["--admin-url", &admin])
        .env("API_KEY", "rotated-4b7e")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&deploy.stdout).to_string();
    assert!(deploy.status.success(), "{printed}");
    assert!(
        printed.contains("secret(s) [API_KEY, FROM_FILE]"),
        "{printed}"
    );
    assert_eq!(env("API_KEY").await, json!("rotated-4b7e"));

    // An environment (wrangler's `env.NAME` with `--env`): its vars, not the top level's, and its
    // own `.dev.vars.NAME`; its bindings given again (they are not inherited).
    let mut document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    document["env"] = json!({ "staging": {
        "vars": { "GREETING": "hello from staging" },
        "secrets": ["FROM_FILE"],
        "durable_objects": document["durable_objects"].clone(),
    }});
    std::fs::write(&config, document.to_string()).unwrap();
    std::fs::write(
        temp.path().join(".dev.vars.staging"),
        "FROM_FILE=staging-file\n",
    )
    .unwrap();
    let deploy = std::process::Command::new(env!("CARGO_BIN_EXE_duro"))
        .args(["deploy", "--env", "staging", "--config"])
        .arg(&config)
        .args(["--admin-url", &admin])
        .output()
        .unwrap();
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert_eq!(env("GREETING").await, json!("hello from staging"));
    assert_eq!(env("LIMIT").await, json!(null), "vars are not inherited");
    assert_eq!(env("FROM_FILE").await, json!("staging-file"));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert!(child.wait().unwrap().success());
    let log = log.join().unwrap();
    for secret in [SECRET, FILE_SECRET, "rotated-4b7e"] {
        assert!(!log.contains(secret), "a secret in the log");
        assert!(!shown.contains(secret) && !printed.contains(secret));
    }
    assert!(
        log.contains("vars: 2 var(s)"),
        "the deploy report is logged"
    );
}
