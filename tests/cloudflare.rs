//! Cloudflare projects run from their folder as they are: a wrangler config (`wrangler.json`,
//! `.jsonc` or `.toml`, found in the current folder), its `main` built by duro with the JS SDK,
//! served by `duro dev` — the real binary, real HTTP and WebSockets. The projects under
//! `tests/projects/` are written after Cloudflare's own (the hello-world Durable Object template,
//! the workers chat demo), with their API usage and config shapes; none of their code is copied.

mod common;

use std::path::{Path, PathBuf};

use common::Dev;

/// A copy of `tests/projects/{name}` in a temporary folder (the build writes `.duro/` into it).
fn project(name: &str) -> tempfile::TempDir {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(
        &common::root().join("tests/projects").join(name),
        copy.path(),
    );
    copy
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The JS SDK of this repository, its packages installed (`scripts/build-js`).
fn js_sdk() -> PathBuf {
    common::js_build();
    common::root().join("guest-sdk/js")
}

/// `duro dev` in `dir` with no arguments, as a user runs it; its ingress URL once it serves.
async fn dev(dir: &Path) -> (Dev, String) {
    let mut command = common::dev_command(dir);
    command.env("DURO_JS_SDK", js_sdk());
    let dev = Dev::start(command);
    let ingress = dev.line("ingress: ").await;
    (dev, ingress)
}

/// Cloudflare's hello-world Durable Object template: `wrangler.json` as the template writes it
/// (`new_sqlite_classes`, a binding without a component, `observability`), `main` a TypeScript
/// module whose worker calls the class's RPC method `sayHello` through `getByName`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_world_template_runs_from_its_wrangler_json() {
    let dir = project("hello-world");
    let (dev, ingress) = dev(dir.path()).await;
    assert!(
        dev.printed()
            .contains("\"observability\" is not implemented by duro"),
        "one warning names the keys duro ignores:\n{}",
        dev.printed()
    );
    let http = reqwest::Client::new();
    for (path, n) in [("/alice", 1), ("/alice", 2), ("/bob", 1)] {
        let response = http.get(format!("{ingress}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.text().await.unwrap(),
            format!("Hello, world! (greeting {n} of {path})")
        );
    }
}
