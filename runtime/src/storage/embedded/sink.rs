//! How the redb engine makes a group durable: appended to the write-ahead log (one `fdatasync`)
//! and applied to redb without fsync; or, once per checkpoint interval (or when the group does
//! not fit in the log), committed to redb durably with its sequence number as the new
//! checkpoint, letting the log start over.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ::redb::{Database, Durability};

use super::apply::apply_ops;
use super::wal::Log;
use crate::metrics::Metrics;
use crate::storage::backend::{Sink, SinkError};
use crate::storage::ops::{WriteOp, key_ordered};

/// See the module docs.
pub struct RedbSink {
    db: Arc<Database>,
    log: Log,
    checkpoint_interval: Duration,
    last_checkpoint: Instant,
    metrics: Arc<Metrics>,
}

impl RedbSink {
    /// A sink over `db` and its recovered `log`, checkpointing every `checkpoint_interval`.
    pub fn new(
        db: Arc<Database>,
        log: Log,
        checkpoint_interval: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            db,
            log,
            checkpoint_interval,
            last_checkpoint: Instant::now(),
            metrics,
        }
    }
}

/// Every failure here is sticky: the group may be in the log and not in redb.
fn sticky(error: impl std::fmt::Display) -> SinkError {
    SinkError {
        message: error.to_string(),
        sticky: true,
    }
}

impl Sink for RedbSink {
    fn write(&mut self, ops: &[&WriteOp]) -> Result<(), SinkError> {
        let checkpoint_due = self.last_checkpoint.elapsed() >= self.checkpoint_interval;
        let logged = if checkpoint_due {
            None
        } else {
            self.log
                .append(ops.iter().copied())
                .map_err(|e| sticky(format!("write-ahead log: {e}")))?
        };
        let mut txn = self.db.begin_write().map_err(sticky)?;
        if logged.is_some() {
            txn.set_durability(Durability::None).map_err(sticky)?;
        } else {
            self.log.stamp_checkpoint(&txn, false).map_err(sticky)?;
        }
        match key_ordered(ops.iter().copied()) {
            Some(ordered) => apply_ops(&txn, ordered.into_iter()),
            None => apply_ops(&txn, ops.iter().copied()),
        }
        .map_err(sticky)?;
        txn.commit().map_err(sticky)?;
        if logged.is_none() {
            self.log.checkpointed();
            self.last_checkpoint = Instant::now();
            self.metrics.checkpoints.inc();
        }
        Ok(())
    }

    /// Checkpoints what only the log holds and marks the stop clean, so the next start replays
    /// nothing (and knows a missing log lost nothing).
    fn close(&mut self) {
        let done = (|| -> Result<(), ::redb::Error> {
            let txn = self.db.begin_write()?;
            self.log.stamp_checkpoint(&txn, true)?;
            txn.commit()?;
            self.log.checkpointed();
            Ok(())
        })();
        if let Err(error) = done {
            tracing::error!(%error, "final checkpoint failed; the next start replays the log");
        }
    }
}
