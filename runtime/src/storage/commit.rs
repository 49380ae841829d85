//! Group commit: the single writer of storage, and the `Durable` future outputs wait on.
//!
//! Every write set (an object's event, a class change) becomes a [`CommitRequest`] on one bounded
//! queue. A dedicated OS thread takes everything queued as one group and hands it to the engine's
//! [`Sink`] (redb: one write-ahead log record and one `fdatasync`, see `embedded::sink`;
//! PostgreSQL: one fenced transaction), then resolves each request's [`Durable`]. While it
//! commits, new requests pile up and form the next group, so throughput does not collapse to one
//! sync per event. This module never releases an output itself: it only says when bytes are
//! durable. It never runs on an async thread (engines block).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::Shared;
use tokio::sync::{Notify, mpsc, oneshot};

use super::backend::Sink;
pub use super::ops::WriteOp;
use crate::metrics::Metrics;

/// Most requests one group may carry; bounds the latency a huge backlog adds to its first member.
const MAX_GROUP_REQUESTS: usize = 4096;
/// Requests that may wait for the writer before submitters are slowed down (backpressure).
const QUEUE_CAPACITY: usize = 16 * 1024;

/// Why a write set is not durable. Cloneable: every output waiting on it gets a copy.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage commit failed: {0}")]
pub struct CommitError(Arc<str>);

impl CommitError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        Self(message.into().into())
    }
}

type DurableFuture = Pin<Box<dyn Future<Output = Result<(), CommitError>> + Send>>;

/// Resolves once a write set is durable (or has failed). Cheap to clone; any number of outputs
/// may wait on the same one.
#[derive(Clone)]
pub struct Durable(Shared<DurableFuture>);

impl Durable {
    /// Already durable: for outputs that depend on no pending write.
    pub fn ready() -> Self {
        Self::from_future(futures_util::future::ready(Ok(())))
    }

    /// Durable once `outcome` resolves (to its result).
    pub(super) fn from_future(
        outcome: impl Future<Output = Result<(), CommitError>> + Send + 'static,
    ) -> Self {
        let future: DurableFuture = Box::pin(outcome);
        Self(future.shared())
    }

    pub async fn wait(&self) -> Result<(), CommitError> {
        self.0.clone().await
    }

    /// The outcome, if known already.
    pub fn peek(&self) -> Option<&Result<(), CommitError>> {
        self.0.peek()
    }
}

struct CommitRequest {
    ops: Vec<WriteOp>,
    done: oneshot::Sender<Result<(), CommitError>>,
}

/// Handle to the writer thread. Cheap to clone; the thread ends when every handle is dropped
/// and the queue is drained.
#[derive(Clone)]
pub struct Committer {
    queue: mpsc::Sender<CommitRequest>,
}

/// Joins the writer thread; dropping it without `join` detaches the thread.
pub struct CommitterThread(JoinHandle<()>);

impl CommitterThread {
    /// Waits until every submitted request has been committed or failed.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl Committer {
    /// Starts the writer thread over `sink`. `alarm_set` is notified after a commit that set an
    /// alarm (the scheduler may need to wake).
    pub fn start(
        sink: Box<dyn Sink>,
        metrics: Arc<Metrics>,
        alarm_set: Arc<Notify>,
    ) -> std::io::Result<(Self, CommitterThread)> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = GroupWriter {
            sink,
            metrics,
            alarm_set,
            failed: None,
        };
        let thread = std::thread::Builder::new()
            .name("duro-commit".into())
            .spawn(move || writer.run(rx))?;
        Ok((Self { queue }, CommitterThread(thread)))
    }

    /// Queues a write set; the returned future resolves when it is durable. Waits only when the
    /// queue is full (backpressure), never for the commit itself.
    pub async fn submit(&self, ops: Vec<WriteOp>) -> Durable {
        let (done, rx) = oneshot::channel();
        let request = CommitRequest { ops, done };
        if self.queue.send(request).await.is_err() {
            return Durable::from_future(futures_util::future::ready(Err(CommitError::new(
                "the runtime is shutting down",
            ))));
        }
        Durable::from_future(rx.map(|outcome| {
            outcome.unwrap_or_else(|_| Err(CommitError::new("the storage writer stopped")))
        }))
    }
}

/// The state of the writer thread.
struct GroupWriter {
    sink: Box<dyn Sink>,
    metrics: Arc<Metrics>,
    alarm_set: Arc<Notify>,
    /// Set by the first sticky failure (see [`super::backend::SinkError`]). Every later request
    /// fails with it: a group may be half in the engine, so nothing may be built on top of it; a
    /// restart recovers.
    failed: Option<CommitError>,
}

impl GroupWriter {
    fn run(mut self, mut rx: mpsc::Receiver<CommitRequest>) {
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while group.len() < MAX_GROUP_REQUESTS {
                match rx.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.commit_group(group);
            }));
            if let Err(panic) = caught {
                // The group's callers got "the storage writer stopped" (their senders were
                // dropped); nothing more may be written on top of a half-done transaction.
                let error = CommitError::new(format!(
                    "the storage writer panicked: {}",
                    crate::metrics::panic_text(panic.as_ref())
                ));
                tracing::error!(%error, "every later write fails until a restart");
                self.metrics.storage_writer_ok.set(0);
                self.metrics.internal_errors.inc();
                self.metrics.health.report(error.to_string());
                self.failed = Some(error);
            }
        }
        // Shutting down: the engine finishes what it keeps (redb: a last checkpoint).
        if self.failed.is_none() {
            self.sink.close();
        }
    }

    fn commit_group(&mut self, group: Vec<CommitRequest>) {
        if let Some(error) = &self.failed {
            for request in group {
                let _ = request.done.send(Err(error.clone()));
            }
            return;
        }
        let started = Instant::now();
        let ops: Vec<&WriteOp> = group.iter().flat_map(|r| &r.ops).collect();
        let outcome = self.sink.write(&ops);
        drop(ops);
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        match outcome {
            Ok(()) => {
                self.metrics.commits.inc();
                self.metrics.commit_writes.inc_by(group.len() as u64);
                self.metrics.commit_group_size.observe(group.len() as f64);
                let sets_alarm = group
                    .iter()
                    .flat_map(|r| &r.ops)
                    .any(|op| matches!(op, WriteOp::SetAlarm { at_ms: Some(_), .. }));
                if sets_alarm {
                    self.alarm_set.notify_one();
                }
                for request in group {
                    let _ = request.done.send(Ok(()));
                }
            }
            Err(failure) => {
                let error = CommitError::new(failure.message);
                self.metrics.commit_failures.inc();
                if failure.sticky {
                    tracing::error!(%error, writes = group.len(), "group commit failed; every later write fails until a restart");
                    self.metrics.storage_writer_ok.set(0);
                    self.metrics.health.report(format!(
                        "the storage writer failed and every write fails until a restart: {error}"
                    ));
                    self.failed = Some(error.clone());
                } else {
                    tracing::warn!(%error, writes = group.len(), "group commit refused");
                }
                for request in group {
                    let _ = request.done.send(Err(error.clone()));
                }
            }
        }
    }
}
