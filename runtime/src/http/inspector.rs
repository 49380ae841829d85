//! The inspector: a web page served by the admin listener (`/inspector`), three static files
//! compiled into the binary. They hold no data and need no token; the page asks for the token in
//! a login form, keeps it in the tab's session storage and sends it as the bearer token of its
//! calls to the admin API (never in a URL). It reads what the admin API reads: classes and the
//! worker with their code versions, objects found by name, one object's storage (edited as its
//! events), alarm, sockets and metering, the costliest objects, and the live tail.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use super::error::Body;

/// The page's files: name (after `/inspector/`; the page itself is ""), content type, text.
const FILES: [(&str, &str, &str); 3] = [
    (
        "",
        "text/html; charset=utf-8",
        include_str!("inspector/index.html"),
    ),
    (
        "inspector.js",
        "text/javascript; charset=utf-8",
        include_str!("inspector/inspector.js"),
    ),
    (
        "inspector.css",
        "text/css; charset=utf-8",
        include_str!("inspector/inspector.css"),
    ),
];

/// Scripts and styles from this origin only, calls to this origin only, no frames: data shown
/// by the page (keys, values, log lines) can never run as code.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'none'; base-uri 'none'; \
    frame-ancestors 'none'";

/// The file `name` of the page, or `None`.
pub(super) fn file(name: &str) -> Option<http::Response<Body>> {
    let (_, content_type, text) = FILES.iter().find(|(n, _, _)| *n == name)?;
    let mut response = http::Response::new(Body::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    let fixed = [
        (header::CONTENT_TYPE, *content_type),
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // Small files: checked on every load, so an upgraded server serves its own page.
        (header::CACHE_CONTROL, "no-cache"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    Some(response)
}

/// `GET /`: to the inspector.
pub(super) fn to_the_page() -> http::Response<Body> {
    let mut response = http::Response::new(Body::new(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/inspector"));
    response
}

/// The page's total size in bytes (what a first visit transfers, before compression).
#[cfg(test)]
fn weight() -> usize {
    FILES.iter().map(|(_, _, text)| text.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_served_with_its_type_and_policy() {
        for (name, content_type, _) in FILES {
            let response = file(name).expect("a file");
            assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
            assert!(
                response
                    .headers()
                    .contains_key(header::CONTENT_SECURITY_POLICY)
            );
        }
        assert!(file("nope.js").is_none());
        // The page stays small: no framework, no build step.
        assert!(weight() < 64 * 1024, "{} bytes", weight());
    }
}
