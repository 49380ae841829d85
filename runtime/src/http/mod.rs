//! HTTP: the accept loops of the two listeners (ingress, admin), with graceful shutdown, and the
//! body reader that enforces size limits. Routing lives in `route`, handlers in `ingress` and
//! `admin`, status mapping in `error`, the access log in `access`.

pub mod admin;
mod edit;
pub mod error;
mod forward;
pub mod guard;
pub mod ingress;
mod inspect;
mod inspector;
pub mod route;
pub mod tail;
mod top;
mod transfer;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::metrics::Metrics;
use error::ApiError;

/// The address of the client a request came from (a request extension): objects and the worker
/// see it as `CF-Connecting-IP`, as on Cloudflare.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::SocketAddr);

/// How one listener treats its connections.
#[derive(Clone)]
pub struct Listening {
    /// Time to send request headers; also the life of an idle keep-alive connection.
    pub header_timeout: Duration,
    /// One permit per open connection: the listener's connection cap.
    pub connections: Arc<Semaphore>,
    /// How long a shutdown waits for open requests before closing their connections.
    pub drain_timeout: Duration,
    pub metrics: Arc<Metrics>,
}

/// File descriptors kept out of the ingress cap: the admin listener's connections come on top,
/// plus the database, the log, compiled-cache files and the runtime's own.
const RESERVED_FDS: usize = 512;

/// The ingress connection cap in effect: `configured`, lowered if the process's file descriptor
/// limit (raised to its hard limit first) could not hold that many connections plus the admin
/// listener's and the runtime's own files. At the limit `accept` would fail for both listeners
/// alike; below it, ingress clients get 503 and the admin API stays reachable.
pub fn connection_cap(configured: usize, admin: usize) -> usize {
    let Some(fds) = raise_fd_limit() else {
        return configured;
    };
    let room = fds.saturating_sub(admin + RESERVED_FDS).max(1);
    if configured > room {
        tracing::warn!(
            configured,
            cap = room,
            fd_limit = fds,
            "--max-connections lowered to fit the file descriptor limit"
        );
    }
    configured.min(room)
}

/// Raises the soft limit on open files to the hard limit; returns the limit in effect.
#[cfg(unix)]
fn raise_fd_limit() -> Option<usize> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).ok()
}

#[cfg(not(unix))]
fn raise_fd_limit() -> Option<usize> {
    None
}

/// What a client over the connection cap reads before its connection closes.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 51\r\n\r\n\
{\"error\":\"too many open connections; retry later\"}\n";
/// How long writing that answer may take.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most bytes a request's target and headers may take (Cloudflare allows 128 KB); more is
/// answered 431 with the JSON error. Past hyper's own buffer (~400 KB) hyper answers 431 itself,
/// with no body, and closes the connection.
pub const MAX_HEAD_BYTES: usize = 128 * 1024;

/// Refuses a request whose target and headers take more than [`MAX_HEAD_BYTES`].
pub fn check_head<B>(request: &http::Request<B>) -> Result<(), ApiError> {
    let headers: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let bytes = headers + request.uri().to_string().len();
    if bytes > MAX_HEAD_BYTES {
        return Err(ApiError::HeadersTooLarge(format!(
            "the request's target and headers take {bytes} bytes; the limit is {MAX_HEAD_BYTES}"
        )));
    }
    Ok(())
}

/// Serves `listener` with `handler` until `stop` turns true, then drains open connections for at
/// most the drain timeout and closes what is left.
pub async fn serve<H, F, B>(
    listener: TcpListener,
    handler: H,
    stop: watch::Receiver<bool>,
    listening: Listening,
) where
    H: Fn(http::Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = http::Response<B>> + Send + 'static,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(listening.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(listening.header_timeout)
        .keep_alive_timeout(listening.header_timeout);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let stopped = stopped(stop);
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors, most likely: wait for some to close.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = listening.connections.clone().try_acquire_owned() else {
                    listening.metrics.connections_refused.inc();
                    connections.spawn(refuse(stream));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |mut request: http::Request<Incoming>| {
                    request.extensions_mut().insert(ClientAddr(peer));
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(request).await) }
                });
                let (builder, watcher) = (builder.clone(), graceful.watcher());
                let header_timeout = listening.header_timeout;
                connections.spawn(async move {
                    if sent_first_bytes(&stream, header_timeout).await {
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service);
                        if let Err(error) = watcher.watch(connection.into_owned()).await {
                            tracing::debug!(error = %error, "connection ended with an error");
                        }
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut stopped => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(listening.drain_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain timeout; closing them"
        );
    }
    // Whatever is left (a client that never finishes its request) is cut off: its task holds
    // handles on the runtime, which could otherwise never finish stopping.
    connections.shutdown().await;
}

/// Waits, at most `deadline`, until the client has sent enough to tell HTTP/1 from HTTP/2.
/// hyper-util's `auto` builder sniffs the version before hyper's own header timeout starts, with
/// no deadline of its own, so a client that sends nothing would otherwise be kept forever.
/// `false`: the client went away or stayed silent; close the connection.
async fn sent_first_bytes(stream: &TcpStream, deadline: Duration) -> bool {
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let sniff = async {
        let mut buf = [0u8; 24];
        loop {
            match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) if n == PREFACE.len() || buf[..n] != PREFACE[..n] => return true,
                // A prefix of the HTTP/2 preface: peek would return the same bytes at once.
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    };
    tokio::time::timeout(deadline, sniff).await.unwrap_or(false)
}

/// Answers a connection over the cap with 503 and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, async {
        stream.write_all(REFUSED).await?;
        stream.shutdown().await
    })
    .await;
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// How much of a refused body is still read and dropped, and for how long, before the 413: the
/// connection is closed after it, and closing with unread bytes resets it, which can destroy the
/// 413 before the client reads it.
const DRAIN_BYTES: usize = 256 * 1024;
const DRAIN_TIME: Duration = Duration::from_secs(1);

/// Reads a whole body of at most `max` bytes within `timeout`; more is a 413, slower a 408.
pub async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(timeout, read_limited(headers, body, max))
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::RequestTimeout(format!(
                "the request body was not received within {} ms",
                timeout.as_millis()
            )))
        })
}

async fn read_limited(
    headers: &http::HeaderMap,
    mut body: Incoming,
    max: usize,
) -> Result<Bytes, ApiError> {
    let too_large = || ApiError::PayloadTooLarge(format!("request body exceeds {max} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_none_or(|len| len <= max as u64) {
        let mut collected = Vec::new();
        loop {
            let Some(frame) = body.frame().await else {
                return Ok(collected.into());
            };
            let frame = frame.map_err(|error| {
                ApiError::BadRequest(format!("could not read the request body: {error}"))
            })?;
            if let Ok(data) = frame.into_data() {
                if collected.len() + data.len() > max {
                    break;
                }
                collected.extend_from_slice(&data);
            }
        }
    }
    let drain = async {
        let mut drained = 0;
        while drained < DRAIN_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => drained += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, drain).await;
    Err(too_large())
}
