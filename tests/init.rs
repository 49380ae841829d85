//! `duro init`: a new project builds, serves under `duro dev` and passes its own test script,
//! outside this repository's workspace; an existing project is never overwritten.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn duro(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_duro"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running duro")
}

#[test]
fn a_new_project_builds_serves_and_passes_its_test() {
    let temp = tempfile::tempdir().unwrap();
    let created = duro(temp.path(), &["init", "rate-limiter"]);
    let printed = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{printed}");
    assert!(printed.contains("the Rust class RateLimiter"), "{printed}");
    assert!(printed.contains("duro dev"), "{printed}");
    let project = temp.path().join("rate-limiter");
    for file in [
        "Cargo.toml",
        "src/lib.rs",
        "duro.jsonc",
        "test.sh",
        "duro-sdk/wit/world.wit",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }
    // Its build output lives in a folder the test runs share, so only the first run compiles.
    let shared = common::root().join("target/init-test");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();

    let mut dev = common::dev_command(&project)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning duro dev");
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let ingress = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("ingress: ").map(str::to_string))
        .expect("duro dev built the project and printed its address");
    let test = Command::new("sh")
        .current_dir(&project)
        .args(["test.sh", &ingress])
        .output()
        .expect("running test.sh");
    let _ = dev.kill();
    let _ = dev.wait();
    let said =
        String::from_utf8_lossy(&test.stdout).to_string() + &String::from_utf8_lossy(&test.stderr);
    assert!(test.status.success(), "{said}");
    assert_eq!(said.trim(), "ok");

    let again = duro(temp.path(), &["init", "rate-limiter"]);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("exists and is not empty"), "{error}");
    let bad = duro(temp.path(), &["init", "9lives"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot name a Cargo package"));
}
