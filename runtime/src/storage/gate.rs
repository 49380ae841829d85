//! The output gate: nothing an event produced leaves before the writes it depends on are
//! durable.
//!
//! Each live object has one [`OutputGate`]. The object submits its events' write sets in order
//! and goes on without waiting; the gate follows those commits. It keeps the *barrier* (the
//! newest commit not yet known durable, which every new output waits on), the messages (the
//! object's WebSocket frames) held behind their events' commits in event order, and the
//! *generation* a failure reset bumps, so that outcomes of commits made before a reset are
//! ignored. A reply leaves as a [`Gated`] value, which whoever receives it releases once durable
//! (`object::Directory::fetch`); held messages are released here, in order, or dropped if their
//! commit failed.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use super::{CommitError, Durable};

/// One commit followed by the gate: (generation, write set's sequence number, outcome).
type Following = Pin<Box<dyn Future<Output = (u64, u64, Result<(), CommitError>)> + Send>>;

/// An object's output gate (see the module's header); `M` is what it holds back (messages).
pub struct OutputGate<M> {
    generation: u64,
    /// The object's commits in flight, in submission order.
    commits: FuturesOrdered<Following>,
    /// The newest commit not yet known durable: every output waits on it.
    barrier: Option<Durable>,
    /// Messages waiting for their events' commits, in event order.
    held: VecDeque<(Option<Durable>, M)>,
}

/// What a commit the gate followed came to.
#[derive(Debug)]
pub enum Committed {
    /// The write set with this sequence number is durable.
    Durable(u64),
    /// It failed: the object must start over from what is durable, and [`OutputGate::reset`].
    Failed(CommitError),
    /// A commit made before the last reset: nothing to do.
    Stale,
}

impl<M> Default for OutputGate<M> {
    fn default() -> Self {
        Self {
            generation: 0,
            commits: FuturesOrdered::new(),
            barrier: None,
            held: VecDeque::new(),
        }
    }
}

impl<M> OutputGate<M> {
    /// Whether commits are in flight.
    pub fn is_committing(&self) -> bool {
        !self.commits.is_empty()
    }

    /// Follows the commit of write set `seq`: every output from now on waits for it.
    pub fn submitted(&mut self, seq: u64, durable: Durable) {
        let (generation, wait) = (self.generation, durable.clone());
        self.commits.push_back(Box::pin(
            async move { (generation, seq, wait.wait().await) },
        ));
        self.barrier = Some(durable);
    }

    /// `value` held until the writes submitted so far are durable.
    pub fn gate<T>(&mut self, value: T) -> Gated<T> {
        Gated::new(value, self.barrier())
    }

    /// The barrier an output made now must wait on, if a commit is still pending.
    fn barrier(&mut self) -> Option<Durable> {
        if self.barrier.as_ref().is_some_and(|b| b.peek().is_some()) {
            let resolved = self.barrier.take().expect("checked: some");
            // A failed commit still has to hold back its dependants.
            if matches!(resolved.peek(), Some(Err(_))) {
                self.barrier = Some(resolved);
            }
        }
        self.barrier.clone()
    }

    /// Holds `messages` until the writes submitted so far are durable.
    pub fn hold(&mut self, messages: M) {
        let barrier = self.barrier();
        self.held.push_back((barrier, messages));
    }

    /// The held messages whose commits are durable, in order; those of a failed commit are
    /// dropped (they never leave).
    pub fn released(&mut self) -> Vec<M> {
        let mut released = Vec::new();
        while let Some((barrier, _)) = self.held.front() {
            match barrier.as_ref().map(Durable::peek) {
                Some(None) => break,
                Some(Some(Err(_))) => {
                    self.held.pop_front();
                }
                None | Some(Some(Ok(()))) => {
                    released.extend(self.held.pop_front().map(|(_, m)| m));
                }
            }
        }
        released
    }

    /// Resolves when the oldest held message's commit is settled (then call [`Self::released`]);
    /// `None` if no held message waits.
    pub fn next_release(&self) -> Option<Durable> {
        self.held.front().and_then(|(barrier, _)| barrier.clone())
    }

    /// The next outcome of a commit in flight, in submission order (cancel-safe); `None` when
    /// none is in flight.
    pub async fn next_commit(&mut self) -> Option<Committed> {
        let (generation, seq, outcome) = self.commits.next().await?;
        Some(match outcome {
            _ if generation != self.generation => Committed::Stale,
            Ok(()) => Committed::Durable(seq),
            Err(error) => Committed::Failed(error),
        })
    }

    /// After a failure, with the object starting over from what is durable: outputs no longer
    /// wait on earlier commits, whose outcomes are ignored from now on.
    pub fn reset(&mut self) {
        self.generation += 1;
        self.barrier = None;
    }
}

/// An output held until the writes it depends on are durable.
pub struct Gated<T> {
    value: T,
    barrier: Option<Durable>,
}

impl<T> Gated<T> {
    /// `value` may leave once `barrier` (if any) is durable.
    fn new(value: T, barrier: Option<Durable>) -> Self {
        Self { value, barrier }
    }

    /// `value`, whose writes are durable already (it passed the gate another way).
    pub fn ready(value: T) -> Self {
        Self::new(value, None)
    }

    /// Waits for durability, then gives the output up; an error if its writes never became
    /// durable (then the output must never be shown).
    pub async fn release(self) -> Result<T, CommitError> {
        if let Some(barrier) = self.barrier {
            barrier.wait().await?;
        }
        Ok(self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit the test settles by hand.
    fn pending() -> (
        tokio::sync::oneshot::Sender<Result<(), CommitError>>,
        Durable,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let durable = Durable::from_future(async move {
            rx.await
                .unwrap_or_else(|_| Err(CommitError::new("dropped")))
        });
        (tx, durable)
    }

    #[tokio::test]
    async fn messages_leave_in_order_once_durable_and_never_after_a_failure() {
        let mut gate = OutputGate::default();
        gate.hold("before any write");
        assert_eq!(gate.released(), ["before any write"]);

        let (first, durable) = pending();
        gate.submitted(1, durable);
        gate.hold("after the first write");
        let (second, durable) = pending();
        gate.submitted(2, durable);
        gate.hold("after the second write");
        assert!(
            gate.released().is_empty(),
            "nothing leaves before its commit"
        );

        first.send(Ok(())).unwrap();
        assert!(matches!(
            gate.next_commit().await,
            Some(Committed::Durable(1))
        ));
        assert_eq!(gate.released(), ["after the first write"]);

        second.send(Err(CommitError::new("disk full"))).unwrap();
        assert!(matches!(
            gate.next_commit().await,
            Some(Committed::Failed(_))
        ));
        assert!(
            gate.released().is_empty(),
            "a failed commit's messages are dropped"
        );
        let gated = gate.gate("a reply after the failure");
        assert!(
            gated.release().await.is_err(),
            "the failure holds dependants back"
        );

        gate.reset();
        assert_eq!(
            gate.gate("after the reset").release().await.unwrap(),
            "after the reset"
        );
    }

    #[tokio::test]
    async fn outcomes_of_commits_before_a_reset_are_stale() {
        let mut gate = OutputGate::<()>::default();
        let (commit, durable) = pending();
        gate.submitted(7, durable);
        gate.reset();
        commit.send(Err(CommitError::new("late"))).unwrap();
        assert!(matches!(gate.next_commit().await, Some(Committed::Stale)));
        assert!(gate.next_commit().await.is_none());
        assert!(!gate.is_committing());
    }
}
