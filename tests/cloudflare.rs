//! Cloudflare projects run from their folder as they are: a wrangler config (`wrangler.json`,
//! `.jsonc` or `.toml`, found in the current folder), its `main` built by duro with the JS SDK,
//! served by `duro dev` — the real binary, real HTTP and WebSockets. The projects under
//! `tests/projects/` are written after Cloudflare's own (the hello-world Durable Object template,
//! the workers chat demo), with their API usage and config shapes; none of their code is copied.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::Dev;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

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
/// module whose worker calls the class's RPC method `sayHello` through `idFromName` and `get`,
/// and the method reads its greeting with `ctx.storage.sql` and counts it in a table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hello_world_template_runs_from_its_wrangler_json() {
    // Named by a path relative to where duro runs (the other projects are found in the folder).
    let parent = tempfile::tempdir().unwrap();
    copy_dir(
        &common::root().join("tests/projects/hello-world"),
        &parent.path().join("hello"),
    );
    let mut command = common::dev_command(parent.path());
    command
        .arg("hello/wrangler.json")
        .env("DURO_JS_SDK", js_sdk());
    let dev = Dev::start(command);
    let ingress = dev.line("ingress: ").await;
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
            format!("Hello, World! (greeting {n} of {path})")
        );
    }
}

/// The next text message of `ws`, as JSON.
async fn next_json(ws: &mut common::WsClient) -> Value {
    match common::ws_next(ws).await {
        Message::Text(text) => serde_json::from_str(&text).unwrap(),
        other => panic!("expected a text message, got {other:?}"),
    }
}

/// A chat app shaped as Cloudflare's workers chat demo: `wrangler.toml`, plain classes, an HTML
/// page imported by a Data rule, rooms by name and private rooms by `newUniqueId` /
/// `idFromString`, hibernatable sockets, a backlog read with `list({reverse, limit})`, and a rate
/// limiter per client address (`CF-Connecting-IP`) called through a stub from a socket message,
/// whose cooldown a `setTimeout` outliving the event ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_demo_runs_from_its_wrangler_toml() {
    let dir = project("chat");
    let (_dev, ingress) = dev(dir.path()).await;
    let http = reqwest::Client::new();
    let page = http.get(format!("{ingress}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html;charset=UTF-8");
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>duro chat</title>")
    );

    let mut ann = common::ws_connect_to(&ingress, "/api/room/lobby/websocket").await;
    assert_eq!(
        next_json(&mut ann).await,
        json!({"ready": true, "ip": "127.0.0.1"})
    );
    ann.send(Message::text(r#"{"name": "ann"}"#)).await.unwrap();
    assert_eq!(next_json(&mut ann).await, json!({"joined": "ann"}));
    let mut bob = common::ws_connect_to(&ingress, "/api/room/lobby/websocket").await;
    assert_eq!(next_json(&mut bob).await["ready"], true);
    bob.send(Message::text(r#"{"name": "bob"}"#)).await.unwrap();
    assert_eq!(next_json(&mut ann).await, json!({"joined": "bob"}));
    assert_eq!(next_json(&mut bob).await, json!({"joined": "bob"}));

    // Six messages, each sent again while the limiter says no: the first few go at once, then
    // the limiter makes ann wait; each refusal ends when its setTimeout fires.
    let mut refused = 0;
    for n in 1..=6 {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = format!("message {n}");
            ann.send(Message::text(json!({ "message": text }).to_string()))
                .await
                .unwrap();
            let answer = next_json(&mut ann).await;
            if answer["message"] == text {
                assert_eq!(answer["name"], "ann");
                assert_eq!(next_json(&mut bob).await["message"], text);
                break;
            }
            assert!(
                answer["error"].as_str().unwrap().contains("rate-limited"),
                "{answer}"
            );
            refused += 1;
            assert!(Instant::now() < deadline, "message {n} still refused");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(refused > 0, "the limiter never refused a message");

    // A newcomer gets the backlog, oldest first, then joins.
    let mut cy = common::ws_connect_to(&ingress, "/api/room/lobby/websocket").await;
    for n in 1..=6 {
        assert_eq!(next_json(&mut cy).await["message"], format!("message {n}"));
    }
    assert_eq!(next_json(&mut cy).await["ready"], true);

    // A private room, by its id; a made-up id is refused.
    let id = http
        .post(format!("{ingress}/api/room"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(id.len(), 64, "{id}");
    let mut private = common::ws_connect_to(&ingress, &format!("/api/room/{id}/websocket")).await;
    assert_eq!(next_json(&mut private).await["ready"], true);
    let made_up = format!("{ingress}/api/room/{}/websocket", "0".repeat(64));
    let response = http.get(made_up).send().await.unwrap();
    assert_eq!(response.status(), 500);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("TypeError: Invalid Durable Object ID"),
        "{text}"
    );
}

/// A room server built on the `partyserver` npm package (installed by duro from the project's
/// `package.json`): `routePartykitRequest` finds the namespace among `env`'s values, the server's
/// name arrives (`this.name`, also through `getServerByName`'s RPC call), `onStart` runs under
/// `blockConcurrencyWhile` with a timer before anything else, connections use the standard
/// WebSocket API (partyserver's default), and its hooks refuse and redirect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partyserver_class_runs_from_its_wrangler_jsonc() {
    let dir = project("party");
    let (dev, ingress) = dev(dir.path()).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = async |path: &str| {
        let response = http.get(format!("{ingress}{path}")).send().await.unwrap();
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_string());
        (status, location, response.text().await.unwrap())
    };
    let (status, _, body) = get("/parties/chat/lobby").await;
    assert_eq!(status, 200, "{body}\n{}", dev.printed());
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"room": "lobby", "messages": [], "starts": 1})
    );
    let (status, location, _) = get("/parties/chat/lobby?old=1").await;
    assert_eq!(status, 302);
    assert!(location.unwrap().ends_with("/parties/chat/lobby"));
    let (status, _, body) = get("/direct/elsewhere").await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&body).unwrap()["room"].clone()
        ),
        (200, json!("elsewhere"))
    );

    // Connections: refused without the token; with it, greeted, then every message broadcast.
    let refused = tokio_tungstenite::connect_async(format!(
        "{}/parties/chat/lobby",
        ingress.replace("http://", "ws://")
    ))
    .await;
    assert!(
        refused.is_err(),
        "a connection without the token was accepted"
    );
    let path = "/parties/chat/lobby?token=letmein";
    let mut ann = common::ws_connect_to(&ingress, path).await;
    let hello = next_json(&mut ann).await;
    assert_eq!(
        (hello["room"].clone(), hello["backlog"].clone()),
        (json!("lobby"), json!([]))
    );
    let mut bob = common::ws_connect_to(&ingress, path).await;
    assert_eq!(next_json(&mut bob).await["room"], "lobby");
    ann.send(Message::text("hi all")).await.unwrap();
    for ws in [&mut ann, &mut bob] {
        let got = next_json(ws).await;
        assert_eq!(
            (got["from"].clone(), got["message"].clone()),
            (hello["id"].clone(), json!("hi all"))
        );
    }
    let (_, _, body) = get("/parties/chat/lobby").await;
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["messages"],
        json!(["hi all"])
    );
}

/// A chat that keeps its messages in SQL, shaped as Cloudflare's durable-chat template
/// (tests/projects/durable-chat): a hibernating partyserver room creates its table and reads
/// its log with `ctx.storage.sql` in `onStart`, upserts each message with bound parameters, and
/// greets a connection with the whole log; the rest of the site is static assets. Every message
/// a client saw broadcast — released by the output gate only once its insert was durable —
/// is in the log after `kill -9` of the server and a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_durable_chat_template_keeps_its_messages_in_sql_across_kill_9() {
    let dir = project("durable-chat");
    let (dev, ingress) = dev(dir.path()).await;
    let page = reqwest::get(format!("{ingress}/rooms/general"))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Durable chat"));

    let path = "/parties/chat/general";
    let mut ann = common::ws_connect_to(&ingress, path).await;
    let mut bob = common::ws_connect_to(&ingress, path).await;
    for ws in [&mut ann, &mut bob] {
        assert_eq!(
            next_json(ws).await,
            json!({"type": "all", "messages": []}),
            "{}",
            dev.printed()
        );
    }
    let message = |kind: &str, id: &str, content: &str| json!({"type": kind, "id": id, "content": content, "user": "ann", "role": "user"});
    ann.send(Message::text(message("add", "m0", "hello").to_string()))
        .await
        .unwrap();
    ann.send(Message::text(
        message("update", "m0", "hello, edited").to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut bob).await["content"], "hello");
    assert_eq!(next_json(&mut bob).await["content"], "hello, edited");

    // A stream of messages; the server is killed while it still arrives.
    for n in 1..=200 {
        let text = message("add", &format!("m{n}"), &format!("message {n}")).to_string();
        ann.send(Message::text(text)).await.unwrap();
    }
    let mut seen = vec![("m0".to_string(), "hello, edited".to_string())];
    while seen.len() < 60 {
        let got = next_json(&mut bob).await;
        seen.push((
            got["id"].as_str().unwrap().to_string(),
            got["content"].as_str().unwrap().to_string(),
        ));
    }
    drop(dev); // SIGKILL
    drop((ann, bob));

    let (dev, ingress) = self::dev(dir.path()).await;
    let mut carol = common::ws_connect_to(&ingress, path).await;
    let log = next_json(&mut carol).await;
    assert_eq!(log["type"], "all", "{}", dev.printed());
    let log: Vec<(String, String)> = log["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!((&m["user"], &m["role"]), (&json!("ann"), &json!("user")));
            let field = |k: &str| m[k].as_str().unwrap().to_string();
            (field("id"), field("content"))
        })
        .collect();
    assert!(
        log.len() >= seen.len() && log.len() <= 201,
        "{} messages kept, {} seen",
        log.len(),
        seen.len()
    );
    assert_eq!(
        log[..seen.len()],
        seen[..],
        "the log keeps every message seen, in order"
    );
}

/// A site with an API (tests/projects/assets), shaped as Cloudflare's full-stack templates:
/// wrangler's `assets` (a folder, a binding, a single-page app's fallback, `run_worker_first`
/// rules) served before the worker, with Cloudflare's html handling, ETags and content types;
/// the worker reads an asset through `env.ASSETS` and counts a visit after its response
/// (`ctx.waitUntil`); `duro dev` reloads a changed file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_serves_its_assets_beside_its_worker() {
    let dir = project("assets");
    let (dev, ingress) = dev(dir.path()).await;
    assert!(
        !dev.printed().contains("not implemented by duro"),
        "assets are implemented:\n{}",
        dev.printed()
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let get = |path: &str| http.get(format!("{ingress}{path}")).send();
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let home = "<!doctype html>\n<title>Site</title>\n<div id=\"app\">home</div>\n";

    // Files, with their content types, ETag and Cloudflare's cache policy.
    let index = get("/").await.unwrap();
    assert_eq!(index.status(), 200);
    assert_eq!(
        header(&index, "content-type").as_deref(),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&index, "cache-control").as_deref(),
        Some("public, max-age=0, must-revalidate")
    );
    assert_eq!(index.text().await.unwrap(), home);
    let css = get("/style.css").await.unwrap();
    assert_eq!(
        header(&css, "content-type").as_deref(),
        Some("text/css; charset=utf-8")
    );
    let etag = header(&css, "etag").expect("an ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    assert_eq!(css.text().await.unwrap(), "body { color: teal; }\n");
    for tag in [etag.clone(), format!("W/{etag}")] {
        let again = http
            .get(format!("{ingress}/style.css"))
            .header("if-none-match", tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        assert_eq!(again.text().await.unwrap(), "");
    }
    let head = http
        .head(format!("{ingress}/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length").as_deref(), Some("22"));
    let spaced = get("/hello%20world.txt").await.unwrap();
    assert_eq!(
        header(&spaced, "content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        spaced.text().await.unwrap(),
        "hello from a file with a space\n"
    );

    // html handling (auto-trailing-slash): pages without .html, folders with their slash.
    let about = get("/about").await.unwrap();
    assert_eq!(about.status(), 200);
    assert!(about.text().await.unwrap().contains("about us"));
    for (from, to) in [
        ("/about.html", "/about"),
        ("/docs", "/docs/"),
        ("/docs/index.html?x=1", "/docs/?x=1"),
        ("/index.html", "/"),
    ] {
        let moved = get(from).await.unwrap();
        assert_eq!(moved.status(), 307, "{from}");
        assert_eq!(header(&moved, "location").as_deref(), Some(to), "{from}");
    }
    assert!(
        get("/docs/")
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("the docs")
    );

    // _redirects: before any file; a splat and placeholders carried over, the request's query
    // kept unless the rule gives one, a 200 rule serves another path's file; a bad line (status
    // 418) is skipped. _headers: on every answer of the assets, rules merged in file order (a
    // later rule's value joins, `! Name` removes), over the assets' own Cache-Control.
    for (from, status, to) in [
        ("/home?ref=x", 301, "/?ref=x"),
        ("/old-docs/guide/intro", 308, "/docs/guide/intro"),
        ("/blog/2026/hello", 302, "/posts?y=2026&s=hello"),
        ("/elsewhere", 302, "https://example.com/landing#top"),
    ] {
        let moved = get(from).await.unwrap();
        assert_eq!(moved.status(), status, "{from}");
        assert_eq!(header(&moved, "location").as_deref(), Some(to), "{from}");
        assert_eq!(
            header(&moved, "x-frame-options").as_deref(),
            Some("DENY"),
            "{from}"
        );
    }
    let team = get("/team").await.unwrap();
    assert_eq!(team.status(), 200);
    assert!(team.text().await.unwrap().contains("about us"));
    assert_eq!(get("/broken").await.unwrap().text().await.unwrap(), home);
    let css = get("/style.css").await.unwrap();
    assert_eq!(
        header(&css, "cache-control").as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        header(&css, "x-robots-tag").as_deref(),
        Some("noindex, all")
    );
    let docs = get("/docs/").await.unwrap();
    assert_eq!(header(&docs, "x-frame-options"), None);
    assert_eq!(
        header(&docs, "link").as_deref(),
        Some("</style.css>; rel=preload")
    );
    assert_eq!(
        get("/_redirects").await.unwrap().text().await.unwrap(),
        home
    );

    // A path with no file: the single-page app's index (its router takes it from there); what
    // .assetsignore names, and anything outside the folder, is never served.
    for path in [
        "/settings/profile",
        "/app.js.map",
        "/secret/key.txt",
        "/../wrangler.jsonc",
        "/%2e%2e/wrangler.jsonc",
        "/..%2fwrangler.jsonc",
        "/public/style.css",
    ] {
        let page = get(path).await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
        assert_eq!(page.text().await.unwrap(), home, "{path}");
    }

    // run_worker_first: /api/* is the worker's (a Durable Object behind it), but not the docs.
    for visits in [1, 2] {
        let api = http
            .post(format!("{ingress}/api/visits?page=home"))
            .send()
            .await
            .unwrap();
        assert_eq!(api.status(), 200);
        assert_eq!(
            api.json::<Value>().await.unwrap(),
            json!({"page": "home", "visits": visits})
        );
    }
    let missing = get("/api/nothing").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap(),
        json!({"error": "no API route /api/nothing"})
    );
    let docs = get("/api/docs/").await.unwrap();
    assert!(docs.text().await.unwrap().contains("API docs"));

    // Work the worker leaves after its response (ctx.waitUntil: a timer, then an RPC call).
    let later = http
        .post(format!("{ingress}/api/later?page=later"))
        .send()
        .await
        .unwrap();
    assert_eq!(later.status(), 202);
    // Looked at through the admin API: no request to the worker drives it meanwhile.
    let admin = dev.line("admin: ").await;
    let site = format!("{admin}/classes/Visits/objects/by-name/site");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stored: Value = http.get(&site).send().await.unwrap().json().await.unwrap();
        let entries = stored["entries"].as_array().cloned().unwrap_or_default();
        if entries.contains(&json!({"key": "later", "value": 1})) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the waitUntil work never ran: {stored}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count = get("/api/count?page=later").await.unwrap();
    assert_eq!(count.json::<Value>().await.unwrap()["visits"], json!(1));

    // The worker's ASSETS binding: an asset, rewritten; the binding enumerates in env.
    let loud = get("/api/loud.css").await.unwrap();
    assert_eq!(loud.text().await.unwrap(), "BODY { COLOR: TEAL; }\n");
    let names = get("/api/env")
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(names, json!(["ASSETS", "VISITS"]));

    // duro dev watches the folder: a changed file is served, with its new ETag.
    std::fs::write(
        dir.path().join("public/style.css"),
        "body { color: navy; }\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let css = get("/style.css").await.unwrap();
        let tag = header(&css, "etag").unwrap();
        if css.text().await.unwrap() == "body { color: navy; }\n" {
            assert_ne!(tag, etag);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the changed file was not served:\n{}",
            dev.printed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The TypeScript projects above are Cloudflare code as Cloudflare's own types see it: each
/// type-checks (`tsc --strict`) against `@cloudflare/workers-types` (the version of the workerd
/// peer), which declares `cloudflare:workers` as the projects import it; a wrong use fails.
#[test]
fn the_typescript_projects_type_check_with_cloudflares_types() {
    let tools = common::root().join("target/typecheck");
    std::fs::create_dir_all(&tools).unwrap();
    let source = common::root().join("tests/typecheck");
    for file in ["package.json", "package-lock.json"] {
        std::fs::copy(source.join(file), tools.join(file)).unwrap();
    }
    let lock = std::fs::read(tools.join("package-lock.json")).unwrap();
    let stamp = tools.join("node_modules/.duro-lock");
    if std::fs::read(&stamp).ok().as_deref() != Some(&lock[..]) {
        let ci = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&tools)
            .status()
            .expect("npm");
        assert!(ci.success(), "npm ci of tests/typecheck");
        std::fs::write(&stamp, &lock).unwrap();
    }
    let tsc = |dir: &Path| {
        std::process::Command::new(tools.join("node_modules/.bin/tsc"))
            .arg("-p")
            .arg(dir)
            .output()
            .expect("tsc")
    };
    let work = tempfile::tempdir_in(&tools).unwrap();
    for name in ["hello-world", "assets", "party", "durable-chat"] {
        let dir = work.path().join(name);
        copy_dir(&common::root().join("tests/projects").join(name), &dir);
        std::fs::write(
            dir.join("tsconfig.json"),
            r#"{ "compilerOptions": { "target": "es2022", "module": "es2022",
                 "moduleResolution": "bundler", "lib": ["es2022"],
                 "types": ["@cloudflare/workers-types"], "strict": true, "noEmit": true,
                 "skipLibCheck": true }, "include": ["src"] }"#,
        )
        .unwrap();
        if dir.join("package.json").exists() {
            let install = std::process::Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
                .current_dir(&dir)
                .status()
                .expect("npm");
            assert!(install.success(), "npm install in {name}");
        }
        let checked = tsc(&dir);
        assert!(
            checked.status.success(),
            "{name} does not type-check:\n{}",
            String::from_utf8_lossy(&checked.stdout)
        );
        if name == "hello-world" {
            std::fs::write(
                dir.join("src/wrong.ts"),
                "export const state: DurableObjectState = 42;\n",
            )
            .unwrap();
            let wrong = tsc(&dir);
            assert!(
                !wrong.status.success(),
                "a wrong use must fail to type-check"
            );
            assert!(String::from_utf8_lossy(&wrong.stdout).contains("TS2322"));
        }
    }
}

/// Node.js's modules under Cloudflare's `nodejs_compat` flag (tests/projects/node-compat): the
/// worker and a Durable Object import `node:buffer`, `node:events` (and bare `events`),
/// `node:path`, `node:util`, `node:assert`, `node:string_decoder`, `node:async_hooks`, `node:crypto`, `node:stream` and
/// `node:process`, use `Buffer` and `global` unimported, and read the config's vars in
/// `process.env`. Without the flag, the build fails naming the flag to add. The config's
/// compatibility date is the SDK's too: `deleteAll()` deletes the alarm from 2026-02-24.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_modules_load_under_nodejs_compat() {
    let dir = project("node-compat");
    let (_dev, ingress) = dev(dir.path()).await;
    let expected = json!({
        "buffer": ["aMOpbGxv", true, 2, 65280],
        "events": [6, "then", true, true],
        "path": ["/a/c/d.txt", ".gz", "r"],
        "util": ["n=42", true],
        "assert": "AssertionError",
        "crypto": [
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            "kAFQmDzST7DWlj99KOF/cg==",
            "de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9",
            "0c60c80f961f0e71f3a9b524af6012062fe037a6",
            16,
            true,
            "9ca0d662557439e3b83365f2da4626d3"
        ],
        "stream": "ABCD",
        "decoder": "é",
        "env": ["hi", "undefined", true],
        "globals": ["object", true, "function"],
        "als": ["a/a/a", "b/b/b", "outside"],
    });
    for side in ["worker", "object"] {
        let mut expected = expected.clone();
        if side == "worker" {
            expected["email"] = json!("b@example.com");
        }
        let response = reqwest::get(format!("{ingress}/{side}")).await.unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "{side}: {body}");
        let response: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(response, expected, "{side}");
    }

    // The compatibility date (2026-03-01) turns on `delete_all_deletes_alarm`.
    let response = reqwest::get(format!("{ingress}/delete-all")).await.unwrap();
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"alarm": null, "keys": 0})
    );

    let config = dir.path().join("wrangler.jsonc");
    let text = std::fs::read_to_string(&config).unwrap();
    let without = text.replace(r#""compatibility_flags": ["nodejs_compat"],"#, "");
    assert_ne!(text, without);
    let unflagged = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), unflagged.path());
    std::fs::write(unflagged.path().join("wrangler.jsonc"), without).unwrap();
    let mut command = common::dev_command(unflagged.path());
    command.env("DURO_JS_SDK", js_sdk());
    let dev = Dev::start(command);
    common::eventually(Duration::from_secs(180), || async {
        dev.printed()
            .contains(
                r#"node:buffer is a Node.js module: add "nodejs_compat" to compatibility_flags"#,
            )
            .then_some(())
    })
    .await;
}

/// The next message of `ws` (JSON) that `wanted` accepts; the others (the agent's identity,
/// its MCP servers, ...) are skipped, at most 20 of them.
async fn next_matching(ws: &mut common::WsClient, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..20 {
        let message = next_json(ws).await;
        if wanted(&message) {
            return message;
        }
    }
    panic!("no wanted message among the next 20");
}

/// Cloudflare's Agents SDK (npm `agents`, tests/projects/agents) runs unchanged, as its
/// getting-started guide writes an agent without a model: `routeAgentRequest` routes
/// `/agents/counter/{name}` to the agent, a client gets its identity and state on connect, a
/// `@callable()` method runs over the agent's WebSocket RPC and its `setState` reaches every
/// client, a client that connects later sees the state kept (in the agent's SQL storage), and
/// `this.schedule` calls its callback from the agent's alarm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_sdk_runs_its_getting_started_agent() {
    let dir = project("agents");
    let (_dev, ingress) = dev(dir.path()).await;
    let path = "/agents/counter/room";
    let mut first = common::ws_connect_to(&ingress, path).await;
    let state =
        |count: i64| move |m: &Value| m["type"] == "cf_agent_state" && m["state"]["count"] == count;
    next_matching(&mut first, state(0)).await;

    let rpc = |id: &str, args: Value| {
        Message::text(
            json!({"type": "rpc", "id": id, "method": "increment", "args": args}).to_string(),
        )
    };
    first.send(rpc("1", json!([]))).await.unwrap();
    let answer = next_matching(&mut first, |m| m["type"] == "rpc" && m["id"] == "1").await;
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["result"], 1, "{answer}");

    let mut second = common::ws_connect_to(&ingress, path).await;
    next_matching(&mut second, state(1)).await;
    second.send(rpc("2", json!([2]))).await.unwrap();
    let answer = next_matching(&mut second, |m| m["type"] == "rpc" && m["id"] == "2").await;
    assert_eq!(answer["result"], 3, "{answer}");
    // The first client sees the second's change.
    next_matching(&mut first, state(3)).await;

    // `this.schedule`: a callback a second later, from the agent's alarm; every client sees it.
    let later = json!({"type": "rpc", "id": "3", "method": "later", "args": []});
    first.send(Message::text(later.to_string())).await.unwrap();
    let answer = next_matching(&mut first, |m| m["type"] == "rpc" && m["id"] == "3").await;
    assert_eq!(answer["result"], "bump", "{answer}");
    next_matching(&mut second, state(103)).await;

    // Another agent of the class has its own state.
    let mut other = common::ws_connect_to(&ingress, "/agents/counter/elsewhere").await;
    next_matching(&mut other, state(0)).await;
}
