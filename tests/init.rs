//! `duro init`: a new project builds, serves under `duro dev` and passes its own test script,
//! outside this repository's workspace, in each language; an existing project is never
//! overwritten.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

fn duro(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_duro"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("running duro")
}

/// `duro init --lang LANG DIR` in a temp folder, then `duro dev` in the project and its own
/// `test.sh` against it. `prepare` may point build caches at shared folders first.
fn init_dev_and_test(lang: &str, dir: &str, class: &str, files: &[&str], prepare: impl Fn(&Path)) {
    let temp = tempfile::tempdir().unwrap();
    let created = duro(temp.path(), &["init", "--lang", lang, dir]);
    let printed = String::from_utf8_lossy(&created.stdout);
    assert!(created.status.success(), "{printed}");
    assert!(printed.contains(&format!("class {class}")), "{printed}");
    assert!(printed.contains("duro dev"), "{printed}");
    let project = temp.path().join(dir);
    for file in files
        .iter()
        .chain(&["duro.jsonc", "test.sh", "duro-sdk/wit/world.wit"])
    {
        assert!(project.join(file).is_file(), "{file}");
    }
    prepare(&project);

    let mut dev = common::dev_command(&project)
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning duro dev");
    let mut lines = BufReader::new(dev.stdout.take().unwrap()).lines();
    let mut said = Vec::new();
    let ingress = lines.by_ref().map_while(Result::ok).find_map(|line| {
        said.push(line.clone());
        line.strip_prefix("ingress: ").map(str::to_string)
    });
    let Some(ingress) = ingress else {
        let _ = dev.wait();
        panic!("duro dev did not serve the project:\n{}", said.join("\n"));
    };
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
}

#[test]
fn a_new_rust_project_builds_serves_and_passes_its_test() {
    init_dev_and_test(
        "rust",
        "rate-limiter",
        "RateLimiter",
        &["Cargo.toml", "src/lib.rs", "duro-sdk/Cargo.toml"],
        |project| {
            // Its build output lives in a folder the test runs share, so only the first compiles.
            let shared = common::root().join("target/init-test");
            std::fs::create_dir_all(&shared).unwrap();
            std::os::unix::fs::symlink(&shared, project.join("target")).unwrap();
        },
    );
}

#[test]
fn a_new_typescript_project_builds_serves_and_passes_its_test() {
    init_dev_and_test(
        "js",
        "rate-limiter",
        "RateLimiter",
        &["package.json", "src/index.ts", "duro-sdk/build.mjs"],
        |_| {},
    );
}

#[test]
fn a_new_python_project_builds_serves_and_passes_its_test() {
    init_dev_and_test(
        "python",
        "rate-limiter",
        "RateLimiter",
        &["src/objects.py", "build.sh", "duro-sdk/duro/__init__.py"],
        |_| {},
    );
}

#[test]
fn init_refuses_an_existing_project_and_a_bad_name() {
    let temp = tempfile::tempdir().unwrap();
    assert!(duro(temp.path(), &["init", "lock"]).status.success());
    let again = duro(temp.path(), &["init", "--lang", "python", "lock"]);
    assert!(!again.status.success());
    let error = String::from_utf8_lossy(&again.stderr);
    assert!(error.contains("exists and is not empty"), "{error}");
    let bad = duro(temp.path(), &["init", "9lives"]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("cannot name a package"));
    let unknown = duro(temp.path(), &["init", "--lang", "cobol", "x"]);
    let error = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        error.contains("possible values: rust, js, python"),
        "{error}"
    );
}
