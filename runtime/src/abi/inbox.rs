//! The `inbox` host interface: an object's events handed to its guest while one of its events
//! waits, so that they run beside it (Cloudflare's input gate is open at an `await` on anything
//! but storage).
//!
//! The actor owns one [`Inbox`] per object and marks the span of each guest call
//! ([`Inbox::begin`], [`Inbox::end`]). Once the guest listens (it sends a `wasi:http` request to
//! [`INBOX_HOST`], answered by [`Inbox::wait`] when something is there for it), the actor moves
//! the object's events from its mailbox into the inbox ([`Inbox::push`]); the guest takes them
//! (`take`: an alarm is checked and cleared then, a new connection recorded) and answers each
//! (`respond`, `respond-rpc`, `done`) once its writes so far are durable; the messages sent to
//! its sockets so far leave then too. What the guest did not take when the call ends goes back
//! to the actor; what it took and never answered fails when its instance goes
//! ([`Inbox::fail_taken`]).

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use super::calls::{CallError, CallSite};
use super::generated::duro::object::inbox as wit;
use super::generated::duro::object::types::AlarmInfo;
use super::{GuestError, ObjectState, Request, Response, rpc};
use crate::lock;
use crate::websocket::{Outgoing, SocketEvent, SocketId};

/// The host of the URL a guest waits on for its inbox (`.invalid`: never a real host).
pub const INBOX_HOST: &str = "inbox.duro.invalid";

/// An event handed to the guest.
pub enum Inbound {
    /// A request or (with `rpc` set) an RPC call.
    Request(Request),
    /// The alarm set for `at_ms`, if it still is the object's alarm when the guest takes it.
    Alarm {
        at_ms: i64,
        retry_count: u32,
        last_attempt: bool,
    },
    /// A connection finished its handshake: recorded when the guest takes it (nothing runs).
    SocketOpened {
        id: SocketId,
        tx: mpsc::Sender<Outgoing>,
    },
    Socket {
        id: SocketId,
        event: SocketEvent,
    },
}

/// How a handed-over event ended.
pub enum Answer {
    /// A request's or RPC call's answer, or why there is none.
    Response(Result<Response, GuestError>),
    /// An alarm's or socket event's end (`Err`: the alarm failed, retry it).
    Done(Result<(), String>),
    /// An alarm that was no longer the object's: nothing ran.
    Stale,
}

/// Where an event's answer goes: the actor's own reply, behind the output gate already passed.
pub trait Ticket: Send + 'static {
    fn answer(self: Box<Self>, answer: Answer);
    /// The actor's own ticket back, for an event the guest never took.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// One object's inbox.
#[derive(Default)]
pub struct Inbox {
    state: Mutex<State>,
    /// Wakes the guest's wait: an event is there, or the call ended.
    arrived: Notify,
    /// Wakes the actor: the guest began to listen.
    listening: Notify,
}

#[derive(Default)]
struct State {
    /// A guest call of the object runs (events are handed over only then).
    running: bool,
    /// Messages of earlier events wait in the actor's output gate: later ones must not pass
    /// them, so the running call's messages leave with its end.
    gated_messages: bool,
    /// The guest listened during this call.
    listening: bool,
    queue: VecDeque<(u64, Inbound, Box<dyn Ticket>)>,
    taken: HashMap<u64, Taken>,
}

/// An event the guest holds, and what its answer must do besides.
struct Taken {
    ticket: Box<dyn Ticket>,
    then: AfterAnswer,
}

enum AfterAnswer {
    Nothing,
    /// An alarm: a failure restores it (unless it was the last attempt).
    Alarm {
        at_ms: i64,
        last_attempt: bool,
    },
    /// A socket's close: the socket goes.
    Forget(SocketId),
}

/// Ids of handed-over events: unique in the process, so an answer never reaches another
/// object's event (a shared instance's guest may answer while another object is mounted).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Inbox {
    /// A guest call of the object starts; `gated_messages`: the actor holds socket messages of
    /// earlier events behind their commits.
    pub fn begin(&self, gated_messages: bool) {
        let mut state = lock(&self.state);
        state.running = true;
        state.listening = false;
        state.gated_messages = gated_messages;
    }

    /// The guest call ended: its wait (if any) is answered, and the events it did not take come
    /// back, in order.
    pub fn end(&self) -> Vec<(Inbound, Box<dyn Ticket>)> {
        let untaken = {
            let mut state = lock(&self.state);
            state.running = false;
            state.listening = false;
            state.queue.drain(..).map(|(_, e, t)| (e, t)).collect()
        };
        self.arrived.notify_waiters();
        untaken
    }

    /// Whether the guest listens during the running call.
    pub fn is_listening(&self) -> bool {
        lock(&self.state).listening
    }

    /// Resolves once the guest listens (enable it before checking [`Inbox::is_listening`]).
    pub fn listened(&self) -> tokio::sync::futures::Notified<'_> {
        self.listening.notified()
    }

    /// Hands `event` to the guest; its answer goes to `ticket`.
    pub fn push(&self, event: Inbound, ticket: Box<dyn Ticket>) {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        lock(&self.state).queue.push_back((id, event, ticket));
        self.arrived.notify_waiters();
    }

    /// Fails every event the guest took and has not answered (its instance is gone).
    pub fn fail_taken(&self, error: &GuestError) {
        let taken: Vec<_> = lock(&self.state).taken.drain().map(|(_, t)| t).collect();
        for taken in taken {
            taken.ticket.answer(Answer::Response(Err(error.clone())));
        }
    }

    /// Whether the guest holds events it has not answered.
    pub fn has_taken(&self) -> bool {
        !lock(&self.state).taken.is_empty()
    }

    /// The guest listens: resolves once an event waits for it, or the call ended.
    pub fn wait(self: &Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        {
            let mut state = lock(&self.state);
            if state.running && !state.listening {
                state.listening = true;
                self.listening.notify_waiters();
            }
        }
        let inbox = self.clone();
        async move {
            crate::wait_until(&inbox.arrived, || {
                let state = lock(&inbox.state);
                !state.queue.is_empty() || !state.running
            })
            .await;
        }
    }

    fn pop(&self) -> Option<(u64, Inbound, Box<dyn Ticket>)> {
        lock(&self.state).queue.pop_front()
    }

    fn hold(&self, id: u64, ticket: Box<dyn Ticket>, then: AfterAnswer) {
        (lock(&self.state).taken).insert(id, Taken { ticket, then });
    }

    fn release(&self, id: u64) -> Option<Taken> {
        lock(&self.state).taken.remove(&id)
    }
}

impl ObjectState {
    fn inbox(&self) -> Option<Arc<Inbox>> {
        self.parts.as_ref()?.inbox.clone()
    }

    /// The next event for the guest: alarms no longer set are answered stale, new connections
    /// recorded, on to the next.
    fn take_inbound(&mut self) -> Option<wit::Inbound> {
        let inbox = self.inbox()?;
        let parts = self.parts.as_mut()?;
        loop {
            let (id, inbound, ticket) = inbox.pop()?;
            let (event, then) = match inbound {
                Inbound::Request(request) => {
                    let wit_request = wit::Request {
                        method: request.method,
                        url: request.url,
                        headers: request.headers,
                        body: request.body.into(),
                    };
                    let event = match request.rpc {
                        Some(method) => wit::Event::Rpc((method, wit_request.body)),
                        None => wit::Event::Request(wit_request),
                    };
                    (event, AfterAnswer::Nothing)
                }
                Inbound::Alarm {
                    at_ms,
                    retry_count,
                    last_attempt,
                } => {
                    let storage = &mut parts.storage;
                    storage.alarm_runs();
                    let current = storage.get_alarm().map_err(|e| e.to_string());
                    match current.and_then(|current| {
                        let cleared = (current == Some(at_ms)).then(|| storage.delete_alarm());
                        cleared.transpose().map_err(|e| e.to_string())
                    }) {
                        Ok(Some(())) => {}
                        Ok(None) => {
                            ticket.answer(Answer::Stale);
                            continue;
                        }
                        Err(error) => {
                            ticket.answer(Answer::Done(Err(error)));
                            continue;
                        }
                    }
                    let info = AlarmInfo {
                        retry_count,
                        is_retry: retry_count > 0,
                    };
                    let then = AfterAnswer::Alarm {
                        at_ms,
                        last_attempt,
                    };
                    (wit::Event::Alarm(info), then)
                }
                Inbound::SocketOpened { id, tx } => {
                    parts.sockets.connected(id, tx);
                    ticket.answer(Answer::Done(Ok(())));
                    continue;
                }
                Inbound::Socket { id: ws, event } => match event {
                    SocketEvent::Message(message) => {
                        let message = super::to_wit_message(message);
                        (
                            wit::Event::WebsocketMessage((ws, message)),
                            AfterAnswer::Nothing,
                        )
                    }
                    SocketEvent::Error(error) => (
                        wit::Event::WebsocketError((ws, error)),
                        AfterAnswer::Nothing,
                    ),
                    SocketEvent::Closed {
                        code,
                        reason,
                        was_clean,
                    } => (
                        wit::Event::WebsocketClose((ws, code, reason, was_clean)),
                        AfterAnswer::Forget(ws),
                    ),
                },
            };
            inbox.hold(id, ticket, then);
            return Some(wit::Inbound { id, event });
        }
    }

    /// Ends a handed-over event: its alarm's failure undone as for any failed alarm, its writes
    /// so far made durable (the output gate), then its answer and the socket messages sent so
    /// far leave.
    async fn answer_inbound(&mut self, id: u64, answer: Answer) -> wasmtime::Result<()> {
        let Some(inbox) = self.inbox() else {
            return Ok(());
        };
        let Some(taken) = inbox.release(id) else {
            return Ok(());
        };
        let parts = self
            .parts
            .as_mut()
            .expect("an inbox is mounted with its object");
        match (&taken.then, &answer) {
            (
                AfterAnswer::Alarm {
                    at_ms,
                    last_attempt: false,
                },
                Answer::Done(Err(_)),
            ) => {
                if let Err(error) = parts.storage.set_alarm(*at_ms) {
                    tracing::warn!(%error, "a failed alarm could not be kept for its retry");
                }
            }
            (AfterAnswer::Forget(ws), _) => parts.sockets.remove(*ws),
            _ => {}
        }
        let answer = match self.before_call().await {
            Ok(Ok(())) => answer,
            Ok(Err(error)) => Answer::Response(Err(GuestError::Trap(match error {
                CallError::Failed(reason) => reason,
                other => format!("{other:?}"),
            }))),
            Err(trap) => {
                let failed = GuestError::Trap(format!("{trap:#}"));
                taken.ticket.answer(Answer::Response(Err(failed)));
                return Err(trap);
            }
        };
        if !lock(&inbox.state).gated_messages
            && let Some(parts) = self.parts.as_mut()
        {
            let messages = parts.sockets.take_outbox();
            parts.sockets.deliver(messages);
        }
        taken.ticket.answer(answer);
        Ok(())
    }
}

impl wit::Host for ObjectState {
    fn take(&mut self) -> Option<wit::Inbound> {
        self.take_inbound()
    }

    async fn respond(&mut self, id: u64, response: wit::Response) -> wasmtime::Result<()> {
        let response = Response {
            status: response.status,
            headers: response.headers,
            body: response.body.into(),
            websocket: None,
        };
        self.answer_inbound(id, Answer::Response(Ok(response)))
            .await
    }

    async fn respond_rpc(
        &mut self,
        id: u64,
        answer: Result<Vec<u8>, Vec<u8>>,
    ) -> wasmtime::Result<()> {
        let (status, body) = match answer {
            Ok(value) => (rpc::RETURNED, value),
            Err(thrown) => (rpc::THREW, thrown),
        };
        let response = Response {
            status,
            headers: Vec::new(),
            body: body.into(),
            websocket: None,
        };
        self.answer_inbound(id, Answer::Response(Ok(response)))
            .await
    }

    async fn done(&mut self, id: u64, outcome: Result<(), String>) -> wasmtime::Result<()> {
        self.answer_inbound(id, Answer::Done(outcome)).await
    }
}
