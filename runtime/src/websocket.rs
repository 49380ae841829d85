//! Hibernatable WebSockets: the per-object socket registry and the task that owns each connection.
//!
//! The runtime, not the instance, holds connections. Each accepted socket gets a connection task
//! (`run_connection`) that reads frames and turns them into object events, answers the object's
//! auto-response itself (without waking the object), and writes what the object sends. The
//! object's registry (`Sockets`: tags, attachments, the senders) lives beside its storage view, so
//! it survives the instance being dropped (hibernation). Messages an event sends wait in the
//! event's outbox until its writes are durable (the actor releases them in order).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{SinkExt, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message as Frame};

/// Most tags per socket, and bytes per tag.
const MAX_TAGS: usize = 10;
const MAX_TAG_BYTES: usize = 256;
/// Largest attachment kept with a socket (Cloudflare's: 16 KiB).
const MAX_ATTACHMENT_BYTES: usize = 16 * 1024;
/// Initial read buffer per connection (grows for bigger messages).
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Messages that may wait for a slow client before it is closed with 1011.
const SEND_QUEUE: usize = 1024;

/// Identifies a socket within its object.
pub type SocketId = u64;

/// One WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Text(String),
    Binary(Bytes),
}

impl Message {
    fn len(&self) -> usize {
        match self {
            Self::Text(t) => t.len(),
            Self::Binary(b) => b.len(),
        }
    }
}

/// What the object asks a connection to do.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Message(Message),
    Close { code: u16, reason: String },
}

/// Why a socket call failed, as the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SocketError {
    #[error("accept is only possible once, during a fetch that asks for Upgrade: websocket")]
    NotAnUpgrade,
    #[error("no open socket with that id")]
    UnknownSocket,
    #[error("message is {0} bytes, over the limit")]
    TooLarge(u64),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// The auto-response pair, shared with the connection tasks.
pub type AutoResponse = Arc<RwLock<Option<(String, String)>>>;

struct Entry {
    tags: Vec<String>,
    attachment: Option<Bytes>,
    /// The connection's queue; `None` until the handshake completes.
    tx: Option<mpsc::Sender<Outgoing>>,
    /// Sent before the handshake completed (e.g. a welcome message in the accepting fetch).
    early: Vec<Outgoing>,
    /// The object closed it (or it was found too slow).
    closing: bool,
    /// Its handlers live in the instance (`hold`): the object stays in memory while it is open.
    held: bool,
}

/// What bounds one object's sockets.
#[derive(Debug, Clone, Copy)]
pub struct SocketLimits {
    /// Largest message, either way.
    pub max_message_bytes: usize,
    /// Most bytes of messages one event may send.
    pub max_event_outbox_bytes: usize,
    /// Most sockets open at once.
    pub max_sockets: usize,
}

/// One object's sockets. Moves with its storage view; never touches the network itself.
pub struct Sockets {
    next_id: SocketId,
    open: BTreeMap<SocketId, Entry>,
    limits: SocketLimits,
    /// Bytes of messages the running event sent.
    outbox_bytes: usize,
    /// The running event is a fetch that asks for an upgrade (and has not accepted yet).
    may_accept: bool,
    /// The socket the running fetch accepted.
    accepted: Option<SocketId>,
    /// What the running event sent, to release once its writes are durable.
    outbox: Vec<(SocketId, Outgoing)>,
    auto_response: AutoResponse,
    /// How many open sockets are held (`hold`): the object stays in memory while any is.
    held: usize,
}

impl Sockets {
    pub fn new(limits: SocketLimits) -> Self {
        Self {
            next_id: 1,
            open: BTreeMap::new(),
            limits,
            outbox_bytes: 0,
            may_accept: false,
            accepted: None,
            outbox: Vec::new(),
            auto_response: AutoResponse::default(),
            held: 0,
        }
    }

    /// Starts an event; `upgrade` when it is a fetch asking for a WebSocket.
    pub fn begin_event(&mut self, upgrade: bool) {
        self.may_accept = upgrade;
        self.accepted = None;
        self.outbox.clear();
        self.outbox_bytes = 0;
    }

    /// Ends an event: the socket it accepted (kept only if `keep_accepted`, i.e. it answered
    /// 101) and what it sent.
    pub fn finish_event(
        &mut self,
        keep_accepted: bool,
    ) -> (Option<SocketId>, Vec<(SocketId, Outgoing)>) {
        self.may_accept = false;
        let accepted = self.accepted.take();
        if let Some(id) = accepted.filter(|_| !keep_accepted) {
            self.remove(id);
        }
        (accepted.filter(|_| keep_accepted), self.take_outbox())
    }

    /// Drops what a failed event did.
    /// The messages the running event sent so far, for a release before its end (their writes
    /// are durable already).
    pub fn take_outbox(&mut self) -> Vec<(SocketId, Outgoing)> {
        self.outbox_bytes = 0;
        std::mem::take(&mut self.outbox)
    }

    pub fn abort_event(&mut self) {
        let _ = self.finish_event(false);
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The open sockets.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn auto_response(&self) -> AutoResponse {
        self.auto_response.clone()
    }

    pub fn accept(&mut self, tags: Vec<String>) -> Result<SocketId, SocketError> {
        if !self.may_accept || self.accepted.is_some() {
            return Err(SocketError::NotAnUpgrade);
        }
        if tags.len() > MAX_TAGS || tags.iter().any(|t| t.len() > MAX_TAG_BYTES) {
            return Err(SocketError::InvalidArgument(format!(
                "at most {MAX_TAGS} tags of at most {MAX_TAG_BYTES} bytes"
            )));
        }
        if self.open.len() >= self.limits.max_sockets {
            return Err(SocketError::InvalidArgument(format!(
                "this object already holds {} WebSockets, the most one object may hold",
                self.limits.max_sockets
            )));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.open.insert(
            id,
            Entry {
                tags,
                attachment: None,
                tx: None,
                early: Vec::new(),
                closing: false,
                held: false,
            },
        );
        self.accepted = Some(id);
        Ok(id)
    }

    pub fn list(&self, tag: Option<&str>) -> Vec<SocketId> {
        self.open
            .iter()
            .filter(|(_, e)| !e.closing)
            .filter(|(_, e)| tag.is_none_or(|t| e.tags.iter().any(|x| x == t)))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn send(&mut self, id: SocketId, message: Message) -> Result<(), SocketError> {
        if message.len() > self.limits.max_message_bytes {
            return Err(SocketError::TooLarge(self.limits.max_message_bytes as u64));
        }
        self.entry(id)?;
        let outbox_bytes = self.outbox_bytes + message.len();
        if outbox_bytes > self.limits.max_event_outbox_bytes {
            return Err(SocketError::InvalidArgument(format!(
                "this event's messages would total {outbox_bytes} bytes, over the limit of {} \
                 bytes one event may send",
                self.limits.max_event_outbox_bytes
            )));
        }
        self.outbox_bytes = outbox_bytes;
        self.outbox.push((id, Outgoing::Message(message)));
        Ok(())
    }

    pub fn close(&mut self, id: SocketId, code: u16, reason: String) -> Result<(), SocketError> {
        if !(code == 1000 || (3000..=4999).contains(&code)) || reason.len() > 123 {
            return Err(SocketError::InvalidArgument(
                "close code must be 1000 or 3000-4999, reason at most 123 bytes".into(),
            ));
        }
        self.entry(id)?.closing = true;
        self.outbox.push((id, Outgoing::Close { code, reason }));
        Ok(())
    }

    /// Keeps the object in memory while socket `id` is open (its handlers live in the instance).
    pub fn hold(&mut self, id: SocketId) -> Result<(), SocketError> {
        let entry = self.entry(id)?;
        if !std::mem::replace(&mut entry.held, true) {
            self.held += 1;
        }
        Ok(())
    }

    /// Whether an open socket keeps the object in memory.
    pub fn holds_memory(&self) -> bool {
        self.held > 0
    }

    /// The instance that held sockets' handlers is gone: those sockets close (1011), now.
    pub fn close_held(&mut self) {
        if self.held > 0 {
            self.close_where(|_, e| e.held, 1011, "the Durable Object was reset");
        }
    }

    /// Closes every open socket with `code` (the object is going away from this node).
    pub fn close_all(&mut self, code: u16, reason: &str) {
        self.close_where(|_, _| true, code, reason);
    }

    /// Closes socket `id` now, outside any event (an operator's request).
    pub fn close_one(&mut self, id: SocketId, code: u16, reason: &str) {
        self.close_where(|open, _| open == id, code, reason);
    }

    fn close_where(&mut self, pick: impl Fn(SocketId, &Entry) -> bool, code: u16, reason: &str) {
        let picked: Vec<_> = (self.open.iter())
            .filter(|(id, e)| pick(**id, e) && !e.closing)
            .map(|(id, _)| *id)
            .collect();
        let close = |id| {
            (
                id,
                Outgoing::Close {
                    code,
                    reason: reason.into(),
                },
            )
        };
        self.deliver(picked.iter().copied().map(close).collect());
        for id in picked {
            if let Some(entry) = self.open.get_mut(&id) {
                entry.closing = true;
            }
        }
    }

    pub fn tags(&self, id: SocketId) -> Result<Vec<String>, SocketError> {
        self.open
            .get(&id)
            .map(|e| e.tags.clone())
            .ok_or(SocketError::UnknownSocket)
    }

    pub fn set_attachment(&mut self, id: SocketId, data: Bytes) -> Result<(), SocketError> {
        if data.len() > MAX_ATTACHMENT_BYTES {
            return Err(SocketError::InvalidArgument(format!(
                "attachments are at most {MAX_ATTACHMENT_BYTES} bytes"
            )));
        }
        self.open
            .get_mut(&id)
            .ok_or(SocketError::UnknownSocket)?
            .attachment = Some(data);
        Ok(())
    }

    pub fn attachment(&self, id: SocketId) -> Result<Option<Bytes>, SocketError> {
        self.open
            .get(&id)
            .map(|e| e.attachment.clone())
            .ok_or(SocketError::UnknownSocket)
    }

    pub fn set_auto_response(&mut self, pair: Option<(String, String)>) {
        *self.auto_response.write().expect("auto-response lock") = pair;
    }

    /// The connection finished its handshake: messages can flow.
    pub fn connected(&mut self, id: SocketId, tx: mpsc::Sender<Outgoing>) {
        if let Some(entry) = self.open.get_mut(&id) {
            for outgoing in entry.early.drain(..) {
                let _ = tx.try_send(outgoing);
            }
            entry.tx = Some(tx);
        }
    }

    /// The connection is gone.
    pub fn remove(&mut self, id: SocketId) {
        if self.open.remove(&id).is_some_and(|e| e.held) {
            self.held -= 1;
        }
    }

    /// Hands released messages to their connections. A connection whose queue is full is a
    /// slow client: its queue is dropped, which makes its task close it with 1011.
    pub fn deliver(&mut self, released: Vec<(SocketId, Outgoing)>) {
        for (id, outgoing) in released {
            let Some(entry) = self.open.get_mut(&id) else {
                continue;
            };
            match &entry.tx {
                None => entry.early.push(outgoing),
                Some(tx) => {
                    if tx.try_send(outgoing).is_err() {
                        entry.tx = None;
                        entry.closing = true;
                    }
                }
            }
        }
    }

    fn entry(&mut self, id: SocketId) -> Result<&mut Entry, SocketError> {
        self.open
            .get_mut(&id)
            .filter(|e| !e.closing)
            .ok_or(SocketError::UnknownSocket)
    }
}

/// What a connection tells its object.
#[derive(Debug)]
pub enum SocketEvent {
    Message(Message),
    /// The client broke the protocol (a message over the limit, a malformed frame, invalid
    /// UTF-8): delivered to `websocket-error` just before the connection's `Closed`.
    Error(String),
    Closed {
        code: u16,
        reason: String,
        was_clean: bool,
    },
}

/// Where a connection delivers its events (the object's mailbox, through the directory), in
/// order, waiting when the mailbox is full (backpressure onto the client's TCP connection).
pub trait SocketOwner: Send + Sync + 'static {
    fn opened(&self, id: SocketId, tx: mpsc::Sender<Outgoing>) -> BoxFuture<'_, ()>;
    fn event(&self, id: SocketId, event: SocketEvent) -> BoxFuture<'_, ()>;
}

/// The server side of the handshake: the `Sec-WebSocket-Accept` value for a client key.
pub fn accept_key(client_key: &[u8]) -> String {
    tungstenite::handshake::derive_accept_key(client_key)
}

/// Runs one accepted connection until it closes or the runtime stops (close 1001).
pub async fn run_connection(
    upgraded: Upgraded,
    id: SocketId,
    owner: Arc<dyn SocketOwner>,
    auto_response: AutoResponse,
    max_message_bytes: usize,
    stop: watch::Receiver<bool>,
) {
    let stopped = stopped(stop);
    tokio::pin!(stopped);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(max_message_bytes);
    config.max_frame_size = Some(max_message_bytes);
    // tungstenite's default buffers are 128 KiB each, allocated per connection: most of a
    // hibernated socket's memory. Small reads grow as needed; writes go out eagerly.
    config.read_buffer_size = READ_BUFFER_BYTES;
    config.write_buffer_size = 0;
    let socket = WebSocketStream::from_raw_socket(
        TokioIo::new(upgraded),
        tungstenite::protocol::Role::Server,
        Some(config),
    )
    .await;
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel(SEND_QUEUE);
    owner.opened(id, tx).await;
    let close = |code: u16, reason: &str| {
        Frame::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        }))
    };
    let closed = loop {
        tokio::select! {
            // Stop first: at shutdown the object's actor also ends and drops this connection's
            // queue, which must not be mistaken for the slow-client signal below (1011).
            biased;
            () = &mut stopped => {
                let reason = "going away";
                let _ = sink.send(close(1001, reason)).await;
                break (1001, reason.to_string(), true);
            }
            outgoing = rx.recv() => match outgoing {
                Some(Outgoing::Message(Message::Text(text))) => {
                    if sink.send(Frame::Text(text.into())).await.is_err() {
                        break (1006, String::new(), false);
                    }
                }
                Some(Outgoing::Message(Message::Binary(bytes))) => {
                    if sink.send(Frame::Binary(bytes)).await.is_err() {
                        break (1006, String::new(), false);
                    }
                }
                Some(Outgoing::Close { code, reason }) => {
                    let _ = sink.send(close(code, &reason)).await;
                    break (code, reason, true);
                }
                None => {
                    // The object dropped the queue: this client could not keep up.
                    let reason = "client too slow";
                    let _ = sink.send(close(1011, reason)).await;
                    break (1011, reason.to_string(), false);
                }
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Frame::Text(text))) => {
                    let text = text.to_string();
                    let auto = auto_response.read().expect("auto-response lock").clone();
                    match auto {
                        Some((request, response)) if request == text => {
                            if sink.send(Frame::Text(response.into())).await.is_err() {
                                break (1006, String::new(), false);
                            }
                        }
                        _ => owner.event(id, SocketEvent::Message(Message::Text(text))).await,
                    }
                }
                Some(Ok(Frame::Binary(bytes))) => {
                    owner.event(id, SocketEvent::Message(Message::Binary(bytes))).await;
                }
                Some(Ok(Frame::Close(frame))) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    let _ = sink.close().await;
                    break (code, reason, true);
                }
                Some(Ok(_)) => {} // ping/pong: answered by tungstenite
                Some(Err(tungstenite::Error::Capacity(error))) => {
                    owner.event(id, SocketEvent::Error(error.to_string())).await;
                    let reason = "message too big";
                    let _ = sink.send(close(1009, reason)).await;
                    break (1009, reason.to_string(), false);
                }
                Some(Err(error @ tungstenite::Error::Utf8(_))) => {
                    owner.event(id, SocketEvent::Error(error.to_string())).await;
                    let reason = "invalid UTF-8 in a text message";
                    let _ = sink.send(close(1007, reason)).await;
                    break (1007, reason.to_string(), false);
                }
                Some(Err(error @ tungstenite::Error::Protocol(_))) => {
                    owner.event(id, SocketEvent::Error(error.to_string())).await;
                    let reason = "protocol error";
                    let _ = sink.send(close(1002, reason)).await;
                    break (1002, reason.to_string(), false);
                }
                Some(Err(_)) | None => break (1006, String::new(), false),
            },
        }
    };
    let (code, reason, was_clean) = closed;
    owner
        .event(
            id,
            SocketEvent::Closed {
                code,
                reason,
                was_clean,
            },
        )
        .await;
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
