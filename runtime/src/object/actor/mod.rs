//! One object's actor: the task that owns its instance and storage view and runs its events one
//! at a time, in arrival order.
//!
//! Per event: (re)instantiate if needed, run the guest, turn its writes into a commit request and
//! reply with the output gated on the newest pending commit. The actor does not wait for the
//! commit; it goes on with the next event (which reads the not-yet-durable writes from the
//! storage view). A trap drops the event's writes and the instance; a failed commit resets the
//! object's storage view too. The actor retires after its idle timeout when nothing is pending.
//! While a guest that listens on its inbox waits inside an event, the object's next events go to
//! it there instead (`mail`), to run beside the waiting one.

use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc};

mod body;
mod envelope;
mod events;
mod mail;

use body::{Body, held, new_parts};
pub(super) use envelope::Envelope;

use super::directory::Shared;
use super::meter::{EventCost, ObjectMeter};
use crate::abi::CallChain;
use crate::abi::Request;
use crate::abi::inbox::Inbox;
use crate::class::LoadedClass;
use crate::class::shared::Tenancy;
use crate::ids::ObjectKey;
use crate::storage::{Committed, OutputGate};
use crate::websocket::{Outgoing, SocketId};

pub(super) struct Actor {
    key: ObjectKey,
    class: Arc<LoadedClass>,
    actor_id: u64,
    mail: mail::Mail,
    shared: Arc<Shared>,
    /// Where its events wait for a guest that runs them side by side (shared classes; the same
    /// one its parts carry into the instance).
    inbox: Option<Arc<Inbox>>,
    /// Always `Some` between events.
    body: Option<Body>,
    /// The name this object was addressed by, once known.
    name: Option<String>,
    /// Its commits in flight, and its outputs (replies, WebSocket messages) held behind them.
    gate: OutputGate<Vec<(SocketId, Outgoing)>>,
    /// The object's place in its class's shared instances (shared classes only).
    tenancy: Option<Tenancy>,
    /// What its events cost, its last event's time and its socket count, for listings.
    meter: Arc<ObjectMeter>,
    /// When each commit in flight was handed over (its sequence number): the gate wait ends
    /// when it is durable.
    committing_since: std::collections::VecDeque<(u64, Instant)>,
    /// When the object's last event ended: it goes idle (or hibernates) counting from here. An
    /// operator's look at it (`Envelope::View`) is not an event and keeps nothing awake, nor is
    /// a wake (background work counts from the last event from outside).
    quiet_since: tokio::time::Instant,
    /// When the guest asked to be woken (`timers.wake-after`): its timers are due then. While
    /// set, the object stays in memory (no idling, no hibernation) up to the background limit.
    wake_at: Option<tokio::time::Instant>,
    /// Holds one unit of the live-object bound. Last field on purpose: fields drop in order, and
    /// the instance (a pooled slot) must be gone before the slot is offered to another object.
    _permit: OwnedSemaphorePermit,
}

impl Actor {
    pub fn new(
        key: ObjectKey,
        class: Arc<LoadedClass>,
        actor_id: u64,
        rx: mpsc::Receiver<Box<Envelope>>,
        shared: Arc<Shared>,
        permit: OwnedSemaphorePermit,
        meter: Arc<ObjectMeter>,
    ) -> Self {
        let inbox = class.shared.is_some().then(Arc::default);
        let parts = new_parts(&shared, &class, &key, inbox.clone());
        shared.metrics.live_objects.inc();
        Self {
            key,
            class,
            actor_id,
            mail: mail::Mail::new(rx, shared.metrics.queued_events.clone()),
            shared,
            inbox,
            _permit: permit,
            body: Some(Body::Cold(parts)),
            name: None,
            gate: OutputGate::default(),
            tenancy: None,
            meter,
            committing_since: Default::default(),
            quiet_since: tokio::time::Instant::now(),
            wake_at: None,
        }
    }

    /// Runs until the directory closes the mailbox or the actor retires. Signals `actors_done`
    /// only after everything it holds (its storage view keeps the database open) is dropped.
    pub async fn run(mut self) {
        let done = self.shared.actors_done.clone();
        self.serve().await;
        let shared = self.shared.clone();
        // The instance and its slot go on the reaper thread; `done` last, so shutdown still
        // waits for everything the actor held.
        shared.reaper.bury(Box::new((self, done)));
    }

    async fn serve(&mut self) {
        loop {
            let has_sockets = !self.sockets().is_empty();
            // With open sockets the object only hibernates (drops its instance), sooner.
            let idle = tokio::time::sleep_until(
                self.quiet_since
                    + if has_sockets {
                        self.shared.hibernate_after
                    } else {
                        self.idle_timeout()
                    },
            );
            // Not while commits are in flight, timers are pending, sockets hold buffers, or when
            // a hibernated object with sockets has nothing more to drop.
            let busy = self.gate.is_committing()
                || (has_sockets && self.is_cold())
                || self.inbox.as_ref().is_some_and(|inbox| inbox.has_taken())
                || self.wake_at.is_some()
                || self.sockets().holds_memory();
            let can_idle = !busy;
            // Due at the guest's wake, or at the background limit if that comes first.
            let cut_at = self.quiet_since + self.shared.limits.background;
            let wake = tokio::time::sleep_until(self.wake_at.map_or(cut_at, |at| at.min(cut_at)));
            let front = self.gate.next_release();
            tokio::select! {
                biased;
                Some(committed) = self.gate.next_commit(), if self.gate.is_committing() => {
                    self.on_commit(committed);
                }
                _ = async { front.as_ref().expect("guarded").wait().await }, if front.is_some() => {
                    self.release_outbox();
                }
                envelope = self.mail.next() => match envelope {
                    Some(envelope) if matches!(*envelope, Envelope::Evict) => {
                        self.shared.retired.retire(&self.key, &self.meter);
                        self.sockets().close_all(1012, "the object moved to another node");
                        break;
                    }
                    Some(envelope) => {
                        if matches!(*envelope, Envelope::View { .. }) {
                            self.dispatch(*envelope).await;
                        } else {
                            self.metered(*envelope).await;
                            self.quiet_since = tokio::time::Instant::now();
                        }
                    }
                    None => break,
                },
                () = wake, if self.wake_at.is_some() => {
                    if self.quiet_since.elapsed() < self.shared.limits.background {
                        self.dispatch(Envelope::Wake).await;
                    } else {
                        tracing::warn!(class = %self.class.name, object = %self.key.id,
                            limit_ms = self.shared.limits.background.as_millis() as u64,
                            "background work (timers, waitUntil) cut: no event from outside \
                             within the background limit; instance dropped");
                        self.forget();
                    }
                }
                () = idle, if can_idle => {
                    if self.go_idle() {
                        break;
                    }
                }
                () = self.shared.pressure.notified(), if can_idle => {
                    // The live bound is reached: an idle object makes room (it re-activates
                    // cheaply on its next event).
                    if self.go_idle() {
                        break;
                    }
                }
            }
        }
        // Let outputs already handed out resolve before the storage view goes.
        while let Some(committed) = self.gate.next_commit().await {
            self.on_commit(committed);
        }
        while let Some(front) = self.gate.next_release() {
            let _ = front.wait().await;
            self.release_outbox();
        }
        self.release_outbox();
        self.shared.metrics.live_objects.dec();
    }

    /// Runs an event from outside and counts what it cost: wall time, the time it ran on a
    /// runtime thread (the sum of its polls: its CPU time, unless the OS took the thread away;
    /// a thread CPU clock would cost a system call, ~0.7 µs here, per poll), the storage bytes
    /// its guest read and wrote, its memory.
    async fn metered(&mut self, envelope: Envelope) {
        let kind = crate::tail::listening().then(|| envelope.kind());
        let started = Instant::now();
        let mut cpu_ns = 0;
        {
            let mut event = std::pin::pin!(self.dispatch(envelope));
            std::future::poll_fn(|cx| {
                let before = Instant::now();
                let polled = event.as_mut().poll(cx);
                cpu_ns += before.elapsed().as_nanos() as u64;
                polled
            })
            .await;
        }
        let (read_bytes, written_bytes) = self.storage().take_traffic();
        let cost = EventCost {
            wall_ns: started.elapsed().as_nanos() as u64,
            cpu_ns,
            read_bytes,
            written_bytes,
            memory_bytes: self.memory_bytes() as u64,
        };
        let websockets = self.sockets().len();
        self.meter
            .event(self.shared.clock.now_ms(), websockets, cost);
        if let Some(kind) = kind {
            crate::tail::publish(|| {
                let mut event = crate::tail::TailEvent::new(kind);
                event.class = Some(self.class.name.to_string());
                event.id = Some(self.key.id.to_hex());
                event.object = Some(self.name.clone().unwrap_or_else(|| self.key.id.to_hex()));
                event.ms = Some(cost.wall_ns as f64 / 1e6);
                event
            });
        }
    }

    /// The linear memory of its instance (0 while it has none, or shares one).
    fn memory_bytes(&self) -> usize {
        match &self.body {
            Some(Body::Live(instance)) => instance.memory_bytes(),
            _ => 0,
        }
    }

    /// Runs one envelope; a panic inside the runtime resets the object (`recover_from_panic`).
    async fn dispatch(&mut self, envelope: Envelope) {
        // Boxed so that an idle actor's task stays small (the event's future exists only while
        // the event runs): ~5 KiB less per live object.
        let event = std::panic::AssertUnwindSafe(Box::pin(self.handle(envelope)));
        if let Err(panic) = event.catch_unwind().await {
            let cause = crate::metrics::panic_text(panic.as_ref());
            self.recover_from_panic(cause).await;
        }
    }

    async fn handle(&mut self, envelope: Envelope) {
        let cold = self.is_cold().then(Instant::now);
        self.run_event(envelope).await;
        self.note_wake_request();
        self.leave();
        if let Some(started) = cold
            && !self.is_cold()
        {
            self.shared
                .metrics
                .activation_seconds
                .observe(started.elapsed().as_secs_f64());
        }
    }

    async fn run_event(&mut self, envelope: Envelope) {
        match envelope {
            Envelope::Fetch {
                request,
                name,
                reply,
            } => {
                self.learn_name(name);
                injected_fault(&request);
                let outcome = self.fetch(request).await;
                let _ = reply.send(self.gate.gate(outcome));
            }
            Envelope::Alarm {
                at_ms,
                retry_count,
                last_attempt,
                reply,
            } => {
                let outcome = self.alarm(at_ms, retry_count, last_attempt).await;
                let _ = reply.send(self.gate.gate(outcome));
            }
            Envelope::View { reply } => {
                let sockets = self.sockets();
                let websockets = (sockets.list(None).into_iter())
                    .map(|id| (id, sockets.tags(id).unwrap_or_default()))
                    .collect();
                let view = super::ObjectView {
                    websockets,
                    in_memory: !self.is_cold(),
                };
                let _ = reply.send(view);
            }
            Envelope::Edit { edit, name, reply } => {
                self.learn_name(name);
                let outcome = self.edit(edit).await;
                let _ = reply.send(self.gate.gate(outcome));
            }
            Envelope::SocketOpened { id, tx } => self.sockets().connected(id, tx),
            Envelope::Socket { id, event } => self.socket_event(id, event).await,
            // Handled by `serve`, which stops.
            Envelope::Evict => {}
            Envelope::Wake => {
                self.wake_at = None;
                if self.follow_class().is_ok() {
                    self.background_event(None).await;
                }
            }
        }
    }

    /// The object was addressed by `name` (if any): its storage will store it, its instance
    /// tells it.
    fn learn_name(&mut self, name: Option<String>) {
        if let Some(name) = name
            && self.name.is_none()
        {
            self.storage().learn_name(&name);
            self.name = Some(name);
        }
    }

    /// Takes what the event asked of `timers.wake-after` from the instance it ran on.
    fn note_wake_request(&mut self) {
        let Some(instance) = held(&mut self.body) else {
            return;
        };
        if let Some(request) = instance.take_wake_request() {
            self.wake_at = request.map(|delay| tokio::time::Instant::now() + delay);
        }
    }

    /// After a panic inside the runtime while running an event (a bug, or storage damage that
    /// redb panics on): the caller already got an internal error (its reply was dropped), the
    /// runtime reports itself unhealthy, and the object starts over from durable storage — once
    /// its commits in flight have landed, so the fresh view misses none of them.
    async fn recover_from_panic(&mut self, cause: String) {
        tracing::error!(class = %self.class.name, object = %self.key.id, %cause, "internal error while running an event; object reset");
        let metrics = &self.shared.metrics;
        metrics.internal_errors.inc();
        metrics.health.report(format!(
            "internal error in an object of {}: {cause}",
            self.class.name
        ));
        self.fresh_storage_view();
        // The old view's commits: awaited (the fresh view must not read before they land), and
        // ignored (they belong to the old generation).
        while let Some(committed) = self.gate.next_commit().await {
            self.on_commit(committed);
        }
    }

    /// The idle timeout stretched by 0-25%, fixed per actor: objects touched together then go
    /// idle spread over a window instead of all in the same instant.
    fn idle_timeout(&self) -> std::time::Duration {
        let spread = self.actor_id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 0..1024
        let base = self.shared.idle_timeout;
        base + base.mul_f64(spread as f64 / 4096.0)
    }

    /// Hibernates (drops the instance) when sockets are open, otherwise retires. Returns whether
    /// the actor retired.
    fn go_idle(&mut self) -> bool {
        if !self.sockets().is_empty() {
            if !self.is_cold() {
                self.forget();
                self.shared.metrics.hibernations.inc();
            }
            self.storage().close_sql();
            return false;
        }
        if !self.mail.is_empty() {
            return false;
        }
        let retired = self
            .shared
            .retire(&self.key, self.actor_id, &mut self.mail.rx);
        if retired {
            self.shared.metrics.evictions.inc();
        }
        retired
    }

    /// Queues an event's messages behind its commit and releases what is durable.
    fn queue_release(&mut self, messages: Vec<(SocketId, Outgoing)>) {
        if !messages.is_empty() {
            self.gate.hold(messages);
        }
        self.release_outbox();
    }

    /// Hands messages whose commits are durable to their connections, in event order. Messages
    /// of an event whose commit failed are dropped: they never leave.
    fn release_outbox(&mut self) {
        for messages in self.gate.released() {
            self.sockets().deliver(messages);
        }
    }

    /// Hands the event's writes to the committer; its outputs will wait for them.
    async fn commit_event(&mut self) {
        let Some(writes) = self.storage().finish_event() else {
            return;
        };
        let durable = self.shared.committer.submit(writes.ops).await;
        self.gate.submitted(writes.seq, durable);
        self.committing_since
            .push_back((writes.seq, Instant::now()));
    }

    fn on_commit(&mut self, committed: Committed) {
        match committed {
            Committed::Durable(seq) => {
                self.storage().mark_durable(seq);
                while let Some((_, since)) =
                    (self.committing_since.front()).filter(|(done, _)| *done <= seq)
                {
                    self.meter.gate_wait(since.elapsed().as_nanos() as u64);
                    self.committing_since.pop_front();
                }
            }
            Committed::Failed(error) => {
                tracing::error!(class = %self.class.name, object = %self.key.id, %error, "commit failed; object reset");
                self.fresh_storage_view();
            }
            Committed::Stale => {}
        }
    }
}

/// Fault injection for the tests of internal-error handling, in debug builds only: with
/// `DURO_FAULT_INJECTION` set in the environment, a request carrying the header
/// `x-duro-fault: panic` panics inside the actor, as a bug or a storage panic would.
fn injected_fault(request: &Request) {
    #[cfg(debug_assertions)]
    if std::env::var_os("DURO_FAULT_INJECTION").is_some()
        && request
            .headers
            .iter()
            .any(|(n, v)| n == "x-duro-fault" && v == "panic")
    {
        panic!("injected fault (x-duro-fault: panic)");
    }
    let _ = request;
}
