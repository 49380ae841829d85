//! An actor's mailbox, and what it does with its mail while the object's guest runs an event: a
//! guest that listens on its inbox (see `abi::inbox`) gets the object's events there, in arrival
//! order, to run beside the event that waits — up to the first it cannot take (a WebSocket
//! upgrade, an operator's look or edit), which waits in `deferred` with everything after it and
//! runs once the event ends.

use std::collections::VecDeque;

use tokio::sync::mpsc;
use tokio::sync::oneshot;

use super::Envelope;
use crate::abi::Response;
use crate::abi::inbox::{Answer, Inbound, Inbox, Ticket};
use crate::object::{AlarmOutcome, ObjectError};
use crate::storage::Gated;

/// The messages for one actor: its mailbox, then those held back while a guest call ran.
pub(super) struct Mail {
    pub rx: mpsc::Receiver<Box<Envelope>>,
    deferred: VecDeque<Box<Envelope>>,
    /// The runtime's count of queued events (an envelope counts until it is taken from `rx`).
    queued: prometheus_client::metrics::gauge::Gauge,
}

/// Where a handed-over event's answer goes: the reply its envelope had. Every answer passed the
/// output gate before it comes here (see `abi::inbox`).
enum Reply {
    Fetch {
        name: Option<String>,
        reply: oneshot::Sender<Gated<Result<Response, ObjectError>>>,
    },
    Alarm(oneshot::Sender<Gated<AlarmOutcome>>),
    /// Socket traffic: nobody waits.
    None,
}

impl Ticket for Reply {
    fn answer(self: Box<Self>, answer: Answer) {
        match *self {
            Reply::Fetch { reply, .. } => {
                let outcome = match answer {
                    Answer::Response(outcome) => outcome.map_err(ObjectError::from),
                    Answer::Done(_) | Answer::Stale => unreachable!("a request is answered"),
                };
                let _ = reply.send(Gated::ready(outcome));
            }
            Reply::Alarm(reply) => {
                let outcome = match answer {
                    Answer::Done(Ok(())) | Answer::Response(Ok(_)) => AlarmOutcome::Done,
                    Answer::Done(Err(error)) => AlarmOutcome::Failed(error),
                    Answer::Response(Err(error)) => AlarmOutcome::Failed(error.to_string()),
                    Answer::Stale => AlarmOutcome::Stale,
                };
                let _ = reply.send(Gated::ready(outcome));
            }
            Reply::None => {}
        }
    }

    fn into_any(self: Box<Self>) -> Box<dyn std::any::Any + Send> {
        self
    }
}

impl Mail {
    pub fn new(
        rx: mpsc::Receiver<Box<Envelope>>,
        queued: prometheus_client::metrics::gauge::Gauge,
    ) -> Self {
        Self {
            rx,
            deferred: VecDeque::new(),
            queued,
        }
    }

    /// The next message: one held back first, else the mailbox's. `None` once it is closed.
    pub async fn next(&mut self) -> Option<Box<Envelope>> {
        if let Some(envelope) = self.deferred.pop_front() {
            return Some(envelope);
        }
        let envelope = self.rx.recv().await;
        if envelope.is_some() {
            self.queued.dec();
        }
        envelope
    }

    /// Whether no message waits, held back or in the mailbox.
    pub fn is_empty(&self) -> bool {
        self.deferred.is_empty() && self.rx.is_empty()
    }

    /// Awaits `call`, the guest running one of the object's events; meanwhile, once the guest
    /// listens on `inbox`, the object's events go there. What the guest did not take comes back
    /// first in line.
    pub async fn beside<T>(&mut self, inbox: &Inbox, call: impl Future<Output = T>) -> T {
        let mut call = std::pin::pin!(call);
        // Held back from here on: an event that cannot go to the guest, and all after it.
        let mut holding = !self.deferred.is_empty();
        let mut open = true;
        let out = loop {
            let listened = inbox.listened();
            let mut listened = std::pin::pin!(listened);
            listened.as_mut().enable();
            let listening = inbox.is_listening();
            tokio::select! {
                biased;
                out = &mut call => break out,
                () = listened, if !listening => {}
                envelope = self.rx.recv(), if listening && open && !holding => match envelope {
                    Some(envelope) => {
                        self.queued.dec();
                        if let Err(envelope) = hand_over(inbox, envelope) {
                            self.deferred.push_back(envelope);
                            holding = true;
                        }
                    }
                    None => open = false,
                },
            }
        };
        for (inbound, reply) in inbox.end().into_iter().rev() {
            let Ok(reply) = reply.into_any().downcast::<Reply>() else {
                unreachable!("the actor's inbox holds only its own tickets")
            };
            self.deferred
                .push_front(Box::new(envelope_of(inbound, *reply)));
        }
        out
    }
}

/// Gives `envelope` to the guest's inbox, or back if it cannot go there.
fn hand_over(inbox: &Inbox, envelope: Box<Envelope>) -> Result<(), Box<Envelope>> {
    let goes = match &*envelope {
        Envelope::Fetch { request, .. } => !request.is_upgrade(),
        Envelope::Alarm { .. } | Envelope::SocketOpened { .. } | Envelope::Socket { .. } => true,
        _ => false,
    };
    if !goes {
        return Err(envelope);
    }
    let (inbound, reply) = match *envelope {
        Envelope::Fetch {
            request,
            name,
            reply,
        } => (Inbound::Request(request), Reply::Fetch { name, reply }),
        Envelope::Alarm {
            at_ms,
            retry_count,
            last_attempt,
            reply,
        } => {
            let alarm = Inbound::Alarm {
                at_ms,
                retry_count,
                last_attempt,
            };
            (alarm, Reply::Alarm(reply))
        }
        Envelope::SocketOpened { id, tx } => (Inbound::SocketOpened { id, tx }, Reply::None),
        Envelope::Socket { id, event } => (Inbound::Socket { id, event }, Reply::None),
        _ => unreachable!("checked above"),
    };
    inbox.push(inbound, Box::new(reply));
    Ok(())
}

/// The envelope a handed-over event came in, for one the guest did not take.
fn envelope_of(inbound: Inbound, reply: Reply) -> Envelope {
    match (inbound, reply) {
        (Inbound::Request(request), Reply::Fetch { name, reply }) => Envelope::Fetch {
            request,
            name,
            reply,
        },
        (
            Inbound::Alarm {
                at_ms,
                retry_count,
                last_attempt,
            },
            Reply::Alarm(reply),
        ) => Envelope::Alarm {
            at_ms,
            retry_count,
            last_attempt,
            reply,
        },
        (Inbound::SocketOpened { id, tx }, _) => Envelope::SocketOpened { id, tx },
        (Inbound::Socket { id, event }, _) => Envelope::Socket { id, event },
        _ => unreachable!("an event goes to the inbox with the reply of its kind"),
    }
}
