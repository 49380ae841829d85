//! Outgoing HTTP: [`fetch`] an external URL through `wasi:http/outgoing-handler`.

use wasip2::http::outgoing_handler;
use wasip2::http::types::{ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

use crate::{Error, Request, Response, Result};

/// Sends `request` to its URL (`https://...` or `http://...`) and returns the whole response.
///
/// The deploy config decides which hosts a class (or the worker) may reach — none unless its
/// `outbound.allowed_hosts` names them —, how long a request may take and how large its response
/// may be. An object's writes made before the fetch are durable before the request leaves, as
/// for calls to other objects. Any status is an `Ok` response; a refused host, a timeout, a
/// response over the limit or a network failure is an [`Error::Fetch`].
///
/// ```no_run
/// # fn run() -> duro_sdk::Result<()> {
/// let answer = duro_sdk::fetch(
///     duro_sdk::Request::new("GET", "https://api.example.com/rates?base=EUR"),
/// )?;
/// let rates: serde_json::Value = answer.json_body()?;
/// # Ok(())
/// # }
/// ```
pub fn fetch(request: Request) -> Result<Response> {
    let parts = request;
    let (scheme, rest) = parts
        .url
        .split_once("://")
        .ok_or_else(|| fetch_error(format!("not an absolute URL: {:?}", parts.url)))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        other => return Err(fetch_error(format!("unsupported scheme {other:?}"))),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(at) => (&rest[..at], rest[at..].to_string()),
        None => (rest, "/".to_string()),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path
    };
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    let headers = Fields::from_list(&headers)
        .map_err(|e| fetch_error(format!("a request header is not allowed: {e:?}")))?;
    let outgoing = OutgoingRequest::new(headers);
    let method = match parts.method.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    };
    let invalid = |what: &str| fetch_error(format!("invalid {what}"));
    outgoing
        .set_method(&method)
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&scheme))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&path))
        .map_err(|()| invalid("path"))?;
    let body = outgoing.body().map_err(|()| invalid("body"))?;
    let pending = outgoing_handler::handle(outgoing, None).map_err(failed)?;
    {
        let stream = body.write().map_err(|()| invalid("body"))?;
        for chunk in parts.body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| fetch_error(format!("sending the body: {e:?}")))?;
        }
    }
    OutgoingBody::finish(body, None).map_err(failed)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(failed(code)),
        _ => return Err(fetch_error("the response was lost".into())),
    };
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();
    let incoming = response.consume().map_err(|()| invalid("response"))?;
    let mut bytes = Vec::new();
    {
        let stream = incoming.stream().map_err(|()| invalid("response"))?;
        loop {
            match stream.blocking_read(64 * 1024) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(StreamError::Closed) => break,
                Err(StreamError::LastOperationFailed(e)) => {
                    let code = wasip2::http::types::http_error_code(&e);
                    return Err(match code {
                        Some(code) => failed(code),
                        None => fetch_error(format!("reading the body: {}", e.to_debug_string())),
                    });
                }
            }
        }
    }
    Ok(Response {
        status,
        headers,
        body: bytes,
    })
}

fn fetch_error(message: String) -> Error {
    Error::Fetch(message)
}

/// A sentence for each error code a caller is likely to meet.
fn failed(code: ErrorCode) -> Error {
    fetch_error(match code {
        ErrorCode::HttpRequestDenied => "the host is not allowed: add it to this class's (or the \
             worker's) outbound.allowed_hosts in the deploy config"
            .to_string(),
        ErrorCode::HttpResponseTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout => {
            "no complete answer within the outbound timeout".to_string()
        }
        ErrorCode::HttpResponseBodySize(limit) => format!(
            "the response is larger than the outbound limit ({} bytes)",
            limit.map_or("?".to_string(), |l| l.to_string())
        ),
        ErrorCode::ConnectionRefused => "the connection was refused".to_string(),
        ErrorCode::InternalError(Some(reason)) => reason,
        other => format!("{other:?}"),
    })
}
