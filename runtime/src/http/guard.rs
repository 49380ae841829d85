//! Who may drive the admin API. Every request passes [`check`] before anything else reads it:
//!
//! 1. **Host**: the name the client used must be this listener's — an IP address, `localhost`,
//!    the cluster's advertised host, or a name the operator allows (`--admin-host`). A web page
//!    that rebinds its own DNS name to 127.0.0.1 sends its name, so it is refused: DNS
//!    rebinding cannot read `/backup`.
//! 2. **Cross-site**: a request a browser marks as coming from another site (`Sec-Fetch-Site`
//!    other than `same-origin` or `none`, or an `Origin` that is not the listener's own) is
//!    refused. The inspector's own files are exempt (a link may open the page; they hold no
//!    data).
//! 3. **The bearer token**, when one is set (the page's files load without it).
//! 4. **Content type of a write**: a body must come with a type a cross-site form or a `no-cors`
//!    fetch cannot send — never none, `text/plain`, `multipart/form-data` or
//!    `application/x-www-form-urlencoded` — and JSON routes take `application/json`. A page of
//!    another origin can only send such types after a CORS preflight, which duro never grants.
//!
//! The first two and the last hold whether or not a token is set: the quick start serves the
//! admin listener on loopback without one, and any page the operator opens can reach loopback.

use http::{HeaderMap, Method, header};

use super::error::ApiError;
use super::route::{Admin, ObjectPart};

/// Host names (beyond IP addresses and `localhost`) the admin listener answers to.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    /// The operator's lowercase names; one starting with `.` allows that domain's subdomains.
    names: Vec<String>,
    /// The cluster's advertised host: other nodes' calls use it (they send no `Origin`).
    advertise: Option<String>,
    /// `*`: every name (only with a token: checked by the config).
    any: bool,
}

impl AllowedHosts {
    /// The operator's `--admin-host` names, and the cluster's advertised address (other nodes
    /// reach this one by it).
    pub fn new(names: &[String], advertise: Option<&str>) -> Self {
        let mut allowed = Self {
            advertise: advertise.map(|a| host_only(a.trim()).to_ascii_lowercase()),
            ..Self::default()
        };
        for name in names {
            let name = host_only(name.trim()).to_ascii_lowercase();
            if name == "*" {
                allowed.any = true;
            } else if !name.is_empty() {
                allowed.names.push(name);
            }
        }
        allowed
    }

    fn allows(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        self.any
            || bare.parse::<std::net::IpAddr>().is_ok()
            || host == "localhost"
            || host.ends_with(".localhost")
            || self.advertise.as_deref() == Some(host.as_str())
            || self.names.iter().any(|name| match name.strip_prefix('.') {
                Some(domain) => host.ends_with(name.as_str()) || host == domain,
                None => host == *name,
            })
    }
}

/// The host of a `Host` value or an authority: without its port, IPv6 brackets kept.
fn host_only(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

/// Whether `request` (to `route`, when it parsed) may be answered; `page`: it is a GET of the
/// inspector's own files.
pub fn check<B>(
    request: &http::Request<B>,
    route: Option<&Admin>,
    page: bool,
    hosts: &AllowedHosts,
    token: Option<&str>,
) -> Result<(), ApiError> {
    let headers = request.headers();
    let authority = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if let Some(authority) = authority {
        let host = host_only(authority);
        if !hosts.allows(host) {
            return Err(ApiError::Forbidden(format!(
                "the admin API does not answer to the host name {host:?} (a web page's DNS \
                 name pointing here must not reach it); allow it with --admin-host {host}"
            )));
        }
    }
    if !page {
        same_origin(headers, authority, hosts)?;
        authorize(headers, token)?;
    }
    if let Some(route) = route {
        content_type(request.method(), headers, route)?;
    }
    Ok(())
}

/// Refuses what a browser says came from another site. An `Origin` passes when it is the host
/// and port the request was sent to, or (behind a proxy that rewrites `Host`) a name the operator
/// allowed with `--admin-host`.
fn same_origin(
    headers: &HeaderMap,
    authority: Option<&str>,
    hosts: &AllowedHosts,
) -> Result<(), ApiError> {
    let cross = || {
        ApiError::Forbidden(
            "cross-site request refused: the admin API answers its own page and non-browser \
             clients only"
                .into(),
        )
    };
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return Err(cross());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let Some(origin_authority) = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
        else {
            return Err(cross());
        };
        let same = authority.is_some_and(|a| a.eq_ignore_ascii_case(origin_authority));
        let named = hosts.names.iter().any(|name| {
            !name.starts_with('.') && host_only(origin_authority).eq_ignore_ascii_case(name)
        });
        if !same && !named {
            return Err(cross());
        }
    }
    Ok(())
}

/// Types a page of another origin can send without a preflight (and none at all).
const SIMPLE_TYPES: [&str; 3] = [
    "text/plain",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
];

/// What a write to `route` must be sent as.
enum Expected {
    Json,
    JsonLines,
    /// Bytes: any type but the simple ones (the hint names the usual one).
    Bytes(&'static str),
}

fn expected(method: &Method, route: &Admin) -> Option<Expected> {
    use Expected::*;
    Some(match (route, method) {
        (Admin::Migrations, &Method::POST)
        | (Admin::Bindings | Admin::Outbound | Admin::Vars, &Method::PUT)
        | (Admin::Object(_, _, ObjectPart::Alarm), &Method::PUT) => Json,
        (Admin::Object(_, _, ObjectPart::Import), &Method::POST) => JsonLines,
        (Admin::Class(_) | Admin::Worker, &Method::PUT) | (Admin::Check, &Method::POST) => {
            Bytes("application/wasm")
        }
        (Admin::Assets, &Method::PUT)
        | (Admin::Object(_, _, ObjectPart::Entry(_)), &Method::PUT)
        | (Admin::Forward, &Method::POST) => Bytes("application/octet-stream"),
        (_, &Method::POST | &Method::PUT | &Method::PATCH) => Bytes("application/json"),
        _ => return None,
    })
}

/// Refuses a write whose body a cross-site page could have sent, or JSON sent as anything else.
fn content_type(method: &Method, headers: &HeaderMap, route: &Admin) -> Result<(), ApiError> {
    let Some(expected) = expected(method, route) else {
        return Ok(());
    };
    let given = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    let fits = match (&expected, given.as_deref()) {
        (_, None) => false,
        (_, Some(simple)) if SIMPLE_TYPES.contains(&simple) => false,
        (Expected::Json, Some(t)) => t == "application/json",
        (Expected::JsonLines, Some(t)) => {
            matches!(
                t,
                "application/x-ndjson" | "application/jsonl" | "application/json"
            )
        }
        (Expected::Bytes(_), Some(_)) => true,
    };
    if fits {
        return Ok(());
    }
    let wanted = match expected {
        Expected::Json => "application/json",
        Expected::JsonLines => "application/x-ndjson",
        Expected::Bytes(usual) => usual,
    };
    Err(ApiError::UnsupportedMediaType(format!(
        "this admin route takes Content-Type: {wanted} (got {}); the duro CLI sends it",
        given.as_deref().unwrap_or("none")
    )))
}

/// Checks the bearer token, when one is set.
fn authorize(headers: &HeaderMap, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .unwrap_or("");
    if !given.is_empty() && constant_time_eq(given.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized)
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 7235), the token is not.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start())
}

/// Compares without an early exit, so the time taken does not reveal the token's prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> http::Request<()> {
        let mut builder = http::Request::builder()
            .method(Method::POST)
            .uri("/migrations");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    fn verdict(headers: &[(&str, &str)], hosts: &AllowedHosts) -> u16 {
        match check(
            &request(headers),
            Some(&Admin::Migrations),
            false,
            hosts,
            None,
        ) {
            Ok(()) => 200,
            Err(e) => e.status().as_u16(),
        }
    }

    #[test]
    fn the_listeners_own_names_pass_and_other_names_are_refused() {
        let hosts = AllowedHosts::new(&["duro.internal".into(), ".corp.example".into()], None);
        let json = ("content-type", "application/json");
        for host in [
            "127.0.0.1:8788",
            "localhost:8788",
            "[::1]:8788",
            "DURO.internal",
            "a.corp.example:1",
            "app.localhost",
        ] {
            assert_eq!(verdict(&[("host", host), json], &hosts), 200, "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8788",
            "duro.internal.evil",
            "corp.example.evil",
        ] {
            assert_eq!(verdict(&[("host", host), json], &hosts), 403, "{host}");
        }
        let any = AllowedHosts::new(&["*".into()], None);
        assert_eq!(verdict(&[("host", "evil.example"), json], &any), 200);
    }

    #[test]
    fn cross_site_requests_are_refused() {
        let hosts = AllowedHosts::default();
        let (host, json) = (
            ("host", "127.0.0.1:8788"),
            ("content-type", "application/json"),
        );
        assert_eq!(
            verdict(&[host, json, ("sec-fetch-site", "cross-site")], &hosts),
            403
        );
        assert_eq!(
            verdict(&[host, json, ("sec-fetch-site", "same-site")], &hosts),
            403
        );
        assert_eq!(
            verdict(&[host, json, ("origin", "http://evil.example")], &hosts),
            403
        );
        assert_eq!(verdict(&[host, json, ("origin", "null")], &hosts), 403);
        let same = [
            host,
            json,
            ("origin", "http://127.0.0.1:8788"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(verdict(&same, &hosts), 200);
    }

    #[test]
    fn a_write_must_say_a_type_no_form_can_send() {
        let hosts = AllowedHosts::default();
        let host = ("host", "127.0.0.1:8788");
        assert_eq!(verdict(&[host], &hosts), 415);
        for simple in [
            "text/plain",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
        ] {
            assert_eq!(verdict(&[host, ("content-type", simple)], &hosts), 415);
        }
        assert_eq!(
            verdict(&[host, ("content-type", "application/wasm")], &hosts),
            415
        );
        assert_eq!(
            verdict(
                &[host, ("content-type", "Application/JSON; charset=utf-8")],
                &hosts
            ),
            200
        );
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_the_token_is_not() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"ABC"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
