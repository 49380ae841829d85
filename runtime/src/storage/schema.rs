//! The redb tables and how storage keys are laid out in them.
//!
//! `data` holds every object's entries under `[class incarnation (8, BE)][object id (32)][user key]`,
//! so one object's keys, and one class's objects, are each a contiguous range ordered by user-key
//! bytes. The incarnation is a random number given to a class when it is created (kept when its
//! code is replaced): a class deleted and created again starts from empty storage even if a write
//! of its old objects was still in flight during the delete.

use redb::TableDefinition;

use crate::ids::ObjectId;

/// Object entries: encoded `(class, id, user key)` -> value bytes.
pub const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("data");
/// The objects' names: `[class incarnation (8, BE)][name]` -> object id (32 bytes). An object
/// created by name gets its entry in the commit of its first durable write (beside its own
/// internal copy of the name, `sql::pages::NAME_KEY`), so a class's names are one range, in
/// name order, and a name prefix is a range within it.
pub const NAMES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("names");
/// Class metadata: class name -> JSON `ClassRecord`.
pub const CLASSES: TableDefinition<&str, &[u8]> = TableDefinition::new("classes");
/// Uploaded component bytes: sha256 hex -> bytes.
pub const COMPONENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("components");
/// Runtime metadata, e.g. the id secret.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Each object's alarm: object prefix -> epoch ms.
pub const ALARMS: TableDefinition<&[u8], i64> = TableDefinition::new("alarms");
/// The alarm index the scheduler reads: `schedule_key(at, object)` -> (), ordered by time.
pub const ALARM_SCHEDULE: TableDefinition<&[u8], ()> = TableDefinition::new("alarm_schedule");

/// A failed alarm's pending retry: object prefix -> [`AlarmRetry::encode`]. Kept with the alarm,
/// so a restart continues its backoff instead of starting it over.
pub const ALARM_RETRIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("alarm_retries");

/// A failed alarm's next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmRetry {
    /// The alarm (its time) that failed; the retry is void once the alarm changes.
    pub at_ms: i64,
    /// The number of the next attempt's retry (1 for the first retry).
    pub retry_count: u32,
    /// Not before this time (epoch ms): the backoff.
    pub not_before_ms: i64,
}

impl AlarmRetry {
    pub fn encode(&self) -> [u8; 20] {
        let mut out = [0; 20];
        out[0..8].copy_from_slice(&self.at_ms.to_le_bytes());
        out[8..12].copy_from_slice(&self.retry_count.to_le_bytes());
        out[12..20].copy_from_slice(&self.not_before_ms.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 20] = bytes.try_into().ok()?;
        Some(Self {
            at_ms: i64::from_le_bytes(bytes[0..8].try_into().ok()?),
            retry_count: u32::from_le_bytes(bytes[8..12].try_into().ok()?),
            not_before_ms: i64::from_le_bytes(bytes[12..20].try_into().ok()?),
        })
    }
}

/// The tables a commit may write, named so write ops carry no redb types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Table {
    Data,
    Classes,
    Components,
    Meta,
    Names,
}

/// The first byte of every internal entry of an object (SQL pages, its name): user keys are
/// UTF-8, which never holds it, so internal entries sort after every user key.
pub const INTERNAL: u8 = 0xFF;
/// An object's own copy of its name (see [`NAMES`]).
pub const NAME_KEY: [u8; 2] = [INTERNAL, b'n'];
/// The key of an import in progress (or cut short by a crash): its value is the import's token.
/// While it is there the object refuses its events; the import's last part, a wipe or the next
/// import removes it.
pub const IMPORT_KEY: [u8; 2] = [INTERNAL, b'i'];

/// Length of a class prefix: the incarnation.
pub const CLASS_PREFIX_LEN: usize = 8;

/// The prefix of all of a class incarnation's entries.
pub fn class_prefix(incarnation: u64) -> Vec<u8> {
    incarnation.to_be_bytes().to_vec()
}

/// The prefix of one object's entries.
pub fn object_prefix(incarnation: u64, id: &ObjectId) -> Vec<u8> {
    let mut key = Vec::with_capacity(CLASS_PREFIX_LEN + 32 + 16);
    key.extend_from_slice(&incarnation.to_be_bytes());
    key.extend_from_slice(id.as_bytes());
    key
}

/// The class incarnation and object id of an object prefix.
pub fn split_object_prefix(object: &[u8]) -> Option<(u64, ObjectId)> {
    if object.len() != CLASS_PREFIX_LEN + 32 {
        return None;
    }
    let (class, id) = object.split_at(CLASS_PREFIX_LEN);
    let incarnation = u64::from_be_bytes(class.try_into().ok()?);
    Some((incarnation, ObjectId::from_bytes(id.try_into().ok()?)))
}

/// The key of an object's name in [`NAMES`].
pub fn name_key(incarnation: u64, name: &str) -> Vec<u8> {
    [incarnation.to_be_bytes().as_slice(), name.as_bytes()].concat()
}

/// `[at_ms as order-preserving u64 (8)][object prefix]`: index entries sort by time.
pub fn schedule_key(at_ms: i64, object: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(8 + object.len());
    key.extend_from_slice(&((at_ms as u64) ^ (1 << 63)).to_be_bytes());
    key.extend_from_slice(object);
    key
}

/// The inverse of [`schedule_key`].
pub fn decode_schedule_key(key: &[u8]) -> Option<(i64, &[u8])> {
    let (time, object) = key.split_at_checked(8)?;
    let ordered = u64::from_be_bytes(time.try_into().ok()?);
    Some(((ordered ^ (1 << 63)) as i64, object))
}

/// The smallest byte string greater than every string starting with `prefix`, or `None` when
/// there is none (the prefix is all 0xFF).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClassName, IdSecret};

    #[test]
    fn prefix_end_bounds_every_extension() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn schedule_keys_sort_by_time_and_round_trip() {
        let object = [7u8; 40];
        let times = [i64::MIN, -5, 0, 1, 1_700_000_000_000, i64::MAX];
        let keys: Vec<_> = times.iter().map(|t| schedule_key(*t, &object)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        for (t, key) in times.iter().zip(&keys) {
            assert_eq!(decode_schedule_key(key), Some((*t, &object[..])));
        }
        let class = ClassName::parse("A").unwrap();
        let id = IdSecret::from_bytes([1; 32])
            .class_ids(&class, class.as_str())
            .from_name("x");
        assert_eq!(split_object_prefix(&object_prefix(9, &id)), Some((9, id)));
    }

    #[test]
    fn object_keys_sit_inside_their_class_range() {
        let class = ClassName::parse("Counter").unwrap();
        let id = IdSecret::from_bytes([1; 32])
            .class_ids(&class, class.as_str())
            .from_name("x");
        let object = object_prefix(u64::MAX, &id);
        assert!(object.starts_with(&class_prefix(u64::MAX)));
        assert!(object.as_slice() > class_prefix(u64::MAX - 1).as_slice());
    }
}
