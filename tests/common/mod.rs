//! Test support: builds the guest components once, starts a real duro server in-process on
//! 127.0.0.1:0 with a temporary data dir, and talks real HTTP to it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use duro::{Config, Server};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// The workspace root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("runtime/ sits in the workspace root")
}

/// Every guest component the tests use (examples and tests/components).
const GUEST_CRATES: &[&str] = &[
    "duro-example-counter",
    "duro-example-scheduler",
    "duro-example-chat-room",
    "storage-probe",
    "misbehave",
    "alarm-probe",
    "no-alarm",
    "ws-probe",
    "duro-example-worker",
    "duro-example-counter-group",
    "call-probe",
    "worker-probe",
];

/// Path of a guest component, built (once per test binary) for wasm32-wasip2.
pub fn guest(crate_name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let target = root().join("target/guests");
        let status = Command::new(env!("CARGO"))
            .current_dir(root())
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .args([
                "build",
                "--quiet",
                "--profile",
                "guest",
                "--target",
                "wasm32-wasip2",
            ])
            .args(GUEST_CRATES.iter().flat_map(|c| ["-p", c]))
            .status()
            .expect("running cargo to build the guest components");
        assert!(
            status.success(),
            "building the guest components failed; is the target installed? \
             (rustup target add wasm32-wasip2)"
        );
        target.join("wasm32-wasip2/guest")
    });
    dir.join(format!("{}.wasm", crate_name.replace('-', "_")))
}

pub fn read_guest(crate_name: &str) -> Vec<u8> {
    std::fs::read(guest(crate_name)).expect("reading a built guest component")
}

/// A built probe with its version marker (`probe-version-1`, in ws-probe and worker-probe)
/// patched to `probe-version-{n}`: another component, answering another version, with no second
/// build.
#[allow(dead_code)]
pub fn guest_version(crate_name: &str, n: u8) -> Vec<u8> {
    let mut bytes = read_guest(crate_name);
    let marker = b"probe-version-1";
    let at: Vec<usize> = bytes
        .windows(marker.len())
        .enumerate()
        .filter_map(|(i, w)| (w == marker).then_some(i))
        .collect();
    assert_eq!(at.len(), 1, "{crate_name} carries its version marker once");
    bytes[at[0] + marker.len() - 1] = b'0' + n;
    bytes
}

/// A built guest with a custom section appended: the same code under another sha256 (a real
/// code replacement, where an identical upload would change nothing).
#[allow(dead_code)]
pub fn guest_revision(crate_name: &str, n: u8) -> Vec<u8> {
    let mut bytes = read_guest(crate_name);
    let name = b"duro-test-revision";
    let payload_len = 1 + name.len() + 1;
    bytes.extend_from_slice(&[0, payload_len as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.push(n);
    bytes
}

/// The type a write to the admin API's `path` is sent as (as the CLI sends it): the API refuses
/// one a cross-site page could send (none, `text/plain`, forms).
pub fn admin_type(path: &str) -> &'static str {
    let path = path.split('?').next().unwrap_or(path);
    if path.ends_with("/import") {
        "application/x-ndjson"
    } else if path.contains("/entries/") || path == "/assets" {
        "application/octet-stream"
    } else if path == "/worker"
        || path == "/check"
        || (path.starts_with("/classes/") && !path.contains("/objects"))
    {
        "application/wasm"
    } else {
        "application/json"
    }
}

/// A running in-process server and an HTTP client for it.
pub struct TestServer {
    server: Option<Server>,
    pub ingress: String,
    pub admin: String,
    pub data_dir: PathBuf,
    /// Keeps the temporary data dir alive (and deletes it at the end).
    _temp: Option<tempfile::TempDir>,
    pub http: reqwest::Client,
}

/// A test's server config: port 0 everywhere, the given data dir.
pub fn config(data_dir: &Path) -> Config {
    let mut config = Config::new(data_dir);
    config.listen = ([127, 0, 0, 1], 0).into();
    config.admin_listen = ([127, 0, 0, 1], 0).into();
    // Tests run several servers at once; keep each pool small.
    config.limits.max_live_objects = 6_000;
    config
}

impl TestServer {
    /// A server on a fresh temporary data dir.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let temp = tempfile::tempdir().expect("a temp dir");
        let mut config = config(temp.path());
        adjust(&mut config);
        let mut server = Self::start_in(config).await;
        server._temp = Some(temp);
        server
    }

    /// A server on the given config (e.g. an existing data dir).
    pub async fn start_in(config: Config) -> Self {
        let data_dir = config.data_dir.clone();
        let server = duro::start(config).await.expect("the server starts");
        Self {
            ingress: format!("http://{}", server.ingress_addr()),
            admin: format!("http://{}", server.admin_addr()),
            server: Some(server),
            data_dir,
            _temp: None,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .expect("an HTTP client"),
        }
    }

    /// Stops the server cleanly, keeping the data dir; returns it for a restart.
    pub async fn stop(mut self) -> (Config, Option<tempfile::TempDir>) {
        // A stop that hangs (something holding the actors' count open) fails here, not at CI's
        // time limit.
        let stopped = self.server.take().expect("running").shutdown();
        tokio::time::timeout(Duration::from_secs(60), stopped)
            .await
            .expect("the server stopped within 60 s");
        (config(&self.data_dir), self._temp.take())
    }

    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }

    /// Uploads a built guest as `class`; returns status and JSON.
    pub async fn deploy(&self, class: &str, crate_name: &str) -> (StatusCode, Value) {
        self.upload(class, read_guest(crate_name)).await
    }

    pub async fn upload(&self, class: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        self.admin_call(Method::PUT, &format!("/classes/{class}"), bytes)
            .await
    }

    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let write = matches!(method, Method::POST | Method::PUT | Method::PATCH);
        let mut request = self.http.request(method, format!("{}{path}", self.admin));
        if write {
            request = request.header(reqwest::header::CONTENT_TYPE, admin_type(path));
        }
        let response = request.body(body).send().await.expect("admin request");
        status_json(response).await
    }

    /// An ingress request; returns status and the body parsed as JSON (or as a JSON string).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, format!("{}{path}", self.ingress))
            .body(body)
            .send()
            .await
            .expect("ingress request");
        status_json(response).await
    }

    /// Runs a storage-probe script (a list of storage ops) as one event on the `Probe` class's
    /// object `name`; returns the per-op results.
    pub async fn script(&self, name: &str, ops: Value) -> Vec<Value> {
        let (status, body) = self
            .call(
                Method::POST,
                &format!("/objects/Probe/{name}/script"),
                ops.to_string(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["results"].as_array().expect("results").clone()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Vec::new()).await
    }

    pub async fn post(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::POST, path, Vec::new()).await
    }

    /// The value of a metric (first sample whose line starts with `name`), from `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        metric(&self.http, &self.admin, name).await
    }
}

/// The value of a metric from the `/metrics` of the admin API at `admin`.
pub async fn metric(http: &reqwest::Client, admin: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("metrics request")
        .text()
        .await
        .expect("metrics body");
    metric_value(&text, name).unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

pub fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

pub async fn status_json(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("a response body");
    let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, json)
}

/// GET `url` and parse its JSON body; `None` on any failure (for polling).
pub async fn try_get_json(http: &reqwest::Client, url: &str) -> Option<Value> {
    http.get(url).send().await.ok()?.json().await.ok()
}

/// GET `url` and parse its JSON body.
pub async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    try_get_json(http, url)
        .await
        .unwrap_or_else(|| panic!("GET {url} gave no JSON"))
}

/// POST `body` to `url` and parse the JSON answer.
pub async fn post_json(http: &reqwest::Client, url: &str, body: impl Into<reqwest::Body>) -> Value {
    let answer = http.post(url).body(body).send().await;
    let answer = answer.unwrap_or_else(|e| panic!("POST {url}: {e}"));
    answer
        .json()
        .await
        .unwrap_or_else(|e| panic!("POST {url} gave no JSON: {e}"))
}

/// Polls `check` until it returns `Some`, failing after `deadline`.
pub async fn eventually<T, F, Fut>(deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "condition not met within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `duro serve` child process; killed on drop.
/// `duro serve` on port 0 everywhere over `data_dir`, run by `wrapper` if one is given (e.g.
/// `valgrind --tool=callgrind`).
pub fn serve_command(wrapper: &[&str], data_dir: &Path) -> Command {
    let binary = env!("CARGO_BIN_EXE_duro");
    let mut command = match wrapper.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(binary);
            command
        }
        None => Command::new(binary),
    };
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(data_dir);
    command
}

/// `duro dev` in `dir`, on port 0 everywhere.
#[allow(dead_code)]
pub fn dev_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_duro"));
    command
        .current_dir(dir)
        .args(["dev", "--listen", "127.0.0.1:0"])
        .args(["--admin-listen", "127.0.0.1:0"]);
    command
}

/// A `duro dev` process and what it printed so far (stdout and stderr); killed on drop.
pub struct Dev {
    child: Mutex<Child>,
    out: Arc<Mutex<Vec<String>>>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Dev {
    /// Spawns `command` (a `dev_command`), collecting its lines.
    pub fn start(mut command: Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning duro dev");
        let out = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let out = out.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    out.lock().unwrap().push(line);
                }
            });
        }
        Self {
            child: Mutex::new(child),
            out,
        }
    }

    pub fn printed(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    /// Waits for a line starting with `prefix` (3 minutes at most: a first build may install
    /// npm packages) and returns the rest.
    pub async fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let found = self
                .out
                .lock()
                .unwrap()
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(str::to_string));
            if let Some(rest) = found {
                return rest;
            }
            if let Ok(Some(status)) = self.child.lock().unwrap().try_wait() {
                panic!(
                    "duro dev exited ({status}) before printing {prefix:?}:\n{}",
                    self.printed()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {prefix:?} line:\n{}",
                self.printed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

pub struct Process {
    pub child: Child,
    pub ingress: String,
    pub admin: String,
}

impl Process {
    pub fn start(data_dir: &std::path::Path) -> Self {
        Self::start_with(data_dir, &[], Stdio::null())
    }

    pub fn start_with(data_dir: &std::path::Path, extra: &[&str], stderr: Stdio) -> Self {
        Self::start_under(&[], data_dir, extra, stderr)
    }

    /// Like `start_with`, with these environment variables set.
    pub fn start_env(
        data_dir: &std::path::Path,
        extra: &[&str],
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Self {
        Self::spawn(serve_command(&[], data_dir), extra, stderr, env)
    }

    /// Like `start_with`, with the binary run by `wrapper` (e.g. `valgrind --tool=callgrind`).
    pub fn start_under(
        wrapper: &[&str],
        data_dir: &std::path::Path,
        extra: &[&str],
        stderr: Stdio,
    ) -> Self {
        Self::spawn(serve_command(wrapper, data_dir), extra, stderr, &[])
    }

    fn spawn(mut command: Command, extra: &[&str], stderr: Stdio, env: &[(&str, &str)]) -> Self {
        let mut child = command
            .envs(env.iter().copied())
            .arg("--deploy")
            .arg(format!(
                "Counter={}",
                guest("duro-example-counter").display()
            ))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning duro");
        let stdout = child.stdout.take().expect("piped stdout");
        let (mut ingress, mut admin) = (None, None);
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("reading duro's stdout");
            if let Some(url) = line.strip_prefix("ingress: ") {
                ingress = Some(url.to_string());
            }
            if let Some(url) = line.strip_prefix("admin: ") {
                admin = Some(url.to_string());
                break;
            }
        }
        Self {
            child,
            ingress: ingress.expect("duro printed its ingress address"),
            admin: admin.expect("duro printed its admin address"),
        }
    }

    pub fn signal(&mut self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("sending a signal");
    }

    pub fn kill_9(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `request` (raw bytes of an HTTP/1.1 request) to `addr` on a new connection and returns
/// the response head (status line and headers).
pub async fn raw_http(addr: &str, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut byte))
            .await
            .expect("a response within 10 s")
            .expect("read");
        if read == 0 {
            break;
        }
        head.push(byte[0]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

impl TestServer {
    /// Uploads a built guest as the worker (`object_routes`: the direct routes stay).
    pub async fn deploy_worker(
        &self,
        crate_name: &str,
        object_routes: bool,
    ) -> (StatusCode, Value) {
        self.admin_call(
            Method::PUT,
            &format!("/worker?object_routes={object_routes}"),
            read_guest(crate_name),
        )
        .await
    }

    /// Sets the bindings: `[("COUNTER", "Counter"), ...]`.
    pub async fn bind(&self, bindings: &[(&str, &str)]) {
        let map: serde_json::Map<String, Value> = bindings
            .iter()
            .map(|(name, class)| (name.to_string(), Value::String(class.to_string())))
            .collect();
        let (status, body) = self
            .admin_call(
                Method::PUT,
                "/bindings",
                Value::Object(map).to_string().into_bytes(),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
}

/// The JavaScript example's components, built once per test binary by `scripts/build-js`
/// (componentize-js; rebuilt only when a source changed).
pub struct JsBuild {
    /// Counter, ChatRoom and Scheduler in one component (`examples/js/src/index.ts`).
    pub objects: PathBuf,
    /// The Hono app of `examples/js/src/index.ts`.
    pub worker: PathBuf,
    /// The test class `Probe` of `tests/components/js-probe/probe.js`.
    pub probe: PathBuf,
}

pub fn js_build() -> &'static JsBuild {
    static BUILD: OnceLock<JsBuild> = OnceLock::new();
    BUILD.get_or_init(|| {
        let dir = built("build-js", "js");
        JsBuild {
            objects: dir.join("objects.wasm"),
            worker: dir.join("worker.wasm"),
            probe: dir.join("probe.wasm"),
        }
    })
}

/// A server with the JS probe class (`Probe`, tests/components/js-probe) and the Rust Counter,
/// bound as `PROBE` and `COUNTER`.
pub async fn js_probe_server(adjust: impl FnOnce(&mut Config)) -> TestServer {
    let s = TestServer::start_with(|c| {
        shared_cache(c);
        adjust(c);
    })
    .await;
    let probe = std::fs::read(&js_build().probe).expect("the JS probe component");
    assert_eq!(s.upload("Probe", probe).await.0, StatusCode::CREATED);
    s.deploy("Counter", "duro-example-counter").await;
    s.bind(&[("COUNTER", "Counter"), ("PROBE", "Probe")]).await;
    s
}

/// A compiled-component cache every test server may share: a 12 MB JavaScript component is
/// compiled once per machine, not once per test.
pub fn shared_cache(config: &mut Config) {
    config.cache_dir = Some(root().join("target/duro-test-cache"));
}

/// Runs `scripts/{script} --require` (once per test binary) and returns `target/{output}`.
fn built(script: &str, output: &str) -> PathBuf {
    let status = Command::new(root().join("scripts").join(script))
        .arg("--require")
        .status()
        .unwrap_or_else(|e| panic!("running scripts/{script}: {e}"));
    assert!(status.success(), "building failed (scripts/{script})");
    root().join("target").join(output)
}

/// The C example Counter (`scripts/build-c`: zig cc + wasm-tools).
pub fn c_build() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| built("build-c", "c/counter.wasm"))
}

/// The Python examples, Counter, ChatRoom and Scheduler in one component
/// (`scripts/build-python`: componentize-py).
pub fn python_build() -> &'static Path {
    static BUILD: OnceLock<PathBuf> = OnceLock::new();
    BUILD.get_or_init(|| built("build-python", "python/objects.wasm"))
}

/// The Python test class `PyProbe` (`tests/components/py-probe`), built with the examples.
pub fn python_probe() -> PathBuf {
    python_build().with_file_name("probe.wasm")
}

/// A WebSocket client of the test server.
pub type WsClient =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` on the server's ingress; the handshake must answer 101.
pub async fn ws_connect(s: &TestServer, path: &str) -> WsClient {
    ws_connect_to(&s.ingress, path).await
}

/// A WebSocket to `path` of the ingress at `ingress` (`http://host:port`).
pub async fn ws_connect_to(ingress: &str, path: &str) -> WsClient {
    let url = format!("{}{path}", ingress.replace("http://", "ws://"));
    let (client, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("handshake");
    assert_eq!(response.status(), 101);
    client
}

/// The next data message, skipping pings; fails after a deadline.
pub async fn ws_next(client: &mut WsClient) -> tokio_tungstenite::tungstenite::Message {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), client.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a valid frame");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}
