//! Outgoing HTTP: which hosts each class and the worker may reach, and how one request is sent.
//!
//! The deploy config gives each binding's class (and the worker) an `outbound` policy: the hosts it
//! may fetch (none by default), a timeout and a response-size limit. [`send`] enforces them on one
//! request: a refused host is `HttpRequestDenied`, the whole exchange (connect, head, body) must
//! end before the deadline, and a body past the limit ends in `HttpResponseBodySize`. The guest side
//! (`wasi:http/outgoing-handler`, and the output gate that runs before a request leaves) is in
//! `abi::http`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Scheme;
use http_body::{Body, Frame, SizeHint};
use serde::{Deserialize, Serialize};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use crate::ids::ClassName;

/// Default limit of one request, connect to last body byte.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Default limit of one response body (the limit of an object's own responses).
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 32 * 1024 * 1024;
const MAX_TIMEOUT_MS: u64 = 15 * 60 * 1000;
const MAX_RESPONSE_BYTES_CAP: u64 = 1024 * 1024 * 1024;
/// Most host rules in one policy.
const MAX_RULES: usize = 256;

/// What one class (or the worker) may fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// `host`, `host:port`, `*.domain`, `*`, each optionally with `http://` or `https://`.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "default_max_response")]
    pub max_response_bytes: u64,
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

fn default_max_response() -> u64 {
    DEFAULT_MAX_RESPONSE_BYTES
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// Every policy of a deployment: the admin API's `/outbound` document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Outbound {
    /// Class name -> its policy. A class not named here reaches no host.
    #[serde(default)]
    pub classes: BTreeMap<ClassName, Policy>,
    /// The worker's policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<Policy>,
}

impl Outbound {
    /// Checks every policy; the error names the one at fault.
    pub fn validate(&self) -> Result<(), String> {
        for (class, policy) in &self.classes {
            policy
                .validate()
                .map_err(|e| format!("class {class}: {e}"))?;
        }
        if let Some(policy) = &self.worker {
            policy.validate().map_err(|e| format!("worker: {e}"))?;
        }
        Ok(())
    }
}

impl Policy {
    pub fn validate(&self) -> Result<(), String> {
        if self.allowed_hosts.len() > MAX_RULES {
            return Err(format!("at most {MAX_RULES} allowed hosts"));
        }
        for host in &self.allowed_hosts {
            HostRule::parse(host)?;
        }
        if self.timeout_ms == 0 || self.timeout_ms > MAX_TIMEOUT_MS {
            return Err(format!(
                "timeout_ms must be between 1 and {MAX_TIMEOUT_MS}, not {}",
                self.timeout_ms
            ));
        }
        if self.max_response_bytes == 0 || self.max_response_bytes > MAX_RESPONSE_BYTES_CAP {
            return Err(format!(
                "max_response_bytes must be between 1 and {MAX_RESPONSE_BYTES_CAP}, not {}",
                self.max_response_bytes
            ));
        }
        Ok(())
    }

    /// Whether the policy lets a request to `uri` leave.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        self.allowed_hosts
            .iter()
            .filter_map(|rule| HostRule::parse(rule).ok())
            .any(|rule| rule.matches(uri))
    }
}

/// One parsed `allowed_hosts` entry.
#[derive(Debug, PartialEq, Eq)]
struct HostRule {
    scheme: Option<Scheme>,
    host: HostMatch,
    port: Option<u16>,
}

#[derive(Debug, PartialEq, Eq)]
enum HostMatch {
    Any,
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com`.
    Subdomains(String),
}

impl HostRule {
    fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("allowed host {text:?}: {why}");
        let lower = text.trim().to_ascii_lowercase();
        let (scheme, rest) = match lower.split_once("://") {
            Some(("http", rest)) => (Some(Scheme::HTTP), rest),
            Some(("https", rest)) => (Some(Scheme::HTTPS), rest),
            Some(_) => return Err(bad("the scheme must be http or https")),
            None => (None, lower.as_str()),
        };
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(bad("give a host and maybe a port, not a URL path"));
        }
        let (host, port) = split_port(rest).map_err(|e| bad(&e))?;
        let host = match host {
            "*" => HostMatch::Any,
            _ if host.starts_with("*.") => HostMatch::Subdomains(valid_name(&host[1..], &bad)?),
            _ => HostMatch::Exact(valid_name(host, &bad)?),
        };
        Ok(Self { scheme, host, port })
    }

    fn matches(&self, uri: &http::Uri) -> bool {
        let Some(host) = uri.host() else {
            return false;
        };
        let host = host.to_ascii_lowercase();
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == Scheme::HTTP { 80 } else { 443 });
        let host_ok = match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(name) => *name == host,
            HostMatch::Subdomains(suffix) => host.ends_with(suffix.as_str()),
        };
        host_ok
            && self.scheme.as_ref().is_none_or(|s| *s == scheme)
            && self.port.is_none_or(|p| p == port)
    }
}

/// `host[:port]`, `[v6][:port]`.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("an unclosed [")?;
        let port = after.strip_prefix(':');
        if !after.is_empty() && port.is_none() {
            return Err("text after ]".into());
        }
        (&text[..inside.len() + 2], port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(port) => Some(
            port.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("bad port {port:?}"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

fn valid_name(name: &str, bad: &impl Fn(&str) -> String) -> Result<String, String> {
    let inner = name.trim_start_matches('.');
    let ok = !inner.is_empty()
        && name.len() <= 255
        && (name.starts_with('[') && name.ends_with(']')
            || inner
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(bad("not a host name or address"))
    }
}

/// Who is fetching, for the log and the refusal.
#[derive(Debug, Clone)]
pub enum Caller {
    Class(ClassName),
    Worker,
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Caller::Class(name) => write!(f, "class {name}"),
            Caller::Worker => f.write_str("the worker"),
        }
    }
}

/// The response's body and the task that drives the connection.
pub type Sent = (
    http::Response<WasiBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

/// Sends `request` under `policy`. The guest's own `options` may only shorten the timeout.
pub async fn send(
    caller: Caller,
    policy: Policy,
    request: http::Request<WasiBody>,
    options: Option<RequestOptions>,
) -> Result<Sent, Error> {
    if !policy.allows(request.uri()) {
        tracing::warn!(
            %caller, url = %request.uri(),
            "outgoing fetch refused: the host is not in the deploy config's allowed_hosts"
        );
        return Err(Error::HttpRequestDenied);
    }
    let limit = Duration::from_millis(policy.timeout_ms);
    let deadline = tokio::time::Instant::now() + limit;
    let shorter = |guest: Option<Duration>| Some(guest.map_or(limit, |g| g.min(limit)));
    let options = options.unwrap_or_default();
    let options = RequestOptions {
        connect_timeout: shorter(options.connect_timeout),
        first_byte_timeout: shorter(options.first_byte_timeout),
        between_bytes_timeout: shorter(options.between_bytes_timeout),
    };
    let sent = tokio::time::timeout_at(
        deadline,
        wasmtime_wasi_http::default_send_request(request, Some(options)),
    )
    .await
    .map_err(|_| Error::HttpResponseTimeout)??;
    let (response, io) = sent;
    let max = policy.max_response_bytes;
    let declared = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(Error::HttpResponseBodySize(Some(max)));
    }
    let response = response.map(|body| {
        http_body_util::BodyExt::boxed_unsync(Bounded {
            inner: Box::pin(body),
            left: max,
            max,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        })
    });
    Ok((response, Box::new(io)))
}

/// A response body cut off at a size and a deadline.
struct Bounded<B> {
    inner: Pin<Box<B>>,
    left: u64,
    max: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl<B: Body<Data = Bytes, Error = Error>> Body for Bounded<B> {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Error::HttpResponseTimeout)));
        }
        let frame = match self.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let len = data.len() as u64;
            if len > self.left {
                let max = self.max;
                return Poll::Ready(Some(Err(Error::HttpResponseBodySize(Some(max)))));
            }
            self.left -= len;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(rules: &[&str], url: &str) -> bool {
        let policy = Policy {
            allowed_hosts: rules.iter().map(|r| r.to_string()).collect(),
            ..Policy::default()
        };
        policy.validate().unwrap();
        policy.allows(&url.parse().unwrap())
    }

    #[test]
    fn host_rules_match_host_port_scheme_and_subdomains() {
        assert!(!allows(&[], "https://example.com/"));
        assert!(allows(&["example.com"], "https://EXAMPLE.com/x"));
        assert!(allows(&["example.com"], "http://example.com:8080/"));
        assert!(!allows(&["example.com"], "https://api.example.com/"));
        assert!(allows(&["example.com:8080"], "http://example.com:8080/"));
        assert!(!allows(&["example.com:8080"], "http://example.com/"));
        assert!(allows(&["example.com:80"], "http://example.com/"));
        assert!(allows(&["*.example.com"], "https://api.example.com/"));
        assert!(!allows(&["*.example.com"], "https://example.com/"));
        assert!(!allows(&["*.example.com"], "https://badexample.com/"));
        assert!(allows(&["https://example.com"], "https://example.com/"));
        assert!(!allows(&["https://example.com"], "http://example.com/"));
        assert!(allows(&["127.0.0.1:9000"], "http://127.0.0.1:9000/x"));
        assert!(allows(&["[::1]:9000"], "http://[::1]:9000/x"));
        assert!(allows(&["*"], "https://anything.test/"));
    }

    #[test]
    fn malformed_rules_and_limits_are_refused_with_the_reason() {
        let check = |rule: &str| {
            Policy {
                allowed_hosts: vec![rule.into()],
                ..Policy::default()
            }
            .validate()
        };
        for bad in [
            "ftp://example.com",
            "example.com/path",
            "user@example.com",
            "example.com:0",
            "example.com:99999",
            "exa mple.com",
            "",
            "[::1",
            "*.",
        ] {
            let error = check(bad).unwrap_err();
            assert!(error.contains("allowed host"), "{bad}: {error}");
        }
        let zero = Policy {
            timeout_ms: 0,
            ..Policy::default()
        };
        assert!(zero.validate().unwrap_err().contains("timeout_ms"));
        let doc: Outbound = serde_json::from_str(
            r#"{"classes": {"Counter": {"allowed_hosts": ["a.test"], "max_response_bytes": 0}}}"#,
        )
        .unwrap();
        let error = doc.validate().unwrap_err();
        assert!(
            error.starts_with("class Counter: max_response_bytes"),
            "{error}"
        );
        assert!(serde_json::from_str::<Outbound>(r#"{"klasses": {}}"#).is_err());
    }
}
