//! Group commit: the single writer of the database, and the `Durable` future outputs wait on.
//!
//! Every write set (an object's event, a class change) becomes a [`CommitRequest`] on one bounded
//! queue. A dedicated OS thread takes everything queued as one group, appends it to the
//! write-ahead log (one `fdatasync` for the whole group, see [`super::wal`]), applies it in one
//! redb write transaction, then resolves each request's [`Durable`]. While it syncs, new requests
//! pile up and form the next group, so throughput does not collapse to one fsync per event. Once
//! per checkpoint interval a group is committed to redb durably instead of being logged. This
//! module never releases an output itself: it only says when bytes are on disk. It never runs on
//! an async thread (syncs and redb commits block).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::future::Shared;
use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::{Notify, mpsc, oneshot};

use super::schema::{self, Table};
use super::wal::Log;
use crate::metrics::Metrics;

/// Most requests one group may carry; bounds the latency a huge backlog adds to its first member.
const MAX_GROUP_REQUESTS: usize = 4096;
/// Requests that may wait for the writer before submitters are slowed down (backpressure).
const QUEUE_CAPACITY: usize = 16 * 1024;

/// One write of a write set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOp {
    Put {
        table: Table,
        key: Vec<u8>,
        value: Bytes,
    },
    Delete {
        table: Table,
        key: Vec<u8>,
    },
    /// Deletes every object entry whose key starts with `prefix` (delete-all, class deletion).
    DeleteDataPrefix {
        prefix: Vec<u8>,
    },
    /// Sets (or with `None` deletes) an object's alarm, keeping the schedule index in step.
    SetAlarm {
        object: Vec<u8>,
        at_ms: Option<i64>,
    },
    /// Deletes an object's alarm only if it is still set for `at_ms` (a dropped retry), and that
    /// time's index entry (also used for alarms of classes that no longer exist).
    ClearAlarmIf {
        object: Vec<u8>,
        at_ms: i64,
    },
    /// Deletes the alarms of every object whose prefix starts with `prefix` (class deletion;
    /// their index entries are dropped by the scheduler when they come due).
    DeleteAlarmsPrefix {
        prefix: Vec<u8>,
    },
    /// Records a failed alarm's next attempt, if the object's alarm is still `retry.at_ms`.
    /// Setting or deleting the alarm forgets it.
    RecordAlarmRetry {
        object: Vec<u8>,
        retry: schema::AlarmRetry,
    },
}

/// Why a write set is not durable. Cloneable: every output waiting on it gets a copy.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage commit failed: {0}")]
pub struct CommitError(Arc<str>);

impl CommitError {
    fn new(message: impl Into<String>) -> Self {
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
        Self(futures_util::future::ready(Ok(())).boxed().shared())
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
    /// Starts the writer thread over `db` and its recovered `log`; a group is committed to redb
    /// durably (a checkpoint) once `checkpoint_interval` has passed since the last one.
    /// `alarm_set` is notified after a commit that set an alarm (the scheduler may need to wake).
    pub fn start(
        db: Arc<Database>,
        log: Log,
        checkpoint_interval: Duration,
        metrics: Arc<Metrics>,
        alarm_set: Arc<Notify>,
    ) -> std::io::Result<(Self, CommitterThread)> {
        let (queue, rx) = mpsc::channel(QUEUE_CAPACITY);
        let writer = GroupWriter {
            db,
            log,
            checkpoint_interval,
            last_checkpoint: Instant::now(),
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
            return Durable(
                futures_util::future::ready(Err(CommitError::new("the runtime is shutting down")))
                    .boxed()
                    .shared(),
            );
        }
        let future: DurableFuture = Box::pin(rx.map(|outcome| {
            outcome.unwrap_or_else(|_| Err(CommitError::new("the storage writer stopped")))
        }));
        Durable(future.shared())
    }
}

/// The state of the writer thread.
struct GroupWriter {
    db: Arc<Database>,
    log: Log,
    checkpoint_interval: Duration,
    last_checkpoint: Instant,
    metrics: Arc<Metrics>,
    alarm_set: Arc<Notify>,
    /// Set by the first failure to log or apply a group. Every later request fails with it: a
    /// group may be in the log without being in redb, so nothing may be built on top of it; a
    /// restart replays the log and recovers.
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
        // Shutting down: checkpoint what only the log holds and mark the stop clean, so the next
        // start replays nothing (and knows a missing log lost nothing).
        if self.failed.is_none()
            && let Err(error) = self.final_checkpoint()
        {
            tracing::error!(%error, "final checkpoint failed; the next start replays the log");
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
        let checkpoint_due =
            started.duration_since(self.last_checkpoint) >= self.checkpoint_interval;
        let outcome = self.commit(&group, checkpoint_due);
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
            Err(error) => {
                tracing::error!(%error, writes = group.len(), "group commit failed; every later write fails until a restart");
                self.metrics.commit_failures.inc();
                self.metrics.storage_writer_ok.set(0);
                self.metrics.health.report(format!(
                    "the storage writer failed and every write fails until a restart: {error}"
                ));
                self.failed = Some(error.clone());
                for request in group {
                    let _ = request.done.send(Err(error.clone()));
                }
            }
        }
    }

    /// Makes `group` durable: appended to the log and applied to redb without fsync, or, when a
    /// checkpoint is due or the group does not fit in the log, committed to redb durably with its
    /// sequence number as the new checkpoint.
    fn commit(&mut self, group: &[CommitRequest], checkpoint_due: bool) -> Result<(), CommitError> {
        let fail = |e: &dyn std::fmt::Display| CommitError::new(e.to_string());
        let ops = || group.iter().flat_map(|r| &r.ops);
        let logged = if checkpoint_due {
            None
        } else {
            self.log
                .append(ops())
                .map_err(|e| CommitError::new(format!("write-ahead log: {e}")))?
        };
        let mut txn = self.db.begin_write().map_err(|e| fail(&e))?;
        if logged.is_some() {
            txn.set_durability(Durability::None).map_err(|e| fail(&e))?;
        } else {
            self.log
                .stamp_checkpoint(&txn, false)
                .map_err(|e| fail(&e))?;
        }
        match key_ordered(ops()) {
            Some(ordered) => apply_ops(&txn, ordered.into_iter()),
            None => apply_ops(&txn, ops()),
        }
        .map_err(|e| fail(&e))?;
        txn.commit().map_err(|e| fail(&e))?;
        if logged.is_none() {
            self.log.checkpointed();
            self.last_checkpoint = Instant::now();
            self.metrics.checkpoints.inc();
        }
        Ok(())
    }
}

impl GroupWriter {
    fn final_checkpoint(&mut self) -> Result<(), redb::Error> {
        let txn = self.db.begin_write()?;
        self.log.stamp_checkpoint(&txn, true)?;
        txn.commit()?;
        self.log.checkpointed();
        Ok(())
    }
}

/// A group made only of puts and deletes, in key order and with only the last write of each
/// key: the same end state (writes to different keys commute; the last write of a key wins),
/// with each B-tree leaf visited once, in order, and overwritten writes skipped. `None` when the
/// group holds range deletes or alarm changes, which must stay in event order.
fn key_ordered<'a>(ops: impl Iterator<Item = &'a WriteOp>) -> Option<Vec<&'a WriteOp>> {
    let mut ordered = Vec::new();
    for op in ops {
        match op {
            WriteOp::Put { .. } | WriteOp::Delete { .. } => ordered.push(op),
            _ => return None,
        }
    }
    fn key(op: &WriteOp) -> (Table, &[u8]) {
        match op {
            WriteOp::Put { table, key, .. } | WriteOp::Delete { table, key } => {
                (*table, key.as_slice())
            }
            _ => unreachable!("only puts and deletes are collected"),
        }
    }
    // Stable: the writes of one key stay in event order, and the last one is kept.
    ordered.sort_by(|a, b| key(a).cmp(&key(b)));
    let mut last_of_each: Vec<&WriteOp> = Vec::with_capacity(ordered.len());
    for op in ordered {
        match last_of_each.last_mut() {
            Some(previous) if key(previous) == key(op) => *previous = op,
            _ => last_of_each.push(op),
        }
    }
    Some(last_of_each)
}

/// Applies `ops` in order inside `txn` (a group commit, or a replay of the log).
pub(crate) fn apply_ops<'a>(
    txn: &redb::WriteTransaction,
    ops: impl Iterator<Item = &'a WriteOp>,
) -> Result<(), redb::Error> {
    let mut tables = Tables::new(txn);
    for op in ops {
        tables.apply(op)?;
    }
    Ok(())
}

/// The tables of one write transaction, each opened on first use: a group of counter increments
/// touches only `data`, and opening a table costs work at open and at commit (callgrind: opening
/// all six took ~14% of the writer's instructions for a one-write group).
struct Tables<'txn> {
    txn: &'txn redb::WriteTransaction,
    data: Option<redb::Table<'txn, &'static [u8], &'static [u8]>>,
    classes: Option<redb::Table<'txn, &'static str, &'static [u8]>>,
    components: Option<redb::Table<'txn, &'static str, &'static [u8]>>,
    meta: Option<redb::Table<'txn, &'static str, &'static [u8]>>,
    alarms: Option<redb::Table<'txn, &'static [u8], i64>>,
    schedule: Option<redb::Table<'txn, &'static [u8], ()>>,
    retries: Option<redb::Table<'txn, &'static [u8], &'static [u8]>>,
}

/// The table in `slot`, opened from `def` if it is not open yet.
fn opened<'s, 'txn, K: redb::Key + 'static, V: redb::Value + 'static>(
    txn: &'txn redb::WriteTransaction,
    slot: &'s mut Option<redb::Table<'txn, K, V>>,
    def: TableDefinition<K, V>,
) -> Result<&'s mut redb::Table<'txn, K, V>, redb::Error> {
    if slot.is_none() {
        *slot = Some(txn.open_table(def)?);
    }
    Ok(slot.as_mut().expect("opened above"))
}

impl<'txn> Tables<'txn> {
    fn new(txn: &'txn redb::WriteTransaction) -> Self {
        Self {
            txn,
            data: None,
            classes: None,
            components: None,
            meta: None,
            alarms: None,
            schedule: None,
            retries: None,
        }
    }

    fn apply(&mut self, op: &WriteOp) -> Result<(), redb::Error> {
        let txn = self.txn;
        match op {
            WriteOp::Put { table, key, value } => match table {
                Table::Data => {
                    opened(txn, &mut self.data, schema::DATA)?
                        .insert(key.as_slice(), value.as_ref())?;
                }
                Table::Classes => {
                    str_table_put(opened(txn, &mut self.classes, schema::CLASSES)?, key, value)?
                }
                Table::Components => str_table_put(
                    opened(txn, &mut self.components, schema::COMPONENTS)?,
                    key,
                    value,
                )?,
                Table::Meta => {
                    str_table_put(opened(txn, &mut self.meta, schema::META)?, key, value)?
                }
            },
            WriteOp::Delete { table, key } => match table {
                Table::Data => {
                    opened(txn, &mut self.data, schema::DATA)?.remove(key.as_slice())?;
                }
                Table::Classes => {
                    str_table_delete(opened(txn, &mut self.classes, schema::CLASSES)?, key)?
                }
                Table::Components => {
                    str_table_delete(opened(txn, &mut self.components, schema::COMPONENTS)?, key)?
                }
                Table::Meta => str_table_delete(opened(txn, &mut self.meta, schema::META)?, key)?,
            },
            WriteOp::DeleteDataPrefix { prefix } => {
                delete_prefix(opened(txn, &mut self.data, schema::DATA)?, prefix)?
            }
            WriteOp::SetAlarm { object, at_ms } => {
                opened(txn, &mut self.retries, schema::ALARM_RETRIES)?.remove(object.as_slice())?;
                let alarms = opened(txn, &mut self.alarms, schema::ALARMS)?;
                let schedule = opened(txn, &mut self.schedule, schema::ALARM_SCHEDULE)?;
                let old = alarms.get(object.as_slice())?.map(|v| v.value());
                if let Some(old) = old {
                    schedule.remove(schema::schedule_key(old, object).as_slice())?;
                }
                if let Some(at) = at_ms {
                    alarms.insert(object.as_slice(), at)?;
                    schedule.insert(schema::schedule_key(*at, object).as_slice(), ())?;
                } else {
                    alarms.remove(object.as_slice())?;
                }
            }
            WriteOp::ClearAlarmIf { object, at_ms } => {
                let alarms = opened(txn, &mut self.alarms, schema::ALARMS)?;
                let current = alarms.get(object.as_slice())?.map(|v| v.value());
                if current == Some(*at_ms) {
                    alarms.remove(object.as_slice())?;
                    opened(txn, &mut self.retries, schema::ALARM_RETRIES)?
                        .remove(object.as_slice())?;
                }
                opened(txn, &mut self.schedule, schema::ALARM_SCHEDULE)?
                    .remove(schema::schedule_key(*at_ms, object).as_slice())?;
            }
            WriteOp::DeleteAlarmsPrefix { prefix } => {
                delete_prefix(opened(txn, &mut self.alarms, schema::ALARMS)?, prefix)?;
                delete_prefix(
                    opened(txn, &mut self.retries, schema::ALARM_RETRIES)?,
                    prefix,
                )?
            }
            WriteOp::RecordAlarmRetry { object, retry } => {
                let alarms = opened(txn, &mut self.alarms, schema::ALARMS)?;
                let current = alarms.get(object.as_slice())?.map(|v| v.value());
                if current == Some(retry.at_ms) {
                    opened(txn, &mut self.retries, schema::ALARM_RETRIES)?
                        .insert(object.as_slice(), retry.encode().as_slice())?;
                }
            }
        }
        Ok(())
    }
}

/// Deletes every entry whose key starts with `prefix`.
fn delete_prefix<V: redb::Value + 'static>(
    table: &mut redb::Table<'_, &'static [u8], V>,
    prefix: &[u8],
) -> Result<(), redb::StorageError> {
    match schema::prefix_end(prefix) {
        Some(end) => table.retain_in(prefix..end.as_slice(), |_, _| false),
        None => table.retain_in(prefix.., |_, _| false),
    }
}

fn str_key(key: &[u8]) -> Result<&str, redb::StorageError> {
    std::str::from_utf8(key).map_err(|e| redb::StorageError::Corrupted(e.to_string()))
}

fn str_table_put(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &[u8],
    value: &[u8],
) -> Result<(), redb::StorageError> {
    table.insert(str_key(key)?, value).map(drop)
}

fn str_table_delete(
    table: &mut redb::Table<'_, &'static str, &'static [u8]>,
    key: &[u8],
) -> Result<(), redb::StorageError> {
    table.remove(str_key(key)?).map(drop)
}

/// Creates every table so readers never see a missing one.
pub fn create_tables(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        fn touch<K: redb::Key + 'static, V: redb::Value + 'static>(
            txn: &redb::WriteTransaction,
            def: TableDefinition<K, V>,
        ) -> Result<(), redb::TableError> {
            txn.open_table(def).map(drop)
        }
        touch(&txn, schema::DATA)?;
        touch(&txn, schema::CLASSES)?;
        touch(&txn, schema::COMPONENTS)?;
        touch(&txn, schema::META)?;
        touch(&txn, schema::ALARMS)?;
        touch(&txn, schema::ALARM_SCHEDULE)?;
        touch(&txn, schema::ALARM_RETRIES)?;
    }
    txn.commit()?;
    Ok(())
}

/// An output held until the writes it depends on are durable: the output gate.
pub struct Gated<T> {
    value: T,
    barrier: Option<Durable>,
}

impl<T> Gated<T> {
    /// `value` may leave once `barrier` (if any) is durable.
    pub fn new(value: T, barrier: Option<Durable>) -> Self {
        Self { value, barrier }
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

/// A put of `value` under `key` in the data table (tests of the commit path and the log).
#[cfg(test)]
pub(super) fn put(key: &str, value: &str) -> WriteOp {
    WriteOp::Put {
        table: Table::Data,
        key: key.as_bytes().to_vec(),
        value: Bytes::copy_from_slice(value.as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delete(key: &str) -> WriteOp {
        WriteOp::Delete {
            table: Table::Data,
            key: key.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_group_of_puts_and_deletes_is_applied_in_key_order_last_write_wins() {
        let ops = [
            put("b", "1"),
            put("a", "1"),
            delete("b"),
            put("c", "1"),
            put("a", "2"),
            put("b", "3"),
        ];
        let ordered = key_ordered(ops.iter()).expect("only puts and deletes");
        assert_eq!(ordered, [&put("a", "2"), &put("b", "3"), &put("c", "1")]);
        let ends_deleted = [put("k", "1"), delete("k")];
        assert_eq!(key_ordered(ends_deleted.iter()).unwrap(), [&delete("k")]);
    }

    #[test]
    fn range_deletes_and_alarms_keep_event_order() {
        let ops = [
            put("a", "1"),
            WriteOp::DeleteDataPrefix {
                prefix: b"a".to_vec(),
            },
            put("a", "2"),
        ];
        assert!(key_ordered(ops.iter()).is_none());
        let alarm = [WriteOp::SetAlarm {
            object: b"o".to_vec(),
            at_ms: Some(1),
        }];
        assert!(key_ordered(alarm.iter()).is_none());
    }
}
