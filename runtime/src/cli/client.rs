//! The admin API's client for the commands that talk to a running runtime (`deploy`,
//! `classes`, `objects`, `backup`, …): requests with the bearer token, errors that say what
//! went wrong, uploads announced and timed, and the deploy config's [`Target`] over HTTP.

use anyhow::{Context, bail};

use super::AdminArgs;
use crate::class::{Change, Migration};
use crate::deploy::Target;
use crate::ids::ClassName;

impl AdminArgs {
    pub(super) fn client(&self) -> AdminClient {
        let base = self.admin_url.trim_end_matches('/');
        let base = match base.contains("://") {
            true => base.to_string(),
            false => format!("http://{base}"),
        };
        AdminClient {
            base,
            // A blank token is no token (the server refuses to start with one).
            token: self.admin_token.clone().filter(|t| !t.trim().is_empty()),
            http: reqwest::Client::new(),
        }
    }
}

pub(super) struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// The type of a JSON body (a document, a migration).
pub(super) const JSON: &str = "application/json";

impl AdminClient {
    /// A request with no body, or a JSON one.
    pub(super) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let kind = (!body.is_empty()).then_some(JSON);
        self.send_body(method, path, body.into(), kind, None).await
    }

    /// `send` with any body (a stream, for an upload that reports progress) of type `kind`
    /// (the admin API refuses a write without one); `length`: its size, sent as
    /// `Content-Length` so that the server can refuse one over its limit at once.
    pub(super) async fn send_body(
        &self,
        method: reqwest::Method,
        path: &str,
        body: reqwest::Body,
        kind: Option<&str>,
        length: Option<usize>,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(kind) = kind {
            request = request.header(reqwest::header::CONTENT_TYPE, kind);
        }
        if let Some(length) = length {
            request = request.header(reqwest::header::CONTENT_LENGTH, length);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| self.unreachable())?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        Ok((status, text))
    }

    /// `send` for a component, or the assets (`what`; `compiled`: the server compiles it): a
    /// large one is announced on stderr (the server compiles a new component once, which takes
    /// seconds for a JavaScript or Python one), its upload and the server's work shown as they
    /// go (`progress::upload`), and timed.
    pub(super) async fn send_component(
        &self,
        what: &str,
        compiled: bool,
        method: reqwest::Method,
        path: &str,
        component: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        const ANNOUNCE_BYTES: usize = 1 << 20;
        let kind = Some(match compiled {
            true => "application/wasm",
            false => "application/octet-stream",
        });
        if component.len() < ANNOUNCE_BYTES {
            return self
                .send_body(method, path, component.into(), kind, None)
                .await;
        }
        // The server answers a bad token before it reads a body: a large upload would end in a
        // broken pipe instead of the 401. A small authenticated call says it first.
        self.send(reqwest::Method::GET, "/migrations", Vec::new())
            .await?;
        eprintln!(
            "sending {what} ({:.1} MiB{})...",
            component.len() as f64 / 1_048_576.0,
            if compiled {
                "; a new component is compiled once, this can take seconds"
            } else {
                ""
            }
        );
        let length = component.len();
        super::progress::upload(what, compiled, component, |body| {
            self.send_body(method, path, body, kind, Some(length))
        })
        .await
    }
}

impl AdminClient {
    /// `GET path`, answered with a success: its body is read as it comes.
    pub(super) async fn get_streaming(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| self.unreachable())?;
        if !response.status().is_success() {
            let status = response.status();
            bail!("{status}: {}", response.text().await.unwrap_or_default());
        }
        Ok(response)
    }

    /// Streams `GET /backup` into `dir/duro.redb` (through a temporary file, synced, then
    /// renamed). Returns the bytes written.
    pub(super) async fn backup(&self, dir: &std::path::Path) -> anyhow::Result<u64> {
        use std::io::Write;
        let target = dir.join(crate::storage::DB_FILE);
        if target.exists() {
            bail!("{} exists already: give a new directory", target.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut response = self.get_streaming("/backup").await?;
        let partial = dir.join("duro.redb.partial");
        let mut file = std::fs::File::create(&partial)
            .with_context(|| format!("creating {}", partial.display()))?;
        let mut written = 0u64;
        while let Some(chunk) = response.chunk().await.context("receiving the backup")? {
            file.write_all(&chunk).context("writing the backup")?;
            written += chunk.len() as u64;
        }
        file.sync_all().context("syncing the backup")?;
        std::fs::rename(&partial, &target).context("renaming the backup")?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .context("syncing the backup's directory")?;
        Ok(written)
    }
}

impl AdminClient {
    /// Uploads a class's component; the admin API's status and answer.
    pub(super) async fn put_class(
        &self,
        class: &ClassName,
        component: Vec<u8>,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        self.send_component(
            &format!("class {class}"),
            true,
            reqwest::Method::PUT,
            &format!("/classes/{class}"),
            component,
        )
        .await
    }

    /// Why a request did not reach the server, and what to check.
    pub(super) fn unreachable(&self) -> String {
        format!(
            "cannot reach the admin API at {} (is `duro serve` running? --admin-url or \
             DURO_ADMIN_URL names another address)",
            self.base
        )
    }
}

impl Target for AdminClient {
    async fn check(&self, component: Vec<u8>, worker: bool) -> anyhow::Result<()> {
        let world = if worker { "worker" } else { "class" };
        self.send_component(
            &format!("the {world} component to check"),
            true,
            reqwest::Method::POST,
            &format!("/check?world={world}"),
            component,
        )
        .await
        .map(drop)
    }

    async fn bind(&self, bindings: &crate::class::Bindings) -> anyhow::Result<()> {
        let body = serde_json::to_vec(bindings)?;
        self.send(reqwest::Method::PUT, "/bindings", body)
            .await
            .map(drop)
    }

    async fn set_outbound(&self, outbound: &crate::outbound::Outbound) -> anyhow::Result<()> {
        let body = serde_json::to_vec(outbound)?;
        self.send(reqwest::Method::PUT, "/outbound", body)
            .await
            .map(drop)
    }

    async fn set_vars(&self, vars: &crate::class::Vars) -> anyhow::Result<()> {
        let body = serde_json::to_vec(vars)?;
        self.send(reqwest::Method::PUT, "/vars", body)
            .await
            .map(drop)
    }

    async fn upload_worker(
        &self,
        component: Vec<u8>,
        object_routes: bool,
    ) -> anyhow::Result<Change> {
        let path = format!("/worker?object_routes={object_routes}");
        let answer = self
            .send_component("the worker", true, reqwest::Method::PUT, &path, component)
            .await?;
        Ok(change_of(answer))
    }

    async fn set_assets(&self, bundle: Vec<u8>) -> anyhow::Result<Change> {
        let answer = self
            .send_component("the assets", false, reqwest::Method::PUT, "/assets", bundle)
            .await?;
        Ok(change_of(answer))
    }

    async fn migrate(&self, migration: &Migration) -> anyhow::Result<bool> {
        let body = serde_json::to_vec(migration)?;
        let (_, text) = self
            .send(reqwest::Method::POST, "/migrations", body)
            .await?;
        let answer: serde_json::Value = serde_json::from_str(&text)?;
        answer["applied"]
            .as_bool()
            .ok_or_else(|| anyhow::anyhow!("unexpected answer to a migration: {text}"))
    }

    async fn upload(&self, class: &ClassName, component: Vec<u8>) -> anyhow::Result<Change> {
        Ok(change_of(self.put_class(class, component).await?))
    }
}

/// What an upload did, from the admin API's answer (its `change`; a server without that field
/// answered 201 for a creation).
pub(super) fn change_of((status, body): (reqwest::StatusCode, String)) -> Change {
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match answer["change"].as_str() {
        Some("unchanged") => Change::Unchanged,
        _ if status == reqwest::StatusCode::CREATED => Change::Created,
        _ => Change::Replaced,
    }
}
