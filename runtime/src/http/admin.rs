//! The admin listener: upload, list and delete classes; apply migrations; a consistent backup of
//! the database (streamed); the stored objects (list and read: `inspect`; change: `edit`); health and
//! metrics. Every route but the inspector's page (`inspector`) requires the bearer token when one
//! is configured.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::io::AsyncReadExt;

use super::error::{ApiError, Body, json};
use super::inspect;
use super::read_body;
use super::route::{self, Admin, ObjectPart};
use crate::class::Change;
use crate::class::{Classes, Migration};
use crate::metrics::Metrics;

/// Largest migration, bindings or outbound body accepted.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// A response of the admin listener: most are small JSON, a backup streams a file.
pub type AdminBody = BoxBody<Bytes, std::io::Error>;

/// What the admin handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub classes: Arc<Classes>,
    /// Which objects are active, for the object listings.
    pub directory: crate::object::Directory,
    pub db: crate::storage::Store,
    /// Where backups are staged before they are streamed.
    pub data_dir: PathBuf,
    pub metrics: Arc<Metrics>,
    pub token: Option<Arc<str>>,
    /// Host names the listener answers to beside IP addresses and `localhost`.
    pub hosts: Arc<super::guard::AllowedHosts>,
    /// The live tails open now.
    pub tails: Arc<super::tail::TailBudget>,
    /// The limits: of an upload, of what one import may put (key and value sizes, an event's
    /// writes).
    pub limits: crate::config::Limits,
    pub body_timeout: std::time::Duration,
    /// True once the ingress serves (what the flags and the deploy config deploy is in place).
    pub ready: tokio::sync::watch::Receiver<bool>,
    /// The ingress's settings: a WebSocket forwarded by another cluster node is held here as
    /// the ingress holds its own.
    pub ingress: super::ingress::IngressState,
}

/// A request to the admin listener, served once the server has its state; until then
/// `/healthz` says the process lives (`"starting": true`), a forwarded event from another cluster
/// node waits (this node owns its shard already), and the rest is 503 with `Retry-After`.
pub async fn handle_when_ready(
    mut ready: tokio::sync::watch::Receiver<Option<AdminState>>,
    request: http::Request<Incoming>,
) -> http::Response<AdminBody> {
    let state = ready.borrow().clone();
    if let Some(state) = state {
        return handle(state, request).await;
    }
    match route::admin(request.uri().path()) {
        Ok(Admin::Healthz) => boxed(json(
            StatusCode::OK,
            &serde_json::json!({"ok": true, "starting": true}),
        )),
        Ok(Admin::Forward) => {
            let state = match ready.wait_for(Option::is_some).await {
                Ok(state) => state.clone(),
                Err(_) => None,
            };
            match state {
                Some(state) => handle(state, request).await,
                None => boxed(super::ingress::starting()),
            }
        }
        _ => boxed(super::ingress::starting()),
    }
}

pub async fn handle(
    state: AdminState,
    request: http::Request<Incoming>,
) -> http::Response<AdminBody> {
    let parsed = route::admin(request.uri().path());
    // The inspector's files hold no data: they load before its login form asks for the token.
    let open = matches!(*request.method(), Method::GET | Method::HEAD)
        && matches!(parsed, Ok(Admin::Root | Admin::Inspector(_)));
    let allowed = super::check_head(&request).and_then(|()| {
        let token = state.token.as_deref();
        super::guard::check(&request, parsed.as_ref().ok(), open, &state.hosts, token)
    });
    if let Err(ApiError::Forbidden(_) | ApiError::UnsupportedMediaType(_)) = &allowed {
        state.metrics.admin_refused.inc();
    }
    let answer = match (allowed, parsed) {
        (Err(error), _) => Err(error),
        (Ok(()), Err(_)) => Err(ApiError::NotFound("no such route".into())),
        (Ok(()), Ok(Admin::Root)) if open => Ok(boxed(super::inspector::to_the_page())),
        (Ok(()), Ok(Admin::Inspector(file))) if open => super::inspector::file(&file)
            .map(boxed)
            .ok_or_else(|| ApiError::NotFound("no such file".into())),
        // The one answer that streams.
        (Ok(()), Ok(Admin::Backup)) if request.method() == Method::GET => backup(&state).await,
        (Ok(()), Ok(Admin::Tail)) if request.method() == Method::GET => {
            let client = request.extensions().get::<super::ClientAddr>();
            let client = client.map_or([127, 0, 0, 1].into(), |c| c.0.ip());
            match state.tails.open(client) {
                Ok(permit) => super::tail::tail(permit, request.uri().query()),
                Err(refused) => {
                    // Its connection goes too: a client refused a tail must not hold one of
                    // the API's connections either.
                    let mut answer = refused.into_response();
                    let close = header::HeaderValue::from_static("close");
                    answer.headers_mut().insert(header::CONNECTION, close);
                    Ok(boxed(answer))
                }
            }
        }
        (Ok(()), Ok(Admin::Object(class, object, ObjectPart::Export)))
            if request.method() == Method::GET =>
        {
            super::transfer::export(&state, &class, object).await
        }
        (Ok(()), Ok(admin)) => route(&state, admin, request).await.map(boxed),
    };
    answer.unwrap_or_else(|error| boxed(error.into_response()))
}

/// The request's whole body, at most `max` bytes.
pub(super) async fn body_of(
    state: &AdminState,
    request: http::Request<Incoming>,
    max: usize,
) -> Result<Bytes, ApiError> {
    let (parts, body) = request.into_parts();
    read_body(&parts.headers, body, max, state.body_timeout).await
}

/// 201 with `info` when it was created, 200 when it replaced something.
fn put_answer(change: Change, info: impl serde::Serialize) -> http::Response<Body> {
    let status = match change {
        Change::Created => StatusCode::CREATED,
        Change::Replaced | Change::Unchanged => StatusCode::OK,
    };
    let mut answer = serde_json::to_value(info).expect("admin answers serialize");
    answer["change"] = serde_json::json!(change);
    json(status, &answer)
}

/// 200 with a settings document (`/bindings`, `/outbound`).
fn document(value: &impl serde::Serialize) -> http::Response<Body> {
    json(
        StatusCode::OK,
        &serde_json::to_value(value).expect("admin documents serialize"),
    )
}

/// A settings document from the request body; a malformed one is a 400 saying its `shape`.
pub(super) async fn document_body<T: serde::de::DeserializeOwned>(
    state: &AdminState,
    request: http::Request<Incoming>,
    shape: &str,
) -> Result<T, ApiError> {
    let bytes = body_of(state, request, MAX_DOCUMENT_BYTES).await?;
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        // A document may carry secrets: the reason never quotes the values it saw.
        let reason = redact_strings(&e.inner().to_string());
        ApiError::BadRequest(format!("expected {shape}: at {}: {reason}", e.path()))
    })
}

/// `text` with what every `"…"` quotes left out.
fn redact_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…");
            }
            quoted = !quoted;
            if !quoted {
                out.push('"');
            }
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// 204, or 404 with `missing` when there was nothing to delete.
pub(super) fn deleted(existed: bool, missing: String) -> Result<http::Response<Body>, ApiError> {
    if !existed {
        return Err(ApiError::NotFound(missing));
    }
    let mut response = http::Response::new(Body::default());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

fn boxed(response: http::Response<Body>) -> http::Response<AdminBody> {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

/// `GET /backup`: copies the database as of now into a staging file, streams it, and removes it.
async fn backup(state: &AdminState) -> Result<http::Response<AdminBody>, ApiError> {
    let staging = Staging::new(&state.data_dir, "backup", "redb");
    let Some(db) = state.db.redb().cloned() else {
        return Err(ApiError::BadRequest(format!(
            "backups copy the redb database; this server keeps its objects in {} (back that up \
             with its own tools, e.g. pg_dump)",
            state.db.name()
        )));
    };
    let path = staging.0.clone();
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || crate::storage::backup(&db, &path))
        .await
        .map_err(|e| ApiError::Internal(format!("the backup task failed: {e}")))?
        .map_err(|e| ApiError::Internal(format!("cannot copy the database: {e}")))?;
    let file = tokio::fs::File::open(&staging.0)
        .await
        .map_err(|e| ApiError::Internal(format!("cannot read the backup: {e}")))?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    tracing::info!(
        bytes = size,
        ms = started.elapsed().as_millis() as u64,
        "backup copied; streaming it"
    );
    let chunks = futures_util::stream::unfold((file, staging), |(mut file, staging)| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), (file, staging)))
            }
            Err(e) => Some((Err(e), (file, staging))),
        }
    });
    let mut response = http::Response::new(StreamBody::new(chunks).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(size));
    Ok(response)
}

/// A file staged in the data dir (a backup being streamed, an import being checked), removed
/// when it is dropped (its work done, or given up half-way).
pub(super) struct Staging(pub PathBuf);

/// What staged files use their names for.
const STAGED: [&str; 2] = ["backup-", "import-"];

/// Removes the files a stop in the middle of a backup or an import left in `data_dir`.
pub fn sweep_staged(data_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".tmp") && STAGED.iter().any(|what| name.starts_with(what)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

impl Staging {
    /// `{data_dir}/{what}-{random}.{ext}.tmp` (`what` one of [`STAGED`]).
    pub(super) fn new(data_dir: &std::path::Path, what: &str, ext: &str) -> Self {
        let name = format!("{what}-{}.{ext}.tmp", crate::ids::random_hex(8));
        Self(data_dir.join(name))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Answers an authorized request to `route`.
async fn route(
    state: &AdminState,
    route: Admin,
    request: http::Request<Incoming>,
) -> Result<http::Response<Body>, ApiError> {
    let method = request.method().clone();
    match (route, method) {
        (Admin::Healthz, Method::GET) => {
            let problems = state.metrics.health.problems();
            Ok(if problems.is_empty() {
                json(StatusCode::OK, &serde_json::json!({"ok": true}))
            } else {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"ok": false, "problems": problems}),
                )
            })
        }
        // Readiness, for orchestrators: `/healthz` says the process is alive and its storage
        // works; this says it serves what it was configured with.
        (Admin::Readyz, Method::GET) => Ok(if *state.ready.borrow() {
            json(StatusCode::OK, &serde_json::json!({"ready": true}))
        } else {
            json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"ready": false, "reason": "applying the deploy config"}),
            )
        }),
        (Admin::Top, Method::GET) => super::top::top(state, request.uri().query()).await,
        (Admin::Metrics, Method::GET) => {
            let text = state.metrics.render_with(&super::top::class_metrics(state));
            let mut response = http::Response::new(Body::from(text));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            Ok(response)
        }
        // GET: a forwarded WebSocket handshake.
        (Admin::Forward, Method::POST | Method::GET) => {
            super::forward::forward(state, request).await
        }
        (Admin::Classes, Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::to_value(state.classes.list()).expect("class infos serialize"),
        )),
        (Admin::Class(name), Method::PUT) => {
            let bytes = body_of(state, request, state.limits.max_component_bytes).await?;
            let (info, change) = state.classes.put(name, bytes).await?;
            Ok(put_answer(change, info))
        }
        (Admin::Class(name), Method::GET) => state
            .classes
            .get(&name)
            .map(|class| {
                json(
                    StatusCode::OK,
                    &serde_json::to_value(class.info()).expect("class info serializes"),
                )
            })
            .ok_or_else(|| ApiError::NotFound(format!("no class named {name}"))),
        (Admin::Class(name), Method::DELETE) => deleted(
            state.classes.delete(&name).await?,
            format!("no class named {name}"),
        ),
        (Admin::Migrations, Method::GET) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({ "applied": state.classes.migrations().await }),
        )),
        (Admin::Migrations, Method::POST) => {
            let bytes = body_of(state, request, MAX_DOCUMENT_BYTES).await?;
            let migration: Migration = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::BadRequest(format!("not a migration: {e}")))?;
            let applied = state.classes.migrate(&migration).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({ "tag": migration.tag, "applied": applied }),
            ))
        }
        (Admin::Worker, Method::PUT) => {
            let object_routes = route::query_value(request.uri().query(), "object_routes")
                .map_err(|_| ApiError::BadRequest("bad object_routes".into()))?
                .is_none_or(|v| v != "false");
            let bytes = body_of(state, request, state.limits.max_component_bytes).await?;
            let (info, change) = state.classes.put_worker(bytes, object_routes).await?;
            Ok(put_answer(change, info))
        }
        (Admin::Worker, Method::GET) => state
            .classes
            .worker()
            .map(|w| {
                json(
                    StatusCode::OK,
                    &serde_json::to_value(&w.info).expect("serializes"),
                )
            })
            .ok_or_else(|| ApiError::NotFound("no worker is deployed".into())),
        (Admin::Worker, Method::DELETE) => deleted(
            state.classes.delete_worker().await?,
            "no worker is deployed".into(),
        ),
        (Admin::Assets, Method::PUT) => {
            let bytes = body_of(state, request, state.limits.max_component_bytes).await?;
            let change = state.classes.set_assets(Some(bytes)).await?;
            let assets = state.classes.assets().expect("just set");
            Ok(put_answer(change, assets.info()))
        }
        (Admin::Assets, Method::GET) => state
            .classes
            .assets()
            .map(|a| json(StatusCode::OK, &a.info()))
            .ok_or_else(|| ApiError::NotFound("no assets are deployed".into())),
        (Admin::Assets, Method::DELETE) => deleted(
            state.classes.set_assets(None).await? != Change::Unchanged,
            "no assets are deployed".into(),
        ),
        (Admin::Bindings, Method::GET) => Ok(document(&state.classes.bindings())),
        (Admin::Bindings, Method::PUT) => {
            let bindings: crate::class::Bindings = document_body(
                state,
                request,
                "a JSON object of binding name -> class name",
            )
            .await?;
            state.classes.set_bindings(bindings.clone()).await?;
            Ok(document(&bindings))
        }
        (Admin::Outbound, Method::GET) => Ok(document(&*state.classes.outbound())),
        (Admin::Outbound, Method::PUT) => {
            let outbound: crate::outbound::Outbound = document_body(
                state,
                request,
                r#"{"classes": {"<class>": {"allowed_hosts": [...]}}, "worker": {...}}"#,
            )
            .await?;
            state.classes.set_outbound(outbound.clone()).await?;
            Ok(document(&outbound))
        }
        // Secrets go in, never out: answers name them without their values.
        (Admin::Vars, Method::GET) => Ok(document(&state.classes.vars().public())),
        (Admin::Vars, Method::PUT) => {
            let vars: crate::class::Vars = document_body(
                state,
                request,
                r#"{"vars": {"NAME": "value"}, "secrets": {"NAME": "value"}}"#,
            )
            .await?;
            let public = vars.public();
            state.classes.set_vars(vars).await?;
            Ok(document(&public))
        }
        (Admin::Check, Method::POST) => {
            let worker = route::query_value(request.uri().query(), "world")
                .map_err(|_| ApiError::BadRequest("bad world".into()))?
                .is_some_and(|w| w == "worker");
            let bytes = body_of(state, request, state.limits.max_component_bytes).await?;
            state.classes.check(bytes, worker).await?;
            Ok(json(StatusCode::OK, &serde_json::json!({ "ok": true })))
        }
        (Admin::Objects(class), Method::GET) => {
            inspect::objects(state, &class, request.uri().query()).await
        }
        (Admin::Object(class, object, part), Method::GET) => {
            let query = request.uri().query();
            match part {
                ObjectPart::Whole => inspect::object_entries(state, &class, object, query).await,
                ObjectPart::Sql => inspect::object_sql(state, &class, object, query).await,
                ObjectPart::Entry(key) => inspect::object_entry(state, &class, object, key).await,
                ObjectPart::Alarm => inspect::object_alarm(state, &class, object).await,
                ObjectPart::Socket(_) | ObjectPart::Export | ObjectPart::Import => {
                    Err(ApiError::MethodNotAllowed)
                }
            }
        }
        // A change (GET is matched above): relayed to the node that runs the object, if that
        // is another one.
        (Admin::Object(class, object, part), method) => {
            match super::edit::owner_elsewhere(state, &class, &object, &request).await? {
                Some(owner) => super::edit::relay(state, &owner, request).await,
                None if part == ObjectPart::Import && method == Method::POST => {
                    super::transfer::import(state, &class, object, request).await
                }
                None => super::edit::route(state, &class, object, part, request)
                    .await
                    .unwrap_or(Err(ApiError::MethodNotAllowed)),
            }
        }
        (Admin::Backup, _) => Err(ApiError::MethodNotAllowed),
        _ => Err(ApiError::MethodNotAllowed),
    }
}
