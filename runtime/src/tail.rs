//! Live tail (`GET /tail`, `duro tail`): what happens now, as wrangler tail shows it — ingress
//! requests (from the access log's hook), each object's events (requests, RPC calls, alarms,
//! socket messages, edits, with their wall time) and its guest's log lines. Producers publish
//! only while someone listens: with no listener, a publish is one atomic load. One hub per
//! process; a listener filters by class and object.
//!
//! The hub's memory is bounded whoever listens: a ring of [`BACKLOG`] events, each cut to
//! [`MAX_TEXT`] bytes per field (a 128 KiB request target or a long log line shows its start). A
//! listener that stops reading falls behind and misses events (it is told how many); it pins at
//! most the ring, which it gives back when it goes.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;
use tokio::sync::broadcast;

/// Events a slow listener may fall behind by before it misses some (it is told how many).
const BACKLOG: usize = 1024;
/// Longest text of one field of an event (a request's target, the objects it reached, a log
/// line), in bytes; a longer one is cut, marked with `…`. The ring holds at most
/// `BACKLOG × ~3 × MAX_TEXT` (6 MiB).
pub const MAX_TEXT: usize = 2048;

/// One thing that happened.
#[derive(Debug, Clone, Serialize)]
pub struct TailEvent {
    /// When (ms since the Unix epoch).
    pub time_ms: i64,
    /// `request` (ingress), `fetch`, `rpc`, `alarm`, `socket-open`, `socket`, `edit`, `timers`,
    /// or `log`.
    pub kind: &'static str,
    pub class: Option<String>,
    /// The object's name, or else its id.
    pub object: Option<String>,
    /// Its id, when known.
    pub id: Option<String>,
    /// A request's method and path, or a log line's stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<String>,
    /// A request's status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Wall time, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
    /// A log line's text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl TailEvent {
    pub fn new(kind: &'static str) -> Self {
        Self {
            time_ms: now_ms(),
            kind,
            class: None,
            object: None,
            id: None,
            what: None,
            status: None,
            ms: None,
            message: None,
        }
    }

    /// The event with each text field cut to [`MAX_TEXT`].
    fn bounded(mut self) -> Self {
        let fields = [
            &mut self.class,
            &mut self.object,
            &mut self.what,
            &mut self.message,
        ];
        fields.into_iter().flatten().for_each(cut);
        self
    }

    /// Whether a listener asking for `class` (and `object`: a name or an id) wants it. A
    /// request matches through the objects it reached (`Class/name,...`).
    pub fn matches(&self, class: Option<&str>, object: Option<&str>) -> bool {
        if self.class.is_none() && self.kind == "request" {
            let reached = self.object.as_deref().unwrap_or("");
            return reached.split(',').any(|item| {
                let (c, o) = item.split_once('/').unwrap_or((item, ""));
                class.is_none_or(|class| class == c) && object.is_none_or(|object| object == o)
            });
        }
        let class_ok = class.is_none_or(|c| self.class.as_deref() == Some(c));
        let object_ok = object
            .is_none_or(|o| self.object.as_deref() == Some(o) || self.id.as_deref() == Some(o));
        class_ok && object_ok
    }
}

struct Hub {
    tx: broadcast::Sender<TailEvent>,
    listeners: AtomicUsize,
}

static HUB: LazyLock<Hub> = LazyLock::new(|| Hub {
    tx: broadcast::channel(BACKLOG).0,
    listeners: AtomicUsize::new(0),
});

/// Whether anyone listens (producers build events only then).
pub fn listening() -> bool {
    HUB.listeners.load(Ordering::Relaxed) > 0
}

/// Publishes the event `make` builds, if anyone listens.
pub fn publish(make: impl FnOnce() -> TailEvent) {
    if listening() {
        let _ = HUB.tx.send(make().bounded());
    }
}

/// `text` cut to at most [`MAX_TEXT`] bytes (at a character boundary), marked when cut.
fn cut(text: &mut String) {
    if text.len() > MAX_TEXT {
        let end = text.floor_char_boundary(MAX_TEXT - '…'.len_utf8());
        text.truncate(end);
        text.push('…');
    }
}

/// A listener: receives every event published while it lives.
pub struct Listener {
    rx: broadcast::Receiver<TailEvent>,
}

impl Listener {
    pub fn new() -> Self {
        HUB.listeners.fetch_add(1, Ordering::Relaxed);
        Self {
            rx: HUB.tx.subscribe(),
        }
    }

    /// The next event; `Err(n)` when this listener fell `n` events behind and missed them.
    pub async fn next(&mut self) -> Result<TailEvent, u64> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Ok(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => return Err(missed),
                // The hub lives as long as the process.
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

impl Default for Listener {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        HUB.listeners.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn listeners_get_what_is_published_while_they_listen() {
        let mut event = TailEvent::new("log");
        event.class = Some("TailUnitTest".into());
        publish(|| event.clone());
        let mut listener = Listener::new();
        assert!(listening());
        let mut second = event.clone();
        second.object = Some("a".into());
        publish(|| second.clone());
        let got = loop {
            let got = listener.next().await.unwrap();
            if got.class.as_deref() == Some("TailUnitTest") {
                break got;
            }
        };
        assert_eq!(got.object.as_deref(), Some("a"));
        assert!(got.matches(Some("TailUnitTest"), Some("a")));
        assert!(!got.matches(Some("Other"), None));
        assert!(!got.matches(None, Some("b")));
        let mut request = TailEvent::new("request");
        request.object = Some("A/x,B/y".into());
        assert!(request.matches(Some("B"), Some("y")) && request.matches(None, None));
        assert!(!request.matches(Some("A"), Some("y")) && !request.matches(Some("C"), None));
    }

    /// A listener that never reads holds at most the ring, of events cut to size; it is told
    /// what it missed, then gets fresh events.
    #[tokio::test]
    async fn a_listener_that_never_reads_pins_a_bounded_ring_of_bounded_events() {
        let mut stuck = Listener::new();
        for i in 0..3 * BACKLOG {
            publish(|| {
                let mut event = TailEvent::new("log");
                event.class = Some("TailStuckTest".into());
                event.message = Some(format!("{i}:{}", "é".repeat(64 * 1024)));
                event
            });
        }
        match stuck.next().await {
            Err(missed) => assert!(missed >= 2 * BACKLOG as u64 - 8, "{missed}"),
            Ok(event) => panic!("not behind: {event:?}"),
        }
        // The next of this test's own (other tests publish to the same hub).
        let event = loop {
            if let Ok(event) = stuck.next().await
                && event.class.as_deref() == Some("TailStuckTest")
            {
                break event;
            }
        };
        let message = event.message.unwrap_or_default();
        assert!(
            message.len() <= MAX_TEXT && message.ends_with('…'),
            "{}",
            message.len()
        );
    }
}
