//! `GET /tail[?class=C][&object=NAME_OR_ID]`: the live tail (`crate::tail`) as server-sent
//! events, one JSON event per `data:` line; a comment first (the tail is listening), one every
//! 15 s to keep the connection open, and `event: missed` with a count when this client fell too
//! far behind.
//!
//! A tail holds its connection for as long as it runs, so tails have a budget of their own
//! ([`TailBudget`]: [`MAX_TAILS`] at once, [`MAX_TAILS_PER_CLIENT`] from one address), counted
//! beside the admin API's connections: health checks and the API never wait behind tails.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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

/// Tails open at once; the admin listener takes this many connections beyond its cap.
pub const MAX_TAILS: usize = 16;
/// Tails open at once from one client address.
pub const MAX_TAILS_PER_CLIENT: usize = 8;

/// The tails open now, in all and per client address.
#[derive(Default)]
pub struct TailBudget {
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// One open tail's place in the budget, given back when its response is dropped.
pub struct TailPermit {
    budget: Arc<TailBudget>,
    client: IpAddr,
}

impl TailBudget {
    /// A place for a tail of `client`; 503 when all are taken, or its own share is.
    pub fn open(self: &Arc<Self>, client: IpAddr) -> Result<TailPermit, ApiError> {
        let mut open = crate::lock(&self.open);
        let (total, per_client) = &mut *open;
        let mine = per_client.get(&client).copied().unwrap_or(0);
        if *total >= MAX_TAILS || mine >= MAX_TAILS_PER_CLIENT {
            return Err(ApiError::Unavailable(format!(
                "too many open tails ({total} of {MAX_TAILS}, {mine} of \
                 {MAX_TAILS_PER_CLIENT} from your address); close one and retry"
            )));
        }
        *total += 1;
        per_client.insert(client, mine + 1);
        Ok(TailPermit {
            budget: self.clone(),
            client,
        })
    }
}

impl Drop for TailPermit {
    fn drop(&mut self) {
        let mut open = crate::lock(&self.budget.open);
        let (total, per_client) = &mut *open;
        *total -= 1;
        if let Some(mine) = per_client.get_mut(&self.client) {
            *mine -= 1;
            if *mine == 0 {
                per_client.remove(&self.client);
            }
        }
    }
}

pub(super) fn tail(
    permit: TailPermit,
    query_string: Option<&str>,
) -> Result<http::Response<AdminBody>, ApiError> {
    let class = query(query_string, "class")?;
    let object = query(query_string, "object")?;
    let listener = (Listener::new(), permit);
    let first = Bytes::from_static(b": listening\n\n");
    let events = futures_util::stream::unfold(
        (listener, class, object, Some(first)),
        |((mut listener, permit), class, object, first)| async move {
            let listener_and_permit = |listener| (listener, permit);
            if let Some(first) = first {
                let state = (listener_and_permit(listener), class, object, None);
                return Some((Ok(Frame::data(first)), state));
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
            Some((frame, (listener_and_permit(listener), class, object, None)))
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
