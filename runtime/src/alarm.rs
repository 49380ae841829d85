//! Alarms: the scheduler that fires each object's persisted alarm at (never before) its time.
//!
//! An alarm lives in storage (`schema::ALARMS`, one per object, plus a time-ordered index
//! `schema::ALARM_SCHEDULE`), written atomically with the event that set it. The scheduler keeps
//! no timer per alarm: it reads the earliest due entries from the index, delivers each as an
//! alarm event to its object (activating it if needed), and sleeps until the next entry or until
//! a commit sets an earlier one. A failed alarm is retried with exponential backoff; the retry
//! (its number and time) is stored with the alarm, so a restart continues the backoff. An alarm
//! that was running when the runtime died is still in the index and fires again after a restart
//! (at-least-once). Time comes from a [`Clock`]: the wall clock, or in tests a manual one.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc, watch};

use crate::class::Classes;
use crate::clock::Clock;
use crate::config::RetryPolicy;
use crate::ids::ObjectId;
use crate::metrics::Metrics;
use crate::object::{AlarmOutcome, Directory, ObjectError};
use crate::storage::schema::AlarmRetry;
use crate::storage::{BackendError, Committer, WriteOp, schema};

/// Most alarm events in flight at once; bounds the activations a burst of due alarms causes.
const MAX_IN_FLIGHT: usize = 256;
/// Longest the scheduler sleeps without looking at the index again (guards against clock jumps).
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// One scheduled alarm, as the index holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Due {
    at_ms: i64,
    /// Object prefix: class incarnation + object id.
    object: Vec<u8>,
}

/// A retry waiting for its backoff.
struct Retry {
    due: Due,
    /// Clock time (epoch ms) of the attempt.
    when_ms: i64,
    retry_count: u32,
}

/// Wakes the scheduler when a commit may have set an earlier alarm.
#[derive(Clone, Default)]
pub struct AlarmWake(Arc<Notify>);

impl AlarmWake {
    /// The notifier the committer signals after committing a set alarm.
    pub fn notify(&self) -> Arc<Notify> {
        self.0.clone()
    }
}

/// How one delivery went, as the scheduler sees it.
enum Attempt {
    Ran(AlarmOutcome),
    /// The object's class no longer exists.
    Orphaned,
    /// Cluster mode: the object's shard is another node's now.
    Moved,
}

/// Runs the scheduler until `stop` turns true.
pub struct Scheduler {
    pub db: crate::storage::Store,
    pub directory: Directory,
    pub classes: Arc<Classes>,
    pub committer: Committer,
    pub policy: RetryPolicy,
    pub wake: AlarmWake,
    pub metrics: Arc<Metrics>,
    pub clock: Clock,
}

impl Scheduler {
    pub async fn run(self, stop: watch::Receiver<bool>) {
        let stopped = stopped(stop);
        tokio::pin!(stopped);
        let (done_tx, mut done_rx) = mpsc::channel::<(Due, u32, Attempt)>(MAX_IN_FLIGHT);
        let mut in_flight: HashSet<Vec<u8>> = HashSet::new();
        let mut retries = match self.stored_retries() {
            Ok(retries) => retries,
            Err(error) => {
                tracing::error!(%error, "cannot read the stored alarm retries; they start over");
                HashMap::new()
            }
        };
        loop {
            // Fire retries whose backoff is over.
            let now = self.clock.now_ms();
            let ready: Vec<Vec<u8>> = retries
                .iter()
                .filter(|(_, r)| r.when_ms <= now)
                .map(|(k, _)| k.clone())
                .collect();
            for object in ready {
                if in_flight.len() >= MAX_IN_FLIGHT {
                    break;
                }
                let retry = retries.remove(&object).expect("listed above");
                if !self.runs_here(&object) {
                    // Its shard moved: the new owner continues the backoff from storage.
                    continue;
                }
                in_flight.insert(object);
                self.fire(retry.due, retry.retry_count, &done_tx);
            }
            // Fire due alarms from the index.
            let busy = |o: &[u8]| in_flight.contains(o) || retries.contains_key(o);
            let room = MAX_IN_FLIGHT.saturating_sub(in_flight.len());
            let (due, next_at) = match self.read_due(now, room, &busy) {
                Ok(found) => found,
                Err(error) => {
                    tracing::error!(%error, "cannot read the alarm schedule");
                    (Vec::new(), None)
                }
            };
            for due in due {
                in_flight.insert(due.object.clone());
                self.fire(due, 0, &done_tx);
            }
            // Sleep until the next alarm, the next retry, a wake-up or a completion.
            let max_sleep = i64::try_from(MAX_SLEEP.as_millis()).unwrap_or(i64::MAX);
            let mut wake_at = now.saturating_add(max_sleep);
            if let Some(at) = next_at {
                wake_at = wake_at.min(at);
            }
            if let Some(first) = retries.values().map(|r| r.when_ms).min() {
                wake_at = wake_at.min(first);
            }
            tokio::select! {
                () = self.clock.sleep_until(wake_at) => {}
                () = self.wake.0.notified() => {}
                Some((due, retry_count, outcome)) = done_rx.recv() => {
                    in_flight.remove(&due.object);
                    if let Some(retry) = self.after(due, retry_count, outcome).await {
                        retries.insert(retry.due.object.clone(), retry);
                    }
                }
                () = &mut stopped => break,
            }
        }
    }

    /// The retries stored with their alarms (a restart continues their backoff), keyed by object.
    fn stored_retries(&self) -> Result<HashMap<Vec<u8>, Retry>, BackendError> {
        let mut retries = HashMap::new();
        for (object, retry) in self.db.reader()?.retries()? {
            let due = Due {
                at_ms: retry.at_ms,
                object: object.clone(),
            };
            retries.insert(
                object,
                Retry {
                    due,
                    when_ms: retry.not_before_ms,
                    retry_count: retry.retry_count,
                },
            );
        }
        Ok(retries)
    }

    /// Delivers one alarm event; its outcome comes back on `done`.
    fn fire(&self, due: Due, retry_count: u32, done: &mpsc::Sender<(Due, u32, Attempt)>) {
        let directory = self.directory.clone();
        let classes = self.classes.clone();
        let done = done.clone();
        let last_attempt = retry_count >= self.policy.max_retries;
        if retry_count == 0 {
            let late_ms = self.clock.now_ms().saturating_sub(due.at_ms).max(0);
            self.metrics
                .alarm_lateness_seconds
                .observe(late_ms as f64 / 1e3);
        }
        self.metrics.alarms_fired.inc();
        tokio::spawn(async move {
            let attempt = match locate(&classes, &due.object) {
                Some((class, id)) => {
                    match directory
                        .alarm(class, id, due.at_ms, retry_count, last_attempt)
                        .await
                    {
                        Ok(outcome) => Attempt::Ran(outcome),
                        // Its shard moved: the new owner fires it (this node writes nothing).
                        Err(ObjectError::NotHere) => Attempt::Moved,
                        Err(e) => Attempt::Ran(AlarmOutcome::Failed(e.to_string())),
                    }
                }
                None => Attempt::Orphaned,
            };
            let _ = done.send((due, retry_count, attempt)).await;
        });
    }

    /// Decides what follows an attempt: nothing, a retry, or dropping the alarm.
    async fn after(&self, due: Due, retry_count: u32, attempt: Attempt) -> Option<Retry> {
        let outcome = match attempt {
            Attempt::Ran(outcome) => outcome,
            Attempt::Orphaned => {
                // The class was deleted: drop the index entry.
                self.clear(&due).await;
                return None;
            }
            Attempt::Moved => return None,
        };
        match outcome {
            AlarmOutcome::Done | AlarmOutcome::Stale => None,
            AlarmOutcome::Failed(error) if retry_count < self.policy.max_retries => {
                // The backoff counts from now; the failure is counted after reading the clock,
                // so whoever sees the count knows the retry's time is fixed.
                let now = self.clock.now_ms();
                self.metrics.alarm_failures.inc();
                let retry_count = retry_count + 1;
                let delay = self.policy.delay(retry_count);
                tracing::warn!(%error, retry_count, ?delay, "alarm failed; retrying");
                let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                let retry = Retry {
                    when_ms: now.saturating_add(delay_ms),
                    due,
                    retry_count,
                };
                // Stored with the alarm: a restart continues this backoff.
                let stored = AlarmRetry {
                    at_ms: retry.due.at_ms,
                    retry_count,
                    not_before_ms: retry.when_ms,
                };
                let op = WriteOp::RecordAlarmRetry {
                    object: retry.due.object.clone(),
                    retry: stored,
                };
                if let Err(error) = self.committer.submit(vec![op]).await.wait().await {
                    tracing::error!(%error, "cannot store an alarm's retry");
                }
                Some(retry)
            }
            AlarmOutcome::Failed(error) => {
                // The object deleted it on this last attempt.
                self.metrics.alarm_failures.inc();
                tracing::error!(%error, retries = retry_count, "alarm failed too often; dropped");
                None
            }
        }
    }

    /// Removes the index entry (and alarm) of an object whose class no longer exists.
    async fn clear(&self, due: &Due) {
        let op = WriteOp::ClearAlarmIf {
            object: due.object.clone(),
            at_ms: due.at_ms,
        };
        if let Err(error) = self.committer.submit(vec![op]).await.wait().await {
            tracing::error!(%error, "cannot drop an alarm");
        }
    }

    /// Whether this node fires the alarm of the object with this prefix (in a cluster, the
    /// owner of its shard does).
    fn runs_here(&self, object: &[u8]) -> bool {
        schema::split_object_prefix(object).is_none_or(|(_, id)| self.directory.runs_here(&id))
    }

    /// Up to `room` due alarms (not busy), and the time of the first alarm after `now` (`None`
    /// when `room` filled up first: completions wake the loop then). Scans past at most the busy
    /// entries, so a backlog of due alarms costs O(room) per pass, not O(backlog).
    fn read_due(
        &self,
        now: i64,
        room: usize,
        busy: &dyn Fn(&[u8]) -> bool,
    ) -> Result<(Vec<Due>, Option<i64>), BackendError> {
        let mut due = Vec::new();
        if room == 0 {
            return Ok((due, None));
        }
        for entry in self.db.reader()?.schedule()? {
            let (at_ms, object) = entry?;
            if at_ms > now {
                return Ok((due, Some(at_ms)));
            }
            if !busy(&object) && self.runs_here(&object) {
                due.push(Due { at_ms, object });
                if due.len() == room {
                    return Ok((due, None));
                }
            }
        }
        Ok((due, None))
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The class and id an object prefix belongs to, if its class still exists.
fn locate(classes: &Classes, object: &[u8]) -> Option<(Arc<crate::class::LoadedClass>, ObjectId)> {
    let (incarnation, id) = schema::split_object_prefix(object)?;
    Some((classes.by_incarnation(incarnation)?, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_is_2s_doubling_6_retries() {
        let policy = RetryPolicy::default();
        let delays: Vec<u64> = (1..=6).map(|n| policy.delay(n).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64]);
        assert_eq!(policy.max_retries, 6);
    }
}
