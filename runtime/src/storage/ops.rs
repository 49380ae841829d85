//! The write operations a write set is made of: what an event, a class change or the alarm
//! scheduler asks the engine to make durable. Engines apply them (`embedded::apply`, the
//! PostgreSQL sink); the write-ahead log encodes them (`embedded::wal::ops`).

use bytes::Bytes;

use super::schema::{self, Table};

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
    /// Deletes every entry of `table` whose key starts with `prefix` (delete-all, class
    /// deletion).
    DeletePrefix {
        table: Table,
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

/// Deletes every entry of the class `incarnation`: its objects' entries and their names.
pub fn delete_class_entries(incarnation: u64) -> [WriteOp; 2] {
    [Table::Data, Table::Names].map(|table| WriteOp::DeletePrefix {
        table,
        prefix: schema::class_prefix(incarnation),
    })
}

/// A group made only of puts and deletes, in key order and with only the last write of each
/// key: the same end state (writes to different keys commute; the last write of a key wins),
/// with each B-tree leaf visited once, in order, and overwritten writes skipped. `None` when the
/// group holds range deletes or alarm changes, which must stay in event order.
pub(crate) fn key_ordered<'a>(ops: impl Iterator<Item = &'a WriteOp>) -> Option<Vec<&'a WriteOp>> {
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
            WriteOp::DeletePrefix {
                table: Table::Data,
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
