//! `GET /tail[?class=C][&object=NAME_OR_ID]`: the live tail (`crate::tail`) as server-sent
//! events, one JSON event per `data:` line; a comment first (the tail is listening), one every
//! 15 s to keep the connection open, and `event: missed` with a count when this client fell too
//! far behind.

use std::time::Duration;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use super::admin::AdminBody;
use super::error::ApiError;
use super::inspect::query;
use crate::tail::Listener;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub(super) fn tail(query_string: Option<&str>) -> Result<http::Response<AdminBody>, ApiError> {
    let class = query(query_string, "class")?;
    let object = query(query_string, "object")?;
    let listener = Listener::new();
    let first = Bytes::from_static(b": listening\n\n");
    let events = futures_util::stream::unfold(
        (listener, class, object, Some(first)),
        |(mut listener, class, object, first)| async move {
            if let Some(first) = first {
                return Some((Ok(Frame::data(first)), (listener, class, object, None)));
            }
            let text = loop {
                tokio::select! {
                    event = listener.next() => match event {
                        Ok(event) if event.matches(class.as_deref(), object.as_deref()) => {
                            let json = serde_json::to_string(&event).expect("an event serializes");
                            break format!("data: {json}\n\n");
                        }
                        Ok(_) => {}
                        Err(missed) => break format!("event: missed\ndata: {missed}\n\n"),
                    },
                    () = tokio::time::sleep(KEEP_ALIVE) => break ": keep-alive\n\n".to_string(),
                }
            };
            let frame = Ok::<_, std::io::Error>(Frame::data(Bytes::from(text)));
            Some((frame, (listener, class, object, None)))
        },
    );
    let mut response = http::Response::new(StreamBody::new(events).boxed());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    Ok(response)
}
